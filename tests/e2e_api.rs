//! End to end, on the API alone (no operator running): the CRD as a real kube-apiserver
//! serves it, with kubectl as a user runs it. What is checked here is what the schema and
//! its CEL rules promise: names, documentation, validation messages that name the field,
//! immutability of the StartBuild members, and the status subresource.
//!
//! Needs the local control plane (hack/local-cluster.sh); the harness starts it if it is
//! down and fails, never skips, when it cannot.

mod support;

use codebuild_operator::api::{BuildInfo, CodeBuildRun, CodeBuildRunStatus};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{
    API_VERSION, TestNamespace, example_files, kubectl, kubectl_ok, kubectl_stdin, output_text,
    run_manifest as manifest,
};

/// `kubectl create -f -` of `manifest`, which must be refused; returns kubectl's output.
#[track_caller]
fn refused(ns: &TestNamespace, manifest: &str) -> String {
    let out = kubectl_stdin(&["create", "-n", ns.name(), "-f", "-"], manifest);
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "expected the apiserver to refuse\n{manifest}\nbut: {text}"
    );
    text
}

/// `kubectl create -f -` of `manifest`, which must be accepted.
#[track_caller]
fn created(ns: &TestNamespace, manifest: &str) {
    let out = kubectl_stdin(&["create", "-n", ns.name(), "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "create refused:\n{manifest}\n{}",
        output_text(&out)
    );
}

/// `kubectl patch cbr/NAME --type=merge -p PATCH`.
fn merge_patch(ns: &TestNamespace, name: &str, patch: Value) -> std::process::Output {
    kubectl(&[
        "patch",
        &format!("cbr/{name}"),
        "-n",
        ns.name(),
        "--type=merge",
        "-p",
        &patch.to_string(),
    ])
}

#[track_caller]
fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

/// No CodeBuildRun was created in the namespace.
#[track_caller]
fn assert_no_runs(ns: &TestNamespace) {
    let names = kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "name"]);
    assert!(
        names.trim().is_empty(),
        "nothing should have been created, found: {names}"
    );
}

#[track_caller]
fn get_json(ns: &TestNamespace, name: &str) -> Value {
    let text = kubectl_ok(&["get", &format!("cbr/{name}"), "-n", ns.name(), "-o", "json"]);
    serde_json::from_str(&text).expect("kubectl -o json")
}

// ---- the CRD itself ----------------------------------------------------------------------

#[test]
fn crd_is_established_with_short_name_and_category() {
    let ns = TestNamespace::new("api-crd");
    let crd = format!("crd/{}", support::CRD_NAME);
    let established = kubectl_ok(&[
        "get",
        &crd,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
    ]);
    assert_eq!(established, "True");
    let names: Value =
        serde_json::from_str(&kubectl_ok(&["get", &crd, "-o", "jsonpath={.spec.names}"])).unwrap();
    assert_eq!(names["shortNames"], json!(["cbr"]));
    assert_eq!(names["categories"], json!(["codebuild"]));
    assert_eq!(names["kind"], "CodeBuildRun");

    created(&ns, &manifest("listed", json!({"projectName": "my-app"})));
    for resource in ["codebuild", "cbr", "codebuildruns", "codebuildrun"] {
        let listed = kubectl_ok(&["get", resource, "-n", ns.name()]);
        assert!(
            listed.contains("listed"),
            "`kubectl get {resource}` should list the run:\n{listed}"
        );
    }
    // The printer columns: Status / Phase / Reason by default; Project, Build ID, the
    // build's start and end, and its test counts with -o wide.
    let wide = kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "PROJECT", "STATUS", "PHASE", "REASON", "AGE", "BUILD", "ID", "STARTED",
            "ENDED", "TESTS"
        ],
        "{wide}"
    );
    assert!(wide.contains("my-app"), "{wide}");
}

#[test]
fn kubectl_explain_shows_the_field_documentation() {
    let _ = support::cluster();
    let cases: &[(&str, &[&str])] = &[
        (
            "codebuildrun",
            &[
                "CodeBuildRun starts one AWS CodeBuild build",
                "mirrors it in status",
            ],
        ),
        (
            "codebuildrun.spec",
            &[
                "The spec is a CodeBuild StartBuild request",
                "cannot change after creation",
            ],
        ),
        (
            "codebuildrun.spec.artifactsOverride",
            &[
                "Replaces the project's primary artifacts settings for this build.",
                "For S3: the bucket name.",
                "For S3: how the artifacts are packaged.",
                "Names a secondary artifact",
                "NONE, READ_ONLY, FULL",
            ],
        ),
        (
            "codebuildrun.spec.environmentVariablesOverride",
            &[
                "they add to, and by name replace, the project's",
                "CODEBUILD_OPERATOR_RUN_UID",
                "Never put secrets in PLAINTEXT values",
                "PLAINTEXT, PARAMETER_STORE, SECRETS_MANAGER",
                "How `value` is read. PLAINTEXT when absent.",
            ],
        ),
        (
            "codebuildrun.spec.operator",
            &[
                "Not part of the StartBuild request",
                "The AWS Region to start the build in",
                "Cannot be set back to false",
                "like a Job's field of the same name",
                "StopBuild, LeaveRunning",
            ],
        ),
        (
            "codebuildrun.spec.timeoutInMinutesOverride",
            &["Minutes before an unfinished build times out, 5 to 2160."],
        ),
        (
            "codebuildrun.spec.sourceVersion",
            &["The version of the primary source to build", "pr/<number>"],
        ),
        (
            "codebuildrun.status.phases",
            &[
                "Every phase so far, in order.",
                "How the phase ended: SUCCEEDED, FAILED",
                "DOWNLOAD_SOURCE",
                "durationInSeconds",
            ],
        ),
        (
            "codebuildrun.status.conditions",
            &[
                "Succeeded",
                "Ready (True only once the build succeeded)",
                "Stalled",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (field, words) in cases {
        // kubectl wraps descriptions at 80 columns: compare with whitespace collapsed.
        let text = kubectl_ok(&["explain", field]);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for word in *words {
            if !flat.contains(word) {
                failures.push(format!("`kubectl explain {field}` lacks {word:?}:\n{text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_is_accepted_and_created() {
    let ns = TestNamespace::new("api-examples");
    for file in example_files() {
        let path = file.to_str().unwrap();
        let dry = kubectl_ok(&["apply", "--dry-run=server", "-n", ns.name(), "-f", path]);
        assert!(dry.contains("created (server dry run)"), "{path}: {dry}");
        let applied = kubectl_ok(&["apply", "-n", ns.name(), "-f", path]);
        assert!(applied.contains("created"), "{path}: {applied}");

        // The apiserver kept the spec as written: nothing pruned, nothing defaulted.
        let written: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap())
            .expect("example as a JSON value");
        let name = written["metadata"]["name"].as_str().expect("metadata.name");
        let stored = get_json(&ns, name);
        assert_eq!(
            stored["spec"], written["spec"],
            "{path}: stored spec differs"
        );
        // And the stored object reads back as the Rust type.
        serde_json::from_value::<CodeBuildRun>(stored)
            .unwrap_or_else(|e| panic!("{path}: stored object is not a CodeBuildRun: {e}"));
    }
    let listed = kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "name"]);
    assert_eq!(listed.lines().count(), example_files().len(), "{listed}");
}

// ---- refused on create, with a message naming the field ----------------------------------

#[test]
fn unknown_enum_value_is_refused_with_the_supported_values() {
    let ns = TestNamespace::new("api-enum");
    let text = refused(
        &ns,
        &manifest(
            "huge",
            json!({"projectName": "my-app", "computeTypeOverride": "HUGE"}),
        ),
    );
    assert_mentions(
        &text,
        &[
            "spec.computeTypeOverride",
            "Unsupported value: \"HUGE\"",
            "supported values:",
            "\"BUILD_GENERAL1_SMALL\"",
            "\"BUILD_LAMBDA_10GB\"",
        ],
    );
    let text = refused(
        &ns,
        &manifest(
            "envtype",
            json!({
                "projectName": "my-app",
                "environmentVariablesOverride": [{"name": "A", "value": "b", "type": "SECRET"}],
            }),
        ),
    );
    assert_mentions(
        &text,
        &[
            "spec.environmentVariablesOverride[0].type",
            "\"PLAINTEXT\", \"PARAMETER_STORE\", \"SECRETS_MANAGER\"",
        ],
    );
    let text = refused(
        &ns,
        &manifest(
            "ondelete",
            json!({"projectName": "my-app", "operator": {"onDelete": "Keep"}}),
        ),
    );
    assert_mentions(
        &text,
        &["spec.operator.onDelete", "\"StopBuild\", \"LeaveRunning\""],
    );
    assert_no_runs(&ns);
}

#[test]
fn out_of_range_timeouts_are_refused() {
    let ns = TestNamespace::new("api-timeout");
    let cases = [
        (
            "timeoutInMinutesOverride",
            3,
            "should be greater than or equal to 5",
        ),
        (
            "timeoutInMinutesOverride",
            3000,
            "should be less than or equal to 2160",
        ),
        (
            "queuedTimeoutInMinutesOverride",
            4,
            "should be greater than or equal to 5",
        ),
        (
            "queuedTimeoutInMinutesOverride",
            481,
            "should be less than or equal to 480",
        ),
    ];
    for (field, value, bound) in cases {
        let text = refused(
            &ns,
            &manifest("timeout", json!({"projectName": "my-app", field: value})),
        );
        assert_mentions(
            &text,
            &[&format!("spec.{field}: Invalid value: {value}"), bound],
        );
    }
    // The bounds themselves are accepted.
    created(
        &ns,
        &manifest(
            "bounds",
            json!({
                "projectName": "my-app",
                "timeoutInMinutesOverride": 2160,
                "queuedTimeoutInMinutesOverride": 5,
            }),
        ),
    );
}

#[test]
fn missing_or_empty_project_name_is_refused() {
    let ns = TestNamespace::new("api-project");
    let text = refused(&ns, &manifest("missing", json!({"sourceVersion": "main"})));
    assert_mentions(&text, &["spec.projectName: Required value"]);
    let text = refused(&ns, &manifest("empty", json!({"projectName": ""})));
    assert_mentions(
        &text,
        &[
            "spec.projectName: Invalid value: \"\"",
            "should be at least 1 chars long",
        ],
    );
    let text = refused(
        &ns,
        &format!(
            "{{\"apiVersion\":\"{API_VERSION}\",\"kind\":\"CodeBuildRun\",\"metadata\":{{\"name\":\"nospec\"}}}}"
        ),
    );
    assert_mentions(&text, &["spec: Required value"]);
    assert_no_runs(&ns);
}

#[test]
fn unknown_field_is_refused_by_strict_field_validation() {
    let ns = TestNamespace::new("api-unknown");
    let bogus = manifest("bogus", json!({"projectName": "my-app", "bogus": 1}));
    // kubectl validates strictly by default (server-side field validation "Strict").
    let text = refused(&ns, &bogus);
    assert_mentions(
        &text,
        &["strict decoding error", "unknown field \"spec.bogus\""],
    );
    let nested = manifest(
        "nested",
        json!({"projectName": "my-app", "artifactsOverride": {"type": "S3", "bucket": "b"}}),
    );
    let text = refused(&ns, &nested);
    assert_mentions(&text, &["unknown field \"spec.artifactsOverride.bucket\""]);
    assert_no_runs(&ns);

    // With validation relaxed to a warning the field is pruned, not stored.
    let out = kubectl_stdin(
        &["create", "--validate=warn", "-n", ns.name(), "-f", "-"],
        &bogus,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert_mentions(&output_text(&out), &["unknown field \"spec.bogus\""]);
    assert_eq!(
        get_json(&ns, "bogus")["spec"],
        json!({"projectName": "my-app"})
    );
}

#[test]
fn source_identifier_with_a_bad_character_is_refused() {
    let ns = TestNamespace::new("api-sourceid");
    let text = refused(
        &ns,
        &manifest(
            "sid",
            json!({
                "projectName": "my-app",
                "secondarySourcesOverride": [
                    {"type": "GITHUB", "location": "https://github.com/o/a", "sourceIdentifier": "ok_1"},
                    {"type": "GITHUB", "location": "https://github.com/o/b", "sourceIdentifier": "my-src"},
                ],
            }),
        ),
    );
    assert_mentions(
        &text,
        &[
            "spec.secondarySourcesOverride[1].sourceIdentifier: Invalid value: \"my-src\"",
            "should match '^[A-Za-z0-9_]+$'",
        ],
    );
    assert!(!text.contains("secondarySourcesOverride[0]"), "{text}");
    assert_no_runs(&ns);
}

#[test]
fn more_than_12_secondary_sources_are_refused() {
    let ns = TestNamespace::new("api-sources");
    let sources = |n: usize| -> Value {
        (0..n)
            .map(|i| {
                json!({
                    "type": "GITHUB",
                    "location": format!("https://github.com/example-org/lib{i}.git"),
                    "sourceIdentifier": format!("lib{i}"),
                })
            })
            .collect()
    };
    let text = refused(
        &ns,
        &manifest(
            "many",
            json!({"projectName": "my-app", "secondarySourcesOverride": sources(13)}),
        ),
    );
    assert_mentions(
        &text,
        &["spec.secondarySourcesOverride: Too many: 13: must have at most 12 items"],
    );
    created(
        &ns,
        &manifest(
            "twelve",
            json!({"projectName": "my-app", "secondarySourcesOverride": sources(12)}),
        ),
    );
}

/// Every field the operator copies into its own writes is bounded: an idempotency token over
/// 128 characters (one of 256 KiB once wedged a run: its claim was refused) is refused at
/// `kubectl apply`.
#[test]
fn an_overlong_idempotency_token_is_refused() {
    let ns = TestNamespace::new("api-token");
    let token = "t".repeat(129);
    let text = refused(
        &ns,
        &manifest(
            "token",
            json!({"projectName": "my-app", "idempotencyToken": token}),
        ),
    );
    assert_mentions(
        &text,
        &["spec.idempotencyToken", "may not be more than 128 bytes"],
    );
    created(
        &ns,
        &manifest(
            "token-ok",
            json!({"projectName": "my-app", "idempotencyToken": "t".repeat(128)}),
        ),
    );
}

#[test]
fn negative_git_clone_depth_is_refused() {
    let ns = TestNamespace::new("api-depth");
    let text = refused(
        &ns,
        &manifest(
            "depth",
            json!({"projectName": "my-app", "gitCloneDepthOverride": -1}),
        ),
    );
    assert_mentions(
        &text,
        &[
            "spec.gitCloneDepthOverride: Invalid value: -1",
            "should be greater than or equal to 0",
        ],
    );
    let text = refused(
        &ns,
        &manifest(
            "ttl",
            json!({"projectName": "my-app", "operator": {"ttlSecondsAfterFinished": -1}}),
        ),
    );
    assert_mentions(
        &text,
        &["spec.operator.ttlSecondsAfterFinished: Invalid value: -1"],
    );
    let text = refused(
        &ns,
        &manifest(
            "region",
            json!({"projectName": "my-app", "operator": {"region": "Europe"}}),
        ),
    );
    assert_mentions(&text, &["spec.operator.region: Invalid value: \"Europe\""]);
    assert_no_runs(&ns);
}

// ---- after creation ----------------------------------------------------------------------

#[test]
fn start_build_members_cannot_change_after_creation() {
    let ns = TestNamespace::new("api-immutable");
    let file = |version: &str| {
        manifest(
            "release",
            json!({"projectName": "my-app", "sourceVersion": version, "gitCloneDepthOverride": 1}),
        )
    };
    let out = kubectl_stdin(&["apply", "-n", ns.name(), "-f", "-"], &file("main"));
    assert!(out.status.success(), "{}", output_text(&out));

    // Re-applying the manifest with another sourceVersion, as GitOps would.
    let out = kubectl_stdin(&["apply", "-n", ns.name(), "-f", "-"], &file("release/2.4"));
    assert!(!out.status.success(), "sourceVersion change accepted");
    assert_mentions(
        &output_text(&out),
        &[
            "spec.sourceVersion: Forbidden",
            "spec.sourceVersion cannot change after creation",
            "create a new CodeBuildRun to start another build",
        ],
    );

    // A change is refused on the member's own path; an addition or a removal by one rule on
    // the spec (path `spec`) whose message names the member.
    let refusals = [
        (
            json!({"spec": {"imageOverride": "aws/codebuild/standard:7.0"}}),
            "spec: Forbidden: spec.imageOverride cannot be added or removed after creation",
        ),
        (
            json!({"spec": {"sourceVersion": null}}),
            "spec: Forbidden: spec.sourceVersion cannot be added or removed after creation",
        ),
        (
            json!({"spec": {"gitCloneDepthOverride": 0}}),
            "spec.gitCloneDepthOverride: Forbidden: spec.gitCloneDepthOverride cannot change \
             after creation",
        ),
        (
            json!({"spec": {"projectName": "other"}}),
            "spec.projectName: Forbidden: spec.projectName cannot change after creation",
        ),
        (
            json!({"spec": {"operator": {"region": "eu-west-1"}}}),
            "spec: Forbidden: spec.operator.region cannot be added or removed after creation",
        ),
    ];
    for (patch, expected) in refusals {
        let out = merge_patch(&ns, "release", patch.clone());
        let text = output_text(&out);
        assert!(!out.status.success(), "{patch} accepted: {text}");
        assert_mentions(&text, &[expected]);
    }
    let spec = &get_json(&ns, "release")["spec"];
    assert_eq!(
        spec,
        &json!({"projectName": "my-app", "sourceVersion": "main", "gitCloneDepthOverride": 1})
    );
}

#[test]
fn region_cannot_change_after_creation() {
    let ns = TestNamespace::new("api-region");
    created(
        &ns,
        &manifest(
            "eu",
            json!({"projectName": "my-app", "operator": {"region": "eu-west-1"}}),
        ),
    );
    let out = merge_patch(
        &ns,
        "eu",
        json!({"spec": {"operator": {"region": "us-east-1"}}}),
    );
    assert!(!out.status.success());
    assert_mentions(
        &output_text(&out),
        &[
            "spec.operator.region: Forbidden",
            "spec.operator.region cannot change after creation",
        ],
    );
    let out = merge_patch(&ns, "eu", json!({"spec": {"operator": null}}));
    assert!(!out.status.success());
    assert_mentions(
        &output_text(&out),
        &[
            "spec: Forbidden: spec.operator.region cannot be added or removed after creation: \
           create a new CodeBuildRun to build in another region",
        ],
    );
}

#[test]
fn stop_cannot_be_set_back_to_false() {
    let ns = TestNamespace::new("api-stop");
    created(&ns, &manifest("run", json!({"projectName": "my-app"})));
    // false -> true is allowed (that is how a build is stopped) ...
    for stop in [false, true] {
        let out = merge_patch(&ns, "run", json!({"spec": {"operator": {"stop": stop}}}));
        assert!(
            out.status.success(),
            "stop: {stop} refused: {}",
            output_text(&out)
        );
    }
    // ... true -> false or unset is not.
    for patch in [
        json!({"spec": {"operator": {"stop": false}}}),
        json!({"spec": {"operator": {"stop": null}}}),
        json!({"spec": {"operator": null}}),
    ] {
        let out = merge_patch(&ns, "run", patch.clone());
        assert!(!out.status.success(), "{patch} accepted");
        assert_mentions(
            &output_text(&out),
            &[
                "spec.operator.stop: Forbidden",
                "spec.operator.stop cannot be set back to false once a stop was requested",
            ],
        );
    }
    assert_eq!(get_json(&ns, "run")["spec"]["operator"]["stop"], true);
}

#[test]
fn on_delete_and_ttl_may_change_after_creation() {
    let ns = TestNamespace::new("api-mutable");
    created(
        &ns,
        &manifest(
            "run",
            json!({"projectName": "my-app", "operator": {"onDelete": "StopBuild"}}),
        ),
    );
    let patches = [
        json!({"spec": {"operator": {"onDelete": "LeaveRunning"}}}),
        json!({"spec": {"operator": {"ttlSecondsAfterFinished": 3600}}}),
        json!({"spec": {"operator": {"ttlSecondsAfterFinished": 0}}}),
        json!({"spec": {"operator": {"ttlSecondsAfterFinished": null}}}),
        json!({"spec": {"operator": {"onDelete": null}}}),
        json!({"spec": {"operator": {"onDelete": "LeaveRunning", "ttlSecondsAfterFinished": 60}}}),
    ];
    for patch in patches {
        let out = merge_patch(&ns, "run", patch.clone());
        assert!(
            out.status.success(),
            "{patch} refused: {}",
            output_text(&out)
        );
    }
    let run = get_json(&ns, "run");
    assert_eq!(
        run["spec"]["operator"],
        json!({"onDelete": "LeaveRunning", "ttlSecondsAfterFinished": 60})
    );
    assert_eq!(
        run["metadata"]["generation"], 7,
        "each accepted change bumps generation"
    );
}

#[tokio::test]
async fn status_written_through_the_main_resource_is_ignored() {
    let ns = TestNamespace::new("api-status");
    let api: Api<CodeBuildRun> = Api::namespaced(support::client().await, ns.name());
    let fake = CodeBuildRunStatus {
        build: BuildInfo {
            build_id: Some("my-app:00000000-0000-0000-0000-000000000000".into()),
            build_status: Some("SUCCEEDED".into()),
            ..BuildInfo::default()
        },
        ..CodeBuildRunStatus::default()
    };

    // Create with a status: the apiserver drops it.
    let mut run = CodeBuildRun::new(
        "st",
        serde_json::from_value(json!({"projectName": "my-app"})).unwrap(),
    );
    run.status = Some(fake.clone());
    let created = api
        .create(&PostParams::default(), &run)
        .await
        .expect("create");
    assert_eq!(
        created.status,
        Some(CodeBuildRunStatus::default()),
        "status on create should be dropped (the CRD defaults it to {{}})"
    );
    // (Compared by the fake build id below, not with None: an operator that some other test
    // leaves watching every namespace may legitimately write a status of its own.)
    let has_fake = |run: &CodeBuildRun| {
        run.status
            .as_ref()
            .and_then(|s| s.build.build_id.as_deref())
            == fake.build.build_id.as_deref()
    };

    // A merge patch of status on the main resource: accepted, without effect.
    let out = merge_patch(&ns, "st", json!({"status": {"buildStatus": "SUCCEEDED"}}));
    assert!(out.status.success(), "{}", output_text(&out));
    let patched = api
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": fake})),
        )
        .await
        .expect("main-resource patch");
    assert!(
        !has_fake(&patched),
        "status through the main resource should be ignored: {:?}",
        patched.status
    );
    assert_eq!(patched.metadata.generation, Some(1));

    // Through the status subresource it is written (that is the operator's path), and the
    // spec's generation does not move.
    let patched = api
        .patch_status(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": fake})),
        )
        .await
        .expect("status patch");
    assert!(has_fake(&patched), "{:?}", patched.status);
    assert_eq!(patched.metadata.generation, Some(1));
    let status = kubectl_ok(&[
        "get",
        "cbr/st",
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.status.buildId}",
    ]);
    assert_eq!(Some(status.as_str()), fake.build.build_id.as_deref());
}

//! End to end, on the API alone (no operator running): the ValidatingAdmissionPolicy that
//! `policy::admission::render` makes of the CodeBuildRunPolicies, applied with
//! `admission::apply` and bound to this test's namespaces, refuses at `kubectl apply` what
//! `policy::evaluate` refuses, with the same message, and lets through what it allows.
//! Every expected message is computed by the library from the same input, never copied.
//! The same admission policy covers CodeBuildBatchRuns (their own members' rules included).
//!
//! Policies, admission policies and bindings are cluster-scoped and tests run in parallel:
//! every name carries a random id, every policy selects only namespaces labelled with that
//! id, and every binding matches only them. A guard deletes them all, also on failure.
//!
//! Needs the local control plane (hack/local-cluster.sh); the harness starts it if it is
//! down and fails, never skips, when it cannot.

mod policy_cases;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use codebuild_operator::api::{CodeBuildBatchRunSpec, CodeBuildRunPolicy, CodeBuildRunSpec};
use codebuild_operator::crd::{Kind, kind_yaml};
use codebuild_operator::policy::{Decision, RunRequest, admission, evaluate};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use policy_cases::{every_member_allowed, every_rule_refusals, every_rule_spec, project_with};
use serde_json::{Value, json};
use support::{
    API_VERSION, TestNamespace, kubectl, kubectl_ok, kubectl_stdin, output_text, random_suffix,
};

/// The operator's Region in this test (runs that name none).
const DEFAULT_REGION: &str = "us-east-1";
/// The label that ties namespaces, policies and bindings to one test run.
const RUN_LABEL: &str = "cbr-admission-test";
/// VAP and binding changes reach the admission plugin within about a second.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

// ---- helpers -----------------------------------------------------------------------------

/// Deletes this test's cluster-scoped objects when dropped (also when the test fails).
struct ClusterScoped {
    objects: Vec<(&'static str, String)>,
}

impl ClusterScoped {
    fn add(&mut self, kind: &'static str, name: &str) {
        self.objects.push((kind, name.to_owned()));
    }
}

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        // The binding first, so nothing is refused by a half-deleted policy.
        for (kind, name) in self.objects.iter().rev() {
            let _ = kubectl(&["delete", kind, name, "--ignore-not-found", "--wait=false"]);
        }
    }
}

fn install_policy_crd() {
    let yaml = kind_yaml(Kind::Policy).expect("rendering the CodeBuildRunPolicy CRD");
    let args = ["apply", "--server-side", "--force-conflicts", "-f", "-"];
    let out = kubectl_stdin(&args, &yaml);
    assert!(out.status.success(), "{}", output_text(&out));
    kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/codebuildrunpolicies.codebuild.operator.dev",
        "--timeout=60s",
    ]);
}

/// A namespace labelled with the test id and `labels`.
fn namespace(prefix: &str, id: &str, labels: &[&str]) -> TestNamespace {
    let ns = TestNamespace::new(prefix);
    let run_label = format!("{RUN_LABEL}={id}");
    let mut args = vec!["label", "namespace", ns.name(), run_label.as_str()];
    args.extend(labels);
    kubectl_ok(&args);
    ns
}

fn namespace_labels(ns: &TestNamespace) -> BTreeMap<String, String> {
    let text = kubectl_ok(&["get", "namespace", ns.name(), "-o", "json"]);
    let value: Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(value["metadata"]["labels"].clone()).unwrap()
}

fn policy(name: &str, spec: Value) -> CodeBuildRunPolicy {
    serde_json::from_value(json!({
        "apiVersion": API_VERSION,
        "kind": "CodeBuildRunPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("policy {name}: {e}"))
}

/// The policies as the apiserver holds them (what the operator renders from).
async fn read_back(api: &Api<CodeBuildRunPolicy>, names: &[String]) -> Vec<CodeBuildRunPolicy> {
    let mut out = Vec::new();
    for name in names {
        out.push(api.get(name).await.expect("reading a policy back"));
    }
    out
}

async fn render_and_apply(
    client: &kube::Client,
    vap_name: &str,
    policies: &[CodeBuildRunPolicy],
) -> ValidatingAdmissionPolicy {
    let refs: Vec<&CodeBuildRunPolicy> = policies.iter().collect();
    let vap = admission::render(vap_name, &refs, DEFAULT_REGION);
    admission::apply(client, &vap)
        .await
        .expect("applying the admission policy");
    vap
}

/// A binding of `vap_name` (Deny) that matches only the namespaces labelled with `id`.
fn bind(guard: &mut ClusterScoped, vap_name: &str, id: &str) {
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": vap_name},
        "spec": {
            "policyName": vap_name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {RUN_LABEL: id}}},
        },
    });
    guard.add("validatingadmissionpolicybinding", vap_name);
    let out = kubectl_stdin(&["apply", "-f", "-"], &binding.to_string());
    assert!(out.status.success(), "{}", output_text(&out));
}

/// What the controller decides for `spec` in `ns` with `policies`.
fn decide(ns: &TestNamespace, spec: &Value, policies: &[CodeBuildRunPolicy]) -> Decision {
    let parsed: CodeBuildRunSpec =
        serde_json::from_value(spec.clone()).unwrap_or_else(|e| panic!("spec {spec}: {e}"));
    let region = parsed
        .options()
        .region
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let refs: Vec<&CodeBuildRunPolicy> = policies.iter().collect();
    let request = RunRequest {
        namespace: ns.name(),
        region: &region,
        spec: &parsed,
    };
    evaluate(&request, &namespace_labels(ns), &refs)
}

/// The admission policy's message in kubectl's output, if it refused.
fn refusal(text: &str) -> Option<String> {
    const MARK: &str = "denied request: ";
    let at = text.find(MARK)?;
    let rest = &text[at + MARK.len()..];
    Some(rest.lines().next().unwrap_or_default().to_owned())
}

/// How a run is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verb {
    /// `kubectl apply` (client-side: drops the members set to null).
    Apply,
    /// `kubectl create` (sends nulls as written).
    Create,
    /// `kubectl create --dry-run=server` (admission runs, nothing is stored).
    DryRun,
}

/// Sends a run; Ok on success, Err(kubectl's output) when refused.
fn submit(ns: &TestNamespace, name: &str, spec: &Value, verb: Verb) -> Result<(), String> {
    let args: &[&str] = match verb {
        Verb::Apply => &["apply", "-n", ns.name(), "-f", "-"],
        Verb::Create => &["create", "-n", ns.name(), "-f", "-"],
        Verb::DryRun => &["create", "--dry-run=server", "-n", ns.name(), "-f", "-"],
    };
    let out = kubectl_stdin(args, &support::run_manifest(name, spec.clone()));
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

/// Asserts that kubectl's answer to `spec` is the controller's decision: accepted when
/// allowed, refused with exactly its message when denied. Returns the decision.
#[track_caller]
fn assert_same_decision(
    ns: &TestNamespace,
    name: &str,
    spec: &Value,
    policies: &[CodeBuildRunPolicy],
) -> Decision {
    assert_same_decision_via(Verb::Apply, ns, name, spec, policies)
}

/// [`assert_same_decision`], sending the run with `verb`.
#[track_caller]
fn assert_same_decision_via(
    verb: Verb,
    ns: &TestNamespace,
    name: &str,
    spec: &Value,
    policies: &[CodeBuildRunPolicy],
) -> Decision {
    let decision = decide(ns, spec, policies);
    let result = submit(ns, name, spec, verb);
    match (&decision, result) {
        (Decision::Allowed { .. }, Ok(())) => {}
        (Decision::Allowed { policy, .. }, Err(text)) => {
            panic!("{name}: allowed by {policy} but kubectl apply was refused:\n{text}")
        }
        (Decision::Denied { message }, Ok(())) => {
            panic!("{name}: denied ({message}) but kubectl apply was accepted")
        }
        (Decision::Denied { message }, Err(text)) => {
            assert_eq!(
                refusal(&text).as_deref(),
                Some(message.as_str()),
                "{name}: kubectl said:\n{text}"
            );
        }
    }
    decision
}

#[track_caller]
fn denied(decision: &Decision) -> &str {
    match decision {
        Decision::Denied { message } => message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// Polls a server-side dry run of `spec` until the admission outcome is `want` (Ok: accepted;
/// Err(message): refused with that message).
fn wait_for_outcome(ns: &TestNamespace, spec: &Value, want: Result<(), String>) {
    let deadline = std::time::Instant::now() + EFFECT_TIMEOUT;
    loop {
        let got =
            submit(ns, "probe", spec, Verb::DryRun).map_err(|text| refusal(&text).unwrap_or(text));
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "admission did not answer {want:?} in {} within {EFFECT_TIMEOUT:?}; last: {got:?}",
            ns.name()
        );
        std::thread::sleep(POLL);
    }
}

// ---- tests -------------------------------------------------------------------------------

#[tokio::test]
async fn admission_refuses_what_the_controller_refuses_with_the_same_message() {
    install_policy_crd();
    let client = support::client().await;
    let id = random_suffix(6);
    let ns_a = namespace("adm-a", &id, &["team=a"]);
    // team=b and frozen: the images policy's DoesNotExist keeps it out (until changed).
    let ns_b = namespace("adm-b", &id, &["team=b", "frozen=true"]);
    let mut guard = ClusterScoped { objects: vec![] };
    let vap_name = format!("cbr-admission-{id}");

    let strict = format!("adm-{id}-a-strict");
    let images = format!("adm-{id}-b-images");
    let shared = format!("adm-{id}-c-shared");
    let mut policies = vec![
        policy(
            &strict,
            json!({
                "namespaceSelector": {
                    "matchLabels": {RUN_LABEL: id},
                    "matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}],
                },
                // A pattern that needs escaping twice: for the regex and for CEL.
                "projects": ["team-a-*", "we\"ird\\proj*"],
                "regions": ["us-*"],
                "overrides": {
                    "allowed": [
                        "sourceVersion", "imageOverride", "serviceRoleOverride",
                        "sourceLocationOverride", "secondarySourcesOverride",
                        "environmentVariablesOverride",
                    ],
                    "denied": ["environmentVariablesOverride"],
                    "images": ["aws/codebuild/standard:*"],
                    "serviceRoles": ["arn:aws:iam::123456789012:role/ci-*"],
                    "sourceLocations": ["https://github.com/org-a/*"],
                },
            }),
        ),
        policy(
            &images,
            json!({
                "namespaceSelector": {
                    "matchLabels": {RUN_LABEL: id},
                    "matchExpressions": [
                        {"key": "team", "operator": "Exists"},
                        {"key": "frozen", "operator": "DoesNotExist"},
                        {"key": "tier", "operator": "NotIn", "values": ["legacy"]},
                    ],
                },
                "projects": ["team-a-web"],
                "overrides": {
                    "allowed": ["imageOverride"],
                    "images": ["custom/*", "quo\"te\\back*"],
                },
            }),
        ),
        policy(
            &shared,
            json!({
                "namespaceSelector": {"matchLabels": {RUN_LABEL: id, "team": "a"}},
                "projects": ["shared-*"],
                "regions": ["eu-*"],
            }),
        ),
    ];
    let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
    let names: Vec<String> = vec![strict.clone(), images.clone(), shared.clone()];
    for p in &policies {
        guard.add("codebuildrunpolicy", p.metadata.name.as_deref().unwrap());
        api.create(&PostParams::default(), p)
            .await
            .expect("creating a policy");
    }
    policies = read_back(&api, &names).await;

    guard.add("validatingadmissionpolicy", &vap_name);
    render_and_apply(&client, &vap_name, &policies).await;
    // Applying the same rendering again writes nothing.
    let vaps: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let before = vaps.get(&vap_name).await.unwrap().metadata.resource_version;
    render_and_apply(&client, &vap_name, &policies).await;
    let after = vaps.get(&vap_name).await.unwrap().metadata.resource_version;
    assert_eq!(before, after, "an unchanged rendering must not be written");
    bind(&mut guard, &vap_name, &id);

    let plain = json!({"projectName": "team-a-web"});
    wait_for_outcome(
        &ns_b,
        &plain,
        Err(denied(&decide(&ns_b, &plain, &policies)).to_owned()),
    );

    // Accepted.
    let allowed_cases = [
        ("plain", json!({"projectName": "team-a-api"})),
        (
            "every-value-allowed",
            json!({
                "projectName": "team-a-api",
                "sourceVersion": "main",
                "imageOverride": "aws/codebuild/standard:7.0",
                "serviceRoleOverride": "arn:aws:iam::123456789012:role/ci-web",
                "sourceLocationOverride": "https://github.com/org-a/web",
                "secondarySourcesOverride": [
                    {"type": "GITHUB", "location": "https://github.com/org-a/lib"},
                    {"type": "NO_SOURCE", "sourceIdentifier": "none"},
                ],
                "operator": {"region": "us-west-2", "onDelete": "LeaveRunning"},
                "idempotencyToken": "t-1",
            }),
        ),
        (
            "escaped-project",
            json!({"projectName": "we\"ird\\project"}),
        ),
        (
            // a-strict refuses the image, b-images allows it: policies add up.
            "policies-add-up",
            json!({"projectName": "team-a-web", "imageOverride": "custom/tool:1"}),
        ),
        (
            // Only b-images covers eu-west-1.
            "other-region",
            json!({
                "projectName": "team-a-web",
                "imageOverride": "quo\"te\\backslash",
                "operator": {"region": "eu-west-1"},
            }),
        ),
        (
            "shared-project",
            json!({"projectName": "shared-cache", "operator": {"region": "eu-central-1"}}),
        ),
    ];
    for (name, spec) in &allowed_cases {
        let decision = assert_same_decision(&ns_a, name, spec, &policies);
        assert!(
            matches!(decision, Decision::Allowed { .. }),
            "{name}: {decision:?}"
        );
    }

    // Members set to null are unset for both (`kubectl create` sends the nulls; the CRD
    // keeps them, as the members are nullable).
    let nulls = json!({
        "projectName": "team-a-api",
        "buildspecOverride": null,
        "imageOverride": null,
        "operator": {"region": null},
    });
    let decision = assert_same_decision_via(Verb::Create, &ns_a, "null-members", &nulls, &policies);
    assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");
    let stored = kubectl_ok(&["get", "cbr/null-members", "-n", ns_a.name(), "-o", "json"]);
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert!(
        stored["spec"]
            .as_object()
            .unwrap()
            .contains_key("buildspecOverride"),
        "the null should reach the apiserver: {stored}"
    );

    // Refused, each with the controller's message (and a part of it checked here, so each
    // case is the refusal it claims to be).
    let refused_cases: Vec<(&str, &TestNamespace, Value, String)> = vec![
        (
            "no-policy-for-namespace",
            &ns_b,
            json!({"projectName": "team-a-web"}),
            evaluate::no_policy_for_namespace(ns_b.name()),
        ),
        (
            "project-not-covered",
            &ns_a,
            json!({"projectName": "team-z-web"}),
            format!("(policies for this namespace: {strict}, {images}, {shared})"),
        ),
        (
            "region-not-covered",
            &ns_a,
            json!({"projectName": "team-a-api", "operator": {"region": "eu-west-1"}}),
            "start project \"team-a-api\" in region \"eu-west-1\"".to_owned(),
        ),
        (
            "member-not-allowed",
            &ns_a,
            json!({"projectName": "team-a-api", "buildspecOverride": "version: 0.2"}),
            evaluate::member_not_allowed(&strict, "buildspecOverride"),
        ),
        (
            "member-denied",
            &ns_a,
            json!({
                "projectName": "team-a-api",
                "environmentVariablesOverride": [{"name": "STAGE", "value": "dev"}],
            }),
            evaluate::member_not_allowed(&strict, "environmentVariablesOverride"),
        ),
        (
            "image-refused",
            &ns_a,
            json!({"projectName": "team-a-api", "imageOverride": "evil/miner:latest"}),
            "does not allow imageOverride \"evil/miner:latest\" (allowed: aws/codebuild/standard:*)"
                .to_owned(),
        ),
        (
            "service-role-refused",
            &ns_a,
            json!({
                "projectName": "team-a-api",
                "serviceRoleOverride": "arn:aws:iam::123456789012:role/admin",
            }),
            "does not allow serviceRoleOverride \"arn:aws:iam::123456789012:role/admin\"".to_owned(),
        ),
        (
            "source-location-refused",
            &ns_a,
            json!({
                "projectName": "team-a-api",
                "sourceLocationOverride": "https://github.com/evil/x",
            }),
            "does not allow sourceLocationOverride \"https://github.com/evil/x\"".to_owned(),
        ),
        (
            "secondary-source-refused",
            &ns_a,
            json!({
                "projectName": "team-a-api",
                "secondarySourcesOverride": [
                    {"type": "GITHUB", "location": "https://github.com/org-a/ok"},
                    {"type": "NO_SOURCE"},
                    {"type": "GITHUB", "location": "https://evil.example/first"},
                    {"type": "GITHUB", "location": "https://evil.example/second"},
                ],
            }),
            "does not allow secondarySourcesOverride \"https://evil.example/first\" (allowed: \
             https://github.com/org-a/*)"
                .to_owned(),
        ),
        (
            "several-gaps-in-member-order",
            &ns_a,
            json!({
                "projectName": "team-a-api",
                "sourceVersion": "main",
                "imageOverride": "evil/miner:latest",
                "buildspecOverride": "x",
                "privilegedModeOverride": true,
            }),
            format!(
                "{}; policy \"{strict}\" does not allow imageOverride",
                evaluate::member_not_allowed(&strict, "buildspecOverride")
            ),
        ),
        (
            // Both cover the project: the gaps of each, in policy order.
            "several-policies-refuse",
            &ns_a,
            json!({
                "projectName": "team-a-web",
                "imageOverride": "custom/tool:1",
                "sourceVersion": "main",
            }),
            format!(
                "policy \"{strict}\" does not allow imageOverride \"custom/tool:1\" (allowed: \
                 aws/codebuild/standard:*); {}",
                evaluate::member_not_allowed(&images, "sourceVersion")
            ),
        ),
        (
            "escaped-patterns-in-message",
            &ns_a,
            json!({
                "projectName": "team-a-web",
                "imageOverride": "evil\"\\x",
                "operator": {"region": "eu-west-1"},
            }),
            "(allowed: custom/*, quo\"te\\back*)".to_owned(),
        ),
    ];
    for (name, ns, spec, part) in &refused_cases {
        let decision = assert_same_decision(ns, name, spec, &policies);
        let message = denied(&decision);
        assert!(message.contains(part.as_str()), "{name}: {message}");
    }

    // Where the apiserver cannot show the computed message (it holds a line break, or is
    // longer than 5 KiB), it shows the static one; the decision is still the same.
    let newline = json!({"projectName": "team-a-api", "imageOverride": "evil\nimage"});
    assert!(denied(&decide(&ns_a, &newline, &policies)).contains('\n'));
    let text = submit(&ns_a, "newline", &newline, Verb::Apply).expect_err("a refused image");
    assert_eq!(
        refusal(&text).as_deref(),
        Some(admission::FALLBACK_MESSAGE),
        "{text}"
    );

    // A policy changes: the re-rendered admission policy lets the refused run in.
    let refused_before = json!({"projectName": "team-a-web"});
    assert!(matches!(
        decide(&ns_b, &refused_before, &policies),
        Decision::Denied { .. }
    ));
    let patch = json!({"spec": {"namespaceSelector": {
        "matchLabels": {RUN_LABEL: id},
        "matchExpressions": [{"key": "team", "operator": "Exists"}],
    }}});
    api.patch(&images, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("changing a policy");
    policies = read_back(&api, &names).await;
    render_and_apply(&client, &vap_name, &policies).await;
    wait_for_outcome(&ns_b, &refused_before, Ok(()));
    let decision = assert_same_decision(&ns_b, "allowed-after-change", &refused_before, &policies);
    assert!(
        matches!(&decision, Decision::Allowed { policy, .. } if *policy == images),
        "{decision:?}"
    );

    // A run allowed before the change is not refused by updates after it: the operator's
    // finalizer patch, a label, a stop, a re-apply; only new runs are.
    let earlier = "policies-add-up";
    let earlier_spec = &allowed_cases.iter().find(|(n, _)| *n == earlier).unwrap().1;
    let patch = json!({"spec": {"overrides": {"images": ["other/*"]}}});
    api.patch(&images, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("tightening a policy");
    policies = read_back(&api, &names).await;
    render_and_apply(&client, &vap_name, &policies).await;
    let now_refused = denied(&decide(&ns_a, earlier_spec, &policies)).to_owned();
    wait_for_outcome(&ns_a, earlier_spec, Err(now_refused));
    let run = format!("cbr/{earlier}");
    for patch in [
        json!({"metadata": {"finalizers": ["codebuild.operator.dev/build"]}}),
        json!({"metadata": {"labels": {"touched": "yes"}}}),
        json!({"spec": {"operator": {"stop": true, "onDelete": "LeaveRunning"}}}),
    ] {
        kubectl_ok(&[
            "patch",
            &run,
            "-n",
            ns_a.name(),
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }
    // The status subresource is never checked.
    kubectl_ok(&[
        "patch",
        &run,
        "-n",
        ns_a.name(),
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"buildStatus":"IN_PROGRESS"}}"#,
    ]);
    let reapplied = json!({
        "projectName": "team-a-web",
        "imageOverride": "custom/tool:1",
        "operator": {"stop": true, "onDelete": "LeaveRunning"},
    });
    submit(&ns_a, earlier, &reapplied, Verb::Apply).expect("re-applying an admitted run");
    // An UPDATE that changes the StartBuild request is still refused (by the CRD's own
    // immutability rules, before admission).
    let changed = json!({"projectName": "team-a-web", "imageOverride": "custom/tool:2"});
    let text = submit(&ns_a, earlier, &changed, Verb::Apply).expect_err("changing an admitted run");
    assert!(text.contains("cannot change after creation"), "{text}");

    drop(guard);
}

#[tokio::test]
async fn without_policies_every_run_is_refused() {
    install_policy_crd();
    let client = support::client().await;
    let id = random_suffix(6);
    let ns = namespace("adm-none", &id, &[]);
    let mut guard = ClusterScoped { objects: vec![] };
    let vap_name = format!("cbr-admission-{id}");
    guard.add("validatingadmissionpolicy", &vap_name);
    render_and_apply(&client, &vap_name, &[]).await;
    bind(&mut guard, &vap_name, &id);

    let spec = json!({"projectName": "anything", "operator": {"region": "eu-west-1"}});
    let expected = denied(&decide(&ns, &spec, &[])).to_owned();
    assert_eq!(expected, evaluate::no_policy_for_namespace(ns.name()));
    wait_for_outcome(&ns, &spec, Err(expected));
    assert_same_decision(&ns, "refused", &spec, &[]);
    let names = kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "name"]);
    assert!(names.trim().is_empty(), "{names}");
}

/// Nobody plants a start attempt: the annotation earlier operator versions wrote is refused
/// on create and on update, whoever sends it, while everything else about the run passes.
#[tokio::test]
async fn the_start_attempt_annotation_is_refused_on_create_and_update() {
    install_policy_crd();
    let client = support::client().await;
    let id = random_suffix(6);
    let ns = namespace("adm-forged", &id, &["team=a"]);
    let mut guard = ClusterScoped { objects: vec![] };
    let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
    let policy_name = format!("adm-forged-{id}");
    guard.add("codebuildrunpolicy", &policy_name);
    let policy = policy(
        &policy_name,
        json!({"namespaceSelector": {"matchLabels": {RUN_LABEL: id, "team": "a"}},
               "projects": ["allowed"]}),
    );
    api.create(&PostParams::default(), &policy)
        .await
        .expect("creating the policy");
    let policies = read_back(&api, std::slice::from_ref(&policy_name)).await;
    let vap_name = format!("cbr-admission-{id}");
    guard.add("validatingadmissionpolicy", &vap_name);
    render_and_apply(&client, &vap_name, &policies).await;
    bind(&mut guard, &vap_name, &id);
    // The binding is in effect once a refused run is refused.
    let forbidden = json!({"projectName": "forbidden"});
    let refused = denied(&decide(&ns, &forbidden, &policies)).to_owned();
    wait_for_outcome(&ns, &forbidden, Err(refused));
    let allowed = json!({"projectName": "allowed"});
    wait_for_outcome(&ns, &allowed, Ok(()));

    let forged = |name: &str| {
        json!({
            "apiVersion": API_VERSION, "kind": "CodeBuildRun",
            "metadata": {"name": name, "annotations": {
                "codebuild.operator.dev/start-attempt":
                    r#"{"idempotencyToken":"forged-1","time":"2020-01-01T00:00:00Z","region":"us-east-1"}"#}},
            "spec": allowed,
        })
        .to_string()
    };
    for verb in ["create", "apply"] {
        let out = kubectl_stdin(&[verb, "-n", ns.name(), "-f", "-"], &forged("forged"));
        assert!(!out.status.success(), "{verb} accepted a forged attempt");
        assert_eq!(
            refusal(&output_text(&out)).as_deref(),
            Some(admission::ANNOTATION_MESSAGE),
            "{}",
            output_text(&out)
        );
    }
    // Added later to an allowed run: refused too, while other edits pass.
    submit(&ns, "plain", &allowed, Verb::Create).expect("an allowed run is created");
    let annotate = |value: &str| {
        kubectl(&[
            "annotate",
            "-n",
            ns.name(),
            "cbr/plain",
            &format!("codebuild.operator.dev/start-attempt={value}"),
        ])
    };
    let out = annotate(r#"{"idempotencyToken":"x"}"#);
    assert!(!out.status.success(), "annotate accepted a forged attempt");
    assert_eq!(
        refusal(&output_text(&out)).as_deref(),
        Some(admission::ANNOTATION_MESSAGE)
    );
    kubectl_ok(&["label", "-n", ns.name(), "cbr/plain", "edited=yes"]);
}

// ---- every value rule --------------------------------------------------------------------

/// Every value rule, at `kubectl apply` and in the library, on the same runs: what it allows
/// is accepted, what it refuses is refused with the library's message, nulls included.
#[tokio::test]
async fn every_value_rule_is_decided_alike_at_kubectl_apply() {
    install_policy_crd();
    let client = support::client().await;
    let id = random_suffix(6);
    let ns = namespace("adm-rules", &id, &[]);
    let mut guard = ClusterScoped { objects: vec![] };
    let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
    let name = format!("adm-rules-{id}");
    guard.add("codebuildrunpolicy", &name);
    api.create(
        &PostParams::default(),
        &policy(
            &name,
            every_rule_spec(json!({"matchLabels": {RUN_LABEL: id}}), json!(["app"])),
        ),
    )
    .await
    .expect("creating the policy");
    let policies = read_back(&api, std::slice::from_ref(&name)).await;
    let vap_name = format!("cbr-admission-{id}");
    guard.add("validatingadmissionpolicy", &vap_name);
    render_and_apply(&client, &vap_name, &policies).await;
    bind(&mut guard, &vap_name, &id);
    let refused = project_with("app", json!({"privilegedModeOverride": true}));
    wait_for_outcome(
        &ns,
        &refused,
        Err(denied(&decide(&ns, &refused, &policies)).to_owned()),
    );

    let decision =
        assert_same_decision(&ns, "every-member", &every_member_allowed("app"), &policies);
    assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");
    // Nulls inside members (kubectl create sends them): unset for both.
    let nulls = project_with(
        "app",
        json!({
            "artifactsOverride": {"type": "S3", "location": "team-a-artifacts", "path": null},
            "cacheOverride": {"type": "LOCAL", "location": null, "modes": ["LOCAL_SOURCE_CACHE"]},
            "logsConfigOverride": {"cloudWatchLogs": {"status": "ENABLED", "groupName": null}, "s3Logs": null},
            "fleetOverride": {"fleetArn": null},
            "sourceAuthOverride": {"type": "OAUTH", "resource": null},
            "environmentVariablesOverride": [{"name": "STAGE", "value": "x"}],
            "secondarySourcesOverride": [{"type": "GITHUB", "location": null, "auth": null}],
        }),
    );
    let decision = assert_same_decision_via(Verb::Create, &ns, "nulls", &nulls, &policies);
    assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");
    // An S3 artifact whose location is null names the empty bucket, for both.
    let null_bucket = project_with(
        "app",
        json!({"artifactsOverride": {"type": "S3", "location": null, "path": "p"}}),
    );
    let decision =
        assert_same_decision_via(Verb::Create, &ns, "null-bucket", &null_bucket, &policies);
    assert!(
        denied(&decision).contains("artifactsOverride location \"/p/\""),
        "{decision:?}"
    );

    for (case, overrides, part) in every_rule_refusals(&name) {
        let decision = assert_same_decision(&ns, case, &project_with("app", overrides), &policies);
        assert!(
            denied(&decision).contains(part.as_str()),
            "{case}: {decision:?}"
        );
    }
    // Several members refused: one gap each, in member order, as the library says.
    let several = project_with(
        "app",
        json!({
            "timeoutInMinutesOverride": 600,
            "environmentVariablesOverride": [{"name": "BASH_ENV", "value": "x", "type": "SECRETS_MANAGER"}],
            "cacheOverride": {"type": "S3", "location": "elsewhere"},
        }),
    );
    let decision = assert_same_decision(&ns, "several", &several, &policies);
    let message = denied(&decision);
    let cache = message.find("cacheOverride").unwrap();
    let variables = message
        .find("environmentVariablesOverride name \"BASH_ENV\"")
        .unwrap();
    let timeout = message.find("timeoutInMinutesOverride 600").unwrap();
    assert!(cache < variables && variables < timeout, "{message}");

    // Variable types: PLAINTEXT only refuses the references, whatever their names.
    let plain = format!("adm-rules-{id}-plain");
    let ns_plain = namespace("adm-plain", &id, &["plain=yes"]);
    guard.add("codebuildrunpolicy", &plain);
    api.create(&PostParams::default(), &policy(&plain, json!({
        "namespaceSelector": {"matchLabels": {RUN_LABEL: id, "plain": "yes"}},
        "projects": ["plain"],
        "overrides": {"allowed": ["environmentVariablesOverride"], "environmentVariableTypes": ["PLAINTEXT"]},
    })))
    .await
    .expect("creating the PLAINTEXT policy");
    let policies = read_back(&api, &[name.clone(), plain.clone()]).await;
    render_and_apply(&client, &vap_name, &policies).await;
    let secret = json!({"projectName": "plain", "environmentVariablesOverride": [
        {"name": "A", "value": "1"}, {"name": "B", "value": "team-b/x:y::", "type": "SECRETS_MANAGER"}]});
    let expected = denied(&decide(&ns_plain, &secret, &policies)).to_owned();
    assert!(
        expected.ends_with(&format!(
            "policy \"{plain}\" does not allow environmentVariablesOverride type \"SECRETS_MANAGER\" (allowed: PLAINTEXT)"
        )),
        "{expected}"
    );
    wait_for_outcome(&ns_plain, &secret, Err(expected));
    let ok = json!({"projectName": "plain", "environmentVariablesOverride": [
        {"name": "ANY_NAME", "value": "1"}, {"name": "B", "value": "2", "type": "PLAINTEXT"}]});
    let decision = assert_same_decision(&ns_plain, "plaintext", &ok, &policies);
    assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");
    drop(guard);
}

// ---- the CEL cost budget -----------------------------------------------------------------

/// The runtime CEL cost budget of one admission request under one binding
/// (`RuntimeCELCostBudget`, k8s.io/apiserver/pkg/apis/cel/config.go): validations, their
/// messages and the variables they read, together. Over it, the apiserver refuses the
/// request ("running out of cost budget"), whatever the policies say.
const CEL_BUDGET: u64 = 10_000_000;
/// How many policies the measurement renders.
const MEASURED_POLICIES: usize = 20;
/// Burner iterations per burner validation (each stays under the per-expression limit).
const BURN_PER_VALIDATION: u64 = 1_000;
/// The most burner iterations a probe uses (far above what the budget allows).
const BURN_MAX: u64 = 60_000;
/// The binary search stops when the bounds are this close (about 0.3 % of the budget).
const BURN_RESOLUTION: u64 = 100;

/// A glob rule's patterns, and values that match them: `<prefix><team>-<k>-...`.
const GLOB_RULES: &[(&str, &str)] = &[
    ("serviceRoles", "arn:aws:iam::111111111111:role/"),
    ("images", "111111111111.dkr.ecr.us-east-1.amazonaws.com/"),
    ("sourceLocations", "https://github.com/example-org/"),
    (
        "sourceAuthResources",
        "arn:aws:codeconnections:us-east-1:111111111111:connection/",
    ),
    ("environmentVariableNames", "APP_"),
    ("parameterNames", "/params/"),
    ("secrets", "secrets/"),
    ("artifactLocations", "artifacts/"),
    ("cacheLocations", "cache/"),
    ("logGroups", "/codebuild/"),
    ("logLocations", "logs/"),
    (
        "registryCredentials",
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:registry/",
    ),
    ("certificates", "certs/"),
    (
        "encryptionKeys",
        "arn:aws:kms:us-east-1:111111111111:alias/",
    ),
    ("fleets", "arn:aws:codebuild:us-east-1:111111111111:fleet/"),
];

/// The prefix of a glob rule in [`GLOB_RULES`].
fn prefix(rule: &str) -> &'static str {
    GLOB_RULES.iter().find(|(r, _)| *r == rule).unwrap().1
}

/// A value of `rule` that its patterns allow (`ok`) or refuse, 60 to 100 characters long.
fn value(rule: &str, ok: bool, n: usize) -> String {
    let team = if ok { "team-c" } else { "team-x" };
    format!(
        "{}{team}-{n:02}-a-long-enough-name-for-a-realistic-value",
        prefix(rule)
    )
}

/// Policy `i` of the measurement: every rule, three patterns each, every member allowed.
/// Every policy but the last caps builds at 30 minutes, the last at 60.
fn measured_policy(id: &str, i: usize) -> CodeBuildRunPolicy {
    let mut overrides = json!({
        "allowed": ["*"],
        "environmentVariableTypes": ["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"],
        "computeTypes": ["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM"],
        "environmentTypes": ["LINUX_CONTAINER", "ARM_CONTAINER"],
        "maxTimeoutInMinutes": if i + 1 == MEASURED_POLICIES { 60 } else { 30 },
        "maxQueuedTimeoutInMinutes": 60,
        "maxAutoRetryLimit": 1,
        "privilegedMode": false,
        "debugSessions": false,
    });
    for (rule, prefix) in GLOB_RULES {
        let patterns: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|k| format!("{prefix}team-{k}-*"))
            .collect();
        overrides[*rule] = json!(patterns);
    }
    policy(
        &format!("cost-{id}-{i:02}"),
        json!({
            "namespaceSelector": {"matchLabels": {RUN_LABEL: id}},
            "projects": ["app", "app-*", "arn:aws:codebuild:us-east-1:111111111111:project/app*"],
            "regions": ["us-east-1", "eu-*"],
            "overrides": overrides,
        }),
    )
}

/// A run that sets every member, with the longest lists (12 secondary sources and
/// artifacts, 30 variables). `ok`: every value allowed, the build 60 minutes long (so only
/// the last policy allows it, and every policy's checks read every value). Not `ok`: every
/// list refused only at its last item by the last rule of its member, every other member
/// refused too, by every policy (the most checks and the longest messages).
fn measured_run(ok: bool) -> Value {
    let v = |rule: &str, n: usize| value(rule, ok, n);
    let good = |rule: &str, n: usize| value(rule, true, n);
    let last_bad = |rule: &str, n: usize, of: usize| value(rule, ok || n + 1 < of, n);
    let mut variables = Vec::new();
    for n in 0..30 {
        let (t, value) = match n % 3 {
            0 => ("PLAINTEXT", "plain".to_owned()),
            1 => ("PARAMETER_STORE", good("parameterNames", n)),
            _ => (
                "SECRETS_MANAGER",
                format!("{}:password::", last_bad("secrets", n, 30)),
            ),
        };
        variables
            .push(json!({"name": good("environmentVariableNames", n), "value": value, "type": t}));
    }
    let sources: Vec<Value> = (0..12)
        .map(|n| json!({"type": "GITHUB", "sourceIdentifier": format!("s{n}"),
            "location": good("sourceLocations", n),
            "auth": {"type": "CODECONNECTIONS", "resource": last_bad("sourceAuthResources", n, 12)}}))
        .collect();
    let artifacts: Vec<Value> = (0..12)
        .map(|n| {
            let subject = last_bad("artifactLocations", n, 12);
            let (bucket, path) = subject.split_once('/').unwrap();
            json!({"type": "S3", "location": bucket, "path": path, "artifactIdentifier": format!("a{n}")})
        })
        .collect();
    let artifact = v("artifactLocations", 0);
    let (bucket, path) = artifact.split_once('/').unwrap();
    json!({
        "projectName": "app",
        "sourceVersion": "refs/heads/main",
        "serviceRoleOverride": v("serviceRoles", 0),
        "imageOverride": v("images", 0),
        "sourceLocationOverride": v("sourceLocations", 0),
        "sourceAuthOverride": {"type": "CODECONNECTIONS", "resource": v("sourceAuthResources", 0)},
        "secondarySourcesOverride": sources,
        "environmentVariablesOverride": variables,
        "artifactsOverride": {"type": "S3", "location": bucket, "path": path},
        "secondaryArtifactsOverride": artifacts,
        "cacheOverride": {"type": "S3", "location": v("cacheLocations", 0)},
        "logsConfigOverride": {
            "cloudWatchLogs": {"status": "ENABLED", "groupName": good("logGroups", 0)},
            "s3Logs": {"status": "ENABLED", "location": v("logLocations", 0)},
        },
        "registryCredentialOverride": {"credential": v("registryCredentials", 0), "credentialProvider": "SECRETS_MANAGER"},
        "certificateOverride": v("certificates", 0),
        "encryptionKeyOverride": v("encryptionKeys", 0),
        "fleetOverride": {"fleetArn": v("fleets", 0)},
        "computeTypeOverride": if ok { "BUILD_GENERAL1_MEDIUM" } else { "BUILD_GENERAL1_2XLARGE" },
        "environmentTypeOverride": if ok { "ARM_CONTAINER" } else { "LINUX_GPU_CONTAINER" },
        "timeoutInMinutesOverride": if ok { 60 } else { 600 },
        "queuedTimeoutInMinutesOverride": if ok { 60 } else { 480 },
        "autoRetryLimitOverride": if ok { 1 } else { 10 },
        "privilegedModeOverride": !ok,
        "debugSessionEnabled": !ok,
    })
}

/// `base` (its validations and variables, or none) plus a first validation that refuses
/// only the run `sync-<sync>` (so a probe knows this version is in effect) and validations
/// that spend about `burn` × 100 CEL iterations on the run named `measure` only.
fn with_burner(
    base: &ValidatingAdmissionPolicy,
    keep_rules: bool,
    burn: u64,
    sync: u32,
) -> ValidatingAdmissionPolicy {
    use k8s_openapi::api::admissionregistration::v1::{Validation, Variable};
    let mut vap = base.clone();
    let spec = vap.spec.as_mut().unwrap();
    let mut variables = if keep_rules {
        spec.variables.take().unwrap_or_default()
    } else {
        vec![]
    };
    let list = |n: u64| {
        format!(
            "[{}]",
            (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        )
    };
    variables.push(Variable {
        name: "burnOuter".into(),
        expression: list(BURN_PER_VALIDATION),
    });
    variables.push(Variable {
        name: "burnInner".into(),
        expression: list(100),
    });
    let mut validations = vec![Validation {
        expression: format!("object.metadata.name != \"sync-{sync}\""),
        message: Some(format!("synced {sync}")),
        ..Default::default()
    }];
    if keep_rules {
        validations.extend(spec.validations.take().unwrap_or_default());
    }
    let mut left = burn;
    while left > 0 {
        let here = left.min(BURN_PER_VALIDATION);
        validations.push(Validation {
            expression: format!(
                "object.metadata.name != \"measure\" || variables.burnOuter.all(i, i >= {here} || \
                 variables.burnInner.all(j, true))"
            ),
            message: Some("burner".into()),
            ..Default::default()
        });
        left -= here;
    }
    spec.variables = Some(variables);
    spec.validations = Some(validations);
    vap
}

/// How the apiserver answered the measured run.
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted,
    Refused(String),
    OutOfBudget(String),
}

/// Applies `vap`, waits until the apiserver uses it, and sends the run `measure`.
async fn probe(
    client: &kube::Client,
    ns: &TestNamespace,
    vap: &ValidatingAdmissionPolicy,
    sync: u32,
    spec: &Value,
) -> Outcome {
    admission::apply(client, vap)
        .await
        .expect("applying the measured admission policy");
    let deadline = std::time::Instant::now() + EFFECT_TIMEOUT;
    loop {
        let text = submit(
            ns,
            &format!("sync-{sync}"),
            &json!({"projectName": "app"}),
            Verb::DryRun,
        )
        .err()
        .unwrap_or_default();
        if refusal(&text).as_deref() == Some(format!("synced {sync}").as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sync {sync} never took effect: {text}"
        );
        std::thread::sleep(POLL);
    }
    match submit(ns, "measure", spec, Verb::DryRun) {
        Ok(()) => Outcome::Accepted,
        Err(text) if text.contains("cost budget") || text.contains("cost limit") => {
            Outcome::OutOfBudget(text)
        }
        Err(text) => Outcome::Refused(refusal(&text).unwrap_or(text)),
    }
}

/// The most burner iterations (in [`BURN_RESOLUTION`]) the budget leaves beside `base`
/// (with `keep_rules`, its rules) for the run `spec`, whose answer within the budget must be
/// `expected`.
#[allow(clippy::too_many_arguments)]
async fn headroom(
    client: &kube::Client,
    ns: &TestNamespace,
    base: &ValidatingAdmissionPolicy,
    keep_rules: bool,
    spec: &Value,
    expected: &Outcome,
    sync: &mut u32,
) -> u64 {
    let mut run = |burn: u64| {
        *sync += 1;
        let vap = with_burner(base, keep_rules, burn, *sync);
        let sync = *sync;
        async move { probe(client, ns, &vap, sync, spec).await }
    };
    let first = run(0).await;
    assert_eq!(&first, expected, "the rendered policy alone");
    let last = run(BURN_MAX).await;
    assert!(
        matches!(last, Outcome::OutOfBudget(_)),
        "the burner is too small: {last:?}"
    );
    let (mut lo, mut hi) = (0, BURN_MAX);
    while hi - lo > BURN_RESOLUTION {
        let mid = (lo + hi) / 2;
        match run(mid).await {
            Outcome::OutOfBudget(_) => hi = mid,
            other => {
                assert_eq!(&other, expected, "with {mid} burner iterations");
                lo = mid;
            }
        }
    }
    lo
}

/// The admission policy rendered from 20 policies with every rule stays within the
/// apiserver's CEL budget for the most expensive runs we can make, measured on the
/// apiserver itself: a burner of known size is grown until the budget runs out, once
/// alone (calibration) and once beside the rendered rules; the difference is their cost.
#[tokio::test]
async fn twenty_policies_of_every_rule_stay_within_the_cel_budget() {
    install_policy_crd();
    let client = support::client().await;
    let id = random_suffix(6);
    let ns = namespace("adm-cost", &id, &[]);
    let mut guard = ClusterScoped { objects: vec![] };
    let vap_name = format!("cbr-cost-{id}");
    guard.add("validatingadmissionpolicy", &vap_name);
    let policies: Vec<CodeBuildRunPolicy> = (0..MEASURED_POLICIES)
        .map(|i| measured_policy(&id, i))
        .collect();
    let refs: Vec<&CodeBuildRunPolicy> = policies.iter().collect();
    let rendered = admission::render(&vap_name, &refs, DEFAULT_REGION);
    let size = serde_json::to_string(&rendered).unwrap().len();
    bind(&mut guard, &vap_name, &id);
    let mut sync = 0;

    // What the library decides for the two runs (also checks they are what they claim).
    let refused_run = measured_run(false);
    let allowed_run = measured_run(true);
    let refused = denied(&decide(&ns, &refused_run, &policies)).to_owned();
    assert!(
        refused.contains("does not allow timeoutInMinutesOverride 600"),
        "{refused}"
    );
    let last = format!("cost-{id}-{:02}", MEASURED_POLICIES - 1);
    assert!(
        matches!(decide(&ns, &allowed_run, &policies), Decision::Allowed { policy, .. } if policy == last)
    );
    // The refusal is longer than the apiserver shows: it shows the fixed message.
    assert!(refused.len() > 5 * 1024, "{}", refused.len());
    let refused_outcome = Outcome::Refused(admission::FALLBACK_MESSAGE.to_owned());

    let calibration = headroom(
        &client,
        &ns,
        &rendered,
        false,
        &refused_run,
        &Outcome::Accepted,
        &mut sync,
    )
    .await;
    let per_iteration = CEL_BUDGET as f64 / calibration as f64;
    let mut costs = Vec::new();
    for (what, spec, expected) in [
        ("refused by every policy", &refused_run, &refused_outcome),
        (
            "allowed by the last policy only",
            &allowed_run,
            &Outcome::Accepted,
        ),
    ] {
        let left = headroom(&client, &ns, &rendered, true, spec, expected, &mut sync).await;
        let cost = (calibration - left) as f64 * per_iteration;
        println!(
            "CEL cost of {MEASURED_POLICIES} policies of every rule, run {what}: about {cost:.0} \
             of {CEL_BUDGET} ({:.1} %; ±{:.0})",
            100.0 * cost / CEL_BUDGET as f64,
            BURN_RESOLUTION as f64 * per_iteration
        );
        costs.push(cost);
    }
    println!(
        "rendered admission policy: {size} bytes of JSON, calibration {calibration} iterations"
    );
    // Room to spare: a run twice as large (or twice the policies) still fits.
    for cost in costs {
        assert!(cost < CEL_BUDGET as f64 / 2.0, "{cost}");
    }
    drop(guard);
}

/// `kubectl explain codebuildrunpolicy.spec.overrides` shows every rule with its words.
#[test]
fn kubectl_explain_documents_every_rule() {
    install_policy_crd();
    let crd: Value = serde_json::to_value(codebuild_operator::crd::policy_crd()).unwrap();
    let fields =
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["overrides"]["properties"]
            .as_object()
            .unwrap()
            .clone();
    let deadline = std::time::Instant::now() + EFFECT_TIMEOUT;
    let text = loop {
        let out = kubectl(&["explain", "codebuildrunpolicy.spec.overrides"]);
        let text = output_text(&out);
        // The apiserver publishes a new CRD's schema within a few seconds.
        if out.status.success() && text.contains("maxAutoRetryLimit") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(POLL);
    };
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let shown = words(&text);
    for c in codebuild_operator::policy::rules::CONSTRAINTS {
        assert!(
            shown.contains(&format!("{} <", c.rule())),
            "{}: {text}",
            c.rule()
        );
        let description = fields[c.rule()]["description"].as_str().unwrap();
        // The first sentence, as kubectl wraps it.
        let first = words(description.split(". ").next().unwrap());
        assert!(shown.contains(&first), "{}: {first}\n{text}", c.rule());
    }
}

// ---- batch runs --------------------------------------------------------------------------

/// What the controller decides for the batch run `spec` in `ns` with `policies`.
fn decide_batch(ns: &TestNamespace, spec: &Value, policies: &[CodeBuildRunPolicy]) -> Decision {
    let parsed: CodeBuildBatchRunSpec =
        serde_json::from_value(spec.clone()).unwrap_or_else(|e| panic!("spec {spec}: {e}"));
    let region = parsed
        .options()
        .region
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let refs: Vec<&CodeBuildRunPolicy> = policies.iter().collect();
    let request = RunRequest {
        namespace: ns.name(),
        region: &region,
        spec: &parsed,
    };
    evaluate(&request, &namespace_labels(ns), &refs)
}

/// Asserts that `kubectl create` of the batch run `spec` gets the controller's decision.
#[track_caller]
fn assert_same_batch_decision(
    ns: &TestNamespace,
    name: &str,
    spec: &Value,
    policies: &[CodeBuildRunPolicy],
) -> Decision {
    let decision = decide_batch(ns, spec, policies);
    let manifest = support::batch_world::batch_manifest(name, spec.clone());
    let out = kubectl_stdin(&["create", "-n", ns.name(), "-f", "-"], &manifest);
    match (&decision, out.status.success()) {
        (Decision::Allowed { .. }, true) => {}
        (Decision::Allowed { policy, .. }, false) => panic!(
            "{name}: allowed by {policy} but kubectl create was refused:\n{}",
            output_text(&out)
        ),
        (Decision::Denied { message }, true) => {
            panic!("{name}: denied ({message}) but kubectl create was accepted")
        }
        (Decision::Denied { message }, false) => assert_eq!(
            refusal(&output_text(&out)).as_deref(),
            Some(message.as_str()),
            "{name}: kubectl said:\n{}",
            output_text(&out)
        ),
    }
    decision
}

/// The members of `spec` StartBuildBatch has (a run's spec as a batch run's).
fn batch_members(spec: Value) -> Value {
    let schema = schemars::schema_for!(CodeBuildBatchRunSpec);
    let members = schema
        .get("properties")
        .and_then(Value::as_object)
        .expect("batch spec properties")
        .clone();
    let mut spec = spec;
    spec.as_object_mut()
        .unwrap()
        .retain(|m, _| members.contains_key(m));
    spec
}

#[tokio::test]
async fn batch_runs_are_decided_alike_at_kubectl_apply() {
    install_policy_crd();
    let client = support::client().await;
    let id = random_suffix(6);
    let ns = namespace("adm-batch", &id, &[]);
    let mut guard = ClusterScoped { objects: vec![] };
    let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
    let name = format!("adm-batch-{id}");
    guard.add("codebuildrunpolicy", &name);
    api.create(
        &PostParams::default(),
        &policy(
            &name,
            every_rule_spec(json!({"matchLabels": {RUN_LABEL: id}}), json!(["app"])),
        ),
    )
    .await
    .expect("creating the policy");
    let policies = read_back(&api, std::slice::from_ref(&name)).await;
    let vap_name = format!("cbbr-admission-{id}");
    guard.add("validatingadmissionpolicy", &vap_name);
    render_and_apply(&client, &vap_name, &policies).await;
    bind(&mut guard, &vap_name, &id);
    // Wait until the binding refuses (a refused run, through the dry run of a CodeBuildRun).
    let refused = project_with("app", json!({"privilegedModeOverride": true}));
    wait_for_outcome(
        &ns,
        &refused,
        Err(denied(&decide(&ns, &refused, &policies)).to_owned()),
    );

    // Every member StartBuildBatch shares with StartBuild, and its own, each allowed.
    let mut every = batch_members(every_member_allowed("app"));
    every.as_object_mut().unwrap().extend(
        json!({
            "buildTimeoutInMinutesOverride": 60,
            "reportBuildBatchStatusOverride": false,
            "buildBatchConfigOverride": {
                "serviceRole": "arn:aws:iam::111111111111:role/team-a-batch",
                "combineArtifacts": true,
                "timeoutInMins": 60,
                "restrictions": {
                    "maximumBuildsAllowed": 5,
                    "computeTypesAllowed": ["BUILD_GENERAL1_SMALL"],
                    "fleetsAllowed": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-a-big"],
                },
            },
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    let decision = assert_same_batch_decision(&ns, "every-member", &every, &policies);
    assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");
    // UPDATEs that change nothing the decision reads (the operator's settings, a finalizer)
    // pass through, as for runs.
    for patch in [
        json!({"spec": {"operator": {"retry": {"count": 1, "retryType": "RETRY_FAILED_BUILDS"}}}}),
        json!({"spec": {"operator": {"stop": true}}}),
        json!({"metadata": {"finalizers": ["codebuild.operator.dev/stop-build"]}}),
    ] {
        let out = kubectl(&[
            "patch",
            "cbbr/every-member",
            "-n",
            ns.name(),
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
        assert!(out.status.success(), "{patch}: {}", output_text(&out));
    }
    // Nulls inside the batch configuration: unset for both.
    let nulls = project_with(
        "app",
        json!({"buildBatchConfigOverride": {"serviceRole": null, "restrictions": null, "timeoutInMins": null}}),
    );
    let decision = assert_same_batch_decision(&ns, "nulls", &nulls, &policies);
    assert!(matches!(decision, Decision::Allowed { .. }), "{decision:?}");

    let gap =
        |what: &str, value: &str| format!("policy \"{name}\" does not allow {what} \"{value}\"");
    let cases = [
        (
            "batch-role",
            json!({"buildBatchConfigOverride": {"serviceRole": "arn:aws:iam::111111111111:role/admin"}}),
            gap(
                "buildBatchConfigOverride serviceRole",
                "arn:aws:iam::111111111111:role/admin",
            ),
        ),
        (
            "batch-compute",
            json!({"buildBatchConfigOverride": {"restrictions": {"computeTypesAllowed": ["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_2XLARGE"]}}}),
            gap(
                "buildBatchConfigOverride computeTypesAllowed",
                "BUILD_GENERAL1_2XLARGE",
            ),
        ),
        (
            "batch-fleets",
            json!({"buildBatchConfigOverride": {"restrictions": {"fleetsAllowed": ["arn:aws:codebuild:us-east-1:111111111111:fleet/team-b"]}}}),
            gap(
                "buildBatchConfigOverride fleetsAllowed",
                "arn:aws:codebuild:us-east-1:111111111111:fleet/team-b",
            ),
        ),
        (
            "batch-timeout",
            json!({"buildBatchConfigOverride": {"timeoutInMins": 600}}),
            format!(
                "policy \"{name}\" does not allow buildBatchConfigOverride timeoutInMins 600 (at most 60)"
            ),
        ),
        (
            "build-timeout",
            json!({"buildTimeoutInMinutesOverride": 600}),
            format!(
                "policy \"{name}\" does not allow buildTimeoutInMinutesOverride 600 (at most 60)"
            ),
        ),
        (
            "shared-member",
            json!({"imageOverride": "evil/miner"}),
            gap("imageOverride", "evil/miner"),
        ),
    ];
    for (case, overrides, part) in cases {
        let decision =
            assert_same_batch_decision(&ns, case, &project_with("app", overrides), &policies);
        assert!(denied(&decision).contains(&part), "{case}: {decision:?}");
    }
}

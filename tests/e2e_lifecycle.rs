//! End to end, the life of a CodeBuildRun: a real kube-apiserver, the operator binary as a
//! subprocess watching one namespace, and the CodeBuild simulator in-process (one per test,
//! so its records — builds, StartBuild log, call counters — belong to that test alone).
//!
//! Each test checks what a user sees (kubectl, `kubectl wait`, Events, kstatus) against what
//! CodeBuild did (the simulator's builds, StartBuild records and counters).
//!
//! Needs the local control plane (hack/local-cluster.sh); the harness starts it if it is
//! down and fails, never skips, when it cannot.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use codebuild_operator::api::CodeBuildRun;
use codebuild_sim::Faults;
use codebuild_sim::lifecycle::PhaseType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{Value, json};
use support::world::{World, build};
use support::{condition, example_files, kubectl, kubectl_ok, output_text, request_marker};

/// The phases of a build, in the order CodeBuild reports them (the simulator's own list).
fn phase_names() -> Vec<&'static str> {
    PhaseType::RUNNING
        .iter()
        .chain([&PhaseType::Completed])
        .map(|p| p.as_str())
        .collect()
}

/// Per-build phase length (seconds) that keeps a build running for the whole test.
const SLOW_PHASE_SECONDS: &str = "60";

// ---- environment ---------------------------------------------------------------------------

// ---- small readers -------------------------------------------------------------------------

#[track_caller]
fn expect_condition<'a>(run: &'a CodeBuildRun, type_: &str) -> &'a Condition {
    condition(run, type_).unwrap_or_else(|| {
        panic!(
            "cbr/{} has no {type_} condition; status: {:#?}",
            run.metadata.name.as_deref().unwrap_or("?"),
            run.status
        )
    })
}

/// Asserts the statuses of the four conditions and that they, and the status, were computed
/// for the object's current generation.
#[track_caller]
fn assert_conditions(run: &CodeBuildRun, expected: &[(&str, &str)]) {
    let name = run.metadata.name.as_deref().unwrap_or("?");
    let generation = run.metadata.generation;
    let status = run.status.as_ref().expect("status");
    assert_eq!(
        status.observed_generation, generation,
        "cbr/{name}: status.observedGeneration should equal metadata.generation"
    );
    for (type_, want) in expected {
        let c = expect_condition(run, type_);
        assert_eq!(
            c.status, *want,
            "cbr/{name}: condition {type_} should be {want}; conditions: {:#?}",
            status.conditions
        );
        assert_eq!(
            c.observed_generation, generation,
            "cbr/{name}: condition {type_} observedGeneration"
        );
    }
}

fn env_vars(vars: &[(&str, &str)]) -> Value {
    Value::Array(
        vars.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

/// kstatus (cli-utils pkg/kstatus) for a generic custom resource, as Flux and Helm 4 --wait
/// compute it (see /work/shared/reference/gitops-health.md).
fn kstatus(obj: &Value) -> &'static str {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating";
    }
    if let Some(observed) = obj["status"]["observedGeneration"].as_i64()
        && Some(observed) != obj["metadata"]["generation"].as_i64()
    {
        return "InProgress";
    }
    let conditions = obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let status_of = |t: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == t)
            .and_then(|c| c["status"].as_str().map(str::to_owned))
    };
    if status_of("Reconciling").as_deref() == Some("True") {
        return "InProgress";
    }
    if status_of("Stalled").as_deref() == Some("True") {
        return "Failed";
    }
    match status_of("Ready").as_deref() {
        Some("True") => "Current",
        Some(_) => "InProgress",
        None => "Current",
    }
}

const LONG: Duration = Duration::from_secs(60);

// ---- 1. the examples -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_reaches_succeeded() {
    let examples: Vec<(String, Value)> = example_files()
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("reading an example");
            let doc: Value =
                serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                doc,
            )
        })
        .collect();
    let mut projects: Vec<&str> = examples
        .iter()
        .map(|(_, doc)| doc["spec"]["projectName"].as_str().expect("projectName"))
        .collect();
    projects.sort();
    projects.dedup();
    let env = World::start("lc-examples", &projects).await;

    let dir = support::repo_root().join("examples");
    kubectl_ok(&["apply", "-n", env.ns(), "-f", dir.to_str().unwrap()]);

    for (file, doc) in &examples {
        let name = doc["metadata"]["name"].as_str().expect("metadata.name");
        let run = env.wait_condition(name, "Succeeded", "True", LONG).await;
        env.kubectl_wait(name, "Succeeded");
        let uid = run.metadata.uid.clone().unwrap();
        let status = run.status.clone().unwrap();
        let b = &status.build;
        let ctx = format!("{file} (cbr/{name})");

        assert_conditions(
            &run,
            &[
                ("Succeeded", "True"),
                ("Ready", "True"),
                ("Stalled", "False"),
                ("Reconciling", "False"),
            ],
        );
        assert_eq!(b.build_status.as_deref(), Some("SUCCEEDED"), "{ctx}");
        assert_eq!(b.current_phase.as_deref(), Some("COMPLETED"), "{ctx}");
        assert_eq!(b.build_complete, Some(true), "{ctx}");
        assert!(b.end_time.is_some(), "{ctx}: endTime");

        // Exactly one build, the one in status, carrying the object's uid.
        let builds = env.sim_builds_of(&uid);
        assert_eq!(
            builds.len(),
            1,
            "{ctx}: builds in the simulator: {builds:#?}"
        );
        let sim = &builds[0];
        let id = b.build_id.clone().expect("buildId");
        assert_eq!(sim["id"], json!(id), "{ctx}: buildId");
        assert_eq!(sim["buildStatus"], "SUCCEEDED", "{ctx}");
        assert_eq!(
            sim["projectName"].as_str(),
            doc["spec"]["projectName"].as_str(),
            "{ctx}"
        );
        assert_eq!(
            b.build_number,
            sim["buildNumber"].as_i64(),
            "{ctx}: buildNumber"
        );
        assert!(b.build_number.is_some_and(|n| n >= 1), "{ctx}: buildNumber");
        assert_eq!(
            b.build_arn.as_deref(),
            sim["arn"].as_str(),
            "{ctx}: buildArn"
        );
        assert!(
            b.build_arn.as_deref().is_some_and(
                |a| a.starts_with("arn:aws:codebuild:") && a.ends_with(&format!(":build/{id}"))
            ),
            "{ctx}: buildArn {:?}",
            b.build_arn
        );

        // Phases: all eleven, in order, COMPLETED last; every finished one SUCCEEDED.
        let phases = b.phases.clone().unwrap_or_default();
        let types: Vec<&str> = phases
            .iter()
            .map(|p| p.phase_type.as_deref().unwrap_or("?"))
            .collect();
        assert_eq!(types, phase_names(), "{ctx}: phases");
        for p in &phases[..10] {
            assert_eq!(
                p.phase_status.as_deref(),
                Some("SUCCEEDED"),
                "{ctx}: phase {:?}",
                p.phase_type
            );
        }
        assert_eq!(
            phases[10].phase_status, None,
            "{ctx}: COMPLETED has no status"
        );

        // Logs: the deep link CodeBuild gave.
        let deep_link = b.logs.as_ref().and_then(|l| l.deep_link.clone());
        assert!(
            deep_link
                .as_deref()
                .is_some_and(|l| l.starts_with("https://")),
            "{ctx}: logs.deepLink {deep_link:?}"
        );
        assert_eq!(
            deep_link.as_deref(),
            sim["logs"]["deepLink"].as_str(),
            "{ctx}: logs.deepLink"
        );

        // Artifacts: the S3 location where the example asks for S3 artifacts.
        let uuid = id.split_once(':').unwrap().1;
        let art = &doc["spec"]["artifactsOverride"];
        if art["type"] == "S3" {
            let mut parts = vec![art["location"].as_str().unwrap().to_owned()];
            if let Some(path) = art["path"].as_str() {
                parts.push(path.to_owned());
            }
            if art["namespaceType"] == "BUILD_ID" {
                parts.push(uuid.to_owned());
            }
            parts.push(art["name"].as_str().unwrap().to_owned());
            let expected = format!("arn:aws:s3:::{}", parts.join("/"));
            let location = b.artifacts.as_ref().and_then(|a| a.location.clone());
            assert_eq!(
                location.as_deref(),
                Some(expected.as_str()),
                "{ctx}: artifacts"
            );
            assert_eq!(
                location.as_deref(),
                sim["artifacts"]["location"].as_str(),
                "{ctx}: artifacts"
            );
            let secondary = doc["spec"]["secondaryArtifactsOverride"]
                .as_array()
                .map_or(0, Vec::len);
            let mirrored = b.secondary_artifacts.as_ref().map_or(0, Vec::len);
            assert_eq!(mirrored, secondary, "{ctx}: secondaryArtifacts");
            for a in b.secondary_artifacts.iter().flatten() {
                assert!(
                    a.location
                        .as_deref()
                        .is_some_and(|l| l.starts_with("arn:aws:s3:::")),
                    "{ctx}: secondary artifact {a:?}"
                );
            }
        }

        // spec.operator.region is where the build was started.
        if let Some(region) = doc["spec"]["operator"]["region"].as_str() {
            let attempt = status.start_attempt.as_ref().expect("startAttempt");
            assert_eq!(attempt.region, region, "{ctx}: startAttempt.region");
        }
    }

    // One StartBuild per object. The idempotency token would turn a second call into a
    // replay of the same build, so count the calls themselves: once a build id is in status,
    // StartBuild must never be called for that object again (design: exactly-once start, 5).
    let starts = env.state().starts();
    assert!(
        starts.iter().all(|s| s.error.is_none()),
        "refused StartBuild calls: {starts:#?}"
    );
    let fresh = starts.iter().filter(|s| !s.replayed).count();
    assert_eq!(fresh, examples.len(), "builds started: {starts:#?}");
    let repeated: Vec<String> = starts
        .iter()
        .filter(|s| s.replayed)
        .map(|s| {
            let first = starts
                .iter()
                .find(|f| !f.replayed && f.idempotency_token == s.idempotency_token)
                .map_or(f64::NAN, |f| f.time);
            format!(
                "{} (build {}) called again {:.0} ms after the call that started it",
                s.idempotency_token.as_deref().unwrap_or("?"),
                s.build_id.as_deref().unwrap_or("?"),
                (s.time - first) * 1000.0
            )
        })
        .collect();
    assert!(
        repeated.is_empty(),
        "StartBuild was called again for objects whose build had already started (the \
         simulator replayed the idempotency token):\n  {}",
        repeated.join("\n  ")
    );
    // A ttlSecondsAfterFinished of a day keeps the run.
    let listed = kubectl_ok(&["get", "cbr", "-n", env.ns(), "-o", "name"]);
    assert_eq!(listed.lines().count(), examples.len(), "{listed}");
}

// ---- 2. failed outcomes --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fault_and_timed_out_builds_are_stalled_with_the_phase_context() {
    let env = World::start("lc-failed", &["app"]).await;
    let cases = [
        (
            "fails",
            "FAILED",
            Some("Error while executing command: make test. Reason: exit status 2"),
        ),
        ("faults", "FAULT", None),
        ("times-out", "TIMED_OUT", None),
    ];
    for (name, status, message) in cases {
        let mut vars = vec![
            ("CODEBUILD_SIM_FAIL_PHASE", "BUILD"),
            ("CODEBUILD_SIM_STATUS", status),
        ];
        if let Some(m) = message {
            vars.push(("CODEBUILD_SIM_MESSAGE", m));
        }
        env.create(
            name,
            json!({"projectName": "app", "environmentVariablesOverride": env_vars(&vars)}),
        )
        .await;
    }
    for (name, status, message) in cases {
        let run = env.wait_condition(name, "Stalled", "True", LONG).await;
        env.kubectl_wait(name, "Stalled");
        let b = build(&run);
        assert_eq!(b.build_status.as_deref(), Some(status), "cbr/{name}");
        assert_conditions(
            &run,
            &[
                ("Succeeded", "False"),
                ("Ready", "False"),
                ("Stalled", "True"),
                ("Reconciling", "False"),
            ],
        );
        // The failing phase and its context, as CodeBuild reported them.
        let sim = env.sim_build(b.build_id.as_deref().unwrap());
        assert_eq!(sim["buildStatus"], status);
        let failing = sim["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phaseType"] == "BUILD")
            .expect("BUILD phase")
            .clone();
        assert_eq!(failing["phaseStatus"], status, "{failing}");
        let context = failing["contexts"][0]["message"]
            .as_str()
            .expect("a context message")
            .trim()
            .to_owned();
        assert!(!context.is_empty());
        if let Some(m) = message {
            assert_eq!(context, m);
        }
        let code = failing["contexts"][0]["statusCode"].as_str().unwrap();

        let succeeded = expect_condition(&run, "Succeeded");
        assert_eq!(succeeded.reason, status, "cbr/{name}: Succeeded reason");
        for needle in ["BUILD", code, context.as_str()] {
            assert!(
                succeeded.message.contains(needle),
                "cbr/{name}: Succeeded message should contain {needle:?}: {:?}",
                succeeded.message
            );
        }
        let stalled = expect_condition(&run, "Stalled");
        assert_eq!(stalled.reason, status, "cbr/{name}: Stalled reason");
        assert!(stalled.message.contains(&context), "{:?}", stalled.message);

        let event = env.wait_event(name, "Warning", "BuildFailed").await;
        let note = event.note.unwrap_or_default();
        assert!(note.contains(&context), "BuildFailed Event note: {note:?}");
        assert_eq!(kstatus(&env.kubectl_json(name)), "Failed", "cbr/{name}");
    }
    assert_eq!(env.state().starts().len(), cases.len());
    assert_eq!(env.state().builds().len(), cases.len());
}

// ---- 3. delete -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_run_stops_its_build_unless_leave_running() {
    let env = World::start("lc-delete", &["app"]).await;
    let slow = env_vars(&[("CODEBUILD_SIM_PHASE_SECONDS", SLOW_PHASE_SECONDS)]);
    let stop_uid = env
        .create(
            "stop-on-delete",
            json!({"projectName": "app", "environmentVariablesOverride": slow}),
        )
        .await;
    let leave_uid = env
        .create(
            "leave-running",
            json!({
                "projectName": "app",
                "environmentVariablesOverride": slow,
                "operator": {"onDelete": "LeaveRunning"},
            }),
        )
        .await;
    let stop_id = build(&env.wait_running("stop-on-delete").await)
        .build_id
        .unwrap();
    let leave_id = build(&env.wait_running("leave-running").await)
        .build_id
        .unwrap();
    assert_eq!(env.calls("StopBuild"), 0);

    // Default onDelete (StopBuild): the build is stopped, then the object goes.
    kubectl_ok(&[
        "delete",
        "cbr/stop-on-delete",
        "-n",
        env.ns(),
        "--timeout=30s",
    ]);
    env.wait_gone("stop-on-delete", Duration::from_secs(10))
        .await;
    let out = kubectl(&["get", "cbr/stop-on-delete", "-n", env.ns()]);
    assert!(
        !out.status.success() && output_text(&out).contains("NotFound"),
        "{}",
        output_text(&out)
    );
    let stopped = env.sim_build(&stop_id);
    assert_eq!(stopped["buildStatus"], "STOPPED", "{stopped:#}");
    assert_eq!(stopped["buildComplete"], true);
    assert_eq!(env.calls("StopBuild"), 1, "StopBuild calls");
    assert_eq!(env.sim_builds_of(&stop_uid).len(), 1);

    // LeaveRunning: the object goes, the build keeps running.
    kubectl_ok(&[
        "delete",
        "cbr/leave-running",
        "-n",
        env.ns(),
        "--timeout=30s",
    ]);
    env.wait_gone("leave-running", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let running = env.sim_build(&leave_id);
    assert_eq!(running["buildStatus"], "IN_PROGRESS", "{running:#}");
    assert_eq!(running["buildComplete"], false);
    assert_eq!(env.calls("StopBuild"), 1, "no StopBuild for LeaveRunning");
    assert_eq!(env.sim_builds_of(&leave_uid).len(), 1);
}

// ---- 4. stop -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_true_stops_a_running_build_and_prevents_a_start() {
    let env = World::start("lc-stop", &["app"]).await;

    // Set at creation: no build is ever started.
    env.create(
        "stopped-early",
        json!({"projectName": "app", "operator": {"stop": true}}),
    )
    .await;
    let run = env
        .wait_condition(
            "stopped-early",
            "Succeeded",
            "False",
            Duration::from_secs(30),
        )
        .await;
    assert_conditions(
        &run,
        &[
            ("Succeeded", "False"),
            ("Ready", "False"),
            ("Stalled", "True"),
            ("Reconciling", "False"),
        ],
    );
    assert_eq!(expect_condition(&run, "Succeeded").reason, "STOPPED");
    assert_eq!(build(&run).build_id, None, "no build id expected");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        env.state().starts().is_empty(),
        "{:#?}",
        env.state().starts()
    );
    assert!(env.state().builds().is_empty());
    assert_eq!(env.calls("StartBuild"), 0);
    assert!(env.get_opt("stopped-early").await.is_some(), "object kept");

    // Set on a running build: StopBuild, buildStatus STOPPED, object kept.
    env.create(
        "stopped-late",
        json!({
            "projectName": "app",
            "environmentVariablesOverride":
                env_vars(&[("CODEBUILD_SIM_PHASE_SECONDS", SLOW_PHASE_SECONDS)]),
        }),
    )
    .await;
    let id = build(&env.wait_running("stopped-late").await)
        .build_id
        .unwrap();
    env.patch(
        "stopped-late",
        json!({"spec": {"operator": {"stop": true}}}),
    );
    let run = env
        .wait_run(
            "stopped-late",
            "buildStatus STOPPED",
            Duration::from_secs(30),
            |r| {
                build(r).build_status.as_deref() == Some("STOPPED")
                    && condition(r, "Succeeded").is_some_and(|c| c.status == "False")
            },
        )
        .await;
    assert_eq!(run.metadata.generation, Some(2));
    assert_conditions(
        &run,
        &[
            ("Succeeded", "False"),
            ("Ready", "False"),
            ("Stalled", "True"),
            ("Reconciling", "False"),
        ],
    );
    assert_eq!(expect_condition(&run, "Succeeded").reason, "STOPPED");
    assert_eq!(env.sim_build(&id)["buildStatus"], "STOPPED");
    assert_eq!(env.calls("StopBuild"), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = env.get("stopped-late").await;
    assert!(kept.metadata.deletion_timestamp.is_none(), "object kept");
    assert_eq!(env.state().starts().len(), 1);
}

// ---- 5. missing project --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_project_is_retried_until_it_exists() {
    let env = World::start("lc-noproj", &[]).await;
    let uid = env
        .create("waits", json!({"projectName": "late-app"}))
        .await;
    let run = env
        .wait_run(
            "waits",
            "Reconciling=True reason ProjectNotFound",
            Duration::from_secs(30),
            |r| {
                condition(r, "Reconciling")
                    .is_some_and(|c| c.status == "True" && c.reason == "ProjectNotFound")
            },
        )
        .await;
    assert_conditions(
        &run,
        &[
            ("Reconciling", "True"),
            ("Stalled", "False"),
            ("Ready", "False"),
            ("Succeeded", "Unknown"),
        ],
    );
    assert!(
        expect_condition(&run, "Reconciling")
            .message
            .contains("late-app"),
        "{:?}",
        expect_condition(&run, "Reconciling").message
    );
    env.wait_event("waits", "Warning", "ProjectNotFound").await;
    assert!(env.state().builds().is_empty());

    env.state().create_project("late-app").unwrap();
    let run = env.wait_condition("waits", "Succeeded", "True", LONG).await;
    assert_conditions(
        &run,
        &[
            ("Succeeded", "True"),
            ("Ready", "True"),
            ("Stalled", "False"),
            ("Reconciling", "False"),
        ],
    );
    let builds = env.sim_builds_of(&uid);
    assert_eq!(builds.len(), 1, "{builds:#?}");
    assert_eq!(builds[0]["id"], json!(build(&run).build_id.unwrap()));
    // Every StartBuild but the last was refused for the missing project.
    let starts = env.state().starts();
    let (ok, refused): (Vec<_>, Vec<_>) = starts
        .iter()
        .filter(|s| !s.replayed)
        .partition(|s| s.error.is_none());
    assert_eq!(ok.len(), 1, "{starts:#?}");
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|s| s.error.as_deref() == Some("ResourceNotFoundException")),
        "{starts:#?}"
    );
}

// ---- 6. throttling and 5xx -----------------------------------------------------------------

async fn runs_survive_faults(prefix: &str, faults: Faults) {
    let env = World::start(prefix, &["app"]).await;
    env.state().set_faults(faults);
    let mut uids = BTreeMap::new();
    for i in 0..5 {
        let name = format!("run-{i}");
        let uid = env.create(&name, json!({"projectName": "app"})).await;
        uids.insert(name, uid);
    }
    for (name, uid) in &uids {
        let run = env.wait_condition(name, "Succeeded", "True", LONG).await;
        assert_conditions(
            &run,
            &[
                ("Succeeded", "True"),
                ("Ready", "True"),
                ("Stalled", "False"),
                ("Reconciling", "False"),
            ],
        );
        let builds = env.sim_builds_of(uid);
        assert_eq!(builds.len(), 1, "cbr/{name}: builds {builds:#?}");
        assert_eq!(builds[0]["id"], json!(build(&run).build_id.unwrap()));
        let started: Vec<_> = env
            .state()
            .starts()
            .into_iter()
            .filter(|s| request_marker(&s.request) == Some(uid.as_str()))
            .filter(|s| s.error.is_none() && !s.replayed)
            .collect();
        assert_eq!(started.len(), 1, "cbr/{name}: {started:#?}");
    }
    assert_eq!(env.state().builds().len(), uids.len());
    let counters = env.state().counters();
    assert!(
        counters.throttled + counters.server_errors > 0,
        "the faults never fired: {counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_still_gives_one_build_per_run() {
    runs_survive_faults(
        "lc-throttle",
        Faults {
            throttle_fraction: 0.5,
            seed: Some(7),
            ..Default::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_still_give_one_build_per_run() {
    runs_survive_faults(
        "lc-5xx",
        Faults {
            server_error_fraction: 0.5,
            seed: Some(11),
            ..Default::default()
        },
    )
    .await;
}

// ---- 7. auto-retry -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_retries_are_followed_to_success_without_another_start() {
    let env = World::start("lc-retry", &["app"]).await;
    let uid = env
        .create(
            "retried",
            json!({
                "projectName": "app",
                "autoRetryLimitOverride": 2,
                "environmentVariablesOverride": env_vars(&[
                    ("CODEBUILD_SIM_FAIL_PHASE", "BUILD"),
                    ("CODEBUILD_SIM_SUCCEED_ON_RETRY", "2"),
                ]),
            }),
        )
        .await;
    let run = env
        .wait_condition("retried", "Succeeded", "True", LONG)
        .await;
    env.kubectl_wait("retried", "Succeeded");
    assert_conditions(
        &run,
        &[
            ("Succeeded", "True"),
            ("Ready", "True"),
            ("Stalled", "False"),
            ("Reconciling", "False"),
        ],
    );
    let chain = env.sim_builds_of(&uid);
    assert_eq!(chain.len(), 3, "{chain:#?}");
    for (i, b) in chain.iter().enumerate() {
        assert_eq!(b["autoRetryConfig"]["autoRetryNumber"], json!(i), "{b:#}");
    }
    let status = run.status.clone().unwrap();
    let retries = status.retries.clone().expect("status.retries");
    assert_eq!(retries.len(), 2, "{retries:#?}");
    for (r, b) in retries.iter().zip(&chain) {
        assert_eq!(json!(r.build_id), b["id"]);
        assert_eq!(r.build_status.as_deref(), Some("FAILED"));
        assert_eq!(r.build_number, b["buildNumber"].as_i64());
    }
    assert_eq!(json!(status.build.build_id), chain[2]["id"]);
    assert_eq!(status.build.build_number, chain[2]["buildNumber"].as_i64());
    assert_eq!(status.build.build_status.as_deref(), Some("SUCCEEDED"));
    let retry = status.build.auto_retry_config.expect("autoRetryConfig");
    assert_eq!(retry.auto_retry_number, Some(2));
    assert_eq!(
        json!(retry.previous_auto_retry),
        chain[1]["id"],
        "previousAutoRetry"
    );
    let starts = env.state().starts();
    assert_eq!(
        starts.len(),
        1,
        "the operator starts one build: {starts:#?}"
    );
    assert_eq!(env.calls("StartBuild"), 1);
}

// ---- 8. ttlSecondsAfterFinished ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_seconds_after_finished_deletes_the_finished_run() {
    let env = World::start("lc-ttl", &["app"]).await;
    let uid = env
        .create(
            "short-lived",
            json!({"projectName": "app", "operator": {"ttlSecondsAfterFinished": 1}}),
        )
        .await;
    let started = Instant::now();
    // While the build runs the object stays.
    let run = env.wait_running("short-lived").await;
    let id = build(&run).build_id.unwrap();
    env.wait_gone("short-lived", Duration::from_secs(30)).await;
    let gone_after = started.elapsed();

    let builds = env.sim_builds_of(&uid);
    assert_eq!(builds.len(), 1, "{builds:#?}");
    assert_eq!(builds[0]["id"], json!(id));
    assert_eq!(builds[0]["buildStatus"], "SUCCEEDED");
    // Deleted no earlier than the build's end plus the TTL's whole seconds.
    let end = builds[0]["endTime"].as_f64().expect("endTime");
    let start = builds[0]["startTime"].as_f64().expect("startTime");
    assert!(
        gone_after.as_secs_f64() >= (end - start),
        "deleted after {gone_after:?}, the build took {}s",
        end - start
    );
    env.wait_event("short-lived", "Normal", "BuildSucceeded")
        .await;
    assert_eq!(env.calls("StopBuild"), 0);
}

// ---- 9. permanent error --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_input_error_stalls_without_retrying_start_build() {
    let env = World::start("lc-invalid", &["app"]).await;
    env.create(
        "rejected",
        json!({
            "projectName": "app",
            "environmentVariablesOverride": env_vars(&[("CODEBUILD_SIM_STATUS", "SOMETIMES")]),
        }),
    )
    .await;
    let run = env
        .wait_condition("rejected", "Stalled", "True", Duration::from_secs(30))
        .await;
    env.kubectl_wait("rejected", "Stalled");
    assert_conditions(
        &run,
        &[
            ("Succeeded", "False"),
            ("Ready", "False"),
            ("Stalled", "True"),
            ("Reconciling", "False"),
        ],
    );
    let sim_message = "CODEBUILD_SIM_STATUS must be FAILED, FAULT or TIMED_OUT, got 'SOMETIMES'";
    for type_ in ["Succeeded", "Stalled"] {
        let c = expect_condition(&run, type_);
        assert_eq!(c.reason, "InvalidInput", "{type_}");
        assert!(c.message.contains(sim_message), "{type_}: {:?}", c.message);
    }
    assert_eq!(build(&run).build_id, None);
    let event = env.wait_event("rejected", "Warning", "InvalidInput").await;
    assert!(event.note.unwrap_or_default().contains(sim_message));
    assert_eq!(kstatus(&env.kubectl_json("rejected")), "Failed");

    let starts = env.state().starts();
    assert_eq!(starts.len(), 1, "{starts:#?}");
    assert_eq!(starts[0].error.as_deref(), Some("InvalidInputException"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let starts = env.state().starts();
    assert_eq!(starts.len(), 1, "StartBuild was retried: {starts:#?}");
    assert_eq!(env.calls("StartBuild"), 1);
    assert!(env.state().builds().is_empty());
}

// ---- 10. kstatus ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kstatus_reads_running_as_in_progress_and_failed_as_failed() {
    let env = World::start("lc-kstatus", &["app"]).await;
    env.create(
        "running",
        json!({
            "projectName": "app",
            "environmentVariablesOverride":
                env_vars(&[("CODEBUILD_SIM_PHASE_SECONDS", SLOW_PHASE_SECONDS)]),
        }),
    )
    .await;
    env.create(
        "failing",
        json!({
            "projectName": "app",
            "environmentVariablesOverride": env_vars(&[("CODEBUILD_SIM_FAIL_PHASE", "BUILD")]),
        }),
    )
    .await;

    // Mid-build, fetched as kubectl shows it.
    let run = env.wait_running("running").await;
    let phase = build(&run).current_phase.expect("currentPhase");
    let obj = env.kubectl_json("running");
    assert_eq!(obj["status"]["buildStatus"], "IN_PROGRESS", "{obj:#}");
    assert_eq!(kstatus(&obj), "InProgress", "{:#}", obj["status"]);
    let run: CodeBuildRun = serde_json::from_value(obj).unwrap();
    assert_conditions(
        &run,
        &[
            ("Succeeded", "Unknown"),
            ("Ready", "False"),
            ("Stalled", "False"),
            ("Reconciling", "True"),
        ],
    );
    let succeeded = expect_condition(&run, "Succeeded");
    assert!(
        phase_names().contains(&succeeded.reason.as_str()),
        "Succeeded reason while running should be a phase: {:?} (currentPhase was {phase})",
        succeeded.reason
    );

    // A failed build reads as Failed, not as still in progress.
    env.wait_condition("failing", "Stalled", "True", LONG).await;
    let obj = env.kubectl_json("failing");
    assert_eq!(obj["status"]["buildStatus"], "FAILED");
    assert_eq!(kstatus(&obj), "Failed", "{:#}", obj["status"]);

    // The running one is still InProgress.
    assert_eq!(kstatus(&env.kubectl_json("running")), "InProgress");
}

// ---- phase Events ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_phase_events_each_observed_phase_is_an_event_of_its_own() {
    let config = support::world::fast_sim();
    let env = World::start_with("lc-phase-events", config, &["app"], &["--phase-events"]).await;
    // Phases of 1.5 s, polled every 0.5 s: every phase is observed.
    env.create(
        "phased",
        json!({"projectName": "app",
               "environmentVariablesOverride": env_vars(&[("CODEBUILD_SIM_PHASE_SECONDS", "1.5")])}),
    )
    .await;
    env.wait_run("phased", "Succeeded", LONG, |r| {
        condition(r, "Succeeded").is_some_and(|c| c.status == "True")
    })
    .await;
    let notes = kubectl_ok(&[
        "get",
        "events",
        "-n",
        env.ns(),
        "--field-selector",
        "reason=PhaseChanged",
        "-o",
        "jsonpath={range .items[*]}{.note}{.message}{\"\\n\"}{end}",
    ]);
    let phases: std::collections::BTreeSet<&str> = notes
        .lines()
        .filter_map(|l| l.rsplit("entered phase ").next())
        .filter(|p| !p.is_empty())
        .collect();
    for phase in ["QUEUED", "BUILD", "FINALIZING", "COMPLETED"] {
        assert!(
            phases.contains(phase),
            "no PhaseChanged Event for {phase}: {notes}"
        );
    }
}

/// By default a build that succeeds costs at most 3 Events (started, finished, and one per
/// failure or warning): the phases are in status, not in Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_build_costs_at_most_three_events_by_default() {
    let env = World::start("lc-quiet", &["app"]).await;
    env.create(
        "quiet",
        json!({"projectName": "app",
               "environmentVariablesOverride": env_vars(&[("CODEBUILD_SIM_PHASE_SECONDS", "0.5")])}),
    )
    .await;
    env.wait_run("quiet", "Succeeded", LONG, |r| {
        condition(r, "Succeeded").is_some_and(|c| c.status == "True")
    })
    .await;
    let events = env.events("quiet").await;
    let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(events.len() <= 3, "{reasons:?}");
    assert!(reasons.contains(&"BuildStarted"), "{reasons:?}");
    assert!(reasons.contains(&"BuildSucceeded"), "{reasons:?}");
    assert!(!reasons.contains(&"PhaseChanged"), "{reasons:?}");
}

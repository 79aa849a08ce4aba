//! End to end, against the real apiserver, the simulator and the operator binary: exactly one
//! build per run whatever happens to the operator, and tracking that costs BatchGetBuilds
//! calls, not per-run polls.
//!
//! The simulator runs in-process (multi-threaded runtime, so blocking kubectl calls in the
//! test do not stall it); the operator is a subprocess killed and restarted by the tests.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use codebuild_sim::{Faults, Server, SimConfig};
use serde_json::Value;
use support::{OperatorProcess, TestNamespace, kubectl_ok, kubectl_stdin, wait_for};

const MARKER: &str = "CODEBUILD_OPERATOR_RUN_UID";

fn run_manifest(name: &str, phase_seconds: f64) -> String {
    format!(
        "apiVersion: codebuild.operator.dev/v1alpha1\nkind: CodeBuildRun\nmetadata: {{name: {name}}}\n\
         spec:\n  projectName: my-app\n  environmentVariablesOverride:\n  \
         - {{name: CODEBUILD_SIM_PHASE_SECONDS, value: \"{phase_seconds}\"}}\n"
    )
}

fn get(ns: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl_ok(&["get", "cbr", name, "-n", ns, "-o", "json"])).unwrap()
}

fn condition<'a>(run: &'a Value, type_: &str) -> Option<&'a Value> {
    run["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn succeeded(run: &Value) -> bool {
    condition(run, "Succeeded").is_some_and(|c| c["status"] == "True")
}

/// Builds in the simulator per run uid (from the marker variable).
fn builds_per_uid(sim: &Server) -> BTreeMap<String, Vec<String>> {
    let mut per_uid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for build in sim.state().builds() {
        let uid = build["environment"]["environmentVariables"]
            .as_array()
            .and_then(|vars| vars.iter().find(|v| v["name"] == MARKER))
            .and_then(|v| v["value"].as_str())
            .unwrap_or("<none>")
            .to_owned();
        per_uid
            .entry(uid)
            .or_default()
            .push(build["id"].as_str().unwrap_or_default().to_owned());
    }
    per_uid
}

fn start_build_calls(sim: &Server) -> u64 {
    sim.state()
        .counters()
        .calls
        .get("StartBuild")
        .copied()
        .unwrap_or(0)
}

/// Kills the operator with SIGKILL while StartBuild has taken effect in CodeBuild but its
/// answer has not arrived, then restarts it, `wait` later. Returns the run's uid.
async fn kill_after_start_build(
    ns: &TestNamespace,
    sim: &Server,
    restart_after: Duration,
    extra: &[&str],
) -> String {
    // The answer of StartBuild is held for 30 s after the build started.
    sim.state().set_faults(Faults {
        response_latency_ms: 30_000,
        operation: Some("StartBuild".into()),
        ..Faults::default()
    });
    let mut operator = OperatorProcess::start(ns.name(), &sim.endpoint(), extra);
    kubectl_stdin(
        &["apply", "-n", ns.name(), "-f", "-"],
        &run_manifest("crash", 0.2),
    );
    wait_for(
        "StartBuild to reach CodeBuild",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            sim.state()
                .starts()
                .iter()
                .any(|s| s.build_id.is_some())
                .then_some(())
        },
    );
    operator.kill();

    // The crash window: the run is claimed (finalizer and attempt, in one write), the build
    // id is not recorded.
    let run = get(ns.name(), "crash");
    let uid = run["metadata"]["uid"].as_str().unwrap().to_owned();
    let attempt: Value = serde_json::from_str(
        run["metadata"]["annotations"]["codebuild.operator.dev/start-attempt"]
            .as_str()
            .unwrap_or_else(|| panic!("attempt recorded first: {run}")),
    )
    .unwrap();
    assert!(attempt["idempotencyToken"].is_string(), "{attempt}");
    assert_eq!(
        run["metadata"]["finalizers"],
        serde_json::json!(["codebuild.operator.dev/stop-build"]),
        "{run}"
    );
    assert!(
        run["status"]["buildId"].is_null(),
        "the answer was lost, so no build id: {run}"
    );
    assert_eq!(builds_per_uid(sim).get(&uid).map(Vec::len), Some(1));

    sim.state().set_faults(Faults::default());
    tokio::time::sleep(restart_after).await;
    let _operator = OperatorProcess::start(ns.name(), &sim.endpoint(), extra);
    wait_for(
        "the run to succeed after the restart",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || succeeded(&get(ns.name(), "crash")).then_some(()),
    );
    uid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_start_build_inside_the_token_window_leaves_one_build() {
    let ns = TestNamespace::new("crash-in-window");
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let uid = kill_after_start_build(&ns, &sim, Duration::ZERO, &[]).await;

    assert_eq!(
        builds_per_uid(&sim).get(&uid).map(Vec::len),
        Some(1),
        "exactly one build: {:?}",
        builds_per_uid(&sim)
    );
    // The restart repeated StartBuild with the same token and got the same build back.
    let starts = sim.state().starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0].idempotency_token, starts[1].idempotency_token);
    assert!(
        starts[1].replayed,
        "the second StartBuild returned the first build"
    );
    let run = get(ns.name(), "crash");
    assert_eq!(
        run["status"]["buildId"].as_str(),
        starts[0].build_id.as_deref()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_start_build_past_the_token_window_finds_the_build_instead_of_starting_another()
 {
    let ns = TestNamespace::new("crash-past-window");
    // A 2-second token window in both the simulator and the operator.
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        token_window_seconds: 2.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let uid =
        kill_after_start_build(&ns, &sim, Duration::from_secs(3), &["--token-window", "2s"]).await;

    assert_eq!(
        builds_per_uid(&sim).get(&uid).map(Vec::len),
        Some(1),
        "exactly one build: {:?}",
        builds_per_uid(&sim)
    );
    // Past the window the same token would start a second build: the operator searched
    // (ListBuildsForProject) and adopted the build instead of calling StartBuild again.
    assert_eq!(start_build_calls(&sim), 1);
    assert!(
        sim.state()
            .counters()
            .calls
            .get("ListBuildsForProject")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns.name(),
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("BuildRecovered"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_runs_are_tracked_with_batched_calls() {
    let ns = TestNamespace::new("fifty");
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let _operator = OperatorProcess::start(ns.name(), &sim.endpoint(), &["--poll-interval", "1s"]);
    let manifests: Vec<String> = (0..50)
        .map(|i| run_manifest(&format!("run-{i:02}"), 0.5))
        .collect();
    let began = Instant::now();
    kubectl_stdin(
        &["apply", "-n", ns.name(), "-f", "-"],
        &manifests.join("---\n"),
    );
    wait_for(
        "all 50 runs to succeed",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let list: Value =
                serde_json::from_str(&kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "json"]))
                    .unwrap();
            let items = list["items"].as_array().unwrap();
            (items.len() == 50 && items.iter().all(succeeded)).then_some(())
        },
    );
    let elapsed = began.elapsed();

    let counters = sim.state().counters();
    let calls = |op: &str| counters.calls.get(op).copied().unwrap_or(0);
    assert_eq!(calls("StartBuild"), 50, "one StartBuild per run");
    assert_eq!(builds_per_uid(&sim).len(), 50);
    assert!(builds_per_uid(&sim).values().all(|b| b.len() == 1));
    // One BatchGetBuilds round per second at most (plus slack for the first and last), each
    // covering many builds; per-run polling would need 50 calls per round.
    let rounds = elapsed.as_secs() + 3;
    assert!(
        calls("BatchGetBuilds") <= rounds,
        "{} BatchGetBuilds calls in {elapsed:?}",
        calls("BatchGetBuilds")
    );
    let ids_per_call = counters.batch_get_builds_ids as f64 / calls("BatchGetBuilds").max(1) as f64;
    assert!(
        ids_per_call > 10.0,
        "BatchGetBuilds carried {ids_per_call:.1} ids per call"
    );
    println!(
        "50 runs in {elapsed:?}: {} BatchGetBuilds calls, {ids_per_call:.1} ids per call, {} calls in all",
        calls("BatchGetBuilds"),
        counters.total_calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_running_builds_starts_nothing_and_writes_nothing() {
    let ns = TestNamespace::new("restart");
    let sim = Server::start(SimConfig {
        projects: vec!["my-app".into()],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut operator = OperatorProcess::start(ns.name(), &sim.endpoint(), &[]);
    // Slow builds: no phase changes during the observation below.
    let manifests: Vec<String> = (0..5)
        .map(|i| run_manifest(&format!("slow-{i}"), 600.0))
        .collect();
    kubectl_stdin(
        &["apply", "-n", ns.name(), "-f", "-"],
        &manifests.join("---\n"),
    );
    let versions = || -> BTreeMap<String, String> {
        let list: Value =
            serde_json::from_str(&kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "json"]))
                .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metadata"]["name"].as_str().unwrap().to_owned(),
                    r["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    };
    wait_for(
        "5 build ids in status",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let list: Value =
                serde_json::from_str(&kubectl_ok(&["get", "cbr", "-n", ns.name(), "-o", "json"]))
                    .unwrap();
            let items = list["items"].as_array().unwrap();
            (items.len() == 5
                && items.iter().all(|r| {
                    r["status"]["buildId"].is_string() && r["status"]["currentPhase"] == "SUBMITTED"
                }))
            .then_some(())
        },
    );
    // Let the tracker settle (its first round may add nothing new), then restart gracefully.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let exit = operator.terminate();
    assert!(
        exit.success(),
        "SIGTERM drains and exits 0: {exit:?}\n{}",
        operator.log_tail(30)
    );
    let before = versions();
    let starts_before = start_build_calls(&sim);

    let _operator = OperatorProcess::start(ns.name(), &sim.endpoint(), &[]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        start_build_calls(&sim),
        starts_before,
        "no StartBuild after a restart"
    );
    assert_eq!(
        versions(),
        before,
        "no write to unchanged objects after a restart"
    );
    let polled = sim
        .state()
        .counters()
        .calls
        .get("BatchGetBuilds")
        .copied()
        .unwrap_or(0);
    assert!(
        polled >= 1,
        "the restarted operator tracks the running builds"
    );
}

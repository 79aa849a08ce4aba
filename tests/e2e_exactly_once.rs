//! End to end, against the real apiserver, the simulator and the operator binary: exactly one
//! build per run whatever happens to the operator, and tracking that costs BatchGetBuilds
//! calls, not per-run polls.
//!
//! The simulator runs in-process (multi-threaded runtime, so blocking kubectl calls in the
//! test do not stall it); the operator is a subprocess killed and restarted by the tests.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use codebuild_sim::{Faults, SimConfig};
use kube::api::ListParams;
use serde_json::{Value, json};
use support::world::World;
use support::{condition, kubectl_ok, kubectl_stdin, wait_for, wait_for_async};

/// A run of project `my-app` whose simulated phases take `phase_seconds` each.
fn run_manifest(name: &str, phase_seconds: f64) -> String {
    support::run_manifest(
        name,
        json!({"projectName": "my-app", "environmentVariablesOverride": [
            {"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": phase_seconds.to_string()}]}),
    )
}

/// A world whose simulator knows project `my-app` (with `config`'s other settings), and an
/// operator started with `extra_args`.
async fn world(prefix: &str, config: SimConfig, extra_args: &[&str]) -> World {
    World::start_with(prefix, config, &["my-app"], extra_args).await
}

/// Kills the operator with SIGKILL while StartBuild has taken effect in CodeBuild but its
/// answer has not arrived, then restarts it, `restart_after` later. Returns the run's uid.
async fn kill_after_start_build(
    world: &mut World,
    restart_after: Duration,
    extra: &[&str],
) -> String {
    // The answer of StartBuild is held for 30 s after the build started.
    world.state().set_faults(Faults {
        response_latency_ms: 30_000,
        operation: Some("StartBuild".into()),
        ..Faults::default()
    });
    kubectl_stdin(
        &["apply", "-n", world.ns(), "-f", "-"],
        &run_manifest("crash", 0.2),
    );
    wait_for(
        "StartBuild to reach CodeBuild",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            world
                .state()
                .starts()
                .iter()
                .any(|s| s.build_id.is_some())
                .then_some(())
        },
    );
    if let Some(operator) = world.operator.as_mut() {
        operator.kill();
    }

    // The crash window: the run is claimed (the attempt in status, then the finalizer),
    // the build id is not recorded.
    let run = world.kubectl_json("crash");
    let uid = run["metadata"]["uid"].as_str().unwrap().to_owned();
    let attempt = run["status"]["startAttempt"].clone();
    assert!(attempt["idempotencyToken"].is_string(), "{attempt}");
    assert_eq!(
        run["metadata"]["finalizers"],
        json!(["codebuild.operator.dev/stop-build"]),
        "{run}"
    );
    assert!(
        run["status"]["buildId"].is_null(),
        "the answer was lost, so no build id: {run}"
    );
    assert_eq!(world.builds_per_uid().get(&uid).map(Vec::len), Some(1));

    world.state().set_faults(Faults::default());
    tokio::time::sleep(restart_after).await;
    world.restart_operator(extra);
    wait_for_async(
        "the run to succeed after the restart",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async { world.succeeded("crash").await.then_some(()) },
    )
    .await;
    uid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_start_build_inside_the_token_window_leaves_one_build() {
    let mut world = world("crash-in-window", SimConfig::default(), &[]).await;
    let uid = kill_after_start_build(&mut world, Duration::ZERO, &[]).await;

    assert_eq!(
        world.builds_per_uid().get(&uid).map(Vec::len),
        Some(1),
        "exactly one build: {:?}",
        world.builds_per_uid()
    );
    // The restart repeated StartBuild with the same token and got the same build back.
    let starts = world.state().starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0].idempotency_token, starts[1].idempotency_token);
    assert!(
        starts[1].replayed,
        "the second StartBuild returned the first build"
    );
    let run = world.kubectl_json("crash");
    assert_eq!(
        run["status"]["buildId"].as_str(),
        starts[0].build_id.as_deref()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_start_build_past_the_token_window_finds_the_build_instead_of_starting_another()
 {
    // A 2-second token window in both the simulator and the operator.
    let config = SimConfig {
        token_window_seconds: 2.0,
        ..SimConfig::default()
    };
    // Calls of at most 1 s with no clock skew to allow for, so the decision after the
    // restart (3 s after the attempt) is: too late to repeat, no call in flight, search.
    let window = [
        "--token-window",
        "2s",
        "--aws-operation-timeout",
        "1s",
        "--clock-skew",
        "0s",
    ];
    let mut world = world("crash-past-window", config, &window).await;
    let uid = kill_after_start_build(&mut world, Duration::from_secs(3), &window).await;

    assert_eq!(
        world.builds_per_uid().get(&uid).map(Vec::len),
        Some(1),
        "exactly one build: {:?}",
        world.builds_per_uid()
    );
    // Past the window the same token would start a second build: the operator searched
    // (ListBuildsForProject) and adopted the build instead of calling StartBuild again.
    assert_eq!(world.calls("StartBuild"), 1);
    assert!(world.calls("ListBuildsForProject") >= 1);
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        world.ns(),
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("BuildRecovered"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_runs_are_tracked_with_batched_calls() {
    let world = world("fifty", SimConfig::default(), &["--poll-interval", "1s"]).await;
    let manifests: Vec<String> = (0..50)
        .map(|i| run_manifest(&format!("run-{i:02}"), 0.5))
        .collect();
    let began = Instant::now();
    kubectl_stdin(
        &["apply", "-n", world.ns(), "-f", "-"],
        &manifests.join("\n"),
    );
    wait_for_async(
        "all 50 runs to succeed",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let runs = world.runs.list(&ListParams::default()).await.ok()?.items;
            let done = runs
                .iter()
                .filter(|r| condition(r, "Succeeded").is_some_and(|c| c.status == "True"))
                .count();
            (runs.len() == 50 && done == 50).then_some(())
        },
    )
    .await;
    let elapsed = began.elapsed();

    let counters = world.state().counters();
    let calls = |op: &str| counters.calls.get(op).copied().unwrap_or(0);
    assert_eq!(calls("StartBuild"), 50, "one StartBuild per run");
    assert_eq!(world.builds_per_uid().len(), 50);
    assert!(world.builds_per_uid().values().all(|b| b.len() == 1));
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
    let mut world = world("restart", SimConfig::default(), &[]).await;
    // Slow builds: no phase changes during the observation below.
    let manifests: Vec<String> = (0..5)
        .map(|i| run_manifest(&format!("slow-{i}"), 600.0))
        .collect();
    kubectl_stdin(
        &["apply", "-n", world.ns(), "-f", "-"],
        &manifests.join("\n"),
    );
    let ns = world.ns().to_owned();
    let list = || -> Vec<Value> {
        let list: Value =
            serde_json::from_str(&kubectl_ok(&["get", "cbr", "-n", &ns, "-o", "json"])).unwrap();
        list["items"].as_array().unwrap().clone()
    };
    let versions = || -> BTreeMap<String, String> {
        list()
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
            let items = list();
            (items.len() == 5
                && items.iter().all(|r| {
                    r["status"]["buildId"].is_string() && r["status"]["currentPhase"] == "SUBMITTED"
                }))
            .then_some(())
        },
    );
    // Let the tracker settle (its first round may add nothing new), then restart gracefully.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut operator = world.operator.take().expect("the world's operator");
    let exit = operator.terminate();
    assert!(
        exit.success(),
        "SIGTERM drains and exits 0: {exit:?}\n{}",
        operator.log_tail(30)
    );
    let before = versions();
    let starts_before = world.calls("StartBuild");

    world.restart_operator(&[]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        world.calls("StartBuild"),
        starts_before,
        "no StartBuild after a restart"
    );
    assert_eq!(
        versions(),
        before,
        "no write to unchanged objects after a restart"
    );
    assert!(
        world.calls("BatchGetBuilds") >= 1,
        "the restarted operator tracks the running builds"
    );
}

/// Runs `names`, created at once, whose StartBuild reached CodeBuild with the answer held:
/// waits until CodeBuild started a build for each, kills the operator (the answers are
/// lost), and returns the time of the earliest start attempt recorded.
async fn lose_the_answers(world: &mut World, names: &[String]) -> k8s_openapi::jiff::Timestamp {
    world.state().set_faults(Faults {
        response_latency_ms: 30_000,
        operation: Some("StartBuild".into()),
        ..Faults::default()
    });
    let manifests: Vec<String> = names.iter().map(|n| run_manifest(n, 0.2)).collect();
    kubectl_stdin(
        &["apply", "-n", world.ns(), "-f", "-"],
        &manifests.join("\n"),
    );
    let mut uids = Vec::new();
    for name in names {
        uids.push(world.get(name).await.metadata.uid.expect("uid"));
    }
    wait_for(
        "every StartBuild to reach CodeBuild",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let started = world.builds_per_uid();
            uids.iter().all(|u| started.contains_key(u)).then_some(())
        },
    );
    if let Some(operator) = world.operator.as_mut() {
        operator.kill();
    }
    let mut earliest = None;
    for name in names {
        let run = world.get(name).await;
        let status = run.status.unwrap_or_default();
        assert!(
            status.build.build_id.is_none(),
            "{name}: the answer was lost"
        );
        let time = status
            .start_attempt
            .expect("the attempt is recorded first")
            .time
            .0;
        earliest = Some(earliest.map_or(time, |e: k8s_openapi::jiff::Timestamp| e.min(time)));
    }
    earliest.expect("at least one run")
}

/// A StartBuild answer lost late in the token window never gives a second build: 50 trials,
/// the operator restarted at 40% to 80% of the window, its repeat delayed by latency (the
/// request reaches CodeBuild 5 s late) or by throttling and the SDK's own retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_starts_at_the_edge_of_the_token_window_never_give_a_second_build() {
    const WINDOW: f64 = 16.0;
    // A 16 s window (simulator and operator), calls of at most 6 s, 1 s of clock skew: a
    // repeat is sent while the attempt is younger than 9 s; calls may be in flight until
    // 15 s; after that the operator searches. (The scale leaves the test room to kill the
    // operator before it recovers the lost answers by itself, also on a loaded machine.)
    let config = SimConfig {
        token_window_seconds: WINDOW,
        ..SimConfig::default()
    };
    let args = [
        "--token-window",
        "16s",
        "--aws-operation-timeout",
        "6s",
        "--clock-skew",
        "1s",
    ];
    let mut world = world("window-edge", config, &args).await;
    let mut names = Vec::new();
    for (cycle, fraction) in [0.4, 0.5, 0.6, 0.7, 0.8].into_iter().enumerate() {
        let batch: Vec<String> = (0..10).map(|i| format!("c{cycle}-r{i}")).collect();
        let attempted = lose_the_answers(&mut world, &batch).await;
        // The repeat is slowed on its way to CodeBuild (past the window, for a repeat sent
        // late: the previous rule gave duplicates here).
        world.state().set_faults(if cycle % 2 == 0 {
            Faults {
                latency_ms: 5_000,
                operation: Some("StartBuild".into()),
                ..Faults::default()
            }
        } else {
            Faults {
                throttle_fraction: 0.6,
                operation: Some("StartBuild".into()),
                ..Faults::default()
            }
        });
        let restart = attempted
            .checked_add(Duration::from_secs_f64(WINDOW * fraction))
            .expect("a time");
        let now = k8s_openapi::jiff::Timestamp::now();
        if let Ok(wait) = Duration::try_from(restart.duration_since(now)) {
            tokio::time::sleep(wait).await;
        }
        world.restart_operator(&args);
        for name in &batch {
            wait_for_async(
                &format!("{name} to succeed after the restart"),
                Duration::from_secs(90),
                Duration::from_millis(200),
                || async { world.succeeded(name).await.then_some(()) },
            )
            .await;
        }
        world.state().set_faults(Faults::default());
        names.extend(batch);
    }
    let per_uid = world.builds_per_uid();
    let mut trials = 0;
    for name in &names {
        let uid = world.get(name).await.metadata.uid.expect("uid");
        let builds = per_uid.get(&uid).cloned().unwrap_or_default();
        assert_eq!(builds.len(), 1, "{name}: {builds:?}");
        trials += 1;
    }
    assert_eq!(trials, 50);
}

/// A token belongs to one run: a second run with the same `idempotencyToken` (a different
/// object, so a different marker) is refused by CodeBuild, and the run says which run holds
/// the token instead of CodeBuild's bare "parameter mismatch".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_sharing_a_token_are_told_which_run_holds_it() {
    let world = world("token", SimConfig::default(), &[]).await;
    let spec = json!({"projectName": "my-app", "idempotencyToken": "release-42"});
    world.create("first", spec.clone()).await;
    wait_for_async(
        "the first run to start",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let run = world.get("first").await;
            run.status.and_then(|s| s.build.build_id)
        },
    )
    .await;
    world.create("second", spec).await;
    let run = world
        .wait_condition("second", "Stalled", "True", Duration::from_secs(30))
        .await;
    let stalled = condition(&run, "Stalled").unwrap();
    assert_eq!(stalled.reason, "IdempotencyTokenInUse");
    assert!(
        stalled.message.contains("is already used by run first"),
        "{}",
        stalled.message
    );
    assert_eq!(world.builds_per_uid().len(), 1, "no second build");
}

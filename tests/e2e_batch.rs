//! End to end, against the real apiserver, the simulator and the operator binary: batch
//! builds as CodeBuildBatchRuns. A matrix to Succeeded with every build group mirrored; a
//! graph whose ignored failure still succeeds; a failing batch stalled with the failing
//! group named; stop and delete stop the batch; a retry of the failed builds, made once;
//! SIGKILL while StartBuildBatch's answer is in flight, inside and past the token window,
//! leaves exactly one batch; batches tracked with BatchGetBuildBatches, not per build.

mod support;

use std::time::Duration;

use codebuild_operator::api::CodeBuildBatchRun;
use codebuild_sim::{Faults, SimConfig};
use serde_json::{Value, json};
use support::batch_world::{batch_condition, batch_manifest};
use support::world::{World, fast_sim};
use support::{kubectl, kubectl_ok, kubectl_stdin, output_text, wait_for, wait_for_async};

/// Each simulated phase of the batches' builds (and of the batch's own SUBMITTED and
/// COMBINE_ARTIFACTS) lasts this long: a build takes about 1.1 s.
const PHASE: &str = "0.1";

const MATRIX: &str = "version: 0.2
batch:
  build-matrix:
    dynamic:
      env:
        variables:
          TARGET: [linux, windows, mac]
phases:
  build:
    commands:
      - make $TARGET
";

const GRAPH: &str = "version: 0.2
batch:
  build-graph:
    - identifier: lint
    - identifier: test
      depend-on: [lint]
    - identifier: flaky
      ignore-failure: true
      env:
        variables:
          CODEBUILD_SIM_FAIL_PHASE: BUILD
phases:
  build:
    commands:
      - make
";

/// `broken` fails its BUILD phase; `ok` succeeds. With `succeed_on_retry`, `broken`
/// succeeds from that retry of its group on.
fn list_spec(succeed_on_retry: Option<u32>) -> String {
    let retry = succeed_on_retry
        .map(|n| format!("\n          CODEBUILD_SIM_SUCCEED_ON_RETRY: \"{n}\""))
        .unwrap_or_default();
    format!(
        "version: 0.2
batch:
  build-list:
    - identifier: ok
    - identifier: broken
      env:
        variables:
          CODEBUILD_SIM_FAIL_PHASE: BUILD{retry}
phases:
  build:
    commands:
      - make
"
    )
}

/// A batch run spec of project `app` running `buildspec`, every phase `phase` seconds long.
fn spec(buildspec: &str, phase: &str) -> Value {
    json!({"projectName": "app", "buildspecOverride": buildspec,
           "environmentVariablesOverride": [{"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": phase}]})
}

/// A world whose simulator has project `app` with batch builds enabled.
async fn world(prefix: &str, config: SimConfig, extra_args: &[&str]) -> World {
    let world = World::start_with(prefix, config, &[], extra_args).await;
    world.batch_project("app");
    world
}

fn status(run: &CodeBuildBatchRun) -> Value {
    serde_json::to_value(run.status.clone().unwrap_or_default()).unwrap()
}

fn group<'a>(status: &'a Value, identifier: &str) -> &'a Value {
    status["buildGroups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["identifier"] == identifier))
        .unwrap_or_else(|| panic!("no group {identifier} in {status}"))
}

fn reasons(events: &[k8s_openapi::api::events::v1::Event]) -> Vec<String> {
    events.iter().filter_map(|e| e.reason.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_batch_succeeds_with_every_build_group_mirrored() {
    let world = world("batch-matrix", fast_sim(), &[]).await;
    let uid = world.create_batch("matrix", spec(MATRIX, PHASE)).await;
    let run = world
        .wait_batch_condition("matrix", "Succeeded", "True", Duration::from_secs(90))
        .await;
    let s = status(&run);
    assert_eq!(s["buildBatchStatus"], "SUCCEEDED", "{s}");
    assert_eq!(s["currentPhase"], "SUCCEEDED");
    assert_eq!(s["builds"], "3/3");
    assert!(s["buildBatchNumber"].is_i64(), "{s}");
    assert_eq!(batch_condition(&run, "Ready").unwrap().status, "True");
    assert_eq!(batch_condition(&run, "Stalled").unwrap().status, "False");
    assert_eq!(
        batch_condition(&run, "Reconciling").unwrap().status,
        "False"
    );
    // The status is the simulator's batch, group by group.
    let batch = world.sim_batch(s["id"].as_str().unwrap());
    assert_eq!(s["arn"], batch["arn"]);
    let groups = s["buildGroups"].as_array().unwrap();
    assert_eq!(
        groups.len(),
        4,
        "DOWNLOAD_SOURCE and three combinations: {s}"
    );
    for g in groups {
        let current = &g["currentBuildSummary"];
        assert_eq!(current["buildStatus"], "SUCCEEDED", "{g}");
        let id = current["buildId"]
            .as_str()
            .expect("the build id of the group");
        let build = world.sim_build(id);
        assert_eq!(build["buildBatchArn"], s["arn"], "{id}");
        assert_eq!(build["buildStatus"], "SUCCEEDED");
    }
    let phases: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["phaseType"].as_str())
        .collect();
    assert_eq!(
        phases,
        [
            "SUBMITTED",
            "DOWNLOAD_BATCHSPEC",
            "IN_PROGRESS",
            "COMBINE_ARTIFACTS",
            "SUCCEEDED"
        ]
    );
    assert_eq!(world.batches_per_uid().get(&uid).map(Vec::len), Some(1));
    assert_eq!(world.calls("StartBuildBatch"), 1);
    // Followed by BatchGetBuildBatches only: the member builds are read from the batch.
    assert_eq!(
        world.calls("BatchGetBuilds"),
        0,
        "no build polled one by one"
    );
    assert!(world.calls("BatchGetBuildBatches") >= 1);
    let events = reasons(&world.events("matrix").await);
    assert!(
        events.contains(&"BuildBatchStarted".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"BuildBatchSucceeded".to_owned()),
        "{events:?}"
    );
    // kubectl shows status, phase and builds done / total.
    let table = kubectl_ok(&["get", "cbbr", "matrix", "-n", world.ns()]);
    assert!(
        table.contains("SUCCEEDED") && table.contains("3/3"),
        "{table}"
    );
    // The finalizer goes once the batch is final; kubectl wait reads the conditions.
    assert!(run.metadata.finalizers.unwrap_or_default().is_empty());
    let out = kubectl(&[
        "wait",
        "--for=condition=Succeeded",
        "cbbr/matrix",
        "-n",
        world.ns(),
        "--timeout=10s",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_whose_ignored_entry_fails_still_succeeds() {
    let world = world("batch-graph", fast_sim(), &[]).await;
    world.create_batch("graph", spec(GRAPH, PHASE)).await;
    let run = world
        .wait_batch_condition("graph", "Succeeded", "True", Duration::from_secs(90))
        .await;
    let s = status(&run);
    assert_eq!(s["buildBatchStatus"], "SUCCEEDED");
    let flaky = group(&s, "flaky");
    assert_eq!(flaky["ignoreFailure"], true);
    assert_eq!(flaky["currentBuildSummary"]["buildStatus"], "FAILED");
    let test = group(&s, "test");
    assert_eq!(test["dependsOn"], json!(["lint"]));
    assert_eq!(test["currentBuildSummary"]["buildStatus"], "SUCCEEDED");
    // `test` ran after `lint` ended.
    let lint_build = world.sim_build(
        group(&s, "lint")["currentBuildSummary"]["buildId"]
            .as_str()
            .unwrap(),
    );
    let test_build = world.sim_build(test["currentBuildSummary"]["buildId"].as_str().unwrap());
    assert!(
        test_build["startTime"].as_f64() >= lint_build["endTime"].as_f64(),
        "{test_build}\n{lint_build}"
    );
    let succeeded = batch_condition(&run, "Succeeded").unwrap();
    assert!(
        succeeded
            .message
            .contains("failures ignored: group flaky FAILED"),
        "{}",
        succeeded.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_stalled_with_the_failing_group_named() {
    let world = world("batch-fail", fast_sim(), &[]).await;
    world
        .create_batch("failing", spec(&list_spec(None), PHASE))
        .await;
    let run = world
        .wait_batch_condition("failing", "Stalled", "True", Duration::from_secs(90))
        .await;
    let s = status(&run);
    assert_eq!(s["buildBatchStatus"], "FAILED", "{s}");
    let succeeded = batch_condition(&run, "Succeeded").unwrap();
    assert_eq!(succeeded.status, "False");
    assert_eq!(succeeded.reason, "FAILED");
    let broken_build = group(&s, "broken")["currentBuildSummary"]["buildId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        succeeded
            .message
            .contains(&format!("group broken FAILED (build {broken_build})")),
        "{}",
        succeeded.message
    );
    assert!(
        !succeeded.message.contains("group ok"),
        "{}",
        succeeded.message
    );
    let failed = world
        .wait_event("failing", "Warning", "BuildBatchFailed")
        .await;
    assert!(
        failed
            .note
            .unwrap_or_default()
            .contains("group broken FAILED"),
        "the Event names the group too"
    );
    let out = kubectl(&[
        "wait",
        "--for=condition=Stalled",
        "cbbr/failing",
        "-n",
        world.ns(),
        "--timeout=10s",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_delete_stop_the_batch() {
    let world = world("batch-stop", fast_sim(), &[]).await;
    // Builds of ten 30 s phases: running for the whole test.
    world.create_batch("stopped", spec(MATRIX, "30")).await;
    world.create_batch("deleted", spec(MATRIX, "30")).await;
    let running = |name: &'static str| {
        let world = &world;
        async move {
            world
                .wait_batch(
                    name,
                    "a batch id, IN_PROGRESS",
                    Duration::from_secs(30),
                    |r| {
                        r.status
                            .as_ref()
                            .is_some_and(|s| s.batch.id.is_some() && !s.batch.is_finished())
                    },
                )
                .await
        }
    };
    let stopped_id = running("stopped").await.status.unwrap().batch.id.unwrap();
    let deleted_id = running("deleted").await.status.unwrap().batch.id.unwrap();

    world.patch_batch("stopped", json!({"spec": {"operator": {"stop": true}}}));
    let run = world
        .wait_batch_condition("stopped", "Succeeded", "False", Duration::from_secs(30))
        .await;
    assert_eq!(
        batch_condition(&run, "Succeeded").unwrap().reason,
        "STOPPED"
    );
    assert_eq!(world.sim_batch(&stopped_id)["buildBatchStatus"], "STOPPED");
    let events = reasons(&world.events("stopped").await);
    assert!(events.contains(&"StopRequested".to_owned()), "{events:?}");
    world
        .wait_event("stopped", "Normal", "BuildBatchStopped")
        .await;
    assert!(
        world.get_batch_opt("stopped").await.is_some(),
        "stop keeps the object"
    );

    kubectl_ok(&["delete", "cbbr/deleted", "-n", world.ns(), "--wait=false"]);
    super_wait_gone(&world, "deleted").await;
    let batch = world.sim_batch(&deleted_id);
    assert_eq!(batch["buildBatchStatus"], "STOPPED", "{batch}");
    assert_eq!(world.calls("StopBuildBatch"), 2);
}

async fn super_wait_gone(world: &World, name: &str) {
    wait_for_async(
        &format!("cbbr/{name} to be deleted"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async { world.get_batch_opt(name).await.is_none().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_the_failed_builds_is_made_once() {
    let mut world = world("batch-retry", fast_sim(), &[]).await;
    world
        .create_batch("retried", spec(&list_spec(Some(1)), PHASE))
        .await;
    world
        .wait_batch_condition("retried", "Stalled", "True", Duration::from_secs(90))
        .await;
    let ok_build_before =
        group(&status(&world.get_batch("retried").await), "ok")["currentBuildSummary"]["buildId"]
            .clone();

    world.patch_batch(
        "retried",
        json!({"spec": {"operator": {"retry": {"count": 1, "retryType": "RETRY_FAILED_BUILDS"}}}}),
    );
    let run = world
        .wait_batch_condition("retried", "Succeeded", "True", Duration::from_secs(90))
        .await;
    let s = status(&run);
    let retries = world.state().batch_retries();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0].request["retryType"], "RETRY_FAILED_BUILDS");
    assert_eq!(
        retries[0].idempotency_token.as_deref(),
        s["retryAttempts"][0]["idempotencyToken"].as_str()
    );
    assert_eq!(s["retryAttempts"][0]["count"], 1);
    assert_eq!(s["retryAttempts"][0]["retried"], true);
    // Only the failed group ran again; its first build is a prior attempt.
    let broken = group(&s, "broken");
    assert_eq!(broken["currentBuildSummary"]["buildStatus"], "SUCCEEDED");
    assert_eq!(
        broken["priorBuildSummaryList"][0]["buildStatus"], "FAILED",
        "{broken}"
    );
    assert_eq!(
        group(&s, "ok")["currentBuildSummary"]["buildId"],
        ok_build_before
    );
    let events = reasons(&world.events("retried").await);
    assert!(events.contains(&"RetryRequested".to_owned()), "{events:?}");

    // A restarted operator makes no second retry, and the batch stays as it is.
    world.restart_operator(&[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(world.state().batch_retries().len(), 1);
    assert_eq!(world.calls("StartBuildBatch"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_count_cannot_go_down_and_the_members_cannot_change() {
    let world = world("batch-immutable", fast_sim(), &[]).await;
    let mut with_retry = spec(MATRIX, "30");
    with_retry["operator"] = json!({"retry": {"count": 2, "retryType": "RETRY_ALL_BUILDS"}});
    world.create_batch("fixed", with_retry).await;
    let lower =
        json!({"spec": {"operator": {"retry": {"count": 1, "retryType": "RETRY_ALL_BUILDS"}}}});
    let out = kubectl(&[
        "patch",
        "cbbr/fixed",
        "-n",
        world.ns(),
        "--type=merge",
        "-p",
        &lower.to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("spec.operator.retry.count cannot go down"),
        "{}",
        output_text(&out)
    );
    let change = json!({"spec": {"buildspecOverride": GRAPH}});
    let out = kubectl(&[
        "patch",
        "cbbr/fixed",
        "-n",
        world.ns(),
        "--type=merge",
        "-p",
        &change.to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("spec.buildspecOverride cannot change after creation: a CodeBuildBatchRun is one build batch"),
        "{}",
        output_text(&out)
    );
    // The schema refuses what the model refuses.
    let bad = batch_manifest(
        "bad",
        json!({"projectName": "app", "buildTimeoutInMinutesOverride": 3}),
    );
    let out = kubectl_stdin(&["create", "-n", world.ns(), "-f", "-"], &bad);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("spec.buildTimeoutInMinutesOverride"),
        "{}",
        output_text(&out)
    );
}

/// Kills the operator with SIGKILL while StartBuildBatch has taken effect but its answer
/// has not arrived, then restarts it `restart_after` later. Returns the batch run's uid.
async fn kill_after_start_build_batch(
    world: &mut World,
    restart_after: Duration,
    extra: &[&str],
) -> String {
    world.state().set_faults(Faults {
        response_latency_ms: 30_000,
        operation: Some("StartBuildBatch".into()),
        ..Faults::default()
    });
    kubectl_stdin(
        &["apply", "-n", world.ns(), "-f", "-"],
        &batch_manifest("crash", spec(MATRIX, PHASE)),
    );
    wait_for(
        "StartBuildBatch to reach CodeBuild",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            world
                .state()
                .batch_starts()
                .iter()
                .any(|s| s.batch_id.is_some())
                .then_some(())
        },
    );
    if let Some(operator) = world.operator.as_mut() {
        operator.kill();
    }
    // The crash window: the batch run is claimed, the batch id is not recorded.
    let run = world.get_batch("crash").await;
    let uid = run.metadata.uid.clone().unwrap();
    let status = run.status.clone().unwrap_or_default();
    assert!(
        status.start_attempt.is_some(),
        "the attempt is recorded first"
    );
    assert_eq!(
        run.metadata.finalizers.clone().unwrap_or_default(),
        ["codebuild.operator.dev/stop-build"]
    );
    assert!(
        status.batch.id.is_none(),
        "the answer was lost, so no batch id"
    );
    assert_eq!(world.batches_per_uid().get(&uid).map(Vec::len), Some(1));

    world.state().set_faults(Faults::default());
    tokio::time::sleep(restart_after).await;
    world.restart_operator(extra);
    world
        .wait_batch_condition("crash", "Succeeded", "True", Duration::from_secs(90))
        .await;
    uid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_start_build_batch_answers_inside_the_window_leaves_one_batch() {
    let mut world = world("batch-crash-in", SimConfig::default(), &[]).await;
    let uid = kill_after_start_build_batch(&mut world, Duration::ZERO, &[]).await;
    assert_eq!(
        world.batches_per_uid().get(&uid).map(Vec::len),
        Some(1),
        "exactly one batch: {:?}",
        world.batches_per_uid()
    );
    // The restart repeated StartBuildBatch with the same token and got the same batch.
    let starts = world.state().batch_starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0].idempotency_token, starts[1].idempotency_token);
    assert!(
        starts[1].replayed,
        "the second call returned the first batch"
    );
    let run = world.get_batch("crash").await;
    assert_eq!(run.status.unwrap().batch.id, starts[0].batch_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_start_build_batch_answers_past_the_window_finds_the_batch() {
    // A 2-second token window in both, calls of at most 1 s, no clock skew: 3 s after the
    // attempt it is too late to repeat and no call is in flight, so the operator searches.
    let config = SimConfig {
        token_window_seconds: 2.0,
        ..SimConfig::default()
    };
    let window = [
        "--token-window",
        "2s",
        "--aws-operation-timeout",
        "1s",
        "--clock-skew",
        "0s",
    ];
    let mut world = world("batch-crash-past", config, &window).await;
    let uid = kill_after_start_build_batch(&mut world, Duration::from_secs(3), &window).await;
    assert_eq!(
        world.batches_per_uid().get(&uid).map(Vec::len),
        Some(1),
        "exactly one batch: {:?}",
        world.batches_per_uid()
    );
    assert_eq!(
        world.calls("StartBuildBatch"),
        1,
        "past the window: no repeat"
    );
    assert!(world.calls("ListBuildBatchesForProject") >= 1);
    // The Event follows the status write that adopted the batch (which may already be
    // final, and so seen as Succeeded before the Event is there).
    world
        .wait_event("crash", "Normal", "BuildBatchRecovered")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_polled_together_in_batched_calls() {
    let world = world("batch-many", fast_sim(), &["--poll-interval", "1s"]).await;
    let manifests: Vec<String> = (0..12)
        .map(|i| batch_manifest(&format!("b-{i:02}"), spec(MATRIX, "0.2")))
        .collect();
    let began = std::time::Instant::now();
    kubectl_stdin(
        &["apply", "-n", world.ns(), "-f", "-"],
        &manifests.join("\n"),
    );
    wait_for_async(
        "all 12 batch runs to succeed",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let runs = world
                .batch_runs()
                .list(&Default::default())
                .await
                .ok()?
                .items;
            let done = runs
                .iter()
                .filter(|r| batch_condition(r, "Succeeded").is_some_and(|c| c.status == "True"))
                .count();
            (runs.len() == 12 && done == 12).then_some(())
        },
    )
    .await;
    let elapsed = began.elapsed();
    let counters = world.state().counters();
    let calls = |op: &str| counters.calls.get(op).copied().unwrap_or(0);
    assert_eq!(calls("StartBuildBatch"), 12);
    assert_eq!(
        calls("BatchGetBuilds"),
        0,
        "member builds are read from the batch"
    );
    // One round per second at most (plus slack), each call carrying many batches.
    let rounds = elapsed.as_secs() + 3;
    assert!(
        calls("BatchGetBuildBatches") <= rounds,
        "{} BatchGetBuildBatches calls in {elapsed:?}",
        calls("BatchGetBuildBatches")
    );
    let per_call =
        counters.batch_get_build_batches_ids as f64 / calls("BatchGetBuildBatches").max(1) as f64;
    assert!(per_call > 3.0, "{per_call:.1} batch ids per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_build_batch_json_is_accepted_verbatim_and_read_back_unchanged() {
    let world = world("batch-verbatim", fast_sim(), &[]).await;
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/start-build-batch-full.json")).unwrap();
    world.create_batch("verbatim", fixture.clone()).await;
    let stored = kubectl_ok(&["get", "cbbr/verbatim", "-n", world.ns(), "-o", "json"]);
    let stored: Value = serde_json::from_str(&stored).unwrap();
    for (member, value) in fixture.as_object().unwrap() {
        assert_eq!(
            stored["spec"].get(member),
            Some(value),
            "the apiserver changed {member}"
        );
    }
    assert_eq!(
        stored["spec"].as_object().unwrap().len(),
        fixture.as_object().unwrap().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_example_runs_to_success_in_the_simulator() {
    let world = World::start_with("batch-examples", fast_sim(), &[], &[]).await;
    world.batch_project("my-app");
    let mut names = Vec::new();
    for file in support::batch_example_files() {
        let path = file.to_string_lossy().into_owned();
        kubectl_ok(&["apply", "-n", world.ns(), "-f", &path]);
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        names.push(doc["metadata"]["name"].as_str().unwrap().to_owned());
    }
    for name in &names {
        let run = world
            .wait_batch_condition(name, "Succeeded", "True", Duration::from_secs(120))
            .await;
        let s = status(&run);
        let groups = s["buildGroups"].as_array().map_or(0, Vec::len);
        assert!(groups >= 3, "{name}: {s}");
    }
    let matrix = status(&world.get_batch("my-app-matrix").await);
    assert_eq!(matrix["builds"], "6/6", "three targets x two images");
}

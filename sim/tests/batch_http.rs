//! Batch builds over HTTP on real (scaled) time: a batch polled to its end, its member builds
//! through BatchGetBuilds, stop and retry, error shapes, the admin API, the SigV4 identity,
//! and rate limits, faults and the build-slot limit applied to batch operations.

mod common;

use codebuild_sim::{RateLimits, Server, SimConfig};
use common::{admin_get, admin_post, call};
use serde_json::{Value, json};
use std::time::Duration;

const SPEC: &str = "version: 0.2
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
";

/// A phase lasts 1 ms: a build takes 10 ms, a batch about 40 ms.
async fn sim() -> Server {
    let sim = Server::start(SimConfig {
        time_scale: 0.001,
        seed: Some(5),
        ..SimConfig::default()
    })
    .await
    .expect("start");
    let r = admin_post(
        &sim,
        "/_sim/projects",
        json!({"name": "demo", "buildBatchConfig": {"serviceRole": "arn:aws:iam::123456789012:role/batch"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sim
}

async fn get_batch(sim: &Server, id: &str) -> Value {
    let r = call(sim, "BatchGetBuildBatches", json!({"ids": [id]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["buildBatches"][0].clone()
}

/// Polls until the batch is complete (at most 5 s).
async fn until_complete(sim: &Server, id: &str) -> Value {
    for _ in 0..500 {
        let b = get_batch(sim, id).await;
        if b["complete"] == true {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("batch {id} did not complete");
}

fn group_status(b: &Value, identifier: &str) -> Value {
    b["buildGroups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["identifier"] == identifier))
        .map_or(Value::Null, |g| {
            g["currentBuildSummary"]["buildStatus"].clone()
        })
}

#[tokio::test]
async fn a_batch_polled_over_http_to_its_end() {
    let sim = sim().await;
    let r = call(
        &sim,
        "StartBuildBatch",
        json!({"projectName": "demo", "buildspecOverride": SPEC}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["buildBatch"]["id"].as_str().expect("id").to_string();
    let done = until_complete(&sim, &id).await;
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED", "{done}");
    assert_eq!(group_status(&done, "flaky"), "FAILED");
    assert_eq!(group_status(&done, "test"), "SUCCEEDED");
    let arns: Vec<String> = done["buildGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["currentBuildSummary"]["arn"].as_str())
        .map(|a| a.rsplit_once("build/").map_or(a, |(_, id)| id).to_string())
        .collect();
    assert_eq!(arns.len(), 4);
    let builds = call(&sim, "BatchGetBuilds", json!({"ids": arns})).await;
    let builds = builds.body["builds"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(builds.len(), 4);
    assert!(builds.iter().all(|b| b["buildBatchArn"] == done["arn"]));

    let listed = call(
        &sim,
        "ListBuildBatchesForProject",
        json!({"projectName": "demo"}),
    )
    .await;
    assert_eq!(listed.body, json!({"ids": [id]}));
    let starts = admin_get(&sim, "/_sim/batch-starts").await;
    assert_eq!(starts.body["batchStarts"][0]["accessKeyId"], "AKIDTEST");
    assert_eq!(starts.body["batchStarts"][0]["batchId"], json!(id));
    let all = admin_get(&sim, "/_sim/batches").await;
    assert_eq!(all.body["buildBatches"][0]["id"], json!(id));
    let c = sim.state().counters();
    assert_eq!(c.calls.get("StartBuildBatch"), Some(&1));
    assert!(c.batch_get_build_batches_ids >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn stop_and_retry_over_http() {
    let sim = sim().await;
    let long = json!({"projectName": "demo", "buildspecOverride": SPEC,
        "environmentVariablesOverride": [{"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": "1000000"}]});
    let r = call(&sim, "StartBuildBatch", long).await;
    let id = r.body["buildBatch"]["id"].as_str().expect("id").to_string();
    let stopped = call(&sim, "StopBuildBatch", json!({"id": id})).await;
    assert_eq!(stopped.status, 200);
    assert_eq!(stopped.body["buildBatch"]["buildBatchStatus"], "STOPPED");
    assert_eq!(
        stopped.body["buildBatch"]["phases"][0]["phaseStatus"],
        "STOPPED"
    );
    let retried = call(
        &sim,
        "RetryBuildBatch",
        json!({"id": id, "retryType": "RETRY_ALL_BUILDS"}),
    )
    .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(
        retried.body["buildBatch"]["buildBatchStatus"],
        "IN_PROGRESS"
    );
    let retries = admin_get(&sim, "/_sim/batch-retries").await;
    assert_eq!(
        retries.body["batchRetries"][0]["operation"],
        "RetryBuildBatch"
    );
    assert_eq!(retries.body["batchRetries"][0]["accessKeyId"], "AKIDTEST");

    let again = call(&sim, "RetryBuildBatch", json!({"id": id})).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["__type"], "InvalidInputException");
    let missing = call(&sim, "StopBuildBatch", json!({"id": "demo:nope"})).await;
    assert_eq!(
        missing.body,
        json!({"__type": "ResourceNotFoundException", "message": "Build batch demo:nope does not exist"})
    );
    let r = call(
        &sim,
        "ListBuildBatchesForProject",
        json!({"projectName": "nope"}),
    )
    .await;
    assert_eq!(r.body["__type"], "ResourceNotFoundException");
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limits_faults_and_build_slots_apply_to_batches() {
    let sim = sim().await;
    let limits = RateLimits::from_specs(&["StartBuildBatch=0.0001/s,burst=1"]).expect("spec");
    sim.state().set_rate_limits(limits);
    let req = json!({"projectName": "demo", "buildspecOverride": SPEC});
    assert_eq!(call(&sim, "StartBuildBatch", req.clone()).await.status, 200);
    let r = call(&sim, "StartBuildBatch", req.clone()).await;
    assert_eq!(r.body["__type"], "ThrottlingException");
    assert_eq!(
        sim.state().batch_starts().len(),
        1,
        "a throttled call is not a start"
    );
    assert_eq!(
        sim.state().counters().rate_limited.get("StartBuildBatch"),
        Some(&1)
    );
    sim.state().set_rate_limits(RateLimits::default());

    let faults = json!({"throttleFraction": 1.0, "operation": "BatchGetBuildBatches"});
    assert_eq!(admin_post(&sim, "/_sim/faults", faults).await.status, 200);
    let r = call(&sim, "BatchGetBuildBatches", json!({"ids": []})).await;
    assert_eq!(r.body["__type"], "ThrottlingException");

    // One build slot: the batch's builds take turns and StartBuild is refused meanwhile.
    let faults = json!({"maxConcurrentBuilds": 1});
    assert_eq!(admin_post(&sim, "/_sim/faults", faults).await.status, 200);
    let slow = json!({"projectName": "demo", "buildspecOverride": "batch:\n  build-list:\n    - identifier: a\n    - identifier: b\n",
        "environmentVariablesOverride": [{"name": "CODEBUILD_SIM_PHASE_SECONDS", "value": "5"}]});
    let r = call(&sim, "StartBuildBatch", slow).await;
    let id = r.body["buildBatch"]["id"].as_str().expect("id").to_string();
    let done = until_complete(&sim, &id).await;
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    let builds = sim.state().builds();
    let ends = |g: &str| -> (f64, f64) {
        let arn = done["buildGroups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|x| x["identifier"] == g))
            .and_then(|x| x["currentBuildSummary"]["arn"].as_str())
            .unwrap_or_default();
        let b = builds
            .iter()
            .find(|b| b["arn"] == arn)
            .cloned()
            .unwrap_or_default();
        let queued_end = b["phases"][1]["endTime"].as_f64().unwrap_or_default();
        (queued_end, b["endTime"].as_f64().unwrap_or_default())
    };
    for b in &builds {
        let ph: Vec<String> = b["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{}:{}-{}", p["phaseType"], p["startTime"], p["endTime"]))
            .collect();
        eprintln!(
            "{} {} {:?}",
            b["id"],
            b["buildBatchArn"],
            &ph[..3.min(ph.len())]
        );
        eprintln!("   end {}", b["endTime"]);
    }
    let ((_, a_end), (b_leaves_queue, _)) = (ends("a"), ends("b"));
    assert!(
        b_leaves_queue >= a_end,
        "b ran after a: {b_leaves_queue} < {a_end}"
    );
    sim.shutdown().await;
}

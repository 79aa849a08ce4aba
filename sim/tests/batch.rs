//! Batch builds through the operations, in-process on a controlled clock: batchspecs, member
//! builds, dependency order, failures, fast-fail, stop, retry, restrictions, the build-slot
//! queue, idempotency, the call log and listing.

use codebuild_sim::{ErrorKind, Faults, SimConfig, SimState};
use serde_json::{Value, json};

/// Every phase lasts 10 s (time scale 1): a build takes 100 s, a batch's SUBMITTED 10 s and
/// its DOWNLOAD_BATCHSPEC the 100 s of its DOWNLOAD_SOURCE build.
fn state() -> SimState {
    let s = SimState::new(SimConfig {
        seed: Some(11),
        phase_seconds: 10.0,
        ..SimConfig::default()
    });
    let batch_config =
        json!({"buildBatchConfig": {"serviceRole": "arn:aws:iam::123456789012:role/batch"}});
    s.create_project_with("proj", &batch_config)
        .expect("project");
    s
}

fn try_start(s: &SimState, req: Value) -> Result<Value, codebuild_sim::ApiError> {
    s.call("StartBuildBatch", &req, Some("AKIDBATCH"))
        .map(|v| v["buildBatch"].clone())
}

fn start(s: &SimState, req: Value) -> Value {
    try_start(s, req).unwrap_or_else(|e| panic!("StartBuildBatch: {e}"))
}

fn with_spec(spec: &str) -> Value {
    json!({"projectName": "proj", "buildspecOverride": spec})
}

fn id(b: &Value) -> String {
    b["id"].as_str().unwrap_or_default().to_string()
}

/// Moves the clock to `secs` after the batch started and reads it.
fn at(s: &SimState, b: &Value, secs: f64) -> Value {
    let target = b["startTime"].as_f64().unwrap_or_default() + secs;
    s.advance_clock((target - s.now()).max(0.0));
    s.batch(&id(b)).unwrap_or_default()
}

fn group<'a>(b: &'a Value, identifier: &str) -> &'a Value {
    b["buildGroups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["identifier"] == identifier))
        .unwrap_or(&Value::Null)
}

fn summary<'a>(b: &'a Value, identifier: &str) -> &'a Value {
    &group(b, identifier)["currentBuildSummary"]
}

fn status(b: &Value, identifier: &str) -> String {
    summary(b, identifier)["buildStatus"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

/// The build of a group's current attempt.
fn member(s: &SimState, b: &Value, identifier: &str) -> Value {
    let arn = summary(b, identifier)["arn"].as_str().unwrap_or_default();
    let id = arn.rsplit_once("build/").map_or("", |(_, id)| id);
    s.build(id).unwrap_or_default()
}

fn phases(b: &Value) -> Vec<(String, String)> {
    b["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let kind = p["phaseType"].as_str().unwrap_or_default().to_string();
            (kind, p["phaseStatus"].as_str().unwrap_or("-").to_string())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const GRAPH: &str = "version: 0.2
batch:
  build-graph:
    - identifier: first
    - identifier: second
      depend-on: [first]
    - identifier: third
      depend-on: [first]
      env:
        compute-type: BUILD_GENERAL1_MEDIUM
        variables:
          WHICH: third
phases:
  build:
    commands:
      - make
";

#[test]
fn a_graph_plans_its_builds_after_reading_the_batchspec() {
    let s = state();
    let b = start(&s, with_spec(GRAPH));
    assert_eq!(b["buildBatchStatus"], "IN_PROGRESS");
    assert_eq!(b["currentPhase"], "SUBMITTED");
    assert_eq!(b["buildBatchNumber"], 1);
    assert_eq!(b["complete"], false);
    assert!(b.get("buildGroups").is_none(), "nothing planned yet");
    let (project, uuid) = id(&b)
        .split_once(':')
        .map(|(p, u)| (p.to_string(), u.to_string()))
        .unwrap_or_default();
    assert_eq!((project.as_str(), uuid.len()), ("proj", 36));
    assert_eq!(
        b["arn"],
        format!(
            "arn:aws:codebuild:us-east-1:123456789012:build-batch/{}",
            id(&b)
        )
    );

    let reading = at(&s, &b, 50.0);
    assert_eq!(reading["currentPhase"], "DOWNLOAD_BATCHSPEC");
    assert_eq!(status(&reading, "DOWNLOAD_SOURCE"), "IN_PROGRESS");
    let source = member(&s, &reading, "DOWNLOAD_SOURCE");
    assert_eq!(source["buildBatchArn"], b["arn"]);
    assert_eq!(
        source["startTime"].as_f64(),
        b["startTime"].as_f64().map(|t| t + 10.0)
    );

    let running = at(&s, &b, 150.0);
    assert_eq!(running["currentPhase"], "IN_PROGRESS");
    assert_eq!(status(&running, "first"), "IN_PROGRESS");
    for waiting in ["second", "third"] {
        assert_eq!(
            status(&running, waiting),
            "PENDING",
            "the service shows PENDING"
        );
        let arn = summary(&running, waiting)["arn"]
            .as_str()
            .unwrap_or_default();
        let build_id = arn.rsplit_once("build/").map_or("", |(_, id)| id);
        assert!(build_id.starts_with("proj:"));
        assert!(s.build(build_id).is_none(), "not started yet");
    }
    assert_eq!(group(&running, "second")["dependsOn"], json!(["first"]));
    assert_eq!(group(&running, "first")["dependsOn"], json!([]));
    assert!(
        group(&running, "DOWNLOAD_SOURCE")
            .get("dependsOn")
            .is_none()
    );
}

#[test]
fn a_graph_ends_with_each_build_started_when_its_dependencies_ended() {
    let s = state();
    let b = start(&s, with_spec(GRAPH));
    let done = at(&s, &b, 1000.0);
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    assert_eq!(done["complete"], true);
    assert_eq!(
        phases(&done),
        pairs(&[
            ("SUBMITTED", "SUCCEEDED"),
            ("DOWNLOAD_BATCHSPEC", "SUCCEEDED"),
            ("IN_PROGRESS", "SUCCEEDED"),
            ("COMBINE_ARTIFACTS", "SUCCEEDED"),
            ("SUCCEEDED", "-"),
        ])
    );
    let first = member(&s, &done, "first");
    let (second, third) = (member(&s, &done, "second"), member(&s, &done, "third"));
    assert_eq!(
        second["startTime"], first["endTime"],
        "second waits for first"
    );
    assert_eq!(third["startTime"], first["endTime"]);
    assert_eq!(summary(&done, "second")["requestedOn"], second["startTime"]);
    assert_eq!(done["endTime"], third["endTime"]);
    assert_eq!(third["environment"]["computeType"], "BUILD_GENERAL1_MEDIUM");
    let vars = &third["environment"]["environmentVariables"];
    assert_eq!(
        vars,
        &json!([{"name": "WHICH", "value": "third", "type": "PLAINTEXT"}])
    );
    assert_eq!(first["environment"]["computeType"], "BUILD_GENERAL1_SMALL");
    assert_eq!(
        summary(&done, "third")["primaryArtifact"],
        json!({"type": "no_artifacts", "identifier": "third"})
    );
    assert_eq!(s.builds().len(), 4, "DOWNLOAD_SOURCE and three entries");
    let listed = s.call(
        "ListBuildsForProject",
        &json!({"projectName": "proj"}),
        None,
    );
    assert_eq!(
        listed
            .map(|l| l["ids"].as_array().map(Vec::len))
            .ok()
            .flatten(),
        Some(4)
    );
    assert_eq!(start(&s, with_spec(GRAPH))["buildBatchNumber"], 2);
}

#[test]
fn a_failed_entry_fails_the_batch_and_its_dependents_never_run() {
    let s = state();
    let spec = GRAPH.replace(
        "    - identifier: first\n",
        "    - identifier: first\n      env:\n        variables:\n          CODEBUILD_SIM_FAIL_PHASE: BUILD\n",
    );
    let b = start(&s, with_spec(&spec));
    let done = at(&s, &b, 1000.0);
    assert_eq!(done["buildBatchStatus"], "FAILED");
    assert_eq!(done["currentPhase"], "FAILED");
    assert_eq!(
        phases(&done),
        pairs(&[
            ("SUBMITTED", "SUCCEEDED"),
            ("DOWNLOAD_BATCHSPEC", "SUCCEEDED"),
            ("IN_PROGRESS", "CLIENT_ERROR"),
            ("FAILED", "-"),
        ])
    );
    assert_eq!(status(&done, "first"), "FAILED");
    assert_eq!(status(&done, "second"), "STOPPED");
    assert_eq!(status(&done, "third"), "STOPPED");
    assert!(summary(&done, "second").get("primaryArtifact").is_none());
    let first = member(&s, &done, "first");
    assert_eq!(done["endTime"], first["endTime"]);
    assert_eq!(s.builds().len(), 2, "the dependents were never started");
}

#[test]
fn ignore_failure_lets_dependents_run_and_the_batch_succeed() {
    let s = state();
    let spec = GRAPH.replace(
        "    - identifier: first\n",
        "    - identifier: first\n      ignore-failure: true\n      env:\n        variables:\n          CODEBUILD_SIM_FAIL_PHASE: BUILD\n",
    );
    let done = at(&s, &start(&s, with_spec(&spec)), 1000.0);
    assert_eq!(status(&done, "first"), "FAILED");
    assert_eq!(group(&done, "first")["ignoreFailure"], true);
    assert_eq!(status(&done, "second"), "SUCCEEDED");
    assert_eq!(status(&done, "third"), "SUCCEEDED");
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
}

const LIST: &str = "batch:
  fast-fail: FAST
  build-list:
    - identifier: quick_fail
      env:
        variables:
          CODEBUILD_SIM_FAIL_PHASE: PRE_BUILD
    - identifier: slow
      env:
        variables:
          CODEBUILD_SIM_PHASE_SECONDS: '30'
";

#[test]
fn without_fast_fail_the_other_builds_finish() {
    let s = state();
    let b = start(&s, with_spec(&LIST.replace("FAST", "false")));
    let done = at(&s, &b, 2000.0);
    assert_eq!(done["buildBatchStatus"], "FAILED");
    assert_eq!(status(&done, "quick_fail"), "FAILED");
    assert_eq!(status(&done, "slow"), "SUCCEEDED");
    assert_eq!(done["endTime"], member(&s, &done, "slow")["endTime"]);
}

#[test]
fn fast_fail_stops_the_running_builds() {
    let s = state();
    let b = start(&s, with_spec(&LIST.replace("FAST", "true")));
    let done = at(&s, &b, 2000.0);
    assert_eq!(done["buildBatchStatus"], "FAILED");
    assert_eq!(status(&done, "slow"), "STOPPED");
    let failed = member(&s, &done, "quick_fail");
    let slow = member(&s, &done, "slow");
    assert_eq!(slow["buildStatus"], "STOPPED");
    assert_eq!(slow["endTime"], failed["endTime"]);
    assert_eq!(done["endTime"], failed["endTime"]);
}

#[test]
fn a_matrix_runs_every_combination_with_its_variables() {
    let s = state();
    let spec = "batch:
  build-matrix:
    static:
      env:
        privileged-mode: true
    dynamic:
      env:
        compute-type: [BUILD_GENERAL1_SMALL, BUILD_GENERAL1_LARGE]
        variables:
          TARGET: [linux, windows]
";
    let done = at(&s, &start(&s, with_spec(spec)), 1000.0);
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    let ids: Vec<&str> = done["buildGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["identifier"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "DOWNLOAD_SOURCE",
            "BUILD_GENERAL1_SMALL_TARGET_linux",
            "BUILD_GENERAL1_SMALL_TARGET_windows",
            "BUILD_GENERAL1_LARGE_TARGET_linux",
            "BUILD_GENERAL1_LARGE_TARGET_windows",
        ]
    );
    let b = member(&s, &done, "BUILD_GENERAL1_LARGE_TARGET_windows");
    assert_eq!(b["environment"]["computeType"], "BUILD_GENERAL1_LARGE");
    assert_eq!(b["environment"]["privilegedMode"], true);
    assert_eq!(
        b["environment"]["environmentVariables"],
        json!([{"name": "TARGET", "value": "windows", "type": "PLAINTEXT"}])
    );
    let starts: Vec<Value> = ids[1..]
        .iter()
        .map(|i| member(&s, &done, i)["startTime"].clone())
        .collect();
    assert!(
        starts.iter().all(|t| *t == starts[0]),
        "a matrix runs in parallel"
    );
}

#[test]
fn combined_artifacts_take_a_phase_and_members_show_theirs() {
    let s = state();
    let req = json!({
        "projectName": "proj",
        "buildspecOverride": "batch:\n  build-list:\n    - identifier: a\n    - identifier: b\n",
        "artifactsOverride": {"type": "S3", "location": "bucket", "name": "out.zip"},
        "secondaryArtifactsOverride": [{"type": "S3", "location": "b2", "artifactIdentifier": "extra"}],
        "buildBatchConfigOverride": {"combineArtifacts": true},
    });
    let b = start(&s, req);
    assert_eq!(b["artifacts"]["location"], "arn:aws:s3:::bucket/out.zip");
    assert_eq!(b["buildBatchConfig"]["combineArtifacts"], true);
    let done = at(&s, &b, 1000.0);
    let combine = &done["phases"][3];
    assert_eq!(combine["phaseType"], "COMBINE_ARTIFACTS");
    assert_eq!(combine["durationInSeconds"], 10);
    assert_eq!(
        summary(&done, "a")["primaryArtifact"],
        json!({"type": "s3", "location": "arn:aws:s3:::bucket/out.zip", "identifier": "a"})
    );
    assert_eq!(
        summary(&done, "a")["secondaryArtifacts"],
        json!([{"type": "s3", "location": "arn:aws:s3:::b2/proj", "identifier": "extra"}])
    );
    assert_eq!(
        summary(&done, "DOWNLOAD_SOURCE")["primaryArtifact"],
        json!({"type": "no_artifacts", "identifier": "DOWNLOAD_SOURCE"})
    );
}

#[test]
fn an_unreadable_batchspec_fails_the_source_build_and_the_batch() {
    let s = state();
    let b = start(
        &s,
        with_spec("version: 0.2\nphases:\n  build:\n    commands:\n      - make\n"),
    );
    let done = at(&s, &b, 1000.0);
    assert_eq!(done["buildBatchStatus"], "FAILED");
    assert_eq!(
        phases(&done),
        pairs(&[
            ("SUBMITTED", "SUCCEEDED"),
            ("DOWNLOAD_BATCHSPEC", "FAILED"),
            ("FAILED", "-")
        ])
    );
    let context = &done["phases"][1]["contexts"][0];
    assert_eq!(context["statusCode"], "YAML_FILE_ERROR");
    assert!(
        context["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no batch section")
    );
    assert_eq!(status(&done, "DOWNLOAD_SOURCE"), "FAILED");
    let source = member(&s, &done, "DOWNLOAD_SOURCE");
    let failing: Vec<&Value> = source["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["phaseStatus"] == "FAILED")
        .collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["phaseType"], "DOWNLOAD_SOURCE");
    assert_eq!(failing[0]["contexts"][0]["statusCode"], "YAML_FILE_ERROR");
    assert_eq!(done["buildGroups"].as_array().map(Vec::len), Some(1));
    // A path cannot be read by the simulator at all.
    let path = at(&s, &start(&s, with_spec("ci/buildspec.yml")), 1000.0);
    let message = path["phases"][1]["contexts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("cannot read ci/buildspec.yml"),
        "{message}"
    );
}

#[test]
fn restrictions_fail_the_batch_before_any_entry_runs() {
    let s = state();
    let three = "batch:\n  build-list:\n    - identifier: a\n    - identifier: b\n    - identifier: c\n      env:\n        compute-type: BUILD_GENERAL1_LARGE\n";
    let mut req = with_spec(three);
    req["buildBatchConfigOverride"] = json!({"restrictions": {"maximumBuildsAllowed": 2}});
    let done = at(&s, &start(&s, req.clone()), 1000.0);
    assert_eq!(done["buildBatchStatus"], "FAILED");
    assert_eq!(done["phases"][1]["phaseStatus"], "FAILED");
    assert_eq!(
        done["phases"][1]["contexts"],
        json!([{"statusCode": "CLIENT_ERROR", "message": "Batch build has 3 builds, more than the maximum builds allowed (2)"}])
    );
    assert_eq!(status(&done, "DOWNLOAD_SOURCE"), "SUCCEEDED");
    req["buildBatchConfigOverride"] =
        json!({"restrictions": {"computeTypesAllowed": ["BUILD_GENERAL1_SMALL"]}});
    let done = at(&s, &start(&s, req), 1000.0);
    let message = done["phases"][1]["contexts"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("Build c uses compute type BUILD_GENERAL1_LARGE"),
        "{message}"
    );
    assert_eq!(
        s.builds().len(),
        2,
        "only the two DOWNLOAD_SOURCE builds ran"
    );
}

#[test]
fn stop_stops_the_running_builds_and_the_batch() {
    let s = state();
    let b = start(&s, with_spec(GRAPH));
    at(&s, &b, 150.0);
    let stopped = s
        .call("StopBuildBatch", &json!({"id": id(&b)}), None)
        .map(|v| v["buildBatch"].clone())
        .unwrap_or_default();
    assert_eq!(stopped["buildBatchStatus"], "STOPPED");
    assert_eq!(stopped["complete"], true);
    assert_eq!(
        phases(&stopped),
        pairs(&[
            ("SUBMITTED", "SUCCEEDED"),
            ("DOWNLOAD_BATCHSPEC", "SUCCEEDED"),
            ("IN_PROGRESS", "STOPPED"),
            ("STOPPED", "-"),
        ])
    );
    assert_eq!(status(&stopped, "first"), "STOPPED");
    assert_eq!(status(&stopped, "second"), "STOPPED");
    assert_eq!(member(&s, &stopped, "first")["buildStatus"], "STOPPED");
    let later = at(&s, &b, 5000.0);
    assert_eq!(later, stopped, "a stopped batch stays as it was");
    let again = s.call("StopBuildBatch", &json!({"id": id(&b)}), None);
    assert_eq!(again.map(|v| v["buildBatch"].clone()).ok(), Some(stopped));
    let e = s
        .call("StopBuildBatch", &json!({"id": "proj:nope"}), None)
        .err();
    assert_eq!(
        e.map(|e| (e.kind, e.message)),
        Some((
            ErrorKind::ResourceNotFound,
            "Build batch proj:nope does not exist".into()
        ))
    );
    assert!(s.call("StopBuildBatch", &json!({}), None).is_err());
}

const FLAKY: &str = "batch:
  build-graph:
    - identifier: ok
    - identifier: flaky
      env:
        variables:
          CODEBUILD_SIM_FAIL_PHASE: BUILD
          CODEBUILD_SIM_SUCCEED_ON_RETRY: '1'
    - identifier: after
      depend-on: [flaky]
";

fn retry(s: &SimState, b: &Value, kind: Option<&str>) -> Result<Value, codebuild_sim::ApiError> {
    let mut req = json!({"id": id(b)});
    if let Some(k) = kind {
        req["retryType"] = json!(k);
    }
    s.call("RetryBuildBatch", &req, Some("AKIDRETRY"))
        .map(|v| v["buildBatch"].clone())
}

#[test]
fn retrying_failed_builds_reruns_them_and_keeps_the_prior_summaries() {
    let s = state();
    let b = start(&s, with_spec(FLAKY));
    let e = retry(&s, &b, Some("RETRY_FAILED_BUILDS")).err();
    assert_eq!(
        e.map(|e| e.kind),
        Some(ErrorKind::InvalidInput),
        "still running"
    );
    let failed = at(&s, &b, 1000.0);
    assert_eq!(failed["buildBatchStatus"], "FAILED");
    let ok_arn = summary(&failed, "ok")["arn"].clone();
    let flaky_arn = summary(&failed, "flaky")["arn"].clone();
    let retried = retry(&s, &b, Some("RETRY_FAILED_BUILDS")).unwrap_or_default();
    assert_eq!(retried["buildBatchStatus"], "IN_PROGRESS");
    assert_eq!(retried["currentPhase"], "SUBMITTED");
    assert_eq!(retried["complete"], false);
    assert!(retried.get("endTime").is_none());
    assert_eq!(
        phases(&retried)[3..],
        pairs(&[("FAILED", "RETRY"), ("SUBMITTED", "-")])
    );
    assert_eq!(
        summary(&retried, "ok")["arn"],
        ok_arn,
        "a succeeded build is kept"
    );
    assert!(
        group(&retried, "flaky")
            .get("currentBuildSummary")
            .is_none()
    );
    assert_eq!(
        group(&retried, "flaky")["priorBuildSummaryList"][0]["arn"],
        flaky_arn
    );

    let done = at(&s, &b, 3000.0);
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    assert_eq!(status(&done, "flaky"), "SUCCEEDED", "attempt 1 succeeds");
    assert_eq!(status(&done, "after"), "SUCCEEDED");
    assert_eq!(
        group(&done, "after")["priorBuildSummaryList"][0]["buildStatus"],
        "STOPPED"
    );
    assert_eq!(
        summary(&done, "DOWNLOAD_SOURCE"),
        summary(&failed, "DOWNLOAD_SOURCE"),
        "not re-run"
    );
    let phase_names: Vec<String> = phases(&done).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        phase_names,
        [
            "SUBMITTED",
            "DOWNLOAD_BATCHSPEC",
            "IN_PROGRESS",
            "FAILED",
            "SUBMITTED",
            "DOWNLOAD_BATCHSPEC",
            "IN_PROGRESS",
            "COMBINE_ARTIFACTS",
            "SUCCEEDED"
        ]
    );
    assert_eq!(done["startTime"], b["startTime"], "the same batch");
    let e = retry(&s, &b, None).err();
    assert!(e.is_some_and(|e| e.message.contains("it is SUCCEEDED")));
    assert_eq!(s.batch_retries().len(), 3);
    assert_eq!(
        s.batch_retries()[1].access_key_id.as_deref(),
        Some("AKIDRETRY")
    );
    assert_eq!(
        s.batch_retries()[0].error.as_deref(),
        Some("InvalidInputException")
    );
}

#[test]
fn retrying_all_builds_reruns_every_group() {
    let s = state();
    let b = start(&s, with_spec(FLAKY));
    at(&s, &b, 1000.0);
    let retried = retry(&s, &b, None).unwrap_or_default();
    for g in ["DOWNLOAD_SOURCE", "ok", "flaky", "after"] {
        assert_eq!(
            group(&retried, g)["priorBuildSummaryList"]
                .as_array()
                .map(Vec::len),
            Some(1),
            "{g}"
        );
    }
    let done = at(&s, &b, 3000.0);
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    assert_eq!(
        s.builds().len(),
        3 + 4,
        "DOWNLOAD_SOURCE, ok, flaky; then all four"
    );
    let e = s
        .call(
            "RetryBuildBatch",
            &json!({"id": id(&b), "retryType": "SOME"}),
            None,
        )
        .err();
    assert!(e.is_some_and(|e| e.message.contains("Member must satisfy enum value set")));
}

#[test]
fn idempotency_tokens_and_the_call_log() {
    let s = state();
    let mut req = with_spec(GRAPH);
    req["idempotencyToken"] = json!("tok-1");
    let a = start(&s, req.clone());
    let again = start(&s, req.clone());
    assert_eq!(id(&a), id(&again));
    let mut changed = req.clone();
    changed["sourceVersion"] = json!("other");
    let e = try_start(&s, changed).err();
    assert!(e.is_some_and(
        |e| e.kind == ErrorKind::InvalidInput && e.message.contains("Idempotency token")
    ));
    let starts = s.batch_starts();
    assert_eq!(starts.len(), 3);
    assert_eq!(starts[0].access_key_id.as_deref(), Some("AKIDBATCH"));
    assert_eq!(starts[0].operation, "StartBuildBatch");
    assert_eq!(starts[0].project_name.as_deref(), Some("proj"));
    assert_eq!(starts[0].request, req);
    assert_eq!(starts[0].batch_id, Some(id(&a)));
    assert!(!starts[0].replayed && starts[1].replayed);
    assert_eq!(starts[2].error.as_deref(), Some("InvalidInputException"));
    assert_eq!(s.batches().len(), 1);
    s.advance_clock(301.0);
    assert_ne!(
        id(&start(&s, req)),
        id(&a),
        "a new batch after the token window"
    );

    // A retry token replays the retry instead of retrying again.
    let spec = FLAKY.replace(
        "CODEBUILD_SIM_SUCCEED_ON_RETRY: '1'",
        "CODEBUILD_SIM_SUCCEED_ON_RETRY: '5'",
    );
    let b = start(&s, with_spec(&spec));
    at(&s, &b, 1000.0);
    let r = json!({"id": id(&b), "retryType": "RETRY_FAILED_BUILDS", "idempotencyToken": "r1"});
    assert!(s.call("RetryBuildBatch", &r, None).is_ok());
    at(&s, &b, 1100.0);
    let replay = s
        .call("RetryBuildBatch", &r, None)
        .map(|v| v["buildBatch"].clone())
        .unwrap_or_default();
    assert_eq!(replay["buildBatchStatus"], "IN_PROGRESS");
    assert!(s.batch_retries()[1].replayed);
    let other = json!({"id": id(&b), "retryType": "RETRY_ALL_BUILDS", "idempotencyToken": "r1"});
    let e = s.call("RetryBuildBatch", &other, None).err();
    assert!(e.is_some_and(|e| e.message.contains("Idempotency token")));
    let done = at(&s, &b, 3000.0);
    assert_eq!(done["buildBatchStatus"], "FAILED", "attempt 1 fails again");
    let runs = phases(&done)
        .iter()
        .filter(|(k, _)| k == "SUBMITTED")
        .count();
    assert_eq!(runs, 2, "retried once");
}

#[test]
fn bad_requests_are_refused_at_start() {
    let s = state();
    let e = try_start(&s, json!({"projectName": "nope"})).err();
    assert_eq!(
        e.map(|e| (e.kind, e.message)),
        Some((
            ErrorKind::ResourceNotFound,
            "Project cannot be found: arn:aws:codebuild:us-east-1:123456789012:project/nope".into()
        ))
    );
    s.create_project("plain").expect("project");
    let e = try_start(
        &s,
        json!({"projectName": "plain", "buildspecOverride": GRAPH}),
    )
    .err();
    assert!(e.is_some_and(|e| e.message.contains("Batch builds are not enabled")));
    let enabled = json!({"projectName": "plain", "buildspecOverride": GRAPH, "buildBatchConfigOverride": {"serviceRole": "r"}});
    assert!(try_start(&s, enabled).is_ok());
    let bad_var = GRAPH.replace("WHICH: third", "CODEBUILD_SIM_FAIL_PHASE: NOPE");
    let e = try_start(&s, with_spec(&bad_var)).err();
    assert!(e.is_some_and(|e| e.message.contains("unknown phase 'NOPE'")));
    let mut batch_var = with_spec(GRAPH);
    batch_var["environmentVariablesOverride"] =
        json!([{"name": "CODEBUILD_SIM_STATUS", "value": "GREAT"}]);
    assert!(try_start(&s, batch_var).is_err());
    let mut timeout = with_spec(GRAPH);
    timeout["buildTimeoutInMinutesOverride"] = json!(2);
    assert!(try_start(&s, timeout).is_err());
    assert_eq!(s.batches().len(), 1);
    assert_eq!(s.counters().calls.get("StartBuildBatch"), Some(&6));
}

#[test]
fn reserved_variables_of_the_batch_reach_every_entry_but_not_the_source_build() {
    let s = state();
    let mut req = with_spec("batch:\n  build-list:\n    - identifier: a\n    - identifier: b\n");
    req["environmentVariablesOverride"] =
        json!([{"name": "CODEBUILD_SIM_FAIL_PHASE", "value": "BUILD"}]);
    let done = at(&s, &start(&s, req), 1000.0);
    assert_eq!(status(&done, "DOWNLOAD_SOURCE"), "SUCCEEDED");
    assert_eq!(status(&done, "a"), "FAILED");
    assert_eq!(status(&done, "b"), "FAILED");
    assert_eq!(done["buildBatchStatus"], "FAILED");
}

#[test]
fn builds_of_batches_wait_for_a_slot_under_max_concurrent_builds() {
    let s = state();
    s.set_faults(Faults {
        max_concurrent_builds: Some(2),
        ..Faults::default()
    });
    let spec =
        "batch:\n  build-list:\n    - identifier: a\n    - identifier: b\n    - identifier: c\n";
    let b = start(&s, with_spec(spec));
    let running = at(&s, &b, 150.0);
    assert_eq!(status(&running, "c"), "IN_PROGRESS");
    let c = member(&s, &running, "c");
    assert_eq!(c["currentPhase"], "QUEUED", "a and b hold both slots");
    let e = s
        .call("StartBuild", &json!({"projectName": "proj"}), None)
        .err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::AccountLimitExceeded));
    let done = at(&s, &b, 2000.0);
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    let a = member(&s, &done, "a");
    let c = member(&s, &done, "c");
    let queued = &c["phases"][1];
    assert_eq!(queued["phaseType"], "QUEUED");
    assert_eq!(
        queued["endTime"], a["endTime"],
        "c leaves QUEUED when a ends"
    );
    assert_eq!(queued["durationInSeconds"], 10 + 80);
    assert_eq!(
        c["startTime"], a["startTime"],
        "all three were requested together"
    );
}

#[test]
fn a_batch_timeout_stops_its_builds() {
    let s = state();
    let mut req = with_spec("batch:\n  build-list:\n    - identifier: a\n");
    req["buildBatchConfigOverride"] = json!({"timeoutInMins": 2});
    let done = at(&s, &start(&s, req), 1000.0);
    assert_eq!(done["buildBatchStatus"], "TIMED_OUT");
    assert_eq!(
        phases(&done),
        pairs(&[
            ("SUBMITTED", "SUCCEEDED"),
            ("DOWNLOAD_BATCHSPEC", "SUCCEEDED"),
            ("IN_PROGRESS", "TIMED_OUT"),
            ("FAILED", "-"),
        ])
    );
    assert_eq!(status(&done, "a"), "STOPPED");
    assert_eq!(
        done["endTime"].as_f64(),
        done["startTime"].as_f64().map(|t| t + 120.0)
    );
}

#[test]
fn list_pages_newest_first_and_filters_by_status() {
    let s = state();
    let ids: Vec<String> = (0..5).map(|_| id(&start(&s, with_spec(GRAPH)))).collect();
    s.call("StopBuildBatch", &json!({"id": ids[1]}), None)
        .expect("stop");
    let list = |req: Value| {
        s.call("ListBuildBatchesForProject", &req, None)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let p1 = list(json!({"projectName": "proj", "maxResults": 2}));
    assert_eq!(p1["ids"], json!([ids[4], ids[3]]));
    let p2 = list(json!({"projectName": "proj", "maxResults": 2, "nextToken": p1["nextToken"]}));
    assert_eq!(p2["ids"], json!([ids[2], ids[1]]));
    let p3 = list(json!({"projectName": "proj", "maxResults": 2, "nextToken": p2["nextToken"]}));
    assert_eq!(p3["ids"], json!([ids[0]]));
    assert!(p3.get("nextToken").is_none());
    let asc = list(json!({"projectName": "proj", "sortOrder": "ASCENDING"}));
    assert_eq!(asc["ids"][0], json!(ids[0]));
    let stopped = list(json!({"projectName": "proj", "filter": {"status": "STOPPED"}}));
    assert_eq!(stopped["ids"], json!([ids[1]]));
    let running = list(json!({"projectName": "proj", "filter": {"status": "IN_PROGRESS"}}));
    assert_eq!(running["ids"].as_array().map(Vec::len), Some(4));
    let all = s
        .call("ListBuildBatches", &json!({}), None)
        .unwrap_or_default();
    assert_eq!(all["ids"].as_array().map(Vec::len), Some(5));
    let e = s
        .call(
            "ListBuildBatchesForProject",
            &json!({"projectName": "nope"}),
            None,
        )
        .err();
    assert_eq!(e.map(|e| e.kind), Some(ErrorKind::ResourceNotFound));
    for bad in [
        json!({"projectName": "proj", "maxResults": 0}),
        json!({"projectName": "proj", "maxResults": 101}),
        json!({"projectName": "proj", "filter": {"status": "DONE"}}),
        json!({"projectName": "proj", "nextToken": "garbage"}),
        json!({}),
    ] {
        assert!(
            s.call("ListBuildBatchesForProject", &bad, None).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn batch_get_build_batches_answers_in_request_order() {
    let s = state();
    let a = id(&start(&s, with_spec(GRAPH)));
    let b = id(&start(&s, with_spec(GRAPH)));
    let got = s
        .call(
            "BatchGetBuildBatches",
            &json!({"ids": [b, "proj:missing", a]}),
            None,
        )
        .unwrap_or_default();
    let order: Vec<&str> = got["buildBatches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(order, [b.as_str(), a.as_str()]);
    assert_eq!(got["buildBatchesNotFound"], json!(["proj:missing"]));
    let empty = s
        .call("BatchGetBuildBatches", &json!({"ids": []}), None)
        .unwrap_or_default();
    assert_eq!(
        empty,
        json!({"buildBatches": [], "buildBatchesNotFound": []})
    );
    let many: Vec<String> = (0..101).map(|i| format!("proj:{i}")).collect();
    let e = s
        .call("BatchGetBuildBatches", &json!({"ids": many}), None)
        .err();
    assert!(e.is_some_and(|e| e.message.contains("less than or equal to 100")));
    assert!(s.call("BatchGetBuildBatches", &json!({}), None).is_err());
    assert_eq!(s.counters().batch_get_build_batches_ids, 3);
    s.reset();
    assert!(s.batches().is_empty() && s.batch_starts().is_empty());
}

#[test]
fn a_retry_after_an_unreadable_batchspec_downloads_it_again() {
    let s = state();
    let b = start(&s, with_spec("version: 0.2\nphases: {}\n"));
    let failed = at(&s, &b, 1000.0);
    assert_eq!(status(&failed, "DOWNLOAD_SOURCE"), "FAILED");
    let retried = retry(&s, &b, Some("RETRY_FAILED_BUILDS")).unwrap_or_default();
    let source = group(&retried, "DOWNLOAD_SOURCE");
    assert_eq!(source["priorBuildSummaryList"][0]["buildStatus"], "FAILED");
    let again = at(&s, &b, 2000.0);
    assert_eq!(again["buildBatchStatus"], "FAILED");
    assert_eq!(
        status(&again, "DOWNLOAD_SOURCE"),
        "FAILED",
        "a new build, failing the same way"
    );
    assert_eq!(s.builds().len(), 2);
}

#[test]
fn many_batches_never_run_more_builds_than_the_limit() {
    let s = state();
    s.set_faults(Faults {
        max_concurrent_builds: Some(3),
        ..Faults::default()
    });
    let spec = "batch:\n  build-list:\n    - identifier: a\n    - identifier: b\n    - identifier: c\n    - identifier: d\n";
    let batches: Vec<Value> = (0..5).map(|_| start(&s, with_spec(spec))).collect();
    let done = at(&s, &batches[0], 100_000.0);
    assert_eq!(done["buildBatchStatus"], "SUCCEEDED");
    let builds = s.builds();
    assert_eq!(builds.len(), 5 * 5);
    // A build runs from the end of QUEUED to its end.
    let running = |t: f64| {
        builds
            .iter()
            .filter(|b| {
                b["phases"][1]["endTime"].as_f64() <= Some(t) && b["endTime"].as_f64() > Some(t)
            })
            .count()
    };
    let most = builds
        .iter()
        .filter_map(|b| b["phases"][1]["endTime"].as_f64())
        .map(running)
        .max();
    assert_eq!(most, Some(3));
    assert!(
        s.batches()
            .iter()
            .all(|b| b["buildBatchStatus"] == "SUCCEEDED")
    );
}

//! Reconcile against a mocked apiserver (tower-test) and the fake CodeBuild: the exact
//! sequence of calls for the exactly-once start, tracking and deletion, a policy decision
//! before every StartBuild, and every failure kind shown on the object.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codebuild::types::StatusType;
use codebuild_operator::api::CodeBuildBatchRun;
use codebuild_operator::api::{
    CodeBuildRun, CodeBuildRunPolicy, FIELD_MANAGER, FINALIZER, START_ATTEMPT_ANNOTATION,
};
use codebuild_operator::codebuild::{ApiError, ErrorKind};
use codebuild_operator::controller::{Context, Settings, reconcile, reconcile_batch};
use codebuild_operator::policy::Policies;
use codebuild_operator::tracker::{BatchTracker, Tracker};
use http::{Request, Response};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PartialObjectMeta;
use kube::client::Body;
use kube::core::PartialObjectMetaExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{reflector, watcher};
use kube::{Client, Resource};
use serde_json::{Value, json};
use support::fake::{FakeCodeBuild, build, run_json as run_object};
use support::fake_batch::batch;

// === the fake apiserver ===

/// What the fake apiserver is told to do besides answering plausibly.
#[derive(Default)]
struct ApiFaults {
    /// Answer this many writes (not Events) with 409 Conflict.
    conflicts: u32,
    /// Answer this many writes (not Events) with 422 Invalid.
    invalid: u32,
    /// Other runs a LIST of the namespace's runs returns besides the run itself.
    neighbours: Vec<Value>,
}

/// Answers every request plausibly and logs `k8s METHOD PATH` plus the body.
fn fake_apiserver(
    object: Value,
    log: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
    faults: Arc<Mutex<ApiFaults>>,
) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let object = Arc::new(Mutex::new(object));
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let event = path.contains("/events");
            log.lock().unwrap().push(if event {
                "k8s event".to_owned()
            } else {
                format!("k8s {method} {path}")
            });
            if method != "GET" {
                bodies.lock().unwrap().push(body.clone());
            }
            let (conflict, invalid) = {
                let mut faults = faults.lock().unwrap();
                let write = method != "GET" && !event;
                let conflict = write && faults.conflicts > 0;
                if conflict {
                    faults.conflicts -= 1;
                }
                let invalid = write && !conflict && faults.invalid > 0;
                if invalid {
                    faults.invalid -= 1;
                }
                (conflict, invalid)
            };
            let list = method == "GET"
                && (path.ends_with("/codebuildruns") || path.ends_with("/codebuildbatchruns"));
            let (code, answer) = if conflict {
                (409, conflict_status())
            } else if invalid {
                (422, invalid_status())
            } else if event {
                (200, body)
            } else if list {
                let mut items = vec![object.lock().unwrap().clone()];
                items.extend(faults.lock().unwrap().neighbours.iter().cloned());
                (
                    200,
                    json!({"apiVersion": "codebuild.operator.dev/v1alpha1",
                             "kind": "CodeBuildRunList", "metadata": {}, "items": items}),
                )
            } else {
                (200, apply(&mut object.lock().unwrap(), &path, &body))
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    Client::new(service, "default")
}

/// Applies a write to the fake's object and returns the object.
fn apply(obj: &mut Value, path: &str, body: &Value) -> Value {
    if path.ends_with("/status") {
        obj["status"] = body["status"].clone();
    } else if let Some(ops) = body.as_array() {
        // The JSON patch that releases the finalizer.
        for op in ops {
            if op["op"] == "remove" {
                obj["metadata"]["finalizers"] = json!([]);
            }
        }
    } else if let Some(metadata) = body["metadata"].as_object() {
        // The finalizer: a merge patch.
        for (key, value) in metadata {
            obj["metadata"][key] = value.clone();
        }
    }
    obj.clone()
}

fn invalid_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid",
           "code": 422, "message": "CodeBuildRun.codebuild.operator.dev \"r\" is invalid: status.startAttempt.idempotencyToken: Too long"})
}

fn conflict_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
           "code": 409, "message": "the object has been modified; please apply your changes to the latest version and try again"})
}

struct Harness {
    log: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
    faults: Arc<Mutex<ApiFaults>>,
    ctx: Arc<Context<FakeCodeBuild>>,
    aws: Arc<FakeCodeBuild>,
    tracker: Tracker<FakeCodeBuild>,
    batches: BatchTracker<FakeCodeBuild>,
}

fn harness(object: &Value, window: Duration) -> Harness {
    harness_with(object, window, None)
}

fn harness_with(object: &Value, window: Duration, policies: Option<Policies>) -> Harness {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let faults: Arc<Mutex<ApiFaults>> = Arc::default();
    let client = fake_apiserver(object.clone(), log.clone(), bodies.clone(), faults.clone());
    let aws = Arc::new(FakeCodeBuild::logging_to(log.clone()));
    let tracker = Tracker::new(aws.clone(), "us-east-1");
    let batches = BatchTracker::new(aws.clone(), "us-east-1");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test".into(),
            instance: None,
        },
    );
    let mut ctx = Context::new(
        client,
        aws.clone(),
        tracker.cache(),
        recorder,
        Settings::new("us-east-1").with_token_window(window),
    )
    .with_batches(batches.cache());
    if let Some(policies) = policies {
        ctx = ctx.with_policies(policies);
    }
    Harness {
        log,
        bodies,
        faults,
        ctx: Arc::new(ctx),
        aws,
        tracker,
        batches,
    }
}

async fn reconcile_once(h: &Harness, object: &Value) -> Result<(), String> {
    let run: CodeBuildRun = serde_json::from_value(object.clone()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        reconcile(Arc::new(run), h.ctx.clone()),
    )
    .await
    .map_err(|_| "reconcile timed out".to_owned())?
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The condition `type_` of a status body (panics when absent).
fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap_or_else(|| panic!("no conditions in {status}"))
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn log(h: &Harness) -> Vec<String> {
    h.log.lock().unwrap().clone()
}

fn bodies(h: &Harness) -> Vec<Value> {
    h.bodies.lock().unwrap().clone()
}

/// The Events published, in order.
fn events(h: &Harness) -> Vec<Value> {
    bodies(h)
        .into_iter()
        .filter(|b| b.get("reason").is_some() && b.get("status").is_none())
        .collect()
}

/// The status bodies written, in order.
fn statuses(h: &Harness) -> Vec<Value> {
    bodies(h)
        .into_iter()
        .filter_map(|b| b.get("status").cloned())
        .collect()
}

fn starts(h: &Harness) -> Vec<String> {
    log(h)
        .into_iter()
        .filter(|c| c.starts_with("aws StartBuild"))
        .collect()
}

const RUN_PATH: &str = "/apis/codebuild.operator.dev/v1alpha1/namespaces/ns/codebuildruns/r";

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// A start attempt as recorded in status.
fn attempt(token: &str, time: &str, region: &str) -> Value {
    json!({"idempotencyToken": token, "time": time, "region": region})
}

/// A legacy start-attempt annotation, written by `manager` as managedFields say.
fn with_legacy_annotation(object: &mut Value, attempt: Value, manager: &str) {
    object["metadata"]["annotations"] = json!({START_ATTEMPT_ANNOTATION: attempt.to_string()});
    object["metadata"]["managedFields"] = json!([{
        "manager": manager, "operation": "Update", "apiVersion": "codebuild.operator.dev/v1alpha1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {format!("f:{START_ATTEMPT_ANNOTATION}"): {}}}},
    }]);
}

// === the exactly-once start ===

#[tokio::test]
async fn a_new_run_is_claimed_in_status_then_the_finalizer_before_start_build() {
    let object = run_object(&[], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {RUN_PATH}"),
            format!("k8s PATCH {RUN_PATH}/status"),
            format!("k8s PATCH {RUN_PATH}"),
            "aws StartBuild us-east-1 token=codebuild-operator-uid-1".to_owned(),
            format!("k8s PATCH {RUN_PATH}/status"),
            "k8s event".to_owned(),
        ],
        "three writes before the build id is known: the attempt, the finalizer, the build id"
    );
    let bodies = bodies(&h);
    let claim = &bodies[0];
    assert_eq!(
        claim["metadata"]["resourceVersion"], "1",
        "the claim fails if the object changed since it was read"
    );
    let attempt = &claim["status"]["startAttempt"];
    assert_eq!(attempt["idempotencyToken"], "codebuild-operator-uid-1");
    assert_eq!(attempt["region"], "us-east-1");
    assert!(attempt["time"].is_string(), "{attempt}");
    // kstatus reads the run as in progress from this first write on.
    let reconciling = condition(&claim["status"], "Reconciling");
    assert_eq!(reconciling["status"], "True");
    assert_eq!(reconciling["reason"], "Starting");
    assert_eq!(condition(&claim["status"], "Stalled")["status"], "False");
    let finalizer = &bodies[1];
    assert_eq!(finalizer["metadata"]["finalizers"], json!([FINALIZER]));
    assert!(finalizer["metadata"]["resourceVersion"].is_string());
    let started = &bodies[2]["status"];
    assert_eq!(started["buildId"], "p:1");
    assert_eq!(started["startAttempt"], *attempt, "the attempt stays");
    assert_eq!(started["conditions"].as_array().unwrap().len(), 4);
    let succeeded = condition(started, "Succeeded");
    assert_eq!(succeeded["status"], "Unknown");
    assert_eq!(succeeded["reason"], "SUBMITTED");
    assert_eq!(bodies[3]["reason"], "BuildStarted");
}

#[tokio::test]
async fn a_slow_start_build_finds_the_conditions_already_written() {
    let object = run_object(&[], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    *h.aws.start_delay.lock().unwrap() = Some(Duration::from_millis(1500));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    let start = l
        .iter()
        .position(|c| c.starts_with("aws StartBuild"))
        .unwrap();
    assert_eq!(l[1], format!("k8s PATCH {RUN_PATH}/status"), "{l:?}");
    assert!(start > 1, "{l:?}");
    assert_eq!(
        statuses(&h).len(),
        2,
        "no extra write while StartBuild is slow"
    );
    let starting = &statuses(&h)[0];
    assert!(starting.get("buildId").is_none(), "{starting}");
    assert_eq!(condition(starting, "Reconciling")["reason"], "Starting");
}

#[tokio::test]
async fn a_run_that_has_the_finalizer_is_claimed_with_the_attempt_only() {
    let object = run_object(&["other/keep", FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[1], format!("k8s PATCH {RUN_PATH}/status"), "{l:?}");
    assert_eq!(
        l[2],
        "aws StartBuild us-east-1 token=codebuild-operator-uid-1"
    );
    assert_eq!(
        statuses(&h)[0]["startAttempt"]["idempotencyToken"],
        "codebuild-operator-uid-1"
    );
}

#[tokio::test]
async fn a_claim_without_its_finalizer_gets_it_before_the_resend() {
    // A crash between the two claim writes: the attempt is in status, the finalizer is not.
    let status = json!({"startAttempt": attempt("tok-2", &now(), "us-east-1")});
    let object = run_object(&[], status);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    let finalizer = l.iter().position(|c| c == &format!("k8s PATCH {RUN_PATH}"));
    let start = l.iter().position(|c| c.starts_with("aws StartBuild"));
    assert!(finalizer.unwrap() < start.unwrap(), "{l:?}");
    assert_eq!(starts(&h), vec!["aws StartBuild us-east-1 token=tok-2"]);
}

#[tokio::test]
async fn an_attempt_inside_the_window_reuses_its_token_without_a_new_attempt_write() {
    let status = json!({"startAttempt": attempt("tok-7", &now(), "eu-west-1"),
        "conditions": [{"type": "Reconciling", "status": "True", "reason": "Starting", "message": "",
            "observedGeneration": 1, "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    let object = run_object(&[FINALIZER], status);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(
        l[0],
        format!("k8s GET {RUN_PATH}"),
        "a fresh read before StartBuild"
    );
    assert_eq!(l[1], "aws StartBuild eu-west-1 token=tok-7", "{l:?}");
    assert_eq!(l[2], format!("k8s PATCH {RUN_PATH}/status"));
    assert_eq!(starts(&h).len(), 1);
}

#[tokio::test]
async fn an_attempt_past_the_window_is_searched_and_adopted_not_restarted() {
    let status = json!({"startAttempt": attempt("tok", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = run_object(&[FINALIZER], status);
    let h = harness(&object, Duration::from_secs(300));
    h.aws
        .builds
        .lock()
        .unwrap()
        .push(build("p:9", StatusType::InProgress, "BUILD", "uid-1"));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], format!("k8s GET {RUN_PATH}"));
    assert_eq!(l[1], "aws ListBuildsForProject p");
    assert_eq!(l[2], "aws BatchGetBuilds p:9");
    assert!(starts(&h).is_empty(), "a second build was started: {l:?}");
    assert_eq!(statuses(&h)[0]["buildId"], "p:9");
}

#[tokio::test]
async fn a_recorded_build_id_never_leads_to_start_build() {
    let status = json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD",
        "startAttempt": attempt("tok", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = run_object(&[FINALIZER], status);
    let h = harness(&object, Duration::from_secs(300));
    for _ in 0..3 {
        reconcile_once(&h, &object).await.unwrap();
    }
    let l = log(&h);
    assert!(
        !l.iter().any(|c| c.contains("aws")),
        "reconcile called AWS: {l:?}"
    );
}

#[tokio::test]
async fn a_running_build_whose_finalizer_was_removed_gets_it_back() {
    let status = json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD"});
    let object = run_object(&[], status);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], format!("k8s PATCH {RUN_PATH}"), "{l:?}");
    let claim = &bodies(&h)[0];
    assert_eq!(claim["metadata"]["finalizers"], json!([FINALIZER]));
    assert!(claim["metadata"].get("annotations").is_none(), "{claim}");
    assert!(!l.iter().any(|c| c.starts_with("aws")), "{l:?}");
}

#[tokio::test]
async fn a_stale_cache_without_the_build_id_does_not_repeat_start_build() {
    // The watch cache still shows only the attempt; the apiserver already has the build id.
    let attempt = attempt("tok", "2020-01-01T00:00:00Z", "us-east-1");
    let stale = run_object(&[FINALIZER], json!({"startAttempt": attempt}));
    let fresh = run_object(
        &[FINALIZER],
        json!({"startAttempt": attempt, "buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD"}),
    );
    let h = harness(&fresh, Duration::from_secs(300));
    reconcile_once(&h, &stale).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], format!("k8s GET {RUN_PATH}"));
    assert!(
        !l.iter().any(|c| c.starts_with("aws")),
        "called AWS on a stale read: {l:?}"
    );
}

// === deletion ===

#[tokio::test]
async fn deleting_a_running_run_stops_its_build_then_releases_the_finalizer() {
    let status = json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD",
        "startAttempt": attempt("tok", "2020-01-01T00:00:00Z", "us-east-1")});
    let mut object = run_object(&[FINALIZER], status);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], "aws StopBuild p:1");
    assert_eq!(
        l.last().unwrap(),
        &format!("k8s PATCH {RUN_PATH}"),
        "finalizer removed last: {l:?}"
    );
}

#[tokio::test]
async fn deleting_a_run_that_never_started_does_not_call_aws() {
    let mut object = run_object(&[FINALIZER], Value::Null);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(log(&h), vec![format!("k8s PATCH {RUN_PATH}")]);
}

#[tokio::test]
async fn a_copy_from_before_the_release_does_not_release_again() {
    // The watch cache can hand the next reconcile the version the finalizer was removed
    // from; a second JSON patch would fail its test (a 422 and a wasted write).
    let mut object = run_object(&[FINALIZER], Value::Null);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(log(&h), vec![format!("k8s PATCH {RUN_PATH}")]);
}

#[tokio::test]
async fn a_refused_release_is_made_again_from_the_object_itself() {
    let mut object = run_object(&[FINALIZER], Value::Null);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let patch = format!("k8s PATCH {RUN_PATH}");
    let get = format!("k8s GET {RUN_PATH}");
    // The finalizer list changed since the copy was read: read it again, release from it.
    let h = harness(&object, Duration::from_secs(300));
    h.faults.lock().unwrap().invalid = 1;
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(log(&h), vec![patch.clone(), get.clone(), patch.clone()]);
    // Someone else removed it since the copy was read: nothing left to do.
    let mut released = object.clone();
    released["metadata"]["finalizers"] = json!([]);
    let h = harness(&released, Duration::from_secs(300));
    h.faults.lock().unwrap().invalid = 1;
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(log(&h), vec![patch, get]);
}

#[tokio::test]
async fn deleting_a_run_that_was_never_claimed_makes_no_call() {
    let mut object = run_object(&[], Value::Null);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(log(&h), Vec::<String>::new());
}

#[test]
fn object_reference_names_the_run() {
    let run: CodeBuildRun = serde_json::from_value(run_object(&[], Value::Null)).unwrap();
    assert_eq!(run.object_ref(&()).name.as_deref(), Some("r"));
}

// === every failure shows on the object: a condition and a Warning Event ===

#[tokio::test]
async fn a_permanent_start_error_stalls_without_retry() {
    let object = run_object(&[FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    *h.aws.start_error.lock().unwrap() = Some(ApiError::new(
        ErrorKind::InvalidInput,
        Some("InvalidInputException"),
        "bad image",
    ));
    reconcile_once(&h, &object).await.unwrap();
    let failed = statuses(&h).last().unwrap().clone();
    let stalled = condition(&failed, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "InvalidInput");
    assert!(stalled["message"].as_str().unwrap().contains("bad image"));
    let event = events(&h).last().unwrap().clone();
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("InvalidInput"))
    );
}

#[tokio::test]
async fn a_transient_start_error_is_visible_and_returned_for_backoff() {
    let object = run_object(&[FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    *h.aws.start_error.lock().unwrap() = Some(ApiError::new(
        ErrorKind::ProjectNotFound,
        Some("ResourceNotFoundException"),
        "Project cannot be found",
    ));
    let err = reconcile_once(&h, &object).await.unwrap_err();
    assert!(err.contains("Project cannot be found"), "{err}");
    let rec = condition(statuses(&h).last().unwrap(), "Reconciling").clone();
    assert_eq!(rec["status"], "True");
    assert_eq!(rec["reason"], "ProjectNotFound");
    assert_eq!(
        events(&h).last().unwrap()["reason"],
        "ProjectNotFound",
        "a Warning Event with the category"
    );
}

#[tokio::test]
async fn a_build_codebuild_does_not_know_is_shown_as_build_not_found() {
    let status = json!({"buildId": "p:gone", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD",
        "startAttempt": attempt("tok", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = run_object(&[FINALIZER], status);
    let h = harness(&object, Duration::from_secs(300));
    // The tracker learns it from BatchGetBuilds (buildsNotFound).
    let (store, mut writer) = reflector::store::<CodeBuildRun>();
    writer.apply_watcher_event(&watcher::Event::Apply(
        serde_json::from_value(object.clone()).unwrap(),
    ));
    h.tracker.follow(store);
    h.tracker.round().await;
    reconcile_once(&h, &object).await.unwrap();
    let stalled = condition(statuses(&h).last().unwrap(), "Stalled").clone();
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("BuildNotFound"))
    );
    assert!(
        stalled["message"].as_str().unwrap().contains("p:gone"),
        "{stalled}"
    );
    assert_eq!(events(&h).last().unwrap()["reason"], "BuildNotFound");
}

#[tokio::test]
async fn a_search_that_cannot_finish_is_shown_and_retried() {
    let status = json!({"startAttempt": attempt("tok", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = run_object(&[FINALIZER], status);
    let h = harness(&object, Duration::from_secs(300));
    h.aws.builds.lock().unwrap().push(build(
        "p:other",
        StatusType::InProgress,
        "BUILD",
        "uid-other",
    ));
    *h.aws.endless_pages.lock().unwrap() = true;
    let err = reconcile_once(&h, &object).await.unwrap_err();
    assert!(err.contains("not starting another build"), "{err}");
    assert!(starts(&h).is_empty());
    let rec = condition(statuses(&h).last().unwrap(), "Reconciling").clone();
    assert_eq!(rec["reason"], "BuildSearchIncomplete");
    assert_eq!(
        events(&h).last().unwrap()["reason"],
        "BuildSearchIncomplete"
    );
}

#[tokio::test]
async fn a_conflict_is_retried_quietly_and_shown_once_it_persists() {
    let object = run_object(&[FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    h.faults.lock().unwrap().conflicts = 2;
    for _ in 0..2 {
        let err = reconcile_once(&h, &object).await.unwrap_err();
        assert!(err.contains("409") || err.contains("modified"), "{err}");
    }
    assert!(events(&h).is_empty(), "a conflict or two is normal");
    // The third conflict in a row shows. The write of the condition itself then goes
    // through (only three conflicts were set up).
    h.faults.lock().unwrap().conflicts = 1;
    reconcile_once(&h, &object).await.unwrap_err();
    let shown = statuses(&h).last().unwrap().clone();
    let rec = condition(&shown, "Reconciling");
    assert_eq!(
        (rec["status"].as_str(), rec["reason"].as_str()),
        (Some("True"), Some("Conflict"))
    );
    assert_eq!(events(&h).last().unwrap()["reason"], "Conflict");
    assert!(starts(&h).is_empty(), "nothing starts without a claim");
}

// === policies ===

/// Policies and namespace labels as the watches would have them.
fn policies(policies: &[Value], namespaces: &[(&str, &[(&str, &str)])]) -> Policies {
    let (policy_store, mut policy_writer) = reflector::store::<CodeBuildRunPolicy>();
    for p in policies {
        let policy: CodeBuildRunPolicy = serde_json::from_value(p.clone()).unwrap();
        policy_writer.apply_watcher_event(&watcher::Event::Apply(policy));
    }
    let (ns_store, mut ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    for (name, labels) in namespaces {
        let meta = ObjectMeta {
            name: Some((*name).into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        ns_writer.apply_watcher_event(&watcher::Event::Apply(meta.into_response_partial()));
    }
    Policies::from_stores(policy_store, ns_store)
}

fn team_policy(team: &str, role: Option<&str>) -> Value {
    json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRunPolicy",
        "metadata": {"name": format!("team-{team}")},
        "spec": {"namespaceSelector": {"matchLabels": {"team": team}}, "projects": ["p"],
                 "roleArn": role},
    })
}

/// Namespace `ns` belongs to team b; the only policy grants team a.
fn refusing() -> Policies {
    policies(&[team_policy("a", None)], &[("ns", &[("team", "b")])])
}

const REFUSAL: &str = "no CodeBuildRunPolicy grants namespace \"ns\"";

/// The run was refused with the policy's words, nothing was started, and no build was
/// searched for as any identity.
fn assert_refused(h: &Harness) {
    let l = log(h);
    assert!(!l.iter().any(|c| c.starts_with("aws")), "{l:?}");
    let stalled = condition(statuses(h).last().unwrap(), "Stalled").clone();
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "PolicyDenied");
    assert_eq!(stalled["message"], REFUSAL);
}

#[tokio::test]
async fn a_refused_run_is_stalled_and_nothing_is_started() {
    let object = run_object(&[], Value::Null);
    let h = harness_with(&object, Duration::from_secs(300), Some(refusing()));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {RUN_PATH}"),
            format!("k8s PATCH {RUN_PATH}/status"),
            "k8s event".to_owned(),
        ],
        "no AWS call, no claim (finalizer or attempt)"
    );
    let status = &statuses(&h)[0];
    assert!(status.get("startAttempt").is_none(), "{status}");
    assert_refused(&h);
    let event = &events(&h)[0];
    assert_eq!(event["reason"], "PolicyDenied");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["note"], REFUSAL);
    assert!(h.aws.builds.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refusal_is_decided_again_when_a_policy_appears() {
    // The run was refused before (Stalled=True for this generation); a policy now allows it.
    let refused = json!({"conditions": [{"type": "Stalled", "status": "True", "reason": "PolicyDenied",
        "message": REFUSAL, "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    let object = run_object(&[FINALIZER], refused);
    let policies = policies(&[team_policy("a", None)], &[("ns", &[("team", "a")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(
        starts(&h),
        vec!["aws StartBuild us-east-1 token=codebuild-operator-uid-1"]
    );
}

#[tokio::test]
async fn an_allowed_run_is_started_with_the_policys_role() {
    let object = run_object(&[FINALIZER], Value::Null);
    let role = "arn:aws:iam::111111111111:role/team-a";
    let policies = policies(&[team_policy("a", Some(role))], &[("ns", &[("team", "a")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {RUN_PATH}"),
            format!("k8s PATCH {RUN_PATH}/status"),
            format!("aws StartBuild us-east-1 as {role} token=codebuild-operator-uid-1"),
            format!("k8s PATCH {RUN_PATH}/status"),
            "k8s event".to_owned(),
        ]
    );
    let attempt = &statuses(&h)[0]["startAttempt"];
    assert_eq!(attempt["roleArn"], role, "recorded before StartBuild");
    assert_eq!(attempt["policy"], "team-a");
}

#[tokio::test]
async fn a_run_in_a_namespace_not_seen_yet_waits_without_writing() {
    let object = run_object(&[FINALIZER], Value::Null);
    let policies = policies(&[team_policy("a", None)], &[]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(log(&h), vec![format!("k8s GET {RUN_PATH}")]);
}

// === a recorded attempt never widens what the policies allow now ===

#[tokio::test]
async fn a_resend_inside_the_window_is_decided_again_first() {
    let status = json!({"startAttempt": attempt("tok", &now(), "us-east-1")});
    let object = run_object(&[FINALIZER], status);
    let h = harness_with(&object, Duration::from_secs(300), Some(refusing()));
    reconcile_once(&h, &object).await.unwrap();
    assert_refused(&h);
}

#[tokio::test]
async fn a_start_after_a_search_past_the_window_is_decided_again_first() {
    let status = json!({"startAttempt": attempt("tok", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = run_object(&[FINALIZER], status);
    let h = harness_with(&object, Duration::from_secs(300), Some(refusing()));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert!(
        l.contains(&"aws ListBuildsForProject p".to_owned()),
        "{l:?}"
    );
    assert!(starts(&h).is_empty(), "{l:?}");
    let stalled = condition(statuses(&h).last().unwrap(), "Stalled").clone();
    assert_eq!(stalled["reason"], "PolicyDenied");
}

fn seconds_ago(seconds: i64) -> String {
    (k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .to_string()
}

#[tokio::test]
async fn a_resend_under_another_granted_role_waits_while_the_old_call_may_be_in_flight() {
    let old = "arn:aws:iam::111111111111:role/old";
    let new = "arn:aws:iam::111111111111:role/new";
    let mut recorded = attempt("tok", &now(), "us-east-1");
    recorded["roleArn"] = json!(old);
    let object = run_object(&[FINALIZER], json!({"startAttempt": recorded}));
    let policies = policies(&[team_policy("a", Some(new))], &[("ns", &[("team", "a")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert!(
        l.iter().all(|call| !call.starts_with("aws ")),
        "a search now could miss the build the old call is making: {l:?}"
    );
    assert!(statuses(&h).is_empty(), "{l:?}");
}

#[tokio::test]
async fn a_resend_under_another_granted_role_searches_as_the_old_one_first() {
    let old = "arn:aws:iam::111111111111:role/old";
    let new = "arn:aws:iam::111111111111:role/new";
    // Inside the token window (300 s), but past the last moment a repeat under the old role
    // could still have been in flight (the window less the clock skew margin, 285 s).
    let mut recorded = attempt("tok", &seconds_ago(290), "us-east-1");
    recorded["roleArn"] = json!(old);
    let object = run_object(&[FINALIZER], json!({"startAttempt": recorded}));
    let policies = policies(&[team_policy("a", Some(new))], &[("ns", &[("team", "a")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[1], "aws ListBuildsForProject p", "{l:?}");
    assert_eq!(
        starts(&h),
        vec![format!(
            "aws StartBuild us-east-1 as {new} token=codebuild-operator-uid-1"
        )]
    );
    assert_eq!(statuses(&h)[0]["startAttempt"]["roleArn"], new);
}

/// A run whose legacy annotation a tenant wrote with kubectl, naming another tenant's role.
fn forged_run(time: &str, region: &str) -> Value {
    let mut object = run_object(&[], Value::Null);
    let mut forged = attempt("forged-1", time, region);
    forged["roleArn"] = json!("arn:aws:iam::222222222222:role/other-tenant");
    with_legacy_annotation(&mut object, forged, "kubectl-client-side-apply");
    object
}

#[tokio::test]
async fn a_forged_attempt_annotation_is_ignored_with_a_warning_and_refused() {
    let object = forged_run(&now(), "us-east-1");
    let h = harness_with(&object, Duration::from_secs(300), Some(refusing()));
    reconcile_once(&h, &object).await.unwrap();
    assert_refused(&h);
    let warning = &events(&h)[0];
    assert_eq!(warning["reason"], "StartAttemptIgnored");
    assert_eq!(warning["type"], "Warning");
    assert!(
        warning["note"]
            .as_str()
            .unwrap()
            .contains("kubectl-client-side-apply"),
        "{warning}"
    );
}

#[tokio::test]
async fn a_forged_attempt_annotation_never_lends_its_token_region_or_role() {
    let object = forged_run("2020-01-01T00:00:00Z", "eu-west-1");
    let role = "arn:aws:iam::111111111111:role/team-a";
    let policies = policies(&[team_policy("a", Some(role))], &[("ns", &[("team", "a")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[2], "aws ListBuildsForProject p", "searched first: {l:?}");
    assert_eq!(
        starts(&h),
        vec![format!(
            "aws StartBuild us-east-1 as {role} token=codebuild-operator-uid-1"
        )]
    );
    let attempt = &statuses(&h)[0]["startAttempt"];
    assert_eq!(attempt["roleArn"], role);
    assert_eq!(attempt["region"], "us-east-1");
}

#[tokio::test]
async fn an_annotation_the_operator_wrote_is_searched_for_without_a_warning() {
    // Claimed by an earlier version of the operator, which crashed before the build id.
    let mut object = run_object(&[FINALIZER], Value::Null);
    with_legacy_annotation(
        &mut object,
        attempt("tok", &now(), "us-east-1"),
        FIELD_MANAGER,
    );
    let h = harness(&object, Duration::from_secs(300));
    h.aws
        .builds
        .lock()
        .unwrap()
        .push(build("p:9", StatusType::InProgress, "BUILD", "uid-1"));
    reconcile_once(&h, &object).await.unwrap();
    assert!(starts(&h).is_empty(), "{:?}", log(&h));
    let adopted = &statuses(&h)[0];
    assert_eq!(adopted["buildId"], "p:9");
    assert_eq!(adopted["startAttempt"]["region"], "us-east-1");
    assert!(
        events(&h)
            .iter()
            .all(|e| e["reason"] != "StartAttemptIgnored"),
        "{:?}",
        events(&h)
    );
}

// === starts paced by the service, tokens that mean one thing ===

#[tokio::test]
async fn two_runs_with_one_token_name_each_other() {
    let mut object = run_object(&[FINALIZER], Value::Null);
    object["spec"]["idempotencyToken"] = json!("release-42");
    let h = harness(&object, Duration::from_secs(300));
    let mut other = run_object(&[], Value::Null);
    other["metadata"]["name"] = json!("other");
    other["metadata"]["uid"] = json!("uid-2");
    other["spec"]["idempotencyToken"] = json!("release-42");
    h.faults.lock().unwrap().neighbours.push(other);
    *h.aws.start_error.lock().unwrap() = Some(ApiError::new(
        ErrorKind::InvalidInput,
        Some("InvalidInputException"),
        "Idempotency token parameter mismatch: token release-42 was already used with different request parameters",
    ));
    reconcile_once(&h, &object).await.unwrap();
    let stalled = condition(statuses(&h).last().unwrap(), "Stalled").clone();
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "IdempotencyTokenInUse");
    let message = stalled["message"].as_str().unwrap();
    assert!(
        message.contains("is already used by run other"),
        "{message}"
    );
    assert_eq!(
        events(&h).last().unwrap()["reason"],
        "IdempotencyTokenInUse"
    );
}

#[tokio::test]
async fn under_the_account_limit_a_run_queues_and_does_not_ask_again_at_once() {
    let object = run_object(&[FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    *h.aws.start_error.lock().unwrap() = Some(ApiError::new(
        ErrorKind::AccountLimitExceeded,
        Some("AccountLimitExceededException"),
        "Cannot have more than 60 active builds for the account",
    ));
    reconcile_once(&h, &object)
        .await
        .expect("waiting for capacity is not a failure");
    let waiting = statuses(&h).last().unwrap().clone();
    let reconciling = condition(&waiting, "Reconciling");
    assert_eq!(reconciling["status"], "True");
    assert_eq!(reconciling["reason"], "AccountLimitExceeded");
    let message = reconciling["message"].as_str().unwrap();
    assert!(message.contains("position 1 of 1"), "{message}");
    // Asked again before the probe interval: no second StartBuild.
    let fresh: Value = {
        let mut o = object.clone();
        o["status"] = waiting.clone();
        o
    };
    reconcile_once(&h, &fresh).await.unwrap();
    assert_eq!(starts(&h).len(), 1, "{:?}", log(&h));
}

#[tokio::test]
async fn a_write_the_apiserver_refuses_as_invalid_is_shown_on_the_run() {
    let object = run_object(&[FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    h.faults.lock().unwrap().invalid = 1;
    reconcile_once(&h, &object)
        .await
        .expect("a refusal for a reason in the run stalls it, no retry");
    assert!(starts(&h).is_empty(), "nothing starts without a claim");
    let shown = statuses(&h).last().unwrap().clone();
    let stalled = condition(&shown, "Stalled");
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("KubernetesError"))
    );
    assert!(
        stalled["message"].as_str().unwrap().contains("Too long"),
        "{stalled}"
    );
    assert_eq!(events(&h).last().unwrap()["type"], "Warning");
}

// === batch runs: the same lifecycle, StartBuildBatch for StartBuild ===

const BATCH_PATH: &str = "/apis/codebuild.operator.dev/v1alpha1/namespaces/ns/codebuildbatchruns/b";

/// A CodeBuildBatchRun `b` in namespace `ns` (uid `uid-b`, generation 1) for project `p`,
/// with `operator` settings, as JSON.
fn batch_object(finalizers: &[&str], operator: Value, status: Value) -> Value {
    json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1",
        "kind": "CodeBuildBatchRun",
        "metadata": {"name": "b", "namespace": "ns", "uid": "uid-b", "generation": 1,
                     "resourceVersion": "1", "finalizers": finalizers},
        "spec": {"projectName": "p", "operator": operator},
        "status": status,
    })
}

async fn reconcile_batch_once(h: &Harness, object: &Value) -> Result<(), String> {
    let run: CodeBuildBatchRun = serde_json::from_value(object.clone()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        reconcile_batch(Arc::new(run), h.ctx.clone()),
    )
    .await
    .map_err(|_| "reconcile timed out".to_owned())?
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// A batch `p:b1` the fake CodeBuild knows, with `status`, started by object `uid-b`.
fn known_batch(h: &Harness, status: StatusType, phase: &str) {
    h.aws
        .batches
        .lock()
        .unwrap()
        .push(batch("p:b1", status, phase, "uid-b"));
}

#[tokio::test]
async fn a_new_batch_run_is_claimed_as_a_run_is_before_start_build_batch() {
    let object = batch_object(&[], Value::Null, Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_batch_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {BATCH_PATH}"),
            format!("k8s PATCH {BATCH_PATH}/status"),
            format!("k8s PATCH {BATCH_PATH}"),
            "aws StartBuildBatch us-east-1 token=codebuild-operator-uid-b".to_owned(),
            format!("k8s PATCH {BATCH_PATH}/status"),
            "k8s event".to_owned(),
        ],
        "the attempt, the finalizer, StartBuildBatch, the batch id"
    );
    let bodies = bodies(&h);
    let claim = &bodies[0];
    assert_eq!(claim["metadata"]["resourceVersion"], "1");
    assert_eq!(claim["kind"], "CodeBuildBatchRun");
    let attempt = &claim["status"]["startAttempt"];
    assert_eq!(attempt["idempotencyToken"], "codebuild-operator-uid-b");
    let reconciling = condition(&claim["status"], "Reconciling");
    assert_eq!(reconciling["reason"], "Starting");
    assert_eq!(
        reconciling["message"],
        "starting a build batch of project p"
    );
    assert_eq!(bodies[1]["metadata"]["finalizers"], json!([FINALIZER]));
    let started = &bodies[2]["status"];
    assert_eq!(started["id"], "p:b1");
    assert_eq!(started["buildBatchStatus"], "IN_PROGRESS");
    assert_eq!(started["startAttempt"], *attempt);
    assert_eq!(condition(started, "Succeeded")["reason"], "SUBMITTED");
    assert_eq!(bodies[3]["reason"], "BuildBatchStarted");
    assert_eq!(bodies[3]["action"], "StartBuildBatch");
}

#[tokio::test]
async fn a_batch_attempt_past_the_window_is_searched_and_adopted_not_restarted() {
    let status = json!({"startAttempt": attempt("codebuild-operator-uid-b", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = batch_object(&[FINALIZER], Value::Null, status);
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::InProgress, "IN_PROGRESS");
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert!(
        l.contains(&"aws ListBuildBatchesForProject p".to_owned()),
        "{l:?}"
    );
    assert!(
        l.contains(&"aws BatchGetBuildBatches p:b1".to_owned()),
        "{l:?}"
    );
    assert!(
        !l.iter().any(|c| c.starts_with("aws StartBuildBatch")),
        "{l:?}"
    );
    assert_eq!(statuses(&h).last().unwrap()["id"], "p:b1");
    assert_eq!(events(&h).last().unwrap()["reason"], "BuildBatchRecovered");
}

#[tokio::test]
async fn a_finished_batch_is_mirrored_and_its_finalizer_released() {
    let status = json!({"id": "p:b1", "buildBatchStatus": "IN_PROGRESS",
        "startAttempt": attempt("t", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = batch_object(&[FINALIZER], Value::Null, status.clone());
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::Failed, "FAILED");
    // The batch run is watched (the tracker derives its polling set from it).
    let (store, mut writer) = reflector::store::<CodeBuildBatchRun>();
    writer.apply_watcher_event(&watcher::Event::Apply(
        serde_json::from_value(object.clone()).unwrap(),
    ));
    h.batches.follow(store);
    let stats = h.batches.round().await;
    assert_eq!((stats.builds, stats.calls, stats.changed), (1, 1, 1));
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], "aws BatchGetBuildBatches p:b1", "the tracker's round");
    assert!(!l.iter().any(|c| c.contains("StartBuildBatch")), "{l:?}");
    let mirrored = statuses(&h).last().unwrap().clone();
    assert_eq!(mirrored["buildBatchStatus"], "FAILED");
    assert_eq!(condition(&mirrored, "Stalled")["status"], "True");
    assert_eq!(condition(&mirrored, "Succeeded")["reason"], "FAILED");
    assert_eq!(events(&h).last().unwrap()["reason"], "BuildBatchFailed");
    assert_eq!(
        l.last().unwrap(),
        &format!("k8s PATCH {BATCH_PATH}"),
        "the finalizer goes once the batch is final: {l:?}"
    );
}

#[tokio::test]
async fn a_retry_asked_for_is_recorded_then_made_once() {
    let retry = json!({"retry": {"count": 1, "retryType": "RETRY_FAILED_BUILDS"}});
    let status = json!({"id": "p:b1", "buildBatchStatus": "FAILED", "complete": true,
        "startAttempt": attempt("t", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = batch_object(&[], retry.clone(), status);
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::Failed, "FAILED");
    reconcile_batch_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s PATCH {BATCH_PATH}/status"),
            format!("k8s PATCH {BATCH_PATH}"),
            "aws RetryBuildBatch p:b1 RETRY_FAILED_BUILDS token=codebuild-operator-uid-b-retry-1"
                .to_owned(),
            "k8s event".to_owned(),
            format!("k8s PATCH {BATCH_PATH}/status"),
        ],
        "the retry is recorded (and the finalizer back) before RetryBuildBatch"
    );
    let b = bodies(&h);
    let claim = &b[0];
    assert_eq!(claim["metadata"]["resourceVersion"], "1");
    let recorded = &claim["status"]["retryAttempts"][0];
    assert_eq!(recorded["count"], 1);
    assert_eq!(
        recorded["idempotencyToken"],
        "codebuild-operator-uid-b-retry-1"
    );
    assert!(recorded.get("retried").is_none(), "{recorded}");
    assert_eq!(
        condition(&claim["status"], "Reconciling")["reason"],
        "RetryRequested"
    );
    assert_eq!(b[1]["metadata"]["finalizers"], json!([FINALIZER]));
    let after = statuses(&h).last().unwrap().clone();
    assert_eq!(after["retryAttempts"][0]["retried"], true);
    assert_eq!(after["buildBatchStatus"], "IN_PROGRESS");
    assert_eq!(condition(&after, "Succeeded")["status"], "Unknown");

    // The next reconcile (the retried batch failed again) makes no second retry.
    let mut again = object.clone();
    again["status"] = after;
    again["status"]["buildBatchStatus"] = json!("FAILED");
    again["metadata"]["finalizers"] = json!([FINALIZER]);
    let h2 = harness(&again, Duration::from_secs(300));
    known_batch(&h2, StatusType::Failed, "FAILED");
    reconcile_batch_once(&h2, &again).await.unwrap();
    assert!(
        !log(&h2)
            .iter()
            .any(|c| c.starts_with("aws RetryBuildBatch")),
        "{:?}",
        log(&h2)
    );
}

#[tokio::test]
async fn a_lost_retry_answer_is_resent_with_its_token_inside_the_window() {
    let retry = json!({"retry": {"count": 1, "retryType": "RETRY_ALL_BUILDS"}});
    let status = json!({"id": "p:b1", "buildBatchStatus": "FAILED", "complete": true,
        "startAttempt": attempt("t", "2020-01-01T00:00:00Z", "us-east-1"),
        "retryAttempts": [{"count": 1, "retryType": "RETRY_ALL_BUILDS",
            "idempotencyToken": "codebuild-operator-uid-b-retry-1", "time": now()}]});
    let object = batch_object(&[FINALIZER], retry, status);
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::Failed, "FAILED");
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(
        l[0], "aws RetryBuildBatch p:b1 RETRY_ALL_BUILDS token=codebuild-operator-uid-b-retry-1",
        "the same token, no new attempt written first: {l:?}"
    );
}

#[tokio::test]
async fn a_lost_retry_answer_past_the_window_is_checked_before_it_is_made_again() {
    let retry = json!({"retry": {"count": 1, "retryType": "RETRY_ALL_BUILDS"}});
    let pending = json!([{"count": 1, "retryType": "RETRY_ALL_BUILDS",
        "idempotencyToken": "codebuild-operator-uid-b-retry-1", "time": "2020-01-01T00:10:00Z"}]);
    let status = json!({"id": "p:b1", "buildBatchStatus": "FAILED", "complete": true,
        "endTime": "2020-01-01T00:05:00Z",
        "startAttempt": attempt("t", "2020-01-01T00:00:00Z", "us-east-1"),
        "retryAttempts": pending});
    let object = batch_object(&[FINALIZER], retry, status);
    // The batch is running again: the lost retry took effect; it is recorded, not repeated.
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::InProgress, "SUBMITTED");
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], "aws BatchGetBuildBatches p:b1", "{l:?}");
    assert!(
        !l.iter().any(|c| c.starts_with("aws RetryBuildBatch")),
        "{l:?}"
    );
    let settled = statuses(&h).last().unwrap().clone();
    assert_eq!(settled["retryAttempts"][0]["retried"], true);
    assert_eq!(settled["buildBatchStatus"], "IN_PROGRESS");
    // Unchanged since: the retry did not happen; it is recorded anew and made.
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::Failed, "FAILED");
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], "aws BatchGetBuildBatches p:b1", "{l:?}");
    assert_eq!(l[1], format!("k8s PATCH {BATCH_PATH}/status"), "{l:?}");
    assert_eq!(
        l[2],
        "aws RetryBuildBatch p:b1 RETRY_ALL_BUILDS token=codebuild-operator-uid-b-retry-1"
    );
}

#[tokio::test]
async fn deleting_a_running_batch_run_stops_its_batch_then_releases_the_finalizer() {
    let status = json!({"id": "p:b1", "buildBatchStatus": "IN_PROGRESS",
        "startAttempt": attempt("t", "2020-01-01T00:00:00Z", "us-east-1")});
    let mut object = batch_object(&[FINALIZER], Value::Null, status);
    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::InProgress, "IN_PROGRESS");
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], "aws StopBuildBatch p:b1");
    assert_eq!(events(&h)[0]["reason"], "BuildBatchStopped");
    assert_eq!(
        l.last().unwrap(),
        &format!("k8s PATCH {BATCH_PATH}"),
        "{l:?}"
    );
    // Asked to leave it running: no StopBuildBatch.
    let mut leave = object.clone();
    leave["spec"]["operator"] = json!({"onDelete": "LeaveRunning"});
    let h = harness(&leave, Duration::from_secs(300));
    reconcile_batch_once(&h, &leave).await.unwrap();
    assert_eq!(log(&h), vec![format!("k8s PATCH {BATCH_PATH}")]);
}

#[tokio::test]
async fn a_stop_request_stops_a_running_batch_and_keeps_the_object() {
    let status = json!({"id": "p:b1", "buildBatchStatus": "IN_PROGRESS",
        "startAttempt": attempt("t", "2020-01-01T00:00:00Z", "us-east-1")});
    let object = batch_object(&[FINALIZER], json!({"stop": true}), status.clone());
    let h = harness(&object, Duration::from_secs(300));
    known_batch(&h, StatusType::InProgress, "IN_PROGRESS");
    reconcile_batch_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[0], "aws StopBuildBatch p:b1");
    let reasons: Vec<Value> = events(&h).iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(
        reasons,
        [json!("StopRequested"), json!("BuildBatchStopped")]
    );
    let stopped = statuses(&h).last().unwrap().clone();
    assert_eq!(stopped["buildBatchStatus"], "STOPPED");
    assert_eq!(condition(&stopped, "Succeeded")["reason"], "STOPPED");
}

#[tokio::test]
async fn a_refused_batch_run_is_stalled_and_nothing_is_started() {
    let object = batch_object(&[], Value::Null, Value::Null);
    let h = harness_with(&object, Duration::from_secs(300), Some(refusing()));
    reconcile_batch_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {BATCH_PATH}"),
            format!("k8s PATCH {BATCH_PATH}/status"),
            "k8s event".to_owned(),
        ],
        "no AWS call, no claim"
    );
    assert_refused(&h);
}

//! Reconcile against a mocked apiserver (tower-test) and a fake CodeBuild: the exact
//! sequence of calls for the exactly-once start, tracking and deletion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types::{Build, EnvironmentVariable, ProjectEnvironment, StatusType};
use aws_smithy_types::DateTime;
use codebuild_operator::api::{
    CodeBuildRun, CodeBuildRunPolicy, FINALIZER, MARKER_ENV_VAR, START_ATTEMPT_ANNOTATION,
};
use codebuild_operator::codebuild::{
    ApiError, BuildApi, BuildBatch, BuildIdPage, ErrorKind, Target,
};
use codebuild_operator::controller::{Context, Settings, reconcile};
use codebuild_operator::policy::Policies;
use codebuild_operator::tracker::Tracker;
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

// === the fake CodeBuild ===

#[derive(Default)]
struct FakeCodeBuild {
    log: Arc<Mutex<Vec<String>>>,
    builds: Mutex<Vec<Build>>,
    start_error: Mutex<Option<ApiError>>,
    /// How long StartBuild takes to answer.
    start_delay: Mutex<Option<Duration>>,
}

fn build(id: &str, status: StatusType, phase: &str, uid: &str) -> Build {
    Build::builder()
        .id(id)
        .arn(format!(
            "arn:aws:codebuild:us-east-1:123456789012:build/{id}"
        ))
        .build_number(1)
        .build_status(status.clone())
        .current_phase(phase)
        .build_complete(status != StatusType::InProgress)
        .start_time(DateTime::from_secs(
            DateTime::from(std::time::SystemTime::now()).secs(),
        ))
        .environment(
            ProjectEnvironment::builder()
                .r#type("LINUX_CONTAINER".into())
                .image("img")
                .compute_type("BUILD_GENERAL1_SMALL".into())
                .environment_variables(
                    EnvironmentVariable::builder()
                        .name(MARKER_ENV_VAR)
                        .value(uid)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
}

impl BuildApi for FakeCodeBuild {
    async fn start_build(
        &self,
        target: &Target,
        input: StartBuildInput,
    ) -> Result<Build, ApiError> {
        let token = input.idempotency_token.clone().unwrap_or_default();
        self.log
            .lock()
            .unwrap()
            .push(format!("aws StartBuild {target} token={token}"));
        let delay = *self.start_delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(e) = self.start_error.lock().unwrap().clone() {
            return Err(e);
        }
        let uid = input
            .environment_variables_override
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == MARKER_ENV_VAR)
            .map(|v| v.value)
            .unwrap_or_default();
        let b = build("p:1", StatusType::InProgress, "SUBMITTED", &uid);
        self.builds.lock().unwrap().push(b.clone());
        Ok(b)
    }
    async fn batch_get_builds(
        &self,
        _target: &Target,
        ids: Vec<String>,
    ) -> Result<BuildBatch, ApiError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("aws BatchGetBuilds {}", ids.join(",")));
        let builds = self
            .builds
            .lock()
            .unwrap()
            .iter()
            .filter(|b| ids.contains(&b.id.clone().unwrap()))
            .cloned()
            .collect();
        Ok(BuildBatch {
            builds,
            not_found: vec![],
        })
    }
    async fn stop_build(&self, _target: &Target, id: &str) -> Result<Build, ApiError> {
        self.log.lock().unwrap().push(format!("aws StopBuild {id}"));
        Ok(build(id, StatusType::Stopped, "COMPLETED", ""))
    }
    async fn list_builds_for_project(
        &self,
        _target: &Target,
        project: &str,
        _t: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("aws ListBuildsForProject {project}"));
        Ok(BuildIdPage {
            ids: self
                .builds
                .lock()
                .unwrap()
                .iter()
                .rev()
                .map(|b| b.id.clone().unwrap())
                .collect(),
            next_token: None,
        })
    }
}

// === the fake apiserver ===

/// Answers every request plausibly and logs `k8s METHOD PATH` plus the body.
fn fake_apiserver(
    object: Value,
    log: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let object = Arc::new(Mutex::new(object));
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let what = if path.contains("/events") {
                "event".to_owned()
            } else {
                format!("{method} {path}")
            };
            log.lock().unwrap().push(format!("k8s {what}"));
            if method != "GET" {
                bodies.lock().unwrap().push(body.clone());
            }
            let answer = if path.contains("/events") {
                body
            } else {
                let mut obj = object.lock().unwrap();
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
                    // The claim: a merge patch of finalizers and the attempt annotation.
                    for (key, value) in metadata {
                        if key == "annotations" {
                            let annotations = &mut obj["metadata"]["annotations"];
                            if !annotations.is_object() {
                                *annotations = json!({});
                            }
                            for (k, v) in value.as_object().unwrap() {
                                annotations[k] = v.clone();
                            }
                        } else {
                            obj["metadata"][key] = value.clone();
                        }
                    }
                }
                obj.clone()
            };
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
    });
    Client::new(service, "default")
}

struct Harness {
    log: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
    ctx: Arc<Context<FakeCodeBuild>>,
    aws: Arc<FakeCodeBuild>,
}

fn harness(object: &Value, window: Duration) -> Harness {
    harness_with(object, window, None)
}

fn harness_with(object: &Value, window: Duration, policies: Option<Policies>) -> Harness {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let client = fake_apiserver(object.clone(), log.clone(), bodies.clone());
    let aws = Arc::new(FakeCodeBuild {
        log: log.clone(),
        ..Default::default()
    });
    let tracker = Tracker::new(aws.clone());
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
        tracker,
        recorder,
        Settings {
            default_region: "us-east-1".into(),
            token_window: window,
        },
    );
    if let Some(policies) = policies {
        ctx = ctx.with_policies(policies);
    }
    let ctx = Arc::new(ctx);
    Harness {
        log,
        bodies,
        ctx,
        aws,
    }
}

fn run_object(finalizers: &[&str], status: Value) -> Value {
    json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1",
        "kind": "CodeBuildRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "uid-1", "generation": 1, "resourceVersion": "1",
                     "finalizers": finalizers},
        "spec": {"projectName": "p"},
        "status": status,
    })
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

const RUN_PATH: &str = "/apis/codebuild.operator.dev/v1alpha1/namespaces/ns/codebuildruns/r";

/// The start attempt a claim patch records in the annotation.
fn annotated_attempt(claim: &Value) -> Value {
    let raw = claim["metadata"]["annotations"][START_ATTEMPT_ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("no attempt annotation in {claim}"));
    serde_json::from_str(raw).unwrap()
}

#[tokio::test]
async fn a_new_run_is_claimed_in_one_write_before_start_build_and_its_build_id_follows() {
    let object = run_object(&[], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {RUN_PATH}"),
            format!("k8s PATCH {RUN_PATH}"),
            "aws StartBuild us-east-1 token=codebuild-operator-uid-1".to_owned(),
            format!("k8s PATCH {RUN_PATH}/status"),
            "k8s event".to_owned(),
        ],
        "two writes before the build id is known: the claim and the build id"
    );
    let bodies = h.bodies.lock().unwrap();
    let claim = &bodies[0];
    assert_eq!(claim["metadata"]["finalizers"], json!([FINALIZER]));
    assert_eq!(
        claim["metadata"]["resourceVersion"], "1",
        "the claim fails if the object changed since it was read"
    );
    let attempt = annotated_attempt(claim);
    assert_eq!(attempt["idempotencyToken"], "codebuild-operator-uid-1");
    assert_eq!(attempt["region"], "us-east-1");
    assert!(attempt["time"].is_string(), "{attempt}");
    let started = &bodies[1]["status"];
    assert_eq!(started["buildId"], "p:1");
    assert_eq!(
        started["startAttempt"], attempt,
        "status mirrors the attempt"
    );
    assert_eq!(started["conditions"].as_array().unwrap().len(), 4);
    let succeeded = condition(started, "Succeeded");
    assert_eq!(succeeded["status"], "Unknown");
    assert_eq!(succeeded["reason"], "SUBMITTED");
    assert_eq!(bodies[2]["reason"], "BuildStarted");
}

#[tokio::test]
async fn a_slow_start_build_gets_the_conditions_written_before_it_answers() {
    let object = run_object(&[], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    *h.aws.start_delay.lock().unwrap() = Some(Duration::from_millis(1500));
    reconcile_once(&h, &object).await.unwrap();
    assert_eq!(
        log(&h),
        vec![
            format!("k8s GET {RUN_PATH}"),
            format!("k8s PATCH {RUN_PATH}"),
            "aws StartBuild us-east-1 token=codebuild-operator-uid-1".to_owned(),
            format!("k8s PATCH {RUN_PATH}/status"),
            format!("k8s PATCH {RUN_PATH}/status"),
            "k8s event".to_owned(),
        ]
    );
    let bodies = h.bodies.lock().unwrap();
    let starting = &bodies[1]["status"];
    assert!(starting.get("buildId").is_none(), "{starting}");
    let reconciling = condition(starting, "Reconciling");
    assert_eq!(reconciling["status"], "True");
    assert_eq!(reconciling["reason"], "Starting");
    assert_eq!(
        starting["startAttempt"]["idempotencyToken"],
        "codebuild-operator-uid-1"
    );
    assert_eq!(bodies[2]["status"]["buildId"], "p:1");
}

#[tokio::test]
async fn a_run_that_has_the_finalizer_is_claimed_with_the_attempt_only() {
    let object = run_object(&["other/keep", FINALIZER], Value::Null);
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[1], format!("k8s PATCH {RUN_PATH}"), "{l:?}");
    assert_eq!(
        l[2],
        "aws StartBuild us-east-1 token=codebuild-operator-uid-1"
    );
    let claim = &h.bodies.lock().unwrap()[0];
    assert!(claim["metadata"].get("finalizers").is_none(), "{claim}");
    assert_eq!(
        annotated_attempt(claim)["idempotencyToken"],
        "codebuild-operator-uid-1"
    );
}

#[tokio::test]
async fn an_attempt_in_the_annotation_only_is_retried_with_its_token_not_claimed_again() {
    // A crash after the claim, before the build id was written.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut object = run_object(&[FINALIZER], Value::Null);
    object["metadata"]["annotations"] = json!({START_ATTEMPT_ANNOTATION:
        json!({"idempotencyToken": "tok-3", "time": now, "region": "eu-west-1"}).to_string()});
    let h = harness(&object, Duration::from_secs(300));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(
        &l[..3],
        [
            format!("k8s GET {RUN_PATH}"),
            "aws StartBuild eu-west-1 token=tok-3".to_owned(),
            format!("k8s PATCH {RUN_PATH}/status"),
        ],
        "{l:?}"
    );
    let status = &h.bodies.lock().unwrap()[0]["status"];
    assert_eq!(status["startAttempt"]["idempotencyToken"], "tok-3");
}

#[tokio::test]
async fn an_attempt_in_the_annotation_past_the_window_is_searched_not_restarted() {
    let mut object = run_object(&[FINALIZER], Value::Null);
    object["metadata"]["annotations"] = json!({START_ATTEMPT_ANNOTATION:
        json!({"idempotencyToken": "tok", "time": "2020-01-01T00:00:00Z", "region": "us-east-1"}).to_string()});
    let h = harness(&object, Duration::from_secs(300));
    h.aws
        .builds
        .lock()
        .unwrap()
        .push(build("p:9", StatusType::InProgress, "BUILD", "uid-1"));
    reconcile_once(&h, &object).await.unwrap();
    let l = log(&h);
    assert_eq!(l[1], "aws ListBuildsForProject p", "{l:?}");
    assert!(!l.iter().any(|c| c.contains("StartBuild")), "{l:?}");
    assert_eq!(h.bodies.lock().unwrap()[0]["status"]["buildId"], "p:9");
}

#[tokio::test]
async fn an_attempt_inside_the_window_reuses_its_token_without_a_new_attempt_write() {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status =
        json!({"startAttempt": {"idempotencyToken": "tok-7", "time": now, "region": "eu-west-1"}});
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
    assert_eq!(l.iter().filter(|c| c.contains("StartBuild")).count(), 1);
}

#[tokio::test]
async fn an_attempt_past_the_window_is_searched_and_adopted_not_restarted() {
    let status = json!({"startAttempt": {"idempotencyToken": "tok", "time": "2020-01-01T00:00:00Z", "region": "us-east-1"}});
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
    assert!(
        !l.iter().any(|c| c.contains("StartBuild")),
        "a second build was started: {l:?}"
    );
    assert_eq!(h.bodies.lock().unwrap()[0]["status"]["buildId"], "p:9");
}

#[tokio::test]
async fn a_recorded_build_id_never_leads_to_start_build() {
    let status = json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD",
        "startAttempt": {"idempotencyToken": "tok", "time": "2020-01-01T00:00:00Z", "region": "us-east-1"}});
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
    // The first reconcile writes conditions (the object has none); later ones see no change
    // in the fake apiserver's answer and the tracker's cache stays empty: no more writes.
    assert_eq!(
        h.ctx.tracker.in_flight(),
        1,
        "the build is handed to the tracker"
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
    let claim = &h.bodies.lock().unwrap()[0];
    assert_eq!(claim["metadata"]["finalizers"], json!([FINALIZER]));
    assert!(claim["metadata"].get("annotations").is_none(), "{claim}");
    assert!(!l.iter().any(|c| c.starts_with("aws")), "{l:?}");
}

#[tokio::test]
async fn a_stale_cache_without_the_build_id_does_not_repeat_start_build() {
    // The watch cache still shows only the attempt; the apiserver already has the build id.
    let attempt =
        json!({"idempotencyToken": "tok", "time": "2020-01-01T00:00:00Z", "region": "us-east-1"});
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
    let bodies = h.bodies.lock().unwrap();
    let stalled = condition(&bodies[1]["status"], "Stalled").clone();
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "InvalidInput");
    assert!(stalled["message"].as_str().unwrap().contains("bad image"));
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
    let bodies = h.bodies.lock().unwrap();
    let rec = condition(&bodies[1]["status"], "Reconciling").clone();
    assert_eq!(rec["status"], "True");
    assert_eq!(rec["reason"], "ProjectNotFound");
    assert_eq!(
        bodies[2]["reason"], "ProjectNotFound",
        "a Warning Event with the category"
    );
}

#[tokio::test]
async fn deleting_a_running_run_stops_its_build_then_releases_the_finalizer() {
    let status = json!({"buildId": "p:1", "buildStatus": "IN_PROGRESS", "currentPhase": "BUILD",
        "startAttempt": {"idempotencyToken": "tok", "time": "2020-01-01T00:00:00Z", "region": "us-east-1"}});
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

#[tokio::test]
async fn a_refused_run_is_stalled_and_nothing_is_started() {
    let object = run_object(&[], Value::Null);
    let policies = policies(&[team_policy("a", None)], &[("ns", &[("team", "b")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
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
    let bodies = h.bodies.lock().unwrap();
    let status = &bodies[0]["status"];
    assert!(status.get("startAttempt").is_none(), "{status}");
    let stalled = condition(status, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "PolicyDenied");
    assert_eq!(
        stalled["message"],
        "no CodeBuildRunPolicy grants namespace \"ns\""
    );
    let event = &bodies[1];
    assert_eq!(event["reason"], "PolicyDenied");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["note"], stalled["message"]);
    assert!(h.aws.builds.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refusal_is_decided_again_when_a_policy_appears() {
    // The run was refused before (Stalled=True for this generation); a policy now allows it.
    let refused = json!({"conditions": [{"type": "Stalled", "status": "True", "reason": "PolicyDenied",
        "message": "no CodeBuildRunPolicy grants namespace \"ns\"", "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    let object = run_object(&[FINALIZER], refused);
    let policies = policies(&[team_policy("a", None)], &[("ns", &[("team", "a")])]);
    let h = harness_with(&object, Duration::from_secs(300), Some(policies));
    reconcile_once(&h, &object).await.unwrap();
    assert!(
        log(&h).contains(&"aws StartBuild us-east-1 token=codebuild-operator-uid-1".to_owned()),
        "{:?}",
        log(&h)
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
            format!("k8s PATCH {RUN_PATH}"),
            format!("aws StartBuild us-east-1 as {role} token=codebuild-operator-uid-1"),
            format!("k8s PATCH {RUN_PATH}/status"),
            "k8s event".to_owned(),
        ]
    );
    let bodies = h.bodies.lock().unwrap();
    let attempt = &annotated_attempt(&bodies[0]);
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

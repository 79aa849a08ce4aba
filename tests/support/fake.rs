//! A fake CodeBuild for the tests that need no simulator (the mocked-apiserver and tracker
//! tests), and builders for the runs and builds they use. One fake for every such test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types::{Build, EnvironmentVariable, ProjectEnvironment, StatusType};
use aws_smithy_types::DateTime;
use codebuild_operator::api::{CodeBuildRun, MARKER_ENV_VAR};
use codebuild_operator::codebuild::{
    ApiError, BuildApi, BuildBatch, BuildIdPage, ErrorKind, Target,
};
use serde_json::{Value, json};

/// CodeBuild in memory: what it was asked (`log`), the builds it knows, and the failures
/// and answers a test sets up.
#[derive(Default)]
pub struct FakeCodeBuild {
    /// Every call, as `aws <Operation> <details>` (shared with the fake apiserver's log in
    /// the mocked-apiserver tests, so the two interleave in call order).
    pub log: Arc<Mutex<Vec<String>>>,
    /// The builds CodeBuild knows, oldest first.
    pub builds: Mutex<Vec<Build>>,
    /// StartBuild fails with this.
    pub start_error: Mutex<Option<ApiError>>,
    /// StartBuild answers this late.
    pub start_delay: Mutex<Option<Duration>>,
    /// BatchGetBuilds answers every id it does not know as a build with this status
    /// (phase BUILD), instead of listing it in `buildsNotFound`.
    pub answer_any: Mutex<Option<StatusType>>,
    /// Ids BatchGetBuilds lists in `buildsNotFound` whatever else is set.
    pub missing: Mutex<Vec<String>>,
    /// Ids that make BatchGetBuilds refuse the whole call (InvalidInputException).
    pub rejected: Mutex<Vec<String>>,
    /// ListBuildsForProject always says there is another page (a search that never ends).
    pub endless_pages: Mutex<bool>,
    /// (Region, number of ids) of every BatchGetBuilds call.
    pub batch_calls: Mutex<Vec<(String, usize)>>,
    /// The batch builds CodeBuild knows, oldest first (see `fake_batch`).
    pub batches: Mutex<Vec<aws_sdk_codebuild::types::BuildBatch>>,
    /// (Region, number of ids) of every BatchGetBuildBatches call.
    pub batch_batch_calls: Mutex<Vec<(String, usize)>>,
}

impl FakeCodeBuild {
    /// A fake that logs into `log`.
    pub fn logging_to(log: Arc<Mutex<Vec<String>>>) -> Self {
        FakeCodeBuild {
            log,
            ..Default::default()
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn note(&self, call: String) {
        self.log.lock().unwrap().push(call);
    }
}

/// A build as CodeBuild returns it, carrying the marker of run `uid`.
pub fn build(id: &str, status: StatusType, phase: &str, uid: &str) -> Build {
    let marker = EnvironmentVariable::builder()
        .name(MARKER_ENV_VAR)
        .value(uid)
        .build()
        .unwrap();
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
                .environment_variables(marker)
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
        self.note(format!("aws StartBuild {target} token={token}"));
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
        target: &Target,
        ids: Vec<String>,
    ) -> Result<BuildBatch, ApiError> {
        assert!(ids.len() <= 100, "more than 100 ids in one call");
        self.note(format!("aws BatchGetBuilds {}", ids.join(",")));
        self.batch_calls
            .lock()
            .unwrap()
            .push((target.region.clone(), ids.len()));
        if ids
            .iter()
            .any(|id| self.rejected.lock().unwrap().contains(id))
        {
            return Err(ApiError::new(
                ErrorKind::InvalidInput,
                Some("InvalidInputException"),
                "Invalid build ID provided",
            ));
        }
        let known = self.builds.lock().unwrap().clone();
        let missing = self.missing.lock().unwrap().clone();
        let any = self.answer_any.lock().unwrap().clone();
        let mut batch = BuildBatch::default();
        for id in ids {
            let found = known.iter().find(|b| b.id.as_deref() == Some(&id)).cloned();
            match (found, &any) {
                _ if missing.contains(&id) => batch.not_found.push(id),
                (Some(b), _) => batch.builds.push(b),
                (None, Some(status)) => batch.builds.push(
                    Build::builder()
                        .id(&id)
                        .build_status(status.clone())
                        .current_phase("BUILD")
                        .build(),
                ),
                (None, None) => batch.not_found.push(id),
            }
        }
        Ok(batch)
    }

    async fn stop_build(&self, _target: &Target, id: &str) -> Result<Build, ApiError> {
        self.note(format!("aws StopBuild {id}"));
        Ok(build(id, StatusType::Stopped, "COMPLETED", ""))
    }

    async fn list_builds_for_project(
        &self,
        _target: &Target,
        project: &str,
        _next_token: Option<String>,
    ) -> Result<BuildIdPage, ApiError> {
        self.note(format!("aws ListBuildsForProject {project}"));
        let ids = self
            .builds
            .lock()
            .unwrap()
            .iter()
            .rev()
            .map(|b| b.id.clone().unwrap())
            .collect();
        let next_token = self
            .endless_pages
            .lock()
            .unwrap()
            .then(|| "more".to_owned());
        Ok(BuildIdPage { ids, next_token })
    }
}

/// A CodeBuildRun `r` in namespace `ns` (uid `uid-1`, generation 1, resourceVersion 1) for
/// project `p`, as JSON, to adjust before use.
pub fn run_json(finalizers: &[&str], status: Value) -> Value {
    json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1",
        "kind": "CodeBuildRun",
        "metadata": {"name": "r", "namespace": "ns", "uid": "uid-1", "generation": 1,
                     "resourceVersion": "1", "finalizers": finalizers},
        "spec": {"projectName": "p"},
        "status": status,
    })
}

/// Run `name` in `namespace` whose status records build `build_id` (status `build_status`),
/// started in `region`.
pub fn run_with_build(
    name: &str,
    namespace: &str,
    build_id: &str,
    build_status: &str,
    region: &str,
) -> CodeBuildRun {
    serde_json::from_value(json!({
        "apiVersion": "codebuild.operator.dev/v1alpha1",
        "kind": "CodeBuildRun",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
        "spec": {"projectName": "p"},
        "status": {"buildId": build_id, "buildStatus": build_status,
                   "startAttempt": {"idempotencyToken": "t", "time": "2026-01-01T00:00:00Z",
                                    "region": region}},
    }))
    .unwrap()
}

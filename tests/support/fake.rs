//! A fake CodeBuild (and CloudWatch Logs) for the tests that need no simulator (the
//! mocked-apiserver and tracker tests), and builders for the runs and builds they use. One
//! fake for every such test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types::{
    Build, EnvironmentVariable, ProjectEnvironment, Report, ReportStatusType, ReportType,
    StatusType, TestReportSummary,
};
use aws_smithy_types::DateTime;
use codebuild_operator::api::{CodeBuildRun, MARKER_ENV_VAR};
use codebuild_operator::codebuild::{
    ApiError, BuildApi, BuildBatch, BuildIdPage, ErrorKind, LogEvent, LogPage, LogRead,
    ReportBatch, Target,
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
    /// The log streams CloudWatch Logs holds, by (group, stream): their lines, oldest first.
    pub logs: Mutex<BTreeMap<(String, String), Vec<String>>>,
    /// GetLogEvents fails with this.
    pub logs_error: Mutex<Option<ApiError>>,
    /// Every GetLogEvents request.
    pub log_reads: Mutex<Vec<LogRead>>,
    /// The reports CodeBuild knows.
    pub reports: Mutex<Vec<Report>>,
    /// BatchGetReports fails with this.
    pub reports_error: Mutex<Option<ApiError>>,
    /// The ARNs of every BatchGetReports call.
    pub report_calls: Mutex<Vec<Vec<String>>>,
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

/// A TEST report `arn` with `passed` of `total` test cases succeeded (`status` GENERATING:
/// no summary yet).
pub fn test_report(arn: &str, status: ReportStatusType, passed: i32, total: i32) -> Report {
    let mut report = Report::builder()
        .arn(arn)
        .name("p-unit")
        .r#type(ReportType::Test)
        .status(status.clone());
    if status != ReportStatusType::Generating {
        report = report.test_summary(
            TestReportSummary::builder()
                .total(total)
                .status_counts("SUCCEEDED", passed)
                .status_counts("FAILED", total - passed)
                .duration_in_nano_seconds(1_000_000)
                .build()
                .unwrap(),
        );
    }
    report.build()
}

/// One page of `lines` as GetLogEvents answers `read`: tokens are `f/<index>` / `b/<index>`,
/// and at the end of the stream the token given comes back.
fn log_page(lines: &[String], read: &LogRead) -> LogPage {
    let limit = read.limit.unwrap_or(10_000).max(1) as usize;
    let position = |t: &str| t[2..].parse::<usize>().unwrap();
    let (start, end) = match read.next_token.as_deref() {
        Some(t) if t.starts_with("f/") => {
            let from = position(t).min(lines.len());
            (from, (from + limit).min(lines.len()))
        }
        Some(t) => {
            let to = position(t).min(lines.len());
            (to.saturating_sub(limit), to)
        }
        None if read.start_from_head => (0, limit.min(lines.len())),
        None => (lines.len().saturating_sub(limit), lines.len()),
    };
    let forward = match read.next_token.as_deref() {
        Some(t) if t.starts_with("f/") && start == end => t.to_owned(),
        _ => format!("f/{end}"),
    };
    LogPage {
        events: lines[start..end]
            .iter()
            .map(|m| LogEvent {
                message: format!("{m}\n"),
                ..LogEvent::default()
            })
            .collect(),
        next_forward_token: Some(forward),
        next_backward_token: Some(format!("b/{start}")),
    }
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

    async fn batch_get_reports(
        &self,
        _target: &Target,
        arns: Vec<String>,
    ) -> Result<ReportBatch, ApiError> {
        assert!(arns.len() <= 100, "more than 100 ARNs in one call");
        self.note(format!("aws BatchGetReports {}", arns.join(",")));
        self.report_calls.lock().unwrap().push(arns.clone());
        if let Some(e) = self.reports_error.lock().unwrap().clone() {
            return Err(e);
        }
        let known = self.reports.lock().unwrap().clone();
        let mut batch = ReportBatch::default();
        for arn in arns {
            match known.iter().find(|r| r.arn.as_deref() == Some(&arn)) {
                Some(r) => batch.reports.push(r.clone()),
                None => batch.not_found.push(arn),
            }
        }
        Ok(batch)
    }

    async fn get_log_events(&self, _target: &Target, read: LogRead) -> Result<LogPage, ApiError> {
        self.note(format!(
            "aws GetLogEvents {} {} head={} limit={:?}",
            read.group, read.stream, read.start_from_head, read.limit
        ));
        self.log_reads.lock().unwrap().push(read.clone());
        if let Some(e) = self.logs_error.lock().unwrap().clone() {
            return Err(e);
        }
        let logs = self.logs.lock().unwrap();
        let Some(lines) = logs.get(&(read.group.clone(), read.stream.clone())) else {
            return Err(ApiError::new(
                ErrorKind::ProjectNotFound,
                Some("ResourceNotFoundException"),
                "The specified log stream does not exist.",
            ));
        };
        Ok(log_page(lines, &read))
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

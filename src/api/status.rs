//! `CodeBuildRunStatus`: the build as CodeBuild reports it, in the API's names, plus the
//! operator's own bookkeeping (the start attempt, observedGeneration, conditions).
//!
//! Status values that come from AWS (buildStatus, phaseType, ...) are plain strings, not
//! enums: the service may add values, and an unknown value must never make an object
//! unreadable.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a CodeBuildRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// Atomic for server-side apply: the operator is its only writer and always applies all of
// it, so the apiserver tracks one field (`f:status`) instead of every leaf. That keeps
// managedFields about 1.6 KB smaller and each status write about a fifth cheaper for the
// apiserver (README, Performance).
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct CodeBuildRunStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Succeeded (the build's outcome: Unknown while it runs), Ready (True only once the
    /// build succeeded), Reconciling (work in progress) and Stalled (terminal failure or an
    /// error that needs a change to the object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The StartBuild attempt, recorded here by the operator before StartBuild is called
    /// (with the Starting conditions, then the finalizer), so that a crash at any instant
    /// can never lead to a second build. Only the operator writes status: the Region and
    /// role recorded here are those every later call for this run uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_attempt: Option<StartAttempt>,

    /// The build, as CodeBuild last reported it.
    #[serde(flatten)]
    pub build: BuildInfo,

    /// The chain of automatic retries, oldest first, when CodeBuild retried the build. The
    /// fields above describe the last build of the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Vec<RetriedBuild>>,

    /// Why the build failed, in its own words: the last lines of its log, read once when it
    /// ended FAILED, FAULT or TIMED_OUT (`--log-tail-lines`, `--log-tail-bytes`), or why
    /// there are none (logs off or in S3 only, no stream, access denied, throttled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<LogTail>,

    /// The build's test and code coverage reports (BatchGetReports), once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<BuildReports>,
}

/// The members of a CodeBuild `Build` that are mirrored into status, in the API's names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    /// The build's id, `<project>:<uuid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// The build's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_arn: Option<String>,
    /// The build's number within its project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<i64>,
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status: Option<String>,
    /// The phase the build is in (SUBMITTED ... COMPLETED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_phase: Option<String>,
    /// Whether the build has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_complete: Option<bool>,
    /// When the build started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the build ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// The source version the build was asked to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// The commit (or S3 object version) actually built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_source_version: Option<String>,
    /// Every phase so far, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Vec<BuildPhase>>,
    /// Where the primary artifacts are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<BuildArtifacts>,
    /// Where the secondary artifacts are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_artifacts: Option<Vec<BuildArtifacts>>,
    /// Where the logs are, with links to the console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogsLocation>,
    /// Variables the buildspec exported (`env.exported-variables`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_environment_variables: Option<Vec<ExportedEnvironmentVariable>>,
    /// ARNs of the test and coverage reports of the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_arns: Option<Vec<String>>,
    /// CodeBuild's automatic retries of this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_retry_config: Option<AutoRetryConfig>,
}

/// The record of a StartBuild call, written before the call is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartAttempt {
    /// The idempotency token sent with StartBuild.
    pub idempotency_token: String,
    /// When the attempt was recorded; the token is valid for 5 minutes from then.
    pub time: Time,
    /// When the first attempt for this run was recorded, when this one is a later one (a
    /// start retried past the token window): how long the run has been trying to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_time: Option<Time>,
    /// The AWS Region the build is started in.
    pub region: String,
    /// The IAM role the operator assumed to start the build (from the CodeBuildRunPolicy
    /// that allowed it); every later call for this run (BatchGetBuilds, StopBuild) is made
    /// with the same role. Unset: the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The CodeBuildRunPolicy that allowed the start, when policies are enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

impl StartAttempt {
    /// Since when the run has been trying to start.
    pub fn since(&self) -> &Time {
        self.first_time.as_ref().unwrap_or(&self.time)
    }
}

/// One phase of a build.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildPhase {
    /// SUBMITTED, QUEUED, PROVISIONING, DOWNLOAD_SOURCE, INSTALL, PRE_BUILD, BUILD,
    /// POST_BUILD, UPLOAD_ARTIFACTS, FINALIZING or COMPLETED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_type: Option<String>,
    /// How the phase ended: SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_status: Option<String>,
    /// When the phase started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the phase ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// How long the phase took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_in_seconds: Option<i64>,
    /// Why the phase ended as it did (status code and message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Vec<PhaseContext>>,
}

/// A reason attached to a phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseContext {
    /// The status code, for example COMMAND_EXECUTION_ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// What happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a build put an artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildArtifacts {
    /// The artifact's location, an S3 ARN such as `arn:aws:s3:::bucket/path/name.zip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// SHA-256 of the artifact (ZIP packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256sum: Option<String>,
    /// MD5 of the artifact (ZIP packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5sum: Option<String>,
    /// Whether the buildspec's name replaced the artifact's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_artifact_name: Option<bool>,
    /// Whether the artifact is stored unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_disabled: Option<bool>,
    /// The artifact's identifier (secondary artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_identifier: Option<String>,
    /// Access the bucket owner has: NONE, READ_ONLY or FULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_owner_access: Option<String>,
}

/// Where a build's logs are: locations and links (the few lines of a failed build's log are
/// in `status.logTail`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsLocation {
    /// The CloudWatch Logs group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// The CloudWatch Logs stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    /// A console link to the CloudWatch logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_link: Option<String>,
    /// A console link to the S3 logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_deep_link: Option<String>,
    /// The ARN of the CloudWatch log stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_arn: Option<String>,
    /// The ARN of the S3 logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_logs_arn: Option<String>,
    /// Whether the build sends its log to CloudWatch Logs (`status`: ENABLED or DISABLED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs: Option<LogsDestination>,
    /// Whether the build sends its log to S3 (`status`), and where (`location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_logs: Option<LogsDestination>,
}

/// One destination of a build's log, as the build reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsDestination {
    /// ENABLED or DISABLED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The S3 bucket and prefix of the log (S3 logs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The last lines of a failed build's log, or why there are none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogTail {
    /// The build whose log this is.
    pub build_id: String,
    /// The lines, oldest first, without terminal colour codes: the last ones up to the end
    /// of the phase that failed (the lines the clean-up phases print after a failure are
    /// left out when the tail that was read shows the failure), at most the operator's
    /// `--log-tail-lines` lines and `--log-tail-bytes` bytes. A line cut to fit ends in
    /// `…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Why there are no lines: LogsDisabled (CloudWatch logs are off; S3 only or none),
    /// NoLogStream (the build ended before its container wrote a log), LogStreamNotFound,
    /// LogEmpty, AccessDenied (the operator may not call logs:GetLogEvents), Throttled,
    /// ServiceUnavailable, NetworkError or AwsError. Unset when the lines were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In words: why there are no lines, and where the whole log is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The test and code coverage reports of a finished build.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildReports {
    /// The build whose reports these are.
    pub build_id: String,
    /// Test cases that passed, of all test cases, over every TEST report: `passed/total`,
    /// e.g. `40/43` (the Tests column of `kubectl get cbr -o wide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    /// Each report, in the order of `reportArns`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ReportSummary>,
    /// Why reports are missing or not final (access denied, still generating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One report of a build, as BatchGetReports describes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    /// The report's ARN.
    pub arn: String,
    /// The report's name (its report group's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TEST or CODE_COVERAGE.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    /// GENERATING, SUCCEEDED, FAILED, INCOMPLETE or DELETING; NOT_FOUND when CodeBuild no
    /// longer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Test counts and duration (TEST reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_summary: Option<TestReportSummary>,
    /// Coverage (CODE_COVERAGE reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_coverage_summary: Option<CodeCoverageReportSummary>,
}

/// The test counts of a TEST report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestReportSummary {
    /// How many test cases the report holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i32>,
    /// Test cases by status: SUCCEEDED, FAILED, SKIPPED, ERROR, UNKNOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_counts: Option<BTreeMap<String, i32>>,
    /// How long the tests ran, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_in_nano_seconds: Option<i64>,
}

/// The coverage of a CODE_COVERAGE report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeCoverageReportSummary {
    /// Lines covered, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_coverage_percentage: Option<f64>,
    /// Lines covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_covered: Option<i32>,
    /// Lines not covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines_missed: Option<i32>,
    /// Branches covered, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_coverage_percentage: Option<f64>,
    /// Branches covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches_covered: Option<i32>,
    /// Branches not covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches_missed: Option<i32>,
}

/// A variable exported by the buildspec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedEnvironmentVariable {
    /// The variable's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its value at the end of the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// CodeBuild's automatic retry settings and links for a build.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoRetryConfig {
    /// How many automatic retries are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_retry_limit: Option<i32>,
    /// Which retry this build is (0 for the original build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_retry_number: Option<i32>,
    /// The id of the build that retries this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_auto_retry: Option<String>,
    /// The id of the build this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_auto_retry: Option<String>,
}

/// An earlier build of an automatic retry chain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetriedBuild {
    /// The build's id.
    pub build_id: String,
    /// The build's number within its project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<i64>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status: Option<String>,
    /// Where its logs are (`kubectl codebuild logs --retry N` reads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogsLocation>,
}

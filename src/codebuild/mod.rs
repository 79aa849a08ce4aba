//! The seam between the controller and AWS CodeBuild (and CloudWatch Logs, where builds write
//! their log).
//!
//! `BuildApi` is the trait the controller, the tracker, the report reader and the kubectl
//! plugin are generic over; `AwsBuildApi` is the AWS SDK implementation (one client per
//! region and service, built from aws-config's default chain); `error` classifies every
//! failure into a fixed category.

mod aws_impl;
mod batch;
mod error;
mod start_rate;
mod target;

use std::future::Future;

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types::{Build, Report};

pub use aws_impl::{AwsBuildApi, AwsSettings};
pub use batch::{BATCH_GET_BUILD_BATCHES_MAX_IDS, BatchApi, BatchesFound, CodeBuild};
pub use error::{ApiError, ErrorKind};
pub use start_rate::StartRate;
pub use target::{AssumedRole, Target};

/// Most ids BatchGetBuilds accepts in one call (a service limit, not adjustable).
pub const BATCH_GET_BUILDS_MAX_IDS: usize = 100;

/// Most ARNs BatchGetReports accepts in one call (a service limit).
pub const BATCH_GET_REPORTS_MAX_ARNS: usize = 100;

/// Most events GetLogEvents returns in one call (a service limit; a page also stops at 1 MB).
pub const GET_LOG_EVENTS_MAX_LIMIT: i32 = 10_000;

/// The answer of one BatchGetBuilds call.
#[derive(Clone, Debug, Default)]
pub struct BuildBatch {
    /// The builds found, in no particular order.
    pub builds: Vec<Build>,
    /// Requested ids CodeBuild does not know.
    pub not_found: Vec<String>,
}

/// One page of ListBuildsForProject, newest first.
#[derive(Clone, Debug, Default)]
pub struct BuildIdPage {
    /// Build ids, newest first.
    pub ids: Vec<String>,
    /// The token of the next page, if any.
    pub next_token: Option<String>,
}

/// The answer of one BatchGetReports call.
#[derive(Clone, Debug, Default)]
pub struct ReportBatch {
    /// The reports found, in no particular order.
    pub reports: Vec<Report>,
    /// Requested ARNs CodeBuild does not know.
    pub not_found: Vec<String>,
}

/// One GetLogEvents request: a page of a log stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRead {
    /// The log group.
    pub group: String,
    /// The log stream.
    pub stream: String,
    /// Read from the oldest events (true) or the newest (false). Ignored with a token.
    pub start_from_head: bool,
    /// Where to go on from: a `next_forward_token` (or backward token) of an earlier page.
    pub next_token: Option<String>,
    /// At most this many events (1..=10,000; the service's default is 10,000).
    pub limit: Option<i32>,
}

/// One event of a log stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogEvent {
    /// When the line was written (epoch milliseconds).
    pub timestamp: Option<i64>,
    /// When CloudWatch Logs stored it (epoch milliseconds).
    pub ingestion_time: Option<i64>,
    /// The line, as the build wrote it (CodeBuild's end in a newline).
    pub message: String,
}

/// One page of GetLogEvents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogPage {
    /// The events, oldest first.
    pub events: Vec<LogEvent>,
    /// The token that reads on after this page. At the end of the stream the service
    /// returns the very token it was given: that is how a reader knows it has caught up.
    pub next_forward_token: Option<String>,
    /// The token that reads the events before this page.
    pub next_backward_token: Option<String>,
}

/// The CodeBuild calls the operator makes. Every call names its target: the Region it goes
/// to and the identity it is made with.
pub trait BuildApi: Send + Sync + 'static {
    /// Whether a StartBuild to `target` may be sent now, or how long to wait: the client
    /// paces starts per target (see [`StartRate`]). Asked before a start attempt is
    /// recorded. Unpaced unless the implementation says otherwise.
    fn start_permit(&self, _target: &Target) -> Result<(), std::time::Duration> {
        Ok(())
    }

    /// StartBuild.
    fn start_build(
        &self,
        target: &Target,
        input: StartBuildInput,
    ) -> impl Future<Output = Result<Build, ApiError>> + Send;

    /// BatchGetBuilds for at most [`BATCH_GET_BUILDS_MAX_IDS`] ids.
    fn batch_get_builds(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<BuildBatch, ApiError>> + Send;

    /// StopBuild.
    fn stop_build(
        &self,
        target: &Target,
        id: &str,
    ) -> impl Future<Output = Result<Build, ApiError>> + Send;

    /// One page of ListBuildsForProject, newest first.
    fn list_builds_for_project(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<BuildIdPage, ApiError>> + Send;

    /// BatchGetReports for at most [`BATCH_GET_REPORTS_MAX_ARNS`] report ARNs.
    fn batch_get_reports(
        &self,
        target: &Target,
        arns: Vec<String>,
    ) -> impl Future<Output = Result<ReportBatch, ApiError>> + Send;

    /// CloudWatch Logs GetLogEvents: one page of a build's log stream, in one attempt (no
    /// retry inside: every caller paces and counts its own calls).
    fn get_log_events(
        &self,
        target: &Target,
        read: LogRead,
    ) -> impl Future<Output = Result<LogPage, ApiError>> + Send;
}

//! The seam between the controller and AWS CodeBuild.
//!
//! `BuildApi` is the trait the controller and tracker are generic over; `AwsBuildApi` is the
//! AWS SDK implementation (one client per region, built from aws-config's default chain);
//! `error` classifies every failure into a fixed category.

mod aws_impl;
mod batch;
mod error;
mod start_rate;
mod target;

use std::future::Future;

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use aws_sdk_codebuild::types::Build;

pub use aws_impl::{AwsBuildApi, AwsSettings};
pub use batch::{BATCH_GET_BUILD_BATCHES_MAX_IDS, BatchApi, BatchesFound, CodeBuild};
pub use error::{ApiError, ErrorKind};
pub use start_rate::StartRate;
pub use target::{AssumedRole, Target};

/// Most ids BatchGetBuilds accepts in one call (a service limit, not adjustable).
pub const BATCH_GET_BUILDS_MAX_IDS: usize = 100;

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
}

//! The CodeBuild calls of batch builds (CodeBuildBatchRun), next to [`super::BuildApi`]:
//! StartBuildBatch, BatchGetBuildBatches, StopBuildBatch, RetryBuildBatch and
//! ListBuildBatchesForProject. Every call names its target, as for builds.

use std::future::Future;

use aws_sdk_codebuild::operation::start_build_batch::StartBuildBatchInput;
use aws_sdk_codebuild::types::BuildBatch;

use super::{ApiError, BuildIdPage, Target};
use crate::api::RetryBuildBatchType;

/// Most ids BatchGetBuildBatches accepts in one call (the service model's maximum).
pub const BATCH_GET_BUILD_BATCHES_MAX_IDS: usize = 100;

/// The answer of one BatchGetBuildBatches call.
#[derive(Clone, Debug, Default)]
pub struct BatchesFound {
    /// The batches found, in no particular order.
    pub batches: Vec<BuildBatch>,
    /// Requested ids CodeBuild does not know.
    pub not_found: Vec<String>,
}

/// The batch build calls the operator makes.
pub trait BatchApi: Send + Sync + 'static {
    /// StartBuildBatch.
    fn start_build_batch(
        &self,
        target: &Target,
        input: StartBuildBatchInput,
    ) -> impl Future<Output = Result<BuildBatch, ApiError>> + Send;

    /// BatchGetBuildBatches for at most [`BATCH_GET_BUILD_BATCHES_MAX_IDS`] ids.
    fn batch_get_build_batches(
        &self,
        target: &Target,
        ids: Vec<String>,
    ) -> impl Future<Output = Result<BatchesFound, ApiError>> + Send;

    /// StopBuildBatch.
    fn stop_build_batch(
        &self,
        target: &Target,
        id: &str,
    ) -> impl Future<Output = Result<BuildBatch, ApiError>> + Send;

    /// RetryBuildBatch of batch `id`, with `idempotency_token`.
    fn retry_build_batch(
        &self,
        target: &Target,
        id: &str,
        retry_type: RetryBuildBatchType,
        idempotency_token: &str,
    ) -> impl Future<Output = Result<BuildBatch, ApiError>> + Send;

    /// One page of ListBuildBatchesForProject, newest first.
    fn list_build_batches_for_project(
        &self,
        target: &Target,
        project: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<BuildIdPage, ApiError>> + Send;
}

/// Everything the operator calls: builds and batch builds.
pub trait CodeBuild: super::BuildApi + BatchApi {}

impl<T: super::BuildApi + BatchApi> CodeBuild for T {}

//! The `CodeBuildBatchRun` API (`codebuild.operator.dev/v1alpha1`): one CodeBuild batch
//! build. The spec IS a StartBuildBatch request (every member of the current service
//! model, the API's names and nesting), sharing the Rust types of the members StartBuild
//! has too; `spec.operator` holds the operator's settings. Types and schema only; no I/O.

mod options;
mod spec;
mod state;
mod status;

pub use options::*;
pub use spec::*;
#[cfg(test)]
pub(crate) use state::sample_batch;
pub use state::{DOWNLOAD_SOURCE_GROUP, PENDING, RETRY_PHASE_STATUS};
pub use status::*;

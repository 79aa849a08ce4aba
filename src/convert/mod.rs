//! Pure conversions between the CodeBuildRun API and the AWS SDK's types.
//!
//! `start_build`: spec -> StartBuild input (every member, nothing dropped).
//! `build_info`: the SDK's Build -> the mirrored part of status.
//! `start_build_batch`: a CodeBuildBatchRun's spec -> StartBuildBatch input (the members
//! StartBuild shares converted by the same functions).
//! `batch_info`: the SDK's BuildBatch -> the mirrored part of a CodeBuildBatchRun's status.
//! `report`: the SDK's Report -> one report in `status.reports`.

mod batch_info;
mod build_info;
mod report;
mod start_build;
mod start_build_batch;
mod time;

pub use batch_info::{batch_info, build_id_of_arn};
pub use build_info::{build_info, retried_build};
pub use report::report_summary;
pub use start_build::{ConvertError, start_build_input};
pub use start_build_batch::start_build_batch_input;
pub use time::{NowTime, from_aws_time, now};

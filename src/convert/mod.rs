//! Pure conversions between the CodeBuildRun API and the AWS SDK's types.
//!
//! `start_build`: spec -> StartBuild input (every member, nothing dropped).
//! `build_info`: the SDK's Build -> the mirrored part of status.
//! `report`: the SDK's Report -> one report in `status.reports`.

mod build_info;
mod report;
mod start_build;
mod time;

pub use build_info::{build_info, retried_build};
pub use report::report_summary;
pub use start_build::{ConvertError, start_build_input};
pub use time::{NowTime, from_aws_time, now};

//! `spec.operator` of a CodeBuildBatchRun: the settings of a CodeBuildRun's
//! `spec.operator`, for a batch, plus retries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::super::{OnDelete, RunOptions, api_enum};

// No doc comment on the type: its description would replace the field's in the schema.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnBatchDelete {
    /// Call StopBuildBatch, then let the object go (the default).
    #[default]
    StopBuildBatch,
    /// Leave the batch running in CodeBuild and let the object go at once.
    LeaveRunning,
}

api_enum! {
    /// Which builds a retry runs again: RETRY_FAILED_BUILDS (the build groups that did not
    /// succeed) or RETRY_ALL_BUILDS (every build group).
    RetryBuildBatchType {
        RetryAllBuilds = "RETRY_ALL_BUILDS",
        RetryFailedBuilds = "RETRY_FAILED_BUILDS",
    }
}

/// Settings of the operator for this batch. None of them is sent to CodeBuild.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRunOptions {
    /// The AWS Region to start the batch in, for example `eu-west-1`. Defaults to the
    /// operator's region (its `--region` flag or the AWS configuration). Cannot change
    /// after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: Option<String>,
    /// What deleting this object does to a batch that is still running: `StopBuildBatch`
    /// (the default) or `LeaveRunning`. May be changed at any time, for example just before
    /// a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnBatchDelete>,
    /// Set to true to stop the running batch (StopBuildBatch: its running builds are
    /// stopped, the builds not started yet never start) and keep this object, which then
    /// shows buildBatchStatus STOPPED. Cannot be set back to false. Setting it before the
    /// batch started means no batch is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    /// Delete this object this many seconds after its batch finished, like a Job's field of
    /// the same name. Unset keeps finished batch runs until they are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
    /// Retries of the batch (RetryBuildBatch) once it ended without success. Raise
    /// `count` by one to retry once more: each step up is one RetryBuildBatch, recorded in
    /// `status.retryAttempts` before it is made, so it happens once whatever happens to the
    /// operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<BatchRetry>,
}

/// Retries of a batch that ended without success.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRetry {
    /// How many retries are asked for, in all: the operator calls RetryBuildBatch until it
    /// has made this many, one each time the batch ends without success (FAILED, FAULT,
    /// TIMED_OUT or STOPPED). Only grows; 0 to 100.
    #[schemars(range(min = 0, max = 100))]
    pub count: i32,
    /// Which builds each retry runs again. Required.
    pub retry_type: RetryBuildBatchType,
}

impl BatchRunOptions {
    /// The settings every kind of run shares (region, delete and stop behaviour, TTL), as
    /// the shared lifecycle decisions read them.
    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            region: self.region.clone(),
            on_delete: self.on_delete.map(|d| match d {
                OnBatchDelete::StopBuildBatch => OnDelete::StopBuild,
                OnBatchDelete::LeaveRunning => OnDelete::LeaveRunning,
            }),
            stop: self.stop,
            ttl_seconds_after_finished: self.ttl_seconds_after_finished,
        }
    }

    /// How many retries are asked for.
    pub fn retries_requested(&self) -> u32 {
        self.retry
            .as_ref()
            .map_or(0, |r| u32::try_from(r.count).unwrap_or(0))
    }
}

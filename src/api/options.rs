//! `spec.operator`: the few settings that belong to the operator, not to StartBuild.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// No doc comment on the type: its description would replace the field's in the schema.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OnDelete {
    /// Call StopBuild, then let the object go (the default).
    #[default]
    StopBuild,
    /// Leave the build running in CodeBuild and let the object go at once.
    LeaveRunning,
}

/// Settings of the operator for this run. None of them is sent to CodeBuild.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    /// The AWS Region to start the build in, for example `eu-west-1`. Defaults to the
    /// operator's region (its `--region` flag or the AWS configuration). Cannot change
    /// after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: Option<String>,
    /// What deleting this object does to a build that is still running: `StopBuild` (the
    /// default) or `LeaveRunning`. May be changed at any time, for example just before a
    /// delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,
    /// Set to true to stop the running build (StopBuild) and keep this object, which then
    /// shows buildStatus STOPPED. Cannot be set back to false. Setting it before the build
    /// started means no build is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    /// Delete this object this many seconds after its build finished, like a Job's field of
    /// the same name. Unset keeps finished runs until they are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,
}

impl RunOptions {
    /// The effective delete policy.
    pub fn on_delete(&self) -> OnDelete {
        self.on_delete.unwrap_or_default()
    }

    /// Whether the user asked to stop the build.
    pub fn stop_requested(&self) -> bool {
        self.stop.unwrap_or(false)
    }
}

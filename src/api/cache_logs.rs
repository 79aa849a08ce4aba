//! Cache and logs members of the StartBuild request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BucketOwnerAccess, api_enum};

api_enum! {
    /// The kind of build cache: NO_CACHE, S3 or LOCAL.
    CacheType {
        NoCache = "NO_CACHE",
        S3 = "S3",
        Local = "LOCAL",
    }
}

api_enum! {
    /// A local cache mode: LOCAL_DOCKER_LAYER_CACHE, LOCAL_SOURCE_CACHE or
    /// LOCAL_CUSTOM_CACHE.
    CacheMode {
        LocalDockerLayerCache = "LOCAL_DOCKER_LAYER_CACHE",
        LocalSourceCache = "LOCAL_SOURCE_CACHE",
        LocalCustomCache = "LOCAL_CUSTOM_CACHE",
    }
}

api_enum! {
    /// Whether a log destination is used: ENABLED or DISABLED.
    LogsConfigStatusType {
        Enabled = "ENABLED",
        Disabled = "DISABLED",
    }
}

/// The build cache for this build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCache {
    /// The kind of cache. Required.
    #[serde(rename = "type")]
    pub type_: CacheType,
    /// For S3: `bucket` or `bucket/prefix` of the cache. Ignored for NO_CACHE and LOCAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For LOCAL: which local caches to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes: Option<Vec<CacheMode>>,
    /// For S3: a namespace that lets several projects share one cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_namespace: Option<String>,
}

/// Logs sent to CloudWatch Logs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchLogsConfig {
    /// Whether CloudWatch Logs are written. Required.
    pub status: LogsConfigStatusType,
    /// The log group. Defaults to `/aws/codebuild/<project>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// A prefix of the log stream name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
}

/// Logs written to S3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3LogsConfig {
    /// Whether S3 logs are written. Required.
    pub status: LogsConfigStatusType,
    /// `bucket/prefix` of the logs, for example `my-bucket/build-log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Store the logs unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_disabled: Option<bool>,
    /// Access the bucket owner gets when the bucket belongs to another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_owner_access: Option<BucketOwnerAccess>,
}

/// Where this build's logs go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsConfig {
    /// CloudWatch Logs settings. Enabled by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs: Option<CloudWatchLogsConfig>,
    /// S3 logs settings. Disabled by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_logs: Option<S3LogsConfig>,
}

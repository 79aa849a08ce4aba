//! `CodeBuildRunSpec`: the StartBuild request, member for member.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    BuildStatusConfig, CodeBuildRunStatus, ComputeType, EnvironmentType, EnvironmentVariable,
    GitSubmodulesConfig, HostKernelType, ImagePullCredentialsType, LogsConfig, ProjectArtifacts,
    ProjectCache, ProjectFleet, ProjectSource, ProjectSourceVersion, RegistryCredential,
    RunOptions, SourceAuth, SourceType,
};

/// One AWS CodeBuild build. The spec is a CodeBuild StartBuild request with the API's own
/// member names and nesting; only `projectName` is required and every other member
/// overrides the project's setting for this build only. `spec.operator` holds the few
/// settings of the operator itself. The StartBuild members cannot change after creation:
/// create a new CodeBuildRun to start another build.
// Each printcolumn(...) repeats `type_`: clippy reads that as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "codebuild.operator.dev",
    version = "v1alpha1",
    kind = "CodeBuildRun",
    plural = "codebuildruns",
    singular = "codebuildrun",
    shortname = "cbr",
    category = "codebuild",
    namespaced,
    status = "CodeBuildRunStatus",
    derive = "PartialEq",
    doc = "CodeBuildRun starts one AWS CodeBuild build (spec: a StartBuild request) and mirrors it in status until it ends.",
    printcolumn(
        name = "Project",
        type_ = "string",
        json_path = ".spec.projectName",
        priority = 1
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.buildStatus"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.currentPhase"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Succeeded\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Build ID",
        type_ = "string",
        json_path = ".status.buildId",
        priority = 1
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTime",
        priority = 1
    ),
    printcolumn(
        name = "Ended",
        type_ = "date",
        json_path = ".status.endTime",
        priority = 1
    ),
    printcolumn(
        name = "Tests",
        type_ = "string",
        json_path = ".status.reports.tests",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::immutable_start_build)]
pub struct CodeBuildRunSpec {
    /// The CodeBuild project to build: its name or its ARN. Required.
    #[schemars(length(min = 1))]
    pub project_name: String,

    /// Replaces the project's secondary sources for this build (at most 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    pub secondary_sources_override: Option<Vec<ProjectSource>>,

    /// The version to build of each secondary source (at most 12), by `sourceIdentifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    pub secondary_sources_version_override: Option<Vec<ProjectSourceVersion>>,

    /// The version of the primary source to build. CodeCommit, GitHub, GitLab, Bitbucket:
    /// a commit ID, branch, or tag (GitHub also `pr/<number>`); a branch builds its HEAD.
    /// S3: the object version ID. Unset builds the project's default version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,

    /// Replaces the project's primary artifacts settings for this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_override: Option<ProjectArtifacts>,

    /// Replaces the project's secondary artifacts (at most 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    pub secondary_artifacts_override: Option<Vec<ProjectArtifacts>>,

    /// Environment variables for this build; they add to, and by name replace, the
    /// project's. The operator adds one more, `CODEBUILD_OPERATOR_RUN_UID`, carrying this
    /// object's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_variables_override: Option<Vec<EnvironmentVariable>>,

    /// Replaces the primary source provider for this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type_override: Option<SourceType>,

    /// Replaces the primary source location (repository URL, or `bucket/path/object.zip`
    /// for S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_location_override: Option<String>,

    /// Replaces the credentials for the primary source provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_auth_override: Option<SourceAuth>,

    /// Replaces the Git clone depth (0: full history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub git_clone_depth_override: Option<i32>,

    /// Replaces whether Git submodules are fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_submodules_config_override: Option<GitSubmodulesConfig>,

    /// Replaces the buildspec: inline YAML, a path relative to the source root, or an S3
    /// object ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec_override: Option<String>,

    /// Ignore TLS warnings when connecting to a GitHub Enterprise source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_ssl_override: Option<bool>,

    /// Report this build's start and end to the source provider (GitHub, GitHub
    /// Enterprise, GitLab, Bitbucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_build_status_override: Option<bool>,

    /// How the reported build status is named and where it links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status_config_override: Option<BuildStatusConfig>,

    /// Replaces the kind of build environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_type_override: Option<EnvironmentType>,

    /// Replaces the build image (a curated CodeBuild image or `registry/repo:tag`,
    /// `repo@sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image_override: Option<String>,

    /// Replaces the size of the build machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_type_override: Option<ComputeType>,

    /// Replaces the certificate (`bucket/path/cert.pem`) the build trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_override: Option<String>,

    /// Replaces the build cache settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_override: Option<ProjectCache>,

    /// Replaces the IAM service role the build runs as (name or ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_role_override: Option<String>,

    /// Run the build container privileged (needed to run a Docker daemon inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged_mode_override: Option<bool>,

    /// Minutes before an unfinished build times out, 5 to 2160.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 2160))]
    pub timeout_in_minutes_override: Option<i32>,

    /// Minutes the build may wait in the queue before it times out, 5 to 480.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 480))]
    pub queued_timeout_in_minutes_override: Option<i32>,

    /// Replaces the KMS key (ARN or `alias/<name>`) that encrypts the artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub encryption_key_override: Option<String>,

    /// The case-sensitive idempotency token sent with every StartBuild for this run, so a
    /// repeat after a lost answer returns the same build (CodeBuild honours a token for 5
    /// minutes). Unset: `codebuild-operator-<uid>`, unique to this object. It cannot adopt a
    /// build started elsewhere: every request for this run also carries the operator's marker
    /// variable, so CodeBuild refuses a token first used with other parameters ("Idempotency
    /// token parameter mismatch"); two runs must not share a token. At most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub idempotency_token: Option<String>,

    /// Replaces where the build's logs go (CloudWatch Logs, S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_config_override: Option<LogsConfig>,

    /// Replaces the credentials for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_credential_override: Option<RegistryCredential>,

    /// Replaces which credentials pull the build image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_credentials_type_override: Option<ImagePullCredentialsType>,

    /// Enable Session Manager access to the running build container (for debugging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_session_enabled: Option<bool>,

    /// Replaces the reserved-capacity fleet the build runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_override: Option<ProjectFleet>,

    /// Replaces how many times CodeBuild retries this build automatically when it fails.
    /// Each retry is a new build; status follows the chain to the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_retry_limit_override: Option<i32>,

    /// Replaces the host kernel of EC2 compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_kernel_override: Option<HostKernelType>,

    /// Settings of the operator for this run (region, delete and stop behaviour, TTL).
    /// Not part of the StartBuild request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<RunOptions>,
}

impl CodeBuildRunSpec {
    /// The operator settings, defaulted when absent.
    pub fn options(&self) -> RunOptions {
        self.operator.clone().unwrap_or_default()
    }
}

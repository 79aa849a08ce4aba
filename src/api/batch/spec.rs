//! `CodeBuildBatchRunSpec`: the StartBuildBatch request, member for member. The members it
//! shares with StartBuild have the same Rust types as `CodeBuildRunSpec`'s.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::super::schema::{BATCH_RUN, immutable_request};
use super::super::{
    ComputeType, EnvironmentType, EnvironmentVariable, GitSubmodulesConfig,
    ImagePullCredentialsType, LogsConfig, ProjectArtifacts, ProjectCache, ProjectSource,
    ProjectSourceVersion, RegistryCredential, SourceAuth, SourceType, api_enum,
};
use super::{BatchRunOptions, CodeBuildBatchRunStatus};

/// One AWS CodeBuild batch build (a build list, matrix or graph from the buildspec's
/// `batch` section). The spec is a CodeBuild StartBuildBatch request with the API's own
/// member names and nesting; only `projectName` is required and every other member
/// overrides the project's setting for this batch only. `spec.operator` holds the few
/// settings of the operator itself. The StartBuildBatch members cannot change after
/// creation: create a new CodeBuildBatchRun to start another batch.
// Each printcolumn(...) repeats `type_`: clippy reads that as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "codebuild.operator.dev",
    version = "v1alpha1",
    kind = "CodeBuildBatchRun",
    plural = "codebuildbatchruns",
    singular = "codebuildbatchrun",
    shortname = "cbbr",
    category = "codebuild",
    namespaced,
    status = "CodeBuildBatchRunStatus",
    derive = "PartialEq",
    doc = "CodeBuildBatchRun starts one AWS CodeBuild batch build (spec: a StartBuildBatch request) and mirrors it, build group by build group, in status until it ends.",
    printcolumn(
        name = "Project",
        type_ = "string",
        json_path = ".spec.projectName",
        priority = 1
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.buildBatchStatus"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.currentPhase"),
    printcolumn(name = "Builds", type_ = "string", json_path = ".status.builds"),
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
        name = "Batch ID",
        type_ = "string",
        json_path = ".status.id",
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
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = immutable_start_build_batch)]
pub struct CodeBuildBatchRunSpec {
    /// The CodeBuild project to run a batch build of: its name or its ARN. The project must
    /// allow batch builds (its `buildBatchConfig`), or this request must set
    /// `buildBatchConfigOverride`. Required.
    #[schemars(length(min = 1))]
    pub project_name: String,

    /// Replaces the project's secondary sources for this batch (at most 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    pub secondary_sources_override: Option<Vec<ProjectSource>>,

    /// The version to build of each secondary source (at most 12), by `sourceIdentifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    pub secondary_sources_version_override: Option<Vec<ProjectSourceVersion>>,

    /// The version of the primary source to build. CodeCommit, GitHub, GitLab, Bitbucket:
    /// a commit ID, branch, or tag (GitHub also `pr/<number>`); a branch builds its HEAD.
    /// S3: the object version ID. Unset builds the project's default version. Every build
    /// of the batch builds this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,

    /// Replaces the project's primary artifacts settings for this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_override: Option<ProjectArtifacts>,

    /// Replaces the project's secondary artifacts (at most 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12))]
    pub secondary_artifacts_override: Option<Vec<ProjectArtifacts>>,

    /// Environment variables for every build of the batch; they add to, and by name
    /// replace, the project's (a batchspec entry's `env/variables` replace these for its
    /// build). The operator adds one more, `CODEBUILD_OPERATOR_RUN_UID`, carrying this
    /// object's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_variables_override: Option<Vec<EnvironmentVariable>>,

    /// Replaces the primary source provider for this batch.
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
    /// object ARN. Its `batch` section (`build-list`, `build-matrix` or `build-graph`)
    /// says which builds the batch runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec_override: Option<String>,

    /// Ignore TLS warnings when connecting to a GitHub Enterprise source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_ssl_override: Option<bool>,

    /// Report the batch's start and end to the source provider. Only GitHub, GitHub
    /// Enterprise and Bitbucket sources: CodeBuild refuses it for any other
    /// (InvalidInputException).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_build_batch_status_override: Option<bool>,

    /// Replaces the kind of build environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_type_override: Option<EnvironmentType>,

    /// Replaces the build image (a curated CodeBuild image or `registry/repo:tag`,
    /// `repo@sha256:...`); a batchspec entry's `env/image` replaces it for its build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image_override: Option<String>,

    /// Replaces the size of the build machines; a batchspec entry's `env/compute-type`
    /// replaces it for its build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_type_override: Option<ComputeType>,

    /// Replaces the certificate (`bucket/path/cert.pem`) the builds trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_override: Option<String>,

    /// Replaces the build cache settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_override: Option<ProjectCache>,

    /// Replaces the IAM service role the builds run as (name or ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_role_override: Option<String>,

    /// Run the build containers privileged (needed to run a Docker daemon inside them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged_mode_override: Option<bool>,

    /// Minutes before an unfinished build of the batch times out, 5 to 2160 (the whole
    /// batch's limit is `buildBatchConfigOverride.timeoutInMins`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 2160))]
    pub build_timeout_in_minutes_override: Option<i32>,

    /// Minutes the batch may wait in the queue before it times out, 5 to 480.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 480))]
    pub queued_timeout_in_minutes_override: Option<i32>,

    /// Replaces the KMS key (ARN or `alias/<name>`) that encrypts the artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub encryption_key_override: Option<String>,

    /// The case-sensitive idempotency token sent with every StartBuildBatch for this
    /// object, so a repeat after a lost answer returns the same batch (CodeBuild honours a
    /// token for 5 minutes). Unset: `codebuild-operator-<uid>`, unique to this object. It
    /// cannot adopt a batch started elsewhere: every request for this object also carries
    /// the operator's marker variable, so CodeBuild refuses a token first used with other
    /// parameters; two objects must not share a token. At most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub idempotency_token: Option<String>,

    /// Replaces where the builds' logs go (CloudWatch Logs, S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_config_override: Option<LogsConfig>,

    /// Replaces the credentials for pulling the image from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_credential_override: Option<RegistryCredential>,

    /// Replaces which credentials pull the build image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_credentials_type_override: Option<ImagePullCredentialsType>,

    /// Replaces the project's batch configuration for this batch: the batch's service role,
    /// its restrictions, its timeout, whether artifacts are combined, and how build
    /// statuses are reported. A project without a batch configuration needs this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_batch_config_override: Option<ProjectBuildBatchConfig>,

    /// Enable Session Manager access to the running build containers (for debugging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_session_enabled: Option<bool>,

    /// Settings of the operator for this batch (region, delete and stop behaviour, TTL,
    /// retries). Not part of the StartBuildBatch request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<BatchRunOptions>,
}

impl CodeBuildBatchRunSpec {
    /// The operator settings, defaulted when absent.
    pub fn options(&self) -> BatchRunOptions {
        self.operator.clone().unwrap_or_default()
    }
}

api_enum! {
    /// How build statuses are reported to the source provider: REPORT_INDIVIDUAL_BUILDS
    /// (one status per build) or REPORT_AGGREGATED_BATCH (one status for the batch).
    BatchReportModeType {
        ReportIndividualBuilds = "REPORT_INDIVIDUAL_BUILDS",
        ReportAggregatedBatch = "REPORT_AGGREGATED_BATCH",
    }
}

/// A project's batch build settings, as `buildBatchConfigOverride` replaces them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectBuildBatchConfig {
    /// The IAM role (name or ARN) CodeBuild uses to start and manage the batch's builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_role: Option<String>,
    /// Combine the builds' artifacts into one location (the batch's `artifacts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine_artifacts: Option<bool>,
    /// What the batch's builds may use: how many builds, which compute types and fleets.
    /// A batchspec that asks for more fails the batch in DOWNLOAD_BATCHSPEC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<BatchRestrictions>,
    /// Minutes the whole batch may run before CodeBuild stops it (TIMED_OUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_mins: Option<i32>,
    /// How the batch reports build statuses to the source provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_report_mode: Option<BatchReportModeType>,
}

/// Limits on the builds of a batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRestrictions {
    /// The most builds the batch may have (CodeBuild's default when unset: 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_builds_allowed: Option<i32>,
    /// The compute types the batch's builds may use, e.g. `BUILD_GENERAL1_SMALL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1)))]
    pub compute_types_allowed: Option<Vec<String>>,
    /// The fleets (ARNs) the batch's builds may run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1)))]
    pub fleets_allowed: Option<Vec<String>>,
}

/// The immutability rules of the StartBuildBatch members (as for CodeBuildRun), and that
/// `spec.operator.retry.count` only grows: each step up is one RetryBuildBatch, made once.
fn immutable_start_build_batch(schema: &mut schemars::Schema) {
    immutable_request(schema, &BATCH_RUN);
    let rule = serde_json::json!({
        "rule": "self.?operator.?retry.?count.orValue(0) >= \
                 oldSelf.?operator.?retry.?count.orValue(0)",
        "message": "spec.operator.retry.count cannot go down: each step up is one retry of the \
                    batch, made once; raise it by one to retry again",
        "fieldPath": ".operator.retry.count",
        "reason": "FieldValueForbidden",
    });
    if let Some(serde_json::Value::Array(rules)) = schema.get_mut("x-kubernetes-validations") {
        rules.push(rule);
    }
}

impl CodeBuildBatchRunSpec {
    /// The members StartBuildBatch shares with StartBuild, as a CodeBuildRun's spec (the
    /// other members unset): what the checks both kinds share (policy value rules, secret
    /// hygiene) read.
    pub fn start_build_members(&self) -> super::super::CodeBuildRunSpec {
        super::super::CodeBuildRunSpec {
            project_name: self.project_name.clone(),
            secondary_sources_override: self.secondary_sources_override.clone(),
            secondary_sources_version_override: self.secondary_sources_version_override.clone(),
            source_version: self.source_version.clone(),
            artifacts_override: self.artifacts_override.clone(),
            secondary_artifacts_override: self.secondary_artifacts_override.clone(),
            environment_variables_override: self.environment_variables_override.clone(),
            source_type_override: self.source_type_override,
            source_location_override: self.source_location_override.clone(),
            source_auth_override: self.source_auth_override.clone(),
            git_clone_depth_override: self.git_clone_depth_override,
            git_submodules_config_override: self.git_submodules_config_override.clone(),
            buildspec_override: self.buildspec_override.clone(),
            insecure_ssl_override: self.insecure_ssl_override,
            report_build_status_override: None,
            build_status_config_override: None,
            environment_type_override: self.environment_type_override,
            image_override: self.image_override.clone(),
            compute_type_override: self.compute_type_override,
            certificate_override: self.certificate_override.clone(),
            cache_override: self.cache_override.clone(),
            service_role_override: self.service_role_override.clone(),
            privileged_mode_override: self.privileged_mode_override,
            timeout_in_minutes_override: None,
            queued_timeout_in_minutes_override: self.queued_timeout_in_minutes_override,
            encryption_key_override: self.encryption_key_override.clone(),
            idempotency_token: self.idempotency_token.clone(),
            logs_config_override: self.logs_config_override.clone(),
            registry_credential_override: self.registry_credential_override.clone(),
            image_pull_credentials_type_override: self.image_pull_credentials_type_override,
            debug_session_enabled: self.debug_session_enabled,
            fleet_override: None,
            auto_retry_limit_override: None,
            host_kernel_override: None,
            operator: None,
        }
    }
}

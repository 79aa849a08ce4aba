//! `CodeBuildBatchRunStatus`: the batch as CodeBuild reports it (BatchGetBuildBatches), in
//! the API's names, plus the operator's own bookkeeping (the start attempt, the retry
//! attempts, observedGeneration, conditions).
//!
//! As for a CodeBuildRun, values that come from AWS (buildBatchStatus, phaseType, ...) are
//! plain strings: the service answers values its model does not list (a build group's
//! `PENDING`, a phase's `CLIENT_ERROR` or `RETRY`, lower-case artifact types), and an
//! unknown value must never make an object unreadable.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::super::{BuildArtifacts, PhaseContext, StartAttempt};
use super::RetryBuildBatchType;

/// The observed state of a CodeBuildBatchRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// Atomic for server-side apply, as a CodeBuildRun's status: the operator is its only writer
// and always applies all of it.
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct CodeBuildBatchRunStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Succeeded (the batch's outcome: Unknown while it runs), Ready (True only once the
    /// batch succeeded), Reconciling (work in progress) and Stalled (terminal failure or an
    /// error that needs a change to the object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The StartBuildBatch attempt, recorded here by the operator before StartBuildBatch is
    /// called (with the Starting conditions, then the finalizer), so that a crash at any
    /// instant can never lead to a second batch. Only the operator writes status: the
    /// Region and role recorded here are those every later call for this batch uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_attempt: Option<StartAttempt>,

    /// The batch, as CodeBuild last reported it.
    #[serde(flatten)]
    pub batch: BuildBatchInfo,

    /// The retries the operator made (RetryBuildBatch), oldest first, each recorded before
    /// it was made (see `spec.operator.retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_attempts: Option<Vec<RetryAttempt>>,
}

/// The members of a CodeBuild `BuildBatch` that are mirrored into status, in the API's
/// names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildBatchInfo {
    /// The batch's id, `<project>:<uuid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The batch's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The batch's number within its project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_batch_number: Option<i64>,
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_batch_status: Option<String>,
    /// The phase the batch is in: SUBMITTED, DOWNLOAD_BATCHSPEC, IN_PROGRESS,
    /// COMBINE_ARTIFACTS, then SUCCEEDED, FAILED or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_phase: Option<String>,
    /// Whether the batch has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    /// When the batch started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the batch ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// The source version the batch was asked to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// The commit (or S3 object version) actually built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_source_version: Option<String>,
    /// Every phase of the batch so far, in order (a retry adds the phases of the new run
    /// after the retried one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Vec<BuildBatchPhase>>,
    /// The build groups: one per entry of the batchspec (and `DOWNLOAD_SOURCE`, the build
    /// that reads the batchspec), each with its current build and earlier attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_groups: Option<Vec<BuildGroup>>,
    /// The builds of the batchspec that have ended, of all of them, as `done/total`
    /// (computed by the operator from `buildGroups`, `DOWNLOAD_SOURCE` left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds: Option<String>,
    /// Where the batch's primary artifacts are (combined artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<BuildArtifacts>,
    /// Where the batch's secondary artifacts are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_artifacts: Option<Vec<BuildArtifacts>>,
    /// ARNs of the test and coverage reports of the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_arns: Option<Vec<String>>,
}

/// One phase of a batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildBatchPhase {
    /// SUBMITTED, DOWNLOAD_BATCHSPEC, IN_PROGRESS, COMBINE_ARTIFACTS, SUCCEEDED, FAILED or
    /// STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_type: Option<String>,
    /// How the phase ended: SUCCEEDED, FAILED, FAULT, TIMED_OUT, STOPPED, or as CodeBuild
    /// also answers, CLIENT_ERROR (the builds of a failed batch) and RETRY (a phase ended
    /// by a retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_status: Option<String>,
    /// When the phase started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the phase ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// How long the phase took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_in_seconds: Option<i64>,
    /// Why the phase ended as it did (status code and message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Vec<PhaseContext>>,
}

/// One build group of a batch: an entry of the batchspec and its builds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildGroup {
    /// The entry's identifier (for a matrix, one per combination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// The identifiers of the groups this one waits for (a build graph's `depend-on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Whether the batch may succeed when this group fails (`ignore-failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_failure: Option<bool>,
    /// The group's current build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_build_summary: Option<BuildSummary>,
    /// The group's earlier builds (before retries), oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_build_summary_list: Option<Vec<BuildSummary>>,
}

/// One build of a build group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    /// The build's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The build's id (`<project>:<uuid>`, the end of its ARN; computed by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// When the build was requested (or, for a build that waits for others, when the group
    /// was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_on: Option<Time>,
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT, IN_PROGRESS or STOPPED, or PENDING while the
    /// build waits for the groups it depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_status: Option<String>,
    /// Where the build's primary artifacts are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_artifact: Option<ResolvedArtifact>,
    /// Where the build's secondary artifacts are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_artifacts: Option<Vec<ResolvedArtifact>>,
}

/// Where a build of a batch put an artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedArtifact {
    /// The artifact's type: CODEPIPELINE, S3 or NO_ARTIFACTS (CodeBuild may answer them in
    /// lower case).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The artifact's location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The artifact's identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

/// A retry of the batch (RetryBuildBatch), recorded before it is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryAttempt {
    /// Which retry this is: 1 for the first (it answers `spec.operator.retry.count` 1).
    pub count: i32,
    /// Which builds it runs again.
    pub retry_type: RetryBuildBatchType,
    /// The idempotency token sent with RetryBuildBatch.
    pub idempotency_token: String,
    /// When the retry was recorded; the token is valid for 5 minutes from then.
    pub time: Time,
    /// Whether CodeBuild is known to have taken the retry (its answer, or the batch seen
    /// running again or ended after the retry); unset while that is not known yet (a lost
    /// answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried: Option<bool>,
    /// CodeBuild's refusal of the retry, when it refused it (for example a batch that
    /// succeeded meanwhile). A refused retry is not made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl RetryAttempt {
    /// Whether the retry's outcome is known: taken, or refused.
    pub fn settled(&self) -> bool {
        self.retried == Some(true) || self.refused.is_some()
    }
}

//! A CodeBuildBatchRun as a [`Kind`]: StartBuildBatch, the batch search, how a batch reads
//! as conditions; `follow` (mirror, stop, TTL), `retry` (RetryBuildBatch, exactly once per
//! retry asked for) and `cleanup` (StopBuildBatch on delete) carry the rest. Everything else
//! is the lifecycle CodeBuildRun has: the same start sequence, claim, writes, finalizer
//! release and failure road.

mod cleanup;
mod follow;
mod retry;

use aws_sdk_codebuild::operation::start_build_batch::StartBuildBatchInput;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use super::super::claim::LegacyAttempt;
use super::super::conditions::Progress;
use super::super::plan;
use super::super::recovery::{self, Batches};
use super::kind::{Kind, Words};
use super::{Error, Step};
use crate::api::names::{action, reason};
use crate::api::{BuildBatchInfo, CodeBuildBatchRun, CodeBuildBatchRunStatus, RunOptions};
use crate::codebuild::{ApiError, BatchApi, CodeBuild, Target};
use crate::convert::{ConvertError, batch_info, start_build_batch_input};
use crate::metrics::Metrics;
use crate::policy::{Decision, Policies, RunRequest, hygiene};

impl Kind for CodeBuildBatchRun {
    type Status = CodeBuildBatchRunStatus;
    type Input = StartBuildBatchInput;

    const WORDS: Words = Words {
        thing: "build batch",
        start_action: action::START_BUILD_BATCH,
        stop_action: action::STOP_BUILD_BATCH,
        started: reason::BUILD_BATCH_STARTED,
        recovered: reason::BUILD_BATCH_RECOVERED,
        starting: "starting the build batch",
        searching: "searching for the build batch of an earlier start attempt",
    };
    const QUEUES_FOR_BUILD_LIMIT: bool = false;

    fn run_status(&self) -> Option<&CodeBuildBatchRunStatus> {
        self.status.as_ref()
    }

    fn options(&self) -> RunOptions {
        self.spec.options().run_options()
    }

    fn project_name(&self) -> &str {
        &self.spec.project_name
    }

    fn spec_token(&self) -> Option<&str> {
        self.spec.idempotency_token.as_deref()
    }

    /// Batch runs came after the annotation: there is none to honour.
    fn legacy_attempt(&self) -> Option<LegacyAttempt> {
        None
    }

    fn decide(&self, policies: &Policies, namespace: &str, region: &str) -> Option<Decision> {
        policies.decide(&RunRequest {
            namespace,
            region,
            spec: &self.spec,
        })
    }

    fn plaintext_warning(&self) -> Option<String> {
        hygiene::plaintext_warning(&self.spec.start_build_members())
    }

    fn start_input(&self, token: &str, uid: &str) -> Result<StartBuildBatchInput, ConvertError> {
        start_build_batch_input(&self.spec, token, uid)
    }

    async fn call_start<B: CodeBuild>(
        api: &B,
        target: &Target,
        input: StartBuildBatchInput,
    ) -> Result<BuildBatchInfo, ApiError> {
        api.start_build_batch(target, input)
            .await
            .map(|b| batch_info(&b))
    }

    async fn search<B: CodeBuild>(
        api: &B,
        target: &Target,
        project: &str,
        uid: &str,
        since: Timestamp,
    ) -> Result<Option<BuildBatchInfo>, Error> {
        let found = recovery::find(&Batches(api), target, project, uid, since).await?;
        Ok(found.as_ref().map(batch_info))
    }

    fn progress(started: &BuildBatchInfo) -> Progress {
        plan::batch::batch_progress(started)
    }

    fn started_message(info: &BuildBatchInfo, verb: &str) -> String {
        let id = info.id.as_deref().unwrap_or("?");
        let number = info
            .build_batch_number
            .map(|n| format!(" (#{n})"))
            .unwrap_or_default();
        format!("{verb} build batch {id}{number}")
    }

    /// StartBuildBatch calls are counted by the adapter (`aws_calls_total`); the build
    /// metrics (`builds_started_total`, the start latency) count builds only.
    fn count_start(_: &Metrics, _: &CodeBuildBatchRun) {}

    async fn follow<B: CodeBuild>(step: &mut Step<'_, B, Self>) -> Result<Action, Error> {
        step.follow_batch().await
    }

    async fn cleanup<B: CodeBuild>(step: &mut Step<'_, B, Self>) -> Result<Action, Error> {
        step.cleanup_batch().await
    }
}

impl<B: BatchApi> Step<'_, B, CodeBuildBatchRun> {
    /// The batch `id` read afresh (BatchGetBuildBatches), as the identity of the run.
    async fn read_batch(&self, id: &str) -> Result<BuildBatchInfo, Error> {
        let found = self
            .ctx
            .codebuild
            .batch_get_build_batches(&self.target(), vec![id.to_owned()])
            .await?;
        found
            .batches
            .iter()
            .map(batch_info)
            .find(|b| b.id.as_deref() == Some(id))
            .ok_or_else(|| Error::BatchNotFound(id.to_owned()))
    }
}

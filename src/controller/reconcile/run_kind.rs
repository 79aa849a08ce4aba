//! A CodeBuildRun as a [`Kind`]: StartBuild, the build search, how a build reads as
//! conditions; `follow` and `cleanup` carry the rest.

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;

use super::super::claim::{self, LegacyAttempt};
use super::super::conditions::Progress;
use super::super::plan;
use super::super::recovery;
use super::kind::{Kind, Words};
use super::{Error, Step};
use crate::api::names::{action, reason};
use crate::api::{BuildInfo, CodeBuildRun, CodeBuildRunStatus, RunOptions};
use crate::codebuild::{ApiError, CodeBuild, Target};
use crate::convert::{ConvertError, build_info, start_build_input};
use crate::metrics::Metrics;
use crate::policy::{Decision, Policies, RunRequest, hygiene};

impl Kind for CodeBuildRun {
    type Status = CodeBuildRunStatus;
    type Input = StartBuildInput;

    const WORDS: Words = Words {
        thing: "build",
        start_action: action::START_BUILD,
        stop_action: action::STOP_BUILD,
        started: reason::BUILD_STARTED,
        recovered: reason::BUILD_RECOVERED,
        starting: "starting the build",
        searching: "searching for the build of an earlier start attempt",
    };
    const QUEUES_FOR_BUILD_LIMIT: bool = true;

    fn run_status(&self) -> Option<&CodeBuildRunStatus> {
        self.status.as_ref()
    }

    fn options(&self) -> RunOptions {
        self.spec.options()
    }

    fn project_name(&self) -> &str {
        &self.spec.project_name
    }

    fn spec_token(&self) -> Option<&str> {
        self.spec.idempotency_token.as_deref()
    }

    fn legacy_attempt(&self) -> Option<LegacyAttempt> {
        claim::legacy_attempt(self)
    }

    fn decide(&self, policies: &Policies, namespace: &str, region: &str) -> Option<Decision> {
        policies.decide(&RunRequest {
            namespace,
            region,
            spec: &self.spec,
        })
    }

    fn plaintext_warning(&self) -> Option<String> {
        hygiene::plaintext_warning(&self.spec)
    }

    fn start_input(&self, token: &str, uid: &str) -> Result<StartBuildInput, ConvertError> {
        start_build_input(&self.spec, token, uid)
    }

    async fn call_start<B: CodeBuild>(
        api: &B,
        target: &Target,
        input: StartBuildInput,
    ) -> Result<BuildInfo, ApiError> {
        api.start_build(target, input).await.map(|b| build_info(&b))
    }

    async fn search<B: CodeBuild>(
        api: &B,
        target: &Target,
        project: &str,
        uid: &str,
        since: Timestamp,
    ) -> Result<Option<BuildInfo>, Error> {
        let found = recovery::find_build(api, target, project, uid, since).await?;
        Ok(found.as_ref().map(build_info))
    }

    fn progress(started: &BuildInfo) -> Progress {
        plan::build_progress(started)
    }

    fn started_message(info: &BuildInfo, verb: &str) -> String {
        let id = info.build_id.as_deref().unwrap_or("?");
        let number = info
            .build_number
            .map(|n| format!(" (#{n})"))
            .unwrap_or_default();
        let logs = info
            .logs
            .as_ref()
            .and_then(|l| l.deep_link.as_deref())
            .map(|l| format!("; logs: {l}"))
            .unwrap_or_default();
        format!("{verb} build {id}{number}{logs}")
    }

    fn count_start(metrics: &Metrics, run: &CodeBuildRun) {
        metrics.build_started(run);
    }

    async fn follow<B: CodeBuild>(step: &mut Step<'_, B, Self>) -> Result<Action, Error> {
        step.follow().await
    }

    async fn cleanup<B: CodeBuild>(step: &mut Step<'_, B, Self>) -> Result<Action, Error> {
        step.cleanup().await
    }
}

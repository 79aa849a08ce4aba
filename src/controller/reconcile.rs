//! Reconcile: thin I/O around `plan` and `conditions`.
//!
//! Start (exactly once): one write claims the run BEFORE StartBuild (the finalizer and the
//! attempt's token and time, see `claim`); the build id is written to status as soon as
//! StartBuild returns, in the same reconcile; once a build id is in status StartBuild is
//! never called again. Then the run follows the tracker's cache, writing status only when
//! it changed. A deleted run's build is stopped before the finalizer is released.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_codebuild::operation::start_build::StartBuildInput;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::claim;
use super::conditions::{Progress, conditions};
use super::plan::{self, StartStep};
use super::recovery;
use super::{Context, Error, FIELD_MANAGER};
use crate::api::{BuildInfo, CodeBuildRun, CodeBuildRunStatus, OnDelete, RunOptions, StartAttempt};
use crate::codebuild::{ApiError, AssumedRole, BuildApi, ErrorKind, Target};
use crate::convert::{self, build_info, retried_build, start_build_input};
use crate::policy::{Decision, POLICY_DENIED, RunRequest, hygiene};
use crate::tracker::Observation;

/// How long StartBuild may take before the run's conditions are written without waiting
/// for its answer.
const SLOW_START: Duration = Duration::from_secs(1);

/// How soon a run whose namespace the policy watch has not seen yet is looked at again.
const NAMESPACE_RETRY: Duration = Duration::from_secs(1);

/// The outcome of checking a run against the policies.
enum Authorization {
    /// Start it, with this grant.
    Granted(Grant),
    /// Refused (recorded in status and an Event).
    Refused,
    /// The run's namespace is not in the watch cache yet: decide again shortly.
    NamespaceUnknown,
}

/// What a policy granted a start: its name and the role to start with.
#[derive(Default)]
struct Grant {
    policy: Option<String>,
    role_arn: Option<String>,
}

impl Grant {
    /// The grant recorded with an attempt.
    fn of(attempt: Option<&StartAttempt>) -> Grant {
        attempt.map_or_else(Grant::default, |a| Grant {
            policy: a.policy.clone(),
            role_arn: a.role_arn.clone(),
        })
    }
}

/// Reconciles one CodeBuildRun.
pub async fn reconcile<B: BuildApi>(
    run: Arc<CodeBuildRun>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let namespace = run
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<CodeBuildRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let oref = ObjectRef::from_obj(run.as_ref());
    let action = if run.metadata.deletion_timestamp.is_none() {
        Step::new(run, &api, &ctx).apply().await?
    } else if claim::has_finalizer(&run) {
        let action = Step::new(run.clone(), &api, &ctx).cleanup().await?;
        release(&api, &run).await?;
        action
    } else {
        // Never claimed (refused, cancelled or invalid before any start): nothing to stop.
        Action::await_change()
    };
    ctx.succeeded(&oref);
    Ok(action)
}

/// Removes the operator's finalizer from a deleted run once its cleanup is done.
async fn release(api: &Api<CodeBuildRun>, run: &CodeBuildRun) -> Result<(), Error> {
    let Some(patch) = claim::release_patch(run) else {
        return Ok(());
    };
    let patch = serde_json::from_value(patch).expect("release_patch builds a JSON patch");
    match api
        .patch(&run.name_any(), &patch_params(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Requeues a failed reconcile with exponential backoff and jitter, and says why.
pub fn error_policy<B: BuildApi>(
    run: Arc<CodeBuildRun>,
    error: &Error,
    ctx: Arc<Context<B>>,
) -> Action {
    let oref = ObjectRef::from_obj(run.as_ref());
    let delay = ctx.backoff(&oref, error.aws_kind());
    warn!(run = %oref, category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// One reconcile of one object.
struct Step<'a, B> {
    run: Arc<CodeBuildRun>,
    api: &'a Api<CodeBuildRun>,
    ctx: &'a Context<B>,
    oref: ObjectRef<CodeBuildRun>,
    options: RunOptions,
    /// The status as read; writes are skipped when the next status equals it.
    current: CodeBuildRunStatus,
}

impl<'a, B: BuildApi> Step<'a, B> {
    fn new(run: Arc<CodeBuildRun>, api: &'a Api<CodeBuildRun>, ctx: &'a Context<B>) -> Self {
        let (options, current) = Self::read(&run, ctx);
        Step {
            oref: ObjectRef::from_obj(run.as_ref()),
            options,
            current,
            run,
            api,
            ctx,
        }
    }

    /// The run's options and status, with the start attempt as recorded (the claim's
    /// annotation, else its mirror in status).
    fn read(run: &CodeBuildRun, ctx: &Context<B>) -> (RunOptions, CodeBuildRunStatus) {
        let options = run.spec.options();
        let mut current = run.status.clone().unwrap_or_default();
        let token = plan::idempotency_token(
            run.spec.idempotency_token.as_deref(),
            run.uid().as_deref().unwrap_or_default(),
        );
        let region = options
            .region
            .clone()
            .unwrap_or_else(|| ctx.settings.default_region.clone());
        current.start_attempt = claim::recorded_attempt(run, &token, &region);
        (options, current)
    }

    fn region(&self) -> String {
        self.current
            .start_attempt
            .as_ref()
            .map(|a| a.region.clone())
            .or_else(|| self.options.region.clone())
            .unwrap_or_else(|| self.ctx.settings.default_region.clone())
    }

    /// Where and as whom the CodeBuild calls of this run go: the attempt's Region and role
    /// once recorded (so a later policy change cannot move a started build to another
    /// identity), else the run's Region and the operator's own identity.
    fn target(&self) -> Target {
        let role = self
            .current
            .start_attempt
            .as_ref()
            .and_then(|a| a.role_arn.clone())
            .map(|role_arn| AssumedRole {
                role_arn,
                namespace: self.oref.namespace.clone().unwrap_or_default(),
            });
        Target::with_role(self.region(), role)
    }

    fn uid(&self) -> Result<String, Error> {
        self.run.uid().ok_or(Error::MissingField("metadata.uid"))
    }

    // === apply ===

    async fn apply(mut self) -> Result<Action, Error> {
        if self.current.build.build_id.is_none() && !self.refresh().await? {
            return Ok(Action::await_change());
        }
        match self.current.build.build_id.clone() {
            None => self.start().await,
            Some(id) => self.follow(id).await,
        }
    }

    /// Re-reads the object from the apiserver before anything that may call StartBuild.
    /// The watch cache can lag behind this operator's own writes: a reconcile queued by the
    /// claim may still see no build id after the previous reconcile wrote one, and
    /// would repeat StartBuild (harmless inside the token window, but a wasted call, and
    /// past it a needless search). One read per start, never a write. Returns false when
    /// the object is gone.
    async fn refresh(&mut self) -> Result<bool, Error> {
        let name = self.run.name_any();
        match self.api.get_opt(&name).await? {
            Some(fresh) if fresh.uid() == self.run.uid() => {
                (self.options, self.current) = Self::read(&fresh, self.ctx);
                self.run = Arc::new(fresh);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn start(&mut self) -> Result<Action, Error> {
        let now = convert::now();
        let generation = self.run.metadata.generation;
        let step = plan::start_step(
            &self.current,
            &self.options,
            generation,
            now.0,
            self.ctx.settings.token_window,
        );
        match step {
            StartStep::WaitForChange => Ok(Action::await_change()),
            StartStep::Cancelled => self.cancel_before_start().await,
            StartStep::RecordAndStart => {
                let grant = match self.authorize().await? {
                    Authorization::Granted(grant) => grant,
                    Authorization::Refused => return Ok(Action::await_change()),
                    Authorization::NamespaceUnknown => {
                        return Ok(Action::requeue(NAMESPACE_RETRY));
                    }
                };
                self.warn_plaintext_secrets().await;
                let token = plan::idempotency_token(
                    self.run.spec.idempotency_token.as_deref(),
                    &self.uid()?,
                );
                let Some(input) = self.start_input(&token).await? else {
                    return Ok(Action::await_change());
                };
                self.claim(Some(self.attempt(token, now, grant))).await?;
                self.start_build(input).await
            }
            StartStep::RetryWithToken => {
                let Some(input) = self.start_input(&self.attempt_token()).await? else {
                    return Ok(Action::await_change());
                };
                self.start_build(input).await
            }
            StartStep::SearchThenStart => {
                let attempt_time = self
                    .current
                    .start_attempt
                    .as_ref()
                    .map_or(now.0, |a| a.time.0);
                let found = recovery::find_build(
                    self.ctx.api.as_ref(),
                    &self.target(),
                    &self.run.spec.project_name,
                    &self.uid()?,
                    attempt_time,
                )
                .await;
                match found {
                    Ok(Some(build)) => {
                        info!(run = %self.oref, build = ?build.id, "found the build of an unrecorded start attempt");
                        self.adopt(build_info(&build), "BuildRecovered").await
                    }
                    Ok(None) => {
                        // The decision made for the first attempt holds for its repeats.
                        let grant = Grant::of(self.current.start_attempt.as_ref());
                        let token = self.attempt_token();
                        let Some(input) = self.start_input(&token).await? else {
                            return Ok(Action::await_change());
                        };
                        self.claim(Some(self.attempt(token, now, grant))).await?;
                        self.start_build(input).await
                    }
                    Err(Error::Aws(e)) => {
                        self.aws_failure(e, "searching for the build of an earlier start attempt")
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn attempt_token(&self) -> String {
        match &self.current.start_attempt {
            Some(a) => a.idempotency_token.clone(),
            None => self
                .uid()
                .map(|uid| plan::idempotency_token(None, &uid))
                .unwrap_or_default(),
        }
    }

    fn attempt(&self, token: String, now: convert::NowTime, grant: Grant) -> StartAttempt {
        StartAttempt {
            idempotency_token: token,
            time: now,
            region: self.region(),
            role_arn: grant.role_arn,
            policy: grant.policy,
        }
    }

    /// Claims the run in one metadata write: the finalizer when it lacks it and, before a
    /// StartBuild, the attempt, so a crash at any later instant is recognised by the next
    /// reconcile. Fails with a conflict when the object changed since it was read.
    async fn claim(&mut self, attempt: Option<StartAttempt>) -> Result<(), Error> {
        let Some(patch) = claim::claim_patch(&self.run, attempt.as_ref()) else {
            return Ok(());
        };
        let claimed = self
            .api
            .patch(&self.run.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await?;
        self.run = Arc::new(claimed);
        if attempt.is_some() {
            self.current.start_attempt = attempt;
        }
        Ok(())
    }

    /// Checks the run against the CodeBuildRunPolicies before any AWS call (when policies
    /// are enforced). A refusal is written as Stalled with reason PolicyDenied and a
    /// Warning Event; a policy or namespace change wakes the run again.
    async fn authorize(&mut self) -> Result<Authorization, Error> {
        let Some(policies) = &self.ctx.policies else {
            return Ok(Authorization::Granted(Grant::default()));
        };
        let namespace = self.oref.namespace.clone().unwrap_or_default();
        let region = self.region();
        let request = RunRequest {
            namespace: &namespace,
            region: &region,
            spec: &self.run.spec,
        };
        match policies.decide(&request) {
            None => Ok(Authorization::NamespaceUnknown),
            Some(Decision::Allowed { policy, role_arn }) => Ok(Authorization::Granted(Grant {
                policy: Some(policy),
                role_arn,
            })),
            Some(Decision::Denied { message }) => {
                let progress = Progress::Failed {
                    reason: POLICY_DENIED.into(),
                    message: message.clone(),
                };
                if self.write(self.current.clone(), &progress).await? {
                    info!(run = %self.oref, %message, "refused by CodeBuildRunPolicies");
                    self.event(EventType::Warning, POLICY_DENIED, "StartBuild", message)
                        .await;
                }
                Ok(Authorization::Refused)
            }
        }
    }

    /// A Warning Event for each PLAINTEXT variable whose name looks like a secret (its value
    /// is visible to anyone who can read the object, and in the build's settings).
    async fn warn_plaintext_secrets(&self) {
        let names = hygiene::secret_looking_plaintext(&self.run.spec);
        if names.is_empty() {
            return;
        }
        let note = format!(
            "environment variable{} {} {} PLAINTEXT but look{} like a secret: use type \
             PARAMETER_STORE or SECRETS_MANAGER, so the value is not stored in this object",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
            if names.len() == 1 { "s" } else { "" },
        );
        self.event(
            EventType::Warning,
            hygiene::PLAINTEXT_SECRET,
            "StartBuild",
            note,
        )
        .await;
    }

    /// The StartBuild request for `token`; None (recorded as Stalled InvalidSpec, with a
    /// Warning Event) when the spec cannot be turned into one.
    async fn start_input(&mut self, token: &str) -> Result<Option<StartBuildInput>, Error> {
        match start_build_input(&self.run.spec, token, &self.uid()?) {
            Ok(input) => Ok(Some(input)),
            Err(e) => {
                let progress = Progress::Failed {
                    reason: "InvalidSpec".into(),
                    message: e.to_string(),
                };
                if self.write(self.current.clone(), &progress).await? {
                    self.event(
                        EventType::Warning,
                        "InvalidSpec",
                        "StartBuild",
                        e.to_string(),
                    )
                    .await;
                }
                Ok(None)
            }
        }
    }

    /// Calls StartBuild and records its answer. A StartBuild that has not answered within
    /// [`SLOW_START`] gets the run's conditions written meanwhile (Reconciling, reason
    /// Starting): kstatus reads a run without conditions as done.
    async fn start_build(&mut self, input: StartBuildInput) -> Result<Action, Error> {
        let target = self.target();
        let ctx = self.ctx;
        let call = ctx.api.start_build(&target, input);
        tokio::pin!(call);
        let answer = tokio::select! {
            answer = &mut call => answer,
            () = tokio::time::sleep(SLOW_START) => {
                let progress = Progress::InProgress {
                    reason: "Starting".into(),
                    message: format!(
                        "starting a build of project {}",
                        self.run.spec.project_name
                    ),
                };
                self.write(self.current.clone(), &progress).await?;
                call.await
            }
        };
        match answer {
            Ok(build) => {
                self.ctx.metrics.build_started();
                let info = build_info(&build);
                self.adopt(info, "BuildStarted").await
            }
            Err(e) => self.aws_failure(e, "starting the build").await,
        }
    }

    /// Records a build (just started, or found again) in status and the tracker.
    async fn adopt(&mut self, info: BuildInfo, reason: &str) -> Result<Action, Error> {
        let target = self.target();
        self.ctx
            .tracker
            .record(&target, self.oref.clone(), info.clone());
        let mut next = self.current.clone();
        next.build = info.clone();
        let progress = plan::build_progress(&info);
        self.write(next, &progress).await?;
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
        let verb = if reason == "BuildStarted" {
            "started"
        } else {
            "found"
        };
        self.event(
            EventType::Normal,
            reason,
            "StartBuild",
            format!("{verb} build {id}{number}{logs}"),
        )
        .await;
        Ok(Action::await_change())
    }

    async fn cancel_before_start(&mut self) -> Result<Action, Error> {
        // An attempt without a build id may still have started a build: find and stop it.
        if self.current.start_attempt.is_some() {
            let since = self
                .current
                .start_attempt
                .as_ref()
                .map(|a| a.time.0)
                .unwrap_or_else(|| convert::now().0);
            match recovery::find_build(
                self.ctx.api.as_ref(),
                &self.target(),
                &self.run.spec.project_name,
                &self.uid()?,
                since,
            )
            .await
            {
                Ok(Some(build)) => return self.adopt(build_info(&build), "BuildRecovered").await,
                Ok(None) => {}
                Err(Error::Aws(e)) if e.kind == ErrorKind::ProjectNotFound => {}
                Err(Error::Aws(e)) => {
                    return self.aws_failure(e, "searching for the build to stop").await;
                }
                Err(e) => return Err(e),
            }
        }
        let progress = Progress::Failed {
            reason: "STOPPED".into(),
            message: "stop requested before a build was started; no build was started".into(),
        };
        let changed = self.write(self.current.clone(), &progress).await?;
        if changed {
            self.event(
                EventType::Normal,
                "Cancelled",
                "StopBuild",
                "stop requested before start: no build was started".into(),
            )
            .await;
        }
        Ok(Action::await_change())
    }

    async fn follow(&mut self, id: String) -> Result<Action, Error> {
        if !claim::has_finalizer(&self.run) && !plan::is_final(&self.current.build) {
            // A running build whose finalizer was removed: a delete must still stop it.
            self.claim(None).await?;
        }
        let target = self.target();
        let observation = self.ctx.tracker.observation(&id);
        let info = match observation {
            None => {
                if plan::is_final(&self.current.build) {
                    return self.finished().await;
                }
                // After a restart, or a build id recorded by another replica: watch it.
                self.ctx.tracker.track(&target, &id, self.oref.clone());
                let progress = plan::build_progress(&self.current.build);
                self.write(self.current.clone(), &progress).await?;
                return Ok(Action::await_change());
            }
            Some(Observation::NotFound) => {
                let message = format!(
                    "CodeBuild does not know build {id} (BatchGetBuilds listed it in buildsNotFound); it is no longer tracked"
                );
                let progress = Progress::Failed {
                    reason: "BuildNotFound".into(),
                    message: message.clone(),
                };
                if self.write(self.current.clone(), &progress).await? {
                    self.event(
                        EventType::Warning,
                        "BuildNotFound",
                        "BatchGetBuilds",
                        message,
                    )
                    .await;
                }
                return Ok(Action::await_change());
            }
            Some(Observation::Build(info)) => info,
        };

        if let Some(next_id) = plan::next_auto_retry(&info) {
            return self.follow_retry(&info, next_id.to_owned()).await;
        }

        let mut info = (*info).clone();
        if self.options.stop_requested() && !plan::is_finished(&info) {
            match self.ctx.api.stop_build(&target, &id).await {
                Ok(build) => {
                    info = build_info(&build);
                    self.ctx
                        .tracker
                        .record(&target, self.oref.clone(), info.clone());
                    self.event(
                        EventType::Normal,
                        "StopRequested",
                        "StopBuild",
                        format!("stopping build {id}"),
                    )
                    .await;
                }
                Err(e) => return self.aws_failure(e, "stopping the build").await,
            }
        }

        let before = self.current.build.clone();
        let mut next = self.current.clone();
        next.build = info.clone();
        let progress = plan::build_progress(&info);
        let changed = self.write(next, &progress).await?;
        if changed {
            self.announce(&before, &info, &progress).await;
        }
        if plan::is_final(&info) {
            self.ctx.tracker.forget(&id);
            return self.finished().await;
        }
        Ok(Action::await_change())
    }

    async fn follow_retry(&mut self, info: &BuildInfo, next_id: String) -> Result<Action, Error> {
        let target = self.target();
        let old_id = info.build_id.clone().unwrap_or_default();
        let mut next = self.current.clone();
        next.retries
            .get_or_insert_with(Vec::new)
            .push(retried_build(info));
        next.build = BuildInfo {
            build_id: Some(next_id.clone()),
            ..Default::default()
        };
        let progress = Progress::InProgress {
            reason: "AutoRetry".into(),
            message: format!(
                "build {old_id} ended {}; CodeBuild retries it as build {next_id}",
                info.build_status.as_deref().unwrap_or("UNKNOWN")
            ),
        };
        self.write(next, &progress).await?;
        self.ctx.tracker.forget(&old_id);
        self.ctx.tracker.track(&target, &next_id, self.oref.clone());
        self.event(
            EventType::Normal,
            "AutoRetry",
            "BatchGetBuilds",
            progress_message(&progress),
        )
        .await;
        Ok(Action::await_change())
    }

    /// A final run: applies `ttlSecondsAfterFinished`.
    async fn finished(&mut self) -> Result<Action, Error> {
        match plan::ttl_remaining(&self.current.build, &self.options, convert::now().0) {
            Some(left) if left.is_zero() => {
                let uid = self.uid()?;
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                info!(run = %self.oref, "deleting finished run: ttlSecondsAfterFinished elapsed");
                match self.api.delete(&self.run.name_any(), &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Action::await_change())
            }
            Some(left) => Ok(Action::requeue(left + Duration::from_secs(1))),
            None => Ok(Action::await_change()),
        }
    }

    /// Makes a failed AWS call visible (condition and Event), then either waits for a
    /// change (permanent errors) or hands the error to the backoff.
    async fn aws_failure(&mut self, error: ApiError, doing: &str) -> Result<Action, Error> {
        let category = error.kind.category();
        let message = format!("{doing}: {error}");
        let progress = if error.kind.is_permanent() {
            Progress::Failed {
                reason: category.into(),
                message: message.clone(),
            }
        } else {
            Progress::InProgress {
                reason: category.into(),
                message: format!("{message} (retrying)"),
            }
        };
        self.write(self.current.clone(), &progress).await?;
        self.event(EventType::Warning, category, "CodeBuild", message)
            .await;
        if error.kind.is_permanent() {
            Ok(Action::await_change())
        } else {
            Err(Error::Aws(error))
        }
    }

    // === cleanup ===

    async fn cleanup(self) -> Result<Action, Error> {
        let target = self.target();
        let leave_running = self.options.on_delete() == OnDelete::LeaveRunning;
        let build = match (&self.current.build.build_id, &self.current.start_attempt) {
            _ if leave_running => None,
            (Some(id), _) => {
                let latest = match self.ctx.tracker.observation(id) {
                    Some(Observation::Build(info)) => Some((*info).clone()),
                    Some(Observation::NotFound) => None,
                    None => Some(self.current.build.clone()),
                };
                latest.filter(|b| !plan::is_finished(b)).map(|_| id.clone())
            }
            (None, Some(attempt)) => {
                match recovery::find_build(
                    self.ctx.api.as_ref(),
                    &target,
                    &self.run.spec.project_name,
                    &self.uid()?,
                    attempt.time.0,
                )
                .await
                {
                    Ok(found) => found
                        .map(|b| build_info(&b))
                        .filter(|b| !plan::is_finished(b))
                        .and_then(|b| b.build_id),
                    Err(Error::Aws(e)) if e.kind == ErrorKind::ProjectNotFound => None,
                    Err(e) => return Err(e),
                }
            }
            (None, None) => None,
        };
        if let Some(id) = build {
            match self.ctx.api.stop_build(&target, &id).await {
                Ok(_) => {
                    info!(run = %self.oref, build = %id, "stopped build of deleted run");
                    self.event(
                        EventType::Normal,
                        "BuildStopped",
                        "StopBuild",
                        format!("stopped build {id}: the run is being deleted"),
                    )
                    .await;
                }
                // A build CodeBuild no longer knows cannot be running.
                Err(e)
                    if e.kind == ErrorKind::InvalidInput
                        || e.kind == ErrorKind::ProjectNotFound =>
                {
                    warn!(run = %self.oref, build = %id, %e, "StopBuild refused; letting the run go");
                }
                Err(e) => {
                    self.event(
                        EventType::Warning,
                        e.kind.category(),
                        "StopBuild",
                        format!("stopping build {id}: {e} (retrying)"),
                    )
                    .await;
                    return Err(e.into());
                }
            }
        }
        // The tracker only ever holds the build id recorded in status.
        if let Some(id) = &self.current.build.build_id {
            self.ctx.tracker.forget(id);
        }
        Ok(Action::await_change())
    }

    // === writes ===

    /// Writes `next` with conditions for `progress` when it differs from the current
    /// status (server-side apply on the status subresource). Returns whether it wrote.
    async fn write(
        &mut self,
        mut next: CodeBuildRunStatus,
        progress: &Progress,
    ) -> Result<bool, Error> {
        let generation = self.run.metadata.generation;
        next.observed_generation = generation;
        next.conditions = conditions(
            progress,
            generation,
            &self.current.conditions,
            &convert::now(),
        );
        if next == self.current {
            return Ok(false);
        }
        let patch = json!({
            "apiVersion": CodeBuildRun::api_version(&()),
            "kind": CodeBuildRun::kind(&()),
            "status": next,
        });
        self.api
            .patch_status(
                &self.run.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.current = next;
        Ok(true)
    }

    /// Events for what changed between two observations of the build.
    async fn announce(&self, before: &BuildInfo, after: &BuildInfo, progress: &Progress) {
        let id = after.build_id.as_deref().unwrap_or("?");
        if after.current_phase.is_some() && after.current_phase != before.current_phase {
            let phase = after.current_phase.as_deref().unwrap_or("?");
            // The phase is the action: the Recorder folds Events of the same type, reason
            // and action into one series that keeps the first note.
            self.event(
                EventType::Normal,
                "PhaseChanged",
                phase,
                format!("build {id} entered phase {phase}"),
            )
            .await;
        }
        if plan::is_final(after) && !plan::is_final(before) {
            self.ctx
                .metrics
                .build_finished(after.build_status.as_deref());
            match progress {
                Progress::Succeeded { message } => {
                    self.event(
                        EventType::Normal,
                        "BuildSucceeded",
                        "BatchGetBuilds",
                        message.clone(),
                    )
                    .await;
                }
                Progress::Failed { message, .. } => {
                    self.event(
                        EventType::Warning,
                        "BuildFailed",
                        "BatchGetBuilds",
                        message.clone(),
                    )
                    .await;
                }
                Progress::InProgress { .. } => {}
            }
        }
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self
            .ctx
            .recorder
            .publish(&event, &self.run.object_ref(&()))
            .await
        {
            warn!(run = %self.oref, %error, reason, "could not publish Event");
        }
    }
}

fn progress_message(p: &Progress) -> String {
    match p {
        Progress::InProgress { message, .. }
        | Progress::Succeeded { message }
        | Progress::Failed { message, .. } => message.clone(),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

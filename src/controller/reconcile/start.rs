//! A run without an id: the one start sequence of both kinds (decide, build the request,
//! claim, StartBuild or StartBuildBatch, record what started), and the searches and
//! cancellation around it.

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use tracing::info;

use super::super::conditions::Progress;
use super::super::plan::{self, Grant, Note, Repeat, StartStep, hints};
use super::kind::{Kind, StartedOf};
use super::{Doing, Error, Step};
use crate::api::names::{action, reason};
use crate::api::{RunStatus, StartAttempt, Started};
use crate::codebuild::{ApiError, CodeBuild, ErrorKind, Target};
use crate::convert;
use crate::policy::Decision;
use crate::tracker::Admission;

/// Whether CodeBuild refused a StartBuild because its token was first used with other
/// parameters.
fn is_token_mismatch(error: &ApiError) -> bool {
    error.kind == ErrorKind::InvalidInput
        && error
            .message
            .to_ascii_lowercase()
            .contains("idempotency token")
}

/// How soon a run whose namespace the policy watch has not seen yet is looked at again.
const NAMESPACE_RETRY: Duration = Duration::from_secs(1);

impl Doing {
    fn deciding(action: &'static str) -> Doing {
        Doing {
            action,
            what: "deciding whether the run may start",
        }
    }

    fn claiming(action: &'static str) -> Doing {
        Doing {
            action,
            what: "recording the start attempt",
        }
    }

    fn starting<K: Kind>() -> Doing {
        Doing {
            action: K::WORDS.start_action,
            what: K::WORDS.starting,
        }
    }

    fn searching<K: Kind>() -> Doing {
        Doing {
            action: K::WORDS.start_action,
            what: K::WORDS.searching,
        }
    }
}

impl<B: CodeBuild, K: Kind> Step<'_, B, K> {
    pub(super) async fn start(&mut self) -> Result<Action, Error> {
        let step = plan::start_step(
            &self.current,
            &self.options,
            self.legacy.as_ref().map(|l| l.since.0),
            self.run.meta().generation,
            convert::now().0,
            &self.ctx.settings.start_timing(),
        );
        self.warn_about_legacy_attempt().await;
        match step {
            StartStep::WaitForChange => Ok(Action::await_change()),
            StartStep::WaitForLostCall(wait) => Ok(Action::requeue(wait)),
            StartStep::Cancel { search_since } => self.cancel(search_since).await,
            StartStep::Start => self.begin(None).await,
            StartStep::Resend => {
                let recorded = self.current.start_attempt().cloned();
                self.begin(recorded).await
            }
            StartStep::SearchThenStart { since } => self.search_then_start(since).await,
        }
    }

    /// Finds the build of an earlier attempt that CodeBuild would no longer return for its
    /// token; starts anew only when there is none.
    async fn search_then_start(&mut self, since: Timestamp) -> Result<Action, Error> {
        if self.legacy.is_none() {
            let target = self.target();
            if let Some(found) = self.search(&target, since).await? {
                return self.adopt(found, K::WORDS.recovered, None).await;
            }
            return self.begin(None).await;
        }
        // A legacy attempt names no identity the operator can vouch for: decide, and look
        // as the identity the policies grant now (recorded with the build, if found).
        let Some(grant) = self.authorize()? else {
            return Ok(Action::requeue(NAMESPACE_RETRY));
        };
        let mut attempt = self.new_attempt(grant)?;
        attempt.time = Time(since);
        if let Some(found) = self.search(&self.target_of(&attempt), since).await? {
            return self.adopt(found, K::WORDS.recovered, Some(attempt)).await;
        }
        self.begin(None).await
    }

    /// The one start sequence. `recorded`: the attempt to repeat (its token), if any.
    /// The run is decided against the policies first, whatever is recorded.
    async fn begin(&mut self, recorded: Option<StartAttempt>) -> Result<Action, Error> {
        let Some(grant) = self.authorize()? else {
            return Ok(Action::requeue(NAMESPACE_RETRY));
        };
        let attempt = match recorded {
            Some(recorded) => match plan::repeat(&recorded, &grant) {
                Repeat::WithToken => recorded,
                Repeat::SearchFirst => {
                    // The search must not run while a call made for the attempt may still
                    // be in flight (its build would be missed).
                    let age = convert::now().0.duration_since(recorded.time.0);
                    let age = Duration::try_from(age).unwrap_or_default();
                    let wait = self.ctx.settings.start_timing().in_flight_for(age);
                    if !wait.is_zero() {
                        return Ok(Action::requeue(wait));
                    }
                    let target = self.target();
                    if let Some(found) = self.search(&target, recorded.time.0).await? {
                        return self.adopt(found, K::WORDS.recovered, None).await;
                    }
                    self.new_attempt(grant)?
                }
            },
            None => self.new_attempt(grant)?,
        };
        let input = self
            .run
            .start_input(&attempt.idempotency_token, &self.uid()?)?;
        if K::QUEUES_FOR_BUILD_LIMIT {
            let target = self.target_of(&attempt);
            let admission = self
                .ctx
                .capacity
                .admit(&target, &self.run_key(), Instant::now());
            if let Admission::Wait { .. } = admission {
                return self.wait_for_capacity(&attempt, admission).await;
            }
        }
        // The client's pace for this target (it slows down when CodeBuild throttles): a
        // short wait, before anything is recorded.
        if let Err(wait) = self.ctx.codebuild.start_permit(&self.target_of(&attempt)) {
            return Ok(Action::requeue(wait));
        }
        if self.current.start_attempt() != Some(&attempt) {
            self.warn_about_setup().await;
        }
        self.doing = Doing::claiming(K::WORDS.start_action);
        let starting = Progress::InProgress {
            reason: reason::STARTING.to_owned(),
            message: format!(
                "starting a {} of project {}",
                K::WORDS.thing,
                self.run.project_name()
            ),
        };
        self.claim(&attempt, &starting).await?;
        self.call_start(&attempt, input).await
    }

    /// Checks the run against the CodeBuildRunPolicies (when they are enforced): the grant,
    /// None while the run's namespace is not in the watch cache yet, or a refusal.
    fn authorize(&mut self) -> Result<Option<Grant>, Error> {
        self.doing = Doing::deciding(K::WORDS.start_action);
        let Some(policies) = &self.ctx.policies else {
            return Ok(Some(Grant::default()));
        };
        let region = self.region();
        match self.run.decide(policies, self.namespace(), &region) {
            None => Ok(None),
            Some(Decision::Allowed { policy, role_arn }) => Ok(Some(Grant {
                policy: Some(policy),
                role_arn,
            })),
            Some(Decision::Denied { message }) => Err(Error::PolicyDenied(message)),
        }
    }

    /// A new attempt with the run's token, now, under `grant` (keeping the time of the
    /// run's first attempt).
    fn new_attempt(&self, grant: Grant) -> Result<StartAttempt, Error> {
        Ok(StartAttempt {
            idempotency_token: plan::idempotency_token(self.run.spec_token(), &self.uid()?),
            time: convert::now(),
            first_time: self.current.start_attempt().map(|a| a.since().clone()),
            region: self.region(),
            role_arn: grant.role_arn,
            policy: grant.policy,
        })
    }

    /// Where the calls made under `attempt` go.
    fn target_of(&self, attempt: &StartAttempt) -> Target {
        Target::of_attempt(Some(attempt), self.namespace(), &attempt.region)
    }

    /// StartBuild (StartBuildBatch) as the identity of `attempt`, then the id in status.
    async fn call_start(
        &mut self,
        attempt: &StartAttempt,
        input: K::Input,
    ) -> Result<Action, Error> {
        self.doing = Doing::starting::<K>();
        let target = self.target_of(attempt);
        let started = K::call_start(self.ctx.codebuild.as_ref(), &target, input).await;
        let started = match started {
            Ok(started) => started,
            Err(e) if is_token_mismatch(&e) => {
                return Err(self.token_in_use(&attempt.idempotency_token, e).await);
            }
            Err(e) if K::QUEUES_FOR_BUILD_LIMIT && e.kind == ErrorKind::AccountLimitExceeded => {
                let (key, now) = (self.run_key(), Instant::now());
                self.ctx.capacity.refused(&target, &key, now);
                let admission = self.ctx.capacity.admit(&target, &key, now);
                return self.wait_for_capacity(attempt, admission).await;
            }
            Err(e) => return Err(e.into()),
        };
        if K::QUEUES_FOR_BUILD_LIMIT {
            self.ctx.capacity.started(&target, &self.run_key());
        }
        K::count_start(&self.ctx.metrics, &self.run);
        self.adopt(started, K::WORDS.started, None).await
    }

    /// Shows the run's place in the queue for the account's build limit, and asks again
    /// later (the tracker wakes the head as soon as a build of the target finishes). A wait
    /// longer than the grace period shows as Stalled, as for any error that may heal.
    async fn wait_for_capacity(
        &mut self,
        attempt: &StartAttempt,
        admission: Admission,
    ) -> Result<Action, Error> {
        let Admission::Wait {
            position,
            waiting,
            retry_after,
        } = admission
        else {
            return Ok(Action::requeue(Duration::ZERO));
        };
        let since = self
            .current
            .start_attempt()
            .map(|a| a.since().0)
            .or_else(|| self.run.meta().creation_timestamp.as_ref().map(|t| t.0));
        let progress = plan::capacity::waiting(
            &attempt.region,
            position,
            waiting,
            since,
            convert::now().0,
            self.ctx.settings.stall_after,
        );
        if self.write(self.current.clone(), &progress).await? {
            info!(run = %self.oref, position, waiting, "waiting for the account's build limit");
        }
        Ok(Action::requeue(retry_after))
    }

    /// The refusal of a token CodeBuild first saw with other parameters, naming the other
    /// runs of the namespace that carry it (one list, only on this rare refusal).
    async fn token_in_use(&self, token: &str, aws: ApiError) -> Error {
        let others = match self.runs.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter(|r| r.uid() != self.run.uid())
                .filter(|r| r.spec_token() == Some(token))
                .map(|r| format!("run {}", r.name_any()))
                .collect(),
            Err(_) => Vec::new(),
        };
        Error::TokenInUse {
            token: token.to_owned(),
            others,
            aws,
        }
    }

    /// Finds what an earlier attempt may have started (its marker), as `target`.
    async fn search(
        &mut self,
        target: &Target,
        since: Timestamp,
    ) -> Result<Option<StartedOf<K>>, Error> {
        self.doing = Doing::searching::<K>();
        let (project, uid) = (self.run.project_name(), self.uid()?);
        let found = K::search(self.ctx.codebuild.as_ref(), target, project, &uid, since).await?;
        if let Some(found) = &found {
            info!(run = %self.oref, id = ?found.started_id(), thing = K::WORDS.thing,
                "found what an unrecorded start attempt started");
        }
        Ok(found)
    }

    /// Records what was started (just now, or found again) in status, with `attempt` when
    /// the status records none yet.
    async fn adopt(
        &mut self,
        info: StartedOf<K>,
        reason: &'static str,
        attempt: Option<StartAttempt>,
    ) -> Result<Action, Error> {
        let mut next = self.current.clone();
        next.set_started(info.clone());
        if let Some(attempt) = attempt {
            next.set_start_attempt(attempt);
        }
        let progress = K::progress(&info);
        self.write(next, &progress).await?;
        let verb = if reason == K::WORDS.started {
            "started"
        } else {
            "found"
        };
        let message = K::started_message(&info, verb);
        self.publish(Note::normal(reason, K::WORDS.start_action, message))
            .await;
        Ok(Action::await_change())
    }

    /// A stop requested before any build was recorded: adopt the build an attempt may have
    /// started (the next reconcile stops it), else record that none was started.
    async fn cancel(&mut self, search_since: Option<Timestamp>) -> Result<Action, Error> {
        if let Some(since) = search_since {
            let target = self.target();
            match self.search(&target, since).await {
                Ok(Some(found)) => {
                    return self.adopt(found, K::WORDS.recovered, None).await;
                }
                Ok(None) => {}
                Err(Error::Aws(e)) if e.kind == ErrorKind::ProjectNotFound => {}
                Err(e) => return Err(e),
            }
        }
        let thing = K::WORDS.thing;
        let progress = Progress::Failed {
            reason: reason::STOPPED.into(),
            message: format!("stop requested before a {thing} was started; no {thing} was started"),
        };
        if self.write(self.current.clone(), &progress).await? {
            let message = format!("stop requested before start: no {thing} was started");
            let note = Note::normal(reason::CANCELLED, K::WORDS.stop_action, message);
            self.publish(note).await;
        }
        // No build exists: nothing is left to stop on a delete.
        self.ctx.capacity.forget(&self.run_key());
        self.release().await?;
        Ok(Action::await_change())
    }

    /// Warning Events for a setup that works, but not as hoped: PLAINTEXT variables whose
    /// names look like secrets; a TTL on a run a GitOps tool would recreate.
    async fn warn_about_setup(&self) {
        let action = K::WORDS.start_action;
        if let Some(message) = self.run.plaintext_warning() {
            let note = Note::warning(reason::PLAINTEXT_SECRET, action, message);
            self.publish(note).await;
        }
        let (labels, annotations) = (self.run.labels(), self.run.annotations());
        if let Some(message) = hints::ttl_under_gitops(labels, annotations, &self.options) {
            let note = Note::warning(reason::TTL_UNDER_GITOPS, action, message);
            self.publish(note).await;
        }
    }

    /// A Warning Event for a legacy start-attempt annotation written by someone other than
    /// the operator: it is ignored, and the run is searched for before anything starts.
    async fn warn_about_legacy_attempt(&self) {
        let Some(legacy) = &self.legacy else {
            return;
        };
        if legacy.written_by_others.is_empty() {
            return;
        }
        let message = format!(
            "ignoring the annotation {} written by {}: only the operator records start \
             attempts (in status); the run is decided against the policies and searched for \
             before anything is started",
            crate::api::START_ATTEMPT_ANNOTATION,
            legacy.written_by_others.join(", "),
        );
        let note = Note::warning(reason::START_ATTEMPT_IGNORED, action::START_BUILD, message);
        self.publish(note).await;
        info!(run = %self.oref, name = %self.run.name_any(), "legacy start-attempt annotation ignored");
    }
}

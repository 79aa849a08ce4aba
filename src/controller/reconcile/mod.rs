//! Reconcile: carries out what `plan` decides, one object at a time.
//!
//! [`reconcile`] is the entry kube-runtime calls. It reads the run (`Step::new`), dispatches
//! by lifecycle stage (a deleted run: `cleanup`; no build id yet: `start`; a build id:
//! `follow`), and sends every failure down one road (`failure`), which decides whether it
//! stalls the run or is retried, and makes it visible as a condition and an Event. `write`
//! holds the effects every stage shares: status writes, the claim, Events, deletes;
//! `output` adds what a followed build produced (the failure tail, reports).

mod cleanup;
mod failure;
mod follow;
mod output;
mod start;
mod write;

use std::sync::Arc;
use std::time::Instant;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::claim::{self, LegacyAttempt};
use super::{Context, Error};
use crate::api::names::action;
use crate::api::{CodeBuildRun, CodeBuildRunStatus, RunOptions};
use crate::codebuild::{BuildApi, Target};

/// Reconciles one CodeBuildRun.
pub async fn reconcile<B: BuildApi>(
    run: Arc<CodeBuildRun>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let oref = ObjectRef::from_obj(run.as_ref());
    let Some(namespace) = run.namespace() else {
        // Never happens to a namespaced kind; there is nowhere to write about it.
        let error = Error::MissingField("metadata.namespace");
        ctx.metrics
            .reconciled(started.elapsed(), Err(error.category()));
        return Err(error);
    };
    let runs: Api<CodeBuildRun> = Api::namespaced(ctx.kube.clone(), &namespace);
    let mut step = Step::new(run, runs, &ctx);
    let (result, failure) = match step.dispatch().await {
        Ok(action) => {
            ctx.succeeded(&oref);
            (Ok(action), None)
        }
        Err(error) => {
            let category = error.category();
            (step.fail(error).await, Some(category))
        }
    };
    ctx.metrics
        .reconciled(started.elapsed(), failure.map_or(Ok(()), Err));
    result
}

/// Requeues a transient failure with exponential backoff and jitter (the failure was
/// recorded, and shown where it should be, by `failure`).
pub fn error_policy<B: BuildApi>(
    run: Arc<CodeBuildRun>,
    error: &Error,
    ctx: Arc<Context<B>>,
) -> Action {
    let oref = ObjectRef::from_obj(run.as_ref());
    let delay = ctx.backoff(&oref, error.aws_kind());
    warn!(run = %oref, category = error.category(), retry_in = ?delay, "retrying");
    Action::requeue(delay)
}

/// What a reconcile is doing, for the words of a failure: the Event action and the
/// message's prefix.
#[derive(Clone, Copy, Debug)]
struct Doing {
    action: &'static str,
    what: &'static str,
}

impl Doing {
    const RECONCILING: Doing = Doing {
        action: action::RECONCILE,
        what: "reconciling the run",
    };
}

/// One reconcile of one object.
struct Step<'a, B> {
    run: Arc<CodeBuildRun>,
    /// The runs of the object's namespace.
    runs: Api<CodeBuildRun>,
    ctx: &'a Context<B>,
    oref: ObjectRef<CodeBuildRun>,
    options: RunOptions,
    /// The status as read, then as written; writes are skipped when unchanged.
    current: CodeBuildRunStatus,
    /// A start attempt in the annotation of earlier versions, when status has none.
    legacy: Option<LegacyAttempt>,
    doing: Doing,
}

impl<'a, B: BuildApi> Step<'a, B> {
    fn new(run: Arc<CodeBuildRun>, runs: Api<CodeBuildRun>, ctx: &'a Context<B>) -> Self {
        Step {
            oref: ObjectRef::from_obj(run.as_ref()),
            options: run.spec.options(),
            current: run.status.clone().unwrap_or_default(),
            legacy: claim::legacy_attempt(&run),
            run,
            runs,
            ctx,
            doing: Doing::RECONCILING,
        }
    }

    /// Takes `fresh` as the object to work on.
    fn reread(&mut self, fresh: CodeBuildRun) {
        self.options = fresh.spec.options();
        self.current = fresh.status.clone().unwrap_or_default();
        self.legacy = claim::legacy_attempt(&fresh);
        self.run = Arc::new(fresh);
    }

    async fn dispatch(&mut self) -> Result<Action, Error> {
        if self.run.meta().deletion_timestamp.is_some() {
            if !claim::has_finalizer(&self.run) {
                // Never claimed (refused, cancelled or invalid before any start).
                return Ok(Action::await_change());
            }
            let action = self.cleanup().await?;
            self.release().await?;
            return Ok(action);
        }
        if self.current.build.build_id.is_none() && !self.refresh().await? {
            return Ok(Action::await_change());
        }
        if self.current.build.build_id.is_none() {
            self.start().await
        } else {
            self.follow().await
        }
    }

    /// Re-reads the object from the apiserver before anything that may call StartBuild.
    /// The watch cache can lag behind this operator's own writes: a reconcile may still see
    /// no build id after the previous one wrote it, and would repeat StartBuild (harmless
    /// inside the token window, but a wasted call, and past it a needless search). One read
    /// per start, never a write. Returns false when the object is gone.
    async fn refresh(&mut self) -> Result<bool, Error> {
        match self.runs.get_opt(&self.run.name_any()).await? {
            Some(fresh) if fresh.uid() == self.run.uid() => {
                self.reread(fresh);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The Region of the run: its attempt's, else its own, else the operator's default.
    fn region(&self) -> String {
        self.current
            .start_attempt
            .as_ref()
            .map(|a| a.region.clone())
            .or_else(|| self.options.region.clone())
            .unwrap_or_else(|| self.ctx.settings.default_region.clone())
    }

    /// Where and as whom this run's calls go (see `Target::of_attempt`).
    fn target(&self) -> Target {
        Target::of_attempt(
            self.current.start_attempt.as_ref(),
            self.namespace(),
            &self.region(),
        )
    }

    fn namespace(&self) -> &str {
        self.oref.namespace.as_deref().unwrap_or_default()
    }

    fn uid(&self) -> Result<String, Error> {
        self.run.uid().ok_or(Error::MissingField("metadata.uid"))
    }
}

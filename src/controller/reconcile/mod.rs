//! Reconcile: carries out what `plan` decides, one object at a time.
//!
//! [`reconcile`] (a CodeBuildRun) and [`reconcile_batch`] (a CodeBuildBatchRun) are the
//! entries kube-runtime calls. Both run the one lifecycle: read the object (`Step::new`),
//! dispatch by lifecycle stage (deleted: the kind's cleanup; no id yet: `start`, shared;
//! an id: the kind's follow), and send every failure down one road (`failure`), which
//! decides whether it stalls the run or is retried, and makes it visible as a condition and
//! an Event. `write` holds the effects every stage shares: status writes, the claim,
//! Events, deletes. `kind` says what the two kinds supply; `run_kind` (with `follow`,
//! `output` and `cleanup`) is the CodeBuildRun's, `batch` the CodeBuildBatchRun's; `output`
//! adds what a followed build produced (the failure tail, reports).

mod batch;
mod cleanup;
mod failure;
mod follow;
mod kind;
mod output;
mod run_kind;
mod start;
mod write;

use std::sync::Arc;
use std::time::Instant;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::warn;

use self::kind::Kind;
use super::claim::{self, LegacyAttempt};
use super::{Context, Error};
use crate::api::names::action;
use crate::api::{CodeBuildBatchRun, CodeBuildRun, RunOptions, RunStatus, Started};
use crate::codebuild::{CodeBuild, Target};
use crate::tracker::RunKey;

/// Reconciles one CodeBuildRun.
pub async fn reconcile<B: CodeBuild>(
    run: Arc<CodeBuildRun>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    reconcile_kind(run, ctx).await
}

/// Reconciles one CodeBuildBatchRun.
pub async fn reconcile_batch<B: CodeBuild>(
    batch: Arc<CodeBuildBatchRun>,
    ctx: Arc<Context<B>>,
) -> Result<Action, Error> {
    reconcile_kind(batch, ctx).await
}

/// The one reconcile of either kind.
async fn reconcile_kind<B: CodeBuild, K: Kind>(
    run: Arc<K>,
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
    let runs: Api<K> = Api::namespaced(ctx.kube.clone(), &namespace);
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

/// Requeues a transient failure of a run of either kind with exponential backoff and
/// jitter (the failure was recorded, and shown where it should be, by `failure`).
pub fn error_policy<B, K: Resource<DynamicType = ()>>(
    run: Arc<K>,
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

/// One reconcile of one object (a CodeBuildRun unless said otherwise).
struct Step<'a, B, K: Kind = CodeBuildRun> {
    run: Arc<K>,
    /// The objects of this kind in the object's namespace.
    runs: Api<K>,
    ctx: &'a Context<B>,
    oref: ObjectRef<K>,
    options: RunOptions,
    /// The status as read, then as written; writes are skipped when unchanged.
    current: K::Status,
    /// A start attempt in the annotation of earlier versions, when status has none.
    legacy: Option<LegacyAttempt>,
    doing: Doing,
}

impl<'a, B: CodeBuild, K: Kind> Step<'a, B, K> {
    fn new(run: Arc<K>, runs: Api<K>, ctx: &'a Context<B>) -> Self {
        Step {
            oref: ObjectRef::from_obj(run.as_ref()),
            options: run.options(),
            current: run.run_status().cloned().unwrap_or_default(),
            legacy: run.legacy_attempt(),
            run,
            runs,
            ctx,
            doing: Doing::RECONCILING,
        }
    }

    async fn dispatch(&mut self) -> Result<Action, Error> {
        if self.run.meta().deletion_timestamp.is_some() {
            if !claim::has_finalizer(&self.run) {
                // Never claimed (refused, cancelled or invalid before any start).
                return Ok(Action::await_change());
            }
            let action = K::cleanup(self).await?;
            self.release().await?;
            return Ok(action);
        }
        if self.started_id().is_none() && !self.refresh().await? {
            return Ok(Action::await_change());
        }
        if self.started_id().is_none() {
            self.start().await
        } else {
            K::follow(self).await
        }
    }
}

impl<B, K: Kind> Step<'_, B, K> {
    /// Takes `fresh` as the object to work on.
    fn reread(&mut self, fresh: K) {
        self.options = fresh.options();
        self.current = fresh.run_status().cloned().unwrap_or_default();
        self.legacy = fresh.legacy_attempt();
        self.run = Arc::new(fresh);
    }

    /// The id of what the run started, once status records it.
    fn started_id(&self) -> Option<&str> {
        self.current.started().started_id()
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
            .start_attempt()
            .map(|a| a.region.clone())
            .or_else(|| self.options.region.clone())
            .unwrap_or_else(|| self.ctx.settings.default_region.clone())
    }

    /// Where and as whom this run's calls go (see `Target::of_attempt`).
    fn target(&self) -> Target {
        Target::of_attempt(
            self.current.start_attempt(),
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

    /// The run's place in a queue for an account's build limit: creation order.
    fn run_key(&self) -> RunKey {
        RunKey {
            created: self
                .run
                .meta()
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            namespace: self.namespace().to_owned(),
            name: self.run.name_any(),
        }
    }
}

//! A batch run with a batch id: mirror the tracker's observation, honour a stop request,
//! hand retries to `retry`, apply the TTL.

use kube::runtime::controller::Action;

use super::super::super::claim;
use super::super::super::plan::batch::{self as plan, BatchFollowStep, BatchMirror};
use super::super::super::plan::{self as shared, Next, Note};
use super::super::{Doing, Error, Step};
use crate::api::names::{action, reason};
use crate::api::{CodeBuildBatchRun, Started};
use crate::codebuild::CodeBuild;
use crate::convert::{self, batch_info};

impl Doing {
    const STOPPING_BATCH: Doing = Doing {
        action: action::STOP_BUILD_BATCH,
        what: "stopping the build batch",
    };
}

impl<B: CodeBuild> Step<'_, B, CodeBuildBatchRun> {
    pub(super) async fn follow_batch(&mut self) -> Result<Action, Error> {
        if !claim::has_finalizer(&self.run) && !self.current.batch.done() {
            // A running batch whose finalizer was removed: a delete must still stop it.
            self.ensure_finalizer().await?;
        }
        let id = self.current.batch.id.clone().unwrap_or_default();
        let observation = self.ctx.batches.get(&id);
        let options = self.run.spec.options();
        let token = self.token()?;
        let step = plan::batch_follow_step(
            &self.current,
            &options,
            observation.as_ref(),
            &token,
            convert::now().0,
            &self.ctx.settings.start_timing(),
            self.ctx.settings.events,
        );
        match step {
            BatchFollowStep::NotFound { id } => Err(Error::BatchNotFound(id)),
            BatchFollowStep::Invalid { id, why } => Err(Error::InvalidBatchId { id, why }),
            BatchFollowStep::Mirror(mirror) => self.mirror_batch(mirror).await,
            BatchFollowStep::Retry(retry) => self.retry(retry).await,
            BatchFollowStep::Stop { id } => {
                self.doing = Doing::STOPPING_BATCH;
                let target = self.target();
                let batch = self.ctx.codebuild.stop_build_batch(&target, &id).await?;
                let info = batch_info(&batch);
                // The next reconcile must not act on the older observation of a round.
                self.ctx.batches.record(&info);
                let message = format!("stopping build batch {id}");
                let note = Note::normal(reason::STOP_REQUESTED, action::STOP_BUILD_BATCH, message);
                self.publish(note).await;
                let events = self.ctx.settings.events;
                let now = convert::now().0;
                self.mirror_batch(plan::mirror(&self.current, &info, &options, now, events))
                    .await
            }
        }
    }

    /// The run's StartBuildBatch token (its retries' tokens derive from it).
    pub(super) fn token(&self) -> Result<String, Error> {
        Ok(shared::idempotency_token(
            self.run.spec.idempotency_token.as_deref(),
            &self.uid()?,
        ))
    }

    /// Writes a mirrored status; when it changed, publishes the Events; releases the
    /// finalizer of a final batch; then does what follows.
    pub(super) async fn mirror_batch(&mut self, mirror: BatchMirror) -> Result<Action, Error> {
        if self.write(*mirror.status, &mirror.progress).await? {
            for note in mirror.notes {
                self.publish(note).await;
            }
        }
        if mirror.release {
            // The batch is final: nothing is left to stop, so nothing may hang on a delete.
            self.release().await?;
        }
        match mirror.next {
            Next::AwaitChange => Ok(Action::await_change()),
            Next::Requeue(after) => Ok(Action::requeue(after)),
            Next::Delete => self.delete().await,
        }
    }
}

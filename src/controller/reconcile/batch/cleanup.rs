//! A deleted batch run: stop its batch (unless asked to leave it running), then the
//! finalizer is released by the dispatcher. The decision is the one CodeBuildRun's cleanup
//! makes (`plan::cleanup_step`).

use kube::runtime::controller::Action;
use tracing::info;

use super::super::super::plan::{self, CleanupStep, Note};
use super::super::super::recovery::{self, Batches};
use super::super::{Doing, Error, Step};
use crate::api::names::{action, reason};
use crate::api::{CodeBuildBatchRun, OnDelete};
use crate::codebuild::{CodeBuild, ErrorKind};
use crate::convert::batch_info;

impl Doing {
    const CLEANING_UP_BATCH: Doing = Doing {
        action: action::STOP_BUILD_BATCH,
        what: "stopping the build batch of the deleted run",
    };
}

impl<B: CodeBuild> Step<'_, B, CodeBuildBatchRun> {
    pub(super) async fn cleanup_batch(&mut self) -> Result<Action, Error> {
        self.doing = Doing::CLEANING_UP_BATCH;
        let observation =
            (self.current.batch.id.as_deref()).and_then(|id| self.ctx.batches.get(id));
        let step = plan::cleanup_step(&self.current, &self.options, observation.as_ref(), None);
        let to_stop = match step {
            CleanupStep::Release => self.retried_batch(),
            CleanupStep::Stop { id } => Some(id),
            CleanupStep::SearchThenStop { since } => {
                let search = Batches(self.ctx.codebuild.as_ref());
                let (project, uid) = (self.run.spec.project_name.clone(), self.uid()?);
                let found = recovery::find(&search, &self.target(), &project, &uid, since).await;
                match found {
                    Ok(found) => plan::cleanup::to_stop(found.map(|b| batch_info(&b)).as_ref()),
                    // No project, no batch to stop.
                    Err(Error::Aws(e)) if e.kind == ErrorKind::ProjectNotFound => None,
                    Err(e) => return Err(e),
                }
            }
        };
        if let Some(id) = to_stop {
            self.stop_batch_for_delete(&id).await?;
        }
        Ok(Action::await_change())
    }

    /// A batch that ended but may run again: a retry whose answer was lost may have
    /// started it. StopBuildBatch of a batch that has ended changes nothing.
    fn retried_batch(&self) -> Option<String> {
        let pending = (self.current.retry_attempts.iter().flatten()).any(|a| !a.settled());
        (pending && self.options.on_delete() != OnDelete::LeaveRunning)
            .then(|| self.current.batch.id.clone())
            .flatten()
    }

    /// StopBuildBatch for a deleted run. A batch CodeBuild refuses to stop because it does
    /// not know it (or its project) cannot be running: the run is let go, and the Event says
    /// so.
    async fn stop_batch_for_delete(&mut self, id: &str) -> Result<(), Error> {
        match self
            .ctx
            .codebuild
            .stop_build_batch(&self.target(), id)
            .await
        {
            Ok(_) => {
                info!(run = %self.oref, batch = %id, "stopped build batch of deleted run");
                let message = format!("stopped build batch {id}: the run is being deleted");
                let note = Note::normal(
                    reason::BUILD_BATCH_STOPPED,
                    action::STOP_BUILD_BATCH,
                    message,
                );
                self.publish(note).await;
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::InvalidInput || e.kind == ErrorKind::ProjectNotFound => {
                let message = format!(
                    "StopBuildBatch refused for build batch {id} ({e}); letting the run go"
                );
                let note = Note::warning(e.kind.category(), action::STOP_BUILD_BATCH, message);
                self.publish(note).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

//! A deleted run: stop its build (unless asked to leave it running), then the finalizer is
//! released by the dispatcher.

use kube::runtime::controller::Action;
use tracing::info;

use super::super::plan::{self, CleanupStep, Note};
use super::super::recovery;
use super::{Doing, Error, Step};
use crate::api::names::{action, reason};
use crate::codebuild::{BuildApi, ErrorKind};
use crate::convert::build_info;

impl Doing {
    const CLEANING_UP: Doing = Doing {
        action: action::STOP_BUILD,
        what: "stopping the build of the deleted run",
    };
}

impl<B: BuildApi> Step<'_, B> {
    pub(super) async fn cleanup(&mut self) -> Result<Action, Error> {
        self.doing = Doing::CLEANING_UP;
        self.ctx.capacity.forget(&self.run_key());
        let observation = self
            .current
            .build
            .build_id
            .as_deref()
            .and_then(|id| self.ctx.builds.get(id));
        let step = plan::cleanup_step(
            &self.current,
            &self.options,
            observation.as_ref(),
            self.legacy.as_ref().map(|l| l.since.0),
        );
        let to_stop = match step {
            CleanupStep::Release => None,
            CleanupStep::Stop { id } => Some(id),
            CleanupStep::SearchThenStop { since } => {
                let found = recovery::find_build(
                    self.ctx.codebuild.as_ref(),
                    &self.target(),
                    &self.run.spec.project_name,
                    &self.uid()?,
                    since,
                )
                .await;
                match found {
                    Ok(found) => plan::cleanup::to_stop(found.map(|b| build_info(&b)).as_ref()),
                    // No project, no build to stop.
                    Err(Error::Aws(e)) if e.kind == ErrorKind::ProjectNotFound => None,
                    Err(e) => return Err(e),
                }
            }
        };
        if let Some(id) = to_stop {
            self.stop_for_delete(&id).await?;
        }
        Ok(Action::await_change())
    }

    /// StopBuild for a deleted run. A build CodeBuild refuses to stop because it does not
    /// know it (or its project) cannot be running: the run is let go, and the Event says so.
    async fn stop_for_delete(&mut self, id: &str) -> Result<(), Error> {
        match self.ctx.codebuild.stop_build(&self.target(), id).await {
            Ok(_) => {
                info!(run = %self.oref, build = %id, "stopped build of deleted run");
                let message = format!("stopped build {id}: the run is being deleted");
                let note = Note::normal(reason::BUILD_STOPPED, action::STOP_BUILD, message);
                self.publish(note).await;
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::InvalidInput || e.kind == ErrorKind::ProjectNotFound => {
                let message = format!("StopBuild refused for build {id} ({e}); letting the run go");
                let note = Note::warning(e.kind.category(), action::STOP_BUILD, message);
                self.publish(note).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

//! A run with a build id: mirror the tracker's observation, follow the auto-retry chain,
//! honour a stop request, apply the TTL.

use kube::runtime::controller::Action;

use super::super::claim;
use super::super::plan::{self, FollowStep, Mirror, Next, Note};
use super::{Doing, Error, Step};
use crate::api::names::{action, reason};
use crate::codebuild::BuildApi;
use crate::convert::{self, build_info};

impl Doing {
    const STOPPING: Doing = Doing {
        action: action::STOP_BUILD,
        what: "stopping the build",
    };
}

impl<B: BuildApi> Step<'_, B> {
    pub(super) async fn follow(&mut self) -> Result<Action, Error> {
        if !claim::has_finalizer(&self.run) && !self.current.build.is_final() {
            // A running build whose finalizer was removed: a delete must still stop it.
            self.ensure_finalizer().await?;
        }
        let id = self.current.build.build_id.clone().unwrap_or_default();
        let observation = self.ctx.builds.get(&id);
        let now = convert::now().0;
        let events = self.ctx.settings.events;
        let step = plan::follow_step(
            &self.current,
            &self.options,
            observation.as_ref(),
            now,
            events,
        );
        match step {
            FollowStep::NotFound { id } => Err(Error::BuildNotFound(id)),
            FollowStep::Invalid { id, why } => Err(Error::InvalidBuildId { id, why }),
            FollowStep::Mirror(mirror) => self.mirror(mirror).await,
            FollowStep::Stop { id } => {
                self.doing = Doing::STOPPING;
                let build = self.ctx.codebuild.stop_build(&self.target(), &id).await?;
                let info = build_info(&build);
                // The next reconcile must not act on the older observation of a round.
                self.ctx.builds.record(&info);
                let note = Note::normal(
                    reason::STOP_REQUESTED,
                    action::STOP_BUILD,
                    format!("stopping build {id}"),
                );
                self.publish(note).await;
                let mirror = plan::follow::mirror(&self.current, &info, &self.options, now, events);
                self.mirror(mirror).await
            }
        }
    }

    /// Writes a mirrored status (with what the build produced); when it changed, counts a
    /// build that became final and publishes the Events; releases the finalizer of a final
    /// build; then does what follows.
    async fn mirror(&mut self, mut mirror: Mirror) -> Result<Action, Error> {
        self.add_output(&mut mirror).await;
        let tail = mirror.status.log_tail.as_ref().map(|t| t.build_id.clone());
        let wrote = self.write(*mirror.status, &mirror.progress).await?;
        if let Some(build_id) = tail {
            self.ctx.tail_written(&build_id);
        }
        if wrote {
            if mirror.newly_final.is_some() {
                self.ctx
                    .metrics
                    .build_finished(&self.run, &self.current.build);
            }
            for note in mirror.notes {
                self.publish(note).await;
            }
        }
        if mirror.release {
            // The build is final: nothing is left to stop, so nothing may hang on a delete
            // (the operator gone, the chart uninstalled, the namespace deleted).
            self.release().await?;
        }
        match mirror.next {
            Next::AwaitChange => Ok(Action::await_change()),
            Next::Requeue(after) => Ok(Action::requeue(after)),
            Next::Delete => self.delete().await,
        }
    }
}

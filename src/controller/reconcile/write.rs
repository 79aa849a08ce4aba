//! The writes every stage shares: status (server-side apply on the status subresource,
//! only when it changed), the claim, the finalizer's release, Events, the TTL delete.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use serde_json::json;
use tracing::{info, warn};

use super::super::claim;
use super::super::conditions::{Progress, conditions};
use super::super::plan::Note;
use super::kind::Kind;
use super::{Error, Step};
use crate::api::{FIELD_MANAGER, RunStatus, StartAttempt};
use crate::convert;

/// The longest Event note the apiserver takes (bytes).
const NOTE_MAX: usize = 1000;

impl<B, K: Kind> Step<'_, B, K> {
    /// Writes `next` with conditions for `progress` when it differs from the current status
    /// (server-side apply on the status subresource). Returns whether it wrote.
    pub(super) async fn write(
        &mut self,
        next: K::Status,
        progress: &Progress,
    ) -> Result<bool, Error> {
        let next = self.with_conditions(next, progress);
        if next == self.current {
            return Ok(false);
        }
        self.apply_status(next, None).await?;
        Ok(true)
    }

    /// The first write of a start: `attempt` in status, with the conditions of a run being
    /// started, carrying the resourceVersion the decision was made on (a conflict means
    /// someone else moved first). Then the finalizer, so a delete during the start stops
    /// the build. Writes only what the run lacks.
    pub(super) async fn claim(
        &mut self,
        attempt: &StartAttempt,
        starting: &Progress,
    ) -> Result<(), Error> {
        if self.current.start_attempt() != Some(attempt) || self.current.conditions().is_empty() {
            let mut next = self.current.clone();
            next.set_start_attempt(attempt.clone());
            self.claim_with(next, starting).await?;
        }
        self.ensure_finalizer().await
    }

    /// Writes `next` with the conditions of `progress`, carrying the resourceVersion the
    /// decision was made on (the first write of a claim: a start, or a batch's retry).
    pub(super) async fn claim_with(
        &mut self,
        next: K::Status,
        progress: &Progress,
    ) -> Result<(), Error> {
        let next = self.with_conditions(next, progress);
        let version = self.run.resource_version();
        self.apply_status(next, version).await
    }

    /// Adds the finalizer when the run lacks it (a conflict if the object changed).
    pub(super) async fn ensure_finalizer(&mut self) -> Result<(), Error> {
        let Some(patch) = claim::finalizer_patch(self.run.as_ref()) else {
            return Ok(());
        };
        let claimed = self
            .runs
            .patch(&self.run.name_any(), &patch_params(), &Patch::Merge(&patch))
            .await?;
        self.run = Arc::new(claimed);
        Ok(())
    }

    /// Removes the operator's finalizer (from a deleted run once its cleanup is done, or
    /// from a run whose build is final). Skipped when this very version of the run is one it
    /// was already removed from (the watch cache has not caught up). A refused test means
    /// the list changed since this copy was read: the run is read again and released from
    /// that copy.
    pub(super) async fn release(&self) -> Result<(), Error> {
        if !claim::has_finalizer(&self.run) {
            return Ok(());
        }
        let uid = self.uid()?;
        let version = self.run.resource_version().unwrap_or_default();
        if self.ctx.released.is_released(&uid, &version) {
            return Ok(());
        }
        match self.remove_finalizer(&self.run).await {
            Ok(()) => {
                self.ctx.released.record(&uid, &version);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 422 => {
                match self.runs.get_opt(&self.run.name_any()).await? {
                    Some(fresh) if fresh.uid() == Some(uid) => {
                        Ok(self.remove_finalizer(&fresh).await?)
                    }
                    _ => Ok(()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The JSON patch of [`claim::release_patch`] for `run`, when it carries the finalizer.
    async fn remove_finalizer(&self, run: &K) -> Result<(), kube::Error> {
        let Some(patch) = claim::release_patch(run) else {
            return Ok(());
        };
        // release_patch builds a valid JSON patch.
        let patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
        self.runs
            .patch(&run.name_any(), &patch_params(), &Patch::Json::<()>(patch))
            .await
            .map(|_| ())
    }

    /// Deletes a finished run whose `ttlSecondsAfterFinished` elapsed (this object only:
    /// the uid is a precondition).
    pub(super) async fn delete(&self) -> Result<Action, Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(self.uid()?),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        info!(run = %self.oref, "deleting finished run: ttlSecondsAfterFinished elapsed");
        match self.runs.delete(&self.run.name_any(), &params).await {
            Ok(_) => Ok(Action::await_change()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                Ok(Action::await_change())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes `note` as an Event of the run. An Event that cannot be published is
    /// logged: it never fails the reconcile.
    pub(super) async fn publish(&self, note: Note) {
        let event = Event {
            type_: note.type_,
            reason: note.reason.to_owned(),
            note: Some(truncate(note.message, NOTE_MAX)),
            action: note.action,
            secondary: None,
        };
        if let Err(error) = self
            .ctx
            .recorder
            .publish(&event, &self.run.object_ref(&()))
            .await
        {
            warn!(run = %self.oref, %error, reason = note.reason, "could not publish Event");
        }
    }

    /// `next` with observedGeneration and the conditions for `progress` (transition times
    /// kept where a condition's status did not change).
    fn with_conditions(&self, mut next: K::Status, progress: &Progress) -> K::Status {
        let generation = self.run.meta().generation;
        let conditions = conditions(
            progress,
            generation,
            self.current.conditions(),
            &convert::now(),
        );
        next.set_conditions(generation, conditions);
        next
    }

    /// Server-side apply of `next` to the status subresource; with `resource_version`, only
    /// if the object is still at it.
    async fn apply_status(
        &mut self,
        next: K::Status,
        resource_version: Option<String>,
    ) -> Result<(), Error> {
        let mut patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": next,
        });
        if let Some(version) = resource_version {
            patch["metadata"] = json!({ "resourceVersion": version });
        }
        let written = self
            .runs
            .patch_status(
                &self.run.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.run = Arc::new(written);
        self.current = next;
        Ok(())
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
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

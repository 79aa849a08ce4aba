//! The one road every failure inside a reconcile takes: it is counted, logged, shown on the
//! run (a condition and a Warning Event whose reason is the error's category) and either
//! stalls the run (permanent: wait for a change) or goes back to kube-runtime for a retry
//! with backoff (transient). An error that may heal (a missing project, a denial, an account
//! limit) is retried, and stalls the run too once it has kept the run from starting for
//! longer than `Settings::stall_after`, so a waiting GitOps tool hears of it. Kubernetes API
//! hiccups (a conflict with a concurrent write, a timeout) are shown only once they persist.

use std::time::Duration;

use kube::runtime::controller::Action;
use tracing::warn;

use super::super::conditions::Progress;
use super::super::plan::Note;
use super::kind::Kind;
use super::{Error, Step};
use crate::api::{RunStatus, Started};
use crate::convert;

/// How many failures in a row make a Kubernetes API hiccup worth showing.
const PERSISTENT_FAILURES: u32 = 3;

impl<B, K: Kind> Step<'_, B, K> {
    /// Handles `error`: Ok(await change) when it stalls the run, Err for a retry.
    pub(super) async fn fail(&mut self, error: Error) -> Result<Action, Error> {
        let failures = self.ctx.failed(&self.oref);
        let category = error.category();
        let message = self.describe(&error);
        warn!(run = %self.oref, category, failures, %message, "reconcile failed");
        if error.shows_at_once() || failures >= PERSISTENT_FAILURES {
            self.show(&error, message).await;
        }
        if error.is_permanent() {
            Ok(Action::await_change())
        } else {
            Err(error)
        }
    }

    /// Whether `error` stalls the run, and what the message adds: a permanent error always;
    /// an error that may heal once the run has been trying to start for longer than the
    /// grace period (it is still retried: the run goes back to in progress by itself once
    /// the cause is gone).
    fn stalled_by(&self, error: &Error) -> Option<String> {
        if error.is_permanent() {
            return Some(String::new());
        }
        if !error.aws_kind().is_some_and(|k| k.may_heal()) || self.started_id().is_some() {
            return None;
        }
        let since = self.current.start_attempt()?.since().0;
        let trying = Duration::try_from(convert::now().0.duration_since(since)).ok()?;
        let grace = self.ctx.settings.stall_after;
        (trying >= grace).then(|| {
            format!(
                " (still failing after {}; retrying)",
                humantime::format_duration(Duration::from_secs(trying.as_secs()))
            )
        })
    }

    /// The failure as the user reads it: what the operator was doing, and what went wrong.
    fn describe(&self, error: &Error) -> String {
        let what = self.doing.what;
        match error {
            Error::Aws(e) => format!("{what}: {e}"),
            Error::Kube(e) => format!("{what}: {e}"),
            other => other.to_string(),
        }
    }

    /// The condition (unless the build, or batch, is final: its outcome stays what the
    /// conditions say) and, when that changed, a Warning Event.
    async fn show(&mut self, error: &Error, message: String) {
        let category = error.category();
        let changed = if self.current.started().done() {
            true
        } else {
            let progress = match self.stalled_by(error) {
                Some(suffix) => Progress::Failed {
                    reason: category.into(),
                    message: format!("{message}{suffix}"),
                },
                None => Progress::InProgress {
                    reason: category.into(),
                    message: format!("{message} (retrying)"),
                },
            };
            match self.write(self.current.clone(), &progress).await {
                Ok(changed) => changed,
                Err(write_error) => {
                    warn!(run = %self.oref, error = %write_error, "could not record the failure in status");
                    true
                }
            }
        };
        if changed {
            let note = Note::warning(category, self.doing.action, message);
            self.publish(note).await;
        }
    }
}

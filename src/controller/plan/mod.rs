//! What to do next with a run: pure functions of the object, its status, the tracker's
//! observation of its build and the time. Reconcile (`super::reconcile`) only carries out
//! what these decide.
//!
//! - [`start`]: a run without a build id (start, resend with the token, search, cancel);
//! - [`follow`]: a run with a build id (mirror, auto-retry chain, stop, TTL);
//! - [`cleanup`]: a deleted run (stop its build, or search then stop, then release);
//! - [`progress`]: how a build reads as conditions;
//! - [`batch`]: a batch run with a batch id (mirror, stop, retry, TTL; how a batch reads as
//!   conditions); [`retry`]: when a batch is retried, exactly once per retry asked for;
//! - [`ttl`]: `ttlSecondsAfterFinished`, for builds and batches alike;
//! - [`hints`]: warnings about how a run is set up;
//! - [`output`]: what a build produced, in the status to write (the failure tail's line).
//!
//! `start` and `cleanup` decide for both kinds (CodeBuildRun, CodeBuildBatchRun): they read
//! a status through `api::RunStatus` and what it started through `api::Started`.

pub mod batch;
pub mod capacity;
pub mod cleanup;
pub mod follow;
pub mod hints;
pub mod output;
pub mod progress;
pub mod retry;
pub mod start;
pub mod ttl;

use kube::runtime::events::EventType;

pub use cleanup::{CleanupStep, cleanup_step};
pub use follow::{EventSettings, FollowStep, Mirror, Next, follow_step, ttl_remaining};
pub use progress::{build_progress, failure_message};
pub use start::{Grant, Repeat, StartStep, repeat, start_step};

/// An Event to publish about the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub type_: EventType,
    /// The reason (`api::names::reason`).
    pub reason: &'static str,
    /// The action (`api::names::action`, or the phase of a `PhaseChanged`).
    pub action: String,
    /// What happened.
    pub message: String,
}

impl Note {
    /// A Normal Event.
    pub fn normal(reason: &'static str, action: &str, message: impl Into<String>) -> Self {
        Note {
            type_: EventType::Normal,
            reason,
            action: action.to_owned(),
            message: message.into(),
        }
    }

    /// A Warning Event.
    pub fn warning(reason: &'static str, action: &str, message: impl Into<String>) -> Self {
        Note {
            type_: EventType::Warning,
            ..Note::normal(reason, action, message)
        }
    }
}

/// The idempotency token of a run: the spec's own, else one derived from the object's uid,
/// so every StartBuild for one object carries the same token.
pub fn idempotency_token(spec_token: Option<&str>, uid: &str) -> String {
    match spec_token {
        Some(token) if !token.is_empty() => token.to_owned(),
        _ => format!("codebuild-operator-{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prefers_the_spec() {
        assert_eq!(idempotency_token(Some("mine"), "uid-1"), "mine");
        assert_eq!(idempotency_token(None, "uid-1"), "codebuild-operator-uid-1");
        assert_eq!(
            idempotency_token(Some(""), "uid-1"),
            "codebuild-operator-uid-1"
        );
    }
}

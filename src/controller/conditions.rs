//! The conditions of a CodeBuildRun, computed from what the run is doing (pure).
//!
//! kstatus (Flux, Helm 4 --wait), `kubectl wait` and Argo CD read these:
//! - `Succeeded`: Unknown while the run is in progress, True on SUCCEEDED, False otherwise.
//! - `Ready`: True only once the build succeeded.
//! - `Reconciling`: True while work is in progress.
//! - `Stalled`: True on a terminal failure or an error that needs a change to the object.
//!
//! `lastTransitionTime` changes only when a condition's status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub use crate::api::names::condition::{READY, RECONCILING, STALLED, SUCCEEDED};
use crate::api::names::reason;

/// Where a run stands, as far as its conditions are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Work is in progress: starting, running, or retrying a transient error.
    /// `reason` is CamelCase-safe (a phase name or an error category).
    InProgress { reason: String, message: String },
    /// The build succeeded.
    Succeeded { message: String },
    /// The run ended without success (build FAILED, FAULT, TIMED_OUT, STOPPED, or a
    /// permanent error). `reason` is the build status or the error category.
    Failed { reason: String, message: String },
}

impl Progress {
    /// What the run is doing, in words.
    pub fn message(&self) -> &str {
        match self {
            Progress::InProgress { message, .. }
            | Progress::Succeeded { message }
            | Progress::Failed { message, .. } => message,
        }
    }
}

/// The four conditions for `progress`, keeping `lastTransitionTime` of `previous`
/// conditions whose status did not change.
pub fn conditions(
    progress: &Progress,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let (succeeded, ready, reconciling, stalled) = match progress {
        Progress::InProgress { reason, message } => (
            ("Unknown", reason.as_str(), message.as_str()),
            ("False", reason.as_str(), message.as_str()),
            ("True", reason.as_str(), message.as_str()),
            ("False", reason::NOT_STALLED, ""),
        ),
        Progress::Succeeded { message } => (
            ("True", reason::SUCCEEDED, message.as_str()),
            ("True", reason::SUCCEEDED, message.as_str()),
            ("False", reason::FINISHED, ""),
            ("False", reason::NOT_STALLED, ""),
        ),
        Progress::Failed { reason, message } => (
            ("False", reason.as_str(), message.as_str()),
            ("False", reason.as_str(), message.as_str()),
            ("False", reason::FINISHED, ""),
            ("True", reason.as_str(), message.as_str()),
        ),
    };
    [
        (SUCCEEDED, succeeded),
        (READY, ready),
        (RECONCILING, reconciling),
        (STALLED, stalled),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: condition_reason(reason),
            message: message.to_owned(),
            observed_generation: generation,
            last_transition_time,
        }
    })
    .collect()
}

/// A reason as metav1.Condition requires it: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`.
/// Build statuses and phases (`TIMED_OUT`, `PRE_BUILD`) already are.
fn condition_reason(reason: &str) -> String {
    let cleaned: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        .collect();
    let trimmed = cleaned
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .trim_end_matches([',', ':']);
    if trimmed.is_empty() {
        reason::UNKNOWN.to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn find<'a>(c: &'a [Condition], type_: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn in_progress_is_unknown_and_reconciling() {
        let p = Progress::InProgress {
            reason: "BUILD".into(),
            message: "build is in BUILD".into(),
        };
        let c = conditions(&p, Some(3), &[], &t(10));
        assert_eq!(find(&c, SUCCEEDED).status, "Unknown");
        assert_eq!(find(&c, SUCCEEDED).reason, "BUILD");
        assert_eq!(find(&c, READY).status, "False");
        assert_eq!(find(&c, RECONCILING).status, "True");
        assert_eq!(find(&c, STALLED).status, "False");
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn success_is_ready() {
        let c = conditions(
            &Progress::Succeeded {
                message: "ok".into(),
            },
            Some(1),
            &[],
            &t(10),
        );
        assert_eq!(find(&c, SUCCEEDED).status, "True");
        assert_eq!(find(&c, READY).status, "True");
        assert_eq!(find(&c, RECONCILING).status, "False");
        assert_eq!(find(&c, STALLED).status, "False");
    }

    #[test]
    fn failure_is_stalled_with_the_reason() {
        let p = Progress::Failed {
            reason: "TIMED_OUT".into(),
            message: "BUILD: timed out".into(),
        };
        let c = conditions(&p, Some(1), &[], &t(10));
        assert_eq!(find(&c, SUCCEEDED).status, "False");
        assert_eq!(find(&c, SUCCEEDED).reason, "TIMED_OUT");
        assert_eq!(find(&c, SUCCEEDED).message, "BUILD: timed out");
        assert_eq!(find(&c, STALLED).status, "True");
        assert_eq!(find(&c, READY).status, "False");
        assert_eq!(find(&c, RECONCILING).status, "False");
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let running = Progress::InProgress {
            reason: "QUEUED".into(),
            message: String::new(),
        };
        let first = conditions(&running, Some(1), &[], &t(10));
        let later = Progress::InProgress {
            reason: "BUILD".into(),
            message: String::new(),
        };
        let second = conditions(&later, Some(1), &first, &t(20));
        assert_eq!(find(&second, SUCCEEDED).last_transition_time, t(10));
        assert_eq!(find(&second, SUCCEEDED).reason, "BUILD");
        let done = conditions(
            &Progress::Succeeded {
                message: String::new(),
            },
            Some(1),
            &second,
            &t(30),
        );
        assert_eq!(find(&done, SUCCEEDED).last_transition_time, t(30));
        assert_eq!(find(&done, STALLED).last_transition_time, t(10));
    }

    #[test]
    fn reasons_are_valid_for_metav1_condition() {
        assert_eq!(condition_reason("TIMED_OUT"), "TIMED_OUT");
        assert_eq!(condition_reason("Project Not-Found"), "ProjectNotFound");
        assert_eq!(condition_reason("123"), "Unknown");
        assert_eq!(condition_reason(""), "Unknown");
    }
}

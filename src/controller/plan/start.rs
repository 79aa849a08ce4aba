//! How a run without a build id proceeds (pure).
//!
//! Exactly once: an attempt (token, time, Region, policy and role) is in status before any
//! StartBuild. An attempt whose answer was lost is repeated with its token only while
//! CodeBuild still honours the token (then CodeBuild returns the build the first call
//! started, if it did); past that window the build is searched for by its marker first.
//! Every path that may call StartBuild decides the run against the policies again first:
//! a recorded grant never widens what the policies allow now.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::super::conditions::STALLED;
use crate::api::names::reason;
use crate::api::{CodeBuildRunStatus, RunOptions, StartAttempt};

/// The next step of a run that has no build id yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartStep {
    /// Nothing recorded: decide, record an attempt, StartBuild.
    Start,
    /// An attempt inside the token's window: decide again, then StartBuild with its token
    /// (see [`repeat`]).
    Resend,
    /// An attempt that may have started a build CodeBuild would no longer return for its
    /// token (past the window, or recorded where the operator cannot vouch for it): find the
    /// build by its marker, started at or after `since`; start only if there is none.
    SearchThenStart {
        /// The earliest time the build may have been started.
        since: Timestamp,
    },
    /// A stop was requested before a build was recorded: never start one. When an attempt
    /// may have started one (at or after `search_since`), find it, so it is stopped.
    Cancel {
        /// Where to search from, when an attempt was made.
        search_since: Option<Timestamp>,
    },
    /// A permanent error was recorded for this generation: wait for the object to change.
    WaitForChange,
}

/// What a CodeBuildRunPolicy granted a start: the policy's name and the role to start with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The policy that allowed the start (None: policies are not enforced).
    pub policy: Option<String>,
    /// The role to assume (None: the operator's own identity).
    pub role_arn: Option<String>,
}

/// How a recorded attempt is repeated once the run is allowed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// With the attempt's token, as the identity it was made with.
    WithToken,
    /// The policies now grant another identity: the first call's build (if any) belongs to
    /// the old one, so search for it before starting as the new one.
    SearchFirst,
}

/// Decides how a run without a build id proceeds. `legacy_since` is the creation time of a
/// run that carries the start-attempt annotation of earlier operator versions and no
/// attempt in status (see `claim::legacy_attempt`).
pub fn start_step(
    status: &CodeBuildRunStatus,
    options: &RunOptions,
    legacy_since: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
    token_window: Duration,
) -> StartStep {
    let attempt_time = status
        .start_attempt
        .as_ref()
        .map(|a| a.time.0)
        .or(legacy_since);
    if options.stop_requested() {
        return StartStep::Cancel {
            search_since: attempt_time,
        };
    }
    if stalled_for(status, generation) {
        return StartStep::WaitForChange;
    }
    let Some(attempt) = &status.start_attempt else {
        return match legacy_since {
            Some(since) => StartStep::SearchThenStart { since },
            None => StartStep::Start,
        };
    };
    // A clock step backwards makes the age negative: still inside the window.
    let age = Duration::try_from(now.duration_since(attempt.time.0)).unwrap_or(Duration::ZERO);
    if age < token_window {
        StartStep::Resend
    } else {
        StartStep::SearchThenStart {
            since: attempt.time.0,
        }
    }
}

/// Whether a permanent failure was recorded for this generation. A policy refusal and an
/// error that may heal do not count: they are decided again on every reconcile (a policy,
/// a namespace label, a project or a permission can change without the run changing).
fn stalled_for(status: &CodeBuildRunStatus, generation: Option<i64>) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == STALLED
            && c.status == "True"
            && c.observed_generation == generation
            && !reason::RECHECKED.contains(&c.reason.as_str())
    })
}

/// How `recorded` is repeated under the policies' current `grant`.
pub fn repeat(recorded: &StartAttempt, grant: &Grant) -> Repeat {
    if recorded.role_arn == grant.role_arn {
        Repeat::WithToken
    } else {
        Repeat::SearchFirst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn attempt(secs: i64, role: Option<&str>) -> StartAttempt {
        StartAttempt {
            idempotency_token: "t".into(),
            time: Time(at(secs)),
            first_time: None,
            region: "us-east-1".into(),
            role_arn: role.map(Into::into),
            policy: None,
        }
    }

    fn attempt_at(secs: i64) -> CodeBuildRunStatus {
        CodeBuildRunStatus {
            start_attempt: Some(attempt(secs, None)),
            ..Default::default()
        }
    }

    const WINDOW: Duration = Duration::from_secs(300);

    fn step(s: &CodeBuildRunStatus, now: i64) -> StartStep {
        start_step(s, &RunOptions::default(), None, Some(1), at(now), WINDOW)
    }

    #[test]
    fn fresh_run_starts() {
        assert_eq!(step(&CodeBuildRunStatus::default(), 0), StartStep::Start);
    }

    #[test]
    fn attempt_inside_window_resends_with_the_same_token() {
        let s = attempt_at(1000);
        assert_eq!(step(&s, 1299), StartStep::Resend);
        // A clock that went backwards is still inside the window.
        assert_eq!(step(&s, 900), StartStep::Resend);
    }

    #[test]
    fn attempt_past_window_searches_before_starting() {
        assert_eq!(
            step(&attempt_at(1000), 1300),
            StartStep::SearchThenStart { since: at(1000) }
        );
    }

    #[test]
    fn a_legacy_annotation_is_only_a_reason_to_search() {
        let s = CodeBuildRunStatus::default();
        let opts = RunOptions::default();
        assert_eq!(
            start_step(&s, &opts, Some(at(5)), Some(1), at(6), WINDOW),
            StartStep::SearchThenStart { since: at(5) }
        );
    }

    #[test]
    fn stop_before_start_never_starts() {
        let opts = RunOptions {
            stop: Some(true),
            ..Default::default()
        };
        assert_eq!(
            start_step(&attempt_at(0), &opts, None, Some(1), at(1), WINDOW),
            StartStep::Cancel {
                search_since: Some(at(0))
            }
        );
        assert_eq!(
            start_step(
                &CodeBuildRunStatus::default(),
                &opts,
                None,
                Some(1),
                at(1),
                WINDOW
            ),
            StartStep::Cancel { search_since: None }
        );
    }

    fn stalled(reason: &str) -> Condition {
        Condition {
            type_: STALLED.into(),
            status: "True".into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(at(0)),
        }
    }

    #[test]
    fn permanent_error_waits_for_a_new_generation() {
        let mut s = attempt_at(0);
        s.conditions.push(stalled("InvalidInput"));
        assert_eq!(step(&s, 1), StartStep::WaitForChange);
        assert_eq!(
            start_step(&s, &RunOptions::default(), None, Some(2), at(1), WINDOW),
            StartStep::Resend
        );
    }

    #[test]
    fn a_policy_refusal_and_errors_that_may_heal_are_decided_again() {
        for reason in [
            "PolicyDenied",
            "ProjectNotFound",
            "AccessDenied",
            "AccountLimitExceeded",
        ] {
            let mut s = CodeBuildRunStatus::default();
            s.conditions.push(stalled(reason));
            assert_eq!(step(&s, 1), StartStep::Start, "{reason}");
        }
    }

    #[test]
    fn a_resend_keeps_the_identity_the_attempt_was_made_with() {
        let grant = |role: Option<&str>| Grant {
            policy: Some("p".into()),
            role_arn: role.map(Into::into),
        };
        let a = attempt(0, Some("arn:aws:iam::1:role/a"));
        assert_eq!(
            repeat(&a, &grant(Some("arn:aws:iam::1:role/a"))),
            Repeat::WithToken
        );
        assert_eq!(
            repeat(&a, &grant(Some("arn:aws:iam::1:role/b"))),
            Repeat::SearchFirst
        );
        assert_eq!(repeat(&a, &grant(None)), Repeat::SearchFirst);
        assert_eq!(repeat(&attempt(0, None), &grant(None)), Repeat::WithToken);
    }
}

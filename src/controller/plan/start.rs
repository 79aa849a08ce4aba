//! How a run without a build id proceeds (pure).
//!
//! Exactly once: an attempt (token, time, Region, policy and role) is in status before any
//! StartBuild. An attempt whose answer was lost is repeated with its token only while the
//! repeat, even if it takes the client's whole operation timeout, still reaches CodeBuild
//! inside the token's window with a margin for clock skew (then CodeBuild returns the build
//! the first call started, if it did). Otherwise the operator waits until no call made for
//! the attempt can still be in flight, then searches for the build by its marker, and starts
//! anew only when there is none. Every path that may call StartBuild decides the run against
//! the policies again first: a recorded grant never widens what the policies allow now.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::super::conditions::STALLED;
use crate::api::names::reason;
use crate::api::{RunOptions, RunStatus, StartAttempt};

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
    /// An attempt whose outcome is unknown, too late to repeat with its token, while a call
    /// made for it may still be in flight (a search now could miss its build): look again
    /// after this long.
    WaitForLostCall(Duration),
}

/// What decides whether a lost StartBuild may be repeated with its token, or searched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartTiming {
    /// How long CodeBuild honours an idempotency token (5 minutes in AWS).
    pub token_window: Duration,
    /// The longest a StartBuild call may take, retries included (the client's operation
    /// timeout).
    pub call_timeout: Duration,
    /// How far the clocks involved (this replica's, another replica's, CodeBuild's) may
    /// disagree.
    pub clock_skew: Duration,
}

impl StartTiming {
    /// Whether a repeat with the token, sent at `age` after the attempt, lands inside the
    /// token's window even if it takes the whole call timeout.
    pub fn may_resend(&self, age: Duration) -> bool {
        age + self.call_timeout + self.clock_skew < self.token_window
    }

    /// How much longer a call made for an attempt `age` old may still be in flight: the
    /// first call (sent at the attempt) lasts at most the call timeout, and a repeat was
    /// only ever sent while it could end inside the window less the skew margin.
    pub fn in_flight_for(&self, age: Duration) -> Duration {
        let last_call_ends = self
            .call_timeout
            .max(self.token_window.saturating_sub(self.clock_skew));
        last_call_ends.saturating_sub(age)
    }
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

/// Decides how a run without a build id (or a batch run without a batch id) proceeds.
/// `legacy_since` is the creation time of a run that carries the start-attempt annotation of
/// earlier operator versions and no attempt in status (see `claim::legacy_attempt`).
pub fn start_step<S: RunStatus>(
    status: &S,
    options: &RunOptions,
    legacy_since: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
    timing: &StartTiming,
) -> StartStep {
    let attempt_time = status.start_attempt().map(|a| a.time.0).or(legacy_since);
    // A clock step backwards makes the age negative: as young as can be.
    let age = |t: Timestamp| Duration::try_from(now.duration_since(t)).unwrap_or_default();
    // Calls made for an attempt the operator recorded may still be in flight for this long.
    // (A legacy annotation is not trusted for anything, its time included: it is searched
    // for at once, as of the run's creation.)
    let in_flight = status
        .start_attempt()
        .map(|a| timing.in_flight_for(age(a.time.0)))
        .unwrap_or_default();
    if options.stop_requested() {
        // The search for a build to stop must not run while a call may be in flight.
        return if in_flight.is_zero() {
            StartStep::Cancel {
                search_since: attempt_time,
            }
        } else {
            StartStep::WaitForLostCall(in_flight)
        };
    }
    if stalled_for(status.conditions(), generation) {
        return StartStep::WaitForChange;
    }
    let Some(since) = attempt_time else {
        return StartStep::Start;
    };
    // Only an attempt the operator recorded (in status) is repeated with its token.
    if status.start_attempt().is_some() && timing.may_resend(age(since)) {
        StartStep::Resend
    } else if in_flight.is_zero() {
        StartStep::SearchThenStart { since }
    } else {
        StartStep::WaitForLostCall(in_flight)
    }
}

/// Whether a permanent failure was recorded for this generation. A policy refusal and an
/// error that may heal do not count: they are decided again on every reconcile (a policy,
/// a namespace label, a project or a permission can change without the run changing).
fn stalled_for(conditions: &[Condition], generation: Option<i64>) -> bool {
    conditions.iter().any(|c| {
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
    use crate::api::CodeBuildRunStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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

    /// AWS: a 5-minute window, 30 s calls, 15 s of clock skew. A repeat with the token is
    /// sent while the attempt is younger than 255 s; calls may be in flight until 285 s.
    const TIMING: StartTiming = StartTiming {
        token_window: Duration::from_secs(300),
        call_timeout: Duration::from_secs(30),
        clock_skew: Duration::from_secs(15),
    };

    fn step(s: &CodeBuildRunStatus, now: i64) -> StartStep {
        start_step(s, &RunOptions::default(), None, Some(1), at(now), &TIMING)
    }

    #[test]
    fn fresh_run_starts() {
        assert_eq!(step(&CodeBuildRunStatus::default(), 0), StartStep::Start);
    }

    #[test]
    fn a_resend_is_sent_only_while_it_lands_inside_the_window() {
        let s = attempt_at(1000);
        assert_eq!(step(&s, 1254), StartStep::Resend);
        // A clock that went backwards is still inside the window.
        assert_eq!(step(&s, 900), StartStep::Resend);
        // Too late to repeat: a call made for the attempt may still be in flight until 285 s.
        assert_eq!(
            step(&s, 1256),
            StartStep::WaitForLostCall(Duration::from_secs(29))
        );
    }

    #[test]
    fn attempt_past_window_searches_before_starting() {
        assert_eq!(
            step(&attempt_at(1000), 1285),
            StartStep::SearchThenStart { since: at(1000) }
        );
    }

    #[test]
    fn the_search_waits_for_the_call_timeout_when_it_is_longer_than_the_window() {
        // An emulator with a 5 s window and the default 30 s calls: no repeat at all, and no
        // search while the first call may still be in flight.
        let short = StartTiming {
            token_window: Duration::from_secs(5),
            ..TIMING
        };
        let s = attempt_at(1000);
        let step = |now| start_step(&s, &RunOptions::default(), None, Some(1), at(now), &short);
        assert_eq!(
            step(1003),
            StartStep::WaitForLostCall(Duration::from_secs(27))
        );
        assert_eq!(step(1030), StartStep::SearchThenStart { since: at(1000) });
    }

    #[test]
    fn a_legacy_annotation_is_only_a_reason_to_search() {
        let s = CodeBuildRunStatus::default();
        let opts = RunOptions::default();
        assert_eq!(
            start_step(&s, &opts, Some(at(5)), Some(1), at(6), &TIMING),
            StartStep::SearchThenStart { since: at(5) }
        );
    }

    #[test]
    fn stop_before_start_never_starts() {
        let opts = RunOptions {
            stop: Some(true),
            ..Default::default()
        };
        let stop =
            |s: &CodeBuildRunStatus, now| start_step(s, &opts, None, Some(1), at(now), &TIMING);
        assert_eq!(
            stop(&attempt_at(0), 300),
            StartStep::Cancel {
                search_since: Some(at(0))
            }
        );
        assert_eq!(
            stop(&attempt_at(0), 1),
            StartStep::WaitForLostCall(Duration::from_secs(284)),
            "the search for a build to stop waits for calls in flight too"
        );
        assert_eq!(
            stop(&CodeBuildRunStatus::default(), 1),
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
            start_step(&s, &RunOptions::default(), None, Some(2), at(1), &TIMING),
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

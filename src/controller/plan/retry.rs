//! When a batch run retries its batch (RetryBuildBatch), exactly once per retry asked for
//! (pure).
//!
//! `spec.operator.retry.count` says how many retries are asked for, in all; each one is made
//! when the batch has ended without success. A retry is recorded in status (with its token
//! and time) before RetryBuildBatch is called, as a start attempt is before StartBuildBatch,
//! and a retry whose answer was lost is decided by the same timing rule
//! ([`StartTiming`]): repeated with its token only while the repeat still lands inside the
//! token's window; otherwise, once no call made for it can be in flight, the batch is read
//! afresh and the retry is made again only when the batch shows it did not happen.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::start::StartTiming;
use crate::api::{BatchRunOptions, BuildBatchInfo, RetryAttempt};

/// What to do about retries of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryStep {
    /// Nothing now: no retry asked for, every one made, or the batch has not ended without
    /// success.
    Idle,
    /// Record this new attempt, then RetryBuildBatch with its token.
    Retry(RetryAttempt),
    /// RetryBuildBatch again with the recorded attempt's token: its answer was lost, and the
    /// repeat lands inside the token's window (CodeBuild answers the first call's retry, if
    /// it made one).
    Resend(RetryAttempt),
    /// The recorded attempt's answer was lost, it is too late to repeat it with its token,
    /// and a call made for it may still be in flight: look again after this long.
    WaitForLostCall(Duration),
    /// Read the batch afresh (the recorded attempt's answer was lost and no call made for
    /// it can still be in flight), then decide with [`after_check`].
    Check(RetryAttempt),
    /// The batch shows the recorded attempt took effect: record it as retried.
    Took(RetryAttempt),
}

/// The idempotency token of retry `count` of a run whose StartBuildBatch token is `token`.
pub fn retry_token(token: &str, count: i32) -> String {
    format!("{token}-retry-{count}")
}

/// Decides about retries of `batch` (as last observed), given what `options` ask for and
/// the `attempts` recorded so far. `token` is the run's StartBuildBatch token.
pub fn retry_step(
    options: &BatchRunOptions,
    attempts: &[RetryAttempt],
    batch: &BuildBatchInfo,
    token: &str,
    now: Timestamp,
    timing: &StartTiming,
) -> RetryStep {
    if let Some(last) = attempts.last().filter(|a| !a.settled()) {
        if took_effect(last, batch) {
            return RetryStep::Took(retried(last));
        }
        // A clock step backwards makes the age negative: as young as can be.
        let age = Duration::try_from(now.duration_since(last.time.0)).unwrap_or_default();
        if timing.may_resend(age) {
            return RetryStep::Resend(last.clone());
        }
        let in_flight = timing.in_flight_for(age);
        return if in_flight.is_zero() {
            RetryStep::Check(last.clone())
        } else {
            RetryStep::WaitForLostCall(in_flight)
        };
    }
    let Some(retry) = &options.retry else {
        return RetryStep::Idle;
    };
    let made = attempts.len();
    let wanted = options.retries_requested() as usize;
    if options.run_options().stop_requested()
        || made >= wanted
        || !batch.is_finished()
        || batch.succeeded()
    {
        return RetryStep::Idle;
    }
    let count = i32::try_from(made + 1).unwrap_or(i32::MAX);
    RetryStep::Retry(RetryAttempt {
        count,
        retry_type: retry.retry_type,
        idempotency_token: retry_token(token, count),
        time: Time(now),
        retried: None,
        refused: None,
    })
}

/// Decides about a recorded attempt whose answer was lost, once `fresh` (the batch read
/// afresh, after no call made for the attempt can be in flight) is known: it took effect,
/// or it is made again (with its token, which CodeBuild no longer holds, at `now`).
pub fn after_check(attempt: &RetryAttempt, fresh: &BuildBatchInfo, now: Timestamp) -> RetryStep {
    if took_effect(attempt, fresh) {
        RetryStep::Took(retried(attempt))
    } else {
        RetryStep::Retry(RetryAttempt {
            time: Time(now),
            ..attempt.clone()
        })
    }
}

/// Whether `batch` shows that `attempt` took effect. The attempt was only made on a batch
/// that had ended, and observations only move forward: a batch running again, a batch that
/// ended after the attempt, or as many RETRY phases as retries made, mean CodeBuild took it.
fn took_effect(attempt: &RetryAttempt, batch: &BuildBatchInfo) -> bool {
    let retries = usize::try_from(attempt.count).unwrap_or(usize::MAX);
    !batch.is_finished()
        || batch.retries_seen() >= retries
        || batch
            .end_time
            .as_ref()
            .is_some_and(|end| end.0 > attempt.time.0)
}

fn retried(attempt: &RetryAttempt) -> RetryAttempt {
    RetryAttempt {
        retried: Some(true),
        ..attempt.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BatchRetry, BuildBatchPhase, RetryBuildBatchType, sample_batch};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    const TIMING: StartTiming = StartTiming {
        token_window: Duration::from_secs(300),
        call_timeout: Duration::from_secs(30),
        clock_skew: Duration::from_secs(15),
    };

    fn asking(count: i32) -> BatchRunOptions {
        BatchRunOptions {
            retry: Some(BatchRetry {
                count,
                retry_type: RetryBuildBatchType::RetryFailedBuilds,
            }),
            ..Default::default()
        }
    }

    fn failed() -> BuildBatchInfo {
        let mut b = sample_batch("FAILED", "FAILED", &[("a", "FAILED", false)]);
        b.end_time = Some(Time(at(900)));
        b
    }

    fn attempt(count: i32, secs: i64) -> RetryAttempt {
        RetryAttempt {
            count,
            retry_type: RetryBuildBatchType::RetryFailedBuilds,
            idempotency_token: retry_token("t", count),
            time: Time(at(secs)),
            retried: None,
            refused: None,
        }
    }

    #[test]
    fn a_retry_is_made_once_the_batch_ended_without_success() {
        let step = retry_step(&asking(1), &[], &failed(), "t", at(1000), &TIMING);
        assert_eq!(step, RetryStep::Retry(attempt(1, 1000)));
        let running = sample_batch("IN_PROGRESS", "IN_PROGRESS", &[]);
        assert_eq!(
            retry_step(&asking(1), &[], &running, "t", at(1000), &TIMING),
            RetryStep::Idle,
            "a running batch is retried when it ends"
        );
        let ok = sample_batch("SUCCEEDED", "SUCCEEDED", &[]);
        assert_eq!(
            retry_step(&asking(1), &[], &ok, "t", at(1000), &TIMING),
            RetryStep::Idle,
            "nothing to retry"
        );
        assert_eq!(
            retry_step(
                &BatchRunOptions::default(),
                &[],
                &failed(),
                "t",
                at(1000),
                &TIMING
            ),
            RetryStep::Idle
        );
    }

    #[test]
    fn each_retry_asked_for_is_made_once() {
        let mut done = attempt(1, 1000);
        done.retried = Some(true);
        assert_eq!(
            retry_step(
                &asking(1),
                &[done.clone()],
                &failed(),
                "t",
                at(2000),
                &TIMING
            ),
            RetryStep::Idle
        );
        // count 2: the second retry, with its own token, once the batch failed again.
        let mut again = failed();
        again.end_time = Some(Time(at(1900)));
        assert_eq!(
            retry_step(&asking(2), &[done.clone()], &again, "t", at(2000), &TIMING),
            RetryStep::Retry(attempt(2, 2000))
        );
        // A refused retry counts as made.
        let refused = RetryAttempt {
            refused: Some("no".into()),
            ..attempt(1, 1000)
        };
        assert_eq!(
            retry_step(&asking(1), &[refused], &failed(), "t", at(2000), &TIMING),
            RetryStep::Idle
        );
        // A stop request ends the retries.
        let mut stopped = asking(2);
        stopped.stop = Some(true);
        assert_eq!(
            retry_step(&stopped, &[done], &again, "t", at(2000), &TIMING),
            RetryStep::Idle
        );
    }

    #[test]
    fn a_lost_answer_is_resent_inside_the_window_then_checked() {
        let pending = [attempt(1, 1000)];
        let batch = failed();
        let step = |now| retry_step(&asking(1), &pending, &batch, "t", at(now), &TIMING);
        assert_eq!(step(1254), RetryStep::Resend(attempt(1, 1000)));
        assert_eq!(
            step(1256),
            RetryStep::WaitForLostCall(Duration::from_secs(29))
        );
        assert_eq!(step(1285), RetryStep::Check(attempt(1, 1000)));
    }

    #[test]
    fn the_batch_tells_whether_a_lost_retry_took_effect() {
        let a = attempt(1, 1000);
        let mut took = a.clone();
        took.retried = Some(true);
        // Running again.
        let running = sample_batch("IN_PROGRESS", "SUBMITTED", &[]);
        assert_eq!(
            after_check(&a, &running, at(1300)),
            RetryStep::Took(took.clone())
        );
        // Ended again after the retry.
        let mut later = failed();
        later.end_time = Some(Time(at(1200)));
        assert_eq!(
            after_check(&a, &later, at(1300)),
            RetryStep::Took(took.clone())
        );
        // A RETRY phase per retry.
        let mut marked = failed();
        marked.phases = Some(vec![BuildBatchPhase {
            phase_type: Some("FAILED".into()),
            phase_status: Some("RETRY".into()),
            ..Default::default()
        }]);
        assert_eq!(after_check(&a, &marked, at(1300)), RetryStep::Took(took));
        // Unchanged: the retry did not happen; it is made again, now.
        assert_eq!(
            after_check(&a, &failed(), at(1300)),
            RetryStep::Retry(attempt(1, 1300))
        );
    }
}

//! How a run waiting for the account's concurrent build limit reads as conditions (pure).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::super::conditions::Progress;
use crate::api::names::reason;

/// Positions above this are shown rounded down to a multiple of ten ("40+"): the exact place
/// of a long queue changes with every start, and each change would be a status write.
const EXACT_UP_TO: usize = 10;

/// The conditions of a run at `position` of `waiting` runs queued for the account's build
/// limit in `region`: in progress, or Stalled (still waiting) once the run has been trying
/// to start (since `since`) for longer than `stall_after`.
pub fn waiting(
    region: &str,
    position: usize,
    waiting: usize,
    since: Option<Timestamp>,
    now: Timestamp,
    stall_after: Duration,
) -> Progress {
    let place = if position <= EXACT_UP_TO {
        format!("{position} of {waiting}")
    } else {
        format!("{}+ of {waiting}", position / 10 * 10)
    };
    let message = format!(
        "the account's concurrent build limit in {region} is reached (AccountLimitExceeded): \
         waiting, position {place}; runs start in creation order as builds finish"
    );
    let trying = since
        .and_then(|s| Duration::try_from(now.duration_since(s)).ok())
        .unwrap_or_default();
    if trying >= stall_after {
        Progress::Failed {
            reason: reason::ACCOUNT_LIMIT_EXCEEDED.to_owned(),
            message: format!(
                "{message} (still waiting after {})",
                humantime::format_duration(Duration::from_secs(trying.as_secs()))
            ),
        }
    } else {
        Progress::InProgress {
            reason: reason::ACCOUNT_LIMIT_EXCEEDED.to_owned(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    const GRACE: Duration = Duration::from_secs(180);

    #[test]
    fn the_queue_position_is_in_the_message() {
        let p = waiting("us-east-1", 3, 12, Some(at(0)), at(10), GRACE);
        assert!(
            matches!(&p, Progress::InProgress { reason, .. } if reason == "AccountLimitExceeded")
        );
        assert!(p.message().contains("position 3 of 12"), "{}", p.message());
        let far = waiting("us-east-1", 47, 300, Some(at(0)), at(10), GRACE);
        assert!(
            far.message().contains("position 40+ of 300"),
            "{}",
            far.message()
        );
    }

    #[test]
    fn a_long_wait_is_stalled() {
        let p = waiting("us-east-1", 1, 2, Some(at(0)), at(200), GRACE);
        assert!(matches!(&p, Progress::Failed { .. }));
        assert!(
            p.message().contains("still waiting after 3m 20s"),
            "{}",
            p.message()
        );
    }
}

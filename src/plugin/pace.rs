//! How often a follower calls GetLogEvents (pure: time is passed in).
//!
//! CloudWatch Logs' GetLogEvents quota is per account and Region (on the order of 10 to 25
//! calls a second, shared by everyone), and the service asks readers to poll about once a
//! second and back off when throttled. A follower therefore holds a token bucket of
//! [`RATE`] calls a second with room for [`BURST`]: over any stretch of time it makes at
//! most one call a second plus the burst. A read that worked is followed by the next one
//! [`INTERVAL`] later, a little more than a second, which saves a token every few reads; a
//! read that failed (throttled, 5xx, no answer) is tried again [`RETRY`] later with a saved
//! token, so one failure delays a line by a quarter of a second rather than a whole poll.
//! Throttled [`BACK_OFF_AFTER`] times in a row, it backs off: 2, 4, 8 then 10 seconds.

use std::time::{Duration, Instant};

/// Calls a second, on average over any stretch of time.
pub const RATE: f64 = 1.0;
/// Calls that may be saved up for retries.
pub const BURST: f64 = 3.0;
/// From a read that worked to the next one.
pub const INTERVAL: Duration = Duration::from_millis(1250);
/// From a failed read to its retry (when a token is saved).
pub const RETRY: Duration = Duration::from_millis(250);
/// Throttled this many times in a row, the follower backs off.
pub const BACK_OFF_AFTER: u32 = 4;
/// The longest back-off.
pub const BACK_OFF_MAX: Duration = Duration::from_secs(10);

/// The token bucket and schedule of one follower.
#[derive(Clone, Debug)]
pub struct Pacer {
    tokens: f64,
    refilled: Instant,
    next_at: Instant,
    throttled_in_a_row: u32,
}

impl Pacer {
    /// A pacer whose first call may go at `now`.
    pub fn new(now: Instant) -> Pacer {
        Pacer {
            tokens: 1.0,
            refilled: now,
            next_at: now,
            throttled_in_a_row: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.refilled = now;
    }

    /// When the next call may go (now or later).
    pub fn due(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let token_at = if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / RATE)
        };
        token_at.max(self.next_at)
    }

    /// A call goes now: it takes a token. Call only once [`Pacer::due`] has passed.
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }

    /// The call made at `now` worked.
    pub fn worked(&mut self, now: Instant) {
        self.throttled_in_a_row = 0;
        self.next_at = now + INTERVAL;
    }

    /// The call made at `now` failed (`throttled`: the service said so).
    pub fn failed(&mut self, now: Instant, throttled: bool) {
        self.throttled_in_a_row = if throttled {
            self.throttled_in_a_row + 1
        } else {
            0
        };
        let delay = if self.throttled_in_a_row >= BACK_OFF_AFTER {
            let doublings = (self.throttled_in_a_row - BACK_OFF_AFTER).min(8);
            (Duration::from_secs(2) * (1 << doublings)).min(BACK_OFF_MAX)
        } else {
            RETRY
        };
        self.next_at = now + delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls made over `seconds` when the k-th call fails as `fails(k)` says.
    fn simulate(seconds: u64, fails: impl Fn(usize) -> Option<bool>) -> Vec<Instant> {
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut pacer = Pacer::new(start);
        let mut now = start;
        let mut calls = Vec::new();
        loop {
            now = pacer.due(now);
            if now >= end {
                return calls;
            }
            pacer.take(now);
            match fails(calls.len()) {
                None => pacer.worked(now),
                Some(throttled) => pacer.failed(now, throttled),
            }
            calls.push(now);
            now += Duration::from_millis(20); // the call's round trip
        }
    }

    fn at_most_one_a_second_plus_the_burst(calls: &[Instant]) {
        for (i, first) in calls.iter().enumerate() {
            for (j, later) in calls.iter().enumerate().skip(i) {
                let window = later.duration_since(*first).as_secs_f64();
                let made = (j - i + 1) as f64;
                assert!(
                    made <= window * RATE + BURST + 1e-9,
                    "{made} calls in {window}s"
                );
            }
        }
    }

    #[test]
    fn reads_that_work_are_a_little_more_than_a_second_apart() {
        let calls = simulate(60, |_| None);
        assert_eq!(calls.len(), 48, "one every 1.25 s");
        at_most_one_a_second_plus_the_burst(&calls);
    }

    #[test]
    fn a_failed_read_is_retried_within_a_quarter_second_within_budget() {
        // Every fifth call fails: each failure costs a 250 ms retry.
        let calls = simulate(60, |k| (k % 5 == 4).then_some(false));
        at_most_one_a_second_plus_the_burst(&calls);
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter()
                .filter(|g| **g < Duration::from_millis(300))
                .count()
                >= 10
        );
        assert!(calls.len() as f64 <= 60.0 * RATE + BURST);
    }

    #[test]
    fn failing_all_the_time_never_exceeds_the_rate_and_throttling_backs_off() {
        let calls = simulate(60, |_| Some(false));
        at_most_one_a_second_plus_the_burst(&calls);
        assert!(calls.len() >= 55, "{}", calls.len());
        let throttled = simulate(60, |_| Some(true));
        at_most_one_a_second_plus_the_burst(&throttled);
        assert!(throttled.len() <= 12, "backed off: {}", throttled.len());
    }
}

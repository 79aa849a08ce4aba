//! The pace of StartBuild calls to one target (Region and identity): a token bucket whose
//! rate adapts to the service (additive increase, multiplicative decrease). Unlimited in
//! practice until CodeBuild throttles (it starts at [`MAX_RATE`]), halved when an attempt
//! is throttled (once per [`DECREASE_HOLD`]: the calls already in flight when the rate was
//! cut are throttled too, and must not cut it again), and raised a little with every start
//! that goes through. Pure: time is passed in.
//!
//! The controller asks before it records a start attempt ([`StartRate::permit`]), so a run
//! that must wait is requeued without a write, and the exactly-once timing (a call lasts at
//! most the client's operation timeout after its attempt) is untouched.

use std::time::{Duration, Instant};

/// The starting and highest rate, starts per second.
pub const MAX_RATE: f64 = 100.0;
/// The lowest rate after throttling, starts per second.
pub const MIN_RATE: f64 = 0.5;
/// How much every start that goes through raises the rate (starts per second).
const INCREASE: f64 = 0.1;
/// What a throttled attempt multiplies the rate by.
const DECREASE: f64 = 0.5;
/// After a cut, further throttled attempts within this long do not cut again (they were
/// sent at the old rate).
const DECREASE_HOLD: Duration = Duration::from_secs(1);

/// One target's StartBuild pace.
#[derive(Clone, Debug)]
pub struct StartRate {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    cut: Option<Instant>,
}

impl StartRate {
    /// A full bucket at the highest rate.
    pub fn new(now: Instant) -> Self {
        StartRate {
            rate: MAX_RATE,
            tokens: MAX_RATE,
            refilled: now,
            cut: None,
        }
    }

    /// The current rate, starts per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token when one is there; otherwise how long until one is.
    pub fn permit(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// An attempt was throttled: empty the bucket and halve the rate (not below
    /// [`MIN_RATE`]), unless it was cut less than [`DECREASE_HOLD`] ago.
    pub fn throttled(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
        if self
            .cut
            .is_some_and(|cut| now.saturating_duration_since(cut) < DECREASE_HOLD)
        {
            return;
        }
        self.rate = (self.rate * DECREASE).max(MIN_RATE);
        self.cut = Some(now);
    }

    /// A start went through: raise the rate a little (not above [`MAX_RATE`]).
    pub fn succeeded(&mut self) {
        self.rate = (self.rate + INCREASE).min(MAX_RATE);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unthrottled_starts_go_at_once() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for _ in 0..100 {
            assert_eq!(r.permit(t0), Ok(()));
        }
        assert!(r.permit(t0).is_err(), "a burst of 100, then 100 per second");
        assert_eq!(r.permit(t0 + Duration::from_millis(10)), Ok(()));
    }

    #[test]
    fn throttled_calls_in_flight_together_cut_the_rate_once() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for i in 0..50 {
            r.throttled(t0 + Duration::from_millis(i * 10));
        }
        assert_eq!(r.rate(), MAX_RATE / 2.0);
        r.throttled(t0 + DECREASE_HOLD);
        assert_eq!(r.rate(), MAX_RATE / 4.0, "throttled again a hold later");
    }

    #[test]
    fn throttling_halves_the_rate_and_successes_raise_it_again() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for i in 0..4 {
            r.throttled(t0 + DECREASE_HOLD * i);
        }
        let t0 = t0 + DECREASE_HOLD * 3;
        assert_eq!(r.rate(), MAX_RATE / 16.0);
        let wait = r.permit(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(170), "{wait:?}");
        let t1 = t0 + wait;
        assert_eq!(r.permit(t1), Ok(()));
        for _ in 0..10 {
            r.succeeded();
        }
        assert!(
            (r.rate() - (MAX_RATE / 16.0 + 1.0)).abs() < 1e-9,
            "{}",
            r.rate()
        );
        for i in 0..100 {
            r.throttled(t1 + DECREASE_HOLD * i);
        }
        assert_eq!(r.rate(), MIN_RATE);
    }
}

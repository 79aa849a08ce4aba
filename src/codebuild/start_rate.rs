//! The pace of StartBuild calls to one target (Region and identity): a token bucket whose
//! rate adapts to the service (additive increase, multiplicative decrease). Unlimited in
//! practice until CodeBuild throttles (it starts at [`MAX_RATE`]). A throttled attempt
//! cuts the rate to what the service accepted over the last second (at most 0.9 of the
//! rate; half when nothing was accepted), once per [`DECREASE_HOLD`]: the calls already in
//! flight when the rate was cut are throttled too, and must not cut it again. Every start
//! that goes through raises the rate: slowly (by [`CAREFUL_INCREASE`] per second) for
//! [`CAREFUL_FOR`] after a cut, where the limit just was, and by [`INCREASE`] per start
//! (about 10 % a second at full pace) once the service has been quiet that long. Pure: time
//! is passed in.
//!
//! The controller asks before it records a start attempt ([`StartRate::permit`]), so a run
//! that must wait is requeued without a write, and the exactly-once timing (a call lasts at
//! most the client's operation timeout after its attempt) is untouched.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The starting and highest rate, starts per second.
pub const MAX_RATE: f64 = 100.0;
/// The lowest rate after throttling, starts per second.
pub const MIN_RATE: f64 = 0.5;
/// How much every start that goes through raises the rate (starts per second), when
/// nothing was throttled for [`CAREFUL_FOR`].
const INCREASE: f64 = 0.1;
/// How fast the rate rises (starts per second, per second) within [`CAREFUL_FOR`] of a cut.
const CAREFUL_INCREASE: f64 = 0.5;
/// How long after a cut the rate rises carefully.
const CAREFUL_FOR: Duration = Duration::from_secs(30);
/// A cut leaves at most this share of the rate.
const DECREASE: f64 = 0.9;
/// A cut when no start went through in the last [`ACCEPTED_WINDOW`].
const DECREASE_BLIND: f64 = 0.5;
/// After a cut, further throttled attempts within this long do not cut again (they were
/// sent at the old rate).
const DECREASE_HOLD: Duration = Duration::from_secs(1);
/// The span over which the accepted rate is measured.
const ACCEPTED_WINDOW: Duration = Duration::from_secs(1);

/// One target's StartBuild pace.
#[derive(Clone, Debug)]
pub struct StartRate {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    cut: Option<Instant>,
    /// When the starts of the last [`ACCEPTED_WINDOW`] went through.
    accepted: VecDeque<Instant>,
}

impl StartRate {
    /// A full bucket at the highest rate.
    pub fn new(now: Instant) -> Self {
        StartRate {
            rate: MAX_RATE,
            tokens: MAX_RATE,
            refilled: now,
            cut: None,
            accepted: VecDeque::new(),
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

    /// An attempt was throttled: empty the bucket and cut the rate to what went through in
    /// the last second (not below [`MIN_RATE`]), unless it was cut less than
    /// [`DECREASE_HOLD`] ago.
    pub fn throttled(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
        if self
            .cut
            .is_some_and(|cut| now.saturating_duration_since(cut) < DECREASE_HOLD)
        {
            return;
        }
        let accepted = self.accepted_rate(now);
        let rate = if accepted > 0.0 {
            accepted.min(self.rate * DECREASE)
        } else {
            self.rate * DECREASE_BLIND
        };
        self.rate = rate.max(MIN_RATE);
        self.cut = Some(now);
    }

    /// A start went through: raise the rate a little (not above [`MAX_RATE`]).
    pub fn succeeded(&mut self, now: Instant) {
        let careful = self
            .cut
            .is_some_and(|cut| now.saturating_duration_since(cut) < CAREFUL_FOR);
        let increase = if careful {
            CAREFUL_INCREASE / self.rate
        } else {
            INCREASE
        };
        self.rate = (self.rate + increase).min(MAX_RATE);
        self.forget_before(now);
        self.accepted.push_back(now);
    }

    /// Starts per second that went through over the last [`ACCEPTED_WINDOW`].
    fn accepted_rate(&mut self, now: Instant) -> f64 {
        self.forget_before(now);
        self.accepted.len() as f64 / ACCEPTED_WINDOW.as_secs_f64()
    }

    fn forget_before(&mut self, now: Instant) {
        while self
            .accepted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > ACCEPTED_WINDOW)
        {
            self.accepted.pop_front();
        }
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

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unthrottled_starts_go_at_once() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for _ in 0..100 {
            assert_eq!(r.permit(t0), Ok(()));
        }
        assert!(r.permit(t0).is_err(), "a burst of 100, then 100 per second");
        assert_eq!(r.permit(t0 + MS * 10), Ok(()));
    }

    #[test]
    fn throttling_cuts_the_rate_to_what_went_through() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for i in 0..5 {
            r.succeeded(t0 + MS * (i * 100));
        }
        r.throttled(t0 + MS * 600);
        assert!((r.rate() - 5.0).abs() < 1e-9, "{}", r.rate());
        let wait = r.permit(t0 + MS * 600).unwrap_err();
        assert!(wait <= MS * 200, "the bucket is empty: {wait:?}");
    }

    #[test]
    fn throttled_calls_in_flight_together_cut_the_rate_once() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for i in 0..50 {
            r.throttled(t0 + MS * (i * 10));
        }
        assert_eq!(r.rate(), MAX_RATE * DECREASE_BLIND);
        r.throttled(t0 + DECREASE_HOLD);
        assert_eq!(
            r.rate(),
            MAX_RATE * DECREASE_BLIND * DECREASE_BLIND,
            "throttled again a hold later"
        );
    }

    #[test]
    fn a_cut_always_lowers_the_rate_and_successes_raise_it_again() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        for i in 0..10 {
            r.succeeded(t0 + MS * (i * 50)); // 10 accepted, rate 101 -> capped 100
        }
        r.throttled(t0 + MS * 500);
        assert!((r.rate() - 10.0).abs() < 1e-9, "{}", r.rate());
        for i in 0..10 {
            r.succeeded(t0 + MS * (600 + i * 50));
        }
        let raised = r.rate();
        assert!(
            (raised - 10.5).abs() < 0.05,
            "half a start per second per second after a cut: {raised}"
        );
        r.throttled(t0 + MS * 1_600);
        assert!(
            (r.rate() - raised * DECREASE).abs() < 1e-9,
            "10 went through, but a cut lowers the rate: {}",
            r.rate()
        );
        for i in 0..100 {
            r.throttled(t0 + Duration::from_secs(10) + DECREASE_HOLD * i);
        }
        assert_eq!(r.rate(), MIN_RATE);
    }

    #[test]
    fn the_rate_rises_carefully_after_a_cut_and_fast_once_quiet() {
        let t0 = Instant::now();
        let mut r = StartRate::new(t0);
        r.throttled(t0);
        r.throttled(t0 + DECREASE_HOLD);
        r.throttled(t0 + DECREASE_HOLD * 2); // 100 -> 12.5
        let cut = t0 + DECREASE_HOLD * 2;
        let mut t = cut;
        while t < cut + CAREFUL_FOR {
            t += Duration::from_secs_f64(1.0 / r.rate());
            r.succeeded(t);
        }
        let careful = r.rate();
        assert!(
            (careful - (12.5 + CAREFUL_INCREASE * 30.0)).abs() < 1.0,
            "about +0.5 a second for 30 s: {careful}"
        );
        for _ in 0..100 {
            t += Duration::from_secs_f64(1.0 / r.rate());
            r.succeeded(t);
        }
        assert!(
            (r.rate() - (careful + 100.0 * INCREASE)).abs() < 0.2,
            "quiet: +0.1 per start: {}",
            r.rate()
        );
    }
}

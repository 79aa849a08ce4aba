//! Pacing of the tracker's triggers: at most `limit` objects triggered and not yet
//! reconciled at once, the rest waiting in order (FIFO, each object once).
//!
//! Why: when every reconcile slot is busy, kube-runtime's runner parks the due requests in
//! an unordered set and later takes whichever it iterates first, so with 1,000 builds
//! changing phase a run's first start could wait until the phase changes died down (the
//! bimodal burst of the benchmark). Pacing the status refreshes keeps that set small and
//! leaves the other slots to starts. Pure: time is passed in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Objects waiting to be triggered and those triggered and not reconciled yet.
#[derive(Debug)]
pub struct Pacer<T> {
    waiting: VecDeque<T>,
    queued: HashSet<T>,
    in_flight: HashMap<T, Instant>,
    limit: usize,
    lease: Duration,
}

impl<T: Hash + Eq + Clone> Pacer<T> {
    /// At most `limit` in flight (0: no limit). A trigger whose reconcile is never reported
    /// (the object was deleted meanwhile) stops counting after `lease`.
    pub fn new(limit: usize, lease: Duration) -> Self {
        Pacer {
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            in_flight: HashMap::new(),
            limit,
            lease,
        }
    }

    /// Asks for `item` to be triggered (once, however often it is asked before it is).
    pub fn push(&mut self, item: T) {
        if self.queued.insert(item.clone()) {
            self.waiting.push_back(item);
        }
    }

    /// `item` was reconciled: it no longer counts against the limit.
    pub fn done(&mut self, item: &T) {
        self.in_flight.remove(item);
    }

    /// The items to trigger now, oldest first, as far as the limit allows.
    pub fn take_ready(&mut self, now: Instant) -> Vec<T> {
        let lease = self.lease;
        self.in_flight
            .retain(|_, since| now.saturating_duration_since(*since) < lease);
        let mut ready = Vec::new();
        while self.limit == 0 || self.in_flight.len() < self.limit {
            let Some(item) = self.waiting.pop_front() else {
                break;
            };
            self.queued.remove(&item);
            if self.limit > 0 {
                self.in_flight.insert(item.clone(), now);
            }
            ready.push(item);
        }
        ready
    }

    /// How many items wait.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    #[test]
    fn unlimited_passes_everything_in_order_once() {
        let mut p = Pacer::new(0, LEASE);
        for i in [1, 2, 1, 3, 2] {
            p.push(i);
        }
        assert_eq!(p.take_ready(Instant::now()), vec![1, 2, 3]);
        assert_eq!(p.take_ready(Instant::now()), Vec::<i32>::new());
    }

    #[test]
    fn at_most_limit_in_flight_until_done() {
        let now = Instant::now();
        let mut p = Pacer::new(2, LEASE);
        for i in 1..=5 {
            p.push(i);
        }
        assert_eq!(p.take_ready(now), vec![1, 2]);
        assert_eq!(p.take_ready(now), Vec::<i32>::new());
        assert_eq!(p.waiting(), 3);
        p.done(&1);
        assert_eq!(p.take_ready(now), vec![3]);
        p.done(&7); // never triggered: no effect
        assert_eq!(p.take_ready(now), Vec::<i32>::new());
        p.done(&2);
        p.done(&3);
        assert_eq!(p.take_ready(now), vec![4, 5]);
    }

    #[test]
    fn an_item_in_flight_may_be_asked_for_again() {
        let now = Instant::now();
        let mut p = Pacer::new(1, LEASE);
        p.push(1);
        assert_eq!(p.take_ready(now), vec![1]);
        p.push(1); // changed again before its reconcile was reported
        assert_eq!(p.take_ready(now), Vec::<i32>::new());
        p.done(&1);
        assert_eq!(p.take_ready(now), vec![1]);
    }

    #[test]
    fn an_unreported_trigger_stops_counting_after_the_lease() {
        let now = Instant::now();
        let mut p = Pacer::new(1, LEASE);
        p.push(1);
        p.push(2);
        assert_eq!(p.take_ready(now), vec![1]);
        assert_eq!(p.take_ready(now + LEASE / 2), Vec::<i32>::new());
        assert_eq!(p.take_ready(now + LEASE), vec![2]);
    }
}

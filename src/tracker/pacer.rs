//! Pacing of the tracker's triggers, as a stream stage between the tracker and a
//! controller ([`paced`]): at most `limit` objects triggered and not yet reconciled at once,
//! the rest waiting in order (FIFO, each object once). The controller reports each
//! reconcile with [`Pace::done`].
//!
//! Why: when every reconcile slot is busy, kube-runtime's runner parks the due requests in
//! an unordered set and later takes whichever it iterates first, so with 1,000 builds
//! changing phase a run's first start could wait until the phase changes died down (the
//! bimodal burst of the benchmark). Pacing the status refreshes keeps that set small and
//! leaves the other slots to starts. [`Pacer`] is the pure bookkeeping (time is passed in).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, stream};
use tokio::sync::Notify;

/// `triggers`, released at most `limit` at a time (0: unpaced); each released item counts
/// until [`Pace::done`] is called for it, or for `lease` if that never happens (the object
/// was deleted meanwhile).
pub fn paced<T, S>(triggers: S, limit: usize, lease: Duration) -> (impl Stream<Item = T>, Pace<T>)
where
    T: Hash + Eq + Clone + Send + 'static,
    S: Stream<Item = T> + Unpin + Send + 'static,
{
    let pace = Pace(Arc::new(Shared {
        pacer: Mutex::new(Pacer::new(limit, lease)),
        wake: Notify::new(),
    }));
    let shared = pace.0.clone();
    let released = stream::unfold(
        (triggers, shared, false),
        |(mut triggers, shared, mut ended)| async move {
            loop {
                let (ready, expiry) = {
                    let mut pacer = shared.lock();
                    // tokio's clock, so paused-time tests see leases expire.
                    let ready = pacer.take_ready(tokio::time::Instant::now().into_std());
                    (ready, pacer.next_expiry())
                };
                if !ready.is_empty() {
                    return Some((stream::iter(ready), (triggers, shared, ended)));
                }
                if ended && shared.lock().waiting() == 0 {
                    return None;
                }
                let until_expiry = async {
                    match expiry {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    next = triggers.next(), if !ended => match next {
                        Some(item) => shared.lock().push(item),
                        None => ended = true,
                    },
                    () = shared.wake.notified() => {}
                    () = until_expiry => {}
                }
            }
        },
    )
    .flatten();
    (released, pace)
}

/// The controller's side of [`paced`]: reports finished reconciles. Cheap to clone.
pub struct Pace<T>(Arc<Shared<T>>);

impl<T> Clone for Pace<T> {
    fn clone(&self) -> Self {
        Pace(self.0.clone())
    }
}

struct Shared<T> {
    pacer: Mutex<Pacer<T>>,
    wake: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Pacer<T>> {
        // Every update is a single push, pop or remove.
        self.pacer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Hash + Eq + Clone> Pace<T> {
    /// `item` was reconciled: its slot is free for the next waiting item.
    pub fn done(&self, item: &T) {
        self.0.lock().done(item);
        // A stored permit if the stream is not waiting right now: it looks again at once.
        self.0.wake.notify_one();
    }
}

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

    /// When the oldest in-flight item stops counting (None when none is in flight).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.in_flight
            .values()
            .min()
            .map(|since| *since + self.lease)
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

    #[tokio::test]
    async fn the_stream_releases_one_more_item_per_reported_reconcile() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (released, pace) = paced(rx, 3, LEASE);
        let mut released = Box::pin(released);
        for i in 0..10 {
            tx.unbounded_send(i).unwrap();
        }
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(released.next().await.unwrap());
        }
        assert_eq!(first, vec![0, 1, 2]);
        let more = tokio::time::timeout(Duration::from_millis(50), released.next()).await;
        assert!(
            more.is_err(),
            "a fourth item before any reconcile: {more:?}"
        );
        pace.done(&0);
        assert_eq!(released.next().await, Some(3));
        let more = tokio::time::timeout(Duration::from_millis(50), released.next()).await;
        assert!(more.is_err(), "only one slot was freed: {more:?}");
        drop(tx);
        for i in [1, 2, 3] {
            pace.done(&i);
        }
        let rest: Vec<i32> = released.take(3).collect().await;
        assert_eq!(rest, vec![4, 5, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_releases_after_the_lease_without_a_report() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (released, _pace) = paced(rx, 1, LEASE);
        let mut released = Box::pin(released);
        tx.unbounded_send(1).unwrap();
        tx.unbounded_send(2).unwrap();
        assert_eq!(released.next().await, Some(1));
        let start = tokio::time::Instant::now();
        assert_eq!(released.next().await, Some(2));
        assert!(start.elapsed() >= LEASE, "{:?}", start.elapsed());
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

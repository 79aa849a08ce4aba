//! The account's concurrent build limit, per target (Region and identity): once StartBuild
//! is refused with AccountLimitExceededException, the runs that want to start wait in one
//! queue in creation order, and only the head may call StartBuild: once per probe interval
//! (a single refused call at most, for capacity freed outside the operator's view), and at
//! once for every build of that target the tracker sees finish (it polls a queued target's
//! builds every [`super::QUEUED_POLL`], between rounds): each finished build frees
//! a slot, and each slot starts the next run in line, one after the other, without a call
//! being refused (unless someone else took the slot). The queue ends when it is empty.
//!
//! Shared by the tracker (which sees builds finish) and reconcile (which asks before each
//! StartBuild). The bookkeeping is pure: time is passed in; the run to wake next is
//! handed to a callback the tracker installs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::codebuild::Target;

/// How long a queued run that stopped asking (deleted, refused, stopped) keeps its place.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(120);

/// A run in a queue: ordered by creation (then namespace and name, for equal times).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunKey {
    /// The run's creation, in seconds since the epoch.
    pub created: i64,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Whether a run may call StartBuild now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Yes (no limit was met, or this run is the queue's probe).
    Go,
    /// No: the run is `position` of `waiting` in the queue; ask again after `retry_after`
    /// (or when the tracker wakes it).
    Wait {
        /// 1-based.
        position: usize,
        /// How many runs wait.
        waiting: usize,
        /// When to ask again at the latest.
        retry_after: Duration,
    },
}

#[derive(Debug)]
struct Queue {
    runs: BTreeSet<RunKey>,
    seen: HashMap<RunKey, Instant>,
    next_probe: Instant,
    /// Slots freed by finished builds and not taken yet.
    free: usize,
}

/// What wakes a run whose turn came (the tracker's trigger).
type Wake = Arc<dyn Fn(&RunKey) + Send + Sync>;

/// The queues of every target that met its limit. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Capacity {
    queues: Arc<Mutex<HashMap<Target, Queue>>>,
    probe_interval: Duration,
    wake: Arc<Mutex<Option<Wake>>>,
}

impl std::fmt::Debug for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capacity")
            .field("queues", &self.queues)
            .field("probe_interval", &self.probe_interval)
            .finish_non_exhaustive()
    }
}

impl Capacity {
    /// Queues whose head probes at most once per `probe_interval` (the poll interval).
    pub fn new(probe_interval: Duration) -> Self {
        Capacity {
            queues: Arc::default(),
            probe_interval,
            wake: Arc::default(),
        }
    }

    /// Calls `wake` with the run whose turn came when a start leaves a freed slot for it.
    pub fn on_wake(&self, wake: impl Fn(&RunKey) + Send + Sync + 'static) {
        *self.wake.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(wake));
    }

    /// Whether `run` may call StartBuild on `target` now.
    pub fn admit(&self, target: &Target, run: &RunKey, now: Instant) -> Admission {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(target) else {
            return Admission::Go;
        };
        queue.seen.insert(run.clone(), now);
        queue.runs.insert(run.clone());
        let stale: Vec<RunKey> = queue
            .seen
            .iter()
            .filter(|(_, seen)| now.saturating_duration_since(**seen) > FORGOTTEN_AFTER)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            queue.runs.remove(&key);
            queue.seen.remove(&key);
        }
        let position = queue.runs.iter().position(|k| k == run).unwrap_or(0) + 1;
        if position == 1 && queue.free > 0 {
            return Admission::Go; // the slot is taken when the build starts
        }
        if position == 1 && now >= queue.next_probe {
            queue.next_probe = now + self.probe_interval;
            return Admission::Go;
        }
        let retry_after = if position == 1 {
            queue.next_probe.saturating_duration_since(now)
        } else {
            self.probe_interval
        };
        Admission::Wait {
            position,
            waiting: queue.runs.len(),
            retry_after,
        }
    }

    /// `run` started a build on `target`: it leaves the queue (which ends once empty) and
    /// takes a freed slot; when slots are left, the next run in line is woken at once.
    pub fn started(&self, target: &Target, run: &RunKey) {
        let next = {
            let mut queues = self.lock();
            let Some(queue) = queues.get_mut(target) else {
                return;
            };
            queue.runs.remove(run);
            queue.seen.remove(run);
            queue.free = queue.free.saturating_sub(1);
            if queue.runs.is_empty() {
                queues.remove(target);
                return;
            }
            (queue.free > 0)
                .then(|| queue.runs.first().cloned())
                .flatten()
        };
        let wake = self
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let (Some(next), Some(wake)) = (next, wake) {
            wake(&next);
        }
    }

    /// StartBuild of `run` on `target` met the account's limit: the target queues its starts
    /// (if it did not yet), with `run` in it; the next probe is one interval away.
    pub fn refused(&self, target: &Target, run: &RunKey, now: Instant) {
        let mut queues = self.lock();
        let queue = queues.entry(target.clone()).or_insert_with(|| Queue {
            runs: BTreeSet::new(),
            seen: HashMap::new(),
            next_probe: now,
            free: 0,
        });
        queue.runs.insert(run.clone());
        queue.seen.insert(run.clone(), now);
        queue.next_probe = now + self.probe_interval;
        queue.free = 0; // whatever was counted free is taken (by someone else)
    }

    /// A build of `target` finished: one more slot is free, and the head of its queue may
    /// start at once. Returns the head.
    pub fn freed(&self, target: &Target) -> Option<RunKey> {
        let mut queues = self.lock();
        let queue = queues.get_mut(target)?;
        queue.free += 1;
        queue.runs.first().cloned()
    }

    /// The targets whose runs wait in a queue (the tracker polls their builds more often, so
    /// a freed slot is used soon after the build that held it ends).
    pub fn queued_targets(&self) -> BTreeSet<Target> {
        self.lock().keys().cloned().collect()
    }

    /// `run` no longer wants to start (deleted, stopped): it leaves every queue.
    pub fn forget(&self, run: &RunKey) {
        let mut queues = self.lock();
        for queue in queues.values_mut() {
            queue.runs.remove(run);
            queue.seen.remove(run);
        }
        queues.retain(|_, q| !q.runs.is_empty());
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Target, Queue>> {
        // Every update is a few inserts and removes on one queue.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity::new(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: Duration = Duration::from_secs(5);

    fn run(created: i64, name: &str) -> RunKey {
        RunKey {
            created,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn target() -> Target {
        Target::region("us-east-1")
    }

    #[test]
    fn no_limit_met_no_queue() {
        let c = Capacity::new(PROBE);
        assert_eq!(
            c.admit(&target(), &run(1, "a"), Instant::now()),
            Admission::Go
        );
    }

    #[test]
    fn runs_queue_in_creation_order_and_only_the_head_probes_once_per_interval() {
        let c = Capacity::new(PROBE);
        let t0 = Instant::now();
        c.refused(&target(), &run(5, "late"), t0);
        let early = run(1, "early");
        assert_eq!(
            c.admit(&target(), &early, t0),
            Admission::Wait {
                position: 1,
                waiting: 2,
                retry_after: PROBE
            },
            "the probe waits for the interval"
        );
        assert_eq!(
            c.admit(&target(), &run(5, "late"), t0 + PROBE),
            Admission::Wait {
                position: 2,
                waiting: 2,
                retry_after: PROBE
            }
        );
        assert_eq!(c.admit(&target(), &early, t0 + PROBE), Admission::Go);
        assert!(
            matches!(
                c.admit(&target(), &early, t0 + PROBE),
                Admission::Wait { .. }
            ),
            "one probe per interval"
        );
    }

    #[test]
    fn a_finished_build_lets_the_head_start_at_once() {
        let c = Capacity::new(PROBE);
        let t0 = Instant::now();
        c.refused(&target(), &run(1, "a"), t0);
        c.refused(&target(), &run(2, "b"), t0);
        assert_eq!(c.freed(&target()), Some(run(1, "a")));
        assert_eq!(c.admit(&target(), &run(1, "a"), t0), Admission::Go);
        c.started(&target(), &run(1, "a"));
        assert!(
            matches!(
                c.admit(&target(), &run(2, "b"), t0),
                Admission::Wait { position: 1, .. }
            ),
            "one finished build, one start"
        );
        c.started(&target(), &run(2, "b"));
        assert_eq!(
            c.admit(&target(), &run(3, "c"), t0),
            Admission::Go,
            "the queue ended"
        );
    }

    #[test]
    fn runs_that_stop_asking_lose_their_place() {
        let c = Capacity::new(PROBE);
        let t0 = Instant::now();
        c.refused(&target(), &run(1, "gone"), t0);
        c.refused(&target(), &run(2, "b"), t0);
        let later = t0 + FORGOTTEN_AFTER + PROBE;
        assert_eq!(c.admit(&target(), &run(2, "b"), later), Admission::Go);
        c.forget(&run(2, "b"));
        assert_eq!(c.freed(&target()), None);
    }

    #[test]
    fn every_freed_slot_starts_the_next_run_in_line_at_once() {
        let c = Capacity::new(PROBE);
        let woken = Arc::new(Mutex::new(Vec::new()));
        let w = woken.clone();
        c.on_wake(move |key| w.lock().unwrap().push(key.name.clone()));
        let t0 = Instant::now();
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            c.refused(&target(), &run(i as i64, name), t0);
        }
        // Three builds finish in one tracker round.
        for _ in 0..3 {
            c.freed(&target());
        }
        for name in ["a", "b", "c"] {
            let key = run(name.as_bytes()[0] as i64 - 97, name);
            assert_eq!(c.admit(&target(), &key, t0), Admission::Go, "{name}");
            c.started(&target(), &key);
        }
        assert_eq!(
            *woken.lock().unwrap(),
            vec!["b", "c"],
            "each start wakes the next"
        );
        assert!(
            matches!(
                c.admit(&target(), &run(3, "d"), t0),
                Admission::Wait { position: 1, .. }
            ),
            "three slots, three starts, no refused call"
        );
        // A slot someone else took: the start is refused and counting starts over.
        c.freed(&target());
        c.refused(&target(), &run(3, "d"), t0);
        assert!(matches!(
            c.admit(&target(), &run(3, "d"), t0),
            Admission::Wait { position: 1, .. }
        ));
        assert_eq!(c.admit(&target(), &run(3, "d"), t0 + PROBE), Admission::Go);
    }

    #[test]
    fn targets_queue_apart() {
        let c = Capacity::new(PROBE);
        c.refused(&target(), &run(1, "a"), Instant::now());
        let other = Target::region("eu-west-1");
        assert_eq!(c.admit(&other, &run(2, "b"), Instant::now()), Admission::Go);
    }
}

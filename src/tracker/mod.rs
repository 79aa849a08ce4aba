//! The tracker: one place that polls CodeBuild for every in-flight build.
//!
//! Reconcile never polls AWS per object. Each round (one per poll interval), the tracker
//! derives what to poll from the watched runs themselves (`polling`: every run whose status
//! records a build that is not final, with the Region and role of its start attempt), asks
//! BatchGetBuilds for up to 100 of them per call and target, keeps the latest answer per
//! build in the shared [`BuildCache`] that reconcile reads, and sends each run whose build
//! changed to its controller's trigger stream (paced on the way by [`paced`]). Nothing
//! registers or forgets a build: after a restart or a leader change, the runs say what to
//! poll. Final and unknown builds cost nothing.

mod batches;
mod cache;
mod capacity;
mod pacer;
mod polling;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::api::CodeBuildRun;
use crate::codebuild::{
    ApiError, BATCH_GET_BUILDS_MAX_IDS, BuildApi, BuildBatch, ErrorKind, Target,
};
use crate::convert::build_info;
use crate::metrics::Metrics;

pub use batches::{BatchTracker, rounds};
pub use cache::{BatchCache, BuildCache, Observation, ObservationCache};
pub use capacity::{Admission, Capacity, RunKey};
pub use pacer::{Pace, Pacer, paced};
pub use polling::{Tracked, tracked, well_formed_build_id};

/// How many BatchGetBuilds calls of one round may be in flight at once.
const ROUND_CONCURRENCY: usize = 4;
/// How often the builds of a target whose runs wait for the account's build limit are
/// polled (between rounds), so that a freed slot is used soon after its build ends.
pub const QUEUED_POLL: Duration = Duration::from_secs(1);

/// The numbers of one polling round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Builds asked for.
    pub builds: usize,
    /// BatchGetBuilds calls made.
    pub calls: usize,
    /// Calls that failed.
    pub failed_calls: usize,
    /// Objects triggered because their build changed.
    pub changed: usize,
}

/// A controller's trigger channel and the namespace it watches (None: all).
type Trigger = (
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<CodeBuildRun>>,
);

/// Shared handle to the tracker.
pub struct Tracker<B> {
    codebuild: Arc<B>,
    cache: BuildCache,
    capacity: Capacity,
    runs: Arc<Mutex<Vec<Store<CodeBuildRun>>>>,
    triggers: Arc<Mutex<Vec<Trigger>>>,
    default_region: String,
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicUsize>,
}

impl<B> Clone for Tracker<B> {
    fn clone(&self) -> Self {
        Tracker {
            codebuild: self.codebuild.clone(),
            cache: self.cache.clone(),
            capacity: self.capacity.clone(),
            runs: self.runs.clone(),
            triggers: self.triggers.clone(),
            default_region: self.default_region.clone(),
            metrics: self.metrics.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

// === impl Tracker ===

impl<B: BuildApi> Tracker<B> {
    /// A tracker calling `codebuild`; runs that name no Region (and have no start attempt)
    /// are polled in `default_region`.
    pub fn new(codebuild: Arc<B>, default_region: impl Into<String>) -> Self {
        Tracker {
            codebuild,
            cache: BuildCache::default(),
            capacity: Capacity::default(),
            runs: Arc::default(),
            triggers: Arc::default(),
            default_region: default_region.into(),
            metrics: Arc::default(),
            in_flight: Arc::default(),
        }
        .with_capacity(Capacity::default())
    }

    /// Counts rounds into `metrics` (a fresh, unexported set by default).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Queues starts per target under the account's build limit with `capacity` (the
    /// tracker tells it when builds finish; reconcile asks it before each StartBuild).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        let triggers = self.triggers.clone();
        capacity.on_wake(move |run| {
            send(
                &triggers,
                &[ObjectRef::new(&run.name).within(&run.namespace)],
            );
        });
        self.capacity = capacity;
        self
    }

    /// The queues of starts waiting for the account's build limit.
    pub fn capacity(&self) -> Capacity {
        self.capacity.clone()
    }

    /// Polls the builds of the runs in `runs` (a controller's watch cache) from the next
    /// round on.
    pub fn follow(&self, runs: Store<CodeBuildRun>) {
        lock(&self.runs).push(runs);
    }

    /// A stream of runs to reconcile because their build changed, for the runs of
    /// `namespace` (None: every namespace). Pace it ([`paced`]) and feed it to
    /// `Controller::reconcile_on`.
    pub fn triggers(
        &self,
        namespace: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<CodeBuildRun>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.triggers).push((namespace, tx));
        rx
    }

    /// The latest observations, shared with reconcile.
    pub fn cache(&self) -> BuildCache {
        self.cache.clone()
    }

    /// The latest observation of `build_id`, if it is tracked.
    pub fn observation(&self, build_id: &str) -> Option<Observation> {
        self.cache.get(build_id)
    }

    /// How many builds were still live (not final, known to CodeBuild) after the last round.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Polls every `interval` until the future is dropped; in between, every
    /// [`QUEUED_POLL`], the builds of targets whose runs wait for the account's build limit.
    pub async fn run(self, interval: Duration) {
        self.metrics.set_poll_interval(interval);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.between_rounds(&mut ticker).await;
            let stats = self.round().await;
            if stats.builds > 0 {
                debug!(?stats, "tracker round");
            }
        }
    }

    /// Waits for `ticker`'s next tick, polling the builds of targets whose runs wait for
    /// the account's build limit every [`QUEUED_POLL`] meanwhile.
    pub async fn between_rounds(&self, ticker: &mut tokio::time::Interval) {
        let tick = ticker.tick();
        tokio::pin!(tick);
        loop {
            tokio::select! {
                _ = &mut tick => return,
                _ = tokio::time::sleep(QUEUED_POLL) => {
                    let queued = self.capacity.queued_targets();
                    if !queued.is_empty() {
                        self.queued_round(&queued).await;
                    }
                }
            }
        }
    }

    /// One polling round: every live build of the watched runs, batched per target.
    pub async fn round(&self) -> RoundStats {
        let started = Instant::now();
        let tracked = self.tracked();
        let calls = self.plan_calls(&tracked);
        let mut stats = self.poll(calls, &tracked).await;
        stats.changed += self.set_aside_malformed(&tracked);
        let live = self.cache.lock().values().filter(|o| o.is_live()).count();
        self.in_flight.store(live, Ordering::Relaxed);
        self.metrics
            .tracker_round(started.elapsed(), stats.builds, live);
        stats
    }

    /// A round between rounds: the live builds of `targets` only (those with runs waiting
    /// for a slot). Not counted as a round in the metrics.
    pub async fn queued_round(&self, targets: &BTreeSet<Target>) -> RoundStats {
        let tracked = self.tracked();
        let calls: Vec<_> = self
            .plan_calls(&tracked)
            .into_iter()
            .filter(|(target, _)| targets.contains(target))
            .collect();
        self.poll(calls, &tracked).await
    }

    /// Makes `calls`, setting aside the ids CodeBuild refuses.
    async fn poll(
        &self,
        calls: Vec<(Target, Vec<String>)>,
        tracked: &HashMap<String, Tracked>,
    ) -> RoundStats {
        let mut stats = RoundStats {
            builds: calls.iter().map(|(_, ids)| ids.len()).sum(),
            calls: calls.len(),
            ..RoundStats::default()
        };
        let refused = self.call(calls, tracked, &mut stats).await;
        self.isolate(refused, tracked, &mut stats).await;
        stats
    }

    /// Makes the BatchGetBuilds `calls` (a few at once) and applies their answers. Returns
    /// the calls CodeBuild refused as invalid input (one bad id fails a whole call).
    async fn call(
        &self,
        calls: Vec<(Target, Vec<String>)>,
        tracked: &HashMap<String, Tracked>,
        stats: &mut RoundStats,
    ) -> Vec<(Target, Vec<String>)> {
        let codebuild = self.codebuild.clone();
        let mut results = stream::iter(calls)
            .map(|(target, ids)| {
                let codebuild = codebuild.clone();
                async move {
                    let result = codebuild.batch_get_builds(&target, ids.clone()).await;
                    (target, ids, result)
                }
            })
            .buffer_unordered(ROUND_CONCURRENCY);
        let mut refused = Vec::new();
        while let Some((target, ids, result)) = results.next().await {
            match result {
                Ok(batch) => stats.changed += self.apply(tracked, batch),
                Err(error) if error.kind == ErrorKind::InvalidInput => {
                    stats.failed_calls += 1;
                    if ids.len() == 1 {
                        stats.changed += self.mark_invalid(tracked, &ids[0], &error.to_string());
                    } else {
                        refused.push((target, ids));
                    }
                }
                Err(error) => {
                    stats.failed_calls += 1;
                    log_failed_call(&target, ids.len(), &error);
                }
            }
        }
        refused
    }

    /// Splits each refused call in halves, and those again while refused, until only the
    /// offending ids are left, set aside (a handful of extra calls per bad id); every other
    /// build is polled this round.
    async fn isolate(
        &self,
        mut refused: Vec<(Target, Vec<String>)>,
        tracked: &HashMap<String, Tracked>,
        stats: &mut RoundStats,
    ) {
        while !refused.is_empty() {
            let halves: Vec<(Target, Vec<String>)> = refused
                .drain(..)
                .flat_map(|(target, ids)| {
                    let (a, b) = ids.split_at(ids.len() / 2);
                    [(target.clone(), a.to_vec()), (target, b.to_vec())]
                })
                .collect();
            stats.calls += halves.len();
            refused = Box::pin(self.call(halves, tracked, stats)).await;
        }
    }

    /// Sets aside every tracked id that is not of the service's form (never sent).
    fn set_aside_malformed(&self, tracked: &HashMap<String, Tracked>) -> usize {
        tracked
            .keys()
            .filter(|id| !well_formed_build_id(id))
            .map(|id| {
                let why = format!("{id:?} is not a CodeBuild build id (<project>:<uuid>)");
                self.mark_invalid(tracked, id, &why)
            })
            .sum()
    }

    /// Records that `id` cannot be looked up; triggers its run the first time.
    fn mark_invalid(&self, tracked: &HashMap<String, Tracked>, id: &str, why: &str) -> usize {
        let Some(t) = tracked.get(id) else {
            return 0;
        };
        let observation = Observation::Invalid(why.to_owned());
        {
            let mut cache = self.cache.lock();
            if cache.get(id) == Some(&observation) {
                return 0;
            }
            cache.insert(id.to_owned(), observation);
        }
        warn!(build = %id, %why, "build id set aside: CodeBuild cannot look it up");
        self.trigger(std::slice::from_ref(&t.owner));
        1
    }

    /// Every build the watched runs need followed, by id (and the runs counted by state).
    fn tracked(&self) -> HashMap<String, Tracked> {
        let stores = lock(&self.runs).clone();
        let runs: Vec<_> = stores.iter().flat_map(|store| store.state()).collect();
        self.metrics.count_runs(runs.iter().map(|run| run.as_ref()));
        runs.iter()
            .filter_map(|run| tracked(run, &self.default_region))
            .map(|t| (t.id.clone(), t))
            .collect()
    }

    /// Brings the cache in line with `tracked` (builds no longer tracked are dropped, new
    /// ones start from what status records) and returns the BatchGetBuilds calls for the
    /// live ones: per target, sorted, at most 100 ids each.
    fn plan_calls(&self, tracked: &HashMap<String, Tracked>) -> Vec<(Target, Vec<String>)> {
        let mut by_target: BTreeMap<Target, Vec<String>> = BTreeMap::new();
        {
            let mut cache = self.cache.lock();
            cache.retain(|id, _| tracked.contains_key(id));
            for (id, t) in tracked.iter().filter(|(id, _)| well_formed_build_id(id)) {
                let observed = cache
                    .entry(id.clone())
                    .or_insert_with(|| Observation::Build(Arc::new(t.recorded.clone())));
                if observed.is_live() {
                    by_target
                        .entry(t.target.clone())
                        .or_default()
                        .push(id.clone());
                }
            }
        }
        calls_per_target(by_target, BATCH_GET_BUILDS_MAX_IDS)
    }

    /// Stores one BatchGetBuilds answer; triggers (and counts) the runs whose build changed.
    fn apply(&self, tracked: &HashMap<String, Tracked>, batch: BuildBatch) -> usize {
        let found = batch.builds.iter().filter_map(|b| {
            let info = build_info(b);
            Some((info.build_id.clone()?, Observation::Build(Arc::new(info))))
        });
        let missing = batch
            .not_found
            .into_iter()
            .map(|id| (id, Observation::NotFound));
        let mut owners = Vec::new();
        let mut freed = Vec::new();
        {
            let mut cache = self.cache.lock();
            for (id, observation) in found.chain(missing) {
                let Some(t) = tracked.get(&id) else {
                    continue;
                };
                if cache.get(&id) != Some(&observation) {
                    if cache.get(&id).is_some_and(Observation::is_live) && !observation.is_live() {
                        freed.push(t.target.clone());
                    }
                    cache.insert(id, observation);
                    owners.push(t.owner.clone());
                }
            }
        }
        let changed = owners.len();
        // A build that ended frees a slot of its target's limit: wake the queue's head.
        for target in freed {
            if let Some(head) = self.capacity.freed(&target) {
                owners.push(ObjectRef::new(&head.name).within(&head.namespace));
            }
        }
        self.trigger(&owners);
        changed
    }

    /// Sends each of `owners` to the controllers that watch its namespace.
    fn trigger(&self, owners: &[ObjectRef<CodeBuildRun>]) {
        send(&self.triggers, owners);
    }
}

/// The calls for `by_target`'s ids: per target, sorted, at most `max_ids` each.
fn calls_per_target(
    by_target: BTreeMap<Target, Vec<String>>,
    max_ids: usize,
) -> Vec<(Target, Vec<String>)> {
    let mut calls = Vec::new();
    for (target, mut ids) in by_target {
        ids.sort();
        for chunk in ids.chunks(max_ids) {
            calls.push((target.clone(), chunk.to_vec()));
        }
    }
    calls
}

/// Sends each of `owners` to the controllers in `triggers` that watch its namespace.
fn send(triggers: &Mutex<Vec<Trigger>>, owners: &[ObjectRef<CodeBuildRun>]) {
    let triggers = lock(triggers);
    for owner in owners {
        for (namespace, tx) in triggers.iter() {
            if namespace.is_none() || namespace.as_deref() == owner.namespace.as_deref() {
                // A closed receiver means its controller stopped: nothing to wake.
                let _ = tx.unbounded_send(owner.clone());
            }
        }
    }
}

fn log_failed_call(target: &Target, builds: usize, error: &ApiError) {
    warn!(%target, builds, %error, category = error.kind.category(),
        "BatchGetBuilds failed; the builds are polled again next round");
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single push: a panic while holding the lock leaves nothing
    // half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

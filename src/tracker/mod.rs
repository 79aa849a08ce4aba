//! The tracker: one place that polls CodeBuild for every in-flight build.
//!
//! Reconcile never polls AWS per object. It registers the build ids it needs watched; one
//! round per poll interval, the tracker groups those ids by target (Region and identity),
//! asks BatchGetBuilds for up to 100 of them per call, keeps the latest answer per build in
//! a shared cache, and triggers a reconcile of each object whose build changed, paced so
//! that status refreshes never take every reconcile slot (`pacer`). A build leaves the
//! polling set once it is final (or CodeBuild says it does not exist); its last answer
//! stays in the cache until the owning object forgets it.

mod pacer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use kube::runtime::reflector::ObjectRef;
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::api::{BuildInfo, CodeBuildRun};
use crate::codebuild::{BATCH_GET_BUILDS_MAX_IDS, BuildApi, Target};
use crate::controller::plan;
use crate::convert::build_info;
use crate::metrics::Metrics;

/// How many BatchGetBuilds calls of one round may be in flight at once.
const ROUND_CONCURRENCY: usize = 4;
/// How long a trigger counts against the pacing limit when its reconcile is never reported.
const TRIGGER_LEASE: Duration = Duration::from_secs(30);

pub use pacer::Pacer;

/// What the tracker last learnt about a build.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The build as CodeBuild last reported it.
    Build(Arc<BuildInfo>),
    /// CodeBuild listed the id in `buildsNotFound`.
    NotFound,
}

#[derive(Debug)]
struct Entry {
    target: Target,
    owner: ObjectRef<CodeBuildRun>,
    observed: Option<Observation>,
    polling: bool,
}

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
    api: Arc<B>,
    metrics: Arc<Metrics>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    triggers: Arc<Mutex<Vec<Trigger>>>,
    pacer: Arc<Mutex<Pacer<ObjectRef<CodeBuildRun>>>>,
}

impl<B> Clone for Tracker<B> {
    fn clone(&self) -> Self {
        Tracker {
            api: self.api.clone(),
            metrics: self.metrics.clone(),
            entries: self.entries.clone(),
            triggers: self.triggers.clone(),
            pacer: self.pacer.clone(),
        }
    }
}

impl<B: BuildApi> Tracker<B> {
    /// A tracker calling `api`.
    pub fn new(api: Arc<B>) -> Self {
        Tracker {
            api,
            metrics: Arc::default(),
            entries: Arc::default(),
            triggers: Arc::default(),
            pacer: Arc::new(Mutex::new(Pacer::new(0, TRIGGER_LEASE))),
        }
    }

    /// At most `limit` objects triggered for a changed build and not reconciled yet (0: no
    /// limit); the others wait their turn in order. Report each reconcile with
    /// [`Tracker::reconciled`].
    pub fn with_trigger_limit(self, limit: usize) -> Self {
        *lock(&self.pacer) = Pacer::new(limit, TRIGGER_LEASE);
        self
    }

    /// `run` was reconciled: a paced trigger slot is free again.
    pub fn reconciled(&self, run: &ObjectRef<CodeBuildRun>) {
        lock(&self.pacer).done(run);
        self.release();
    }

    /// Counts rounds into `metrics` (a fresh, unexported set by default).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// A stream of objects to reconcile because their build changed, for the objects of
    /// `namespace` (None: every namespace). Feed it to `Controller::reconcile_on`.
    pub fn triggers(
        &self,
        namespace: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<CodeBuildRun>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.triggers).push((namespace, tx));
        rx
    }

    /// Watch `build_id` for `owner` (idempotent). The first round that sees it triggers the
    /// owner.
    pub fn track(&self, target: &Target, build_id: &str, owner: ObjectRef<CodeBuildRun>) {
        lock(&self.entries)
            .entry(build_id.to_owned())
            .or_insert_with(|| Entry {
                target: target.clone(),
                owner,
                observed: None,
                polling: true,
            });
    }

    /// Record a build just returned by StartBuild or StopBuild; it is polled until final.
    pub fn record(&self, target: &Target, owner: ObjectRef<CodeBuildRun>, info: BuildInfo) {
        let Some(id) = info.build_id.clone() else {
            return;
        };
        let polling = !plan::is_final(&info);
        lock(&self.entries).insert(
            id,
            Entry {
                target: target.clone(),
                owner,
                observed: Some(Observation::Build(Arc::new(info))),
                polling,
            },
        );
    }

    /// The latest observation of `build_id`, if any.
    pub fn observation(&self, build_id: &str) -> Option<Observation> {
        lock(&self.entries)
            .get(build_id)
            .and_then(|e| e.observed.clone())
    }

    /// Stop watching `build_id` and drop what is known about it.
    pub fn forget(&self, build_id: &str) {
        lock(&self.entries).remove(build_id);
    }

    /// How many builds are polled.
    pub fn in_flight(&self) -> usize {
        lock(&self.entries).values().filter(|e| e.polling).count()
    }

    /// Poll every `interval` until the future is dropped.
    pub async fn run(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let stats = self.round().await;
            if stats.builds > 0 {
                debug!(?stats, "tracker round");
            }
        }
    }

    /// One polling round: every in-flight build, batched per target (Region and identity).
    pub async fn round(&self) -> RoundStats {
        let started = Instant::now();
        let mut by_target: BTreeMap<Target, Vec<String>> = BTreeMap::new();
        for (id, entry) in lock(&self.entries).iter().filter(|(_, e)| e.polling) {
            by_target
                .entry(entry.target.clone())
                .or_default()
                .push(id.clone());
        }
        let mut stats = RoundStats::default();
        let mut calls = Vec::new();
        for (target, mut ids) in by_target {
            ids.sort();
            stats.builds += ids.len();
            for chunk in ids.chunks(BATCH_GET_BUILDS_MAX_IDS) {
                calls.push((target.clone(), chunk.to_vec()));
            }
        }
        stats.calls = calls.len();
        let api = self.api.clone();
        let mut results = stream::iter(calls)
            .map(|(target, ids)| {
                let api = api.clone();
                async move {
                    let result = api.batch_get_builds(&target, ids.clone()).await;
                    (target, ids, result)
                }
            })
            .buffer_unordered(ROUND_CONCURRENCY);
        while let Some((target, ids, result)) = results.next().await {
            match result {
                Ok(batch) => {
                    let mut updates: Vec<(String, Observation)> = batch
                        .builds
                        .iter()
                        .filter_map(|b| {
                            let info = build_info(b);
                            info.build_id
                                .clone()
                                .map(|id| (id, Observation::Build(Arc::new(info))))
                        })
                        .collect();
                    updates.extend(
                        batch
                            .not_found
                            .into_iter()
                            .map(|id| (id, Observation::NotFound)),
                    );
                    stats.changed += self.apply(updates);
                }
                Err(error) => {
                    stats.failed_calls += 1;
                    warn!(%target, builds = ids.len(), %error, category = error.kind.category(),
                        "BatchGetBuilds failed; the builds are polled again next round");
                }
            }
        }
        self.metrics
            .tracker_round(started.elapsed(), stats.builds, self.in_flight());
        stats
    }

    /// Stores observations; returns how many changed (and triggers their owners).
    fn apply(&self, updates: Vec<(String, Observation)>) -> usize {
        let mut owners = Vec::new();
        {
            let mut entries = lock(&self.entries);
            for (id, observation) in updates {
                let Some(entry) = entries.get_mut(&id) else {
                    continue;
                };
                entry.polling = match &observation {
                    Observation::Build(info) => !plan::is_final(info),
                    Observation::NotFound => false,
                };
                if entry.observed.as_ref() != Some(&observation) {
                    entry.observed = Some(observation);
                    owners.push(entry.owner.clone());
                }
            }
        }
        let changed = owners.len();
        {
            let mut pacer = lock(&self.pacer);
            owners.into_iter().for_each(|owner| pacer.push(owner));
        }
        self.release();
        changed
    }

    /// Triggers the owners the pacer lets through now.
    fn release(&self) {
        let ready = lock(&self.pacer).take_ready(Instant::now());
        if ready.is_empty() {
            return;
        }
        let mut triggers = lock(&self.triggers);
        for owner in ready {
            for (namespace, tx) in triggers.iter_mut() {
                if namespace.is_none() || namespace.as_deref() == owner.namespace.as_deref() {
                    // A closed receiver means its controller stopped: nothing to wake.
                    let _ = tx.unbounded_send(owner.clone());
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map half-updated in a way that
    // matters: every update is a single insert or field write.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

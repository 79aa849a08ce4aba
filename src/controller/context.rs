//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use rand::Rng;

use super::Settings;
use super::released::Released;
use crate::api::LogTail;
use crate::codebuild::ErrorKind;
use crate::metrics::Metrics;
use crate::output::ReportCache;
use crate::policy::Policies;
use crate::tracker::{BatchCache, BuildCache, Capacity};

/// Shared state of the controller.
pub struct Context<B> {
    /// The Kubernetes client.
    pub kube: Client,
    /// CodeBuild.
    pub codebuild: Arc<B>,
    /// The tracker's latest observation of every tracked build.
    pub builds: BuildCache,
    /// The tracker's latest observation of every tracked batch.
    pub batches: BatchCache,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Settings.
    pub settings: Settings,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The CodeBuildRunPolicies to enforce; None when policies are not enforced.
    pub policies: Option<Policies>,
    /// The queues of starts waiting for an account's build limit (shared with the tracker).
    pub capacity: Capacity,
    /// What the report reader learnt about the reports of finished builds.
    pub reports: ReportCache,
    /// Finalizers removed from versions of runs the watch cache may still show.
    pub released: Released,
    /// Failures in a row, per object (of either kind).
    failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
    /// Failure tails read but not written yet (a failed write must not read them again).
    tails: Mutex<HashMap<String, LogTail>>,
}

/// At most this many tails wait for their write; more means writes keep failing for many
/// runs at once, and the oldest knowledge is dropped rather than memory.
const PENDING_TAILS_MAX: usize = 1000;

impl<B> Context<B> {
    /// A context.
    pub fn new(
        kube: Client,
        codebuild: Arc<B>,
        builds: BuildCache,
        recorder: Recorder,
        settings: Settings,
    ) -> Self {
        Context {
            kube,
            codebuild,
            builds,
            batches: BatchCache::default(),
            recorder,
            settings,
            metrics: Arc::default(),
            policies: None,
            capacity: Capacity::default(),
            reports: ReportCache::default(),
            released: Released::default(),
            failures: Mutex::default(),
            tails: Mutex::default(),
        }
    }

    /// Reads the reports of finished builds from `reports` (the report reader's cache).
    pub fn with_reports(mut self, reports: ReportCache) -> Self {
        self.reports = reports;
        self
    }

    /// The failure tail of `build_id` read earlier and not written yet.
    pub(crate) fn pending_tail(&self, build_id: &str) -> Option<LogTail> {
        lock(&self.tails).get(build_id).cloned()
    }

    /// Keeps the tail of a build until the status that holds it is written.
    pub(crate) fn keep_tail(&self, tail: &LogTail) {
        let mut tails = lock(&self.tails);
        if tails.len() >= PENDING_TAILS_MAX {
            tails.clear();
        }
        tails.insert(tail.build_id.clone(), tail.clone());
    }

    /// Forgets the tail of `build_id`: status holds it.
    pub(crate) fn tail_written(&self, build_id: &str) {
        lock(&self.tails).remove(build_id);
    }

    /// Enforces `policies` before every start.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Queues starts under an account's build limit in `capacity` (the tracker's).
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }

    /// Reads the observations of batches from `batches` (the batch tracker's).
    pub fn with_batches(mut self, batches: BatchCache) -> Self {
        self.batches = batches;
        self
    }

    /// Counts into `metrics` (a fresh, unexported set by default).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts one more failure of `obj` in a row; returns how many there were.
    pub fn failed<K: Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) -> u32 {
        let mut failures = self.failures();
        let n = failures.entry(obj.clone().erase()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// The delay before retrying `obj` after its failures in a row: exponential with
    /// jitter, slow and capped for errors that may heal (a missing project, a denial, an
    /// account limit).
    pub fn backoff<K: Resource<DynamicType = ()>>(
        &self,
        obj: &ObjectRef<K>,
        kind: Option<ErrorKind>,
    ) -> Duration {
        let key = obj.clone().erase();
        let n = self.failures().get(&key).copied().unwrap_or(1).max(1);
        let (base, cap) = match kind {
            Some(ErrorKind::ProjectNotFound | ErrorKind::AccessDenied) => {
                (Duration::from_secs(5), Duration::from_secs(300))
            }
            Some(ErrorKind::AccountLimitExceeded) => {
                (Duration::from_secs(10), Duration::from_secs(300))
            }
            _ => (Duration::from_millis(500), Duration::from_secs(300)),
        };
        let exp = base.saturating_mul(1u32 << (n - 1).min(16)).min(cap);
        let jitter = rand::rng().random_range(0.8..1.2);
        exp.mul_f64(jitter)
    }

    /// Forgets the failures of `obj` after a reconcile that went through.
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &ObjectRef<K>) {
        self.failures().remove(&obj.clone().erase());
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<ObjectRef<DynamicObject>, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is one insert, remove or clear: nothing is left half-done by a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

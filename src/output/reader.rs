//! The report reader: one loop beside the tracker that reads the test and coverage reports
//! of finished builds with BatchGetReports, batched across builds (up to 100 ARNs a call
//! per Region and role), keeps the answers in a [`ReportCache`] that reconcile reads, and
//! wakes the runs whose reports it learnt something about.
//!
//! Like the tracker it derives its work from the watched runs (`reports_to_read`): nothing
//! registers a build, and a restart picks up where status left off. Builds without reports,
//! and runs whose reports are final in status, cost nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use super::reports::{NOT_FOUND, ReportAnswer, reports_to_read};
use crate::api::{CodeBuildRun, ReportSummary};
use crate::codebuild::{
    ApiError, BATCH_GET_REPORTS_MAX_ARNS, BuildApi, ErrorKind, ReportBatch, Target,
};
use crate::convert::report_summary;

/// How long a Region and role whose BatchGetReports was denied are left alone.
const DENIED_PAUSE: Duration = Duration::from_secs(300);

/// Report ARN -> what BatchGetReports last said. Cheap to clone (a shared handle).
#[derive(Clone, Debug, Default)]
pub struct ReportCache(Arc<Mutex<HashMap<String, ReportAnswer>>>);

impl ReportCache {
    /// What is known of each of `arns`.
    pub fn answers(&self, arns: &[String]) -> HashMap<String, ReportAnswer> {
        let cache = self.lock();
        arns.iter()
            .filter_map(|arn| Some((arn.clone(), cache.get(arn)?.clone())))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, ReportAnswer>> {
        // Every update is one insert or retain: nothing is left half-done by a panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The numbers of one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportRound {
    /// Report ARNs asked for.
    pub arns: usize,
    /// BatchGetReports calls made.
    pub calls: usize,
    /// Calls that failed.
    pub failed_calls: usize,
    /// Runs woken because something new was learnt about their reports.
    pub changed: usize,
}

/// A report ARN a run needs read.
#[derive(Clone, Debug)]
struct Wanted {
    target: Target,
    owner: ObjectRef<CodeBuildRun>,
}

type Trigger = (
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<CodeBuildRun>>,
);

/// Shared handle to the report reader.
pub struct ReportReader<B> {
    codebuild: Arc<B>,
    cache: ReportCache,
    runs: Arc<Mutex<Vec<Store<CodeBuildRun>>>>,
    triggers: Arc<Mutex<Vec<Trigger>>>,
    paused: Arc<Mutex<HashMap<Target, Instant>>>,
    default_region: String,
}

impl<B> Clone for ReportReader<B> {
    fn clone(&self) -> Self {
        ReportReader {
            codebuild: self.codebuild.clone(),
            cache: self.cache.clone(),
            runs: self.runs.clone(),
            triggers: self.triggers.clone(),
            paused: self.paused.clone(),
            default_region: self.default_region.clone(),
        }
    }
}

// === impl ReportReader ===

impl<B: BuildApi> ReportReader<B> {
    /// A reader calling `codebuild`; runs without a Region of their own are read in
    /// `default_region`.
    pub fn new(codebuild: Arc<B>, default_region: impl Into<String>) -> Self {
        ReportReader {
            codebuild,
            cache: ReportCache::default(),
            runs: Arc::default(),
            triggers: Arc::default(),
            paused: Arc::default(),
            default_region: default_region.into(),
        }
    }

    /// Reads the reports of the runs in `runs` (a controller's watch cache).
    pub fn follow(&self, runs: Store<CodeBuildRun>) {
        lock(&self.runs).push(runs);
    }

    /// Runs of `namespace` (None: all) to reconcile because their reports changed.
    pub fn triggers(
        &self,
        namespace: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<CodeBuildRun>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.triggers).push((namespace, tx));
        rx
    }

    /// The answers, shared with reconcile.
    pub fn cache(&self) -> ReportCache {
        self.cache.clone()
    }

    /// One round every `interval` until the future is dropped.
    pub async fn run(self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let stats = self.round().await;
            if stats.arns > 0 {
                debug!(?stats, "report round");
            }
        }
    }

    /// One round: every report the watched runs still need, batched per target.
    pub async fn round(&self) -> ReportRound {
        let wanted = self.wanted();
        let calls = self.plan_calls(&wanted);
        let mut stats = ReportRound {
            arns: calls.iter().map(|(_, arns)| arns.len()).sum(),
            calls: calls.len(),
            ..ReportRound::default()
        };
        let mut owners = HashSet::new();
        for (target, arns) in calls {
            let result = self
                .codebuild
                .batch_get_reports(&target, arns.clone())
                .await;
            let answers = match result {
                Ok(batch) => answers_of(batch),
                Err(error) => {
                    stats.failed_calls += 1;
                    match self.failed(&target, &arns, &error) {
                        Some(answers) => answers,
                        None => continue,
                    }
                }
            };
            owners.extend(self.store(&wanted, answers));
        }
        stats.changed = owners.len();
        self.trigger(owners);
        stats
    }

    /// Every report ARN the watched runs need read, with where to read it and for whom.
    fn wanted(&self) -> HashMap<String, Wanted> {
        let stores = lock(&self.runs).clone();
        let now = Timestamp::now();
        let mut wanted = HashMap::new();
        for run in stores.iter().flat_map(|store| store.state()) {
            let Some(status) = run.status.as_ref() else {
                continue;
            };
            for arn in reports_to_read(status, now) {
                let w = Wanted {
                    target: Target::for_run(&run, &self.default_region),
                    owner: ObjectRef::from_obj(run.as_ref()),
                };
                wanted.insert(arn, w);
            }
        }
        wanted
    }

    /// Forgets answers nobody needs any more; returns the calls for the reports not settled
    /// in the cache: per target (not paused after a denial), sorted, at most 100 ARNs each.
    fn plan_calls(&self, wanted: &HashMap<String, Wanted>) -> Vec<(Target, Vec<String>)> {
        let mut cache = self.cache.lock();
        cache.retain(|arn, _| wanted.contains_key(arn));
        let now = Instant::now();
        let mut paused = lock(&self.paused);
        paused.retain(|_, until| *until > now);
        let mut by_target: BTreeMap<Target, Vec<String>> = BTreeMap::new();
        for (arn, w) in wanted {
            let settled = cache.get(arn).is_some_and(ReportAnswer::is_settled);
            if !settled && !paused.contains_key(&w.target) {
                by_target
                    .entry(w.target.clone())
                    .or_default()
                    .push(arn.clone());
            }
        }
        let mut calls = Vec::new();
        for (target, mut arns) in by_target {
            arns.sort();
            for chunk in arns.chunks(BATCH_GET_REPORTS_MAX_ARNS) {
                calls.push((target.clone(), chunk.to_vec()));
            }
        }
        calls
    }

    /// A failed call: a denial is an answer (status says so, and the target is left alone
    /// for a while); anything else is asked again next round.
    fn failed(
        &self,
        target: &Target,
        arns: &[String],
        error: &ApiError,
    ) -> Option<Vec<(String, ReportAnswer)>> {
        warn!(%target, reports = arns.len(), %error, category = error.kind.category(),
            "BatchGetReports failed");
        if error.kind != ErrorKind::AccessDenied {
            return None;
        }
        lock(&self.paused).insert(target.clone(), Instant::now() + DENIED_PAUSE);
        let message = format!(
            "BatchGetReports in {target}: {error} (the operator's IAM role needs \
             codebuild:BatchGetReports on the report groups); asked again in {} minutes",
            DENIED_PAUSE.as_secs() / 60
        );
        Some(
            arns.iter()
                .map(|arn| (arn.clone(), ReportAnswer::Denied(message.clone())))
                .collect(),
        )
    }

    /// Stores answers; returns the owners of the reports whose answer changed.
    fn store(
        &self,
        wanted: &HashMap<String, Wanted>,
        answers: Vec<(String, ReportAnswer)>,
    ) -> Vec<ObjectRef<CodeBuildRun>> {
        let mut cache = self.cache.lock();
        let mut owners = Vec::new();
        for (arn, answer) in answers {
            let Some(w) = wanted.get(&arn) else {
                continue;
            };
            if cache.get(&arn) != Some(&answer) {
                cache.insert(arn, answer);
                owners.push(w.owner.clone());
            }
        }
        owners
    }

    fn trigger(&self, owners: HashSet<ObjectRef<CodeBuildRun>>) {
        let triggers = lock(&self.triggers);
        for owner in owners {
            for (namespace, tx) in triggers.iter() {
                if namespace.is_none() || namespace.as_deref() == owner.namespace.as_deref() {
                    // A closed receiver means its controller stopped: nothing to wake.
                    let _ = tx.unbounded_send(owner.clone());
                }
            }
        }
    }
}

/// The answers of one BatchGetReports call, by ARN.
fn answers_of(batch: ReportBatch) -> Vec<(String, ReportAnswer)> {
    let found = batch.reports.iter().filter_map(|r| {
        let summary = report_summary(r);
        (!summary.arn.is_empty()).then(|| (summary.arn.clone(), ReportAnswer::Report(summary)))
    });
    let missing = batch.not_found.into_iter().map(|arn| {
        let summary = ReportSummary {
            arn: arn.clone(),
            status: Some(NOT_FOUND.into()),
            ..ReportSummary::default()
        };
        (arn, ReportAnswer::Report(summary))
    });
    found.chain(missing).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single push, insert or retain.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

//! The batches of the watched CodeBuildBatchRuns, polled in the tracker's rounds.
//!
//! As for builds: the polling set is derived from the batch runs themselves (every one
//! whose status records a batch that is not final, with its attempt's Region and role),
//! each round asks BatchGetBuildBatches for up to 100 of them per call and target, keeps
//! the latest answer per batch in the [`BatchCache`] reconcile reads, and triggers the runs
//! whose batch changed. Finished batches cost nothing, and a batch's member builds are read
//! from the batch (its build groups), never polled one by one. An id not of the service's
//! form is never sent; a call CodeBuild refuses as invalid is split until the offending id
//! is set aside.
//!
//! [`rounds`] runs the build round and this one on the same ticks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use super::{Observation, RoundStats, Tracker, lock, well_formed_build_id};
use crate::api::{BuildBatchInfo, CodeBuildBatchRun, Started};
use crate::codebuild::{
    BATCH_GET_BUILD_BATCHES_MAX_IDS, BatchApi, BatchesFound, BuildApi, ErrorKind, Target,
};
use crate::convert::batch_info;

use super::cache::BatchCache;

/// How many BatchGetBuildBatches calls of one round may be in flight at once.
const ROUND_CONCURRENCY: usize = 4;

/// A batch the tracker follows for a batch run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedBatch {
    /// The batch's id.
    pub id: String,
    /// Where and as whom it is polled.
    pub target: Target,
    /// The batch run to reconcile when it changes.
    pub owner: ObjectRef<CodeBuildBatchRun>,
    /// The batch as the run's status records it (the first observation).
    pub recorded: BuildBatchInfo,
}

/// The batch `run` needs followed, if any: a recorded batch that is not final, polled where
/// and as whom its start attempt was made.
pub fn tracked_batch(run: &CodeBuildBatchRun, default_region: &str) -> Option<TrackedBatch> {
    let status = run.status.as_ref()?;
    let id = status.batch.id.clone()?;
    if status.batch.done() {
        return None;
    }
    let region = run.spec.options().region;
    let target = Target::of_attempt(
        status.start_attempt.as_ref(),
        &run.namespace().unwrap_or_default(),
        region.as_deref().unwrap_or(default_region),
    );
    Some(TrackedBatch {
        id,
        target,
        owner: ObjectRef::from_obj(run),
        recorded: status.batch.clone(),
    })
}

/// A controller's trigger channel and the namespace it watches (None: all).
type Trigger = (
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<CodeBuildBatchRun>>,
);

/// Shared handle to the batch part of the tracker.
pub struct BatchTracker<B> {
    codebuild: Arc<B>,
    cache: BatchCache,
    runs: Arc<Mutex<Vec<Store<CodeBuildBatchRun>>>>,
    triggers: Arc<Mutex<Vec<Trigger>>>,
    default_region: String,
}

impl<B> Clone for BatchTracker<B> {
    fn clone(&self) -> Self {
        BatchTracker {
            codebuild: self.codebuild.clone(),
            cache: self.cache.clone(),
            runs: self.runs.clone(),
            triggers: self.triggers.clone(),
            default_region: self.default_region.clone(),
        }
    }
}

// === impl BatchTracker ===

impl<B: BatchApi> BatchTracker<B> {
    /// A batch tracker calling `codebuild`; batch runs that name no Region (and have no
    /// start attempt) are polled in `default_region`.
    pub fn new(codebuild: Arc<B>, default_region: impl Into<String>) -> Self {
        BatchTracker {
            codebuild,
            cache: BatchCache::default(),
            runs: Arc::default(),
            triggers: Arc::default(),
            default_region: default_region.into(),
        }
    }

    /// Polls the batches of the runs in `runs` (a controller's watch cache) from the next
    /// round on.
    pub fn follow(&self, runs: Store<CodeBuildBatchRun>) {
        lock(&self.runs).push(runs);
    }

    /// A stream of batch runs to reconcile because their batch changed, for the runs of
    /// `namespace` (None: every namespace).
    pub fn triggers(
        &self,
        namespace: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<CodeBuildBatchRun>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.triggers).push((namespace, tx));
        rx
    }

    /// The latest observations, shared with reconcile.
    pub fn cache(&self) -> BatchCache {
        self.cache.clone()
    }

    /// One polling round: every live batch of the watched runs, batched per target. The
    /// stats count batches where they say builds.
    pub async fn round(&self) -> RoundStats {
        let tracked = self.tracked();
        let calls = self.plan_calls(&tracked);
        let mut stats = RoundStats {
            builds: calls.iter().map(|(_, ids)| ids.len()).sum(),
            calls: calls.len(),
            ..RoundStats::default()
        };
        for id in tracked.keys().filter(|id| !well_formed_build_id(id)) {
            let why = format!("{id:?} is not a CodeBuild batch id (<project>:<uuid>)");
            stats.changed += self.mark_invalid(&tracked, id, &why);
        }
        let mut refused = self.call(calls, &tracked, &mut stats).await;
        // Split each refused call in halves until only the offending ids are left.
        while !refused.is_empty() {
            let halves: Vec<(Target, Vec<String>)> = refused
                .drain(..)
                .flat_map(|(target, ids)| {
                    let (a, b) = ids.split_at(ids.len() / 2);
                    [(target.clone(), a.to_vec()), (target, b.to_vec())]
                })
                .collect();
            stats.calls += halves.len();
            refused = self.call(halves, &tracked, &mut stats).await;
        }
        stats
    }

    /// Every batch the watched runs need followed, by id.
    fn tracked(&self) -> HashMap<String, TrackedBatch> {
        let stores = lock(&self.runs).clone();
        stores
            .iter()
            .flat_map(|store| store.state())
            .filter_map(|run| tracked_batch(&run, &self.default_region))
            .map(|t| (t.id.clone(), t))
            .collect()
    }

    /// Brings the cache in line with `tracked` and returns the BatchGetBuildBatches calls
    /// for the live batches: per target, sorted, at most 100 ids each.
    fn plan_calls(&self, tracked: &HashMap<String, TrackedBatch>) -> Vec<(Target, Vec<String>)> {
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
        super::calls_per_target(by_target, BATCH_GET_BUILD_BATCHES_MAX_IDS)
    }

    /// Makes the calls (a few at once) and applies their answers. Returns the calls
    /// CodeBuild refused as invalid input with more than one id.
    async fn call(
        &self,
        calls: Vec<(Target, Vec<String>)>,
        tracked: &HashMap<String, TrackedBatch>,
        stats: &mut RoundStats,
    ) -> Vec<(Target, Vec<String>)> {
        let codebuild = self.codebuild.clone();
        let mut results = stream::iter(calls)
            .map(|(target, ids)| {
                let codebuild = codebuild.clone();
                async move {
                    let result = codebuild
                        .batch_get_build_batches(&target, ids.clone())
                        .await;
                    (target, ids, result)
                }
            })
            .buffer_unordered(ROUND_CONCURRENCY);
        let mut refused = Vec::new();
        while let Some((target, ids, result)) = results.next().await {
            match result {
                Ok(found) => stats.changed += self.apply(tracked, found),
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
                    warn!(%target, batches = ids.len(), %error, category = error.kind.category(),
                        "BatchGetBuildBatches failed; the batches are polled again next round");
                }
            }
        }
        refused
    }

    /// Stores one answer; triggers (and counts) the runs whose batch changed.
    fn apply(&self, tracked: &HashMap<String, TrackedBatch>, found: BatchesFound) -> usize {
        let batches = found.batches.iter().filter_map(|b| {
            let info = batch_info(b);
            Some((info.id.clone()?, Observation::Build(Arc::new(info))))
        });
        let missing = found
            .not_found
            .into_iter()
            .map(|id| (id, Observation::NotFound));
        let mut owners = Vec::new();
        {
            let mut cache = self.cache.lock();
            for (id, observation) in batches.chain(missing) {
                let Some(t) = tracked.get(&id) else {
                    continue;
                };
                if cache.get(&id) != Some(&observation) {
                    cache.insert(id, observation);
                    owners.push(t.owner.clone());
                }
            }
        }
        let changed = owners.len();
        self.trigger(&owners);
        changed
    }

    /// Records that `id` cannot be looked up; triggers its run the first time.
    fn mark_invalid(&self, tracked: &HashMap<String, TrackedBatch>, id: &str, why: &str) -> usize {
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
        warn!(batch = %id, %why, "batch id set aside: CodeBuild cannot look it up");
        self.trigger(std::slice::from_ref(&t.owner));
        1
    }

    /// Sends each of `owners` to the controllers that watch its namespace.
    fn trigger(&self, owners: &[ObjectRef<CodeBuildBatchRun>]) {
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

/// Polls builds and batches every `interval`, on the same ticks, until the future is
/// dropped (the tracker's loop once batch runs are watched too); in between, the builds of
/// targets whose runs wait for the account's build limit (see [`Tracker::between_rounds`]).
pub async fn rounds<B: BuildApi + BatchApi>(
    builds: Tracker<B>,
    batches: BatchTracker<B>,
    interval: Duration,
) {
    builds.metrics.set_poll_interval(interval);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        builds.between_rounds(&mut ticker).await;
        let (build_stats, batch_stats) = futures::join!(builds.round(), batches.round());
        if build_stats.builds > 0 || batch_stats.builds > 0 {
            debug!(builds = ?build_stats, batches = ?batch_stats, "tracker round");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn run(status: Value) -> CodeBuildBatchRun {
        serde_json::from_value(json!({
            "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildBatchRun",
            "metadata": {"name": "b", "namespace": "team-a"},
            "spec": {"projectName": "p", "operator": {"region": "eu-west-1"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_running_batch_is_polled_where_its_attempt_was_made() {
        let t = tracked_batch(
            &run(json!({"id": "p:1", "buildBatchStatus": "IN_PROGRESS",
                "startAttempt": {"idempotencyToken": "t", "time": "2026-01-01T00:00:00Z",
                    "region": "eu-west-1", "roleArn": "arn:aws:iam::1:role/a"}})),
            "us-east-1",
        )
        .unwrap();
        assert_eq!(t.id, "p:1");
        assert_eq!(t.target.region, "eu-west-1");
        assert_eq!(t.target.role.unwrap().namespace, "team-a");
        assert_eq!(t.owner, ObjectRef::new("b").within("team-a"));
    }

    #[test]
    fn final_batches_and_runs_without_one_are_not_polled() {
        assert_eq!(tracked_batch(&run(Value::Null), "us-east-1"), None);
        for status in ["SUCCEEDED", "FAILED", "STOPPED"] {
            let s = json!({"id": "p:1", "buildBatchStatus": status});
            assert_eq!(tracked_batch(&run(s), "us-east-1"), None, "{status}");
        }
        let s = json!({"id": "p:1", "buildBatchStatus": "IN_PROGRESS"});
        assert_eq!(
            tracked_batch(&run(s), "us-east-1").unwrap().target,
            Target::region("eu-west-1")
        );
    }
}

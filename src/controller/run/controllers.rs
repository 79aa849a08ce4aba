//! One kube-runtime Controller per watched namespace and kind (CodeBuildRun,
//! CodeBuildBatchRun): its watch (and cache, which the tracker derives its polling set
//! from), the triggers that wake it (changed builds or batches, paced; policy changes;
//! taking the lead), readiness, and the leadership gate. Both kinds are wired the same way
//! ([`Watchable`] says what differs).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt, stream};
use kube::Client;
use kube::Resource;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

use super::super::{Context, Error, OperatorSettings, error_policy, reconcile, reconcile_batch};
use crate::api::{CodeBuildBatchRun, CodeBuildRun, START_ATTEMPT_ANNOTATION};
use crate::codebuild::CodeBuild;
use crate::leader::Leadership;
use crate::output::ReportReader;
use crate::policy::Policies;
use crate::server::Readiness;
use crate::tracker::{BatchTracker, Pace, Tracker, paced};

/// How often readiness re-checks whether a watch cache has synced.
const CACHE_POLL: Duration = Duration::from_millis(250);
/// How long policy and namespace changes are gathered before waiting runs are woken.
const POLICY_SETTLE: Duration = Duration::from_millis(200);
/// How long a trigger counts against the pacing limit when its reconcile never reports.
const TRIGGER_LEASE: Duration = Duration::from_secs(30);

/// A kind the operator watches and reconciles.
pub(super) trait Watchable:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// What the readiness gate calls its watch cache.
    const CACHE: &'static str;
    /// Drops the parts no reconcile reads before the watch cache stores the object.
    fn strip(&mut self);
    /// Whether the object has started nothing yet (a policy change may change its fate).
    fn waiting(&self) -> bool;
    /// Reconciles it.
    fn reconcile<B: CodeBuild>(
        obj: Arc<Self>,
        ctx: Arc<Context<B>>,
    ) -> impl Future<Output = Result<Action, Error>> + Send + 'static;
}

impl Watchable for CodeBuildRun {
    const CACHE: &'static str = "the watch cache of";

    fn strip(&mut self) {
        strip_unneeded_fields(self);
    }

    fn waiting(&self) -> bool {
        self.status
            .as_ref()
            .is_none_or(|s| s.build.build_id.is_none())
    }

    fn reconcile<B: CodeBuild>(
        obj: Arc<Self>,
        ctx: Arc<Context<B>>,
    ) -> impl Future<Output = Result<Action, Error>> + Send + 'static {
        reconcile(obj, ctx)
    }
}

impl Watchable for CodeBuildBatchRun {
    const CACHE: &'static str = "the batch run watch cache of";

    /// As for a CodeBuildRun (batch runs never carried the legacy annotation).
    fn strip(&mut self) {
        self.metadata.managed_fields = None;
        if let Some(annotations) = self.metadata.annotations.as_mut() {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }

    fn waiting(&self) -> bool {
        self.status.as_ref().is_none_or(|s| s.batch.id.is_none())
    }

    fn reconcile<B: CodeBuild>(
        obj: Arc<Self>,
        ctx: Arc<Context<B>>,
    ) -> impl Future<Output = Result<Action, Error>> + Send + 'static {
        reconcile_batch(obj, ctx)
    }
}

/// The controllers for the runs and batch runs of one namespace (None: all), and what
/// they share.
pub(super) struct Watched<B> {
    pub namespace: Option<String>,
    pub client: Client,
    pub ctx: Arc<Context<B>>,
    pub tracker: Tracker<B>,
    pub batches: BatchTracker<B>,
    pub reports: Option<ReportReader<B>>,
    pub policies: Option<Policies>,
    pub leadership: Leadership,
    pub readiness: Readiness,
    pub stop: watch::Receiver<bool>,
    pub settings: OperatorSettings,
}

impl<B: CodeBuild> Watched<B> {
    /// Runs both controllers until the stop signal (in-flight reconciles finish first).
    pub async fn run(self) {
        let runs = self.run_kind::<CodeBuildRun>(
            |store| {
                self.tracker.follow(store.clone());
                let reports = self.reports.as_ref()?;
                reports.follow(store);
                Some(reports.triggers(self.namespace.clone()))
            },
            self.tracker.triggers(self.namespace.clone()),
        );
        let batches = self.run_kind::<CodeBuildBatchRun>(
            |store| {
                self.batches.follow(store);
                None
            },
            self.batches.triggers(self.namespace.clone()),
        );
        futures::join!(runs, batches);
    }

    /// Runs the controller of kind `K`: `follow` hands its watch cache to the tracker (and
    /// the report reader, whose wake-ups it returns), and `triggers` are the tracker's
    /// wake-ups for it.
    async fn run_kind<K: Watchable>(
        &self,
        follow: impl FnOnce(Store<K>) -> Option<mpsc::UnboundedReceiver<ObjectRef<K>>>,
        triggers: mpsc::UnboundedReceiver<ObjectRef<K>>,
    ) {
        let objects: Api<K> = match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        // The cache keeps what reconcile reads; managedFields (about a third of each
        // object) and kubectl's last-applied copy are dropped as they arrive.
        let (reader, writer) = reflector::store();
        let watch = watcher(objects, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(K::strip)
            .reflect(writer)
            .applied_objects();
        let reported = follow(reader.clone());
        let (refreshes, pace) = paced(triggers, self.settings.refresh_limit(), TRIGGER_LEASE);
        let mut stop = self.stop.clone();
        let mut controller = Controller::for_stream(watch, reader.clone())
            .with_config(
                controller::Config::default().concurrency(self.settings.max_concurrent_reconciles),
            )
            .reconcile_on(refreshes)
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            });
        if let Some(reported) = reported {
            controller = controller.reconcile_on(reported);
        }
        if let Some(policies) = &self.policies {
            controller = controller.reconcile_on(waiting_runs(policies.changes(), reader));
        }
        if self.settings.leader_election.is_some() {
            // A standby skips every reconcile; on taking over, reconcile everything cached.
            let leadership = self.leadership.clone();
            let acquired = stream::once(async move { leadership.acquired().await });
            controller = controller.reconcile_all_on(acquired.chain(stream::pending()));
        }
        self.report_synced(K::CACHE, controller.store());
        let leadership = self.leadership.clone();
        controller
            .run(
                move |run, ctx| gated_reconcile(run, ctx, leadership.clone(), pace.clone()),
                error_policy,
                self.ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    match error {
                        controller::Error::ReconcilerFailed(..) => {} // logged by reconcile
                        other => warn!(error = %other, "controller"),
                    }
                }
            })
            .await;
    }

    /// Opens this namespace's readiness gate of `cache` once the watch cache has synced.
    fn report_synced<K: Watchable>(&self, cache: &str, store: Store<K>) {
        let ns = self.namespace.clone();
        let gate = self.readiness.gate(format!(
            "{cache} {}",
            ns.as_deref().unwrap_or("all namespaces")
        ));
        tokio::spawn(async move {
            // Re-polled on a timer: the Store's readiness is a oneshot with a single waker
            // slot, and the Controller waits on it too, so one of two waiters is never
            // woken (kube-runtime 5.0 `DelayedInit`). A fresh poll sees it ready.
            loop {
                match tokio::time::timeout(CACHE_POLL, store.wait_until_ready()).await {
                    Ok(Ok(())) => {
                        info!(namespace = ?ns, kind = %K::kind(&()), "watch cache synced");
                        gate.open();
                        return;
                    }
                    Ok(Err(_)) => return, // the controller stopped before its first list
                    Err(_) => {}
                }
            }
        });
    }
}

/// Reconciles when this replica leads; a standby does nothing (the leader's reconcile-all
/// on taking over catches up with what it skipped). Reports every reconcile to the pacer.
async fn gated_reconcile<B: CodeBuild, K: Watchable>(
    run: Arc<K>,
    ctx: Arc<Context<B>>,
    leadership: Leadership,
    pace: Pace<ObjectRef<K>>,
) -> Result<Action, Error> {
    let oref = ObjectRef::from_obj(run.as_ref());
    let result = if leadership.is_leader() {
        K::reconcile(run, ctx).await
    } else {
        Ok(Action::await_change())
    };
    pace.done(&oref);
    result
}

/// The objects to look at again after a policy or a namespace changed: those that started
/// nothing (refused, or not started yet). Changes are gathered for [`POLICY_SETTLE`] first,
/// so a burst of policy edits wakes each object once.
fn waiting_runs<K: Watchable>(
    changes: watch::Receiver<u64>,
    store: Store<K>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    stream::unfold((changes, store), |(mut changes, store)| async move {
        changes.changed().await.ok()?;
        tokio::time::sleep(POLICY_SETTLE).await;
        changes.borrow_and_update();
        let refs: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .filter(|run| run.waiting())
            .map(|run| ObjectRef::from_obj(run.as_ref()))
            .collect();
        Some((stream::iter(refs), (changes, store)))
    })
    .flatten()
}

/// Drops the parts of a CodeBuildRun that no reconcile reads, before the watch cache
/// stores it: `metadata.managedFields`, the `kubectl.kubernetes.io/last-applied-configuration`
/// annotation (a second copy of the object for users of client-side `kubectl apply`), and
/// the legacy start-attempt annotation once status records the attempt and the build (it is
/// only looked at while status records no attempt: `claim::legacy_attempt`).
fn strip_unneeded_fields(run: &mut CodeBuildRun) {
    run.metadata.managed_fields = None;
    let mirrored = run
        .status
        .as_ref()
        .is_some_and(|s| s.build.build_id.is_some() && s.start_attempt.is_some());
    if let Some(annotations) = run.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if mirrored {
            annotations.remove(START_ATTEMPT_ANNOTATION);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{START_ATTEMPT_ANNOTATION, strip_unneeded_fields};
    use crate::api::CodeBuildRun;

    #[test]
    fn the_cache_keeps_the_attempt_annotation_until_status_mirrors_it() {
        let run = |status: serde_json::Value| -> CodeBuildRun {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "codebuild.operator.dev/v1alpha1", "kind": "CodeBuildRun",
                "metadata": {"name": "r", "annotations": {
                    START_ATTEMPT_ANNOTATION: "{}",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"},
                    "managedFields": [{"manager": "m"}]},
                "spec": {"projectName": "p"}, "status": status,
            }))
            .unwrap()
        };
        let attempt = serde_json::json!({"idempotencyToken": "t", "time": "2026-12-01T00:00:00Z", "region": "r"});
        for (status, kept) in [
            (serde_json::Value::Null, true),
            (serde_json::json!({"startAttempt": attempt}), true),
            (serde_json::json!({"buildId": "p:1"}), true),
            (
                serde_json::json!({"buildId": "p:1", "startAttempt": attempt}),
                false,
            ),
        ] {
            let mut r = run(status.clone());
            strip_unneeded_fields(&mut r);
            let annotations = r.metadata.annotations.unwrap();
            assert_eq!(
                annotations.contains_key(START_ATTEMPT_ANNOTATION),
                kept,
                "{status}"
            );
            assert_eq!(annotations.keys().collect::<Vec<_>>(), {
                let mut k = vec!["keep"];
                if kept {
                    k.insert(0, START_ATTEMPT_ANNOTATION);
                }
                k
            });
            assert!(r.metadata.managed_fields.is_none());
        }
    }
}

//! Wiring: the kube-runtime Controller(s), the tracker, graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, reflector, watcher};
use kube::{Client, CustomResourceExt};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::{Context, Error, FIELD_MANAGER, Settings, error_policy, reconcile};
use crate::api::{CodeBuildRun, CodeBuildRunPolicy, START_ATTEMPT_ANNOTATION};
use crate::cli::RunArgs;
use crate::codebuild::{AwsBuildApi, AwsSettings, BuildApi};
use crate::leader::{self, Election, Leadership, LeaseSettings};
use crate::metrics::Metrics;
use crate::policy::Policies;
use crate::server::{self, Readiness};
use crate::tracker::Tracker;

/// First delay between attempts to reach the CodeBuildRun API at startup.
const CRD_RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest delay between those attempts.
const CRD_RETRY_MAX: Duration = Duration::from_secs(15);
/// How often readiness re-checks whether a watch cache has synced.
const CACHE_POLL: Duration = Duration::from_millis(250);
/// How long policy and namespace changes are gathered before waiting runs are woken.
const POLICY_SETTLE: Duration = Duration::from_millis(200);

/// Runs the operator until SIGTERM or SIGINT; in-flight reconciles finish first.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("loading the Kubernetes configuration (in-cluster, or KUBECONFIG)")?;
    let client = Client::try_from(config.clone()).context("connecting to Kubernetes")?;
    let lease_client = leader::lease_client(config)?;
    let metrics = Arc::new(Metrics::new());
    let aws = AwsBuildApi::load(
        args.region.clone(),
        AwsSettings {
            endpoint_url: args.endpoint_url.clone(),
            sts_endpoint_url: args.sts_endpoint_url.clone(),
        },
    )
    .await
    .with_metrics(metrics.clone());
    let default_region = args.region.clone().or_else(|| aws.default_region()).context(
        "no AWS region: set --region (CODEBUILD_OPERATOR_REGION), AWS_REGION, or a region in the AWS profile",
    )?;
    run_with(
        Clients {
            main: client,
            lease: lease_client,
        },
        Arc::new(aws),
        metrics,
        default_region,
        args,
        shutdown_signal(),
    )
    .await
}

/// The Kubernetes clients of the operator.
#[derive(Clone)]
pub struct Clients {
    /// Watches, status writes, Events, deletes.
    pub main: Client,
    /// Leader election Lease calls only, with short request timeouts.
    pub lease: Client,
}

/// Runs the operator with a given CodeBuild implementation until `shutdown` completes.
///
/// The metrics and health server starts first, so `/healthz` answers and `/readyz` says
/// what it waits for while the apiserver is still out of reach.
pub async fn run_with<B: BuildApi>(
    clients: Clients,
    api: Arc<B>,
    metrics: Arc<Metrics>,
    default_region: String,
    args: RunArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One stop signal for every phase, so the startup waits end on SIGTERM too.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let readiness = Readiness::default();
    let (server_stop_tx, server_stop_rx) = oneshot::channel::<()>();
    let server = server::bind(
        args.metrics_address,
        metrics.clone(),
        readiness.clone(),
        async move {
            let _ = server_stop_rx.await;
        },
    )
    .await?;
    let server = tokio::spawn(server);
    let result = operate(
        clients,
        api,
        metrics,
        default_region,
        args,
        readiness,
        stop_rx,
    )
    .await;
    let _ = server_stop_tx.send(());
    let _ = server.await;
    info!("stopped");
    result
}

async fn operate<B: BuildApi>(
    clients: Clients,
    api: Arc<B>,
    metrics: Arc<Metrics>,
    default_region: String,
    args: RunArgs,
    readiness: Readiness,
    stop_rx: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = clients.main;
    let namespaces = watched_namespaces(&args.namespaces);
    let api_gate = readiness.gate("the CodeBuildRun API");
    let mut stop = stop_rx.clone();
    tokio::select! {
        found = wait_for_crd(&client, &namespaces) => found?,
        _ = stop.wait_for(|stopping| *stopping) => {
            info!("stopping before the CodeBuildRun API was reachable");
            return Ok(());
        }
    }
    api_gate.open();

    let policies = if args.enforce_policies {
        let policies = Policies::start(&client);
        let gate = readiness.gate("the CodeBuildRunPolicy and namespace watches");
        let mut stop = stop_rx.clone();
        tokio::select! {
            found = wait_for_policy_api(&client) => found?,
            _ = stop.wait_for(|stopping| *stopping) => return Ok(()),
        }
        tokio::select! {
            ready = policies.wait_until_ready() => ready.context("the policy watches stopped")?,
            _ = stop.wait_for(|stopping| *stopping) => return Ok(()),
        }
        gate.open();
        info!("enforcing CodeBuildRunPolicies");
        Some(policies)
    } else {
        warn!(
            "CodeBuildRunPolicies are not enforced (--enforce-policies=false): every namespace \
             that can create a CodeBuildRun may start every CodeBuild project the operator's AWS \
             identity reaches, with any override"
        );
        None
    };

    let tracker = Tracker::new(api.clone())
        .with_metrics(metrics.clone())
        .with_trigger_limit(refresh_limit(args.max_concurrent_reconciles));
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let mut ctx = Context::new(
        client.clone(),
        api,
        tracker.clone(),
        Recorder::new(client.clone(), reporter),
        Settings {
            default_region: default_region.clone(),
            token_window: args.token_window,
        },
    )
    .with_metrics(metrics.clone());
    if let Some(policies) = &policies {
        ctx = ctx.with_policies(policies.clone());
    }
    let ctx = Arc::new(ctx);

    let (leadership, election) = if args.leader_election {
        let settings = LeaseSettings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace(),
            identity: leader::default_identity(),
        };
        let gate = readiness.gate("leader election");
        let (leadership, election) =
            Election::start(clients.lease, settings, metrics.clone(), gate);
        (leadership, Some(election))
    } else {
        metrics.set_leader(true);
        (Leadership::always(), None)
    };

    info!(
        namespaces = ?namespaces, region = %default_region, poll_interval = ?args.poll_interval,
        concurrency = args.max_concurrent_reconciles, leader_election = args.leader_election,
        "starting controller"
    );
    let controllers = namespaces.into_iter().map(|ns| {
        let runs: Api<CodeBuildRun> = match &ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut stop = stop_rx.clone();
        // The cache keeps what reconcile reads; managedFields (about a third of each object)
        // and kubectl's last-applied copy of the object are dropped as they arrive.
        let (reader, writer) = reflector::store();
        let runs = watcher(runs, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(strip_unneeded_fields)
            .reflect(writer)
            .applied_objects();
        let waiting = policies
            .as_ref()
            .map(|p| waiting_runs(p.changes(), reader.clone()));
        let mut controller = Controller::for_stream(runs, reader)
            .with_config(controller::Config::default().concurrency(args.max_concurrent_reconciles))
            .reconcile_on(tracker.triggers(ns.clone()))
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            });
        if let Some(waiting) = waiting {
            controller = controller.reconcile_on(waiting);
        }
        if args.leader_election {
            // A standby skips every reconcile; on taking over, reconcile everything cached.
            let leadership = leadership.clone();
            let acquired = stream::once(async move { leadership.acquired().await });
            controller = controller.reconcile_all_on(acquired.chain(stream::pending()));
        }
        let store = controller.store();
        let gate = readiness.gate(format!(
            "the watch cache of {}",
            ns.as_deref().unwrap_or("all namespaces")
        ));
        tokio::spawn(async move {
            // Re-polled on a timer: the Store's readiness is a oneshot with a single waker
            // slot, and the Controller waits on it too, so one of two waiters is never
            // woken (kube-runtime 5.0 `DelayedInit`). A fresh poll sees it ready.
            loop {
                match tokio::time::timeout(CACHE_POLL, store.wait_until_ready()).await {
                    Ok(Ok(())) => {
                        info!(namespace = ?ns, "watch cache synced");
                        gate.open();
                        return;
                    }
                    Ok(Err(_)) => return, // the controller stopped before its first list
                    Err(_) => {}
                }
            }
        });
        let leadership = leadership.clone();
        controller
            .run(
                move |run, ctx| gated_reconcile(run, ctx, leadership.clone()),
                error_policy,
                ctx.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    match error {
                        controller::Error::ReconcilerFailed(..) => {} // logged by error_policy
                        other => warn!(error = %other, "controller"),
                    }
                }
            })
    });
    let controllers = futures::future::join_all(controllers);
    tokio::pin!(controllers);
    // Only the leader polls CodeBuild.
    let tracker_loop = {
        let leadership = leadership.clone();
        let interval = args.poll_interval;
        async move {
            leadership.acquired().await;
            tracker.run(interval).await
        }
    };
    tokio::pin!(tracker_loop);
    // Only the leader writes the admission policy.
    let admission_loop = {
        let leadership = leadership.clone();
        let keeper = policies
            .clone()
            .filter(|_| !args.admission_policy.is_empty())
            .map(|p| {
                p.keep_admission_policy(
                    client.clone(),
                    args.admission_policy.clone(),
                    default_region.clone(),
                )
            });
        async move {
            match keeper {
                Some(keeper) => {
                    leadership.acquired().await;
                    keeper.await;
                    futures::future::pending::<()>().await;
                }
                None => futures::future::pending::<()>().await,
            }
        }
    };
    tokio::pin!(admission_loop);
    let mut stop = stop_rx.clone();
    tokio::select! {
        _ = &mut controllers => {}
        _ = &mut tracker_loop => {}
        _ = &mut admission_loop => {}
        _ = stop.wait_for(|stopping| *stopping) => {
            info!("shutting down: finishing in-flight reconciles");
            controllers.await;
        }
    }
    // Released only now, so a standby cannot start while our last reconciles still run.
    if let Some(election) = election {
        election.stop().await;
    }
    Ok(())
}

/// Reconciles when this replica leads, and counts the outcome; a standby does nothing (the
/// leader's reconcile-all on taking over catches up with what it skipped).
async fn gated_reconcile<B: BuildApi>(
    run: Arc<CodeBuildRun>,
    ctx: Arc<Context<B>>,
    leadership: Leadership,
) -> Result<Action, Error> {
    if !leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let oref = ObjectRef::from_obj(run.as_ref());
    let result = reconcile(run, ctx.clone()).await;
    ctx.tracker.reconciled(&oref);
    ctx.metrics.reconciled(
        started.elapsed(),
        result.as_ref().map(|_| ()).map_err(Error::category),
    );
    result
}

/// Waits until the CodeBuildRun API answers. Fails with a clear message when the CRD is
/// not installed or this identity may not list it (neither fixes itself); retries, with a
/// capped backoff, while the apiserver cannot be reached.
///
/// Lists where the controllers will watch (each namespace, or all), so a namespaced
/// installation needs no cluster-wide permission.
async fn wait_for_crd(client: &Client, namespaces: &[Option<String>]) -> anyhow::Result<()> {
    for ns in namespaces {
        let runs: Api<CodeBuildRun> = match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let listed = until_answered(|| async {
            runs.list(&ListParams::default().limit(1)).await.map(|_| ())
        })
        .await;
        listed.map_err(|refused| {
            anyhow::Error::new(refused).context(format!(
                "cannot list {} in {}: is the CRD installed (kubectl apply --server-side -f crds/) and may this identity list it?",
                CodeBuildRun::crd_name(),
                ns.as_deref().unwrap_or("all namespaces"),
            ))
        })?;
    }
    Ok(())
}

/// Calls `probe` until the apiserver answers it: Ok, or the apiserver's refusal, returned as
/// the error (a missing CRD or permission does not fix itself). While it cannot be reached (5xx, 429, network),
/// retries with a capped backoff, saying so.
async fn until_answered<F, Fut>(mut probe: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let mut delay = CRD_RETRY_MIN;
    loop {
        match probe().await {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code < 500 && status.code != 429 => {
                return Err(kube::Error::Api(status));
            }
            Err(error) => {
                warn!(%error, retry_in = ?delay, "cannot reach the Kubernetes API; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(CRD_RETRY_MAX);
            }
        }
    }
}

/// How many status refreshes (reconciles triggered by a changed build) may wait for or hold
/// a reconcile slot at once: half the slots, so starts and deletes always have the other
/// half (see tracker::pacer; measured against three quarters and no limit in the README's
/// Performance section). Unlimited reconciles (0) leave refreshes unpaced too.
fn refresh_limit(max_concurrent_reconciles: u16) -> usize {
    match usize::from(max_concurrent_reconciles) {
        0 => 0,
        slots => (slots / 2).max(1),
    }
}

/// The runs to look at again after a policy or a namespace changed: those without a build
/// (refused, or not started yet). Changes are gathered for [`POLICY_SETTLE`] first, so a
/// burst of policy edits wakes each run once.
fn waiting_runs(
    changes: watch::Receiver<u64>,
    store: Store<CodeBuildRun>,
) -> impl Stream<Item = ObjectRef<CodeBuildRun>> + Send + 'static {
    stream::unfold((changes, store), |(mut changes, store)| async move {
        changes.changed().await.ok()?;
        tokio::time::sleep(POLICY_SETTLE).await;
        changes.borrow_and_update();
        let refs: Vec<ObjectRef<CodeBuildRun>> = store
            .state()
            .iter()
            .filter(|run| {
                run.status
                    .as_ref()
                    .is_none_or(|s| s.build.build_id.is_none())
            })
            .map(|run| ObjectRef::from_obj(run.as_ref()))
            .collect();
        Some((stream::iter(refs), (changes, store)))
    })
    .flatten()
}

/// Checks that the CodeBuildRunPolicy API answers, with a clear message when its CRD is
/// missing or this identity may not list it or namespaces (policies are cluster-scoped, so
/// enforcing them needs a ClusterRole even when only some namespaces are watched).
async fn wait_for_policy_api(client: &Client) -> anyhow::Result<()> {
    let refused = |what: &str| {
        let what = what.to_owned();
        move |e: kube::Error| {
            anyhow::Error::new(e).context(format!(
                "--enforce-policies: cannot list {what}: is the CodeBuildRunPolicy CRD installed \
                 (kubectl apply --server-side -f crds/) and may this identity list policies and \
                 namespaces cluster-wide?"
            ))
        }
    };
    let limit = ListParams::default().limit(1);
    let policies: Api<CodeBuildRunPolicy> = Api::all(client.clone());
    until_answered(|| async { policies.list(&limit).await.map(|_| ()) })
        .await
        .map_err(refused(CodeBuildRunPolicy::crd_name()))?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    until_answered(|| async { namespaces.list_metadata(&limit).await.map(|_| ()) })
        .await
        .map_err(refused("namespaces"))?;
    Ok(())
}

/// Drops the parts of a CodeBuildRun that no reconcile reads, before the watch cache
/// stores it: `metadata.managedFields`, the `kubectl.kubernetes.io/last-applied-configuration`
/// annotation (a second copy of the object for users of client-side `kubectl apply`), and
/// the start-attempt annotation once status has the build id (the build id write mirrors
/// the attempt into `status.startAttempt`, and the annotation never changes after it).
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

/// The namespaces to watch: each one named (once, however often it is named: two
/// controllers on one namespace would reconcile the same object at the same time), or None
/// for all.
fn watched_namespaces(flag: &[String]) -> Vec<Option<String>> {
    let mut named: Vec<Option<String>> = Vec::new();
    for ns in flag.iter().filter(|n| !n.is_empty()) {
        if !named.iter().flatten().any(|seen| seen == ns) {
            named.push(Some(ns.clone()));
        }
    }
    if named.is_empty() { vec![None] } else { named }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::{START_ATTEMPT_ANNOTATION, strip_unneeded_fields, watched_namespaces};
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

    #[test]
    fn refreshes_leave_half_the_slots() {
        use super::refresh_limit;
        assert_eq!(refresh_limit(16), 8);
        assert_eq!(refresh_limit(1), 1);
        assert_eq!(refresh_limit(2), 1);
        assert_eq!(
            refresh_limit(0),
            0,
            "unlimited reconciles, unpaced refreshes"
        );
    }

    #[test]
    fn each_namespace_is_watched_once() {
        let flag = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(watched_namespaces(&flag(&[])), vec![None]);
        assert_eq!(watched_namespaces(&flag(&[""])), vec![None]);
        assert_eq!(
            watched_namespaces(&flag(&["a", "b", "a", "", "c", "b"])),
            vec![Some("a".into()), Some("b".into()), Some("c".into())]
        );
    }
}

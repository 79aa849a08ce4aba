//! Wiring: the metrics and health server, the startup checks, leader election, one
//! kube-runtime Controller per watched namespace, the tracker and the admission policy
//! loops, and graceful shutdown.

mod controllers;
mod startup;

use std::sync::Arc;

use anyhow::Context as _;
use futures::future::{self, Either};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::{oneshot, watch};
use tracing::info;

use super::{Context, OperatorSettings};
use crate::api::FIELD_MANAGER;
use crate::codebuild::{AwsBuildApi, CodeBuild};
use crate::leader::{self, Election, ElectionClients, Leadership};
use crate::metrics::Metrics;
use crate::output::ReportReader;
use crate::policy::Policies;
use crate::server::{self, Readiness};
use crate::tracker::{BatchTracker, Capacity, Tracker, rounds};

/// Runs the operator until SIGTERM or SIGINT; in-flight reconciles finish first.
pub async fn run(settings: OperatorSettings) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("loading the Kubernetes configuration (in-cluster, or KUBECONFIG)")?;
    let client = Client::try_from(config.clone()).context("connecting to Kubernetes")?;
    let lease_client = leader::lease_client(config)?;
    let metrics = Arc::new(Metrics::with_run_labels(settings.metrics_run_labels));
    let codebuild = AwsBuildApi::load(settings.region.clone(), settings.aws.clone())
        .await
        .with_metrics(metrics.clone());
    let default_region = settings.region.clone().or_else(|| codebuild.default_region()).context(
        "no AWS region: set --region (CODEBUILD_OPERATOR_REGION), AWS_REGION, or a region in the AWS profile",
    )?;
    let clients = Clients {
        main: client,
        lease: lease_client,
    };
    run_with(
        clients,
        Arc::new(codebuild),
        metrics,
        Wiring {
            settings,
            default_region,
        },
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

/// The settings, with the default Region resolved.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// What the operator is configured with.
    pub settings: OperatorSettings,
    /// The Region of runs that name none.
    pub default_region: String,
}

/// Runs the operator with a given CodeBuild implementation until `shutdown` completes.
///
/// The metrics and health server starts first, so `/healthz` answers and `/readyz` says
/// what it waits for while the apiserver is still out of reach.
pub async fn run_with<B: CodeBuild>(
    clients: Clients,
    codebuild: Arc<B>,
    metrics: Arc<Metrics>,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One stop signal for every phase, so the startup waits end on SIGTERM too.
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let readiness = Readiness::default();
    let (server_stop_tx, server_stop_rx) = oneshot::channel::<()>();
    let server = server::bind(
        wiring.settings.metrics_address,
        metrics.clone(),
        readiness.clone(),
        async move {
            let _ = server_stop_rx.await;
        },
    )
    .await?;
    let server = tokio::spawn(server);
    let operator = Operator {
        clients,
        codebuild,
        metrics,
        wiring,
        readiness,
        stop,
    };
    let result = operator.operate().await;
    let _ = server_stop_tx.send(());
    let _ = server.await;
    info!("stopped");
    result
}

/// Everything the running operator is made of.
struct Operator<B> {
    clients: Clients,
    codebuild: Arc<B>,
    metrics: Arc<Metrics>,
    wiring: Wiring,
    readiness: Readiness,
    stop: watch::Receiver<bool>,
}

impl<B: CodeBuild> Operator<B> {
    async fn operate(self) -> anyhow::Result<()> {
        let Some(policies) = self.start_up().await? else {
            return Ok(());
        };
        let tracker = Tracker::new(self.codebuild.clone(), &self.wiring.default_region)
            .with_metrics(self.metrics.clone())
            .with_capacity(Capacity::new(self.wiring.settings.poll_interval));
        let batches = BatchTracker::new(self.codebuild.clone(), &self.wiring.default_region);
        let reports = self
            .wiring
            .settings
            .read_reports
            .then(|| ReportReader::new(self.codebuild.clone(), &self.wiring.default_region));
        let ctx = Arc::new(
            self.context(&tracker, reports.as_ref(), policies.clone())
                .with_batches(batches.cache()),
        );
        let (leadership, election) = self.elect();
        let settings = &self.wiring.settings;
        info!(
            namespaces = ?settings.watched_namespaces(), region = %self.wiring.default_region,
            poll_interval = ?settings.poll_interval, concurrency = settings.max_concurrent_reconciles,
            leader_election = election.is_some(), "starting controller"
        );
        let controllers = future::join_all(settings.watched_namespaces().into_iter().map(|ns| {
            controllers::Watched {
                namespace: ns,
                client: self.clients.main.clone(),
                ctx: ctx.clone(),
                tracker: tracker.clone(),
                batches: batches.clone(),
                reports: reports.clone(),
                policies: policies.clone(),
                leadership: leadership.clone(),
                readiness: self.readiness.clone(),
                stop: self.stop.clone(),
                settings: settings.clone(),
            }
            .run()
        }));
        // Only the leader polls CodeBuild, reads reports and writes the admission policy.
        let polling = rounds(tracker.clone(), batches, settings.poll_interval);
        let tracker_loop = leader_only(&leadership, polling);
        let admission_loop = leader_only(&leadership, self.admission_loop(policies));
        let poll_interval = settings.poll_interval;
        let report_loop = leader_only(&leadership, async move {
            match reports {
                Some(reports) => reports.run(poll_interval).await,
                None => future::pending::<()>().await,
            }
        });
        tokio::pin!(controllers);
        let others = future::join(admission_loop, report_loop);
        let loops = future::select(Box::pin(tracker_loop), Box::pin(others));
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = &mut controllers => {}
            _ = loops => {}
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

    /// Waits for the CodeBuildRun API and, when enforced, starts the policy watches.
    /// None: stopped before that finished. Some(None): policies are not enforced.
    async fn start_up(&self) -> anyhow::Result<Option<Option<Policies>>> {
        let client = &self.clients.main;
        let namespaces = self.wiring.settings.watched_namespaces();
        let gate = self.readiness.gate("the CodeBuildRun API");
        match until_stopped(&self.stop, startup::wait_for_crd(client, &namespaces)).await {
            None => {
                info!("stopping before the CodeBuildRun API was reachable");
                return Ok(None);
            }
            Some(found) => found?,
        }
        gate.open();
        if !self.wiring.settings.enforce_policies {
            startup::warn_unenforced();
            return Ok(Some(None));
        }
        let started = startup::start_policies(client, &self.readiness);
        Ok(until_stopped(&self.stop, started)
            .await
            .transpose()?
            .map(Some))
    }

    fn context(
        &self,
        tracker: &Tracker<B>,
        reports: Option<&ReportReader<B>>,
        policies: Option<Policies>,
    ) -> Context<B> {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let client = self.clients.main.clone();
        let ctx = Context::new(
            client.clone(),
            self.codebuild.clone(),
            tracker.cache(),
            Recorder::new(client, reporter),
            self.wiring
                .settings
                .reconcile(self.wiring.default_region.clone()),
        )
        .with_metrics(self.metrics.clone())
        .with_capacity(tracker.capacity());
        let ctx = match reports {
            Some(reports) => ctx.with_reports(reports.cache()),
            None => ctx,
        };
        match policies {
            Some(policies) => ctx.with_policies(policies),
            None => ctx,
        }
    }

    /// Leader election when configured; otherwise this replica always leads.
    fn elect(&self) -> (Leadership, Option<Election>) {
        match &self.wiring.settings.leader_election {
            Some(lease) => {
                let gate = self.readiness.gate("leader election");
                let clients = ElectionClients {
                    lease: self.clients.lease.clone(),
                    watch: self.clients.main.clone(),
                };
                let (leadership, election) =
                    Election::start(clients, lease.clone(), self.metrics.clone(), gate);
                (leadership, Some(election))
            }
            None => {
                self.metrics.set_leader(true);
                (Leadership::always(), None)
            }
        }
    }

    /// Keeps the admission policy in step with the policies, when asked to.
    fn admission_loop(
        &self,
        policies: Option<Policies>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let name = self.wiring.settings.admission_policy.clone();
        let keeper = policies.zip(name).map(|(policies, name)| {
            policies.keep_admission_policy(
                self.clients.main.clone(),
                name,
                self.wiring.default_region.clone(),
            )
        });
        async move {
            if let Some(keeper) = keeper {
                keeper.await;
            }
            future::pending::<()>().await
        }
    }
}

/// `work`, started once this replica leads.
async fn leader_only<T>(leadership: &Leadership, work: impl Future<Output = T>) -> T {
    leadership.acquired().await;
    work.await
}

/// The output of `work`, or None when the stop signal comes first.
async fn until_stopped<T>(
    stop: &watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let mut stop = stop.clone();
    let stopped = Box::pin(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    });
    match future::select(Box::pin(work), stopped).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
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
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the operator");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

//! Wiring: the kube-runtime Controller(s), the tracker, graceful shutdown.

use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, controller, watcher};
use kube::{Client, CustomResourceExt};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Context, FIELD_MANAGER, Settings, error_policy, reconcile};
use crate::api::CodeBuildRun;
use crate::cli::RunArgs;
use crate::codebuild::{AwsBuildApi, AwsSettings, BuildApi};
use crate::tracker::Tracker;

/// Runs the operator until SIGTERM or SIGINT; in-flight reconciles finish first.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let aws = AwsBuildApi::load(
        args.region.clone(),
        AwsSettings {
            endpoint_url: args.endpoint_url.clone(),
        },
    )
    .await;
    let default_region = args.region.clone().or_else(|| aws.default_region()).context(
        "no AWS region: set --region (CODEBUILD_OPERATOR_REGION), AWS_REGION, or a region in the AWS profile",
    )?;
    run_with(
        client,
        Arc::new(aws),
        default_region,
        args,
        shutdown_signal(),
    )
    .await
}

/// Runs the operator with a given CodeBuild implementation until `shutdown` completes.
pub async fn run_with<B: BuildApi>(
    client: Client,
    api: Arc<B>,
    default_region: String,
    args: RunArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_crd(&client).await?;
    let tracker = Tracker::new(api.clone());
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        api,
        tracker.clone(),
        Recorder::new(client.clone(), reporter),
        Settings {
            default_region: default_region.clone(),
            token_window: args.token_window,
        },
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let namespaces: Vec<Option<String>> = {
        let named: Vec<String> = args
            .namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        if named.is_empty() {
            vec![None]
        } else {
            named.into_iter().map(Some).collect()
        }
    };
    info!(
        namespaces = ?namespaces, region = %default_region, poll_interval = ?args.poll_interval,
        concurrency = args.max_concurrent_reconciles, "starting controller"
    );
    let controllers = namespaces.into_iter().map(|ns| {
        let runs: Api<CodeBuildRun> = match &ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut stop = stop_rx.clone();
        Controller::new(runs, watcher::Config::default().any_semantic())
            .with_config(controller::Config::default().concurrency(args.max_concurrent_reconciles))
            .reconcile_on(tracker.triggers(ns))
            .graceful_shutdown_on(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .run(reconcile, error_policy, ctx.clone())
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
    let tracker_loop = tracker.run(args.poll_interval);
    tokio::pin!(tracker_loop);
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut controllers => {}
        _ = &mut tracker_loop => {}
        _ = &mut shutdown => {
            info!("shutting down: finishing in-flight reconciles");
            let _ = stop_tx.send(true);
            controllers.await;
        }
    }
    info!("stopped");
    Ok(())
}

/// Fails with a clear message when the CRD is not installed.
async fn check_crd(client: &Client) -> anyhow::Result<()> {
    let runs: Api<CodeBuildRun> = Api::all(client.clone());
    runs.list(&ListParams::default().limit(1)).await.with_context(|| {
        format!(
            "cannot list {}: is the CRD installed (kubectl apply --server-side -f crds/) and may this identity list it?",
            CodeBuildRun::crd_name()
        )
    })?;
    Ok(())
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

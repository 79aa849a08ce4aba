//! Startup: wait until the APIs the operator needs answer (with clear messages for what
//! does not fix itself: a missing CRD or permission), and start the policy watches.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, CustomResourceExt, Resource};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::api::{CodeBuildBatchRun, CodeBuildRun, CodeBuildRunPolicy};
use crate::policy::Policies;
use crate::server::Readiness;

/// First delay between attempts to reach the CodeBuildRun API at startup.
const CRD_RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest delay between those attempts.
const CRD_RETRY_MAX: Duration = Duration::from_secs(15);

/// Starts the CodeBuildRunPolicy and namespace watches, once their APIs answer, and waits
/// until both have listed (nothing may be decided with an empty store: it refuses all).
pub(super) async fn start_policies(
    client: &Client,
    readiness: &Readiness,
) -> anyhow::Result<Policies> {
    let gate = readiness.gate("the CodeBuildRunPolicy and namespace watches");
    wait_for_policy_api(client).await?;
    let policies = Policies::start(client);
    policies
        .wait_until_ready()
        .await
        .context("the policy watches stopped")?;
    gate.open();
    info!("enforcing CodeBuildRunPolicies");
    Ok(policies)
}

/// Says, once, what running without policies means.
pub(super) fn warn_unenforced() {
    warn!(
        "CodeBuildRunPolicies are not enforced (--enforce-policies=false): every namespace \
         that can create a CodeBuildRun may start every CodeBuild project the operator's AWS \
         identity reaches, with any override"
    );
}

/// Waits until the CodeBuildRun and CodeBuildBatchRun APIs answer. Fails with a clear
/// message when a CRD is not installed or this identity may not list it (neither fixes
/// itself); retries, with a capped backoff, while the apiserver cannot be reached.
///
/// Lists where the controllers will watch (each namespace, or all), so a namespaced
/// installation needs no cluster-wide permission.
pub(super) async fn wait_for_crd(
    client: &Client,
    namespaces: &[Option<String>],
) -> anyhow::Result<()> {
    for ns in namespaces {
        wait_for_kind::<CodeBuildRun>(client, ns.as_deref()).await?;
        wait_for_kind::<CodeBuildBatchRun>(client, ns.as_deref()).await?;
    }
    Ok(())
}

/// Waits until objects of kind `K` can be listed in `namespace` (None: all).
async fn wait_for_kind<K>(client: &Client, namespace: Option<&str>) -> anyhow::Result<()>
where
    K: CustomResourceExt
        + Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let objects: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let listed = until_answered(|| async {
        objects
            .list(&ListParams::default().limit(1))
            .await
            .map(|_| ())
    })
    .await;
    listed.map_err(|refused| {
        anyhow::Error::new(refused).context(format!(
            "cannot list {} in {}: is the CRD installed (kubectl apply --server-side -f crds/) and may this identity list it?",
            K::crd_name(),
            namespace.unwrap_or("all namespaces"),
        ))
    })
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

//! What the controller decides with: every CodeBuildRunPolicy and the labels of every
//! namespace, kept by two watches, plus a signal that fires whenever either changes (so runs
//! refused or waiting are looked at again, and the admission policy is re-rendered). The
//! leader also keeps each policy's status: which members it allows that name resources
//! without their value rules.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

use super::rules::Overrides;
use super::{Decision, RunRequest, admission, evaluate};
use crate::api::{CodeBuildRunPolicy, FIELD_MANAGER};

/// How long policy changes are gathered before the admission policy is rendered again.
const ADMISSION_SETTLE: Duration = Duration::from_millis(200);
/// First delay before retrying a failed admission policy write.
const ADMISSION_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest delay between those retries.
const ADMISSION_RETRY_MAX: Duration = Duration::from_secs(60);

/// The policies and namespace labels, as last seen by the watches.
#[derive(Clone)]
pub struct Policies {
    policies: Store<CodeBuildRunPolicy>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Changes when a policy or a namespace does.
    changes: watch::Receiver<u64>,
    /// Changes when a policy does (the admission policy does not depend on namespaces).
    policy_changes: watch::Receiver<u64>,
}

impl Policies {
    /// Starts the two watches (on the current tokio runtime). Nothing may be decided before
    /// [`Policies::wait_until_ready`]: an empty store would refuse every run.
    pub fn start(client: &Client) -> Policies {
        let (changes_tx, changes) = watch::channel(0u64);
        let (policy_tx, policy_changes) = watch::channel(0u64);
        let changes_tx = Arc::new(changes_tx);

        let (policies, writer) = reflector::store();
        let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
        let notify = vec![changes_tx.clone(), Arc::new(policy_tx)];
        spawn_watch(api, writer, notify, "CodeBuildRunPolicies");
        // Metadata only: the labels are all a decision needs.
        let (namespaces, writer) = reflector::store();
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        spawn_watch(api, writer, vec![changes_tx], "namespaces");
        Policies {
            policies,
            namespaces,
            changes,
            policy_changes,
        }
    }

    /// Policies and namespaces given directly (tests).
    pub fn from_stores(
        policies: Store<CodeBuildRunPolicy>,
        namespaces: Store<PartialObjectMeta<Namespace>>,
    ) -> Policies {
        let (_tx, changes) = watch::channel(0u64);
        Policies {
            policies,
            namespaces,
            policy_changes: changes.clone(),
            changes,
        }
    }

    /// Waits until both watches have listed once.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.policies.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await
    }

    /// A receiver that changes whenever a policy or a namespace does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Every policy, in no particular order (`evaluate` and `admission::render` sort them).
    pub fn all(&self) -> Vec<Arc<CodeBuildRunPolicy>> {
        self.policies.state()
    }

    /// The labels of `namespace`, or None while the watch has not seen it yet (a run in a
    /// namespace created a moment ago).
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone())
    }

    /// Decides `request` with the policies and labels as they are now; None while the
    /// run's namespace is not known yet.
    pub fn decide<S: Overrides>(&self, request: &RunRequest<'_, S>) -> Option<Decision> {
        let labels = self.namespace_labels(request.namespace)?;
        let all = self.all();
        let refs: Vec<&CodeBuildRunPolicy> = all.iter().map(AsRef::as_ref).collect();
        Some(evaluate(request, &labels, &refs))
    }
}

impl Policies {
    /// Keeps the ValidatingAdmissionPolicy `name` rendered from the current policies (the
    /// chart binds it), and each policy's status (see [`Policies::write_statuses`]), until
    /// the future is dropped. Call it only where this replica leads: standbys must not
    /// write.
    pub async fn keep_admission_policy(self, client: Client, name: String, default_region: String) {
        let mut changes = self.policy_changes.clone();
        let mut delay = ADMISSION_RETRY_MIN;
        loop {
            let all = self.all();
            self.write_statuses(&client, &all).await;
            let refs: Vec<&CodeBuildRunPolicy> = all.iter().map(AsRef::as_ref).collect();
            let vap = admission::render(&name, &refs, &default_region);
            match admission::apply(&client, &vap).await {
                Ok(written) => {
                    if written {
                        info!(admission_policy = %name, policies = refs.len(), "admission policy written");
                    }
                    delay = ADMISSION_RETRY_MIN;
                    if changes.changed().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(ADMISSION_SETTLE).await;
                    changes.borrow_and_update();
                }
                Err(error) => {
                    warn!(admission_policy = %name, %error, retry_in = ?delay,
                        "could not write the admission policy; runs are still checked by the operator");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(ADMISSION_RETRY_MAX);
                }
            }
        }
    }
}

impl Policies {
    /// Writes the status of every policy in `all` whose status is not what
    /// `evaluate::policy_status` says (server-side apply on the status subresource, field
    /// manager `codebuild-operator`), logging a warning for each policy that allows members
    /// naming resources without their value rules. Returns how many it wrote; a failed
    /// write is logged and tried again at the next policy change. Needs `patch` on
    /// `codebuildrunpolicies/status`.
    pub async fn write_statuses(&self, client: &Client, all: &[Arc<CodeBuildRunPolicy>]) -> usize {
        let api: Api<CodeBuildRunPolicy> = Api::all(client.clone());
        let mut written = 0;
        for policy in all {
            let desired = evaluate::policy_status(policy);
            if policy.status.as_ref() == Some(&desired) {
                continue;
            }
            let name = policy.name_any();
            if let Some(warning) = &desired.warning {
                warn!(policy = %name, "CodeBuildRunPolicy {warning}");
            }
            let patch = serde_json::json!({
                "apiVersion": CodeBuildRunPolicy::api_version(&()),
                "kind": CodeBuildRunPolicy::kind(&()),
                "status": desired,
            });
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api
                .patch_status(&name, &params, &Patch::Apply(&patch))
                .await
            {
                Ok(_) => written += 1,
                // Deleted since: nothing to describe.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => {
                    warn!(policy = %name, %error, "could not write the CodeBuildRunPolicy status")
                }
            }
        }
        written
    }
}

/// Runs a watch of `api` into `writer` on the current runtime, bumping each of `notify` on
/// every event (only a new, changed or deleted policy or namespace label can change a
/// decision; bumping on every event is still cheap).
fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    notify: Vec<Arc<watch::Sender<u64>>>,
    what: &'static str,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(
        watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(|o| o.managed_fields_mut().clear())
            .reflect(writer)
            .for_each(move |event| {
                match event {
                    Ok(_) => notify.iter().for_each(|tx| bump(tx)),
                    Err(error) => warn!(%error, "watching {what}"),
                }
                futures::future::ready(())
            }),
    );
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

//! Leader election on a coordination.k8s.io Lease (kube-lease-manager).
//!
//! Every replica watches CodeBuildRuns from the start, so a standby's cache is warm when it
//! takes over; only the leader reconciles (writes to Kubernetes, calls CodeBuild) and polls
//! CodeBuild. The gate is [`Leadership::is_leader`], checked before anything else in a
//! reconcile, and the tracker loop starts only once this replica leads.
//!
//! Losing the lease ends the process with exit code [`LOST_LEASE_EXIT_CODE`] at once, and
//! so does failing to renew it. That is deliberate: in-flight reconciles and AWS calls
//! cannot be recalled safely from inside the process, and a half-stopped leader is the
//! classic split-brain. Exiting stops every write at the same instant, and Kubernetes
//! restarts the container, which comes back as a standby with a fresh cache (client-go's
//! leaderelection and controller-runtime do the same: `OnStoppedLeading` exits). A renewal
//! that cannot complete within the lease is treated the same as a loss, because after the
//! lease expires another replica may already lead.

use std::time::Duration;

use anyhow::Context as _;
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::metrics::Metrics;
use crate::server::Gate;

/// How long a lease is valid after each renewal, in seconds.
pub const LEASE_DURATION_SECS: u64 = 15;
/// How long before expiry the leader renews, in seconds. Longer than every timeout of a
/// renewal request ([`LEASE_REQUEST_TIMEOUT`] for connect, write and read), so a renewal
/// that hangs ends the process before the lease can expire.
pub const LEASE_GRACE_SECS: u64 = 8;
/// Timeout of each phase of a Lease request.
pub const LEASE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The exit code after this replica lost its lease.
pub const LOST_LEASE_EXIT_CODE: i32 = 75;
/// Backoff between attempts to reach the Lease before leadership is known.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Where the lease lives and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
}

/// Whether this replica may write. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leadership {
    /// None: leader election is off, this replica always leads.
    rx: Option<watch::Receiver<bool>>,
}

// === impl Leadership ===

impl Leadership {
    /// Always the leader: leader election is off.
    pub fn always() -> Self {
        Leadership { rx: None }
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        self.rx.as_ref().is_none_or(|rx| *rx.borrow())
    }

    /// Resolves once this replica leads (at once when it does already).
    pub async fn acquired(&self) {
        let Some(mut rx) = self.rx.clone() else {
            return;
        };
        // Err: the election task ended, which it only does on shutdown. Never resolve then.
        if rx.wait_for(|leader| *leader).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The Kubernetes clients of an election: `lease` for the Lease calls (short request
/// timeouts), `watch` for watching the Lease (a long-lived request).
#[derive(Clone)]
pub struct ElectionClients {
    /// Lease reads and writes.
    pub lease: Client,
    /// The watch on the Lease that lets a standby take a released lease at once.
    pub watch: Client,
}

/// A running election. [`Election::stop`] ends it and releases the lease if held.
pub struct Election {
    stop_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Election {
    /// Starts campaigning for the lease in the background. `known` opens once the Lease has
    /// been read, i.e. once this replica knows whether it leads.
    pub fn start(
        clients: ElectionClients,
        settings: LeaseSettings,
        metrics: std::sync::Arc<Metrics>,
        known: Gate,
    ) -> (Leadership, Election) {
        let (tx, rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        metrics.set_leader(false);
        let task = tokio::spawn(campaign(clients, settings, metrics, known, tx, stop_rx));
        (Leadership { rx: Some(rx) }, Election { stop_tx, task })
    }

    /// Stops campaigning and releases the lease when held (so a standby takes over at once
    /// instead of after the lease expires). Call it after in-flight reconciles finished.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        if let Err(error) = self.task.await {
            warn!(%error, "the leader election task failed");
        }
    }
}

/// A kube client for Lease calls only: every request is bounded by
/// [`LEASE_REQUEST_TIMEOUT`], unlike the main client (whose watches must stay open).
pub fn lease_client(mut config: kube::Config) -> anyhow::Result<Client> {
    config.connect_timeout = Some(LEASE_REQUEST_TIMEOUT);
    config.read_timeout = Some(LEASE_REQUEST_TIMEOUT);
    config.write_timeout = Some(LEASE_REQUEST_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).context("building the Kubernetes client for the leader lease")
}

/// This replica's identity: the pod name, else the host name and process id (unique per
/// process, so two processes on one host never share it).
pub fn default_identity() -> String {
    match std::env::var("POD_NAME") {
        Ok(name) if !name.is_empty() => name,
        _ => {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "codebuild-operator".into());
            format!("{host}-{}", std::process::id())
        }
    }
}

async fn campaign(
    clients: ElectionClients,
    settings: LeaseSettings,
    metrics: std::sync::Arc<Metrics>,
    known: Gate,
    tx: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let lease = format!("{}/{}", settings.namespace, settings.name);
    let Some(mut manager) = lease_manager(&clients.lease, &settings, &mut stop).await else {
        return;
    };
    known.open();
    info!(%lease, identity = %settings.identity,
        "leader election: standby until this replica holds the lease (watch caches are kept warm)");
    let mut freed = Box::pin(lease_freed(clients.watch.clone(), &settings));
    loop {
        let leading = *tx.borrow();
        let changed = tokio::select! {
            changed = manager.changed() => Some(changed),
            // A standby learns of a released lease at once (the manager alone would wait
            // for it to expire): a fresh manager reads it free and takes it.
            Some(()) = freed.next(), if !leading => None,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(changed) = changed else {
            match lease_manager(&clients.lease, &settings, &mut stop).await {
                Some(fresh) => manager = fresh,
                None => break,
            }
            continue;
        };
        match changed {
            Ok(true) => {
                info!(%lease, identity = %settings.identity, "acquired the leader lease: leading");
                metrics.set_leader(true);
                let _ = tx.send(true);
            }
            Ok(false) => lost(&lease, "another replica holds the lease now"),
            Err(error) if leading => lost(&lease, &format!("renewing failed: {error}")),
            Err(error) => {
                warn!(%lease, %error, retry_in = ?RETRY_DELAY, "standby: cannot check the leader lease");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
    }
    let leading = *tx.borrow();
    release(&manager, &lease, leading).await;
}

/// A lease manager with the Lease as it is now (created when missing); None when stopped
/// before the Lease could be read.
async fn lease_manager(
    client: &Client,
    settings: &LeaseSettings,
    stop: &mut watch::Receiver<bool>,
) -> Option<LeaseManager> {
    let lease = format!("{}/{}", settings.namespace, settings.name);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &settings.name)
            .with_namespace(&settings.namespace)
            .with_identity(&settings.identity)
            .with_duration(LEASE_DURATION_SECS)
            .with_grace(LEASE_GRACE_SECS)
            .build()
            .await;
        match built {
            Ok(manager) => return Some(manager),
            Err(error) => {
                warn!(%lease, %error, retry_in = ?RETRY_DELAY, "cannot read or create the leader lease");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                    _ = stop.wait_for(|s| *s) => return None,
                }
            }
        }
    }
}

/// A stream that yields whenever the Lease is seen without a holder (released, or just
/// created): the moment a standby should try to take it.
fn lease_freed(client: Client, settings: &LeaseSettings) -> impl Stream<Item = ()> + Send {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", settings.name));
    watcher(api, config)
        .default_backoff()
        .applied_objects()
        .filter_map(|lease| {
            let free = match lease {
                Ok(lease) => lease
                    .spec
                    .and_then(|s| s.holder_identity)
                    .is_none_or(|h| h.is_empty()),
                Err(error) => {
                    warn!(%error, "watching the leader lease");
                    false
                }
            };
            std::future::ready(free.then_some(()))
        })
}

async fn release(manager: &LeaseManager, lease: &str, leading: bool) {
    if !leading {
        return;
    }
    match manager.release().await {
        Ok(()) => info!(%lease, "released the leader lease"),
        Err(error) => {
            warn!(%lease, %error, "could not release the leader lease; it expires on its own")
        }
    }
}

/// Leadership is gone: stop every write at once by ending the process (see the module docs).
fn lost(lease: &str, why: &str) -> ! {
    error!(%lease, why, exit_code = LOST_LEASE_EXIT_CODE,
        "lost the leader lease: exiting so that Kubernetes restarts this replica as a standby");
    std::process::exit(LOST_LEASE_EXIT_CODE)
}

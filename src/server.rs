//! The operator's HTTP endpoints: `/metrics`, `/healthz` and `/readyz`.
//!
//! Liveness and readiness mean different things, as in linkerd's kubert: `/healthz` answers
//! 200 as long as the process serves HTTP (a restart would not help anything else), while
//! `/readyz` answers 200 only once every readiness gate is open: each controller's watch
//! cache has synced and, with leader election, this replica knows whether it leads. Until
//! then it answers 503 and names the gates still closed. `/metrics` reports the same as the
//! `codebuild_operator_ready` gauge, so an alert can tell "up but not ready" from "down".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::metrics::{CONTENT_TYPE, Metrics};

/// A gate's name and whether it is open.
type NamedGate = (String, Arc<AtomicBool>);

/// The named conditions `/readyz` waits for.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    gates: Arc<Mutex<Vec<NamedGate>>>,
}

/// One readiness condition; open it with [`Gate::open`].
#[derive(Clone, Debug)]
pub struct Gate {
    open: Arc<AtomicBool>,
}

// === impl Readiness ===

impl Readiness {
    /// A new closed gate named `name` (shown by `/readyz` while closed).
    pub fn gate(&self, name: impl Into<String>) -> Gate {
        let open = Arc::new(AtomicBool::new(false));
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.into(), open.clone()));
        Gate { open }
    }

    /// The names of the gates still closed; empty when ready.
    pub fn pending(&self) -> Vec<String> {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, open)| !open.load(Ordering::Acquire))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

// === impl Gate ===

impl Gate {
    /// Opens the gate (idempotent).
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The router of the three endpoints.
pub fn router(metrics: Arc<Metrics>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(serve_readyz))
        .with_state(AppState { metrics, readiness })
}

/// Binds `address` now (so a port conflict fails startup with a clear error) and returns the
/// future that serves until `shutdown` completes.
pub async fn bind(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the metrics and health server to {address}"))?;
    let local = listener.local_addr().unwrap_or(address);
    info!(address = %local, "serving /metrics, /healthz and /readyz");
    let app = router(metrics, readiness);
    Ok(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(%error, "the metrics and health server stopped");
        }
    })
}

async fn serve_metrics(State(state): State<AppState>) -> Response {
    // Readiness is a scrape-time reading, like /readyz itself.
    state
        .metrics
        .set_ready(state.readiness.pending().is_empty());
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            warn!(%error, "encoding metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn serve_readyz(State(state): State<AppState>) -> Response {
    let pending = state.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: waiting for {}\n", pending.join(", ")),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_lists_closed_gates_until_all_open() {
        let r = Readiness::default();
        let a = r.gate("cache a");
        let b = r.gate("leadership");
        assert_eq!(r.pending(), vec!["cache a", "leadership"]);
        a.open();
        assert_eq!(r.pending(), vec!["leadership"]);
        b.open();
        b.open();
        assert!(r.pending().is_empty());
    }
}

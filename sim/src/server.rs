//! HTTP server: the CodeBuild and CloudWatch Logs endpoints (`POST /`, told apart by the
//! `X-Amz-Target` prefix) and the admin API on one port. Uses hyper directly so an injected
//! fault can close a connection without writing a response.

use crate::admin;
use crate::config::SimConfig;
use crate::faults::Action;
use crate::protocol::{self, ApiError, ErrorKind, Service, Target};
use crate::store::SimState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// A running simulator. Stops on [`Server::shutdown`] or when dropped.
pub struct Server {
    addr: SocketAddr,
    state: SimState,
    shutdown: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `config.bind` (127.0.0.1:0 by default) and starts serving.
    pub async fn start(config: SimConfig) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.bind).await?;
        Server::from_listener(listener, SimState::new(config))
    }

    /// Serves `state` on an already bound listener.
    pub fn from_listener(listener: TcpListener, state: SimState) -> anyhow::Result<Server> {
        let addr = listener.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(Server {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The axum router for everything that is not an injected fault.
pub fn router(state: SimState) -> Router {
    Router::new()
        .route("/", post(api))
        .merge(admin::routes())
        .with_state(state)
}

async fn accept_loop(listener: TcpListener, state: SimState, mut shutdown: watch::Receiver<bool>) {
    let app = router(state.clone());
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    let app = app.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        serve_request(state.clone(), app.clone(), req)
                    });
                    conns.spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "connection ended with error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }
    // Dropping the JoinSet aborts every open connection.
    conns.abort_all();
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedConnection {}

/// The most of a faulted request's body read before answering it (more is not expected).
const MAX_FAULTED_BODY: usize = 16 * 1024 * 1024;

/// The answer an injected fault gives instead of the call's (None: the call proceeds).
fn fault_answer(action: Action, service: Service) -> Result<Option<ApiError>, DroppedConnection> {
    Ok(match (action, service) {
        (Action::Proceed, _) => None,
        (Action::Drop, _) => return Err(DroppedConnection),
        (Action::ServerError(503), _) => Some(ApiError::new(
            ErrorKind::ServiceUnavailable,
            "Service Unavailable",
        )),
        // CloudWatch Logs declares ServiceUnavailableException (HTTP 500) as its fault.
        (Action::ServerError(_), Service::Logs) => Some(ApiError::new(
            ErrorKind::LogsServiceUnavailable,
            "The service cannot complete the request.",
        )),
        (Action::ServerError(_), Service::CodeBuild) => Some(ApiError::new(
            ErrorKind::InternalFailure,
            "We encountered an internal error. Please try again.",
        )),
        (Action::Throttle, _) => Some(ApiError::new(ErrorKind::Throttling, "Rate exceeded")),
    })
}

/// The API target of a request to `POST /` (None for other requests). A missing or unknown
/// target is counted as `<none>` against the CodeBuild endpoint.
fn api_target(req: &Request<Incoming>) -> Option<Target> {
    (req.method() == Method::POST && req.uri().path() == "/").then(|| {
        protocol::target(req.headers()).unwrap_or_else(|| Target {
            service: Service::CodeBuild,
            operation: "<none>".to_string(),
        })
    })
}

async fn serve_request(
    state: SimState,
    app: Router,
    req: Request<Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let target = api_target(&req);
    if let Some(t) = &target {
        let (latency, action) = state.begin_call(t.service, &t.operation);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if action == Action::Drop {
            tracing::info!(operation = %t.operation, "fault: dropping connection");
        }
        if let Some(err) = fault_answer(action, t.service)? {
            tracing::info!(operation = %t.operation, error = %err, "fault injected");
            // Read the request first: answering with request bytes still unread makes hyper
            // close the connection, the kernel then resets it, and the client can lose the
            // answer ("Connection was closed before we received a valid response").
            let _ = axum::body::to_bytes(Body::new(req.into_body()), MAX_FAULTED_BODY).await;
            return Ok(err.into_response());
        }
    }
    let resp = match app.oneshot(req.map(Body::new)).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    if let Some(t) = target {
        let hold = state.response_latency(t.service, &t.operation);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
    }
    Ok(resp)
}

/// `POST /`: a CodeBuild or CloudWatch Logs call.
async fn api(State(state): State<SimState>, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let Some(Target {
        service,
        operation: op,
    }) = protocol::target(&headers)
    else {
        return ApiError::new(
            ErrorKind::UnknownOperation,
            "Missing or unrecognised X-Amz-Target header",
        )
        .into_response();
    };
    let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return ApiError::new(ErrorKind::Serialization, format!("Invalid JSON: {e}"))
                    .into_response();
            }
        }
    };
    let result = match service {
        Service::CodeBuild => {
            let akid = protocol::access_key_id(&headers);
            state.dispatch(&op, &request, akid.as_deref())
        }
        Service::Logs => state.dispatch_logs(&op, &request),
    };
    match result {
        Ok(v) => {
            tracing::debug!(operation = %op, "ok");
            protocol::json_response(StatusCode::OK, &v)
        }
        Err(e) => {
            tracing::debug!(operation = %op, error = %e, "error");
            e.into_response()
        }
    }
}

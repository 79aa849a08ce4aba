//! Admin HTTP API under `/_sim/...` (see sim/README.md).

use crate::faults::Faults;
use crate::ratelimit::RateLimits;
use crate::store::SimState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn routes() -> Router<SimState> {
    Router::new()
        .route("/_sim/healthz", get(healthz))
        .route("/_sim/counters", get(counters))
        .route("/_sim/builds", get(builds))
        .route("/_sim/starts", get(starts))
        .route("/_sim/batches", get(batches))
        .route("/_sim/batch-starts", get(batch_starts))
        .route("/_sim/batch-retries", get(batch_retries))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route(
            "/_sim/rate-limits",
            get(get_rate_limits).post(set_rate_limits),
        )
        .route("/_sim/reset", post(reset))
        .route("/_sim/projects", get(projects).post(create_project))
        .route("/_sim/clock", get(clock).post(advance_clock))
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// Parses an optional JSON body; an empty body is `{}`.
fn parse_body(body: &Bytes) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
}

async fn healthz() -> Response {
    ok(json!({ "status": "ok" }))
}

async fn counters(State(state): State<SimState>) -> Response {
    ok(json!(state.counters()))
}

async fn builds(State(state): State<SimState>) -> Response {
    ok(json!({ "builds": state.builds() }))
}

async fn starts(State(state): State<SimState>) -> Response {
    ok(json!({ "starts": state.starts() }))
}

async fn batches(State(state): State<SimState>) -> Response {
    ok(json!({ "buildBatches": state.batches() }))
}

async fn batch_starts(State(state): State<SimState>) -> Response {
    ok(json!({ "batchStarts": state.batch_starts() }))
}

async fn batch_retries(State(state): State<SimState>) -> Response {
    ok(json!({ "batchRetries": state.batch_retries() }))
}

async fn get_faults(State(state): State<SimState>) -> Response {
    ok(json!(state.faults()))
}

async fn set_faults(State(state): State<SimState>, body: Bytes) -> Response {
    let value = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    match serde_json::from_value::<Faults>(value) {
        Ok(f) => {
            tracing::info!(faults = ?f, "faults set");
            state.set_faults(f);
            ok(json!(state.faults()))
        }
        Err(e) => bad_request(format!("invalid faults: {e}")),
    }
}

async fn get_rate_limits(State(state): State<SimState>) -> Response {
    ok(json!(state.rate_limits()))
}

async fn set_rate_limits(State(state): State<SimState>, body: Bytes) -> Response {
    let value = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let limits = match serde_json::from_value::<RateLimits>(value) {
        Ok(l) => l,
        Err(e) => return bad_request(format!("invalid rate limits: {e}")),
    };
    if let Err(e) = limits.validate() {
        return bad_request(format!("invalid rate limits: {e}"));
    }
    tracing::info!(limits = ?limits, "rate limits set");
    state.set_rate_limits(limits);
    ok(json!(state.rate_limits()))
}

async fn reset(State(state): State<SimState>, body: Bytes) -> Response {
    let value = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    if value.get("projects").and_then(Value::as_bool) == Some(true) {
        state.reset_all();
    } else {
        state.reset();
    }
    ok(json!({ "status": "reset" }))
}

async fn projects(State(state): State<SimState>) -> Response {
    ok(json!({ "projects": state.projects() }))
}

async fn create_project(State(state): State<SimState>, body: Bytes) -> Response {
    let value = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(name) = value.get("name").and_then(Value::as_str) else {
        return bad_request("\"name\" is required");
    };
    match state.create_project_with(name, &value) {
        Ok(p) => ok(json!({ "project": p })),
        Err(e) => bad_request(e),
    }
}

async fn clock(State(state): State<SimState>) -> Response {
    ok(json!({ "now": state.now() }))
}

async fn advance_clock(State(state): State<SimState>, body: Bytes) -> Response {
    let value = match parse_body(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let Some(secs) = value.get("advanceSeconds").and_then(Value::as_f64) else {
        return bad_request("\"advanceSeconds\" (number) is required");
    };
    ok(json!({ "now": state.advance_clock(secs) }))
}

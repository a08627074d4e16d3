//! Operations endpoints on the Socket.IO port: liveness, readiness, metrics.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use switchboard_core::{health, telemetry};

use crate::state::RealtimeState;

pub use switchboard_core::telemetry::prometheus;

/// Liveness: the process is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: PostgreSQL and Redis answer and the relay is subscribed
/// (before that, events would be silently missed).
pub async fn ready(State(state): State<RealtimeState>) -> Response {
    let relay = if state.relay_subscribed() {
        "ok"
    } else {
        "not_subscribed"
    };
    let checks = [("relay", relay.to_string())];
    match health::ready(state.db(), state.redis(), &checks).await {
        Ok(body) => Json(body).into_response(),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response(),
    }
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(State(state): State<RealtimeState>) -> Response {
    let count = state.local_sockets().len();
    metrics::gauge!("realtime_connected_sockets").set(count as f64);
    let text = telemetry::render(state.metrics());
    ([(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)], text).into_response()
}

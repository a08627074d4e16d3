//! Operations endpoints on the Socket.IO port: liveness, readiness, metrics.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::state::RealtimeState;

pub use switchboard_core::telemetry::prometheus;

/// Liveness: the process is up.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: PostgreSQL and Redis answer and the relay is subscribed
/// (before that, events would be silently missed).
pub async fn ready(State(state): State<RealtimeState>) -> Response {
    let (postgres, redis) = tokio::join!(
        switchboard_core::health::postgres(state.db()),
        switchboard_core::health::redis(state.redis())
    );
    let relay = if state.relay_subscribed() {
        "ok"
    } else {
        "not_subscribed"
    };
    let is_ready = postgres == "ok" && redis == "ok" && relay == "ok";
    let body = json!({
        "status": if is_ready { "ready" } else { "not_ready" },
        "checks": {"postgres": postgres, "redis": redis, "relay": relay},
    });
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(State(state): State<RealtimeState>) -> Response {
    let count = state.local_sockets().len();
    metrics::gauge!("realtime_connected_sockets").set(count as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        switchboard_core::telemetry::render(state.metrics()),
    )
        .into_response()
}

//! `/health`, `/ready` and `/metrics` on the worker's port.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::context::Ctx;

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ctx)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when PostgreSQL and Redis answer (see `switchboard_core::health`)
/// and no queue is stalled (see `queue::watchdog`).
async fn ready(State(ctx): State<Arc<Ctx>>) -> Response {
    let (postgres, redis) = tokio::join!(
        switchboard_core::health::postgres(&ctx.db),
        switchboard_core::health::redis(&ctx.redis)
    );
    let stalled = ctx.queues.stalled();
    let queues = if stalled.is_empty() {
        "ok".to_string()
    } else {
        format!("stalled: {}", stalled.join(", "))
    };
    let is_ready = postgres == "ok" && redis == "ok" && stalled.is_empty();
    let body = json!({
        "status": if is_ready { "ready" } else { "not_ready" },
        "checks": {"postgres": postgres, "redis": redis, "queues": queues},
    });
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text. The queue gauges are the watchdog's last reading (at
/// most a second old), so a scraper polling hard costs no queries.
async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        switchboard_core::telemetry::render(&switchboard_core::telemetry::prometheus()),
    )
        .into_response()
}

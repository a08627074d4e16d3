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
use switchboard_core::{health, telemetry};

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

/// Ready when PostgreSQL and Redis answer (see `switchboard_core::health`),
/// no queue is stalled (see `queue::watchdog`) and the webhook fan-out is
/// not failing (see `webhook_fanout::Health`).
async fn ready(State(ctx): State<Arc<Ctx>>) -> Response {
    let stalled = ctx.queues.stalled();
    let queues = if stalled.is_empty() {
        "ok".to_string()
    } else {
        format!("stalled: {}", stalled.join(", "))
    };
    let checks = [("queues", queues), ("webhooks", ctx.fanout.check())];
    match health::ready(&ctx.db, &ctx.redis, &checks).await {
        Ok(body) => Json(body).into_response(),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response(),
    }
}

/// Prometheus text. The queue gauges are the watchdog's last reading (at
/// most a second old), so a scraper polling hard costs no queries.
async fn metrics() -> Response {
    let text = telemetry::render(&telemetry::prometheus());
    ([(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)], text).into_response()
}

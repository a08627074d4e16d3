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

use crate::{context::Ctx, maintenance};

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

/// Ready when PostgreSQL and Redis answer (see `switchboard_core::health`).
async fn ready(State(ctx): State<Arc<Ctx>>) -> Response {
    let (postgres, redis) = tokio::join!(
        switchboard_core::health::postgres(&ctx.db),
        switchboard_core::health::redis(&ctx.redis)
    );
    let is_ready = postgres == "ok" && redis == "ok";
    let body = json!({
        "status": if is_ready { "ready" } else { "not_ready" },
        "checks": {"postgres": postgres, "redis": redis},
    });
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text; queue gauges are refreshed on every scrape.
async fn metrics(State(ctx): State<Arc<Ctx>>) -> Response {
    if let Err(error) = maintenance::queue_gauges(&ctx).await {
        tracing::debug!(%error, "queue gauges unavailable");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        switchboard_core::telemetry::prometheus().render(),
    )
        .into_response()
}

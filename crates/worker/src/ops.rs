//! `/health`, `/ready` and `/metrics` on the worker's port.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use switchboard_core::redis::redis;

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

/// Ready when PostgreSQL and Redis answer within 2 s.
async fn ready(State(ctx): State<Arc<Ctx>>) -> Response {
    let limit = Duration::from_secs(2);
    let postgres = async {
        match tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&ctx.db)).await {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "unreachable",
            Err(_) => "timeout",
        }
    };
    let redis_check = async {
        let ping = async {
            let mut conn = ctx.redis.get().await.map_err(|_| ())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|_| ())
        };
        match tokio::time::timeout(limit, ping).await {
            Ok(Ok(_)) => "ok",
            Ok(Err(())) => "unreachable",
            Err(_) => "timeout",
        }
    };
    let (postgres, redis) = tokio::join!(postgres, redis_check);
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

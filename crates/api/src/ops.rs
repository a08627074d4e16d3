//! Operations endpoints: liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::current_request_id;
use crate::extract::Json;
use crate::state::AppState;

/// The routes of health, readiness and metrics, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// The process-wide Prometheus recorder (shared with the other services).
pub use switchboard_core::telemetry::prometheus;

/// The liveness answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The readiness answer.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// Per dependency: `ok` or what went wrong.
    checks: Checks,
    /// When not ready: the error, in the usual shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<crate::error::ErrorDetail>,
}

/// Each dependency's check: `ok` or what went wrong.
#[derive(Serialize, ToSchema)]
pub struct Checks {
    /// PostgreSQL.
    postgres: String,
    /// Redis.
    redis: String,
}

/// Readiness: PostgreSQL and Redis both answer (503 otherwise).
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, body = Readiness, description = "Every dependency answers"),
    (status = 503, body = Readiness, description = "A dependency does not answer"),
))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let (postgres, lanes, redis) = tokio::join!(
        switchboard_core::health::postgres(&state.db),
        switchboard_core::health::postgres(&state.batches),
        switchboard_core::health::redis(&state.redis)
    );
    // The carrier callbacks' own pool is PostgreSQL too: a lane that cannot
    // get a connection fails whole batches, so it counts here.
    let postgres = match (postgres, lanes) {
        ("ok", "ok") => "ok".to_string(),
        ("ok", lanes) => format!("carrier lanes' pool {lanes}"),
        (main, _) => main.to_string(),
    };
    let redis = redis.to_string();
    let is_ready = postgres == "ok" && redis == "ok";
    let failing: Vec<String> = [("postgres", &postgres), ("redis", &redis)]
        .iter()
        .filter(|(_, v)| v.as_str() != "ok")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let body = Readiness {
        status: if is_ready { "ready" } else { "not_ready" },
        error: (!is_ready).then(|| crate::error::ErrorDetail {
            code: "not_ready".into(),
            message: failing.join(", "),
            field: None,
            request_id: current_request_id(),
        }),
        checks: Checks { postgres, redis },
    };
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, content_type = "text/plain; version=0.0.4", body = String)
))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let size = state.db.size();
    let idle = u32::try_from(state.db.num_idle()).unwrap_or(u32::MAX);
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_max_connections").set(f64::from(state.settings.db_max_connections));
    // The carrier callback lanes' pool: all in use is normal in a storm (a
    // lane that waits grows its batch); a lane that cannot get one within
    // the acquire timeout fails its batch (`group_commit_errors_total`).
    let size = state.batches.size();
    let idle = u32::try_from(state.batches.num_idle()).unwrap_or(u32::MAX);
    metrics::gauge!("db_batch_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_batch_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_batch_pool_max_connections")
        .set(f64::from(state.batches.options().get_max_connections()));
    let redis_status = state.redis.status();
    metrics::gauge!("redis_pool_connections", "state" => "available")
        .set(redis_status.available as f64);
    metrics::gauge!("redis_pool_connections", "state" => "size").set(redis_status.size as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        switchboard_core::telemetry::render(&state.metrics),
    )
        .into_response()
}

//! # switchboard-api
//!
//! The HTTP API: authentication, customers (CRM), telephony, carrier
//! webhooks and the ops endpoints, as an axum router over one [`AppState`].
//!
//! - [`serve`] runs it until a shutdown future resolves (the binary, the
//!   tests and the load suite all call it);
//! - [`app`] builds the router with its middleware, for in-process use;
//! - each domain module exposes `router()`; [`router`] only merges them.
//!
//! Errors everywhere are [`error::ApiError`], rendered in the documented JSON
//! shape, including axum's own rejections (see [`extract`]).

#![warn(missing_docs)]

pub mod agents;
pub mod auth;
mod by_id;
pub mod cache;
pub mod calls;
pub mod campaigns;
pub mod carrier;
pub mod customers;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod imports;
pub mod login_throttle;
pub mod messages;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod reports;
pub mod revocations;
pub mod scheduled_calls;
pub mod state;
pub mod templates;
pub mod tenant_webhooks;
pub mod text;
pub mod voicemails;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use switchboard_core::Settings;
use switchboard_core::auth::TokenKeys;
use switchboard_core::events::EventPublisher;
use switchboard_core::presence::PresenceStore;

pub use state::AppState;

use crate::error::ApiError;

/// Every API route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(ops::router())
        .merge(auth::router())
        .merge(customers::router())
        .merge(agents::router())
        .merge(calls::router())
        .merge(messages::router())
        .merge(templates::router())
        .merge(campaigns::router())
        .merge(imports::router())
        .merge(scheduled_calls::router())
        .merge(voicemails::router())
        .merge(reports::router())
        .merge(carrier::router())
        .merge(tenant_webhooks::router())
}

/// The OpenAPI document for every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = router().into_openapi();
    openapi::add_common_errors(&mut doc);
    doc
}

/// Builds the state: pools (connecting lazily), token keys, publisher.
pub async fn state(settings: Arc<Settings>) -> anyhow::Result<AppState> {
    let db = switchboard_core::db::connect(&settings)
        .await
        .context("connecting to PostgreSQL")?;
    let batches = switchboard_core::db::connect_for_batches(&settings, carrier::BATCH_CONNECTIONS)
        .await
        .context("connecting the carrier callbacks' lanes to PostgreSQL")?;
    let redis = switchboard_core::redis::pool(&settings).context("creating the Redis pool")?;
    Ok(AppState::new(state::Shared {
        receipts: carrier::receipts::start(&batches),
        call_statuses: carrier::call_statuses::start(&batches),
        caches: cache::Caches::start(&db, &settings),
        revocations: revocations::Revocations::start(&redis, &settings),
        tokens: Arc::new(TokenKeys::new(&settings)),
        events: EventPublisher::new(redis.clone(), settings.clone()),
        presence: PresenceStore::new(redis.clone(), settings.clone()),
        metrics: ops::prometheus(),
        password_checks: Arc::new(auth::PasswordChecks::new(
            std::thread::available_parallelism().map_or(2, usize::from),
            settings.login_queue_max,
        )),
        db,
        batches,
        redis,
        settings,
    }))
}

/// The complete application: routes, docs, fallbacks and middleware.
pub fn app(state: AppState) -> Router {
    let (routes, mut openapi) = router().split_for_parts();
    openapi::add_common_errors(&mut openapi);
    let body_limit = state.settings.max_body_bytes;
    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(compression())
        .layer(axum::middleware::from_fn(middleware::track_metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .with_state(state)
}

/// gzip or brotli (quality 4), as the client accepts, for bodies of at least
/// 1 KiB: lists, reports, exports, the OpenAPI document and the docs' assets.
/// Smaller answers (`/v1/me`, a single record, errors) cost more to compress
/// than they save on the wire, and go as they are.
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(
        SizeAbove::new(1024)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// Serves the API on `listener` until `shutdown` resolves, then drains
/// in-flight requests and closes the pools.
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = state.db.clone();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "api listening");
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving the API")?;
    db.close().await;
    tracing::info!("api stopped");
    Ok(())
}

/// Serves the API on `listener` (the caller binds `settings.api_addr`:
/// `switchboard::bind`) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    settings.ensure_production_safe()?;
    let state = state(settings.clone()).await?;
    ensure_no_demo_data_in_production(&state).await?;
    serve_on(listener, state, shutdown).await
}

/// The demo tenants' credentials are public: production refuses to run with them.
async fn ensure_no_demo_data_in_production(state: &AppState) -> anyhow::Result<()> {
    if !state.settings.is_production() {
        return Ok(());
    }
    let demo: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE carrier_auth_token IN ('acme-carrier-token', 'globex-carrier-token'))",
    )
    .fetch_one(&state.db)
    .await
    .context("checking for demo data")?;
    anyhow::ensure!(
        !demo,
        "refusing to start in production: the database holds the demo tenants and their public credentials"
    );
    Ok(())
}

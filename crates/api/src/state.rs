//! The one application state every handler receives.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use switchboard_core::{Settings, auth::TokenKeys, events::EventPublisher};

#[derive(Clone)]
pub struct AppState {
    /// Source of truth for every record.
    pub db: PgPool,
    /// Events, revocations, presence, idempotency-free fast state, queues.
    pub redis: deadpool_redis::Pool,
    pub settings: Arc<Settings>,
    /// Issues and verifies agent access tokens.
    pub tokens: Arc<TokenKeys>,
    /// Publishes state changes after commit.
    pub events: EventPublisher,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

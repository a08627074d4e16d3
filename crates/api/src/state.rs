//! The one application state every handler receives.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use switchboard_core::{
    Settings, auth::TokenKeys, events::EventPublisher, presence::PresenceStore,
};

#[derive(Clone)]
pub struct AppState {
    /// Source of truth for every record.
    pub db: PgPool,
    /// Events, revocations and presence.
    pub redis: switchboard_core::redis::Pool,
    pub settings: Arc<Settings>,
    /// Issues and verifies agent access tokens.
    pub tokens: Arc<TokenKeys>,
    /// Publishes state changes after commit.
    pub events: EventPublisher,
    /// Agent presence in Redis, shared with the realtime server.
    pub presence: PresenceStore,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Bounds concurrent argon2 password checks (each holds its memory cost,
    /// 19 MiB by default): a login burst queues instead of hashing all at
    /// once (270 logins in 10 s once took the process to 6 GiB), and a
    /// queue too long is refused.
    pub password_checks: Arc<crate::auth::PasswordChecks>,
    /// SMS delivery receipts, looked up and applied in groups.
    pub receipts: crate::webhooks::receipts::Receipts,
    /// Call status callbacks, looked up and applied in groups.
    pub call_statuses: crate::webhooks::call_statuses::CallStatuses,
    /// The principal's tenant and agent and customers by phone, kept
    /// coherent by PostgreSQL notifications.
    pub caches: crate::cache::Caches,
    /// Revoked access tokens, mirrored from Redis.
    pub revocations: crate::revocations::Revocations,
}

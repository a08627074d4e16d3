//! The one application state every handler receives.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use switchboard_core::Settings;
use switchboard_core::auth::TokenKeys;
use switchboard_core::events::EventPublisher;
use switchboard_core::presence::PresenceStore;

/// What every handler shares, behind one `Arc`: axum clones the state for
/// each request (and each extractor that takes it), and a profile of the
/// phone lookup at 16 000 req/s showed cloning and dropping the dozen
/// reference-counted fields this used to carry at 3.6 % of the API's CPU.
/// Fields are reached through `Deref` (`state.db`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared services.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The services and settings behind an [`AppState`].
pub struct Shared {
    /// Source of truth for every record.
    pub db: PgPool,
    /// The carrier callback lanes' own connections (generic plans; see
    /// `switchboard_core::db::connect_for_batches`), shown in `/metrics`.
    pub batches: PgPool,
    /// Events, revocations and presence.
    pub redis: switchboard_core::redis::Pool,
    /// The process's settings.
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
    pub receipts: crate::carrier::receipts::Receipts,
    /// Call status callbacks, looked up and applied in groups.
    pub(crate) call_statuses: crate::carrier::call_statuses::CallStatuses,
    /// The principal's tenant and agent and customers by phone, kept
    /// coherent by PostgreSQL notifications.
    pub caches: crate::cache::Caches,
    /// Revoked access tokens, mirrored from Redis.
    pub revocations: crate::revocations::Revocations,
}

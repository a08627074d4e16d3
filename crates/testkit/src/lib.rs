//! What the tests share, so each thing a test needs has one owner: real
//! services on port 0 ([`api`], [`realtime`], [`stack`] for the worker),
//! each over its own freshly migrated database and Redis prefix, both
//! removed on drop ([`db`]); tenant and agent fixtures; the Socket.IO client
//! ([`sio`], the load suite's too); a tenant's published events
//! ([`events`]); and small HTTP helpers ([`http`]).
//!
//! A dev-dependency only: nothing here ships.

#![warn(missing_docs)]

pub mod api;
pub mod db;
pub mod events;
pub mod http;
pub mod realtime;
pub mod sio;
pub mod stack;

pub use api::{
    ApiServer, PASSWORD, Peer, TestApp, TestTenant, expect_error, json_of, openapi_json,
    operations, spawn_app, spawn_app_with,
};
pub use db::{TestDatabase, test_settings};
pub use events::TenantEvents;
pub use realtime::{KillableServer, RealtimeServer, eventually, test_config, wait_ready};
pub use sio::SioClient;
pub use stack::{Stack, fast, is_terminal_message};

/// Polls `probe` every 5 ms until it returns `Some`, for at most `within`;
/// panics with `what` if it never does. For changes that reach another
/// instance through a notification, whose delivery is not instantaneous.
pub async fn within<T, F: Future<Output = Option<T>>>(
    within: std::time::Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

//! The realtime server's one shared state, and who each socket belongs to.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use uuid::Uuid;

use switchboard_core::{
    Settings,
    auth::{Role, TokenKeys},
    presence::PresenceStore,
};

/// Timings of the realtime server. The defaults suit production; tests
/// shrink them so expiry happens within a test.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// How often each instance renews its sockets' presence and reaps others'.
    pub heartbeat_interval: Duration,
    /// How long a socket counts as live without a renewal (several
    /// intervals, so one slow round does not flap an agent offline).
    pub socket_ttl: Duration,
    /// How long a gap in one call's versions may hold its later events.
    pub reorder_window: Duration,
    /// Engine.IO ping interval (client liveness).
    pub ping_interval: Duration,
    /// How long a client may take to answer a ping before it is dropped.
    pub ping_timeout: Duration,
    /// The longest a graceful shutdown waits for connections to finish.
    pub drain_timeout: Duration,
    /// Packets queued per socket before emits to it are dropped: bursts
    /// (a campaign, a carrier storm) must fit, or events are lost.
    pub socket_buffer: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(10),
            socket_ttl: Duration::from_secs(35),
            reorder_window: Duration::from_millis(250),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(10),
            socket_buffer: 4096,
        }
    }
}

/// Who a socket is, from its verified token (a socket extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The agent's tenant: the events it may hear.
    pub tenant_id: Uuid,
    /// The agent the token was issued to.
    pub agent_id: Uuid,
    /// The agent's role when the token was issued.
    pub role: Role,
    /// The token's id, to find the socket when the token is revoked.
    pub jti: Uuid,
    /// The token's `exp` (Unix seconds): the socket is disconnected then.
    pub expires_at: i64,
}

impl Identity {
    /// The room every socket of the agent's tenant joins.
    pub fn tenant_room(&self) -> String {
        tenant_room(self.tenant_id)
    }

    /// The room of this agent's own sockets.
    pub fn agent_room(&self) -> String {
        format!("agent:{}", self.agent_id)
    }
}

/// The room of a tenant's sockets: every event of the tenant goes there.
pub fn tenant_room(tenant_id: Uuid) -> String {
    format!("tenant:{tenant_id}")
}

/// The room of the sockets watching one call (`call:watch`).
pub fn call_room(call_id: Uuid) -> String {
    format!("call:{call_id}")
}

/// Cheap to clone: one `Arc` around everything.
#[derive(Clone)]
pub struct RealtimeState(Arc<Inner>);

struct Inner {
    settings: Arc<Settings>,
    config: RealtimeConfig,
    tokens: TokenKeys,
    /// `call:watch` checks a call belongs to the socket's tenant.
    db: PgPool,
    /// Revocation checks and readiness.
    redis: switchboard_core::redis::Pool,
    presence: PresenceStore,
    metrics: PrometheusHandle,
    /// Whether the relay is subscribed: until then events would be lost, so
    /// the instance is not ready.
    relay_subscribed: AtomicBool,
    /// This instance's sockets (socket id → identity, when admitted), for
    /// heartbeats and a clean shutdown. A std mutex: never held across an await.
    local: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl RealtimeState {
    /// Connects the pools (lazily) and builds the state an instance shares.
    pub async fn new(settings: Arc<Settings>, config: RealtimeConfig) -> anyhow::Result<Self> {
        let db = switchboard_core::db::connect(&settings)
            .await
            .context("connecting to PostgreSQL")?;
        let redis = switchboard_core::redis::pool(&settings).context("creating the Redis pool")?;
        let presence =
            PresenceStore::new(redis.clone(), settings.clone()).with_socket_ttl(config.socket_ttl);
        Ok(Self(Arc::new(Inner {
            tokens: TokenKeys::new(&settings),
            metrics: crate::ops::prometheus(),
            relay_subscribed: AtomicBool::new(false),
            local: Mutex::new(HashMap::new()),
            presence,
            db,
            redis,
            settings,
            config,
        })))
    }

    /// The process's settings.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.0.settings
    }

    /// The realtime service's own tuning.
    pub fn config(&self) -> &RealtimeConfig {
        &self.0.config
    }

    /// The keys access tokens are verified with.
    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
    }

    /// The PostgreSQL pool.
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }

    /// The Redis pool.
    pub fn redis(&self) -> &switchboard_core::redis::Pool {
        &self.0.redis
    }

    /// Agents' presence, kept in Redis.
    pub fn presence(&self) -> &PresenceStore {
        &self.0.presence
    }

    /// The Prometheus recorder `/metrics` renders.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// Whether the event relay is subscribed (until then the instance is
    /// not ready: events would be lost).
    pub fn relay_subscribed(&self) -> bool {
        self.0.relay_subscribed.load(Ordering::Acquire)
    }

    pub(crate) fn set_relay_subscribed(&self, subscribed: bool) {
        self.0.relay_subscribed.store(subscribed, Ordering::Release);
    }

    pub(crate) fn track(&self, sid: String, identity: Identity) {
        let count = {
            let mut local = self.0.local.lock().unwrap_or_else(|p| p.into_inner());
            local.insert(sid, (identity, Instant::now()));
            local.len()
        };
        metrics::gauge!("realtime_connected_sockets").set(count as f64);
    }

    pub(crate) fn untrack(&self, sid: &str) {
        let count = {
            let mut local = self.0.local.lock().unwrap_or_else(|p| p.into_inner());
            local.remove(sid);
            local.len()
        };
        metrics::gauge!("realtime_connected_sockets").set(count as f64);
    }

    /// A snapshot of this instance's sockets.
    pub fn local_sockets(&self) -> Vec<(String, Identity)> {
        let local = self.0.local.lock().unwrap_or_else(|p| p.into_inner());
        local.iter().map(|(k, (v, _))| (k.clone(), *v)).collect()
    }

    /// Like [`Self::local_sockets`], with when each socket was admitted.
    pub(crate) fn local_sockets_since(&self) -> Vec<(String, Identity, Instant)> {
        let local = self.0.local.lock().unwrap_or_else(|p| p.into_inner());
        local
            .iter()
            .map(|(k, (v, at))| (k.clone(), *v, *at))
            .collect()
    }

    pub(crate) async fn close(&self) {
        self.0.db.close().await;
    }
}

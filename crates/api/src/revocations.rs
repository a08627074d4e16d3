//! The revoked access tokens, mirrored in memory so an authenticated request
//! costs no Redis round trip.
//!
//! Redis stays the record (`revoked:<jti>`, kept until the token would have
//! expired, written by logout on any instance) and every revocation is
//! published on the revocations channel. Each API instance subscribes, then
//! loads the whole list, and from then on answers from memory: a logout on
//! this instance takes effect here at once, on another within the
//! publication's delivery (well under a millisecond on one host). While the
//! subscription is down the mirror may be missing revocations, so every
//! check goes to Redis again, as it did before the mirror, and fails closed
//! when Redis is unreachable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, AsyncCommands};
use futures::StreamExt;
use secrecy::ExposeSecret;
use switchboard_core::redis::Pool;
use switchboard_core::{Settings, auth};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Shared by every clone of the API's state; its subscriber stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// How long a revoked token could still verify (its lifetime), after
    /// which its entry is useless.
    keep: Duration,
    _stop: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    /// Whether the mirror holds every revocation (subscribed and loaded).
    live: bool,
    revoked: HashMap<Uuid, Instant>,
}

impl Revocations {
    /// Starts mirroring; until the first load completes every check asks Redis.
    pub fn start(redis: &Pool, settings: &Arc<Settings>) -> Self {
        let (stop, stopped) = oneshot::channel();
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            keep: settings.jwt_ttl + Duration::from_secs(60),
            _stop: stop,
        });
        metrics::gauge!("revocations_mirror_up").set(0.0);
        tokio::spawn(mirror(
            redis.clone(),
            settings.clone(),
            Arc::downgrade(&inner),
            stopped,
        ));
        Self { inner }
    }

    /// Whether the token `jti` was revoked: from memory while the mirror is
    /// live, else from Redis.
    pub async fn is_revoked(
        &self,
        redis: &Pool,
        settings: &Settings,
        jti: Uuid,
    ) -> anyhow::Result<bool> {
        {
            let state = self.inner.state();
            if state.live {
                return Ok(state.revoked.contains_key(&jti));
            }
        }
        auth::is_revoked(redis, settings, jti).await
    }

    /// Records a revocation this instance just made (and published).
    pub fn note(&self, jti: Uuid) {
        self.inner.insert(jti);
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain map operations under the lock cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, jti: Uuid) {
        let keep = self.keep;
        let mut state = self.state();
        state.revoked.insert(jti, Instant::now() + keep);
    }

    fn prune(&self) {
        let now = Instant::now();
        self.state().revoked.retain(|_, until| *until > now);
    }

    fn set_live(&self, live: bool) {
        self.state().live = live;
        metrics::gauge!("revocations_mirror_up").set(if live { 1.0 } else { 0.0 });
    }
}

/// Subscribes, loads the list, then applies each publication until stopped;
/// reconnects (checks going to Redis meanwhile) when the subscription drops.
async fn mirror(
    redis: Pool,
    settings: Arc<Settings>,
    inner: Weak<Inner>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            _ = &mut stopped => return,
            result = follow(&redis, &settings, &inner, &mut backoff) => result,
        };
        let Some(live) = inner.upgrade() else { return };
        live.set_live(false);
        drop(live);
        if let Err(error) = result {
            metrics::counter!("redis_errors_total", "op" => "revocations_mirror").increment(1);
            tracing::error!(%error, "revocation mirror lost Redis; checking each token in Redis until it is back");
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn follow(
    redis: &Pool,
    settings: &Settings,
    inner: &Weak<Inner>,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let client = redis::Client::open(settings.redis_url.expose_secret())?;
    let mut pubsub = client.get_async_pubsub().await?;
    let channel = auth::revocations_channel(settings);
    pubsub.subscribe(&channel).await?;
    // Subscribed first, loaded second: a revocation made in between is in
    // the load or in the stream, possibly both.
    let listed = load(redis, settings).await?;
    {
        let Some(inner) = inner.upgrade() else {
            return Ok(());
        };
        for jti in listed {
            inner.insert(jti);
        }
        inner.set_live(true);
    }
    *backoff = Duration::from_millis(100);
    let mut messages = pubsub.on_message();
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    anyhow::bail!("the revocations subscription closed");
                };
                let Some(inner) = inner.upgrade() else { return Ok(()) };
                match std::str::from_utf8(message.get_payload_bytes()).ok().and_then(|s| s.parse().ok()) {
                    Some(jti) => inner.insert(jti),
                    None => tracing::warn!("ignoring a malformed revocation"),
                }
            }
            _ = prune.tick() => {
                let Some(inner) = inner.upgrade() else { return Ok(()) };
                inner.prune();
            }
        }
    }
}

/// Every revoked token on the list (SCAN, so Redis is never blocked).
async fn load(redis: &Pool, settings: &Settings) -> anyhow::Result<Vec<Uuid>> {
    let prefix = auth::revocation_key(settings, Uuid::nil());
    let prefix = prefix.trim_end_matches(&Uuid::nil().to_string());
    let mut conn = redis.get().await?;
    let mut keys: redis::AsyncIter<'_, String> =
        conn.scan_match(format!("{}*", escape_glob(prefix))).await?;
    let mut listed = Vec::new();
    while let Some(key) = keys.next_item().await {
        if let Some(jti) = key?.strip_prefix(prefix).and_then(|s| s.parse().ok()) {
            listed.push(jti);
        }
    }
    Ok(listed)
}

/// `prefix` as a literal in a Redis glob pattern.
fn escape_glob(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

//! Read caches for the lookups every request or inbound contact makes: the
//! principal's tenant and agent (`/v1/me`, token checks) and customers by
//! phone (the inbound screen-pop, `GET /v1/customers?phone=`).
//!
//! Each API instance keeps its own entries in memory: a hit costs no round
//! trip at all, which is the point (a PostgreSQL or Redis round trip costs
//! more CPU than the rest of such a request). Coherence across instances
//! comes from PostgreSQL: triggers on the cached tables `NOTIFY
//! switchboard_cache` with the keys a statement changed (see the migration
//! `cache_invalidation`), and every instance listens. A notification is
//! delivered only after its transaction commits, whoever wrote (this API,
//! another instance, the worker's imports, an operator), so an entry is
//! dropped as soon as a newer value is visible, a few milliseconds at most.
//!
//! Two races are closed:
//! - A fill that read the old row must not outlive the invalidation that
//!   followed it: every invalidation bumps a generation, and a fill started
//!   under an older generation is discarded ([`Cache::ticket`]).
//! - Notifications lost while the listening connection was down: while it
//!   is down nothing is served from or stored in the caches, and they are
//!   emptied when it comes back (so `cache_listener_up` 0 costs speed, never
//!   correctness). [`Settings::cache_ttl`] bounds an entry's age besides.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use switchboard_core::Settings;
use switchboard_core::memo::FastHasher;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::auth::{Agent, Tenant};
use crate::customers::Customer;

/// The channel the triggers notify.
pub const CHANNEL: &str = "switchboard_cache";

/// Entries one cache holds at most; when full, expired entries go first,
/// then everything (an instance refills its hot keys within a second).
const CAPACITY: usize = 50_000;

/// One in-memory cache; see the module docs for its coherence rules.
pub struct Cache<K, V> {
    name: &'static str,
    ttl: Duration,
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    entries: HashMap<K, (Instant, V), FastHasher>,
    /// Bumped by every invalidation; a fill carries the value it started at.
    generation: u64,
    /// Whether invalidations are arriving (the listener is connected).
    live: bool,
}

/// Taken before reading the source of truth; [`Cache::fill`] stores the
/// value only if nothing was invalidated since.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    fn new(name: &'static str, ttl: Duration) -> Self {
        Self {
            name,
            ttl,
            state: Mutex::new(State {
                entries: HashMap::with_hasher(FastHasher::default()),
                generation: 0,
                live: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        // The lock guards plain map operations, which cannot leave it
        // inconsistent: a panic elsewhere while holding it is harmless.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value, if it is fresh and the cache is live.
    pub fn get(&self, key: &K) -> Option<V> {
        let found = {
            let state = self.state();
            if !state.live {
                return None;
            }
            state
                .entries
                .get(key)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, value)| value.clone())
        };
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("cache_requests_total", "cache" => self.name, "result" => result)
            .increment(1);
        found
    }

    /// Call before reading the row a miss needs.
    pub fn ticket(&self) -> Ticket {
        let state = self.state();
        Ticket(state.live.then_some(state.generation))
    }

    /// Stores what was read under `ticket`, unless an invalidation came
    /// in between (the value may then be the old one).
    pub fn fill(&self, ticket: Ticket, key: K, value: V) {
        let mut state = self.state();
        if !state.live || ticket.0 != Some(state.generation) {
            return;
        }
        if state.entries.len() >= CAPACITY {
            let ttl = self.ttl;
            state.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if state.entries.len() >= CAPACITY {
                state.entries.clear();
                metrics::counter!("cache_evictions_total", "cache" => self.name).increment(1);
            }
        }
        state.entries.insert(key, (Instant::now(), value));
    }

    /// Drops the entries of `keys` (a lookup each, not a scan).
    fn invalidate(&self, keys: impl IntoIterator<Item = K>) {
        let mut state = self.state();
        state.generation += 1;
        for key in keys {
            state.entries.remove(&key);
        }
        metrics::counter!("cache_invalidations_total", "cache" => self.name).increment(1);
    }

    /// Drops every entry `stale` selects (a scan: for writes too large to
    /// name their keys).
    fn invalidate_where(&self, stale: impl Fn(&K) -> bool) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.retain(|key, _| !stale(key));
        metrics::counter!("cache_invalidations_total", "cache" => self.name).increment(1);
    }

    /// Empties the cache and serves from it again only if `live`.
    fn reset(&self, live: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.clear();
        state.live = live;
    }
}

/// Reads through `cache`: a hit answers at once, a miss runs `load` and
/// stores what it found (including "no such row", as `None`).
pub async fn read_through<K, V, E>(
    cache: &Cache<K, V>,
    key: K,
    load: impl Future<Output = Result<V, E>>,
) -> Result<V, E>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    if let Some(value) = cache.get(&key) {
        return Ok(value);
    }
    let ticket = cache.ticket();
    let value = load.await?;
    cache.fill(ticket, key, value.clone());
    Ok(value)
}

/// The API's caches, shared by every clone of the state; the listener
/// that keeps them coherent stops when the last clone is dropped.
#[derive(Clone)]
pub struct Caches {
    inner: Arc<Inner>,
}

/// The caches themselves (see [`Caches`]).
pub struct Inner {
    /// Tenants by id.
    pub tenants: Cache<Uuid, Option<Tenant>>,
    /// Agents by id.
    pub agents: Cache<Uuid, Option<Agent>>,
    /// Customers by (tenant, E.164 phone); `None` caches "nobody has it",
    /// the common case for an inbound call from an unknown number.
    pub customers_by_phone: Cache<(Uuid, String), Option<Customer>>,
    _stop: oneshot::Sender<()>,
}

impl std::ops::Deref for Caches {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Caches {
    /// Creates the caches and starts their listener: one connection of its
    /// own with `db`'s options, outside the pool (a pool of one would
    /// otherwise have nothing left for requests). With a zero TTL the
    /// caches stay off and nothing listens.
    pub fn start(db: &PgPool, settings: &Settings) -> Self {
        let (stop, stopped) = oneshot::channel();
        let ttl = settings.cache_ttl;
        let inner = Arc::new(Inner {
            tenants: Cache::new("tenants", ttl),
            agents: Cache::new("agents", ttl),
            customers_by_phone: Cache::new("customers_by_phone", ttl),
            _stop: stop,
        });
        if !ttl.is_zero() {
            // Down until the listener has connected: an instance that never
            // connects shows it (and its alert fires).
            metrics::gauge!("cache_listener_up").set(0.0);
            let own = PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_lazy_with((*db.connect_options()).clone());
            tokio::spawn(listen(own, Arc::downgrade(&inner), stopped));
        }
        Self { inner }
    }

    fn reset(&self, live: bool) {
        self.tenants.reset(live);
        self.agents.reset(live);
        self.customers_by_phone.reset(live);
    }

    /// Applies one notification from the triggers.
    fn apply(&self, payload: &str) {
        let mut words = payload.split(' ');
        let kind = words.next().unwrap_or_default();
        let keys: Vec<&str> = words.filter(|k| !k.is_empty()).collect();
        let everything = keys.contains(&"*");
        let ids: Vec<Uuid> = keys.iter().filter_map(|k| k.parse().ok()).collect();
        match kind {
            "tenants" if everything => self.tenants.reset(true),
            "tenants" => self.tenants.invalidate(ids),
            "agents" if everything => self.agents.reset(true),
            "agents" => self.agents.invalidate(ids),
            "customers" if everything => self.customers_by_phone.reset(true),
            "customers" => {
                // `<tenant>:<phone>` drops one number, `<tenant>` all of them.
                let (phones, tenants): (Vec<&str>, Vec<&str>) =
                    keys.iter().partition(|k| k.contains(':'));
                let phones = phones.iter().filter_map(|k| {
                    let (tenant, phone) = k.split_once(':')?;
                    Some((tenant.parse().ok()?, phone.to_owned()))
                });
                self.customers_by_phone.invalidate(phones);
                let tenants: Vec<Uuid> = tenants.iter().filter_map(|k| k.parse().ok()).collect();
                if !tenants.is_empty() {
                    self.customers_by_phone
                        .invalidate_where(|(tenant, _)| tenants.contains(tenant));
                }
            }
            _ => {
                // A kind this build does not know (a newer migration): drop
                // everything rather than keep what may be stale.
                tracing::warn!(payload, "unknown cache notification; emptying the caches");
                self.reset(true);
            }
        }
    }
}

/// Keeps the caches coherent until they are dropped: LISTEN, apply each
/// notification; on a lost connection turn them off (and say so), and on
/// reconnecting start them again empty. `db` is the listener's own pool of
/// one connection.
async fn listen(db: PgPool, caches: Weak<Inner>, mut stopped: oneshot::Receiver<()>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = tokio::select! {
            _ = &mut stopped => {
                db.close().await;
                return;
            }
            connected = connect(&db) => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::error!(%error, "cache listener cannot connect; caches stay off");
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let Some(inner) = caches.upgrade() else {
            return;
        };
        Caches { inner }.reset(true);
        metrics::gauge!("cache_listener_up").set(1.0);
        backoff = Duration::from_millis(100);
        loop {
            let received = tokio::select! {
                _ = &mut stopped => return,
                received = listener.try_recv() => received,
            };
            let Some(inner) = caches.upgrade() else {
                return;
            };
            let caches_now = Caches { inner };
            match received {
                Ok(Some(notification)) => caches_now.apply(notification.payload()),
                Ok(None) | Err(_) => {
                    caches_now.reset(false);
                    metrics::gauge!("cache_listener_up").set(0.0);
                    if matches!(received, Err(sqlx::Error::PoolClosed)) {
                        return;
                    }
                    tracing::error!(
                        error = ?received.err(),
                        "cache listener lost its connection; caches off until it is back"
                    );
                    break;
                }
            }
        }
    }
}

async fn connect(db: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(db).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_cache() -> Cache<u32, &'static str> {
        let cache = Cache::new("test", Duration::from_secs(60));
        cache.reset(true);
        cache
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_discarded() {
        let cache = live_cache();
        let ticket = cache.ticket();
        cache.invalidate([1]);
        cache.fill(ticket, 1, "old");
        assert_eq!(
            cache.get(&1),
            None,
            "the value read before the write must not stay"
        );
        let ticket = cache.ticket();
        cache.fill(ticket, 1, "new");
        assert_eq!(cache.get(&1), Some("new"));
    }

    #[test]
    fn nothing_is_served_or_stored_while_invalidations_may_be_missed() {
        let cache = live_cache();
        cache.fill(cache.ticket(), 1, "a");
        cache.reset(false);
        assert_eq!(cache.get(&1), None);
        cache.fill(cache.ticket(), 2, "b");
        cache.reset(true);
        assert_eq!(
            cache.get(&2),
            None,
            "a fill made while off must not survive"
        );
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = Cache::new("test", Duration::ZERO);
        cache.reset(true);
        cache.fill(cache.ticket(), 1, "a");
        assert_eq!(cache.get(&1), None);
    }
}

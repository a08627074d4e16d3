//! Agent presence, kept in Redis so every API and realtime instance sees one
//! truth (nothing here lives in process memory).
//!
//! Layout, all under [`Settings::redis_key`]:
//!
//! - `presence:{tenant}` — hash, agent id → `{"agent_id","status","since"}`;
//! - `presence:{tenant}:available` — sorted set of available agents scored by
//!   when they became available (ms), so the lowest score is the longest idle;
//! - `presence:{tenant}:oncall` — agents who are `busy` *because of calls*
//!   (as opposed to having chosen `busy`), so a call ending only frees those;
//! - `presence:{tenant}:calls:{agent}` — the calls an agent is on;
//! - `presence:{tenant}:sockets:{agent}` — the agent's live sockets (one per
//!   browser tab), scored by when their heartbeat expires;
//! - `presence:sockets` — every socket of every tenant by expiry, so a
//!   reaper finds the sockets of a crashed instance without scanning.
//!
//! Every change runs as one Lua script, so two instances (or two inbound
//! calls) racing on the same agent cannot both win, and only the caller that
//! actually changed a status publishes `presence.changed`. The scripts derive
//! their keys from the prefix they are given: this assumes a standalone Redis
//! (or one hash slot), which is what the deployment uses.

use std::{sync::Arc, sync::OnceLock, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_redis::redis::{self, AsyncCommands};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    Settings,
    events::{Envelope, EventPublisher, EventType},
};

crate::text_enum! {
    /// What an agent can be reached for: `available`, `busy`, `away` or
    /// `offline`.
    pub enum PresenceStatus {
        /// Takes calls: inbound calls go to the longest-idle available agent.
        Available = "available",
        /// Takes no new calls: on (or claimed for) a call, or chosen by the agent.
        Busy = "busy",
        /// Chosen by the agent: takes no calls.
        Away = "away",
        /// Takes no calls: no live socket left, or chosen by the agent (also the
        /// status of an agent never seen).
        Offline = "offline",
    }
}

impl std::str::FromStr for PresenceStatus {
    type Err = PresenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| PresenceError::UnknownStatus(s.to_string()))
    }
}

/// One agent's presence; also the `data` of a `presence.changed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPresence {
    /// The agent's id.
    pub agent_id: Uuid,
    /// The agent's status.
    pub status: PresenceStatus,
    /// When the agent entered this status.
    pub since: DateTime<Utc>,
}

/// The outcome of a write: the agent's presence afterwards, and whether the
/// status changed (and so whether `presence.changed` was published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The agent's presence after the write.
    pub presence: AgentPresence,
    /// Whether the write changed the status.
    pub changed: bool,
}

/// Why a presence read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// No Redis connection could be taken from the pool.
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// A Redis command or script failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A presence read from Redis is not a valid [`AgentPresence`].
    #[error("stored presence is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A status name that is not `available`, `busy`, `away` or `offline`.
    #[error("unknown presence status {0:?}")]
    UnknownStatus(String),
}

/// How long a socket stays live without a heartbeat, unless configured.
pub const DEFAULT_SOCKET_TTL: Duration = Duration::from_secs(30);

/// How many expired sockets one reaper pass handles (it runs again soon).
const REAP_BATCH: usize = 500;

/// Calls an agent is on are forgotten after this long without news, so a
/// lost terminal event cannot pin the agent's call set forever.
const CALLS_TTL_SECS: u64 = 12 * 3600;

/// Shared by every script: ARGV[1] = prefix, ARGV[2] = now (ms),
/// ARGV[3] = now (RFC 3339, the `since` of any change). `AVAILABLE`, `BUSY`
/// and `OFFLINE` are the statuses' names (see [`Script::source`]).
const PRELUDE: &str = r#"
local prefix = ARGV[1]
local now_ms = tonumber(ARGV[2])
local since = ARGV[3]
local function k(tenant, suffix)
  if suffix then return prefix .. ':presence:' .. tenant .. ':' .. suffix end
  return prefix .. ':presence:' .. tenant
end
local function current(tenant, agent)
  local raw = redis.call('HGET', k(tenant), agent)
  if not raw then return OFFLINE end
  return cjson.decode(raw).status
end
-- Moves an agent to `status`; `by_call` 1/0 marks or clears "busy because of
-- calls". Returns the new JSON when the status changed, '' otherwise.
local function transition(tenant, agent, status, by_call)
  if by_call == 1 then redis.call('SADD', k(tenant, 'oncall'), agent)
  elseif by_call == 0 then redis.call('SREM', k(tenant, 'oncall'), agent) end
  if current(tenant, agent) == status then return '' end
  local json = cjson.encode({agent_id = agent, status = status, since = since})
  redis.call('HSET', k(tenant), agent, json)
  if status == AVAILABLE then
    redis.call('ZADD', k(tenant, 'available'), now_ms, agent)
  else
    redis.call('ZREM', k(tenant, 'available'), agent)
  end
  return json
end
local function live_sockets(tenant, agent)
  local key = k(tenant, 'sockets:' .. agent)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  return redis.call('ZCARD', key)
end
"#;

/// Opens the scripts that follow one agent's calls: ARGV[4] tenant, [5]
/// agent, [6] call; `calls` is the set of calls the agent is on.
const CALL_HEAD: &str = r#"
local tenant, agent, call = ARGV[4], ARGV[5], ARGV[6]
local calls = k(tenant, 'calls:' .. agent)
"#;

/// A script: [`PRELUDE`], an optional head shared by a family of scripts,
/// then its own body.
struct Script {
    head: &'static str,
    body: &'static str,
    source: OnceLock<String>,
}

impl Script {
    const fn new(body: &'static str) -> Self {
        Self::with_head("", body)
    }

    /// A script of the calls family (see [`CALL_HEAD`]).
    const fn per_call(body: &'static str) -> Self {
        Self::with_head(CALL_HEAD, body)
    }

    const fn with_head(head: &'static str, body: &'static str) -> Self {
        Self {
            head,
            body,
            source: OnceLock::new(),
        }
    }

    /// The full source, built on first use: the statuses' names as Lua
    /// constants, taken from [`PresenceStatus`] so that the scripts write
    /// the names clients are documented, then [`PRELUDE`], head and body.
    /// Sent with EVAL, which Redis caches by digest; the `script` feature of
    /// the redis crate (EVALSHA) is not enabled here.
    fn source(&self) -> &str {
        self.source.get_or_init(|| {
            let (available, busy, offline) = (
                PresenceStatus::Available,
                PresenceStatus::Busy,
                PresenceStatus::Offline,
            );
            format!(
                "local AVAILABLE, BUSY, OFFLINE = '{available}', '{busy}', '{offline}'\n\
                 {PRELUDE}\n{}\n{}",
                self.head, self.body
            )
        })
    }
}

/// ARGV[4] tenant, [5] agent, [6] status.
static SET: Script = Script::new("return transition(ARGV[4], ARGV[5], ARGV[6], 0)");

/// ARGV[4] tenant, [5] agent, [6] socket, [7] expiry (ms), [8] `connect` or
/// `heartbeat`. A heartbeat for a socket the reaper already removed (a long
/// pause) registers it again, as a connect would.
static CONNECT: Script = Script::new(
    r#"
local tenant, agent, socket, expiry = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local added = redis.call('ZADD', k(tenant, 'sockets:' .. agent), expiry, socket)
redis.call('ZADD', prefix .. ':presence:sockets', expiry, tenant .. '|' .. agent .. '|' .. socket)
if ARGV[8] == 'heartbeat' and added == 0 then return '' end
if current(tenant, agent) == OFFLINE then
  return transition(tenant, agent, AVAILABLE, 0)
end
return ''
"#,
);

/// ARGV[4] tenant, [5] agent, [6] socket. Returns {was_last, json}.
static DISCONNECT: Script = Script::new(
    r#"
local tenant, agent, socket = ARGV[4], ARGV[5], ARGV[6]
redis.call('ZREM', k(tenant, 'sockets:' .. agent), socket)
redis.call('ZREM', prefix .. ':presence:sockets', tenant .. '|' .. agent .. '|' .. socket)
if live_sockets(tenant, agent) > 0 then return {0, ''} end
return {1, transition(tenant, agent, OFFLINE, 0)}
"#,
);

/// ARGV[4] batch size. Returns {tenant, json, tenant, json, ...} for agents
/// that went offline.
static REAP: Script = Script::new(
    r#"
local out = {}
local expired = redis.call('ZRANGEBYSCORE', prefix .. ':presence:sockets', '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[4]))
for _, member in ipairs(expired) do
  redis.call('ZREM', prefix .. ':presence:sockets', member)
  local tenant, agent, socket = string.match(member, '^([^|]+)|([^|]+)|(.+)$')
  if tenant then
    redis.call('ZREM', k(tenant, 'sockets:' .. agent), socket)
    if live_sockets(tenant, agent) == 0 then
      local json = transition(tenant, agent, OFFLINE, 0)
      if json ~= '' then
        table.insert(out, tenant)
        table.insert(out, json)
      end
    end
  end
end
return out
"#,
);

/// ARGV[4] tenant. Pops available agents, longest idle first, skipping stale
/// entries, and makes the first still-available one busy (because of a call).
static CLAIM: Script = Script::new(
    r#"
local tenant = ARGV[4]
while true do
  local popped = redis.call('ZPOPMIN', k(tenant, 'available'), 1)
  if #popped == 0 then return '' end
  local agent = popped[1]
  if current(tenant, agent) == AVAILABLE then
    return transition(tenant, agent, BUSY, 1)
  end
end
"#,
);

/// [`CALL_HEAD`], then ARGV[7] calls TTL (s). An agent who is offline stays
/// so (a call does not log anyone in); one who chose `busy` keeps that choice.
static CALL_STARTED: Script = Script::per_call(
    r#"
redis.call('SADD', calls, call)
redis.call('EXPIRE', calls, tonumber(ARGV[7]))
local status = current(tenant, agent)
if status == OFFLINE or status == BUSY then return '' end
return transition(tenant, agent, BUSY, 1)
"#,
);

/// [`CALL_HEAD`]. Frees the agent once their last call ends, only if calls
/// (not the agent) made them busy.
static CALL_ENDED: Script = Script::per_call(
    r#"
redis.call('SREM', calls, call)
if redis.call('SCARD', calls) > 0 then return '' end
if redis.call('SISMEMBER', k(tenant, 'oncall'), agent) == 0 then return '' end
if current(tenant, agent) ~= BUSY then
  redis.call('SREM', k(tenant, 'oncall'), agent)
  return ''
end
return transition(tenant, agent, AVAILABLE, 0)
"#,
);

/// The presence store. Cheap to clone: the pool and settings are handles.
#[derive(Clone)]
pub struct PresenceStore {
    redis: crate::redis::Pool,
    settings: Arc<Settings>,
    events: EventPublisher,
    /// How long a socket counts as live after its last heartbeat.
    socket_ttl: Duration,
}

impl std::fmt::Debug for PresenceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceStore")
            .field("prefix", &self.settings.redis_prefix)
            .field("socket_ttl", &self.socket_ttl)
            .finish_non_exhaustive()
    }
}

impl PresenceStore {
    /// A store on `redis`, with keys under `settings`' prefix, sockets living
    /// [`DEFAULT_SOCKET_TTL`], and its own [`EventPublisher`] for
    /// `presence.changed` (so it must be created inside a Tokio runtime).
    pub fn new(redis: crate::redis::Pool, settings: Arc<Settings>) -> Self {
        Self {
            events: EventPublisher::new(redis.clone(), settings.clone()),
            redis,
            settings,
            socket_ttl: DEFAULT_SOCKET_TTL,
        }
    }

    /// Sockets expire this long after their last heartbeat (heartbeats must
    /// come several times per TTL).
    pub fn with_socket_ttl(mut self, ttl: Duration) -> Self {
        self.socket_ttl = ttl;
        self
    }

    /// How long a socket stays live after its last heartbeat.
    pub fn socket_ttl(&self) -> Duration {
        self.socket_ttl
    }

    fn hash_key(&self, tenant: Uuid) -> String {
        self.settings.redis_key(&format!("presence:{tenant}"))
    }

    /// A prepared invocation with the prelude's arguments filled in.
    fn invocation(&self, script: &Script) -> redis::Cmd {
        let now = Utc::now();
        let mut invocation = redis::cmd("EVAL");
        invocation
            .arg(script.source())
            .arg(0)
            .arg(&self.settings.redis_prefix)
            .arg(now.timestamp_millis())
            .arg(now.to_rfc3339_opts(SecondsFormat::Micros, true));
        invocation
    }

    /// An invocation of a script whose ARGV[4] and [5] are the tenant and
    /// the agent.
    fn for_agent(&self, script: &Script, tenant: Uuid, agent: Uuid) -> redis::Cmd {
        let mut invocation = self.invocation(script);
        invocation.arg(tenant.to_string()).arg(agent.to_string());
        invocation
    }

    /// Runs one script on a pooled connection, returned as soon as it answers.
    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &mut redis::Cmd,
    ) -> Result<T, PresenceError> {
        let mut conn = self.redis.get().await?;
        Ok(cmd.query_async(&mut *conn).await?)
    }

    fn expiry_ms(&self) -> i64 {
        let ttl = i64::try_from(self.socket_ttl.as_millis()).unwrap_or(i64::MAX / 2);
        Utc::now().timestamp_millis().saturating_add(ttl)
    }

    /// The agent's presence, `None` if it was never set (i.e. offline).
    pub async fn get(
        &self,
        tenant: Uuid,
        agent: Uuid,
    ) -> Result<Option<AgentPresence>, PresenceError> {
        let mut conn = self.redis.get().await?;
        let raw: Option<String> = conn.hget(self.hash_key(tenant), agent.to_string()).await?;
        Ok(raw.map(|r| serde_json::from_str(&r)).transpose()?)
    }

    /// The presence of each of `agents`, in their order: `None` for one
    /// never seen (i.e. offline). One `HMGET`, so a page of agents reads
    /// only its own entries, however many agents the tenant has.
    pub async fn of_agents(
        &self,
        tenant: Uuid,
        agents: &[Uuid],
    ) -> Result<Vec<Option<AgentPresence>>, PresenceError> {
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<String> = agents.iter().map(Uuid::to_string).collect();
        let mut conn = self.redis.get().await?;
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.hash_key(tenant))
            .arg(&fields)
            .query_async(&mut *conn)
            .await?;
        Ok(raw
            .iter()
            .map(|json| json.as_deref().map(serde_json::from_str).transpose())
            .collect::<Result<_, _>>()?)
    }

    /// Sets a status the agent chose (which clears any "busy because of
    /// calls" mark).
    pub async fn set(
        &self,
        tenant: Uuid,
        agent: Uuid,
        status: PresenceStatus,
    ) -> Result<PresenceChange, PresenceError> {
        let json: String = self
            .run(self.for_agent(&SET, tenant, agent).arg(status.as_str()))
            .await?;
        self.outcome(tenant, agent, &json).await
    }

    /// Atomically picks the longest-idle available agent and makes them
    /// busy, so two simultaneous inbound calls never get the same agent.
    pub async fn claim_longest_idle(&self, tenant: Uuid) -> Result<Option<Uuid>, PresenceError> {
        let json: String = self
            .run(self.invocation(&CLAIM).arg(tenant.to_string()))
            .await?;
        if json.is_empty() {
            return Ok(None);
        }
        let presence: AgentPresence = serde_json::from_str(&json)?;
        self.publish(tenant, &presence).await;
        Ok(Some(presence.agent_id))
    }

    /// Registers a live socket; an offline agent becomes available.
    pub async fn connect(
        &self,
        tenant: Uuid,
        agent: Uuid,
        socket_id: &str,
    ) -> Result<PresenceChange, PresenceError> {
        self.touch(tenant, agent, socket_id, "connect").await
    }

    /// Extends a socket's life. Returns whether the status changed (only when
    /// the reaper had already given up on the socket).
    pub async fn heartbeat(
        &self,
        tenant: Uuid,
        agent: Uuid,
        socket_id: &str,
    ) -> Result<bool, PresenceError> {
        Ok(self
            .touch(tenant, agent, socket_id, "heartbeat")
            .await?
            .changed)
    }

    async fn touch(
        &self,
        tenant: Uuid,
        agent: Uuid,
        socket_id: &str,
        mode: &str,
    ) -> Result<PresenceChange, PresenceError> {
        let json: String = self
            .run(
                self.for_agent(&CONNECT, tenant, agent)
                    .arg(socket_id)
                    .arg(self.expiry_ms())
                    .arg(mode),
            )
            .await?;
        self.outcome(tenant, agent, &json).await
    }

    /// Forgets a socket. Returns true when it was the agent's last live
    /// socket (the agent is then offline).
    pub async fn disconnect(
        &self,
        tenant: Uuid,
        agent: Uuid,
        socket_id: &str,
    ) -> Result<bool, PresenceError> {
        let (last, json): (i64, String) = self
            .run(self.for_agent(&DISCONNECT, tenant, agent).arg(socket_id))
            .await?;
        self.outcome(tenant, agent, &json).await?;
        Ok(last == 1)
    }

    /// How many live (unexpired) sockets the agent has.
    pub async fn live_sockets(&self, tenant: Uuid, agent: Uuid) -> Result<usize, PresenceError> {
        let mut conn = self.redis.get().await?;
        let key = self
            .settings
            .redis_key(&format!("presence:{tenant}:sockets:{agent}"));
        let now = Utc::now().timestamp_millis();
        let count: usize = conn.zcount(key, format!("({now}"), "+inf").await?;
        Ok(count)
    }

    /// Drops sockets whose heartbeats stopped (their instance crashed) and
    /// returns the agents that went offline because of it, as
    /// `(tenant, presence)`. Safe to run from every instance at once.
    pub async fn reap_expired(&self) -> Result<Vec<(Uuid, AgentPresence)>, PresenceError> {
        let flat: Vec<String> = self.run(self.invocation(&REAP).arg(REAP_BATCH)).await?;
        let mut offline = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let Ok(tenant) = pair[0].parse::<Uuid>() else {
                continue;
            };
            let presence: AgentPresence = serde_json::from_str(&pair[1])?;
            self.publish(tenant, &presence).await;
            offline.push((tenant, presence));
        }
        Ok(offline)
    }

    /// The agent is on `call` (ringing or in progress): busy, unless offline
    /// or already busy by choice.
    pub async fn call_started(
        &self,
        tenant: Uuid,
        agent: Uuid,
        call: Uuid,
    ) -> Result<Option<AgentPresence>, PresenceError> {
        self.on_call(&CALL_STARTED, tenant, agent, call, &[CALLS_TTL_SECS])
            .await
    }

    /// `call` ended: once the agent has no other call, and calls were what
    /// made them busy, they are available again.
    pub async fn call_ended(
        &self,
        tenant: Uuid,
        agent: Uuid,
        call: Uuid,
    ) -> Result<Option<AgentPresence>, PresenceError> {
        self.on_call(&CALL_ENDED, tenant, agent, call, &[]).await
    }

    /// Runs a [`CALL_HEAD`] script for `call`, `more` being its arguments
    /// after the head's, and publishes any change it made.
    async fn on_call(
        &self,
        script: &Script,
        tenant: Uuid,
        agent: Uuid,
        call: Uuid,
        more: &[u64],
    ) -> Result<Option<AgentPresence>, PresenceError> {
        let mut invocation = self.for_agent(script, tenant, agent);
        invocation.arg(call.to_string()).arg(more);
        let json: String = self.run(&mut invocation).await?;
        self.changed(tenant, &json).await
    }

    /// A script's answer ('' = unchanged, JSON = the new presence): the new
    /// presence, published, or `None`. Calls move presence thousands of
    /// times a second in a carrier storm; their callers need only the
    /// change, so an unchanged answer costs no second round trip.
    async fn changed(
        &self,
        tenant: Uuid,
        json: &str,
    ) -> Result<Option<AgentPresence>, PresenceError> {
        if json.is_empty() {
            return Ok(None);
        }
        let presence: AgentPresence = serde_json::from_str(json)?;
        self.publish(tenant, &presence).await;
        Ok(Some(presence))
    }

    /// Turns a script's answer ('' = unchanged, JSON = the new presence) into
    /// a [`PresenceChange`], publishing the change.
    async fn outcome(
        &self,
        tenant: Uuid,
        agent: Uuid,
        json: &str,
    ) -> Result<PresenceChange, PresenceError> {
        if let Some(presence) = self.changed(tenant, json).await? {
            return Ok(PresenceChange {
                presence,
                changed: true,
            });
        }
        let presence = self.get(tenant, agent).await?.unwrap_or(AgentPresence {
            agent_id: agent,
            status: PresenceStatus::Offline,
            since: DateTime::<Utc>::UNIX_EPOCH,
        });
        Ok(PresenceChange {
            presence,
            changed: false,
        })
    }

    async fn publish(&self, tenant: Uuid, presence: &AgentPresence) {
        self.events
            .publish_after_commit(Envelope::new(tenant, EventType::PresenceChanged, presence))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on the local Redis under a prefix no other test uses.
    fn store(ttl: Duration) -> PresenceStore {
        let mut settings = Settings::from_env().unwrap_or_default();
        settings.redis_prefix = format!("sbtest:{}", Uuid::new_v4().simple());
        let settings = Arc::new(settings);
        let pool = crate::redis::pool(&settings).expect("redis pool");
        PresenceStore::new(pool, settings).with_socket_ttl(ttl)
    }

    async fn status(store: &PresenceStore, tenant: Uuid, agent: Uuid) -> PresenceStatus {
        store
            .get(tenant, agent)
            .await
            .expect("get")
            .map_or(PresenceStatus::Offline, |p| p.status)
    }

    #[tokio::test]
    async fn presence_set_reports_a_change_only_when_the_status_changes() {
        let store = store(DEFAULT_SOCKET_TTL);
        let (tenant, agent) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(store.get(tenant, agent).await.unwrap(), None);
        let first = store
            .set(tenant, agent, PresenceStatus::Away)
            .await
            .unwrap();
        assert!(first.changed);
        assert_eq!(first.presence.status, PresenceStatus::Away);
        assert_eq!(first.presence.agent_id, agent);
        let again = store
            .set(tenant, agent, PresenceStatus::Away)
            .await
            .unwrap();
        assert!(!again.changed);
        assert_eq!(again.presence, first.presence);
        let never_seen = Uuid::now_v7();
        let read = store.of_agents(tenant, &[never_seen, agent]).await.unwrap();
        assert_eq!(read, vec![None, Some(first.presence)]);
        let elsewhere = store.of_agents(Uuid::now_v7(), &[agent]).await.unwrap();
        assert_eq!(elsewhere, vec![None]);
    }

    #[tokio::test]
    async fn claim_takes_the_longest_idle_agent_and_never_the_same_one_twice() {
        let store = store(DEFAULT_SOCKET_TTL);
        let tenant = Uuid::now_v7();
        let agents: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for agent in &agents {
            store
                .set(tenant, *agent, PresenceStatus::Available)
                .await
                .unwrap();
            // Distinct scores: availability is ordered by the millisecond.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        // An agent who went away is not claimable even though they were first.
        store
            .set(tenant, agents[0], PresenceStatus::Away)
            .await
            .unwrap();

        let claims = futures_join(&store, tenant, 4).await;
        let mut won: Vec<Uuid> = claims.iter().flatten().copied().collect();
        assert_eq!(claims.iter().filter(|c| c.is_none()).count(), 2);
        won.sort();
        let mut expected = vec![agents[1], agents[2]];
        expected.sort();
        assert_eq!(won, expected, "each available agent claimed exactly once");
        for agent in &agents[1..] {
            assert_eq!(status(&store, tenant, *agent).await, PresenceStatus::Busy);
        }
        assert_eq!(store.claim_longest_idle(tenant).await.unwrap(), None);
    }

    /// Runs `n` claims concurrently.
    async fn futures_join(store: &PresenceStore, tenant: Uuid, n: usize) -> Vec<Option<Uuid>> {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.claim_longest_idle(tenant).await.unwrap() })
            })
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn longest_idle_is_the_agent_available_for_the_longest_time() {
        let store = store(DEFAULT_SOCKET_TTL);
        let tenant = Uuid::now_v7();
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        store
            .set(tenant, first, PresenceStatus::Available)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        store
            .set(tenant, second, PresenceStatus::Available)
            .await
            .unwrap();
        assert_eq!(store.claim_longest_idle(tenant).await.unwrap(), Some(first));
        assert_eq!(
            store.claim_longest_idle(tenant).await.unwrap(),
            Some(second)
        );
    }

    #[tokio::test]
    async fn an_agent_goes_offline_only_when_the_last_tab_disconnects() {
        let store = store(DEFAULT_SOCKET_TTL);
        let (tenant, agent) = (Uuid::now_v7(), Uuid::now_v7());
        let connected = store.connect(tenant, agent, "tab-1").await.unwrap();
        assert!(connected.changed);
        assert_eq!(connected.presence.status, PresenceStatus::Available);
        assert!(!store.connect(tenant, agent, "tab-2").await.unwrap().changed);
        assert_eq!(store.live_sockets(tenant, agent).await.unwrap(), 2);

        assert!(!store.disconnect(tenant, agent, "tab-1").await.unwrap());
        assert_eq!(
            status(&store, tenant, agent).await,
            PresenceStatus::Available
        );
        assert!(store.disconnect(tenant, agent, "tab-2").await.unwrap());
        assert_eq!(status(&store, tenant, agent).await, PresenceStatus::Offline);
        // Offline agents are not routable.
        assert_eq!(store.claim_longest_idle(tenant).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_chosen_status_survives_new_tabs_and_heartbeats() {
        let store = store(DEFAULT_SOCKET_TTL);
        let (tenant, agent) = (Uuid::now_v7(), Uuid::now_v7());
        store.connect(tenant, agent, "tab-1").await.unwrap();
        store
            .set(tenant, agent, PresenceStatus::Away)
            .await
            .unwrap();
        assert!(!store.connect(tenant, agent, "tab-2").await.unwrap().changed);
        assert!(!store.heartbeat(tenant, agent, "tab-1").await.unwrap());
        assert_eq!(status(&store, tenant, agent).await, PresenceStatus::Away);
    }

    #[tokio::test]
    async fn sockets_without_heartbeats_are_reaped_and_their_agent_goes_offline() {
        let store = store(Duration::from_millis(200));
        let (tenant, crashed, alive) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        store.connect(tenant, crashed, "dead-socket").await.unwrap();
        store.connect(tenant, alive, "live-socket").await.unwrap();
        // Keep one socket alive with heartbeats while the other's expire.
        let mut reaped = Vec::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.heartbeat(tenant, alive, "live-socket").await.unwrap();
            reaped.extend(store.reap_expired().await.unwrap());
            if !reaped.is_empty() {
                break;
            }
        }
        assert_eq!(reaped.len(), 1, "{reaped:?}");
        assert_eq!(reaped[0].0, tenant);
        assert_eq!(reaped[0].1.agent_id, crashed);
        assert_eq!(reaped[0].1.status, PresenceStatus::Offline);
        assert_eq!(
            status(&store, tenant, crashed).await,
            PresenceStatus::Offline
        );
        assert_eq!(
            status(&store, tenant, alive).await,
            PresenceStatus::Available
        );
        // A second pass (another instance) finds nothing more to do.
        assert!(store.reap_expired().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn calls_make_an_agent_busy_and_free_them_after_the_last_call() {
        let store = store(DEFAULT_SOCKET_TTL);
        let (tenant, agent) = (Uuid::now_v7(), Uuid::now_v7());
        let (call_1, call_2) = (Uuid::now_v7(), Uuid::now_v7());
        store.connect(tenant, agent, "tab").await.unwrap();
        let first = store.call_started(tenant, agent, call_1).await.unwrap();
        assert!(first.is_some(), "the first call makes the agent busy");
        let second = store.call_started(tenant, agent, call_2).await.unwrap();
        assert!(second.is_none(), "a second call changes nothing");
        assert_eq!(status(&store, tenant, agent).await, PresenceStatus::Busy);
        let one_left = store.call_ended(tenant, agent, call_1).await.unwrap();
        assert!(one_left.is_none(), "the agent is still on a call");
        assert_eq!(status(&store, tenant, agent).await, PresenceStatus::Busy);
        let freed = store.call_ended(tenant, agent, call_2).await.unwrap();
        assert_eq!(
            freed.map(|presence| presence.status),
            Some(PresenceStatus::Available)
        );
        let duplicate = store.call_ended(tenant, agent, call_2).await.unwrap();
        assert!(
            duplicate.is_none(),
            "a duplicate terminal event changes nothing"
        );
    }

    #[tokio::test]
    async fn a_call_ending_does_not_override_a_busy_the_agent_chose() {
        let store = store(DEFAULT_SOCKET_TTL);
        let (tenant, agent, call) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        store.connect(tenant, agent, "tab").await.unwrap();
        store
            .set(tenant, agent, PresenceStatus::Busy)
            .await
            .unwrap();
        store.call_started(tenant, agent, call).await.unwrap();
        store.call_ended(tenant, agent, call).await.unwrap();
        assert_eq!(status(&store, tenant, agent).await, PresenceStatus::Busy);

        // Nor does it bring an offline agent online.
        let other = Uuid::now_v7();
        store.call_started(tenant, other, call).await.unwrap();
        store.call_ended(tenant, other, call).await.unwrap();
        assert_eq!(status(&store, tenant, other).await, PresenceStatus::Offline);
    }

    #[tokio::test]
    async fn a_claimed_agent_is_available_again_when_the_call_ends() {
        let store = store(DEFAULT_SOCKET_TTL);
        let (tenant, agent, call) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        store.connect(tenant, agent, "tab").await.unwrap();
        assert_eq!(store.claim_longest_idle(tenant).await.unwrap(), Some(agent));
        store.call_started(tenant, agent, call).await.unwrap();
        store.call_ended(tenant, agent, call).await.unwrap();
        assert_eq!(
            status(&store, tenant, agent).await,
            PresenceStatus::Available
        );
    }

    #[test]
    fn statuses_serialise_in_lowercase() {
        assert_eq!(
            serde_json::to_string(&PresenceStatus::Available).unwrap(),
            "\"available\""
        );
        assert_eq!(
            "away".parse::<PresenceStatus>().unwrap(),
            PresenceStatus::Away
        );
        assert!("sleeping".parse::<PresenceStatus>().is_err());
    }
}

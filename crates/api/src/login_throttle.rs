//! Login throttling in Redis, shared by every API instance.
//!
//! Failed logins are kept as sliding-window logs (one sorted set per key,
//! scored by Redis' own clock so instances with skewed clocks agree):
//! - per account (the normalised email, known or not, so the answer says
//!   nothing about which emails exist), and
//! - per client address (the TCP peer; IPv6 grouped by /64, which one host
//!   usually owns whole). Switchboard has no notion of trusted proxies, so
//!   `X-Forwarded-For` is never believed: anyone could forge it.
//!
//! The check runs before the password hash: a throttled attempt costs one
//! Redis round trip, never an argon2 run, and is refused with 429 whatever
//! the password (no oracle). Throttled attempts are not counted, so a
//! guesser who keeps trying gets one try each time the oldest failure ages
//! out, i.e. the configured rate and no more.
//!
//! The address limit is the coarse one (a password spray across many
//! accounts from one host). A busy office shares one NAT address, so an
//! account that has logged in successfully from an address before is exempt
//! from that address's limit for `known_address_ttl`: colleagues' typos or an
//! attacker on the same network never lock out an agent who works there. Its
//! own account limit still applies. A success clears the account's failures.
//!
//! Without Redis the check fails closed (503, ERROR log,
//! `redis_errors_total{op="login_throttle"}`), like the revocation check:
//! no instance can count attempts on its own without breaking the limit.

use std::net::{IpAddr, SocketAddr};

use deadpool_redis::redis;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Which limit refused an attempt (the `scope` label of
/// `auth_login_throttled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Too many failures for the email address.
    Account,
    /// Too many failures from the client's address.
    Address,
}

impl Scope {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Address => "address",
        }
    }
}

/// The Redis keys one login attempt touches.
pub struct Attempt {
    account: String,
    address: String,
    known: String,
}

/// Prunes both logs to their windows and answers
/// `{0|1|2 (none|account|address), milliseconds until a slot frees}`.
const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function full(key, window, max)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < max then return nil end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - now, 1)
end
local wait = full(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait then return {1, wait} end
if redis.call('EXISTS', KEYS[3]) == 0 then
  wait = full(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
  if wait then return {2, wait} end
end
return {0, 0}
";

/// Appends one failure to both logs (`ARGV[3]` makes the member unique).
const FAIL: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, window in ipairs({tonumber(ARGV[1]), tonumber(ARGV[2])}) do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  redis.call('ZADD', KEYS[i], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[i], window)
end
return 1
";

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The part of a peer address that identifies one client: the whole IPv4
/// address, or the /64 of an IPv6 one.
fn client_address(peer: IpAddr) -> String {
    match peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Hashes what goes into key names, so Redis holds no email addresses.
fn digest(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..16])
}

impl Attempt {
    /// A login attempt for `email` from `peer`.
    pub fn new(state: &AppState, email: &str, peer: Option<SocketAddr>) -> Self {
        let address = peer.map_or_else(|| "unknown".to_string(), |p| client_address(p.ip()));
        let settings = &state.settings;
        Self {
            account: settings.redis_key(&format!("login:fail:account:{}", digest(email))),
            address: settings.redis_key(&format!("login:fail:address:{address}")),
            known: settings.redis_key(&format!(
                "login:known:{}",
                digest(&format!("{email}\n{address}"))
            )),
        }
    }

    /// Refuses the attempt if either limit is reached; call before hashing.
    pub async fn check(&self, state: &AppState) -> Result<(), ApiError> {
        let limits = state.settings.login_throttle;
        let mut conn = state.redis.get().await.map_err(unavailable)?;
        let (scope, wait_ms): (u8, u64) = redis::cmd("EVAL")
            .arg(CHECK)
            .arg(3)
            .arg(&self.account)
            .arg(&self.address)
            .arg(&self.known)
            .arg(millis(limits.account_window))
            .arg(limits.account_max_failures)
            .arg(millis(limits.address_window))
            .arg(limits.address_max_failures)
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        let scope = match scope {
            1 => Scope::Account,
            2 => Scope::Address,
            _ => return Ok(()),
        };
        metrics::counter!("auth_login_throttled_total", "scope" => scope.as_str()).increment(1);
        Err(ApiError::throttled(wait_ms.div_ceil(1000).max(1)))
    }

    /// Records a wrong email or password against both limits.
    pub async fn failed(&self, state: &AppState) -> Result<(), ApiError> {
        metrics::counter!("auth_login_failures_total").increment(1);
        let limits = state.settings.login_throttle;
        let mut conn = state.redis.get().await.map_err(unavailable)?;
        let _: i64 = redis::cmd("EVAL")
            .arg(FAIL)
            .arg(2)
            .arg(&self.account)
            .arg(&self.address)
            .arg(millis(limits.account_window))
            .arg(millis(limits.address_window))
            .arg(uuid::Uuid::new_v4().simple().to_string())
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Clears the account's failures and remembers the address as one the
    /// account logs in from.
    pub async fn succeeded(&self, state: &AppState) -> Result<(), ApiError> {
        let ttl = state
            .settings
            .login_throttle
            .known_address_ttl
            .as_secs()
            .max(1);
        let mut conn = state.redis.get().await.map_err(unavailable)?;
        let _: () = redis::pipe()
            .del(&self.account)
            .ignore()
            .set_ex(&self.known, 1u8, ttl)
            .ignore()
            .query_async(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(error: impl Into<anyhow::Error>) -> ApiError {
    metrics::counter!("redis_errors_total", "op" => "login_throttle").increment(1);
    tracing::error!(error = %error.into(), "login throttle unavailable");
    // Fail closed: without the shared counts every instance would let an
    // unbounded number of guesses through.
    ApiError::unavailable("authentication is temporarily unavailable")
}

//! Sessions end with their token: a socket is disconnected, with a reason,
//! when its access token expires or is revoked (logout).
//!
//! Before the disconnect the socket receives a `session:expired` event (a
//! standard envelope, type `session.expired`, sent to that socket only, never
//! published) whose `data.reason` is the same code a connect with that token
//! would now be refused with: `token_expired` or `token_revoked`. A client
//! shows it and logs in again instead of reconnecting in a loop.
//!
//! Expiry needs no Redis: [`watch`] checks this instance's sockets every
//! second against their token's `exp`. Revocation reaches every instance
//! through the revocation channel the API publishes to on logout (see
//! [`switchboard_core::auth::revoke`]; the relay subscribes to it), and,
//! because Pub/Sub drops what arrives while a subscription is down, [`watch`]
//! also re-checks the revocation list for all local sockets every heartbeat.

use std::{str::FromStr, time::Duration};

use chrono::Utc;
use serde_json::json;
use socketioxide::{SocketIo, adapter::Adapter, socket::Sid};
use tokio::sync::watch;
use uuid::Uuid;

use switchboard_core::{auth, redis::redis, ticker::Ticker};

use crate::state::{Identity, RealtimeState};

/// Why a session ended (`data.reason` of `session:expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The token's `exp` passed while the socket was connected.
    Expired,
    /// The token was revoked (the agent logged out).
    Revoked,
}

impl Ended {
    /// The stable code clients read (`token_expired`, `token_revoked`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::Revoked => "token_revoked",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Expired => "the access token has expired; log in again",
            Self::Revoked => "the access token has been revoked (logged out)",
        }
    }
}

/// Tells the socket why, then disconnects it.
pub(crate) fn end<A: Adapter>(io: &SocketIo<A>, sid: &str, identity: &Identity, why: Ended) {
    let Some(socket) = Sid::from_str(sid).ok().and_then(|sid| io.get_socket(sid)) else {
        return;
    };
    let envelope = json!({
        "id": Uuid::now_v7(),
        "tenant_id": identity.tenant_id,
        "type": "session.expired",
        "occurred_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": {"reason": why.code(), "message": why.message(), "agent_id": identity.agent_id},
    });
    // The event and the disconnect packet go down the same ordered channel,
    // so the client reads the reason first.
    if let Err(error) = socket.emit("session:expired", &envelope) {
        tracing::debug!(%error, %sid, "session:expired not sent");
    }
    metrics::counter!("realtime_sessions_ended_total", "reason" => why.code()).increment(1);
    tracing::debug!(%sid, agent_id = %identity.agent_id, reason = why.code(), "session ended");
    if let Err(error) = socket.disconnect() {
        tracing::warn!(%error, %sid, "disconnecting an ended session failed");
    }
}

/// Ends the local sockets whose token is `jti` (a revocation arrived).
pub(crate) fn revoked<A: Adapter>(state: &RealtimeState, io: &SocketIo<A>, jti: Uuid) {
    for (sid, identity) in state.local_sockets() {
        if identity.jti == jti {
            end(io, &sid, &identity, Ended::Revoked);
        }
    }
}

/// Expires sockets at their token's `exp` and re-checks revocations each
/// heartbeat interval, until `stop`.
pub async fn watch<A: Adapter>(state: RealtimeState, io: SocketIo<A>, stop: watch::Receiver<bool>) {
    let mut ticker = Ticker::new(Duration::from_secs(1), crate::stopped_owned(stop));
    let mut last_sweep = tokio::time::Instant::now();
    while ticker.tick().await {
        let now = Utc::now().timestamp();
        let sockets = state.local_sockets();
        for (sid, identity) in &sockets {
            if identity.expires_at <= now {
                end(&io, sid, identity, Ended::Expired);
            }
        }
        if last_sweep.elapsed() >= state.config().heartbeat_interval && !sockets.is_empty() {
            last_sweep = tokio::time::Instant::now();
            match revoked_among(&state, &sockets).await {
                Ok(revoked) => {
                    for (sid, identity) in revoked {
                        end(&io, sid, identity, Ended::Revoked);
                    }
                }
                Err(error) => {
                    metrics::counter!("redis_errors_total", "op" => "revocation_sweep")
                        .increment(1);
                    tracing::error!(%error, "revocation sweep failed; revoked sockets stay connected until it succeeds");
                }
            }
        }
    }
}

/// The sockets among `sockets` whose token is on the revocation list (one
/// pipelined round trip).
async fn revoked_among<'a>(
    state: &RealtimeState,
    sockets: &'a [(String, Identity)],
) -> anyhow::Result<Vec<(&'a String, &'a Identity)>> {
    let mut pipe = redis::pipe();
    for (_, identity) in sockets {
        pipe.exists(auth::revocation_key(state.settings(), identity.jti));
    }
    let mut conn = state.redis().get().await?;
    let flags: Vec<bool> = pipe.query_async(&mut *conn).await?;
    Ok(sockets
        .iter()
        .zip(flags)
        .filter(|(_, revoked)| *revoked)
        .map(|((sid, identity), _)| (sid, identity))
        .collect())
}

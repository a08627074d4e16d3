//! One socket's life: connect-time authentication, rooms, presence, and the
//! client events with their acks.
//!
//! Everything a socket needs (identity, rooms, handlers) is set up in
//! connect middleware, which runs *before* socketioxide sends the connect
//! acknowledgement: a client that emits right after the ack must find its
//! handlers registered and its rooms joined. Presence is recorded after the
//! ack, in the connect handler: socketioxide delivers a room's broadcasts
//! only to sockets it has admitted, so an agent that became available from
//! the middleware could miss its own `presence:changed`.
//!
//! Acks are `{"ok": true, ...}` or `{"error": {"code", "message"}}`. A bad
//! payload or an unknown event gets an error ack and affects nothing else.

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, Event, Extension, SocketRef, State, TryData},
    socket::DisconnectReason,
};
use uuid::Uuid;

use switchboard_core::{
    auth::{self, TokenError},
    presence::PresenceStatus,
};

use crate::state::{Identity, RealtimeState, call_room};

/// Why a connection was refused; the text is the Socket.IO connect error's
/// `message` (a stable code, then a human explanation).
#[derive(Debug, thiserror::Error)]
pub enum ConnectRefused {
    /// No `auth.token` was sent.
    #[error("token_missing: send the access token from /v1/auth/login as auth.token")]
    Missing,
    /// The token does not parse or its signature does not verify.
    #[error("token_invalid: the token is malformed or its signature is invalid")]
    Invalid,
    /// The token's `exp` has passed.
    #[error("token_expired: the token has expired; log in again")]
    Expired,
    /// The token is on the revocation list.
    #[error("token_revoked: the token has been revoked (logged out)")]
    Revoked,
    /// Redis could not be asked whether the token is revoked.
    #[error("unavailable: the token could not be checked; retry")]
    Unavailable,
}

impl ConnectRefused {
    fn code(&self) -> &'static str {
        match self {
            ConnectRefused::Missing => "token_missing",
            ConnectRefused::Invalid => "token_invalid",
            ConnectRefused::Expired => "token_expired",
            ConnectRefused::Revoked => "token_revoked",
            ConnectRefused::Unavailable => "unavailable",
        }
    }
}

/// The Socket.IO `auth` object a client connects with.
#[derive(Debug, Deserialize)]
pub struct AuthPayload {
    /// The access token from `/v1/auth/login`.
    pub token: Option<String>,
}

/// First middleware: the JWT from `auth: {token}` must verify, be unexpired
/// and not revoked.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<AuthPayload>,
    State(state): State<RealtimeState>,
) -> Result<(), ConnectRefused> {
    let result = check_token(&state, auth.ok().and_then(|a| a.token)).await;
    match result {
        Ok(identity) => {
            socket.extensions.insert(identity);
            Ok(())
        }
        Err(refused) => {
            metrics::counter!("realtime_connects_refused_total", "reason" => refused.code())
                .increment(1);
            Err(refused)
        }
    }
}

async fn check_token(
    state: &RealtimeState,
    token: Option<String>,
) -> Result<Identity, ConnectRefused> {
    let token = token
        .filter(|t| !t.trim().is_empty())
        .ok_or(ConnectRefused::Missing)?;
    let claims = state.tokens().verify(&token).map_err(|e| match e {
        TokenError::Expired => ConnectRefused::Expired,
        TokenError::Revoked => ConnectRefused::Revoked,
        TokenError::Invalid => ConnectRefused::Invalid,
    })?;
    match auth::is_revoked(state.redis(), state.settings(), claims.jti).await {
        Ok(false) => {}
        Ok(true) => return Err(ConnectRefused::Revoked),
        Err(error) => {
            tracing::warn!(%error, "revocation check failed");
            return Err(ConnectRefused::Unavailable);
        }
    }
    Ok(Identity {
        tenant_id: claims.tid,
        agent_id: claims.sub,
        role: claims.role,
        jti: claims.jti,
        expires_at: claims.exp,
    })
}

/// Second middleware: rooms and handlers, before the ack.
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<RealtimeState>,
) -> Result<(), ConnectRefused> {
    let identity = socket
        .extensions
        .get::<Identity>()
        .ok_or(ConnectRefused::Missing)?;
    socket.join([identity.tenant_room(), identity.agent_room()]);
    socket.on("presence:set", on_presence_set::<A>);
    socket.on("call:watch", on_call_watch::<A>);
    socket.on("call:unwatch", on_call_unwatch::<A>);
    socket.on_fallback(on_unknown::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    state.track(socket.id.to_string(), identity);
    Ok(())
}

/// The connect handler proper, once the socket is admitted: its agent
/// becomes available (if it was offline), and the socket hears it too.
pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<RealtimeState>,
    Extension(identity): Extension<Identity>,
) {
    tracing::debug!(
        sid = %socket.id,
        tenant_id = %identity.tenant_id,
        agent_id = %identity.agent_id,
        "socket connected"
    );
    if let Err(error) = state
        .presence()
        .connect(
            identity.tenant_id,
            identity.agent_id,
            &socket.id.to_string(),
        )
        .await
    {
        // The socket still works; the next heartbeat registers it.
        tracing::warn!(%error, agent_id = %identity.agent_id, "presence not recorded on connect");
    }
}

async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    State(state): State<RealtimeState>,
    Extension(identity): Extension<Identity>,
) {
    let sid = socket.id.to_string();
    state.untrack(&sid);
    tracing::debug!(%sid, agent_id = %identity.agent_id, ?reason, "socket disconnected");
    if let Err(error) = state
        .presence()
        .disconnect(identity.tenant_id, identity.agent_id, &sid)
        .await
    {
        // The socket's heartbeat stops, so the reaper finishes the job.
        tracing::warn!(%error, agent_id = %identity.agent_id, "presence not updated on disconnect");
    }
}

fn ok(extra: Value) -> Value {
    let mut body = json!({"ok": true});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// Sends the ack (if the client asked for one) and counts the outcome.
fn reply<A: Adapter>(ack: AckSender<A>, event: &'static str, body: &Value) {
    let outcome = if body.get("ok").is_some() {
        "ok"
    } else {
        "error"
    };
    metrics::counter!("realtime_client_events_total", "event" => event, "outcome" => outcome)
        .increment(1);
    let _ = ack.send(body);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceSet {
    status: PresenceStatus,
}

async fn on_presence_set<A: Adapter>(
    ack: AckSender<A>,
    State(state): State<RealtimeState>,
    Extension(identity): Extension<Identity>,
    TryData(data): TryData<Value>,
) {
    let body = match data.ok().map(serde_json::from_value::<PresenceSet>) {
        Some(Ok(PresenceSet { status })) => {
            match state
                .presence()
                .set(identity.tenant_id, identity.agent_id, status)
                .await
            {
                Ok(change) => ok(json!({"presence": change.presence, "changed": change.changed})),
                Err(e) => {
                    tracing::warn!(error = %e, "presence:set failed");
                    error("unavailable", "presence could not be saved; retry")
                }
            }
        }
        _ => error(
            "invalid_payload",
            "expected {\"status\": \"available\" | \"busy\" | \"away\" | \"offline\"}",
        ),
    };
    reply(ack, "presence:set", &body);
}

#[derive(Deserialize)]
struct CallRef {
    call_id: Uuid,
}

fn call_ref(data: Result<Value, impl std::any::Any>) -> Option<Uuid> {
    let value = data.ok()?;
    serde_json::from_value::<CallRef>(value)
        .ok()
        .map(|c| c.call_id)
}

async fn on_call_watch<A: Adapter>(
    socket: SocketRef<A>,
    ack: AckSender<A>,
    State(state): State<RealtimeState>,
    Extension(identity): Extension<Identity>,
    TryData(data): TryData<Value>,
) {
    let body = match call_ref(data) {
        None => error("invalid_payload", "expected {\"call_id\": uuid}"),
        Some(call_id) => {
            let found = sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM calls WHERE tenant_id = $1 AND id = $2",
            )
            .bind(identity.tenant_id)
            .bind(call_id)
            .fetch_optional(state.db())
            .await;
            match found {
                Ok(Some(_)) => {
                    socket.join(call_room(call_id));
                    ok(json!({"call_id": call_id}))
                }
                // Another tenant's call reads exactly like a missing one.
                Ok(None) => error("not_found", "no such call"),
                Err(e) => {
                    tracing::warn!(error = %e, "call:watch lookup failed");
                    error("unavailable", "the call could not be checked; retry")
                }
            }
        }
    };
    reply(ack, "call:watch", &body);
}

async fn on_call_unwatch<A: Adapter>(
    socket: SocketRef<A>,
    ack: AckSender<A>,
    TryData(data): TryData<Value>,
) {
    let body = match call_ref(data) {
        None => error("invalid_payload", "expected {\"call_id\": uuid}"),
        Some(call_id) => {
            socket.leave(call_room(call_id));
            ok(json!({"call_id": call_id}))
        }
    };
    reply(ack, "call:unwatch", &body);
}

async fn on_unknown<A: Adapter>(ack: AckSender<A>, Event(event): Event) {
    tracing::debug!(event = %event.chars().take(64).collect::<String>(), "unknown client event");
    reply(
        ack,
        "unknown",
        &error(
            "unknown_event",
            "supported events: presence:set, call:watch, call:unwatch",
        ),
    );
}

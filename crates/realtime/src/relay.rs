//! The event relay and the presence upkeep tasks.
//!
//! [`run`] PSUBSCRIBEs to every tenant's event channel and emits each
//! envelope, whole, to the local sockets of `tenant:{id}` (and `call:{id}`
//! watchers) under the event name `type` with `:` for `.`. Every instance
//! relays every event to its *own* sockets (`local()`), so N instances never
//! deliver an event N times. Call and message events pass through the
//! [`Orderer`] first, so one call's events reach sockets in `version` order.
//!
//! Presence follows calls where each status is written, not here: the API
//! moves the agent right after the status commits
//! (`switchboard_api::calls::lifecycle::follow_presence`), so an HTTP read
//! that follows sees it. Following the relayed events as well only repeated
//! that work once per realtime instance (a Redis script per call event).
//!
//! [`heartbeats`] renews this instance's sockets; [`reaper`] offlines the
//! agents whose sockets stopped being renewed (their instance died).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::Value;
use socketioxide::{SocketIo, adapter::Adapter};
use tokio::sync::watch;
use uuid::Uuid;

use switchboard_core::{
    auth,
    events::{EventType, events_pattern},
    redis::redis,
    ticker::Ticker,
};

use crate::{
    ordering::Orderer,
    state::{RealtimeState, call_room, tenant_room},
};

/// One envelope as received: the JSON to emit, and what routing needs.
struct Incoming {
    json: Value,
    kind: EventType,
    tenant_id: Uuid,
    occurred_at: Option<DateTime<Utc>>,
    /// `data.id` of call/message events.
    subject: Option<Uuid>,
}

impl Incoming {
    fn parse(payload: &[u8]) -> Option<Self> {
        let json: Value = serde_json::from_slice(payload).ok()?;
        let kind: EventType = serde_json::from_value(json.get("type")?.clone()).ok()?;
        let tenant_id = json.get("tenant_id")?.as_str()?.parse().ok()?;
        let occurred_at = json
            .get("occurred_at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let subject = json
            .pointer("/data/id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        Some(Self {
            json,
            kind,
            tenant_id,
            occurred_at,
            subject,
        })
    }

    fn is_call(&self) -> bool {
        matches!(
            self.kind,
            EventType::CallCreated | EventType::CallStatus | EventType::CallUpdated
        )
    }

    fn is_message(&self) -> bool {
        matches!(
            self.kind,
            EventType::MessageCreated | EventType::MessageStatus | EventType::MessageReceived
        )
    }

    /// The ordering stream and version, for events that carry one.
    fn stream(&self) -> Option<(String, i64)> {
        let family = if self.is_call() {
            "call"
        } else if self.is_message() {
            "message"
        } else {
            return None;
        };
        let version = self.json.pointer("/data/version")?.as_i64()?;
        Some((format!("{family}:{}", self.subject?), version))
    }
}

/// Subscribes and relays until `stop`, reconnecting after Redis failures.
pub async fn run<A: Adapter>(
    state: RealtimeState,
    io: SocketIo<A>,
    mut stop: watch::Receiver<bool>,
) {
    let mut orderer = Orderer::new(state.config().reorder_window);
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = relay(&state, &io, &mut orderer, &mut stop).await;
        state.set_relay_subscribed(false);
        // Whatever was held back goes out rather than being lost.
        for incoming in orderer.flush_due(Instant::now() + Duration::from_secs(3600)) {
            deliver(&io, incoming).await;
        }
        match result {
            Ok(()) => break,
            Err(error) => {
                metrics::counter!("redis_errors_total", "op" => "relay").increment(1);
                tracing::warn!(%error, "event relay lost its subscription; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = crate::stopped(&mut stop) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn relay<A: Adapter>(
    state: &RealtimeState,
    io: &SocketIo<A>,
    orderer: &mut Orderer<Incoming>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = redis::Client::open(state.settings().redis_url.expose_secret())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(events_pattern(state.settings())).await?;
    let revocations = auth::revocations_channel(state.settings());
    pubsub.subscribe(&revocations).await?;
    state.set_relay_subscribed(true);
    tracing::info!("event relay subscribed");
    let mut messages = pubsub.on_message();
    loop {
        let flush_at = orderer.next_deadline();
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    anyhow::bail!("subscription closed");
                };
                if message.get_channel_name() == revocations {
                    match std::str::from_utf8(message.get_payload_bytes()).ok().and_then(|s| s.parse().ok()) {
                        Some(jti) => crate::sessions::revoked(state, io, jti),
                        None => tracing::warn!("ignoring a malformed revocation"),
                    }
                    continue;
                }
                let Some(incoming) = Incoming::parse(message.get_payload_bytes()) else {
                    metrics::counter!("realtime_events_dropped_total", "reason" => "malformed").increment(1);
                    tracing::warn!("ignoring a malformed event envelope");
                    continue;
                };
                metrics::counter!("realtime_events_in_total", "type" => incoming.kind.as_str()).increment(1);
                if state.settings().fault_drop_events_tenant == Some(incoming.tenant_id) {
                    // Injected fault (SWITCHBOARD_FAULT_DROP_EVENTS_TENANT, refused in
                    // production): the load suite proves its rules see lost events.
                    metrics::counter!("realtime_events_dropped_total", "reason" => "fault_injected").increment(1);
                    continue;
                }
                let ready = match incoming.stream() {
                    Some((key, version)) => orderer.accept(&key, version, incoming, Instant::now()),
                    None => vec![incoming],
                };
                for incoming in ready {
                    deliver(io, incoming).await;
                }
            }
            _ = sleep_until(flush_at) => {
                for incoming in orderer.flush_due(Instant::now()) {
                    deliver(io, incoming).await;
                }
            }
            _ = crate::stopped(stop) => return Ok(()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn deliver<A: Adapter>(io: &SocketIo<A>, incoming: Incoming) {
    let event = incoming.kind.socket_event();
    let tenant = tenant_room(incoming.tenant_id);
    let operators = match (incoming.is_call(), incoming.subject) {
        (true, Some(call_id)) => io.local().to([tenant, call_room(call_id)]),
        _ => io.local().to(tenant),
    };
    if let Err(error) = operators.emit(&event, &incoming.json).await {
        // Each failed socket (its buffer full, or closing) loses this event.
        let lost = match &error {
            socketioxide::BroadcastError::Socket(failed) => failed.len(),
            _ => 1,
        };
        metrics::counter!("realtime_events_dropped_total", "reason" => "emit_failed")
            .increment(lost as u64);
        tracing::warn!(%error, event, "emit failed");
    }
    metrics::counter!("realtime_events_out_total", "type" => incoming.kind.as_str()).increment(1);
    if let Some(at) = incoming.occurred_at {
        let latency = (Utc::now() - at).to_std().unwrap_or_default();
        metrics::histogram!("realtime_emit_latency_seconds", "type" => incoming.kind.as_str())
            .record(latency.as_secs_f64());
    }
}

/// Admitted sockets get this long to appear in the namespace before a
/// heartbeat round treats them as gone (admission happens just before).
const ADMISSION_GRACE: Duration = Duration::from_secs(5);

/// Renews this instance's sockets until `stop`. A socket that was admitted
/// but never made it into the namespace (its connect ack could not be sent,
/// so no disconnect handler will ever run) is dropped here instead of being
/// kept alive by heartbeats forever.
pub async fn heartbeats<A: Adapter>(
    state: RealtimeState,
    io: SocketIo<A>,
    stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::new(
        state.config().heartbeat_interval,
        crate::stopped_owned(stop),
    );
    while ticker.tick().await {
        let sockets = state.local_sockets_since();
        futures::stream::iter(sockets)
            .for_each_concurrent(16, |(sid, identity, admitted)| {
                let (state, io) = (state.clone(), io.clone());
                async move {
                    let gone = admitted.elapsed() > ADMISSION_GRACE
                        && sid
                            .parse()
                            .ok()
                            .and_then(|sid| io.of("/")?.get_socket(sid))
                            .is_none();
                    let presence = state.presence();
                    let result = if gone {
                        state.untrack(&sid);
                        presence
                            .disconnect(identity.tenant_id, identity.agent_id, &sid)
                            .await
                            .map(|_| false)
                    } else {
                        presence
                            .heartbeat(identity.tenant_id, identity.agent_id, &sid)
                            .await
                    };
                    if let Err(error) = result {
                        metrics::counter!("redis_errors_total", "op" => "heartbeat").increment(1);
                        tracing::warn!(%error, "presence heartbeat failed");
                    }
                }
            })
            .await;
    }
}

/// Offlines agents whose sockets all expired, until `stop`. Every instance
/// runs one; the store makes concurrent passes safe.
pub async fn reaper(state: RealtimeState, stop: watch::Receiver<bool>) {
    let mut ticker = Ticker::new(
        state.config().heartbeat_interval,
        crate::stopped_owned(stop),
    );
    while ticker.tick().await {
        match state.presence().reap_expired().await {
            Ok(reaped) if !reaped.is_empty() => {
                metrics::counter!("realtime_presence_reaped_total").increment(reaped.len() as u64);
                tracing::info!(
                    count = reaped.len(),
                    "agents offline after their sockets expired"
                );
            }
            Ok(_) => {}
            Err(error) => {
                metrics::counter!("redis_errors_total", "op" => "reap").increment(1);
                tracing::warn!(%error, "presence reaper failed");
            }
        }
    }
}

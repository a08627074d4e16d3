//! The event envelope and its publisher.
//!
//! Every state change is described by one [`Envelope`] published on Redis
//! pub/sub after its transaction commits. The realtime server relays them to
//! sockets; the worker turns them into tenant webhooks. Publishing is
//! best-effort by design: the database row is the truth, and a lost event
//! never loses data.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_redis::redis;
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use crate::{Settings, ids::new_id};

/// The kinds of event. The wire name is the dotted form (`call.status`); the
/// realtime server emits it with `:` for `.` (`call:status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "call.created")]
    CallCreated,
    #[serde(rename = "call.status")]
    CallStatus,
    #[serde(rename = "call.updated")]
    CallUpdated,
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "voicemail.created")]
    VoicemailCreated,
    #[serde(rename = "voicemail.transcribed")]
    VoicemailTranscribed,
    #[serde(rename = "presence.changed")]
    PresenceChanged,
    #[serde(rename = "campaign.progress")]
    CampaignProgress,
    #[serde(rename = "customer.created")]
    CustomerCreated,
    #[serde(rename = "customer.updated")]
    CustomerUpdated,
    #[serde(rename = "customer.deleted")]
    CustomerDeleted,
    #[serde(rename = "customer.note_added")]
    CustomerNoteAdded,
    #[serde(rename = "import.progress")]
    ImportProgress,
    #[serde(rename = "scheduled_call.updated")]
    ScheduledCallUpdated,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::CallCreated,
        EventType::CallStatus,
        EventType::CallUpdated,
        EventType::MessageCreated,
        EventType::MessageStatus,
        EventType::MessageReceived,
        EventType::VoicemailCreated,
        EventType::VoicemailTranscribed,
        EventType::PresenceChanged,
        EventType::CampaignProgress,
        EventType::CustomerCreated,
        EventType::CustomerUpdated,
        EventType::CustomerDeleted,
        EventType::CustomerNoteAdded,
        EventType::ImportProgress,
        EventType::ScheduledCallUpdated,
    ];

    /// The dotted wire name, e.g. `call.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallCreated => "call.created",
            EventType::CallStatus => "call.status",
            EventType::CallUpdated => "call.updated",
            EventType::MessageCreated => "message.created",
            EventType::MessageStatus => "message.status",
            EventType::MessageReceived => "message.received",
            EventType::VoicemailCreated => "voicemail.created",
            EventType::VoicemailTranscribed => "voicemail.transcribed",
            EventType::PresenceChanged => "presence.changed",
            EventType::CampaignProgress => "campaign.progress",
            EventType::CustomerCreated => "customer.created",
            EventType::CustomerUpdated => "customer.updated",
            EventType::CustomerDeleted => "customer.deleted",
            EventType::CustomerNoteAdded => "customer.note_added",
            EventType::ImportProgress => "import.progress",
            EventType::ScheduledCallUpdated => "scheduled_call.updated",
        }
    }

    /// The Socket.IO event name: the wire name with `:` for `.`.
    pub fn socket_event(self) -> String {
        self.as_str().replace('.', ":")
    }
}

/// One state change: `{id, tenant_id, type, occurred_at, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUIDv7, so envelopes sort by creation.
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// RFC 3339 with microseconds, UTC.
    #[serde(serialize_with = "rfc3339_micros")]
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

fn rfc3339_micros<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl Envelope {
    pub fn new(tenant_id: Uuid, kind: EventType, data: impl Serialize) -> Self {
        Self {
            id: new_id(),
            tenant_id,
            kind,
            occurred_at: Utc::now(),
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The pub/sub channel carrying `tenant_id`'s events. Subscribers use the
/// pattern from [`events_pattern`].
pub fn events_channel(settings: &Settings, tenant_id: Uuid) -> String {
    settings.redis_key(&format!("events:{tenant_id}"))
}

/// The pattern matching every tenant's event channel.
pub fn events_pattern(settings: &Settings) -> String {
    settings.redis_key("events:*")
}

/// The Redis stream every envelope is also appended to: the durable feed the
/// worker reads (with a consumer group) to deliver tenant webhooks, so an
/// event published while no worker runs is still delivered later.
pub fn events_stream(settings: &Settings) -> String {
    settings.redis_key("events:stream")
}

/// How many envelopes the stream keeps (approximately) for late readers.
pub const EVENTS_STREAM_MAXLEN: usize = 200_000;

/// Publishes envelopes on Redis pub/sub (live consumers) and appends them to
/// the events stream (durable consumers), in one round trip.
#[derive(Clone)]
pub struct EventPublisher {
    redis: deadpool_redis::Pool,
    settings: std::sync::Arc<Settings>,
}

impl EventPublisher {
    pub fn new(redis: deadpool_redis::Pool, settings: std::sync::Arc<Settings>) -> Self {
        Self { redis, settings }
    }

    pub async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let payload = serde_json::to_string(envelope)?;
        let mut conn = self.redis.get().await?;
        let _: () = redis::pipe()
            .cmd("PUBLISH")
            .arg(events_channel(&self.settings, envelope.tenant_id))
            .arg(&payload)
            .ignore()
            .cmd("XADD")
            .arg(events_stream(&self.settings))
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_STREAM_MAXLEN)
            .arg("*")
            .arg("event")
            .arg(&payload)
            .ignore()
            .query_async(&mut *conn)
            .await?;
        metrics::counter!("events_published_total", "type" => envelope.kind.as_str()).increment(1);
        Ok(())
    }

    /// Publishes after a commit: a failure is logged and counted, never
    /// returned, because the change itself is already durable.
    pub async fn publish_after_commit(&self, envelope: Envelope) {
        if let Err(error) = self.publish(&envelope).await {
            metrics::counter!("redis_errors_total", "op" => "publish").increment(1);
            tracing::warn!(
                event_id = %envelope.id,
                event_type = envelope.kind.as_str(),
                tenant_id = %envelope.tenant_id,
                %error,
                "event not published"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_with_the_documented_field_names() {
        let tenant = Uuid::now_v7();
        let env = Envelope::new(
            tenant,
            EventType::CallStatus,
            serde_json::json!({"status": "ringing"}),
        );
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["type"], "call.status");
        assert_eq!(json["tenant_id"], tenant.to_string());
        assert_eq!(json["data"]["status"], "ringing");
        let at = json["occurred_at"].as_str().unwrap();
        // 2026-01-01T00:00:00.123456Z: microseconds, UTC.
        assert_eq!(at.len(), 27, "{at}");
        assert!(at.ends_with('Z'));
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back.id, env.id);
    }

    #[test]
    fn every_type_round_trips_and_maps_to_a_socket_event_name() {
        for t in EventType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert!(!t.socket_event().contains('.'));
        }
        assert_eq!(EventType::CallStatus.socket_event(), "call:status");
    }
}

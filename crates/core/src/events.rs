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

use crate::{Settings, group_commit::GroupCommit, ids::new_id};

crate::text_enum! {
    /// The kinds of event. The wire name is the dotted form (`call.status`); the
    /// realtime server emits it with `:` for `.` (`call:status`).
    pub enum EventType {
        /// `call.created`: a call was placed (through the API or by a scheduled call)
        /// or an inbound call arrived; `data` is the call.
        CallCreated = "call.created",
        /// `call.status`: a call's status changed (a carrier callback, `answer`,
        /// `hangup`, a cancellation); `data` is the call.
        CallStatus = "call.status",
        /// `call.updated`: a call changed without a status change. `data` is the
        /// call with `change` (the control applied, or `recording_available`),
        /// or `{call_id, recording}` once a recording has been processed.
        CallUpdated = "call.updated",
        /// `message.created`: an outbound message was accepted through the API;
        /// `data` is the message.
        MessageCreated = "message.created",
        /// `message.status`: a message's status changed (handed to the carrier,
        /// or a carrier delivery receipt); `data` is the message.
        MessageStatus = "message.status",
        /// `message.received`: an inbound SMS arrived; `data` is the message.
        MessageReceived = "message.received",
        /// `voicemail.created`: a caller routed to voicemail left one (its
        /// recording arrived); `data` is the voicemail.
        VoicemailCreated = "voicemail.created",
        /// `voicemail.transcribed`: a voicemail's transcription is ready; `data`
        /// is the voicemail.
        VoicemailTranscribed = "voicemail.transcribed",
        /// `presence.changed`: an agent's presence status changed; `data` is the
        /// [`AgentPresence`](crate::presence::AgentPresence).
        PresenceChanged = "presence.changed",
        /// `campaign.progress`: a campaign's status and message counts by status,
        /// published once it is expanded and on each maintenance pass while it
        /// runs.
        CampaignProgress = "campaign.progress",
        /// `customer.created`: a customer was created; `data` is the customer.
        CustomerCreated = "customer.created",
        /// `customer.updated`: a customer was updated; `data` is the customer.
        CustomerUpdated = "customer.updated",
        /// `customer.deleted`: a customer was deleted; `data` is `{id}`.
        CustomerDeleted = "customer.deleted",
        /// `customer.note_added`: a note was added to a customer; `data` is the
        /// note.
        CustomerNoteAdded = "customer.note_added",
        /// `import.progress`: a customer import's status and row counts,
        /// published while its batches are written (throttled) and when it ends.
        ImportProgress = "import.progress",
        /// `scheduled_call.updated`: a scheduled call was created or changed
        /// (attempted, canceled...); `data` is the scheduled call.
        ScheduledCallUpdated = "scheduled_call.updated",
    }
}

impl EventType {
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
    /// The tenant the event belongs to (and whose channel carries it).
    pub tenant_id: Uuid,
    /// What happened; serialised as `type`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// RFC 3339 with microseconds, UTC.
    #[serde(serialize_with = "rfc3339_micros")]
    pub occurred_at: DateTime<Utc>,
    /// The payload, which depends on `type` (usually the record as the API
    /// shows it).
    pub data: serde_json::Value,
}

fn rfc3339_micros<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl Envelope {
    /// A new envelope with a fresh id, stamped now. `data` that does not
    /// serialise becomes `null`.
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
///
/// Concurrent publishes share that round trip: each joins the next batch of
/// one lane ([`GroupCommit`]), and a batch is one pipeline of a `PUBLISH`
/// and an `XADD` per envelope, in the order they were published. A call
/// storm or a campaign publishes thousands of events a second; one command
/// pair per round trip costs Redis and this process a syscall and a wake-up
/// each. As with commits, nothing waits for a timer.
#[derive(Clone)]
pub struct EventPublisher {
    lane: GroupCommit<Outgoing, ()>,
    settings: std::sync::Arc<Settings>,
}

/// One envelope, serialised, on its way to Redis.
struct Outgoing {
    channel: String,
    kind: EventType,
    payload: String,
}

/// The most envelopes in one pipeline.
const MAX_BATCH: usize = 256;

impl EventPublisher {
    /// Starts the publishing lane (inside a Tokio runtime).
    pub fn new(redis: crate::redis::Pool, settings: std::sync::Arc<Settings>) -> Self {
        let stream = events_stream(&settings);
        let lane = GroupCommit::spawn("events_publish", 1, MAX_BATCH, move |batch| {
            send(redis.clone(), stream.clone(), batch)
        });
        Self { lane, settings }
    }

    /// Publishes `envelope` on its tenant's channel and appends it to the
    /// events stream; returns once Redis has taken the batch it went in.
    pub async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let outgoing = Outgoing {
            channel: events_channel(&self.settings, envelope.tenant_id),
            kind: envelope.kind,
            payload: serde_json::to_string(envelope)?,
        };
        self.lane.call(outgoing).await?;
        Ok(())
    }

    /// A new envelope for `tenant_id`'s `kind` event about `data`, published
    /// after a commit ([`Self::publish_after_commit`]).
    pub async fn publish_new(&self, tenant_id: Uuid, kind: EventType, data: impl Serialize) {
        self.publish_after_commit(Envelope::new(tenant_id, kind, data))
            .await;
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

/// One batch: a `PUBLISH` and an `XADD` per envelope, one round trip.
async fn send(
    redis: crate::redis::Pool,
    stream: String,
    batch: Vec<Outgoing>,
) -> anyhow::Result<Vec<()>> {
    let mut pipe = redis::pipe();
    for outgoing in &batch {
        pipe.cmd("PUBLISH")
            .arg(&outgoing.channel)
            .arg(&outgoing.payload)
            .ignore()
            .cmd("XADD")
            .arg(&stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_STREAM_MAXLEN)
            .arg("*")
            .arg("event")
            .arg(&outgoing.payload)
            .ignore();
    }
    let mut conn = redis.get().await?;
    let _: () = pipe.query_async(&mut *conn).await?;
    for outgoing in &batch {
        metrics::counter!("events_published_total", "type" => outgoing.kind.as_str()).increment(1);
    }
    Ok(vec![(); batch.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of concurrent publishes shares round trips, and every
    /// envelope still reaches both the live channel and the durable stream,
    /// each one once; one publisher's sequence keeps its order.
    #[tokio::test]
    async fn a_burst_of_publishes_reaches_the_channel_and_the_stream_each_once() {
        use futures::StreamExt;
        let mut settings = Settings::from_env().unwrap_or_default();
        settings.redis_prefix = format!("sbtest:{}", Uuid::new_v4().simple());
        let settings = std::sync::Arc::new(settings);
        let pool = crate::redis::pool(&settings).expect("redis pool");
        let publisher = EventPublisher::new(pool.clone(), settings.clone());
        let tenant = Uuid::now_v7();
        let client =
            redis::Client::open(secrecy::ExposeSecret::expose_secret(&settings.redis_url)).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub
            .subscribe(events_channel(&settings, tenant))
            .await
            .unwrap();
        let publishes: Vec<_> = (0..400)
            .map(|n| {
                let publisher = publisher.clone();
                tokio::spawn(async move {
                    let envelope = Envelope::new(
                        tenant,
                        EventType::MessageStatus,
                        serde_json::json!({"n": n}),
                    );
                    publisher.publish(&envelope).await.unwrap();
                    envelope.id
                })
            })
            .collect();
        let mut published = Vec::new();
        for publish in publishes {
            published.push(publish.await.unwrap());
        }
        // One caller's publishes, awaited in turn, arrive in turn.
        for n in 400..410 {
            let envelope = Envelope::new(
                tenant,
                EventType::MessageStatus,
                serde_json::json!({"n": n}),
            );
            publisher.publish(&envelope).await.unwrap();
            published.push(envelope.id);
        }
        let mut messages = pubsub.on_message();
        let mut live = Vec::new();
        while live.len() < published.len() {
            let message = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
                .await
                .expect("every envelope on the channel")
                .unwrap();
            let envelope: Envelope = serde_json::from_slice(message.get_payload_bytes()).unwrap();
            live.push(envelope.id);
        }
        let mut conn = pool.get().await.unwrap();
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(events_stream(&settings))
            .arg("-")
            .arg("+")
            .query_async(&mut *conn)
            .await
            .unwrap();
        let stored: Vec<Uuid> = entries
            .iter()
            .map(|(_, fields)| serde_json::from_str::<Envelope>(&fields[0].1).unwrap().id)
            .collect();
        let _: () = redis::cmd("DEL")
            .arg(events_stream(&settings))
            .query_async(&mut *conn)
            .await
            .unwrap();
        for seen in [&live, &stored] {
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            let mut expected = published.clone();
            expected.sort();
            assert_eq!(sorted, expected, "each envelope exactly once");
            assert_eq!(seen.len(), published.len());
            assert_eq!(
                seen[seen.len() - 10..],
                published[400..],
                "in publishing order"
            );
        }
    }

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

//! The load suite's side of the Socket.IO client
//! ([`switchboard_sio_client`], the one the realtime tests use too): events
//! decoded for measuring, and a user's socket that waits for what its own
//! actions cause.
//!
//! Every event is stamped with the [`Instant`] its frame arrived, so
//! latencies do not include the time a transaction took to look at it.

use std::time::Instant;

use serde::Deserialize;
use serde_json::json;
use switchboard_sio_client::{Decode, split_id};

pub use switchboard_sio_client::FrameSink;

/// One received event: its name, what it is about, and its arrival time.
///
/// Every agent's socket hears its whole tenant, so a user skips far more
/// events than it waits for: only the fields waiters match on are parsed
/// (a profile of a 220-user open-model workday put a third of the load
/// generator's CPU in building and dropping whole JSON payloads).
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's name (`call:status`, `message:created`, ...).
    pub name: String,
    /// The fields of its `data` that waiters match on.
    pub subject: Subject,
    /// When its frame arrived.
    pub at: Instant,
}

impl Decode for Event {
    fn decode(body: &str, at: Instant) -> Option<Self> {
        parse_event(body, at)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// The fields of an event's `data` that waiters match on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Subject {
    /// `data.id`: the call, message, ... it is about.
    pub id: Option<String>,
    /// `data.status`: its status, when it has one.
    pub status: Option<String>,
    /// `data.campaign_id`: the bulk campaign a message belongs to.
    pub campaign_id: Option<String>,
}

impl Subject {
    /// Whether it is about `id` (and, if given, in `status`).
    pub fn is(&self, id: &str, status: Option<&str>) -> bool {
        self.id.as_deref() == Some(id) && status.is_none_or(|s| self.status.as_deref() == Some(s))
    }
}

/// A user's socket, decoding [`Event`]s. Every socket hears its whole
/// tenant, so a user waits with `wait_for` only for what its own actions
/// cause, one at a time, discarding the rest.
pub type SioClient = switchboard_sio_client::SioClient<Event>;

/// Connects with an agent's JWT and waits for the namespace connect ack.
pub async fn connect(realtime: &str, token: &str) -> anyhow::Result<SioClient> {
    Ok(SioClient::connect(realtime, &json!({ "token": token })).await?)
}

/// A receive-only socket that hands every raw frame to `sink` (the fan-out
/// subscribers). Returns once connected; the reader runs until the server
/// closes the socket or `stop` fires.
pub async fn subscribe_raw(
    realtime: &str,
    token: &str,
    sink: FrameSink,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    switchboard_sio_client::subscribe_raw(realtime, &json!({ "token": token }), sink, stop).await?;
    Ok(())
}

/// An event packet `["name", {"data": {...}, ...}]`; the payload's other
/// fields are skipped, not built.
#[derive(Deserialize)]
struct Packet(String, #[serde(default)] Option<Envelope>);

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Option<Subject>,
}

/// An event packet's body (what follows `42`): `[id]["name",data]`.
fn parse_event(rest: &str, at: Instant) -> Option<Event> {
    let (_, array) = split_id(rest);
    let Packet(name, envelope) = serde_json::from_str(array).ok()?;
    let subject = envelope.and_then(|e| e.data).unwrap_or_default();
    Some(Event { name, subject, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_packets_parse_with_or_without_an_ack_id() {
        let at = Instant::now();
        let event = parse_event(
            r#"["call:status",{"type":"call.status","data":{"id":"c1","status":"ringing","to":{"n":[1]}},"v":2}]"#,
            at,
        )
        .unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(event.name, "call:status");
        assert!(event.subject.is("c1", Some("ringing")));
        assert!(!event.subject.is("c1", Some("completed")) && !event.subject.is("c2", None));
        let event = parse_event(
            r#"12["message:status",{"data":{"id":"m1","campaign_id":"k","status":null}}]"#,
            at,
        )
        .unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(event.subject.campaign_id.as_deref(), Some("k"));
        assert_eq!(event.subject.status, None);
        let event = parse_event(r#"7["call:status"]"#, at).unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(event.name, "call:status");
        assert_eq!(event.subject, Subject::default());
        let event = parse_event(r#"["presence:changed",{"agent_id":"a"}]"#, at)
            .unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(event.subject, Subject::default());
        assert!(parse_event("garbage", at).is_none());
    }
}

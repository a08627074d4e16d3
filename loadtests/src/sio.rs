//! A small Socket.IO v5 client over Engine.IO 4's websocket transport, for
//! measuring: every event is stamped with the [`Instant`] its frame arrived,
//! so latencies do not include the time a transaction took to look at it.
//!
//! The protocol, as the realtime tests' client speaks it: `GET
//! /socket.io/?EIO=4&transport=websocket`, the server's open packet `0{...}`,
//! our namespace connect `40{auth}`, answered by `40{"sid"}` (accepted) or
//! `44{...}` (refused). A client may emit only after that answer. Events are
//! `42["name",data]`, acks `43<id>[data]`; the server pings `2`, we answer `3`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One received event: its name, what it is about, and its arrival time.
///
/// Every agent's socket hears its whole tenant, so a user skips far more
/// events than it waits for: only the fields waiters match on are parsed
/// (a profile of a 220-user open-model workday put a third of the load
/// generator's CPU in building and dropping whole JSON payloads).
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub subject: Subject,
    pub at: Instant,
}

/// The fields of an event's `data` that waiters match on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Subject {
    pub id: Option<String>,
    pub status: Option<String>,
    pub campaign_id: Option<String>,
}

impl Subject {
    /// Whether it is about `id` (and, if given, in `status`).
    pub fn is(&self, id: &str, status: Option<&str>) -> bool {
        self.id.as_deref() == Some(id) && status.is_none_or(|s| self.status.as_deref() == Some(s))
    }
}

/// What a raw-frame consumer is handed: the frame's text and arrival time.
/// The fan-out subscribers use it to avoid parsing JSON 30 000 times a second.
pub type FrameSink = Arc<dyn Fn(&str, Instant) + Send + Sync>;

pub struct SioClient {
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<Event>,
    acks: Acks,
    next_ack: u64,
}

/// The websocket URL of a realtime base URL (`http://host:port`).
pub fn socket_url(realtime: &str) -> String {
    let base = realtime.trim_end_matches('/');
    let base = base
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_string());
    format!("{base}/socket.io/?EIO=4&transport=websocket")
}

/// Bytes a websocket reads at a time (a larger frame still arrives whole).
const READ_BUFFER: usize = 8 * 1024;

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What [`handshake`] hands over: the split websocket, and the event
/// frames (`42...`, with their arrival times) that came before the connect
/// ack.
type Connected = (
    futures::stream::SplitSink<WsStream, Message>,
    futures::stream::SplitStream<WsStream>,
    Vec<(String, Instant)>,
);

/// Opens the websocket and completes the namespace connect; returns the
/// split halves ready for use.
///
/// The server may put the socket in its rooms before it writes the connect
/// ack, so a room broadcast (another agent's `presence:changed`) can arrive
/// first. The official client buffers such events until it is connected
/// (socket.io-client's `receiveBuffer`); so does this one, instead of
/// failing the connect.
async fn handshake(realtime: &str, token: &str) -> anyhow::Result<Connected> {
    // Events are a few hundred bytes: tungstenite's default 128 KiB read
    // buffer is zero-filled before every read, which cost the generator more
    // than parsing the frames did.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(socket_url(realtime), Some(config), false),
    )
    .await
    .map_err(|_| anyhow!("websocket handshake timed out"))?
    .context("websocket handshake")?;
    let (mut sink, mut stream) = ws.split();
    let open = next_text(&mut stream)
        .await
        .ok_or_else(|| anyhow!("closed before the open packet"))?;
    if !open.starts_with('0') {
        bail!("expected an Engine.IO open packet, got {open:.80}");
    }
    sink.send(Message::text(format!("40{}", json!({ "token": token }))))
        .await
        .context("sending the namespace connect")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut early = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let text = tokio::time::timeout(remaining, next_text(&mut stream))
            .await
            .map_err(|_| anyhow!("no namespace connect answer"))?
            .ok_or_else(|| anyhow!("closed before the connect answer"))?;
        if text == "2" {
            sink.send(Message::text("3")).await.context("pong")?;
        } else if text.starts_with("40") {
            return Ok((sink, stream, early));
        } else if let Some(body) = text.strip_prefix("44") {
            bail!("connect refused: {body:.200}");
        } else if text.starts_with("42") {
            early.push((text, Instant::now()));
        } else {
            bail!("unexpected packet before the connect ack: {text:.80}");
        }
    }
}

impl SioClient {
    /// Connects with a JWT and waits for the namespace connect ack.
    pub async fn connect(realtime: &str, token: &str) -> anyhow::Result<SioClient> {
        let (mut sink, mut stream, early) = handshake(realtime, token).await?;
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (events_tx, events) = mpsc::unbounded_channel();
        for (text, at) in early {
            if let Some(event) = text
                .strip_prefix("42")
                .and_then(|rest| parse_event(rest, at))
            {
                let _ = events_tx.send(event);
            }
        }
        let acks: Acks = Arc::default();
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let is_close = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || is_close {
                    break;
                }
            }
        });
        let (pong, reader_acks) = (out.clone(), acks.clone());
        tokio::spawn(async move {
            while let Some(text) = next_text(&mut stream).await {
                let at = Instant::now();
                if text == "2" {
                    let _ = pong.send(Message::text("3"));
                } else if let Some(rest) = text.strip_prefix("42") {
                    if let Some(event) = parse_event(rest, at)
                        && events_tx.send(event).is_err()
                    {
                        break;
                    }
                } else if let Some(rest) = text.strip_prefix("43") {
                    let (id, array) = split_id(rest);
                    let data = match serde_json::from_str::<Value>(array) {
                        Ok(Value::Array(mut items)) if !items.is_empty() => items.swap_remove(0),
                        _ => Value::Null,
                    };
                    let waiter = id.and_then(|id| {
                        reader_acks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id)
                    });
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(data);
                    }
                } else if text.starts_with("41") || text.starts_with('1') {
                    break;
                }
            }
        });
        Ok(SioClient {
            out,
            events,
            acks,
            next_ack: 1,
        })
    }

    /// Emits and waits for the server's ack.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> anyhow::Result<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let _ = self
            .out
            .send(Message::text(format!("42{id}{}", json!([event, data]))));
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| anyhow!("no ack for {event}"))?
            .map_err(|_| anyhow!("connection closed before the ack for {event}"))
    }

    /// Waits for the first event named `name` whose payload satisfies
    /// `matches`, discarding everything else received meanwhile: every
    /// socket hears its whole tenant, and a user waits only for what its own
    /// actions cause, one at a time.
    pub async fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Subject) -> bool,
    ) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| anyhow!("no {name} event within {timeout:?}"))?
                .ok_or_else(|| anyhow!("socket closed while waiting for {name}"))?;
            if event.name == name && matches(&event.subject) {
                return Ok(event);
            }
        }
    }

    /// Drops everything received so far.
    pub fn clear(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Closes the websocket, like a browser tab closing.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

impl Drop for SioClient {
    fn drop(&mut self) {
        self.close();
    }
}

/// A receive-only socket that hands every raw frame to `sink` (the fan-out
/// subscribers). Returns once connected; the reader runs until the server
/// closes the socket or `stop` fires.
pub async fn subscribe_raw(
    realtime: &str,
    token: &str,
    sink: FrameSink,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (mut ws_sink, mut stream, early) = handshake(realtime, token).await?;
    for (text, at) in early {
        sink(&text, at);
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                text = next_text(&mut stream) => {
                    let Some(text) = text else { break };
                    if text == "2" {
                        if ws_sink.send(Message::text("3")).await.is_err() {
                            break;
                        }
                    } else if text.starts_with("42") {
                        sink(&text, Instant::now());
                    }
                }
                _ = stop.changed() => {
                    let _ = ws_sink.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    });
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

/// Splits an optional numeric ack id off the front of a packet body.
fn split_id(rest: &str) -> (Option<u64>, &str) {
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        (None, rest)
    } else {
        (rest[..digits].parse().ok(), &rest[digits..])
    }
}

async fn next_text<S>(stream: &mut S) -> Option<String>
where
    S: Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
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

    #[test]
    fn socket_urls_follow_the_scheme() {
        assert_eq!(
            socket_url("http://127.0.0.1:8081/"),
            "ws://127.0.0.1:8081/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("https://rt.example"),
            "wss://rt.example/socket.io/?EIO=4&transport=websocket"
        );
    }
}

//! A small Socket.IO v5 client over Engine.IO 4's websocket transport,
//! written from the protocol: the one client the realtime tests and the load
//! suite both speak to the server with.
//!
//! Handshake: `GET /socket.io/?EIO=4&transport=websocket`, the server's open
//! packet `0{...}`, then our namespace connect `40{auth}`, answered by
//! `40{"sid"}` (accepted) or `44{...}` (refused). A client may emit only
//! after that answer. Events are `42["name",data]`, ack requests
//! `42<id>["name",data]`, acks `43<id>[data]`; the server pings with `2` and
//! we answer `3`.
//!
//! Events are decoded by the caller's [`Decode`] type, stamped with the
//! [`Instant`] their frame arrived: the tests keep whole payloads
//! ([`RawEvent`]), the load suite parses only what its waiters match on.

#![warn(missing_docs)]

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

/// How long the handshake, the namespace connect and an ack may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes a websocket reads at a time (a larger frame still arrives whole).
/// Events are a few hundred bytes: tungstenite's default 128 KiB read buffer
/// is zero-filled before every read, which cost the load generator more than
/// parsing the frames did.
const READ_BUFFER: usize = 8 * 1024;

/// An event as a client keeps it, decoded from an EVENT packet.
pub trait Decode: Sized + Send + 'static {
    /// Decodes an EVENT packet's body (what follows `42`: `[id]["name",data]`)
    /// whose frame arrived at `at`; `None` for a malformed packet.
    fn decode(body: &str, at: Instant) -> Option<Self>;

    /// The event's name.
    fn name(&self) -> &str;
}

/// An event with its whole payload.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    /// The event's name (`call:status`, …).
    pub name: String,
    /// Its payload (`Null` when the packet carries none).
    pub data: Value,
    /// When its frame arrived.
    pub at: Instant,
}

impl Decode for RawEvent {
    fn decode(body: &str, at: Instant) -> Option<Self> {
        let (_, array) = split_id(body);
        let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(array) else {
            return None;
        };
        let Some(Value::String(name)) = items.first().cloned() else {
            return None;
        };
        let data = if items.len() > 1 {
            items.swap_remove(1)
        } else {
            Value::Null
        };
        Some(RawEvent { name, data, at })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Why a connect failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the namespace connect with `44`: its data
    /// (`{"message": ...}`).
    Refused(Value),
    /// The websocket or the handshake failed.
    Failed(anyhow::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused(data) => {
                let data = data.to_string();
                write!(f, "connect refused: {data:.200}")
            }
            ConnectError::Failed(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<anyhow::Error> for ConnectError {
    fn from(error: anyhow::Error) -> Self {
        ConnectError::Failed(error)
    }
}

/// Why no event was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived before the deadline.
    TimedOut,
    /// The connection closed.
    Closed,
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

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connected socket: the split websocket, the session id, and the event
/// frames (with their arrival times) that came before the connect ack.
struct Connected {
    sink: futures::stream::SplitSink<WsStream, Message>,
    stream: futures::stream::SplitStream<WsStream>,
    sid: String,
    early: Vec<(String, Instant)>,
}

/// Opens the websocket and completes the namespace connect with `auth`.
///
/// The server may put the socket in its rooms before it writes the connect
/// ack, so a room broadcast (another agent's `presence:changed`) can arrive
/// first. The official client buffers such events until it is connected
/// (socket.io-client's `receiveBuffer`); so does this one, instead of
/// failing the connect.
async fn handshake(realtime: &str, auth: &Value) -> Result<Connected, ConnectError> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio::time::timeout(
        TIMEOUT,
        tokio_tungstenite::connect_async_with_config(socket_url(realtime), Some(config), false),
    )
    .await
    .map_err(|_| anyhow!("websocket handshake timed out"))?
    .context("websocket handshake")?;
    let (mut sink, mut stream) = ws.split();
    let open = tokio::time::timeout(TIMEOUT, next_text(&mut stream))
        .await
        .map_err(|_| anyhow!("no Engine.IO open packet"))?
        .ok_or_else(|| anyhow!("closed before the open packet"))?;
    if !open.starts_with('0') {
        return Err(anyhow!("expected an Engine.IO open packet, got {open:.80}").into());
    }
    sink.send(Message::text(format!("40{auth}")))
        .await
        .context("sending the namespace connect")?;
    let deadline = Instant::now() + TIMEOUT;
    let mut early = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let text = tokio::time::timeout(remaining, next_text(&mut stream))
            .await
            .map_err(|_| anyhow!("no namespace connect answer"))?
            .ok_or_else(|| anyhow!("closed before the connect answer"))?;
        if text == "2" {
            sink.send(Message::text("3")).await.context("pong")?;
        } else if let Some(body) = text.strip_prefix("40") {
            let sid = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|ack| ack["sid"].as_str().map(str::to_string))
                .ok_or_else(|| anyhow!("connect ack without a sid: {text:.80}"))?;
            return Ok(Connected {
                sink,
                stream,
                sid,
                early,
            });
        } else if let Some(body) = text.strip_prefix("44") {
            let data = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.into()));
            return Err(ConnectError::Refused(data));
        } else if text.starts_with("42") {
            early.push((text, Instant::now()));
        } else {
            return Err(anyhow!("unexpected packet before the connect ack: {text:.80}").into());
        }
    }
}

/// A connected Socket.IO client whose events are decoded as `E`.
pub struct SioClient<E> {
    /// The session id the server gave in its connect ack.
    pub sid: String,
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<E>,
    acks: Acks,
    next_ack: u64,
    closed: Arc<AtomicBool>,
}

impl<E: Decode> SioClient<E> {
    /// Connects to the realtime service at `realtime` (`http://host:port`)
    /// with `auth` as the Socket.IO auth payload, and waits for the
    /// namespace connect ack.
    pub async fn connect(realtime: &str, auth: &Value) -> Result<Self, ConnectError> {
        let Connected {
            mut sink,
            mut stream,
            sid,
            early,
        } = handshake(realtime, auth).await?;
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (events_tx, events) = mpsc::unbounded_channel();
        for (text, at) in early {
            if let Some(event) = text.strip_prefix("42").and_then(|b| E::decode(b, at)) {
                let _ = events_tx.send(event);
            }
        }
        let acks: Acks = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let is_close = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || is_close {
                    break;
                }
            }
        });
        let (pong, reader_acks, reader_closed) = (out.clone(), acks.clone(), closed.clone());
        tokio::spawn(async move {
            while let Some(text) = next_text(&mut stream).await {
                let at = Instant::now();
                if text == "2" {
                    let _ = pong.send(Message::text("3"));
                } else if let Some(body) = text.strip_prefix("42") {
                    if let Some(event) = E::decode(body, at)
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
            reader_closed.store(true, Ordering::SeqCst);
            // Acks still awaited never come: their waiters fail now.
            reader_acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        });
        Ok(SioClient {
            sid,
            out,
            events,
            acks,
            next_ack: 1,
            closed,
        })
    }

    /// Sends a raw Engine.IO text frame, malformed or not.
    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::text(text.into()));
    }

    /// Emits `event` without asking for an ack.
    pub fn emit(&self, event: &str, data: Value) {
        self.send_raw(format!("42{}", json!([event, data])));
    }

    /// Emits and waits for the server's ack.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> anyhow::Result<Value> {
        self.ack_raw(&json!([event, data]).to_string()).await
    }

    /// Sends `42<id><payload>` with any payload and waits for ack `<id>`.
    pub async fn ack_raw(&mut self, payload: &str) -> anyhow::Result<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        if self.is_closed() {
            self.acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(anyhow!(
                "connection closed before the ack for {payload:.80}"
            ));
        }
        self.send_raw(format!("42{id}{payload}"));
        let answer = tokio::time::timeout(TIMEOUT, rx).await;
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        answer
            .map_err(|_| anyhow!("no ack for {payload:.80}"))?
            .map_err(|_| anyhow!("connection closed before the ack for {payload:.80}"))
    }

    /// The next event received, waiting until `deadline` at the most.
    pub async fn recv_until(&mut self, deadline: tokio::time::Instant) -> Result<E, RecvError> {
        tokio::time::timeout_at(deadline, self.events.recv())
            .await
            .map_err(|_| RecvError::TimedOut)?
            .ok_or(RecvError::Closed)
    }

    /// An event already received, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<E> {
        self.events.try_recv().ok()
    }

    /// Waits for the first event named `name` that satisfies `matches`,
    /// discarding everything else received meanwhile.
    pub async fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&E) -> bool,
    ) -> anyhow::Result<E> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.recv_until(deadline).await {
                Ok(event) if event.name() == name && matches(&event) => return Ok(event),
                Ok(_) => {}
                Err(RecvError::TimedOut) => {
                    return Err(anyhow!("no {name} event within {timeout:?}"));
                }
                Err(RecvError::Closed) => {
                    return Err(anyhow!("socket closed while waiting for {name}"));
                }
            }
        }
    }

    /// Drops everything received so far.
    pub fn clear(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the websocket, like a browser tab closing.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

impl<E> Drop for SioClient<E> {
    fn drop(&mut self) {
        let _ = self.out.send(Message::Close(None));
    }
}

/// What a raw-frame consumer is handed: the frame's text and arrival time.
/// The load suite's fan-out subscribers use it to avoid parsing JSON tens of
/// thousands of times a second.
pub type FrameSink = Arc<dyn Fn(&str, Instant) + Send + Sync>;

/// A receive-only socket that hands every raw event frame (`42...`) to
/// `sink`. Returns once connected; the reader runs until the server closes
/// the socket or `stop` fires.
pub async fn subscribe_raw(
    realtime: &str,
    auth: &Value,
    sink: FrameSink,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConnectError> {
    let Connected {
        sink: mut ws_sink,
        mut stream,
        early,
        ..
    } = handshake(realtime, auth).await?;
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

/// Splits an optional numeric ack id off the front of a packet body.
pub fn split_id(rest: &str) -> (Option<u64>, &str) {
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
    fn raw_events_keep_their_payload_with_or_without_an_ack_id() {
        let at = Instant::now();
        let event = RawEvent::decode(r#"["call:status",{"data":{"id":"c1"}}]"#, at);
        assert_eq!(
            event,
            Some(RawEvent {
                name: "call:status".into(),
                data: json!({"data": {"id": "c1"}}),
                at
            })
        );
        let event = RawEvent::decode(r#"12["ping"]"#, at).map(|e| (e.name, e.data));
        assert_eq!(event, Some(("ping".into(), Value::Null)));
        assert_eq!(RawEvent::decode("garbage", at), None);
        assert_eq!(RawEvent::decode("[1,2]", at), None);
    }

    #[test]
    fn ack_ids_split_off_the_front() {
        assert_eq!(split_id("12[1]"), (Some(12), "[1]"));
        assert_eq!(split_id("[1]"), (None, "[1]"));
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

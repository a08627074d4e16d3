//! A minimal Socket.IO v5 client over Engine.IO 4's websocket transport,
//! written from the protocol: enough to test the server the way any
//! standard client talks to it.
//!
//! Handshake: `GET /socket.io/?EIO=4&transport=websocket`, the server's open
//! packet `0{...}`, then our namespace connect `40{auth}`, answered by
//! `40{"sid"}` (accepted) or `44{"message"}` (refused). Events are
//! `42["name",data]`, ack requests `42<id>["name",data]`, acks `43<id>[data]`;
//! the server pings with `2` and we answer `3`.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for something the server should send.
pub const WAIT: Duration = Duration::from_secs(10);

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct SioClient {
    pub sid: String,
    out: mpsc::UnboundedSender<Message>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    /// Events received while waiting for another one.
    backlog: VecDeque<(String, Value)>,
    acks: Acks,
    next_ack: u64,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl SioClient {
    /// Connects with `auth` as the Socket.IO auth payload. `Err` carries the
    /// connect error's data (`{"message": ...}`) when the server refuses.
    pub async fn connect(addr: SocketAddr, auth: Value) -> Result<SioClient, Value> {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        let (mut sink, mut stream) = ws.split();

        let open = next_text(&mut stream).await.expect("open packet");
        assert!(open.starts_with('0'), "expected an open packet, got {open}");
        sink.send(Message::text(format!("40{auth}")))
            .await
            .expect("send connect");
        // An event may be sent before the connect ack reaches us (the server
        // emits as soon as the socket joins its rooms): keep it for later.
        let mut early = VecDeque::new();
        let sid = loop {
            let text = next_text(&mut stream).await.expect("connect answer");
            if let Some(event) = text.strip_prefix("42").and_then(parse_event) {
                early.push_back(event);
            } else if text == "2" {
                sink.send(Message::text("3")).await.expect("pong");
            } else if let Some(body) = text.strip_prefix("40") {
                let body: Value = serde_json::from_str(body).expect("connect ack JSON");
                break body["sid"].as_str().expect("sid").to_string();
            } else if let Some(body) = text.strip_prefix("44") {
                return Err(serde_json::from_str(body).expect("connect error JSON"));
            } else {
                panic!("unexpected packet before the connect ack: {text}");
            }
        };

        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (events_tx, events) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
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
                if text == "2" {
                    let _ = pong.send(Message::text("3"));
                } else if let Some(event) = text.strip_prefix("42").and_then(parse_event) {
                    let _ = events_tx.send(event);
                } else if let Some(rest) = text.strip_prefix("43") {
                    let (id, array) = split_id(rest);
                    let data = match serde_json::from_str::<Value>(array) {
                        Ok(Value::Array(mut items)) if !items.is_empty() => items.remove(0),
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
            reader_closed.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Ok(SioClient {
            sid,
            out,
            events,
            backlog: early,
            acks,
            next_ack: 1,
            closed,
        })
    }

    /// Connects with a token, panicking if refused.
    pub async fn with_token(addr: SocketAddr, token: &str) -> SioClient {
        SioClient::connect(addr, json!({"token": token}))
            .await
            .unwrap_or_else(|e| panic!("connect refused: {e}"))
    }

    /// Sends a raw Engine.IO text frame, malformed or not.
    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::text(text.into()));
    }

    pub fn emit(&self, event: &str, data: Value) {
        self.send_raw(format!("42{}", json!([event, data])));
    }

    /// Emits and waits for the server's ack.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> Value {
        let frame = json!([event, data]).to_string();
        self.ack_raw(&frame).await
    }

    /// Sends `42<id><payload>` with any payload and waits for ack `<id>`.
    pub async fn ack_raw(&mut self, payload: &str) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        self.send_raw(format!("42{id}{payload}"));
        tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {payload}"))
            .expect("connection open")
    }

    /// The next `event` whose payload satisfies `matches`; other events
    /// are kept for later calls.
    pub async fn next_event_where(
        &mut self,
        event: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(pos) = self
            .backlog
            .iter()
            .position(|(name, data)| name == event && matches(data))
        {
            return self.backlog.remove(pos).expect("present").1;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let received = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event} event arrived"))
                .unwrap_or_else(|| panic!("connection closed while waiting for {event}"));
            if received.0 == event && matches(&received.1) {
                return received.1;
            }
            self.backlog.push_back(received);
        }
    }

    pub async fn next_event(&mut self, event: &str) -> Value {
        self.next_event_where(event, |_| true).await
    }

    /// Everything received so far and not yet consumed, in arrival order.
    pub fn received(&mut self) -> Vec<(String, Value)> {
        while let Ok(event) = self.events.try_recv() {
            self.backlog.push_back(event);
        }
        self.backlog.iter().cloned().collect()
    }

    /// Counts and discards what has arrived so far (for measurements,
    /// where keeping every event would distort memory and time).
    pub fn drain_count(&mut self) -> usize {
        let mut n = self.backlog.len();
        self.backlog.clear();
        while self.events.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    /// Waits for the next event of any name.
    pub async fn next_any(&mut self) -> (String, Value) {
        if let Some(event) = self.backlog.pop_front() {
            return event;
        }
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("connection open")
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the server closes the connection.
    pub async fn wait_closed(&self) {
        for _ in 0..200 {
            if self.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not close the connection");
    }

    /// Closes the websocket, like a browser tab closing.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

/// `(name, data)` of an EVENT packet's body (after `42`).
fn parse_event(rest: &str) -> Option<(String, Value)> {
    let (_, array) = split_id(rest);
    let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(array) else {
        return None;
    };
    let Some(Value::String(name)) = items.first().cloned() else {
        return None;
    };
    let data = if items.len() > 1 {
        items.remove(1)
    } else {
        Value::Null
    };
    Some((name, data))
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
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

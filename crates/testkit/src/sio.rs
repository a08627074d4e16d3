//! The tests' face of the Socket.IO client ([`switchboard_sio_client`], the
//! load suite's too): whole payloads, events kept until a test asks for
//! them, and a panic naming what did not arrive.

use std::{collections::VecDeque, net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use switchboard_sio_client::{RawEvent, RecvError};

/// How long a test waits for something the server should send.
pub const WAIT: Duration = Duration::from_secs(10);

/// A socket a test drives. Events that arrive while the test waits for
/// another one are kept, in arrival order, for later calls.
pub struct SioClient {
    /// The session id the server gave.
    pub sid: String,
    inner: switchboard_sio_client::SioClient<RawEvent>,
    backlog: VecDeque<(String, Value)>,
}

impl SioClient {
    /// Connects with `auth` as the Socket.IO auth payload. `Err` carries the
    /// connect error's data (`{"message": ...}`) when the server refuses.
    pub async fn connect(addr: SocketAddr, auth: Value) -> Result<SioClient, Value> {
        match switchboard_sio_client::SioClient::connect(&format!("http://{addr}"), &auth).await {
            Ok(inner) => Ok(SioClient {
                sid: inner.sid.clone(),
                inner,
                backlog: VecDeque::new(),
            }),
            Err(switchboard_sio_client::ConnectError::Refused(data)) => Err(data),
            Err(error) => panic!("connect to {addr}: {error}"),
        }
    }

    /// Connects with a token, panicking if refused.
    pub async fn with_token(addr: SocketAddr, token: &str) -> SioClient {
        SioClient::connect(addr, json!({"token": token}))
            .await
            .unwrap_or_else(|e| panic!("connect refused: {e}"))
    }

    /// Sends a raw Engine.IO text frame, malformed or not.
    pub fn send_raw(&self, text: impl Into<String>) {
        self.inner.send_raw(text);
    }

    /// Emits `event` without asking for an ack.
    pub fn emit(&self, event: &str, data: Value) {
        self.inner.emit(event, data);
    }

    /// Emits and waits for the server's ack.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> Value {
        let frame = json!([event, data]).to_string();
        self.ack_raw(&frame).await
    }

    /// Sends `42<id><payload>` with any payload and waits for ack `<id>`.
    pub async fn ack_raw(&mut self, payload: &str) -> Value {
        self.inner
            .ack_raw(payload)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
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
            let received = match self.inner.recv_until(deadline).await {
                Ok(received) => received,
                Err(RecvError::TimedOut) => panic!("no {event} event arrived"),
                Err(RecvError::Closed) => panic!("connection closed while waiting for {event}"),
            };
            if received.name == event && matches(&received.data) {
                return received.data;
            }
            self.backlog.push_back((received.name, received.data));
        }
    }

    /// The next `event`, whatever its payload (others are kept).
    pub async fn next_event(&mut self, event: &str) -> Value {
        self.next_event_where(event, |_| true).await
    }

    /// Everything received so far and not yet consumed, in arrival order.
    pub fn received(&mut self) -> Vec<(String, Value)> {
        while let Some(event) = self.inner.try_recv() {
            self.backlog.push_back((event.name, event.data));
        }
        self.backlog.iter().cloned().collect()
    }

    /// Counts and discards what has arrived so far (for measurements,
    /// where keeping every event would distort memory and time).
    pub fn drain_count(&mut self) -> usize {
        let mut n = self.backlog.len();
        self.backlog.clear();
        while self.inner.try_recv().is_some() {
            n += 1;
        }
        n
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Waits until the server closes the connection.
    pub async fn wait_closed(&self) {
        crate::eventually("the server closes the connection", || async {
            self.is_closed()
        })
        .await;
    }

    /// Closes the websocket, like a browser tab closing.
    pub fn close(&self) {
        self.inner.close();
    }
}

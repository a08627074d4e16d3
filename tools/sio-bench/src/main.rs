//! Issue 16 asked, before writing our own Socket.IO client, whether a
//! maintained client crate holds the fan-out load. This measures it: N
//! subscribers of one tenant, connected with either client to a running
//! realtime server, while envelopes are published on the tenant's Redis
//! channel at a fixed rate (the relay's input, so the API is not in the
//! way). Every subscriber parses every event's JSON and times it from its
//! publish; the run reports the delivery ratio, latency percentiles and
//! this process's CPU per delivery.
//!
//!   sio-bench <ours|rust_socketio> REALTIME_URL TOKEN TENANT_ID \
//!             SUBSCRIBERS RATE_PER_S SECONDS
//!
//! REDIS_URL and SWITCHBOARD_REDIS_PREFIX name the server's Redis and key
//! prefix. scripts/bench-sio-clients.sh starts a stack and runs both.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use futures::FutureExt;
use serde_json::{Value, json};

/// Microseconds since the epoch: publish and receipt stamps (one process,
/// one clock).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// This process's user + system CPU seconds (from /proc, in clock ticks of
/// 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Default)]
struct Tally {
    delivered: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Tally {
    /// Records one event's arrival, given its payload (the envelope).
    fn record(&self, envelope: &Value) {
        if let Some(sent) = envelope.pointer("/data/sent_us").and_then(Value::as_u64) {
            let latency = now_us().saturating_sub(sent);
            self.delivered.fetch_add(1, Ordering::Relaxed);
            self.latencies_us.lock().unwrap().push(latency);
        }
    }
}

const EVENT: &str = "customer:note_added";

/// Our client: every frame is parsed whole (what rust_socketio does too).
async fn connect_ours(
    url: &str,
    auth: &Value,
    tally: Arc<Tally>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let sink: switchboard_sio_client::FrameSink = Arc::new(move |frame: &str, _at: Instant| {
        let body = &frame[2..];
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(body)
            && items.first().and_then(Value::as_str) == Some(EVENT)
            && let Some(envelope) = items.get(1)
        {
            tally.record(envelope);
        }
    });
    switchboard_sio_client::subscribe_raw(url, auth, sink, stop)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn connect_rust_socketio(
    url: &str,
    auth: &Value,
    tally: Arc<Tally>,
) -> anyhow::Result<rust_socketio::asynchronous::Client> {
    use rust_socketio::{Payload, TransportType, asynchronous::ClientBuilder};
    let client = ClientBuilder::new(url)
        .namespace("/")
        .auth(auth.clone())
        .transport_type(TransportType::Websocket)
        .on(EVENT, move |payload: Payload, _client| {
            let tally = tally.clone();
            async move {
                #[allow(deprecated)]
                if let Payload::Text(values) = payload
                    && let Some(envelope) = values.first()
                {
                    tally.record(envelope);
                }
            }
            .boxed()
        })
        .connect()
        .await
        .context("rust_socketio connect")?;
    Ok(client)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [client, url, token, tenant, subscribers, rate, seconds] = args.as_slice() else {
        bail!("usage: sio-bench <ours|rust_socketio> URL TOKEN TENANT SUBSCRIBERS RATE SECONDS");
    };
    let subscribers: usize = subscribers.parse()?;
    let rate: f64 = rate.parse()?;
    let seconds: f64 = seconds.parse()?;
    let redis_url = std::env::var("REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
    let prefix = std::env::var("SWITCHBOARD_REDIS_PREFIX").context("SWITCHBOARD_REDIS_PREFIX")?;
    let channel = format!("{prefix}:events:{tenant}");
    let auth = json!({ "token": token });

    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut held = Vec::new();
    let connect_started = Instant::now();
    for _ in 0..subscribers {
        match client.as_str() {
            "ours" => connect_ours(url, &auth, tally.clone(), stop_rx.clone()).await?,
            "rust_socketio" => held.push(connect_rust_socketio(url, &auth, tally.clone()).await?),
            other => bail!("unknown client {other}"),
        }
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    // Let every namespace join settle before the first event.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let redis = redis::Client::open(redis_url)?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut published = 0u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = tokio::time::Instant::now();
    while started.elapsed().as_secs_f64() < seconds {
        let envelope = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "tenant_id": tenant,
            "type": "customer.note_added",
            "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": { "sent_us": now_us(), "seq": published, "body": "sio-bench" },
        });
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(envelope.to_string())
            .query_async(&mut conn)
            .await?;
        published += 1;
        next += interval;
        tokio::time::sleep_until(next).await;
    }
    // Deliveries still in flight.
    let expected = published * subscribers as u64;
    let drain_until = Instant::now() + Duration::from_secs(5);
    while tally.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *tally.latencies_us.lock().unwrap());
    latencies.sort_unstable();
    let _ = stop_tx.send(true);
    for c in held {
        let _ = c.disconnect().await;
    }
    println!(
        "{}",
        json!({
            "client": client,
            "subscribers": subscribers,
            "rate_per_s": rate,
            "seconds": seconds,
            "connect_seconds": (connect_secs * 100.0).round() / 100.0,
            "published": published,
            "expected": expected,
            "delivered": delivered,
            "delivery_pct": (delivered as f64 * 10000.0 / expected.max(1) as f64).round() / 100.0,
            "latency_ms": {
                "p50": percentile(&latencies, 0.50),
                "p95": percentile(&latencies, 0.95),
                "p99": percentile(&latencies, 0.99),
                "max": percentile(&latencies, 1.0),
            },
            "cpu_seconds": (cpu * 100.0).round() / 100.0,
            "cpu_us_per_delivery": (cpu * 1e6 / delivered.max(1) as f64 * 10.0).round() / 10.0,
            "wall_seconds": (elapsed * 10.0).round() / 10.0,
        })
    );
    Ok(())
}

//! Measures the realtime server: events/s delivered to N connected sockets,
//! API write → socket receipt latency, and memory per connected socket.
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo run -p switchboard-realtime --example fanout -- [sockets] [events] [writes]
//! ```
//! Defaults: 200 sockets, 2000 events, 300 API writes. Needs the same local
//! PostgreSQL and Redis as the tests (it uses their harness: a fresh
//! database, the API and a realtime server on port 0, all in this process).
//! Prints figures only: nothing here asserts a timing.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_core::events::{Envelope, EventPublisher, EventType};
use switchboard_testkit::{RealtimeServer, SioClient, spawn_app};
use uuid::Uuid;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sockets = args.first().copied().unwrap_or(200);
    let events = args.get(1).copied().unwrap_or(2000);
    let writes = args.get(2).copied().unwrap_or(300);

    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;

    // Memory: RSS growth per connected socket. Client and server share this
    // process, so the figure is an upper bound for the server side.
    let before = rss_kib();
    let mut clients = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        clients.push(SioClient::with_token(rt.addr, &app.a.token).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "memory: {sockets} sockets, RSS +{} KiB = {:.1} KiB per socket (client + server, upper bound)",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / sockets as f64
    );
    for client in &mut clients {
        client.drain_count();
    }

    // Fan-out throughput: `events` envelopes published as fast as Redis
    // takes them from 4 tasks; each must reach every socket.
    let pool = switchboard_core::redis::pool(&app.settings).expect("redis pool");
    let publisher = EventPublisher::new(pool, app.settings.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let publisher = publisher.clone();
            let tenant = app.a.id;
            tokio::spawn(async move {
                for i in 0..events / 4 {
                    publisher
                        .publish(&Envelope::new(
                            tenant,
                            EventType::CampaignProgress,
                            json!({"id": Uuid::now_v7(), "sent": i}),
                        ))
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("publisher");
    }
    let published = Instant::now();
    let expected = (events / 4) * 4;
    let mut counts = vec![0usize; sockets];
    let deadline = Instant::now() + Duration::from_secs(120);
    while counts.iter().any(|c| *c < expected) && Instant::now() < deadline {
        for (count, client) in counts.iter_mut().zip(clients.iter_mut()) {
            *count += client.drain_count();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let delivered: usize = counts.iter().sum();
    println!(
        "fan-out: {expected} events x {sockets} sockets = {delivered} deliveries in {:.2} s \
         ({:.0} deliveries/s; {:.0} events/s relayed to all sockets; publishing took {:.2} s)",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        expected as f64 / elapsed.as_secs_f64(),
        (published - started).as_secs_f64()
    );

    // Latency: POST /v1/customers → customer:created on one of the sockets,
    // one write at a time, with every socket still connected.
    let mut latencies = Vec::with_capacity(writes);
    let watcher = sockets / 2;
    for i in 0..writes {
        let started = Instant::now();
        let created = app
            .create_customer(
                &app.a.token,
                json!({"name": format!("Latency {i}"), "phone": format!("+1202555{:04}", i % 10_000)}),
            )
            .await;
        clients[watcher]
            .next_event_where("customer:created", |e| e["data"]["id"] == created["id"])
            .await;
        latencies.push(started.elapsed());
        for client in clients.iter_mut() {
            client.drain_count();
        }
    }
    latencies.sort();
    println!(
        "API write → socket: {writes} writes, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    drop(clients);
    let _ = rt.stop().await;
}

//! Realtime fan-out (seed 001 §3 "Redis Pub/Sub Throughput": 200 WebSocket
//! subscribers, publishers at 500 msg/s, delivery > 95 %, p95 < 100 ms; and
//! seed 000, scenario 5 "Socket.io Scaling"). Subscribers are plain
//! Socket.IO connections opened before the attack; publishers are Goose
//! users writing through the API (a customer note, which every socket of
//! the tenant receives) at a target rate. Each note carries its send time;
//! every subscriber times every delivery, so the figures are API write →
//! socket receipt across all sockets, and the delivery ratio is exact.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use goose::prelude::*;
use serde_json::json;

use super::{
    About, LoadScenario, Run, Setup, agent, log_in, logging_in, next_tick, record_scheduled,
};
use crate::{
    context::{Call, RunContext, current, epoch_instant, epoch_micros, login, pick},
    measure::Samples,
    profile::{Load, Shape, Tier},
    results::Extras,
    sio::subscribe_raw,
    thresholds::{Rule, rule, target_rate},
};

/// Subscribers whose deliveries are also handed to Goose (as custom
/// requests): all of them would mean 30 000 records a second.
const SAMPLED: usize = 10;

/// What the fan-out scenario counts and times: notes published, and their
/// deliveries to every subscriber.
pub struct FanoutStats {
    /// Subscriber sockets opened before the attack (the shape's `size`).
    pub subscribers: usize,
    /// Notes the publishers sent, each counted before its request.
    pub published: AtomicU64,
    /// Notes received, summed over every subscriber.
    pub delivered: AtomicU64,
    /// Each delivery's latency, from the note's send time to its receipt on
    /// a subscriber's socket.
    pub deliveries: Samples,
    sampled: Mutex<Vec<Duration>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl FanoutStats {
    /// Closes every subscriber's socket.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Seed 001 §3 and seed 000's scenario 5.
pub struct Fanout;

impl LoadScenario for Fanout {
    fn about(&self) -> About {
        About::new( "fanout", "seed 001 §3 Redis Pub/Sub Throughput (200 subscribers) + seed 000 §Scenario 5 Socket.io Scaling", ).paced()
    }

    fn load(&self, tier: Tier) -> Load {
        // Publishers; `size` subscribers.
        Load::users(10).rate(tier.choose(500.0, 150.0)).size(200)
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule("fanout.delivery_pct > 95", "seed 001 §3: delivery rate"),
                target_rate(self.load(tier), "seed 001 §3: msg/s"),
                rule("fanout.p50_ms < 50", "seed 001 §3: p50"),
                rule("fanout.p95_ms < 100", "seed 001 §3: p95"),
                rule("fanout.p99_ms < 200", "seed 001 §3: p99"),
            ],
            Tier::Goal => vec![
                rule(
                    "fanout.deliveries_per_s ≥ 30_000",
                    "goal: events/s delivered",
                ),
                rule("fanout.p99_ms ≤ 25", "goal: API→socket p99"),
                rule("fanout.delivery_pct ≥ 100", "goal: nothing lost"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        logging_in("fanout", transaction!(on_start))
            .register_transaction(transaction!(publish).set_name("publish"))
    }

    fn setup<'a>(&'a self, run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async move { Ok(Setup::noted(setup(run.ctx).await?)) })
    }

    fn finish<'a>(&'a self, run: &'a Run<'a>, extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(fanout) = run.ctx.extra::<FanoutStats>() else {
                return;
            };
            fanout.stop();
            let published = fanout.published.load(Ordering::Relaxed);
            let delivered = fanout.delivered.load(Ordering::Relaxed);
            let expected = published * fanout.subscribers as u64;
            let seconds = run.ctx.shape.total().as_secs_f64();
            extras.insert("fanout.published".into(), published as f64);
            extras.insert("fanout.delivered".into(), delivered as f64);
            extras.insert(
                "fanout.delivery_pct".into(),
                100.0 * delivered as f64 / expected.max(1) as f64,
            );
            extras.insert("fanout.deliveries_per_s".into(), delivered as f64 / seconds);
            if let Some(d) = fanout.deliveries.summary() {
                extras.insert("fanout.p50_ms".into(), d.p50_ms);
                extras.insert("fanout.p95_ms".into(), d.p95_ms);
                extras.insert("fanout.p99_ms".into(), d.p99_ms);
                extras.insert("fanout.max_ms".into(), d.max_ms);
            }
        })
    }
}

/// Opens the subscribers (tenant acme's agents, several sockets each).
async fn setup(ctx: &RunContext) -> anyhow::Result<String> {
    let started = Instant::now();
    let http = crate::context::client()?;
    let tenant = ctx.tenant(0);
    let mut tokens = Vec::new();
    for email in &tenant.agents {
        tokens.push(login(&http, &ctx.endpoints.api, email).await?);
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let fanout = Arc::new(FanoutStats {
        subscribers: ctx.shape.size,
        published: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        deliveries: Samples::default(),
        sampled: Mutex::new(Vec::new()),
        stop,
    });
    for i in 0..ctx.shape.size {
        let collector = fanout.clone();
        let sampled = i < SAMPLED;
        let sink: crate::sio::FrameSink = Arc::new(move |frame: &str, at: Instant| {
            let Some(rest) = frame.split("lt:").nth(1) else {
                return;
            };
            let micros: u64 = rest
                .split(':')
                .nth(1)
                .and_then(|s| {
                    s.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|d| d.parse().ok())
                })
                .unwrap_or(0);
            let latency = at.saturating_duration_since(epoch_instant(micros));
            collector.delivered.fetch_add(1, Ordering::Relaxed);
            collector.deliveries.record(latency);
            if sampled {
                collector
                    .sampled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(latency);
            }
        });
        subscribe_raw(
            &ctx.endpoints.realtime,
            &tokens[i % tokens.len()],
            sink,
            stop_rx.clone(),
        )
        .await?;
    }
    ctx.set_extra(fanout);
    Ok(format!(
        "{} subscribers connected in {:.1} s",
        ctx.shape.size,
        started.elapsed().as_secs_f64()
    ))
}

/// Publishers are tenant acme's agents (the subscribers' tenant).
async fn on_start(user: &mut GooseUser) -> TransactionResult {
    user.weighted_users_index *= 2;
    let result = log_in(user, false).await;
    user.weighted_users_index /= 2;
    result
}

async fn publish(user: &mut GooseUser) -> TransactionResult {
    let intended = next_tick(user).await;
    let me = agent(user)?;
    let ctx = current();
    let fanout = ctx
        .extra::<FanoutStats>()
        .ok_or_else(|| crate::context::fail("no subscribers"))?;
    let (customer, _) = pick(&ctx.tenant(0).customers).clone();
    let seq = fanout.published.fetch_add(1, Ordering::Relaxed);
    let body = json!({ "body": format!("lt:{seq}:{}", epoch_micros()) });
    let path = format!("/v1/customers/{customer}/notes");
    let ok = Call::post(&path, "POST /v1/customers/{id}/notes", &me.token, &body)
        .expect(201)
        .send(user)
        .await
        .is_ok();
    record_scheduled(user, "publish (from schedule)", intended, ok).await?;
    let sampled: Vec<Duration> =
        std::mem::take(&mut *fanout.sampled.lock().unwrap_or_else(|p| p.into_inner()));
    for latency in sampled {
        user.record_custom_request_duration(
            "SIO",
            "api→socket fan-out (10 sampled sockets)",
            latency,
            true,
            None,
            None,
        )
        .await?;
    }
    Ok(())
}

//! Queues (seed 003 "Queue Metrics": processing p95 < 1 s, wait p95 < 30 s,
//! success > 95 %; seed 002 "Queue Metrics": depth, processing rate, failed
//! jobs). Bulk campaigns of thousands of recipients through `campaign.expand`
//! and `sms.send`, with the simulator's delivery receipts (the stack runs
//! the simulator with no delay worth the name): accept → delivered per
//! message (seen on a socket), the whole campaign's throughput, and the
//! worker's own job wait and processing histograms and queue depth, scraped
//! from its `/metrics` before and after.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::future::BoxFuture;
use goose::prelude::*;
use serde_json::{Value, json};

use super::{About, LoadScenario, Run, Setup, agent, agents, id_of};
use crate::{
    context::{Call, RunContext, current, fail},
    measure::{Samples, parse_histogram, parse_value, scrape},
    profile::{Load, Shape, Tier},
    results::Extras,
    sio,
    thresholds::{Rule, rule},
};

/// What the queue scenario measured beyond Goose's own rows.
#[derive(Default)]
pub struct QueueStats {
    /// Each campaign message's time from its campaign's acceptance to
    /// `delivered`, seen on a socket.
    pub deliveries: Samples,
    /// The campaigns' figures once they are final or timed out: recipients,
    /// deliveries, throughput, the worker's job wait and processing p95,
    /// failed and retried jobs, peak queue depth.
    pub summary: std::sync::Mutex<Option<Value>>,
}

/// How often the worker's queue depth is sampled while campaigns run.
const DEPTH_SAMPLE: Duration = Duration::from_millis(500);

/// Seed 003's and seed 002's queue metrics.
pub struct Queues;

impl LoadScenario for Queues {
    fn about(&self) -> About {
        // "No simulated delay" (the goal row).
        About::new("queues", "seed 003 Queue Metrics + seed 002 Queue Metrics")
            .carrier_speed(1_000.0)
    }

    fn load(&self, tier: Tier) -> Load {
        // Campaign recipients; users poll its progress.
        Load::users(1).size(tier.choose(2_000, 20_000))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule(
                    "queue.job_processing_p95_ms < 1_000",
                    "seed 003: processing p95",
                ),
                rule("queue.job_wait_p95_ms < 30_000", "seed 003: wait p95"),
                rule("queue.success_pct > 95", "seed 003: success"),
            ],
            Tier::Goal => vec![
                rule(
                    "queue.delivered_per_s ≥ 3_000",
                    "goal: SMS/s accept→delivered",
                ),
                rule("queue.accept_to_delivered_p95_ms ≤ 1_000", "goal: p95"),
                rule("queue.lost ≤ 0", "goal: nothing lost"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        agents("queues", false).register_transaction(transaction!(campaigns).set_name("campaigns"))
    }

    /// One user, once: the campaigns are the load.
    fn users_args(&self, _shape: &Shape) -> Vec<String> {
        ["--users", "1", "--iterations", "1"]
            .map(String::from)
            .to_vec()
    }

    /// In a stack this run started, the tenants may send as fast as the
    /// queue goes (an external stack keeps its own limits).
    fn setup<'a>(&'a self, run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async move {
            if !run.own_stack {
                return Ok(Setup::default());
            }
            let (note, lifted) = lift_rate_limit().await?;
            Ok(Setup {
                note: Some(note),
                undo: Some(Box::pin(async move {
                    restore_rate_limits(lifted)
                        .await
                        .context("the tenants' SMS rates were not restored")
                })),
            })
        })
    }

    fn finish<'a>(&'a self, run: &'a Run<'a>, extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            collect(run.ctx, extras);
        })
    }
}

/// One campaign per tenant (at most 10 000 explicit recipients each),
/// sent at once and followed until every message is final.
async fn campaigns(user: &mut GooseUser) -> TransactionResult {
    let ctx = current();
    let Some(worker) = ctx.endpoints.worker.clone() else {
        return Err(fail(
            "worker not available: no worker answered /health, so no queue runs",
        ));
    };
    let stats = ctx
        .extra::<QueueStats>()
        .unwrap_or_else(|| Arc::new(QueueStats::default()));
    ctx.set_extra(stats.clone());
    let me = agent(user)?;
    let http = crate::context::client().map_err(fail)?;
    let before = scrape(&http, &worker).await;
    let total = ctx.shape.size;
    let per_tenant = total.div_ceil(ctx.tenants.len()).min(10_000);
    let mut sockets = Vec::new();
    let mut accepted = Vec::new();
    let started = Instant::now();
    for (t, tenant) in ctx.tenants.iter().enumerate() {
        let token = crate::context::login(&http, &ctx.endpoints.api, &tenant.admin)
            .await
            .map_err(fail)?;
        sockets.push(
            sio::connect(&ctx.endpoints.realtime, &token)
                .await
                .map_err(fail)?,
        );
        let Some(template) = tenant.template else {
            return Err(fail("no template"));
        };
        let phones: Vec<String> = (0..per_tenant)
            .map(|i| switchboard::seed::customer_phone(5_000_000 + (t * 100_000 + i) as u64))
            .collect();
        let body = json!({
            "name": format!("load queues {}", uuid::Uuid::now_v7()),
            "template_id": template,
            "variables": { "first_name": "there" },
            "recipients": { "phone_numbers": phones },
        });
        let (_, campaign) = Call::post("/v1/campaigns", "POST /v1/campaigns", &token, &body)
            .expect(201)
            .send(user)
            .await?;
        accepted.push((id_of(&campaign)?, token, Instant::now()));
    }
    let _ = me;
    // Per-message accept → delivered, from the sockets, while polling progress.
    let mut depth_max = 0.0f64;
    let mut last_scrape = Instant::now() - DEPTH_SAMPLE;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut remaining: Vec<usize> = vec![per_tenant; accepted.len()];
    let mut delivered_total = 0u64;
    let mut final_total = 0u64;
    loop {
        for (i, socket) in sockets.iter_mut().enumerate() {
            while let Ok(event) = socket
                .wait_for("message:status", Duration::from_millis(1), |e| {
                    e.subject.campaign_id.as_deref() == Some(accepted[i].0.as_str())
                        && matches!(
                            e.subject.status.as_deref(),
                            Some("delivered" | "undelivered" | "failed")
                        )
                })
                .await
            {
                if event.subject.status.as_deref() == Some("delivered") {
                    delivered_total += 1;
                    stats
                        .deliveries
                        .record(event.at.saturating_duration_since(accepted[i].2));
                }
                final_total += 1;
                remaining[i] = remaining[i].saturating_sub(1);
            }
        }
        // The worker refreshes its queue gauges once a second: sampling
        // them faster measures nothing more and costs the stack requests.
        if last_scrape.elapsed() >= DEPTH_SAMPLE {
            last_scrape = Instant::now();
            let metrics = scrape(&http, &worker).await;
            if let Some(depth) = parse_value(&metrics, "jobs_queue_depth", "") {
                depth_max = depth_max.max(depth);
            }
        }
        if remaining.iter().all(|r| *r == 0) || Instant::now() > deadline {
            break;
        }
    }
    let elapsed = started.elapsed();
    let mut progress = Vec::new();
    for (id, token, _) in &accepted {
        let path = format!("/v1/campaigns/{id}");
        let (_, p) = Call::get(&path, "GET /v1/campaigns/{id}", token)
            .send(user)
            .await?;
        progress.push(p["progress"].clone());
    }
    let after = scrape(&http, &worker).await;
    let wait = parse_histogram(&after, "job_wait_seconds", "queue=\"sms.send\"").since(
        &parse_histogram(&before, "job_wait_seconds", "queue=\"sms.send\""),
    );
    let run = parse_histogram(&after, "job_duration_seconds", "queue=\"sms.send\"").since(
        &parse_histogram(&before, "job_duration_seconds", "queue=\"sms.send\""),
    );
    let counter = |name: &str| {
        parse_value(&after, name, "").unwrap_or(0.0) - parse_value(&before, name, "").unwrap_or(0.0)
    };
    let (done, failed) = (counter("jobs_done_total"), counter("jobs_failed_total"));
    let summary = json!({
        "recipients": per_tenant * accepted.len(),
        "delivered": delivered_total,
        "final": final_total,
        "seconds": elapsed.as_secs_f64(),
        "delivered_per_s": delivered_total as f64 / elapsed.as_secs_f64(),
        "success_pct": 100.0 * delivered_total as f64 / (per_tenant * accepted.len()).max(1) as f64,
        "job_wait_p95_ms": wait.quantile(0.95).map(|s| s * 1e3),
        "job_processing_p95_ms": run.quantile(0.95).map(|s| s * 1e3),
        "jobs_done": done,
        "jobs_failed": failed,
        "jobs_retried": counter("jobs_retried_total"),
        "queue_depth_max": depth_max,
        "progress": progress,
    });
    *stats.summary.lock().unwrap_or_else(|p| p.into_inner()) = Some(summary);
    for latency in stats.deliveries.sampled(2_000) {
        user.record_custom_request_duration(
            "QUEUE",
            "campaign sms accept→delivered (sampled)",
            latency,
            true,
            None,
            None,
        )
        .await?;
    }
    user.record_custom_request_duration(
        "QUEUE",
        "campaigns accept→all final",
        elapsed,
        remaining.iter().all(|r| *r == 0),
        None,
        None,
    )
    .await?;
    if remaining.iter().any(|r| *r > 0) {
        return Err(fail(format!(
            "{} messages not final after {:.0} s",
            remaining.iter().sum::<usize>(),
            elapsed.as_secs_f64()
        )));
    }
    Ok(())
}

/// The SMS rate the demo tenants get for this scenario: campaigns are paced
/// at the tenant's `sms_rate_per_second` (50 by default, a carrier-style
/// limit), which would otherwise cap the measured throughput at 50/s.
pub const QUEUES_SMS_RATE: i32 = 100_000;

/// The tenants' SMS rates before [`lift_rate_limit`], to put back after
/// the scenario: later scenarios on the same database keep their pacing.
#[derive(Debug)]
struct LiftedRates(Vec<(uuid::Uuid, i32)>);

/// Raises the tenants' SMS rate in the stack's database (a stack this run
/// started; an external stack keeps its own limits).
async fn lift_rate_limit() -> anyhow::Result<(String, LiftedRates)> {
    let settings = switchboard_core::Settings::from_env()?;
    let db = switchboard_core::db::connect(&settings).await?;
    let before: Vec<(uuid::Uuid, i32)> = sqlx::query_as(
        "UPDATE tenants t SET sms_rate_per_second = $1
         FROM (SELECT id, sms_rate_per_second FROM tenants FOR UPDATE) before
         WHERE t.id = before.id
         RETURNING t.id, before.sms_rate_per_second",
    )
    .bind(QUEUES_SMS_RATE)
    .fetch_all(&db)
    .await?;
    db.close().await;
    Ok((
        format!(
            "{} tenants may send {QUEUES_SMS_RATE} SMS/s for this scenario (campaign pacing out of the way)",
            before.len()
        ),
        LiftedRates(before),
    ))
}

/// Puts the tenants' SMS rates back.
async fn restore_rate_limits(lifted: LiftedRates) -> anyhow::Result<()> {
    let settings = switchboard_core::Settings::from_env()?;
    let db = switchboard_core::db::connect(&settings).await?;
    let (ids, rates): (Vec<uuid::Uuid>, Vec<i32>) = lifted.0.into_iter().unzip();
    sqlx::query(
        "UPDATE tenants t SET sms_rate_per_second = r.rate
         FROM unnest($1::uuid[], $2::int[]) AS r(id, rate) WHERE t.id = r.id",
    )
    .bind(ids)
    .bind(rates)
    .execute(&db)
    .await?;
    db.close().await;
    Ok(())
}

/// The campaigns' figures as `queue.*` metrics.
fn collect(ctx: &RunContext, extras: &mut Extras) {
    let Some(queues) = ctx.extra::<QueueStats>() else {
        return;
    };
    if let Some(summary) = queues
        .summary
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        for key in [
            "delivered_per_s",
            "success_pct",
            "job_wait_p95_ms",
            "job_processing_p95_ms",
            "jobs_failed",
            "jobs_retried",
            "queue_depth_max",
            "recipients",
            "delivered",
        ] {
            if let Some(v) = summary[key].as_f64() {
                extras.insert(format!("queue.{key}"), v);
            }
        }
        let recipients = summary["recipients"].as_f64().unwrap_or(0.0);
        let finals = summary["final"].as_f64().unwrap_or(0.0);
        extras.insert("queue.lost".into(), (recipients - finals).max(0.0));
    }
    if let Some(d) = queues.deliveries.summary() {
        extras.insert("queue.accept_to_delivered_p50_ms".into(), d.p50_ms);
        extras.insert("queue.accept_to_delivered_p95_ms".into(), d.p95_ms);
        extras.insert("queue.accept_to_delivered_p99_ms".into(), d.p99_ms);
    }
}

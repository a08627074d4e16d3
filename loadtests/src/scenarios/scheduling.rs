//! Call scheduling (seed 002 "Call Scheduling": 50 calls/s, p95 < 200 ms,
//! queue depth < 1 000; baseline rows "Schedule Call p95 150 ms" and "Retry
//! Schedule p95 200 ms"): scheduled calls accepted at a target rate (open
//! model, each timed from its intended send time), every other one with a
//! retry policy, each due two seconds after it is accepted so the worker
//! places them while the attack runs. After the attack the scenario waits
//! for every due call to be placed and measures, from the database, how
//! late each first attempt was behind its `run_at`, and from the worker's
//! `/metrics` the placement lag histogram and the queue depth (sampled
//! throughout).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use goose::prelude::*;
use serde_json::{Value, json};
use switchboard_core::scheduling::ScheduledCallStatus;

use super::{About, LoadScenario, Run, Setup, agent, agents, next_tick, record_scheduled};
use crate::{
    context::{Call, RunContext, current},
    measure::{parse_histogram, parse_value, scrape},
    profile::{Load, Shape, Tier},
    results::Extras,
    thresholds::{Rule, rule, target_rate},
};

/// How far ahead each call is scheduled.
pub const LEAD: Duration = Duration::from_secs(2);
/// Late by more than this is not "on time" (the issue: within a second).
pub const ON_TIME: Duration = Duration::from_secs(1);

/// What the scenario measured beyond Goose's rows.
#[derive(Default)]
pub struct SchedulingStats {
    stop: AtomicBool,
    depth_max: Mutex<f64>,
    before: Mutex<String>,
    /// Measured after the attack: how many calls were scheduled, placed,
    /// placed early or never, how late first attempts were behind `run_at`,
    /// retry attempts, the worker's lag p95/p99 and the peak queue depth.
    pub summary: Mutex<Option<Value>>,
}

/// Seed 002's call scheduling.
pub struct Scheduling;

impl LoadScenario for Scheduling {
    fn about(&self) -> About {
        About::new(
            "scheduling",
            "seed 002 Call Scheduling (50 calls/s, p95 < 200 ms, queue depth < 1 000)",
        )
        .paced()
    }

    fn load(&self, tier: Tier) -> Load {
        // Seed 002 "Call Scheduling": 50 scheduled calls/s; ours ten times.
        Load::users(tier.choose(16, 64)).rate(tier.choose(50.0, 500.0))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        // Seed 002 "Call Scheduling"; the goal tier is ten times the rate
        // with the same latency and punctuality.
        let (rate, depth) = match tier {
            Tier::Seed => (
                "seed 002: scheduled calls/s accepted",
                rule(
                    "scheduling.queue_depth_max < 1_000",
                    "seed 002: queue depth",
                ),
            ),
            Tier::Goal => (
                "goal: scheduled calls/s accepted (ten times the seed)",
                rule(
                    "scheduling.queue_depth_max < 10_000",
                    "goal: queue depth (ten times the seed's)",
                ),
            ),
        };
        vec![
            target_rate(self.load(tier), rate),
            rule(
                "SCHED schedule call (from schedule).p95_ms < 200",
                "seed 002: schedule p95",
            ),
            rule(
                "SCHED retry schedule (from schedule).p95_ms < 200",
                "seed 002 baseline: retry schedule p95",
            ),
            rule("all SCHED.error_pct < 1", "seed 002: errors"),
            rule(
                "scheduling.on_time_pct ≥ 99",
                "issue 15: due calls placed on time (within 1 s of run_at)",
            ),
            rule(
                "scheduling.never_placed ≤ 0",
                "issue 15: every due call placed",
            ),
            rule(
                "scheduling.placed_early ≤ 0",
                "issue 15: never before run_at",
            ),
            depth,
        ]
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        agents("scheduling", false)
            .register_transaction(transaction!(schedule).set_name("schedule call"))
    }

    fn setup<'a>(&'a self, run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async move { Ok(Setup::noted(setup(run.ctx).await?)) })
    }

    fn finish<'a>(&'a self, run: &'a Run<'a>, extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = measure_placement(run.ctx, run.since).await {
                eprintln!("  scheduling: placement not measured: {error:#}");
            }
            if run.own_stack {
                match retire_unfinished(run.since).await {
                    Ok((canceled, ended)) => println!(
                        "  teardown: {canceled} unfinished scheduled calls canceled, {ended} live calls ended"
                    ),
                    Err(error) => {
                        eprintln!("  teardown: unfinished scheduled calls left: {error:#}")
                    }
                }
            }
            collect(run.ctx, extras);
        })
    }
}

/// Starts the queue-depth sampler (the worker refreshes its gauges about
/// once a second) and keeps the worker's metrics from before the attack.
async fn setup(ctx: &RunContext) -> anyhow::Result<String> {
    let worker = ctx.endpoints.worker.clone().ok_or_else(|| {
        anyhow::anyhow!("no worker answered /health: nothing would place the calls")
    })?;
    let http = crate::context::client()?;
    let stats = Arc::new(SchedulingStats::default());
    *stats.before.lock().unwrap_or_else(|p| p.into_inner()) = scrape(&http, &worker).await;
    ctx.set_extra(stats.clone());
    tokio::spawn(async move {
        while !stats.stop.load(Ordering::Relaxed) {
            let metrics = scrape(&http, &worker).await;
            if let Some(depth) = parse_value(&metrics, "jobs_queue_depth", "") {
                let mut max = stats.depth_max.lock().unwrap_or_else(|p| p.into_inner());
                *max = max.max(depth);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(format!(
        "each call due {} s after it is accepted; queue depth sampled every 0.5 s",
        LEAD.as_secs()
    ))
}

async fn schedule(user: &mut GooseUser) -> TransactionResult {
    let intended = next_tick(user).await;
    let ctx = current();
    let me = agent(user)?;
    let tenant = ctx.tenant(me.tenant);
    let pick = rand::random_range(0..tenant.customers.len());
    let to = tenant.customers[pick].1.clone();
    let run_at = chrono::Utc::now() + chrono::Duration::from_std(LEAD).unwrap_or_default();
    let with_retry = rand::random::<bool>();
    let mut body = json!({
        "to": to,
        "run_at": run_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if with_retry {
        body["retry"] =
            json!({"max_attempts": 2, "backoff_seconds": 1, "on": ["busy", "no-answer", "failed"]});
    }
    let (name, sched) = if with_retry {
        (
            "POST /v1/scheduled-calls (retry policy)",
            "retry schedule (from schedule)",
        )
    } else {
        ("POST /v1/scheduled-calls", "schedule call (from schedule)")
    };
    let ok = Call::post("/v1/scheduled-calls", name, &me.token, &body)
        .expect(201)
        .send(user)
        .await
        .is_ok();
    record_scheduled(user, sched, intended, ok).await
}

/// How the run's first attempts were placed (seconds late behind `run_at`).
#[derive(sqlx::FromRow)]
struct Placement {
    scheduled: i64,
    placed: i64,
    on_time: i64,
    p50: Option<f64>,
    p95: Option<f64>,
    max: Option<f64>,
    early: i64,
    retries: i64,
}

/// After the attack: waits (up to a minute) until every call the run
/// scheduled has been placed, then measures how late the first attempts
/// were and stores the summary.
async fn measure_placement(
    ctx: &RunContext,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let Some(stats) = ctx.extra::<SchedulingStats>() else {
        return Ok(());
    };
    let settings = switchboard_core::Settings::from_env()?;
    let db = switchboard_core::db::connect(&settings).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM scheduled_calls WHERE created_at >= $1 AND status = $2",
        )
        .bind(since)
        .bind(ScheduledCallStatus::Pending)
        .fetch_one(&db)
        .await?;
        if waiting == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stats.stop.store(true, Ordering::Relaxed);
    let row: Placement = sqlx::query_as(
        "SELECT count(*) AS scheduled,
                count(a.call_id) AS placed,
                count(*) FILTER (WHERE a.started_at <= s.run_at + make_interval(secs => $2)) AS on_time,
                (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - s.run_at)))::float8 AS p50,
                (percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - s.run_at)))::float8 AS p95,
                max(extract(epoch FROM a.started_at - s.run_at))::float8 AS max,
                count(*) FILTER (WHERE a.started_at < s.run_at) AS early,
                (SELECT count(*) FROM scheduled_call_attempts r JOIN scheduled_calls q ON q.id = r.scheduled_call_id
                  WHERE q.created_at >= $1 AND r.attempt > 1) AS retries
         FROM scheduled_calls s
         LEFT JOIN scheduled_call_attempts a ON a.scheduled_call_id = s.id AND a.attempt = 1
         WHERE s.created_at >= $1",
    )
    .bind(since)
    .bind(ON_TIME.as_secs_f64())
    .fetch_one(&db)
    .await?;
    db.close().await;
    let Placement {
        scheduled,
        placed,
        on_time,
        p50,
        p95,
        max,
        early,
        retries,
    } = row;
    let http = crate::context::client()?;
    let after = match &ctx.endpoints.worker {
        Some(worker) => scrape(&http, worker).await,
        None => String::new(),
    };
    let before = stats
        .before
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let lag = parse_histogram(&after, "scheduled_call_lag_seconds", "").since(&parse_histogram(
        &before,
        "scheduled_call_lag_seconds",
        "",
    ));
    let depth_max = *stats.depth_max.lock().unwrap_or_else(|p| p.into_inner());
    let summary = json!({
        "scheduled": scheduled,
        "placed": placed,
        "never_placed": scheduled - placed,
        "placed_early": early,
        "on_time_pct": 100.0 * on_time as f64 / scheduled.max(1) as f64,
        "late_p50_ms": p50.map(|s| s * 1e3),
        "late_p95_ms": p95.map(|s| s * 1e3),
        "late_max_ms": max.map(|s| s * 1e3),
        "retry_attempts": retries,
        "worker_lag_p95_ms": lag.quantile(0.95).map(|s| s * 1e3),
        "worker_lag_p99_ms": lag.quantile(0.99).map(|s| s * 1e3),
        "queue_depth_max": depth_max,
    });
    *stats.summary.lock().unwrap_or_else(|p| p.into_inner()) = Some(summary);
    Ok(())
}

/// The summary's numbers as `scheduling.*` metrics.
fn collect(ctx: &RunContext, extras: &mut Extras) {
    let Some(stats) = ctx.extra::<SchedulingStats>() else {
        return;
    };
    stats.stop.store(true, Ordering::Relaxed);
    let Some(summary) = stats
        .summary
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    else {
        return;
    };
    if let Some(map) = summary.as_object() {
        for (key, value) in map {
            if let Some(v) = value.as_f64() {
                extras.insert(format!("scheduling.{key}"), v);
            }
        }
    }
}

/// Cancels the scheduled calls created since `since` that are not final and
/// ends their live calls (`storm::retire_unfinished`), directly in the
/// stack's database: otherwise the next scenario's stack, on the same
/// database, would first place and play this run's backlog (a goal-tier run
/// can leave tens of thousands) and its verification call would wait
/// behind it. Returns (scheduled calls canceled, calls ended).
pub async fn retire_unfinished(since: chrono::DateTime<chrono::Utc>) -> anyhow::Result<(u64, u64)> {
    let settings = switchboard_core::Settings::from_env()?;
    let db = switchboard_core::db::connect(&settings).await?;
    let unfinished: Vec<&str> = ScheduledCallStatus::ALL
        .into_iter()
        .filter(|status| !status.is_final())
        .map(ScheduledCallStatus::as_str)
        .collect();
    let canceled = sqlx::query(
        "UPDATE scheduled_calls SET status = $2, next_attempt_at = NULL,
                last_error = 'load-suite teardown', version = version + 1, updated_at = now()
         WHERE created_at >= $1 AND status = ANY($3)",
    )
    .bind(since)
    .bind(ScheduledCallStatus::Canceled)
    .bind(unfinished)
    .execute(&db)
    .await?
    .rows_affected();
    db.close().await;
    let ended = super::storm::retire_unfinished(since).await?;
    Ok((canceled, ended))
}

//! The bare job queue, measured: enqueue → claim → no-op → ack, with the
//! worker's own machinery (`switchboard_worker::queue` under apalis) and a
//! handler that does nothing but acknowledge.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/switchboard_bench_queue \
//!   cargo run --release -p switchboard-worker --example queue_bench -- 20000
//! ```
//!
//! It migrates the database (use one of its own: it empties `jobs`), then
//! prints one line per phase:
//! 1. multi-row enqueue of N jobs (chunks of 1 000 per statement);
//! 2. drain: N due jobs, one worker with `SWITCHBOARD_WORKER_CONCURRENCY`
//!    (default 64) — jobs/s from first claim to the last ack;
//! 3. single enqueue: one job per transaction from 8 connections for 5 s;
//! 4. steady wake-ups: one job per transaction at 200/s for 10 s into an
//!    idle worker — enqueue → handler start p50/p95/p99/max.
//!
//! `scripts/bench-queue.sh` runs it beside `pgbench` on the same machine.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::{error::BoxDynError, task::data::Data, worker::ext::parallelize::ParallelizeExt};
use switchboard_core::{Settings, jobs::SmsSend, jobs::enqueue_many};
use switchboard_worker::{
    queue::{self, Claimed, Queues},
    queue_backend,
};
use tokio::sync::watch;
use uuid::Uuid;

/// Enqueue → start delays of the jobs that carry their enqueue time.
#[derive(Default)]
struct Seen {
    waits: Mutex<Vec<f64>>,
}

async fn noop(
    job: Claimed,
    queues: Data<Arc<Queues>>,
    seen: Data<Arc<Seen>>,
) -> Result<(), BoxDynError> {
    if let Some(enqueued) = job.payload.get("enqueued_at").and_then(|t| t.as_f64()) {
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        seen.waits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(now - enqueued);
    }
    queues.ack(&job);
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn remaining(db: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(db)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let settings = Arc::new(Settings::from_env()?);
    let db = switchboard_core::db::migrate(&settings).await?;
    sqlx::query("TRUNCATE jobs, dead_jobs").execute(&db).await?;
    let concurrency = settings.worker_concurrency;

    // 1. Multi-row enqueue.
    let tenant_id = Uuid::now_v7();
    let jobs: Vec<(SmsSend, Duration)> = (0..n)
        .map(|_| {
            let job = SmsSend {
                tenant_id,
                message_id: Uuid::new_v4(),
            };
            (job, Duration::ZERO)
        })
        .collect();
    let started = Instant::now();
    for chunk in jobs.chunks(1_000) {
        enqueue_many(&db, chunk).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "enqueue, 1 000 per statement: {n} jobs in {secs:.2} s = {:.0} jobs/s",
        n as f64 / secs
    );

    // 2. Drain them with the worker's fetch stream under apalis.
    let queues = Arc::new(Queues::new(
        db.clone(),
        format!("bench-{}", Uuid::new_v4().simple()),
        settings.job_lease,
        settings.queue_stall_after,
    ));
    let seen = Arc::new(Seen::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let listen = tokio::spawn(queue::listen(queues.clone(), stopped()));
    let acks = tokio::spawn(queue::ack_loop(queues.clone(), stopped()));
    let leases = tokio::spawn(queue::renew_leases(queues.clone(), stopped()));
    let started = Instant::now();
    let monitor = {
        let (queues, seen) = (queues.clone(), seen.clone());
        Monitor::new().register(move |_| {
            let backend = queue_backend!(queues.clone(), "sms.send", concurrency);
            WorkerBuilder::new("bench")
                .backend(backend)
                .data(queues.clone())
                .data(seen.clone())
                .concurrency(concurrency)
                .parallelize(tokio::spawn)
                .build(noop)
        })
    };
    let monitor = tokio::spawn({
        let stopped = stopped();
        async move {
            monitor
                .run_with_signal(async move {
                    stopped.await;
                    Ok(())
                })
                .await
        }
    });
    while remaining(&db).await? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "drain, batch {concurrency}: {n} jobs in {secs:.2} s = {:.0} jobs/s (enqueued before, claimed, run, acked)",
        n as f64 / secs
    );

    // 3. One job per transaction, as the API enqueues them, from 8 connections.
    let window = Duration::from_secs(5);
    let started = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            let mut count = 0u64;
            while started.elapsed() < window {
                let mut tx = db.begin().await?;
                sqlx::query(
                    "INSERT INTO jobs (queue, subject, payload) VALUES ('sms.send', gen_random_uuid(), '{}')",
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                count += 1;
            }
            Ok::<u64, sqlx::Error>(count)
        }));
    }
    let mut single = 0;
    for writer in writers {
        single += writer.await??;
    }
    while remaining(&db).await? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "enqueue, 1 per transaction (8 connections, worker draining): {single} jobs in {:.2} s = {:.0} jobs/s; all run {:.2} s after the first",
        window.as_secs_f64(),
        single as f64 / window.as_secs_f64(),
        secs
    );

    // 4. Steady wake-ups into an idle worker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rate = 200.0;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let count = (rate * 10.0) as usize;
    for _ in 0..count {
        tick.tick().await;
        let mut tx = db.begin().await?;
        sqlx::query(
            "INSERT INTO jobs (queue, subject, payload)
             VALUES ('sms.send', gen_random_uuid(),
                     jsonb_build_object('enqueued_at', extract(epoch FROM clock_timestamp())::float8))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    while remaining(&db).await? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut waits = std::mem::take(&mut *seen.waits.lock().unwrap_or_else(|e| e.into_inner()));
    waits.sort_by(f64::total_cmp);
    println!(
        "wake-ups, 1 per transaction at {rate:.0}/s: {} jobs, enqueue → start p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        waits.len(),
        percentile(&waits, 0.50) * 1e3,
        percentile(&waits, 0.95) * 1e3,
        percentile(&waits, 0.99) * 1e3,
        waits.last().copied().unwrap_or(f64::NAN) * 1e3,
    );

    let _ = stop_tx.send(true);
    let _ = monitor.await;
    let _ = tokio::join!(listen, acks, leases);
    queues.flush_acks().await?;
    Ok(())
}

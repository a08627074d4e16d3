//! # switchboard-worker
//!
//! The queue workers (apalis 1.0 over apalis-redis) and the carrier
//! simulator. [`serve`] runs, until shutdown:
//!
//! - one apalis `Monitor` with a worker per queue (`sms.send`,
//!   `campaign.expand`, `voicemail.transcribe`, `recording.process`,
//!   `webhook.deliver`, `carrier.sim`), each running up to
//!   `SWITCHBOARD_WORKER_CONCURRENCY` jobs at once with a timeout, retries
//!   with exponential backoff and a dead-letter list ([`runner`],
//!   [`deadletter`]);
//! - the event feed that turns events into tenant webhook deliveries ([`feed`]);
//! - periodic maintenance: the sweeper, campaign progress, queue gauges
//!   ([`maintenance`]);
//! - the simulator's inbound traffic, when configured ([`simulator`]);
//! - `/health`, `/ready`, `/metrics` on `SWITCHBOARD_WORKER_ADDR`.
//!
//! Shutdown stops taking new jobs and lets running ones finish (up to 30 s);
//! anything cut short is picked up again by the next worker.

pub mod context;
pub mod deadletter;
pub mod error;
pub mod feed;
pub mod jobs;
pub mod maintenance;
mod ops;
pub mod promote;
pub mod runner;
pub mod simulator;

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use secrecy::ExposeSecret;
use switchboard_core::{
    Settings,
    jobs::{
        CampaignExpand, CarrierSim, Job, RecordingProcess, SmsSend, VoicemailTranscribe,
        WebhookDeliver, storage_config,
    },
};
use tokio::{net::TcpListener, sync::watch};

pub use context::Ctx;

/// How often idle workers look for new jobs (apalis-redis heartbeat), and
/// how many missed beats make a worker dead (its jobs are handed to others):
/// 30 s, so a worker starved of CPU for a while is not declared dead while
/// it still runs its jobs (apalis-redis then fails its acknowledgements and
/// restarts it). Work a really dead worker held is re-driven sooner by the
/// sweeper (`SWITCHBOARD_SWEEP_AFTER_MS`).
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const MISSED_HEARTBEATS: usize = 300;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The factory for a queue's worker: the queue's storage, the shared
/// context, concurrency and parallel execution, and a name unique to this
/// process *and* this start. apalis-redis re-enqueues a registering worker's
/// in-flight tasks when it looks expired; were a restarted worker to keep
/// its name, it would re-enqueue the tasks its previous run is still
/// executing, fail their acknowledgements and restart again, without end.
/// Under a new name, the previous run's unacknowledged tasks are handed out
/// again once its heartbeats expire (handlers are idempotent). (A macro
/// because the worker's type cannot be named.)
macro_rules! queue_worker {
    ($job:ty, $ctx:expr, $conn:expr) => {{
        let ctx = $ctx.clone();
        let conn = $conn.clone();
        move |restarts: usize| {
            let config = storage_config::<$job>(&ctx.settings)
                .batch_size(ctx.settings.worker_concurrency)
                .heartbeat_interval(POLL_INTERVAL)
                .missed_heartbeats(MISSED_HEARTBEATS);
            // Read as plain JSON: `runner::run` decodes (and dead-letters
            // what it cannot).
            let storage = apalis_redis::RedisStorage::<serde_json::Value>::new(conn.clone())
                .with_config(config);
            WorkerBuilder::new(format!(
                "{}@{}#{restarts}",
                <$job as Job>::QUEUE,
                ctx.instance
            ))
            .backend(storage)
            .data(ctx.clone())
            .concurrency(ctx.settings.worker_concurrency)
            .parallelize(tokio::spawn)
            .build(runner::run::<$job>)
        }
    }};
}

/// Binds `SWITCHBOARD_WORKER_ADDR` and runs until `shutdown` resolves.
pub async fn serve(
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    settings.ensure_production_safe()?;
    let listener = TcpListener::bind(settings.worker_addr).await?;
    serve_on(listener, settings, shutdown).await
}

/// Runs the worker with its ops endpoints on `listener`.
pub async fn serve_on(
    listener: TcpListener,
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ctx = Ctx::new(settings.clone()).await?;
    let conn = apalis_redis::connect(settings.redis_url.expose_secret()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    tracing::info!(
        addr = %listener.local_addr()?,
        instance = %ctx.instance,
        carrier = ?settings.carrier,
        concurrency = settings.worker_concurrency,
        "worker listening"
    );

    let ops = tokio::spawn({
        let app = ops::router(ctx.clone());
        let stopped = stopped();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    });
    // Whatever became due while no worker ran is promoted in safe chunks
    // before any worker fetches (see `promote`).
    let configs = vec![
        storage_config::<SmsSend>(&settings),
        storage_config::<CampaignExpand>(&settings),
        storage_config::<VoicemailTranscribe>(&settings),
        storage_config::<RecordingProcess>(&settings),
        storage_config::<WebhookDeliver>(&settings),
        storage_config::<CarrierSim>(&settings),
    ];
    let backlog = promote::drain(&mut conn.clone(), &configs).await?;
    if backlog > 0 {
        tracing::info!(backlog, "promoted jobs that became due while no worker ran");
    }
    let promoter = tokio::spawn(promote::run(conn.clone(), configs, stopped()));
    let feed = tokio::spawn(feed::run(ctx.clone(), stopped()));
    let maintenance = tokio::spawn(maintenance::run(ctx.clone(), conn.clone(), stopped()));
    let inbound = tokio::spawn(simulator::run_inbound(ctx.clone(), stopped()));

    let monitor = Monitor::new()
        .register(queue_worker!(SmsSend, ctx, conn))
        .register(queue_worker!(CampaignExpand, ctx, conn))
        .register(queue_worker!(VoicemailTranscribe, ctx, conn))
        .register(queue_worker!(RecordingProcess, ctx, conn))
        .register(queue_worker!(WebhookDeliver, ctx, conn))
        .register(queue_worker!(CarrierSim, ctx, conn))
        // A worker stops when its backend fails (Redis went away, a script
        // timed out): start it again. Repeated failures pause a little (at
        // most 50 ms, blocking only this poll) so an outage is not a busy loop.
        .should_restart(|worker, error| {
            let restarts = worker.restarts();
            tracing::warn!(worker = worker.name(), restarts, %error, "queue worker failed; restarting");
            metrics::counter!("jobs_worker_restarts_total").increment(1);
            if restarts > 3 {
                std::thread::sleep(Duration::from_millis(50));
            }
            true
        })
        .shutdown_timeout(SHUTDOWN_GRACE);
    let signal = async move {
        shutdown.await;
        tracing::info!("worker stopping: finishing running jobs");
        let _ = stop_tx.send(true);
        Ok(())
    };
    let result = monitor.run_with_signal(signal).await;
    let _ = tokio::join!(ops, promoter, feed, maintenance, inbound);
    result.map_err(|e| anyhow::anyhow!("worker monitor: {e}"))
}

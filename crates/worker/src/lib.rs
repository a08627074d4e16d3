//! # switchboard-worker
//!
//! The queue workers (apalis 1.0 over PostgreSQL) and the carrier
//! simulator. [`serve`] runs, until shutdown:
//!
//! - one apalis `Monitor` with a worker per queue (`sms.send`,
//!   `campaign.expand`, `voicemail.transcribe`, `recording.process`,
//!   `webhook.deliver`, `carrier.sim`, `import.process`, `scheduled_call.run`), each fed by its [`queue::fetch`]
//!   stream and running up to `SWITCHBOARD_WORKER_CONCURRENCY` jobs at once
//!   with a timeout, retries with exponential backoff and dead letters
//!   ([`runner`], [`deadletter`]);
//! - the queue machinery around them: the `LISTEN` connection that wakes
//!   idle queues, batched acknowledgements, lease renewal and the watchdog
//!   ([`queue`]);
//! - the fan-out that turns events into tenant webhook deliveries ([`webhook_fanout`]);
//! - periodic maintenance: the sweeper, campaign progress, report rollups
//!   ([`maintenance`]);
//! - the simulator's inbound traffic, when configured ([`simulator`]);
//! - `/health`, `/ready`, `/metrics` on `SWITCHBOARD_WORKER_ADDR`.
//!
//! Shutdown stops taking new jobs and lets running ones finish (up to 30 s),
//! acknowledges them, and hands every job it still holds back to the queue,
//! due at once for the next worker.

#![warn(missing_docs)]

pub mod context;
pub mod deadletter;
pub mod error;
pub mod jobs;
pub mod maintenance;
mod ops;
pub mod queue;
pub mod runner;
pub mod simulator;
pub mod webhook_fanout;

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::{Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_core::worker::ext::parallelize::ParallelizeExt;
use switchboard_core::{
    Settings,
    jobs::{
        CampaignExpand, CarrierSim, ImportProcess, Job, RecordingProcess, ScheduledCallRun,
        SmsSend, VoicemailTranscribe, WebhookDeliver,
    },
};
use tokio::{net::TcpListener, sync::watch};

pub use context::Ctx;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The apalis backend of queue `$queue`: its tasks come from the queue's
/// [`queue::fetch`] stream, `$concurrency` at most at a time. Jobs are pushed
/// with `switchboard_core::jobs::enqueue` inside the writer's transaction,
/// never through apalis, so its sink refuses nothing and is never used. (A
/// macro because the backend's type cannot be named; exported for the queue
/// benchmark, which drives the same backend.)
#[macro_export]
macro_rules! queue_backend {
    ($queues:expr, $queue:expr, $concurrency:expr) => {{
        let concurrency = $concurrency;
        ::apalis_core::backend::custom::BackendBuilder::new()
            .database($queues)
            .fetcher(move |queues, _, _| $crate::queue::fetch(queues.clone(), $queue, concurrency))
            .sink(|_, _| {
                ::futures::SinkExt::sink_map_err(
                    ::futures::sink::drain(),
                    |never| -> $crate::queue::QueueError { match never {} },
                )
            })
            .build()
            .expect("database, fetcher and sink are all given")
    }};
}

/// The factory for a queue's worker: the queue's backend
/// ([`queue_backend!`]), the shared context, concurrency and parallel
/// execution. (A macro because the worker's type cannot be named.)
macro_rules! queue_worker {
    ($job:ty, $ctx:expr) => {{
        let ctx = $ctx.clone();
        move |restarts: usize| {
            let concurrency = if <$job as Job>::QUEUE == CarrierSim::QUEUE {
                ctx.settings.sim_concurrency
            } else {
                ctx.settings.worker_concurrency
            };
            let backend = queue_backend!(ctx.queues.clone(), <$job as Job>::QUEUE, concurrency);
            WorkerBuilder::new(format!(
                "{}@{}#{restarts}",
                <$job as Job>::QUEUE,
                ctx.instance
            ))
            .backend(backend)
            .data(ctx.clone())
            .concurrency(concurrency)
            .parallelize(tokio::spawn)
            .build(runner::run::<$job>)
        }
    }};
}

/// Runs the worker, with its ops endpoints on `listener` (the caller binds
/// `settings.worker_addr`: `switchboard::bind`), until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    settings.ensure_production_safe()?;
    let ctx = Ctx::new(settings.clone()).await?;
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
    let listen = tokio::spawn(queue::listen(ctx.queues.clone(), stopped()));
    let acks = tokio::spawn(queue::ack_loop(ctx.queues.clone(), stopped()));
    let leases = tokio::spawn(queue::renew_leases(ctx.queues.clone(), stopped()));
    let watchdog = tokio::spawn(queue::watchdog(ctx.queues.clone(), stopped()));
    let vacuum = tokio::spawn(queue::vacuum_loop(ctx.queues.clone(), stopped()));
    let fanout = tokio::spawn(webhook_fanout::run(ctx.clone(), stopped()));
    let maintenance = tokio::spawn(maintenance::run(ctx.clone(), stopped()));
    let inbound = tokio::spawn(simulator::run_inbound(ctx.clone(), stopped()));

    let monitor = Monitor::new()
        .register(queue_worker!(SmsSend, ctx))
        .register(queue_worker!(CampaignExpand, ctx))
        .register(queue_worker!(VoicemailTranscribe, ctx))
        .register(queue_worker!(RecordingProcess, ctx))
        .register(queue_worker!(WebhookDeliver, ctx))
        .register(queue_worker!(CarrierSim, ctx))
        .register(queue_worker!(ImportProcess, ctx))
        .register(queue_worker!(ScheduledCallRun, ctx))
        // A worker stops when its fetch stream ends with an error (the
        // watchdog restarted it): start it again.
        .should_restart(|worker, error| {
            tracing::warn!(worker = worker.name(), restarts = worker.restarts(), %error, "queue worker stopped; restarting");
            metrics::counter!("jobs_worker_restarts_total").increment(1);
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
    let _ = tokio::join!(
        ops,
        listen,
        acks,
        leases,
        watchdog,
        vacuum,
        fanout,
        maintenance,
        inbound
    );
    // What finished is acknowledged; what this process still holds goes
    // back to the queue, due now, for whichever worker runs next.
    if let Err(error) = ctx.queues.flush_acks().await {
        tracing::warn!(%error, "final acknowledgements failed; those jobs run again after their lease");
    }
    match ctx.queues.release().await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "handed unfinished jobs back to the queue"),
        Err(error) => {
            tracing::warn!(%error, "handing jobs back failed; they run again after their lease")
        }
    }
    ctx.db.close().await;
    result.map_err(|e| anyhow::anyhow!("worker monitor: {e}"))
}

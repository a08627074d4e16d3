//! Periodic work, run by one worker at a time (a Redis lease):
//!
//! - the **sweeper**: records left waiting without a live job (the push
//!   failed, or a worker died before handing work on) are re-driven —
//!   queued outbound messages whose send time has passed, messages stuck in
//!   `sending` (simulated carrier), outbound calls the simulator stopped
//!   playing, campaigns never expanded, voicemails and recordings never
//!   processed. Every handler is idempotent, so a re-drive of something that
//!   was merely slow is harmless;
//! - campaign progress: running campaigns publish `campaign.progress` and
//!   complete when no message is still on its way;
//! - queue gauges (depth, scheduled, dead letters) and apalis-redis cleanup
//!   of finished tasks;
//! - report rollups: every tenant's hours that can no longer change are
//!   rolled into the hourly report tables (`switchboard_core::reports`);
//! - expired idempotency keys (24 h) are deleted.

use std::sync::Arc;

use apalis_core::backend::Vacuum;
use switchboard_core::{
    jobs::{
        CampaignExpand, CarrierSim, Job, RecordingProcess, SmsSend, VoicemailTranscribe,
        WebhookDeliver, storage, storage_config,
    },
    redis::redis::{self, AsyncCommands},
    reports,
    settings::CarrierMode,
};
use uuid::Uuid;

use crate::{context::Ctx, deadletter, jobs::campaign};

/// How many stuck records one sweep re-drives per kind.
const SWEEP_BATCH: i64 = 5_000;
/// Records older than this are history, not work: the sweeper leaves them
/// (a seeded database holds months of calls and messages in every status).
const SWEEP_WINDOW_SECS: f64 = 86_400.0;

pub async fn run(
    ctx: Arc<Ctx>,
    conn: apalis_redis::ConnectionManager,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(ctx.settings.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = queue_gauges(&ctx).await {
            tracing::warn!(%error, "queue gauges");
        }
        match lease(&ctx).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::warn!(%error, "maintenance lease");
                continue;
            }
        }
        if let Err(error) = sweep(&ctx).await {
            tracing::warn!(%error, "sweep failed");
        }
        if let Err(error) = campaigns(&ctx).await {
            tracing::warn!(%error, "campaign progress failed");
        }
        if let Err(error) = rollups(&ctx).await {
            tracing::warn!(%error, "report rollups failed");
        }
        if let Err(error) = housekeeping(&ctx, &conn).await {
            tracing::warn!(%error, "housekeeping failed");
        }
    }
}

/// Takes the maintenance lease for one interval; false if another worker has it.
async fn lease(ctx: &Ctx) -> anyhow::Result<bool> {
    let mut conn = ctx.redis.get().await?;
    let millis = ctx.settings.maintenance_interval.as_millis().max(1000) as u64;
    let taken: Option<String> = redis::cmd("SET")
        .arg(ctx.settings.redis_key("lock:maintenance"))
        .arg(&ctx.instance)
        .arg("NX")
        .arg("PX")
        .arg(millis.saturating_sub(100))
        .query_async(&mut *conn)
        .await?;
    Ok(taken.is_some())
}

/// Re-drives what is stuck; returns how many jobs it pushed. Each query
/// selects `(tenant_id, id)` of records idle for longer than `$1` seconds
/// but less than `$3` (the sweep window), at most `$2`.
pub async fn sweep(ctx: &Ctx) -> anyhow::Result<usize> {
    let after = ctx.settings.sweep_after.as_secs_f64();
    let mut pushed = redrive(
        ctx,
        "SELECT tenant_id, id FROM messages
         WHERE status = 'queued' AND direction = 'outbound'
           AND updated_at < now() - make_interval(secs => $1)
           AND updated_at > now() - make_interval(secs => $3)
         ORDER BY updated_at LIMIT $2",
        after,
        |tenant_id, message_id| SmsSend {
            tenant_id,
            message_id,
        },
    )
    .await?;
    if ctx.settings.carrier == CarrierMode::Simulated {
        pushed += redrive(
            ctx,
            "SELECT tenant_id, id FROM messages
             WHERE status IN ('sending', 'sent') AND direction = 'outbound'
               AND updated_at < now() - make_interval(secs => $1)
               AND updated_at > now() - make_interval(secs => $3)
             ORDER BY updated_at LIMIT $2",
            after,
            |tenant_id, message_id| CarrierSim::OutboundSms {
                tenant_id,
                message_id,
            },
        )
        .await?;
        // A call can legitimately talk for 30 minutes of simulated time.
        pushed += redrive(
            ctx,
            "SELECT tenant_id, id FROM calls
             WHERE status IN ('queued', 'ringing', 'in-progress') AND direction = 'outbound'
               AND updated_at < now() - make_interval(secs => $1)
               AND updated_at > now() - make_interval(secs => $3)
             ORDER BY updated_at LIMIT $2",
            after.max(1_800.0 / ctx.settings.carrier_speed),
            |tenant_id, call_id| CarrierSim::OutboundCall { tenant_id, call_id },
        )
        .await?;
    }
    pushed += redrive(
        ctx,
        "SELECT tenant_id, id FROM campaigns
         WHERE status = 'pending'
           AND created_at < now() - make_interval(secs => $1)
           AND created_at > now() - make_interval(secs => $3)
         LIMIT $2",
        after,
        |tenant_id, campaign_id| CampaignExpand {
            tenant_id,
            campaign_id,
        },
    )
    .await?;
    pushed += redrive(
        ctx,
        "SELECT tenant_id, id FROM voicemails
         WHERE transcription_status IN ('pending', 'processing')
           AND created_at < now() - make_interval(secs => $1)
           AND created_at > now() - make_interval(secs => $3)
         LIMIT $2",
        after,
        |tenant_id, voicemail_id| VoicemailTranscribe {
            tenant_id,
            voicemail_id,
        },
    )
    .await?;
    pushed += redrive(
        ctx,
        "SELECT tenant_id, id FROM recordings
         WHERE status IN ('pending', 'processing')
           AND created_at < now() - make_interval(secs => $1)
           AND created_at > now() - make_interval(secs => $3)
         LIMIT $2",
        after,
        |tenant_id, recording_id| RecordingProcess {
            tenant_id,
            recording_id,
        },
    )
    .await?;
    if pushed > 0 {
        metrics::counter!("sweeper_redriven_total").increment(pushed as u64);
        tracing::info!(pushed, "sweeper re-drove stuck records");
    }
    Ok(pushed)
}

/// Runs one sweep query and pushes a `T` for every record it finds — unless
/// `T`'s queue already holds a sweep's worth of waiting jobs: then the
/// records are waiting in it, not lost, and pushing them again on every pass
/// would only multiply a backlog (a stalled queue once grew to 220 000
/// `sms.send` jobs for 3 500 messages).
async fn redrive<T: Job>(
    ctx: &Ctx,
    sql: &'static str,
    idle_secs: f64,
    job: impl Fn(Uuid, Uuid) -> T,
) -> anyhow::Result<usize> {
    let waiting: i64 = ctx
        .redis
        .get()
        .await?
        .llen(storage_config::<T>(&ctx.settings).active_jobs_list())
        .await?;
    if waiting >= SWEEP_BATCH {
        metrics::counter!("sweeper_skipped_total", "queue" => T::QUEUE).increment(1);
        tracing::warn!(
            queue = T::QUEUE,
            waiting,
            "queue backed up; the sweeper leaves it alone this pass"
        );
        return Ok(0);
    }
    let stuck: Vec<(Uuid, Uuid)> = sqlx::query_as(sql)
        .bind(idle_secs)
        .bind(SWEEP_BATCH)
        .bind(SWEEP_WINDOW_SECS)
        .fetch_all(&ctx.db)
        .await?;
    let count = stuck.len();
    ctx.queues
        .push_many(stuck.into_iter().map(|(t, id)| (job(t, id), 0)).collect())
        .await?;
    Ok(count)
}

async fn campaigns(ctx: &Ctx) -> anyhow::Result<()> {
    let running: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT tenant_id, id FROM campaigns WHERE status = 'running'")
            .fetch_all(&ctx.db)
            .await?;
    for (tenant_id, campaign_id) in running {
        campaign::publish_progress(ctx, tenant_id, campaign_id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// Rolls finished hours into the report rollups and reports how far behind
/// the oldest tenant's rollups are.
pub async fn rollups(ctx: &Ctx) -> anyhow::Result<reports::RollupRun> {
    let started = std::time::Instant::now();
    let now = chrono::Utc::now();
    let run = reports::roll_up(&ctx.db, now).await?;
    metrics::counter!("report_rollup_hours_total").increment(run.hours.unsigned_abs());
    metrics::histogram!("report_rollup_duration_seconds").record(started.elapsed().as_secs_f64());
    if let Some(oldest) = run.oldest {
        metrics::gauge!("report_rollup_lag_seconds").set((now - oldest).as_seconds_f64());
    }
    if run.hours > 0 {
        tracing::info!(
            hours = run.hours,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rolled report hours"
        );
    }
    Ok(run)
}

async fn housekeeping(ctx: &Ctx, conn: &apalis_redis::ConnectionManager) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'")
        .execute(&ctx.db)
        .await?;
    vacuum::<SmsSend>(ctx, conn.clone()).await?;
    vacuum::<CampaignExpand>(ctx, conn.clone()).await?;
    vacuum::<VoicemailTranscribe>(ctx, conn.clone()).await?;
    vacuum::<RecordingProcess>(ctx, conn.clone()).await?;
    vacuum::<WebhookDeliver>(ctx, conn.clone()).await?;
    vacuum::<CarrierSim>(ctx, conn.clone()).await?;
    Ok(())
}

/// Drops finished tasks' payloads and the done-set apalis-redis keeps.
async fn vacuum<T: Job>(ctx: &Ctx, conn: apalis_redis::ConnectionManager) -> anyhow::Result<()> {
    let mut store = storage::<T>(conn, &ctx.settings);
    let removed = store.vacuum().await?;
    let done = storage_config::<T>(&ctx.settings).done_jobs_set();
    let _: () = store.get_connection().unlink(done).await?;
    tracing::debug!(queue = T::QUEUE, removed, "vacuumed finished tasks");
    Ok(())
}

/// Publishes per-queue depth (waiting now), scheduled (retries and paced
/// sends not yet due) and dead-letter gauges.
pub async fn queue_gauges(ctx: &Ctx) -> anyhow::Result<()> {
    let mut conn = ctx.redis.get().await?;
    for (queue, config) in [
        (SmsSend::QUEUE, storage_config::<SmsSend>(&ctx.settings)),
        (
            CampaignExpand::QUEUE,
            storage_config::<CampaignExpand>(&ctx.settings),
        ),
        (
            VoicemailTranscribe::QUEUE,
            storage_config::<VoicemailTranscribe>(&ctx.settings),
        ),
        (
            RecordingProcess::QUEUE,
            storage_config::<RecordingProcess>(&ctx.settings),
        ),
        (
            WebhookDeliver::QUEUE,
            storage_config::<WebhookDeliver>(&ctx.settings),
        ),
        (
            CarrierSim::QUEUE,
            storage_config::<CarrierSim>(&ctx.settings),
        ),
    ] {
        let (depth, scheduled): (u64, u64) = redis::pipe()
            .llen(config.active_jobs_list())
            .zcard(config.scheduled_jobs_set())
            .query_async(&mut *conn)
            .await?;
        metrics::gauge!("jobs_queue_depth", "queue" => queue).set(depth as f64);
        metrics::gauge!("jobs_scheduled", "queue" => queue).set(scheduled as f64);
    }
    for (queue, depth) in deadletter::depths(&mut conn, &ctx.settings).await? {
        metrics::gauge!("jobs_dead_letter_depth", "queue" => queue).set(depth as f64);
    }
    Ok(())
}

//! Periodic work, run by one worker at a time (a Redis lease):
//!
//! - the **sweeper**, a safety net for what no job can see: every write
//!   enqueues its job in its own transaction, so a record waiting without
//!   progress *and* without any job or dead letter naming it means work
//!   was lost outside the queues — above all a simulated carrier callback
//!   that never came (the API was down when the simulator called). Those
//!   records are re-driven: outbound messages still `queued`, messages
//!   stuck in `sending`/`sent` and outbound calls the simulator stopped
//!   playing (simulated carrier), campaigns never expanded, voicemails and
//!   recordings never processed, scheduled calls whose job is missing.
//!   Every handler is idempotent;
//! - campaign progress: running campaigns publish `campaign.progress` and
//!   complete when no message is still on its way;
//! - report rollups: every tenant's hours that can no longer change are
//!   rolled into the hourly report tables (`switchboard_core::reports`);
//! - expired idempotency keys (24 h) are deleted;
//! - the scheduled-call gauges (`scheduled_calls_due`, `scheduled_calls_dialing`).

use std::sync::Arc;

use switchboard_core::{
    calls::{CallStatus, Direction},
    jobs::{
        CampaignExpand, CarrierSim, Job, RecordingProcess, ScheduledCallRun, SmsSend,
        VoicemailTranscribe,
    },
    redis::redis,
    reports,
    scheduling::ScheduledCallStatus,
    settings::CarrierMode,
    sms::{CampaignStatus, MessageStatus},
    ticker::Ticker,
};
use uuid::Uuid;

use crate::{
    context::Ctx,
    jobs::{campaign, media},
};

/// How many stuck records one sweep re-drives per kind.
const SWEEP_BATCH: i64 = 5_000;
/// Records older than this are history, not work: the sweeper leaves them
/// (a seeded database holds months of calls and messages in every status).
const SWEEP_WINDOW_SECS: f64 = 86_400.0;

/// The names the tasks' failures are counted under (taking the lease is one).
const TASKS: [&str; 6] = [
    "lease",
    "sweep",
    "campaigns",
    "rollups",
    "housekeeping",
    "scheduled_gauges",
];

/// Runs the periodic work every `maintenance_interval` while this worker
/// holds the lease, until `shutdown`. Each task runs whether or not the one
/// before it failed; a failure is an ERROR line and a count in
/// `maintenance_failures_total{task}`, and the task is tried again at the
/// next interval.
pub async fn run(ctx: Arc<Ctx>, shutdown: impl std::future::Future<Output = ()>) {
    // Present from the start, so that a rate over it sees a task's first failure.
    for task in TASKS {
        metrics::counter!("maintenance_failures_total", "task" => task).increment(0);
    }
    let mut ticker = Ticker::new(ctx.settings.maintenance_interval, shutdown);
    while ticker.tick().await {
        match lease(&ctx).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                failed("lease", &error);
                continue;
            }
        }
        report("sweep", sweep(&ctx).await);
        report("campaigns", campaigns(&ctx).await);
        report("rollups", rollups(&ctx).await);
        report("housekeeping", housekeeping(&ctx).await);
        report("scheduled_gauges", scheduled_gauges(&ctx).await);
    }
}

/// Says so when a maintenance task failed.
fn report<T>(task: &'static str, result: anyhow::Result<T>) {
    if let Err(error) = result {
        failed(task, &error);
    }
}

fn failed(task: &'static str, error: &anyhow::Error) {
    metrics::counter!("maintenance_failures_total", "task" => task).increment(1);
    tracing::error!(
        task,
        error = format!("{error:#}"),
        "maintenance task failed; it runs again at the next interval"
    );
}

/// `scheduled_calls_due`: calls past their due time and not yet placed
/// (held by the concurrency cap, or a worker that is behind);
/// `scheduled_calls_dialing`: placed and still on the line.
async fn scheduled_gauges(ctx: &Ctx) -> anyhow::Result<()> {
    // Literal statuses, which the partial indexes on them can serve.
    let (due, dialing): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM scheduled_calls
                 WHERE status IN ({waiting}) AND next_attempt_at <= now()),
                (SELECT count(*) FROM scheduled_calls WHERE status = '{dialing}')",
        waiting = ScheduledCallStatus::sql_list(ScheduledCallStatus::WAITING),
        dialing = ScheduledCallStatus::Dialing,
    )))
    .fetch_one(&ctx.db)
    .await?;
    metrics::gauge!("scheduled_calls_due").set(due as f64);
    metrics::gauge!("scheduled_calls_dialing").set(dialing as f64);
    Ok(())
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

/// Re-drives what is stuck; returns how many jobs it enqueued. Every kind
/// is tried: one whose query or enqueue fails does not keep the sweeper
/// from the others, and the error, returned after they ran, names it.
pub async fn sweep(ctx: &Ctx) -> anyhow::Result<usize> {
    let after = ctx.settings.sweep_after.as_secs_f64();
    let mut sweep = Sweep {
        ctx,
        pushed: 0,
        failed: Vec::new(),
    };
    sweep
        .redrive(
            Stuck {
                table: "messages",
                waiting: outbound(MessageStatus::sql_list([MessageStatus::Queued])),
                since: "updated_at",
                oldest_first: true,
                idle_secs: after,
            },
            SmsSend::new,
        )
        .await;
    if ctx.settings.carrier == CarrierMode::Simulated {
        sweep
            .redrive(
                Stuck {
                    table: "messages",
                    waiting: outbound(MessageStatus::sql_list([
                        MessageStatus::Sending,
                        MessageStatus::Sent,
                    ])),
                    since: "updated_at",
                    oldest_first: true,
                    idle_secs: after,
                },
                |tenant_id, message_id| CarrierSim::OutboundSms {
                    tenant_id,
                    message_id,
                    handed_over: None,
                },
            )
            .await;
        // A call can legitimately talk for 30 minutes of simulated time.
        sweep
            .redrive(
                Stuck {
                    table: "calls",
                    waiting: outbound(CallStatus::sql_list(CallStatus::live())),
                    since: "updated_at",
                    oldest_first: true,
                    idle_secs: after.max(1_800.0 / ctx.settings.carrier_speed),
                },
                |tenant_id, call_id| CarrierSim::OutboundCall { tenant_id, call_id },
            )
            .await;
    }
    sweep
        .redrive(
            Stuck {
                table: "campaigns",
                waiting: status_in(
                    "status",
                    CampaignStatus::sql_list([CampaignStatus::Pending]),
                ),
                since: "created_at",
                oldest_first: false,
                idle_secs: after,
            },
            CampaignExpand::new,
        )
        .await;
    sweep
        .redrive(
            Stuck::unfinished(&media::VOICEMAILS, after),
            VoicemailTranscribe::new,
        )
        .await;
    sweep
        .redrive(
            Stuck::unfinished(&media::RECORDINGS, after),
            RecordingProcess::new,
        )
        .await;
    // A scheduled call always has its job (written with it); these catch
    // one whose job was lost to a bug or a hand-edited table.
    sweep
        .redrive(
            Stuck {
                table: "scheduled_calls",
                waiting: status_in(
                    "status",
                    ScheduledCallStatus::sql_list(ScheduledCallStatus::WAITING),
                ),
                since: "next_attempt_at",
                oldest_first: true,
                idle_secs: after,
            },
            ScheduledCallRun::new,
        )
        .await;
    sweep
        .redrive(
            Stuck {
                table: "scheduled_calls",
                waiting: format!(
                    "r.status = '{dialing}'
                     AND EXISTS (SELECT 1 FROM scheduled_call_attempts a JOIN calls c ON c.id = a.call_id
                                 WHERE a.scheduled_call_id = r.id AND a.attempt = r.attempts
                                   AND c.status NOT IN ({live}))",
                    dialing = ScheduledCallStatus::Dialing,
                    live = CallStatus::sql_list(CallStatus::live()),
                ),
                since: "updated_at",
                oldest_first: false,
                idle_secs: after,
            },
            ScheduledCallRun::new,
        )
        .await;
    sweep.finish()
}

/// One sweep's tally: the jobs enqueued, and the kinds that failed.
struct Sweep<'a> {
    ctx: &'a Ctx,
    pushed: usize,
    failed: Vec<String>,
}

impl Sweep<'_> {
    /// Re-drives one kind, and notes its failure instead of stopping.
    async fn redrive<T: Job>(&mut self, kind: Stuck, job: impl Fn(Uuid, Uuid) -> T) {
        let table = kind.table;
        match redrive(self.ctx, kind, job).await {
            Ok(pushed) => self.pushed += pushed,
            Err(error) => self
                .failed
                .push(format!("{table} ({}): {error:#}", T::QUEUE)),
        }
    }

    fn finish(self) -> anyhow::Result<usize> {
        let Sweep { pushed, failed, .. } = self;
        if pushed > 0 {
            metrics::counter!("sweeper_redriven_total").increment(pushed as u64);
            tracing::info!(pushed, "sweeper re-drove stuck records");
        }
        anyhow::ensure!(
            failed.is_empty(),
            "the sweep of {} failed ({pushed} jobs enqueued for the other kinds)",
            failed.join("; ")
        );
        Ok(pushed)
    }
}

/// One kind of record the sweeper looks for: rows `r` of `table` that are
/// `waiting`, idle (by `since`) for longer than `idle_secs` but not past
/// the sweep window, and named by no job and no dead letter.
struct Stuck {
    table: &'static str,
    /// The condition on `r` of a record that needs a job to progress. Its
    /// statuses are literals, so that the table's partial index on `since`
    /// (`calls_live_idx`, `messages_unsettled_idx`,
    /// `scheduled_calls_waiting_idx`) can serve it.
    waiting: String,
    /// The timestamp column its wait is measured from.
    since: &'static str,
    /// Take the longest-waiting first (where an index on `since` serves it).
    oldest_first: bool,
    /// How long a record may wait before it counts as stuck.
    idle_secs: f64,
}

impl Stuck {
    /// Media records whose job is gone before they were finished.
    fn unfinished(media: &media::Media, idle_secs: f64) -> Self {
        Stuck {
            table: media.table,
            waiting: media.unfinished("r."),
            since: "created_at",
            oldest_first: false,
            idle_secs,
        }
    }

    /// `(tenant_id, id)` of at most `$2` records idle for longer than `$1`
    /// seconds but less than `$3`.
    fn sql(&self) -> String {
        let Stuck {
            table,
            waiting,
            since,
            oldest_first,
            ..
        } = self;
        let order = if *oldest_first {
            format!("ORDER BY r.{since} ")
        } else {
            String::new()
        };
        format!(
            "SELECT r.tenant_id, r.id FROM {table} r
             WHERE {waiting}
               AND r.{since} < now() - make_interval(secs => $1)
               AND r.{since} > now() - make_interval(secs => $3)
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subject = r.id)
               AND NOT EXISTS (SELECT 1 FROM dead_jobs d WHERE d.subject = r.id)
             {order}LIMIT $2"
        )
    }
}

/// The condition on `r` of a record whose `column` holds one of `statuses`
/// (an [`sql_list`](MessageStatus::sql_list)).
fn status_in(column: &str, statuses: String) -> String {
    format!("r.{column} IN ({statuses})")
}

/// The condition on `r` of an outbound record in one of `statuses`.
fn outbound(statuses: String) -> String {
    let status = status_in("status", statuses);
    format!("{status} AND r.direction = '{}'", Direction::Outbound)
}

/// Runs one sweep query and enqueues a `T` for every record it finds.
async fn redrive<T: Job>(
    ctx: &Ctx,
    kind: Stuck,
    job: impl Fn(Uuid, Uuid) -> T,
) -> anyhow::Result<usize> {
    let stuck: Vec<(Uuid, Uuid)> = sqlx::query_as(sqlx::AssertSqlSafe(kind.sql()))
        .bind(kind.idle_secs)
        .bind(SWEEP_BATCH)
        .bind(SWEEP_WINDOW_SECS)
        .fetch_all(&ctx.db)
        .await?;
    let jobs: Vec<(T, std::time::Duration)> = stuck
        .into_iter()
        .map(|(t, id)| (job(t, id), std::time::Duration::ZERO))
        .collect();
    if !jobs.is_empty() {
        tracing::warn!(
            queue = T::QUEUE,
            records = jobs.len(),
            "records waiting with no job: re-driving them"
        );
    }
    let enqueued = switchboard_core::jobs::enqueue_many(&ctx.db, &jobs).await?;
    ctx.queues.wake(T::QUEUE);
    Ok(enqueued as usize)
}

async fn campaigns(ctx: &Ctx) -> anyhow::Result<()> {
    let running: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT tenant_id, id FROM campaigns WHERE status = $1")
            .bind(CampaignStatus::Running)
            .fetch_all(&ctx.db)
            .await?;
    // One campaign that fails does not hold back the others' progress.
    let mut failed = Vec::new();
    for (tenant_id, campaign_id) in running {
        if let Err(error) = campaign::publish_progress(ctx, tenant_id, campaign_id).await {
            failed.push(format!("campaign {campaign_id}: {error}"));
        }
    }
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
    Ok(())
}

/// Rolls finished hours into the report rollups and reports how far behind
/// the oldest tenant's rollups are; fails, after rolling the others, naming
/// any tenant whose roll failed.
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
    if let Some(failures) = run.failures() {
        anyhow::bail!(
            "{failures} ({} hours rolled for the other tenants)",
            run.hours
        );
    }
    Ok(run)
}

async fn housekeeping(ctx: &Ctx) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'")
        .execute(&ctx.db)
        .await?;
    Ok(())
}

//! The PostgreSQL job queue under apalis: claims, wake-ups, leases, acks,
//! retries, dead letters and the watchdog.
//!
//! apalis runs the workers (one per queue: concurrency, parallel execution,
//! restarts, graceful shutdown); this module is their backend, over the
//! `jobs` table (see its migration):
//!
//! - **Claims.** A queue's fetch stream claims up to a batch of due jobs in
//!   one statement (`FOR UPDATE SKIP LOCKED`, oldest due first), setting
//!   `locked_by` to this process and `available_at` to the lease's end, and
//!   hands them to apalis one at a time as it has room. It claims again
//!   only when its batch is handed out.
//! - **Wake-ups.** With nothing due, the stream waits for the first of: a
//!   `NOTIFY` for its queue (inserts from the API and the CLI; one listener
//!   connection per process, see [`listen`]), a wake-up from this process
//!   (the jobs its own handlers hand on, [`Queues::wake`]), the next delayed
//!   job's due time, or [`IDLE_POLL`]. The
//!   wait is an ordinary tokio `select!` re-created on every loop, so a
//!   notification that arrives while a claim is running is kept (a
//!   `Notify` permit) and a lost notification costs at most [`IDLE_POLL`]:
//!   the stream cannot sleep through due work.
//! - **Leases.** While this process runs, [`renew_leases`] pushes the lease
//!   of every job it holds forward; a killed process stops renewing, and its
//!   jobs become due again when their leases end (`SWITCHBOARD_JOB_LEASE_MS`),
//!   for any worker. Graceful shutdown acknowledges what finished and hands
//!   back what did not ([`Queues::release`]), so a stack started right
//!   after finds it due at once.
//! - **Acks** are batched: a finished job's id joins a buffer that
//!   [`ack_loop`] deletes in one statement per round trip.
//! - **Retries and dead letters** are updates of the job's own row (due
//!   again after the backoff) or its move to `dead_jobs`, one statement each.
//! - **The watchdog** ([`watchdog`]) reads every queue's state in one query;
//!   a queue whose oldest due job has waited longer than
//!   `SWITCHBOARD_QUEUE_STALL_AFTER_MS` while it made no progress is
//!   declared stalled: an ERROR, `/ready` 503, `jobs_queue_stalled` 1, and
//!   its worker is restarted.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use apalis_core::task::Task;
use chrono::{DateTime, Utc};
use futures::{StreamExt, stream::BoxStream};
use sqlx::{PgPool, postgres::PgListener};
use switchboard_core::{
    jobs::{NOTIFY_CHANNEL, QUEUES},
    ticker::Ticker,
};
use tokio::sync::Notify;

/// Longest an idle queue waits without looking (a lost notification's cost).
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pause after a failed claim (the database is away).
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// A claimed job as apalis hands it to the runner.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The `jobs` row.
    pub id: i64,
    /// The queue it was claimed from.
    pub queue: &'static str,
    /// The job as JSON; the runner decodes it (and dead-letters what it cannot).
    pub payload: serde_json::Value,
    /// 1 on the first claim.
    pub attempt: u32,
    /// When it became due (enqueued, its backoff ended, or its lease ran out).
    pub due_at: DateTime<Utc>,
}

/// Why a queue's fetch stream ended (apalis then restarts its worker).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Its oldest due job waited longer than `stall_after` while the queue
    /// made no progress.
    #[error("queue {0} stalled: restarted by the watchdog")]
    Stalled(&'static str),
}

/// One queue's wake-up and health.
#[derive(Default)]
struct Lane {
    /// New work (a `NOTIFY`, a release, a reconnect of the listener).
    wake: Notify,
    /// The watchdog asks the fetch stream to end, so apalis restarts it.
    kick: Notify,
    /// Milliseconds since [`Queues::epoch`] of the last claim or finished job.
    progress_ms: AtomicI64,
    stalled: AtomicBool,
    /// When the current stall was declared, and when its worker was last
    /// restarted (milliseconds since [`Queues::epoch`]).
    stalled_at_ms: AtomicI64,
    kicked_ms: AtomicI64,
}

/// The queue state one worker process shares between its queues' streams,
/// the runner, the acker, the lease renewer, the listener and the watchdog.
pub struct Queues {
    db: PgPool,
    /// This process's claim token (`jobs.locked_by`): unique per start, so a
    /// restarted process never mistakes its predecessor's claims for its own.
    instance: String,
    lease: Duration,
    stall_after: Duration,
    epoch: Instant,
    lanes: HashMap<&'static str, Lane>,
    /// Jobs claimed and not yet settled: the leases [`renew_leases`] keeps.
    /// A job leaves it when it is settled or its settlement failed (then its
    /// lease runs out and it runs again).
    held: Mutex<HashSet<i64>>,
    /// Finished jobs waiting for the batched delete.
    acks: Mutex<Vec<i64>>,
    ack_wake: Notify,
    /// Jobs deleted or updated since the table was last vacuumed: every
    /// one leaves a dead row version that claims would otherwise wade through.
    churn: AtomicU64,
}

impl Queues {
    /// The queues of the worker named `instance`: its claims hold a lease of
    /// `lease`, and a queue whose oldest due job waits longer than
    /// `stall_after` while it makes no progress is stalled (see [`watchdog`]).
    pub fn new(db: PgPool, instance: String, lease: Duration, stall_after: Duration) -> Self {
        Self {
            db,
            instance,
            lease,
            stall_after,
            epoch: Instant::now(),
            lanes: QUEUES.iter().map(|q| (*q, Lane::default())).collect(),
            held: Mutex::new(HashSet::new()),
            acks: Mutex::new(Vec::new()),
            ack_wake: Notify::new(),
            churn: AtomicU64::new(0),
        }
    }

    fn lane(&self, queue: &str) -> &Lane {
        // Every queue name comes from `QUEUES`; an unknown one is a bug.
        self.lanes
            .get(queue)
            .unwrap_or_else(|| panic!("unknown queue {queue:?}"))
    }

    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    fn progressed(&self, queue: &str) {
        self.lane(queue)
            .progress_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    fn hold(&self, ids: impl IntoIterator<Item = i64>) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
    }

    fn unhold(&self, ids: impl IntoIterator<Item = i64>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            held.remove(&id);
        }
    }

    /// Queues the watchdog has declared stalled (empty when all is well).
    pub fn stalled(&self) -> Vec<&'static str> {
        QUEUES
            .into_iter()
            .filter(|q| self.lane(q).stalled.load(Ordering::Relaxed))
            .collect()
    }

    /// Wakes `queue`'s stream in this process: the worker's own inserts send
    /// no `NOTIFY` (see `switchboard_core::db::connect_for_worker`), so
    /// whoever enqueues or reschedules a job here calls this after commit.
    /// For a delayed job it makes the stream look at the new due time.
    pub fn wake(&self, queue: &str) {
        if let Some(lane) = self.lanes.get(queue) {
            lane.wake.notify_one();
        }
    }

    /// Wakes every queue's stream (the listener reconnected: notifications
    /// may have been missed).
    fn wake_all(&self) {
        for lane in self.lanes.values() {
            lane.wake.notify_one();
        }
    }

    /// Claims up to `limit` due jobs of `queue`.
    async fn claim(&self, queue: &'static str, limit: usize) -> Result<Vec<Claimed>, sqlx::Error> {
        let rows: Vec<(i64, serde_json::Value, i32, DateTime<Utc>)> = sqlx::query_as(
            "WITH due AS (
                 SELECT id, available_at FROM jobs
                 WHERE queue = $1 AND available_at <= now()
                 ORDER BY available_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE jobs j
             SET locked_by = $3, attempts = j.attempts + 1,
                 available_at = now() + make_interval(secs => $4)
             FROM due WHERE j.id = due.id
             RETURNING j.id, j.payload, j.attempts, due.available_at",
        )
        .bind(queue)
        .bind(limit as i64)
        .bind(&self.instance)
        .bind(self.lease.as_secs_f64())
        .fetch_all(&self.db)
        .await?;
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .map(|(id, payload, attempts, due_at)| Claimed {
                id,
                queue,
                payload,
                attempt: attempts.max(1) as u32,
                due_at,
            })
            .collect();
        claimed.sort_by_key(|c| (c.due_at, c.id));
        self.hold(claimed.iter().map(|c| c.id));
        Ok(claimed)
    }

    /// How long until `queue`'s next job is due (None: nothing waits).
    async fn next_due(&self, queue: &str) -> Result<Option<Duration>, sqlx::Error> {
        let secs: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM min(available_at) - now())::float8
             FROM jobs WHERE queue = $1",
        )
        .bind(queue)
        .fetch_one(&self.db)
        .await?;
        Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
    }

    /// A job finished (done, or settled some other way by its handler):
    /// delete it with the next batch.
    pub fn ack(&self, claimed: &Claimed) {
        self.progressed(claimed.queue);
        self.unhold([claimed.id]);
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(claimed.id);
        self.ack_wake.notify_one();
    }

    /// Deletes the acknowledged jobs; returns how many were pending.
    pub async fn flush_acks(&self) -> Result<usize, sqlx::Error> {
        let ids = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|e| e.into_inner()));
        if ids.is_empty() {
            return Ok(0);
        }
        let result = sqlx::query("DELETE FROM jobs WHERE id = ANY($1) AND locked_by = $2")
            .bind(&ids)
            .bind(&self.instance)
            .execute(&self.db)
            .await;
        match result {
            Ok(_) => {
                self.churn.fetch_add(ids.len() as u64, Ordering::Relaxed);
                Ok(ids.len())
            }
            Err(error) => {
                // Keep them for the next round; if this process dies first,
                // the jobs run again after their lease (handlers are idempotent).
                self.acks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(ids);
                Err(error)
            }
        }
    }

    /// Makes a job due again after `delay`, recording why it failed.
    pub async fn retry(
        &self,
        claimed: &Claimed,
        delay: Duration,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        self.unhold([claimed.id]);
        sqlx::query(
            "UPDATE jobs SET locked_by = NULL, last_error = $3,
                    available_at = now() + make_interval(secs => $4)
             WHERE id = $1 AND locked_by = $2",
        )
        .bind(claimed.id)
        .bind(&self.instance)
        .bind(error)
        .bind(delay.as_secs_f64())
        .execute(&self.db)
        .await?;
        self.churn.fetch_add(1, Ordering::Relaxed);
        self.progressed(claimed.queue);
        // Its stream may be asleep until a later due time.
        self.wake(claimed.queue);
        Ok(())
    }

    /// Moves a job to the dead-letter table in one statement.
    pub async fn dead_letter(
        &self,
        claimed: &Claimed,
        kind: &str,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        self.unhold([claimed.id]);
        sqlx::query(
            "WITH gone AS (
                 DELETE FROM jobs WHERE id = $1 AND locked_by = $2
                 RETURNING queue, subject, payload, attempts
             )
             INSERT INTO dead_jobs (id, queue, subject, payload, attempts, kind, error)
             SELECT $3, queue, subject, payload, attempts, $4, $5 FROM gone",
        )
        .bind(claimed.id)
        .bind(&self.instance)
        .bind(switchboard_core::ids::new_id())
        .bind(kind)
        .bind(error)
        .execute(&self.db)
        .await?;
        self.churn.fetch_add(1, Ordering::Relaxed);
        self.progressed(claimed.queue);
        Ok(())
    }

    /// Pushes the lease of every job this process holds forward.
    async fn renew(&self) -> Result<u64, sqlx::Error> {
        let held: Vec<i64> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        if held.is_empty() {
            return Ok(0);
        }
        Ok(sqlx::query(
            "UPDATE jobs SET available_at = now() + make_interval(secs => $3)
             WHERE id = ANY($2) AND locked_by = $1",
        )
        .bind(&self.instance)
        .bind(&held)
        .bind(self.lease.as_secs_f64())
        .execute(&self.db)
        .await?
        .rows_affected())
    }

    /// Hands back every job this process still holds (claimed, not run or
    /// cut short), due now and without the attempt its claim counted.
    pub async fn release(&self) -> Result<u64, sqlx::Error> {
        let released = sqlx::query(
            "UPDATE jobs SET locked_by = NULL, available_at = now(),
                    attempts = greatest(attempts - 1, 0)
             WHERE locked_by = $1",
        )
        .bind(&self.instance)
        .execute(&self.db)
        .await?
        .rows_affected();
        if released > 0 {
            // Other workers listening on this database pick them up now.
            sqlx::query("SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q")
                .bind(NOTIFY_CHANNEL)
                .bind(QUEUES.to_vec())
                .execute(&self.db)
                .await?;
        }
        Ok(released)
    }
}

/// Claimed jobs not yet handed to apalis. Dropped with its stream (a
/// restart), it stops renewing their leases, so they run again after it.
struct Buffer {
    queues: Arc<Queues>,
    jobs: VecDeque<Claimed>,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.queues.unhold(self.jobs.iter().map(|c| c.id));
    }
}

/// The apalis fetch stream of one queue (see the module docs). It yields
/// only claimed jobs, or an error when the watchdog restarts it.
pub fn fetch(
    queues: Arc<Queues>,
    queue: &'static str,
    batch: usize,
) -> BoxStream<'static, Result<Option<Task<Claimed>>, QueueError>> {
    let buffer = Buffer {
        queues,
        jobs: VecDeque::new(),
    };
    futures::stream::unfold(buffer, move |mut buffer| async move {
        loop {
            if let Some(job) = buffer.jobs.pop_front() {
                return Some((Ok(Some(Task::new(job))), buffer));
            }
            let queues = buffer.queues.clone();
            let lane = queues.lane(queue);
            let pause = match queues.claim(queue, batch).await {
                Ok(jobs) if !jobs.is_empty() => {
                    queues.progressed(queue);
                    // A restart the watchdog asked for while this stream was
                    // busy is moot now that it makes progress.
                    let _ = futures::FutureExt::now_or_never(lane.kick.notified());
                    metrics::counter!("jobs_claimed_total", "queue" => queue)
                        .increment(jobs.len() as u64);
                    buffer.jobs.extend(jobs);
                    continue;
                }
                Ok(_) => match queues.next_due(queue).await {
                    Ok(next) => next.map_or(IDLE_POLL, |d| d.min(IDLE_POLL)),
                    Err(_) => CLAIM_RETRY,
                },
                Err(error) => {
                    metrics::counter!("jobs_claim_errors_total", "queue" => queue).increment(1);
                    tracing::warn!(queue, %error, "claiming jobs failed; retrying");
                    CLAIM_RETRY
                }
            };
            tokio::select! {
                () = lane.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = lane.kick.notified() => {
                    return Some((Err(QueueError::Stalled(queue)), buffer));
                }
            }
        }
    })
    .boxed()
}

/// Wakes a queue's stream when a job is inserted for it (one dedicated
/// connection). A lost connection wakes every queue once it is back.
pub async fn listen(queues: Arc<Queues>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&queues.db).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            // Anything inserted while no listener ran.
            queues.wake_all();
            loop {
                match listener.try_recv().await? {
                    Some(notification) => {
                        if let Some(lane) = queues.lanes.get(notification.payload()) {
                            lane.wake.notify_one();
                        }
                    }
                    None => {
                        tracing::warn!("job notification connection lost; reconnecting");
                        queues.wake_all();
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            () = &mut shutdown => return,
            result = connected => {
                if let Err(error) = result {
                    tracing::warn!(%error, "job notifications unavailable; queues poll every second");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Deletes acknowledged jobs in batches until `shutdown`, then once more.
pub async fn ack_loop(queues: Arc<Queues>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = queues.ack_wake.notified() => {}
        }
        if let Err(error) = queues.flush_acks().await {
            metrics::counter!("jobs_ack_errors_total").increment(1);
            tracing::error!(%error, "acknowledging jobs failed; retrying (unacknowledged jobs run again after their lease)");
            tokio::time::sleep(Duration::from_millis(200)).await;
            queues.ack_wake.notify_one();
        }
    }
}

/// Dead row versions a worker lets pile up in `jobs` before it vacuums.
const VACUUM_AFTER_JOBS: u64 = 5_000;
/// Longest a worker lets any churn sit unvacuumed.
const VACUUM_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// Vacuums the `jobs` table as its churn requires until `shutdown`.
///
/// Every claim, retry and acknowledgement leaves a dead row version
/// behind; a queue table is the worst case for bloat, and the claim index
/// scan pays for every dead entry it meets. Autovacuum may be off (it is
/// on this project's CI machine) or slow to notice a small, hot table, so
/// the workers vacuum it themselves: after [`VACUUM_AFTER_JOBS`] settled
/// jobs, or [`VACUUM_AT_LEAST_EVERY`] if there were any. `SKIP_LOCKED`: if
/// another worker is vacuuming it already, this one does not wait.
pub async fn vacuum_loop(queues: Arc<Queues>, shutdown: impl std::future::Future<Output = ()>) {
    let mut ticker = Ticker::new(Duration::from_secs(1), shutdown);
    let mut last = Instant::now();
    while ticker.tick().await {
        let churn = queues.churn.load(Ordering::Relaxed);
        let due =
            churn >= VACUUM_AFTER_JOBS || (churn > 0 && last.elapsed() >= VACUUM_AT_LEAST_EVERY);
        if !due {
            continue;
        }
        let started = Instant::now();
        match sqlx::query("VACUUM (SKIP_LOCKED) jobs")
            .execute(&queues.db)
            .await
        {
            Ok(_) => {
                queues.churn.fetch_sub(churn, Ordering::Relaxed);
                last = Instant::now();
                metrics::counter!("jobs_table_vacuums_total").increment(1);
                metrics::histogram!("jobs_table_vacuum_seconds")
                    .record(started.elapsed().as_secs_f64());
            }
            Err(error) => tracing::warn!(%error, "vacuuming the jobs table failed"),
        }
    }
}

/// Renews this process's leases every quarter lease until `shutdown`.
pub async fn renew_leases(queues: Arc<Queues>, shutdown: impl std::future::Future<Output = ()>) {
    let mut ticker = Ticker::new(queues.lease / 4, shutdown);
    while ticker.tick().await {
        if let Err(error) = queues.renew().await {
            metrics::counter!("jobs_lease_renew_errors_total").increment(1);
            tracing::warn!(%error, "renewing job leases failed");
        }
    }
}

/// One queue's state, as the gauges and the watchdog read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueState {
    /// The queue's name.
    pub queue: String,
    /// Due now and not held by a live worker.
    pub due: i64,
    /// Claimed by a worker whose lease is running.
    pub in_flight: i64,
    /// Due later (delayed sends, retries in backoff).
    pub scheduled: i64,
    /// Dead letters of this queue.
    pub dead: i64,
    /// How long the oldest due job has waited, in seconds (0 if none).
    pub oldest_due_secs: f64,
}

/// Every queue's state in one query (and the gauges set from it).
pub async fn states(db: &PgPool) -> Result<Vec<QueueState>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64, i64, f64)> = sqlx::query_as(
        "SELECT q.queue,
                coalesce(j.due, 0), coalesce(j.in_flight, 0), coalesce(j.scheduled, 0),
                coalesce(d.dead, 0), coalesce(j.oldest_due_secs, 0)
         FROM unnest($1::text[]) AS q(queue)
         LEFT JOIN (
             SELECT queue,
                    count(*) FILTER (WHERE available_at <= now()) AS due,
                    count(*) FILTER (WHERE available_at > now() AND locked_by IS NOT NULL) AS in_flight,
                    count(*) FILTER (WHERE available_at > now() AND locked_by IS NULL) AS scheduled,
                    extract(epoch FROM now() - min(available_at) FILTER (WHERE available_at <= now()))::float8
                        AS oldest_due_secs
             FROM jobs GROUP BY queue
         ) j USING (queue)
         LEFT JOIN (SELECT queue, count(*) AS dead FROM dead_jobs GROUP BY queue) d USING (queue)
         ORDER BY array_position($1::text[], q.queue)",
    )
    .bind(QUEUES.to_vec())
    .fetch_all(db)
    .await?;
    let states: Vec<QueueState> = rows
        .into_iter()
        .map(
            |(queue, due, in_flight, scheduled, dead, oldest_due_secs)| QueueState {
                queue,
                due,
                in_flight,
                scheduled,
                dead,
                oldest_due_secs,
            },
        )
        .collect();
    for s in &states {
        let queue = s.queue.clone();
        metrics::gauge!("jobs_queue_depth", "queue" => queue.clone()).set(s.due as f64);
        metrics::gauge!("jobs_in_flight", "queue" => queue.clone()).set(s.in_flight as f64);
        metrics::gauge!("jobs_scheduled", "queue" => queue.clone()).set(s.scheduled as f64);
        metrics::gauge!("jobs_dead_letter_depth", "queue" => queue.clone()).set(s.dead as f64);
        metrics::gauge!("jobs_oldest_due_seconds", "queue" => queue).set(s.oldest_due_secs);
    }
    Ok(states)
}

/// Reads every queue's state once a second (or each quarter of the stall
/// time, if that is shorter) until `shutdown`: the queue gauges come from
/// here, whoever scrapes `/metrics` how often, and a queue whose oldest due
/// job waited longer than the stall time while it made no progress is
/// stalled (ERROR, not ready, restarted); it recovers as soon as it makes
/// progress again.
pub async fn watchdog(queues: Arc<Queues>, shutdown: impl std::future::Future<Output = ()>) {
    let period = (queues.stall_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut ticker = Ticker::new(period, shutdown);
    while ticker.tick().await {
        let states = match states(&queues.db).await {
            Ok(states) => states,
            Err(error) => {
                tracing::warn!(%error, "watchdog could not read the queues");
                continue;
            }
        };
        let stall_ms = queues.stall_after.as_millis() as i64;
        for state in states {
            let Some((queue, lane)) = queues.lanes.get_key_value(state.queue.as_str()) else {
                continue;
            };
            let now = queues.now_ms();
            let progress = lane.progress_ms.load(Ordering::Relaxed);
            let waiting_ms = (state.oldest_due_secs * 1000.0) as i64;
            let stuck = state.due > 0 && waiting_ms > stall_ms && now - progress > stall_ms;
            let stalled = lane.stalled.load(Ordering::Relaxed);
            if stuck {
                if !stalled {
                    lane.stalled.store(true, Ordering::Relaxed);
                    lane.stalled_at_ms.store(now, Ordering::Relaxed);
                    metrics::gauge!("jobs_queue_stalled", "queue" => *queue).set(1.0);
                }
                // One restart per stall period, not one per check.
                if !stalled || now - lane.kicked_ms.load(Ordering::Relaxed) > stall_ms {
                    lane.kicked_ms.store(now, Ordering::Relaxed);
                    metrics::counter!("jobs_watchdog_restarts_total", "queue" => *queue)
                        .increment(1);
                    tracing::error!(
                        queue,
                        due = state.due,
                        oldest_due_secs = state.oldest_due_secs,
                        idle_secs = (now - progress) as f64 / 1000.0,
                        "queue stalled: due jobs and no progress; restarting its worker"
                    );
                    lane.kick.notify_one();
                }
            } else if stalled
                && (state.due == 0 || progress > lane.stalled_at_ms.load(Ordering::Relaxed))
            {
                lane.stalled.store(false, Ordering::Relaxed);
                metrics::gauge!("jobs_queue_stalled", "queue" => *queue).set(0.0);
                tracing::info!(queue, "queue making progress again");
            }
        }
    }
}

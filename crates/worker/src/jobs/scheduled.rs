//! `scheduled_call.run`: the scheduled call's state machine on the worker.
//!
//! One job type advances a scheduled call for every reason: its due time
//! came (placed by the API with `enqueue_in`), a deferral ended, or its
//! attempt's call ended (enqueued by the API in the transaction that applied
//! the call's final status). The handler locks the record and decides from
//! what it finds, so a duplicate or early job changes nothing:
//!
//! - `pending` / `retrying`, due: outside the tenant's calling hours it is
//!   deferred to the next window start; at the tenant's concurrency cap it
//!   waits [`CAP_RECHECK`]; otherwise an ordinary outbound call is created
//!   (`queued`, handed to the carrier exactly as `POST /v1/calls` does) and
//!   the scheduled call becomes `dialing`.
//! - `dialing`, its latest call ended: `completed` when answered; when the
//!   outcome is one the policy retries and attempts remain, `retrying` with
//!   the next attempt after `backoff_seconds`; otherwise `exhausted`.
//! - final: nothing.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use switchboard_core::{
    calls::{CallStatus, EventSource, NewOutboundCall},
    events::EventType,
    ids::new_id,
    jobs::{self, CarrierSim, Job, ScheduledCallRun},
    records::CALL_JSON,
    scheduling::{RetryOutcome, SCHEDULED_CALL_JSON, ScheduledCallStatus},
};
use uuid::Uuid;

use super::lock_record;
use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// How long a call held back by the concurrency cap waits before it looks again.
pub const CAP_RECHECK: Duration = Duration::from_millis(500);

#[derive(sqlx::FromRow)]
struct Scheduled {
    status: ScheduledCallStatus,
    to_number: String,
    from_number: Option<String>,
    customer_id: Option<Uuid>,
    max_attempts: i32,
    backoff_seconds: i32,
    retry_on: Vec<String>,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    /// The tenant's calling window, resolved for now: `now()` when inside it.
    window_opens_at: DateTime<Utc>,
    max_concurrent_calls: Option<i32>,
}

/// The scheduled call, locked, with its tenant's scheduling settings.
const SCHEDULED: &str =
    "SELECT s.status, s.to_number, s.from_number, s.customer_id, s.max_attempts,
            s.backoff_seconds, s.retry_on, s.attempts, s.next_attempt_at,
            calling_window_next(now(), coalesce(t.timezone, 'UTC'), t.window_start, t.window_end)
                AS window_opens_at,
            t.max_concurrent_calls
     FROM scheduled_calls s LEFT JOIN tenant_scheduling t ON t.tenant_id = s.tenant_id
     WHERE s.tenant_id = $1 AND s.id = $2
     FOR UPDATE OF s";

/// What the job did, for the event and the metrics.
enum Step {
    Nothing,
    /// Claimed before its due time (the API computes the delay on its own
    /// clock): due again then.
    Early,
    Deferred(&'static str),
    Placed {
        call: serde_json::Value,
    },
    Settled {
        /// The attempt's final call status, or why no attempt could be made.
        outcome: &'static str,
    },
}

impl Handler for ScheduledCallRun {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let mut tx = ctx.db.begin().await?;
        let row: Option<Scheduled> =
            lock_record(&mut tx, SCHEDULED, self.tenant_id, self.scheduled_call_id).await?;
        let Some(row) = row else { return Ok(()) };
        let step = match row.status {
            ScheduledCallStatus::Pending | ScheduledCallStatus::Retrying => {
                try_place(self, ctx, &mut tx, &row).await?
            }
            ScheduledCallStatus::Dialing => settle(self, &mut tx, &row).await?,
            ScheduledCallStatus::Completed
            | ScheduledCallStatus::Exhausted
            | ScheduledCallStatus::Canceled => Step::Nothing,
        };
        match step {
            Step::Nothing => return Ok(()),
            Step::Early => {
                tx.commit().await?;
                ctx.queues.wake(ScheduledCallRun::QUEUE);
                return Ok(());
            }
            _ => {}
        }
        let data: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {SCHEDULED_CALL_JSON} FROM scheduled_calls s WHERE s.id = $1"
        )))
        .bind(self.scheduled_call_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        ctx.queues.wake(ScheduledCallRun::QUEUE);
        match &step {
            Step::Deferred(reason) => {
                metrics::counter!("scheduled_calls_deferred_total", "reason" => *reason)
                    .increment(1);
            }
            Step::Placed { call } => {
                ctx.queues.wake(CarrierSim::QUEUE);
                ctx.events
                    .publish_new(self.tenant_id, EventType::CallCreated, call)
                    .await;
            }
            Step::Settled { outcome } => {
                metrics::counter!("scheduled_call_attempts_total", "outcome" => *outcome)
                    .increment(1);
            }
            Step::Nothing | Step::Early => {}
        }
        if !matches!(step, Step::Deferred("concurrency")) {
            ctx.events
                .publish_new(self.tenant_id, EventType::ScheduledCallUpdated, data)
                .await;
        }
        Ok(())
    }
}

async fn try_place(
    job: &ScheduledCallRun,
    ctx: &Ctx,
    tx: &mut sqlx::PgConnection,
    row: &Scheduled,
) -> Result<Step, JobError> {
    let now = Utc::now();
    let due_at = row.next_attempt_at.unwrap_or(now);
    // Never before its time. An early job comes back when it is due (a
    // stale one — the record was deferred since — then finds it placed
    // or still waiting, and does nothing twice).
    if due_at > now {
        let wait = (due_at - now).to_std().unwrap_or_default();
        jobs::enqueue_in(&mut *tx, job, wait).await?;
        return Ok(Step::Early);
    }
    if row.window_opens_at > now {
        sqlx::query(
            "UPDATE scheduled_calls SET next_attempt_at = $2, version = version + 1, updated_at = now()
             WHERE id = $1",
        )
        .bind(job.scheduled_call_id)
        .bind(row.window_opens_at)
        .execute(&mut *tx)
        .await?;
        let wait = (row.window_opens_at - now).to_std().unwrap_or_default();
        jobs::enqueue_in(&mut *tx, job, wait).await?;
        tracing::info!(scheduled_call_id = %job.scheduled_call_id, opens_at = %row.window_opens_at, "outside calling hours; deferred");
        return Ok(Step::Deferred("calling_hours"));
    }
    if let Some(cap) = row.max_concurrent_calls {
        // Serialise this tenant's placements so two workers cannot both
        // see room for one more call.
        sqlx::query("SELECT 1 FROM tenant_scheduling WHERE tenant_id = $1 FOR UPDATE")
            .bind(job.tenant_id)
            .execute(&mut *tx)
            .await?;
        // A literal status, which `scheduled_calls_dialing_idx` can serve.
        let dialing: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM scheduled_calls WHERE tenant_id = $1 AND status = '{}'",
            ScheduledCallStatus::Dialing
        )))
        .bind(job.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        if dialing >= i64::from(cap) {
            jobs::enqueue_in(&mut *tx, job, CAP_RECHECK).await?;
            return Ok(Step::Deferred("concurrency"));
        }
    }
    let from: Option<String> = sqlx::query_scalar(
        "SELECT number FROM phone_numbers WHERE tenant_id = $1 AND ($2::text IS NULL OR number = $2)
         ORDER BY is_default DESC, number LIMIT 1",
    )
    .bind(job.tenant_id)
    .bind(&row.from_number)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(from) = from else {
        // The number was released since scheduling (or the tenant has
        // none): no attempt can ever be placed.
        sqlx::query(
            "UPDATE scheduled_calls SET status = $2, next_attempt_at = NULL,
                last_error = 'no number to call from', version = version + 1, updated_at = now()
             WHERE id = $1",
        )
        .bind(job.scheduled_call_id)
        .bind(ScheduledCallStatus::Exhausted.as_str())
        .execute(&mut *tx)
        .await?;
        tracing::warn!(scheduled_call_id = %job.scheduled_call_id, "no caller id; scheduled call exhausted");
        return Ok(Step::Settled {
            outcome: "no_caller_id",
        });
    };
    // The attempt starts when its call is created, which `place` stamps
    // with the statement clock, not the transaction start (which precedes
    // the due check above): an attempt never reads as started before it was
    // due (the seed-tier load run counted 19 of 3 202 that did, by a few
    // milliseconds).
    let attempt = row.attempts + 1;
    let placed = NewOutboundCall {
        id: new_id(),
        tenant_id: job.tenant_id,
        from: &from,
        to: &row.to_number,
        customer_id: row.customer_id,
        agent_id: None,
        source: EventSource::System,
        data: &serde_json::json!({"scheduled_call_id": job.scheduled_call_id, "attempt": attempt}),
    };
    let (call,): (serde_json::Value,) = placed
        .place(&mut *tx, ctx.settings.carrier, &CALL_JSON)
        .await?;
    // The attempt and the scheduled call's new status: one statement.
    sqlx::query(
        "WITH attempt AS (
            INSERT INTO scheduled_call_attempts (call_id, scheduled_call_id, tenant_id, attempt, started_at)
            SELECT id, $1, tenant_id, $3, created_at FROM calls WHERE id = $4)
         UPDATE scheduled_calls SET status = $2, attempts = attempts + 1,
            next_attempt_at = NULL, version = version + 1, updated_at = now()
         WHERE id = $1",
    )
    .bind(job.scheduled_call_id)
    .bind(ScheduledCallStatus::Dialing.as_str())
    .bind(attempt)
    .bind(placed.id)
    .execute(&mut *tx)
    .await?;
    let lag = (now - due_at).to_std().unwrap_or_default();
    metrics::histogram!("scheduled_call_lag_seconds").record(lag.as_secs_f64());
    metrics::counter!("scheduled_calls_due_total").increment(1);
    metrics::counter!("calls_created_total", "direction" => "outbound").increment(1);
    Ok(Step::Placed { call })
}

async fn settle(
    job: &ScheduledCallRun,
    tx: &mut sqlx::PgConnection,
    row: &Scheduled,
) -> Result<Step, JobError> {
    let last: Option<CallStatus> = sqlx::query_scalar(
        "SELECT c.status FROM scheduled_call_attempts a JOIN calls c ON c.id = a.call_id
         WHERE a.scheduled_call_id = $1 ORDER BY a.attempt DESC LIMIT 1",
    )
    .bind(job.scheduled_call_id)
    .fetch_optional(&mut *tx)
    .await?;
    // Dialing without a call cannot happen (both are written in one
    // transaction); treat it as a failed attempt rather than hang.
    let outcome = last.unwrap_or(CallStatus::Failed);
    if !outcome.is_terminal() {
        // Still on the line: the call's final status enqueues this job again.
        return Ok(Step::Nothing);
    }
    let retried = RetryOutcome::of(outcome)
        .is_some_and(|retried| row.retry_on.iter().any(|on| on == retried.as_str()));
    let retry = retried && row.attempts < row.max_attempts;
    // The next attempt's wait, when there is one.
    let (status, backoff) = if outcome == CallStatus::Completed {
        (ScheduledCallStatus::Completed, None)
    } else if retry {
        let backoff = Duration::from_secs(u64::try_from(row.backoff_seconds).unwrap_or(0));
        (ScheduledCallStatus::Retrying, Some(backoff))
    } else {
        (ScheduledCallStatus::Exhausted, None)
    };
    sqlx::query(
        "UPDATE scheduled_calls SET status = $2,
            next_attempt_at = CASE WHEN $3::float8 IS NULL THEN next_attempt_at
                                   ELSE now() + make_interval(secs => $3) END,
            version = version + 1, updated_at = now()
         WHERE id = $1",
    )
    .bind(job.scheduled_call_id)
    .bind(status.as_str())
    .bind(backoff.map(|wait| wait.as_secs_f64()))
    .execute(&mut *tx)
    .await?;
    if let Some(backoff) = backoff {
        jobs::enqueue_in(&mut *tx, job, backoff).await?;
    }
    Ok(Step::Settled {
        outcome: outcome.as_str(),
    })
}

//! Applying a status to a call: the state machine from core, one
//! transaction (update the call, append its history), then the event.
//!
//! The row is locked (`FOR UPDATE`) before deciding, so concurrent
//! callbacks for one call serialise and each decides against the state the
//! previous one left. Applied changes bump the call's gapless `version`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use switchboard_core::{
    calls::{CallStatus, Transition, transition},
    events::{Envelope, EventType},
    jobs::{self, ScheduledCallRun},
};
use uuid::Uuid;

use super::{CALL_COLUMNS, Call};
use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// A status to apply, with what the reporter knows about it.
#[derive(Debug, Clone)]
pub(crate) struct StatusUpdate {
    pub to: CallStatus,
    /// When it happened (the carrier's timestamp when it sends one).
    pub at: DateTime<Utc>,
    /// The carrier's own talk time for a completed call.
    pub duration: Option<i32>,
    /// `api`, `carrier` or `system`.
    pub source: &'static str,
    /// The agent taking the call (answer).
    pub agent_id: Option<Uuid>,
    /// Extra detail kept in the call's history.
    pub data: serde_json::Value,
}

/// What applying a status did.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub call: Call,
    pub transition: Transition,
}

/// Locks a call of `tenant_id` for the rest of `tx` (404 when not theirs).
pub(crate) async fn lock_call(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    call_id: Uuid,
) -> ApiResult<Call> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CALL_COLUMNS} FROM calls WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(tenant_id)
    .bind(call_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("call"))
}

pub(crate) fn status_of(call: &Call) -> ApiResult<CallStatus> {
    call.status.parse().map_err(ApiError::internal)
}

/// Applies `update` to a locked call inside `tx`. No-ops return the call
/// unchanged; the caller commits and then calls [`after_commit`].
pub(crate) async fn apply_locked(
    tx: &mut PgConnection,
    current: Call,
    update: &StatusUpdate,
) -> ApiResult<Outcome> {
    let from = status_of(&current)?;
    let decided = transition(from, update.to);
    if decided != Transition::Apply {
        return Ok(Outcome {
            call: current,
            transition: decided,
        });
    }
    // One statement updates the call and appends its history entry.
    let call: Call = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH updated AS (
            UPDATE calls SET
                status = $2,
                ringing_at = CASE WHEN $2 = 'ringing' THEN coalesce(ringing_at, $3) ELSE ringing_at END,
                answered_at = CASE WHEN $2 = 'in-progress' THEN coalesce(answered_at, $3) ELSE answered_at END,
                ended_at = CASE WHEN $4 THEN coalesce(ended_at, $3) ELSE ended_at END,
                duration_seconds = CASE
                    WHEN $2 = 'completed' THEN coalesce($5, greatest(0, floor(extract(epoch FROM ($3 - answered_at))))::int)
                    ELSE duration_seconds END,
                agent_id = coalesce($6, agent_id),
                on_hold = on_hold AND NOT $4,
                muted = muted AND NOT $4,
                recording = recording AND NOT $4,
                version = version + 1,
                updated_at = now()
            WHERE id = $1
            RETURNING *),
         history AS (
            INSERT INTO call_events (tenant_id, call_id, kind, from_status, to_status, data, source, occurred_at)
            SELECT tenant_id, id, 'status', $7, $2, $8, $9, $3 FROM updated)
         SELECT {CALL_COLUMNS} FROM updated"
    )))
    .bind(current.id)
    .bind(update.to.as_str())
    .bind(update.at)
    .bind(update.to.is_terminal())
    .bind(update.duration)
    .bind(update.agent_id)
    .bind(from.as_str())
    .bind(&update.data)
    .bind(update.source)
    .fetch_one(&mut *tx)
    .await?;
    if update.to.is_terminal() {
        wake_scheduled_call(tx, &call).await?;
    }
    Ok(Outcome {
        call,
        transition: Transition::Apply,
    })
}

/// A call placed for a scheduled call has ended: its `scheduled_call.run`
/// job goes in with the final status, so the retry decision can never be
/// lost between the two.
async fn wake_scheduled_call(tx: &mut PgConnection, call: &Call) -> ApiResult<()> {
    let owner: Option<Uuid> = sqlx::query_scalar(
        "SELECT scheduled_call_id FROM scheduled_call_attempts WHERE call_id = $1",
    )
    .bind(call.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(scheduled_call_id) = owner {
        jobs::enqueue(
            &mut *tx,
            &ScheduledCallRun {
                tenant_id: call.tenant_id,
                scheduled_call_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// Appends one entry to a call's history.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_event(
    tx: &mut PgConnection,
    call: &Call,
    kind: &str,
    from_status: Option<&str>,
    to_status: Option<&str>,
    data: &serde_json::Value,
    source: &str,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO call_events (tenant_id, call_id, kind, from_status, to_status, data, source, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(call.tenant_id)
    .bind(call.id)
    .bind(kind)
    .bind(from_status)
    .bind(to_status)
    .bind(data)
    .bind(source)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// After an applied status commits: publish `call.status`, keep the agent's
/// presence in step with the call, count it.
pub(crate) async fn after_status_commit(state: &AppState, outcome: &Outcome, source: &'static str) {
    let result = outcome.transition.as_str();
    metrics::counter!(
        "call_transitions_total",
        "to" => outcome.call.status.clone(),
        "source" => source,
        "result" => result,
    )
    .increment(1);
    if outcome.transition != Transition::Apply {
        return;
    }
    let call = &outcome.call;
    state
        .events
        .publish_after_commit(Envelope::new(call.tenant_id, EventType::CallStatus, call))
        .await;
    follow_presence(state, call).await;
}

/// Busy while ringing or talking, available again afterwards (only if calls
/// made the agent busy; the presence store keeps track of that).
pub(crate) async fn follow_presence(state: &AppState, call: &Call) {
    let Some(agent) = call.agent_id else {
        return;
    };
    let status: Result<CallStatus, _> = call.status.parse();
    let result = match status {
        Ok(s) if s.is_terminal() => {
            state
                .presence
                .call_ended(call.tenant_id, agent, call.id)
                .await
        }
        Ok(CallStatus::Ringing | CallStatus::InProgress) => {
            state
                .presence
                .call_started(call.tenant_id, agent, call.id)
                .await
        }
        _ => return,
    };
    if let Err(error) = result {
        metrics::counter!("redis_errors_total", "op" => "presence").increment(1);
        tracing::warn!(call_id = %call.id, %error, "presence not updated");
    }
}

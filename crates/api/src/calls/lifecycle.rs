//! Applying a status to a call: the state machine from core, one
//! transaction (update the call, append its history), then the event.
//!
//! Agents' controls lock the row (`FOR UPDATE`) before deciding, so each
//! decides against the state the previous change left; the carrier's
//! callbacks decide from an unlocked read and apply in batches
//! (`carrier::call_statuses`). Both go through [`apply_changes`], which
//! applies a change only if the call is still in the status it was decided
//! from. Applied changes bump the call's gapless `version`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use switchboard_core::calls::{CallEventKind, CallStatus, EventSource, transition};
use switchboard_core::events::EventType;
use switchboard_core::jobs::{self, ScheduledCallRun};
use switchboard_core::lifecycle::Transition;
use switchboard_core::records::CALL_COLUMNS;
use uuid::Uuid;

use super::Call;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A status to apply, with what the reporter knows about it.
#[derive(Debug, Clone)]
pub(crate) struct StatusUpdate {
    pub to: CallStatus,
    /// When it happened (the carrier's timestamp when it sends one).
    pub at: DateTime<Utc>,
    /// The carrier's own talk time for a completed call.
    pub duration: Option<i32>,
    /// Who reports it.
    pub source: EventSource,
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

/// Applies `update` to a locked call inside `tx`. No-ops return the call
/// unchanged; the caller commits and then calls [`after_status_commit`].
pub(crate) async fn apply_locked(
    tx: &mut PgConnection,
    current: Call,
    update: &StatusUpdate,
) -> ApiResult<Outcome> {
    let from = current.status;
    let decided = transition(from, update.to);
    if decided != Transition::Apply {
        return Ok(Outcome {
            call: current,
            transition: decided,
        });
    }
    let change = Change {
        call_id: current.id,
        from,
        update: update.clone(),
    };
    // The row is locked and in `from`: the change applies.
    let call = apply_changes(tx, std::slice::from_ref(&change))
        .await?
        .pop()
        .map(|applied| applied.call)
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("locked call {} not updated", current.id))
        })?;
    Ok(Outcome {
        call,
        transition: Transition::Apply,
    })
}

/// A decided, legal status change: `update`, decided from `from`.
#[derive(Debug)]
pub(crate) struct Change {
    pub call_id: Uuid,
    pub from: CallStatus,
    pub update: StatusUpdate,
}

/// A call [`apply_changes`] updated, with the 1-based position of its change.
#[derive(sqlx::FromRow)]
pub(crate) struct Applied {
    pub ord: i64,
    #[sqlx(flatten)]
    pub call: Call,
    /// The scheduled call this call was an attempt of, when it just ended.
    wakes: Option<Uuid>,
}

/// The one statement that changes calls' statuses, for one change (a locked
/// call) or a batch of carrier callbacks: each update applies only if its
/// call is still in the status it was decided from, appends the history
/// entry, and for a call that just ended names the scheduled call it was an
/// attempt of. Rows are locked in id order, so concurrent batches wait for
/// each other instead of deadlocking.
///
/// The status and history-kind names in it are the enums' own, formatted in
/// once.
static APPLY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH v AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],
                                  $5::int[], $6::uuid[], $7::jsonb[], $8::text[], $9::bool[])
                 WITH ORDINALITY
                 AS v(v_id, v_from, v_to, v_at, v_duration, v_agent, v_data, v_source, v_terminal, ord)),
         locked AS (
             SELECT id AS locked_id FROM calls WHERE id IN (SELECT v_id FROM v)
             ORDER BY id FOR UPDATE),
         updated AS (
             UPDATE calls SET
                 status = v.v_to,
                 ringing_at = CASE WHEN v.v_to = '{ringing}' THEN coalesce(ringing_at, v.v_at) ELSE ringing_at END,
                 answered_at = CASE WHEN v.v_to = '{answered}' THEN coalesce(answered_at, v.v_at) ELSE answered_at END,
                 ended_at = CASE WHEN v.v_terminal THEN coalesce(ended_at, v.v_at) ELSE ended_at END,
                 duration_seconds = CASE
                     WHEN v.v_to = '{completed}' THEN coalesce(v.v_duration,
                         greatest(0, floor(extract(epoch FROM (v.v_at - answered_at))))::int)
                     ELSE duration_seconds END,
                 agent_id = coalesce(v.v_agent, agent_id),
                 on_hold = on_hold AND NOT v.v_terminal,
                 muted = muted AND NOT v.v_terminal,
                 recording = recording AND NOT v.v_terminal,
                 version = version + 1,
                 updated_at = now()
             FROM v JOIN locked l ON l.locked_id = v.v_id
             WHERE calls.id = v.v_id AND calls.status = v.v_from
             RETURNING v.ord, v.v_from, v.v_at, v.v_data, v.v_source, v.v_terminal, {CALL_COLUMNS}),
         history AS (
             INSERT INTO call_events
                 (tenant_id, call_id, kind, from_status, to_status, data, source, occurred_at)
             SELECT tenant_id, id, '{history}', v_from, status, v_data, v_source, v_at
             FROM updated ORDER BY ord)
         SELECT u.*, a.scheduled_call_id AS wakes
         FROM updated u
         LEFT JOIN scheduled_call_attempts a ON u.v_terminal AND a.call_id = u.id",
        ringing = CallStatus::Ringing,
        answered = CallStatus::InProgress,
        completed = CallStatus::Completed,
        history = CallEventKind::Status,
    )
});

/// Applies `changes` inside `tx` (see [`APPLY_SQL`]); a call placed for a
/// scheduled call that just ended gets its `scheduled_call.run` job in the
/// same transaction, so the retry decision can never be lost between the
/// two. Changes whose call had moved on return no row.
pub(crate) async fn apply_changes(
    tx: &mut PgConnection,
    changes: &[Change],
) -> Result<Vec<Applied>, sqlx::Error> {
    let ids: Vec<Uuid> = changes.iter().map(|c| c.call_id).collect();
    let from: Vec<&str> = changes.iter().map(|c| c.from.as_str()).collect();
    let to: Vec<&str> = changes.iter().map(|c| c.update.to.as_str()).collect();
    let at: Vec<DateTime<Utc>> = changes.iter().map(|c| c.update.at).collect();
    let durations: Vec<Option<i32>> = changes.iter().map(|c| c.update.duration).collect();
    let agents: Vec<Option<Uuid>> = changes.iter().map(|c| c.update.agent_id).collect();
    let data: Vec<serde_json::Value> = changes.iter().map(|c| c.update.data.clone()).collect();
    let sources: Vec<&str> = changes.iter().map(|c| c.update.source.as_str()).collect();
    let terminal: Vec<bool> = changes.iter().map(|c| c.update.to.is_terminal()).collect();
    let applied: Vec<Applied> = sqlx::query_as(sqlx::AssertSqlSafe(APPLY_SQL.as_str()))
        .bind(&ids)
        .bind(&from)
        .bind(&to)
        .bind(&at)
        .bind(&durations)
        .bind(&agents)
        .bind(&data)
        .bind(&sources)
        .bind(&terminal)
        .fetch_all(&mut *tx)
        .await?;
    for applied in &applied {
        if let Some(scheduled_call_id) = applied.wakes {
            jobs::enqueue(
                &mut *tx,
                &ScheduledCallRun {
                    tenant_id: applied.call.tenant_id,
                    scheduled_call_id,
                },
            )
            .await?;
        }
    }
    Ok(applied)
}

/// Appends one entry to a call's history: a control, a recording, or, with
/// `to_status`, a call's first status (an inbound call's `ringing`;
/// later statuses are written with the change, [`apply`]).
pub(crate) async fn record_event(
    tx: &mut PgConnection,
    call: &Call,
    kind: CallEventKind,
    to_status: Option<CallStatus>,
    data: &serde_json::Value,
    source: EventSource,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO call_events (tenant_id, call_id, kind, to_status, data, source, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(call.tenant_id)
    .bind(call.id)
    .bind(kind.as_str())
    .bind(to_status.map(CallStatus::as_str))
    .bind(data)
    .bind(source.as_str())
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// After an applied status commits: publish `call.status`, keep the agent's
/// presence in step with the call, count it.
pub(crate) async fn after_status_commit(state: &AppState, outcome: &Outcome, source: EventSource) {
    let result = outcome.transition.as_str();
    metrics::counter!(
        "call_transitions_total",
        "to" => outcome.call.status.as_str(),
        "source" => source.as_str(),
        "result" => result,
    )
    .increment(1);
    if outcome.transition != Transition::Apply {
        return;
    }
    let call = &outcome.call;
    state
        .events
        .publish_new(call.tenant_id, EventType::CallStatus, call)
        .await;
    follow_presence(state, call).await;
}

/// Busy while ringing or talking, available again afterwards (only if calls
/// made the agent busy; the presence store keeps track of that).
///
/// The one place presence follows calls. Every status change of a call is
/// written here in the API (agents' controls, carrier callbacks, transfers),
/// and following it right after the commit means the HTTP answer, and any
/// read after it, already sees the agent's new presence. The realtime
/// servers only deliver the `presence.changed` event this publishes.
pub(crate) async fn follow_presence(state: &AppState, call: &Call) {
    let Some(agent) = call.agent_id else {
        return;
    };
    let result = if call.status.is_terminal() {
        state
            .presence
            .call_ended(call.tenant_id, agent, call.id)
            .await
    } else if call.status == CallStatus::Queued {
        return;
    } else {
        // Ringing or talking.
        state
            .presence
            .call_started(call.tenant_id, agent, call.id)
            .await
    };
    if let Err(error) = result {
        presence_not_updated(call.id, &error);
    }
}

/// Frees `agent` from `call_id` (a transfer away, or a call that was not
/// created after all).
pub(crate) async fn release_agent(state: &AppState, tenant_id: Uuid, agent: Uuid, call_id: Uuid) {
    if let Err(error) = state.presence.call_ended(tenant_id, agent, call_id).await {
        presence_not_updated(call_id, &error);
    }
}

/// A presence change that did not happen leaves the agent busy (or free)
/// until their calls set expires: an ERROR, and counted.
fn presence_not_updated(call_id: Uuid, error: &dyn std::fmt::Display) {
    metrics::counter!("redis_errors_total", "op" => "presence").increment(1);
    tracing::error!(%call_id, %error, "presence not updated: the agent's status is wrong until their calls expire");
}

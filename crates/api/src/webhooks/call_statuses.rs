//! Call status callbacks in groups, the carrier storm's hot path: finding a
//! call by its CallSid and applying a status run once per batch of
//! concurrent callbacks (see `switchboard_core::group_commit`) instead of a
//! transaction each (lock, update + history, commit).
//!
//! A callback reads its call without a lock and decides from that status;
//! applying is conditional per row (`status = <the status it decided
//! from>`), so a callback whose call moved on meanwhile, including one that
//! lost to another callback for the same call in the same batch, gets no
//! row back and is decided again by its handler. Rows are locked in id
//! order, so batches here, in another API instance, and the agents' call
//! controls (`lifecycle::lock_call`) wait for each other instead of
//! deadlocking.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use switchboard_core::{
    calls::CallStatus,
    group_commit::by_ordinality,
    jobs::{self, ScheduledCallRun},
};
use uuid::Uuid;

use crate::calls::{CALL_COLUMNS, Call};

/// A call as a callback finds it, with its tenant's carrier auth token (to
/// verify the callback's signature).
#[derive(Debug, sqlx::FromRow)]
pub struct CallTarget {
    #[sqlx(flatten)]
    pub call: Call,
    pub carrier_auth_token: String,
}

/// A decided, legal status change reported by the carrier.
#[derive(Debug)]
pub struct ApplyCallStatus {
    pub call_id: Uuid,
    pub from: CallStatus,
    pub to: CallStatus,
    /// When it happened (the carrier's timestamp when it sends one).
    pub at: DateTime<Utc>,
    /// The carrier's own talk time for a completed call.
    pub duration: Option<i32>,
    /// Kept in the call's history.
    pub data: serde_json::Value,
}

/// Call status callbacks, looked up and applied in groups.
pub type CallStatuses = super::Reports<CallTarget, ApplyCallStatus, Call>;

/// Starts the lanes (inside a Tokio runtime).
pub fn start(db: &PgPool) -> CallStatuses {
    super::Reports::start(
        db,
        ["call_status_lookup", "call_status_apply"],
        lookup,
        apply,
    )
}

#[derive(sqlx::FromRow)]
struct Found {
    ord: i64,
    #[sqlx(flatten)]
    target: CallTarget,
}

static LOOKUP_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT v.ord, c.*
         FROM unnest($1::text[]) WITH ORDINALITY AS v(sid, ord)
         CROSS JOIN LATERAL (
             SELECT {CALL_COLUMNS},
                    (SELECT carrier_auth_token FROM tenants t WHERE t.id = calls.tenant_id)
                        AS carrier_auth_token
             FROM calls WHERE carrier_sid = v.sid) c"
    )
});

async fn lookup(db: PgPool, sids: Vec<String>) -> anyhow::Result<Vec<Option<CallTarget>>> {
    let found: Vec<Found> = sqlx::query_as(sqlx::AssertSqlSafe(LOOKUP_SQL.as_str()))
        .bind(&sids)
        .fetch_all(&db)
        .await?;
    by_ordinality(sids.len(), found.into_iter().map(|f| (f.ord, f.target)))
}

#[derive(sqlx::FromRow)]
struct Applied {
    ord: i64,
    /// The scheduled call this call was an attempt of, when it just ended.
    wakes: Option<Uuid>,
    #[sqlx(flatten)]
    call: Call,
}

/// One statement for a whole batch: the conditional updates (the same
/// columns `lifecycle::apply_locked` sets), one history entry per updated
/// call, and for calls that just ended the scheduled call they were an
/// attempt of, whose retry decision is enqueued in the same transaction.
static APPLY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH v AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[],
                                  $5::int[], $6::jsonb[], $7::bool[])
                 WITH ORDINALITY AS v(v_id, v_from, v_to, v_at, v_duration, v_data, v_terminal, ord)),
         locked AS (
             SELECT id AS locked_id FROM calls WHERE id IN (SELECT v_id FROM v)
             ORDER BY id FOR UPDATE),
         updated AS (
             UPDATE calls SET
                 status = v.v_to,
                 ringing_at = CASE WHEN v.v_to = 'ringing' THEN coalesce(ringing_at, v.v_at) ELSE ringing_at END,
                 answered_at = CASE WHEN v.v_to = 'in-progress' THEN coalesce(answered_at, v.v_at) ELSE answered_at END,
                 ended_at = CASE WHEN v.v_terminal THEN coalesce(ended_at, v.v_at) ELSE ended_at END,
                 duration_seconds = CASE
                     WHEN v.v_to = 'completed' THEN coalesce(v.v_duration,
                         greatest(0, floor(extract(epoch FROM (v.v_at - answered_at))))::int)
                     ELSE duration_seconds END,
                 on_hold = on_hold AND NOT v.v_terminal,
                 muted = muted AND NOT v.v_terminal,
                 recording = recording AND NOT v.v_terminal,
                 version = version + 1,
                 updated_at = now()
             FROM v JOIN locked l ON l.locked_id = v.v_id
             WHERE calls.id = v.v_id AND calls.status = v.v_from
             RETURNING v.ord, v.v_from, v.v_at, v.v_data, v.v_terminal, {CALL_COLUMNS}),
         history AS (
             INSERT INTO call_events
                 (tenant_id, call_id, kind, from_status, to_status, data, source, occurred_at)
             SELECT tenant_id, id, 'status', v_from, status, v_data, 'carrier', v_at
             FROM updated ORDER BY ord)
         SELECT u.*, a.scheduled_call_id AS wakes
         FROM updated u
         LEFT JOIN scheduled_call_attempts a ON u.v_terminal AND a.call_id = u.id"
    )
});

async fn apply(db: PgPool, batch: Vec<ApplyCallStatus>) -> anyhow::Result<Vec<Option<Call>>> {
    let ids: Vec<Uuid> = batch.iter().map(|r| r.call_id).collect();
    let from: Vec<&str> = batch.iter().map(|r| r.from.as_str()).collect();
    let to: Vec<&str> = batch.iter().map(|r| r.to.as_str()).collect();
    let at: Vec<DateTime<Utc>> = batch.iter().map(|r| r.at).collect();
    let durations: Vec<Option<i32>> = batch.iter().map(|r| r.duration).collect();
    let data: Vec<serde_json::Value> = batch.iter().map(|r| r.data.clone()).collect();
    let terminal: Vec<bool> = batch.iter().map(|r| r.to.is_terminal()).collect();
    let mut tx = db.begin().await?;
    let applied: Vec<Applied> = sqlx::query_as(sqlx::AssertSqlSafe(APPLY_SQL.as_str()))
        .bind(&ids)
        .bind(&from)
        .bind(&to)
        .bind(&at)
        .bind(&durations)
        .bind(&data)
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
    tx.commit().await?;
    by_ordinality(batch.len(), applied.into_iter().map(|a| (a.ord, a.call)))
}

//! SMS delivery receipts in groups: the two statements a receipt needs (find
//! the message by its MessageSid; apply the new status if the message is
//! still where the decision was made) run once per batch of concurrent
//! receipts instead of once per receipt (see `switchboard_core::group_commit`).
//!
//! Applying stays conditional per row (`status = <the status the receipt was
//! decided from>`), so a receipt whose message moved on meanwhile, including
//! one that lost to another receipt for the same message in the same batch,
//! gets no row back and is decided again by its handler.

use std::sync::LazyLock;

use sqlx::PgPool;
use switchboard_core::group_commit::{Numbered, by_ordinality};
use switchboard_core::records::MESSAGE_COLUMNS;
use switchboard_core::sms::MessageStatus;
use uuid::Uuid;

use crate::messages::Message;

/// What a receipt needs to know about its message before deciding.
#[derive(Debug, sqlx::FromRow)]
pub struct ReceiptTarget {
    /// The message the receipt is about.
    pub message_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its status now.
    pub status: MessageStatus,
    /// The tenant's carrier auth token, to verify the receipt's signature.
    pub carrier_auth_token: String,
}

/// A decided, legal status change.
#[derive(Debug)]
pub struct ApplyReceipt {
    /// The message.
    pub message_id: Uuid,
    /// The status it is changed from (checked again when applied).
    pub from: MessageStatus,
    /// The status it is changed to.
    pub to: MessageStatus,
    /// The carrier's error code, for a failure.
    pub error_code: Option<String>,
}

/// SMS delivery receipts, looked up and applied in groups.
pub type Receipts = super::Reports<ReceiptTarget, ApplyReceipt, Message>;

/// Starts the lanes (inside a Tokio runtime).
pub fn start(db: &PgPool) -> Receipts {
    super::Reports::start(
        db,
        ["sms_receipt_lookup", "sms_receipt_apply"],
        lookup,
        apply,
    )
}

async fn lookup(db: PgPool, sids: Vec<String>) -> anyhow::Result<Vec<Option<ReceiptTarget>>> {
    let found: Vec<Numbered<ReceiptTarget>> = sqlx::query_as(
        "SELECT v.ord, m.id AS message_id, m.tenant_id, m.status, t.carrier_auth_token
         FROM unnest($1::text[]) WITH ORDINALITY AS v(sid, ord)
         JOIN messages m ON m.carrier_sid = v.sid
         JOIN tenants t ON t.id = m.tenant_id",
    )
    .bind(&sids)
    .fetch_all(&db)
    .await?;
    by_ordinality(sids.len(), found.into_iter().map(|f| (f.ord, f.row)))
}

/// One statement for a whole batch: the conditional updates, and the report
/// rollups moved along for messages whose hour was already rolled up (a
/// receipt can arrive after that: each status is a `messages_<status>`
/// column there, so every updated row moves one count from its old status's
/// column to its new one's). Rows are locked in id order (messages, then
/// rollup rows in key order) so that concurrent batches, here or in another
/// API instance, wait for each other instead of deadlocking.
static APPLY_SQL: LazyLock<String> = LazyLock::new(|| {
    // Per status: its count's change in this batch, and where that change goes.
    let (deltas, moves): (Vec<String>, Vec<String>) = MessageStatus::ALL
        .iter()
        .map(|s| {
            let s = s.as_str();
            (
                format!("sum((u.status = '{s}')::int - (u.previous = '{s}')::int) AS d_{s}"),
                format!("messages_{s} = r.messages_{s} + d.d_{s}"),
            )
        })
        .unzip();
    let deltas = deltas.join(",\n                    ");
    let moves = moves.join(",\n                 ");
    format!(
        "WITH v AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                 WITH ORDINALITY AS v(v_id, v_from, v_to, v_error, ord)),
         locked AS (
             SELECT id AS locked_id FROM messages WHERE id IN (SELECT v_id FROM v)
             ORDER BY id FOR UPDATE),
         updated AS (
             UPDATE messages
             SET status = v.v_to,
                 sent_at = CASE WHEN v.v_to IN ('{sent}', '{delivered}', '{undelivered}')
                                THEN COALESCE(sent_at, now()) ELSE sent_at END,
                 delivered_at = CASE WHEN v.v_to = '{delivered}' THEN now() ELSE delivered_at END,
                 error_code = COALESCE(v.v_error, error_code),
                 version = version + 1,
                 updated_at = now()
             FROM v JOIN locked l ON l.locked_id = v.v_id
             WHERE messages.id = v.v_id AND messages.status = v.v_from
             RETURNING v.ord, v.v_from AS previous, {MESSAGE_COLUMNS}),
         deltas AS (
             SELECT u.tenant_id, date_trunc('hour', u.created_at, 'UTC') AS bucket,
                    {deltas}
             FROM updated u
             GROUP BY 1, 2),
         locked_rollups AS (
             SELECT r.tenant_id, r.bucket
             FROM report_rollups_hourly r
             JOIN deltas d ON d.tenant_id = r.tenant_id AND d.bucket = r.bucket
             WHERE r.bucket < (SELECT rolled_through FROM report_rollup_state s
                               WHERE s.tenant_id = r.tenant_id)
             ORDER BY r.tenant_id, r.bucket
             FOR UPDATE OF r),
         rolled AS (
             UPDATE report_rollups_hourly r
             SET {moves}
             FROM deltas d
             JOIN locked_rollups l ON l.tenant_id = d.tenant_id AND l.bucket = d.bucket
             WHERE r.tenant_id = d.tenant_id AND r.bucket = d.bucket)
         SELECT * FROM updated",
        sent = MessageStatus::Sent,
        delivered = MessageStatus::Delivered,
        undelivered = MessageStatus::Undelivered,
    )
});

async fn apply(db: PgPool, batch: Vec<ApplyReceipt>) -> anyhow::Result<Vec<Option<Message>>> {
    let ids: Vec<Uuid> = batch.iter().map(|r| r.message_id).collect();
    let from: Vec<&str> = batch.iter().map(|r| r.from.as_str()).collect();
    let to: Vec<&str> = batch.iter().map(|r| r.to.as_str()).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|r| r.error_code.as_deref()).collect();
    let applied: Vec<Numbered<Message>> = sqlx::query_as(sqlx::AssertSqlSafe(APPLY_SQL.as_str()))
        .bind(&ids)
        .bind(&from)
        .bind(&to)
        .bind(&errors)
        .fetch_all(&db)
        .await?;
    by_ordinality(batch.len(), applied.into_iter().map(|a| (a.ord, a.row)))
}

//! `sms.send`: hands one queued message to the carrier, exactly once.
//!
//! One statement (so one transaction and one round trip) locks the message
//! and, only if it is still `queued`, re-checks the opt-out list (a STOP may
//! have arrived since it was accepted), moves it to `sending`, records its
//! carrier SID and — with the simulated carrier — enqueues the simulator's
//! `carrier.sim` job. A retried or duplicated job finds the message no
//! longer `queued` and does nothing, so the carrier SID is recorded once and
//! the message is handed over once. The carrier (the simulator, or a real
//! one in `external` mode) reports `sent` and the final status through the
//! signed SMS status webhook.
//!
//! A campaign puts thousands of these in the queue at once, and each is one
//! commit: the hand-overs running at the same moment share one statement
//! (a [`GroupCommit`] lane), each job answered after that statement
//! committed. Rows are locked in id order, so concurrent batches (here or
//! in another worker) wait for each other instead of deadlocking.

use std::sync::{Arc, LazyLock};

use serde_json::Value;
use switchboard_core::{
    calls::Direction,
    events::EventType,
    group_commit::{GroupCommit, Numbered, by_ordinality},
    jobs::{CarrierSim, Job, SmsSend},
    lifecycle::Transition,
    records::MESSAGE_JSON,
    settings::CarrierMode,
    sms::{MessageStatus, message_transition},
};
use uuid::Uuid;

use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// Twilio's error code for a message to a number that opted out.
pub const OPTED_OUT_ERROR: &str = "21610";

/// Batches of hand-overs in the database at once.
const LANES: usize = 4;
/// The largest batch (bounds one statement's size and lock set).
const MAX_BATCH: usize = 256;

/// The statuses a message is handed over from: those from which both of a
/// hand-over's outcomes — `sending`, or `failed` when the recipient opted
/// out — are steps the message lifecycle allows. That is only `queued`: a
/// retried or duplicated job finds the message past it and does nothing.
static HANDED_OVER_FROM: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    MessageStatus::ALL
        .into_iter()
        .filter(|&from| {
            [MessageStatus::Sending, MessageStatus::Failed]
                .into_iter()
                .all(|to| message_transition(from, to) == Transition::Apply)
        })
        .map(MessageStatus::as_str)
        .collect()
});

/// What one hand-over found: the message's status before, and — when it was
/// still `queued` — its new status and record.
#[derive(Debug, sqlx::FromRow)]
pub struct HandOver {
    before: String,
    status: Option<String>,
    message: Option<Value>,
}

/// The `sms.send` statement's lanes (one per worker process).
pub type HandOvers = GroupCommit<SmsSend, Option<HandOver>>;

/// Starts the lanes (inside a Tokio runtime).
pub fn hand_overs(db: &sqlx::PgPool, simulated: bool) -> HandOvers {
    let db = db.clone();
    GroupCommit::spawn("sms_send", LANES, MAX_BATCH, move |batch| {
        hand_over(db.clone(), simulated, batch)
    })
}

/// `current` locks the batch's messages (in id order) and reads their
/// opt-outs; `updated` applies each hand-over only if its message is still
/// queued; `handed` gives them to the simulated network in the same
/// transaction, with what the network is told (`HandedOver`). Columns of
/// `current` are prefixed so the message JSON's names stay the row's.
static HAND_OVER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH v AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[])
                 WITH ORDINALITY AS v(v_tenant, v_id, v_sid, v_network, v_ord)),
         current AS (
             SELECT v.v_ord AS c_ord, m.id AS c_id, m.status AS c_status,
                    v.v_sid AS c_sid, v.v_network AS c_network,
                    EXISTS (SELECT 1 FROM opt_outs o
                            WHERE o.tenant_id = m.tenant_id AND o.phone = m.to_number)
                        AS c_opted_out
             FROM v
             JOIN messages m ON m.tenant_id = v.v_tenant AND m.id = v.v_id
                            AND m.direction = '{outbound}'
             ORDER BY m.id
             FOR UPDATE OF m),
         updated AS (
             UPDATE messages
             SET status = CASE WHEN c_opted_out THEN $8 ELSE $9 END,
                 error_code = CASE WHEN c_opted_out THEN $5 END,
                 carrier_sid = CASE WHEN c_opted_out THEN NULL ELSE c_sid END,
                 version = version + 1, updated_at = now()
             FROM current
             WHERE id = c_id AND c_status = ANY($10)
             RETURNING c_ord AS u_ord, id AS u_id, status AS u_status,
                       c_network || jsonb_build_object('handed_over', jsonb_build_object(
                           'sid', carrier_sid, 'from', from_number, 'to', to_number,
                           'at', updated_at)) AS u_network,
                       {MESSAGE_JSON} AS u_message),
         handed AS (
             INSERT INTO jobs (queue, subject, payload)
             SELECT $6, u_id, u_network FROM updated WHERE u_status = $9 AND $7)
         SELECT c_ord AS ord, c_status AS before, u_status AS status, u_message AS message
         FROM current LEFT JOIN updated ON u_ord = c_ord",
        outbound = Direction::Outbound,
    )
});

async fn hand_over(
    db: sqlx::PgPool,
    simulated: bool,
    batch: Vec<SmsSend>,
) -> anyhow::Result<Vec<Option<HandOver>>> {
    let tenants: Vec<Uuid> = batch.iter().map(|job| job.tenant_id).collect();
    let ids: Vec<Uuid> = batch.iter().map(|job| job.message_id).collect();
    let sids: Vec<String> = ids.iter().map(|id| message_sid(*id)).collect();
    let network: Vec<Value> = batch
        .iter()
        .map(|job| {
            serde_json::to_value(CarrierSim::OutboundSms {
                tenant_id: job.tenant_id,
                message_id: job.message_id,
                handed_over: None,
            })
        })
        .collect::<Result<_, _>>()?;
    let found: Vec<Numbered<HandOver>> =
        sqlx::query_as(sqlx::AssertSqlSafe(HAND_OVER_SQL.as_str()))
            .bind(&tenants)
            .bind(&ids)
            .bind(&sids)
            .bind(&network)
            .bind(OPTED_OUT_ERROR)
            .bind(CarrierSim::QUEUE)
            .bind(simulated)
            .bind(MessageStatus::Failed.as_str())
            .bind(MessageStatus::Sending.as_str())
            .bind(&*HANDED_OVER_FROM)
            .fetch_all(&db)
            .await?;
    by_ordinality(batch.len(), found.into_iter().map(|f| (f.ord, f.row)))
}

impl Handler for SmsSend {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let outcome = ctx
            .hand_overs
            .call(self.clone())
            .await
            .map_err(JobError::transient)?;
        let Some(HandOver {
            before,
            status,
            message,
        }) = outcome
        else {
            // Deleted with its tenant, or never committed: nothing to send.
            return Ok(());
        };
        let (Some(status), Some(message)) = (status, message) else {
            metrics::counter!("sms_send_skipped_total", "status" => before).increment(1);
            return Ok(());
        };
        if status == MessageStatus::Sending.as_str()
            && ctx.settings.carrier == CarrierMode::Simulated
        {
            metrics::counter!("jobs_enqueued_total", "queue" => CarrierSim::QUEUE).increment(1);
            ctx.queues.wake(CarrierSim::QUEUE);
        }
        metrics::counter!("sms_send_total", "result" => status).increment(1);
        ctx.events
            .publish_new(self.tenant_id, EventType::MessageStatus, &message)
            .await;
        Ok(())
    }
}

/// The carrier SID for a message: derived from its id, so however often the
/// hand-over is attempted the carrier sees one message.
pub fn message_sid(message_id: uuid::Uuid) -> String {
    format!("SM{}", message_id.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queued_messages_are_handed_over() {
        assert_eq!(*HANDED_OVER_FROM, ["queued"]);
    }
}

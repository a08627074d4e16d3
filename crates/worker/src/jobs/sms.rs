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

use std::sync::Arc;

use switchboard_core::{
    events::{Envelope, EventType},
    jobs::{CarrierSim, Job, SmsSend},
    settings::CarrierMode,
};

use super::MESSAGE_JSON;
use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// Twilio's error code for a message to a number that opted out.
pub const OPTED_OUT_ERROR: &str = "21610";

impl Handler for SmsSend {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let simulated = ctx.settings.carrier == CarrierMode::Simulated;
        let network = serde_json::to_value(CarrierSim::OutboundSms {
            tenant_id: self.tenant_id,
            message_id: self.message_id,
        })
        .map_err(JobError::permanent)?;
        // `current` locks the message and reads its opt-out; `updated`
        // applies the hand-over only if it is still queued; `handed` gives
        // it to the simulated network in the same transaction. Columns of
        // `current` are prefixed so the message JSON's names stay the row's.
        let outcome: Option<(String, Option<String>, Option<serde_json::Value>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "WITH current AS (
                     SELECT m.id AS c_id, m.status AS c_status,
                            EXISTS (SELECT 1 FROM opt_outs o
                                    WHERE o.tenant_id = m.tenant_id AND o.phone = m.to_number)
                                AS c_opted_out
                     FROM messages m
                     WHERE m.tenant_id = $1 AND m.id = $2 AND m.direction = 'outbound'
                     FOR UPDATE OF m
                 ),
                 updated AS (
                     UPDATE messages
                     SET status = CASE WHEN c_opted_out THEN 'failed' ELSE 'sending' END,
                         error_code = CASE WHEN c_opted_out THEN $3 END,
                         carrier_sid = CASE WHEN c_opted_out THEN NULL ELSE $4 END,
                         version = version + 1, updated_at = now()
                     FROM current
                     WHERE tenant_id = $1 AND id = c_id AND c_status = 'queued'
                     RETURNING status, {MESSAGE_JSON} AS message
                 ),
                 handed AS (
                     INSERT INTO jobs (queue, subject, payload)
                     SELECT $5, $2, $6 FROM updated WHERE status = 'sending' AND $7
                 )
                 SELECT c_status, updated.status, updated.message
                 FROM current LEFT JOIN updated ON true"
            )))
            .bind(self.tenant_id)
            .bind(self.message_id)
            .bind(OPTED_OUT_ERROR)
            .bind(message_sid(self.message_id))
            .bind(CarrierSim::QUEUE)
            .bind(network)
            .bind(simulated)
            .fetch_optional(&ctx.db)
            .await?;
        let Some((before, status, message)) = outcome else {
            // Deleted with its tenant, or never committed: nothing to send.
            return Ok(());
        };
        let (Some(status), Some(message)) = (status, message) else {
            metrics::counter!("sms_send_skipped_total", "status" => before).increment(1);
            return Ok(());
        };
        if status == "sending" && simulated {
            metrics::counter!("jobs_enqueued_total", "queue" => CarrierSim::QUEUE).increment(1);
            ctx.queues.wake(CarrierSim::QUEUE);
        }
        metrics::counter!("sms_send_total", "result" => status).increment(1);
        ctx.events
            .publish_after_commit(Envelope::new(
                self.tenant_id,
                EventType::MessageStatus,
                &message,
            ))
            .await;
        Ok(())
    }
}

/// The carrier SID for a message: derived from its id, so however often the
/// hand-over is attempted the carrier sees one message.
pub fn message_sid(message_id: uuid::Uuid) -> String {
    format!("SM{}", message_id.simple())
}

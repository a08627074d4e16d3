//! `sms.send`: hands one queued message to the carrier, exactly once.
//!
//! One transaction locks the message and, only if it is still `queued`,
//! re-checks the opt-out list (a STOP may have arrived since it was
//! accepted), then moves it to `sending` and records its carrier SID. A
//! retried or duplicated job finds it no longer `queued` and does nothing,
//! so the carrier SID is recorded once and the message is handed over once.
//! The carrier (the simulator, or a real one in `external` mode) reports
//! `sent` and the final status through the signed SMS status webhook.

use std::sync::Arc;

use switchboard_core::{
    events::{Envelope, EventType},
    jobs::{self, CarrierSim, SmsSend},
    settings::CarrierMode,
};

use super::MESSAGE_JSON;
use crate::{context::Ctx, error::JobResult, runner::Handler};

/// Twilio's error code for a message to a number that opted out.
pub const OPTED_OUT_ERROR: &str = "21610";

impl Handler for SmsSend {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let mut tx = ctx.db.begin().await?;
        // The message, locked, and whether its number opted out since it
        // was accepted: one round trip.
        let current: Option<(String, bool)> = sqlx::query_as(
            "SELECT m.status,
                    EXISTS (SELECT 1 FROM opt_outs o
                            WHERE o.tenant_id = m.tenant_id AND o.phone = m.to_number)
             FROM messages m
             WHERE m.tenant_id = $1 AND m.id = $2 AND m.direction = 'outbound'
             FOR UPDATE OF m",
        )
        .bind(self.tenant_id)
        .bind(self.message_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, opted_out)) = current else {
            // Deleted with its tenant, or never committed: nothing to send.
            return Ok(());
        };
        if status != "queued" {
            metrics::counter!("sms_send_skipped_total", "status" => status).increment(1);
            return Ok(());
        }
        let (status, error_code, sid) = if opted_out {
            ("failed", Some(OPTED_OUT_ERROR), None)
        } else {
            ("sending", None, Some(message_sid(self.message_id)))
        };
        let message: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE messages
             SET status = $3, error_code = $4, carrier_sid = $5,
                 version = version + 1, updated_at = now()
             WHERE tenant_id = $1 AND id = $2
             RETURNING {MESSAGE_JSON}"
        )))
        .bind(self.tenant_id)
        .bind(self.message_id)
        .bind(status)
        .bind(error_code)
        .bind(&sid)
        .fetch_one(&mut *tx)
        .await?;
        if sid.is_some() && ctx.settings.carrier == CarrierMode::Simulated {
            // The simulated network gets the message with the hand-over.
            jobs::enqueue(
                &mut *tx,
                &CarrierSim::OutboundSms {
                    tenant_id: self.tenant_id,
                    message_id: self.message_id,
                },
            )
            .await?;
        }
        tx.commit().await?;
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

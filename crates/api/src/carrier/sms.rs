//! SMS webhooks: delivery receipts and inbound messages (opt-out keywords).
//!
//! Receipts move a message along `message_transition`: a legal step is
//! applied in one transaction holding the message's row lock (so concurrent
//! receipts serialise and `version` stays gapless); duplicates, late
//! receipts and anything after a final status are acknowledged with 200 and
//! change nothing, because carriers retry every non-2xx answer.
//!
//! Inbound messages are stored `received` (once per MessageSid: a retried
//! delivery creates nothing) and their body is checked for the carrier
//! keywords: STOP and its synonyms opt the sender out of the tenant's
//! messages, START/UNSTOP/YES opt back in, HELP/INFO get the tenant's help
//! text. The reply comes back in the answer, also as TwiML.

use axum::extract::State;
use serde::Deserialize;
use switchboard_core::calls::Direction;
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use switchboard_core::lifecycle::{AckResult, Transition};
use switchboard_core::phone::E164;
use switchboard_core::records::MESSAGE_COLUMNS;
use switchboard_core::sms::{MessageStatus, message_transition, segment};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::receipts::{ApplyReceipt, ReceiptTarget};
use super::{AckAction, CarrierForm, Decision, Settled, WebhookAck, tenant_for_number, xml_escape};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::messages::{MAX_BODY_CHARS, Message};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sms_status))
        .routes(routes!(sms_incoming))
}

/// The form a carrier posts with a delivery receipt (documentation only:
/// the handler reads the form itself, to verify its signature first).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct SmsStatusForm {
    /// The message's carrier id.
    #[schema(example = "SM0123456789abcdef0123456789abcdef")]
    message_sid: String,
    /// `queued`, `accepted`, `sending`, `sent`, `delivered`, `undelivered` or `failed`.
    #[schema(example = "delivered")]
    message_status: String,
    /// The carrier's error code, for `failed` and `undelivered`.
    error_code: Option<String>,
}

/// The form a carrier posts for an inbound message (documentation only).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct SmsIncomingForm {
    /// The carrier's id of the message.
    #[schema(example = "SM0123456789abcdef0123456789abcdef")]
    message_sid: String,
    /// The sender, E.164.
    #[schema(example = "+12025550123")]
    from: String,
    /// The tenant's number, E.164.
    #[schema(example = "+12025550100")]
    to: String,
    /// The text (keywords such as STOP, START and HELP are acted on).
    #[schema(example = "STOP")]
    body: Option<String>,
}

/// A delivery receipt for an outbound message.
#[utoipa::path(post, path = "/webhooks/carrier/sms/status", tag = "webhooks",
    request_body(content = SmsStatusForm, content_type = "application/x-www-form-urlencoded"),
    params(CarrierForm),
    responses(
        (status = 200, body = WebhookAck, description = "`applied`, or `duplicate` / `stale` / `already_ended` / `ignored` with nothing changed"),
        (status = 400, body = ErrorBody, description = "A parameter is missing or MessageStatus is unknown"),
        (status = 404, body = ErrorBody, description = "No message has this MessageSid"),
        CarrierForm,
    ))]
pub async fn sms_status(
    State(state): State<AppState>,
    form: CarrierForm,
) -> ApiResult<Json<WebhookAck>> {
    let sid = form.require("MessageSid")?;
    // Verified and parsed once, in the first round.
    let mut status: Option<MessageStatus> = None;
    let settled = state.receipts.settle(sid, "message", |target| {
        let ReceiptTarget {
            message_id,
            tenant_id,
            status: current,
            carrier_auth_token,
        } = target;
        let wanted = match status {
            Some(wanted) => wanted,
            None => {
                form.verify(&carrier_auth_token)?;
                let wanted: MessageStatus =
                    form.require("MessageStatus")?.parse().map_err(|()| {
                        ApiError::bad_request(
                            "invalid_parameter",
                            "MessageStatus is not a known status",
                        )
                        .with_field("MessageStatus")
                    })?;
                status = Some(wanted);
                wanted
            }
        };
        let transition = message_transition(current, wanted);
        if transition == Transition::Apply {
            let error_code = form
                .get("ErrorCode")
                .map(|c| c.chars().take(64).collect::<String>());
            return Ok(Decision::Apply(ApplyReceipt {
                message_id,
                from: current,
                to: wanted,
                error_code,
            }));
        }
        metrics::counter!("message_transitions_total", "to" => wanted.as_str(), "result" => transition.as_str())
            .increment(1);
        if transition == Transition::Illegal {
            tracing::warn!(%tenant_id, %message_id, from = %current, to = %wanted, "illegal message receipt ignored");
        }
        Ok(Decision::Answer(WebhookAck {
            message_id: Some(message_id),
            ..WebhookAck::result(transition.result())
        }))
    });
    let message = match settled.await? {
        Settled::Applied(message) => message,
        Settled::Answered(ack) => return Ok(Json(ack)),
    };
    // `status` holds the status applied (the settle loop set it).
    let to = status.map_or("unknown", MessageStatus::as_str);
    metrics::counter!("message_transitions_total", "to" => to, "result" => Transition::Apply.as_str())
        .increment(1);
    state
        .events
        .publish_new(message.tenant_id, EventType::MessageStatus, &message)
        .await;
    Ok(Json(WebhookAck {
        message_id: Some(message.id),
        ..WebhookAck::result(AckResult::Applied)
    }))
}

/// What an inbound message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyword {
    /// Stop all messages; carries the keyword as normalised (`STOP`).
    OptOut(String),
    OptIn,
    Help,
}

const OPT_OUT_KEYWORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN_KEYWORDS: [&str; 3] = ["START", "UNSTOP", "YES"];
const HELP_KEYWORDS: [&str; 2] = ["HELP", "INFO"];

/// The keyword a whole message body is, as carriers match them: case and
/// whitespace do not matter (`stop`, ` Stop `, `STOP ALL`, `opt out`), nor
/// does trailing punctuation (`Stop!`); a keyword inside a sentence is not one.
pub fn parse_keyword(body: &str) -> Option<Keyword> {
    let word: String = body
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect();
    let word = word.as_str();
    if OPT_OUT_KEYWORDS.contains(&word) {
        Some(Keyword::OptOut(word.to_string()))
    } else if OPT_IN_KEYWORDS.contains(&word) {
        Some(Keyword::OptIn)
    } else if HELP_KEYWORDS.contains(&word) {
        Some(Keyword::Help)
    } else {
        None
    }
}

/// The action name and reply text for a keyword.
fn reply_for(
    keyword: Option<&Keyword>,
    tenant_name: &str,
    help_text: &str,
) -> (AckAction, Option<String>) {
    match keyword {
        None => (AckAction::None, None),
        Some(Keyword::OptOut(_)) => (
            AckAction::OptedOut,
            Some(format!(
                "You have been unsubscribed from {tenant_name} messages and will receive no more. Reply START to resubscribe."
            )),
        ),
        Some(Keyword::OptIn) => (
            AckAction::OptedIn,
            Some(format!(
                "You have been resubscribed to {tenant_name} messages. Reply STOP to unsubscribe."
            )),
        ),
        Some(Keyword::Help) => (AckAction::Help, Some(help_text.to_string())),
    }
}

/// An inbound message.
#[utoipa::path(post, path = "/webhooks/carrier/sms/incoming", tag = "webhooks",
    request_body(content = SmsIncomingForm, content_type = "application/x-www-form-urlencoded"),
    params(CarrierForm),
    responses(
        (status = 200, body = WebhookAck, description = "`created` (or `duplicate` for a retried delivery) with the keyword `action` and the `reply`/`twiml` to send back"),
        (status = 400, body = ErrorBody, description = "A parameter is missing or malformed"),
        (status = 404, body = ErrorBody, description = "No tenant owns the To number"),
        (status = 409, body = ErrorBody, description = "The MessageSid belongs to another tenant's message"),
        CarrierForm,
    ))]
pub async fn sms_incoming(
    State(state): State<AppState>,
    form: CarrierForm,
) -> ApiResult<Json<WebhookAck>> {
    let sid = form.require("MessageSid")?;
    let from = form.require("From")?;
    let to = form.require("To")?;
    let body = form.get("Body").unwrap_or_default();
    let (tenant_id, token) = tenant_for_number(&state, to).await?;
    form.verify(&token)?;
    let from = E164::parse_strict(from).map_err(|_| {
        ApiError::bad_request("invalid_parameter", "From is not an E.164 phone number")
            .with_field("From")
    })?;
    if sid.chars().count() > 64 {
        return Err(
            ApiError::bad_request("invalid_parameter", "MessageSid is too long")
                .with_field("MessageSid"),
        );
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("Body is longer than {MAX_BODY_CHARS} characters"),
        )
        .with_field("Body"));
    }
    let keyword = parse_keyword(body);

    let mut tx = state.db.begin().await?;
    let (tenant_name, help_text): (String, String) =
        sqlx::query_as("SELECT name, help_text FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    let (action, reply) = reply_for(keyword.as_ref(), &tenant_name, &help_text);
    let ack = |result: AckResult, message: &Message| WebhookAck {
        message_id: Some(message.id),
        customer_id: message.customer_id,
        action: Some(action),
        twiml: reply
            .as_deref()
            .map(|r| format!("<Response><Message>{}</Message></Response>", xml_escape(r))),
        reply: reply.clone(),
        ..WebhookAck::result(result)
    };

    let customer_id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND phone = $2")
            .bind(tenant_id)
            .bind(from.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let segmentation = segment(body);
    // ON CONFLICT waits for a concurrent delivery of the same MessageSid to
    // commit, then does nothing: exactly one of them creates the message.
    let created: Option<Message> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status,
             segments, encoding, carrier_sid, customer_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (carrier_sid) DO NOTHING
         RETURNING {MESSAGE_COLUMNS}"
    )))
    .bind(new_id())
    .bind(tenant_id)
    .bind(Direction::Inbound)
    .bind(from.as_str())
    .bind(to)
    .bind(body)
    .bind(MessageStatus::Received)
    .bind(i16::try_from(segmentation.segments).unwrap_or(i16::MAX))
    .bind(segmentation.encoding)
    .bind(sid)
    .bind(customer_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(message) = created else {
        tx.rollback().await?;
        let existing: Message = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE carrier_sid = $1"
        )))
        .bind(sid)
        .fetch_one(&state.db)
        .await?;
        if existing.tenant_id != tenant_id || existing.direction != Direction::Inbound {
            return Err(ApiError::conflict(
                "message_sid_taken",
                "this MessageSid belongs to another message",
            )
            .with_field("MessageSid"));
        }
        return Ok(Json(ack(AckResult::Duplicate, &existing)));
    };
    match &keyword {
        Some(Keyword::OptOut(word)) => {
            sqlx::query(
                "INSERT INTO opt_outs (tenant_id, phone, keyword) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant_id, phone) DO UPDATE SET keyword = EXCLUDED.keyword",
            )
            .bind(tenant_id)
            .bind(from.as_str())
            .bind(word)
            .execute(&mut *tx)
            .await?;
        }
        Some(Keyword::OptIn) => {
            sqlx::query("DELETE FROM opt_outs WHERE tenant_id = $1 AND phone = $2")
                .bind(tenant_id)
                .bind(from.as_str())
                .execute(&mut *tx)
                .await?;
        }
        Some(Keyword::Help) | None => {}
    }
    tx.commit().await?;

    metrics::counter!("messages_created_total", "direction" => "inbound").increment(1);
    if let Some(keyword) = &keyword {
        metrics::counter!("sms_keywords_total", "action" => action.as_str()).increment(1);
        tracing::info!(%tenant_id, message_id = %message.id, ?keyword, "sms keyword handled");
    }
    state
        .events
        .publish_new(tenant_id, EventType::MessageReceived, &message)
        .await;
    Ok(Json(ack(AckResult::Created, &message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_out_keywords_ignore_case_whitespace_and_trailing_punctuation() {
        for body in [
            "STOP",
            "stop",
            " Stop ",
            "\tsToP\n",
            "Stop!",
            "stop.",
            "STOP ALL",
            "stopall",
            "Unsubscribe",
            "cancel",
            "END",
            "quit",
            "revoke",
            "opt out",
            "OptOut!!",
        ] {
            assert!(
                matches!(parse_keyword(body), Some(Keyword::OptOut(_))),
                "{body:?}"
            );
        }
        assert_eq!(
            parse_keyword(" stop all "),
            Some(Keyword::OptOut("STOPALL".into()))
        );
    }

    #[test]
    fn opt_in_and_help_keywords_are_recognised() {
        for body in ["START", "start", " Unstop ", "yes!", "un stop"] {
            assert_eq!(parse_keyword(body), Some(Keyword::OptIn), "{body:?}");
        }
        for body in ["HELP", "help?", " Info "] {
            assert_eq!(parse_keyword(body), Some(Keyword::Help), "{body:?}");
        }
    }

    #[test]
    fn keywords_inside_sentences_are_plain_messages() {
        for body in [
            "",
            "please stop",
            "stop it",
            "Don't stop me now",
            "helpful",
            "STOPP",
            "?STOP",
            "starting soon",
        ] {
            assert_eq!(parse_keyword(body), None, "{body:?}");
        }
    }

    #[test]
    fn keyword_replies_match_their_action() {
        assert_eq!(reply_for(None, "Acme", "help"), (AckAction::None, None));
        let (action, reply) = reply_for(Some(&Keyword::OptOut("STOP".into())), "Acme", "help");
        assert_eq!(action, AckAction::OptedOut);
        assert!(reply.unwrap().contains("START"));
        assert_eq!(
            reply_for(Some(&Keyword::Help), "Acme", "Call 555"),
            (AckAction::Help, Some("Call 555".to_string()))
        );
    }
}

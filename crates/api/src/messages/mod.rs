//! Messages (SMS): sending (a body or a rendered template), listing with
//! full-text search over bodies, and reading one message.
//!
//! A send is validated completely — E.164 recipient, opt-out, template and
//! its variables, length — before anything is written; then the message is
//! inserted `queued` in one transaction with its idempotency record, and an
//! `sms.send` job is pushed after commit. Delivery receipts and inbound
//! messages arrive through the carrier webhooks (`carrier::sms`).

mod handlers;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::calls::Direction;
use switchboard_core::records::MESSAGE_COLUMNS;
use switchboard_core::sms::{Encoding, MessageStatus};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::by_id::Table;
use crate::error::ApiError;
use crate::state::AppState;

pub use handlers::*;

/// The routes of messages, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_messages, handlers::send_message))
        .routes(routes!(handlers::get_message))
}

/// Longest body a message may have (what carriers concatenate at most).
pub const MAX_BODY_CHARS: usize = 1600;

/// Outbound messages by delivery status (an inbound message is `received`,
/// none of these). A campaign's progress and each report bucket carry it.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct MessageCounts {
    /// Messages still `queued`.
    pub queued: i64,
    /// Messages `sending`.
    pub sending: i64,
    /// Messages `sent`.
    pub sent: i64,
    /// Messages `delivered`.
    pub delivered: i64,
    /// Messages `undelivered`.
    pub undelivered: i64,
    /// Messages `failed`.
    pub failed: i64,
}

impl MessageCounts {
    /// Counts `count` more messages in `status`; `received` (inbound) counts
    /// nowhere.
    pub fn add(&mut self, status: MessageStatus, count: i64) {
        let slot = match status {
            MessageStatus::Queued => &mut self.queued,
            MessageStatus::Sending => &mut self.sending,
            MessageStatus::Sent => &mut self.sent,
            MessageStatus::Delivered => &mut self.delivered,
            MessageStatus::Undelivered => &mut self.undelivered,
            MessageStatus::Failed => &mut self.failed,
            MessageStatus::Received => return,
        };
        *slot += count;
    }
}

impl From<&switchboard_core::reports::MessageCounts> for MessageCounts {
    fn from(m: &switchboard_core::reports::MessageCounts) -> Self {
        Self {
            queued: m.queued,
            sending: m.sending,
            sent: m.sent,
            delivered: m.delivered,
            undelivered: m.undelivered,
            failed: m.failed,
        }
    }
}

/// Where messages are kept.
static MESSAGES: Table<Message> = Table::new("messages", &MESSAGE_COLUMNS, "message");

// Read with `records::MESSAGE_COLUMNS`; events carry the same record
// (`records::MESSAGE_JSON`), and a test below keeps the fields in step.
/// An SMS, outbound or inbound.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Message {
    /// The message's id.
    pub id: Uuid,
    /// The tenant the message belongs to.
    pub tenant_id: Uuid,
    /// Which way the message goes.
    pub direction: Direction,
    /// E.164.
    #[schema(example = "+12025550100")]
    pub from: String,
    /// E.164.
    #[schema(example = "+12025550123")]
    pub to: String,
    /// The text.
    pub body: String,
    /// Where the message is in its lifecycle (`received` for inbound ones).
    pub status: MessageStatus,
    /// Billable SMS segments.
    pub segments: i16,
    /// The encoding the body is sent in, which sets its segment size.
    pub encoding: Encoding,
    /// The carrier's MessageSid.
    #[schema(example = "SM0123456789abcdef0123456789abcdef")]
    pub carrier_sid: Option<String>,
    /// The carrier's error code for failed or undelivered messages.
    pub error_code: Option<String>,
    /// The customer on the other end, when known.
    pub customer_id: Option<Uuid>,
    /// The campaign that sent it, when one did.
    pub campaign_id: Option<Uuid>,
    /// The template it was rendered from, when one was used.
    pub template_id: Option<Uuid>,
    /// The agent who sent it, when an agent did.
    pub agent_id: Option<Uuid>,
    /// When it was accepted (outbound) or received (inbound).
    pub created_at: DateTime<Utc>,
    /// When the carrier reported it `sent`.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the carrier reported it `delivered`.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Gapless change counter (1 = created): orders this message's events.
    pub version: i32,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A message to send: either `body`, or `template_id` (+ `variables`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The recipient, in any common format; stored as E.164.
    #[schema(example = "(202) 555-0123")]
    pub to: String,
    /// The text, 1 to 1600 characters. Exclusive with `template_id`.
    #[schema(
        example = "Your appointment is confirmed for Monday 10:00.",
        min_length = 1,
        max_length = 1600,
        pattern = "\\S"
    )]
    pub body: Option<String>,
    /// A template of the tenant, filled from the customer and `variables`.
    pub template_id: Option<Uuid>,
    /// Values for the template's placeholders; they win over the customer's.
    pub variables: Option<BTreeMap<String, String>>,
    /// The customer the message is about; by default the customer whose
    /// phone is `to`, if any.
    pub customer_id: Option<Uuid>,
}

/// The query string of `GET /v1/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesQuery {
    /// Full-text search over bodies (all words must appear).
    pub q: Option<String>,
    /// Only messages in this status.
    pub status: Option<MessageStatus>,
    /// Only messages with this customer.
    pub customer_id: Option<Uuid>,
    /// Only messages going this way.
    pub direction: Option<Direction>,
}

/// Checks a message body's length (in characters, as the database does).
pub(crate) fn validate_body(body: &str, field: &str) -> Result<(), ApiError> {
    if body.trim().is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::validation(
            field.to_string(),
            format!("the message body must be 1 to {MAX_BODY_CHARS} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_the_fields_of_the_shared_record() {
        crate::openapi::assert_same_fields::<Message>(switchboard_core::records::MESSAGE);
    }

    #[test]
    fn bodies_are_counted_in_characters() {
        assert!(validate_body(&"€".repeat(1600), "body").is_ok());
        assert!(validate_body(&"a".repeat(1601), "body").is_err());
        assert!(validate_body("   ", "body").is_err());
    }
}

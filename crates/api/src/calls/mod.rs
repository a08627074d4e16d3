//! Calls: originate, list, history, agent controls, and the one place a
//! call's status changes ([`lifecycle`]), shared by the controls and the
//! carrier's status webhooks.

mod handlers;
pub(crate) mod lifecycle;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::calls::{CallEventKind, CallStatus, Direction, EventSource, Route};
use switchboard_core::records::CALL_COLUMNS;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::by_id::Table;
use crate::state::AppState;

pub use handlers::*;

/// The routes of calls and their controls, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_calls, handlers::originate_call))
        .routes(routes!(handlers::get_call))
        .routes(routes!(handlers::call_events))
        .routes(routes!(handlers::control_call))
}

// Read with `records::CALL_COLUMNS`; events carry the same record
// (`records::CALL_JSON`), and a test below keeps the fields in step.
/// A call, as every endpoint and event shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Call {
    /// The call's id.
    pub id: Uuid,
    /// The tenant the call belongs to.
    pub tenant_id: Uuid,
    /// Which way the call goes.
    pub direction: Direction,
    /// E.164.
    pub from: String,
    /// E.164.
    pub to: String,
    /// Where the call is in its lifecycle.
    pub status: CallStatus,
    /// The carrier's CallSid.
    pub carrier_sid: Option<String>,
    /// The customer on the other end, when known.
    pub customer_id: Option<Uuid>,
    /// The agent on the call, when one is.
    pub agent_id: Option<Uuid>,
    /// Whether the agent put the call on hold.
    pub on_hold: bool,
    /// Whether the agent muted the call.
    pub muted: bool,
    /// Whether the call is being recorded.
    pub recording: bool,
    /// Where the call was transferred (an agent id or a number).
    pub transferred_to: Option<String>,
    /// Inbound calls: where the call was sent when it arrived.
    pub routed_to: Option<Route>,
    /// When the call was created (queued or received).
    pub created_at: DateTime<Utc>,
    /// When it started ringing.
    pub ringing_at: Option<DateTime<Utc>>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Talk time: answer to hang-up, from the carrier's timestamps.
    pub duration_seconds: Option<i32>,
    /// Gapless change counter (1 = created): orders this call's events.
    pub version: i32,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Where calls are kept.
static CALLS: Table<Call> = Table::new("calls", &CALL_COLUMNS, "call");

/// One entry of a call's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CallEvent {
    /// The entry's id (increasing in the order entries were written).
    pub id: i64,
    /// The call this entry is about.
    pub call_id: Uuid,
    /// What the entry records: a status change, a control, a recording.
    pub kind: CallEventKind,
    /// For `status` entries: the status before (none for the first entry).
    pub from_status: Option<CallStatus>,
    /// For `status` entries: the status after.
    pub to_status: Option<CallStatus>,
    /// Details of the change (the carrier's parameters, the transfer target...).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// Who wrote the entry.
    pub source: EventSource,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// An outbound call to place.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginateCall {
    /// The number to call, in any common format.
    #[schema(example = "+12025550123")]
    pub to: String,
    /// One of the tenant's numbers (default: the tenant's default number).
    pub from: Option<String>,
    /// The customer being called (default: the customer with this number).
    pub customer_id: Option<Uuid>,
}

/// Parameters of an agent control (`transfer` needs one of them).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// `transfer` only: the agent to hand the call to...
    pub agent_id: Option<Uuid>,
    /// ...or the number to forward it to.
    pub to: Option<String>,
}

/// The query string of `GET /v1/calls`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCallsQuery {
    /// Only calls in this status.
    pub status: Option<CallStatus>,
    /// Only calls going this way.
    pub direction: Option<Direction>,
    /// Only calls of this agent.
    pub agent_id: Option<Uuid>,
    /// Only calls with this customer.
    pub customer_id: Option<Uuid>,
    /// Only calls from this number (any common format).
    pub from: Option<String>,
    /// Only calls to this number (any common format).
    pub to: Option<String>,
    /// Only calls created at or after this time (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only calls created before this time (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_has_the_fields_of_the_shared_record() {
        crate::openapi::assert_same_fields::<Call>(switchboard_core::records::CALL);
    }
}

//! Calls: originate, list, history, agent controls, and the one place a
//! call's status changes ([`lifecycle`]), shared by the controls and the
//! carrier's status webhooks.

mod handlers;
pub(crate) mod lifecycle;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::calls::{CallStatus, Direction};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::state::AppState;

pub use handlers::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_calls, handlers::originate_call))
        .routes(routes!(handlers::get_call))
        .routes(routes!(handlers::call_events))
        .routes(routes!(handlers::control_call))
}

/// A call, as every endpoint and event shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Call {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `outbound` or `inbound`.
    #[schema(example = "outbound")]
    pub direction: String,
    /// E.164.
    pub from: String,
    /// E.164.
    pub to: String,
    /// `queued`, `ringing`, `in-progress`, `completed`, `busy`, `failed`, `no-answer` or `canceled`.
    #[schema(example = "ringing")]
    pub status: String,
    /// The carrier's CallSid.
    pub carrier_sid: Option<String>,
    pub customer_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub on_hold: bool,
    pub muted: bool,
    pub recording: bool,
    /// Where the call was transferred (an agent id or a number).
    pub transferred_to: Option<String>,
    /// Inbound calls: `agent` or `voicemail`.
    pub routed_to: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ringing_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Talk time: answer to hang-up, from the carrier's timestamps.
    pub duration_seconds: Option<i32>,
    /// Gapless change counter (1 = created): orders this call's events.
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Call`], for `SELECT` and `RETURNING`.
pub(crate) const CALL_COLUMNS: &str = "id, tenant_id, direction, from_number AS \"from\", \
    to_number AS \"to\", status, carrier_sid, customer_id, agent_id, on_hold, muted, recording, \
    transferred_to, routed_to, created_at, ringing_at, answered_at, ended_at, duration_seconds, \
    version, updated_at";

/// One entry of a call's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CallEvent {
    pub id: i64,
    pub call_id: Uuid,
    /// `status`, or the control applied (`hold`, `mute`, `transfer`, ...).
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// `api`, `carrier`, `system` or `seed`.
    pub source: String,
    pub occurred_at: DateTime<Utc>,
}

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

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// `transfer` only: the agent to hand the call to...
    pub agent_id: Option<Uuid>,
    /// ...or the number to forward it to.
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCallsQuery {
    /// Only calls in this status (`queued`, `ringing`, `in-progress`, ...).
    #[param(value_type = Option<String>, pattern = "^(queued|ringing|in-progress|completed|busy|failed|no-answer|canceled)$")]
    pub status: Option<CallStatus>,
    /// `outbound` or `inbound`.
    #[param(value_type = Option<String>, pattern = "^(outbound|inbound)$")]
    pub direction: Option<Direction>,
    pub agent_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    /// Only calls from this number (any common format).
    pub from: Option<String>,
    /// Only calls to this number (any common format).
    pub to: Option<String>,
    /// Only calls created at or after this time (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only calls created before this time (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

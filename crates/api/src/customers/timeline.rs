//! A customer's timeline: calls, messages, voicemails and notes merged
//! newest first, paginated by `(occurred_at, id)`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::CUSTOMERS;
use crate::auth::TenantRequest;
use crate::by_id::RecordRequest;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::pagination::{Page, PageRequest};

/// A timeline's order, and its cursor: `(occurred_at, id)`.
type Time = (DateTime<Utc>, Uuid);

switchboard_core::text_enum! {
    /// What a timeline item is.
    pub enum TimelineKind {
        /// A call with the customer.
        Call = "call",
        /// An SMS to or from the customer.
        Message = "message",
        /// A voicemail the customer left.
        Voicemail = "voicemail",
        /// A note an agent wrote about the customer.
        Note = "note",
    }
}

/// One thing that happened with the customer.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct TimelineItem {
    /// What it is.
    pub kind: TimelineKind,
    /// The id of the call, message, voicemail or note.
    pub id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The item's main fields (status, direction, body, duration...).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Everything that happened with a customer, newest first.
#[utoipa::path(get, path = "/v1/customers/{id}/timeline", tag = "customers", security(("bearer" = [])),
    params(RecordRequest, PageRequest<Time>),
    responses(
        (status = 200, body = Page<TimelineItem>),
    ))]
pub async fn customer_timeline(
    request: RecordRequest,
    paging: PageRequest<Time>,
) -> ApiResult<Json<Page<TimelineItem>>> {
    // 404 for an unknown or foreign customer rather than an empty timeline.
    request.exists(&CUSTOMERS).await?;
    let RecordRequest(TenantRequest { state, principal }, id) = request;
    let (before_at, before_id) = paging
        .after
        .unwrap_or((DateTime::<Utc>::MAX_UTC, Uuid::max()));

    // Each branch is limited on its own index before the merge, so a page
    // costs O(limit) per source however long the history is.
    let rows: Vec<TimelineItem> = sqlx::query_as(
        "(SELECT 'call' AS kind, id, created_at AS occurred_at,
                 jsonb_build_object('direction', direction, 'status', status, 'from', from_number,
                     'to', to_number, 'agent_id', agent_id, 'duration_seconds', duration_seconds) AS data
          FROM calls WHERE tenant_id = $1 AND customer_id = $2 AND (created_at, id) < ($3, $4)
          ORDER BY created_at DESC, id DESC LIMIT $5)
         UNION ALL
         (SELECT 'message', id, created_at,
                 jsonb_build_object('direction', direction, 'status', status, 'from', from_number,
                     'to', to_number, 'body', body, 'campaign_id', campaign_id)
          FROM messages WHERE tenant_id = $1 AND customer_id = $2 AND (created_at, id) < ($3, $4)
          ORDER BY created_at DESC, id DESC LIMIT $5)
         UNION ALL
         (SELECT 'voicemail', id, created_at,
                 jsonb_build_object('from', from_number, 'duration_seconds', duration_seconds,
                     'transcription_status', transcription_status, 'transcription', transcription,
                     'listened', listened_at IS NOT NULL)
          FROM voicemails WHERE tenant_id = $1 AND customer_id = $2 AND (created_at, id) < ($3, $4)
          ORDER BY created_at DESC, id DESC LIMIT $5)
         UNION ALL
         (SELECT 'note', id, created_at, jsonb_build_object('body', body, 'agent_id', agent_id)
          FROM customer_notes WHERE tenant_id = $1 AND customer_id = $2 AND (created_at, id) < ($3, $4)
          ORDER BY created_at DESC, id DESC LIMIT $5)
         ORDER BY occurred_at DESC, id DESC
         LIMIT $5",
    )
    .bind(principal.tenant_id)
    .bind(id)
    .bind(before_at)
    .bind(before_id)
    .bind(paging.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(paging.page(rows, |item| (item.occurred_at, item.id))))
}

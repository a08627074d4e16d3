//! Voicemail: created by the carrier's recording webhook for calls nobody
//! could take, transcribed by a worker job, listened to and deleted here.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::calls::TranscriptionStatus;
use switchboard_core::records::VOICEMAIL_COLUMNS;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::by_id::{RecordRequest, Table};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::pagination::{Listing, Page};
use crate::state::AppState;

/// The routes of voicemails, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_voicemails))
        .routes(routes!(get_voicemail, delete_voicemail))
        .routes(routes!(mark_listened))
}

/// A voicemail left on an inbound call, with its transcription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Voicemail {
    /// The voicemail's id.
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// The call it was left on.
    pub call_id: Option<Uuid>,
    /// The caller, when a known customer.
    pub customer_id: Option<Uuid>,
    /// The caller, E.164.
    pub from: String,
    /// The tenant's number called, E.164.
    pub to: String,
    /// Where the carrier keeps the recording.
    pub recording_url: String,
    /// Length of the recording.
    pub duration_seconds: i32,
    /// Where its transcription is.
    pub transcription_status: TranscriptionStatus,
    /// The text, once transcribed.
    pub transcription: Option<String>,
    /// Whether someone listened to it.
    pub listened: bool,
    /// When someone first listened to it.
    pub listened_at: Option<DateTime<Utc>>,
    /// When it was left.
    pub created_at: DateTime<Utc>,
}

/// Where voicemails are kept.
static VOICEMAILS: Table<Voicemail> = Table::new("voicemails", &VOICEMAIL_COLUMNS, "voicemail");

/// The query string of `GET /v1/voicemails`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVoicemailsQuery {
    /// Only voicemails nobody has listened to yet.
    pub unlistened: Option<bool>,
    /// Only voicemails from this customer.
    pub customer_id: Option<Uuid>,
}

/// Lists voicemails, newest first.
#[utoipa::path(get, path = "/v1/voicemails", tag = "voicemails", security(("bearer" = [])),
    params(Listing<ListVoicemailsQuery>),
    responses((status = 200, body = Page<Voicemail>)))]
pub async fn list_voicemails(
    TenantRequest { state, principal }: TenantRequest,
    Listing(query, request): Listing<ListVoicemailsQuery>,
) -> ApiResult<Json<Page<Voicemail>>> {
    let rows: Vec<Voicemail> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VOICEMAIL_COLUMNS} FROM voicemails
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
           AND (NOT $3 OR listened_at IS NULL)
           AND ($4::uuid IS NULL OR customer_id = $4)
         ORDER BY id DESC LIMIT $5"
    )))
    .bind(principal.tenant_id)
    .bind(request.after)
    .bind(query.unlistened.unwrap_or(false))
    .bind(query.customer_id)
    .bind(request.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(request.page(rows, |v| v.id)))
}

/// Gets a voicemail with its transcription.
#[utoipa::path(get, path = "/v1/voicemails/{id}", tag = "voicemails", security(("bearer" = [])),
    params(RecordRequest),
    responses((status = 200, body = Voicemail)))]
pub async fn get_voicemail(request: RecordRequest) -> ApiResult<Json<Voicemail>> {
    request.fetch(&VOICEMAILS).await.map(Json)
}

/// Marks a voicemail listened (the first listen's time is kept).
#[utoipa::path(post, path = "/v1/voicemails/{id}/listened", tag = "voicemails", security(("bearer" = [])),
    params(RecordRequest),
    responses((status = 200, body = Voicemail)))]
pub async fn mark_listened(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
) -> ApiResult<Json<Voicemail>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE voicemails SET listened_at = coalesce(listened_at, now())
         WHERE tenant_id = $1 AND id = $2 RETURNING {VOICEMAIL_COLUMNS}"
    )))
    .bind(principal.tenant_id)
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found("voicemail"))
}

/// Deletes a voicemail.
#[utoipa::path(delete, path = "/v1/voicemails/{id}", tag = "voicemails", security(("bearer" = [])),
    params(RecordRequest),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_voicemail(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
) -> ApiResult<StatusCode> {
    // A voicemail whose hour is already in the report rollups leaves them too,
    // so the summary counts what the live tail would.
    let deleted: Option<bool> = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM voicemails WHERE tenant_id = $1 AND id = $2 RETURNING created_at),
         rolled AS (
             UPDATE report_rollups_hourly r SET voicemails = r.voicemails - 1
             FROM gone
             WHERE r.tenant_id = $1 AND r.bucket = date_trunc('hour', gone.created_at, 'UTC')
               AND r.voicemails > 0
               AND r.bucket < (SELECT rolled_through FROM report_rollup_state WHERE tenant_id = $1))
         SELECT true FROM gone",
    )
    .bind(principal.tenant_id)
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    if deleted.is_none() {
        return Err(ApiError::not_found("voicemail"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voicemail_has_the_fields_of_the_shared_record() {
        crate::openapi::assert_same_fields::<Voicemail>(switchboard_core::records::VOICEMAIL);
    }
}

//! Voicemail: created by the carrier's recording webhook for calls nobody
//! could take, transcribed by a worker job, listened to and deleted here.

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    extract::{Json, Path, Query},
    pagination::{self, Page},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_voicemails))
        .routes(routes!(get_voicemail, delete_voicemail))
        .routes(routes!(mark_listened))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Voicemail {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub call_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub from: String,
    pub to: String,
    pub recording_url: String,
    pub duration_seconds: i32,
    /// `pending`, `processing`, `completed` or `failed`.
    #[schema(example = "completed")]
    pub transcription_status: String,
    pub transcription: Option<String>,
    pub listened: bool,
    pub listened_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const VOICEMAIL_COLUMNS: &str = "id, tenant_id, call_id, customer_id, from_number AS \"from\", \
    to_number AS \"to\", recording_url, duration_seconds, transcription_status, transcription, \
    listened_at IS NOT NULL AS listened, listened_at, created_at";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVoicemailsQuery {
    /// Only voicemails nobody has listened to yet.
    pub unlistened: Option<bool>,
    pub customer_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Lists voicemails, newest first.
#[utoipa::path(get, path = "/v1/voicemails", tag = "voicemails", security(("bearer" = [])),
    params(ListVoicemailsQuery),
    responses((status = 200, body = Page<Voicemail>)))]
pub async fn list_voicemails(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListVoicemailsQuery>,
) -> ApiResult<Json<Page<Voicemail>>> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_id_cursor(query.cursor.as_deref())?;
    let rows: Vec<Voicemail> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VOICEMAIL_COLUMNS} FROM voicemails
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2)
           AND (NOT $3 OR listened_at IS NULL)
           AND ($4::uuid IS NULL OR customer_id = $4)
         ORDER BY id DESC LIMIT $5"
    )))
    .bind(principal.tenant_id)
    .bind(after)
    .bind(query.unlistened.unwrap_or(false))
    .bind(query.customer_id)
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(pagination::page(rows, limit, |v| {
        pagination::encode_id_cursor(v.id)
    })))
}

/// Gets a voicemail with its transcription.
#[utoipa::path(get, path = "/v1/voicemails/{id}", tag = "voicemails", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Voicemail id")),
    responses((status = 200, body = Voicemail)))]
pub async fn get_voicemail(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Voicemail>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VOICEMAIL_COLUMNS} FROM voicemails WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(principal.tenant_id)
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found("voicemail"))
}

/// Marks a voicemail listened (the first listen's time is kept).
#[utoipa::path(post, path = "/v1/voicemails/{id}/listened", tag = "voicemails", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Voicemail id")),
    responses((status = 200, body = Voicemail)))]
pub async fn mark_listened(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
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
    params(("id" = Uuid, Path, description = "Voicemail id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_voicemail(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
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

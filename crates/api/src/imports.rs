//! Bulk customer imports: `POST /v1/imports` takes a CSV file, answers
//! `202` with the import, and the worker's `import.process` job writes its
//! rows; `GET /v1/imports/{id}` shows progress and counts,
//! `GET /v1/imports/{id}/errors` the rejected rows.
//!
//! What can be refused before anything is stored is refused here, with
//! nothing written: another content type (415), a file over
//! `SWITCHBOARD_IMPORT_MAX_BYTES` or with more than
//! `SWITCHBOARD_IMPORT_MAX_ROWS` rows (413), a file that is not UTF-8 CSV
//! with a header naming a `phone` column (422). Rows are checked one by one
//! by the job; a bad row is a per-row error, never a failed import.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::ids::new_id;
use switchboard_core::imports::{self, CsvError, Header, Mode, Status};
use switchboard_core::jobs::{self, ImportProcess};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::by_id::{RecordRequest, Table};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;

/// The routes of customer imports, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_import))
        .routes(routes!(get_import))
        .routes(routes!(list_import_errors))
}

/// An import and its counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Import {
    /// The import's id.
    pub id: Uuid,
    /// The tenant the import belongs to.
    pub tenant_id: Uuid,
    /// Where the import is.
    pub status: Status,
    /// What happens to rows matching an existing customer.
    pub mode: Mode,
    /// Data rows in the file (blank lines excluded).
    pub rows_total: i32,
    /// Rows handled so far; equals `rows_total` once completed.
    pub rows_processed: i32,
    /// New customers.
    pub rows_created: i32,
    /// Existing customers (same phone) overwritten (`mode=update`).
    pub rows_updated: i32,
    /// Rows left alone: a phone repeated earlier in the file, or (with
    /// `mode=skip`) matching an existing customer.
    pub rows_skipped: i32,
    /// Rows rejected; each has an entry in `/v1/imports/{id}/errors`.
    pub rows_failed: i32,
    /// Size of the uploaded file.
    pub source_bytes: i32,
    /// Why a `failed` import failed.
    pub error: Option<String>,
    /// The agent who uploaded the file, when an agent did.
    pub created_by: Option<Uuid>,
    /// When the file was uploaded.
    pub created_at: DateTime<Utc>,
    /// When processing started.
    pub started_at: Option<DateTime<Utc>>,
    /// When processing finished.
    pub finished_at: Option<DateTime<Utc>>,
}

pub(crate) const IMPORT_COLUMNS: &str = "id, tenant_id, status, mode, rows_total, rows_processed, \
    rows_created, rows_updated, rows_skipped, rows_failed, source_bytes, error, created_by, \
    created_at, started_at, finished_at";

/// Where imports are kept.
static IMPORTS: Table<Import> = Table::new("imports", &IMPORT_COLUMNS, "import");

/// The query string of `POST /v1/imports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateImportQuery {
    /// For rows whose phone matches an existing customer: `skip` (default) or `update`.
    pub mode: Option<Mode>,
}

/// One rejected row.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ImportError {
    /// Line of the file where the row starts (the header is line 1).
    #[schema(minimum = 2)]
    pub row: i32,
    /// The column at fault (`phone`, `email`, …, a metadata column), or
    /// `row` when the record itself is wrong (field count).
    pub field: String,
    /// Why the row was rejected.
    pub reason: String,
}

fn is_csv(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a CSV file with Content-Type: text/csv (UTF-8)",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    if !parts
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("text/csv")
    {
        return Err(unsupported());
    }
    for param in parts {
        if let Some((key, charset)) = param.split_once('=')
            && key.trim().eq_ignore_ascii_case("charset")
        {
            let charset = charset.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(unsupported());
            }
        }
    }
    Ok(())
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the file is larger than the {max} bytes one import accepts"),
    )
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("malformed_csv", message.into()).with_field("body")
}

/// Starts an import of the customers in a CSV file.
///
/// The body is the file (`Content-Type: text/csv`, UTF-8). Its first row
/// names the columns: `phone` (required), `name`, `email`, `company`,
/// `tags` (separated by `;`, `,` or `|`); any other column is kept in the
/// customer's `metadata`. Rows are validated and written by a worker:
/// follow `GET /v1/imports/{id}` or the `import:progress` Socket.IO event.
#[utoipa::path(post, path = "/v1/imports", tag = "imports", security(("bearer" = [])),
    params(CreateImportQuery),
    request_body(content = String, content_type = "text/csv",
        description = "CSV with a header row", example = "name,phone,email,company,tags,plan\nAda Lovelace,+12025550123,ada@example.com,Analytical,vip;beta,gold\n"),
    responses(
        (status = 202, body = Import, description = "Accepted: the rows are written by the worker"),
        (status = 400, body = ErrorBody, description = "Unknown query parameter or bad `mode`"),
        (status = 413, body = ErrorBody, description = "The file is over SWITCHBOARD_IMPORT_MAX_BYTES, or has more rows than SWITCHBOARD_IMPORT_MAX_ROWS"),
        (status = 415, body = ErrorBody, description = "Content-Type is not text/csv, or its charset is not UTF-8"),
        (status = 422, body = ErrorBody, description = "Malformed file (`malformed_csv`): not UTF-8, no header, no `phone` column, \
            a duplicate or control character in the header, unbalanced quotes, or no data rows"),
    ))]
pub async fn create_import(
    TenantRequest { state, principal }: TenantRequest,
    Query(query): Query<CreateImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Import>)> {
    is_csv(&headers)?;
    let max = state.settings.import_max_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let bytes = axum::body::to_bytes(body, max).await.map_err(|error| {
        if std::error::Error::source(&error)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
        {
            too_large(max)
        } else {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        malformed(format!(
            "the file is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let records = imports::parse(text).map_err(|e| malformed(e.to_string()))?;
    Header::new(&records[0]).map_err(|e: CsvError| malformed(e.to_string()))?;
    let rows = records.len() - 1;
    if rows == 0 {
        return Err(malformed("the file has a header but no rows"));
    }
    if rows > state.settings.import_max_rows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_rows",
            format!(
                "the file has {rows} rows; one import takes at most {}",
                state.settings.import_max_rows
            ),
        ));
    }
    let mode = query.mode.unwrap_or_default();

    let mut tx = state.db.begin().await?;
    let import: Import = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO imports (id, tenant_id, mode, source, source_bytes, rows_total, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {IMPORT_COLUMNS}"
    )))
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(mode.as_str())
    .bind(&bytes[..])
    .bind(bytes.len() as i32)
    .bind(rows as i32)
    .bind(principal.agent_id())
    .fetch_one(&mut *tx)
    .await?;
    jobs::enqueue(
        &mut *tx,
        &ImportProcess {
            tenant_id: import.tenant_id,
            import_id: import.id,
        },
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("imports_created_total").increment(1);
    tracing::info!(tenant_id = %import.tenant_id, import_id = %import.id, rows, bytes = bytes.len(), "import accepted");
    Ok((StatusCode::ACCEPTED, Json(import)))
}

/// Gets an import: its status and counts.
#[utoipa::path(get, path = "/v1/imports/{id}", tag = "imports", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = Import),
        (status = 404, body = ErrorBody, description = "No such import for this tenant"),
    ))]
pub async fn get_import(request: RecordRequest) -> ApiResult<Json<Import>> {
    request.fetch(&IMPORTS).await.map(Json)
}

/// Lists an import's rejected rows in file order.
#[utoipa::path(get, path = "/v1/imports/{id}/errors", tag = "imports", security(("bearer" = [])),
    params(RecordRequest, PageRequest<i32>),
    responses(
        (status = 200, body = Page<ImportError>),
        (status = 404, body = ErrorBody, description = "No such import for this tenant"),
    ))]
pub async fn list_import_errors(
    request: RecordRequest,
    paging: PageRequest<i32>,
) -> ApiResult<Json<Page<ImportError>>> {
    // Another tenant's import has no errors to show: 404, as for an unknown id.
    request.exists(&IMPORTS).await?;
    let RecordRequest(TenantRequest { state, .. }, id) = request;
    let rows: Vec<ImportError> = sqlx::query_as(
        "SELECT row_number AS row, field, reason FROM import_errors
         WHERE import_id = $1 AND row_number > $2
         ORDER BY row_number LIMIT $3",
    )
    .bind(id)
    .bind(paging.after.unwrap_or(0))
    .bind(paging.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(paging.page(rows, |e| e.row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_utf8_csv_is_accepted() {
        let mut headers = HeaderMap::new();
        assert!(is_csv(&headers).is_err());
        for (value, ok) in [
            ("text/csv", true),
            ("Text/CSV; charset=UTF-8", true),
            ("text/csv; charset=\"utf-8\"", true),
            ("text/csv; charset=latin1", false),
            ("application/json", false),
            ("text/plain", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(is_csv(&headers).is_ok(), ok, "{value}");
        }
    }
}

//! Tenant webhook endpoints: where the worker delivers the tenant's events
//! (`webhook.deliver`), each signed with the endpoint's secret:
//! `Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! Admins manage them; the secret is shown once, on creation.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::auth::Role;
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::by_id::{RecordRequest, Table};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::state::AppState;

/// The routes of the tenant's webhook endpoints, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(delete_endpoint))
}

/// Most endpoints a tenant may register.
const MAX_ENDPOINTS: i64 = 20;

/// A webhook endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Endpoint {
    /// The endpoint's id.
    pub id: Uuid,
    /// Where events are POSTed.
    #[schema(example = "https://crm.example.com/hooks/switchboard")]
    pub url: String,
    /// Event types delivered; empty = every type.
    #[schema(example = json!(["call.status", "message.status"]))]
    pub event_types: Vec<String>,
    /// Whether deliveries are made.
    pub active: bool,
    /// When the endpoint was registered.
    pub created_at: DateTime<Utc>,
    /// The signing secret: returned only when the endpoint is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(default)]
    pub secret: Option<String>,
}

/// An endpoint's columns, its secret aside.
const ENDPOINT_COLUMNS: &str = "id, url, event_types, active, created_at";

/// Where webhook endpoints are kept.
static ENDPOINTS: Table<Endpoint> =
    Table::new("tenant_webhooks", &ENDPOINT_COLUMNS, "webhook endpoint");

/// A webhook endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `http://` or `https://`, at most 2048 characters.
    #[schema(max_length = 2048, pattern = "^\\s*https?://[^\\s/?#][^\\s]*\\s*$")]
    pub url: String,
    /// Event types to deliver (`call.status`, ...); omitted or empty = all.
    #[serde(default)]
    #[schema(value_type = Vec<crate::openapi::items::EventTypeName>)]
    pub event_types: Vec<String>,
}

/// Lists the tenant's webhook endpoints (admin).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhook endpoints", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Endpoint>),
        (status = 403, body = ErrorBody, description = "Not an admin"),
    ))]
pub async fn list_endpoints(
    TenantRequest { state, principal }: TenantRequest,
) -> ApiResult<Json<Vec<Endpoint>>> {
    principal.require(Role::Admin)?;
    let rows: Vec<Endpoint> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM tenant_webhooks WHERE tenant_id = $1 ORDER BY id"
    )))
    .bind(principal.tenant_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}

/// Registers a webhook endpoint (admin). The answer carries its secret.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhook endpoints", security(("bearer" = [])),
    responses(
        (status = 201, body = Endpoint),
        (status = 403, body = ErrorBody, description = "Not an admin"),
        (status = 409, body = ErrorBody, description = "The tenant has the maximum number of endpoints"),
        (status = 422, body = ErrorBody, description = "Bad URL or unknown event type"),
    ))]
pub async fn create_endpoint(
    TenantRequest { state, principal }: TenantRequest,
    Json(req): Json<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<Endpoint>)> {
    principal.require(Role::Admin)?;
    let url = req.url.trim();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    let valid = host.is_some_and(|h| !h.is_empty())
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ApiError::validation(
            "url",
            "url must be an http:// or https:// URL of at most 2048 characters",
        ));
    }
    let mut types = Vec::new();
    for t in &req.event_types {
        if !EventType::ALL.iter().any(|known| known.as_str() == t) {
            return Err(ApiError::validation(
                "event_types",
                format!("unknown event type {t:?}"),
            ));
        }
        if !types.contains(t) {
            types.push(t.clone());
        }
    }
    // 244 random bits from two v4 UUIDs.
    let secret = format!(
        "whsec_{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    let mut tx = state.db.begin().await?;
    // Serialise creations per tenant so the cap holds under concurrency.
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(principal.tenant_id)
        .execute(&mut *tx)
        .await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenant_webhooks WHERE tenant_id = $1")
            .bind(principal.tenant_id)
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_ENDPOINTS {
        return Err(ApiError::conflict(
            "too_many_endpoints",
            format!("a tenant can register at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let endpoint: Endpoint = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenant_webhooks (id, tenant_id, url, secret, event_types)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING {ENDPOINT_COLUMNS}, secret"
    )))
    .bind(new_id())
    .bind(principal.tenant_id)
    .bind(url)
    .bind(&secret)
    .bind(&types)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(endpoint)))
}

/// Removes a webhook endpoint (admin); queued deliveries to it are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhook endpoints", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 204),
        (status = 403, body = ErrorBody, description = "Not an admin"),
    ))]
pub async fn delete_endpoint(request: RecordRequest) -> ApiResult<StatusCode> {
    let RecordRequest(TenantRequest { principal, .. }, _) = &request;
    principal.require(Role::Admin)?;
    request.delete(&ENDPOINTS).await?;
    Ok(StatusCode::NO_CONTENT)
}

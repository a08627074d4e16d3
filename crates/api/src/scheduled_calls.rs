//! Scheduled calls: an outbound call placed by the worker at `run_at`, and
//! again per its retry policy when the carrier reports busy, no-answer or
//! failed; plus the tenant's scheduling settings (calling hours in its time
//! zone, the most scheduled calls in flight at once).
//!
//! Creating one writes the record and its `scheduled_call.run` job (due at
//! `run_at`) in one transaction; the worker
//! (`switchboard_worker::jobs::scheduled`) does the rest. Each attempt is an
//! ordinary call, created and played exactly as `POST /v1/calls` does, and
//! its final status (applied in [`crate::calls::lifecycle`]) wakes the
//! scheduled call again in the same transaction.

use std::collections::HashSet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration as Span, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use switchboard_core::auth::Role;
use switchboard_core::calls::{CallStatus, EventSource};
use switchboard_core::events::EventType;
use switchboard_core::ids::new_id;
use switchboard_core::jobs::{self, ScheduledCallRun};
use switchboard_core::scheduling::{
    MAX_ATTEMPTS, MAX_BACKOFF_SECONDS, RetryOutcome, SCHEDULED_CALL_JSON, ScheduledCallStatus,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Principal, TenantRequest};
use crate::by_id::RecordRequest;
use crate::calls::lifecycle::{self, StatusUpdate, lock_call};
use crate::customers::parse_phone;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::idempotency::IdempotencyKey;
use crate::pagination::{Listing, Page};
use crate::state::AppState;

/// The routes of scheduled calls and the scheduling settings, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_scheduled_calls, create_scheduled_call))
        .routes(routes!(create_scheduled_calls_batch))
        .routes(routes!(get_scheduled_call))
        .routes(routes!(cancel_scheduled_call))
        .routes(routes!(get_scheduling_settings, put_scheduling_settings))
}

/// Most scheduled calls one batch request creates.
pub const MAX_BATCH: usize = 1_000;
/// How far in the past `run_at` may be (clock skew; it then runs at once).
const PAST_TOLERANCE_SECONDS: i64 = 300;
/// How far ahead a call may be scheduled.
const MAX_AHEAD_DAYS: i64 = 366;

/// When and how often to try again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1–10).
    #[schema(minimum = 1, maximum = 10, example = 3)]
    pub max_attempts: u32,
    /// Seconds from an attempt's end to the next attempt (1–86 400).
    #[schema(minimum = 1, maximum = 86400, example = 300)]
    pub backoff_seconds: u32,
    /// The outcomes worth another attempt (default: all three; at least one).
    #[serde(default = "all_outcomes")]
    /// Each outcome at most once.
    #[schema(min_items = 1, max_items = 3, value_type = std::collections::HashSet<RetryOutcome>)]
    pub on: Vec<RetryOutcome>,
}

fn all_outcomes() -> Vec<RetryOutcome> {
    RetryOutcome::ALL.to_vec()
}

impl Default for RetryPolicy {
    /// No retry: one attempt.
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff_seconds: 60,
            on: all_outcomes(),
        }
    }
}

/// A call to place later, with its retry policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduledCall {
    /// The number to call, in any common format (stored as E.164).
    #[schema(example = "+12025550123", min_length = 1, max_length = 64)]
    pub to: String,
    /// One of the tenant's numbers (default: the tenant's default number when the call is placed).
    #[schema(example = "+12025550100", min_length = 1, max_length = 64)]
    pub from: Option<String>,
    /// The customer being called (default: the customer with this number).
    pub customer_id: Option<Uuid>,
    /// When to place the first attempt (RFC 3339; at most 5 minutes in the
    /// past, which means now, and at most 366 days ahead). Outside the
    /// tenant's calling hours it waits for the next window.
    pub run_at: DateTime<Utc>,
    /// Default: one attempt, no retry.
    pub retry: Option<RetryPolicy>,
}

/// Scheduled calls to create together.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduledCallBatch {
    /// 1 to 1 000 scheduled calls; all are created or none.
    #[schema(min_items = 1, max_items = 1000)]
    pub scheduled_calls: Vec<CreateScheduledCall>,
}

/// The scheduled calls a batch created, in request order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduledCallBatch {
    /// The created scheduled calls.
    pub data: Vec<ScheduledCall>,
}

/// One attempt: an ordinary call (`GET /v1/calls/{call_id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: i32,
    /// The call placed for this attempt.
    pub call_id: Uuid,
    /// The call's status.
    pub status: CallStatus,
    /// When the attempt was placed.
    pub started_at: DateTime<Utc>,
    /// When its call ended.
    pub ended_at: Option<DateTime<Utc>>,
}

/// A scheduled call, as every endpoint and `scheduled_call.updated` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduledCall {
    /// The scheduled call's id.
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// Where it is in its lifecycle.
    pub status: ScheduledCallStatus,
    /// E.164.
    pub to: String,
    /// E.164; null: the tenant's default number.
    pub from: Option<String>,
    /// The customer being called, when known.
    pub customer_id: Option<Uuid>,
    /// When the first attempt was due.
    pub run_at: DateTime<Utc>,
    /// When and how often it is retried.
    pub retry: RetryPolicy,
    /// The calls placed so far, oldest first.
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due (null while dialing and once final).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why it ended, when something other than the carrier decided.
    pub last_error: Option<String>,
    /// Gapless change counter (1 = created).
    pub version: i32,
    /// The agent who scheduled it, when an agent did.
    pub created_by: Option<Uuid>,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The query string of `GET /v1/scheduled-calls`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListScheduledCallsQuery {
    /// Only scheduled calls in this status.
    #[param(value_type = Option<ScheduledCallStatus>)]
    pub status: Option<ScheduledCallStatus>,
    /// Only calls to this number (any common format).
    #[param(max_length = 64)]
    pub to: Option<String>,
    /// Only scheduled calls to this customer.
    pub customer_id: Option<Uuid>,
    /// Only those with `run_at` at or after this time (RFC 3339).
    pub run_after: Option<DateTime<Utc>>,
    /// Only those with `run_at` before this time (RFC 3339).
    pub run_before: Option<DateTime<Utc>>,
}

/// A scheduled call, checked and normalised, ready to insert.
struct Valid {
    to: String,
    from: Option<String>,
    customer_id: Option<Uuid>,
    run_at: DateTime<Utc>,
    retry: RetryPolicy,
}

fn validate(req: &CreateScheduledCall, region: &str, prefix: &str) -> ApiResult<Valid> {
    let field = |name: &str| format!("{prefix}{name}");
    let to = parse_phone(&req.to, region, &field("to"))?;
    let from = req
        .from
        .as_deref()
        .map(|f| parse_phone(f, region, &field("from")))
        .transpose()?;
    let now = Utc::now();
    if req.run_at < now - Span::seconds(PAST_TOLERANCE_SECONDS) {
        return Err(ApiError::validation(
            field("run_at"),
            "run_at is more than 5 minutes in the past",
        ));
    }
    if req.run_at > now + Span::days(MAX_AHEAD_DAYS) {
        return Err(ApiError::validation(
            field("run_at"),
            "run_at is more than 366 days ahead",
        ));
    }
    let retry = req.retry.clone().unwrap_or_default();
    if !(1..=MAX_ATTEMPTS).contains(&retry.max_attempts) {
        return Err(ApiError::validation(
            field("retry.max_attempts"),
            "max_attempts must be 1 to 10",
        ));
    }
    if !(1..=MAX_BACKOFF_SECONDS).contains(&retry.backoff_seconds) {
        return Err(ApiError::validation(
            field("retry.backoff_seconds"),
            "backoff_seconds must be 1 to 86400",
        ));
    }
    let distinct: HashSet<_> = retry.on.iter().collect();
    if retry.on.is_empty() || distinct.len() != retry.on.len() {
        return Err(ApiError::validation(
            field("retry.on"),
            "on must name busy, no-answer and/or failed, each at most once",
        ));
    }
    Ok(Valid {
        to,
        from,
        customer_id: req.customer_id,
        run_at: req.run_at,
        retry,
    })
}

/// Checks what needs the database (the `from` numbers are the tenant's, the
/// customers exist, there is a number to call from), then inserts every
/// scheduled call with its job. Returns them in order.
async fn insert_all(
    tx: &mut PgConnection,
    principal: &Principal,
    items: Vec<Valid>,
    prefix: impl Fn(usize) -> String,
) -> ApiResult<Vec<ScheduledCall>> {
    let tenant_id = principal.tenant_id;
    let numbers: Vec<String> = sqlx::query_scalar(
        "SELECT number FROM phone_numbers WHERE tenant_id = $1 ORDER BY is_default DESC, number",
    )
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    if numbers.is_empty() {
        return Err(ApiError::unprocessable(
            "no_caller_id",
            "this tenant has no phone number to call from",
        ));
    }
    let owned: HashSet<&str> = numbers.iter().map(String::as_str).collect();
    for (i, item) in items.iter().enumerate() {
        if let Some(from) = &item.from
            && !owned.contains(from.as_str())
        {
            return Err(ApiError::validation(
                format!("{}from", prefix(i)),
                "not one of this tenant's numbers",
            ));
        }
    }
    let wanted: Vec<Uuid> = items.iter().filter_map(|i| i.customer_id).collect();
    if !wanted.is_empty() {
        let found: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
            "SELECT id FROM customers WHERE tenant_id = $1 AND id = ANY($2)",
        )
        .bind(tenant_id)
        .bind(&wanted)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        for (i, item) in items.iter().enumerate() {
            if let Some(id) = item.customer_id
                && !found.contains(&id)
            {
                return Err(ApiError::validation(
                    format!("{}customer_id", prefix(i)),
                    "no such customer",
                ));
            }
        }
    }
    let now = Utc::now();
    let ids: Vec<Uuid> = items.iter().map(|_| new_id()).collect();
    let mut to = Vec::with_capacity(items.len());
    let mut from = Vec::with_capacity(items.len());
    let mut customers = Vec::with_capacity(items.len());
    let mut run_at = Vec::with_capacity(items.len());
    let mut max_attempts = Vec::with_capacity(items.len());
    let mut backoff = Vec::with_capacity(items.len());
    let mut on = Vec::with_capacity(items.len());
    let mut jobs_due = Vec::with_capacity(items.len());
    for (id, item) in ids.iter().zip(items) {
        jobs_due.push((
            ScheduledCallRun {
                tenant_id,
                scheduled_call_id: *id,
            },
            (item.run_at - now).to_std().unwrap_or_default(),
        ));
        to.push(item.to);
        from.push(item.from);
        customers.push(item.customer_id);
        run_at.push(item.run_at.max(now - Span::seconds(PAST_TOLERANCE_SECONDS)));
        max_attempts.push(item.retry.max_attempts as i32);
        backoff.push(item.retry.backoff_seconds as i32);
        on.push(
            item.retry
                .on
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    // Without a customer_id, the customer with this number (as POST /v1/calls).
    sqlx::query(
        "INSERT INTO scheduled_calls (id, tenant_id, to_number, from_number, customer_id, run_at,
             max_attempts, backoff_seconds, retry_on, next_attempt_at, created_by)
         SELECT t.id, $1, t.to_number, t.from_number,
                coalesce(t.customer_id, (SELECT c.id FROM customers c WHERE c.tenant_id = $1 AND c.phone = t.to_number)),
                t.run_at, t.max_attempts, t.backoff, string_to_array(t.retry_on, ','), t.run_at, $2
         FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::timestamptz[],
                     $8::int[], $9::int[], $10::text[])
              AS t(id, to_number, from_number, customer_id, run_at, max_attempts, backoff, retry_on)",
    )
    .bind(tenant_id)
    .bind(principal.agent_id())
    .bind(&ids)
    .bind(&to)
    .bind(&from)
    .bind(&customers)
    .bind(&run_at)
    .bind(&max_attempts)
    .bind(&backoff)
    .bind(&on)
    .execute(&mut *tx)
    .await?;
    jobs::enqueue_many(&mut *tx, &jobs_due).await?;
    fetch_many(&mut *tx, tenant_id, &ids).await
}

/// The scheduled calls `ids` of `tenant_id`, in the order given.
async fn fetch_many(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> ApiResult<Vec<ScheduledCall>> {
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {SCHEDULED_CALL_JSON} FROM scheduled_calls s
         WHERE s.tenant_id = $1 AND s.id = ANY($2)
         ORDER BY array_position($2, s.id)"
    )))
    .bind(tenant_id)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(decode).collect()
}

fn decode(json: serde_json::Value) -> ApiResult<ScheduledCall> {
    serde_json::from_value(json).map_err(ApiError::internal)
}

async fn publish(state: &AppState, calls: &[ScheduledCall]) {
    for call in calls {
        state
            .events
            .publish_new(call.tenant_id, EventType::ScheduledCallUpdated, call)
            .await;
    }
}

/// Schedules an outbound call.
#[utoipa::path(post, path = "/v1/scheduled-calls", tag = "scheduled-calls", security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, body = ScheduledCall),
        (status = 422, body = ErrorBody, description = "Invalid number, `run_at` out of range, a bad retry policy, a `from` the tenant does not own, or an unknown customer"),
    ))]
pub async fn create_scheduled_call(
    TenantRequest { state, principal }: TenantRequest,
    key: IdempotencyKey,
    Json(req): Json<CreateScheduledCall>,
) -> ApiResult<Response> {
    let valid = validate(&req, &state.settings.default_region, "")?;
    let (mut tx, claim) = match key.begin(&state.db, principal.tenant_id, &req).await? {
        Ok(begun) => begun,
        Err(replay) => return Ok(replay),
    };
    let created = insert_all(&mut tx, &principal, vec![valid], |_| String::new()).await?;
    let call = created
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("inserted scheduled call not found")))?;
    claim.commit(tx, &call).await?;
    metrics::counter!("scheduled_calls_created_total").increment(1);
    publish(&state, std::slice::from_ref(&call)).await;
    Ok((StatusCode::CREATED, Json(call)).into_response())
}

/// Schedules many outbound calls at once: all are created or none (the
/// first invalid one is named, e.g. `scheduled_calls[3].to`).
#[utoipa::path(post, path = "/v1/scheduled-calls/batch", tag = "scheduled-calls", security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 201, body = ScheduledCallBatch),
        (status = 422, body = ErrorBody, description = "No items or more than 1 000, or one item is invalid (the field names it)"),
    ))]
pub async fn create_scheduled_calls_batch(
    TenantRequest { state, principal }: TenantRequest,
    key: IdempotencyKey,
    Json(req): Json<CreateScheduledCallBatch>,
) -> ApiResult<Response> {
    if req.scheduled_calls.is_empty() || req.scheduled_calls.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "scheduled_calls",
            format!("1 to {MAX_BATCH} scheduled calls in one batch"),
        ));
    }
    let prefix = |i: usize| format!("scheduled_calls[{i}].");
    let region = &state.settings.default_region;
    let valid = req
        .scheduled_calls
        .iter()
        .enumerate()
        .map(|(i, item)| validate(item, region, &prefix(i)))
        .collect::<ApiResult<Vec<_>>>()?;
    let (mut tx, claim) = match key.begin(&state.db, principal.tenant_id, &req).await? {
        Ok(begun) => begun,
        Err(replay) => return Ok(replay),
    };
    let created = insert_all(&mut tx, &principal, valid, prefix).await?;
    let batch = ScheduledCallBatch { data: created };
    claim.commit(tx, &batch).await?;
    metrics::counter!("scheduled_calls_created_total").increment(batch.data.len() as u64);
    publish(&state, &batch.data).await;
    Ok((StatusCode::CREATED, Json(batch)).into_response())
}

/// Lists scheduled calls, newest first, with filters.
#[utoipa::path(get, path = "/v1/scheduled-calls", tag = "scheduled-calls", security(("bearer" = [])),
    params(Listing<ListScheduledCallsQuery>),
    responses(
        (status = 200, body = Page<ScheduledCall>),
        (status = 422, body = ErrorBody, description = "`to` is not a phone number"),
    ))]
pub async fn list_scheduled_calls(
    TenantRequest { state, principal }: TenantRequest,
    Listing(query, request): Listing<ListScheduledCallsQuery>,
) -> ApiResult<Json<Page<ScheduledCall>>> {
    let to = query
        .to
        .as_deref()
        .map(|n| parse_phone(n, &state.settings.default_region, "to"))
        .transpose()?;
    let rows: Vec<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {SCHEDULED_CALL_JSON} FROM scheduled_calls s
         WHERE s.tenant_id = $1
           AND ($2::uuid IS NULL OR s.id < $2)
           AND ($3::text IS NULL OR s.status = $3)
           AND ($4::text IS NULL OR s.to_number = $4)
           AND ($5::uuid IS NULL OR s.customer_id = $5)
           AND ($6::timestamptz IS NULL OR s.run_at >= $6)
           AND ($7::timestamptz IS NULL OR s.run_at < $7)
         ORDER BY s.id DESC LIMIT $8"
    )))
    .bind(principal.tenant_id)
    .bind(request.after)
    .bind(query.status.map(ScheduledCallStatus::as_str))
    .bind(to)
    .bind(query.customer_id)
    .bind(query.run_after)
    .bind(query.run_before)
    .bind(request.fetch())
    .fetch_all(&state.db)
    .await?;
    let rows = rows
        .into_iter()
        .map(decode)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(request.page(rows, |c| c.id)))
}

/// Gets a scheduled call with its attempts.
#[utoipa::path(get, path = "/v1/scheduled-calls/{id}", tag = "scheduled-calls", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = ScheduledCall),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get_scheduled_call(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
) -> ApiResult<Json<ScheduledCall>> {
    let mut conn = state.db.acquire().await?;
    let call = fetch_many(&mut conn, principal.tenant_id, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("scheduled call"))?;
    Ok(Json(call))
}

/// Cancels a scheduled call: no further attempt is placed, and an attempt
/// still ringing is canceled (an answered one is left to finish). Canceling
/// a canceled call answers it unchanged.
#[utoipa::path(post, path = "/v1/scheduled-calls/{id}/cancel", tag = "scheduled-calls", security(("bearer" = [])),
    params(RecordRequest),
    responses(
        (status = 200, body = ScheduledCall),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already `completed` or `exhausted`"),
    ))]
pub async fn cancel_scheduled_call(
    RecordRequest(TenantRequest { state, principal }, id): RecordRequest,
) -> ApiResult<Json<ScheduledCall>> {
    let tenant_id = principal.tenant_id;
    let mut tx = state.db.begin().await?;
    let status: ScheduledCallStatus = sqlx::query_scalar(
        "SELECT status FROM scheduled_calls WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("scheduled call"))?;
    if status == ScheduledCallStatus::Canceled {
        let call = fetch_many(&mut tx, tenant_id, &[id]).await?.remove(0);
        return Ok(Json(call));
    }
    if status.is_final() {
        return Err(ApiError::conflict(
            "not_cancelable",
            format!("this scheduled call is already {}", status.as_str()),
        ));
    }
    sqlx::query(
        "UPDATE scheduled_calls SET status = $2, next_attempt_at = NULL,
            version = version + 1, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(ScheduledCallStatus::Canceled.as_str())
    .execute(&mut *tx)
    .await?;
    // An attempt still ringing is hung up; one already answered has someone
    // talking on it and finishes normally.
    let mut call_outcome = None;
    if status == ScheduledCallStatus::Dialing {
        let call_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT call_id FROM scheduled_call_attempts WHERE scheduled_call_id = $1
             ORDER BY attempt DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(call_id) = call_id {
            let current = lock_call(&mut tx, tenant_id, call_id).await?;
            if current.status.is_pre_answer() {
                let update = StatusUpdate {
                    to: CallStatus::Canceled,
                    at: Utc::now(),
                    duration: None,
                    source: EventSource::Api,
                    agent_id: None,
                    data: serde_json::json!({"reason": "scheduled_call_canceled"}),
                };
                call_outcome = Some(lifecycle::apply_locked(&mut tx, current, &update).await?);
            }
        }
    }
    let call = fetch_many(&mut tx, tenant_id, &[id]).await?.remove(0);
    tx.commit().await?;
    if let Some(outcome) = &call_outcome {
        lifecycle::after_status_commit(&state, outcome, EventSource::Api).await;
    }
    metrics::counter!("scheduled_calls_canceled_total").increment(1);
    publish(&state, std::slice::from_ref(&call)).await;
    Ok(Json(call))
}

/// A daily window in the tenant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallingHours {
    /// Local start time, `HH:MM` (24-hour).
    #[schema(example = "09:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// Local end time, `HH:MM`, exclusive; before `start` for a window past midnight.
    #[schema(example = "20:00", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
}

/// How the tenant's scheduled calls are placed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulingSettings {
    /// IANA time zone the calling hours are in (one of the names in the
    /// IANA database, which the pattern only shapes).
    #[schema(
        example = "America/New_York",
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
    )]
    pub timezone: String,
    /// When calls may be placed; null: any time. A call due outside waits
    /// for the next window's start.
    pub calling_hours: Option<CallingHours>,
    /// Most scheduled calls on the line at once (1–10 000); null: no cap.
    #[schema(minimum = 1, maximum = 10000)]
    pub max_concurrent_calls: Option<u32>,
}

fn parse_time(value: &str, field: &str) -> ApiResult<NaiveTime> {
    let valid = value.len() == 5 && value.as_bytes()[2] == b':';
    valid
        .then(|| NaiveTime::parse_from_str(value, "%H:%M").ok())
        .flatten()
        .ok_or_else(|| ApiError::validation(field.to_string(), "expected a time as HH:MM"))
}

/// A `tenant_scheduling` row: timezone, window start and end, cap.
type SettingsRow = (String, Option<NaiveTime>, Option<NaiveTime>, Option<i32>);

async fn load_settings(db: &sqlx::PgPool, tenant_id: Uuid) -> ApiResult<SchedulingSettings> {
    let row: Option<SettingsRow> = sqlx::query_as(
        "SELECT timezone, window_start, window_end, max_concurrent_calls
             FROM tenant_scheduling WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(db)
    .await?;
    let (timezone, start, end, cap) = row.unwrap_or(("UTC".into(), None, None, None));
    Ok(SchedulingSettings {
        timezone,
        calling_hours: start.zip(end).map(|(s, e)| CallingHours {
            start: s.format("%H:%M").to_string(),
            end: e.format("%H:%M").to_string(),
        }),
        max_concurrent_calls: cap.and_then(|c| u32::try_from(c).ok()),
    })
}

/// The tenant's scheduling settings (defaults: UTC, any time, no cap).
#[utoipa::path(get, path = "/v1/scheduling/settings", tag = "scheduled-calls", security(("bearer" = [])),
    responses(
        (status = 200, body = SchedulingSettings),
    ))]
pub async fn get_scheduling_settings(
    TenantRequest { state, principal }: TenantRequest,
) -> ApiResult<Json<SchedulingSettings>> {
    Ok(Json(load_settings(&state.db, principal.tenant_id).await?))
}

/// The shape of an IANA zone name (the document's pattern): ASCII letters,
/// digits, `_`, `+`, `-`, in `/`-separated parts, starting with a letter,
/// at most 64 characters. Whether the name exists is the database's question.
fn is_zone_name_shaped(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-');
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .split('/')
            .all(|part| !part.is_empty() && part.chars().all(allowed))
}

/// Sets the tenant's scheduling settings (admin). Calls already waiting are
/// judged against the new calling hours when they come due.
#[utoipa::path(put, path = "/v1/scheduling/settings", tag = "scheduled-calls", security(("bearer" = [])),
    responses(
        (status = 200, body = SchedulingSettings),
        (status = 400, body = ErrorBody, description = "Malformed JSON"),
        (status = 403, body = ErrorBody, description = "Not an admin"),
        (status = 422, body = ErrorBody, description = "Unknown time zone, a time not HH:MM, start equal to end, or a cap out of range"),
    ))]
pub async fn put_scheduling_settings(
    TenantRequest { state, principal }: TenantRequest,
    Json(req): Json<SchedulingSettings>,
) -> ApiResult<Json<SchedulingSettings>> {
    principal.require(Role::Admin)?;
    let timezone = req.timezone.as_str();
    if !is_zone_name_shaped(timezone) {
        return Err(ApiError::validation("timezone", "not a time zone name"));
    }
    let known: Option<String> =
        sqlx::query_scalar("SELECT name FROM pg_timezone_names WHERE name = $1")
            .bind(timezone)
            .fetch_optional(&state.db)
            .await?;
    let Some(timezone) = known else {
        return Err(ApiError::validation(
            "timezone",
            "not an IANA time zone name (e.g. America/New_York)",
        ));
    };
    let window = match &req.calling_hours {
        None => None,
        Some(hours) => {
            let start = parse_time(&hours.start, "calling_hours.start")?;
            let end = parse_time(&hours.end, "calling_hours.end")?;
            if start == end {
                return Err(ApiError::validation(
                    "calling_hours.end",
                    "end must differ from start",
                ));
            }
            Some((start, end))
        }
    };
    let cap = match req.max_concurrent_calls {
        None => None,
        Some(c @ 1..=10_000) => Some(c as i32),
        Some(_) => {
            return Err(ApiError::validation(
                "max_concurrent_calls",
                "max_concurrent_calls must be 1 to 10000",
            ));
        }
    };
    sqlx::query(
        "INSERT INTO tenant_scheduling (tenant_id, timezone, window_start, window_end, max_concurrent_calls)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id) DO UPDATE SET timezone = $2, window_start = $3, window_end = $4,
             max_concurrent_calls = $5, updated_at = now()",
    )
    .bind(principal.tenant_id)
    .bind(&timezone)
    .bind(window.map(|w| w.0))
    .bind(window.map(|w| w.1))
    .bind(cap)
    .execute(&state.db)
    .await?;
    Ok(Json(load_settings(&state.db, principal.tenant_id).await?))
}

#[cfg(test)]
mod tests {
    use super::is_zone_name_shaped;

    #[test]
    fn zone_names_are_shaped_like_the_iana_database() {
        for name in [
            "UTC",
            "America/New_York",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "EST5EDT",
        ] {
            assert!(is_zone_name_shaped(name), "{name}");
        }
        for name in [
            "",
            " UTC",
            "America//New_York",
            "America/",
            "/UTC",
            "5EST",
            "Europe/Paris\u{0}",
            "\u{1d47b}he",
        ] {
            assert!(!is_zone_name_shaped(name), "{name:?}");
        }
    }
}

//! Reports: summary buckets, call detail records and per-agent statistics.
//!
//! Each report is one SQL statement over the covering indexes
//! (`calls_report_idx`, `messages_tenant_created_idx`,
//! `voicemails_tenant_created_idx`), so PostgreSQL answers from index-only
//! scans of the requested range. Time ranges are half-open `[from, to)`,
//! in UTC; buckets are aligned to UTC hours or days.

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::calls::{CallStatus, Direction};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::Principal,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{Json, Query},
    pagination::{self, Page},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(call_records))
        .routes(routes!(agent_stats))
}

/// The longest range one report may cover.
const MAX_RANGE_DAYS: i64 = 366;
/// Hourly buckets are limited to a month (744 buckets).
const MAX_HOURLY_DAYS: i64 = 31;

fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default: Duration,
    max: Duration,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - default);
    if from >= to {
        return Err(
            ApiError::bad_request("invalid_query", "from must be before to").with_field("from"),
        );
    }
    if to - from > max {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "the range may span at most {} days at this granularity",
                max.num_days()
            ),
        )
        .with_field("from"));
    }
    Ok((from, to))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start (inclusive, RFC 3339). Default: 24 hours (hour) or 30 days (day) before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339). Default: now.
    pub to: Option<DateTime<Utc>>,
    /// `hour` (default) or `day`.
    pub granularity: Option<String>,
}

/// Calls in a bucket.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CallStats {
    pub total: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub completed: i64,
    pub busy: i64,
    pub no_answer: i64,
    pub failed: i64,
    pub canceled: i64,
    /// Still queued, ringing or in progress.
    pub live: i64,
    /// Calls that were answered.
    pub answered: i64,
    /// answered / total (0 when there were no calls).
    #[sqlx(default)]
    pub answer_rate: f64,
    /// Talk time of completed calls.
    pub talk_seconds_total: i64,
    pub talk_seconds_avg: Option<f64>,
    pub talk_seconds_p50: Option<f64>,
    pub talk_seconds_p90: Option<f64>,
}

/// Messages in a bucket.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct MessageStats {
    pub total: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub undelivered: i64,
    pub failed: i64,
    pub received: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SummaryBucket {
    /// The bucket's start (UTC).
    pub start: DateTime<Utc>,
    pub calls: CallStats,
    pub messages: MessageStats,
    pub voicemails: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: String,
    /// Every bucket of the range, empty ones included, oldest first.
    pub buckets: Vec<SummaryBucket>,
    /// The whole range.
    pub totals: SummaryBucket,
}

/// The calls aggregate, shared by the per-bucket and whole-range queries.
const CALL_AGGREGATES: &str = "
    count(*) AS total,
    count(*) FILTER (WHERE direction = 'inbound') AS inbound,
    count(*) FILTER (WHERE direction = 'outbound') AS outbound,
    count(*) FILTER (WHERE status = 'completed') AS completed,
    count(*) FILTER (WHERE status = 'busy') AS busy,
    count(*) FILTER (WHERE status = 'no-answer') AS no_answer,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'canceled') AS canceled,
    count(*) FILTER (WHERE status IN ('queued', 'ringing', 'in-progress')) AS live,
    count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
    coalesce(sum(duration_seconds) FILTER (WHERE status = 'completed'), 0)::bigint AS talk_seconds_total,
    (avg(duration_seconds) FILTER (WHERE status = 'completed'))::float8 AS talk_seconds_avg,
    (percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds) FILTER (WHERE status = 'completed'))::float8 AS talk_seconds_p50,
    (percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_seconds) FILTER (WHERE status = 'completed'))::float8 AS talk_seconds_p90";

const MESSAGE_AGGREGATES: &str = "
    count(*) AS total,
    count(*) FILTER (WHERE direction = 'inbound') AS inbound,
    count(*) FILTER (WHERE direction = 'outbound') AS outbound,
    count(*) FILTER (WHERE status = 'queued') AS queued,
    count(*) FILTER (WHERE status = 'sending') AS sending,
    count(*) FILTER (WHERE status = 'sent') AS sent,
    count(*) FILTER (WHERE status = 'delivered') AS delivered,
    count(*) FILTER (WHERE status = 'undelivered') AS undelivered,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'received') AS received";

#[derive(sqlx::FromRow)]
struct BucketRow {
    /// NULL for the whole-range row of the grouping sets.
    start: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    calls: CallStats,
}

#[derive(sqlx::FromRow)]
struct MessageBucketRow {
    start: DateTime<Utc>,
    #[sqlx(flatten)]
    messages: MessageStats,
}

/// Calls, messages and voicemails per hour or day.
#[utoipa::path(get, path = "/v1/reports/summary", tag = "reports", security(("bearer" = [])),
    params(SummaryQuery),
    responses(
        (status = 200, body = Summary),
        (status = 400, body = ErrorBody, description = "Bad range or granularity"),
        (status = 401, body = ErrorBody),
    ))]
pub async fn summary(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<SummaryQuery>,
) -> ApiResult<Json<Summary>> {
    let granularity = match query.granularity.as_deref() {
        None | Some("hour") => "hour",
        Some("day") => "day",
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_query", "granularity must be hour or day")
                    .with_field("granularity"),
            );
        }
    };
    let (default, max) = if granularity == "hour" {
        (Duration::hours(24), Duration::days(MAX_HOURLY_DAYS))
    } else {
        (Duration::days(30), Duration::days(MAX_RANGE_DAYS))
    };
    let (from, to) = range(query.from, query.to, default, max)?;
    let tenant = principal.tenant_id;

    // One scan gives every bucket and the whole-range row (start NULL).
    let calls = sqlx::query_as::<_, BucketRow>(sqlx::AssertSqlSafe(format!(
        "SELECT date_trunc($4, created_at, 'UTC') AS start, {CALL_AGGREGATES}
         FROM calls WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY GROUPING SETS ((date_trunc($4, created_at, 'UTC')), ()) ORDER BY 1 NULLS LAST"
    )))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(granularity)
    .fetch_all(&state.db);
    let messages = sqlx::query_as::<_, MessageBucketRow>(sqlx::AssertSqlSafe(format!(
        "SELECT date_trunc($4, created_at, 'UTC') AS start, {MESSAGE_AGGREGATES}
         FROM messages WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY 1 ORDER BY 1"
    )))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(granularity)
    .fetch_all(&state.db);
    let voicemails = sqlx::query_as::<_, (DateTime<Utc>, i64)>(
        "SELECT date_trunc($4, created_at, 'UTC'), count(*)
         FROM voicemails WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(granularity)
    .fetch_all(&state.db);
    // Three independent reads on three pooled connections.
    let (mut calls, messages, voicemails) = tokio::try_join!(calls, messages, voicemails)?;
    let mut call_totals = match calls.last() {
        Some(row) if row.start.is_none() => calls.pop().map(|r| r.calls).unwrap_or_default(),
        _ => CallStats::default(),
    };

    let step = if granularity == "hour" {
        Duration::hours(1)
    } else {
        Duration::days(1)
    };
    let mut buckets = Vec::new();
    let mut start = truncate(from, granularity);
    let (mut calls, mut messages, mut voicemails) = (
        calls.into_iter().peekable(),
        messages.into_iter().peekable(),
        voicemails.into_iter().peekable(),
    );
    let mut message_totals = MessageStats::default();
    let mut voicemail_total = 0;
    while start < to {
        let mut bucket = SummaryBucket {
            start,
            calls: CallStats::default(),
            messages: MessageStats::default(),
            voicemails: 0,
        };
        if calls.peek().is_some_and(|r| r.start == Some(start)) {
            bucket.calls = calls.next().map(|r| r.calls).unwrap_or_default();
        }
        if messages.peek().is_some_and(|r| r.start == start) {
            bucket.messages = messages.next().map(|r| r.messages).unwrap_or_default();
        }
        if voicemails.peek().is_some_and(|r| r.0 == start) {
            bucket.voicemails = voicemails.next().map(|r| r.1).unwrap_or_default();
        }
        bucket.calls.answer_rate = rate(bucket.calls.answered, bucket.calls.total);
        add_messages(&mut message_totals, &bucket.messages);
        voicemail_total += bucket.voicemails;
        buckets.push(bucket);
        start += step;
    }
    call_totals.answer_rate = rate(call_totals.answered, call_totals.total);
    Ok(Json(Summary {
        from,
        to,
        granularity: granularity.to_string(),
        totals: SummaryBucket {
            start: from,
            calls: call_totals,
            messages: message_totals,
            voicemails: voicemail_total,
        },
        buckets,
    }))
}

fn truncate(at: DateTime<Utc>, granularity: &str) -> DateTime<Utc> {
    let secs = if granularity == "hour" { 3600 } else { 86_400 };
    let t = at.timestamp();
    DateTime::from_timestamp(t - t.rem_euclid(secs), 0).unwrap_or(at)
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn add_messages(total: &mut MessageStats, bucket: &MessageStats) {
    total.total += bucket.total;
    total.inbound += bucket.inbound;
    total.outbound += bucket.outbound;
    total.queued += bucket.queued;
    total.sending += bucket.sending;
    total.sent += bucket.sent;
    total.delivered += bucket.delivered;
    total.undelivered += bucket.undelivered;
    total.failed += bucket.failed;
    total.received += bucket.received;
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallRecordsQuery {
    /// Start (inclusive, RFC 3339). Default: 24 hours before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339). Default: now.
    pub to: Option<DateTime<Utc>>,
    /// Only calls in this status.
    #[param(value_type = Option<String>)]
    pub status: Option<CallStatus>,
    /// `outbound` or `inbound`.
    #[param(value_type = Option<String>)]
    pub direction: Option<Direction>,
    pub agent_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    /// Only calls with at least this much talk time.
    pub min_talk_seconds: Option<u32>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// One call detail record.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CallRecord {
    pub call_id: Uuid,
    pub direction: String,
    pub from: String,
    pub to: String,
    /// The final (or current) status.
    pub status: String,
    pub agent_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// From creation to answer (or to the end, if unanswered).
    pub ring_seconds: Option<f64>,
    pub talk_seconds: Option<i32>,
}

/// Call detail records, newest first.
#[utoipa::path(get, path = "/v1/reports/calls", tag = "reports", security(("bearer" = [])),
    params(CallRecordsQuery),
    responses(
        (status = 200, body = Page<CallRecord>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn call_records(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<CallRecordsQuery>,
) -> ApiResult<Json<Page<CallRecord>>> {
    let (from, to) = range(
        query.from,
        query.to,
        Duration::hours(24),
        Duration::days(MAX_RANGE_DAYS),
    )?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_id_cursor(query.cursor.as_deref())?;
    let rows: Vec<CallRecord> = sqlx::query_as(
        "SELECT id AS call_id, direction, from_number AS \"from\", to_number AS \"to\", status, agent_id,
                customer_id, created_at AS started_at, answered_at, ended_at,
                extract(epoch FROM (coalesce(answered_at, ended_at) - created_at))::float8 AS ring_seconds,
                duration_seconds AS talk_seconds
         FROM calls
         WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
           AND ($4::uuid IS NULL OR id < $4)
           AND ($5::text IS NULL OR status = $5)
           AND ($6::text IS NULL OR direction = $6)
           AND ($7::uuid IS NULL OR agent_id = $7)
           AND ($8::uuid IS NULL OR customer_id = $8)
           AND ($9::int IS NULL OR duration_seconds >= $9)
         ORDER BY id DESC LIMIT $10",
    )
    .bind(principal.tenant_id)
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(query.status.map(CallStatus::as_str))
    .bind(query.direction.map(Direction::as_str))
    .bind(query.agent_id)
    .bind(query.customer_id)
    .bind(query.min_talk_seconds.map(|s| i32::try_from(s).unwrap_or(i32::MAX)))
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(pagination::page(rows, limit, |r| {
        pagination::encode_id_cursor(r.call_id)
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentStatsQuery {
    /// Start (inclusive, RFC 3339). Default: 24 hours before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339). Default: now.
    pub to: Option<DateTime<Utc>>,
}

/// One agent's numbers over the range.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct AgentStats {
    pub agent_id: Uuid,
    pub name: String,
    pub email: String,
    /// Calls assigned to the agent.
    pub calls_handled: i64,
    pub inbound: i64,
    pub outbound: i64,
    /// Calls the agent talked on.
    pub answered: i64,
    pub talk_seconds_total: i64,
    /// Average talk time of the agent's completed calls.
    pub average_handle_seconds: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every agent of the tenant, busiest first.
    pub data: Vec<AgentStats>,
}

/// Per-agent statistics.
#[utoipa::path(get, path = "/v1/reports/agents", tag = "reports", security(("bearer" = [])),
    params(AgentStatsQuery),
    responses(
        (status = 200, body = AgentReport),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn agent_stats(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<AgentStatsQuery>,
) -> ApiResult<Json<AgentReport>> {
    let (from, to) = range(
        query.from,
        query.to,
        Duration::hours(24),
        Duration::days(MAX_RANGE_DAYS),
    )?;
    let data: Vec<AgentStats> = sqlx::query_as(
        "WITH per_agent AS (
            SELECT agent_id,
                   count(*) AS calls_handled,
                   count(*) FILTER (WHERE direction = 'inbound') AS inbound,
                   count(*) FILTER (WHERE direction = 'outbound') AS outbound,
                   count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
                   coalesce(sum(duration_seconds) FILTER (WHERE status = 'completed'), 0)::bigint AS talk_seconds_total,
                   (avg(duration_seconds) FILTER (WHERE status = 'completed'))::float8 AS average_handle_seconds
            FROM calls
            WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 AND agent_id IS NOT NULL
            GROUP BY agent_id)
         SELECT a.id AS agent_id, a.name, a.email,
                coalesce(p.calls_handled, 0) AS calls_handled, coalesce(p.inbound, 0) AS inbound,
                coalesce(p.outbound, 0) AS outbound, coalesce(p.answered, 0) AS answered,
                coalesce(p.talk_seconds_total, 0) AS talk_seconds_total, p.average_handle_seconds
         FROM agents a LEFT JOIN per_agent p ON p.agent_id = a.id
         WHERE a.tenant_id = $1
         ORDER BY calls_handled DESC, a.email",
    )
    .bind(principal.tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(AgentReport { from, to, data }))
}

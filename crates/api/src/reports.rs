//! Reports: summary buckets, call detail records and per-agent statistics.
//!
//! The summary and the agents report read the hourly rollups the worker
//! keeps (`switchboard_core::reports`) for whole hours that can no longer
//! change, and aggregate the rest — the live tail, and a partial first hour
//! — from the covering indexes (`calls_report_idx`,
//! `messages_tenant_created_idx`, `voicemails_tenant_created_idx`). Talk-time
//! percentiles are exact either way. Call detail records are read from
//! `calls` directly. Time ranges are half-open `[from, to)`, in UTC; buckets
//! are aligned to UTC hours or days.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::calls::{CallStatus, Direction};
use switchboard_core::reports::{self, HourStats};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::TenantRequest;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Query};
use crate::messages::MessageCounts;
use crate::pagination::{Listing, Page};
use crate::state::AppState;

/// The routes of reports, with their OpenAPI descriptions.
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

/// The query string of `GET /v1/reports/summary`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start (inclusive, RFC 3339). Default: 24 hours (hour) or 30 days (day) before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339). Default: now.
    pub to: Option<DateTime<Utc>>,
    /// The buckets' size (default `hour`).
    pub granularity: Option<Granularity>,
}

switchboard_core::text_enum! {
    /// The size of a summary's buckets: `hour` or `day`.
    #[derive(Default)]
    pub enum Granularity {
        /// Hours (UTC), for ranges of a month at most.
        #[default]
        Hour = "hour",
        /// Days (UTC), for ranges of a year at most.
        Day = "day",
    }
}

/// Calls in a bucket.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CallStats {
    /// Calls created.
    pub total: i64,
    /// Inbound calls.
    pub inbound: i64,
    /// Outbound calls.
    pub outbound: i64,
    /// Calls that ended `completed`.
    pub completed: i64,
    /// Calls that ended `busy`.
    pub busy: i64,
    /// Calls that ended `no-answer`.
    pub no_answer: i64,
    /// Calls that ended `failed`.
    pub failed: i64,
    /// Calls that ended `canceled`.
    pub canceled: i64,
    /// Still queued, ringing or in progress.
    pub live: i64,
    /// Calls that were answered.
    pub answered: i64,
    /// answered / total (0 when there were no calls).
    pub answer_rate: f64,
    /// Talk time of completed calls.
    pub talk_seconds_total: i64,
    /// Average talk time of completed calls.
    pub talk_seconds_avg: Option<f64>,
    /// Median talk time of completed calls.
    pub talk_seconds_p50: Option<f64>,
    /// 90th percentile talk time of completed calls.
    pub talk_seconds_p90: Option<f64>,
}

/// Messages in a bucket.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct MessageStats {
    /// Messages created.
    pub total: i64,
    /// Inbound messages.
    pub inbound: i64,
    /// Outbound messages.
    pub outbound: i64,
    /// Outbound messages by status.
    #[serde(flatten)]
    pub by_status: MessageCounts,
    /// Inbound messages received.
    pub received: i64,
}

/// Activity in one bucket of time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SummaryBucket {
    /// The bucket's start (UTC).
    pub start: DateTime<Utc>,
    /// Calls created in the bucket.
    pub calls: CallStats,
    /// Messages created in the bucket.
    pub messages: MessageStats,
    /// Voicemails left (and not deleted since).
    pub voicemails: i64,
}

/// The tenant's activity over a range, bucket by bucket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// The range's start (inclusive).
    pub from: DateTime<Utc>,
    /// The range's end (exclusive).
    pub to: DateTime<Utc>,
    /// The buckets' size.
    pub granularity: Granularity,
    /// Every bucket of the range, empty ones included, oldest first.
    pub buckets: Vec<SummaryBucket>,
    /// The whole range.
    pub totals: SummaryBucket,
}

/// Calls, messages and voicemails per hour or day.
#[utoipa::path(get, path = "/v1/reports/summary", tag = "reports", security(("bearer" = [])),
    params(SummaryQuery),
    responses(
        (status = 200, body = Summary),
        (status = 400, body = ErrorBody, description = "Bad range or granularity"),
    ))]
pub async fn summary(
    TenantRequest { state, principal }: TenantRequest,
    Query(query): Query<SummaryQuery>,
) -> ApiResult<Json<Summary>> {
    let granularity = query.granularity.unwrap_or_default();
    let hourly = granularity == Granularity::Hour;
    let step = if hourly {
        Duration::hours(1)
    } else {
        Duration::days(1)
    };
    let bucket_of: fn(DateTime<Utc>) -> DateTime<Utc> = if hourly {
        reports::floor_hour
    } else {
        reports::floor_day
    };
    let (default, max) = if hourly {
        (Duration::hours(24), Duration::days(MAX_HOURLY_DAYS))
    } else {
        (Duration::days(30), Duration::days(MAX_RANGE_DAYS))
    };
    let (from, to) = range(query.from, query.to, default, max)?;
    let hours = reports::hourly(&state.db, principal.tenant_id, from, to).await?;

    let mut hours = hours.into_iter().peekable();
    let mut buckets = Vec::new();
    let mut start = bucket_of(from);
    while start < to {
        let end = start + step;
        let mut in_bucket = Vec::new();
        while let Some((_, hour)) = hours.next_if(|(at, _)| *at < end) {
            in_bucket.push(hour);
        }
        buckets.push((start, HourStats::combine(&in_bucket)));
        start = end;
    }
    let totals = HourStats::combine(buckets.iter().map(|(_, stats)| stats));
    let buckets = buckets
        .iter()
        .map(|(start, stats)| summary_bucket(*start, stats))
        .collect();
    Ok(Json(Summary {
        from,
        to,
        granularity,
        totals: summary_bucket(from, &totals),
        buckets,
    }))
}

fn summary_bucket(start: DateTime<Utc>, stats: &HourStats) -> SummaryBucket {
    let c = stats.calls;
    let m = stats.messages;
    SummaryBucket {
        start,
        calls: CallStats {
            total: c.total,
            inbound: c.inbound,
            outbound: c.outbound,
            completed: c.completed,
            busy: c.busy,
            no_answer: c.no_answer,
            failed: c.failed,
            canceled: c.canceled,
            live: c.live,
            answered: c.answered,
            answer_rate: if c.total == 0 {
                0.0
            } else {
                c.answered as f64 / c.total as f64
            },
            talk_seconds_total: stats.talk.sum(),
            talk_seconds_avg: stats.talk.mean(),
            talk_seconds_p50: stats.talk.percentile(0.5),
            talk_seconds_p90: stats.talk.percentile(0.9),
        },
        messages: MessageStats {
            total: m.total,
            inbound: m.inbound,
            outbound: m.outbound,
            by_status: MessageCounts::from(&m),
            received: m.received,
        },
        voicemails: stats.voicemails,
    }
}

/// The query string of `GET /v1/reports/calls`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CallRecordsQuery {
    /// Start (inclusive, RFC 3339). Default: 24 hours before `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, RFC 3339). Default: now.
    pub to: Option<DateTime<Utc>>,
    /// Only calls in this status.
    pub status: Option<CallStatus>,
    /// Only calls going this way.
    pub direction: Option<Direction>,
    /// Only calls of this agent.
    pub agent_id: Option<Uuid>,
    /// Only calls with this customer.
    pub customer_id: Option<Uuid>,
    /// Only calls with at least this much talk time.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_f64)]
    pub min_talk_seconds: Option<u32>,
}

/// One call detail record.
#[derive(Debug, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct CallRecord {
    /// The call's id.
    pub call_id: Uuid,
    /// Which way the call went.
    pub direction: Direction,
    /// E.164.
    pub from: String,
    /// E.164.
    pub to: String,
    /// The final (or current) status.
    pub status: CallStatus,
    /// The agent on the call, when one was.
    pub agent_id: Option<Uuid>,
    /// The customer on the other end, when known.
    pub customer_id: Option<Uuid>,
    /// When the call was created.
    pub started_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// From creation to answer (or to the end, if unanswered).
    pub ring_seconds: Option<f64>,
    /// Talk time: answer to hang-up.
    pub talk_seconds: Option<i32>,
}

/// Call detail records, newest first.
#[utoipa::path(get, path = "/v1/reports/calls", tag = "reports", security(("bearer" = [])),
    params(Listing<CallRecordsQuery>),
    responses(
        (status = 200, body = Page<CallRecord>),
    ))]
pub async fn call_records(
    TenantRequest { state, principal }: TenantRequest,
    Listing(query, request): Listing<CallRecordsQuery>,
) -> ApiResult<Json<Page<CallRecord>>> {
    let (from, to) = range(
        query.from,
        query.to,
        Duration::hours(24),
        Duration::days(MAX_RANGE_DAYS),
    )?;
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
    .bind(request.after)
    .bind(query.status.map(CallStatus::as_str))
    .bind(query.direction.map(Direction::as_str))
    .bind(query.agent_id)
    .bind(query.customer_id)
    .bind(query.min_talk_seconds.map(|s| i32::try_from(s).unwrap_or(i32::MAX)))
    .bind(request.fetch())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(request.page(rows, |r| r.call_id)))
}

/// The query string of `GET /v1/reports/agents`.
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
    /// The agent's id.
    pub agent_id: Uuid,
    /// The agent's display name.
    pub name: String,
    /// The agent's login email.
    pub email: String,
    /// Calls assigned to the agent.
    pub calls_handled: i64,
    /// Inbound calls among them.
    pub inbound: i64,
    /// Outbound calls among them.
    pub outbound: i64,
    /// Calls the agent talked on.
    pub answered: i64,
    /// Talk time of the agent's completed calls.
    pub talk_seconds_total: i64,
    /// Average talk time of the agent's completed calls.
    pub average_handle_seconds: Option<f64>,
}

/// Every agent's numbers over a range.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentReport {
    /// The range's start (inclusive).
    pub from: DateTime<Utc>,
    /// The range's end (exclusive).
    pub to: DateTime<Utc>,
    /// Every agent of the tenant, busiest first.
    pub data: Vec<AgentStats>,
}

/// Per-agent statistics.
#[utoipa::path(get, path = "/v1/reports/agents", tag = "reports", security(("bearer" = [])),
    params(AgentStatsQuery),
    responses(
        (status = 200, body = AgentReport),
    ))]
pub async fn agent_stats(
    TenantRequest { state, principal }: TenantRequest,
    Query(query): Query<AgentStatsQuery>,
) -> ApiResult<Json<AgentReport>> {
    let (from, to) = range(
        query.from,
        query.to,
        Duration::hours(24),
        Duration::days(MAX_RANGE_DAYS),
    )?;
    let rolled = reports::rolled_through(&state.db, principal.tenant_id).await?;
    let plan = reports::Plan::new(from, to, rolled);
    // Rolled hours from `agent_rollups_hourly`, the rest live: the same
    // per-hour aggregate the rollups were made from, over each live part.
    let data: Vec<AgentStats> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH parts AS (
            SELECT agent_id, calls_handled, inbound, outbound, answered, talk_calls, talk_seconds_sum
            FROM agent_rollups_hourly WHERE tenant_id = $1 AND bucket >= $4 AND bucket < $5
            UNION ALL
            SELECT agent_id, calls_handled, inbound, outbound, answered, talk_calls, talk_seconds_sum
            FROM ({live_head}) head
            UNION ALL
            SELECT agent_id, calls_handled, inbound, outbound, answered, talk_calls, talk_seconds_sum
            FROM ({live_tail}) tail),
         per_agent AS (
            SELECT agent_id, sum(calls_handled)::bigint AS calls_handled,
                   sum(inbound)::bigint AS inbound, sum(outbound)::bigint AS outbound,
                   sum(answered)::bigint AS answered, sum(talk_calls)::bigint AS talk_calls,
                   sum(talk_seconds_sum)::bigint AS talk_seconds_total
            FROM parts GROUP BY agent_id)
         SELECT a.id AS agent_id, a.name, a.email,
                coalesce(p.calls_handled, 0) AS calls_handled, coalesce(p.inbound, 0) AS inbound,
                coalesce(p.outbound, 0) AS outbound, coalesce(p.answered, 0) AS answered,
                coalesce(p.talk_seconds_total, 0) AS talk_seconds_total,
                (p.talk_seconds_total::float8 / nullif(p.talk_calls, 0)) AS average_handle_seconds
         FROM agents a LEFT JOIN per_agent p ON p.agent_id = a.id
         WHERE a.tenant_id = $1
         ORDER BY calls_handled DESC, a.email",
        live_head = reports::agent_hourly_aggregate("$2", "$4"),
        live_tail = reports::agent_hourly_aggregate("$5", "$3"),
    )))
    .bind(principal.tenant_id)
    .bind(plan.from)
    .bind(plan.to)
    .bind(plan.rolled.0)
    .bind(plan.rolled.1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(AgentReport { from, to, data }))
}

//! Report aggregation, shared by the API (which answers reports) and the
//! worker and the seeder (which keep hourly rollups of them).
//!
//! A tenant's history is split at `report_rollup_state.rolled_through`:
//! every UTC hour before it is in `report_rollups_hourly` and
//! `agent_rollups_hourly`; from it onwards reports aggregate the calls,
//! messages and voicemails themselves (the live tail). Both halves come from
//! one aggregation ([`HOURLY_AGGREGATE`]), so a rolled hour holds exactly
//! what the live query would have said about it.
//!
//! An hour is rolled once it ended [`SETTLE`] ago and no call created in it
//! is still live and no message still `queued` or `sending` — so what a
//! rolled hour says no longer changes. Two late changes are applied to the
//! rollups where they happen instead: a delivery receipt for a `sent`
//! message (the API's SMS status webhook moves the message between status
//! counts of its rolled hour; carriers may send receipts late or never, so
//! `sent` does not hold the rollups back) and a deleted voicemail. Calls and
//! messages still open [`OPEN_HORIZON`] after they were created stop holding
//! the rollups back and are counted in the status they had (the sweeper gave
//! up on them after a day). Talk times are kept as an exact distribution
//! (distinct durations and counts), so percentiles over months equal the
//! ones computed over the calls.
//!
//! Known gap: a receipt or a voicemail deletion committed while the rollup
//! of that very hour is being written (a few milliseconds, once per hour)
//! can be missed by both, leaving that hour's count off by one.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// How long after an hour ends before it may be rolled: longer than any
/// transaction that could still insert a row timestamped in it.
pub const SETTLE: Duration = Duration::minutes(5);
/// Calls and messages still open this long after creation no longer hold the
/// rollups back (the sweeper gives up on them after a day).
pub const OPEN_HORIZON: Duration = Duration::hours(48);
/// One rollup transaction covers at most this much history.
const CHUNK: Duration = Duration::days(7);

/// Calls per hour.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct CallCounts {
    #[sqlx(rename = "calls_total")]
    pub total: i64,
    #[sqlx(rename = "calls_inbound")]
    pub inbound: i64,
    #[sqlx(rename = "calls_outbound")]
    pub outbound: i64,
    #[sqlx(rename = "calls_completed")]
    pub completed: i64,
    #[sqlx(rename = "calls_busy")]
    pub busy: i64,
    #[sqlx(rename = "calls_no_answer")]
    pub no_answer: i64,
    #[sqlx(rename = "calls_failed")]
    pub failed: i64,
    #[sqlx(rename = "calls_canceled")]
    pub canceled: i64,
    /// Still queued, ringing or in progress.
    #[sqlx(rename = "calls_live")]
    pub live: i64,
    #[sqlx(rename = "calls_answered")]
    pub answered: i64,
}

impl std::ops::AddAssign for CallCounts {
    fn add_assign(&mut self, o: Self) {
        self.total += o.total;
        self.inbound += o.inbound;
        self.outbound += o.outbound;
        self.completed += o.completed;
        self.busy += o.busy;
        self.no_answer += o.no_answer;
        self.failed += o.failed;
        self.canceled += o.canceled;
        self.live += o.live;
        self.answered += o.answered;
    }
}

/// Messages per hour.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageCounts {
    #[sqlx(rename = "messages_total")]
    pub total: i64,
    #[sqlx(rename = "messages_inbound")]
    pub inbound: i64,
    #[sqlx(rename = "messages_outbound")]
    pub outbound: i64,
    #[sqlx(rename = "messages_queued")]
    pub queued: i64,
    #[sqlx(rename = "messages_sending")]
    pub sending: i64,
    #[sqlx(rename = "messages_sent")]
    pub sent: i64,
    #[sqlx(rename = "messages_delivered")]
    pub delivered: i64,
    #[sqlx(rename = "messages_undelivered")]
    pub undelivered: i64,
    #[sqlx(rename = "messages_failed")]
    pub failed: i64,
    #[sqlx(rename = "messages_received")]
    pub received: i64,
}

impl std::ops::AddAssign for MessageCounts {
    fn add_assign(&mut self, o: Self) {
        self.total += o.total;
        self.inbound += o.inbound;
        self.outbound += o.outbound;
        self.queued += o.queued;
        self.sending += o.sending;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.undelivered += o.undelivered;
        self.failed += o.failed;
        self.received += o.received;
    }
}

/// Talk times of completed calls: (seconds, how many calls talked that
/// long), ascending by seconds, each value once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TalkTimes(Vec<(i32, i64)>);

impl TalkTimes {
    /// From (seconds, calls) pairs in any order.
    pub fn from_pairs(pairs: &[(i32, i64)]) -> Self {
        Self::normalized(pairs.to_vec())
    }

    /// From the rollups' encoding: (seconds, calls) pairs of big-endian
    /// int4s (PostgreSQL's `int4send`). A trailing partial pair is ignored.
    fn from_be_pairs(bytes: &[u8]) -> Self {
        let pairs = bytes
            .chunks_exact(8)
            .map(|pair| {
                let (value, count) = pair.split_at(4);
                let int = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                (int(value), i64::from(int(count)))
            })
            .collect();
        Self::normalized(pairs)
    }

    /// Sorts by value and adds up the counts of equal values.
    fn normalized(mut pairs: Vec<(i32, i64)>) -> Self {
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.sort_unstable_by_key(|(value, _)| *value);
            // `later` is dropped when equal to `kept`, its count added.
            pairs.dedup_by(|later, kept| {
                let equal = later.0 == kept.0;
                if equal {
                    kept.1 += later.1;
                }
                equal
            });
        }
        TalkTimes(pairs)
    }

    pub fn count(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    pub fn sum(&self) -> i64 {
        self.0.iter().map(|(v, n)| i64::from(*v) * n).sum()
    }

    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum() as f64 / n as f64)
    }

    /// The `p` quantile (0 ≤ p ≤ 1), interpolated between the two nearest
    /// ranks exactly as PostgreSQL's `percentile_cont` does.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let position = p.clamp(0.0, 1.0) * (n - 1) as f64;
        let (lower, upper) = (position.floor() as i64, position.ceil() as i64);
        let (low, high) = (self.at_rank(lower), self.at_rank(upper));
        Some(low + (high - low) * (position - lower as f64))
    }

    /// The value at 0-based `rank` in ascending order.
    fn at_rank(&self, rank: i64) -> f64 {
        let mut seen = 0;
        for (value, count) in &self.0 {
            seen += count;
            if rank < seen {
                return f64::from(*value);
            }
        }
        self.0.last().map_or(0.0, |(v, _)| f64::from(*v))
    }
}

/// One UTC hour of a tenant's activity (or several combined).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HourStats {
    pub calls: CallCounts,
    pub talk: TalkTimes,
    pub messages: MessageCounts,
    pub voicemails: i64,
}

impl HourStats {
    /// Several hours (or buckets of hours) as one: counts added, talk-time
    /// distributions merged (one sort for all of them).
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a HourStats>) -> HourStats {
        let mut total = HourStats::default();
        let mut talk = Vec::new();
        for part in parts {
            total.calls += part.calls;
            total.messages += part.messages;
            total.voicemails += part.voicemails;
            talk.extend_from_slice(&part.talk.0);
        }
        total.talk = TalkTimes::normalized(talk);
        total
    }
}

/// A row of [`HOURLY_AGGREGATE`] or of `report_rollups_hourly`: same columns.
#[derive(sqlx::FromRow)]
struct HourRow {
    bucket: DateTime<Utc>,
    #[sqlx(flatten)]
    calls: CallCounts,
    talk: Vec<u8>,
    #[sqlx(flatten)]
    messages: MessageCounts,
    voicemails: i64,
}

impl HourRow {
    fn into_stats(self) -> (DateTime<Utc>, HourStats) {
        (
            self.bucket,
            HourStats {
                calls: self.calls,
                talk: TalkTimes::from_be_pairs(&self.talk),
                messages: self.messages,
                voicemails: self.voicemails,
            },
        )
    }
}

/// The columns of `report_rollups_hourly` after `(tenant_id, bucket)`.
const HOUR_COLUMNS: &str = "calls_total, calls_inbound, calls_outbound, calls_completed,
    calls_busy, calls_no_answer, calls_failed, calls_canceled, calls_live, calls_answered,
    talk, messages_total, messages_inbound, messages_outbound,
    messages_queued, messages_sending, messages_sent, messages_delivered,
    messages_undelivered, messages_failed, messages_received, voicemails";

/// Tenant `$1`'s activity per UTC hour created in `[$2, $3)`: one row per
/// hour with any, columns as in `report_rollups_hourly`. Index-only scans of
/// `calls_report_idx`, `messages_tenant_created_idx` and
/// `voicemails_tenant_created_idx`.
const HOURLY_AGGREGATE: &str = "
WITH c AS (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket,
           count(*) AS calls_total,
           count(*) FILTER (WHERE direction = 'inbound') AS calls_inbound,
           count(*) FILTER (WHERE direction = 'outbound') AS calls_outbound,
           count(*) FILTER (WHERE status = 'completed') AS calls_completed,
           count(*) FILTER (WHERE status = 'busy') AS calls_busy,
           count(*) FILTER (WHERE status = 'no-answer') AS calls_no_answer,
           count(*) FILTER (WHERE status = 'failed') AS calls_failed,
           count(*) FILTER (WHERE status = 'canceled') AS calls_canceled,
           count(*) FILTER (WHERE status IN ('queued', 'ringing', 'in-progress')) AS calls_live,
           count(*) FILTER (WHERE answered_at IS NOT NULL) AS calls_answered
    FROM calls WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1),
t AS (
    SELECT bucket, string_agg(int4send(seconds) || int4send(n), ''::bytea ORDER BY seconds) AS talk
    FROM (SELECT date_trunc('hour', created_at, 'UTC') AS bucket, duration_seconds AS seconds,
                 count(*)::int AS n
          FROM calls
          WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
            AND status = 'completed' AND duration_seconds IS NOT NULL
          GROUP BY 1, 2) d
    GROUP BY bucket),
m AS (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket,
           count(*) AS messages_total,
           count(*) FILTER (WHERE direction = 'inbound') AS messages_inbound,
           count(*) FILTER (WHERE direction = 'outbound') AS messages_outbound,
           count(*) FILTER (WHERE status = 'queued') AS messages_queued,
           count(*) FILTER (WHERE status = 'sending') AS messages_sending,
           count(*) FILTER (WHERE status = 'sent') AS messages_sent,
           count(*) FILTER (WHERE status = 'delivered') AS messages_delivered,
           count(*) FILTER (WHERE status = 'undelivered') AS messages_undelivered,
           count(*) FILTER (WHERE status = 'failed') AS messages_failed,
           count(*) FILTER (WHERE status = 'received') AS messages_received
    FROM messages WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1),
v AS (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket, count(*) AS voicemails
    FROM voicemails WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1)
SELECT bucket,
       coalesce(calls_total, 0) AS calls_total, coalesce(calls_inbound, 0) AS calls_inbound,
       coalesce(calls_outbound, 0) AS calls_outbound, coalesce(calls_completed, 0) AS calls_completed,
       coalesce(calls_busy, 0) AS calls_busy, coalesce(calls_no_answer, 0) AS calls_no_answer,
       coalesce(calls_failed, 0) AS calls_failed, coalesce(calls_canceled, 0) AS calls_canceled,
       coalesce(calls_live, 0) AS calls_live, coalesce(calls_answered, 0) AS calls_answered,
       coalesce(talk, ''::bytea) AS talk,
       coalesce(messages_total, 0) AS messages_total, coalesce(messages_inbound, 0) AS messages_inbound,
       coalesce(messages_outbound, 0) AS messages_outbound, coalesce(messages_queued, 0) AS messages_queued,
       coalesce(messages_sending, 0) AS messages_sending, coalesce(messages_sent, 0) AS messages_sent,
       coalesce(messages_delivered, 0) AS messages_delivered,
       coalesce(messages_undelivered, 0) AS messages_undelivered,
       coalesce(messages_failed, 0) AS messages_failed, coalesce(messages_received, 0) AS messages_received,
       coalesce(voicemails, 0) AS voicemails
FROM c FULL JOIN m USING (bucket) FULL JOIN v USING (bucket) LEFT JOIN t USING (bucket)";

/// Tenant `$1`'s calls per agent and hour, created in `[from, to)` (SQL
/// expressions, usually placeholders), columns as in `agent_rollups_hourly`.
pub fn agent_hourly_aggregate(from: &str, to: &str) -> String {
    format!(
        "SELECT date_trunc('hour', created_at, 'UTC') AS bucket, agent_id,
                count(*) AS calls_handled,
                count(*) FILTER (WHERE direction = 'inbound') AS inbound,
                count(*) FILTER (WHERE direction = 'outbound') AS outbound,
                count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
                count(duration_seconds) FILTER (WHERE status = 'completed') AS talk_calls,
                coalesce(sum(duration_seconds) FILTER (WHERE status = 'completed'), 0) AS talk_seconds_sum
         FROM calls
         WHERE tenant_id = $1 AND created_at >= {from} AND created_at < {to}
           AND agent_id IS NOT NULL
         GROUP BY 1, 2"
    )
}

/// The hour `at` falls in.
pub fn floor_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    floor(at, 3_600)
}

/// The start of the UTC day `at` falls in.
pub fn floor_day(at: DateTime<Utc>) -> DateTime<Utc> {
    floor(at, 86_400)
}

fn floor(at: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    let t = at.timestamp();
    DateTime::from_timestamp(t - t.rem_euclid(secs), 0).unwrap_or(at)
}

fn ceil_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = floor_hour(at);
    if floor == at {
        at
    } else {
        floor + Duration::hours(1)
    }
}

/// How a report range `[from, to)` is answered: live over `[from, rolled.0)`,
/// from the rollups over `rolled`, live again over `[rolled.1, to)`.
/// `from ≤ rolled.0 ≤ rolled.1 ≤ to`; any part may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rolled: (DateTime<Utc>, DateTime<Utc>),
}

impl Plan {
    /// `rolled_through`: the tenant's, if its history was ever rolled.
    pub fn new(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rolled_through: Option<DateTime<Utc>>,
    ) -> Plan {
        let start = ceil_hour(from);
        let end = rolled_through.map_or(start, |r| r.min(floor_hour(to)));
        let rolled = if start < end { (start, end) } else { (to, to) };
        Plan { from, to, rolled }
    }

    /// The live parts, non-empty ones only.
    pub fn live(&self) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> {
        [(self.from, self.rolled.0), (self.rolled.1, self.to)]
            .into_iter()
            .filter(|(a, b)| a < b)
    }
}

/// Tenant's `report_rollup_state.rolled_through`, if any.
pub async fn rolled_through(db: &PgPool, tenant: Uuid) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT rolled_through FROM report_rollup_state WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(db)
        .await
}

/// The tenant's activity per hour created in `[from, to)`, oldest first,
/// hours without any left out: rollups where they exist, live otherwise.
/// The first hour holds only what was created from `from` on.
pub async fn hourly(
    db: &PgPool,
    tenant: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<(DateTime<Utc>, HourStats)>> {
    let plan = Plan::new(from, to, rolled_through(db, tenant).await?);
    let live = |(a, b): (DateTime<Utc>, DateTime<Utc>)| {
        sqlx::query_as::<_, HourRow>(HOURLY_AGGREGATE)
            .bind(tenant)
            .bind(a)
            .bind(b)
            .fetch_all(db)
    };
    let rolled = sqlx::query_as::<_, HourRow>(sqlx::AssertSqlSafe(format!(
        "SELECT bucket, {HOUR_COLUMNS} FROM report_rollups_hourly
         WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3"
    )))
    .bind(tenant)
    .bind(plan.rolled.0)
    .bind(plan.rolled.1)
    .fetch_all(db);
    let mut parts = plan.live();
    let (head, tail) = (parts.next(), parts.next());
    // Up to three independent reads on three pooled connections.
    let (rolled, head, tail) = tokio::try_join!(
        async {
            if plan.rolled.0 < plan.rolled.1 {
                rolled.await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            match head {
                Some(range) => live(range).await,
                None => Ok(Vec::new()),
            }
        },
        async {
            match tail {
                Some(range) => live(range).await,
                None => Ok(Vec::new()),
            }
        },
    )?;
    let mut hours: Vec<_> = head
        .into_iter()
        .chain(rolled)
        .chain(tail)
        .map(HourRow::into_stats)
        .collect();
    // The parts are disjoint hours; each query's rows come unordered.
    hours.sort_by_key(|(bucket, _)| *bucket);
    Ok(hours)
}

/// What one [`roll_up`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RollupRun {
    /// Hours newly rolled, summed over tenants.
    pub hours: i64,
    /// The oldest `rolled_through` afterwards, over every tenant.
    pub oldest: Option<DateTime<Utc>>,
}

/// Rolls every tenant's history up to the newest hour that can no longer
/// change (see the module docs). Safe to run concurrently with itself: each
/// step locks the tenant's state row and checks it still starts where it
/// expected. Deleting a tenant's `report_rollup_state` row rebuilds its
/// rollups from its first record on the next run.
pub async fn roll_up(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<RollupRun> {
    let sealed = floor_hour(now - SETTLE);
    let horizon = now - OPEN_HORIZON;
    // The oldest call or message per tenant that may still change. The
    // partial indexes on `updated_at` cover the open rows, and a row
    // created after the horizon was also updated after it.
    let open: HashMap<Uuid, DateTime<Utc>> = sqlx::query_as(
        "SELECT tenant_id, min(created_at) FROM (
             SELECT tenant_id, created_at FROM calls
             WHERE status IN ('queued', 'ringing', 'in-progress') AND updated_at >= $1 AND created_at >= $1
             UNION ALL
             SELECT tenant_id, created_at FROM messages
             WHERE status IN ('queued', 'sending') AND updated_at >= $1 AND created_at >= $1
         ) open GROUP BY tenant_id",
    )
    .bind(horizon)
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    let tenants: Vec<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT t.id, s.rolled_through FROM tenants t
         LEFT JOIN report_rollup_state s ON s.tenant_id = t.id ORDER BY t.id",
    )
    .fetch_all(db)
    .await?;
    let mut run = RollupRun::default();
    for (tenant, rolled) in tenants {
        let target = open
            .get(&tenant)
            .map_or(sealed, |oldest| sealed.min(floor_hour(*oldest)));
        let mut from = match rolled {
            Some(rolled) => rolled,
            None => first_activity(db, tenant)
                .await?
                .map_or(target, |first| floor_hour(first).min(target)),
        };
        if rolled.is_none() {
            sqlx::query(
                "INSERT INTO report_rollup_state (tenant_id, rolled_through) VALUES ($1, $2)
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(from)
            .execute(db)
            .await?;
        }
        while from < target {
            let to = (from + CHUNK).min(target);
            match roll_chunk(db, tenant, from, to).await? {
                Some(hours) => run.hours += hours,
                None => break, // another roller moved it
            }
            from = to;
        }
        run.oldest = Some(run.oldest.map_or(from, |o: DateTime<Utc>| o.min(from)));
    }
    Ok(run)
}

/// When the tenant's first call, message or voicemail was created.
async fn first_activity(db: &PgPool, tenant: Uuid) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT least((SELECT min(created_at) FROM calls WHERE tenant_id = $1),
                      (SELECT min(created_at) FROM messages WHERE tenant_id = $1),
                      (SELECT min(created_at) FROM voicemails WHERE tenant_id = $1))",
    )
    .bind(tenant)
    .fetch_one(db)
    .await
}

/// Rolls `[from, to)` of one tenant in one transaction; the number of hours
/// with activity, or `None` if the tenant's state no longer starts at `from`.
async fn roll_chunk(
    db: &PgPool,
    tenant: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Option<i64>> {
    let mut tx = db.begin().await?;
    let current: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT rolled_through FROM report_rollup_state WHERE tenant_id = $1 FOR UPDATE",
    )
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await?;
    if current != Some(from) {
        return Ok(None);
    }
    for table in ["report_rollups_hourly", "agent_rollups_hourly"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3"
        )))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    }
    let hours = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO report_rollups_hourly (tenant_id, bucket, {HOUR_COLUMNS})
         SELECT $1, bucket, {HOUR_COLUMNS} FROM ({HOURLY_AGGREGATE}) hours"
    )))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agent_rollups_hourly (tenant_id, bucket, agent_id, calls_handled, inbound,
                                           outbound, answered, talk_calls, talk_seconds_sum)
         SELECT $1, bucket, agent_id, calls_handled, inbound, outbound, answered, talk_calls,
                talk_seconds_sum
         FROM ({agents}) agents",
        agents = agent_hourly_aggregate("$2", "$3"),
    )))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE report_rollup_state SET rolled_through = $2, updated_at = now() WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(i64::try_from(hours).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn percentiles_match_percentile_cont() {
        // percentile_cont(p) over 30, 60, 120 (hand-computed).
        let talk = TalkTimes::from_pairs(&[(30, 1), (60, 1), (120, 1)]);
        assert_eq!(talk.percentile(0.5), Some(60.0));
        assert_eq!(talk.percentile(0.9), Some(108.0));
        assert_eq!(talk.percentile(0.0), Some(30.0));
        assert_eq!(talk.percentile(1.0), Some(120.0));
        assert_eq!(talk.mean(), Some(70.0));
        // Repeated values: 10, 10, 10, 40 → p50 at rank 1.5 = 10, p90 at
        // rank 2.7. PostgreSQL 15 answers 31.000000000000007 for
        // `percentile_cont(0.9) WITHIN GROUP (ORDER BY x)` over these four
        // values: the same floating-point steps, to the last bit.
        let talk = TalkTimes::from_pairs(&[(10, 3), (40, 1)]);
        assert_eq!(talk.percentile(0.5), Some(10.0));
        assert_eq!(talk.percentile(0.9), Some(31.000000000000007));
        assert_eq!(TalkTimes::default().percentile(0.5), None);
        assert_eq!(TalkTimes::default().mean(), None);
    }

    #[test]
    fn combined_hours_hold_the_distribution_of_all_their_values() {
        let hour = |pairs: &[(i32, i64)]| HourStats {
            talk: TalkTimes::from_pairs(pairs),
            voicemails: 1,
            ..HourStats::default()
        };
        let all = HourStats::combine(&[hour(&[(60, 1), (90, 4)]), hour(&[(5, 2), (60, 1)])]);
        assert_eq!(all.talk.0, vec![(5, 2), (60, 2), (90, 4)]);
        assert_eq!(
            all.talk,
            TalkTimes::from_pairs(&[(90, 4), (5, 1), (60, 2), (5, 1)])
        );
        assert_eq!(
            (all.talk.count(), all.talk.sum()),
            (8, 5 * 2 + 60 * 2 + 90 * 4)
        );
        assert_eq!(all.voicemails, 2);
    }

    #[test]
    fn rolled_talk_times_decode_from_int4send_pairs() {
        // What `int4send(60) || int4send(3) || int4send(1800) || int4send(1)` gives.
        let bytes = [0, 0, 0, 60, 0, 0, 0, 3, 0, 0, 7, 8, 0, 0, 0, 1, 9];
        assert_eq!(
            TalkTimes::from_be_pairs(&bytes),
            TalkTimes::from_pairs(&[(60, 3), (1800, 1)])
        );
        assert_eq!(TalkTimes::from_be_pairs(&[]), TalkTimes::default());
    }

    #[test]
    fn plans_split_at_whole_hours_before_the_rollups_end() {
        let plan = Plan::new(
            t("2026-01-10T00:30:00Z"),
            t("2026-01-12T10:15:00Z"),
            Some(t("2026-01-12T08:00:00Z")),
        );
        assert_eq!(
            plan.rolled,
            (t("2026-01-10T01:00:00Z"), t("2026-01-12T08:00:00Z"))
        );
        assert_eq!(
            plan.live().collect::<Vec<_>>(),
            vec![
                (t("2026-01-10T00:30:00Z"), t("2026-01-10T01:00:00Z")),
                (t("2026-01-12T08:00:00Z"), t("2026-01-12T10:15:00Z")),
            ]
        );
        // Rolled beyond the range: only whole hours inside it are rolled.
        let plan = Plan::new(
            t("2026-01-10T00:00:00Z"),
            t("2026-01-10T03:20:00Z"),
            Some(t("2026-02-01T00:00:00Z")),
        );
        assert_eq!(
            plan.rolled,
            (t("2026-01-10T00:00:00Z"), t("2026-01-10T03:00:00Z"))
        );
        assert_eq!(plan.live().count(), 1);
        // Never rolled, or rolled only before the range: all live.
        for rolled in [None, Some(t("2026-01-01T00:00:00Z"))] {
            let plan = Plan::new(t("2026-01-10T00:00:00Z"), t("2026-01-11T00:00:00Z"), rolled);
            assert_eq!(
                plan.live().collect::<Vec<_>>(),
                vec![(t("2026-01-10T00:00:00Z"), t("2026-01-11T00:00:00Z"))]
            );
        }
    }
}

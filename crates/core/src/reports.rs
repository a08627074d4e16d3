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

use std::{collections::HashMap, sync::LazyLock};

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    calls::{CallStatus, Direction},
    sms::MessageStatus,
};

/// How long after an hour ends before it may be rolled: longer than any
/// transaction that could still insert a row timestamped in it.
pub const SETTLE: Duration = Duration::minutes(5);
/// Calls and messages still open this long after creation no longer hold the
/// rollups back (the sweeper gives up on them after a day).
pub const OPEN_HORIZON: Duration = Duration::hours(48);
/// One rollup transaction covers at most this much history.
const CHUNK: Duration = Duration::days(7);

/// Declares a struct of per-hour counts: `i64` fields, each read from the
/// column named by the prefix and the field (as `report_rollups_hourly` and
/// [`HOURLY_AGGREGATE`] name them), and added field by field.
macro_rules! hourly_counts {
    (
        $(#[$doc:meta])*
        $name:ident from $prefix:literal { $($(#[$field_doc:meta])* $field:ident,)+ }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            $($(#[$field_doc])* pub $field: i64,)+
        }

        impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for $name {
            fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
                use sqlx::Row;
                Ok(Self {
                    $($field: row.try_get(concat!($prefix, stringify!($field)))?,)+
                })
            }
        }

        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, o: Self) {
                $(self.$field += o.$field;)+
            }
        }
    };
}

hourly_counts! {
    /// Calls per hour.
    CallCounts from "calls_" {
        /// Calls created.
        total,
        /// Inbound calls.
        inbound,
        /// Outbound calls.
        outbound,
        /// Calls that were answered and ended (`completed`).
        completed,
        /// Calls that ended `busy`.
        busy,
        /// Calls that rang unanswered (`no-answer`).
        no_answer,
        /// Calls that ended `failed`.
        failed,
        /// Calls `canceled` before they were answered.
        canceled,
        /// Still queued, ringing or in progress.
        live,
        /// Calls that were answered (`answered_at` set), whatever their status.
        answered,
    }
}

hourly_counts! {
    /// Messages per hour.
    MessageCounts from "messages_" {
        /// Messages created.
        total,
        /// Inbound messages.
        inbound,
        /// Outbound messages.
        outbound,
        /// Messages in status `queued`.
        queued,
        /// Messages in status `sending`.
        sending,
        /// Messages in status `sent`.
        sent,
        /// Messages in status `delivered`.
        delivered,
        /// Messages in status `undelivered`.
        undelivered,
        /// Messages in status `failed`.
        failed,
        /// Messages in status `received` (inbound).
        received,
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

    /// How many calls.
    pub fn count(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// Their total talk time, in seconds.
    pub fn sum(&self) -> i64 {
        self.0.iter().map(|(v, n)| i64::from(*v) * n).sum()
    }

    /// Their mean talk time, in seconds; `None` without calls.
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
    /// The calls created in it.
    pub calls: CallCounts,
    /// The talk times of its `completed` calls.
    pub talk: TalkTimes,
    /// The messages created in it.
    pub messages: MessageCounts,
    /// How many voicemails were created in it (deleted ones not counted).
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

/// One table's counts per hour in [`HOURLY_AGGREGATE`] (and columns of
/// `report_rollups_hourly`): `{prefix}_total`, one per direction, one per
/// status, and `more`.
struct Counts {
    prefix: &'static str,
    /// The statuses counted one column each (named by the status, `-` as `_`).
    statuses: Vec<&'static str>,
    /// Further counts: the column's suffix and the rows it counts.
    more: Vec<(&'static str, String)>,
}

impl Counts {
    /// Each count column with the condition on the rows it counts (`None`:
    /// all of them).
    fn columns(&self) -> Vec<(String, Option<String>)> {
        let prefix = self.prefix;
        let mut columns = vec![(format!("{prefix}_total"), None)];
        for direction in Direction::ALL {
            let rows = format!("direction = '{direction}'");
            columns.push((format!("{prefix}_{direction}"), Some(rows)));
        }
        for status in &self.statuses {
            let column = format!("{prefix}_{}", status.replace('-', "_"));
            columns.push((column, Some(format!("status = '{status}'"))));
        }
        for (suffix, rows) in &self.more {
            columns.push((format!("{prefix}_{suffix}"), Some(rows.clone())));
        }
        columns
    }

    /// The count columns as `SELECT` expressions.
    fn select(&self) -> String {
        let counts: Vec<String> = self
            .columns()
            .into_iter()
            .map(|(column, rows)| match rows {
                None => format!("count(*) AS {column}"),
                Some(rows) => format!("count(*) FILTER (WHERE {rows}) AS {column}"),
            })
            .collect();
        counts.join(",\n           ")
    }

    fn names(&self) -> impl Iterator<Item = String> {
        self.columns().into_iter().map(|(column, _)| column)
    }
}

/// [`CallCounts`], as counted: one column per final status, the live ones
/// together.
static CALL_COUNTS: LazyLock<Counts> = LazyLock::new(|| Counts {
    prefix: "calls",
    statuses: CallStatus::ALL
        .into_iter()
        .filter(|status| status.is_terminal())
        .map(CallStatus::as_str)
        .collect(),
    more: vec![
        (
            "live",
            format!("status IN ({})", CallStatus::sql_list(CallStatus::live())),
        ),
        ("answered", "answered_at IS NOT NULL".into()),
    ],
});

/// [`MessageCounts`], as counted: one column per status.
static MESSAGE_COUNTS: LazyLock<Counts> = LazyLock::new(|| Counts {
    prefix: "messages",
    statuses: MessageStatus::ALL.map(MessageStatus::as_str).to_vec(),
    more: Vec::new(),
});

/// The columns of `report_rollups_hourly` after `(tenant_id, bucket)`, in
/// order.
fn hour_columns() -> Vec<String> {
    let mut columns: Vec<String> = CALL_COUNTS.names().collect();
    columns.push("talk".into());
    columns.extend(MESSAGE_COUNTS.names());
    columns.push("voicemails".into());
    columns
}

/// [`hour_columns`], rendered once.
static HOUR_COLUMNS: LazyLock<String> = LazyLock::new(|| hour_columns().join(", "));

/// Tenant `$1`'s activity per UTC hour created in `[$2, $3)`: one row per
/// hour with any, columns as in `report_rollups_hourly`. Index-only scans of
/// `calls_report_idx`, `messages_tenant_created_idx` and
/// `voicemails_tenant_created_idx`. Rendered once.
static HOURLY_AGGREGATE: LazyLock<String> = LazyLock::new(|| {
    let (calls, messages) = (CALL_COUNTS.select(), MESSAGE_COUNTS.select());
    // An hour without calls (or messages, or voicemails) counts zero of them.
    let hour: Vec<String> = hour_columns()
        .into_iter()
        .map(|column| {
            let none = if column == "talk" { "''::bytea" } else { "0" };
            format!("coalesce({column}, {none}) AS {column}")
        })
        .collect();
    let hour = hour.join(",\n       ");
    format!(
        "
WITH c AS (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket,
           {calls}
    FROM calls WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1),
t AS (
    SELECT bucket, string_agg(int4send(seconds) || int4send(n), ''::bytea ORDER BY seconds) AS talk
    FROM (SELECT date_trunc('hour', created_at, 'UTC') AS bucket, duration_seconds AS seconds,
                 count(*)::int AS n
          FROM calls
          WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
            AND status = '{completed}' AND duration_seconds IS NOT NULL
          GROUP BY 1, 2) d
    GROUP BY bucket),
m AS (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket,
           {messages}
    FROM messages WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1),
v AS (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket, count(*) AS voicemails
    FROM voicemails WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
    GROUP BY 1)
SELECT bucket,
       {hour}
FROM c FULL JOIN m USING (bucket) FULL JOIN v USING (bucket) LEFT JOIN t USING (bucket)",
        completed = CallStatus::Completed,
    )
});

/// Tenant `$1`'s calls per agent and hour, created in `[from, to)` (SQL
/// expressions, usually placeholders), columns as in `agent_rollups_hourly`.
pub fn agent_hourly_aggregate(from: &str, to: &str) -> String {
    format!(
        "SELECT date_trunc('hour', created_at, 'UTC') AS bucket, agent_id,
                count(*) AS calls_handled,
                count(*) FILTER (WHERE direction = '{inbound}') AS inbound,
                count(*) FILTER (WHERE direction = '{outbound}') AS outbound,
                count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered,
                count(duration_seconds) FILTER (WHERE status = '{completed}') AS talk_calls,
                coalesce(sum(duration_seconds) FILTER (WHERE status = '{completed}'), 0) AS talk_seconds_sum
         FROM calls
         WHERE tenant_id = $1 AND created_at >= {from} AND created_at < {to}
           AND agent_id IS NOT NULL
         GROUP BY 1, 2",
        inbound = Direction::Inbound,
        outbound = Direction::Outbound,
        completed = CallStatus::Completed,
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
    /// The range's start (inclusive).
    pub from: DateTime<Utc>,
    /// The range's end (exclusive).
    pub to: DateTime<Utc>,
    /// The whole UTC hours answered from the rollups, as `[start, end)`;
    /// `(to, to)` when none are.
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
        sqlx::query_as::<_, HourRow>(HOURLY_AGGREGATE.as_str())
            .bind(tenant)
            .bind(a)
            .bind(b)
            .fetch_all(db)
    };
    let rolled = sqlx::query_as::<_, HourRow>(sqlx::AssertSqlSafe(format!(
        "SELECT bucket, {columns} FROM report_rollups_hourly
         WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3",
        columns = *HOUR_COLUMNS,
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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupRun {
    /// Hours newly rolled, summed over tenants.
    pub hours: i64,
    /// The oldest `rolled_through` afterwards, over every tenant (one whose
    /// roll failed included: its reports fall behind).
    pub oldest: Option<DateTime<Utc>>,
    /// Tenants whose roll failed, with the error. Each is tried again at
    /// the next run; the others were rolled.
    pub failed: Vec<(Uuid, String)>,
}

impl RollupRun {
    /// The tenants whose roll failed, with why, in one line; `None` when
    /// every tenant was rolled.
    pub fn failures(&self) -> Option<String> {
        (!self.failed.is_empty()).then(|| {
            let failed: Vec<String> = self
                .failed
                .iter()
                .map(|(tenant, error)| format!("tenant {tenant}: {error}"))
                .collect();
            format!("rolling the report hours of {} failed", failed.join("; "))
        })
    }
}

/// The oldest call or message per tenant created since `$1` that may still
/// change: a live call, a message not yet handed to the carrier (`sent`
/// does not hold the rollups back: see the module docs). The statuses are
/// literals, so the partial indexes on `updated_at` (`calls_live_idx`,
/// `messages_unsettled_idx`) cover the open rows; a row created after the
/// horizon was also updated after it. Rendered once.
static OPEN_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT tenant_id, min(created_at) FROM (
             SELECT tenant_id, created_at FROM calls
             WHERE status IN ({live}) AND updated_at >= $1 AND created_at >= $1
             UNION ALL
             SELECT tenant_id, created_at FROM messages
             WHERE status IN ({unsent}) AND updated_at >= $1 AND created_at >= $1
         ) open GROUP BY tenant_id",
        live = CallStatus::sql_list(CallStatus::live()),
        unsent = MessageStatus::sql_list([MessageStatus::Queued, MessageStatus::Sending]),
    )
});

/// Rolls every tenant's history up to the newest hour that can no longer
/// change (see the module docs). Safe to run concurrently with itself: each
/// step locks the tenant's state row and checks it still starts where it
/// expected. Deleting a tenant's `report_rollup_state` row rebuilds its
/// rollups from its first record on the next run. A tenant whose roll fails
/// is noted in [`RollupRun::failed`] and does not hold back the others.
pub async fn roll_up(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<RollupRun> {
    let sealed = floor_hour(now - SETTLE);
    let horizon = now - OPEN_HORIZON;
    let open: HashMap<Uuid, DateTime<Utc>> =
        sqlx::query_as(sqlx::AssertSqlSafe(OPEN_ROWS.as_str()))
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
        let mut through = rolled;
        let result = roll_tenant(db, tenant, target, &mut through, &mut run.hours).await;
        if let Err(error) = result {
            run.failed.push((tenant, error.to_string()));
        }
        if let Some(through) = through {
            run.oldest = Some(run.oldest.map_or(through, |o| o.min(through)));
        }
    }
    Ok(run)
}

/// Rolls one tenant's hours from `through` (its `rolled_through`; `None` for
/// a tenant never rolled) up to `target`, a chunk at a time, keeping
/// `through` and `hours` up to date as each chunk commits.
async fn roll_tenant(
    db: &PgPool,
    tenant: Uuid,
    target: DateTime<Utc>,
    through: &mut Option<DateTime<Utc>>,
    hours: &mut i64,
) -> sqlx::Result<()> {
    let mut from = match *through {
        Some(rolled) => rolled,
        None => {
            let first = first_activity(db, tenant)
                .await?
                .map_or(target, |first| floor_hour(first).min(target));
            sqlx::query(
                "INSERT INTO report_rollup_state (tenant_id, rolled_through) VALUES ($1, $2)
                 ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(first)
            .execute(db)
            .await?;
            first
        }
    };
    *through = Some(from);
    while from < target {
        let to = (from + CHUNK).min(target);
        match roll_chunk(db, tenant, from, to).await? {
            Some(rolled) => *hours += rolled,
            None => break, // another roller moved it
        }
        from = to;
        *through = Some(from);
    }
    Ok(())
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
        "INSERT INTO report_rollups_hourly (tenant_id, bucket, {columns})
         SELECT $1, bucket, {columns} FROM ({aggregate}) hours",
        columns = *HOUR_COLUMNS,
        aggregate = *HOURLY_AGGREGATE,
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

    /// `month`/`day` of 2026, at `hour`:`minute` UTC.
    fn at(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
            .single()
            .unwrap_or_default()
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
        let plan = Plan::new(at(1, 10, 0, 30), at(1, 12, 10, 15), Some(at(1, 12, 8, 0)));
        assert_eq!(plan.rolled, (at(1, 10, 1, 0), at(1, 12, 8, 0)));
        assert_eq!(
            plan.live().collect::<Vec<_>>(),
            vec![
                (at(1, 10, 0, 30), at(1, 10, 1, 0)),
                (at(1, 12, 8, 0), at(1, 12, 10, 15)),
            ]
        );
        // Rolled beyond the range: only whole hours inside it are rolled.
        let plan = Plan::new(at(1, 10, 0, 0), at(1, 10, 3, 20), Some(at(2, 1, 0, 0)));
        assert_eq!(plan.rolled, (at(1, 10, 0, 0), at(1, 10, 3, 0)));
        assert_eq!(plan.live().count(), 1);
        // Never rolled, or rolled only before the range: all live.
        for rolled in [None, Some(at(1, 1, 0, 0))] {
            let plan = Plan::new(at(1, 10, 0, 0), at(1, 11, 0, 0), rolled);
            assert_eq!(
                plan.live().collect::<Vec<_>>(),
                vec![(at(1, 10, 0, 0), at(1, 11, 0, 0))]
            );
        }
    }
}

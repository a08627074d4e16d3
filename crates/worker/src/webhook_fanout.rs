//! The webhook fan-out: turns events into `webhook.deliver` jobs, one per
//! subscribed tenant webhook endpoint.
//!
//! Every event is appended to a Redis stream by its publisher; the workers
//! read it through one consumer group, so each event is handled by exactly
//! one worker however many run, and an event published while no worker was
//! running is handled when one starts (the group is created at the stream's
//! start). An entry is acknowledged only after its deliveries are queued: a
//! failed round's entries are read again at the next round, and entries a
//! dead worker had claimed are taken over after [`CLAIM_IDLE`].
//!
//! A failing read, lookup or enqueue loses nothing (the entries stay
//! unacknowledged and are read again) but holds every tenant's webhooks back,
//! so it is never silent: each failed round counts in
//! `webhook_fanout_failures_total`, and once the fan-out has failed without
//! a break for [`FAILING_AFTER`] it logs an ERROR (again every
//! [`REMIND_EVERY`] while it lasts) and the worker's `/ready` answers 503
//! with `"webhooks": "failing for …"` until a round succeeds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use switchboard_core::{
    events::{Envelope, events_stream},
    jobs::{Job, WebhookDeliver},
    redis::redis::{self, Value},
};
use uuid::Uuid;

use crate::context::Ctx;

const GROUP: &str = "webhooks";
const BATCH: usize = 500;
const CLAIM_IDLE: Duration = Duration::from_secs(30);
/// How long one read waits for new entries. Stays under the Redis client's
/// response timeout (500 ms), which would otherwise end every idle read in an error.
const BLOCK_MS: u64 = 200;
/// How long a tenant's webhook list is cached.
const HOOKS_TTL: Duration = Duration::from_secs(5);

/// How long the fan-out may fail without a break before it is reported (an
/// ERROR, `/ready` 503). A shorter failure, such as a Redis reconnect, is
/// retried with a WARN.
pub const FAILING_AFTER: Duration = Duration::from_secs(5);
/// How often the ERROR is repeated while the fan-out keeps failing.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// (webhook id, subscribed event types; empty = all)
type Hooks = Vec<(Uuid, Vec<String>)>;

/// Whether the fan-out is doing its work, for the worker's `/ready`.
#[derive(Debug, Default)]
pub struct Health {
    failing: Mutex<Option<Failing>>,
}

/// A run of failed rounds with no success between them.
#[derive(Debug)]
struct Failing {
    since: Instant,
    error: String,
    /// When the ERROR was last logged; `None` while the run is too short.
    reported: Option<Instant>,
}

impl Health {
    /// `"ok"`, or what `/ready` shows once the fan-out has failed for
    /// [`FAILING_AFTER`] without a break.
    pub fn check(&self) -> String {
        match &*self.lock() {
            Some(failing) if failing.since.elapsed() >= FAILING_AFTER => format!(
                "failing for {} s: {}",
                failing.since.elapsed().as_secs(),
                failing.error
            ),
            _ => "ok".to_string(),
        }
    }

    /// Counts a failed round and says so: a WARN while the run of failures
    /// is short, then an ERROR every [`REMIND_EVERY`].
    fn failed(&self, error: &anyhow::Error) {
        metrics::counter!("webhook_fanout_failures_total").increment(1);
        let error = format!("{error:#}");
        let mut failing = self.lock();
        let failing = failing.get_or_insert_with(|| Failing {
            since: Instant::now(),
            error: String::new(),
            reported: None,
        });
        failing.error = error;
        let secs = failing.since.elapsed().as_secs();
        if failing.since.elapsed() < FAILING_AFTER {
            tracing::warn!(error = %failing.error, "event feed for webhooks failed; retrying");
        } else if failing
            .reported
            .is_none_or(|at| at.elapsed() >= REMIND_EVERY)
        {
            failing.reported = Some(Instant::now());
            tracing::error!(
                error = %failing.error,
                failing_for_secs = secs,
                "webhook fan-out keeps failing: no tenant webhook is queued until it recovers (events wait on the stream)"
            );
        }
    }

    /// A round succeeded: ends a run of failures, saying so if it was reported.
    fn succeeded(&self) {
        let mut failing = self.lock();
        if let Some(ended) = failing.take()
            && ended.reported.is_some()
        {
            tracing::info!(
                failed_for_secs = ended.since.elapsed().as_secs(),
                "webhook fan-out recovered"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which entries a round reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// New entries, waiting up to [`BLOCK_MS`] for them.
    New,
    /// This worker's own entries, read but not acknowledged (a failed round):
    /// retried every round until they are queued, not after [`CLAIM_IDLE`].
    Own,
    /// Entries other consumers (a dead worker) read and never acknowledged.
    Abandoned,
}

/// Reads the event stream and queues the deliveries until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut cache: HashMap<Uuid, (Instant, Hooks)> = HashMap::new();
    let mut ready = false;
    let mut retry_own = false;
    let mut claim_due = Instant::now();
    // Present from the start, so that a rate over it sees the first failure.
    metrics::counter!("webhook_fanout_failures_total").increment(0);
    metrics::counter!("webhook_events_unreadable_total").increment(0);
    loop {
        let step = async {
            if !ready {
                create_group(&ctx).await?;
                ready = true;
            }
            let source = if retry_own {
                Source::Own
            } else if Instant::now() >= claim_due {
                claim_due = Instant::now() + CLAIM_IDLE;
                Source::Abandoned
            } else {
                Source::New
            };
            let entries = read(&ctx, source).await?;
            if source == Source::Own && entries.is_empty() {
                retry_own = false;
            }
            handle(&ctx, &mut cache, entries).await
        };
        tokio::select! {
            () = &mut shutdown => return,
            result = step => match result {
                Ok(()) => ctx.fanout.succeeded(),
                Err(error) => {
                    ready = false;
                    retry_own = true;
                    ctx.fanout.failed(&error);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Creates the consumer group if it is missing, reading from the stream's
/// start: when no group exists, no worker has read any entry on the stream
/// (the first start of a deployment, or after Redis lost its data), so
/// every entry there is an event still owed its webhooks.
async fn create_group(ctx: &Ctx) -> anyhow::Result<()> {
    let mut conn = ctx.redis.get().await?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(events_stream(&ctx.settings))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut *conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The entries of `source`, at most [`BATCH`].
async fn read(ctx: &Ctx, source: Source) -> anyhow::Result<Vec<(String, String)>> {
    let mut conn = ctx.redis.get().await?;
    let stream = events_stream(&ctx.settings);
    let reply: Value = if source == Source::Abandoned {
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&stream)
            .arg(GROUP)
            .arg(&ctx.instance)
            .arg(CLAIM_IDLE.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(BATCH)
            .query_async(&mut *conn)
            .await?;
        // [next-cursor, entries, deleted-ids]
        match reply {
            Value::Array(mut parts) if parts.len() >= 2 => parts.swap_remove(1),
            other => other,
        }
    } else {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(GROUP)
            .arg(&ctx.instance)
            .arg("COUNT")
            .arg(BATCH);
        if source == Source::New {
            read.arg("BLOCK").arg(BLOCK_MS);
        }
        // `>`: never delivered to any consumer; `0`: this consumer's pending.
        let id = if source == Source::New { ">" } else { "0" };
        let reply: Value = read
            .arg("STREAMS")
            .arg(&stream)
            .arg(id)
            .query_async(&mut *conn)
            .await?;
        // RESP2: [[stream, entries]]; RESP3: {stream: entries}; nil on timeout.
        match reply {
            Value::Array(mut streams) if !streams.is_empty() => match streams.swap_remove(0) {
                Value::Array(mut pair) if pair.len() == 2 => pair.swap_remove(1),
                other => other,
            },
            Value::Map(mut streams) if !streams.is_empty() => streams.swap_remove(0).1,
            _ => Value::Nil,
        }
    };
    Ok(entries(reply))
}

/// `[[id, [field, value, ...]], ...]` → (id, event JSON).
fn entries(value: Value) -> Vec<(String, String)> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(mut pair) = item else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id: String = redis::from_redis_value(pair.pop()?).ok()?;
            let fields: Vec<String> = redis::from_redis_value(fields).unwrap_or_default();
            let event = fields
                .chunks(2)
                .find(|kv| kv.first().map(String::as_str) == Some("event"))
                .and_then(|kv| kv.get(1).cloned())
                .unwrap_or_default();
            Some((id, event))
        })
        .collect()
}

async fn handle(
    ctx: &Ctx,
    cache: &mut HashMap<Uuid, (Instant, Hooks)>,
    entries: Vec<(String, String)>,
) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut jobs = Vec::new();
    for (id, raw) in &entries {
        let event = match serde_json::from_str::<Envelope>(raw) {
            Ok(event) => event,
            Err(error) => {
                // Written by our own publishers, so a version this worker
                // cannot read: its webhooks are not delivered.
                metrics::counter!("webhook_events_unreadable_total").increment(1);
                tracing::error!(%id, %error, "unreadable event on the stream skipped: its webhooks are not delivered");
                continue;
            }
        };
        let fresh = cache
            .get(&event.tenant_id)
            .is_some_and(|(at, _)| at.elapsed() < HOOKS_TTL);
        if !fresh {
            let hooks: Vec<(Uuid, Vec<String>)> = sqlx::query_as(
                "SELECT id, event_types FROM tenant_webhooks WHERE tenant_id = $1 AND active",
            )
            .bind(event.tenant_id)
            .fetch_all(&ctx.db)
            .await?;
            cache.insert(event.tenant_id, (Instant::now(), hooks));
        }
        let hooks = cache
            .get(&event.tenant_id)
            .map(|(_, h)| h.as_slice())
            .unwrap_or_default();
        for (webhook_id, types) in hooks {
            if types.is_empty() || types.iter().any(|t| t == event.kind.as_str()) {
                jobs.push((
                    WebhookDeliver {
                        tenant_id: event.tenant_id,
                        webhook_id: *webhook_id,
                        event: event.clone(),
                    },
                    Duration::ZERO,
                ));
            }
        }
    }
    let queued = jobs.len();
    switchboard_core::jobs::enqueue_many(&ctx.db, &jobs).await?;
    ctx.queues.wake(WebhookDeliver::QUEUE);
    let mut conn = ctx.redis.get().await?;
    let mut ack = redis::cmd("XACK");
    ack.arg(events_stream(&ctx.settings)).arg(GROUP);
    for (id, _) in &entries {
        ack.arg(id);
    }
    let _: u64 = ack.query_async(&mut *conn).await?;
    metrics::counter!("webhook_events_read_total").increment(entries.len() as u64);
    metrics::counter!("webhook_deliveries_queued_total").increment(queued as u64);
    Ok(())
}

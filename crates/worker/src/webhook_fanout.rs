//! The webhook fan-out: turns events into `webhook.deliver` jobs, one per
//! subscribed tenant webhook endpoint.
//!
//! Every event is appended to a Redis stream by its publisher; the workers
//! read it through one consumer group, so each event is handled by exactly
//! one worker however many run, and an event published while no worker was
//! running is handled when one starts. An entry is acknowledged only after
//! its deliveries are queued; entries a dead worker had claimed are taken
//! over after [`CLAIM_IDLE`].

use std::{
    collections::HashMap,
    sync::Arc,
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

/// (webhook id, subscribed event types; empty = all)
type Hooks = Vec<(Uuid, Vec<String>)>;

/// Reads the event stream and queues the deliveries until `shutdown`.
pub async fn run(ctx: Arc<Ctx>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut cache: HashMap<Uuid, (Instant, Hooks)> = HashMap::new();
    let mut ready = false;
    let mut claim_due = Instant::now();
    loop {
        let step = async {
            if !ready {
                create_group(&ctx).await?;
                ready = true;
            }
            let claim = Instant::now() >= claim_due;
            if claim {
                claim_due = Instant::now() + CLAIM_IDLE;
            }
            let entries = read(&ctx, claim).await?;
            handle(&ctx, &mut cache, entries).await
        };
        tokio::select! {
            () = &mut shutdown => return,
            result = step => {
                if let Err(error) = result {
                    ready = false;
                    tracing::warn!(%error, "event feed for webhooks failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

async fn create_group(ctx: &Ctx) -> anyhow::Result<()> {
    let mut conn = ctx.redis.get().await?;
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(events_stream(&ctx.settings))
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut *conn)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// New entries (blocking up to [`BLOCK_MS`]), or — when `claim` — entries other
/// consumers took and never acknowledged.
async fn read(ctx: &Ctx, claim: bool) -> anyhow::Result<Vec<(String, String)>> {
    let mut conn = ctx.redis.get().await?;
    let stream = events_stream(&ctx.settings);
    let reply: Value = if claim {
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
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&ctx.instance)
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
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
    for (_, raw) in &entries {
        let Ok(event) = serde_json::from_str::<Envelope>(raw) else {
            tracing::warn!("unreadable event on the stream skipped");
            continue;
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

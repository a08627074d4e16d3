//! Moves due scheduled tasks onto their queue's active list in bounded chunks.
//!
//! apalis-redis puts every pushed task in the queue's scheduled set (even
//! one due now) and promotes all due tasks inside its fetch script with a
//! single Lua `unpack`, which fails once about 8 000 are due at once ("too
//! many results to unpack"): the queue then stops for good. That happens
//! after any burst (a large campaign) or when the workers were down for a
//! while. This promoter runs the same promotion in chunks, before the
//! workers start and then continuously, so the fetch script never sees more
//! than a few thousand due tasks.

use std::time::Duration;

use apalis_redis::{Config, ConnectionManager};
use switchboard_core::redis::redis::{self, Script};

/// Tasks moved per script call: far below Lua's unpack limit.
const CHUNK: usize = 1_000;
/// Pause between sweeps when nothing is due.
const IDLE: Duration = Duration::from_millis(10);

const PROMOTE: &str = r#"
local ids = redis.call('zrangebyscore', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
    redis.call('rpush', KEYS[2], unpack(ids))
    redis.call('zrem', KEYS[1], unpack(ids))
    redis.call('del', KEYS[3])
    redis.call('lpush', KEYS[3], 1)
end
return #ids
"#;

/// Promotes every due task of the queues in `configs`; returns how many.
pub async fn drain(conn: &mut ConnectionManager, configs: &[Config]) -> redis::RedisResult<usize> {
    let script = Script::new(PROMOTE);
    let mut moved = 0;
    for config in configs {
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let n: usize = script
                .key(config.scheduled_jobs_set())
                .key(config.active_jobs_list())
                .key(config.signal_list())
                .arg(now)
                .arg(CHUNK)
                .invoke_async(conn)
                .await?;
            moved += n;
            if n < CHUNK {
                break;
            }
        }
    }
    Ok(moved)
}

/// Promotes continuously until `shutdown` resolves.
pub async fn run(
    mut conn: ConnectionManager,
    configs: Vec<Config>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let pause = match drain(&mut conn, &configs).await {
            Ok(_) => IDLE,
            Err(error) => {
                tracing::warn!(%error, "promoting scheduled jobs failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

//! Dependency checks for every service's `/ready`: each answers `ok`,
//! `unreachable` or `timeout` within [`LIMIT`]; [`ready`] is the whole
//! answer of the services with checks of their own.

use std::time::Duration;

use sqlx::PgPool;

use crate::redis::redis;

/// How long a check may take before it counts as failed.
pub const LIMIT: Duration = Duration::from_secs(2);

/// `SELECT 1` on the pool.
pub async fn postgres(db: &PgPool) -> &'static str {
    match tokio::time::timeout(LIMIT, sqlx::query("SELECT 1").execute(db)).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(_)) => "unreachable",
        Err(_) => "timeout",
    }
}

/// `PING` on a pooled connection (failures count in `redis_errors_total`).
pub async fn redis(pool: &crate::redis::Pool) -> &'static str {
    let ping = async {
        let mut conn = pool.get().await.map_err(|_| ())?;
        redis::cmd("PING")
            .query_async::<String>(&mut *conn)
            .await
            .map_err(|_| ())
    };
    match tokio::time::timeout(LIMIT, ping).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(())) => {
            metrics::counter!("redis_errors_total", "op" => "ping").increment(1);
            "unreachable"
        }
        Err(_) => "timeout",
    }
}

/// The answer to `/ready` of a service that needs PostgreSQL and Redis and
/// has checks of its own, `extra` (name, outcome): both dependencies are
/// checked at once. `Ok` with the body when every check is `ok`, `Err` with
/// it otherwise (the service answers 503).
pub async fn ready(
    db: &PgPool,
    pool: &crate::redis::Pool,
    extra: &[(&'static str, String)],
) -> Result<serde_json::Value, serde_json::Value> {
    let (postgres, redis) = tokio::join!(postgres(db), redis(pool));
    let mut checks = serde_json::Map::new();
    checks.insert("postgres".into(), postgres.into());
    checks.insert("redis".into(), redis.into());
    for (name, outcome) in extra {
        checks.insert((*name).into(), outcome.as_str().into());
    }
    let is_ready = checks.values().all(|outcome| outcome == "ok");
    let body = serde_json::json!({
        "status": if is_ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    if is_ready { Ok(body) } else { Err(body) }
}

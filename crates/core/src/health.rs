//! Dependency checks for every service's `/ready`: each answers `ok`,
//! `unreachable` or `timeout` within [`LIMIT`].

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

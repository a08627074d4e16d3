//! Each test gets its own freshly migrated database and its own Redis key
//! prefix, so tests run in parallel against the real PostgreSQL and Redis
//! without seeing each other; both are removed when the test ends.

use std::sync::Arc;

use deadpool_redis::redis;
use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection, PgPool};
use switchboard_core::{Settings, settings::Argon2Params};
use uuid::Uuid;

/// A database and a Redis prefix made for one test, dropped with it.
pub struct TestDatabase {
    /// The database's name (`sbtest_<random>`).
    pub name: String,
    /// Its connection URL.
    pub url: String,
    /// A pool on it.
    pub pool: PgPool,
    /// The Redis key prefix of every [`TestDatabase::settings`].
    pub redis_prefix: String,
    maintenance_url: String,
    redis_url: String,
}

/// Settings for a test: the environment's, over `database_url`, with a
/// unique Redis prefix and cheap argon2 so logins do not dominate test time.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::from_env().unwrap_or_default();
    settings.database_url = database_url.to_string().into();
    settings.redis_prefix = format!("sbtest:{}", Uuid::new_v4().simple());
    settings.argon2 = Argon2Params {
        m_cost: 1024,
        t_cost: 1,
        p_cost: 1,
    };
    settings.db_max_connections = 10;
    settings
}

impl TestDatabase {
    /// Creates and migrates `sbtest_<random>` on the server named by
    /// `DATABASE_URL` (or the default local one).
    pub async fn new() -> Self {
        let base = Settings::from_env().unwrap_or_default();
        let base_url = base.database_url.expose_secret().to_string();
        let name = format!("sbtest_{}", Uuid::new_v4().simple());
        let (server, _) = base_url
            .rsplit_once('/')
            .expect("DATABASE_URL has a database name");
        let maintenance_url = format!("{server}/postgres");
        let url = format!("{server}/{name}");
        let mut conn = PgConnection::connect(&maintenance_url)
            .await
            .expect("PostgreSQL is reachable (start it or set DATABASE_URL)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let settings = test_settings(&url);
        let pool = switchboard_core::db::connect(&settings)
            .await
            .expect("connect to the test database");
        switchboard_core::db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate the test database");
        Self {
            name,
            url,
            pool,
            redis_prefix: settings.redis_prefix,
            maintenance_url,
            redis_url: base.redis_url.expose_secret().to_string(),
        }
    }

    /// Rows in `table`, whatever their tenant.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("count {table}: {e}"))
    }

    /// Test settings over this database and its Redis prefix.
    pub fn settings(&self) -> Arc<Settings> {
        let mut settings = test_settings(&self.url);
        settings.redis_prefix = self.redis_prefix.clone();
        Arc::new(settings)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = self.maintenance_url.clone();
        let redis_url = self.redis_url.clone();
        let pattern = format!("{}:*", self.redis_prefix);
        // Drop runs outside async; a scratch runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
                let _ = remove_keys(&redis_url, &pattern).await;
            });
        })
        .join();
    }
}

/// Removes the keys matching `pattern` (a test's prefix) from Redis.
async fn remove_keys(redis_url: &str, pattern: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

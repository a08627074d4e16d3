//! Test support (feature `testing`): each test gets its own freshly
//! migrated database and its own Redis key prefix, so tests run in parallel
//! against the real PostgreSQL and Redis without seeing each other.

use std::sync::Arc;

use secrecy::ExposeSecret;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::{Settings, settings::Argon2Params};

/// A database created for one test and dropped when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
    maintenance_url: String,
}

/// Settings for a test: the environment's, with a fresh database, a unique
/// Redis prefix, and cheap argon2 so logins do not dominate test time.
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
        let pool = crate::db::connect(&settings)
            .await
            .expect("connect to the test database");
        crate::db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate the test database");
        Self {
            name,
            url,
            pool,
            maintenance_url,
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        Arc::new(test_settings(&self.url))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = self.maintenance_url.clone();
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
            });
        })
        .join();
    }
}

//! PostgreSQL: the pool every service uses, database creation and migrations.

use secrecy::ExposeSecret;
use sqlx::{
    PgPool,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::Settings;

/// The migrations in `migrations/`, embedded so the binary carries its schema.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Why connecting to, creating or migrating the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// `DATABASE_URL` does not parse.
    #[error("invalid DATABASE_URL: {0}")]
    Url(sqlx::Error),
    /// PostgreSQL could not be reached, or refused the connection.
    #[error("could not reach PostgreSQL: {0}")]
    Connect(sqlx::Error),
    /// `CREATE DATABASE` failed.
    #[error("could not create the database: {0}")]
    Create(sqlx::Error),
    /// Applying the migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Options for `url`, with statement logging quietened: queries are traced
/// by our own spans, and a slow-query log at WARN is kept.
fn connect_options(url: &str) -> Result<PgConnectOptions, DbSetupError> {
    use sqlx::ConnectOptions;
    let options: PgConnectOptions = url.parse().map_err(DbSetupError::Url)?;
    Ok(options
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(
            tracing::log::LevelFilter::Warn,
            std::time::Duration::from_millis(500),
        ))
}

/// A lazily-connecting pool sized by the settings.
pub async fn connect(settings: &Settings) -> Result<PgPool, DbSetupError> {
    pool(
        settings,
        connect_options(settings.database_url.expose_secret())?,
    )
    .await
}

/// The worker's pool: like [`connect`], but the jobs it inserts send no
/// `NOTIFY` (`switchboard.notify_jobs = off`, see the job queue migration).
/// A notifying transaction commits under a database-wide lock, which would
/// serialise every job the worker hands on; the worker wakes its own queues
/// in-process instead, and other workers find the jobs within their poll.
pub async fn connect_for_worker(settings: &Settings) -> Result<PgPool, DbSetupError> {
    let options = connect_options(settings.database_url.expose_secret())?
        .options([("switchboard.notify_jobs", "off")]);
    pool(settings, options).await
}

/// The pool of the group-commit lanes (see [`crate::group_commit`]), at
/// most `max_connections` (one per lane). Their statements have the same
/// shape every time, arrays of any length, and PostgreSQL's default plan
/// cache re-plans each execution (a custom plan always looks cheaper than
/// the generic one for arrays it can see): in the carrier storm, planning
/// was a third of PostgreSQL's CPU (14 % of the machine). These connections use the generic plan,
/// made once per connection (`plan_cache_mode = force_generic_plan`); the
/// other pools keep PostgreSQL's choice, which suits the reports' skewed
/// ranges.
pub async fn connect_for_batches(
    settings: &Settings,
    max_connections: u32,
) -> Result<PgPool, DbSetupError> {
    let options = connect_options(settings.database_url.expose_secret())?
        .options([("plan_cache_mode", "force_generic_plan")]);
    sized_pool(settings, max_connections, options).await
}

async fn pool(settings: &Settings, options: PgConnectOptions) -> Result<PgPool, DbSetupError> {
    sized_pool(settings, settings.db_max_connections, options).await
}

async fn sized_pool(
    settings: &Settings,
    max_connections: u32,
    options: PgConnectOptions,
) -> Result<PgPool, DbSetupError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(settings.db_acquire_timeout)
        .idle_timeout(std::time::Duration::from_secs(300))
        .connect_with(options)
        .await
        .map_err(DbSetupError::Connect)
}

/// Creates the database named in the URL if it does not exist.
/// Returns whether it had to be created.
pub async fn create_database_if_missing(url: &str) -> Result<bool, DbSetupError> {
    if sqlx::Postgres::database_exists(url)
        .await
        .map_err(DbSetupError::Connect)?
    {
        return Ok(false);
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        // Another process created it between our check and our CREATE.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(DbSetupError::Create(e)),
    }
}

/// `switchboard migrate`: create the database if needed, then apply pending migrations.
pub async fn migrate(settings: &Settings) -> Result<PgPool, DbSetupError> {
    create_database_if_missing(settings.database_url.expose_secret()).await?;
    let pool = connect(settings).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lanes' connections plan once and reuse the generic plan; the
    /// main pool keeps PostgreSQL's default choice.
    #[tokio::test]
    async fn the_batch_pool_uses_generic_plans_and_the_main_pool_does_not() {
        // The server's maintenance database: this test needs a connection,
        // not a schema.
        let mut settings = Settings::from_env().unwrap_or_default();
        let url = settings.database_url.expose_secret().to_string();
        let (server, _) = url.rsplit_once('/').expect("DATABASE_URL names a database");
        settings.database_url = format!("{server}/postgres").into();
        let mode = |pool: PgPool| async move {
            let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
                .fetch_one(&pool)
                .await
                .expect("SHOW plan_cache_mode");
            pool.close().await;
            mode
        };
        let batches = connect_for_batches(&settings, 2).await.expect("batch pool");
        assert_eq!(batches.options().get_max_connections(), 2);
        assert_eq!(mode(batches).await, "force_generic_plan");
        let main = connect(&settings).await.expect("main pool");
        assert_eq!(mode(main).await, "auto");
    }
}

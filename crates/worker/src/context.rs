//! What every job and background loop shares.

use std::sync::Arc;

use sqlx::PgPool;
use switchboard_core::{Settings, events::EventPublisher, jobs::JobQueues};
use uuid::Uuid;

/// Pools, publishers and settings, built once per worker process.
pub struct Ctx {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub redis: deadpool_redis::Pool,
    pub queues: JobQueues,
    pub events: EventPublisher,
    /// Outbound HTTP: tenant webhooks and the simulator's carrier callbacks.
    pub http: reqwest::Client,
    /// This process's identity among workers (apalis worker names, stream consumer).
    pub instance: String,
}

impl Ctx {
    pub async fn new(settings: Arc<Settings>) -> anyhow::Result<Arc<Self>> {
        let db = switchboard_core::db::connect(&settings).await?;
        let redis = switchboard_core::redis::pool(&settings)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Arc::new(Self {
            queues: JobQueues::new(settings.clone()),
            events: EventPublisher::new(redis.clone(), settings.clone()),
            instance: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
            settings,
            db,
            redis,
            http,
        }))
    }
}

//! What every job and background loop shares.

use std::sync::Arc;

use sqlx::PgPool;
use switchboard_core::{Settings, events::EventPublisher};
use uuid::Uuid;

use crate::{jobs::sms::HandOvers, queue::Queues};

/// Pools, publishers and settings, built once per worker process.
pub struct Ctx {
    /// The process's settings.
    pub settings: Arc<Settings>,
    /// The PostgreSQL pool; the jobs it inserts send no `NOTIFY`
    /// (`switchboard_core::db::connect_for_worker`).
    pub db: PgPool,
    /// The Redis pool.
    pub redis: switchboard_core::redis::Pool,
    /// The job queues' claims, acks, leases and watchdog state.
    pub queues: Arc<Queues>,
    /// Publishes the events the jobs' changes cause.
    pub events: EventPublisher,
    /// Outbound HTTP: tenant webhooks and the simulator's carrier callbacks.
    pub http: reqwest::Client,
    /// This process's identity among workers (job claims, apalis worker
    /// names, the event stream's consumer): unique per start.
    pub instance: String,
    /// `sms.send` hand-overs, applied in groups.
    pub hand_overs: HandOvers,
    /// Whether the webhook fan-out is doing its work (`/ready`).
    pub fanout: crate::webhook_fanout::Health,
}

impl Ctx {
    /// Connects the pools and builds the shared state, once per process.
    pub async fn new(settings: Arc<Settings>) -> anyhow::Result<Arc<Self>> {
        let db = switchboard_core::db::connect_for_worker(&settings).await?;
        let redis = switchboard_core::redis::pool(&settings)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()?;
        let instance = format!("{}-{}", std::process::id(), Uuid::new_v4().simple());
        let simulated = settings.carrier == switchboard_core::settings::CarrierMode::Simulated;
        Ok(Arc::new(Self {
            hand_overs: crate::jobs::sms::hand_overs(&db, simulated),
            queues: Arc::new(Queues::new(
                db.clone(),
                instance.clone(),
                settings.job_lease,
                settings.queue_stall_after,
            )),
            events: EventPublisher::new(redis.clone(), settings.clone()),
            instance,
            settings,
            db,
            redis,
            http,
            fanout: Default::default(),
        }))
    }
}

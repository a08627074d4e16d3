//! The dead-letter list: jobs that failed permanently or ran out of
//! attempts, kept per queue in a Redis hash (`{prefix}:dead:{queue}`, entry
//! id → JSON) until someone inspects and re-drives them
//! (`switchboard jobs dead-letter list|retry`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use switchboard_core::{
    Settings,
    jobs::{
        CampaignExpand, CarrierSim, Job, JobQueues, Queued, RecordingProcess, SmsSend,
        VoicemailTranscribe, WebhookDeliver,
    },
    redis::redis::{self, AsyncCommands},
};
use uuid::Uuid;

use crate::{context::Ctx, error::JobError};

/// Every queue the worker serves, in DESIGN.md's order.
pub const QUEUES: [&str; 6] = [
    SmsSend::QUEUE,
    CampaignExpand::QUEUE,
    VoicemailTranscribe::QUEUE,
    RecordingProcess::QUEUE,
    WebhookDeliver::QUEUE,
    CarrierSim::QUEUE,
];

/// One dead job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadJob {
    pub id: Uuid,
    pub queue: String,
    pub job: serde_json::Value,
    pub attempts: u32,
    /// `transient` (out of attempts) or `permanent`.
    pub kind: String,
    pub error: String,
    pub failed_at: DateTime<Utc>,
}

pub fn key(settings: &Settings, queue: &str) -> String {
    settings.redis_key(&format!("dead:{queue}"))
}

pub(crate) async fn record<T: Job>(
    ctx: &Ctx,
    queued: &Queued<T>,
    error: &JobError,
) -> anyhow::Result<()> {
    record_raw(
        ctx,
        T::QUEUE,
        serde_json::to_value(&queued.job)?,
        queued.attempt,
        error,
    )
    .await
}

/// Records a dead job given as JSON (also a payload the worker could not
/// decode: re-driving it tries to read it as the queue's job again).
pub(crate) async fn record_raw(
    ctx: &Ctx,
    queue: &str,
    job: serde_json::Value,
    attempts: u32,
    error: &JobError,
) -> anyhow::Result<()> {
    let entry = DeadJob {
        id: switchboard_core::ids::new_id(),
        queue: queue.to_string(),
        job,
        attempts,
        kind: error.kind().to_string(),
        error: error.to_string(),
        failed_at: Utc::now(),
    };
    let mut conn = ctx.redis.get().await?;
    let _: () = conn
        .hset(
            key(&ctx.settings, queue),
            entry.id.to_string(),
            serde_json::to_string(&entry)?,
        )
        .await?;
    Ok(())
}

/// Dead jobs, oldest first; one queue or all.
pub async fn list(
    redis: &deadpool_redis::Pool,
    settings: &Settings,
    queue: Option<&str>,
) -> anyhow::Result<Vec<DeadJob>> {
    let mut conn = redis.get().await?;
    let mut all = Vec::new();
    for q in QUEUES
        .iter()
        .filter(|q| queue.is_none_or(|want| want == **q))
    {
        let entries: Vec<String> = conn.hvals(key(settings, q)).await?;
        for raw in entries {
            all.push(serde_json::from_str::<DeadJob>(&raw)?);
        }
    }
    all.sort_by_key(|d| (d.failed_at, d.id));
    Ok(all)
}

/// How many jobs each queue's dead-letter list holds.
pub async fn depths(
    conn: &mut deadpool_redis::Connection,
    settings: &Settings,
) -> redis::RedisResult<Vec<(&'static str, u64)>> {
    let mut pipe = redis::pipe();
    for q in QUEUES {
        pipe.hlen(key(settings, q));
    }
    let lens: Vec<u64> = pipe.query_async(&mut **conn).await?;
    Ok(QUEUES.into_iter().zip(lens).collect())
}

/// Re-drives dead jobs (all, one queue's, or one by id) as fresh first
/// attempts; returns how many. An entry leaves the list only once its job
/// is back on its queue.
pub async fn retry(
    redis: &deadpool_redis::Pool,
    queues: &JobQueues,
    settings: &Settings,
    queue: Option<&str>,
    id: Option<Uuid>,
) -> anyhow::Result<usize> {
    let mut retried = 0;
    for dead in list(redis, settings, queue).await? {
        if id.is_some_and(|want| want != dead.id) {
            continue;
        }
        match dead.queue.as_str() {
            SmsSend::QUEUE => redrive::<SmsSend>(queues, &dead).await?,
            CampaignExpand::QUEUE => redrive::<CampaignExpand>(queues, &dead).await?,
            VoicemailTranscribe::QUEUE => redrive::<VoicemailTranscribe>(queues, &dead).await?,
            RecordingProcess::QUEUE => redrive::<RecordingProcess>(queues, &dead).await?,
            WebhookDeliver::QUEUE => redrive::<WebhookDeliver>(queues, &dead).await?,
            CarrierSim::QUEUE => redrive::<CarrierSim>(queues, &dead).await?,
            other => anyhow::bail!("dead job {} names unknown queue {other:?}", dead.id),
        }
        let mut conn = redis.get().await?;
        let _: () = conn
            .hdel(key(settings, &dead.queue), dead.id.to_string())
            .await?;
        retried += 1;
    }
    Ok(retried)
}

async fn redrive<T: Job + DeserializeOwned>(
    queues: &JobQueues,
    dead: &DeadJob,
) -> anyhow::Result<()> {
    let job: T = serde_json::from_value(dead.job.clone())?;
    queues.push_queued(Queued::new(job), None).await?;
    Ok(())
}

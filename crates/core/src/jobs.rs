//! Job payloads and the queues they travel on (apalis over Redis).
//!
//! The API pushes, the worker consumes; both build their storages with
//! [`storage`], so a queue's Redis keys are defined once, inside the
//! deployment's key prefix. Payloads carry ids, never the data itself: the
//! database row is the truth, which makes every job safe to retry and lets
//! the sweeper re-drive a record whose push failed.

use std::sync::Arc;

use apalis_core::{backend::TaskSink, task::builder::TaskBuilder};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::Settings;

/// A job type and the queue it goes on.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue name from DESIGN.md.
    const QUEUE: &'static str;
}

/// Send one outbound SMS through the carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSend {
    pub tenant_id: Uuid,
    pub message_id: Uuid,
}

impl Job for SmsSend {
    const QUEUE: &'static str = "sms.send";
}

/// Resolve a campaign's recipients and create its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignExpand {
    pub tenant_id: Uuid,
    pub campaign_id: Uuid,
}

impl Job for CampaignExpand {
    const QUEUE: &'static str = "campaign.expand";
}

/// Transcribe a voicemail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoicemailTranscribe {
    pub tenant_id: Uuid,
    pub voicemail_id: Uuid,
}

impl Job for VoicemailTranscribe {
    const QUEUE: &'static str = "voicemail.transcribe";
}

/// Process a call recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingProcess {
    pub tenant_id: Uuid,
    pub recording_id: Uuid,
}

impl Job for RecordingProcess {
    const QUEUE: &'static str = "recording.process";
}

/// Deliver one event to one tenant webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDeliver {
    pub tenant_id: Uuid,
    pub webhook_id: Uuid,
    pub event: crate::events::Envelope,
}

impl Job for WebhookDeliver {
    const QUEUE: &'static str = "webhook.deliver";
}

/// Work for the carrier simulator: play the network for one call or message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CarrierSim {
    OutboundCall { tenant_id: Uuid, call_id: Uuid },
    OutboundSms { tenant_id: Uuid, message_id: Uuid },
}

impl Job for CarrierSim {
    const QUEUE: &'static str = "carrier.sim";
}

/// What travels on a queue: the job plus what the worker needs to time and
/// retry it. `attempt` starts at 1; a retry is pushed as a new task with the
/// next attempt, so a queue never holds two live copies of one try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub struct Queued<T> {
    pub job: T,
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the job became due (pushed, or its retry delay ended): queue
    /// wait is measured from here.
    pub due_at: DateTime<Utc>,
}

fn first_attempt() -> u32 {
    1
}

impl<T> Queued<T> {
    pub fn new(job: T) -> Self {
        Self {
            job,
            attempt: 1,
            due_at: Utc::now(),
        }
    }
}

/// The storage for `T`'s queue, namespaced by the deployment's Redis prefix.
pub fn storage<T: Job>(conn: ConnectionManager, settings: &Settings) -> RedisStorage<Queued<T>> {
    RedisStorage::new(conn).with_config(storage_config::<T>(settings))
}

/// The apalis-redis configuration for `T`'s queue (worker and pusher alike).
pub fn storage_config<T: Job>(settings: &Settings) -> Config {
    Config::default().queue(queue_name::<T>(settings))
}

/// The full queue name for `T` (`{prefix}:queue:{name}`).
pub fn queue_name<T: Job>(settings: &Settings) -> String {
    settings.redis_key(&format!("queue:{}", T::QUEUE))
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("connecting to Redis for jobs: {0}")]
    Connect(#[from] apalis_redis::RedisError),
    #[error("pushing a {queue} job: {message}")]
    Push {
        queue: &'static str,
        message: String,
    },
}

/// Pushes jobs. Connects on first use, so a service starts (and reports
/// not-ready) while Redis is down; the connection then reconnects by itself.
#[derive(Clone)]
pub struct JobQueues {
    settings: Arc<Settings>,
    conn: Arc<OnceCell<ConnectionManager>>,
}

impl JobQueues {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self {
            settings,
            conn: Arc::new(OnceCell::new()),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager, PushError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                apalis_redis::connect(self.settings.redis_url.expose_secret()).await
            })
            .await?;
        Ok(conn.clone())
    }

    /// Pushes one job.
    pub async fn push<T: Job>(&self, job: T) -> Result<(), PushError> {
        self.push_queued(Queued::new(job), None).await
    }

    /// Pushes many jobs of one type in one batch, each due after its delay
    /// in whole seconds (0 = now).
    pub async fn push_many<T: Job>(&self, jobs: Vec<(T, u64)>) -> Result<(), PushError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut storage = storage::<T>(self.conn().await?, &self.settings);
        let now = Utc::now();
        let tasks = jobs.into_iter().map(move |(job, seconds)| {
            let queued = Queued {
                job,
                attempt: 1,
                due_at: now + chrono::Duration::seconds(seconds as i64),
            };
            let task = TaskBuilder::new(queued);
            if seconds == 0 {
                task.build()
            } else {
                task.run_in_seconds(seconds).build()
            }
        });
        storage
            .push_all(futures::stream::iter(tasks))
            .await
            .map_err(|e| push_error::<T>(e))
    }

    /// Pushes a job (new or a retry), optionally due only after `delay`.
    /// apalis-redis schedules in whole seconds, so delays round up.
    pub async fn push_queued<T: Job>(
        &self,
        mut queued: Queued<T>,
        delay: Option<std::time::Duration>,
    ) -> Result<(), PushError> {
        let mut storage = storage::<T>(self.conn().await?, &self.settings);
        match delay {
            Some(delay) if !delay.is_zero() => {
                let seconds = delay.as_millis().div_ceil(1000) as u64;
                queued.due_at = Utc::now() + chrono::Duration::seconds(seconds as i64);
                let task = TaskBuilder::new(queued).run_in_seconds(seconds).build();
                storage.push_task(task).await
            }
            _ => storage.push(queued).await,
        }
        .map_err(|e| push_error::<T>(e))
    }

    /// Pushes a job after its record committed. A failure is logged and
    /// counted, not returned: the record stays in its waiting state and the
    /// sweeper re-drives it.
    pub async fn push_after_commit<T: Job>(&self, job: T) {
        if let Err(error) = self.push(job).await {
            metrics::counter!("redis_errors_total", "op" => "job_push").increment(1);
            metrics::counter!("jobs_push_failed_total", "queue" => T::QUEUE).increment(1);
            tracing::warn!(queue = T::QUEUE, %error, "job not pushed; the sweeper will re-drive it");
        } else {
            metrics::counter!("jobs_pushed_total", "queue" => T::QUEUE).increment(1);
        }
    }
}

fn push_error<T: Job>(error: impl std::fmt::Display) -> PushError {
    PushError::Push {
        queue: T::QUEUE,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_live_under_the_prefix() {
        let settings = Settings {
            redis_prefix: "test-x".into(),
            ..Settings::default()
        };
        assert_eq!(queue_name::<SmsSend>(&settings), "test-x:queue:sms.send");
        assert_eq!(
            queue_name::<CarrierSim>(&settings),
            "test-x:queue:carrier.sim"
        );
    }

    #[test]
    fn carrier_jobs_are_tagged_by_kind() {
        let id = Uuid::nil();
        let json = serde_json::to_value(CarrierSim::OutboundCall {
            tenant_id: id,
            call_id: id,
        })
        .unwrap();
        assert_eq!(json["kind"], "outbound_call");
    }
}

//! Job payloads and the queues they travel on (PostgreSQL's `jobs` table).
//!
//! A job is inserted with [`enqueue`] or [`enqueue_many`] on the caller's
//! connection — inside the transaction that writes the record it acts on —
//! so a committed write always has its job and a rolled-back one never
//! does. The worker (`switchboard-worker`'s `queue` module) claims due jobs
//! in batches with `SKIP LOCKED` and is woken by the table's `NOTIFY`.
//! Payloads carry ids, never the data itself: the database row is the
//! truth, which makes every job safe to run twice. The one exception is the
//! simulated network's copy of what it was handed ([`HandedOver`]), which a
//! real carrier keeps too.

use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// The `LISTEN` channel the `jobs` table notifies (payload: the queue name).
pub const NOTIFY_CHANNEL: &str = "switchboard_jobs";

/// A job type and the queue it goes on.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue name from DESIGN.md.
    const QUEUE: &'static str;

    /// The record this job acts on. The sweeper re-drives a stuck record
    /// only when no job (and no dead letter) names it.
    fn subject(&self) -> Uuid;
}

/// Declares jobs that each act on one record of one tenant: a struct of the
/// two ids and its [`Job`] impl, whose subject is the record.
macro_rules! record_jobs {
    ($($(#[$doc:meta])* $name:ident($record:ident) on $queue:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// The tenant the record belongs to.
            pub tenant_id: Uuid,
            /// The record the job acts on (its subject).
            pub $record: Uuid,
        }

        impl $name {
            /// The job for record `$record` of tenant `tenant_id`.
            pub fn new(tenant_id: Uuid, $record: Uuid) -> Self {
                Self { tenant_id, $record }
            }
        }

        impl Job for $name {
            const QUEUE: &'static str = $queue;
            fn subject(&self) -> Uuid {
                self.$record
            }
        }
    )*};
}

record_jobs! {
    /// Send one outbound SMS through the carrier.
    SmsSend(message_id) on "sms.send";

    /// Resolve a campaign's recipients and create its messages.
    CampaignExpand(campaign_id) on "campaign.expand";

    /// Transcribe a voicemail.
    VoicemailTranscribe(voicemail_id) on "voicemail.transcribe";

    /// Process a call recording.
    RecordingProcess(recording_id) on "recording.process";

    /// Validate and write the rows of a bulk customer import, in batches.
    ImportProcess(import_id) on "import.process";

    /// Advance one scheduled call: place it when due (within calling hours and
    /// the tenant's concurrency cap), or settle it once its attempt has ended.
    /// The handler decides from the record's state, so the job is enqueued for
    /// every reason at once — the due time, a deferral, an attempt's end — and a
    /// duplicate does nothing.
    ScheduledCallRun(scheduled_call_id) on "scheduled_call.run";
}

/// Deliver one event to one tenant webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDeliver {
    /// The tenant the webhook and the event belong to.
    pub tenant_id: Uuid,
    /// The tenant webhook (`tenant_webhooks` row) to POST to.
    pub webhook_id: Uuid,
    /// The event to deliver; its id is the job's subject.
    pub event: crate::events::Envelope,
}

impl Job for WebhookDeliver {
    const QUEUE: &'static str = "webhook.deliver";
    fn subject(&self) -> Uuid {
        self.event.id
    }
}

/// Work for the carrier simulator: play the network for one call or message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CarrierSim {
    /// Play an outbound call: `ringing`, then `in-progress` and `completed`,
    /// or `busy`, `no-answer` or `failed`, through the voice status webhook.
    OutboundCall {
        /// The tenant the call belongs to.
        tenant_id: Uuid,
        /// The call to play (the job's subject).
        call_id: Uuid,
    },
    /// Play an outbound message: `sent`, then `delivered`, `undelivered` or
    /// `failed`, through the SMS status webhook.
    OutboundSms {
        /// The tenant the message belongs to.
        tenant_id: Uuid,
        /// The message to play (the job's subject).
        message_id: Uuid,
        /// Set by the hand-over that enqueued the job; absent when the
        /// sweeper re-drives a message (the simulator then reads the row).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handed_over: Option<HandedOver>,
    },
}

/// What the network was given when a message was handed over, as a real
/// carrier keeps it from the send request: the simulator plays the message
/// from this instead of reading our database, and reads the row only when a
/// callback was not applied (a retried or re-driven job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOver {
    /// The message's carrier SID (`SM…`).
    pub sid: String,
    /// The number it is sent from (E.164).
    pub from: String,
    /// The recipient's number (E.164).
    pub to: String,
    /// When the message became `sending`.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Job for CarrierSim {
    const QUEUE: &'static str = "carrier.sim";
    fn subject(&self) -> Uuid {
        match *self {
            Self::OutboundCall { call_id, .. } => call_id,
            Self::OutboundSms { message_id, .. } => message_id,
        }
    }
}

/// Every queue the worker serves, in DESIGN.md's order.
pub const QUEUES: [&str; 8] = [
    SmsSend::QUEUE,
    CampaignExpand::QUEUE,
    VoicemailTranscribe::QUEUE,
    RecordingProcess::QUEUE,
    WebhookDeliver::QUEUE,
    CarrierSim::QUEUE,
    ImportProcess::QUEUE,
    ScheduledCallRun::QUEUE,
];

/// Inserts one job, due now, on `conn` (pass the write's transaction).
pub async fn enqueue<'c, T: Job>(
    conn: impl sqlx::PgExecutor<'c>,
    job: &T,
) -> Result<(), sqlx::Error> {
    enqueue_in(conn, job, Duration::ZERO).await
}

/// Inserts one job due after `delay` (millisecond resolution).
pub async fn enqueue_in<'c, T: Job>(
    conn: impl sqlx::PgExecutor<'c>,
    job: &T,
    delay: Duration,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO jobs (queue, subject, payload, available_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(T::QUEUE)
    .bind(job.subject())
    .bind(payload)
    .bind(delay.as_secs_f64())
    .execute(conn)
    .await?;
    metrics::counter!("jobs_enqueued_total", "queue" => T::QUEUE).increment(1);
    Ok(())
}

/// Inserts many jobs of one type in one statement, each due after its
/// delay; returns how many.
pub async fn enqueue_many<'c, T: Job>(
    conn: impl sqlx::PgExecutor<'c>,
    jobs: &[(T, Duration)],
) -> Result<u64, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let mut subjects = Vec::with_capacity(jobs.len());
    let mut payloads = Vec::with_capacity(jobs.len());
    let mut delays = Vec::with_capacity(jobs.len());
    for (job, delay) in jobs {
        subjects.push(job.subject());
        payloads.push(serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        delays.push(delay.as_secs_f64());
    }
    let inserted = sqlx::query(
        "INSERT INTO jobs (queue, subject, payload, available_at)
         SELECT $1, s, p, now() + make_interval(secs => d)
         FROM UNNEST($2::uuid[], $3::jsonb[], $4::float8[]) AS t(s, p, d)",
    )
    .bind(T::QUEUE)
    .bind(subjects)
    .bind(payloads)
    .bind(delays)
    .execute(conn)
    .await?
    .rows_affected();
    metrics::counter!("jobs_enqueued_total", "queue" => T::QUEUE).increment(inserted);
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_job_names_the_record_it_acts_on() {
        let (tenant_id, message_id) = (Uuid::nil(), Uuid::max());
        let job = CarrierSim::OutboundSms {
            tenant_id,
            message_id,
            handed_over: None,
        };
        assert_eq!(job.subject(), message_id);
        assert_eq!(
            SmsSend {
                tenant_id,
                message_id
            }
            .subject(),
            message_id
        );
    }
}

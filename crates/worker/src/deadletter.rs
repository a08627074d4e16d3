//! The dead-letter table: jobs that failed permanently or ran out of
//! attempts (`dead_jobs`, written by [`crate::queue::Queues::dead_letter`]),
//! kept until someone inspects and re-drives them
//! (`switchboard jobs dead-letter list|retry`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

pub use switchboard_core::jobs::QUEUES;

/// One dead job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct DeadJob {
    /// The dead letter's id (what `retry` takes).
    pub id: Uuid,
    /// The queue the job ran on.
    pub queue: String,
    /// The record the job acted on.
    pub subject: Uuid,
    /// The job as it was enqueued.
    #[sqlx(rename = "payload")]
    pub job: serde_json::Value,
    /// How many times it ran.
    pub attempts: i32,
    /// `transient` (out of attempts) or `permanent`.
    pub kind: String,
    /// The last run's error.
    pub error: String,
    /// When it was given up.
    pub failed_at: DateTime<Utc>,
}

/// Dead jobs, oldest first; one queue or all.
pub async fn list(db: &PgPool, queue: Option<&str>) -> Result<Vec<DeadJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, queue, subject, payload, attempts, kind, error, failed_at FROM dead_jobs
         WHERE $1::text IS NULL OR queue = $1
         ORDER BY failed_at, id",
    )
    .bind(queue)
    .fetch_all(db)
    .await
}

/// Re-drives dead jobs (all, one queue's, or one by id) as fresh jobs due
/// now; returns how many. Each moves back to `jobs` in one statement, so
/// an entry is never both dead and queued, nor lost in between.
pub async fn retry(db: &PgPool, queue: Option<&str>, id: Option<Uuid>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "WITH revived AS (
             DELETE FROM dead_jobs
             WHERE ($1::text IS NULL OR queue = $1) AND ($2::uuid IS NULL OR id = $2)
             RETURNING queue, subject, payload
         )
         INSERT INTO jobs (queue, subject, payload) SELECT queue, subject, payload FROM revived",
    )
    .bind(queue)
    .bind(id)
    .execute(db)
    .await?
    .rows_affected())
}

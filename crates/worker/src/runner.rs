//! Running one job: decoding, timing, timeout, retries with exponential
//! backoff, the dead-letter table, and the metrics for all of it.
//!
//! apalis hands the runner a job claimed from PostgreSQL ([`Claimed`]); the
//! runner settles it in the `jobs` table itself and always answers `Ok` to
//! apalis: done is a batched acknowledgement (the row is deleted), a
//! transient failure makes the same row due again after its backoff, a
//! permanent failure or the last attempt moves it to `dead_jobs`. A worker
//! killed mid-job settles nothing; the job is due again when its lease ends,
//! for any worker, which is why every handler is idempotent.

use std::{future::Future, sync::Arc, time::Duration};

use apalis_core::task::data::Data;
use chrono::Utc;
use rand::Rng;
use switchboard_core::jobs::Job;

use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    queue::Claimed,
};

/// A job the worker knows how to run.
pub trait Handler: Job + Clone + std::fmt::Debug {
    /// Attempts before a transient failure is dead-lettered (default: the setting).
    fn max_attempts(ctx: &Ctx) -> u32 {
        ctx.settings.job_max_attempts
    }

    /// How long one run may take (default: the setting).
    fn timeout(ctx: &Ctx) -> Duration {
        ctx.settings.job_timeout
    }

    /// Runs the job once. Every handler is idempotent: a job may run again
    /// after a crash or a lease that ran out.
    fn handle(&self, ctx: &Arc<Ctx>) -> impl Future<Output = JobResult> + Send;

    /// Runs once when this job is given up (moved to the dead-letter list),
    /// so the record it acts on does not stay in progress for ever. The
    /// default has nothing to settle.
    fn on_dead_letter(&self, _ctx: &Arc<Ctx>) -> impl Future<Output = JobResult> + Send {
        async { Ok(()) }
    }
}

/// The apalis handler for every queue. A payload that is not a `T`
/// (written by another version, or by hand) is dead-lettered as permanent.
pub async fn run<T: Handler>(
    claimed: Claimed,
    ctx: Data<Arc<Ctx>>,
) -> Result<(), apalis_core::error::BoxDynError> {
    let ctx: Arc<Ctx> = (*ctx).clone();
    let queue = T::QUEUE;
    let waited = (Utc::now() - claimed.due_at).to_std().unwrap_or_default();
    metrics::histogram!("job_wait_seconds", "queue" => queue).record(waited.as_secs_f64());
    let decoded = serde_json::from_value::<T>(claimed.payload.clone());
    let outcome = match &decoded {
        Err(error) => {
            metrics::counter!("jobs_failed_total", "queue" => queue, "kind" => "undecodable")
                .increment(1);
            Err(JobError::permanent(anyhow::anyhow!(
                "undecodable {queue} job: {error}"
            )))
        }
        Ok(job) if claimed.attempt > T::max_attempts(&ctx) => {
            // Claimed again and again without ever settling: its worker died
            // each time (a job that crashes the process, or outlives every lease).
            Err(JobError::Transient(anyhow::anyhow!(
                "{job:?} was claimed {} times without finishing",
                claimed.attempt - 1
            )))
        }
        Ok(job) => execute(&ctx, job).await,
    };
    match outcome {
        Ok(()) => {
            metrics::counter!("jobs_done_total", "queue" => queue).increment(1);
            ctx.queues.ack(&claimed);
            Ok(())
        }
        Err(error) => settle_failure(&ctx, &claimed, decoded.ok().as_ref(), error).await,
    }
}

/// Runs the handler under the job timeout, with the in-flight gauge and the
/// duration histogram.
async fn execute<T: Handler>(ctx: &Arc<Ctx>, job: &T) -> JobResult {
    let queue = T::QUEUE;
    let in_flight = metrics::gauge!("jobs_running", "queue" => queue);
    in_flight.increment(1.0);
    let started = std::time::Instant::now();
    let timeout = T::timeout(ctx);
    let outcome = match tokio::time::timeout(timeout, job.handle(ctx)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(JobError::Transient(anyhow::anyhow!(
            "timed out after {timeout:?}"
        ))),
    };
    in_flight.decrement(1.0);
    let result = match &outcome {
        Ok(()) => "done",
        Err(JobError::Transient(_)) => "transient",
        Err(JobError::Permanent(_)) => "permanent",
    };
    metrics::histogram!("job_duration_seconds", "queue" => queue, "result" => result)
        .record(started.elapsed().as_secs_f64());
    outcome
}

/// Records a failed attempt: due again after backoff, or a dead letter.
async fn settle_failure<T: Handler>(
    ctx: &Arc<Ctx>,
    claimed: &Claimed,
    job: Option<&T>,
    error: JobError,
) -> Result<(), apalis_core::error::BoxDynError> {
    let queue = T::QUEUE;
    metrics::counter!("jobs_failed_total", "queue" => queue, "kind" => error.kind()).increment(1);
    let message = error.to_string();
    let retryable =
        matches!(error, JobError::Transient(_)) && claimed.attempt < T::max_attempts(ctx);
    if retryable {
        let delay = backoff(ctx.settings.job_retry_base, claimed.attempt);
        tracing::warn!(queue, job_id = claimed.id, attempt = claimed.attempt, ?delay, error = %message, "job failed; retrying");
        ctx.queues.retry(claimed, delay, &message).await?;
        metrics::counter!("jobs_retried_total", "queue" => queue).increment(1);
        return Ok(());
    }
    tracing::error!(queue, job_id = claimed.id, attempt = claimed.attempt, kind = error.kind(), error = %message, "job dead-lettered");
    ctx.queues
        .dead_letter(claimed, error.kind(), &message)
        .await?;
    metrics::counter!("jobs_dead_lettered_total", "queue" => queue).increment(1);
    if let Some(job) = job
        && let Err(error) = job.on_dead_letter(ctx).await
    {
        // The dead letter stands; re-driving it settles the record.
        tracing::error!(queue, job_id = claimed.id, error = %error, "settling a dead-lettered job's record failed");
    }
    Ok(())
}

/// Exponential backoff with ±20 % jitter: base, 2·base, 4·base, … capped at 5 minutes.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let raw = base
        .saturating_mul(1u32 << exponent)
        .min(Duration::from_secs(300));
    let jitter = rand::rng().random_range(0.8..1.2);
    raw.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        for (attempt, expected) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)] {
            let got = backoff(base, attempt).as_secs_f64();
            assert!(
                (expected * 0.8..=expected * 1.2).contains(&got),
                "attempt {attempt}: {got}"
            );
        }
        assert!(backoff(base, 40) <= Duration::from_secs(360));
    }
}

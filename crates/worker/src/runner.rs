//! Running one job: timing, timeout, retries with exponential backoff, the
//! dead-letter list, and the metrics for all of it.
//!
//! apalis delivers a task and acknowledges it when the handler returns. The
//! handler here always returns `Ok` once the outcome is recorded: a
//! transient failure is pushed back as a *new* task due after its backoff
//! (carrying the next attempt number), a permanent failure or the last
//! attempt goes to the dead-letter list. A worker killed mid-job never
//! acknowledges, so apalis-redis hands the task to another worker once the
//! dead one misses its heartbeats; every handler is idempotent for that reason.

use std::{future::Future, sync::Arc, time::Duration};

use apalis_core::task::data::Data;
use chrono::Utc;
use rand::Rng;
use switchboard_core::jobs::{Job, Queued};

use crate::{
    context::Ctx,
    deadletter,
    error::{JobError, JobResult},
};

/// A job the worker knows how to run.
pub trait Handler: Job + Clone + std::fmt::Debug {
    /// Attempts before a transient failure is dead-lettered (default: the setting).
    fn max_attempts(ctx: &Ctx) -> u32 {
        ctx.settings.job_max_attempts
    }

    fn handle(&self, ctx: &Arc<Ctx>) -> impl Future<Output = JobResult> + Send;
}

/// The apalis handler for every queue. Tasks arrive as plain JSON and are
/// decoded here: a payload that is not a `Queued<T>` (written by another
/// version, or by hand) is dead-lettered instead of failing apalis's own
/// decoding, which would stop the queue's worker on every fetch of it.
pub async fn run<T: Handler>(
    raw: serde_json::Value,
    ctx: Data<Arc<Ctx>>,
) -> Result<(), apalis_core::error::BoxDynError> {
    let ctx: Arc<Ctx> = (*ctx).clone();
    let queue = T::QUEUE;
    let queued: Queued<T> = match serde_json::from_value(raw.clone()) {
        Ok(queued) => queued,
        Err(error) => {
            let error = JobError::permanent(anyhow::anyhow!("undecodable {queue} job: {error}"));
            tracing::error!(queue, %error, "job dead-lettered");
            metrics::counter!("jobs_failed_total", "queue" => queue, "kind" => "undecodable")
                .increment(1);
            // A legacy payload is often the bare job: keep that, so a
            // re-drive can read it.
            let job = raw.get("job").cloned().unwrap_or(raw);
            deadletter::record_raw(&ctx, queue, job, 1, &error).await?;
            metrics::counter!("jobs_dead_lettered_total", "queue" => queue).increment(1);
            return Ok(());
        }
    };
    let waited = (Utc::now() - queued.due_at).to_std().unwrap_or_default();
    metrics::histogram!("job_wait_seconds", "queue" => queue).record(waited.as_secs_f64());
    let in_flight = metrics::gauge!("jobs_in_flight", "queue" => queue);
    in_flight.increment(1.0);
    let started = std::time::Instant::now();
    let outcome =
        match tokio::time::timeout(ctx.settings.job_timeout, queued.job.handle(&ctx)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(JobError::Transient(anyhow::anyhow!(
                "timed out after {:?}",
                ctx.settings.job_timeout
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
    match outcome {
        Ok(()) => {
            metrics::counter!("jobs_done_total", "queue" => queue).increment(1);
            Ok(())
        }
        Err(error) => settle_failure(&ctx, queued, error).await,
    }
}

/// Records a failed attempt: a retry after backoff, or the dead-letter list.
async fn settle_failure<T: Handler>(
    ctx: &Ctx,
    queued: Queued<T>,
    error: JobError,
) -> Result<(), apalis_core::error::BoxDynError> {
    let queue = T::QUEUE;
    metrics::counter!("jobs_failed_total", "queue" => queue, "kind" => error.kind()).increment(1);
    let retryable =
        matches!(error, JobError::Transient(_)) && queued.attempt < T::max_attempts(ctx);
    if retryable {
        let delay = backoff(ctx.settings.job_retry_base, queued.attempt);
        tracing::warn!(queue, attempt = queued.attempt, ?delay, %error, "job failed; retrying");
        let retry = Queued {
            job: queued.job,
            attempt: queued.attempt + 1,
            due_at: Utc::now(),
        };
        ctx.queues.push_queued(retry, Some(delay)).await?;
        metrics::counter!("jobs_retried_total", "queue" => queue).increment(1);
        return Ok(());
    }
    tracing::error!(queue, attempt = queued.attempt, kind = error.kind(), %error, "job dead-lettered");
    deadletter::record(ctx, &queued, &error).await?;
    metrics::counter!("jobs_dead_lettered_total", "queue" => queue).increment(1);
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

//! Group commit: many concurrent requests that each need one small
//! statement share one statement per batch.
//!
//! A carrier posts receipts for hundreds of messages a second, each its own
//! HTTP request. Answered one statement each, PostgreSQL spends most of its
//! time on round trips and commits, not on the rows. Here each request
//! hands its part to a lane and waits; a lane takes everything queued at
//! that moment (up to `max_batch`), runs it as one statement, and answers
//! every caller after that statement has committed. Nothing waits for a
//! timer: an idle lane runs a lone request at once, and a batch grows only
//! while the previous one is in the database, so the added latency is at
//! most one statement's time.

use std::{future::Future, sync::Arc};

use tokio::sync::{Mutex, mpsc, oneshot};

type Reply<Resp> = oneshot::Sender<Result<Resp, Arc<anyhow::Error>>>;

/// Why a request's batch did not commit. Every request of a failed batch
/// gets the same cause; [`BatchError::database`] exposes a database error
/// so callers can answer it as they would their own statement's (a pool
/// timeout is overload, not a bug).
#[derive(Debug, Clone, thiserror::Error)]
#[error("group commit {name}: {cause:#}")]
pub struct BatchError {
    name: &'static str,
    cause: Arc<anyhow::Error>,
}

impl BatchError {
    /// The database error that failed the batch, if that is what failed it.
    pub fn database(&self) -> Option<&sqlx::Error> {
        self.cause.downcast_ref()
    }
}

/// A batcher for one statement shape: `run` receives a batch of requests and
/// answers one response per request, in the same order.
pub struct GroupCommit<Req, Resp> {
    name: &'static str,
    tx: mpsc::UnboundedSender<(Req, Reply<Resp>)>,
}

impl<Req, Resp> Clone for GroupCommit<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            tx: self.tx.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> GroupCommit<Req, Resp> {
    /// Starts `lanes` lanes (batches in the database at once). Must be
    /// called inside a Tokio runtime; the lanes end when every handle is
    /// dropped.
    pub fn spawn<F, Fut>(name: &'static str, lanes: usize, max_batch: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Resp>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel::<(Req, Reply<Resp>)>();
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        for _ in 0..lanes.max(1) {
            let rx = rx.clone();
            let run = run.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        if rx.recv_many(&mut batch, max_batch.max(1)).await == 0 {
                            return;
                        }
                    }
                    metrics::histogram!("group_commit_batch_size", "op" => name)
                        .record(batch.len() as f64);
                    let (requests, replies): (Vec<Req>, Vec<Reply<Resp>>) =
                        batch.into_iter().unzip();
                    let expected = requests.len();
                    // Its own task, so a panic in `run` fails this batch's
                    // callers instead of ending the lane.
                    let outcome = match tokio::spawn(run(requests)).await {
                        Ok(Ok(responses)) if responses.len() == expected => Ok(responses),
                        Ok(Ok(responses)) => Err(anyhow::anyhow!(
                            "group commit {name}: {} answers for {expected} requests",
                            responses.len()
                        )),
                        Ok(Err(error)) => Err(error),
                        Err(join) => Err(anyhow::anyhow!("group commit {name} panicked: {join}")),
                    };
                    match outcome {
                        Ok(responses) => {
                            for (reply, response) in replies.into_iter().zip(responses) {
                                // A caller that gave up (client hung up) is fine.
                                let _ = reply.send(Ok(response));
                            }
                        }
                        Err(error) => {
                            metrics::counter!("group_commit_errors_total", "op" => name)
                                .increment(1);
                            let error = Arc::new(error);
                            for reply in replies {
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            });
        }
        Self { name, tx }
    }

    /// [`GroupCommit::spawn`] with a `run` that takes a clone of `with`
    /// (a pool, say) beside each batch.
    pub fn spawn_with<W, F, Fut>(
        name: &'static str,
        lanes: usize,
        max_batch: usize,
        with: W,
        run: F,
    ) -> Self
    where
        W: Clone + Send + Sync + 'static,
        F: Fn(W, Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Resp>>> + Send + 'static,
    {
        Self::spawn(name, lanes, max_batch, move |batch| {
            run(with.clone(), batch)
        })
    }

    /// Runs `request` in the next batch and answers once it has committed.
    pub async fn call(&self, request: Req) -> Result<Resp, BatchError> {
        let failed = |cause: Arc<anyhow::Error>| BatchError {
            name: self.name,
            cause,
        };
        let (reply, answer) = oneshot::channel();
        if self.tx.send((request, reply)).is_err() {
            return Err(failed(Arc::new(anyhow::anyhow!("its lanes have stopped"))));
        }
        match answer.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(cause)) => Err(failed(cause)),
            Err(_) => Err(failed(Arc::new(anyhow::anyhow!(
                "a lane dropped the request"
            )))),
        }
    }
}

/// A row of a batch statement's answer: `ord`, the 1-based position of the
/// request it answers (see [`by_ordinality`]), and the rest of the row.
#[derive(Debug, sqlx::FromRow)]
pub struct Numbered<T> {
    /// The 1-based position in the batch of the request the row answers.
    pub ord: i64,
    /// The rest of the row.
    #[sqlx(flatten)]
    pub row: T,
}

/// A batch statement's answers, one per request in order: each returned row
/// names its request by its 1-based position in the batch's arrays
/// (`unnest(…) WITH ORDINALITY`); a request no row names is answered `None`.
pub fn by_ordinality<T>(
    requests: usize,
    rows: impl IntoIterator<Item = (i64, T)>,
) -> anyhow::Result<Vec<Option<T>>> {
    let mut answers: Vec<Option<T>> = std::iter::repeat_with(|| None).take(requests).collect();
    for (ordinality, row) in rows {
        let slot = usize::try_from(ordinality)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| answers.get_mut(i))
            .ok_or_else(|| anyhow::anyhow!("row for request {ordinality} of {requests}"))?;
        *slot = Some(row);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_caller_gets_its_own_answer_and_batches_form_under_load() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = GroupCommit::spawn("test", 2, 64, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.len());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(batch.into_iter().map(|n| n * 2).collect())
            }
        });
        let calls: Vec<_> = (0..500u32)
            .map(|n| {
                let doubler = doubler.clone();
                tokio::spawn(async move { (n, doubler.call(n).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (n, doubled) = call.await.unwrap();
            assert_eq!(doubled, n * 2);
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 500);
        assert!(
            sizes.len() < 500,
            "500 concurrent calls never shared a batch: {sizes:?}"
        );
    }

    #[test]
    fn rows_answer_their_own_requests_by_ordinality() {
        let answers = by_ordinality(4, [(3, "c"), (1, "a")]).unwrap();
        assert_eq!(answers, [Some("a"), None, Some("c"), None]);
        assert!(by_ordinality(2, [(0, "x")]).is_err());
        assert!(by_ordinality(2, [(3, "x")]).is_err());
    }

    #[tokio::test]
    async fn a_failing_or_panicking_batch_fails_its_callers_and_the_lane_goes_on() {
        let batcher = GroupCommit::spawn("test", 1, 8, |batch: Vec<i32>| async move {
            match batch[0] {
                0 => anyhow::bail!("refused"),
                1 => panic!("boom"),
                _ => Ok(batch),
            }
        });
        assert!(batcher.call(0).await.is_err());
        assert!(batcher.call(1).await.is_err());
        assert_eq!(batcher.call(7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_database_error_reaches_every_caller_of_its_batch_as_itself() {
        let batcher = GroupCommit::spawn("test", 1, 8, |_: Vec<i32>| async move {
            Err::<Vec<i32>, _>(sqlx::Error::PoolTimedOut.into())
        });
        let error = batcher.call(1).await.unwrap_err();
        assert!(
            matches!(error.database(), Some(sqlx::Error::PoolTimedOut)),
            "{error}"
        );
    }
}

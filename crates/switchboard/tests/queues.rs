//! The PostgreSQL job queues under load and failure: transactional
//! enqueue, restarts, the watchdog, wake-ups. Real PostgreSQL, Redis, API
//! and worker servers.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_core::{
    jobs::{SmsSend, enqueue},
    settings::CarrierMode,
};
use switchboard_testkit::Stack;
use switchboard_testkit::http::get_text;
use uuid::Uuid;

const LIFECYCLE: Duration = Duration::from_secs(30);

/// An outbound message written straight to the database (no job yet).
async fn queued_message(stack: &Stack, conn: &mut sqlx::PgConnection) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding)
         VALUES (gen_random_uuid(), $1, 'outbound', '+12025550100', '+12025550907', 'hi', 'queued', 1, 'GSM-7')
         RETURNING id",
    )
    .bind(stack.tenant_id)
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn status_of(stack: &Stack, message_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&stack.db.pool)
        .await
        .unwrap()
}

/// Waits until an `sms.send` job has turned `message` into `sending`.
async fn wait_sending(stack: &Stack, message: Uuid) {
    let sql = format!("SELECT status = 'sending' FROM messages WHERE id = '{message}'");
    stack.wait_until_sql(&sql, LIFECYCLE).await;
}

/// No sweeper re-drives and no simulator: only the queue moves messages
/// (`sms.send` turns `queued` into `sending`).
fn queue_only(settings: &mut switchboard_core::Settings) {
    settings.carrier = CarrierMode::External;
    settings.sweep_after = Duration::from_secs(3600);
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() {
    let stack = Stack::start(queue_only).await;
    let mut conn = stack.db.pool.acquire().await.unwrap();
    let waiting = queued_message(&stack, &mut conn).await;
    let committed = queued_message(&stack, &mut conn).await;

    for (message_id, commit) in [(waiting, false), (committed, true)] {
        let mut tx = stack.db.pool.begin().await.unwrap();
        let job = SmsSend {
            tenant_id: stack.tenant_id,
            message_id,
        };
        enqueue(&mut *tx, &job).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
    }

    wait_sending(&stack, committed).await;
    // The committed job ran; give the other every chance to run too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status_of(&stack, waiting).await, "queued");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE subject = $1")
        .bind(waiting)
        .fetch_one(&stack.db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "the rolled-back job was never stored");
}

#[tokio::test]
async fn a_stack_started_right_after_a_stopped_one_runs_a_queued_job_within_a_second() {
    let mut stack = Stack::start(queue_only).await;
    let first = stack.send_sms("+12025550907", "before the restart").await;
    let first = Uuid::parse_str(first["id"].as_str().unwrap()).unwrap();
    wait_sending(&stack, first).await;
    stack.stop_worker().await;

    // Accepted while no worker runs: it waits, committed with its job.
    let message = stack.send_sms("+12025550907", "across the restart").await;
    let id = Uuid::parse_str(message["id"].as_str().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&stack, id).await, "queued");

    let started = Instant::now();
    stack.start_worker().await;
    while status_of(&stack, id).await == "queued" {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the new worker had not run the waiting job after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn worker_ready(stack: &Stack) -> (StatusCode, Value) {
    let base = stack.worker_base.as_deref().unwrap();
    let response = stack
        .client
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_stalled_queue_is_reported_not_ready_and_recovers() {
    let mut stack = Stack::api_only(|s| {
        queue_only(s);
        s.queue_stall_after = Duration::from_secs(1);
    })
    .await;
    let mut conn = stack.db.pool.acquire().await.unwrap();
    let message = queued_message(&stack, &mut conn).await;
    let job = SmsSend {
        tenant_id: stack.tenant_id,
        message_id: message,
    };
    enqueue(&stack.db.pool, &job).await.unwrap();
    // A transaction that holds the due job's row: the queue cannot take it,
    // so it has due work and makes no progress.
    let mut holder = stack.db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM jobs FOR UPDATE")
        .fetch_all(&mut *holder)
        .await
        .unwrap();
    stack.start_worker().await;

    let deadline = Instant::now() + LIFECYCLE;
    let body = loop {
        let (status, body) = worker_ready(&stack).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(Instant::now() < deadline, "never reported stalled: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["checks"]["queues"], "stalled: sms.send", "{body}");
    let base = stack.worker_base.clone().unwrap();
    let metrics = get_text(&stack.client, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains("jobs_watchdog_restarts_total{queue=\"sms.send\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jobs_queue_stalled{queue=\"sms.send\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nprocess_resident_memory_bytes "),
        "the worker reports its memory: {metrics}"
    );

    // The cause goes away: the restarted worker runs the job and the
    // worker is ready again.
    holder.rollback().await.unwrap();
    wait_sending(&stack, message).await;
    let deadline = Instant::now() + LIFECYCLE;
    loop {
        let (status, body) = worker_ready(&stack).await;
        if status == StatusCode::OK {
            assert_eq!(body["checks"]["queues"], "ok");
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop_worker().await;
}

#[tokio::test]
async fn a_worker_never_sleeps_through_due_work() {
    let stack = Stack::start(queue_only).await;
    // Let the worker settle into waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Jobs enqueued one per transaction at a steady 50 a second, each into
    // an idle queue: each must be picked up by its wake-up, not by a poll.
    let mut ids = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..150 {
        tick.tick().await;
        let mut tx = stack.db.pool.begin().await.unwrap();
        let message_id = queued_message(&stack, &mut tx).await;
        let job = SmsSend {
            tenant_id: stack.tenant_id,
            message_id,
        };
        enqueue(&mut *tx, &job).await.unwrap();
        tx.commit().await.unwrap();
        ids.push(message_id);
    }
    stack
        .wait_until_sql(
            "SELECT count(*) = 0 FROM messages WHERE status = 'queued'",
            LIFECYCLE,
        )
        .await;
    // `created_at` is the enqueueing transaction's start, `updated_at` the
    // sending job's: the difference is enqueue → start.
    let mut waits: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM updated_at - created_at)::float8 FROM messages
         WHERE id = ANY($1) ORDER BY 1",
    )
    .bind(&ids)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    waits.sort_by(f64::total_cmp);
    let p95 = waits[waits.len() * 95 / 100];
    let max = waits[waits.len() - 1];
    // A lost wake-up waits for the one-second poll; a worker that sleeps
    // through work shows it here as hundreds of milliseconds.
    assert!(
        p95 <= 0.1 && max < 1.0,
        "enqueue → start p95 {p95:.3} s, max {max:.3} s"
    );
}

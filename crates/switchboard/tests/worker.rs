//! The worker end to end: real PostgreSQL, Redis, API and worker servers,
//! the carrier simulator calling the API's signed webhooks over HTTP.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_testkit::{Stack, is_terminal_message};
use tokio::sync::Mutex;

/// The binary under test, for the tests that run it as a child process.
const SWITCHBOARD: &str = env!("CARGO_BIN_EXE_switchboard");

const LIFECYCLE: Duration = Duration::from_secs(30);

async fn events(stack: &Stack, call_id: &str) -> Vec<String> {
    let body = stack.get(&format!("/v1/calls/{call_id}/events")).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status")
        .map(|e| e["to_status"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until the message `id` is delivered; returns it.
async fn delivered(stack: &Stack, id: impl std::fmt::Display) -> Value {
    let path = format!("/v1/messages/{id}");
    stack
        .wait_for(&path, LIFECYCLE, |m| m["status"] == "delivered")
        .await
}

#[tokio::test]
async fn an_outbound_call_runs_its_whole_lifecycle_by_itself() {
    let stack = Stack::start(|_| {}).await;
    let call = stack.originate("+12025550904").await;
    assert_eq!(call["status"], "queued");
    let id = call["id"].as_str().unwrap();
    let done = stack
        .wait_for(&format!("/v1/calls/{id}"), LIFECYCLE, |c| {
            c["status"] == "completed"
        })
        .await;
    assert_eq!(done["duration_seconds"], 30, "{done}");
    assert!(done["answered_at"].is_string());
    let history = events(&stack, id).await;
    assert_eq!(
        history,
        ["queued", "ringing", "in-progress", "completed"],
        "{history:?}"
    );
}

#[tokio::test]
async fn magic_numbers_give_their_outcomes() {
    let stack = Stack::start(|_| {}).await;
    let mut calls = Vec::new();
    for (to, outcome) in [
        ("+12025550901", "busy"),
        ("+12025550902", "no-answer"),
        ("+12025550903", "failed"),
    ] {
        calls.push((
            stack.originate(to).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
            outcome,
        ));
    }
    let mut messages = Vec::new();
    for (to, outcome, code) in [
        ("+12025550905", "undelivered", Some("30003")),
        ("+12025550906", "failed", Some("30006")),
        ("+12025550907", "delivered", None),
    ] {
        let id = stack.send_sms(to, "magic").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        messages.push((id, outcome, code));
    }
    for (id, outcome) in calls {
        let call = stack
            .wait_for(&format!("/v1/calls/{id}"), LIFECYCLE, |c| {
                !matches!(
                    c["status"].as_str(),
                    Some("queued" | "ringing" | "in-progress")
                )
            })
            .await;
        assert_eq!(call["status"], outcome, "{call}");
        assert!(call["answered_at"].is_null());
        assert_eq!(events(&stack, &id).await, ["queued", "ringing", outcome]);
    }
    for (id, outcome, code) in messages {
        let message = stack
            .wait_for(&format!("/v1/messages/{id}"), LIFECYCLE, |m| {
                is_terminal_message(m["status"].as_str().unwrap_or_default())
            })
            .await;
        assert_eq!(message["status"], outcome, "{message}");
        assert_eq!(message["error_code"].as_str(), code, "{message}");
    }
}

#[tokio::test]
async fn an_sms_is_sent_once_and_delivered_by_itself() {
    let stack = Stack::start(|_| {}).await;
    let message = stack.send_sms("+12025550907", "Your table is ready").await;
    let id = message["id"].as_str().unwrap();
    let done = delivered(&stack, id).await;
    assert_eq!(done["carrier_sid"], format!("SM{}", id.replace('-', "")));
    assert!(done["sent_at"].is_string() && done["delivered_at"].is_string());
    // queued(1) → sending(2) → sent(3) → delivered(4): each step exactly once.
    assert_eq!(done["version"], 4, "{done}");
}

#[tokio::test]
async fn a_number_that_opts_out_before_the_send_is_not_texted() {
    let mut stack = Stack::api_only(|_| {}).await;
    let message = stack.send_sms("+12025550907", "Last chance!").await;
    // STOP arrives after the message was accepted but before the worker runs.
    sqlx::query(
        "INSERT INTO opt_outs (tenant_id, phone, keyword) VALUES ($1, '+12025550907', 'STOP')",
    )
    .bind(stack.tenant_id)
    .execute(&stack.db.pool)
    .await
    .unwrap();
    stack.start_worker().await;
    let id = message["id"].as_str().unwrap();
    let done = stack
        .wait_for(&format!("/v1/messages/{id}"), LIFECYCLE, |m| {
            m["status"] != "queued"
        })
        .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error_code"], "21610");
    assert!(done["carrier_sid"].is_null(), "never handed to the carrier");
}

/// A webhook receiver that answers 500 to the first `failures` requests.
struct Receiver {
    url: String,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn receiver(failures: usize) -> Receiver {
    let hits = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().route(
        "/hook",
        post({
            let hits = hits.clone();
            let received = received.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                let n = hits.fetch_add(1, Ordering::SeqCst);
                received.lock().await.push((headers, body));
                if n < failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url,
        hits,
        received,
    }
}

impl Receiver {
    /// Registers the receiver as the tenant's endpoint for `customer.created`;
    /// returns its signing secret.
    async fn subscribe(&self, stack: &Stack) -> String {
        let (status, endpoint) = stack
            .post(
                "/v1/webhooks",
                json!({"url": self.url, "event_types": ["customer.created"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}");
        endpoint["secret"].as_str().unwrap().to_string()
    }
}

/// Creates a customer (a `customer.created` event); returns it.
async fn new_customer(stack: &Stack, name: &str, phone: &str) -> Value {
    let (status, customer) = stack
        .post("/v1/customers", json!({"name": name, "phone": phone}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    customer
}

fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&hex::decode(v1).unwrap_or_default())
        .is_ok()
}

#[tokio::test]
async fn a_tenant_webhook_gets_signed_events_and_retries_after_500s() {
    let stack = Stack::start(|_| {}).await;
    let hook = receiver(2).await;
    let secret = hook.subscribe(&stack).await;
    let customer = new_customer(&stack, "Grace Hopper", "+12025550177").await;
    // An event type it did not subscribe to is not delivered.
    stack.send_sms("+12025550907", "not for the hook").await;

    let deadline = tokio::time::Instant::now() + LIFECYCLE;
    while hook.hits.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} deliveries",
            hook.hits.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = hook.received.lock().await;
    assert_eq!(
        received.len(),
        3,
        "two failures, one success, nothing after"
    );
    for (headers, body) in received.iter() {
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["type"], "customer.created");
        assert_eq!(event["data"]["id"], customer["id"]);
        assert_eq!(headers["switchboard-event-type"], "customer.created");
        assert_eq!(
            headers["switchboard-event-id"],
            event["id"].as_str().unwrap()
        );
        let signature = headers["switchboard-signature"].to_str().unwrap();
        assert!(
            verify(&secret, signature, body),
            "signature {signature} verifies"
        );
        assert!(!verify("whsec_wrong", signature, body));
    }
}

/// A fan-out that cannot look up the tenants' webhooks (here on a table an
/// operator altered by hand) must say so, the worker not ready and naming
/// it, and lose nothing: once the table is right again the event waiting on
/// the stream is delivered and the worker is ready again. The event is
/// published before any worker has started, which must not lose it either.
#[tokio::test]
async fn a_failing_webhook_fan_out_makes_the_worker_unready_and_loses_nothing() {
    // The worker starts once the lookup is broken, so no cached list hides it.
    let mut stack = Stack::api_only(|_| {}).await;
    let hook = receiver(0).await;
    hook.subscribe(&stack).await;
    sqlx::query("ALTER TABLE tenant_webhooks RENAME COLUMN event_types TO event_kinds")
        .execute(&stack.db.pool)
        .await
        .unwrap();
    let customer = new_customer(&stack, "Ada Lovelace", "+12025550178").await;
    stack.start_worker().await;
    let ready = format!("{}/ready", stack.worker_base.as_ref().unwrap());

    let limit = switchboard_worker::webhook_fanout::FAILING_AFTER + LIFECYCLE;
    let deadline = tokio::time::Instant::now() + limit;
    let body = loop {
        let response = reqwest::get(&ready).await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response.json::<Value>().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready after {limit:?}: {}",
            response.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "not_ready", "{body}");
    let webhooks = body["checks"]["webhooks"].as_str().unwrap();
    assert!(webhooks.starts_with("failing for "), "{body}");
    assert!(webhooks.contains("event_types"), "names the cause: {body}");
    assert_eq!(body["checks"]["queues"], "ok", "{body}");
    assert_eq!(hook.hits.load(Ordering::SeqCst), 0);
    let metrics = reqwest::get(format!("{}/metrics", stack.worker_base.as_ref().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures = metrics
        .lines()
        .find_map(|line| line.strip_prefix("webhook_fanout_failures_total "))
        .and_then(|value| value.parse::<f64>().ok());
    assert!(failures >= Some(1.0), "counted: {metrics}");
    // The alerts' rates see a maintenance task's first failure too.
    assert!(
        metrics.contains("maintenance_failures_total{task=\"sweep\"}"),
        "{metrics}"
    );

    sqlx::query("ALTER TABLE tenant_webhooks RENAME COLUMN event_kinds TO event_types")
        .execute(&stack.db.pool)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + LIFECYCLE;
    while hook.hits.load(Ordering::SeqCst) < 1 {
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = hook.received.lock().await;
    let event: Value = serde_json::from_slice(&received[0].1).unwrap();
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["data"]["id"], customer["id"]);
    drop(received);
    let response = reqwest::get(&ready).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "ready again once a round succeeds: {}",
        response.text().await.unwrap()
    );
}

#[tokio::test]
async fn failures_go_to_the_dead_letter_list_and_can_be_redriven() {
    let stack = Stack::start(|s| s.job_max_attempts = 2).await;

    // Transient, out of attempts: an endpoint that keeps failing.
    let hook = receiver(usize::MAX).await;
    hook.subscribe(&stack).await;
    new_customer(&stack, "Ada", "+12025550179").await;
    // Permanent: a campaign for a tenant with no number to send from.
    sqlx::query("DELETE FROM phone_numbers")
        .execute(&stack.db.pool)
        .await
        .unwrap();
    let (status, template) = stack
        .post("/v1/templates", json!({"name": "t", "body": "Hello"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let (status, campaign) = stack
        .post("/v1/campaigns", json!({"name": "c", "template_id": template["id"], "recipients": {"phone_numbers": ["+12025550907"]}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");

    let deadline = tokio::time::Instant::now() + LIFECYCLE;
    let dead = loop {
        let dead = switchboard_worker::deadletter::list(&stack.db.pool, None)
            .await
            .unwrap();
        if dead.len() >= 2 {
            break dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters: {dead:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let webhook = dead.iter().find(|d| d.queue == "webhook.deliver").unwrap();
    assert_eq!(
        (webhook.kind.as_str(), webhook.attempts),
        ("transient", 2),
        "{webhook:?}"
    );
    assert_eq!(
        hook.hits.load(Ordering::SeqCst),
        2,
        "no attempt after the last one"
    );
    let expand = dead.iter().find(|d| d.queue == "campaign.expand").unwrap();
    assert_eq!(
        (expand.kind.as_str(), expand.attempts),
        ("permanent", 1),
        "not retried"
    );
    assert!(expand.error.contains("no number"), "{}", expand.error);

    // Fix the cause, re-drive the campaign only.
    sqlx::query("INSERT INTO phone_numbers (number, tenant_id, is_default) VALUES ('+12025550100', $1, true)")
        .bind(stack.tenant_id)
        .execute(&stack.db.pool)
        .await
        .unwrap();
    // Inspect and re-drive with the CLI, as an operator would.
    let listed = stack.cli(SWITCHBOARD, &["jobs", "dead-letter", "list", "--json"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let out = stack.cli(
        SWITCHBOARD,
        &["jobs", "dead-letter", "retry", "--queue", "campaign.expand"],
    );
    assert!(out.contains("re-queued 1 dead job"), "{out}");
    let id = campaign["id"].as_str().unwrap();
    stack
        .wait_for(&format!("/v1/campaigns/{id}"), LIFECYCLE, |c| {
            c["status"] == "completed"
        })
        .await;
    let left = switchboard_worker::deadletter::list(&stack.db.pool, None)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "only the webhook is still dead: {left:?}");
}

#[tokio::test]
async fn a_campaign_with_opted_out_recipients_ends_with_exact_counts() {
    let stack = Stack::start(|_| {}).await;
    let numbers: Vec<String> = (0..300)
        .map(|i| format!("+1202555{:04}", 3000 + i))
        .collect();
    for number in numbers.iter().step_by(12) {
        sqlx::query("INSERT INTO opt_outs (tenant_id, phone, keyword) VALUES ($1, $2, 'STOP')")
            .bind(stack.tenant_id)
            .bind(number)
            .execute(&stack.db.pool)
            .await
            .unwrap();
    }
    let id = stack.campaign(&numbers).await;
    let done = stack
        .wait_for(
            &format!("/v1/campaigns/{id}"),
            Duration::from_secs(60),
            |c| c["status"] == "completed",
        )
        .await;
    assert_eq!(done["total_recipients"], 300, "{done}");
    assert_eq!(done["opted_out_count"], 25, "{done}");
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM messages WHERE campaign_id = $1::uuid GROUP BY status",
    )
    .bind(&id)
    .fetch_all(&stack.db.pool)
    .await
    .unwrap();
    let total: i64 = by_status.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 275, "{by_status:?}");
    assert!(
        by_status.iter().all(|(s, _)| is_terminal_message(s)),
        "{by_status:?}"
    );
    let opted_out_texted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages m JOIN opt_outs o ON o.phone = m.to_number WHERE m.campaign_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!(opted_out_texted, 0);
}

#[tokio::test]
async fn a_worker_killed_mid_campaign_loses_nothing_and_doubles_nothing() {
    let stack = Stack::api_only(|_| {}).await;
    let mut worker = stack.spawn_worker_process(SWITCHBOARD);
    let id = stack.campaign_under_way("556").await;
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();
    let handed_over = stack.handed_over(&id).await;
    assert!(
        handed_over < 1000,
        "killed mid-campaign ({handed_over} handed over)"
    );

    let mut worker = stack.spawn_worker_process(SWITCHBOARD);
    stack
        .assert_campaign_sent_exactly_once(&id, 1000, Duration::from_secs(120))
        .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
}

#[tokio::test]
async fn voicemails_are_transcribed_and_recordings_processed() {
    let stack = Stack::start(|_| {}).await;
    // Nobody is available: the inbound call goes to voicemail.
    let ack = stack
        .carrier(
            "/webhooks/carrier/voice/incoming",
            &[
                ("CallSid", "CAvm1"),
                ("From", "+12025550188"),
                ("To", "+12025550100"),
                ("CallStatus", "ringing"),
            ],
        )
        .await;
    assert_eq!(ack["action"], "voicemail", "{ack}");
    stack
        .carrier(
            "/webhooks/carrier/voice/recording",
            &[
                ("CallSid", "CAvm1"),
                ("RecordingSid", "RE1"),
                ("RecordingUrl", "https://media.example/RE1"),
                ("RecordingDuration", "40"),
            ],
        )
        .await;
    let list = stack.get("/v1/voicemails").await;
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let voicemail = stack
        .wait_for(&format!("/v1/voicemails/{id}"), LIFECYCLE, |v| {
            v["transcription_status"] == "completed"
        })
        .await;
    let expected = switchboard_worker::jobs::media::transcript(id.parse().unwrap(), 40);
    assert_eq!(voicemail["transcription"], expected.as_str());

    // A recording of an answered outbound call is processed.
    let call = stack.originate("+12025550904").await;
    let id = call["id"].as_str().unwrap();
    let call = stack
        .wait_for(&format!("/v1/calls/{id}"), LIFECYCLE, |c| {
            c["status"] == "completed"
        })
        .await;
    stack
        .carrier(
            "/webhooks/carrier/voice/recording",
            &[
                ("CallSid", call["carrier_sid"].as_str().unwrap()),
                ("RecordingSid", "RE2"),
                ("RecordingUrl", "https://media.example/RE2"),
                ("RecordingDuration", "30"),
            ],
        )
        .await;
    stack
        .wait_until_sql(
            "SELECT count(*) = 1 FROM recordings WHERE recording_sid = 'RE2' AND status = 'ready' AND processed_at IS NOT NULL",
            LIFECYCLE,
        )
        .await;
}

/// A message that has waited an hour with no job naming it (written
/// behind the API's back, or its job deleted by hand): work only the
/// sweeper can find.
async fn message_whose_job_was_lost(stack: &Stack) -> uuid::Uuid {
    sqlx::query_scalar(
        "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding, updated_at)
         VALUES (gen_random_uuid(), $1, 'outbound', '+12025550100', '+12025550907', 'lost', 'queued', 1, 'GSM-7', now() - interval '1 hour')
         RETURNING id",
    )
    .bind(stack.tenant_id)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_sweeper_redrives_a_message_whose_job_was_lost() {
    let stack = Stack::start(|_| {}).await;
    let id = message_whose_job_was_lost(&stack).await;
    let done = delivered(&stack, id).await;
    assert_eq!(done["version"], 4, "{done}");
}

/// The simulator plays a message from what it was handed, without reading
/// the row; a job whose copy is out of date (retried after its `sent` was
/// applied) must notice from the API's answer and still end the message
/// exactly once.
#[tokio::test]
async fn a_carrier_job_replayed_after_its_message_moved_on_still_ends_it_once() {
    let stack = Stack::start(|_| {}).await;
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments,
                               encoding, carrier_sid, sent_at, version)
         SELECT i, $1, 'outbound', '+12025550100', '+12025550907', 'replayed', 'sent', 1, 'GSM-7',
                'SM' || replace(i::text, '-', ''), now(), 3
         FROM gen_random_uuid() AS i
         RETURNING id",
    )
    .bind(stack.tenant_id)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    let job = switchboard_core::jobs::CarrierSim::OutboundSms {
        tenant_id: stack.tenant_id,
        message_id: id,
        handed_over: Some(switchboard_core::jobs::HandedOver {
            sid: format!("SM{}", id.simple()),
            from: "+12025550100".into(),
            to: "+12025550907".into(),
            at: chrono::Utc::now(),
        }),
    };
    switchboard_core::jobs::enqueue(&stack.db.pool, &job)
        .await
        .unwrap();
    let done = delivered(&stack, id).await;
    // sent(3) → delivered(4): the stale `sent` changed nothing.
    assert_eq!(done["version"], 4, "{done}");
    stack
        .wait_until_sql(
            &format!(
                "SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE subject = '{id}')
                        AND NOT EXISTS (SELECT 1 FROM dead_jobs WHERE subject = '{id}')"
            ),
            LIFECYCLE,
        )
        .await;
}

#[tokio::test]
async fn the_simulator_places_inbound_calls_and_texts_when_asked() {
    let stack = Stack::start(|s| {
        s.sim_inbound_calls_per_minute = 600.0;
        s.sim_inbound_sms_per_minute = 600.0;
    })
    .await;
    stack
        .wait_until_sql(
            "SELECT (SELECT count(*) FROM calls WHERE direction = 'inbound' AND status = 'completed') >= 3
                AND (SELECT count(*) FROM messages WHERE direction = 'inbound' AND status = 'received') >= 3",
            LIFECYCLE,
        )
        .await;
    // Nobody is logged in, so every call went to voicemail and left a recording.
    stack
        .wait_until_sql(
            "SELECT count(*) >= 1 FROM voicemails WHERE transcription_status = 'completed'",
            LIFECYCLE,
        )
        .await;
}

#[tokio::test]
async fn a_backlog_of_many_thousand_due_jobs_drains_and_the_queue_keeps_working() {
    use switchboard_core::jobs::{SmsSend, enqueue_many};
    let mut stack = Stack::api_only(|_| {}).await;
    // 20 000 jobs became due while no worker ran. They name no message, so
    // each is a quick no-op.
    let jobs: Vec<(SmsSend, Duration)> = (0..20_000)
        .map(|_| {
            let job = SmsSend {
                tenant_id: stack.tenant_id,
                message_id: uuid::Uuid::new_v4(),
            };
            (job, Duration::ZERO)
        })
        .collect();
    enqueue_many(&stack.db.pool, &jobs).await.unwrap();
    stack.start_worker().await;
    stack
        .wait_until_sql("SELECT NOT EXISTS (SELECT 1 FROM jobs)", LIFECYCLE)
        .await;
    let dead = stack.db.count_rows("dead_jobs").await;
    assert_eq!(dead, 0, "every no-op job simply finished");
    // And it still works afterwards.
    let message = stack.send_sms("+12025550907", "after the backlog").await;
    let id = message["id"].as_str().unwrap();
    delivered(&stack, id).await;
}

#[tokio::test]
async fn an_undecodable_job_is_dead_lettered_and_the_queue_keeps_working() {
    let mut stack = Stack::api_only(|_| {}).await;
    // A payload from another version (or written by hand).
    let subject = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO jobs (queue, subject, payload) VALUES ('sms.send', $1, $2)")
        .bind(subject)
        .bind(json!({"message": subject, "v": 0}))
        .execute(&stack.db.pool)
        .await
        .unwrap();
    stack.start_worker().await;
    let message = stack.send_sms("+12025550907", "still flowing").await;
    let id = message["id"].as_str().unwrap();
    delivered(&stack, id).await;
    let dead = switchboard_worker::deadletter::list(&stack.db.pool, Some("sms.send"))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].kind.as_str(), dead[0].attempts), ("permanent", 1));
    assert!(dead[0].error.contains("undecodable"), "{}", dead[0].error);
    // The payload is kept as it was, for whoever inspects it.
    assert_eq!(dead[0].job["message"], json!(subject));
    assert_eq!(dead[0].subject, subject);
}

#[tokio::test]
async fn the_worker_rolls_finished_hours_into_the_report_rollups() {
    let stack = Stack::start(|_| {}).await;
    // Yesterday's finished calls: the maintenance pass rolls their hour.
    sqlx::query(
        "INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, created_at, answered_at, ended_at, duration_seconds)
         SELECT gen_random_uuid(), $1, 'outbound', '+12025550100', '+12025550907', 'completed',
                date_trunc('hour', now()) - interval '1 day' + make_interval(mins => n),
                date_trunc('hour', now()) - interval '1 day' + make_interval(mins => n),
                date_trunc('hour', now()) - interval '1 day' + make_interval(mins => n, secs => 10 * n),
                10 * n
         FROM generate_series(1, 5) n",
    )
    .bind(stack.tenant_id)
    .execute(&stack.db.pool)
    .await
    .unwrap();
    stack
        .wait_until_sql(
            "SELECT EXISTS (SELECT 1 FROM report_rollups_hourly
                            WHERE bucket = date_trunc('hour', now()) - interval '1 day'
                              AND calls_completed = 5
                              AND talk = (SELECT string_agg(int4send(v) || int4send(1), ''::bytea ORDER BY v)
                                          FROM generate_series(10, 50, 10) v))
                AND (SELECT min(rolled_through) FROM report_rollup_state) >= date_trunc('hour', now()) - interval '1 hour'",
            LIFECYCLE,
        )
        .await;
    let day = stack.get("/v1/reports/summary?granularity=day").await;
    assert_eq!(day["totals"]["calls"]["completed"], 5, "{day}");
    assert_eq!(day["totals"]["calls"]["talk_seconds_p50"], 30.0);
}

/// A stack without a worker, so that nothing but the test's own sweep acts
/// on what it sets up, and a worker context to sweep with.
async fn sweeper_stack() -> (Stack, std::sync::Arc<switchboard_worker::Ctx>) {
    let stack = Stack::api_only(|_| {}).await;
    let ctx = switchboard_worker::Ctx::new(stack.settings.clone())
        .await
        .unwrap();
    (stack, ctx)
}

#[tokio::test]
async fn the_sweeper_leaves_records_that_a_job_or_dead_letter_names_alone() {
    use switchboard_core::jobs::{SmsSend, enqueue_in};
    let (stack, ctx) = sweeper_stack().await;
    // Waiting on a job that is due later (a paced campaign send).
    let paced = message_whose_job_was_lost(&stack).await;
    let job = SmsSend {
        tenant_id: stack.tenant_id,
        message_id: paced,
    };
    enqueue_in(&stack.db.pool, &job, Duration::from_secs(3600))
        .await
        .unwrap();
    // Dead-lettered: waiting for an operator, not for the sweeper.
    let dead = message_whose_job_was_lost(&stack).await;
    sqlx::query(
        "INSERT INTO dead_jobs (id, queue, subject, payload, attempts, kind, error)
         VALUES (gen_random_uuid(), 'sms.send', $1, '{}', 6, 'transient', 'carrier down')",
    )
    .bind(dead)
    .execute(&stack.db.pool)
    .await
    .unwrap();
    let lost = message_whose_job_was_lost(&stack).await;

    let redriven = switchboard_worker::maintenance::sweep(&ctx).await.unwrap();
    assert_eq!(redriven, 1, "only the message nothing names");
    let subjects: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT subject FROM jobs WHERE queue = 'sms.send' ORDER BY id")
            .fetch_all(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(subjects, vec![paced, lost]);
    // Now that it has a job, the next sweep leaves it alone too.
    assert_eq!(
        switchboard_worker::maintenance::sweep(&ctx).await.unwrap(),
        0
    );
}

/// A kind of record the sweeper cannot read (here campaigns, on a table an
/// operator altered by hand) must not keep it from the kinds after it, and
/// the sweep must fail naming that kind, not end quietly.
#[tokio::test]
async fn a_kind_the_sweeper_cannot_read_does_not_keep_it_from_the_others() {
    use switchboard_core::jobs::{CampaignExpand, Job};
    let (stack, ctx) = sweeper_stack().await;
    // Swept before campaigns, and after them.
    let message = message_whose_job_was_lost(&stack).await;
    let voicemail: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO voicemails (id, tenant_id, from_number, to_number, recording_url, created_at)
         VALUES (gen_random_uuid(), $1, '+12025550907', '+12025550100', 'https://media.test/vm.wav',
                 now() - interval '1 hour')
         RETURNING id",
    )
    .bind(stack.tenant_id)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE campaigns RENAME COLUMN created_at TO created_on")
        .execute(&stack.db.pool)
        .await
        .unwrap();

    let error = switchboard_worker::maintenance::sweep(&ctx)
        .await
        .expect_err("a kind failed");
    let error = format!("{error:#}");
    assert!(
        error.contains(&format!("campaigns ({})", CampaignExpand::QUEUE)),
        "{error}"
    );
    assert!(error.contains("2 jobs enqueued"), "{error}");
    let mut subjects: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT subject FROM jobs")
        .fetch_all(&stack.db.pool)
        .await
        .unwrap();
    subjects.sort();
    let mut expected = vec![message, voicemail];
    expected.sort();
    assert_eq!(subjects, expected);
}

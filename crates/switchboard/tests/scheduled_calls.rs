//! Scheduled calls end to end: real PostgreSQL, Redis, API and worker, the
//! carrier simulator playing each attempt through the API's signed webhooks.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, Duration as Span, SecondsFormat, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_testkit::Stack;

use uuid::Uuid;

/// The binary under test, for the tests that run it as a child process.
const SWITCHBOARD: &str = env!("CARGO_BIN_EXE_switchboard");

const LIFECYCLE: Duration = Duration::from_secs(30);

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

async fn schedule(stack: &Stack, body: Value) -> Value {
    let (status, call) = stack.post("/v1/scheduled-calls", body).await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    call
}

/// A retry policy of `max_attempts` attempts `backoff_seconds` apart, on
/// the default outcomes.
fn retry(max_attempts: u32, backoff_seconds: u32) -> Value {
    json!({"max_attempts": max_attempts, "backoff_seconds": backoff_seconds})
}

/// The scheduled call `id` as the API answers it.
async fn scheduled(stack: &Stack, id: &str) -> Value {
    stack.get(&format!("/v1/scheduled-calls/{id}")).await
}

/// Asks to cancel the scheduled call `id`; the answer's status and body.
async fn cancel(stack: &Stack, id: &str) -> (StatusCode, Value) {
    stack
        .post(&format!("/v1/scheduled-calls/{id}/cancel"), json!({}))
        .await
}

/// PUTs `body` as the tenant's scheduling settings.
async fn put_scheduling(stack: &Stack, body: &Value) -> reqwest::Response {
    stack
        .client
        .put(stack.url("/v1/scheduling/settings"))
        .bearer_auth(&stack.api_key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// POSTs `body` as a batch of scheduled calls; the answer's status and body.
async fn batch(stack: &Stack, body: Value) -> (StatusCode, Value) {
    stack.post("/v1/scheduled-calls/batch", body).await
}

/// Schedules a call to `to` due `after` from now, with no retries.
async fn schedule_after(stack: &Stack, to: &str, after: Span) -> Value {
    schedule(stack, json!({"to": to, "run_at": at(Utc::now() + after)})).await
}

/// Schedules a call to `to` due now with `retry` as its policy; returns its id.
async fn schedule_now(stack: &Stack, to: &str, retry: Value) -> String {
    let call = schedule(
        stack,
        json!({"to": to, "run_at": at(Utc::now()), "retry": retry}),
    )
    .await;
    call["id"].as_str().expect("id").to_string()
}

async fn wait_status(stack: &Stack, id: &str, status: &str, limit: Duration) -> Value {
    stack
        .wait_for(&format!("/v1/scheduled-calls/{id}"), limit, |s| {
            s["status"] == status
        })
        .await
}

fn attempt_statuses(call: &Value) -> Vec<String> {
    call["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_scheduled_call_is_placed_at_its_time_and_not_before() {
    let stack = Stack::start(|_| {}).await;
    let run_at = Utc::now() + Span::seconds(3);
    let created = schedule(&stack, json!({"to": "+12025550904", "run_at": at(run_at)})).await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["attempts"], json!([]));
    assert_eq!(time(&created["next_attempt_at"]), time(&created["run_at"]));
    assert_eq!(created["retry"]["max_attempts"], 1);
    let id = created["id"].as_str().unwrap();

    // Until run_at nothing is dialled.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let waiting = scheduled(&stack, id).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    let calls = stack.get("/v1/calls").await;
    assert_eq!(calls["data"], json!([]), "no call before run_at");

    let done = wait_status(&stack, id, "completed", LIFECYCLE).await;
    assert_eq!(attempt_statuses(&done), ["completed"], "{done}");
    let attempt = &done["attempts"][0];
    assert!(time(&attempt["started_at"]) >= run_at, "{done}");
    assert!(done["next_attempt_at"].is_null());
    // The attempt is an ordinary outbound call.
    let call = stack
        .get(&format!(
            "/v1/calls/{}",
            attempt["call_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["to"], "+12025550904");
    assert_eq!(call["from"], "+12025550100");
    assert!(time(&call["created_at"]) >= run_at);
    // Its history starts as an originated call's does, naming the attempt.
    let history = stack
        .get(&format!(
            "/v1/calls/{}/events",
            call["id"].as_str().unwrap()
        ))
        .await;
    let first = &history["data"][0];
    assert_eq!(first["to_status"], "queued", "{history}");
    assert_eq!(first["source"], "system", "{history}");
    assert_eq!(
        first["data"],
        json!({"scheduled_call_id": id, "attempt": 1})
    );
    assert_eq!(time(&first["occurred_at"]), time(&attempt["started_at"]));
    // A finished one cannot be canceled.
    let (status, body) = cancel(&stack, id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "not_cancelable");
}

#[tokio::test]
async fn busy_then_answered_is_retried_per_the_policy_and_completes_with_two_attempts() {
    let stack = Stack::start(|_| {}).await;
    let id = &schedule_now(
        &stack,
        "+12025550908",
        json!({"max_attempts": 3, "backoff_seconds": 2, "on": ["busy"]}),
    )
    .await;
    let retrying = wait_status(&stack, id, "retrying", LIFECYCLE).await;
    assert_eq!(attempt_statuses(&retrying), ["busy"]);
    let ended = time(&retrying["attempts"][0]["ended_at"]);
    let next = time(&retrying["next_attempt_at"]);
    assert!(
        next - ended >= Span::milliseconds(1_900),
        "backoff of 2 s: {retrying}"
    );

    let done = wait_status(&stack, id, "completed", LIFECYCLE).await;
    assert_eq!(attempt_statuses(&done), ["busy", "completed"], "{done}");
    assert!(time(&done["attempts"][1]["started_at"]) >= next, "{done}");
    assert_ne!(
        done["attempts"][0]["call_id"],
        done["attempts"][1]["call_id"]
    );
}

#[tokio::test]
async fn a_call_that_never_connects_is_exhausted_after_max_attempts() {
    let stack = Stack::start(|_| {}).await;
    let id = &schedule_now(&stack, "+12025550901", retry(3, 1)).await;
    let done = wait_status(&stack, id, "exhausted", LIFECYCLE).await;
    assert_eq!(attempt_statuses(&done), ["busy", "busy", "busy"], "{done}");
    // Nothing more is placed afterwards.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = stack.db.count_rows("calls").await;
    assert_eq!(calls, 3);

    // An outcome the policy does not name is not retried.
    let failed = schedule(
        &stack,
        json!({"to": "+12025550903", "run_at": at(Utc::now()),
               "retry": {"max_attempts": 3, "backoff_seconds": 1, "on": ["busy", "no-answer"]}}),
    )
    .await;
    let done = wait_status(
        &stack,
        failed["id"].as_str().unwrap(),
        "exhausted",
        LIFECYCLE,
    )
    .await;
    assert_eq!(attempt_statuses(&done), ["failed"], "{done}");
}

#[tokio::test]
async fn a_call_canceled_before_its_time_is_never_placed() {
    let stack = Stack::start(|_| {}).await;
    let created = schedule_after(&stack, "+12025550904", Span::seconds(2)).await;
    let id = created["id"].as_str().unwrap();
    let (status, canceled) = cancel(&stack, id).await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled["next_attempt_at"].is_null());
    // Canceling again answers it unchanged.
    let (status, again) = cancel(&stack, id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["version"], canceled["version"]);

    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = scheduled(&stack, id).await;
    assert_eq!(after["status"], "canceled");
    assert_eq!(after["attempts"], json!([]));
    let calls = stack.db.count_rows("calls").await;
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn a_call_canceled_while_ringing_is_hung_up_and_not_retried() {
    // Real-time telephony: the no-answer number rings for 2–12 s.
    let stack = Stack::start(|s| s.carrier_speed = 1.0).await;
    let id = &schedule_now(&stack, "+12025550902", retry(3, 1)).await;
    let dialing = wait_status(&stack, id, "dialing", LIFECYCLE).await;
    let call_id = dialing["attempts"][0]["call_id"].as_str().unwrap();
    let (status, canceled) = cancel(&stack, id).await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(attempt_statuses(&canceled), ["canceled"], "{canceled}");
    let call = stack.get(&format!("/v1/calls/{call_id}")).await;
    assert_eq!(call["status"], "canceled");

    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = scheduled(&stack, id).await;
    assert_eq!(after["status"], "canceled", "{after}");
    assert_eq!(after["attempts"].as_array().unwrap().len(), 1, "{after}");
}

#[tokio::test]
async fn a_call_canceled_while_waiting_to_retry_makes_no_more_attempts() {
    let stack = Stack::start(|_| {}).await;
    let id = &schedule_now(&stack, "+12025550901", retry(3, 2)).await;
    wait_status(&stack, id, "retrying", LIFECYCLE).await;
    let (status, canceled) = cancel(&stack, id).await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = scheduled(&stack, id).await;
    assert_eq!(after["status"], "canceled");
    assert_eq!(attempt_statuses(&after), ["busy"], "{after}");
}

#[tokio::test]
async fn calling_hours_defer_a_call_to_the_next_window_in_the_tenant_time_zone() {
    let stack = Stack::start(|_| {}).await;
    // The window opens at the next whole minute (at least 5 s away), in a
    // time zone with a half-hour offset, and lasts two hours.
    let now = Utc::now();
    let mut opens = (now + Span::minutes(1))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    if opens - now < Span::seconds(5) {
        opens += Span::minutes(1);
    }
    let kolkata = Span::minutes(330);
    let local = |t: DateTime<Utc>| (t + kolkata).format("%H:%M").to_string();
    let settings = json!({"timezone": "Asia/Kolkata",
                          "calling_hours": {"start": local(opens), "end": local(opens + Span::hours(2))},
                          "max_concurrent_calls": null});
    let response = put_scheduling(&stack, &settings).await;
    assert_eq!(response.status(), StatusCode::OK);
    let settings: Value = response.json().await.unwrap();
    assert_eq!(settings["timezone"], "Asia/Kolkata");
    assert_eq!(settings["calling_hours"]["start"], local(opens));

    let created = schedule(
        &stack,
        json!({"to": "+12025550904", "run_at": at(Utc::now())}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let deferred = stack
        .wait_for(&format!("/v1/scheduled-calls/{id}"), LIFECYCLE, |s| {
            s["next_attempt_at"].is_string() && time(&s["next_attempt_at"]) > time(&s["run_at"])
        })
        .await;
    assert_eq!(deferred["status"], "pending");
    assert_eq!(time(&deferred["next_attempt_at"]), opens, "{deferred}");
    assert_eq!(deferred["attempts"], json!([]));

    let done = wait_status(&stack, id, "completed", Duration::from_secs(100)).await;
    assert!(time(&done["attempts"][0]["started_at"]) >= opens, "{done}");

    // The window arithmetic itself, including one past midnight.
    let next = |t: &str, tz: &str, ws: &str, we: &str| {
        let pool = stack.db.pool.clone();
        let (t, tz, ws, we) = (
            t.to_string(),
            tz.to_string(),
            ws.to_string(),
            we.to_string(),
        );
        async move {
            let got: DateTime<Utc> = sqlx::query_scalar(
                "SELECT calling_window_next($1::timestamptz, $2, $3::time, $4::time)",
            )
            .bind(t)
            .bind(tz)
            .bind(ws)
            .bind(we)
            .fetch_one(&pool)
            .await
            .unwrap();
            got.to_rfc3339()
        }
    };
    for (now, zone, start, end, expected) in [
        // 07:00 in New York (EST, -05:00) before a 09:00–17:00 window: 09:00 local.
        (
            "2026-12-01T12:00:00Z",
            "America/New_York",
            "09:00",
            "17:00",
            "2026-12-01T14:00:00+00:00",
        ),
        // Inside: now.
        (
            "2026-12-01T15:00:00Z",
            "America/New_York",
            "09:00",
            "17:00",
            "2026-12-01T15:00:00+00:00",
        ),
        // After hours: tomorrow 09:00.
        (
            "2026-12-01T23:00:00Z",
            "America/New_York",
            "09:00",
            "17:00",
            "2026-12-02T14:00:00+00:00",
        ),
        // An overnight 22:00–02:00 window at 01:00 UTC is open; at 03:00 it waits until 22:00.
        (
            "2026-12-01T01:00:00Z",
            "UTC",
            "22:00",
            "02:00",
            "2026-12-01T01:00:00+00:00",
        ),
        (
            "2026-12-01T03:00:00Z",
            "UTC",
            "22:00",
            "02:00",
            "2026-12-01T22:00:00+00:00",
        ),
    ] {
        assert_eq!(
            next(now, zone, start, end).await,
            expected,
            "at {now} in {zone}"
        );
    }
}

#[tokio::test]
async fn a_worker_killed_between_scheduling_and_run_at_loses_nothing() {
    let stack = Stack::api_only(|_| {}).await;
    let mut worker = stack.spawn_worker_process(SWITCHBOARD);
    let run_at = Utc::now() + Span::seconds(3);
    let mut ids = Vec::new();
    for to in ["+12025550904", "+12025550908"] {
        let created = schedule(
            &stack,
            json!({"to": to, "run_at": at(run_at),
                   "retry": {"max_attempts": 2, "backoff_seconds": 1}}),
        )
        .await;
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();
    // Past run_at with no worker: nothing happens, nothing is lost.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for id in &ids {
        let waiting = scheduled(&stack, id).await;
        assert_eq!(waiting["status"], "pending", "{waiting}");
    }
    let mut worker = stack.spawn_worker_process(SWITCHBOARD);
    let first = wait_status(&stack, &ids[0], "completed", LIFECYCLE).await;
    let second = wait_status(&stack, &ids[1], "completed", LIFECYCLE).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(attempt_statuses(&first), ["completed"], "{first}");
    assert_eq!(attempt_statuses(&second), ["busy", "completed"], "{second}");
}

#[tokio::test]
async fn the_concurrency_cap_keeps_scheduled_calls_from_overlapping() {
    let stack = Stack::start(|_| {}).await;
    let response = put_scheduling(
        &stack,
        &json!({"timezone": "UTC", "calling_hours": null, "max_concurrent_calls": 1}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let now = at(Utc::now());
    let (status, batch) = batch(
        &stack,
        json!({"scheduled_calls": [
            {"to": "+12025550904", "run_at": now},
            {"to": "+12025550904", "run_at": now},
            {"to": "+12025550904", "run_at": now},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{batch}");
    let mut spans = Vec::new();
    for item in batch["data"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let done = wait_status(&stack, id, "completed", LIFECYCLE).await;
        let attempt = &done["attempts"][0];
        spans.push((time(&attempt["started_at"]), time(&attempt["ended_at"])));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlapping attempts: {spans:?}");
    }
}

#[tokio::test]
async fn a_batch_is_created_whole_or_not_at_all_and_idempotency_keys_replay() {
    let stack = Stack::api_only(|_| {}).await;
    let later = at(Utc::now() + Span::hours(1));
    let (status, body) = batch(
        &stack,
        json!({"scheduled_calls": [
            {"to": "+12025550123", "run_at": later},
            {"to": "not a number", "run_at": later},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "scheduled_calls[1].to");
    let written = stack.db.count_rows("scheduled_calls").await;
    assert_eq!(written, 0);

    let items: Vec<Value> = (0..50)
        .map(|i| json!({"to": format!("+1202555{:04}", 2000 + i), "run_at": later}))
        .collect();
    // Sends a batch with an idempotency key; the answer's status and body.
    let send = async |key: &str, body: Value| {
        let response = stack
            .client
            .post(stack.url("/v1/scheduled-calls/batch"))
            .bearer_auth(&stack.api_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, first) = send("batch-1", json!({"scheduled_calls": items})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["data"].as_array().unwrap().len(), 50);
    assert_eq!(first["data"][7]["to"], "+12025552007", "request order");
    let (status, replay) = send("batch-1", json!({"scheduled_calls": items})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replay["data"][0]["id"], first["data"][0]["id"]);
    let (status, _) = send("batch-1", json!({"scheduled_calls": [items[0]]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let written = stack.db.count_rows("scheduled_calls").await;
    assert_eq!(written, 50);

    // Paged newest first, filtered by status.
    let page = stack
        .get("/v1/scheduled-calls?status=pending&limit=20")
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
    let cursor = page["next_cursor"].as_str().unwrap();
    let mut seen = 20;
    let mut cursor = Some(cursor.to_string());
    while let Some(c) = cursor {
        let next = stack
            .get(&format!(
                "/v1/scheduled-calls?status=pending&limit=20&cursor={c}"
            ))
            .await;
        seen += next["data"].as_array().unwrap().len();
        cursor = next["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, 50);
    let none = stack.get("/v1/scheduled-calls?status=completed").await;
    assert_eq!(none["data"], json!([]));
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let stack = Stack::api_only(|_| {}).await;
    let later = at(Utc::now() + Span::hours(1));
    for (body, field) in [
        (json!({"to": "+1202555\u{0}0123", "run_at": later}), "to"),
        (
            json!({"to": "+12025550123", "from": "+12025550199", "run_at": later}),
            "from",
        ),
        (
            json!({"to": "+12025550123", "run_at": at(Utc::now() - Span::hours(1))}),
            "run_at",
        ),
        (
            json!({"to": "+12025550123", "run_at": at(Utc::now() + Span::days(400))}),
            "run_at",
        ),
        (
            json!({"to": "+12025550123", "run_at": later, "retry": {"max_attempts": 0, "backoff_seconds": 5}}),
            "retry.max_attempts",
        ),
        (
            json!({"to": "+12025550123", "run_at": later, "retry": {"max_attempts": 2, "backoff_seconds": 0}}),
            "retry.backoff_seconds",
        ),
        (
            json!({"to": "+12025550123", "run_at": later, "retry": {"max_attempts": 2, "backoff_seconds": 5, "on": []}}),
            "retry.on",
        ),
        (
            json!({"to": "+12025550123", "run_at": later, "retry": {"max_attempts": 2, "backoff_seconds": 5, "on": ["voicemail"]}}),
            "retry.on[0]",
        ),
        (
            json!({"to": "+12025550123", "run_at": later, "customer_id": Uuid::now_v7()}),
            "customer_id",
        ),
        (
            json!({"to": "+12025550123", "run_at": "tomorrow"}),
            "run_at",
        ),
    ] {
        let (status, error) = stack.post("/v1/scheduled-calls", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    for (body, field) in [
        (
            json!({"timezone": "Mars/Olympus", "calling_hours": null, "max_concurrent_calls": null}),
            "timezone",
        ),
        (
            json!({"timezone": "UTC\u{0}", "calling_hours": null, "max_concurrent_calls": null}),
            "timezone",
        ),
        (
            json!({"timezone": "UTC", "calling_hours": {"start": "9am", "end": "17:00"}, "max_concurrent_calls": null}),
            "calling_hours.start",
        ),
        (
            json!({"timezone": "UTC", "calling_hours": {"start": "09:00", "end": "09:00"}, "max_concurrent_calls": null}),
            "calling_hours.end",
        ),
        (
            json!({"timezone": "UTC", "calling_hours": null, "max_concurrent_calls": 0}),
            "max_concurrent_calls",
        ),
    ] {
        let response = put_scheduling(&stack, &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let written = stack.db.count_rows("scheduled_calls").await;
    assert_eq!(written, 0);
}

#[tokio::test]
async fn another_tenants_scheduled_calls_are_not_found() {
    let stack = Stack::api_only(|_| {}).await;
    let mine = schedule_after(&stack, "+12025550123", Span::hours(1)).await;
    let id = mine["id"].as_str().unwrap();

    let key = stack.other_tenant("globex").await;
    for (method, path) in [
        (Method::GET, format!("/v1/scheduled-calls/{id}")),
        (Method::POST, format!("/v1/scheduled-calls/{id}/cancel")),
    ] {
        let response = stack.request_as(method, &path, &key).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Their list is empty, their settings their own.
    for (path, field, expected) in [
        ("/v1/scheduled-calls", "data", json!([])),
        ("/v1/scheduling/settings", "calling_hours", Value::Null),
    ] {
        let response = stack.request_as(Method::GET, path, &key).await;
        let theirs: Value = response.json().await.unwrap();
        assert_eq!(theirs[field], expected, "{path}");
    }
    // Still there, untouched, for its own tenant.
    let still = scheduled(&stack, id).await;
    assert_eq!(still["status"], "pending");
    // Without credentials: 401.
    let anonymous = stack
        .client
        .get(stack.url("/v1/scheduled-calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_change_is_published_as_scheduled_call_updated() {
    let stack = Stack::start(|_| {}).await;
    let mut events = stack.events().await;
    let created = schedule(
        &stack,
        json!({"to": "+12025550908", "run_at": at(Utc::now()),
               "retry": {"max_attempts": 2, "backoff_seconds": 1}}),
    )
    .await;
    let mut seen = Vec::new();
    let last = loop {
        // Events keep coming until the call completes.
        let envelope = events.next_of("scheduled_call.updated", LIFECYCLE).await;
        assert_eq!(envelope["data"]["id"], created["id"]);
        seen.push((
            envelope["data"]["version"].as_i64().unwrap(),
            envelope["data"]["status"].as_str().unwrap().to_string(),
        ));
        if envelope["data"]["status"] == "completed" {
            break envelope["data"].clone();
        }
    };
    seen.sort();
    let statuses: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["pending", "dialing", "retrying", "dialing", "completed"],
        "{seen:?}"
    );
    assert_eq!(seen.first().unwrap().0, 1);
    let versions: Vec<i64> = seen.iter().map(|(v, _)| *v).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "{versions:?}"
    );
    let id = created["id"].as_str().unwrap();
    // The same record (timestamps compared as instants: the event writes
    // microseconds always, the API trims trailing zeros).
    assert_eq!(instants(scheduled(&stack, id).await), instants(last));
}

fn instants(value: Value) -> Value {
    match value {
        Value::String(s) => match s.parse::<DateTime<Utc>>() {
            Ok(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            Err(_) => Value::String(s),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(instants).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, instants(v))).collect())
        }
        other => other,
    }
}

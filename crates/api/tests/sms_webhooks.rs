//! The SMS carrier webhooks against a real server, PostgreSQL and Redis:
//! delivery receipts (transitions, duplicates, late and concurrent
//! receipts), inbound messages, and the STOP/START/HELP keywords with their
//! enforcement on sends.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{TestApp, expect_error, json_of, spawn_app};
use futures::StreamExt;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_core::{events::events_channel, redis::redis};

const STATUS: &str = "/webhooks/carrier/sms/status";
const INCOMING: &str = "/webhooks/carrier/sms/incoming";

/// Sends a message as tenant a and returns `(id, carrier_sid)`.
async fn queued_message(app: &TestApp) -> (String, String) {
    let message = app
        .send_message(&app.a.token, json!({"to": "+12025550123", "body": "Hello"}))
        .await;
    (
        message["id"].as_str().unwrap().to_string(),
        message["carrier_sid"].as_str().unwrap().to_string(),
    )
}

async fn message(app: &TestApp, id: &str) -> Value {
    let (status, message) =
        json_of(app.get(&format!("/v1/messages/{id}"), &app.a.token).await).await;
    assert_eq!(status, StatusCode::OK);
    message
}

async fn ack(response: reqwest::Response) -> Value {
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn receipts_move_a_message_through_its_lifecycle() {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    for (step, status) in ["sending", "sent", "delivered"].into_iter().enumerate() {
        let body = ack(app.sms_status(&app.a, &sid, status).await).await;
        assert_eq!(body["result"], "applied", "{status}");
        assert_eq!(body["message_id"], id.as_str());
        let current = message(&app, &id).await;
        assert_eq!(current["status"], status);
        assert_eq!(
            current["version"],
            step as i64 + 2,
            "one version per change"
        );
    }
    let delivered = message(&app, &id).await;
    assert!(delivered["sent_at"].is_string());
    assert!(delivered["delivered_at"].is_string());
}

#[tokio::test]
async fn carriers_may_skip_steps_and_failures_keep_their_error_code() {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    ack(app.sms_status(&app.a, &sid, "delivered").await).await;
    let delivered = message(&app, &id).await;
    assert_eq!(delivered["status"], "delivered");
    assert!(delivered["sent_at"].is_string(), "delivered implies sent");

    let (id, sid) = queued_message(&app).await;
    ack(app.sms_status(&app.a, &sid, "accepted").await).await; // Twilio's word for queued
    assert_eq!(message(&app, &id).await["version"], 1);
    let response = app
        .carrier_post(
            STATUS,
            &TestApp::carrier_token(&app.a),
            &[
                ("MessageSid", sid.as_str()),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
            ],
        )
        .await;
    assert_eq!(ack(response).await["result"], "applied");
    let undelivered = message(&app, &id).await;
    assert_eq!(undelivered["status"], "undelivered");
    assert_eq!(undelivered["error_code"], "30003");
    assert_eq!(undelivered["delivered_at"], Value::Null);
}

#[tokio::test]
async fn duplicate_late_and_post_final_receipts_are_acknowledged_without_change() {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    ack(app.sms_status(&app.a, &sid, "sent").await).await;
    let before = message(&app, &id).await;

    assert_eq!(
        ack(app.sms_status(&app.a, &sid, "sent").await).await["result"],
        "duplicate"
    );
    assert_eq!(
        ack(app.sms_status(&app.a, &sid, "sending").await).await["result"],
        "stale"
    );
    assert_eq!(
        ack(app.sms_status(&app.a, &sid, "queued").await).await["result"],
        "stale"
    );
    assert_eq!(message(&app, &id).await, before, "nothing changed");

    ack(app.sms_status(&app.a, &sid, "delivered").await).await;
    let delivered = message(&app, &id).await;
    for late in ["failed", "undelivered", "sent", "sending"] {
        assert_eq!(
            ack(app.sms_status(&app.a, &sid, late).await).await["result"],
            "already_ended",
            "{late}"
        );
    }
    assert_eq!(
        ack(app.sms_status(&app.a, &sid, "delivered").await).await["result"],
        "duplicate"
    );
    // An outbound message is never `received`: ignored, still a 200.
    assert_eq!(
        ack(app.sms_status(&app.a, &sid, "received").await).await["result"],
        "already_ended"
    );
    assert_eq!(message(&app, &id).await, delivered);

    let (id, sid) = queued_message(&app).await;
    assert_eq!(
        ack(app.sms_status(&app.a, &sid, "received").await).await["result"],
        "ignored"
    );
    assert_eq!(message(&app, &id).await["status"], "queued");
}

#[tokio::test]
async fn concurrent_receipts_for_one_message_leave_a_consistent_state_and_version() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let (id, sid) = queued_message(&app).await;
        let statuses = [
            "sending",
            "sent",
            "delivered",
            "undelivered",
            "failed",
            "sending",
            "sent",
            "sent",
            "delivered",
            "sending",
            "failed",
            "sent",
            "delivered",
            "sending",
            "undelivered",
            "sent",
            "sending",
            "delivered",
            "sent",
            "failed",
        ];
        let posts = statuses.iter().map(|s| app.sms_status(&app.a, &sid, s));
        let mut applied = Vec::new();
        for (response, status) in futures::future::join_all(posts)
            .await
            .into_iter()
            .zip(statuses)
        {
            let body = ack(response).await;
            let result = body["result"].as_str().unwrap().to_string();
            assert!(
                ["applied", "duplicate", "stale", "already_ended"].contains(&result.as_str()),
                "{body}"
            );
            if result == "applied" {
                applied.push(status);
            }
        }
        let last = message(&app, &id).await;
        assert_eq!(
            last["version"],
            1 + applied.len() as i64,
            "one version per applied receipt: {applied:?}"
        );
        let finals: Vec<_> = applied
            .iter()
            .filter(|s| ["delivered", "undelivered", "failed"].contains(s))
            .collect();
        assert_eq!(
            finals.len(),
            1,
            "exactly one final status wins: {applied:?}"
        );
        assert_eq!(last["status"], *finals[0]);
        // Each status is applied at most once: nothing moved backwards.
        let distinct: std::collections::HashSet<_> = applied.iter().collect();
        assert_eq!(distinct.len(), applied.len(), "{applied:?}");
    }
}

/// Receipts are applied in groups (one statement per batch): every receipt
/// of a burst must still land on its own message, with its own status and
/// error code, and be answered for that message.
#[tokio::test]
async fn a_burst_of_receipts_for_many_messages_applies_each_to_its_own_message() {
    let app = spawn_app().await;
    let mut messages = Vec::new();
    for _ in 0..45 {
        messages.push(queued_message(&app).await);
    }
    let outcomes = [
        ("delivered", None),
        ("undelivered", Some("30003")),
        ("failed", Some("30006")),
    ];
    let token = TestApp::carrier_token(&app.a);
    let posts = messages.iter().enumerate().map(|(i, (_, sid))| {
        let (status, code) = outcomes[i % outcomes.len()];
        let mut params = vec![("MessageSid", sid.as_str()), ("MessageStatus", status)];
        if let Some(code) = code {
            params.push(("ErrorCode", code));
        }
        let (app, token) = (&app, &token);
        async move { app.carrier_post(STATUS, token, &params).await }
    });
    let answers = futures::future::join_all(posts).await;
    for (i, ((id, _), response)) in messages.iter().zip(answers).enumerate() {
        let (status, code) = outcomes[i % outcomes.len()];
        let body = ack(response).await;
        assert_eq!(body["result"], "applied", "{body}");
        assert_eq!(
            body["message_id"],
            id.as_str(),
            "answered for its own message"
        );
        let stored = message(&app, id).await;
        assert_eq!(stored["status"], status, "{stored}");
        assert_eq!(stored["error_code"], json!(code), "{stored}");
        assert_eq!(stored["version"], 2, "one change each: {stored}");
    }
}

#[tokio::test]
async fn a_receipt_with_a_bad_signature_is_403_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    let before = message(&app, &id).await;
    // Signed with another tenant's token.
    expect_error(
        app.sms_status(&app.b, &sid, "delivered").await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    // Unsigned.
    let response = app
        .client
        .post(app.url(STATUS))
        .form(&[("MessageSid", sid.as_str()), ("MessageStatus", "delivered")])
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::FORBIDDEN, "invalid_signature").await;
    // Signed, then tampered with.
    let signature = switchboard_core::carrier::sign(
        &TestApp::carrier_token(&app.a),
        &format!("{}{STATUS}", app.settings.public_url),
        &[
            ("MessageSid".to_string(), sid.clone()),
            ("MessageStatus".to_string(), "sent".to_string()),
        ],
    );
    let response = app
        .client
        .post(app.url(STATUS))
        .header("x-twilio-signature", signature)
        .form(&[("MessageSid", sid.as_str()), ("MessageStatus", "delivered")])
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::FORBIDDEN, "invalid_signature").await;
    assert_eq!(message(&app, &id).await, before);
}

#[tokio::test]
async fn unknown_sids_missing_parameters_and_other_content_types_are_refused() {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    let token = TestApp::carrier_token(&app.a);
    expect_error(
        app.sms_status(&app.a, "SM00000000000000000000000000000000", "delivered")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let error = expect_error(
        app.carrier_post(STATUS, &token, &[("MessageStatus", "delivered")])
            .await,
        StatusCode::BAD_REQUEST,
        "missing_parameter",
    )
    .await;
    assert_eq!(error["field"], "MessageSid");
    let error = expect_error(
        app.carrier_post(STATUS, &token, &[("MessageSid", sid.as_str())])
            .await,
        StatusCode::BAD_REQUEST,
        "missing_parameter",
    )
    .await;
    assert_eq!(error["field"], "MessageStatus");
    let error = expect_error(
        app.sms_status(&app.a, &sid, "teleported").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_eq!(error["field"], "MessageStatus");
    for path in [STATUS, INCOMING] {
        let response = app
            .client
            .post(app.url(path))
            .json(&json!({"MessageSid": sid, "MessageStatus": "delivered"}))
            .send()
            .await
            .unwrap();
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    let current = message(&app, &id).await;
    assert_eq!(current["status"], "queued");
    assert_eq!(current["version"], 1);
}

#[tokio::test]
async fn an_inbound_message_is_stored_once_per_sid_and_linked_to_the_customer() {
    let app = spawn_app().await;
    let ada = app
        .create_customer(
            &app.a.token,
            json!({"name": "Ada", "phone": "+12025550123"}),
        )
        .await;
    let body = ack(app
        .inbound_sms(
            &app.a,
            "SMinbound1",
            "+12025550123",
            "+12025550101",
            "Can we move it to 3pm?",
        )
        .await)
    .await;
    assert_eq!(body["result"], "created");
    assert_eq!(body["action"], "none");
    assert_eq!(body["customer_id"], ada["id"]);
    assert!(
        body.get("reply").is_none() && body.get("twiml").is_none(),
        "{body}"
    );
    let id = body["message_id"].as_str().unwrap();
    let stored = message(&app, id).await;
    assert_eq!(stored["direction"], "inbound");
    assert_eq!(stored["status"], "received");
    assert_eq!(stored["from"], "+12025550123");
    assert_eq!(stored["to"], "+12025550101");
    assert_eq!(stored["body"], "Can we move it to 3pm?");
    assert_eq!(stored["carrier_sid"], "SMinbound1");
    assert_eq!(stored["customer_id"], ada["id"]);
    assert_eq!(stored["segments"], 1);
    assert_eq!(stored["encoding"], "GSM-7");

    // The carrier retries: the same message comes back, nothing new is made.
    let retry = ack(app
        .inbound_sms(
            &app.a,
            "SMinbound1",
            "+12025550123",
            "+12025550101",
            "Can we move it to 3pm?",
        )
        .await)
    .await;
    assert_eq!(retry["result"], "duplicate");
    assert_eq!(retry["message_id"], id);
    assert_eq!(app.message_count(&app.a).await, 1);

    // An unknown sender is stored without a customer.
    let body = ack(app
        .inbound_sms(
            &app.a,
            "SMinbound2",
            "+12025550188",
            "+12025550100",
            "Who is this?",
        )
        .await)
    .await;
    assert_eq!(body["customer_id"], Value::Null);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_inbound_message_create_it_once() {
    let app = spawn_app().await;
    let posts =
        (0..10).map(|_| app.inbound_sms(&app.a, "SMdup", "+12025550123", "+12025550100", "STOP"));
    let mut ids = std::collections::HashSet::new();
    for response in futures::future::join_all(posts).await {
        let body = ack(response).await;
        assert_eq!(body["action"], "opted_out");
        ids.insert(body["message_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.message_count(&app.a).await, 1);
}

#[tokio::test]
async fn inbound_messages_are_refused_without_side_effects_when_unsigned_unknown_or_malformed() {
    let app = spawn_app().await;
    // Signed with the wrong tenant's token.
    expect_error(
        app.carrier_post(
            INCOMING,
            &TestApp::carrier_token(&app.b),
            &[
                ("MessageSid", "SMx1"),
                ("From", "+12025550123"),
                ("To", "+12025550100"),
                ("Body", "STOP"),
            ],
        )
        .await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    // A number nobody owns.
    expect_error(
        app.inbound_sms(&app.a, "SMx2", "+12025550123", "+12025550199", "STOP")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let token = TestApp::carrier_token(&app.a);
    for (params, field) in [
        (
            vec![
                ("From", "+12025550123"),
                ("To", "+12025550100"),
                ("Body", "hi"),
            ],
            "MessageSid",
        ),
        (
            vec![
                ("MessageSid", "SMx3"),
                ("To", "+12025550100"),
                ("Body", "hi"),
            ],
            "From",
        ),
        (
            vec![
                ("MessageSid", "SMx4"),
                ("From", "+12025550123"),
                ("Body", "hi"),
            ],
            "To",
        ),
        (
            vec![
                ("MessageSid", "SMx5"),
                ("From", "not a number"),
                ("To", "+12025550100"),
                ("Body", "STOP"),
            ],
            "From",
        ),
        (
            vec![
                ("MessageSid", "SMx6"),
                ("From", "2025550123"),
                ("To", "+12025550100"),
                ("Body", "STOP"),
            ],
            "From",
        ),
    ] {
        let response = app.carrier_post(INCOMING, &token, &params).await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {body}");
        assert_eq!(body["error"]["field"], field, "{params:?}: {body}");
    }
    let long = "x".repeat(1601);
    let error = expect_error(
        app.inbound_sms(&app.a, "SMx7", "+12025550123", "+12025550100", &long)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_eq!(error["field"], "Body");
    assert_eq!(app.message_count(&app.a).await, 0);
    assert_eq!(app.opt_out_keyword(&app.a, "+12025550123").await, None);
}

#[tokio::test]
async fn stop_keywords_in_any_case_or_spacing_opt_the_sender_out() {
    let app = spawn_app().await;
    let cases = [
        ("STOP", "STOP"),
        (" stop ", "STOP"),
        ("Stop!", "STOP"),
        ("\tStOp\n", "STOP"),
        ("stop all", "STOPALL"),
        ("Unsubscribe.", "UNSUBSCRIBE"),
        ("cancel", "CANCEL"),
        ("End", "END"),
        ("QUIT", "QUIT"),
        ("revoke", "REVOKE"),
        ("opt out", "OPTOUT"),
    ];
    for (i, (body, keyword)) in cases.into_iter().enumerate() {
        let from = format!("+1202555{:04}", 1000 + i);
        let ack = ack(app
            .inbound_sms(&app.a, &format!("SMstop{i}"), &from, "+12025550100", body)
            .await)
        .await;
        assert_eq!(ack["result"], "created", "{body:?}");
        assert_eq!(ack["action"], "opted_out", "{body:?}");
        let reply = ack["reply"].as_str().unwrap();
        assert!(
            reply.contains("unsubscribed") && reply.contains("START"),
            "{reply}"
        );
        assert_eq!(
            ack["twiml"],
            format!("<Response><Message>{reply}</Message></Response>")
        );
        assert_eq!(
            app.opt_out_keyword(&app.a, &from).await.as_deref(),
            Some(keyword),
            "{body:?}"
        );
    }
    // A keyword inside a sentence is just a message.
    let ack = ack(app
        .inbound_sms(
            &app.a,
            "SMstopx",
            "+12025559999",
            "+12025550100",
            "please don't stop",
        )
        .await)
    .await;
    assert_eq!(ack["action"], "none");
    assert_eq!(app.opt_out_keyword(&app.a, "+12025559999").await, None);
}

#[tokio::test]
async fn a_send_to_an_opted_out_number_is_refused_until_they_reply_start() {
    let app = spawn_app().await;
    ack(app
        .inbound_sms(&app.a, "SM1", "+12025550123", "+12025550100", "Stop")
        .await)
    .await;

    for to in ["+12025550123", "(202) 555-0123"] {
        let error = expect_error(
            app.post(
                "/v1/messages",
                &app.a.token,
                json!({"to": to, "body": "Big sale!"}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_opted_out",
        )
        .await;
        assert_eq!(error["field"], "to");
        assert!(
            error["message"].as_str().unwrap().contains("opted out"),
            "{error}"
        );
    }
    // Templates are refused the same way, and with an Idempotency-Key
    // nothing is stored either: the key stays usable.
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let refused = app
        .request(reqwest::Method::POST, "/v1/messages", &app.a.token)
        .header("Idempotency-Key", "promo-1")
        .json(&json!({"to": "+12025550123", "template_id": template["id"]}))
        .send()
        .await
        .unwrap();
    expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "recipient_opted_out",
    )
    .await;
    let outbound: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'outbound'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(outbound, 0, "a refused send writes nothing");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0);

    // The opt-out belongs to tenant a: tenant b may still message the number.
    app.send_message(
        &app.b.token,
        json!({"to": "+12025550123", "body": "Hi from b"}),
    )
    .await;

    let ack = ack(app
        .inbound_sms(&app.a, "SM2", "+12025550123", "+12025550101", "  start ")
        .await)
    .await;
    assert_eq!(ack["action"], "opted_in");
    assert!(ack["reply"].as_str().unwrap().contains("resubscribed"));
    assert_eq!(app.opt_out_keyword(&app.a, "+12025550123").await, None);
    let sent = app
        .request(reqwest::Method::POST, "/v1/messages", &app.a.token)
        .header("Idempotency-Key", "promo-1")
        .json(&json!({"to": "+12025550123", "template_id": template["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn unstop_and_yes_also_opt_back_in() {
    let app = spawn_app().await;
    for (i, keyword) in ["UNSTOP", "yes"].into_iter().enumerate() {
        ack(app
            .inbound_sms(
                &app.a,
                &format!("SMa{i}"),
                "+12025550123",
                "+12025550100",
                "QUIT",
            )
            .await)
        .await;
        assert!(app.opt_out_keyword(&app.a, "+12025550123").await.is_some());
        let ack = ack(app
            .inbound_sms(
                &app.a,
                &format!("SMb{i}"),
                "+12025550123",
                "+12025550100",
                keyword,
            )
            .await)
        .await;
        assert_eq!(ack["action"], "opted_in", "{keyword}");
        assert_eq!(app.opt_out_keyword(&app.a, "+12025550123").await, None);
    }
    // START from someone who never opted out changes nothing and is fine.
    let ack = ack(app
        .inbound_sms(&app.a, "SMc", "+12025550177", "+12025550100", "Start")
        .await)
    .await;
    assert_eq!(ack["action"], "opted_in");
}

#[tokio::test]
async fn help_replies_with_the_tenants_help_text() {
    let app = spawn_app().await;
    let ack1 = ack(app
        .inbound_sms(&app.a, "SMh1", "+12025550123", "+12025550100", " help ")
        .await)
    .await;
    assert_eq!(ack1["action"], "help");
    assert_eq!(
        ack1["reply"],
        "Reply STOP to unsubscribe, START to resubscribe."
    );

    sqlx::query("UPDATE tenants SET help_text = $2 WHERE id = $1")
        .bind(app.a.id)
        .bind("Alpha support: call <202> 555-0100 & ask")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let ack2 = ack(app
        .inbound_sms(&app.a, "SMh2", "+12025550123", "+12025550100", "INFO?")
        .await)
    .await;
    assert_eq!(ack2["action"], "help");
    assert_eq!(ack2["reply"], "Alpha support: call <202> 555-0100 & ask");
    assert_eq!(
        ack2["twiml"],
        "<Response><Message>Alpha support: call &lt;202&gt; 555-0100 &amp; ask</Message></Response>",
        "the TwiML is escaped"
    );
    assert_eq!(
        app.opt_out_keyword(&app.a, "+12025550123").await,
        None,
        "HELP opts nobody out"
    );
}

#[tokio::test]
async fn receipts_and_keywords_are_counted_in_metrics() {
    let app = spawn_app().await;
    let (_, sid) = queued_message(&app).await;
    ack(app.sms_status(&app.a, &sid, "sent").await).await;
    ack(app.sms_status(&app.a, &sid, "sent").await).await;
    ack(app
        .inbound_sms(&app.a, "SMm", "+12025550123", "+12025550100", "hello")
        .await)
    .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "message_transitions_total{to=\"sent\",result=\"applied\"}",
        "message_transitions_total{to=\"sent\",result=\"duplicate\"}",
        "messages_created_total{direction=\"inbound\"}",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
}

#[tokio::test]
async fn applied_receipts_and_inbound_messages_are_published_as_events() {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    let client = redis::Client::open(app.settings.redis_url.expose_secret()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(events_channel(&app.settings, app.a.id))
        .await
        .unwrap();
    let mut events = pubsub.into_on_message();
    let mut next = async || {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .unwrap();
        serde_json::from_str::<Value>(&event.get_payload::<String>().unwrap()).unwrap()
    };

    ack(app.sms_status(&app.a, &sid, "sent").await).await;
    // A duplicate changes nothing and publishes nothing: the next event is
    // the inbound message's.
    ack(app.sms_status(&app.a, &sid, "sent").await).await;
    let inbound = ack(app
        .inbound_sms(&app.a, "SMev", "+12025550123", "+12025550100", "ok")
        .await)
    .await;

    let status = next().await;
    assert_eq!(status["type"], "message.status");
    assert_eq!(status["data"]["id"], id.as_str());
    assert_eq!(status["data"]["status"], "sent");
    assert_eq!(status["data"]["version"], 2);
    let received = next().await;
    assert_eq!(received["type"], "message.received");
    assert_eq!(received["data"]["id"], inbound["message_id"]);
    assert_eq!(received["data"]["status"], "received");
}

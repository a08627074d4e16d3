//! The SMS carrier webhooks against a real server, PostgreSQL and Redis:
//! delivery receipts (transitions, duplicates, late and concurrent
//! receipts), inbound messages, and the STOP/START/HELP keywords with their
//! enforcement on sends.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_testkit::{
    TestApp,
    api::{expect_code, expect_field_error, expect_not_found},
    expect_error, json_of, spawn_app,
};

const STATUS: &str = "/webhooks/carrier/sms/status";
const INCOMING: &str = "/webhooks/carrier/sms/incoming";

/// Sends a message as tenant a and returns `(id, carrier_sid)`.
async fn queued_message(app: &TestApp) -> (String, String) {
    let message = app.send_text(&app.a.token, "+12025550123", "Hello").await;
    (
        message["id"].as_str().unwrap().to_string(),
        message["carrier_sid"].as_str().unwrap().to_string(),
    )
}

/// A fresh app and one queued message of tenant A's: its id and carrier sid.
async fn spawn_with_message() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let (id, sid) = queued_message(&app).await;
    (app, id, sid)
}

async fn message(app: &TestApp, id: &str) -> Value {
    app.get_ok(&format!("/v1/messages/{id}"), &app.a.token)
        .await
}

/// The result of a delivery receipt for `sid`, asserting 200.
async fn receipt(app: &TestApp, sid: &str, status: &str) -> Value {
    ack(app.sms_status(&app.a, sid, status).await).await["result"].clone()
}

async fn ack(response: reqwest::Response) -> Value {
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Posts a signed inbound SMS for tenant a and returns its 200 answer.
async fn inbound(app: &TestApp, sid: &str, from: &str, to: &str, body: &str) -> Value {
    ack(app.inbound_sms(&app.a, sid, from, to, body).await).await
}

#[tokio::test]
async fn receipts_move_a_message_through_its_lifecycle() {
    let (app, id, sid) = spawn_with_message().await;
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
    let (app, id, sid) = spawn_with_message().await;
    receipt(&app, &sid, "delivered").await;
    let delivered = message(&app, &id).await;
    assert_eq!(delivered["status"], "delivered");
    assert!(delivered["sent_at"].is_string(), "delivered implies sent");

    let (id, sid) = queued_message(&app).await;
    receipt(&app, &sid, "accepted").await; // Twilio's word for queued
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
    let (app, id, sid) = spawn_with_message().await;
    receipt(&app, &sid, "sent").await;
    let before = message(&app, &id).await;

    for (status, result) in [
        ("sent", "duplicate"),
        ("sending", "stale"),
        ("queued", "stale"),
    ] {
        assert_eq!(receipt(&app, &sid, status).await, result, "{status}");
    }
    assert_eq!(message(&app, &id).await, before, "nothing changed");

    receipt(&app, &sid, "delivered").await;
    let delivered = message(&app, &id).await;
    for late in ["failed", "undelivered", "sent", "sending"] {
        assert_eq!(receipt(&app, &sid, late).await, "already_ended", "{late}");
    }
    assert_eq!(receipt(&app, &sid, "delivered").await, "duplicate");
    // An outbound message is never `received`: ignored, still a 200.
    assert_eq!(receipt(&app, &sid, "received").await, "already_ended");
    assert_eq!(message(&app, &id).await, delivered);

    let (id, sid) = queued_message(&app).await;
    assert_eq!(receipt(&app, &sid, "received").await, "ignored");
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
    let (app, id, sid) = spawn_with_message().await;
    let before = message(&app, &id).await;
    let delivered = [("MessageSid", sid.as_str()), ("MessageStatus", "delivered")];
    let sent = [("MessageSid", sid.as_str()), ("MessageStatus", "sent")];
    let (a, b) = (
        TestApp::carrier_token(&app.a),
        TestApp::carrier_token(&app.b),
    );
    for (signature, what) in [
        (
            Some(app.carrier_signature(&b, STATUS, &delivered)),
            "signed with another tenant's token",
        ),
        (None, "unsigned"),
        (
            Some(app.carrier_signature(&a, STATUS, &sent)),
            "signed, then tampered with",
        ),
    ] {
        let response = app
            .post_form(STATUS, signature.as_deref(), &delivered)
            .await;
        expect_code(response, "invalid_signature", what).await;
    }
    assert_eq!(message(&app, &id).await, before);
}

#[tokio::test]
async fn unknown_sids_missing_parameters_and_other_content_types_are_refused() {
    let (app, id, sid) = spawn_with_message().await;
    let token = TestApp::carrier_token(&app.a);
    let unknown = "SM00000000000000000000000000000000";
    expect_not_found(app.sms_status(&app.a, unknown, "delivered").await).await;
    for (params, field) in [
        (&[("MessageStatus", "delivered")], "MessageSid"),
        (&[("MessageSid", sid.as_str())], "MessageStatus"),
    ] {
        let response = app.carrier_post(STATUS, &token, params).await;
        expect_field_error(response, "missing_parameter", field, field).await;
    }
    let teleported = app.sms_status(&app.a, &sid, "teleported").await;
    expect_field_error(
        teleported,
        "invalid_parameter",
        "MessageStatus",
        "teleported",
    )
    .await;
    for path in [STATUS, INCOMING] {
        let body = json!({"MessageSid": sid, "MessageStatus": "delivered"});
        let response = app.client.post(app.url(path)).json(&body).send().await;
        expect_code(response.unwrap(), "unsupported_media_type", path).await;
    }
    let current = message(&app, &id).await;
    assert_eq!(current["status"], "queued");
    assert_eq!(current["version"], 1);
}

#[tokio::test]
async fn an_inbound_message_is_stored_once_per_sid_and_linked_to_the_customer() {
    let app = spawn_app().await;
    let ada = app
        .customer_with_phone(&app.a.token, "Ada", "+12025550123")
        .await;
    let deliver = || {
        let body = "Can we move it to 3pm?";
        inbound(&app, "SMinbound1", "+12025550123", "+12025550101", body)
    };
    let body = deliver().await;
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
    let retry = deliver().await;
    assert_eq!(retry["result"], "duplicate");
    assert_eq!(retry["message_id"], id);
    assert_eq!(app.message_count(&app.a).await, 1);

    // An unknown sender is stored without a customer.
    let body = inbound(
        &app,
        "SMinbound2",
        "+12025550188",
        "+12025550100",
        "Who is this?",
    )
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
    let wrong_tenant = app.inbound_sms(&app.b, "SMx1", "+12025550123", "+12025550100", "STOP");
    expect_code(wrong_tenant.await, "invalid_signature", "b's token").await;
    // A number nobody owns.
    let nobodys = app.inbound_sms(&app.a, "SMx2", "+12025550123", "+12025550199", "STOP");
    expect_not_found(nobodys.await).await;
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
    let long = app.inbound_sms(&app.a, "SMx7", "+12025550123", "+12025550100", &long);
    expect_field_error(long.await, "invalid_parameter", "Body", "a long body").await;
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
        let ack = inbound(&app, &format!("SMstop{i}"), &from, "+12025550100", body).await;
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
    let ack = inbound(
        &app,
        "SMstopx",
        "+12025559999",
        "+12025550100",
        "please don't stop",
    )
    .await;
    assert_eq!(ack["action"], "none");
    assert_eq!(app.opt_out_keyword(&app.a, "+12025559999").await, None);
}

#[tokio::test]
async fn a_send_to_an_opted_out_number_is_refused_until_they_reply_start() {
    let app = spawn_app().await;
    inbound(&app, "SM1", "+12025550123", "+12025550100", "Stop").await;

    let opted_out = "recipient_opted_out";
    for to in ["+12025550123", "(202) 555-0123"] {
        let sale = json!({"to": to, "body": "Big sale!"});
        let response = app.post("/v1/messages", &app.a.token, sale).await;
        let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, opted_out).await;
        assert_eq!(error["field"], "to", "{to}");
        assert!(
            error["message"].as_str().unwrap().contains("opted out"),
            "{error}"
        );
    }
    // Templates are refused the same way, and with an Idempotency-Key
    // nothing is stored either: the key stays usable.
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let promo = || {
        let body = json!({"to": "+12025550123", "template_id": template["id"]});
        app.post_idempotent("/v1/messages", &app.a.token, "promo-1", body)
    };
    let refused = promo().await;
    expect_error(refused, StatusCode::UNPROCESSABLE_ENTITY, opted_out).await;
    let outbound: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'outbound'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(outbound, 0, "a refused send writes nothing");
    assert_eq!(app.count_rows("idempotency_keys").await, 0);

    // The opt-out belongs to tenant a: tenant b may still message the number.
    app.send_text(&app.b.token, "+12025550123", "Hi from b")
        .await;

    let ack = inbound(&app, "SM2", "+12025550123", "+12025550101", "  start ").await;
    assert_eq!(ack["action"], "opted_in");
    assert!(ack["reply"].as_str().unwrap().contains("resubscribed"));
    assert_eq!(app.opt_out_keyword(&app.a, "+12025550123").await, None);
    assert_eq!(promo().await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn unstop_and_yes_also_opt_back_in() {
    let app = spawn_app().await;
    for (i, keyword) in ["UNSTOP", "yes"].into_iter().enumerate() {
        inbound(
            &app,
            &format!("SMa{i}"),
            "+12025550123",
            "+12025550100",
            "QUIT",
        )
        .await;
        assert!(app.opt_out_keyword(&app.a, "+12025550123").await.is_some());
        let ack = inbound(
            &app,
            &format!("SMb{i}"),
            "+12025550123",
            "+12025550100",
            keyword,
        )
        .await;
        assert_eq!(ack["action"], "opted_in", "{keyword}");
        assert_eq!(app.opt_out_keyword(&app.a, "+12025550123").await, None);
    }
    // START from someone who never opted out changes nothing and is fine.
    let ack = inbound(&app, "SMc", "+12025550177", "+12025550100", "Start").await;
    assert_eq!(ack["action"], "opted_in");
}

#[tokio::test]
async fn help_replies_with_the_tenants_help_text() {
    let app = spawn_app().await;
    let ack1 = inbound(&app, "SMh1", "+12025550123", "+12025550100", " help ").await;
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
    let ack2 = inbound(&app, "SMh2", "+12025550123", "+12025550100", "INFO?").await;
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
    let (app, _, sid) = spawn_with_message().await;
    receipt(&app, &sid, "sent").await;
    receipt(&app, &sid, "sent").await;
    inbound(&app, "SMm", "+12025550123", "+12025550100", "hello").await;
    let text = app.metrics().await;
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
    let (app, id, sid) = spawn_with_message().await;
    let mut events = app.events(&app.a).await;
    let mut next = async || events.next(std::time::Duration::from_secs(5)).await;

    receipt(&app, &sid, "sent").await;
    // A duplicate changes nothing and publishes nothing: the next event is
    // the inbound message's.
    receipt(&app, &sid, "sent").await;
    let inbound_ack = inbound(&app, "SMev", "+12025550123", "+12025550100", "ok").await;

    let status = next().await;
    assert_eq!(status["type"], "message.status");
    assert_eq!(status["data"]["id"], id.as_str());
    assert_eq!(status["data"]["status"], "sent");
    assert_eq!(status["data"]["version"], 2);
    let received = next().await;
    assert_eq!(received["type"], "message.received");
    assert_eq!(received["data"]["id"], inbound_ack["message_id"]);
    assert_eq!(received["data"]["status"], "received");
}

//! Sending, listing and reading SMS against a real server, PostgreSQL and
//! Redis. Opt-out enforcement is in `sms_webhooks.rs`, next to the STOP
//! handling that creates opt-outs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_testkit::{TestApp, expect_error, json_of, spawn_app};
use uuid::Uuid;

fn is_message_sid(sid: &str) -> bool {
    sid.len() == 34
        && sid.starts_with("SM")
        && sid[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[tokio::test]
async fn a_message_is_stored_queued_from_the_default_number_and_handed_to_the_sms_queue() {
    let app = spawn_app().await;
    let message = app
        .send_text(&app.a.token, "(202) 555-0123", "Your order has shipped.")
        .await;
    assert_eq!(message["direction"], "outbound");
    assert_eq!(message["to"], "+12025550123", "normalised to E.164");
    assert_eq!(
        message["from"], "+12025550100",
        "the tenant's default number"
    );
    assert_eq!(message["body"], "Your order has shipped.");
    assert_eq!(message["status"], "queued");
    assert_eq!(message["segments"], 1);
    assert_eq!(message["encoding"], "GSM-7");
    assert!(
        is_message_sid(message["carrier_sid"].as_str().unwrap()),
        "{message}"
    );
    assert_eq!(message["error_code"], Value::Null);
    assert_eq!(message["customer_id"], Value::Null);
    assert_eq!(message["campaign_id"], Value::Null);
    assert_eq!(message["template_id"], Value::Null);
    assert_eq!(message["agent_id"], app.a.agent_id.to_string());
    assert_eq!(message["tenant_id"], app.a.id.to_string());
    assert_eq!(message["version"], 1);
    assert_eq!(message["sent_at"], Value::Null);
    for key in ["id", "created_at", "updated_at"] {
        assert!(message[key].is_string(), "{key}: {message}");
    }

    app.assert_stored_and_queued("/v1/messages", &app.a.token, &message, "sms.send")
        .await;
}

#[tokio::test]
async fn an_api_key_can_send_and_the_message_has_no_agent() {
    let app = spawn_app().await;
    let message = app
        .send_text(&app.a.api_key, "+12025550123", "From a server")
        .await;
    assert_eq!(message["agent_id"], Value::Null);
}

#[tokio::test]
async fn segments_and_encoding_are_recorded_for_gsm7_extended_gsm_and_ucs2_bodies() {
    let app = spawn_app().await;
    let cases: Vec<(String, i64, &str)> = vec![
        ("a".repeat(160), 1, "GSM-7"),
        ("a".repeat(161), 2, "GSM-7"),
        ("a".repeat(307), 3, "GSM-7"),
        // Extension-table characters take two septets each.
        ("€".repeat(80), 1, "GSM-7"),
        ("€".repeat(81), 2, "GSM-7"),
        (format!("{}[]", "a".repeat(157)), 2, "GSM-7"),
        (format!("{}[]", "a".repeat(156)), 1, "GSM-7"),
        ("Price: 5€ {approx} ~ ^ | \\".to_string(), 1, "GSM-7"),
        ("Ça coûte 5 €".to_string(), 1, "UCS-2"),
        ("Hello 😀".to_string(), 1, "UCS-2"),
        ("ж".repeat(70), 1, "UCS-2"),
        ("ж".repeat(71), 2, "UCS-2"),
        // An emoji is two UTF-16 units: 35 fit one segment, 36 need two.
        ("😀".repeat(35), 1, "UCS-2"),
        ("😀".repeat(36), 2, "UCS-2"),
    ];
    for (body, segments, encoding) in cases {
        let message = app
            .send_message(&app.a.token, json!({"to": "+12025550123", "body": body}))
            .await;
        assert_eq!(message["segments"], segments, "{body}");
        assert_eq!(message["encoding"], encoding, "{body}");
        assert_eq!(message["body"], body.as_str());
    }
}

#[tokio::test]
async fn a_send_needs_a_valid_recipient_and_exactly_one_of_body_or_template() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "t", "Hello").await;
    let refused = [
        (json!({"to": "hello", "body": "x"}), "to"),
        (json!({"to": "123", "body": "x"}), "to"),
        (json!({"to": "+1 000 000 0000", "body": "x"}), "to"),
        (json!({"to": "", "body": "x"}), "to"),
        (json!({"to": "+12025550123"}), "body"),
        (json!({"to": "+12025550123", "body": ""}), "body"),
        (json!({"to": "+12025550123", "body": "   "}), "body"),
        (
            json!({"to": "+12025550123", "body": "x".repeat(1601)}),
            "body",
        ),
        (
            json!({"to": "+12025550123", "body": "x", "template_id": template["id"]}),
            "template_id",
        ),
        (
            json!({"to": "+12025550123", "body": "x", "variables": {"a": "b"}}),
            "variables",
        ),
    ];
    app.expect_refused("/v1/messages", &app.a.token, "validation_failed", refused)
        .await;
    // 1600 characters is the limit, inclusive.
    app.send_message(
        &app.a.token,
        json!({"to": "+12025550123", "body": "x".repeat(1600)}),
    )
    .await;
    assert_eq!(app.message_count(&app.a).await, 1);
}

#[tokio::test]
async fn a_send_with_an_idempotency_key_happens_once() {
    let app = spawn_app().await;
    async fn send(app: &TestApp, token: &str, body: &str) -> reqwest::Response {
        let body = json!({"to": "+12025550123", "body": body});
        app.post_idempotent("/v1/messages", token, "send-1", body)
            .await
    }
    let first = send(&app, &app.a.token, "Once only").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let (_, first) = json_of(first).await;

    let replay = send(&app, &app.a.token, "Once only").await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let (_, replay) = json_of(replay).await;
    assert_eq!(replay, first, "the stored response is replayed");

    let reused = send(&app, &app.a.token, "Something else").await;
    let reused_code = "idempotency_key_reused";
    expect_error(reused, StatusCode::UNPROCESSABLE_ENTITY, reused_code).await;
    assert_eq!(app.message_count(&app.a).await, 1);

    // Keys are per tenant: tenant b's identical key is its own.
    let other = send(&app, &app.b.token, "Once only").await;
    assert_eq!(other.status(), StatusCode::CREATED);
    assert_eq!(app.message_count(&app.b).await, 1);
}

#[tokio::test]
async fn concurrent_sends_with_one_idempotency_key_create_one_message() {
    let app = spawn_app().await;
    let body = json!({"to": "+12025550123", "body": "Raced"});
    let sends =
        (0..8).map(|_| app.post_idempotent("/v1/messages", &app.a.token, "race", body.clone()));
    let mut ids = std::collections::HashSet::new();
    for response in futures::future::join_all(sends).await {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.message_count(&app.a).await, 1);
}

async fn customer_ada(app: &TestApp) -> Value {
    app.create_customer(
        &app.a.token,
        json!({"name": "Ada Lovelace", "phone": "+12025550123", "company": "Engines"}),
    )
    .await
}

#[tokio::test]
async fn a_template_is_filled_from_the_recipient_customer_and_explicit_variables() {
    let app = spawn_app().await;
    let ada = customer_ada(&app).await;
    let template = app
        .create_template(
            &app.a.token,
            "reminder",
            "Hi {{first_name}} of {{ company }}, see you {{date}}.",
        )
        .await;

    // The customer is found by the recipient's number.
    let message = app
        .send_message(
            &app.a.token,
            json!({"to": "(202) 555-0123", "template_id": template["id"], "variables": {"date": "Monday"}}),
        )
        .await;
    assert_eq!(message["body"], "Hi Ada of Engines, see you Monday.");
    assert_eq!(message["customer_id"], ada["id"]);
    assert_eq!(message["template_id"], template["id"]);

    // Explicit variables win over the customer's fields; an explicit
    // customer_id fills a message to another number.
    let message = app
        .send_message(
            &app.a.token,
            json!({
                "to": "+12025550177",
                "customer_id": ada["id"],
                "template_id": template["id"],
                "variables": {"date": "Tuesday", "first_name": "Countess"}
            }),
        )
        .await;
    assert_eq!(message["body"], "Hi Countess of Engines, see you Tuesday.");
    assert_eq!(message["customer_id"], ada["id"]);
    assert_eq!(message["to"], "+12025550177");
}

#[tokio::test]
async fn missing_template_variables_are_a_422_naming_each_of_them() {
    let app = spawn_app().await;
    customer_ada(&app).await;
    let template = app
        .create_template(
            &app.a.token,
            "needs-more",
            "{{first_name}}: {{date}} at {{place}} ({{date}})",
        )
        .await;
    // A recipient with no customer record: nothing fills first_name either.
    let error = expect_error(
        app.post(
            "/v1/messages",
            &app.a.token,
            json!({"to": "+12025550177", "template_id": template["id"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "template_variables_missing",
    )
    .await;
    let text = error["message"].as_str().unwrap();
    assert!(text.contains("date, first_name, place"), "{error}");
    assert_eq!(error["field"], "variables");

    // The customer fills first_name; date and place are still missing.
    let error = expect_error(
        app.post(
            "/v1/messages",
            &app.a.token,
            json!({"to": "+12025550123", "template_id": template["id"], "variables": {"date": "Monday"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "template_variables_missing",
    )
    .await;
    let text = error["message"].as_str().unwrap();
    assert!(text.contains("needs values for: place "), "{error}");
    assert_eq!(app.message_count(&app.a).await, 0, "nothing was written");
}

#[tokio::test]
async fn a_rendered_template_longer_than_1600_characters_is_refused() {
    let app = spawn_app().await;
    let template = app
        .create_template(&app.a.token, "long", "{{a}}{{a}}")
        .await;
    let error = expect_error(
        app.post(
            "/v1/messages",
            &app.a.token,
            json!({"to": "+12025550123", "template_id": template["id"], "variables": {"a": "x".repeat(801)}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error["field"], "template_id");
    assert_eq!(app.message_count(&app.a).await, 0);
}

#[tokio::test]
async fn another_tenants_template_or_customer_cannot_be_used() {
    let app = spawn_app().await;
    let theirs = app.create_template(&app.b.token, "theirs", "Hello").await;
    let their_customer = app
        .customer_with_phone(&app.b.token, "Bea", "+12025550123")
        .await;
    let refused = [
        (
            json!({"to": "+12025550123", "template_id": theirs["id"]}),
            "template_id",
        ),
        (
            json!({"to": "+12025550123", "template_id": Uuid::now_v7()}),
            "template_id",
        ),
        (
            json!({"to": "+12025550123", "body": "x", "customer_id": their_customer["id"]}),
            "customer_id",
        ),
        (
            json!({"to": "+12025550123", "body": "x", "customer_id": Uuid::now_v7()}),
            "customer_id",
        ),
    ];
    app.expect_refused("/v1/messages", &app.a.token, "validation_failed", refused)
        .await;
    // Tenant b's customer with the same number is not linked to a's message.
    let message = app.send_text(&app.a.token, "+12025550123", "x").await;
    assert_eq!(message["customer_id"], Value::Null);
    assert_eq!(app.message_count(&app.a).await, 1);
}

#[tokio::test]
async fn messages_are_listed_newest_first_searched_and_filtered() {
    let app = spawn_app().await;
    let ada = customer_ada(&app).await;
    let reminder = app
        .send_text(
            &app.a.token,
            "+12025550123",
            "Reminder: your appointment is tomorrow",
        )
        .await;
    let invoice = app
        .send_text(&app.a.token, "+12025550177", "Your invoice is ready")
        .await;
    let (status, _) = json_of(
        app.inbound_sms(
            &app.a,
            "SMin0001",
            "+12025550123",
            "+12025550100",
            "Thanks, see you at the appointment",
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A delivered one, to filter on.
    let sid = invoice["carrier_sid"].as_str().unwrap();
    assert_eq!(
        app.sms_status(&app.a, sid, "delivered").await.status(),
        StatusCode::OK
    );

    let list = |query: &str| {
        let path = format!("/v1/messages{query}");
        let app = &app;
        async move { app.get_ok(&path, &app.a.token).await }
    };
    let bodies = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_string())
            .collect()
    };

    let all = list("").await;
    assert_eq!(
        bodies(&all),
        vec![
            "Thanks, see you at the appointment",
            "Your invoice is ready",
            "Reminder: your appointment is tomorrow"
        ]
    );
    assert_eq!(all["next_cursor"], Value::Null);

    assert_eq!(
        bodies(&list("?q=appointment").await),
        vec![
            "Thanks, see you at the appointment",
            "Reminder: your appointment is tomorrow"
        ]
    );
    assert_eq!(
        bodies(&list("?q=APPOINTMENT%20tomorrow").await),
        vec!["Reminder: your appointment is tomorrow"],
        "every word must match, case-insensitively"
    );
    assert!(bodies(&list("?q=nonexistentword").await).is_empty());
    assert_eq!(
        bodies(&list("?status=delivered").await),
        vec!["Your invoice is ready"]
    );
    assert_eq!(
        bodies(&list("?direction=inbound").await),
        vec!["Thanks, see you at the appointment"]
    );
    let by_customer = list(&format!("?customer_id={}", ada["id"].as_str().unwrap())).await;
    assert_eq!(
        bodies(&by_customer),
        vec![
            "Thanks, see you at the appointment",
            "Reminder: your appointment is tomorrow"
        ],
        "outbound and inbound messages are linked to the customer by number"
    );
    assert_eq!(
        bodies(&list("?q=appointment&direction=outbound&status=queued").await),
        vec!["Reminder: your appointment is tomorrow"]
    );

    // Pagination visits every message once.
    let first = list("?limit=2").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = list(&format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(
        bodies(&second),
        vec!["Reminder: your appointment is tomorrow"]
    );
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(second["data"][0]["id"], reminder["id"]);
}

#[tokio::test]
async fn bad_list_filters_are_400s_naming_the_parameter() {
    let app = spawn_app().await;
    let (path, token) = ("/v1/messages", &app.a.token);
    let refused: [(&str, &[&str]); 4] = [
        ("status", &["lost", "accepted"]),
        ("direction", &["sideways"]),
        ("customer_id", &["not-a-uuid"]),
        ("limit", &["0", "abc"]),
    ];
    app.expect_refused_params(path, token, "invalid_query", &refused)
        .await;
    let cursor = [("cursor", &["!!!"][..])];
    app.expect_refused_params(path, token, "invalid_cursor", &cursor)
        .await;
    // An empty search is no search.
    app.get_ok("/v1/messages?q=", &app.a.token).await;
    let long = format!("/v1/messages?q={}", "x".repeat(201));
    for path in [long.as_str(), "/v1/messages?sort=asc"] {
        let response = app.get(path, &app.a.token).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
}

#[tokio::test]
async fn another_tenants_messages_are_not_found_and_never_listed() {
    let app = spawn_app().await;
    let theirs = app
        .send_text(&app.b.token, "+12025550123", "secret plans")
        .await;
    let id = theirs["id"].as_str().unwrap();
    app.expect_hidden_from(&app.a, &format!("/v1/messages/{id}"))
        .await;
    for query in ["", "?q=secret", "?status=queued", "?direction=outbound"] {
        let page = app
            .get_ok(&format!("/v1/messages{query}"), &app.a.token)
            .await;
        assert_eq!(page["data"], json!([]), "{query}");
    }
    let page = app.get_ok("/v1/messages", &app.b.token).await;
    assert_eq!(page["data"][0]["id"], theirs["id"]);
    // Tenant b sends from its own number.
    assert_eq!(theirs["from"], "+12025550150");
}

#[tokio::test]
async fn malformed_send_requests_are_4xx_json_and_write_nothing() {
    let app = spawn_app().await;
    let malformed = [
        "{",
        "not json",
        "{\"to\": \"+12025550123\", \"body\": \"x\"} trailing",
    ];
    app.expect_malformed_json("/v1/messages", &app.a.token, &malformed)
        .await;
    let invalid = [
        (json!({}), "to"),
        (json!({"to": 12025550123_i64, "body": "x"}), "to"),
        (json!({"to": "+12025550123", "body": 5}), "body"),
        (
            json!({"to": "+12025550123", "template_id": "nope"}),
            "template_id",
        ),
        (
            json!({"to": "+12025550123", "template_id": Uuid::now_v7(), "variables": {"a": 1}}),
            "variables.a",
        ),
        (
            json!({"to": "+12025550123", "template_id": Uuid::now_v7(), "variables": ["a"]}),
            "variables",
        ),
        (
            json!({"to": "+12025550123", "body": "x", "customer_id": 7}),
            "customer_id",
        ),
    ];
    app.expect_refused("/v1/messages", &app.a.token, "invalid_body", invalid)
        .await;
    let error = expect_error(
        app.post(
            "/v1/messages",
            &app.a.token,
            json!({"to": "+12025550123", "body": "x", "bdy": "typo"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("bdy"),
        "{error}"
    );
    let plain = app
        .post_raw(
            "/v1/messages",
            &app.a.token,
            Some("text/plain"),
            "to=+12025550123",
        )
        .await;
    let unsupported = "unsupported_media_type";
    expect_error(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE, unsupported).await;
    let bad_path = app.get("/v1/messages/not-a-uuid", &app.a.token).await;
    expect_error(bad_path, StatusCode::BAD_REQUEST, "invalid_path").await;
    let anonymous = app.client.post(app.url("/v1/messages"));
    let anonymous = anonymous
        .json(&json!({"to": "+12025550123", "body": "x"}))
        .send();
    expect_error(
        anonymous.await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(app.message_count(&app.a).await, 0);
}

#[tokio::test]
async fn a_created_message_is_published_on_the_tenant_channel() {
    let app = spawn_app().await;
    let mut events = app.events(&app.a).await;
    let message = app.send_text(&app.a.token, "+12025550123", "Evented").await;
    let envelope = events.next(std::time::Duration::from_secs(5)).await;
    assert_eq!(envelope["type"], "message.created");
    assert_eq!(envelope["data"], message);
}

#[tokio::test]
async fn sent_messages_are_counted_in_metrics() {
    let app = spawn_app().await;
    app.send_text(&app.a.token, "+12025550123", "Counted").await;
    let text = app.metrics().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("messages_created_total{direction=\"outbound\"}")),
        "{text}"
    );
}

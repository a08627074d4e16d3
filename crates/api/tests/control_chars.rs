//! NUL and other control characters, in every class of text field, are
//! refused at the edge with a 4xx naming the field, and nothing is written.
//! (PostgreSQL cannot store NUL in `text` or `jsonb`: before the check these
//! were 500s.) Line breaks and tabs stay allowed in free text.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_testkit::{TestApp, api::expect_field_error, expect_error, json_of, spawn_app};

async fn count(app: &TestApp, table: &str) -> i64 {
    app.count_rows(table).await
}

/// Asserts a 422 `validation_failed` naming `field`.
async fn expect_field_422(response: reqwest::Response, field: &str, what: &str) {
    expect_field_error(response, "validation_failed", field, what).await;
}

#[tokio::test]
async fn control_characters_in_names_and_emails_are_422s_and_nothing_is_written() {
    let app = spawn_app().await;
    let customers = [
        (json!({"name": "Ada\u{0}Lovelace"}), "name"),
        (json!({"name": "Ada\nLovelace"}), "name"),
        (json!({"name": "Ada\u{1b}[31m"}), "name"),
        (
            json!({"name": "Ada", "email": "ada\u{0}@example.com"}),
            "email",
        ),
        (json!({"name": "Ada", "company": "Acme\u{7f}"}), "company"),
        (json!({"name": "Ada", "tags": ["vip", "x\u{0}"]}), "tags[1]"),
        (
            json!({"name": "Ada", "phone": "+1202555\u{0}0123"}),
            "phone",
        ),
    ];
    app.expect_refused(
        "/v1/customers",
        &app.a.token,
        "validation_failed",
        customers,
    )
    .await;
    let templates = [
        (json!({"name": "Re\u{0}minder", "body": "Hi"}), "name"),
        (json!({"name": "Re\tminder", "body": "Hi"}), "name"),
    ];
    app.expect_refused(
        "/v1/templates",
        &app.a.token,
        "validation_failed",
        templates,
    )
    .await;
    // Login: a NUL in the email is a 422, not a 500 from the lookup.
    let response = app.login_response("agent\u{0}@alpha.test", "x").await;
    expect_field_422(response, "email", "login").await;

    assert_eq!(count(&app, "customers").await, 0, "bad names wrote nothing");
    assert_eq!(count(&app, "templates").await, 0, "bad names wrote nothing");
}

#[tokio::test]
async fn free_text_refuses_nul_but_keeps_line_breaks_and_tabs() {
    let app = spawn_app().await;
    let customer = app.customer_named(&app.a.token, "Ada Lovelace").await;
    let notes = format!("/v1/customers/{}/notes", customer["id"].as_str().unwrap());

    for bad in ["call\u{0}back", "bell\u{7}", "c1\u{85}control"] {
        for (path, body) in [
            (notes.as_str(), json!({"body": bad})),
            ("/v1/templates", json!({"name": "t", "body": bad})),
            ("/v1/messages", json!({"to": "+12025550123", "body": bad})),
        ] {
            let what = format!("{path} {bad:?}");
            expect_field_422(app.post(path, &app.a.token, body).await, "body", &what).await;
        }
    }
    assert_eq!(count(&app, "customer_notes").await, 0);
    assert_eq!(count(&app, "templates").await, 0);
    assert_eq!(app.message_count(&app.a).await, 0);
    assert!(
        app.queued_jobs("sms.send").await.is_empty(),
        "nothing was queued to send"
    );

    // Line breaks and tabs are ordinary in free text.
    let note = json!({"body": "line one\r\nline two\tend"});
    let note = app.create(&notes, &app.a.token, note).await;
    assert_eq!(note["body"], "line one\r\nline two\tend");
}

#[tokio::test]
async fn control_characters_in_metadata_keys_and_values_are_422s_and_the_row_is_unchanged() {
    let app = spawn_app().await;
    let metadata = [
        (json!({"k\u{0}": "v"}), "metadata"),
        (json!({"line\nbreak": "v"}), "metadata"),
        (json!({"k": "v\u{0}"}), "metadata.k"),
        (
            json!({"k": {"deep": ["ok", "\u{0}"]}}),
            "metadata.k.deep[1]",
        ),
    ]
    .map(|(metadata, field)| (json!({"name": "Ada", "metadata": metadata}), field));
    app.expect_refused("/v1/customers", &app.a.token, "validation_failed", metadata)
        .await;
    assert_eq!(count(&app, "customers").await, 0);

    let customer = app
        .create_customer(
            &app.a.token,
            json!({"name": "Ada", "metadata": {"note": "first\nsecond"}}),
        )
        .await;
    assert_eq!(
        customer["metadata"]["note"], "first\nsecond",
        "free text in values"
    );
    let path = format!("/v1/customers/{}", customer["id"].as_str().unwrap());
    let nul = json!({"metadata": {"note": "\u{0}"}});
    expect_field_422(
        app.patch(&path, &app.a.token, nul).await,
        "metadata.note",
        "patch",
    )
    .await;
    let after = app.get_ok(&path, &app.a.token).await;
    assert_eq!(after["metadata"], customer["metadata"]);
    assert_eq!(after["updated_at"], customer["updated_at"]);
}

#[tokio::test]
async fn control_characters_in_query_and_path_parameters_are_400s_naming_them() {
    let app = spawn_app().await;
    app.customer_named(&app.a.token, "Ada Lovelace").await;
    let refused: [(&str, &[&str]); 3] = [
        ("q", &["ada%00", "ada%0A"]),
        ("phone", &["%2B12025550123%00"]),
        ("cursor", &["%01"]),
    ];
    app.expect_refused_params("/v1/customers", &app.a.token, "invalid_query", &refused)
        .await;
    let response = app.get("/v1/customers/ada%00", &app.a.token).await;
    expect_field_error(response, "invalid_path", "id", "a NUL in the id").await;
}

#[tokio::test]
async fn an_inbound_sms_body_with_nul_is_kept_with_the_character_replaced() {
    let app = spawn_app().await;
    let (status, ack) = json_of(
        app.inbound_sms(
            &app.a,
            "SMnul1",
            "+12025550123",
            "+12025550101",
            "before\u{0}after\nnext line\u{7}",
        )
        .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a carrier is never answered 5xx: {ack}"
    );
    assert_eq!(ack["result"], "created");
    let body: String = sqlx::query_scalar("SELECT body FROM messages WHERE tenant_id = $1")
        .bind(app.a.id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(body, "before\u{FFFD}after\nnext line\u{FFFD}");
}

#[tokio::test]
async fn an_inbound_sms_with_a_control_character_outside_the_body_is_a_400_and_nothing_is_written()
{
    let app = spawn_app().await;
    for (sid, from) in [
        ("SMnul\u{0}2", "+12025550123"),
        ("SMnul3", "+1202555\u{0}0123"),
    ] {
        let response = app
            .inbound_sms(&app.a, sid, from, "+12025550101", "hello")
            .await;
        let error: Value =
            expect_error(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
        assert!(
            error["field"] == "MessageSid" || error["field"] == "From",
            "{error}"
        );
    }
    assert_eq!(app.message_count(&app.a).await, 0);
}

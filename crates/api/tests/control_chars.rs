//! NUL and other control characters, in every class of text field, are
//! refused at the edge with a 4xx naming the field, and nothing is written.
//! (PostgreSQL cannot store NUL in `text` or `jsonb`: before the check these
//! were 500s.) Line breaks and tabs stay allowed in free text.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{TestApp, expect_error, json_of, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Asserts a 422 `validation_failed` naming `field`.
async fn expect_field_422(response: reqwest::Response, field: &str, what: &str) {
    let (status, error) = json_of(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {error}");
    assert_eq!(
        error["error"]["code"], "validation_failed",
        "{what}: {error}"
    );
    assert_eq!(error["error"]["field"], field, "{what}: {error}");
    assert!(error["error"]["request_id"].is_string(), "{what}: {error}");
}

#[tokio::test]
async fn control_characters_in_names_and_emails_are_422s_and_nothing_is_written() {
    let app = spawn_app().await;
    for (body, field) in [
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
    ] {
        let what = body.to_string();
        expect_field_422(
            app.post("/v1/customers", &app.a.token, body).await,
            field,
            &what,
        )
        .await;
    }
    for (body, field) in [
        (json!({"name": "Re\u{0}minder", "body": "Hi"}), "name"),
        (json!({"name": "Re\tminder", "body": "Hi"}), "name"),
    ] {
        let what = body.to_string();
        expect_field_422(
            app.post("/v1/templates", &app.a.token, body).await,
            field,
            &what,
        )
        .await;
    }
    // Login: a NUL in the email is a 422, not a 500 from the lookup.
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "agent\u{0}@alpha.test", "password": "x"}))
        .send()
        .await
        .unwrap();
    expect_field_422(response, "email", "login").await;

    assert_eq!(count(&app, "customers").await, 0, "bad names wrote nothing");
    assert_eq!(count(&app, "templates").await, 0, "bad names wrote nothing");
}

#[tokio::test]
async fn free_text_refuses_nul_but_keeps_line_breaks_and_tabs() {
    let app = spawn_app().await;
    let customer = app
        .create_customer(&app.a.token, json!({"name": "Ada Lovelace"}))
        .await;
    let notes = format!("/v1/customers/{}/notes", customer["id"].as_str().unwrap());

    for bad in ["call\u{0}back", "bell\u{7}", "c1\u{85}control"] {
        let what = format!("note {bad:?}");
        expect_field_422(
            app.post(&notes, &app.a.token, json!({"body": bad})).await,
            "body",
            &what,
        )
        .await;
        let what = format!("template {bad:?}");
        expect_field_422(
            app.post(
                "/v1/templates",
                &app.a.token,
                json!({"name": "t", "body": bad}),
            )
            .await,
            "body",
            &what,
        )
        .await;
        let what = format!("message {bad:?}");
        expect_field_422(
            app.post(
                "/v1/messages",
                &app.a.token,
                json!({"to": "+12025550123", "body": bad}),
            )
            .await,
            "body",
            &what,
        )
        .await;
    }
    assert_eq!(count(&app, "customer_notes").await, 0);
    assert_eq!(count(&app, "templates").await, 0);
    assert_eq!(app.message_count(&app.a).await, 0);
    assert!(
        app.queued_jobs("sms.send").await.is_empty(),
        "nothing was queued to send"
    );

    // Line breaks and tabs are ordinary in free text.
    let (status, note) = json_of(
        app.post(
            &notes,
            &app.a.token,
            json!({"body": "line one\r\nline two\tend"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["body"], "line one\r\nline two\tend");
}

#[tokio::test]
async fn control_characters_in_metadata_keys_and_values_are_422s_and_the_row_is_unchanged() {
    let app = spawn_app().await;
    for (metadata, field) in [
        (json!({"k\u{0}": "v"}), "metadata"),
        (json!({"line\nbreak": "v"}), "metadata"),
        (json!({"k": "v\u{0}"}), "metadata.k"),
        (
            json!({"k": {"deep": ["ok", "\u{0}"]}}),
            "metadata.k.deep[1]",
        ),
    ] {
        let what = metadata.to_string();
        expect_field_422(
            app.post(
                "/v1/customers",
                &app.a.token,
                json!({"name": "Ada", "metadata": metadata}),
            )
            .await,
            field,
            &what,
        )
        .await;
    }
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
    expect_field_422(
        app.patch(&path, &app.a.token, json!({"metadata": {"note": "\u{0}"}}))
            .await,
        "metadata.note",
        "patch",
    )
    .await;
    let (_, after) = json_of(app.get(&path, &app.a.token).await).await;
    assert_eq!(after["metadata"], customer["metadata"]);
    assert_eq!(after["updated_at"], customer["updated_at"]);
}

#[tokio::test]
async fn control_characters_in_query_and_path_parameters_are_400s_naming_them() {
    let app = spawn_app().await;
    app.create_customer(&app.a.token, json!({"name": "Ada Lovelace"}))
        .await;
    for (query, field) in [
        ("q=ada%00", "q"),
        ("q=ada%0A", "q"),
        ("phone=%2B12025550123%00", "phone"),
        ("cursor=%01", "cursor"),
    ] {
        let response = app
            .get(&format!("/v1/customers?{query}"), &app.a.token)
            .await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
        assert_eq!(error["field"], field, "{query}: {error}");
    }
    let response = app.get("/v1/customers/ada%00", &app.a.token).await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    assert_eq!(error["field"], "id", "{error}");
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

//! Every class of bad input gets a 4xx in the documented JSON shape, and
//! nothing is written.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{expect_error, json_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn bad_json_is_a_400() {
    let app = spawn_app().await;
    for body in [
        "{",
        "{\"name\": }",
        "not json",
        "{\"name\": \"x\"} trailing",
    ] {
        let response = app
            .request(Method::POST, "/v1/customers", &app.a.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    }
    assert_no_customers(&app).await;
}

#[tokio::test]
async fn missing_fields_wrong_types_and_unknown_fields_are_422s_naming_the_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "x", "tags": "vip"}), "tags"),
        (json!({"name": "x", "tags": ["ok", 3]}), "tags[1]"),
        (json!({"name": "x", "metadata": [1]}), "metadata"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "email": "not-an-email"}), "email"),
    ] {
        let response = app.post("/v1/customers", &app.a.token, body.clone()).await;
        let (status, error) = json_of(response).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {error}"
        );
        assert_eq!(error["error"]["field"], field, "{body} -> {error}");
    }
    let response = app
        .post(
            "/v1/customers",
            &app.a.token,
            json!({"name": "x", "nmae": "typo"}),
        )
        .await;
    let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(
        error["message"].as_str().unwrap().contains("nmae"),
        "{error}"
    );
    assert_no_customers(&app).await;
}

#[tokio::test]
async fn a_bad_phone_number_is_a_422_on_writes_and_lookups() {
    let app = spawn_app().await;
    for phone in ["hello", "123", "+1 000 000 0000", "+999 1234"] {
        let response = app
            .post(
                "/v1/customers",
                &app.a.token,
                json!({"name": "x", "phone": phone}),
            )
            .await;
        let error = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error["field"], "phone");
        let response = app
            .request(Method::GET, "/v1/customers", &app.a.token)
            .query(&[("phone", phone)])
            .send()
            .await
            .unwrap();
        let error = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error["field"], "phone");
    }
    assert_no_customers(&app).await;
}

#[tokio::test]
async fn an_oversize_body_is_a_413() {
    let app = spawn_app_small_bodies().await;
    let response = app
        .post(
            "/v1/customers",
            &app.a.token,
            json!({"name": "x", "metadata": {"blob": "a".repeat(4096)}}),
        )
        .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_no_customers(&app).await;
}

async fn spawn_app_small_bodies() -> common::TestApp {
    common::spawn_app_with(|s| s.max_body_bytes = 1024).await
}

#[tokio::test]
async fn another_content_type_is_a_415() {
    let app = spawn_app().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .request(Method::POST, "/v1/customers", &app.a.token)
            .body("{\"name\": \"x\"}");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        expect_error(
            request.send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    // A charset parameter is fine.
    let response = app
        .request(Method::POST, "/v1/customers", &app.a.token)
        .header("content-type", "application/json; charset=utf-8")
        .body("{\"name\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_bad_uuid_in_the_path_is_a_400() {
    let app = spawn_app().await;
    for path in [
        "/v1/customers/not-a-uuid",
        "/v1/customers/123/timeline",
        "/v1/customers/%00/notes",
    ] {
        let response = if path.ends_with("notes") {
            app.post(path, &app.a.token, json!({"body": "x"})).await
        } else {
            app.get(path, &app.a.token).await
        };
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
}

#[tokio::test]
async fn unknown_or_unparseable_query_values_are_400s_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, field) in [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=AAAA", "cursor"),
    ] {
        let response = app
            .get(&format!("/v1/customers?{query}"), &app.a.token)
            .await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let response = app.get("/v1/customers?sort=name", &app.a.token).await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert!(
        error["message"].as_str().unwrap().contains("sort"),
        "{error}"
    );
    let response = app
        .get("/v1/customers?q=".to_string().as_str(), &app.a.token)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "an empty search lists everything"
    );
    let long = "x".repeat(101);
    let response = app
        .get(&format!("/v1/customers?q={long}"), &app.a.token)
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
}

#[tokio::test]
async fn a_bad_idempotency_key_is_a_400() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/v1/customers", &app.a.token)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    assert_no_customers(&app).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    expect_error(
        app.get("/v1/nope", &app.a.token).await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
    let response = app
        .request(Method::PUT, "/v1/customers", &app.a.token)
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_quoted_in_errors() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/me"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let error = expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(error["request_id"], "trace-abc-123");
}

async fn assert_no_customers(app: &common::TestApp) {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "bad input wrote nothing");
}

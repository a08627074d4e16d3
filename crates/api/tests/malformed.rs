//! Every class of bad input gets a 4xx in the documented JSON shape, and
//! nothing is written.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_testkit::{
    TestApp,
    api::{expect_code, expect_field_error},
    expect_error, openapi_json, operations, spawn_app,
};

#[tokio::test]
async fn bad_json_is_a_400() {
    let app = spawn_app().await;
    let bodies = [
        "{",
        "{\"name\": }",
        "not json",
        "{\"name\": \"x\"} trailing",
    ];
    app.expect_malformed_json("/v1/customers", &app.a.token, &bodies)
        .await;
    assert_no_customers(&app).await;
}

#[tokio::test]
async fn missing_fields_wrong_types_and_unknown_fields_are_422s_naming_the_field() {
    let app = spawn_app().await;
    let unreadable = [
        (json!({}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": "x", "tags": "vip"}), "tags"),
        (json!({"name": "x", "tags": ["ok", 3]}), "tags[1]"),
    ];
    app.expect_refused("/v1/customers", &app.a.token, "invalid_body", unreadable)
        .await;
    let invalid = [
        (json!({"name": "x", "metadata": [1]}), "metadata"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "email": "not-an-email"}), "email"),
    ];
    app.expect_refused("/v1/customers", &app.a.token, "validation_failed", invalid)
        .await;
    let typo = json!({"name": "x", "nmae": "typo"});
    let response = app.post("/v1/customers", &app.a.token, typo).await;
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
        let write = json!({"name": "x", "phone": phone});
        let write = app.post("/v1/customers", &app.a.token, write).await;
        expect_field_error(write, "validation_failed", "phone", phone).await;
        let lookup = [("phone", phone)];
        let lookup = app.get_query("/v1/customers", &app.a.token, &lookup).await;
        expect_field_error(lookup, "validation_failed", "phone", phone).await;
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

async fn spawn_app_small_bodies() -> TestApp {
    switchboard_testkit::spawn_app_with(|s| s.max_body_bytes = 1024).await
}

#[tokio::test]
async fn another_content_type_is_a_415() {
    let app = spawn_app().await;
    let body = "{\"name\": \"x\"}";
    let post = |content_type| app.post_raw("/v1/customers", &app.a.token, content_type, body);
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let what = format!("{content_type:?}");
        expect_code(post(content_type).await, "unsupported_media_type", &what).await;
    }
    // A charset parameter is fine.
    let response = post(Some("application/json; charset=utf-8")).await;
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
    let (path, token) = ("/v1/customers", &app.a.token);
    let limits = [("limit", &["abc", "-1", "0", "100000"][..])];
    app.expect_refused_params(path, token, "invalid_query", &limits)
        .await;
    let cursors = [("cursor", &["%%%", "AAAA"][..])];
    app.expect_refused_params(path, token, "invalid_cursor", &cursors)
        .await;
    let response = app.get("/v1/customers?sort=name", &app.a.token).await;
    let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    assert!(
        error["message"].as_str().unwrap().contains("sort"),
        "{error}"
    );
    let response = app.get("/v1/customers?q=", &app.a.token).await;
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

/// Every list the contract documents (an operation with a `cursor`) takes
/// `limit` and `cursor` beside its own filters, and refuses a page it cannot
/// give or a parameter it does not know with a 400 naming it.
#[tokio::test]
async fn every_list_takes_limit_and_cursor_and_refuses_a_bad_page_naming_it() {
    let app = spawn_app().await;
    let doc = openapi_json();
    let lists: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(method, _, op)| {
            let parameters = op["parameters"].as_array();
            *method == "get" && parameters.is_some_and(|p| p.iter().any(|p| p["name"] == "cursor"))
        })
        // Any id: the query is refused before the record is looked up.
        .map(|(_, path, _)| path.replace("{id}", &uuid::Uuid::now_v7().to_string()))
        .collect();
    assert!(lists.len() >= 9, "lists found in the document: {lists:?}");
    let token = &app.a.token;
    for path in &lists {
        let largest = app.get(&format!("{path}?limit=200"), token).await;
        let found = [StatusCode::OK, StatusCode::NOT_FOUND];
        assert!(found.contains(&largest.status()), "GET {path}?limit=200");
        let limits = [("limit", &["abc", "0", "201"][..])];
        app.expect_refused_params(path, token, "invalid_query", &limits)
            .await;
        let cursors = [("cursor", &["%%%", "AAAA"][..])];
        app.expect_refused_params(path, token, "invalid_cursor", &cursors)
            .await;
        let unknown = app.get(&format!("{path}?limit=5&sort=name"), token).await;
        let error = expect_error(unknown, StatusCode::BAD_REQUEST, "invalid_query").await;
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("sort"), "GET {path}: {error}");
    }
}

#[tokio::test]
async fn a_bad_idempotency_key_is_a_400() {
    let app = spawn_app().await;
    let key = "x".repeat(300);
    let response = app
        .post_idempotent("/v1/customers", &app.a.token, &key, json!({"name": "x"}))
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    assert_no_customers(&app).await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let response = app.get("/v1/nope", &app.a.token).await;
    expect_error(response, StatusCode::NOT_FOUND, "route_not_found").await;
    let put = app.request(Method::PUT, "/v1/customers", &app.a.token);
    let response = put.send().await.unwrap();
    let code = "method_not_allowed";
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, code).await;
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_quoted_in_errors() {
    let app = spawn_app().await;
    let request = app.client.get(app.url("/v1/me"));
    let response = request.header("x-request-id", "trace-abc-123").send().await;
    let response = response.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
    let error = expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(error["request_id"], "trace-abc-123");
}

async fn assert_no_customers(app: &TestApp) {
    let count = app.count_rows("customers").await;
    assert_eq!(count, 0, "bad input wrote nothing");
}

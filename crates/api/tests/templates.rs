//! SMS templates CRUD against a real server and PostgreSQL.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard_testkit::{
    api::{expect_code, expect_field_error, expect_not_found},
    expect_error, json_of, spawn_app,
};
use uuid::Uuid;

#[tokio::test]
async fn a_template_can_be_created_read_patched_and_deleted() {
    let app = spawn_app().await;
    let created = app
        .create_template(
            &app.a.token,
            "  Reminder ",
            "Hi {{ first_name }}, see you {{date}} ({{date}}).",
        )
        .await;
    assert_eq!(created["name"], "Reminder");
    assert_eq!(
        created["body"],
        "Hi {{ first_name }}, see you {{date}} ({{date}})."
    );
    assert_eq!(created["placeholders"], json!(["date", "first_name"]));
    assert_eq!(created["tenant_id"], app.a.id.to_string());
    let path = format!("/v1/templates/{}", created["id"].as_str().unwrap());

    assert_eq!(app.get_ok(&path, &app.a.token).await, created);

    let rename = json!({"name": "Reminder v2"});
    let (status, renamed) = json_of(app.patch(&path, &app.a.token, rename).await).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Reminder v2");
    assert_eq!(
        renamed["body"], created["body"],
        "absent fields are unchanged"
    );

    let rewrite = json!({"body": "Bye {{name}}"});
    let (status, rewritten) = json_of(app.patch(&path, &app.a.token, rewrite).await).await;
    assert_eq!(status, StatusCode::OK, "{rewritten}");
    assert_eq!(rewritten["name"], "Reminder v2");
    assert_eq!(rewritten["placeholders"], json!(["name"]));

    let deleted = app.delete(&path, &app.a.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_not_found(app.get(&path, &app.a.token).await).await;
    expect_not_found(app.delete(&path, &app.a.token).await).await;
    expect_not_found(app.patch(&path, &app.a.token, json!({"name": "x"})).await).await;
}

#[tokio::test]
async fn templates_are_listed_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create_template(&app.a.token, &format!("t{i}"), "Hello")
            .await;
    }
    let templates = app.walk_pages("/v1/templates", &app.a.token, 2).await;
    let names: Vec<&str> = templates
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["t4", "t3", "t2", "t1", "t0"]);
    for (query, code) in [
        ("?limit=500", "invalid_query"),
        ("?cursor=zz", "invalid_cursor"),
        ("?page=2", "invalid_query"),
    ] {
        let response = app
            .get(&format!("/v1/templates{query}"), &app.a.token)
            .await;
        expect_error(response, StatusCode::BAD_REQUEST, code).await;
    }
}

#[tokio::test]
async fn template_names_are_unique_per_tenant() {
    let app = spawn_app().await;
    app.create_template(&app.a.token, "Welcome", "Hi").await;
    let again = json!({"name": " Welcome ", "body": "Hello"});
    let response = app.post("/v1/templates", &app.a.token, again).await;
    let error = expect_error(response, StatusCode::CONFLICT, "name_taken").await;
    assert_eq!(error["field"], "name");
    // Another tenant may use the name.
    app.create_template(&app.b.token, "Welcome", "Hi").await;
    // A rename onto a taken name is refused too.
    let other = app.create_template(&app.a.token, "Other", "Hi").await;
    let other = format!("/v1/templates/{}", other["id"].as_str().unwrap());
    let response = app
        .patch(&other, &app.a.token, json!({"name": "Welcome"}))
        .await;
    expect_error(response, StatusCode::CONFLICT, "name_taken").await;
}

#[tokio::test]
async fn a_body_with_a_malformed_placeholder_or_bad_length_is_a_422() {
    let app = spawn_app().await;
    let invalid = [
        (json!({"name": "x", "body": "Hi {{name"}), "body"),
        (json!({"name": "x", "body": "Hi {{}}"}), "body"),
        (json!({"name": "x", "body": "Hi {{first name}}"}), "body"),
        (json!({"name": "x", "body": ""}), "body"),
        (json!({"name": "x", "body": "x".repeat(1601)}), "body"),
        (json!({"name": "", "body": "Hi"}), "name"),
        (json!({"name": "n".repeat(201), "body": "Hi"}), "name"),
    ];
    app.expect_refused("/v1/templates", &app.a.token, "validation_failed", invalid)
        .await;
    let template = app.create_template(&app.a.token, "ok", "Hi {{name}}").await;
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let response = app
        .patch(&path, &app.a.token, json!({"body": "Hi {{name"}))
        .await;
    expect_field_error(response, "validation_failed", "body", "PATCH a bad body").await;
    let unchanged = app.get_ok(&path, &app.a.token).await;
    assert_eq!(unchanged["body"], "Hi {{name}}");
    let page = app.get_ok("/v1/templates", &app.a.token).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_template_used_by_a_campaign_cannot_be_deleted() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let campaign = json!({"name": "Spring", "template_id": template["id"], "recipients": {"phone_numbers": ["+12025550123"]}});
    app.create("/v1/campaigns", &app.a.token, campaign).await;
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let response = app.delete(&path, &app.a.token).await;
    expect_error(response, StatusCode::CONFLICT, "template_in_use").await;
    assert_eq!(app.get(&path, &app.a.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_templates_are_not_found_and_never_listed() {
    let app = spawn_app().await;
    let theirs = app
        .create_template(&app.b.token, "theirs", "Secret {{x}}")
        .await;
    let path = format!("/v1/templates/{}", theirs["id"].as_str().unwrap());
    app.expect_hidden_from(&app.a, &path).await;
    let mine_now = json!({"body": "Mine now"});
    expect_not_found(app.patch(&path, &app.a.token, mine_now).await).await;
    expect_not_found(app.delete(&path, &app.a.token).await).await;
    let page = app.get_ok("/v1/templates", &app.a.token).await;
    assert_eq!(page["data"], json!([]));
    assert_eq!(app.get_ok(&path, &app.b.token).await, theirs, "untouched");
}

#[tokio::test]
async fn malformed_template_requests_are_4xx_json() {
    let app = spawn_app().await;
    app.expect_malformed_json("/v1/templates", &app.a.token, &["{\"name\": "])
        .await;
    let unreadable = [
        (json!({"name": "x"}), "body"),
        (json!({"name": 1, "body": "x"}), "name"),
        (json!({"name": "x", "body": ["x"]}), "body"),
        (json!({"name": "x", "body": "x", "lang": "en"}), "lang"),
    ];
    app.expect_refused("/v1/templates", &app.a.token, "invalid_body", unreadable)
        .await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let request = app.request(method.clone(), "/v1/templates/123", &app.a.token);
        let response = request.json(&json!({})).send().await.unwrap();
        expect_code(response, "invalid_path", method.as_str()).await;
    }
    let path = format!("/v1/templates/{}", Uuid::now_v7());
    let request = app
        .request(Method::PATCH, &path, &app.a.token)
        .body("name=x");
    let response = request.send().await.unwrap();
    expect_code(response, "unsupported_media_type", "PATCH name=x").await;
    let page = app.get_ok("/v1/templates", &app.a.token).await;
    assert_eq!(page["data"], json!([]));
}

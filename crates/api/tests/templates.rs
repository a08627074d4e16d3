//! SMS templates CRUD against a real server and PostgreSQL.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{expect_error, json_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
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

    let (status, fetched) = json_of(app.get(&path, &app.a.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    let (status, renamed) = json_of(
        app.patch(&path, &app.a.token, json!({"name": "Reminder v2"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Reminder v2");
    assert_eq!(
        renamed["body"], created["body"],
        "absent fields are unchanged"
    );

    let (status, rewritten) = json_of(
        app.patch(&path, &app.a.token, json!({"body": "Bye {{name}}"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rewritten}");
    assert_eq!(rewritten["name"], "Reminder v2");
    assert_eq!(rewritten["placeholders"], json!(["name"]));

    assert_eq!(
        app.delete(&path, &app.a.token).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        app.get(&path, &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete(&path, &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.patch(&path, &app.a.token, json!({"name": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn templates_are_listed_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create_template(&app.a.token, &format!("t{i}"), "Hello")
            .await;
    }
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/templates?limit=2&cursor={c}"),
            None => "/v1/templates?limit=2".to_string(),
        };
        let (status, page) = json_of(app.get(&path, &app.a.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for t in page["data"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(names, vec!["t4", "t3", "t2", "t1", "t0"]);
    for (query, code) in [
        ("?limit=500", "invalid_query"),
        ("?cursor=zz", "invalid_cursor"),
        ("?page=2", "invalid_query"),
    ] {
        expect_error(
            app.get(&format!("/v1/templates{query}"), &app.a.token)
                .await,
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn template_names_are_unique_per_tenant() {
    let app = spawn_app().await;
    app.create_template(&app.a.token, "Welcome", "Hi").await;
    let error = expect_error(
        app.post(
            "/v1/templates",
            &app.a.token,
            json!({"name": " Welcome ", "body": "Hello"}),
        )
        .await,
        StatusCode::CONFLICT,
        "name_taken",
    )
    .await;
    assert_eq!(error["field"], "name");
    // Another tenant may use the name.
    app.create_template(&app.b.token, "Welcome", "Hi").await;
    // A rename onto a taken name is refused too.
    let other = app.create_template(&app.a.token, "Other", "Hi").await;
    expect_error(
        app.patch(
            &format!("/v1/templates/{}", other["id"].as_str().unwrap()),
            &app.a.token,
            json!({"name": "Welcome"}),
        )
        .await,
        StatusCode::CONFLICT,
        "name_taken",
    )
    .await;
}

#[tokio::test]
async fn a_body_with_a_malformed_placeholder_or_bad_length_is_a_422() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": "x", "body": "Hi {{name"}), "body"),
        (json!({"name": "x", "body": "Hi {{}}"}), "body"),
        (json!({"name": "x", "body": "Hi {{first name}}"}), "body"),
        (json!({"name": "x", "body": ""}), "body"),
        (json!({"name": "x", "body": "x".repeat(1601)}), "body"),
        (json!({"name": "", "body": "Hi"}), "name"),
        (json!({"name": "n".repeat(201), "body": "Hi"}), "name"),
    ] {
        let error = expect_error(
            app.post("/v1/templates", &app.a.token, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error["field"], field, "{body}");
    }
    let template = app.create_template(&app.a.token, "ok", "Hi {{name}}").await;
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    let error = expect_error(
        app.patch(&path, &app.a.token, json!({"body": "Hi {{name"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error["field"], "body");
    let (_, unchanged) = json_of(app.get(&path, &app.a.token).await).await;
    assert_eq!(unchanged["body"], "Hi {{name}}");
    let (_, page) = json_of(app.get("/v1/templates", &app.a.token).await).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_template_used_by_a_campaign_cannot_be_deleted() {
    let app = spawn_app().await;
    let template = app.create_template(&app.a.token, "promo", "Sale!").await;
    let (status, campaign) = json_of(
        app.post(
            "/v1/campaigns",
            &app.a.token,
            json!({"name": "Spring", "template_id": template["id"], "recipients": {"phone_numbers": ["+12025550123"]}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let path = format!("/v1/templates/{}", template["id"].as_str().unwrap());
    expect_error(
        app.delete(&path, &app.a.token).await,
        StatusCode::CONFLICT,
        "template_in_use",
    )
    .await;
    assert_eq!(app.get(&path, &app.a.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn another_tenants_templates_are_not_found_and_never_listed() {
    let app = spawn_app().await;
    let theirs = app
        .create_template(&app.b.token, "theirs", "Secret {{x}}")
        .await;
    let path = format!("/v1/templates/{}", theirs["id"].as_str().unwrap());
    expect_error(
        app.get(&path, &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.patch(&path, &app.a.token, json!({"body": "Mine now"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete(&path, &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (_, page) = json_of(app.get("/v1/templates", &app.a.token).await).await;
    assert_eq!(page["data"], json!([]));
    let (_, still) = json_of(app.get(&path, &app.b.token).await).await;
    assert_eq!(still, theirs, "untouched");
}

#[tokio::test]
async fn malformed_template_requests_are_4xx_json() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/v1/templates", &app.a.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    for (body, field) in [
        (json!({"name": "x"}), Value::from("body")),
        (json!({"name": 1, "body": "x"}), Value::from("name")),
        (json!({"name": "x", "body": ["x"]}), Value::from("body")),
        (
            json!({"name": "x", "body": "x", "lang": "en"}),
            Value::from("lang"),
        ),
    ] {
        let error = expect_error(
            app.post("/v1/templates", &app.a.token, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        )
        .await;
        assert_eq!(error["field"], field, "{body}");
    }
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let response = app
            .request(method.clone(), "/v1/templates/123", &app.a.token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
    let response = app
        .request(
            Method::PATCH,
            &format!("/v1/templates/{}", Uuid::now_v7()),
            &app.a.token,
        )
        .body("name=x")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let (_, page) = json_of(app.get("/v1/templates", &app.a.token).await).await;
    assert_eq!(page["data"], json!([]));
}

//! Tenant webhook endpoints (`/v1/webhooks`): admin-only, validated,
//! secret shown once, isolated per tenant.

#![allow(clippy::unwrap_used)]

mod common;

use common::{PASSWORD, expect_error, json_of, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn admins_register_list_and_remove_endpoints() {
    let app = spawn_app().await;
    let admin = app.login(&app.a.admin_email.clone(), PASSWORD).await;
    let (status, created) = json_of(
        app.post(
            "/v1/webhooks",
            &admin,
            json!({"url": "https://crm.example.com/hooks", "event_types": ["call.status", "call.status", "message.status"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 38,
        "{secret}"
    );
    assert_eq!(
        created["event_types"],
        json!(["call.status", "message.status"])
    );
    assert_eq!(created["active"], true);

    let (status, list) = json_of(app.get("/v1/webhooks", &admin).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        list[0].get("secret").is_none(),
        "the secret is shown only once"
    );

    // Another tenant's admin can neither see nor remove it.
    let other = app.login(&app.b.admin_email.clone(), PASSWORD).await;
    let (_, theirs) = json_of(app.get("/v1/webhooks", &other).await).await;
    assert_eq!(theirs, json!([]));
    let id = created["id"].as_str().unwrap();
    expect_error(
        app.delete(&format!("/v1/webhooks/{id}"), &other).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let response = app.delete(&format!("/v1/webhooks/{id}"), &admin).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, list) = json_of(app.get("/v1/webhooks", &admin).await).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn endpoints_need_an_admin_and_valid_input() {
    let app = spawn_app().await;
    expect_error(
        app.post(
            "/v1/webhooks",
            &app.a.token,
            json!({"url": "https://x.example"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let admin = app.login(&app.a.admin_email.clone(), PASSWORD).await;
    for (body, field) in [
        (json!({"url": "ftp://x.example/h"}), "url"),
        (json!({"url": "https://"}), "url"),
        (json!({"url": "https://x.example/a b"}), "url"),
        (
            json!({"url": "https://x.example", "event_types": ["call.nope"]}),
            "event_types",
        ),
    ] {
        let error = expect_error(
            app.post("/v1/webhooks", &admin, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error["field"], field, "{body}");
    }
    expect_error(
        app.post(
            "/v1/webhooks",
            &admin,
            json!({"url": "https://x.example", "secret": "mine"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM tenant_webhooks")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing half-written");
}

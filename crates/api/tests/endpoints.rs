//! Tenant webhook endpoints (`/v1/webhooks`): admin-only, validated,
//! secret shown once, isolated per tenant.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::json;
use switchboard_testkit::{PASSWORD, api::expect_not_found, expect_error, spawn_app};

#[tokio::test]
async fn admins_register_list_and_remove_endpoints() {
    let app = spawn_app().await;
    let admin = app.login(&app.a.admin_email.clone(), PASSWORD).await;
    let endpoint = json!({"url": "https://crm.example.com/hooks", "event_types": ["call.status", "call.status", "message.status"]});
    let created = app.create("/v1/webhooks", &admin, endpoint).await;
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

    let list = app.get_ok("/v1/webhooks", &admin).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        list[0].get("secret").is_none(),
        "the secret is shown only once"
    );

    // Another tenant's admin can neither see nor remove it.
    let other = app.login(&app.b.admin_email.clone(), PASSWORD).await;
    assert_eq!(app.get_ok("/v1/webhooks", &other).await, json!([]));
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    expect_not_found(app.delete(&path, &other).await).await;

    let response = app.delete(&path, &admin).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_ok("/v1/webhooks", &admin).await, json!([]));
}

#[tokio::test]
async fn endpoints_need_an_admin_and_valid_input() {
    let app = spawn_app().await;
    let endpoint = json!({"url": "https://x.example"});
    let response = app.post("/v1/webhooks", &app.a.token, endpoint).await;
    expect_error(response, StatusCode::FORBIDDEN, "forbidden").await;
    let admin = app.login(&app.a.admin_email.clone(), PASSWORD).await;
    let invalid = [
        (json!({"url": "ftp://x.example/h"}), "url"),
        (json!({"url": "https://"}), "url"),
        (json!({"url": "https://x.example/a b"}), "url"),
        (
            json!({"url": "https://x.example", "event_types": ["call.nope"]}),
            "event_types",
        ),
    ];
    app.expect_refused("/v1/webhooks", &admin, "validation_failed", invalid)
        .await;
    let with_secret = json!({"url": "https://x.example", "secret": "mine"});
    let response = app.post("/v1/webhooks", &admin, with_secret).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    let count = app.count_rows("tenant_webhooks").await;
    assert_eq!(count, 0, "nothing half-written");
}

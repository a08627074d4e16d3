//! Login, logout, tokens and API keys against a real server.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use chrono::Utc;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use switchboard_core::auth::{Claims, Role, TokenKeys};
use switchboard_testkit::{PASSWORD, TestApp, api::expect_code, expect_error, json_of, spawn_app};
use uuid::Uuid;

async fn logout(app: &TestApp, token: &str) -> Response {
    app.request(Method::POST, "/v1/auth/logout", token)
        .send()
        .await
        .unwrap()
}

/// Asserts `token` is refused by `/v1/me` with 401, and returns the error.
async fn refused(app: &TestApp, token: &str, what: &str) -> serde_json::Value {
    expect_code(app.get("/v1/me", token).await, "unauthorized", what).await
}

#[tokio::test]
async fn login_returns_a_bearer_token_and_the_agent() {
    let app = spawn_app().await;
    let email = app.a.agent_email.to_uppercase();
    let (status, body) = json_of(app.login_response(&email, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], app.settings.jwt_ttl.as_secs());
    assert_eq!(body["agent"]["id"], app.a.agent_id.to_string());
    assert_eq!(body["agent"]["email"], app.a.agent_email);
    assert_eq!(body["agent"]["role"], "agent");
    assert_eq!(body["agent"]["tenant_id"], app.a.id.to_string());

    let token = body["access_token"].as_str().unwrap();
    let (status, me) = json_of(app.get("/v1/me", token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["principal"], "agent");
    assert_eq!(me["agent"]["id"], app.a.agent_id.to_string());
    assert_eq!(me["tenant"]["slug"], "alpha");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_identically() {
    let app = spawn_app().await;
    let mut errors = Vec::new();
    for (email, password) in [
        (app.a.agent_email.as_str(), "wrong password"),
        ("nobody@alpha.test", PASSWORD),
        ("", PASSWORD),
        (app.a.agent_email.as_str(), ""),
    ] {
        let response = app.login_response(email, password).await;
        let mut error =
            expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        error.as_object_mut().unwrap().remove("request_id");
        errors.push(error);
    }
    // Nothing in the answer tells which of email or password was wrong.
    assert!(errors.windows(2).all(|w| w[0] == w[1]), "{errors:?}");
}

#[tokio::test]
async fn login_without_a_password_field_is_a_422_naming_it() {
    let app = spawn_app().await;
    let body = json!({"email": app.a.agent_email});
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&body)
        .send()
        .await;
    let response = response.unwrap();
    let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert_eq!(error["field"], "password");
}

#[tokio::test]
async fn logout_revokes_the_token_but_not_other_sessions() {
    let app = spawn_app().await;
    let first = app.login(&app.a.agent_email, PASSWORD).await;
    let second = app.login(&app.a.agent_email, PASSWORD).await;
    assert_eq!(logout(&app, &first).await.status(), StatusCode::NO_CONTENT);

    let error = refused(&app, &first, "a logged-out token").await;
    assert!(error["message"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        logout(&app, &first).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/v1/me", &second).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn expired_malformed_foreign_and_missing_tokens_are_refused() {
    let app = spawn_app().await;
    let keys = TokenKeys::new(&app.settings);
    let now = Utc::now().timestamp();
    let (expired, _) = keys.encode(Claims {
        sub: app.a.agent_id,
        tid: app.a.id,
        role: Role::Agent,
        jti: Uuid::new_v4(),
        iat: now - 7200,
        exp: now - 3600,
    });
    let error = refused(&app, &expired, "an expired token").await;
    assert!(error["message"].as_str().unwrap().contains("expired"));

    let mut forged_settings = (*app.settings).clone();
    forged_settings.jwt_secret = "some-other-secret-entirely".to_string().into();
    let (forged, _) = TokenKeys::new(&forged_settings).issue(app.a.agent_id, app.a.id, Role::Admin);

    for token in ["not-a-jwt", "a.b.c", forged.as_str(), "sbk_not_a_real_key"] {
        let response = app.get("/v1/me", token).await;
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{token}"
        );
        expect_code(response, "unauthorized", token).await;
    }
    for authorization in [None, Some("Basic dXNlcjpwYXNz")] {
        let mut request = app.client.get(app.url("/v1/me"));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let what = format!("authorization {authorization:?}");
        expect_code(request.send().await.unwrap(), "unauthorized", &what).await;
    }
}

/// A token outlives neither its agent nor its tenant: `/v1/me` answers
/// who the credential is, so a removed agent gets 401, not a stale record.
#[tokio::test]
async fn me_refuses_a_token_whose_agent_was_removed() {
    let app = spawn_app().await;
    let (status, me) = json_of(app.get("/v1/me", &app.a.token).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["agent"]["email"], app.a.agent_email);
    assert_eq!(me["agent"]["tenant_id"], app.a.id.to_string());
    sqlx::query("DELETE FROM agents WHERE id = $1")
        .bind(app.a.agent_id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // The API caches the agent: the deletion reaches it as a PostgreSQL
    // notification, delivered just after the commit (tests/cache.rs).
    switchboard_testkit::within(
        std::time::Duration::from_secs(5),
        "the removed agent refused",
        || async {
            (app.get("/v1/me", &app.a.token).await.status() == StatusCode::UNAUTHORIZED)
                .then_some(())
        },
    )
    .await;
    let error = refused(&app, &app.a.token, "a removed agent's token").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("agent no longer exists"),
        "{error}"
    );
}

#[tokio::test]
async fn a_tenant_api_key_authenticates_as_that_tenant_until_revoked() {
    let app = spawn_app().await;
    let (status, me) = json_of(app.get("/v1/me", &app.a.api_key).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["principal"], "api_key");
    assert_eq!(me["tenant"]["id"], app.a.id.to_string());
    assert_eq!(me["role"], "admin");

    let created = app.customer_named(&app.a.api_key, "Via API key").await;
    assert_eq!(created["tenant_id"], app.a.id.to_string());

    // API keys have no session to log out of.
    let response = logout(&app, &app.a.api_key).await;
    expect_error(response, StatusCode::BAD_REQUEST, "not_a_session").await;

    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1")
        .bind(app.a.id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    refused(&app, &app.a.api_key, "a revoked API key").await;
}

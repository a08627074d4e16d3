//! A throttled login costs no argon2 check. Alone in its test binary so the
//! process-wide `auth_password_checks_total` counter moves only with it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApp, expect_error, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

async fn login(app: &TestApp, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": app.a.agent_email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn password_checks(app: &TestApp) -> f64 {
    let body = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find(|line| line.starts_with("auth_password_checks_total"))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn throttled_logins_are_refused_before_any_argon2_check() {
    let app = spawn_app_with(|settings| {
        settings.login_throttle.account_max_failures = 2;
        settings.login_throttle.account_window = Duration::from_secs(60);
    })
    .await;
    let before = password_checks(&app).await;
    for _ in 0..2 {
        expect_error(
            login(&app, "guess").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    assert_eq!(
        password_checks(&app).await - before,
        2.0,
        "each wrong password is checked once"
    );
    // A guesser hammering the locked account, with wrong and right passwords.
    for password in ["guess", "again", PASSWORD, "more"] {
        expect_error(
            login(&app, password).await,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
        )
        .await;
    }
    assert_eq!(
        password_checks(&app).await - before,
        2.0,
        "a throttled attempt must not cost an argon2 run"
    );
}

//! A throttled login costs no argon2 check. Alone in its test binary so the
//! process-wide `auth_password_checks_total` counter moves only with it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use reqwest::StatusCode;
use switchboard_testkit::{PASSWORD, TestApp, expect_error, spawn_app_with};

async fn login(app: &TestApp, password: &str) -> reqwest::Response {
    app.login_response(&app.a.agent_email, password).await
}

/// argon2 checks made since `before`.
async fn checks_since(app: &TestApp, before: f64) -> f64 {
    app.metric("auth_password_checks_total").await - before
}

#[tokio::test]
async fn throttled_logins_are_refused_before_any_argon2_check() {
    let app = spawn_app_with(|settings| {
        settings.login_throttle.account_max_failures = 2;
        settings.login_throttle.account_window = Duration::from_secs(60);
    })
    .await;
    let before = app.metric("auth_password_checks_total").await;
    for _ in 0..2 {
        let response = login(&app, "guess").await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let checked = checks_since(&app, before).await;
    assert_eq!(checked, 2.0, "each wrong password is checked once");
    // A guesser hammering the locked account, with wrong and right passwords.
    for password in ["guess", "again", PASSWORD, "more"] {
        let response = login(&app, password).await;
        expect_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    }
    let checked = checks_since(&app, before).await;
    assert_eq!(
        checked, 2.0,
        "a throttled attempt must not cost an argon2 run"
    );
}

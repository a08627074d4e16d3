//! Login throttling against a real server and the shared Redis: per account,
//! per client address, and across API instances.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::{net::SocketAddr, sync::Arc, time::Duration};

use reqwest::{Response, StatusCode};
use serde_json::json;
use switchboard_core::Settings;
use switchboard_testkit::{PASSWORD, TestApp, expect_error, json_of, spawn_app_with};
use tokio::sync::oneshot;

async fn login_at(app: &TestApp, addr: SocketAddr, email: &str, password: &str) -> Response {
    app.client
        .post(format!("http://{addr}/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> Response {
    app.login_response(email, password).await
}

/// Asserts a 429 `too_many_attempts` with a `Retry-After` within `window`.
async fn expect_throttled(response: Response, window: Duration) {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window.as_secs()).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
}

fn limits(account: u32, address: u32) -> impl FnOnce(&mut Settings) {
    move |settings: &mut Settings| {
        settings.login_throttle.account_max_failures = account;
        settings.login_throttle.account_window = Duration::from_secs(60);
        settings.login_throttle.address_max_failures = address;
        settings.login_throttle.address_window = Duration::from_secs(60);
    }
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_while_another_account_logs_in() {
    let app = spawn_app_with(limits(3, 100)).await;
    let victim = app.a.agent_email.clone();
    for _ in 0..3 {
        let response = login(&app, &victim, "guess").await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    expect_throttled(login(&app, &victim, "guess").await, Duration::from_secs(60)).await;
    // The right password is refused the same way during the lockout: the
    // answer must not tell a guesser that this guess was the right one.
    expect_throttled(
        login(&app, &victim, PASSWORD).await,
        Duration::from_secs(60),
    )
    .await;
    // An unknown email is throttled like a real one (no account oracle).
    for _ in 0..3 {
        login(&app, "nobody@alpha.test", "guess").await;
    }
    expect_throttled(
        login(&app, "Nobody@Alpha.test ", "guess").await,
        Duration::from_secs(60),
    )
    .await;

    // Someone else on the same address is not held up.
    let (status, body) = json_of(login(&app, &app.b.agent_email, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert!(
        app.metric("auth_login_throttled_total{scope=\"account\"}")
            .await
            >= 3.0
    );
    assert!(app.metric("auth_login_failures_total").await >= 6.0);
}

#[tokio::test]
async fn a_successful_login_clears_the_accounts_failures() {
    let app = spawn_app_with(limits(3, 100)).await;
    let email = app.a.agent_email.clone();
    for _ in 0..2 {
        login(&app, &email, "typo").await;
    }
    let (status, _) = json_of(login(&app, &email, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK);
    // Three more mistakes are allowed again; only the fourth is refused.
    for _ in 0..3 {
        let response = login(&app, &email, "typo").await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    expect_throttled(login(&app, &email, "typo").await, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_password_spray_from_one_address_is_cut_off_but_agents_who_work_there_still_log_in() {
    let app = spawn_app_with(limits(100, 4)).await;
    // An agent who works from this address logs in on an ordinary day.
    let (status, _) = json_of(login(&app, &app.a.agent_email, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK);
    for n in 0..4 {
        let response = login(&app, &format!("target{n}@alpha.test"), "Summer2026!").await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    expect_throttled(
        login(&app, "target9@alpha.test", "Summer2026!").await,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        app.metric("auth_login_throttled_total{scope=\"address\"}")
            .await
            >= 1.0
    );
    // Agents who logged in from this address before are not
    // locked out by other people's failures on it.
    let (status, body) = json_of(login(&app, &app.a.agent_email, PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An account never seen here waits like everyone else.
    expect_throttled(
        login(&app, &app.a.admin_email, PASSWORD).await,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test]
async fn two_api_instances_on_one_redis_share_the_limit() {
    let app = spawn_app_with(limits(4, 100)).await;
    // A second instance: same database, same Redis prefix, own process state.
    let state = switchboard_api::state(Arc::clone(&app.settings))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = listener.local_addr().unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(switchboard_api::serve_on(listener, state, async move {
        let _ = stopped.await;
    }));

    let email = app.a.agent_email.clone();
    for addr in [app.addr, second, app.addr, second] {
        let response = login_at(&app, addr, &email, "guess").await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    for addr in [app.addr, second] {
        expect_throttled(
            login_at(&app, addr, &email, PASSWORD).await,
            Duration::from_secs(60),
        )
        .await;
    }
}

/// A burst of logins beyond what can wait for a password check is refused at
/// once with 503 `login_busy` and `Retry-After`, not queued until it times
/// out; the logins admitted still succeed.
#[tokio::test]
async fn a_login_burst_beyond_the_queue_is_refused_with_retry_after() {
    let app = spawn_app_with(|s| s.login_queue_max = 0).await;
    // The real cost (OWASP's argon2id minimum), so admitted checks are
    // still running while the rest of the burst arrives.
    sqlx::query("UPDATE agents SET password_hash = $1 WHERE email = $2")
        .bind(switchboard_core::auth::hash_password(
            PASSWORD,
            switchboard_core::settings::Argon2Params::default(),
        ))
        .bind(&app.a.agent_email)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let burst = (0..16).map(|_| login(&app, &app.a.agent_email, PASSWORD));
    let responses = futures::future::join_all(burst).await;
    let (mut served, mut shed) = (0, 0);
    for response in responses {
        match response.status() {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after: u64 = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("a Retry-After in seconds");
                assert!(retry_after >= 1);
                expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "login_busy").await;
                shed += 1;
            }
            other => panic!("a login in a burst answered {other}"),
        }
    }
    assert!(served >= 1, "the first logins are served");
    assert!(shed >= 1, "16 logins at once cannot all wait with no queue");
}

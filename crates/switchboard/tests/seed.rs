//! `switchboard seed` against a real database.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use chrono::NaiveDate;
use serde_json::json;
use switchboard::seed::{self, DEMO_PASSWORD, SeedParams};
use switchboard_core::settings::Environment;
use switchboard_testkit::{ApiServer, TestDatabase, http::send_json};

fn small() -> SeedParams {
    SeedParams {
        customers: 300,
        calls: 1_000,
        messages: 600,
        voicemails: 40,
        seed: 7,
        anchor: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
    }
}

/// Seeds [`small`] into `db`, from scratch when `reset`.
async fn seed_small(db: &TestDatabase, reset: bool) -> seed::SeedReport {
    seed::run(&db.pool, &db.settings(), &small(), reset, false)
        .await
        .unwrap()
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn seeding_creates_the_requested_volume_and_a_second_run_changes_nothing() {
    let db = TestDatabase::new().await;
    let report = seed_small(&db, false).await;
    assert!(report.rows.unwrap() > 3_000);

    assert_eq!(count(&db, "SELECT count(*) FROM tenants").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM agents").await, 32);
    assert_eq!(count(&db, "SELECT count(*) FROM phone_numbers").await, 100);
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 300);
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 1_000);
    assert_eq!(count(&db, "SELECT count(*) FROM messages").await, 600);
    assert_eq!(count(&db, "SELECT count(*) FROM voicemails").await, 40);
    // Every call has its history, starting with `queued` and ending in its status.
    assert_eq!(count(&db, "SELECT count(*) FROM calls c WHERE NOT EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id)").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM calls c WHERE c.status <> (SELECT to_status FROM call_events e WHERE e.call_id = c.id ORDER BY occurred_at DESC, id DESC LIMIT 1)").await,
        0
    );
    // Customers, calls and messages never cross tenants.
    assert_eq!(count(&db, "SELECT count(*) FROM calls c JOIN customers u ON u.id = c.customer_id WHERE u.tenant_id <> c.tenant_id").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM messages m JOIN customers u ON u.id = m.customer_id WHERE u.tenant_id <> m.tenant_id").await, 0);
    // Completed calls have a duration; unanswered ones do not.
    assert_eq!(count(&db, "SELECT count(*) FROM calls WHERE (status = 'completed') <> (duration_seconds IS NOT NULL)").await, 0);

    let again = seed_small(&db, false).await;
    assert!(again.rows.is_none(), "already seeded");
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 300);
    assert_eq!(count(&db, "SELECT count(*) FROM calls").await, 1_000);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data_and_reset_starts_over() {
    let db = TestDatabase::new().await;
    seed_small(&db, false).await;
    let fingerprint = "SELECT md5(string_agg(id::text || name || coalesce(phone, ''), ',' ORDER BY id)) FROM customers";
    let first: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let report = seed_small(&db, true).await;
    assert!(report.rows.is_some(), "--reset seeds again");
    let second: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(count(&db, "SELECT count(*) FROM customers").await, 300);
}

#[tokio::test]
async fn demo_credentials_work_against_the_api() {
    let db = TestDatabase::new().await;
    let settings = db.settings();
    let report = seed_small(&db, false).await;
    let api = ApiServer::start(settings.clone()).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", api.addr);
    let login_as = |email: &str| {
        send_json(
            client
                .post(url("/v1/auth/login"))
                .json(&json!({"email": email, "password": DEMO_PASSWORD})),
        )
    };

    let login = login_as("agent01@acme.example").await;
    assert_eq!(
        login["agent"]["tenant_id"],
        report.tenants[0].id.to_string()
    );
    let admin = login_as("admin@globex.example").await;
    assert_eq!(admin["agent"]["role"], "admin");

    let me = send_json(
        client
            .get(url("/v1/me"))
            .bearer_auth(&report.tenants[1].api_key),
    )
    .await;
    assert_eq!(me["tenant"]["slug"], "globex");
    // The demo key is an admin's, so it can manage the tenant too.
    assert_eq!(me["principal"], "api_key");
    assert_eq!(me["role"], "admin");

    // A seeded customer's number finds them, and their timeline has history.
    let phone: String = sqlx::query_scalar("SELECT phone FROM customers WHERE tenant_id = $1 AND EXISTS (SELECT 1 FROM calls WHERE customer_id = customers.id) LIMIT 1")
        .bind(report.tenants[0].id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let found = send_json(
        client
            .get(url("/v1/customers"))
            .query(&[("phone", phone.as_str())])
            .bearer_auth(token),
    )
    .await;
    let id = found["data"][0]["id"].as_str().unwrap();
    let timeline = send_json(
        client
            .get(url(&format!("/v1/customers/{id}/timeline")))
            .bearer_auth(token),
    )
    .await;
    assert!(!timeline["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn seeding_is_refused_in_production() {
    let db = TestDatabase::new().await;
    let mut settings = (*db.settings()).clone();
    settings.environment = Environment::Production;
    let error = seed::run(&db.pool, &Arc::new(settings), &small(), false, false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("production"));
    assert_eq!(count(&db, "SELECT count(*) FROM tenants").await, 0);
}

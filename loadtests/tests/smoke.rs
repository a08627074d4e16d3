//! The suite's smoke run against a stack it starts itself, on a database of
//! its own: seconds, and a red CI if the stack is broken (verification or a
//! seed-tier threshold fails).

use std::process::Command;

use sqlx::migrate::MigrateDatabase;

/// `DATABASE_URL` (or the default) with the database name replaced.
fn database_url(name: &str) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| switchboard_core::settings::DEFAULT_DATABASE_URL.to_string());
    let (server, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    format!("{server}/{name}")
}

#[tokio::test]
async fn a_smoke_run_against_a_fresh_stack_passes() {
    let name = format!("switchboard_smoke_{}", uuid::Uuid::now_v7().simple());
    let url = database_url(&name);
    let reports = std::env::temp_dir().join(&name);
    let status = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .args(["--profile", "smoke", "--tier", "seed", "--report-dir"])
        .arg(&reports)
        .env("DATABASE_URL", &url)
        .env("SWITCHBOARD_REDIS_PREFIX", &name)
        .status()
        .expect("running switchboard-load");
    let summary = std::fs::read_to_string(reports.join("summary.json")).unwrap_or_default();
    let _ = sqlx::Postgres::drop_database(&url).await;
    let _ = std::fs::remove_dir_all(&reports);
    assert!(
        status.success(),
        "switchboard-load --profile smoke exited with {status}; summary: {summary}"
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("summary.json");
    assert_eq!(summary["verdict"], "PASS");
    assert!(
        summary["scenarios"][0]["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "the smoke run measured nothing"
    );
}

//! The suite's smoke run against a stack it starts itself, on a database of
//! its own: seconds, and a red CI if the stack is broken (verification
//! fails, requests error, or calls and messages do not finish).

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
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap_or_else(|e| {
        panic!("switchboard-load exited with {status} and no summary.json ({e})")
    });
    let workday = &summary["scenarios"][0];
    assert_eq!(
        workday["verification"]["passed"], true,
        "verification failed: {}",
        workday["verification"]
    );
    assert!(
        workday["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "the smoke run measured nothing"
    );
    // Correctness rules (errors, calls that never rang, SMS never settled)
    // must hold. Latency rules are the performance gate's: the nightly
    // script runs this same profile and fails on them (its smoke-size run
    // is the last stage of `.ci/run`); here, a debug build sharing the
    // machine with other test binaries, a slow percentile is reported,
    // not asserted.
    let rules = workday["thresholds"].as_array().expect("thresholds");
    let broken = |correctness: bool| -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r["passed"] == false
                    && is_correctness(r["metric"].as_str().unwrap_or("")) == correctness
            })
            .map(|r| format!("{} (observed {})", r["rule"], r["observed"]))
            .collect()
    };
    assert!(
        broken(true).is_empty(),
        "correctness rules broken: {:#?}",
        broken(true)
    );
    for rule in broken(false) {
        eprintln!("latency rule breached in the debug smoke run (not asserted here): {rule}");
    }
    // 0 pass, 3 a breach; anything else is an error or a verification failure.
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "switchboard-load exited with {status}, verdict {}",
        summary["verdict"]
    );
}

/// Rules about lost or failed work rather than speed.
fn is_correctness(metric: &str) -> bool {
    metric.starts_with("flow.") || metric.ends_with("error_pct") || metric.ends_with(".errors")
}

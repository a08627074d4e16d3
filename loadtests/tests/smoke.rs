//! The suite's smoke run against a stack it starts itself, on a database of
//! its own: seconds, and a red CI if the stack is broken (verification
//! fails, requests error, or calls and messages do not finish). Then the
//! same run against stacks broken on purpose (a slow handler, a lost event,
//! a stalled simulator), each of which must fail with the rule that names
//! the fault.

use std::process::{Command, ExitStatus};

use serde_json::Value;
use sqlx::migrate::MigrateDatabase;

/// `DATABASE_URL` (or the default) with the database name replaced.
fn database_url(name: &str) -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| switchboard_core::settings::DEFAULT_DATABASE_URL.to_string());
    let (server, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    format!("{server}/{name}")
}

/// One smoke run at a time: each starts a stack and a generator, and the
/// machine has two cores.
static RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A smoke run (seed tier) on a fresh database, with `env` passed to the
/// suite and the stack it starts: its exit status and the workday's result.
async fn smoke_run(env: &[(&str, String)]) -> (ExitStatus, Value) {
    let _one_at_a_time = RUNS.lock().await;
    let name = fresh_name();
    let run = run_suite(&name, env);
    let _ = sqlx::Postgres::drop_database(&database_url(&name)).await;
    checked(run)
}

/// A database and Redis prefix no other run uses.
fn fresh_name() -> String {
    format!("switchboard_smoke_{}", uuid::Uuid::now_v7().simple())
}

/// One smoke run on the database `name` (created and seeded if it is new):
/// its exit status and `summary.json`, read before any assertion so the
/// caller can drop the database first.
fn run_suite(name: &str, env: &[(&str, String)]) -> (ExitStatus, String) {
    let reports = std::env::temp_dir().join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .args(["--profile", "smoke", "--tier", "seed", "--report-dir"])
        .arg(&reports)
        .env("DATABASE_URL", database_url(name))
        .env("SWITCHBOARD_REDIS_PREFIX", name)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .expect("running switchboard-load");
    let summary = std::fs::read_to_string(reports.join("summary.json")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&reports);
    (status, summary)
}

/// The workday's result of a run that must have verified and measured.
fn checked((status, summary): (ExitStatus, String)) -> (ExitStatus, Value) {
    let mut summary: Value = serde_json::from_str(&summary).unwrap_or_else(|e| {
        panic!("switchboard-load exited with {status} and no summary.json ({e})")
    });
    let workday = summary["scenarios"][0].take();
    assert_eq!(
        workday["verification"]["passed"], true,
        "verification failed: {} (the run's error: {})",
        workday["verification"], workday["error"]
    );
    assert!(
        workday["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "the smoke run measured nothing"
    );
    (status, workday)
}

/// The rules a result broke: (metric, the rule as printed, observed).
fn broken_rules(workday: &Value) -> Vec<(String, String, Value)> {
    workday["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .filter(|r| r["passed"] == false)
        .map(|r| {
            (
                r["metric"].as_str().unwrap_or_default().to_string(),
                r["rule"].as_str().unwrap_or_default().to_string(),
                r["observed"].clone(),
            )
        })
        .collect()
}

/// Rules about lost or failed work rather than speed.
fn is_correctness(metric: &str) -> bool {
    metric.starts_with("flow.")
        || metric.starts_with("calls.")
        || metric.ends_with("error_pct")
        || metric.ends_with(".errors")
}

#[tokio::test]
async fn a_smoke_run_against_a_fresh_stack_passes() {
    let (status, workday) = smoke_run(&[]).await;
    // Correctness rules (errors, calls that never rang or were never
    // answered, SMS never settled) must hold. Latency rules are the
    // performance gate's: the nightly script runs this same profile and
    // fails on them (its smoke-size run is the last stage of `.ci/run`);
    // here, a debug build sharing the machine with other test binaries, a
    // slow percentile is reported, not asserted.
    let (correctness, latency): (Vec<_>, Vec<_>) = broken_rules(&workday)
        .into_iter()
        .partition(|(metric, _, _)| is_correctness(metric));
    assert!(
        correctness.is_empty(),
        "correctness rules broken: {correctness:#?}"
    );
    for (_, rule, observed) in latency {
        eprintln!(
            "latency rule breached in the debug smoke run (not asserted here): {rule} (observed {observed})"
        );
    }
    // 0 pass, 3 a breach; anything else is an error or a verification failure.
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "switchboard-load exited with {status}"
    );
}

#[tokio::test]
async fn a_database_whose_voicemail_was_all_heard_gets_its_inbox_back() {
    let _one_at_a_time = RUNS.lock().await;
    let name = fresh_name();
    let first = run_suite(&name, &[]);
    // What four or five main-job runs did to one database: every voicemail
    // heard, so the workday's voicemail action would find nothing to open.
    let db = sqlx::PgPool::connect(&database_url(&name))
        .await
        .expect("the first run's database");
    sqlx::query("UPDATE voicemails SET listened_at = now() WHERE listened_at IS NULL")
        .execute(&db)
        .await
        .expect("hearing every voicemail");
    let seeded_share: i64 = sqlx::query_scalar(
        "SELECT sum(unheard)::bigint FROM (
             SELECT ceil(count(*) * $1::float8)::bigint AS unheard
             FROM voicemails GROUP BY tenant_id) t",
    )
    .bind(switchboard::seed::UNHEARD_VOICEMAIL_SHARE)
    .fetch_one(&db)
    .await
    .expect("counting the voicemails");
    db.close().await;
    let second = run_suite(&name, &[]);
    let _ = sqlx::Postgres::drop_database(&database_url(&name)).await;
    checked(first);
    let (status, workday) = checked(second);

    assert!(seeded_share > 0, "the smoke seed has voicemail");
    let setup = workday["setup"].as_str().unwrap_or_default();
    assert!(
        setup.contains(&format!(
            ": {seeded_share} heard voicemails marked unheard again"
        )),
        "the inbox was not refilled to the seeded share ({seeded_share}): {setup:?}"
    );
    assert_eq!(
        workday["metrics"]["flow.voicemail_inbox_empty"], 0.0,
        "a voicemail action found the inbox empty"
    );
    let broken: Vec<_> = broken_rules(&workday)
        .into_iter()
        .filter(|(metric, _, _)| is_correctness(metric))
        .collect();
    assert!(broken.is_empty(), "correctness rules broken: {broken:#?}");
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "switchboard-load exited with {status}"
    );
}

#[tokio::test]
async fn a_stack_that_cannot_start_fails_the_run_with_its_cause() {
    // Nothing listens on this port: the stack cannot reach Redis (its
    // realtime service's Socket.IO adapter fails at start). The run must end
    // with that cause, from the stack's own exit, not wait out /ready.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let _one_at_a_time = RUNS.lock().await;
    let name = fresh_name();
    let (status, summary) = run_suite(
        &name,
        &[("REDIS_URL", format!("redis://127.0.0.1:{closed}"))],
    );
    let _ = sqlx::Postgres::drop_database(&database_url(&name)).await;
    let summary: Value = serde_json::from_str(&summary).expect("summary.json");
    let error = summary["scenarios"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(1),
        "a stack that did not start is an error"
    );
    assert!(
        error.contains("the stack exited") && error.contains("Redis"),
        "the run's error does not say the stack exited, and why: {error:?}"
    );
}

/// The second demo tenant: the verification pass uses the first, so a fault
/// confined to this one lets the run reach its rules, and half the users
/// (they alternate tenants) meet it.
fn second_tenant() -> String {
    switchboard::seed::demo_tenants()[1].id.to_string()
}

/// Asserts the run breached (exit 3) and broke at least one of `expected`.
fn assert_breaks(status: ExitStatus, workday: &Value, expected: &[&str]) {
    let broken = broken_rules(workday);
    assert_eq!(
        status.code(),
        Some(3),
        "a broken stack must fail the run with a breach; broken rules: {broken:#?}"
    );
    assert!(
        broken
            .iter()
            .any(|(metric, _, _)| expected.contains(&metric.as_str())),
        "none of {expected:?} broke; broken rules: {broken:#?}"
    );
}

#[tokio::test]
async fn a_slow_handler_fails_the_median_latency_rule() {
    // 150 ms on every API request: past seed 004's p50 < 100 ms.
    let (status, workday) = smoke_run(&[("SWITCHBOARD_FAULT_LATENCY_MS", "150".into())]).await;
    assert_breaks(status, &workday, &["http.p50_ms"]);
}

#[tokio::test]
async fn lost_events_fail_the_websocket_error_rule() {
    let (status, workday) =
        smoke_run(&[("SWITCHBOARD_FAULT_DROP_EVENTS_TENANT", second_tenant())]).await;
    assert_breaks(status, &workday, &["all SIO.error_pct"]);
}

#[tokio::test]
async fn a_stalled_simulator_fails_the_call_or_delivery_rule() {
    // The second tenant's calls never ring and its messages are never
    // delivered: whichever its users tried in the few seconds of a smoke
    // run (a call, a message, or both) must break its rule.
    let (status, workday) =
        smoke_run(&[("SWITCHBOARD_FAULT_STALL_CARRIER_TENANT", second_tenant())]).await;
    assert_breaks(
        status,
        &workday,
        &["calls.never_answered", "all QUEUE.error_pct"],
    );
}

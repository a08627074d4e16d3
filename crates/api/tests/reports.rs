//! Reports against a small fixture whose figures are worked out by hand.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use switchboard_core::reports::roll_up;
use switchboard_testkit::{TestApp, expect_error, json_of, spawn_app};
use uuid::Uuid;

/// The summary over the fixture's first three hours.
const FIRST_HOURS: &str = "/v1/reports/summary?from=2026-01-10T00:00:00Z&to=2026-01-10T03:00:00Z";
/// The summary of the fixture's day, by day.
const FIXTURE_DAY: &str =
    "/v1/reports/summary?from=2026-01-10T00:00:00Z&to=2026-01-11T00:00:00Z&granularity=day";

/// The integer fields `keys` of `object`, in order (`None` where one is
/// missing or not an integer).
fn ints(object: &Value, keys: &[&str]) -> Vec<Option<i64>> {
    keys.iter().map(|key| object[key].as_i64()).collect()
}

fn at(hour: i64, minute: i64) -> DateTime<Utc> {
    "2026-01-10T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        + Duration::hours(hour)
        + Duration::minutes(minute)
}

#[allow(clippy::too_many_arguments)]
async fn call(
    app: &TestApp,
    tenant: Uuid,
    created: DateTime<Utc>,
    direction: &str,
    status: &str,
    talk: Option<i32>,
    agent: Option<Uuid>,
) {
    let answered = talk.map(|_| created + Duration::seconds(10));
    let ended = created + Duration::seconds(10 + i64::from(talk.unwrap_or(20)));
    sqlx::query(
        "INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, agent_id, created_at, ringing_at, answered_at, ended_at, duration_seconds)
         VALUES ($1, $2, $3, '+12025550100', '+13125550177', $4, $5, $6, $6, $7, $8, $9)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(direction)
    .bind(status)
    .bind(agent)
    .bind(created)
    .bind(answered)
    .bind(ended)
    .bind(talk)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

/// Runs `sql`, an `INSERT` of one row of tenant A: `$1` a new id (which
/// it returns), `$2` the tenant, `$3` the row's status, `$4` its creation.
async fn insert(app: &TestApp, sql: &'static str, status: &str, created: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(sql)
        .bind(id)
        .bind(app.a.id)
        .bind(status)
        .bind(created)
        .execute(&app.db.pool)
        .await
        .unwrap();
    id
}

/// Inserts a call of tenant A still `status` (`ringing`, or `in-progress`
/// and then answered when created); returns its id.
async fn live_call(app: &TestApp, status: &str, created: DateTime<Utc>) -> Uuid {
    let sql = "INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, created_at, answered_at)
               VALUES ($1, $2, 'outbound', '+12025550100', '+13125550177', $3, $4,
                       CASE WHEN $3 = 'in-progress' THEN $4 END)";
    insert(app, sql, status, created).await
}

/// Inserts a message of tenant A in `status`: inbound when `received`,
/// outbound otherwise.
async fn message(app: &TestApp, created: DateTime<Utc>, status: &str) {
    let sql = "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding, created_at)
               VALUES ($1, $2, CASE WHEN $3 = 'received' THEN 'inbound' ELSE 'outbound' END,
                       '+12025550100', '+13125550177', 'hi', $3, 1, 'GSM-7', $4)";
    insert(app, sql, status, created).await;
}

/// A fresh app with the fixture's calls, messages and voicemails (and the
/// id of tenant A's admin, who handled some of the calls).
async fn spawn_fixture() -> (TestApp, Uuid) {
    let app = spawn_app().await;
    let admin = fixture(&app).await;
    (app, admin)
}

async fn fixture(app: &TestApp) -> Uuid {
    let a = app.a.id;
    let agent = Some(app.a.agent_id);
    let admin: Uuid = sqlx::query_scalar("SELECT id FROM agents WHERE email = $1")
        .bind(&app.a.admin_email)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    // 00:00–01:00
    call(app, a, at(0, 5), "outbound", "completed", Some(60), agent).await;
    call(app, a, at(0, 15), "outbound", "completed", Some(120), agent).await;
    call(app, a, at(0, 25), "inbound", "no-answer", None, None).await;
    call(app, a, at(0, 35), "outbound", "busy", None, agent).await;
    // 01:00–02:00
    call(
        app,
        a,
        at(1, 10),
        "inbound",
        "completed",
        Some(30),
        Some(admin),
    )
    .await;
    call(app, a, at(1, 20), "outbound", "failed", None, agent).await;
    // 03:00: outside [00:00, 03:00), inside the day.
    call(app, a, at(3, 0), "outbound", "completed", Some(90), agent).await;
    // Another tenant's call in the same hour never counts.
    call(
        app,
        app.b.id,
        at(0, 5),
        "outbound",
        "completed",
        Some(999),
        Some(app.b.agent_id),
    )
    .await;
    message(app, at(0, 1), "delivered").await;
    message(app, at(0, 2), "failed").await;
    message(app, at(1, 3), "received").await;
    sqlx::query("INSERT INTO voicemails (id, tenant_id, from_number, to_number, recording_url, created_at) VALUES ($1, $2, '+13125550177', '+12025550100', 'https://r.example/1.wav', $3)")
        .bind(Uuid::now_v7())
        .bind(a)
        .bind(at(1, 30))
        .execute(&app.db.pool)
        .await
        .unwrap();
    admin
}

#[tokio::test]
async fn the_hourly_summary_matches_hand_computed_figures() {
    let (app, _) = spawn_fixture().await;
    let report = app
        .get_ok(&format!("{FIRST_HOURS}&granularity=hour"), &app.a.token)
        .await;
    let buckets = report["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 3, "empty hours are included");
    assert_eq!(buckets[0]["start"], "2026-01-10T00:00:00Z");

    let h0 = &buckets[0]["calls"];
    assert_eq!(
        ints(
            h0,
            &[
                "total",
                "inbound",
                "outbound",
                "completed",
                "busy",
                "no_answer",
                "answered"
            ]
        ),
        [
            Some(4),
            Some(1),
            Some(3),
            Some(2),
            Some(1),
            Some(1),
            Some(2)
        ]
    );
    assert_eq!(h0["answer_rate"], 0.5);
    assert_eq!(h0["talk_seconds_total"], 180);
    assert_eq!(h0["talk_seconds_avg"], 90.0);
    assert_eq!(h0["talk_seconds_p50"], 90.0, "median of 60 and 120");
    assert_eq!(h0["talk_seconds_p90"], 114.0, "60 + 0.9 × (120 − 60)");
    assert_eq!(buckets[0]["messages"]["delivered"], 1);
    assert_eq!(buckets[0]["messages"]["failed"], 1);

    let h1 = &buckets[1]["calls"];
    assert_eq!(
        ints(h1, &["total", "completed", "failed", "answered"]),
        [Some(2), Some(1), Some(1), Some(1)]
    );
    assert_eq!(h1["talk_seconds_p50"], 30.0);
    assert_eq!(buckets[1]["voicemails"], 1);
    assert_eq!(buckets[1]["messages"]["received"], 1);

    let h2 = &buckets[2];
    assert_eq!(h2["calls"]["total"], 0);
    assert_eq!(h2["calls"]["answer_rate"], 0.0);
    assert_eq!(h2["calls"]["talk_seconds_avg"], Value::Null);

    let totals = &report["totals"]["calls"];
    assert_eq!(
        ints(totals, &["total", "completed", "answered"]),
        [Some(6), Some(3), Some(3)]
    );
    assert_eq!(totals["answer_rate"], 0.5);
    assert_eq!(totals["talk_seconds_total"], 210);
    assert_eq!(totals["talk_seconds_avg"], 70.0);
    assert_eq!(totals["talk_seconds_p50"], 60.0, "median of 30, 60, 120");
    assert_eq!(totals["talk_seconds_p90"], 108.0, "60 + 0.8 × (120 − 60)");
    assert_eq!(report["totals"]["messages"]["total"], 3);
    assert_eq!(report["totals"]["voicemails"], 1);
}

#[tokio::test]
async fn the_daily_summary_includes_the_whole_day() {
    let (app, _) = spawn_fixture().await;
    let report = app.get_ok(FIXTURE_DAY, &app.a.token).await;
    let buckets = report["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1);
    let day = &buckets[0]["calls"];
    assert_eq!(
        ints(day, &["total", "completed", "talk_seconds_total"]),
        [Some(7), Some(4), Some(300)]
    );
    assert_eq!(day["talk_seconds_avg"], 75.0);
    // The other tenant sees only its own call.
    let theirs = app.get_ok(FIXTURE_DAY, &app.b.token).await;
    assert_eq!(theirs["totals"]["calls"]["total"], 1);
    assert_eq!(theirs["totals"]["calls"]["talk_seconds_total"], 999);
}

#[tokio::test]
async fn call_detail_records_filter_and_paginate() {
    let (app, _) = spawn_fixture().await;
    // The call detail records of the fixture's first three hours, `query`
    // narrowing them.
    let records = async |query: &str| {
        let range = "from=2026-01-10T00:00:00Z&to=2026-01-10T03:00:00Z";
        let path = format!("/v1/reports/calls?{range}{query}");
        app.get_ok(&path, &app.a.token).await
    };
    let count = |page: &Value| page["data"].as_array().unwrap().len();
    assert_eq!(count(&records("").await), 6);
    assert_eq!(count(&records("&status=completed").await), 3);
    let long = records("&min_talk_seconds=100").await;
    let long = long["data"].as_array().unwrap();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0]["talk_seconds"], 120);
    assert_eq!(long[0]["ring_seconds"], 10.0);
    let page = records("&limit=4").await;
    assert_eq!(count(&page), 4);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = records(&format!("&limit=4&cursor={cursor}")).await;
    assert_eq!(count(&rest), 2);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn agent_statistics_match_hand_computed_figures() {
    let (app, admin) = spawn_fixture().await;
    let report = app
        .get_ok(
            "/v1/reports/agents?from=2026-01-10T00:00:00Z&to=2026-01-10T03:00:00Z",
            &app.a.token,
        )
        .await;
    let rows = report["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "every agent of the tenant, and only theirs");
    assert_eq!(
        rows[0]["agent_id"],
        app.a.agent_id.to_string(),
        "busiest first"
    );
    assert_eq!(
        ints(
            &rows[0],
            &[
                "calls_handled",
                "outbound",
                "answered",
                "talk_seconds_total"
            ]
        ),
        [Some(4), Some(4), Some(2), Some(180)]
    );
    assert_eq!(rows[0]["average_handle_seconds"], 90.0);
    assert_eq!(rows[1]["agent_id"], admin.to_string());
    assert_eq!(
        ints(
            &rows[1],
            &["calls_handled", "inbound", "talk_seconds_total"]
        ),
        [Some(1), Some(1), Some(30)]
    );
}

#[tokio::test]
async fn bad_report_parameters_are_400s() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/v1/reports/summary?granularity=week", "granularity"),
        (
            "/v1/reports/summary?from=2026-01-10T00:00:00Z&to=2026-01-09T00:00:00Z",
            "from",
        ),
        (
            "/v1/reports/summary?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&granularity=hour",
            "from",
        ),
        ("/v1/reports/summary?from=last-tuesday", "from"),
        ("/v1/reports/calls?status=lost", "status"),
        ("/v1/reports/calls?min_talk_seconds=-1", "min_talk_seconds"),
        ("/v1/reports/agents?to=soon", "to"),
        ("/v1/reports/agents?team=red", ""),
    ] {
        let response = app.get(path, &app.a.token).await;
        let error = expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
        if !field.is_empty() {
            assert_eq!(error["field"], field, "{path}");
        }
    }
    let (status, _) = json_of(app.get("/v1/reports/summary", &app.a.token).await).await;
    assert_eq!(status, StatusCode::OK, "defaults to the last 24 hours");
}

/// Everything the fixture's reports say, for comparing the live answer with
/// the answer from the rollups.
async fn reports_of(app: &TestApp, tenant: &switchboard_testkit::TestTenant) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        "/v1/reports/summary?from=2026-01-10T00:00:00Z&to=2026-01-10T03:00:00Z&granularity=hour",
        // A partial first hour and a partial last hour.
        "/v1/reports/summary?from=2026-01-10T00:20:00Z&to=2026-01-10T03:30:00Z&granularity=hour",
        "/v1/reports/summary?from=2026-01-09T00:00:00Z&to=2026-01-12T00:00:00Z&granularity=day",
        "/v1/reports/summary?from=2026-01-10T00:30:00Z&to=2026-01-11T00:00:00Z&granularity=day",
        "/v1/reports/agents?from=2026-01-10T00:00:00Z&to=2026-01-10T03:00:00Z",
        "/v1/reports/agents?from=2026-01-10T00:20:00Z&to=2026-01-10T03:30:00Z",
    ] {
        all.push(app.get_ok(path, &tenant.token).await);
    }
    all
}

async fn rolled_through(app: &TestApp, tenant: Uuid) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT rolled_through FROM report_rollup_state WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
}

/// The fixture, with both tenants' reports as the live tables answer them
/// before anything is rolled up: what the rollups must answer too.
async fn fixture_with_live_reports() -> (TestApp, Vec<Value>, Vec<Value>) {
    let (app, _) = spawn_fixture().await;
    let (live_a, live_b) = (
        reports_of(&app, &app.a).await,
        reports_of(&app, &app.b).await,
    );
    (app, live_a, live_b)
}

#[tokio::test]
async fn rolled_up_hours_answer_exactly_what_the_calls_say() {
    let (app, live_a, live_b) = fixture_with_live_reports().await;

    let run = roll_up(&app.db.pool, at(72, 0)).await.unwrap();
    assert_eq!(
        run.hours, 4,
        "hours with activity: three of a's, one of b's"
    );
    assert_eq!(rolled_through(&app, app.a.id).await, Some(at(71, 0)));
    let rolled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM report_rollups_hourly WHERE tenant_id = $1 AND calls_total > 0",
    )
    .bind(app.a.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rolled, 3);
    // Hour 01:00 is whole in every range asked for, so the rollups answer
    // for it: change its calls behind their back (something a rolled hour
    // never sees in production) and the answers must not move.
    sqlx::query(
        "UPDATE calls SET duration_seconds = duration_seconds + 1000
         WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3",
    )
    .bind(app.a.id)
    .bind(at(1, 0))
    .bind(at(2, 0))
    .execute(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(reports_of(&app, &app.a).await, live_a);
    assert_eq!(reports_of(&app, &app.b).await, live_b);

    // Rolling again (and twice at once) changes nothing.
    let (one, two) = tokio::join!(
        roll_up(&app.db.pool, at(72, 0)),
        roll_up(&app.db.pool, at(72, 0))
    );
    assert_eq!(one.unwrap().hours + two.unwrap().hours, 0);
    assert_eq!(reports_of(&app, &app.a).await, live_a);
}

/// One tenant whose hours cannot be rolled (here a trigger refuses its
/// rows, as a statement timeout or a bad row would) must not hold back the
/// tenants after it, and must be named and counted in the lag until it
/// catches up.
#[tokio::test]
async fn a_tenant_whose_roll_fails_does_not_hold_back_the_others() {
    let (app, live_a, live_b) = fixture_with_live_reports().await;
    // Tenants are rolled in id order: refuse the first of the two.
    let (refused, other) = if app.a.id < app.b.id {
        (app.a.id, app.b.id)
    } else {
        (app.b.id, app.a.id)
    };
    sqlx::query(
        "CREATE FUNCTION refuse_rollup() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'rollup refused for this tenant'; END $$",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse_rollup BEFORE INSERT ON report_rollups_hourly FOR EACH ROW
         WHEN (NEW.tenant_id = '{refused}') EXECUTE FUNCTION refuse_rollup()"
    )))
    .execute(&app.db.pool)
    .await
    .unwrap();

    let run = roll_up(&app.db.pool, at(72, 0)).await.unwrap();
    assert_eq!(run.failed.len(), 1, "{run:?}");
    assert_eq!(run.failed[0].0, refused);
    let failures = run.failures().expect("a failure");
    assert!(
        failures.contains(&refused.to_string()) && failures.contains("rollup refused"),
        "{failures}"
    );
    assert_eq!(rolled_through(&app, other).await, Some(at(71, 0)));
    let behind = rolled_through(&app, refused).await;
    assert!(behind.is_some_and(|b| b < at(71, 0)), "{behind:?}");
    assert_eq!(run.oldest, behind, "the lag counts the tenant left behind");

    // Once the cause is gone, the next run catches it up.
    sqlx::query("DROP TRIGGER refuse_rollup ON report_rollups_hourly")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let run = roll_up(&app.db.pool, at(72, 0)).await.unwrap();
    assert_eq!(run.failures(), None);
    assert_eq!(rolled_through(&app, refused).await, Some(at(71, 0)));
    assert_eq!(reports_of(&app, &app.a).await, live_a);
    assert_eq!(reports_of(&app, &app.b).await, live_b);
}

#[tokio::test]
async fn calls_still_live_hold_the_rollups_back_until_they_end() {
    let (app, _) = spawn_fixture().await;
    let id = live_call(&app, "in-progress", at(1, 40)).await;

    roll_up(&app.db.pool, at(6, 0)).await.unwrap();
    assert_eq!(
        rolled_through(&app, app.a.id).await,
        Some(at(1, 0)),
        "the hour of the live call stays live"
    );
    assert_eq!(rolled_through(&app, app.b.id).await, Some(at(5, 0)));

    // The call ends; the live tail sees it at once, the next roll-up seals it.
    sqlx::query("UPDATE calls SET status = 'completed', duration_seconds = 50, ended_at = created_at + interval '50 seconds', updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let path = FIRST_HOURS;
    let live = app.get_ok(path, &app.a.token).await;
    assert_eq!(live["buckets"][1]["calls"]["completed"], 2);
    assert_eq!(live["buckets"][1]["calls"]["talk_seconds_p50"], 40.0);
    roll_up(&app.db.pool, at(6, 0)).await.unwrap();
    assert_eq!(rolled_through(&app, app.a.id).await, Some(at(5, 0)));
    let rolled = app.get_ok(path, &app.a.token).await;
    assert_eq!(rolled, live);
}

#[tokio::test]
async fn a_call_open_past_the_horizon_is_rolled_as_it_stands() {
    let (app, _) = spawn_fixture().await;
    live_call(&app, "ringing", at(1, 40)).await;
    roll_up(&app.db.pool, at(72, 0)).await.unwrap();
    assert_eq!(rolled_through(&app, app.a.id).await, Some(at(71, 0)));
    let report = app
        .get_ok(
            "/v1/reports/summary?from=2026-01-10T01:00:00Z&to=2026-01-10T02:00:00Z",
            &app.a.token,
        )
        .await;
    assert_eq!(report["totals"]["calls"]["total"], 3);
    assert_eq!(report["totals"]["calls"]["live"], 1);
}

#[tokio::test]
async fn a_deleted_voicemail_leaves_rolled_up_hours_too() {
    let (app, _) = spawn_fixture().await;
    roll_up(&app.db.pool, at(72, 0)).await.unwrap();
    let path = FIXTURE_DAY;
    let before = app.get_ok(path, &app.a.token).await;
    assert_eq!(before["totals"]["voicemails"], 1);
    let id: Uuid = sqlx::query_scalar("SELECT id FROM voicemails WHERE tenant_id = $1")
        .bind(app.a.id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let response = app
        .delete(&format!("/v1/voicemails/{id}"), &app.a.token)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let after = app.get_ok(path, &app.a.token).await;
    assert_eq!(after["totals"]["voicemails"], 0);
    assert_eq!(after["buckets"][0]["voicemails"], 0);
}

#[tokio::test]
async fn a_late_delivery_receipt_moves_the_message_in_its_rolled_hour() {
    let (app, _) = spawn_fixture().await;
    let message = app
        .send_message(
            &app.a.token,
            serde_json::json!({"to": "+12025550123", "body": "Hello"}),
        )
        .await;
    let sid = message["carrier_sid"].as_str().unwrap().to_string();
    // Sent in the fixture's first hour; its receipt has not come yet.
    sqlx::query("UPDATE messages SET status = 'sent', created_at = $2 WHERE id = $1")
        .bind(message["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .bind(at(0, 30))
        .execute(&app.db.pool)
        .await
        .unwrap();
    roll_up(&app.db.pool, at(72, 0)).await.unwrap();
    assert_eq!(rolled_through(&app, app.a.id).await, Some(at(71, 0)));
    let path = FIRST_HOURS;
    let before = app.get_ok(path, &app.a.token).await;
    let hour = &before["buckets"][0]["messages"];
    assert_eq!(ints(hour, &["sent", "delivered"]), [Some(1), Some(1)]);

    let (status, body) = json_of(app.sms_status(&app.a, &sid, "delivered").await).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    let after = app.get_ok(path, &app.a.token).await;
    let hour = &after["buckets"][0]["messages"];
    assert_eq!(
        ints(hour, &["total", "sent", "delivered"]),
        [Some(3), Some(0), Some(2)]
    );
    // The live aggregate agrees: rebuild the rollups from the messages.
    sqlx::query("DELETE FROM report_rollup_state")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let live = app.get_ok(path, &app.a.token).await;
    assert_eq!(live, after);
}

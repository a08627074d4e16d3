//! Calls: originate, list, history, controls, carrier status callbacks.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_core::presence::PresenceStatus;
use switchboard_testkit::{TestApp, api::expect_not_found, expect_error, json_of, spawn_app};

/// Posts a signed status callback for the call with `sid`, with `extra`
/// parameters besides its status.
async fn report_with(app: &TestApp, sid: &str, status: &str, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("CallSid", sid), ("CallStatus", status)];
    params.extend_from_slice(extra);
    let token = TestApp::carrier_token(&app.a);
    let response = app
        .carrier_post("/webhooks/carrier/voice/status", &token, &params)
        .await;
    let (code, ack) = json_of(response).await;
    assert_eq!(code, StatusCode::OK, "{status} {extra:?}: {ack}");
    ack
}

/// Posts a signed status callback for `call`.
async fn report(app: &TestApp, call: &Value, status: &str) -> (StatusCode, Value) {
    let sid = call["carrier_sid"].as_str().unwrap();
    json_of(
        app.carrier_post(
            "/webhooks/carrier/voice/status",
            &TestApp::carrier_token(&app.a),
            &[
                ("CallSid", sid),
                ("CallStatus", status),
                ("AccountSid", "ACtest"),
            ],
        )
        .await,
    )
    .await
}

async fn control(app: &TestApp, call: &Value, action: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/v1/calls/{}/{action}", call["id"].as_str().unwrap()),
        &app.a.token,
    )
    .send()
    .await
    .unwrap()
}

async fn get_call(app: &TestApp, call: &Value) -> Value {
    let path = format!("/v1/calls/{}", call["id"].as_str().unwrap());
    app.get_ok(&path, &app.a.token).await
}

async fn history(app: &TestApp, call: &Value) -> Vec<(String, Option<String>)> {
    let path = format!("/v1/calls/{}/events", call["id"].as_str().unwrap());
    let body = app.get_ok(&path, &app.a.token).await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["to_status"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn originating_a_call_creates_it_queued_from_the_tenants_number() {
    let app = spawn_app().await;
    let customer = app
        .customer_with_phone(&app.a.token, "Callee", "+13125550177")
        .await;
    let call = app.originate(&app.a.token, "(312) 555-0177").await;
    assert_eq!(call["status"], "queued");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["to"], "+13125550177");
    assert_eq!(call["from"], "+12025550100", "the tenant's default number");
    assert_eq!(call["customer_id"], customer["id"], "linked by number");
    assert_eq!(call["agent_id"], app.a.agent_id.to_string());
    assert_eq!(call["version"], 1);
    assert!(call["carrier_sid"].as_str().unwrap().starts_with("CA"));
    for field in ["on_hold", "muted", "recording"] {
        assert_eq!(call[field], false);
    }
    assert_eq!(
        history(&app, &call).await,
        vec![("status".to_string(), Some("queued".to_string()))]
    );

    let from_another_number = json!({"to": "+13125550100", "from": "+12025550101"});
    let call2 = app
        .create("/v1/calls", &app.a.token, from_another_number)
        .await;
    assert_eq!(call2["from"], "+12025550101");
}

#[tokio::test]
async fn originate_refuses_bad_numbers_foreign_callers_and_foreign_customers() {
    let app = spawn_app().await;
    let theirs = app.customer_named(&app.b.token, "Bravo's").await;
    let invalid = [
        (json!({"to": "not a number"}), "to"),
        (
            json!({"to": "+13125550177", "from": "+12025550150"}),
            "from",
        ),
        (
            json!({"to": "+13125550177", "customer_id": theirs["id"]}),
            "customer_id",
        ),
    ];
    app.expect_refused("/v1/calls", &app.a.token, "validation_failed", invalid)
        .await;
    let unreadable = [(json!({"to": 42}), "to"), (json!({}), "to")];
    app.expect_refused("/v1/calls", &app.a.token, "invalid_body", unreadable)
        .await;
    assert_eq!(app.count_rows("calls").await, 0);
}

#[tokio::test]
async fn originate_is_idempotent_with_a_key() {
    let app = spawn_app().await;
    let send = |to: &'static str| {
        app.post_idempotent("/v1/calls", &app.a.token, "dial-1", json!({"to": to}))
    };
    let first: Value = send("+13125550177").await.json().await.unwrap();
    let again = send("+13125550177").await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let reused = send("+13125550178").await;
    let reused_code = "idempotency_key_reused";
    expect_error(reused, StatusCode::UNPROCESSABLE_ENTITY, reused_code).await;
    assert_eq!(app.count_rows("calls").await, 1);
}

#[tokio::test]
async fn the_carrier_drives_a_call_through_its_whole_lifecycle() {
    let app = spawn_app().await;
    let call = app.originate(&app.a.token, "+13125550177").await;
    for (status, result) in [("ringing", "applied"), ("in-progress", "applied")] {
        let (code, ack) = report(&app, &call, status).await;
        assert_eq!(
            (code, ack["result"].as_str().unwrap()),
            (StatusCode::OK, result),
            "{ack}"
        );
    }
    let sid = call["carrier_sid"].as_str().unwrap();
    let ack = report_with(&app, sid, "completed", &[("CallDuration", "42")]).await;
    assert_eq!(ack["result"], "applied");
    let done = get_call(&app, &call).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["duration_seconds"], 42, "the carrier's own duration");
    assert_eq!(done["version"], 4);
    // Each step stamped its own time, and a later one kept the earlier ones.
    let stamps: Vec<chrono::DateTime<chrono::Utc>> = ["ringing_at", "answered_at", "ended_at"]
        .iter()
        .map(|stamp| serde_json::from_value(done[*stamp].clone()).expect(stamp))
        .collect();
    assert!(stamps.is_sorted(), "{done}");
    assert_eq!(
        history(&app, &call)
            .await
            .into_iter()
            .map(|(_, s)| s.unwrap())
            .collect::<Vec<_>>(),
        vec!["queued", "ringing", "in-progress", "completed"]
    );
}

/// A call's history pages like every list, oldest first, each entry once,
/// and says who wrote each entry: the API, the carrier.
#[tokio::test]
async fn a_calls_history_pages_oldest_first_naming_who_wrote_each_entry() {
    let app = spawn_app().await;
    let call = app.originate(&app.a.token, "+13125550177").await;
    report(&app, &call, "ringing").await;
    for action in ["answer", "hold", "unhold", "mute", "unmute", "hangup"] {
        let (status, body) = json_of(control(&app, &call, action).await).await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    let path = format!("/v1/calls/{}/events", call["id"].as_str().unwrap());
    let first = app.page(&path, &app.a.token, 3, None).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3, "{first}");
    assert!(first["next_cursor"].is_string(), "{first}");
    let walked = app.walk_pages(&path, &app.a.token, 3).await;
    let whole = app.page(&path, &app.a.token, 200, None).await;
    assert_eq!(whole["data"], Value::Array(walked.clone()));
    assert!(whole["next_cursor"].is_null());
    let entries: Vec<(&str, Option<&str>, &str)> = walked
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["to_status"].as_str(),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("status", Some("queued"), "api"),
            ("status", Some("ringing"), "carrier"),
            ("status", Some("in-progress"), "api"),
            ("hold", None, "api"),
            ("unhold", None, "api"),
            ("mute", None, "api"),
            ("unmute", None, "api"),
            ("status", Some("completed"), "api"),
        ]
    );
}

/// The agent's presence as the wallboard shows it.
async fn presence_of_agent_a(app: &TestApp) -> String {
    let (_, agents) = json_of(app.get("/v1/agents", &app.a.token).await).await;
    agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == app.a.agent_id.to_string())
        .map(|a| a["presence"]["status"].as_str().unwrap().to_string())
        .unwrap()
}

/// Presence follows calls in the API, before the callback is answered:
/// the read right after each callback already sees the agent's new status
/// (no realtime server runs here).
#[tokio::test]
async fn an_agents_call_makes_them_busy_and_available_again_when_it_ends() {
    let app = spawn_app().await;
    let presence = app.request(Method::PUT, "/v1/agents/me/presence", &app.a.token);
    let presence = presence.json(&json!({"status": "available"})).send().await;
    let (code, _) = json_of(presence.unwrap()).await;
    assert_eq!(code, StatusCode::OK);
    let call = app.originate(&app.a.token, "+13125550177").await;
    assert_eq!(presence_of_agent_a(&app).await, "available", "queued");
    for (status, presence) in [
        ("ringing", "busy"),
        ("in-progress", "busy"),
        ("completed", "available"),
    ] {
        let (code, ack) = report(&app, &call, status).await;
        assert_eq!(
            (code, ack["result"].as_str()),
            (StatusCode::OK, Some("applied"))
        );
        assert_eq!(presence_of_agent_a(&app).await, presence, "after {status}");
    }
    // A duplicate final callback changes nothing, presence included.
    let (_, ack) = report(&app, &call, "completed").await;
    assert_ne!(ack["result"], "applied", "{ack}");
    assert_eq!(presence_of_agent_a(&app).await, "available");
}

/// A presence the API does not know is a 422 on `status` that lists the
/// ones there are, and the agent's presence stays as it was.
#[tokio::test]
async fn an_unknown_presence_is_refused_with_the_ones_there_are() {
    let app = spawn_app().await;
    let set = |status: &str| {
        let request = app.request(Method::PUT, "/v1/agents/me/presence", &app.a.token);
        request.json(&json!({ "status": status })).send()
    };
    assert_eq!(set("available").await.unwrap().status(), StatusCode::OK);
    let refused = set("on-holiday").await.unwrap();
    let error = expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error["field"], "status");
    let message = error["message"].as_str().unwrap();
    for name in PresenceStatus::ALL.map(PresenceStatus::as_str) {
        assert!(message.contains(name), "{name} missing from {message:?}");
    }
    assert_eq!(presence_of_agent_a(&app).await, "available");
}

#[tokio::test]
async fn every_legal_transition_applies_and_illegal_ones_change_nothing() {
    let app = spawn_app().await;
    // (path to reach the start state, reported status, expected result, expected final status)
    let table: &[(&[&str], &str, &str, &str)] = &[
        (&[], "ringing", "applied", "ringing"),
        (&[], "in-progress", "applied", "in-progress"),
        (&[], "busy", "applied", "busy"),
        (&[], "no-answer", "applied", "no-answer"),
        (&[], "failed", "applied", "failed"),
        (&[], "canceled", "applied", "canceled"),
        (&["ringing"], "in-progress", "applied", "in-progress"),
        (&["ringing"], "busy", "applied", "busy"),
        (&["ringing"], "no-answer", "applied", "no-answer"),
        (&["ringing"], "failed", "applied", "failed"),
        (&["ringing"], "canceled", "applied", "canceled"),
        (
            &["ringing", "in-progress"],
            "completed",
            "applied",
            "completed",
        ),
        // Illegal: an answered call cannot be busy or unanswered.
        (
            &["ringing", "in-progress"],
            "busy",
            "ignored",
            "in-progress",
        ),
        (
            &["ringing", "in-progress"],
            "no-answer",
            "ignored",
            "in-progress",
        ),
        (
            &["ringing", "in-progress"],
            "canceled",
            "ignored",
            "in-progress",
        ),
        (&[], "completed", "ignored", "queued"),
        (&["ringing"], "completed", "ignored", "ringing"),
        // Late and duplicate callbacks.
        (
            &["ringing", "in-progress"],
            "ringing",
            "stale",
            "in-progress",
        ),
        (
            &["ringing", "in-progress"],
            "queued",
            "stale",
            "in-progress",
        ),
        (&["ringing"], "ringing", "duplicate", "ringing"),
        (
            &["ringing", "in-progress", "completed"],
            "completed",
            "duplicate",
            "completed",
        ),
        (
            &["ringing", "in-progress", "completed"],
            "ringing",
            "already_ended",
            "completed",
        ),
        (&["busy"], "in-progress", "already_ended", "busy"),
        (&["no-answer"], "completed", "already_ended", "no-answer"),
    ];
    for (path, reported, expected, final_status) in table {
        let call = app.originate(&app.a.token, "+13125550177").await;
        for step in *path {
            assert_eq!(report(&app, &call, step).await.1["result"], "applied");
        }
        let before = get_call(&app, &call).await;
        let (code, ack) = report(&app, &call, reported).await;
        assert_eq!(code, StatusCode::OK, "{path:?} + {reported}: {ack}");
        assert_eq!(ack["result"], *expected, "{path:?} + {reported}");
        let after = get_call(&app, &call).await;
        assert_eq!(after["status"], *final_status, "{path:?} + {reported}");
        if *expected != "applied" {
            assert_eq!(
                after, before,
                "a no-op changes nothing: {path:?} + {reported}"
            );
        }
    }
}

#[tokio::test]
async fn racing_callbacks_leave_one_consistent_history() {
    let app = spawn_app().await;
    let call = app.originate(&app.a.token, "+13125550177").await;
    let statuses = [
        "ringing",
        "in-progress",
        "completed",
        "ringing",
        "in-progress",
        "busy",
        "completed",
        "no-answer",
        "ringing",
        "completed",
    ];
    let racers = (0..20).map(|i| report(&app, &call, statuses[i % statuses.len()]));
    let results = futures::future::join_all(racers).await;
    assert!(results.iter().all(|(code, _)| *code == StatusCode::OK));

    let after = get_call(&app, &call).await;
    let events = history(&app, &call).await;
    let statuses: Vec<String> = events.iter().map(|(_, s)| s.clone().unwrap()).collect();
    // Whatever order they arrived in, the history is a legal walk from queued
    // and the call's status and version agree with it.
    assert_eq!(statuses[0], "queued");
    for pair in statuses.windows(2) {
        let from: switchboard_core::calls::CallStatus = pair[0].parse().unwrap();
        let to = pair[1].parse().unwrap();
        assert_eq!(
            switchboard_core::calls::transition(from, to),
            switchboard_core::lifecycle::Transition::Apply,
            "{statuses:?}"
        );
    }
    assert_eq!(after["status"].as_str().unwrap(), statuses.last().unwrap());
    assert_eq!(after["version"].as_u64().unwrap() as usize, statuses.len());
    let applied = results
        .iter()
        .filter(|(_, ack)| ack["result"] == "applied")
        .count();
    assert_eq!(
        applied + 1,
        statuses.len(),
        "each applied callback added exactly one event"
    );
}

/// A storm: callbacks for many calls at once share statements, and each
/// call still gets exactly its own changes and history (its own times, its
/// own carrier duration), none of another call's.
#[tokio::test]
async fn callbacks_for_many_calls_at_once_each_apply_to_their_own_call() {
    let app = spawn_app().await;
    let mut calls = Vec::new();
    for i in 0..24 {
        calls.push(
            app.originate(&app.a.token, &format!("+131255501{i:02}"))
                .await,
        );
    }
    let lifecycles = calls.iter().enumerate().map(|(i, call)| {
        let app = &app;
        async move {
            let answered: &[&str] = if i % 3 == 0 {
                &["ringing"]
            } else {
                &["ringing", "in-progress"]
            };
            for status in answered {
                let (code, ack) = report(app, call, status).await;
                assert_eq!(
                    (code, ack["result"].as_str()),
                    (StatusCode::OK, Some("applied"))
                );
            }
            let duration = (10 + i).to_string();
            let sid = call["carrier_sid"].as_str().unwrap();
            let end = if i % 3 == 0 { "busy" } else { "completed" };
            let ack = report_with(app, sid, end, &[("CallDuration", &duration)]).await;
            assert_eq!(ack["result"], "applied", "{ack}");
            assert_eq!(ack["call_id"], call["id"]);
        }
    });
    futures::future::join_all(lifecycles).await;
    for (i, call) in calls.iter().enumerate() {
        let done = get_call(&app, call).await;
        let walk = if i % 3 == 0 {
            vec!["queued", "ringing", "busy"]
        } else {
            vec!["queued", "ringing", "in-progress", "completed"]
        };
        assert_eq!(done["status"], *walk.last().unwrap(), "call {i}");
        assert_eq!(done["version"], walk.len(), "call {i}");
        assert!(done["ended_at"].is_string(), "call {i}: {done}");
        if i % 3 == 0 {
            assert!(done["answered_at"].is_null(), "call {i}: {done}");
            assert!(done["duration_seconds"].is_null(), "call {i}: {done}");
        } else {
            assert!(done["answered_at"].is_string(), "call {i}: {done}");
            assert_eq!(
                done["duration_seconds"],
                10 + i,
                "call {i}: its own duration"
            );
        }
        assert_eq!(
            history(&app, call)
                .await
                .into_iter()
                .map(|(_, s)| s.unwrap())
                .collect::<Vec<_>>(),
            walk,
            "call {i}"
        );
    }
}

#[tokio::test]
async fn controls_work_in_their_states_and_are_409_elsewhere() {
    let app = spawn_app().await;
    let call = app.originate(&app.a.token, "+13125550177").await;
    // Not yet answered: live controls are refused.
    for (action, code) in [
        ("hold", "call_not_in_progress"),
        ("mute", "call_not_in_progress"),
        ("record", "call_not_in_progress"),
        ("transfer", "call_not_in_progress"),
        ("answer", "call_not_ringing"),
    ] {
        expect_error(
            control(&app, &call, action).await,
            StatusCode::CONFLICT,
            code,
        )
        .await;
    }
    report(&app, &call, "ringing").await;
    let (status, answered) = json_of(control(&app, &call, "answer").await).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    assert_eq!(answered["status"], "in-progress");

    let steps = [
        ("hold", "on_hold", true),
        ("unhold", "on_hold", false),
        ("mute", "muted", true),
        ("unmute", "muted", false),
        ("record", "recording", true),
        ("stop-recording", "recording", false),
    ];
    for (action, field, value) in steps {
        let (status, body) = json_of(control(&app, &call, action).await).await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        assert_eq!(body[field], value, "{action}");
    }
    expect_error(
        control(&app, &call, "unhold").await,
        StatusCode::CONFLICT,
        "not_on_hold",
    )
    .await;
    control(&app, &call, "hold").await;
    expect_error(
        control(&app, &call, "hold").await,
        StatusCode::CONFLICT,
        "already_on_hold",
    )
    .await;
    expect_error(
        control(&app, &call, "unmute").await,
        StatusCode::CONFLICT,
        "not_muted",
    )
    .await;
    expect_error(
        control(&app, &call, "stop-recording").await,
        StatusCode::CONFLICT,
        "not_recording",
    )
    .await;

    // Transfer to a number, then hang up.
    let id = call["id"].as_str().unwrap();
    let transfer = format!("/v1/calls/{id}/transfer");
    let to_number = json!({"to": "+13125550199"});
    let (status, transferred) = json_of(app.post(&transfer, &app.a.token, to_number).await).await;
    assert_eq!(status, StatusCode::OK, "{transferred}");
    assert_eq!(transferred["transferred_to"], "+13125550199");
    assert_eq!(transferred["on_hold"], false);
    let (status, ended) = json_of(control(&app, &call, "hangup").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ended["status"], "completed");
    for action in ["hangup", "hold", "answer", "mute", "transfer"] {
        expect_error(
            control(&app, &call, action).await,
            StatusCode::CONFLICT,
            "call_ended",
        )
        .await;
    }
    let kinds: Vec<String> = history(&app, &call)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        kinds.contains(&"hold".to_string()) && kinds.contains(&"transfer".to_string()),
        "{kinds:?}"
    );

    // Hanging up before answer cancels.
    let early = app.originate(&app.a.token, "+13125550177").await;
    let (_, canceled) = json_of(control(&app, &early, "hangup").await).await;
    assert_eq!(canceled["status"], "canceled");
    expect_error(
        control(&app, &early, "teleport").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
}

#[tokio::test]
async fn a_transfer_needs_exactly_one_valid_target() {
    let app = spawn_app().await;
    let call = app.originate(&app.a.token, "+13125550177").await;
    report(&app, &call, "in-progress").await;
    let id = call["id"].as_str().unwrap();
    let path = format!("/v1/calls/{id}/transfer");
    let no_target = app.post(&path, &app.a.token, json!({})).await;
    let required = "transfer_target_required";
    expect_error(no_target, StatusCode::UNPROCESSABLE_ENTITY, required).await;
    let invalid = [
        // Another tenant's agent is unknown here.
        (json!({"agent_id": app.b.agent_id}), "agent_id"),
        (json!({"to": "nope"}), "to"),
    ];
    app.expect_refused(&path, &app.a.token, "validation_failed", invalid)
        .await;
    let admin: uuid::Uuid = sqlx::query_scalar("SELECT id FROM agents WHERE email = $1")
        .bind(&app.a.admin_email)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let to_admin = json!({"agent_id": admin});
    let (status, moved) = json_of(app.post(&path, &app.a.token, to_admin).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(moved["agent_id"], admin.to_string());
    app.expect_malformed_json(&path, &app.a.token, &["{oops"])
        .await;
}

#[tokio::test]
async fn calls_are_listed_with_filters_and_cursor_pagination() {
    let app = spawn_app().await;
    let mut ids = HashSet::new();
    for i in 0..7 {
        let call = app
            .originate(&app.a.token, &format!("+1312555017{i}"))
            .await;
        if i % 2 == 0 {
            report(&app, &call, "busy").await;
        }
        ids.insert(call["id"].as_str().unwrap().to_string());
    }
    app.originate(&app.b.token, "+13125550177").await;

    let listed = app.walk_pages("/v1/calls", &app.a.token, 3).await;
    let seen: HashSet<String> = listed
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), listed.len(), "no duplicates");
    assert_eq!(seen, ids, "exactly the tenant's calls");

    let app = &app;
    let list = |q: Vec<(&'static str, String)>| async move {
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = json_of(app.get_query("/v1/calls", &app.a.token, &q).await).await;
        assert_eq!(status, StatusCode::OK, "{q:?}: {page}");
        page["data"].as_array().unwrap().len()
    };
    assert_eq!(list(vec![("status", "busy".into())]).await, 4);
    assert_eq!(
        list(vec![
            ("status", "queued".into()),
            ("direction", "outbound".into())
        ])
        .await,
        3
    );
    assert_eq!(list(vec![("to", "(312) 555-0173".into())]).await, 1);
    assert_eq!(
        list(vec![("agent_id", app.a.agent_id.to_string())]).await,
        7
    );
    assert_eq!(
        list(vec![("created_after", "2100-01-01T00:00:00Z".into())]).await,
        0
    );
    let refused: [(&str, &[&str]); 4] = [
        ("status", &["lost"]),
        ("direction", &["sideways"]),
        ("agent_id", &["nope"]),
        ("created_after", &["yesterday"]),
    ];
    app.expect_refused_params("/v1/calls", &app.a.token, "invalid_query", &refused)
        .await;
}

#[tokio::test]
async fn another_tenants_calls_are_not_found_anywhere() {
    let app = spawn_app().await;
    let theirs = app.originate(&app.b.token, "+13125550177").await;
    let id = theirs["id"].as_str().unwrap();
    app.expect_hidden_from(&app.a, &format!("/v1/calls/{id}"))
        .await;
    app.expect_hidden_from(&app.a, &format!("/v1/calls/{id}/events"))
        .await;
    for action in ["answer", "hold", "hangup"] {
        let control = app.request(
            Method::POST,
            &format!("/v1/calls/{id}/{action}"),
            &app.a.token,
        );
        expect_not_found(control.send().await.unwrap()).await;
    }
    assert_eq!(
        app.get_ok("/v1/calls", &app.a.token).await["data"],
        json!([])
    );
    // A status callback signed with tenant A's token for B's call is refused.
    let params = [
        ("CallSid", theirs["carrier_sid"].as_str().unwrap()),
        ("CallStatus", "ringing"),
    ];
    let token = TestApp::carrier_token(&app.a);
    let response = app
        .carrier_post("/webhooks/carrier/voice/status", &token, &params)
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "invalid_signature").await;
    let path = format!("/v1/calls/{id}");
    assert_eq!(app.get_ok(&path, &app.b.token).await["status"], "queued");
}

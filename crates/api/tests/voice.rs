//! Voice webhooks (signatures, malformed input, inbound routing,
//! recordings), presence REST and voicemail.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{PASSWORD, TestApp, expect_error, json_of, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const INCOMING: &str = "/webhooks/carrier/voice/incoming";

async fn incoming(app: &TestApp, sid: &str, from: &str) -> Value {
    let (status, ack) = json_of(
        app.carrier_post(
            INCOMING,
            &TestApp::carrier_token(&app.a),
            &[
                ("CallSid", sid),
                ("From", from),
                ("To", "+12025550100"),
                ("CallStatus", "ringing"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    ack
}

async fn set_presence(app: &TestApp, token: &str, status: &str) -> (StatusCode, Value) {
    json_of(
        app.request(Method::PUT, "/v1/agents/me/presence", token)
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn inbound_calls_go_to_the_longest_idle_available_agent_then_voicemail() {
    let app = spawn_app().await;
    let admin_token = app.login(&app.a.admin_email, PASSWORD).await;
    let admin_id: String = json_of(app.get("/v1/me", &admin_token).await).await.1["agent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let caller = app
        .create_customer(
            &app.a.token,
            json!({"name": "Caller", "phone": "+13125550177"}),
        )
        .await;

    // The agent became available first, so has been idle longest.
    assert_eq!(
        set_presence(&app, &app.a.token, "available").await.0,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        set_presence(&app, &admin_token, "available").await.0,
        StatusCode::OK
    );

    let first = incoming(&app, "CAinbound1", "+1 312 555 0177").await;
    assert_eq!(first["result"], "created");
    assert_eq!(first["action"], "connect");
    assert_eq!(first["agent_id"], app.a.agent_id.to_string());
    assert_eq!(
        first["customer_id"], caller["id"],
        "the caller was looked up"
    );
    assert!(first["twiml"].as_str().unwrap().contains("<Dial>"));

    let second = incoming(&app, "CAinbound2", "+13125550188").await;
    assert_eq!(second["agent_id"], admin_id, "the next idle agent");
    assert!(second["customer_id"].is_null());

    let third = incoming(&app, "CAinbound3", "+13125550199").await;
    assert_eq!(third["action"], "voicemail", "nobody left");
    assert!(third["agent_id"].is_null());
    assert!(third["twiml"].as_str().unwrap().contains("<Record"));

    // Both agents show busy; the wallboard lists every agent of the tenant.
    let (_, agents) = json_of(app.get("/v1/agents", &app.a.token).await).await;
    let statuses: Vec<&str> = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["presence"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["busy", "busy"], "{agents}");

    // A retried webhook gets the same decision and creates nothing.
    let retry = incoming(&app, "CAinbound1", "+13125550177").await;
    assert_eq!(retry["result"], "duplicate");
    assert_eq!(retry["call_id"], first["call_id"]);
    assert_eq!(count(&app, "SELECT count(*) FROM calls").await, 3);

    // When the first call ends, its agent is available again and takes the next one.
    for status in ["in-progress", "completed"] {
        let done = app
            .carrier_post(
                "/webhooks/carrier/voice/status",
                &TestApp::carrier_token(&app.a),
                &[("CallSid", "CAinbound1"), ("CallStatus", status)],
            )
            .await;
        assert_eq!(json_of(done).await.1["result"], "applied", "{status}");
    }
    let (_, agents) = json_of(app.get("/v1/agents", &app.a.token).await).await;
    let mine = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == app.a.agent_id.to_string())
        .unwrap()
        .clone();
    assert_eq!(mine["presence"]["status"], "available");
    let fourth = incoming(&app, "CAinbound4", "+13125550177").await;
    assert_eq!(fourth["agent_id"], app.a.agent_id.to_string());
}

#[tokio::test]
async fn away_and_offline_agents_are_never_routed_to() {
    let app = spawn_app().await;
    assert_eq!(
        set_presence(&app, &app.a.token, "away").await.1["status"],
        "away"
    );
    assert_eq!(
        incoming(&app, "CAaway", "+13125550177").await["action"],
        "voicemail"
    );
    set_presence(&app, &app.a.token, "available").await;
    set_presence(&app, &app.a.token, "offline").await;
    assert_eq!(
        incoming(&app, "CAoffline", "+13125550177").await["action"],
        "voicemail"
    );
    // Another tenant's available agent is never picked.
    set_presence(&app, &app.b.token, "available").await;
    assert_eq!(
        incoming(&app, "CAother", "+13125550177").await["action"],
        "voicemail"
    );
}

#[tokio::test]
async fn presence_rest_validates_and_is_per_tenant() {
    let app = spawn_app().await;
    let error = expect_error(
        app.request(Method::PUT, "/v1/agents/me/presence", &app.a.token)
            .json(&json!({"status": "sleeping"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error["field"], "status");
    expect_error(
        app.request(Method::PUT, "/v1/agents/me/presence", &app.a.api_key)
            .json(&json!({"status": "available"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "not_an_agent",
    )
    .await;
    let (status, presence) = set_presence(&app, &app.a.token, "available").await;
    assert_eq!(status, StatusCode::OK);
    assert!(presence["since"].is_string());
    let (_, theirs) = json_of(app.get("/v1/agents", &app.b.token).await).await;
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["presence"]["status"] == "offline"),
        "{theirs}"
    );
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != app.a.agent_id.to_string())
    );
}

#[tokio::test]
async fn webhooks_with_bad_signatures_unknown_sids_or_bad_input_change_nothing() {
    let app = spawn_app().await;
    let call: Value = app
        .post("/v1/calls", &app.a.token, json!({"to": "+13125550177"}))
        .await
        .json()
        .await
        .unwrap();
    let sid = call["carrier_sid"].as_str().unwrap();
    let token = TestApp::carrier_token(&app.a);
    let status_path = "/webhooks/carrier/voice/status";

    expect_error(
        app.carrier_post(
            status_path,
            "wrong-token",
            &[("CallSid", sid), ("CallStatus", "ringing")],
        )
        .await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    let unsigned = app
        .client
        .post(app.url(status_path))
        .form(&[("CallSid", sid), ("CallStatus", "ringing")])
        .send()
        .await
        .unwrap();
    expect_error(unsigned, StatusCode::FORBIDDEN, "invalid_signature").await;
    // A signature over other parameters does not cover these.
    let params = [
        ("CallSid".to_string(), sid.to_string()),
        ("CallStatus".to_string(), "ringing".to_string()),
    ];
    let signature = switchboard_core::carrier::sign(
        &token,
        &format!("{}{status_path}", app.settings.public_url),
        &params,
    );
    let tampered = app
        .client
        .post(app.url(status_path))
        .header("x-twilio-signature", signature)
        .form(&[("CallSid", sid), ("CallStatus", "completed")])
        .send()
        .await
        .unwrap();
    expect_error(tampered, StatusCode::FORBIDDEN, "invalid_signature").await;

    expect_error(
        app.carrier_post(
            status_path,
            &token,
            &[("CallSid", "CAunknown"), ("CallStatus", "ringing")],
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for (params, field) in [
        (vec![("CallStatus", "ringing")], "CallSid"),
        (vec![("CallSid", sid)], "CallStatus"),
        (
            vec![("CallSid", sid), ("CallStatus", "teleported")],
            "CallStatus",
        ),
        (
            vec![
                ("CallSid", sid),
                ("CallStatus", "completed"),
                ("CallDuration", "-3"),
            ],
            "CallDuration",
        ),
        (
            vec![
                ("CallSid", sid),
                ("CallStatus", "ringing"),
                ("Timestamp", "yesterday"),
            ],
            "Timestamp",
        ),
    ] {
        let (status, body) = json_of(app.carrier_post(status_path, &token, &params).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {body}");
        assert_eq!(body["error"]["field"], field, "{params:?}");
    }
    let json_body = app
        .client
        .post(app.url(status_path))
        .json(&json!({"CallSid": sid}))
        .send()
        .await
        .unwrap();
    expect_error(
        json_body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // Incoming: unknown number, bad signature, bad To.
    expect_error(
        app.carrier_post(
            INCOMING,
            &token,
            &[
                ("CallSid", "CAx"),
                ("From", "+13125550177"),
                ("To", "+12025550199"),
            ],
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.carrier_post(
            INCOMING,
            "wrong",
            &[
                ("CallSid", "CAx"),
                ("From", "+13125550177"),
                ("To", "+12025550100"),
            ],
        )
        .await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    expect_error(
        app.carrier_post(
            INCOMING,
            &token,
            &[
                ("CallSid", "CAx"),
                ("From", "+13125550177"),
                ("To", "garbage"),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    let long_from = "9".repeat(65);
    expect_error(
        app.carrier_post(
            INCOMING,
            &token,
            &[
                ("CallSid", "CAx"),
                ("From", long_from.as_str()),
                ("To", "+12025550100"),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;

    let after: Value = json_of(
        app.get(
            &format!("/v1/calls/{}", call["id"].as_str().unwrap()),
            &app.a.token,
        )
        .await,
    )
    .await
    .1;
    assert_eq!(after["status"], "queued");
    assert_eq!(after["version"], 1);
    assert_eq!(count(&app, "SELECT count(*) FROM calls").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM call_events").await, 1);
}

#[tokio::test]
async fn a_recording_of_a_voicemail_call_becomes_a_voicemail_once() {
    let app = spawn_app().await;
    let routed = incoming(&app, "CAvm1", "+13125550177").await;
    assert_eq!(routed["action"], "voicemail");
    let token = TestApp::carrier_token(&app.a);
    let params = [
        ("CallSid", "CAvm1"),
        ("RecordingSid", "RE123"),
        ("RecordingUrl", "https://recordings.example/RE123.wav"),
        ("RecordingDuration", "17"),
    ];
    let (status, ack) = json_of(
        app.carrier_post("/webhooks/carrier/voice/recording", &token, &params)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(
        (ack["result"].as_str(), ack["action"].as_str()),
        (Some("created"), Some("voicemail"))
    );
    let (_, again) = json_of(
        app.carrier_post("/webhooks/carrier/voice/recording", &token, &params)
            .await,
    )
    .await;
    assert_eq!(again["result"], "duplicate");

    let (_, list) = json_of(
        app.get("/v1/voicemails?unlistened=true", &app.a.token)
            .await,
    )
    .await;
    let voicemails = list["data"].as_array().unwrap();
    assert_eq!(voicemails.len(), 1);
    let vm = &voicemails[0];
    assert_eq!(vm["duration_seconds"], 17);
    assert_eq!(vm["from"], "+13125550177");
    assert_eq!(vm["call_id"], routed["call_id"]);
    assert_eq!(vm["transcription_status"], "pending");
    assert_eq!(vm["listened"], false);
    let id = vm["id"].as_str().unwrap();

    let (status, listened) = json_of(
        app.post(
            &format!("/v1/voicemails/{id}/listened"),
            &app.a.token,
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listened["listened"], true);
    let first_listen = listened["listened_at"].clone();
    let (_, twice) = json_of(
        app.post(
            &format!("/v1/voicemails/{id}/listened"),
            &app.a.token,
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        twice["listened_at"], first_listen,
        "the first listen is kept"
    );
    let (_, unlistened) = json_of(
        app.get("/v1/voicemails?unlistened=true", &app.a.token)
            .await,
    )
    .await;
    assert_eq!(unlistened["data"], json!([]));

    // Another tenant sees none of it.
    expect_error(
        app.get(&format!("/v1/voicemails/{id}"), &app.b.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.post(
            &format!("/v1/voicemails/{id}/listened"),
            &app.b.token,
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.delete(&format!("/v1/voicemails/{id}"), &app.b.token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        json_of(app.get("/v1/voicemails", &app.b.token).await)
            .await
            .1["data"],
        json!([])
    );

    assert_eq!(
        app.delete(&format!("/v1/voicemails/{id}"), &app.a.token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        app.get(&format!("/v1/voicemails/{id}"), &app.a.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        app.get("/v1/voicemails/not-a-uuid", &app.a.token).await,
        StatusCode::BAD_REQUEST,
        "invalid_path",
    )
    .await;
    expect_error(
        app.get("/v1/voicemails?unlistened=maybe", &app.a.token)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn a_recording_of_an_answered_call_is_kept_as_a_call_recording() {
    let app = spawn_app().await;
    let call: Value = app
        .post("/v1/calls", &app.a.token, json!({"to": "+13125550177"}))
        .await
        .json()
        .await
        .unwrap();
    let sid = call["carrier_sid"].as_str().unwrap();
    let token = TestApp::carrier_token(&app.a);
    let params = [
        ("CallSid", sid),
        ("RecordingSid", "RE999"),
        ("RecordingUrl", "https://recordings.example/RE999.wav"),
        ("RecordingDuration", "60"),
    ];
    let (_, ack) = json_of(
        app.carrier_post("/webhooks/carrier/voice/recording", &token, &params)
            .await,
    )
    .await;
    assert_eq!(
        (ack["result"].as_str(), ack["action"].as_str()),
        (Some("created"), Some("recording"))
    );
    assert_eq!(count(&app, "SELECT count(*) FROM recordings").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM voicemails").await, 0);
    let after: Value = json_of(
        app.get(
            &format!("/v1/calls/{}", call["id"].as_str().unwrap()),
            &app.a.token,
        )
        .await,
    )
    .await
    .1;
    assert_eq!(after["version"], 2, "the recording is a change to the call");
    let bad = [
        ("CallSid", sid),
        ("RecordingSid", "RE1000"),
        ("RecordingUrl", "ftp://nope"),
    ];
    expect_error(
        app.carrier_post("/webhooks/carrier/voice/recording", &token, &bad)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
    assert_eq!(count(&app, "SELECT count(*) FROM recordings").await, 1);
}

//! Voice webhooks (signatures, malformed input, inbound routing,
//! recordings), presence REST and voicemail.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use switchboard_core::auth::Role;
use switchboard_testkit::{
    PASSWORD, TestApp,
    api::{expect_code, expect_field_error, expect_not_found, insert_agent},
    expect_error, json_of, spawn_app,
};

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

async fn put_presence(app: &TestApp, token: &str, status: &str) -> Response {
    let request = app.request(Method::PUT, "/v1/agents/me/presence", token);
    request
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap()
}

async fn set_presence(app: &TestApp, token: &str, status: &str) -> (StatusCode, Value) {
    json_of(put_presence(app, token, status).await).await
}

/// Posts a signed recording callback for tenant a.
async fn recording(app: &TestApp, params: &[(&str, &str)]) -> Response {
    let token = TestApp::carrier_token(&app.a);
    app.carrier_post("/webhooks/carrier/voice/recording", &token, params)
        .await
}

#[tokio::test]
async fn inbound_calls_go_to_the_longest_idle_available_agent_then_voicemail() {
    let app = spawn_app().await;
    let admin_token = app.login(&app.a.admin_email, PASSWORD).await;
    let admin_id = app.get_ok("/v1/me", &admin_token).await["agent"]["id"].clone();
    let caller = app
        .customer_with_phone(&app.a.token, "Caller", "+13125550177")
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

    // Each call keeps where it was sent.
    for (ack, route) in [(&first, "agent"), (&second, "agent"), (&third, "voicemail")] {
        let path = format!("/v1/calls/{}", ack["call_id"].as_str().unwrap());
        let call = app.get_ok(&path, &app.a.token).await;
        assert_eq!(call["routed_to"], route, "{call}");
    }

    // Both agents show busy; the wallboard lists every agent of the tenant.
    let agents = app.get_ok("/v1/agents", &app.a.token).await;
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
    assert_eq!(app.count_rows("calls").await, 3);

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
    let agents = app.get_ok("/v1/agents", &app.a.token).await;
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

/// The wallboard's list pages like every list: by email, each agent once,
/// and only the tenant's own.
#[tokio::test]
async fn the_agents_list_pages_through_the_tenants_agents_by_email() {
    let app = spawn_app().await;
    for n in 0..5 {
        let email = format!("extra{n}@{}.test", app.a.slug);
        insert_agent(&app.db.pool, app.a.id, &email, Role::Agent, "unused").await;
    }
    assert_eq!(
        set_presence(&app, &app.a.token, "available").await.0,
        StatusCode::OK
    );
    let first = app.page("/v1/agents", &app.a.token, 2, None).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2, "{first}");
    assert!(first["next_cursor"].is_string(), "{first}");
    let walked = app.walk_pages("/v1/agents", &app.a.token, 2).await;
    let emails: Vec<&str> = walked
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    let mut ordered = emails.clone();
    ordered.sort_unstable();
    ordered.dedup();
    assert_eq!(
        emails.len(),
        7,
        "the agent, the admin and five more: {emails:?}"
    );
    assert_eq!(emails, ordered, "by email, each once");
    // Each page reads its own agents' presence: the agent who set one is
    // `available` on whichever page holds them, every other agent offline.
    let me = app.a.agent_id.to_string();
    for agent in &walked {
        let expected = if agent["id"] == me.as_str() {
            "available"
        } else {
            "offline"
        };
        assert_eq!(agent["presence"]["status"], expected, "{agent}");
    }
    let whole = app.page("/v1/agents", &app.a.token, 200, None).await;
    assert_eq!(whole["data"], Value::Array(walked.clone()));
    assert!(whole["next_cursor"].is_null());
    let theirs = app.walk_pages("/v1/agents", &app.b.token, 2).await;
    assert!(
        theirs
            .iter()
            .all(|a| !emails.contains(&a["email"].as_str().unwrap())),
        "{theirs:?}"
    );
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
    let sleeping = put_presence(&app, &app.a.token, "sleeping").await;
    expect_field_error(sleeping, "validation_failed", "status", "sleeping").await;
    let by_key = put_presence(&app, &app.a.api_key, "available").await;
    expect_error(by_key, StatusCode::BAD_REQUEST, "not_an_agent").await;
    let (status, presence) = set_presence(&app, &app.a.token, "available").await;
    assert_eq!(status, StatusCode::OK);
    assert!(presence["since"].is_string());
    let theirs = app.get_ok("/v1/agents", &app.b.token).await;
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
    let call = app.originate(&app.a.token, "+13125550177").await;
    let sid = call["carrier_sid"].as_str().unwrap();
    let token = TestApp::carrier_token(&app.a);
    let status_path = "/webhooks/carrier/voice/status";

    let ringing = [("CallSid", sid), ("CallStatus", "ringing")];
    let completed = [("CallSid", sid), ("CallStatus", "completed")];
    for (signature, params, what) in [
        (
            Some(app.carrier_signature("wrong-token", status_path, &ringing)),
            ringing,
            "a wrong token",
        ),
        (None, ringing, "unsigned"),
        // A signature over other parameters does not cover these.
        (
            Some(app.carrier_signature(&token, status_path, &ringing)),
            completed,
            "tampered with",
        ),
    ] {
        let response = app
            .post_form(status_path, signature.as_deref(), &params)
            .await;
        expect_code(response, "invalid_signature", what).await;
    }

    let unknown = [("CallSid", "CAunknown"), ("CallStatus", "ringing")];
    expect_not_found(app.carrier_post(status_path, &token, &unknown).await).await;
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
        .json(&json!({"CallSid": sid}));
    let json_body = json_body.send().await.unwrap();
    expect_code(json_body, "unsupported_media_type", "a JSON body").await;

    // Incoming: unknown number, bad signature, bad To, overlong From.
    let (t, long_from) = (token.as_str(), "9".repeat(65));
    for (auth, from, to, code) in [
        (t, "+13125550177", "+12025550199", "not_found"),
        ("wrong", "+13125550177", "+12025550100", "invalid_signature"),
        (t, "+13125550177", "garbage", "invalid_parameter"),
        (t, long_from.as_str(), "+12025550100", "invalid_parameter"),
    ] {
        let params = [("CallSid", "CAx"), ("From", from), ("To", to)];
        let what = format!("incoming {params:?}");
        expect_code(app.carrier_post(INCOMING, auth, &params).await, code, &what).await;
    }

    let call_path = format!("/v1/calls/{}", call["id"].as_str().unwrap());
    let after = app.get_ok(&call_path, &app.a.token).await;
    assert_eq!(after["status"], "queued");
    assert_eq!(after["version"], 1);
    assert_eq!(app.count_rows("calls").await, 1);
    assert_eq!(app.count_rows("call_events").await, 1);
}

#[tokio::test]
async fn a_recording_of_a_voicemail_call_becomes_a_voicemail_once() {
    let app = spawn_app().await;
    let routed = incoming(&app, "CAvm1", "+13125550177").await;
    assert_eq!(routed["action"], "voicemail");
    let params = [
        ("CallSid", "CAvm1"),
        ("RecordingSid", "RE123"),
        ("RecordingUrl", "https://recordings.example/RE123.wav"),
        ("RecordingDuration", "17"),
    ];
    let (status, ack) = json_of(recording(&app, &params).await).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(
        (ack["result"].as_str(), ack["action"].as_str()),
        (Some("created"), Some("voicemail"))
    );
    let (_, again) = json_of(recording(&app, &params).await).await;
    assert_eq!(again["result"], "duplicate");

    let list = app
        .get_ok("/v1/voicemails?unlistened=true", &app.a.token)
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
    let (path, listen) = (
        format!("/v1/voicemails/{id}"),
        format!("/v1/voicemails/{id}/listened"),
    );

    let (status, listened) = json_of(app.post(&listen, &app.a.token, json!({})).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listened["listened"], true);
    let first_listen = listened["listened_at"].clone();
    let (_, twice) = json_of(app.post(&listen, &app.a.token, json!({})).await).await;
    assert_eq!(
        twice["listened_at"], first_listen,
        "the first listen is kept"
    );
    let unlistened = app
        .get_ok("/v1/voicemails?unlistened=true", &app.a.token)
        .await;
    assert_eq!(unlistened["data"], json!([]));

    // Another tenant sees none of it.
    app.expect_hidden_from(&app.b, &path).await;
    expect_not_found(app.post(&listen, &app.b.token, json!({})).await).await;
    expect_not_found(app.delete(&path, &app.b.token).await).await;
    assert_eq!(
        app.get_ok("/v1/voicemails", &app.b.token).await["data"],
        json!([])
    );

    let deleted = app.delete(&path, &app.a.token).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_not_found(app.get(&path, &app.a.token).await).await;
    let bad_path = app.get("/v1/voicemails/not-a-uuid", &app.a.token).await;
    expect_error(bad_path, StatusCode::BAD_REQUEST, "invalid_path").await;
    let bad_query = app
        .get("/v1/voicemails?unlistened=maybe", &app.a.token)
        .await;
    expect_error(bad_query, StatusCode::BAD_REQUEST, "invalid_query").await;
}

#[tokio::test]
async fn a_recording_of_an_answered_call_is_kept_as_a_call_recording() {
    let app = spawn_app().await;
    let call = app.originate(&app.a.token, "+13125550177").await;
    let sid = call["carrier_sid"].as_str().unwrap();
    let params = [
        ("CallSid", sid),
        ("RecordingSid", "RE999"),
        ("RecordingUrl", "https://recordings.example/RE999.wav"),
        ("RecordingDuration", "60"),
    ];
    let (_, ack) = json_of(recording(&app, &params).await).await;
    assert_eq!(
        (ack["result"].as_str(), ack["action"].as_str()),
        (Some("created"), Some("recording"))
    );
    assert_eq!(app.count_rows("recordings").await, 1);
    assert_eq!(app.count_rows("voicemails").await, 0);
    let call_path = format!("/v1/calls/{}", call["id"].as_str().unwrap());
    let after = app.get_ok(&call_path, &app.a.token).await;
    assert_eq!(after["version"], 2, "the recording is a change to the call");
    let history = app
        .get_ok(&format!("{call_path}/events"), &app.a.token)
        .await;
    let last = history["data"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["source"].as_str()),
        (Some("recording"), Some("carrier")),
        "the recording is in the call's history: {history}"
    );
    assert_eq!(last["data"]["duration_seconds"], 60);
    let bad = [
        ("CallSid", sid),
        ("RecordingSid", "RE1000"),
        ("RecordingUrl", "ftp://nope"),
    ];
    let response = recording(&app, &bad).await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(app.count_rows("recordings").await, 1);
}

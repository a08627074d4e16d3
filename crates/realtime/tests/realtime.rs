//! The realtime server end to end: a real API and real realtime instances on
//! port 0, real PostgreSQL and Redis, and Socket.IO clients speaking the
//! wire protocol.

use std::{net::SocketAddr, time::Duration};

use rand::seq::SliceRandom;
use serde_json::{Value, json};
use switchboard_core::{
    auth::{Claims, TokenKeys},
    events::{Envelope, EventPublisher, EventType},
    presence::{PresenceStatus, PresenceStore},
};
use switchboard_testkit::{
    KillableServer, PASSWORD, RealtimeServer, SioClient, TestApp, eventually, spawn_app,
};
use uuid::Uuid;

fn publisher(app: &TestApp) -> EventPublisher {
    let pool = switchboard_core::redis::pool(&app.settings).expect("redis pool");
    EventPublisher::new(pool, app.settings.clone())
}

fn presence(app: &TestApp) -> PresenceStore {
    let pool = switchboard_core::redis::pool(&app.settings).expect("redis pool");
    PresenceStore::new(pool, app.settings.clone())
}

async fn insert_call(app: &TestApp, tenant_id: Uuid, agent_id: Option<Uuid>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO calls (id, tenant_id, direction, from_number, to_number, status, agent_id)
         VALUES ($1, $2, 'outbound', '+12025550100', '+12025550101', 'queued', $3)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(agent_id)
    .execute(&app.db.pool)
    .await
    .expect("insert call");
    id
}

fn call_event(
    tenant_id: Uuid,
    call_id: Uuid,
    version: i64,
    status: &str,
    agent: Option<Uuid>,
) -> Envelope {
    Envelope::new(
        tenant_id,
        if version == 1 {
            EventType::CallCreated
        } else {
            EventType::CallStatus
        },
        json!({
            "id": call_id,
            "tenant_id": tenant_id,
            "direction": "outbound",
            "status": status,
            "agent_id": agent,
            "version": version,
        }),
    )
}

fn is_presence_of(agent: Uuid, status: &'static str) -> impl Fn(&Value) -> bool {
    move |event: &Value| {
        event["data"]["agent_id"] == agent.to_string() && event["data"]["status"] == status
    }
}

/// A socket of tenant A's admin, who sees the tenant's presence changes.
async fn admin_socket(app: &TestApp, addr: SocketAddr) -> SioClient {
    let token = app.login(&app.a.admin_email, PASSWORD).await;
    SioClient::with_token(addr, &token).await
}

/// Connects tenant A's admin at `watch`, then tenant A's agent at `join`;
/// returns both sockets once the admin has seen the agent become available.
async fn agent_seen_joining(
    app: &TestApp,
    watch: SocketAddr,
    join: SocketAddr,
) -> (SioClient, SioClient) {
    let mut observer = admin_socket(app, watch).await;
    let agent = SioClient::with_token(join, &app.a.token).await;
    presence_change(&mut observer, app.a.agent_id, "available").await;
    (observer, agent)
}

/// Waits until `client` is told `agent` is now `status`; returns the event.
async fn presence_change(client: &mut SioClient, agent: Uuid, status: &'static str) -> Value {
    client
        .next_event_where("presence:changed", is_presence_of(agent, status))
        .await
}

/// An access token for tenant A's agent, issued and expiring these many
/// seconds from now.
fn agent_token(app: &TestApp, issued: i64, expires: i64) -> (String, Claims) {
    let now = chrono::Utc::now().timestamp();
    TokenKeys::new(&app.settings).encode(Claims {
        sub: app.a.agent_id,
        tid: app.a.id,
        role: switchboard_core::auth::Role::Agent,
        jti: Uuid::new_v4(),
        iat: now + issued,
        exp: now + expires,
    })
}

#[tokio::test]
async fn a_valid_token_connects_and_bad_tokens_are_refused_with_a_reason() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;

    let socket = SioClient::with_token(rt.addr, &app.a.token).await;
    assert!(!socket.sid.is_empty());

    let refused = |auth: Value| {
        let addr = rt.addr;
        async move {
            let error = SioClient::connect(addr, auth).await.err().expect("refused");
            error["message"].as_str().expect("a reason").to_string()
        }
    };
    assert!(refused(json!({})).await.starts_with("token_missing"));
    assert!(refused(Value::Null).await.starts_with("token_missing"));
    assert!(
        refused(json!({"token": "not.a.jwt"}))
            .await
            .starts_with("token_invalid")
    );

    let (expired, _) = agent_token(&app, -7200, -3600);
    assert!(
        refused(json!({"token": expired}))
            .await
            .starts_with("token_expired")
    );

    let token = app.login(&app.a.agent_email, PASSWORD).await;
    let response = app.post("/v1/auth/logout", &token, json!({})).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        refused(json!({"token": token}))
            .await
            .starts_with("token_revoked")
    );
}

#[tokio::test]
async fn an_api_write_reaches_the_tenants_sockets_and_not_another_tenants() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let mut alpha = SioClient::with_token(rt.addr, &app.a.token).await;
    let mut bravo = SioClient::with_token(rt.addr, &app.b.token).await;

    let created = app
        .create_customer(
            &app.a.token,
            json!({"name": "Ada Lovelace", "phone": "+12025550123"}),
        )
        .await;
    let event = alpha
        .next_event_where("customer:created", |e| e["data"]["id"] == created["id"])
        .await;
    assert_eq!(event["type"], "customer.created");
    assert_eq!(event["tenant_id"], app.a.id.to_string());
    assert!(event["id"].is_string() && event["occurred_at"].is_string());

    // Bravo's own write is relayed after alpha's (one relay, in order), so
    // once bravo sees it, anything of alpha's would already have arrived.
    let theirs = app
        .create_customer(
            &app.b.token,
            json!({"name": "Grace Hopper", "phone": "+12025550124"}),
        )
        .await;
    bravo
        .next_event_where("customer:created", |e| e["data"]["id"] == theirs["id"])
        .await;
    for (name, event) in bravo.received() {
        assert_eq!(
            event["tenant_id"],
            app.b.id.to_string(),
            "bravo received {name} of another tenant: {event}"
        );
    }
}

#[tokio::test]
async fn call_watch_only_accepts_calls_of_the_sockets_tenant() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let call = insert_call(&app, app.a.id, None).await;
    let mut alpha = SioClient::with_token(rt.addr, &app.a.token).await;
    let mut bravo = SioClient::with_token(rt.addr, &app.b.token).await;

    let foreign = bravo
        .emit_with_ack("call:watch", json!({"call_id": call}))
        .await;
    assert_eq!(foreign["error"]["code"], "not_found", "{foreign}");
    let missing = alpha
        .emit_with_ack("call:watch", json!({"call_id": Uuid::now_v7()}))
        .await;
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");
    let bad = alpha
        .emit_with_ack("call:watch", json!({"call_id": "not-a-uuid"}))
        .await;
    assert_eq!(bad["error"]["code"], "invalid_payload", "{bad}");

    let watched = alpha
        .emit_with_ack("call:watch", json!({"call_id": call}))
        .await;
    assert_eq!(watched["ok"], true, "{watched}");
    assert_eq!(watched["call_id"], call.to_string());

    let events = publisher(&app);
    events
        .publish(&call_event(app.a.id, call, 1, "queued", None))
        .await
        .unwrap();
    let event = alpha.next_event("call:created").await;
    assert_eq!(event["data"]["id"], call.to_string());
    // Delivered once, even though the socket is in both the tenant and the call room.
    events
        .publish(&call_event(app.a.id, call, 2, "ringing", None))
        .await
        .unwrap();
    alpha.next_event("call:status").await;
    let created: Vec<_> = alpha
        .received()
        .into_iter()
        .filter(|(name, _)| name == "call:created")
        .collect();
    assert!(created.is_empty(), "duplicate delivery: {created:?}");

    let unwatched = alpha
        .emit_with_ack("call:unwatch", json!({"call_id": call}))
        .await;
    assert_eq!(unwatched["ok"], true, "{unwatched}");

    // The other tenant saw none of it.
    bravo
        .emit_with_ack("presence:set", json!({"status": "away"}))
        .await;
    assert!(
        bravo
            .received()
            .iter()
            .all(|(name, _)| !name.starts_with("call:")),
        "bravo received another tenant's call events"
    );
}

#[tokio::test]
async fn one_calls_events_reach_sockets_in_version_order_under_concurrent_publishing() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let mut socket = SioClient::with_token(rt.addr, &app.a.token).await;
    let events = publisher(&app);
    let calls = [Uuid::now_v7(), Uuid::now_v7()];
    const VERSIONS: i64 = 40;

    for call in calls {
        events
            .publish(&call_event(app.a.id, call, 1, "queued", None))
            .await
            .unwrap();
    }
    // Versions 2..=40 of both calls, shuffled, published from 8 tasks at once.
    let mut rest: Vec<(Uuid, i64)> = calls
        .iter()
        .flat_map(|c| (2..=VERSIONS).map(move |v| (*c, v)))
        .collect();
    rest.shuffle(&mut rand::rng());
    let chunks: Vec<Vec<(Uuid, i64)>> = rest.chunks(10).map(<[_]>::to_vec).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let events = events.clone();
            let tenant = app.a.id;
            tokio::spawn(async move {
                for (call, version) in chunk {
                    events
                        .publish(&call_event(tenant, call, version, "ringing", None))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    // Wait for all 80 events, then read them in arrival order.
    let mut arrived = Vec::new();
    for _ in 0..400 {
        arrived = socket
            .received()
            .into_iter()
            .filter(|(name, _)| name.starts_with("call:"))
            .collect();
        if arrived.len() >= calls.len() * VERSIONS as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for call in calls {
        let versions: Vec<i64> = arrived
            .iter()
            .filter(|(_, e)| e["data"]["id"] == call.to_string())
            .map(|(_, e)| e["data"]["version"].as_i64().expect("version"))
            .collect();
        assert_eq!(
            versions,
            (1..=VERSIONS).collect::<Vec<_>>(),
            "call {call} delivered out of order or incompletely"
        );
    }
}

#[tokio::test]
async fn presence_set_on_one_instance_is_seen_by_a_socket_on_another() {
    let app = spawn_app().await;
    let instance_a = RealtimeServer::start(app.settings.clone()).await;
    let instance_b = RealtimeServer::start(app.settings.clone()).await;
    let mut outsider = SioClient::with_token(instance_a.addr, &app.b.token).await;
    let (mut observer, mut agent) =
        agent_seen_joining(&app, instance_a.addr, instance_b.addr).await;
    let ack = agent
        .emit_with_ack("presence:set", json!({"status": "away"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["presence"]["status"], "away");
    assert_eq!(ack["changed"], true);
    let event = presence_change(&mut observer, app.a.agent_id, "away").await;
    assert_eq!(event["type"], "presence.changed");
    assert_eq!(event["tenant_id"], app.a.id.to_string());

    // Setting the same status again changes nothing and publishes nothing.
    let again = agent
        .emit_with_ack("presence:set", json!({"status": "away"}))
        .await;
    assert_eq!(again["changed"], false, "{again}");

    let stored = presence(&app)
        .get(app.a.id, app.a.agent_id)
        .await
        .unwrap()
        .expect("presence stored");
    assert_eq!(stored.status, PresenceStatus::Away);

    // Another tenant's socket on the same instance heard none of it.
    outsider
        .emit_with_ack("presence:set", json!({"status": "busy"}))
        .await;
    presence_change(&mut outsider, app.b.agent_id, "busy").await;
    assert!(
        outsider
            .received()
            .iter()
            .all(|(_, e)| e["tenant_id"] == app.b.id.to_string())
    );
}

#[tokio::test]
async fn an_agent_goes_offline_only_when_the_last_tab_closes() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let store = presence(&app);
    let mut observer = admin_socket(&app, rt.addr).await;

    let tab_1 = SioClient::with_token(rt.addr, &app.a.token).await;
    let tab_2 = SioClient::with_token(rt.addr, &app.a.token).await;
    presence_change(&mut observer, app.a.agent_id, "available").await;
    assert_eq!(
        store.live_sockets(app.a.id, app.a.agent_id).await.unwrap(),
        2
    );

    tab_1.close();
    eventually("the first tab's disconnect is processed", || async {
        store.live_sockets(app.a.id, app.a.agent_id).await.unwrap() == 1
    })
    .await;
    let still = store.get(app.a.id, app.a.agent_id).await.unwrap().unwrap();
    assert_eq!(still.status, PresenceStatus::Available);

    tab_2.close();
    presence_change(&mut observer, app.a.agent_id, "offline").await;
    let offline_events = observer
        .received()
        .into_iter()
        .filter(|(_, e)| is_presence_of(app.a.agent_id, "offline")(e))
        .count();
    assert_eq!(offline_events, 0, "offline published more than once");
}

#[tokio::test]
async fn agents_of_a_killed_instance_go_offline_after_their_heartbeats_expire() {
    let app = spawn_app().await;
    let doomed = KillableServer::start(app.settings.clone()).await;
    let survivor = RealtimeServer::start(app.settings.clone()).await;
    let (mut observer, _agent) = agent_seen_joining(&app, survivor.addr, doomed.addr).await;

    // No disconnect handler runs: only the expiry of the heartbeats can
    // tell the survivor that the agent is gone.
    doomed.kill();
    let event = presence_change(&mut observer, app.a.agent_id, "offline").await;
    assert_eq!(event["tenant_id"], app.a.id.to_string());
    let stored = presence(&app)
        .get(app.a.id, app.a.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, PresenceStatus::Offline);
}

#[tokio::test]
async fn malformed_and_unknown_client_events_get_error_acks_and_break_nothing() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let mut socket = SioClient::with_token(rt.addr, &app.a.token).await;
    let mut bystander = admin_socket(&app, rt.addr).await;

    for (payload, code) in [
        (r#"["presence:set","away"]"#, "invalid_payload"),
        (
            r#"["presence:set",{"status":"sleeping"}]"#,
            "invalid_payload",
        ),
        (
            r#"["presence:set",{"status":"away","extra":1}]"#,
            "invalid_payload",
        ),
        (r#"["presence:set"]"#, "invalid_payload"),
        (r#"["presence:set",null]"#, "invalid_payload"),
        (r#"["presence:set",[1,2,3]]"#, "invalid_payload"),
        (r#"["call:watch",{}]"#, "invalid_payload"),
        (r#"["call:watch",42]"#, "invalid_payload"),
        (r#"["call:unwatch",{"call_id":7}]"#, "invalid_payload"),
        (r#"["no:such:event",{"x":1}]"#, "unknown_event"),
        (r#"["",{}]"#, "unknown_event"),
    ] {
        let ack = socket.ack_raw(payload).await;
        assert_eq!(ack["error"]["code"], code, "{payload} → {ack}");
        assert!(ack["error"]["message"].is_string(), "{ack}");
    }
    // Without an ack id there is nothing to answer, and nothing breaks.
    socket.emit("no:such:event", json!(1));
    socket.emit("presence:set", json!("garbage"));
    let ack = socket
        .emit_with_ack("presence:set", json!({"status": "busy"}))
        .await;
    assert_eq!(ack["ok"], true, "the socket still works: {ack}");

    // A frame that is not Socket.IO at all may cost the sender its
    // connection, never anyone else's.
    socket.send_raw("42[this is not json");
    socket.send_raw("\u{0}\u{1}garbage");
    let ack = bystander
        .emit_with_ack("presence:set", json!({"status": "away"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let fresh = SioClient::with_token(rt.addr, &app.a.token).await;
    assert!(!fresh.sid.is_empty());
}

/// The relay delivers call events in order and leaves presence alone: the
/// API moves presence where it writes the status
/// (`switchboard_api::calls::lifecycle::follow_presence`); following the
/// relayed events too did the work once more per realtime instance.
#[tokio::test]
async fn call_status_events_are_relayed_in_order_and_leave_presence_to_the_api() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let mut agent = SioClient::with_token(rt.addr, &app.a.token).await;
    presence_change(&mut agent, app.a.agent_id, "available").await;
    let call = Uuid::now_v7();
    let events = publisher(&app);
    let me = Some(app.a.agent_id);
    for (version, status) in [(1, "queued"), (2, "ringing"), (3, "in-progress")] {
        events
            .publish(&call_event(app.a.id, call, version, status, me))
            .await
            .unwrap();
    }
    // The awaited event is taken out of what `received` lists.
    let last = agent
        .next_event_where("call:status", |e: &Value| {
            e["data"]["status"] == "in-progress"
        })
        .await;
    // The relay handles one tenant's events in order: once a later event
    // has reached the socket, the relay is done with the call's, and any
    // presence change of its own would have been made (and published).
    events
        .publish(&Envelope::new(
            app.a.id,
            EventType::CampaignProgress,
            json!({"id": Uuid::now_v7(), "sent": 1, "total": 2}),
        ))
        .await
        .unwrap();
    agent.next_event("campaign:progress").await;
    let mut statuses: Vec<String> = agent
        .received()
        .into_iter()
        .filter(|(name, _)| name == "call:status")
        .map(|(_, e)| e["data"]["status"].as_str().unwrap_or_default().to_string())
        .collect();
    statuses.push(
        last["data"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    assert_eq!(statuses, ["ringing", "in-progress"]);
    let stored = presence(&app)
        .get(app.a.id, app.a.agent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.status,
        PresenceStatus::Available,
        "the relay moved presence"
    );
    assert!(
        !agent.received().iter().any(
            |(name, e)| name == "presence:changed" && is_presence_of(app.a.agent_id, "busy")(e)
        ),
        "the relay published a presence change"
    );
}

#[tokio::test]
async fn graceful_shutdown_disconnects_clients_and_takes_their_agents_offline() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let addr = rt.addr;
    let socket = SioClient::with_token(addr, &app.a.token).await;
    let store = presence(&app);
    eventually("the agent is available", || async {
        store
            .get(app.a.id, app.a.agent_id)
            .await
            .unwrap()
            .is_some_and(|p| p.status == PresenceStatus::Available)
    })
    .await;

    rt.stop().await.expect("clean shutdown");
    socket.wait_closed().await;
    let stored = store.get(app.a.id, app.a.agent_id).await.unwrap().unwrap();
    assert_eq!(stored.status, PresenceStatus::Offline);
    // Nothing is accepted any more.
    assert!(reqwest::get(format!("http://{addr}/health")).await.is_err());
}

#[tokio::test]
async fn heartbeats_keep_a_long_lived_socket_and_its_agent_online() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let store = presence(&app);
    let mut socket = SioClient::with_token(rt.addr, &app.a.token).await;
    // Several socket TTLs (0.9 s) and past the admission grace (5 s): only
    // heartbeats can keep the socket registered this long.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        store.live_sockets(app.a.id, app.a.agent_id).await.unwrap(),
        1
    );
    let stored = store.get(app.a.id, app.a.agent_id).await.unwrap().unwrap();
    assert_eq!(stored.status, PresenceStatus::Available);
    let ack = socket
        .emit_with_ack("presence:set", json!({"status": "away"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
}

#[tokio::test]
async fn a_socket_is_told_and_disconnected_when_its_token_expires() {
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;
    let (short_lived, claims) = agent_token(&app, 0, 2);
    let mut expiring = SioClient::with_token(rt.addr, &short_lived).await;
    let mut lasting = SioClient::with_token(rt.addr, &app.a.token).await;

    let ended = expiring.next_event("session:expired").await;
    assert!(chrono::Utc::now().timestamp() >= claims.exp, "ended early");
    assert_eq!(ended["type"], "session.expired");
    assert_eq!(ended["tenant_id"], json!(app.a.id));
    assert_eq!(ended["data"]["reason"], "token_expired");
    assert_eq!(ended["data"]["agent_id"], json!(app.a.agent_id));
    expiring.wait_closed().await;

    // A socket whose token is still valid stays connected and working.
    let ack = lasting
        .emit_with_ack("presence:set", json!({"status": "away"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert!(!lasting.is_closed());
}

#[tokio::test]
async fn logging_out_disconnects_that_sessions_sockets_on_every_instance() {
    let app = spawn_app().await;
    let first = RealtimeServer::start(app.settings.clone()).await;
    let second = RealtimeServer::start(app.settings.clone()).await;
    let token = app.login(&app.a.agent_email, PASSWORD).await;
    let mut on_first = SioClient::with_token(first.addr, &token).await;
    let mut on_second = SioClient::with_token(second.addr, &token).await;
    let mut other_session = SioClient::with_token(first.addr, &app.a.token).await;

    let response = app.post("/v1/auth/logout", &token, json!({})).await;
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);

    for socket in [&mut on_first, &mut on_second] {
        let ended = socket.next_event("session:expired").await;
        assert_eq!(ended["data"]["reason"], "token_revoked");
        socket.wait_closed().await;
    }
    // The same agent's other session is not logged out.
    let ack = other_session
        .emit_with_ack("presence:set", json!({"status": "available"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    // And the revoked token cannot come back.
    let refused = SioClient::connect(first.addr, json!({"token": token}))
        .await
        .err()
        .expect("refused");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("token_revoked"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_logout_reaches_the_socket_at_once_not_at_the_next_revocation_sweep() {
    let app = spawn_app().await;
    // Sweeps (and heartbeats) far apart: only the revocation channel can
    // end the session within the test's wait.
    let config = switchboard_realtime::RealtimeConfig {
        heartbeat_interval: Duration::from_secs(600),
        socket_ttl: Duration::from_secs(1800),
        ..switchboard_testkit::test_config()
    };
    let rt = RealtimeServer::start_with(app.settings.clone(), config).await;
    let token = app.login(&app.a.agent_email, PASSWORD).await;
    let mut socket = SioClient::with_token(rt.addr, &token).await;
    let response = app.post("/v1/auth/logout", &token, json!({})).await;
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let ended = socket.next_event("session:expired").await;
    assert_eq!(ended["data"]["reason"], "token_revoked");
    socket.wait_closed().await;
}

//! The official JavaScript client (`socket.io-client` from npm, under Node)
//! works against the server unchanged: it authenticates, sets presence and
//! receives a `call:status` event.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use switchboard_core::events::{Envelope, EventPublisher, EventType};
use switchboard_testkit::{RealtimeServer, spawn_app};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};
use uuid::Uuid;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Installs the locked client once, so `cargo test` works on a clean clone.
async fn ensure_node_modules() {
    let dir = js_dir();
    if dir
        .join("node_modules/socket.io-client/package.json")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await
        .expect("npm is installed");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

#[tokio::test]
async fn the_official_javascript_client_connects_sets_presence_and_receives_call_status() {
    ensure_node_modules().await;
    let app = spawn_app().await;
    let rt = RealtimeServer::start(app.settings.clone()).await;

    let mut child = Command::new("node")
        .arg("client.mjs")
        .current_dir(js_dir())
        .env("REALTIME_URL", format!("http://{}", rt.addr))
        .env("TOKEN", &app.a.token)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the script answers within 30 s")
            .expect("readable stdout")
            .expect("the script is still running")
    };

    let refused = next_line().await;
    assert!(
        refused.starts_with("REFUSED token_invalid"),
        "a bad token must be refused with a reason: {refused}"
    );
    let ack = next_line().await;
    let ack: Value =
        serde_json::from_str(ack.strip_prefix("ACK ").expect("an ACK line")).expect("ack JSON");
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["presence"]["status"], "available");
    assert_eq!(next_line().await, "READY");

    let call_id = Uuid::now_v7();
    let pool = switchboard_core::redis::pool(&app.settings).expect("redis pool");
    EventPublisher::new(pool, app.settings.clone())
        .publish(&Envelope::new(
            app.a.id,
            EventType::CallStatus,
            json!({"id": call_id, "tenant_id": app.a.id, "status": "ringing", "version": 2}),
        ))
        .await
        .expect("publish");

    let event = next_line().await;
    let event: Value = serde_json::from_str(event.strip_prefix("EVENT ").expect("an EVENT line"))
        .expect("event JSON");
    assert_eq!(event["type"], "call.status");
    assert_eq!(event["tenant_id"], app.a.id.to_string());
    assert_eq!(event["data"]["id"], call_id.to_string());
    assert_eq!(event["data"]["status"], "ringing");

    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the script exits")
        .expect("exit status");
    assert!(status.success(), "{status}");
}

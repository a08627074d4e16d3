//! `/health`, `/ready` and `/metrics` on the Socket.IO port. In its own test
//! binary without the API, so this server's Prometheus recorder is the one
//! installed in the process.

use serde_json::{Value, json};
use switchboard_core::{
    auth::{Role, TokenKeys},
    events::{Envelope, EventPublisher, EventType},
};
use switchboard_testkit::http::{get_text, send_json};
use switchboard_testkit::{RealtimeServer, SioClient, TestDatabase};
use uuid::Uuid;

#[tokio::test]
async fn health_ready_and_metrics_describe_sockets_and_events() {
    let db = TestDatabase::new().await;
    let settings = db.settings();
    let rt = RealtimeServer::start(settings.clone()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", rt.addr);

    let health = send_json(http.get(url("/health"))).await;
    assert_eq!(health["status"], "ok");
    let response = http.get(url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["checks"]["relay"], "ok", "{ready}");

    let tenant = Uuid::now_v7();
    let (token, _) = TokenKeys::new(&settings).issue(Uuid::now_v7(), tenant, Role::Agent);
    let mut socket = SioClient::with_token(rt.addr, &token).await;
    let pool = switchboard_core::redis::pool(&settings).expect("redis pool");
    EventPublisher::new(pool, settings.clone())
        .publish(&Envelope::new(
            tenant,
            EventType::CampaignProgress,
            json!({"id": Uuid::now_v7(), "sent": 1, "total": 2}),
        ))
        .await
        .unwrap();
    socket.next_event("campaign:progress").await;

    let metrics = get_text(&http, &url("/metrics")).await;
    for expected in [
        "realtime_connected_sockets 1",
        "realtime_events_in_total{type=\"campaign.progress\"}",
        "realtime_events_out_total{type=\"campaign.progress\"}",
        "realtime_emit_latency_seconds_bucket",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in:\n{metrics}"
        );
    }
}

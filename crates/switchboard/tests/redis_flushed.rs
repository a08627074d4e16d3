//! Redis emptied in the middle of a campaign: the queues live in
//! PostgreSQL, so nothing is lost and nothing is sent twice.
//!
//! Its own test binary, because `FLUSHALL` empties the whole Redis server:
//! cargo runs test binaries one after another, so no other test's keys
//! are in Redis while this one runs.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use secrecy::ExposeSecret;
use support::Stack;
use switchboard_core::redis::redis;

#[tokio::test]
async fn redis_emptied_mid_campaign_loses_no_message_and_sends_none_twice() {
    let stack = Stack::start(|_| {}).await;
    // 200 messages/s: the 1 000 sends take about five seconds.
    sqlx::query("UPDATE tenants SET sms_rate_per_second = 200")
        .execute(&stack.db.pool)
        .await
        .unwrap();
    let numbers: Vec<String> = (0..1000).map(|i| format!("+1202557{i:04}")).collect();
    let id = stack.campaign(&numbers).await;
    stack
        .wait_until_sql(
            &format!("SELECT count(*) >= 150 FROM messages WHERE campaign_id = '{id}' AND status <> 'queued'"),
            Duration::from_secs(60),
        )
        .await;
    let client = redis::Client::open(stack.settings.redis_url.expose_secret()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let handed_over: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE campaign_id = $1::uuid AND status <> 'queued'",
    )
    .bind(&id)
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert!(
        handed_over < 1000,
        "flushed mid-campaign ({handed_over} handed over)"
    );

    stack
        .assert_campaign_sent_exactly_once(&id, 1000, Duration::from_secs(120))
        .await;
}

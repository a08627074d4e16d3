//! Redis emptied in the middle of a campaign: the queues live in
//! PostgreSQL, so nothing is lost and nothing is sent twice.
//!
//! Its own test binary, because `FLUSHALL` empties the whole Redis server:
//! cargo runs test binaries one after another, so no other test's keys
//! are in Redis while this one runs.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secrecy::ExposeSecret;
use switchboard_core::redis::redis;
use switchboard_testkit::Stack;

#[tokio::test]
async fn redis_emptied_mid_campaign_loses_no_message_and_sends_none_twice() {
    let stack = Stack::start(|_| {}).await;
    let id = stack.campaign_under_way("557").await;
    let client = redis::Client::open(stack.settings.redis_url.expose_secret()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let handed_over = stack.handed_over(&id).await;
    assert!(
        handed_over < 1000,
        "flushed mid-campaign ({handed_over} handed over)"
    );

    stack
        .assert_campaign_sent_exactly_once(&id, 1000, Duration::from_secs(120))
        .await;
}

//! A tenant's live events as a test sees them: the envelopes published on
//! its Redis channel, the way the realtime relay receives them.

use std::time::Duration;

use deadpool_redis::redis::{self, aio::PubSubStream};
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::Value;
use switchboard_core::{Settings, events::events_channel};
use uuid::Uuid;

/// The event envelopes published for one tenant, from the moment of
/// subscribing.
pub struct TenantEvents {
    messages: PubSubStream,
}

impl TenantEvents {
    /// Subscribes to `tenant`'s event channel (returns once subscribed, so
    /// nothing published afterwards is missed).
    pub async fn subscribe(settings: &Settings, tenant: Uuid) -> Self {
        let client = redis::Client::open(settings.redis_url.expose_secret()).expect("Redis URL");
        let mut pubsub = client.get_async_pubsub().await.expect("Redis pub/sub");
        pubsub
            .subscribe(events_channel(settings, tenant))
            .await
            .expect("subscribe to the tenant's events");
        Self {
            messages: pubsub.into_on_message(),
        }
    }

    /// The next envelope, waiting `within` at the most.
    pub async fn next(&mut self, within: Duration) -> Value {
        let message = tokio::time::timeout(within, self.messages.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {within:?}"))
            .expect("the subscription stays open");
        let payload: String = message.get_payload().expect("a text payload");
        serde_json::from_str(&payload).expect("an event envelope in JSON")
    }

    /// The next envelope of type `kind` (others are skipped), waiting
    /// `within` at the most for each.
    pub async fn next_of(&mut self, kind: &str, within: Duration) -> Value {
        loop {
            let envelope = self.next(within).await;
            if envelope["type"] == kind {
                return envelope;
            }
        }
    }
}

//! `webhook.deliver`: POSTs one event to one tenant webhook, signed.
//!
//! The body is the event envelope as JSON. Headers:
//! `Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! (verify by recomputing, comparing in constant time and rejecting old
//! timestamps, as with Stripe's and Twilio's newer schemes),
//! `Switchboard-Event-Id` and `Switchboard-Event-Type`. Any 2xx is success;
//! other statuses and timeouts are retried with backoff, then dead-lettered.
//! Each tenant has at most [`PER_TENANT_IN_FLIGHT`] deliveries running in a
//! worker: a slow endpoint delays its own events, never another tenant's.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_core::jobs::{self, Job, WebhookDeliver};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// The header a delivery's HMAC-SHA256 signature travels in.
pub const SIGNATURE_HEADER: &str = "Switchboard-Signature";
/// Deliveries one tenant may have running at once in one worker.
pub const PER_TENANT_IN_FLIGHT: usize = 8;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

static TENANT_SLOTS: LazyLock<Mutex<HashMap<Uuid, Arc<Semaphore>>>> =
    LazyLock::new(Default::default);

fn tenant_slots(tenant_id: Uuid) -> Arc<Semaphore> {
    let mut slots = TENANT_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    slots
        .entry(tenant_id)
        .or_insert_with(|| Arc::new(Semaphore::new(PER_TENANT_IN_FLIGHT)))
        .clone()
}

/// The signature header value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

impl Handler for WebhookDeliver {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let slots = tenant_slots(self.tenant_id);
        let Ok(_slot) = slots.try_acquire_owned() else {
            // This tenant's endpoint is busy: come back in a second without
            // spending an attempt, and leave the slot to other tenants.
            metrics::counter!("webhook_deliveries_deferred_total").increment(1);
            jobs::enqueue_in(&ctx.db, self, Duration::from_secs(1)).await?;
            ctx.queues.wake(WebhookDeliver::QUEUE);
            return Ok(());
        };
        let hook: Option<(String, String)> = sqlx::query_as(
            "SELECT url, secret FROM tenant_webhooks WHERE tenant_id = $1 AND id = $2 AND active",
        )
        .bind(self.tenant_id)
        .bind(self.webhook_id)
        .fetch_optional(&ctx.db)
        .await?;
        let Some((url, secret)) = hook else {
            // Removed or disabled since the event: nothing to deliver.
            return Ok(());
        };
        let body = serde_json::to_vec(&self.event).map_err(JobError::permanent)?;
        let timestamp = chrono::Utc::now().timestamp();
        let started = std::time::Instant::now();
        let response = ctx
            .http
            .post(&url)
            .timeout(DELIVERY_TIMEOUT)
            .header("content-type", "application/json")
            .header("user-agent", "Switchboard-Webhooks/1")
            .header(SIGNATURE_HEADER, signature(&secret, timestamp, &body))
            .header("Switchboard-Event-Id", self.event.id.to_string())
            .header("Switchboard-Event-Type", self.event.kind.as_str())
            .body(body)
            .send()
            .await;
        metrics::histogram!("webhook_delivery_seconds").record(started.elapsed().as_secs_f64());
        match response {
            Ok(r) if r.status().is_success() => {
                metrics::counter!("webhook_deliveries_total", "result" => "delivered").increment(1);
                Ok(())
            }
            Ok(r) => {
                metrics::counter!("webhook_deliveries_total", "result" => "rejected").increment(1);
                Err(JobError::transient(anyhow::anyhow!(
                    "{url} answered {}",
                    r.status()
                )))
            }
            Err(error) => {
                metrics::counter!("webhook_deliveries_total", "result" => "unreachable")
                    .increment(1);
                Err(JobError::transient(anyhow::anyhow!("{url}: {error}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_scheme() {
        // Independent check: python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"whsec_0123456789abcdef", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("whsec_0123456789abcdef", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=9f5e37cdc7ea587c7c02062d93283cad000d66a831b2a1676418696db47ed6c2"
        );
    }
}

//! `campaign.expand`: resolves a campaign's audience into messages.
//!
//! In one transaction it resolves the recipients (explicit customers,
//! explicit numbers, a customer search), drops duplicates and opted-out
//! numbers (counted), renders the template per recipient, inserts every
//! message, and marks the campaign `running`. The unique (campaign, number)
//! index makes a re-run insert nothing twice. The same transaction enqueues
//! the `sms.send` jobs, spread over time so the tenant's carrier send rate
//! (`tenants.sms_rate_per_second`) is honoured: message *i* is due
//! ⌊i / rate⌋ seconds after the expansion. A queued campaign message's
//! `updated_at` is set to the time it is due.

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use switchboard_core::{
    calls::Direction,
    events::EventType,
    ids::new_id,
    jobs::{self, CampaignExpand, Job, SmsSend},
    search::search_pattern,
    sms::{CampaignStatus, MessageStatus, segment},
    templates::{Variables, customer_variables, render},
};
use uuid::Uuid;

use super::lock_record;
use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// The stored audience (as the API normalised it).
#[derive(Debug, Default, Deserialize)]
struct Audience {
    #[serde(default)]
    customer_ids: Vec<Uuid>,
    #[serde(default)]
    phone_numbers: Vec<String>,
    customer_query: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
struct Recipient {
    phone: String,
    customer_id: Option<Uuid>,
    name: Option<String>,
    email: Option<String>,
    company: Option<String>,
}

/// Error code on a campaign message whose template needs a value the
/// recipient does not have.
pub const MISSING_VARIABLES_ERROR: &str = "template_variables_missing";

/// The campaign, locked, with what expanding it takes: its status,
/// audience and variables, its template's body and the tenant's send rate.
const CAMPAIGN: &str = "SELECT c.status, c.audience, c.variables, t.body, tn.sms_rate_per_second
     FROM campaigns c
     JOIN templates t ON t.tenant_id = c.tenant_id AND t.id = c.template_id
     JOIN tenants tn ON tn.id = c.tenant_id
     WHERE c.tenant_id = $1 AND c.id = $2
     FOR UPDATE OF c";

impl Handler for CampaignExpand {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let mut tx = ctx.db.begin().await?;
        let campaign: Option<(
            CampaignStatus,
            serde_json::Value,
            serde_json::Value,
            String,
            i32,
        )> = lock_record(&mut tx, CAMPAIGN, self.tenant_id, self.campaign_id).await?;
        let Some((status, audience, variables, template, rate)) = campaign else {
            return Ok(());
        };
        if status != CampaignStatus::Pending {
            // Expanded already, sends and all (this is a re-run).
            return Ok(());
        }
        let audience: Audience = serde_json::from_value(audience)
            .map_err(|e| JobError::permanent(anyhow::anyhow!("stored audience: {e}")))?;
        let shared: Variables = serde_json::from_value(variables)
            .map_err(|e| JobError::permanent(anyhow::anyhow!("stored variables: {e}")))?;

        let recipients = resolve(&mut tx, self.tenant_id, &audience).await?;
        let opted_out: HashSet<String> = sqlx::query_scalar(
            "SELECT phone FROM opt_outs WHERE tenant_id = $1 AND phone = ANY($2)",
        )
        .bind(self.tenant_id)
        .bind(
            recipients
                .iter()
                .map(|r| r.phone.clone())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();

        let from: Option<String> = sqlx::query_scalar(
            "SELECT number FROM phone_numbers WHERE tenant_id = $1 ORDER BY is_default DESC, number LIMIT 1",
        )
        .bind(self.tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let from = from.ok_or_else(|| {
            JobError::permanent(anyhow::anyhow!("the tenant has no number to send from"))
        })?;

        let now = Utc::now();
        let rate = rate.max(1) as i64;
        let mut rows = Rows::default();
        for recipient in recipients.iter().filter(|r| !opted_out.contains(&r.phone)) {
            let mut vars = shared.clone();
            if let Some(name) = &recipient.name {
                for (k, v) in customer_variables(
                    name,
                    recipient.email.as_deref(),
                    Some(&recipient.phone),
                    recipient.company.as_deref(),
                ) {
                    vars.entry(k).or_insert(v);
                }
            }
            let (body, status, error) = match render(&template, &vars) {
                Ok(body) => (body, MessageStatus::Queued, None),
                Err(_) => (
                    template.clone(),
                    MessageStatus::Failed,
                    Some(MISSING_VARIABLES_ERROR),
                ),
            };
            let seg = segment(&body);
            let due = now + chrono::Duration::seconds(rows.ids.len() as i64 / rate);
            rows.ids.push(new_id());
            rows.to.push(recipient.phone.clone());
            rows.bodies.push(body);
            rows.segments.push(seg.segments as i16);
            rows.encodings.push(seg.encoding.as_str());
            rows.customers.push(recipient.customer_id);
            rows.statuses.push(status.as_str());
            rows.errors.push(error);
            rows.due.push(due);
        }
        sqlx::query(
            "INSERT INTO messages (id, tenant_id, direction, from_number, to_number, body, status,
                                   segments, encoding, error_code, customer_id, campaign_id,
                                   template_id, created_at, updated_at)
             SELECT r.id, $1, $13, $2, r.to_number, r.body, r.status, r.segments, r.encoding,
                    r.error_code, r.customer_id, $3, c.template_id, now(), r.due
             FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::int2[], $9::text[],
                         $10::text[], $11::uuid[], $12::timestamptz[])
                  AS r(id, to_number, body, status, segments, encoding, error_code, customer_id, due)
             CROSS JOIN (SELECT template_id FROM campaigns WHERE id = $3) c
             ON CONFLICT (campaign_id, to_number) WHERE campaign_id IS NOT NULL DO NOTHING",
        )
        .bind(self.tenant_id)
        .bind(&from)
        .bind(self.campaign_id)
        .bind(&rows.ids)
        .bind(&rows.to)
        .bind(&rows.bodies)
        .bind(&rows.statuses)
        .bind(&rows.segments)
        .bind(&rows.encodings)
        .bind(&rows.errors)
        .bind(&rows.customers)
        .bind(&rows.due)
        .bind(Direction::Outbound)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE campaigns SET status = $5, started_at = now(),
                    total_recipients = $3, opted_out_count = $4
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant_id)
        .bind(self.campaign_id)
        .bind(recipients.len() as i32)
        .bind(opted_out.len() as i32)
        .bind(CampaignStatus::Running)
        .execute(&mut *tx)
        .await?;
        let sends = enqueue_sends(&mut tx, self).await?;
        tx.commit().await?;
        ctx.queues.wake(SmsSend::QUEUE);
        metrics::counter!("campaign_messages_created_total").increment(rows.ids.len() as u64);
        tracing::info!(
            campaign_id = %self.campaign_id,
            recipients = recipients.len(),
            opted_out = opted_out.len(),
            sends,
            rate,
            "campaign expanded"
        );
        publish_progress(ctx, self.tenant_id, self.campaign_id).await?;
        Ok(())
    }
}

#[derive(Default)]
struct Rows {
    ids: Vec<Uuid>,
    to: Vec<String>,
    bodies: Vec<String>,
    statuses: Vec<&'static str>,
    segments: Vec<i16>,
    encodings: Vec<&'static str>,
    errors: Vec<Option<&'static str>>,
    customers: Vec<Option<Uuid>>,
    due: Vec<DateTime<Utc>>,
}

/// The distinct recipient numbers, first source wins: explicit customers,
/// then explicit numbers (linked to the customer who has that number), then
/// the search. Customers without a phone cannot be texted and are left out.
async fn resolve(
    tx: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    audience: &Audience,
) -> Result<Vec<Recipient>, sqlx::Error> {
    let mut all: Vec<Recipient> = sqlx::query_as(
        "SELECT phone, id AS customer_id, name, email, company FROM customers
         WHERE tenant_id = $1 AND id = ANY($2) AND phone IS NOT NULL
         ORDER BY array_position($2, id)",
    )
    .bind(tenant_id)
    .bind(&audience.customer_ids)
    .fetch_all(&mut *tx)
    .await?;
    all.extend(
        sqlx::query_as::<_, Recipient>(
            "SELECT n.phone, c.id AS customer_id, c.name, c.email, c.company
             FROM unnest($2::text[]) WITH ORDINALITY AS n(phone, ord)
             LEFT JOIN customers c ON c.tenant_id = $1 AND c.phone = n.phone
             ORDER BY n.ord",
        )
        .bind(tenant_id)
        .bind(&audience.phone_numbers)
        .fetch_all(&mut *tx)
        .await?,
    );
    if let Some(q) = audience.customer_query.as_deref() {
        all.extend(
            sqlx::query_as::<_, Recipient>(
                "SELECT phone, id AS customer_id, name, email, company FROM customers
                 WHERE tenant_id = $1 AND search_text LIKE $2 AND phone IS NOT NULL
                 ORDER BY id",
            )
            .bind(tenant_id)
            .bind(search_pattern(q))
            .fetch_all(&mut *tx)
            .await?,
        );
    }
    let mut seen = HashSet::new();
    all.retain(|r| seen.insert(r.phone.clone()));
    Ok(all)
}

/// Enqueues `sms.send` for the campaign's queued messages in the
/// expansion's transaction, each due at its paced time; returns how many.
async fn enqueue_sends(
    tx: &mut sqlx::PgConnection,
    job: &CampaignExpand,
) -> Result<u64, sqlx::Error> {
    let queued: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, updated_at FROM messages
         WHERE campaign_id = $1 AND status = $2 ORDER BY updated_at, id",
    )
    .bind(job.campaign_id)
    .bind(MessageStatus::Queued)
    .fetch_all(&mut *tx)
    .await?;
    let now = Utc::now();
    let sends: Vec<(SmsSend, std::time::Duration)> = queued
        .into_iter()
        .map(|(message_id, due)| {
            (
                SmsSend {
                    tenant_id: job.tenant_id,
                    message_id,
                },
                (due - now).to_std().unwrap_or_default(),
            )
        })
        .collect();
    jobs::enqueue_many(&mut *tx, &sends).await
}

/// Counts a campaign's messages by status, completes it when none is still
/// on its way, and publishes `campaign.progress`. Returns whether it completed.
pub async fn publish_progress(
    ctx: &Ctx,
    tenant_id: Uuid,
    campaign_id: Uuid,
) -> Result<bool, JobError> {
    let progress: serde_json::Value = sqlx::query_scalar(
        "SELECT jsonb_object_agg(status, n) FROM (
             SELECT status, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY status
         ) s",
    )
    .bind(campaign_id)
    .fetch_one(&ctx.db)
    .await
    .map(|v: Option<serde_json::Value>| v.unwrap_or_else(|| serde_json::json!({})))?;
    let in_flight = MessageStatus::unsettled().any(|s| {
        progress
            .get(s.as_str())
            .and_then(|n| n.as_i64())
            .unwrap_or(0)
            > 0
    });
    let campaign: Option<(CampaignStatus, i32, i32)> = if in_flight {
        sqlx::query_as(
            "SELECT status, total_recipients, opted_out_count FROM campaigns WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .fetch_optional(&ctx.db)
        .await?
    } else {
        sqlx::query_as(
            "UPDATE campaigns SET status = $3, completed_at = COALESCE(completed_at, now())
             WHERE tenant_id = $1 AND id = $2 AND status IN ($3, $4)
             RETURNING status, total_recipients, opted_out_count",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(CampaignStatus::Completed)
        .bind(CampaignStatus::Running)
        .fetch_optional(&ctx.db)
        .await?
    };
    let Some((status, total, opted_out)) = campaign else {
        return Ok(false);
    };
    ctx.events
        .publish_new(
            tenant_id,
            EventType::CampaignProgress,
            serde_json::json!({
                "campaign_id": campaign_id,
                "status": status,
                "total_recipients": total,
                "opted_out_count": opted_out,
                "messages": progress,
            }),
        )
        .await;
    Ok(status == CampaignStatus::Completed)
}

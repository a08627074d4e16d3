//! SMS messaging (seed 000, scenario 3 "SMS Messaging Load": 100 messages a
//! minute, 50–160 characters, 20 concurrent conversations; send, receive,
//! templates, bulk messaging, status tracking). Twenty agents each keep a
//! conversation going at a paced 5 messages a minute (a template one time
//! in four); one time in three the customer answers (a signed inbound SMS,
//! timed webhook → socket); every sent message is followed to `delivered`
//! on the agent's socket (the simulator's receipts); the first agent also
//! sends one bulk campaign and follows its progress.

use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::json;
use uuid::Uuid;

use super::{
    About, Agent, LoadScenario, agent, await_event, await_final, id_of, log_in, logging_in,
    next_tick, record_scheduled,
};
use crate::{
    context::{Call, Tenant, current, fail, pick, signed_form, sms_body},
    profile::{Load, Shape, Tier},
    thresholds::{Rule, rule},
};

/// Seed 000's scenario 3.
pub struct Sms;

impl LoadScenario for Sms {
    fn about(&self) -> About {
        About::new(
            "sms",
            "seed 000 §Scenario 3 SMS Messaging Load (100/min, 20 conversations)",
        )
        .paced()
    }

    fn load(&self, _tier: Tier) -> Load {
        // 100 messages a minute over 20 conversations.
        Load::users(20).rate(100.0 / 60.0)
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule(
                    "HTTP POST /v1/messages.p95_ms < 5_000",
                    "seed 000 §3: messages sent",
                ),
                rule(
                    "QUEUE sms accept→delivered.p95_ms < 5_000",
                    "seed 000 §3: delivery confirmations received",
                ),
                rule("http.error_pct < 1", "seed 000: API error rate"),
            ],
            Tier::Goal => vec![
                rule("http.p95_ms ≤ 25", "goal"),
                rule("http.errors ≤ 0", "goal"),
                rule("QUEUE sms accept→delivered.p95_ms ≤ 1_000", "goal (queues)"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        logging_in("sms", transaction!(on_start))
            .register_transaction(transaction!(conversation).set_name("conversation"))
    }
}

async fn on_start(user: &mut GooseUser) -> TransactionResult {
    log_in(user, true).await?;
    if user.weighted_users_index == 0 {
        bulk(user).await?;
    }
    Ok(())
}

/// One bulk campaign of 50 of the tenant's customers, followed to the end.
async fn bulk(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let Some(template) = tenant.template else {
        return Err(fail("no template to send a campaign with"));
    };
    let ids: Vec<_> = tenant
        .customers
        .iter()
        .take(50)
        .map(|(id, _)| *id)
        .collect();
    let body = json!({
        "name": format!("load sms {}", uuid::Uuid::now_v7()),
        "template_id": template,
        "recipients": { "customer_ids": ids },
    });
    let started = Instant::now();
    let (_, campaign) = Call::post("/v1/campaigns", "POST /v1/campaigns", &me.token, &body)
        .expect(201)
        .send(user)
        .await?;
    let id = id_of(&campaign)?;
    let path = format!("/v1/campaigns/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, progress) = Call::get(&path, "GET /v1/campaigns/{id}", &me.token)
            .send(user)
            .await?;
        let p = &progress["progress"];
        let done = ["delivered", "undelivered", "failed"]
            .iter()
            .map(|k| p[k].as_i64().unwrap_or(0))
            .sum::<i64>()
            + p["opted_out"].as_i64().unwrap_or(0);
        let total = p["total_recipients"].as_i64().unwrap_or(i64::MAX);
        if done >= total {
            user.record_custom_request_duration(
                "QUEUE",
                "campaign accept→all delivered (50)",
                started.elapsed(),
                true,
                None,
                None,
            )
            .await?;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(fail(format!("campaign {id} not finished after 60 s: {p}")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn conversation(user: &mut GooseUser) -> TransactionResult {
    let intended = next_tick(user).await;
    let result = exchange(user).await;
    record_scheduled(
        user,
        "sms exchange (from schedule)",
        intended,
        result.is_ok(),
    )
    .await?;
    result
}

async fn exchange(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let (customer_id, phone) = pick(&tenant.customers).clone();
    if rand::random_range(0..3) == 0 {
        // The customer writes first: the carrier posts an inbound SMS.
        let number = pick(&tenant.numbers).clone();
        let form = signed_form(
            &ctx.endpoints.public_url,
            "/webhooks/carrier/sms/incoming",
            tenant.carrier_token,
            &[
                ("MessageSid", switchboard_core::carrier::new_sid("SM")),
                ("From", phone.clone()),
                ("To", number),
                ("Body", sms_body()),
            ],
        );
        let sent = Instant::now();
        let (_, answer) = Call::webhook(
            "/webhooks/carrier/sms/incoming",
            "POST /webhooks/carrier/sms/incoming",
            form,
        )
        .send(user)
        .await?;
        if let Some(id) = answer["message_id"].as_str().or(answer["id"].as_str()) {
            await_event(
                user,
                &me,
                "message:received",
                id,
                None,
                sent,
                ("SIO", "webhook→socket message:received"),
            )
            .await?;
        }
    }
    let Some((id, started)) = send_message(user, &me, tenant, customer_id, &phone).await? else {
        return Ok(());
    };
    if ctx.endpoints.worker.is_none() {
        return Err(fail("worker not available: nothing delivers SMS"));
    }
    await_delivery(user, &me, &id, started).await
}

/// Sends the customer at `phone` a message as `me` (a template one time in
/// four) and waits for it on the socket: its id and when it was sent, or
/// `None` when the customer opted out (a 422 `recipient_opted_out` is the
/// right answer, not a failure).
pub(super) async fn send_message(
    user: &mut GooseUser,
    me: &Agent,
    tenant: &Tenant,
    customer_id: Uuid,
    phone: &str,
) -> Result<Option<(String, Instant)>, Box<TransactionError>> {
    let body = match tenant.template {
        Some(template) if rand::random_range(0..4) == 0 => {
            json!({ "to": phone, "template_id": template, "customer_id": customer_id })
        }
        _ => json!({ "to": phone, "body": sms_body(), "customer_id": customer_id }),
    };
    let started = Instant::now();
    let (_, message) = match Call::post("/v1/messages", "POST /v1/messages", &me.token, &body)
        .expect(201)
        .send(user)
        .await
    {
        Ok(answer) => answer,
        Err(e) if format!("{e:?}").contains("recipient_opted_out") => return Ok(None),
        Err(e) => return Err(e),
    };
    let id = id_of(&message)?;
    await_event(
        user,
        me,
        "message:created",
        &id,
        None,
        started,
        ("SIO", "api→socket message:created"),
    )
    .await?;
    Ok(Some((id, started)))
}

/// Follows a message sent at `started` to its final status on the socket,
/// timing accept → delivered.
pub(super) async fn await_delivery(
    user: &mut GooseUser,
    me: &Agent,
    id: &str,
    started: Instant,
) -> TransactionResult {
    await_final(
        user,
        me,
        "message:status",
        id,
        &["delivered", "undelivered", "failed"],
        "delivered",
        started,
        ("QUEUE", "sms accept→delivered"),
    )
    .await?;
    Ok(())
}

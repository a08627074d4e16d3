//! Database performance (seed 000, scenario 4): 50 concurrent users
//! issuing the queries an agent desk makes — customer lookups by phone and
//! by name, call history, message search, the customer timeline, activity
//! logging (a note: INSERT), a customer update (UPDATE) and a report —
//! over the seeded tables (10 000+ customers, 100 000+ calls and messages).

use std::time::Duration;

use goose::prelude::*;
use serde_json::json;

use super::{agent, log_in};
use crate::{
    context::{Call, current, pick},
    profile::Shape,
};

const SEARCHES: &[&str] = &[
    "lovelace", "ada", "smith", "grace", "hopper", "turing", "kim",
];
const MESSAGE_TERMS: &[&str] = &["appointment", "order", "invoice", "thanks", "delivery"];

pub fn scenario(_shape: &Shape) -> goose::goose::Scenario {
    let weighted = |t: Transaction, w: usize| t.set_weight(w).unwrap_or_else(|_| unreachable!());
    scenario!("database")
        .set_wait_time(Duration::from_millis(0), Duration::from_millis(200))
        .unwrap_or_else(|_| unreachable!("a valid wait time"))
        .register_transaction(transaction!(on_start).set_name("log in").set_on_start())
        .register_transaction(weighted(
            transaction!(lookup).set_name("customer lookup"),
            25,
        ))
        .register_transaction(weighted(
            transaction!(search).set_name("customer search"),
            15,
        ))
        .register_transaction(weighted(
            transaction!(call_history).set_name("call history"),
            15,
        ))
        .register_transaction(weighted(
            transaction!(message_search).set_name("message search"),
            10,
        ))
        .register_transaction(weighted(transaction!(timeline).set_name("timeline"), 15))
        .register_transaction(weighted(transaction!(note).set_name("activity log"), 10))
        .register_transaction(weighted(
            transaction!(update).set_name("customer update"),
            5,
        ))
        .register_transaction(weighted(transaction!(report).set_name("report"), 5))
}

async fn on_start(user: &mut GooseUser) -> TransactionResult {
    log_in(user, false).await
}

fn customer(tenant: usize) -> (uuid::Uuid, String) {
    pick(&current().tenant(tenant).customers).clone()
}

async fn lookup(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (_, phone) = customer(me.tenant);
    look_up_phone(user, &me.token, &phone).await
}

/// `GET /v1/customers?phone=`: the screen-pop lookup.
pub(super) async fn look_up_phone(
    user: &mut GooseUser,
    token: &str,
    phone: &str,
) -> TransactionResult {
    let path = format!("/v1/customers?phone={}", phone.replace('+', "%2B"));
    Call::get(&path, "GET /v1/customers?phone=", token)
        .send(user)
        .await?;
    Ok(())
}

async fn search(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let path = format!("/v1/customers?q={}&limit=20", pick(SEARCHES));
    Call::get(&path, "GET /v1/customers?q=", &me.token)
        .send(user)
        .await?;
    Ok(())
}

async fn call_history(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = format!("/v1/calls?customer_id={id}&limit=20");
    Call::get(&path, "GET /v1/calls?customer_id=", &me.token)
        .send(user)
        .await?;
    Ok(())
}

async fn message_search(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let path = format!("/v1/messages?q={}&limit=20", pick(MESSAGE_TERMS));
    Call::get(&path, "GET /v1/messages?q=", &me.token)
        .send(user)
        .await?;
    Ok(())
}

async fn timeline(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = format!("/v1/customers/{id}/timeline?limit=20");
    Call::get(&path, "GET /v1/customers/{id}/timeline", &me.token)
        .send(user)
        .await?;
    Ok(())
}

async fn note(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = format!("/v1/customers/{id}/notes");
    let body = json!({ "body": "Called back; customer confirmed the appointment." });
    Call::post(&path, "POST /v1/customers/{id}/notes", &me.token, &body)
        .expect(201)
        .send(user)
        .await?;
    Ok(())
}

async fn update(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    update_company(user, &me.token, id).await
}

/// `PATCH /v1/customers/{id}` with a new company.
pub(super) async fn update_company(
    user: &mut GooseUser,
    token: &str,
    id: uuid::Uuid,
) -> TransactionResult {
    let path = format!("/v1/customers/{id}");
    let body = json!({ "company": format!("Load Co {}", rand::random_range(0..100)) });
    Call::post(&path, "PATCH /v1/customers/{id}", token, &body)
        .method(GooseMethod::Patch)
        .send(user)
        .await?;
    Ok(())
}

async fn report(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    Call::get("/v1/reports/agents", "GET /v1/reports/agents", &me.token)
        .send(user)
        .await?;
    Ok(())
}

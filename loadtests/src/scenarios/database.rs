//! Database performance (seed 000, scenario 4): 50 concurrent users
//! issuing the queries an agent desk makes — customer lookups by phone and
//! by name, call history, message search, the customer timeline, activity
//! logging (a note: INSERT), a customer update (UPDATE) and a report —
//! over the seeded tables (10 000+ customers, 100 000+ calls and messages).

use goose::prelude::*;
use serde_json::json;

use super::{About, LoadScenario, agent, agents, thinking, weighted};
use crate::{
    context::{Call, current, pick},
    profile::{Load, Shape, Tier},
    thresholds::{
        Op::{Le, Lt},
        Rule, rule,
    },
};

const SEARCHES: &[&str] = &[
    "lovelace", "ada", "smith", "grace", "hopper", "turing", "kim",
];
const MESSAGE_TERMS: &[&str] = &["appointment", "order", "invoice", "thanks", "delivery"];

/// Seed 000's scenario 4.
pub struct Database;

impl LoadScenario for Database {
    fn about(&self) -> About {
        About::new(
            "database",
            "seed 000 §Scenario 4 Database Performance (50 concurrent)",
        )
    }

    fn load(&self, _tier: Tier) -> Load {
        Load::users(50)
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule(
                    "http.p95_ms",
                    Lt,
                    100.0,
                    "seed 000 §4: query response time < 100 ms",
                ),
                rule(
                    "http.error_pct",
                    Lt,
                    0.1,
                    "seed 000: database error rate < 0.1 %",
                ),
            ],
            Tier::Goal => vec![
                rule(
                    "http.p95_ms",
                    Le,
                    50.0,
                    "ours (no row in the issue): p95 ≤ 50 ms",
                ),
                rule("http.p99_ms", Le, 100.0, "ours: p99 ≤ 100 ms"),
                rule("http.errors", Le, 0.0, "ours: 0 errors"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        thinking(agents("database", false), 0, 200)
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
    read(user, token, &path, "GET /v1/customers?phone=").await
}

/// A measured `GET` whose answer the user does not need.
pub(super) async fn read(
    user: &mut GooseUser,
    token: &str,
    path: &str,
    name: &str,
) -> TransactionResult {
    Call::get(path, name, token).send(user).await?;
    Ok(())
}

async fn search(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let path = format!("/v1/customers?q={}&limit=20", pick(SEARCHES));
    read(user, &me.token, &path, "GET /v1/customers?q=").await
}

async fn call_history(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = format!("/v1/calls?customer_id={id}&limit=20");
    read(user, &me.token, &path, "GET /v1/calls?customer_id=").await
}

async fn message_search(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let path = format!("/v1/messages?q={}&limit=20", pick(MESSAGE_TERMS));
    read(user, &me.token, &path, "GET /v1/messages?q=").await
}

async fn timeline(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = format!("/v1/customers/{id}/timeline?limit=20");
    read(user, &me.token, &path, "GET /v1/customers/{id}/timeline").await
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
    read(
        user,
        &me.token,
        "/v1/reports/agents",
        "GET /v1/reports/agents",
    )
    .await
}

//! Database performance (seed 000, scenario 4): 50 concurrent users
//! issuing the queries an agent desk makes — customer lookups by phone and
//! by name, call history, message search, the customer timeline, activity
//! logging (a note: INSERT), a customer update (UPDATE) and a report —
//! over the seeded tables (10 000+ customers, 100 000+ calls and messages).

use goose::prelude::*;
use serde_json::json;

use super::{About, LoadScenario, Mix, agent, agents, thinking};
use crate::{
    context::{Call, current, pick},
    profile::{Load, Shape, Tier},
    thresholds::{Rule, rule},
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
                rule("http.p95_ms < 100", "seed 000 §4: query response time"),
                rule("http.error_pct < 0.1", "seed 000: database error rate"),
            ],
            Tier::Goal => vec![
                rule("http.p95_ms ≤ 50", "ours (no row in the issue)"),
                rule("http.p99_ms ≤ 100", "ours"),
                rule("http.errors ≤ 0", "ours"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        thinking(agents("database", false), 0, 200)
            .weighted(25, "customer lookup", transaction!(lookup))
            .weighted(15, "customer search", transaction!(search))
            .weighted(15, "call history", transaction!(call_history))
            .weighted(10, "message search", transaction!(message_search))
            .weighted(15, "timeline", transaction!(timeline))
            .weighted(10, "activity log", transaction!(note))
            .weighted(5, "customer update", transaction!(update))
            .weighted(5, "report", transaction!(report))
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
    Call::get(&path, "GET /v1/customers?phone=", token)
        .perform(user)
        .await
}

async fn search(user: &mut GooseUser) -> TransactionResult {
    search_for(user, "/v1/customers", SEARCHES).await
}

async fn message_search(user: &mut GooseUser) -> TransactionResult {
    search_for(user, "/v1/messages", MESSAGE_TERMS).await
}

/// `GET collection?q=`, the first page, for one of `terms`.
async fn search_for(user: &mut GooseUser, collection: &str, terms: &[&str]) -> TransactionResult {
    let me = agent(user)?;
    let path = format!("{collection}?q={}&limit=20", pick(terms));
    let name = format!("GET {collection}?q=");
    Call::get(&path, &name, &me.token).perform(user).await
}

async fn call_history(user: &mut GooseUser) -> TransactionResult {
    let path = "/v1/calls?customer_id={id}&limit=20";
    read_customer(user, path, "GET /v1/calls?customer_id=").await
}

async fn timeline(user: &mut GooseUser) -> TransactionResult {
    let path = "/v1/customers/{id}/timeline?limit=20";
    read_customer(user, path, "GET /v1/customers/{id}/timeline").await
}

/// `GET path` about a customer of the agent's tenant (`{id}` in `path`
/// stands for its id), measured under `name`.
async fn read_customer(user: &mut GooseUser, path: &str, name: &str) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = path.replace("{id}", &id.to_string());
    Call::get(&path, name, &me.token).perform(user).await
}

async fn note(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, _) = customer(me.tenant);
    let path = format!("/v1/customers/{id}/notes");
    let body = json!({ "body": "Called back; customer confirmed the appointment." });
    Call::post(&path, "POST /v1/customers/{id}/notes", &me.token, &body)
        .expect(201)
        .perform(user)
        .await
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
        .perform(user)
        .await
}

async fn report(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let path = "/v1/reports/agents";
    Call::get(path, "GET /v1/reports/agents", &me.token)
        .perform(user)
        .await
}

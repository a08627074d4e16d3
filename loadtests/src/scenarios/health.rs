//! Health (seed 002, "API Health Check Load Test": 1 000+ RPS, p95 < 50 ms):
//! `GET /health` at a target rate, paced (open model).

use goose::prelude::*;

use super::{next_tick, record_scheduled};
use crate::{context::Call, profile::Shape};

pub fn scenario(_shape: &Shape) -> goose::goose::Scenario {
    scenario!("health").register_transaction(transaction!(health).set_name("health"))
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    let intended = next_tick(user).await;
    let ok = Call {
        token: None,
        ..Call::get("/health", "GET /health", "")
    }
    .send(user)
    .await
    .is_ok();
    record_scheduled(user, "GET /health (from schedule)", intended, ok).await
}

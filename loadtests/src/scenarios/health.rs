//! Health (seed 002, "API Health Check Load Test": 1 000+ RPS, p95 < 50 ms):
//! `GET /health` at a target rate, paced (open model).

use goose::prelude::*;

use super::{About, LoadScenario, next_tick, record_scheduled};
use crate::{
    context::Call,
    profile::{Load, Shape, Tier, secs},
    thresholds::{Rule, rule, target_rate},
};

/// Seed 002 §1.
pub struct Health;

impl LoadScenario for Health {
    fn about(&self) -> About {
        About::new("health", "seed 002 §1 API Health Check (1 000+ RPS)").paced()
    }

    fn load(&self, tier: Tier) -> Load {
        Load::users(tier.choose(16, 64))
            .rate(tier.choose(1_000.0, 20_000.0))
            .steady(secs(30))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                target_rate(self.load(tier), "seed 002 §1: RPS"),
                rule("all SCHED.p95_ms < 50", "seed 002 §1: p95"),
                rule("all SCHED.error_pct < 0.1", "seed 002 §1: errors"),
            ],
            Tier::Goal => vec![target_rate(self.load(tier), "goal: RPS")],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        scenario!("health").register_transaction(transaction!(health).set_name("health"))
    }
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

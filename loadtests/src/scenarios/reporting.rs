//! Reporting (seed 001 §2 "Reporting Endpoints": 100 QPS, p95 < 300 ms):
//! the three report endpoints — summary by hour, call detail records,
//! summary by day — plus per-agent statistics, at a target rate shared by
//! supervisors' sessions, paced (open model).

use chrono::{Duration as Span, Utc};
use goose::prelude::*;

use super::{About, Agent, LoadScenario, agent, logging_in, next_tick, record_scheduled};
use crate::{
    context::{Call, current, fail},
    profile::{Load, Shape, Tier},
    thresholds::{Rule, rule, target_rate},
};

/// Seed 001 §2.
pub struct Reporting;

impl LoadScenario for Reporting {
    fn about(&self) -> About {
        About::new("reporting", "seed 001 §2 Reporting Endpoints (100 QPS)").paced()
    }

    fn load(&self, tier: Tier) -> Load {
        Load::users(tier.choose(16, 48)).rate(tier.choose(100.0, 1_000.0))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                target_rate(self.load(tier), "seed 001 §2: QPS"),
                rule(
                    "all SCHED.error_pct < 0.5",
                    "seed 002 baseline table: analytics errors (seed 001 §2 allows 2 %)",
                ),
                rule("all SCHED.p50_ms < 150", "seed 001 §2: p50"),
                rule("all SCHED.p95_ms < 300", "seed 001 §2: p95"),
                rule("all SCHED.p99_ms < 500", "seed 001 §2: p99"),
            ],
            Tier::Goal => vec![
                target_rate(self.load(tier), "goal: QPS"),
                rule("all SCHED.p95_ms ≤ 50", "goal: p95"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        logging_in("reporting", transaction!(on_start))
            .register_transaction(transaction!(report).set_name("report"))
    }
}

/// Supervisors and admins read reports: log in as the tenant's admin.
async fn on_start(user: &mut GooseUser) -> TransactionResult {
    let ctx = current();
    let tenant = user.weighted_users_index % ctx.tenants.len();
    let email = ctx.tenant(tenant).admin.clone();
    let body = serde_json::json!({ "email": email, "password": crate::context::PASSWORD });
    let (_, answer) = Call {
        token: None,
        ..Call::post("/v1/auth/login", "POST /v1/auth/login", "", &body)
    }
    .send(user)
    .await?;
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| fail("no access_token"))?
        .to_string();
    user.set_session_data(Agent {
        token,
        email,
        tenant,
        socket: None,
        pacer: None,
    });
    Ok(())
}

async fn report(user: &mut GooseUser) -> TransactionResult {
    let intended = next_tick(user).await;
    let me = agent(user)?;
    let now = Utc::now();
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:00:00Z").to_string();
    let (path, name) = match rand::random_range(0..4) {
        0 => (
            format!(
                "/v1/reports/summary?granularity=hour&from={}&to={}",
                fmt(now - Span::hours(24)),
                fmt(now)
            ),
            "GET /v1/reports/summary (24 h hourly)",
        ),
        1 => (
            format!(
                "/v1/reports/calls?limit=50&from={}",
                fmt(now - Span::hours(24))
            ),
            "GET /v1/reports/calls",
        ),
        2 => (
            format!(
                "/v1/reports/summary?granularity=day&from={}&to={}",
                (now - Span::days(7)).format("%Y-%m-%dT00:00:00Z"),
                now.format("%Y-%m-%dT00:00:00Z")
            ),
            "GET /v1/reports/summary (7 d daily)",
        ),
        _ => (
            format!("/v1/reports/agents?from={}", fmt(now - Span::hours(24))),
            "GET /v1/reports/agents",
        ),
    };
    let ok = Call::get(&path, name, &me.token).send(user).await.is_ok();
    record_scheduled(user, "report (from schedule)", intended, ok).await
}

//! Cache performance (seed 003 §Cache Metrics: hit rate > 80 %, get < 5 ms,
//! set < 10 ms): agents screen-popping customers by phone, most often the
//! same few (80 % of lookups go to a fifth of the customers, as a contact
//! centre's repeat callers do), checking who they are (`/v1/me`, the
//! principal's cache), and updating customers, each update invalidating that
//! customer's entry on every API instance.
//!
//! "Get" is the phone lookup as a client times it and "set" the write that
//! replaces a cached record; the hit rate is the API's own count
//! (`cache_requests_total`) over the attack, read from its `/metrics`.
//!
//! What hit rate a workload allows depends on the workload: a customer's
//! first lookup, and the first after each update, must miss. So the
//! scenario also replays its own requests through an ideal coherent cache
//! (no capacity limit, invalidated exactly by the updates it sent) and
//! reports that cache's hit rate beside the API's (`cache.customers.
//! ideal_hit_pct`); the goal tier holds the API within two points of it.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::future::BoxFuture;
use goose::prelude::*;

use super::{About, LoadScenario, Mix, Run, Setup, agent, agents, thinking};
use crate::{
    context::{Call, RunContext, current},
    measure::{parse_value, scrape},
    profile::{Load, Shape, Tier, secs},
    results::Extras,
    thresholds::{Rule, rule},
};

/// The API's metrics from before the attack, and the ideal cache.
#[derive(Default)]
pub struct CacheStats {
    before: Mutex<String>,
    /// The (tenant, phone) keys an ideal cache would hold now.
    ideal: Mutex<HashSet<(usize, String)>>,
    ideal_hits: AtomicU64,
    ideal_misses: AtomicU64,
}

impl CacheStats {
    fn looked_up(&self, key: (usize, String)) {
        let inserted = self
            .ideal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        let counter = if inserted {
            &self.ideal_misses
        } else {
            &self.ideal_hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn updated(&self, key: &(usize, String)) {
        self.ideal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Seed 003's cache metrics.
pub struct Cache;

impl LoadScenario for Cache {
    fn about(&self) -> About {
        About::new(
            "cache",
            "seed 003 §Cache Metrics (hit rate > 80 %, get < 5 ms, set < 10 ms)",
        )
    }

    fn load(&self, _tier: Tier) -> Load {
        // Seed 003 names no user count for its cache test: the database
        // scenario's 50 agents.
        Load::users(50).steady(secs(30))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule("cache.hit_pct > 80", "seed 003 §Cache Metrics: hit rate"),
                rule(
                    "HTTP GET /v1/customers?phone=.p95_ms < 5",
                    "seed 003 §Cache Metrics: get (p95, as a client times it)",
                ),
                rule(
                    "HTTP PATCH /v1/customers/{id}.p95_ms < 10",
                    "seed 003 §Cache Metrics: set (p95 of the write that replaces an entry)",
                ),
                rule("http.error_pct < 1", "seed 003: error rate"),
            ],
            Tier::Goal => vec![
                rule(
                    "cache.customers.hit_pct_below_ideal ≤ 2",
                    "goal: hit-rate points below an ideal coherent cache on the same requests",
                ),
                rule("HTTP GET /v1/customers?phone=.p99_ms ≤ 5", "goal: get p99"),
                rule("HTTP PATCH /v1/customers/{id}.p99_ms ≤ 10", "goal: set p99"),
                rule("http.errors ≤ 0", "goal"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        thinking(agents("cache", false), 0, 100)
            .weighted(80, "customer lookup", transaction!(lookup))
            .weighted(15, "who am I", transaction!(me))
            .weighted(5, "customer update", transaction!(update))
    }

    fn setup<'a>(&'a self, run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async move { Ok(Setup::noted(setup(run.ctx).await?)) })
    }

    fn finish<'a>(&'a self, run: &'a Run<'a>, extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = hit_rates(run.ctx, extras).await {
                eprintln!("  cache: hit rate not measured: {error:#}");
            }
        })
    }
}

async fn setup(ctx: &RunContext) -> anyhow::Result<String> {
    let http = crate::context::client()?;
    let before = scrape(&http, &ctx.endpoints.api).await;
    anyhow::ensure!(
        !before.is_empty(),
        "the API's /metrics did not answer: the hit rate could not be measured"
    );
    let stats = Arc::new(CacheStats {
        before: Mutex::new(before),
        ..CacheStats::default()
    });
    ctx.set_extra(stats);
    Ok("hit rate from the API's cache_requests_total over the attack".into())
}

/// The hit rates over the attack, as `cache.*` metrics.
async fn hit_rates(ctx: &RunContext, extras: &mut Extras) -> anyhow::Result<()> {
    let Some(stats) = ctx.extra::<CacheStats>() else {
        return Ok(());
    };
    let http = crate::context::client()?;
    let after = scrape(&http, &ctx.endpoints.api).await;
    let before = stats
        .before
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let delta = |filter: &str| {
        parse_value(&after, "cache_requests_total", filter).unwrap_or(0.0)
            - parse_value(&before, "cache_requests_total", filter).unwrap_or(0.0)
    };
    for (name, hit, miss) in [
        ("cache", r#"result="hit""#, r#"result="miss""#),
        (
            "cache.customers",
            r#"cache="customers_by_phone",result="hit""#,
            r#"cache="customers_by_phone",result="miss""#,
        ),
    ] {
        let (hits, misses) = (delta(hit), delta(miss));
        extras.insert(format!("{name}.hits"), hits);
        extras.insert(format!("{name}.misses"), misses);
        extras.insert(
            format!("{name}.hit_pct"),
            100.0 * hits / (hits + misses).max(1.0),
        );
    }
    let hits = stats.ideal_hits.load(Ordering::Relaxed) as f64;
    let misses = stats.ideal_misses.load(Ordering::Relaxed) as f64;
    let ideal = 100.0 * hits / (hits + misses).max(1.0);
    extras.insert("cache.customers.ideal_hit_pct".into(), ideal);
    if let Some(actual) = extras.get("cache.customers.hit_pct").copied() {
        extras.insert("cache.customers.hit_pct_below_ideal".into(), ideal - actual);
    }
    Ok(())
}

/// A customer of `tenant`: four times in five one of the first fifth.
fn customer(tenant: usize) -> (uuid::Uuid, String) {
    let ctx = current();
    let customers = &ctx.tenant(tenant).customers;
    let hot = (customers.len() / 5).max(1);
    let i = if rand::random_range(0..5) < 4 {
        rand::random_range(0..hot)
    } else {
        rand::random_range(0..customers.len())
    };
    customers[i].clone()
}

fn stats() -> Option<Arc<CacheStats>> {
    current().extra::<CacheStats>()
}

async fn lookup(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (_, phone) = customer(me.tenant);
    super::database::look_up_phone(user, &me.token, &phone).await?;
    if let Some(stats) = stats() {
        stats.looked_up((me.tenant, phone));
    }
    Ok(())
}

async fn me(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    Call::get("/v1/me", "GET /v1/me", &me.token)
        .perform(user)
        .await
}

async fn update(user: &mut GooseUser) -> TransactionResult {
    let me = agent(user)?;
    let (id, phone) = customer(me.tenant);
    super::database::update_company(user, &me.token, id).await?;
    if let Some(stats) = stats() {
        stats.updated(&(me.tenant, phone));
    }
    Ok(())
}

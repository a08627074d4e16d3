//! Bulk import (seed 002 "Bulk Import": 10 concurrent uploads, processing
//! time for 1 000 rows < 60 s, error rate < 1 %; baseline row "Bulk Import
//! p95 5 000 ms"; seed 003's batch lead import persona). Each user uploads
//! a 1 000-row CSV file of new leads to `POST /v1/imports`, follows the
//! import until it is `completed`, then pauses a moment, as a person
//! starting the next file would. Recorded: the upload itself (`HTTP POST
//! /v1/imports`) and upload → completed per file (`QUEUE import accept→
//! completed`), which fails when the import fails, rejects a row or is not
//! done within two minutes.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use goose::prelude::*;

use super::{About, LoadScenario, agents, id_of, pause, session};
use crate::{
    context::{Call, current, fail},
    profile::{Load, Shape, Tier, secs},
    thresholds::{Rule, rule},
};

/// The Goose row each import's accept → completed time is recorded under.
pub const COMPLETED: &str = "import accept→completed";

/// How long one import may take before the user gives up on it.
const GIVE_UP: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// Rows handed out so far: every file of a run has numbers of its own.
static NEXT_ROW: AtomicU64 = AtomicU64::new(0);

/// Seed 002's bulk import.
pub struct Import;

impl LoadScenario for Import {
    fn about(&self) -> About {
        About::new(
            "import",
            "seed 002 Bulk Import (10 concurrent 1 000-row uploads, < 60 s each) + seed 003 batch lead import",
        )
    }

    fn load(&self, _tier: Tier) -> Load {
        // Seed 002: 10 concurrent uploads of `size` rows (both tiers; the
        // goal tier asks them to finish ten times sooner).
        Load::users(10).size(1_000).steady(secs(30))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule(
                    "QUEUE import accept→completed.max_ms < 60_000",
                    "seed 002: processing time (1 000 rows), every file",
                ),
                rule(
                    "HTTP POST /v1/imports.p95_ms < 5_000",
                    "seed 002: Bulk Import p95",
                ),
                rule("http.error_pct < 1", "seed 002: error rate"),
                rule("all QUEUE.error_pct < 1", "seed 002: error rate (imports)"),
            ],
            Tier::Goal => vec![
                rule(
                    "QUEUE import accept→completed.max_ms < 6_000",
                    "goal: each 1 000-row import done (10× the seed)",
                ),
                rule(
                    "HTTP POST /v1/imports.p95_ms ≤ 500",
                    "goal: upload p95 (10× the seed)",
                ),
                rule("http.errors ≤ 0", "goal"),
                rule("all QUEUE.errors ≤ 0", "goal: failed imports"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        agents("import", false)
            .register_transaction(transaction!(import_file).set_name("import a file"))
    }
}

/// A CSV file of `rows` new leads. Numbers start at an offset taken from
/// the clock, so runs against one database import new customers rather
/// than skip the last run's.
fn lead_file(rows: usize) -> String {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 1_000);
    let first = NEXT_ROW.fetch_add(rows as u64, Ordering::Relaxed);
    let mut csv = String::with_capacity(rows * 90 + 64);
    csv.push_str("name,phone,email,company,tags,source\n");
    for i in first..first + rows as u64 {
        let phone = switchboard::seed::customer_phone(40_000_000 + run * 1_000_000 + i);
        csv.push_str(&format!(
            "Lead {i},{phone},lead{i}@example.com,Company {},lead;import,load-test\n",
            i % 500
        ));
    }
    csv
}

async fn import_file(user: &mut GooseUser) -> TransactionResult {
    let me = session(user, false).await?;
    let rows = current().shape.size.max(1);
    let csv = lead_file(rows);
    let started = Instant::now();
    let (_, import) = Call {
        raw: Some(("text/csv", csv)),
        ..Call::post(
            "/v1/imports",
            "POST /v1/imports",
            &me.token,
            &serde_json::Value::Null,
        )
    }
    .expect(202)
    .send(user)
    .await?;
    let id = id_of(&import)?;
    let path = format!("/v1/imports/{id}");
    let outcome = loop {
        tokio::time::sleep(POLL).await;
        let (_, import) = Call::get(&path, "GET /v1/imports/{id}", &me.token)
            .send(user)
            .await?;
        match import["status"].as_str() {
            Some("completed") if import["rows_failed"] == 0 && import["rows_total"] == rows => {
                break Ok(());
            }
            Some("completed" | "failed") => break Err(format!("import ended as {import:.300}")),
            _ if started.elapsed() > GIVE_UP => {
                break Err(format!("import not done after {GIVE_UP:?}: {import:.300}"));
            }
            _ => {}
        }
    };
    user.record_custom_request_duration(
        "QUEUE",
        COMPLETED,
        started.elapsed(),
        outcome.is_ok(),
        None,
        outcome.as_ref().err().map(String::as_str),
    )
    .await?;
    outcome.map_err(fail)?;
    pause(1_000, 2_000).await;
    Ok(())
}

//! Call-state updates, the carrier storm (seed 001 §1 "Call State Updates":
//! 500 updates/s, p95 < 300 ms, p99 < 500 ms): signed `voice/status`
//! callbacks — ringing → in-progress → completed for each call — at a
//! target rate, against a stack in `SWITCHBOARD_CARRIER=external` mode (no
//! simulator competes). The calls are created through the API before the
//! attack; the attack is the callbacks alone, paced (open model), each
//! timed from its intended send time.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::Context as _;
use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use goose::prelude::*;
use serde_json::json;
use switchboard_core::calls::{CallEventKind, CallStatus, Direction, EventSource};

use super::{About, LoadScenario, Run, Setup, record_scheduled};
use crate::{
    context::{Call, Pacer, RunContext, client, current, fail, login, post_json, signed_form},
    profile::{Load, Profile, Shape, Tier},
    results::Extras,
    stack::Carrier,
    thresholds::{Rule, rule, target_rate},
};

/// A call ready for its callbacks.
#[derive(Debug, Clone)]
struct PoolCall {
    sid: String,
    from: String,
    to: String,
    tenant: usize,
}

#[derive(Default)]
struct Pool {
    calls: Mutex<Vec<PoolCall>>,
}

#[derive(Clone)]
struct StormUser {
    pacer: Pacer,
    call: Option<(PoolCall, usize)>,
}

const STATUSES: [&str; 3] = ["ringing", "in-progress", "completed"];

/// Seed 001 §1.
pub struct Storm;

impl LoadScenario for Storm {
    fn about(&self) -> About {
        // This suite sends the carrier's callbacks itself (and times them).
        About::new("storm", "seed 001 §1 Call State Updates (500/s)")
            .played_by(Carrier::External)
            .paced()
    }

    fn load(&self, tier: Tier) -> Load {
        // A user has one callback in flight, so its interval (users / rate)
        // should outlast the stack's tail service time, or the lateness its
        // own previous callback caused is what the schedule measures. 96
        // users at the goal's 5 500/s were 17 ms apart against a service
        // p99 of 23 ms (from-schedule p99 113 ms); 192 are 35 ms apart
        // (from-schedule p99 64–84 ms, service p99 38–41 ms with twice as
        // many in flight).
        Load::users(tier.choose(32, 192)).rate(tier.choose(500.0, 5_000.0))
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                target_rate(self.load(tier), "seed 001 §1: updates/s"),
                rule("all SCHED.error_pct < 5", "seed 001 §1: success > 95 %"),
                rule("all SCHED.p95_ms < 300", "seed 001 §1: p95"),
                rule("all SCHED.p99_ms < 500", "seed 001 §1: p99"),
            ],
            Tier::Goal => vec![
                target_rate(self.load(tier), "goal: accepted/s"),
                rule("all SCHED.p99_ms ≤ 50", "goal: p99"),
                rule("all SCHED.errors ≤ 0", "goal"),
            ],
        }
    }

    fn goose(&self, _shape: &Shape) -> goose::goose::Scenario {
        scenario!("storm").register_transaction(transaction!(callback).set_name("status callback"))
    }

    fn setup<'a>(&'a self, run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async move { Ok(Setup::noted(setup(run.ctx).await?)) })
    }

    fn finish<'a>(&'a self, run: &'a Run<'a>, extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !run.own_stack {
                return;
            }
            // In a database this run owns: the calls the storm created but
            // gave no final callback would otherwise be played by the next
            // scenario's simulator (its sweeper re-drives live outbound calls).
            match retire_unfinished(run.since).await {
                Ok(retired) => println!("  teardown: {retired} unfinished storm calls ended"),
                Err(error) => eprintln!("  teardown: unfinished storm calls left live: {error:#}"),
            }
            if run.profile == Profile::Smoke {
                return;
            }
            // After the window closed: pgbench's load is not the stack's.
            match pgbench_simple_update_tps().await {
                Ok(tps) => {
                    extras.insert("pgbench.simple_update_tps".into(), tps);
                    if let Some(rate) = extras.get("rate.achieved").copied() {
                        extras.insert("storm.per_pgbench_tps".into(), rate / tps);
                        println!(
                            "  storm: {rate:.0} callbacks accepted/s; pgbench simple-update on the same server right after: {tps:.0} TPS; ratio {:.2}",
                            rate / tps
                        );
                    }
                }
                Err(error) => eprintln!("  storm: pgbench not run beside it: {error:#}"),
            }
        })
    }
}

/// How many calls the attack needs: three callbacks each, with 10 % spare.
pub fn calls_needed(shape: &Shape) -> usize {
    let rate = shape.rate.unwrap_or(1.0);
    let seconds = shape.total().as_secs_f64();
    ((rate * seconds / 3.0) * 1.1).ceil() as usize + shape.users
}

/// Creates the calls through the API (64 at a time), out of band.
async fn setup(ctx: &RunContext) -> anyhow::Result<String> {
    let needed = calls_needed(&ctx.shape);
    let started = Instant::now();
    let http = client()?;
    let api = ctx.endpoints.api.clone();
    let mut tokens = Vec::new();
    for (t, tenant) in ctx.tenants.iter().enumerate() {
        for email in tenant.agents.iter().take(4) {
            tokens.push((t, login(&http, &api, email).await?));
        }
    }
    let results: Vec<anyhow::Result<PoolCall>> = stream::iter(0..needed)
        .map(|i| {
            let (tenant, token) = tokens[i % tokens.len()].clone();
            let (http, api) = (http.clone(), api.clone());
            let to = ctx.tenant(tenant).customers[i % ctx.tenant(tenant).customers.len()]
                .1
                .clone();
            async move {
                let url = format!("{api}/v1/calls");
                let call = post_json(&http, &url, &token, &json!({ "to": to })).await?;
                Ok(PoolCall {
                    sid: call["carrier_sid"]
                        .as_str()
                        .context("carrier_sid")?
                        .to_string(),
                    from: call["from"].as_str().unwrap_or_default().to_string(),
                    to,
                    tenant,
                })
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let calls: Vec<PoolCall> = results.into_iter().collect::<anyhow::Result<_>>()?;
    let pool = Pool {
        calls: Mutex::new(calls),
    };
    ctx.set_extra(Arc::new(pool));
    Ok(format!(
        "created {needed} calls in {:.1} s for the storm",
        started.elapsed().as_secs_f64()
    ))
}

async fn callback(user: &mut GooseUser) -> TransactionResult {
    let ctx = current();
    let mut state = user
        .get_session_data::<StormUser>()
        .cloned()
        .unwrap_or_else(|| StormUser {
            pacer: Pacer::new(
                ctx.shape.rate.unwrap_or(1.0),
                ctx.shape.users,
                user.weighted_users_index,
            ),
            call: None,
        });
    let intended = state.pacer.tick().await;
    let (call, step) = match state.call.take() {
        Some(current) => current,
        None => {
            let pool = ctx
                .extra::<Pool>()
                .ok_or_else(|| fail("the storm's call pool is missing"))?;
            let next = pool.calls.lock().unwrap_or_else(|p| p.into_inner()).pop();
            (next.ok_or_else(|| fail("the call pool is exhausted"))?, 0)
        }
    };
    let tenant = ctx.tenant(call.tenant);
    let mut params = vec![
        ("CallSid", call.sid.clone()),
        ("CallStatus", STATUSES[step].to_string()),
        ("From", call.from.clone()),
        ("To", call.to.clone()),
    ];
    if step == 2 {
        params.push(("CallDuration", rand::random_range(30..300).to_string()));
    }
    let form = signed_form(
        &ctx.endpoints.public_url,
        "/webhooks/carrier/voice/status",
        tenant.carrier_token,
        &params,
    );
    let ok = Call::webhook(
        "/webhooks/carrier/voice/status",
        "POST /webhooks/carrier/voice/status",
        form,
    )
    .send(user)
    .await
    .is_ok();
    if step + 1 < STATUSES.len() {
        state.call = Some((call, step + 1));
    }
    user.set_session_data(state);
    record_scheduled(user, "voice/status callback (from schedule)", intended, ok).await
}

/// Ends the outbound calls created since `since` that are still live — the
/// storm's spares and the calls its callbacks did not finish: canceled, or
/// completed if answered — with a `system` history entry each, directly in
/// the stack's database.
pub async fn retire_unfinished(since: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
    let settings = switchboard_core::Settings::from_env().context("reading the settings")?;
    let db = switchboard_core::db::connect(&settings).await?;
    let retired = sqlx::query(
        "WITH ended AS (
             UPDATE calls c
             SET status = CASE WHEN live.status = $2 THEN $3 ELSE $4 END,
                 duration_seconds = CASE WHEN live.status = $2
                     THEN greatest(0, extract(epoch FROM now() - c.answered_at))::int END,
                 ended_at = now(), updated_at = now(), version = version + 1
             FROM (SELECT id, status FROM calls
                   WHERE direction = $5 AND created_at >= $1 AND status = ANY($6)
                   FOR UPDATE) live
             WHERE c.id = live.id
             RETURNING c.tenant_id, c.id, live.status AS from_status, c.status AS to_status)
         INSERT INTO call_events (tenant_id, call_id, kind, from_status, to_status, data, source)
         SELECT tenant_id, id, $7, from_status, to_status,
                jsonb_build_object('reason', 'load-suite teardown'), $8
         FROM ended",
    )
    .bind(since)
    .bind(CallStatus::InProgress)
    .bind(CallStatus::Completed)
    .bind(CallStatus::Canceled)
    .bind(Direction::Outbound)
    .bind(
        CallStatus::live()
            .map(CallStatus::as_str)
            .collect::<Vec<_>>(),
    )
    .bind(CallEventKind::Status)
    .bind(EventSource::System)
    .execute(&db)
    .await?
    .rows_affected();
    db.close().await;
    Ok(retired)
}

/// The database pgbench works in, beside the stack's on the same server.
const PGBENCH_DATABASE: &str = "switchboard_pgbench";

/// pgbench's built-in `simple-update` (per transaction: UPDATE one
/// account, SELECT it, INSERT a history row — the shape of one status
/// callback) against the stack's PostgreSQL, right after the storm, with
/// 16 clients for 15 s at scale 10: what this server does with that work
/// and nothing else in the way, in transactions per second. The storm's
/// accepted callbacks per second are read against it.
async fn pgbench_simple_update_tps() -> anyhow::Result<f64> {
    use sqlx::ConnectOptions as _;

    let settings = switchboard_core::Settings::from_env().context("reading the settings")?;
    let stack_db: sqlx::postgres::PgConnectOptions = {
        use secrecy::ExposeSecret as _;
        settings.database_url.expose_secret().parse()?
    };
    let mut admin = stack_db.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(PGBENCH_DATABASE)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {PGBENCH_DATABASE}"
        )))
        .execute(&mut admin)
        .await?;
    }
    let target = |args: &[&str]| {
        let mut command = tokio::process::Command::new("pgbench");
        command
            .args(args)
            .args(["-h", stack_db.get_host(), "-p"])
            .arg(stack_db.get_port().to_string())
            .args(["-U", stack_db.get_username(), PGBENCH_DATABASE])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    };
    let init = target(&["-q", "-i", "-s", "10"])
        .output()
        .await
        .context("running pgbench (is it installed? Debian: postgresql-contrib)")?;
    anyhow::ensure!(
        init.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let run = target(&[
        "-n",
        "-b",
        "simple-update",
        "-c",
        "16",
        "-j",
        "2",
        "-T",
        "15",
    ])
    .output()
    .await?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    anyhow::ensure!(
        run.status.success(),
        "pgbench failed: {}{}",
        stdout,
        String::from_utf8_lossy(&run.stderr)
    );
    tps_of(&stdout).with_context(|| format!("no tps in pgbench's output:\n{stdout}"))
}

/// `tps = 4321.987654 (without initial connection time)` → 4321.99.
fn tps_of(pgbench_output: &str) -> Option<f64> {
    pgbench_output
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pgbench_tps_is_read_from_its_summary() {
        let output = "transaction type: <builtin: simple update>\n\
                      number of transactions actually processed: 64830\n\
                      latency average = 3.701 ms\n\
                      initial connection time = 12.345 ms\n\
                      tps = 4321.987654 (without initial connection time)\n";
        assert_eq!(super::tps_of(output), Some(4321.987654));
        assert_eq!(super::tps_of("pgbench: error"), None);
    }
}

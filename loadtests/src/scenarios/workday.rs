//! The agent workday (seed 000, scenario 1 "Concurrent User Load"): 30
//! agents, each logged in with a Socket.IO connection of its own, doing
//! login/logout 20 %, voice 30 %, SMS 40 %, voicemail 10 %, with think
//! times between actions. Every user times the events its own actions
//! cause on its own socket (API write → socket receipt).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::future::BoxFuture;
use goose::prelude::*;
use serde_json::json;
use switchboard::seed::UNHEARD_VOICEMAIL_SHARE;
use switchboard_core::{
    calls::{CallStatus, Direction},
    sms::MessageStatus,
};

use super::{
    About, Agent, LoadScenario, Mix, Run, Setup, agent, agents, await_event, await_final,
    database::look_up_phone,
    id_of, log_in, log_out_locally, pause, session,
    sms::{await_delivery, send_message},
    thinking,
};
use crate::{
    context::{Call, Pacer, current, pick, signed_form},
    profile::{Load, PEAK_RPS, Profile, Shape, Tier, secs},
    results::{Extras, ScenarioResult},
    thresholds::{Rule, rule},
    verify::plays_carrier,
};

/// Seed 000's scenario 1, the main job.
pub struct Workday;

impl LoadScenario for Workday {
    fn about(&self) -> About {
        About::new(
            "workday",
            "seed 000 §Scenario 1 Concurrent User Load (30 users; 20/30/40/10 mix)",
        )
        .open_model()
    }

    fn load(&self, _tier: Tier) -> Load {
        Load {
            ramp: secs(20),
            steady: secs(120),
            down: secs(10),
            ..Load::users(30)
        }
    }

    fn shape(&self, profile: Profile, tier: Tier) -> Shape {
        let load = self.load(tier);
        match profile {
            // Seed 000's scenario 1: 1 m ramp, 5 m steady, 1 m down.
            Profile::Baseline => load.shape(Profile::Average).phases(60, 300, 60),
            // Seed 003 §2 "Peak Load Test": the workday at 250 requests/s
            // (open model) for 15 minutes.
            Profile::Peak => load
                .shape(Profile::Average)
                .phases(60, 780, 60)
                .open(PEAK_RPS),
            // Seed 004 names the workday's users: 100 for "Basic" and the
            // first stage, twice as many for "Sustained" and the second.
            Profile::Basic | Profile::Sustained | Profile::Stages => {
                Load { users: 100, ..load }.shape(profile)
            }
            _ => load.shape(profile),
        }
    }

    fn rules(&self, tier: Tier) -> Vec<Rule> {
        match tier {
            Tier::Seed => vec![
                rule("http.p99_ms < 2_000", "seed 000 §1: response time"),
                rule("http.error_pct < 1", "seed 000 §1: error rate"),
                socket_event_time(),
                rule(
                    "all QUEUE.error_pct < 1",
                    "seed 000 §3: delivery confirmations received",
                ),
                rule(
                    "flow.calls_never_rang ≤ 0",
                    "seed 000 §2: every call placed rings (none left queued after 1 min)",
                ),
                rule(
                    "flow.sms_unsettled ≤ 0",
                    "seed 000 §3: every SMS confirmed (none unsettled after 1 min)",
                ),
                rule(
                    "calls.never_answered ≤ 0",
                    "seed 000 §2: every simulated call answered or ended (no FLOW wait timed out)",
                ),
                inbox_never_empty(),
                rule(
                    "all SIO.error_pct < 0.5",
                    "seed 000 §Error Rate Metrics: WebSocket error rate",
                ),
                rule("http.p50_ms < 100", "seed 004 §SLOs: p50"),
                rule("http.p999_ms < 1_000", "seed 004 §SLOs: p99.9"),
                rule(
                    "http.max_ms < 5_000",
                    "seed 003 §Performance Thresholds: max response time",
                ),
            ],
            Tier::Goal => {
                let mut rules = goal_rules();
                rules.push(inbox_never_empty());
                rules.push(rule(
                    "all QUEUE.errors ≤ 0",
                    "goal: every SMS reaches a final status",
                ));
                // Our goal is 200 MB in total for the 30-user workday.
                rules.push(rule(
                    "stack.peak_rss_mib ≤ 200",
                    "goal: stack memory, total",
                ));
                rules
            }
        }
    }

    fn goose(&self, shape: &Shape) -> goose::goose::Scenario {
        let workday = agents("workday", true);
        // Closed model: think times between actions. Open model (a target
        // rate): each action starts on the agent's schedule (see `open_pace`).
        let workday = if shape.rate.is_some() {
            workday
        } else {
            thinking(workday, 500, 2_500)
        };
        workday
            .weighted(20, "login/logout", transaction!(login_logout))
            .weighted(30, "voice call", transaction!(voice_call))
            .weighted(40, "sms", transaction!(sms))
            .weighted(10, "voicemail", transaction!(voicemail))
            .register_transaction(transaction!(on_stop).set_name("log out").set_on_stop())
    }

    fn setup<'a>(&'a self, run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async move {
            if !run.own_stack {
                return Ok(Setup::default());
            }
            let settings =
                switchboard_core::Settings::from_env().context("reading the settings")?;
            let db = switchboard_core::db::connect(&settings).await?;
            let refilled = refill_voicemail_inbox(&db).await?;
            // The agents keep hearing voicemail while they work, and a long
            // shape (the peak profile's 15 minutes) hears more than a seeded
            // inbox holds: the refill goes on through the attack, as new
            // voicemail would arrive.
            let refiller = tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                every.tick().await;
                loop {
                    every.tick().await;
                    if let Err(error) = refill_voicemail_inbox(&db).await {
                        eprintln!("  workday: {error:#}");
                    }
                }
            });
            Ok(Setup {
                note: Some(format!(
                    "voicemail inbox refilled to {:.0} % unheard per tenant: {refilled} heard voicemails marked unheard again",
                    UNHEARD_VOICEMAIL_SHARE * 100.0
                )),
                undo: Some(Box::pin(async move {
                    refiller.abort();
                    Ok(())
                })),
            })
        })
    }

    fn finish<'a>(&'a self, run: &'a Run<'a>, extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !run.own_stack {
                return;
            }
            // Our stack plays the carrier: every call it was given must have
            // rung and every SMS settled, or the run lost work silently.
            match stuck_in_carrier(run.since).await {
                Ok((calls, sms)) => {
                    extras.insert("flow.calls_never_rang".into(), calls as f64);
                    extras.insert("flow.sms_unsettled".into(), sms as f64);
                }
                Err(error) => {
                    eprintln!("  teardown: unplayed calls and SMS not counted: {error:#}")
                }
            }
        })
    }

    fn read_rows(&self, result: &mut ScenarioResult) {
        // Calls whose simulated callee never answered nor hung up within the
        // wait (FLOW rows that timed out): a stalled simulator or queue.
        let never_answered: u64 = result
            .rows
            .iter()
            .filter(|row| row.kind == "FLOW")
            .map(|row| row.fails)
            .sum();
        result
            .extras
            .insert("calls.never_answered".into(), never_answered as f64);
        // A voicemail action lists the unheard, then opens one: the lists
        // answered that no open (answered or not) followed found the inbox
        // empty.
        let row = |name: &str| {
            result
                .rows
                .iter()
                .find(|row| row.kind == "HTTP" && row.name == name)
                .map_or((0, 0), |row| (row.count, row.fails))
        };
        let ((listed, list_failed), (opened, _)) = (row(VOICEMAIL_LIST), row(VOICEMAIL_OPEN));
        let empty = listed.saturating_sub(list_failed).saturating_sub(opened);
        result
            .extras
            .insert("flow.voicemail_inbox_empty".into(), empty as f64);
    }
}

/// The workday's voicemail share must exercise what it names: list the
/// unheard, open one, mark it heard. An empty inbox would silently drop
/// two of its three requests from the mix.
fn inbox_never_empty() -> Rule {
    rule(
        "flow.voicemail_inbox_empty ≤ 0",
        "seed 000 §1: every voicemail action opened a voicemail (the inbox never ran dry)",
    )
}

/// Each run's agents mark voicemail heard, in a database every run of the
/// suite shares: left alone, a seeded inbox runs dry after four or five
/// main-job runs and the workday's mix changes under its baseline. Each
/// tenant whose unheard share fell below the seeded one gets it back: the
/// voicemails heard most recently (the suite's own marks) are marked
/// unheard again. Returns how many.
async fn refill_voicemail_inbox(db: &sqlx::PgPool) -> anyhow::Result<u64> {
    let refilled = sqlx::query(
        "WITH inbox AS (
             SELECT tenant_id,
                    ceil(count(*) * $1::float8)::bigint
                      - count(*) FILTER (WHERE listened_at IS NULL) AS missing
             FROM voicemails GROUP BY tenant_id),
         heard AS (
             SELECT v.id, i.missing,
                    row_number() OVER (PARTITION BY v.tenant_id
                                       ORDER BY v.listened_at DESC, v.id) AS n
             FROM voicemails v JOIN inbox i USING (tenant_id)
             WHERE i.missing > 0 AND v.listened_at IS NOT NULL)
         UPDATE voicemails v SET listened_at = NULL
         FROM heard h WHERE v.id = h.id AND h.n <= h.missing",
    )
    .bind(UNHEARD_VOICEMAIL_SHARE)
    .execute(db)
    .await
    .context("refilling the voicemail inbox")?
    .rows_affected();
    Ok(refilled)
}

/// Seed 000's WebSocket event time, for agents timing the events their
/// own actions raise on their sockets (the workday's and the voice
/// scenario's).
pub(super) fn socket_event_time() -> Rule {
    rule("all SIO.p95_ms < 50", "seed 000: WebSocket event time")
}

/// The goal tier's rules for agents at work (the workday's and the voice
/// scenario's).
pub(super) fn goal_rules() -> Vec<Rule> {
    vec![
        rule("http.p95_ms ≤ 25", "goal"),
        rule("http.p99_ms ≤ 100", "goal"),
        rule("http.errors ≤ 0", "goal"),
        rule("all SIO.errors ≤ 0", "goal (events)"),
    ]
}

/// Requests a transaction of the mix makes before the run has measured it:
/// login/logout 3 (20 %), voice 7 (30 %), SMS 2 (40 %), voicemail 3 (10 %).
const EXPECTED_REQUESTS_PER_TRANSACTION: f64 = 3.8;

/// The open model: waits for this agent's next scheduled start. Agents
/// share the target request rate; the gap between one agent's starts is
/// `agents × requests per transaction / rate`, with requests per
/// transaction as measured so far in this run. An agent behind schedule
/// starts at once (the schedule never slips), so a stack that slows down
/// faces the same offered load rather than a politer one.
async fn open_pace(user: &mut GooseUser) {
    let ctx = current();
    let (Some(rate), Some(requests)) = (ctx.shape.rate, ctx.requests.as_ref()) else {
        return;
    };
    // Transactions started are counted in `throughput` (the workday has no
    // other use for it).
    let started = ctx.throughput.total();
    let per_transaction = if started >= 100 {
        (requests.total() as f64 / started as f64).max(1.0)
    } else {
        EXPECTED_REQUESTS_PER_TRANSACTION
    };
    ctx.throughput.record(ctx.started);
    let (users, index) = (ctx.shape.users, user.weighted_users_index);
    let mut pacer = user
        .get_session_data::<Agent>()
        .and_then(|a| a.pacer.clone())
        .unwrap_or_else(|| Pacer::new(rate / per_transaction, users, index));
    pacer.retime(Duration::from_secs_f64(
        users as f64 * per_transaction / rate,
    ));
    pacer.tick().await;
    if let Some(agent) = user.get_session_data_mut::<Agent>() {
        agent.pacer = Some(pacer);
    }
}

async fn on_stop(user: &mut GooseUser) -> TransactionResult {
    if let Ok(agent) = agent(user) {
        Call::post(
            "/v1/auth/logout",
            "POST /v1/auth/logout",
            &agent.token,
            &json!({}),
        )
        .expect(204)
        .send(user)
        .await?;
    }
    Ok(())
}

/// Log out, log back in (a new socket with the new token), read `/v1/me`.
async fn login_logout(user: &mut GooseUser) -> TransactionResult {
    open_pace(user).await;
    let old = session(user, true).await?;
    let logout = Call::post(
        "/v1/auth/logout",
        "POST /v1/auth/logout",
        &old.token,
        &json!({}),
    )
    .expect(204)
    .send(user)
    .await;
    if let Some(socket) = &old.socket {
        socket.lock().await.close();
    }
    // Whatever the answer, the token is done with: a 500 can come after the
    // revocation was stored, and keeping the token would turn every later
    // request into a 401.
    log_out_locally(user);
    logout?;
    log_in(user, true).await?;
    let me = agent(user)?;
    Call::get("/v1/me", "GET /v1/me", &me.token)
        .send(user)
        .await?;
    Ok(())
}

/// A 401 means the server no longer takes the user's token (revoked by a
/// logout whose answer was lost, or expired): like an agent's browser, the
/// user forgets it and logs in again at its next action (see [`session`])
/// instead of sending it, refused, for the rest of the run.
fn forget_refused_token(user: &mut GooseUser, result: TransactionResult) -> TransactionResult {
    if let Err(error) = &result
        && matches!(error.as_ref(), TransactionError::Custom(m) if m.contains(" answered 401"))
    {
        log_out_locally(user);
    }
    result
}

/// One action of the mix: started on the agent's schedule in the open
/// model, its steps taken as the user's agent (logging in first if it is
/// not logged in), with a token the server refused forgotten.
async fn action(
    user: &mut GooseUser,
    steps: impl AsyncFnOnce(&mut GooseUser, Agent) -> TransactionResult,
) -> TransactionResult {
    open_pace(user).await;
    let result = match session(user, true).await {
        Ok(me) => steps(user, me).await,
        Err(refused) => Err(refused),
    };
    forget_refused_token(user, result)
}

/// Screen-pop, originate, the carrier answers, hold/unhold, record, talk,
/// read the customer's timeline, hang up.
pub async fn voice_call(user: &mut GooseUser) -> TransactionResult {
    action(user, voice_call_steps).await
}

async fn voice_call_steps(user: &mut GooseUser, me: Agent) -> TransactionResult {
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let (customer_id, phone) = pick(&tenant.customers).clone();
    look_up_phone(user, &me.token, &phone).await?;
    let body = json!({ "to": phone, "customer_id": customer_id });
    let started = Instant::now();
    let (_, call) = Call::post("/v1/calls", "POST /v1/calls", &me.token, &body)
        .expect(201)
        .send(user)
        .await?;
    let id = id_of(&call)?;
    let sid = call["carrier_sid"].as_str().unwrap_or_default().to_string();
    await_event(
        user,
        &me,
        "call:created",
        &id,
        None,
        started,
        ("SIO", "api→socket call:created"),
    )
    .await?;
    if plays_carrier(&ctx.endpoints) {
        // The suite is the carrier: it knows when each callback left, so
        // it times webhook → socket exactly.
        for status in ["ringing", "in-progress"] {
            pause(100, 600).await;
            let form = signed_form(
                &ctx.endpoints.public_url,
                "/webhooks/carrier/voice/status",
                tenant.carrier_token,
                &[
                    ("CallSid", sid.clone()),
                    ("CallStatus", status.to_string()),
                    ("From", tenant.numbers[0].clone()),
                    ("To", phone.clone()),
                ],
            );
            let sent = Instant::now();
            Call::webhook(
                "/webhooks/carrier/voice/status",
                "POST /webhooks/carrier/voice/status",
                form,
            )
            .send(user)
            .await?;
            await_event(
                user,
                &me,
                "call:status",
                &id,
                Some(status),
                sent,
                ("SIO", "webhook→socket call:status"),
            )
            .await?;
        }
    } else {
        // The simulator rings and answers after its (scaled) delays: a flow
        // time, not a latency. A busy or unanswered callee ends the call.
        let status = await_final(
            user,
            &me,
            "call:status",
            &id,
            &[
                "in-progress",
                "busy",
                "no-answer",
                "failed",
                "canceled",
                "completed",
            ],
            "in-progress",
            started,
            ("FLOW", "originate→answered (simulated carrier)"),
        )
        .await?;
        if status != "in-progress" {
            return Ok(());
        }
    }
    for control in ["hold", "unhold", "record"] {
        pause(200, 800).await;
        let path = format!("/v1/calls/{id}/{control}");
        let name = format!("POST /v1/calls/{{id}}/{control}");
        if !control_call(user, &me, &id, (&path, &name), ("call:updated", None)).await? {
            return Ok(());
        }
    }
    let timeline = format!("/v1/customers/{customer_id}/timeline?limit=20");
    Call::get(&timeline, "GET /v1/customers/{id}/timeline", &me.token)
        .send(user)
        .await?;
    pause(500, 2_000).await;
    let path = format!("/v1/calls/{id}/hangup");
    let request = (path.as_str(), "POST /v1/calls/{id}/hangup");
    control_call(user, &me, &id, request, ("call:status", Some("completed"))).await?;
    Ok(())
}

/// Sends the call `id` a control `request` (path, name) and times the
/// `event` (name, status) it causes on the socket, API → socket. `false`
/// when the call had already ended: the simulated callee may hang up
/// first, and a 409 is then the right answer.
async fn control_call(
    user: &mut GooseUser,
    me: &Agent,
    id: &str,
    (path, name): (&str, &str),
    (event, status): (&str, Option<&str>),
) -> Result<bool, Box<TransactionError>> {
    let sent = Instant::now();
    let (answer, _) = Call::post(path, name, &me.token, &json!({}))
        .tolerate(409)
        .send(user)
        .await?;
    if answer == 409 {
        return Ok(false);
    }
    let metric = format!("api→socket {event}");
    await_event(user, me, event, id, status, sent, ("SIO", &metric)).await?;
    Ok(true)
}

/// Read the conversation, send a message (a template one time in four),
/// see it on the socket, and with a worker follow it to `delivered`.
pub async fn sms(user: &mut GooseUser) -> TransactionResult {
    action(user, sms_steps).await
}

async fn sms_steps(user: &mut GooseUser, me: Agent) -> TransactionResult {
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let (customer_id, phone) = pick(&tenant.customers).clone();
    let history = format!("/v1/messages?customer_id={customer_id}&limit=20");
    Call::get(&history, "GET /v1/messages?customer_id=", &me.token)
        .send(user)
        .await?;
    let Some((id, started)) = send_message(user, &me, tenant, customer_id, &phone).await? else {
        return Ok(());
    };
    if ctx.endpoints.worker.is_some() && !plays_carrier(&ctx.endpoints) {
        await_delivery(user, &me, &id, started).await?;
    }
    Ok(())
}

/// The voicemail action's first request: the unheard voicemail.
const VOICEMAIL_LIST: &str = "GET /v1/voicemails?unlistened=true";
/// Its second, made only when the list was not empty.
const VOICEMAIL_OPEN: &str = "GET /v1/voicemails/{id}";

/// List unheard voicemail, open one, mark it listened.
pub async fn voicemail(user: &mut GooseUser) -> TransactionResult {
    action(user, voicemail_steps).await
}

async fn voicemail_steps(user: &mut GooseUser, me: Agent) -> TransactionResult {
    let (_, list) = Call::get(
        "/v1/voicemails?unlistened=true&limit=20",
        VOICEMAIL_LIST,
        &me.token,
    )
    .send(user)
    .await?;
    let Some(first) = list["data"]
        .as_array()
        .and_then(|d| (!d.is_empty()).then(|| d[rand::random_range(0..d.len())].clone()))
    else {
        return Ok(());
    };
    let id = id_of(&first)?;
    let path = format!("/v1/voicemails/{id}");
    Call::get(&path, VOICEMAIL_OPEN, &me.token)
        .send(user)
        .await?;
    pause(300, 1_500).await;
    let path = format!("/v1/voicemails/{id}/listened");
    Call::post(
        &path,
        "POST /v1/voicemails/{id}/listened",
        &me.token,
        &json!({}),
    )
    .send(user)
    .await?;
    Ok(())
}

/// What the simulated carrier left unplayed: outbound calls created since
/// `since` that never rang (still `queued` a minute after they were
/// placed) and outbound SMS never settled (not final a minute after they
/// were accepted), counted in the stack's database at the end of the run.
/// A stalled queue or simulator shows here even when every request the
/// users made succeeded.
async fn stuck_in_carrier(since: chrono::DateTime<chrono::Utc>) -> anyhow::Result<(i64, i64)> {
    let settings = switchboard_core::Settings::from_env().context("reading the settings")?;
    let db = switchboard_core::db::connect(&settings).await?;
    let unsettled: Vec<&str> = MessageStatus::unsettled()
        .map(MessageStatus::as_str)
        .collect();
    let stuck: (i64, i64) = sqlx::query_as(
        "SELECT
             (SELECT count(*) FROM calls
              WHERE direction = $2 AND created_at >= $1
                AND created_at < now() - interval '1 minute' AND status = $3),
             (SELECT count(*) FROM messages
              WHERE direction = $2 AND created_at >= $1
                AND created_at < now() - interval '1 minute' AND status = ANY($4))",
    )
    .bind(since)
    .bind(Direction::Outbound)
    .bind(CallStatus::Queued)
    .bind(unsettled)
    .fetch_one(&db)
    .await?;
    db.close().await;
    Ok(stuck)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::profile::AGENT_MAX_RPS;

    #[test]
    fn the_main_job_fits_in_three_minutes() {
        let shape = Workday.shape(Profile::Average, Tier::Goal);
        assert_eq!(shape.users, 30);
        assert!(shape.total() < Duration::from_secs(180));
        assert_eq!(shape.test_plan(), "30,20s;30,120s;0,10s");
    }

    #[test]
    fn the_seeds_profiles_have_their_users_and_durations() {
        let peak = Workday.shape(Profile::Peak, Tier::Seed);
        assert_eq!(peak.total(), Duration::from_secs(15 * 60));
        assert!(peak.rate.is_some_and(|r| r >= PEAK_RPS), "{peak:?}");
        // Enough agents for the rate, never fewer than the seed's 50.
        assert!(peak.users as f64 * AGENT_MAX_RPS >= PEAK_RPS && peak.users >= 50);
        for (profile, users, minutes) in [(Profile::Basic, 100, 30), (Profile::Sustained, 200, 120)]
        {
            let shape = Workday.shape(profile, Tier::Seed);
            let expected = (users, Duration::from_secs(minutes * 60));
            assert_eq!((shape.users, shape.total()), expected, "{profile:?}");
        }
        let stages = Workday.shape(Profile::Stages, Tier::Seed);
        assert_eq!(stages.test_plan(), "100,2m;100,5m;200,2m;200,5m;0,2m");
        assert_eq!(stages.total(), Duration::from_secs(16 * 60));
    }
}

//! The agent workday (seed 000, scenario 1 "Concurrent User Load"): 30
//! agents, each logged in with a Socket.IO connection of its own, doing
//! login/logout 20 %, voice 30 %, SMS 40 %, voicemail 10 %, with think
//! times between actions. Every user times the events its own actions
//! cause on its own socket (API write → socket receipt).

use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::json;

use super::{
    Agent, agent, await_event, await_final, id_of, log_in, log_out_locally, pause, session,
};
use crate::{
    context::{Call, Pacer, current, pick, signed_form, sms_body},
    profile::Shape,
    verify::plays_carrier,
};

pub fn scenario(shape: &Shape) -> goose::goose::Scenario {
    let workday = scenario!("workday");
    // Closed model: think times between actions. Open model (a target
    // rate): each action starts on the agent's schedule (see `open_pace`).
    let workday = if shape.rate.is_some() {
        workday
    } else {
        workday
            .set_wait_time(Duration::from_millis(500), Duration::from_millis(2_500))
            .unwrap_or_else(|_| unreachable!("a valid wait time"))
    };
    workday
        .register_transaction(transaction!(on_start).set_name("log in").set_on_start())
        .register_transaction(
            transaction!(login_logout)
                .set_name("login/logout")
                .set_weight(20)
                .unwrap_or_else(|_| unreachable!()),
        )
        .register_transaction(
            transaction!(voice_call)
                .set_name("voice call")
                .set_weight(30)
                .unwrap_or_else(|_| unreachable!()),
        )
        .register_transaction(
            transaction!(sms)
                .set_name("sms")
                .set_weight(40)
                .unwrap_or_else(|_| unreachable!()),
        )
        .register_transaction(
            transaction!(voicemail)
                .set_name("voicemail")
                .set_weight(10)
                .unwrap_or_else(|_| unreachable!()),
        )
        .register_transaction(transaction!(on_stop).set_name("log out").set_on_stop())
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

async fn on_start(user: &mut GooseUser) -> TransactionResult {
    log_in(user, true).await
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

/// Screen-pop, originate, the carrier answers, hold/unhold, record, talk,
/// read the customer's timeline, hang up.
pub async fn voice_call(user: &mut GooseUser) -> TransactionResult {
    open_pace(user).await;
    let result = voice_call_steps(user).await;
    forget_refused_token(user, result)
}

async fn voice_call_steps(user: &mut GooseUser) -> TransactionResult {
    let me = session(user, true).await?;
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let (customer_id, phone) = pick(&tenant.customers).clone();
    let lookup = format!("/v1/customers?phone={}", phone.replace('+', "%2B"));
    Call::get(&lookup, "GET /v1/customers?phone=", &me.token)
        .send(user)
        .await?;
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
        let sent = Instant::now();
        // The simulated callee may hang up first: a 409 is then the right answer.
        let (status, _) = Call::post(&path, &name, &me.token, &json!({}))
            .tolerate(409)
            .send(user)
            .await?;
        if status == 409 {
            return Ok(());
        }
        await_event(
            user,
            &me,
            "call:updated",
            &id,
            None,
            sent,
            ("SIO", "api→socket call:updated"),
        )
        .await?;
    }
    let timeline = format!("/v1/customers/{customer_id}/timeline?limit=20");
    Call::get(&timeline, "GET /v1/customers/{id}/timeline", &me.token)
        .send(user)
        .await?;
    pause(500, 2_000).await;
    let path = format!("/v1/calls/{id}/hangup");
    let sent = Instant::now();
    let (status, _) = Call::post(&path, "POST /v1/calls/{id}/hangup", &me.token, &json!({}))
        .tolerate(409)
        .send(user)
        .await?;
    if status == 409 {
        return Ok(());
    }
    await_event(
        user,
        &me,
        "call:status",
        &id,
        Some("completed"),
        sent,
        ("SIO", "api→socket call:status"),
    )
    .await?;
    Ok(())
}

/// Read the conversation, send a message (a template one time in four),
/// see it on the socket, and with a worker follow it to `delivered`.
pub async fn sms(user: &mut GooseUser) -> TransactionResult {
    open_pace(user).await;
    let result = sms_steps(user).await;
    forget_refused_token(user, result)
}

async fn sms_steps(user: &mut GooseUser) -> TransactionResult {
    let me = session(user, true).await?;
    let ctx = current();
    let tenant = ctx.tenant(me.tenant);
    let (customer_id, phone) = pick(&tenant.customers).clone();
    let history = format!("/v1/messages?customer_id={customer_id}&limit=20");
    Call::get(&history, "GET /v1/messages?customer_id=", &me.token)
        .send(user)
        .await?;
    let body = match tenant.template {
        Some(template) if rand::random_range(0..4) == 0 => {
            json!({ "to": phone, "template_id": template, "customer_id": customer_id })
        }
        _ => json!({ "to": phone, "body": sms_body(), "customer_id": customer_id }),
    };
    let started = Instant::now();
    let (_, message) = match Call::post("/v1/messages", "POST /v1/messages", &me.token, &body)
        .expect(201)
        .send(user)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            // A customer who texted STOP is refused with 422: correct, not a failure.
            if format!("{e:?}").contains("recipient_opted_out") {
                return Ok(());
            }
            return Err(e);
        }
    };
    let id = id_of(&message)?;
    await_event(
        user,
        &me,
        "message:created",
        &id,
        None,
        started,
        ("SIO", "api→socket message:created"),
    )
    .await?;
    if ctx.endpoints.worker.is_some() && !plays_carrier(&ctx.endpoints) {
        await_final(
            user,
            &me,
            "message:status",
            &id,
            &["delivered", "undelivered", "failed"],
            "delivered",
            started,
            ("QUEUE", "sms accept→delivered"),
        )
        .await?;
    }
    Ok(())
}

/// List unheard voicemail, open one, mark it listened.
pub async fn voicemail(user: &mut GooseUser) -> TransactionResult {
    open_pace(user).await;
    let result = voicemail_steps(user).await;
    forget_refused_token(user, result)
}

async fn voicemail_steps(user: &mut GooseUser) -> TransactionResult {
    let me = session(user, true).await?;
    let (_, list) = Call::get(
        "/v1/voicemails?unlistened=true&limit=20",
        "GET /v1/voicemails?unlistened=true",
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
    Call::get(&path, "GET /v1/voicemails/{id}", &me.token)
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
pub async fn stuck_in_carrier(since: chrono::DateTime<chrono::Utc>) -> anyhow::Result<(i64, i64)> {
    use anyhow::Context as _;
    let settings = switchboard_core::Settings::from_env().context("reading the settings")?;
    let db = switchboard_core::db::connect(&settings).await?;
    let stuck: (i64, i64) = sqlx::query_as(
        "SELECT
             (SELECT count(*) FROM calls
              WHERE direction = 'outbound' AND created_at >= $1
                AND created_at < now() - interval '1 minute' AND status = 'queued'),
             (SELECT count(*) FROM messages
              WHERE direction = 'outbound' AND created_at >= $1
                AND created_at < now() - interval '1 minute'
                AND status IN ('queued', 'sending', 'sent'))",
    )
    .bind(since)
    .fetch_one(&db)
    .await?;
    db.close().await;
    Ok(stuck)
}

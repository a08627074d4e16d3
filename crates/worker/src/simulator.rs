//! The carrier simulator: plays the phone network for outbound calls and
//! messages and, optionally, places inbound traffic — always through the
//! API's signed carrier webhooks over HTTP, exactly as a real carrier would.
//!
//! **Outcomes** are fixed for these destination numbers ("magic numbers")
//! and otherwise drawn from probabilities seeded by `SWITCHBOARD_SIM_SEED`
//! and the carrier SID, so the same call or message always has the same fate:
//!
//! | destination | call | SMS |
//! |---|---|---|
//! | +12025550901 | busy | delivered |
//! | +12025550902 | no-answer | delivered |
//! | +12025550903 | failed | delivered |
//! | +12025550904 | answered, 30 s talk | delivered |
//! | +12025550905 | answered | undelivered (30003) |
//! | +12025550906 | answered | failed (30006) |
//! | +12025550908 | busy the first time the tenant calls it, answered (5 s talk) after | delivered |
//! | anything else | 72 % answered, 13 % no-answer, 10 % busy, 5 % failed | 97 % delivered, 2 % undelivered, 1 % failed |
//!
//! **Timings** (real telephony, divided by `SWITCHBOARD_CARRIER_SPEED`): a
//! call rings after 0.5–1.5 s and rings 2–12 s; talk time is log-normal
//! around 2 minutes (5 s – 30 min); an SMS is `sent` 0.2–1 s after hand-over
//! and its receipt follows 1–5 s later. Waits up to 2 s happen inside the job;
//! longer ones re-queue the job to run when they end, so a slow call never
//! holds a worker slot. Every step is decided from the record's current
//! status and when it began, so a re-run (retry, sweeper, a worker killed
//! mid-call) continues where the network left off and the API ignores any
//! repeated callback.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use switchboard_core::{
    calls::Direction,
    carrier::{SIGNATURE_HEADER, new_sid, sign},
    jobs::{self, CarrierSim, HandedOver, Job},
};
use uuid::Uuid;

use crate::{
    context::Ctx,
    error::{JobError, JobResult},
    runner::Handler,
};

/// Waits longer than this re-queue the job instead of sleeping in it.
const MAX_IN_JOB_WAIT: Duration = Duration::from_secs(2);

/// How a simulated call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Answered, then hung up after `talk_seconds`.
    Answered {
        /// The call's talk time.
        talk_seconds: u32,
    },
    /// The callee was busy.
    Busy,
    /// It rang out unanswered.
    NoAnswer,
    /// The network failed the call (`failed`).
    Failed,
}

/// How a simulated message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsOutcome {
    /// The handset received it (`delivered`).
    Delivered,
    /// The handset was unreachable (`undelivered`, error 30003).
    Undelivered,
    /// A landline or an unreachable carrier (`failed`, error 30006).
    Failed,
}

/// Everything the network decides about one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallScript {
    /// From the call being placed to its ringing.
    pub setup: Duration,
    /// How long it rings before the outcome.
    pub ring: Duration,
    /// How it ends.
    pub outcome: CallOutcome,
}

fn rng_for(seed: u64, sid: &str) -> ChaCha8Rng {
    // FNV-1a over the SID, mixed with the seed: stable across runs and builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in sid.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(hash)
}

/// Busy the first time a tenant calls it, answered afterwards: a retry
/// policy's happy path.
pub const BUSY_THEN_ANSWERED: &str = "+12025550908";

/// The script for a call (before the speed factor).
pub fn call_script(seed: u64, sid: &str, to: &str) -> CallScript {
    let mut rng = rng_for(seed, sid);
    let setup = Duration::from_secs_f64(rng.random_range(0.5..1.5));
    let ring = Duration::from_secs_f64(rng.random_range(2.0..12.0));
    // Log-normal talk time, median 120 s.
    let normal = {
        let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let talk_seconds = (120.0 * (0.8 * normal).exp()).clamp(5.0, 1800.0) as u32;
    let roll: f64 = rng.random();
    let outcome = match to {
        "+12025550901" => CallOutcome::Busy,
        "+12025550902" => CallOutcome::NoAnswer,
        "+12025550903" => CallOutcome::Failed,
        "+12025550904" => CallOutcome::Answered { talk_seconds: 30 },
        // Busy on the first call; `play_call` answers later ones.
        BUSY_THEN_ANSWERED => CallOutcome::Busy,
        _ if roll < 0.72 => CallOutcome::Answered { talk_seconds },
        _ if roll < 0.85 => CallOutcome::NoAnswer,
        _ if roll < 0.95 => CallOutcome::Busy,
        _ => CallOutcome::Failed,
    };
    CallScript {
        setup,
        ring,
        outcome,
    }
}

/// What the network does with a message: its fate, when it is `sent`, and
/// when the receipt follows.
pub fn sms_script(seed: u64, sid: &str, to: &str) -> (SmsOutcome, Duration, Duration) {
    let mut rng = rng_for(seed, sid);
    let sent = Duration::from_secs_f64(rng.random_range(0.2..1.0));
    let receipt = Duration::from_secs_f64(rng.random_range(1.0..5.0));
    let roll: f64 = rng.random();
    let outcome = match to {
        "+12025550905" => SmsOutcome::Undelivered,
        "+12025550906" => SmsOutcome::Failed,
        "+12025550907" => SmsOutcome::Delivered,
        _ if roll < 0.97 => SmsOutcome::Delivered,
        _ if roll < 0.99 => SmsOutcome::Undelivered,
        _ => SmsOutcome::Failed,
    };
    (outcome, sent, receipt)
}

impl Handler for CarrierSim {
    async fn handle(&self, ctx: &Arc<Ctx>) -> JobResult {
        let tenant = match *self {
            CarrierSim::OutboundCall { tenant_id, .. }
            | CarrierSim::OutboundSms { tenant_id, .. } => tenant_id,
        };
        if ctx.settings.fault_stall_carrier_tenant == Some(tenant) {
            // Injected fault (SWITCHBOARD_FAULT_STALL_CARRIER_TENANT, refused in
            // production): the network never answers this tenant, so the
            // load suite can prove its rules see calls that never ring.
            tracing::warn!(%tenant, "fault injected: the simulated carrier ignores this tenant");
            return Ok(());
        }
        match *self {
            CarrierSim::OutboundCall { tenant_id, call_id } => {
                play_call(ctx, self, tenant_id, call_id).await
            }
            CarrierSim::OutboundSms {
                tenant_id,
                message_id,
                ref handed_over,
            } => play_sms(ctx, tenant_id, message_id, handed_over.as_ref()).await,
        }
    }
}

/// Sleeps until `at` if that is soon; otherwise re-queues the job `job`
/// builds for then and answers `false` (the job should stop).
async fn wait_until(
    ctx: &Ctx,
    job: impl FnOnce() -> CarrierSim,
    at: DateTime<Utc>,
) -> Result<bool, JobError> {
    let remaining = (at - Utc::now()).to_std().unwrap_or_default();
    if remaining <= MAX_IN_JOB_WAIT {
        tokio::time::sleep(remaining).await;
        return Ok(true);
    }
    jobs::enqueue_in(&ctx.db, &job(), remaining).await?;
    ctx.queues.wake(CarrierSim::QUEUE);
    Ok(false)
}

fn scaled(ctx: &Ctx, d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d.div_f64(ctx.settings.carrier_speed)).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct CallState {
    status: String,
    to_number: String,
    from_number: String,
    carrier_sid: Option<String>,
    created_at: DateTime<Utc>,
    ringing_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
}

async fn play_call(ctx: &Ctx, job: &CarrierSim, tenant_id: Uuid, call_id: Uuid) -> JobResult {
    loop {
        let call: Option<CallState> = sqlx::query_as(
            "SELECT status, to_number, from_number, carrier_sid, created_at, ringing_at, answered_at
             FROM calls WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(call_id)
        .fetch_optional(&ctx.db)
        .await?;
        let Some(call) = call else { return Ok(()) };
        let Some(sid) = call.carrier_sid.clone() else {
            return Err(JobError::permanent(anyhow::anyhow!(
                "call {call_id} has no CallSid"
            )));
        };
        let mut script = call_script(ctx.settings.sim_seed, &sid, &call.to_number);
        if call.to_number == BUSY_THEN_ANSWERED {
            let called_before: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM calls WHERE tenant_id = $1 AND to_number = $2
                                AND direction = $4 AND id < $3)",
            )
            .bind(tenant_id)
            .bind(&call.to_number)
            .bind(call_id)
            .bind(Direction::Outbound)
            .fetch_one(&ctx.db)
            .await?;
            if called_before {
                script.outcome = CallOutcome::Answered { talk_seconds: 5 };
            }
        }
        let (at, status, duration) = match (call.status.as_str(), script.outcome) {
            ("queued", _) => (call.created_at + scaled(ctx, script.setup), "ringing", None),
            ("ringing", outcome) => {
                let since = call.ringing_at.unwrap_or(call.created_at);
                let status = match outcome {
                    CallOutcome::Answered { .. } => "in-progress",
                    CallOutcome::Busy => "busy",
                    CallOutcome::NoAnswer => "no-answer",
                    CallOutcome::Failed => "failed",
                };
                // A failed call fails fast; the others ring first.
                let ring = match outcome {
                    CallOutcome::Failed => Duration::from_millis(300),
                    _ => script.ring,
                };
                (since + scaled(ctx, ring), status, Some(0))
            }
            ("in-progress", CallOutcome::Answered { talk_seconds }) => {
                let since = call.answered_at.unwrap_or(call.created_at);
                let talk = Duration::from_secs(u64::from(talk_seconds));
                (since + scaled(ctx, talk), "completed", Some(talk_seconds))
            }
            // Answered by an agent control although the network would not
            // have: end it after a default talk time.
            ("in-progress", _) => {
                let since = call.answered_at.unwrap_or(call.created_at);
                (
                    since + scaled(ctx, Duration::from_secs(60)),
                    "completed",
                    Some(60),
                )
            }
            // Terminal: the network has nothing more to say.
            _ => return Ok(()),
        };
        if !wait_until(ctx, || job.clone(), at).await? {
            return Ok(());
        }
        let mut params = status_fields(Leg::Call, &sid, status, &call.from_number, &call.to_number);
        params.push(("Direction", "outbound-api".to_string()));
        params.push(("Timestamp", Utc::now().to_rfc2822()));
        if let Some(seconds) = duration.filter(|_| status == "completed") {
            params.push(("CallDuration", seconds.to_string()));
        }
        post(ctx, tenant_id, "/webhooks/carrier/voice/status", &params).await?;
        metrics::counter!("sim_call_callbacks_total", "status" => status).increment(1);
    }
}

#[derive(sqlx::FromRow)]
struct SmsState {
    status: String,
    to_number: String,
    from_number: String,
    carrier_sid: Option<String>,
    updated_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

async fn play_sms(
    ctx: &Ctx,
    tenant_id: Uuid,
    message_id: Uuid,
    handed_over: Option<&HandedOver>,
) -> JobResult {
    // The message as the network last knew it: what it was handed, then what
    // the API confirmed. Only a callback the API did not apply (a retried or
    // re-driven job) sends the simulator to the row.
    let mut known: Option<SmsState> = handed_over.map(|h| SmsState {
        status: "sending".to_string(),
        to_number: h.to.clone(),
        from_number: h.from.clone(),
        carrier_sid: Some(h.sid.clone()),
        updated_at: h.at,
        sent_at: None,
    });
    loop {
        let message = match known.take() {
            Some(message) => message,
            None => {
                let message: Option<SmsState> = sqlx::query_as(
                    "SELECT status, to_number, from_number, carrier_sid, updated_at, sent_at
                     FROM messages WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant_id)
                .bind(message_id)
                .fetch_optional(&ctx.db)
                .await?;
                let Some(message) = message else {
                    return Ok(());
                };
                message
            }
        };
        let Some(sid) = message.carrier_sid.clone() else {
            // Not handed over yet (or refused before): nothing for the network.
            return Ok(());
        };
        let (outcome, sent_after, receipt_after) =
            sms_script(ctx.settings.sim_seed, &sid, &message.to_number);
        let (at, status, error) = match (message.status.as_str(), outcome) {
            ("sending", _) => (message.updated_at + scaled(ctx, sent_after), "sent", None),
            ("sent", outcome) => {
                let since = message.sent_at.unwrap_or(message.updated_at);
                let (status, error) = match outcome {
                    SmsOutcome::Delivered => ("delivered", None),
                    SmsOutcome::Undelivered => ("undelivered", Some("30003")),
                    SmsOutcome::Failed => ("failed", Some("30006")),
                };
                (since + scaled(ctx, receipt_after), status, error)
            }
            _ => return Ok(()),
        };
        // Re-queued, the job keeps what the network was handed only while
        // that is still all it knows.
        let requeued = || CarrierSim::OutboundSms {
            tenant_id,
            message_id,
            handed_over: handed_over.filter(|_| message.status == "sending").cloned(),
        };
        if !wait_until(ctx, requeued, at).await? {
            return Ok(());
        }
        let mut params = status_fields(
            Leg::Message,
            &sid,
            status,
            &message.from_number,
            &message.to_number,
        );
        if let Some(code) = error {
            params.push(("ErrorCode", code.to_string()));
        }
        let ack = post(ctx, tenant_id, "/webhooks/carrier/sms/status", &params).await?;
        metrics::counter!("sim_sms_callbacks_total", "status" => status).increment(1);
        if ack.result == "applied" {
            if status != "sent" {
                return Ok(());
            }
            let now = Utc::now();
            known = Some(SmsState {
                status: status.to_string(),
                updated_at: now,
                sent_at: Some(now),
                ..message
            });
        }
    }
}

/// What a status callback is about; names its id and status fields.
#[derive(Clone, Copy)]
enum Leg {
    Call,
    Message,
}

/// The fields every status callback carries: the call's or message's sid
/// and its new status, then the parties.
fn status_fields(
    leg: Leg,
    sid: &str,
    status: &str,
    from: &str,
    to: &str,
) -> Vec<(&'static str, String)> {
    let (sid_field, status_field) = match leg {
        Leg::Call => ("CallSid", "CallStatus"),
        Leg::Message => ("MessageSid", "MessageStatus"),
    };
    vec![
        (sid_field, sid.to_string()),
        (status_field, status.to_string()),
        ("From", from.to_string()),
        ("To", to.to_string()),
    ]
}

/// The API's answer to a carrier callback (the fields the simulator reads).
#[derive(Debug, Deserialize)]
pub struct Ack {
    /// What the callback did: `applied`, `created`, `duplicate`, ….
    pub result: String,
    /// The routing decision of an incoming call (`connect`, `voicemail`)
    /// or a message's keyword action.
    pub action: Option<String>,
    /// The call the callback concerned, when it was one.
    pub call_id: Option<Uuid>,
}

static TOKENS: LazyLock<Mutex<HashMap<Uuid, String>>> = LazyLock::new(Default::default);

async fn auth_token(ctx: &Ctx, tenant_id: Uuid) -> Result<String, JobError> {
    if let Some(token) = TOKENS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&tenant_id)
    {
        return Ok(token.clone());
    }
    let token: Option<String> =
        sqlx::query_scalar("SELECT carrier_auth_token FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&ctx.db)
            .await?;
    let token =
        token.ok_or_else(|| JobError::permanent(anyhow::anyhow!("tenant {tenant_id} is gone")))?;
    TOKENS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tenant_id, token.clone());
    Ok(token)
}

/// POSTs a signed carrier callback to the API. 5xx and network errors are
/// transient; a 4xx means the callback itself is wrong (permanent).
pub async fn post(
    ctx: &Ctx,
    tenant_id: Uuid,
    path: &str,
    params: &[(&str, String)],
) -> Result<Ack, JobError> {
    let token = auth_token(ctx, tenant_id).await?;
    let url = format!("{}{path}", ctx.settings.public_url);
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let signature = sign(&token, &url, &owned);
    let response = ctx
        .http
        .post(&url)
        .header(SIGNATURE_HEADER, signature)
        .form(&owned)
        .send()
        .await
        .map_err(|e| JobError::transient(anyhow::anyhow!("carrier callback to {url}: {e}")))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(JobError::transient(anyhow::anyhow!(
            "{url} answered {status}"
        )));
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(JobError::permanent(anyhow::anyhow!(
            "{url} refused the callback: {status} {body}"
        )));
    }
    response
        .json::<Ack>()
        .await
        .map_err(|e| JobError::transient(anyhow::anyhow!("reading {url}'s answer: {e}")))
}

/// Places inbound calls and texts to the tenants' numbers at the configured
/// rates (Poisson arrivals) until `shutdown` resolves.
pub async fn run_inbound(ctx: Arc<Ctx>, shutdown: impl std::future::Future<Output = ()>) {
    let calls = ctx.settings.sim_inbound_calls_per_minute;
    let texts = ctx.settings.sim_inbound_sms_per_minute;
    if calls <= 0.0 && texts <= 0.0 {
        return;
    }
    tracing::info!(
        calls,
        texts,
        "carrier simulator placing inbound traffic (per minute)"
    );
    let per_second = (calls + texts) / 60.0;
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.settings.sim_seed ^ 0x1b0c);
    tokio::pin!(shutdown);
    loop {
        let gap = -(1.0 - rng.random::<f64>()).ln() / per_second;
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_secs_f64(gap)) => {}
        }
        let is_call = rng.random::<f64>() * (calls + texts) < calls;
        let ctx = ctx.clone();
        let seed: u64 = rng.random();
        tokio::spawn(async move {
            let result = if is_call {
                inbound_call(&ctx, seed).await
            } else {
                inbound_text(&ctx, seed).await
            };
            if let Err(error) = result {
                tracing::warn!(%error, "simulated inbound traffic failed");
            }
        });
    }
}

/// A random tenant number and a caller: one of that tenant's customers, or a stranger.
async fn pick_parties(ctx: &Ctx, rng: &mut ChaCha8Rng) -> Result<(Uuid, String, String), JobError> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT tenant_id, number FROM phone_numbers ORDER BY number OFFSET $1 LIMIT 1",
    )
    .bind(rng.random_range(0..100i64))
    .fetch_optional(&ctx.db)
    .await?;
    let row = match row {
        Some(row) => Some(row),
        None => {
            sqlx::query_as("SELECT tenant_id, number FROM phone_numbers LIMIT 1")
                .fetch_optional(&ctx.db)
                .await?
        }
    };
    let (tenant_id, to) =
        row.ok_or_else(|| JobError::permanent(anyhow::anyhow!("no tenant numbers")))?;
    let known: Option<String> = if rng.random_bool(0.7) {
        sqlx::query_scalar(
            "SELECT phone FROM customers WHERE tenant_id = $1 AND phone IS NOT NULL
             AND id >= $2 ORDER BY id LIMIT 1",
        )
        .bind(tenant_id)
        .bind(Uuid::from_u128(rng.random()))
        .fetch_optional(&ctx.db)
        .await?
    } else {
        None
    };
    let from = known.unwrap_or_else(|| format!("+1202555{:04}", rng.random_range(2000..9999)));
    Ok((tenant_id, from, to))
}

async fn inbound_call(ctx: &Ctx, seed: u64) -> Result<(), JobError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (tenant_id, from, to) = pick_parties(ctx, &mut rng).await?;
    let sid = new_sid("CA");
    let base = [
        ("CallSid", sid.clone()),
        ("From", from.clone()),
        ("To", to.clone()),
        ("Direction", "inbound".to_string()),
    ];
    let with = |status: &str, extra: &[(&'static str, String)]| {
        let mut params = base.to_vec();
        params.push(("CallStatus", status.to_string()));
        params.extend_from_slice(extra);
        params
    };
    let ack = post(
        ctx,
        tenant_id,
        "/webhooks/carrier/voice/incoming",
        &with("ringing", &[]),
    )
    .await?;
    let script = call_script(ctx.settings.sim_seed, &sid, &from);
    let talk = match script.outcome {
        CallOutcome::Answered { talk_seconds } => talk_seconds,
        _ => 45,
    };
    let pause = |d: Duration| tokio::time::sleep(d.div_f64(ctx.settings.carrier_speed));
    // Answered: by the agent it was routed to, or by voicemail.
    pause(script.ring.min(Duration::from_secs(4))).await;
    post(
        ctx,
        tenant_id,
        "/webhooks/carrier/voice/status",
        &with("in-progress", &[]),
    )
    .await?;
    if ack.action.as_deref() == Some("connect") {
        pause(Duration::from_secs(u64::from(talk))).await;
    } else {
        // The caller leaves a message, then the recording arrives.
        let seconds = (talk / 4).clamp(5, 120);
        pause(Duration::from_secs(u64::from(seconds))).await;
        let recording = [
            ("CallSid", sid.clone()),
            ("RecordingSid", new_sid("RE")),
            (
                "RecordingUrl",
                format!("https://media.carrier.example/recordings/{sid}"),
            ),
            ("RecordingDuration", seconds.to_string()),
        ];
        post(
            ctx,
            tenant_id,
            "/webhooks/carrier/voice/recording",
            &recording,
        )
        .await?;
    }
    post(
        ctx,
        tenant_id,
        "/webhooks/carrier/voice/status",
        &with("completed", &[("CallDuration", talk.to_string())]),
    )
    .await?;
    Ok(())
}

const INBOUND_TEXTS: [&str; 8] = [
    "Hi, is my order on its way?",
    "Can someone call me back today?",
    "Thanks, got it!",
    "What time do you open tomorrow?",
    "I need to reschedule my appointment.",
    "Is there a discount for returning customers?",
    "My package says delivered but it isn't here.",
    "Perfect, see you then.",
];

async fn inbound_text(ctx: &Ctx, seed: u64) -> Result<(), JobError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (tenant_id, from, to) = pick_parties(ctx, &mut rng).await?;
    let body = INBOUND_TEXTS[rng.random_range(0..INBOUND_TEXTS.len())];
    let params = [
        ("MessageSid", new_sid("SM")),
        ("From", from),
        ("To", to),
        ("Body", body.to_string()),
    ];
    post(ctx, tenant_id, "/webhooks/carrier/sms/incoming", &params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_decide_the_outcome() {
        for sid in ["CA1", "CA2", "CA3"] {
            assert_eq!(
                call_script(1, sid, "+12025550901").outcome,
                CallOutcome::Busy
            );
            assert_eq!(
                call_script(1, sid, "+12025550902").outcome,
                CallOutcome::NoAnswer
            );
            assert_eq!(
                call_script(1, sid, "+12025550903").outcome,
                CallOutcome::Failed
            );
            assert_eq!(
                call_script(1, sid, "+12025550904").outcome,
                CallOutcome::Answered { talk_seconds: 30 }
            );
            assert_eq!(
                sms_script(1, sid, "+12025550905").0,
                SmsOutcome::Undelivered
            );
            assert_eq!(sms_script(1, sid, "+12025550906").0, SmsOutcome::Failed);
        }
    }

    #[test]
    fn other_numbers_follow_the_seeded_mix() {
        let mut answered = 0;
        for i in 0..10_000 {
            let script = call_script(42, &format!("CA{i:032x}"), "+12025550123");
            assert_eq!(
                script,
                call_script(42, &format!("CA{i:032x}"), "+12025550123")
            );
            assert!((2.0..12.0).contains(&script.ring.as_secs_f64()));
            if matches!(script.outcome, CallOutcome::Answered { .. }) {
                answered += 1;
            }
        }
        assert!((6_900..7_500).contains(&answered), "{answered} answered");
        let delivered = (0..10_000)
            .filter(|i| {
                sms_script(42, &format!("SM{i}"), "+12025550123").0 == SmsOutcome::Delivered
            })
            .count();
        assert!((9_550..9_850).contains(&delivered), "{delivered} delivered");
    }
}

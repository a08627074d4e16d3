//! The scenarios, one module each, mapped to the seed sections they
//! implement (see the README's "Load suite"). Each module declares
//! everything about its scenario in a [`LoadScenario`]: seed section,
//! carrier, nominal load and shape per profile, rules per tier, its Goose
//! scenario and its hooks before and after the attack; [`Scenario`] is the
//! registry. What lives here besides is what their users share: logging
//! in, waiting for socket events, pacing.

pub mod cache;
pub mod database;
pub mod fanout;
pub mod health;
pub mod import;
pub mod queues;
pub mod reporting;
pub mod scheduling;
pub mod sms;
pub mod storm;
pub mod voice;
pub mod workday;

mod registry;

pub use registry::{About, LoadScenario, Run, Scenario, Setup};

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use goose::prelude::*;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{
    context::{Call, Pacer, current, fail},
    sio::{self, Event, SioClient, Subject},
};

/// How long a user waits for an event its action should cause.
pub const EVENT_WAIT: Duration = Duration::from_secs(15);

/// A logged-in agent: each Goose user is one.
#[derive(Clone)]
pub struct Agent {
    /// Its access token; empty once [`log_out_locally`] has forgotten it.
    pub token: String,
    /// The agent it logged in as (`agentNN@<slug>.example`).
    pub email: String,
    /// Its tenant's index in the run's tenants.
    pub tenant: usize,
    /// Its own Socket.IO connection, when it logged in with one.
    pub socket: Option<Arc<Mutex<SioClient>>>,
    /// Its schedule in a paced scenario, kept across logins.
    pub pacer: Option<Pacer>,
}

/// The agent a Goose user plays: users alternate tenants, then take the
/// tenant's agents in turn (agent01, agent02, ...).
fn identity(user: &GooseUser) -> (usize, String) {
    let ctx = current();
    let index = user.weighted_users_index;
    let tenant = index % ctx.tenants.len();
    let agents = &ctx.tenant(tenant).agents;
    (
        tenant,
        agents[(index / ctx.tenants.len()) % agents.len()].clone(),
    )
}

/// Logins a user tries before giving up on this action.
const LOGIN_ATTEMPTS: usize = 5;

/// Logs the user in (measured) and stores its session. A login refused
/// with `Retry-After` (the API's queue for password checks is full, or the
/// throttle) is tried again after those seconds, as a real client does;
/// every refusal still counts as a failed request.
pub async fn log_in(user: &mut GooseUser, with_socket: bool) -> TransactionResult {
    let (tenant, email) = identity(user);
    let body = json!({ "email": email, "password": crate::context::PASSWORD });
    let mut attempt = 1;
    let answer = loop {
        let sent = Call {
            token: None,
            ..Call::post("/v1/auth/login", "POST /v1/auth/login", "", &body)
        }
        .send_told(user)
        .await;
        match sent {
            Ok((_, answer, _)) => break answer,
            Err(error) if attempt < LOGIN_ATTEMPTS => {
                let Some(seconds) = crate::context::retry_after(&error) else {
                    return Err(error);
                };
                attempt += 1;
                // Spread out, so the refused do not all come back at once.
                let jitter = rand::random_range(0..500);
                tokio::time::sleep(
                    std::time::Duration::from_secs(seconds)
                        + std::time::Duration::from_millis(jitter),
                )
                .await;
            }
            Err(error) => return Err(error),
        }
    };
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| fail("login answered no access_token"))?
        .to_string();
    let socket = if with_socket {
        Some(Arc::new(Mutex::new(connect_socket(user, &token).await?)))
    } else {
        None
    };
    // A paced user keeps its schedule across logins.
    let pacer = user
        .get_session_data::<Agent>()
        .and_then(|a| a.pacer.clone());
    user.set_session_data(Agent {
        token,
        email,
        tenant,
        socket,
        pacer,
    });
    Ok(())
}

/// A Goose scenario whose users each log in first as an agent, with a
/// socket of their own when `with_socket`.
pub fn agents(name: &str, with_socket: bool) -> goose::goose::Scenario {
    let on_start = if with_socket {
        transaction!(log_in_with_socket)
    } else {
        transaction!(log_in_without_socket)
    };
    logging_in(name, on_start)
}

/// A Goose scenario whose users each log in first with `log_in` (agents
/// of their own kind: admins, or one tenant's agents).
pub fn logging_in(name: &str, log_in: Transaction) -> goose::goose::Scenario {
    goose::goose::Scenario::new(name).register_transaction(log_in.set_name("log in").set_on_start())
}

async fn log_in_with_socket(user: &mut GooseUser) -> TransactionResult {
    log_in(user, true).await
}

async fn log_in_without_socket(user: &mut GooseUser) -> TransactionResult {
    log_in(user, false).await
}

/// `scenario` with a think time of `min_ms`–`max_ms` between transactions.
pub fn thinking(
    scenario: goose::goose::Scenario,
    min_ms: u64,
    max_ms: u64,
) -> goose::goose::Scenario {
    scenario
        .set_wait_time(Duration::from_millis(min_ms), Duration::from_millis(max_ms))
        .unwrap_or_else(|_| unreachable!("a valid wait time"))
}

/// How a scenario registers its mix: each transaction under the name its
/// Goose row carries.
pub trait Mix {
    /// `transaction`, named `name`, with `weight` in the mix.
    fn weighted(self, weight: usize, name: &str, transaction: Transaction) -> Self;
}

impl Mix for goose::goose::Scenario {
    fn weighted(self, weight: usize, name: &str, transaction: Transaction) -> Self {
        let transaction = transaction
            .set_name(name)
            .set_weight(weight)
            .unwrap_or_else(|_| unreachable!("a positive weight"));
        self.register_transaction(transaction)
    }
}

/// Opens a socket, recording the connect time as `SIO connect`.
pub async fn connect_socket(
    user: &mut GooseUser,
    token: &str,
) -> Result<SioClient, Box<TransactionError>> {
    let realtime = current().endpoints.realtime.clone();
    let started = Instant::now();
    match sio::connect(&realtime, token).await {
        Ok(socket) => {
            user.record_custom_request_duration(
                "SIO",
                "connect",
                started.elapsed(),
                true,
                None,
                None,
            )
            .await?;
            Ok(socket)
        }
        Err(e) => Err(failed(user, ("SIO", "connect"), started.elapsed(), e).await),
    }
}

/// Records `error` as a failed `metric` that took `took`, and returns it
/// as the transaction's error.
async fn failed(
    user: &mut GooseUser,
    metric: (&str, &str),
    took: Duration,
    error: anyhow::Error,
) -> Box<TransactionError> {
    let message = format!("{error:#}");
    match user
        .record_custom_request_duration(metric.0, metric.1, took, false, None, Some(&message))
        .await
    {
        Ok(()) => fail(message),
        Err(recording) => recording,
    }
}

/// The user's agent; an error when it is not logged in (an empty token is
/// a session [`log_out_locally`] ended).
pub fn agent(user: &GooseUser) -> Result<Agent, Box<TransactionError>> {
    user.get_session_data::<Agent>()
        .filter(|a| !a.token.is_empty())
        .cloned()
        .ok_or_else(|| fail("the user is not logged in"))
}

/// Forgets the user's token and socket once the server has revoked them,
/// so a re-login that then fails leaves the user logged out (and logging
/// in again at its next action, see [`session`]) rather than holding a
/// revoked token that would turn every later request into a 401.
pub fn log_out_locally(user: &mut GooseUser) {
    if let Some(agent) = user.get_session_data_mut::<Agent>() {
        agent.token.clear();
        agent.socket = None;
    }
}

/// The user's agent, logging in first if it is not logged in (its login at
/// start, or a re-login, failed): an agent whose login failed tries again,
/// as a person would, instead of idling through the run.
pub async fn session(
    user: &mut GooseUser,
    with_socket: bool,
) -> Result<Agent, Box<TransactionError>> {
    if let Ok(agent) = agent(user) {
        return Ok(agent);
    }
    log_in(user, with_socket).await?;
    agent(user)
}

/// Waits on the user's socket for `name` about resource `id` (and, if
/// given, in `status`), and records the time since `since` under
/// `method name` (e.g. `SIO api→socket call:created`).
pub async fn await_event(
    user: &mut GooseUser,
    agent: &Agent,
    name: &str,
    id: &str,
    status: Option<&str>,
    since: Instant,
    metric: (&str, &str),
) -> Result<Event, Box<TransactionError>> {
    let matches = |e: &Subject| e.is(id, status);
    wait_on_socket(user, agent, name, matches, |_| true, since, metric).await
}

/// Waits for the first `name` event about `id` whose status is one of
/// `finals`; records the time since `since` under `metric` only when that
/// status is `wanted` (a busy callee or an undelivered SMS is the carrier's
/// outcome, not a latency). Returns the status seen.
#[allow(clippy::too_many_arguments)]
pub async fn await_final(
    user: &mut GooseUser,
    agent: &Agent,
    name: &str,
    id: &str,
    finals: &[&str],
    wanted: &str,
    since: Instant,
    metric: (&str, &str),
) -> Result<String, Box<TransactionError>> {
    let is_final = |e: &Subject| {
        e.id.as_deref() == Some(id) && e.status.as_deref().is_some_and(|s| finals.contains(&s))
    };
    let timed = |e: &Event| e.subject.status.as_deref().unwrap_or_default() == wanted;
    let event = wait_on_socket(user, agent, name, is_final, timed, since, metric).await?;
    Ok(event.subject.status.unwrap_or_default())
}

/// Waits on the user's socket for the first `name` event that `matches`,
/// and records the time since `since` under `metric` when `timed` says the
/// event is a latency; a timeout is recorded as a failure.
async fn wait_on_socket(
    user: &mut GooseUser,
    agent: &Agent,
    name: &str,
    matches: impl Fn(&Subject) -> bool,
    timed: impl FnOnce(&Event) -> bool,
    since: Instant,
    metric: (&str, &str),
) -> Result<Event, Box<TransactionError>> {
    let socket = agent
        .socket
        .clone()
        .ok_or_else(|| fail("the user has no socket"))?;
    let result = socket
        .lock()
        .await
        .wait_for(name, EVENT_WAIT, |e| matches(&e.subject))
        .await;
    match result {
        Ok(event) => {
            if timed(&event) {
                let took = event.at.saturating_duration_since(since);
                user.record_custom_request_duration(metric.0, metric.1, took, true, None, None)
                    .await?;
            }
            Ok(event)
        }
        Err(e) => Err(failed(user, metric, since.elapsed(), e).await),
    }
}

/// The id field of a JSON answer.
pub fn id_of(value: &Value) -> Result<String, Box<TransactionError>> {
    value["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| fail(format!("no id in {value:.200}")))
}

/// Waits for the user's next scheduled start (paced scenarios); the
/// returned instant is the intended start, from which latency counts.
pub async fn next_tick(user: &mut GooseUser) -> Instant {
    let ctx = current();
    let rate = ctx.shape.rate.unwrap_or(1.0);
    let (users, index) = (ctx.shape.users, user.weighted_users_index);
    let mut pacer = user
        .get_session_data::<Agent>()
        .and_then(|a| a.pacer.clone())
        .or_else(|| user.get_session_data::<Pacer>().cloned())
        .unwrap_or_else(|| Pacer::new(rate, users, index));
    let intended = pacer.tick().await;
    if let Some(agent) = user.get_session_data_mut::<Agent>() {
        agent.pacer = Some(pacer);
    } else {
        user.set_session_data(pacer);
    }
    intended
}

/// Records a scheduled operation's latency from its intended start (the
/// coordinated-omission-corrected figure) and counts it toward throughput.
pub async fn record_scheduled(
    user: &mut GooseUser,
    name: &str,
    intended: Instant,
    ok: bool,
) -> TransactionResult {
    let ctx = current();
    if ok {
        ctx.throughput.record(ctx.started);
    }
    user.record_custom_request_duration("SCHED", name, intended.elapsed(), ok, None, None)
        .await
}

/// A random pause (talk time, reading time) inside a transaction.
pub async fn pause(min_ms: u64, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(rand::random_range(min_ms..=max_ms))).await;
}

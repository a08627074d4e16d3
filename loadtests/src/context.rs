//! What every scenario's users share during one attack: the target, the
//! demo tenants with a pool of their customers, and helpers for making
//! measured requests, signing carrier webhooks and pacing.
//!
//! Goose transactions are plain functions of a `GooseUser`, so the context
//! of the attack in progress is a process-wide slot set before each attack
//! ([`install`]) and read by the users ([`current`]).

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use goose::prelude::*;
use serde_json::{Value, json};
use switchboard_core::auth::Role;
use uuid::Uuid;

use crate::{profile::Shape, stack::Endpoints};

/// The carrier auth token, numbers and agents of one demo tenant, plus a
/// pool of its customers (id, phone) read from the API before the attack.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant's slug (its users are `...@<slug>.example`).
    pub slug: &'static str,
    /// The carrier auth token its carrier callbacks are signed with.
    pub carrier_token: &'static str,
    /// The tenant's own phone numbers, E.164.
    pub numbers: Vec<String>,
    /// Emails of its agents and supervisor (every user but the admin).
    pub agents: Vec<String>,
    /// Its admin's email (`admin@<slug>.example`).
    pub admin: String,
    /// Up to 1 000 of its customers: (id, phone).
    pub customers: Vec<(Uuid, String)>,
    /// The suite's own SMS template (`Hi {{first_name}}, ...`).
    pub template: Option<Uuid>,
}

/// Every demo user's password (the seed's).
pub const PASSWORD: &str = switchboard::seed::DEMO_PASSWORD;

/// Everything an attack's users share.
pub struct RunContext {
    /// Where the stack under test answers.
    pub endpoints: Endpoints,
    /// The demo tenants, with their customer pools.
    pub tenants: Vec<Tenant>,
    /// The load shape of this attack.
    pub shape: Shape,
    /// When the attack started (the steady window is measured from it).
    pub started: Instant,
    /// Scenario-specific shared state (fan-out collectors, storm call pool).
    pub extra: RwLock<Option<Arc<dyn std::any::Any + Send + Sync>>>,
    /// Operations completed per second, counted by paced scenarios (their
    /// `rate.achieved`); the open-model workday counts the transactions it
    /// starts here.
    pub throughput: crate::measure::Throughput,
    /// HTTP requests answered per second, counted only for an open-model
    /// workday (its `rate.achieved`).
    pub requests: Option<crate::measure::Throughput>,
}

static CURRENT: RwLock<Option<Arc<RunContext>>> = RwLock::new(None);

/// Makes `context` the attack in progress, the one [`current`] returns.
pub fn install(context: Arc<RunContext>) {
    *CURRENT.write().unwrap_or_else(|p| p.into_inner()) = Some(context);
}

/// The attack in progress. Transactions only run inside one.
pub fn current() -> Arc<RunContext> {
    CURRENT
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_else(|| unreachable!("a transaction runs only during an attack"))
}

impl RunContext {
    /// The tenant at `index`, wrapping around (users spread over tenants).
    pub fn tenant(&self, index: usize) -> &Tenant {
        &self.tenants[index % self.tenants.len()]
    }

    /// Scenario state set by its setup.
    pub fn extra<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let slot = self
            .extra
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        slot.downcast::<T>().ok()
    }

    /// Sets the scenario state that `extra` returns (done by its setup).
    pub fn set_extra<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        *self.extra.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }
}

/// The demo tenants with a pool of their customers.
pub async fn tenants(api: &str) -> anyhow::Result<Vec<Tenant>> {
    let http = client()?;
    let mut out = Vec::new();
    for demo in switchboard::seed::demo_tenants() {
        let admin = format!("admin@{}.example", demo.slug);
        let token = login(&http, api, &admin).await?;
        let mut customers = Vec::new();
        let mut cursor: Option<String> = None;
        while customers.len() < 1_000 {
            let mut url = format!("{api}/v1/customers?limit=200");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = get_json(&http, &url, &token).await?;
            for c in page["data"].as_array().into_iter().flatten() {
                if let (Some(id), Some(phone)) = (c["id"].as_str(), c["phone"].as_str()) {
                    customers.push((id.parse()?, phone.to_string()));
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        if customers.is_empty() {
            bail!(
                "tenant {} has no customers: is the database seeded?",
                demo.slug
            );
        }
        let template = ensure_template(&http, api, &token).await?;
        out.push(Tenant {
            slug: demo.slug,
            carrier_token: demo.carrier_auth_token,
            numbers: demo.numbers.clone(),
            agents: demo
                .agents
                .iter()
                .filter(|a| a.role != Role::Admin)
                .map(|a| a.email.clone())
                .collect(),
            admin,
            customers,
            template: Some(template),
        });
    }
    Ok(out)
}

const TEMPLATE_NAME: &str = "load-suite reminder";

/// The suite's template, created on first use.
async fn ensure_template(http: &reqwest::Client, api: &str, token: &str) -> anyhow::Result<Uuid> {
    let created = http
        .post(format!("{api}/v1/templates"))
        .bearer_auth(token)
        .json(&json!({
            "name": TEMPLATE_NAME,
            "body": "Hi {{first_name}}, this is a reminder about your appointment tomorrow. Reply STOP to opt out.",
        }))
        .send()
        .await?;
    if created.status().is_success() {
        let body: Value = created.json().await?;
        return body["id"]
            .as_str()
            .context("template id")?
            .parse()
            .context("template id");
    }
    let list = get_json(http, &format!("{api}/v1/templates?limit=200"), token).await?;
    list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"].as_str() == Some(TEMPLATE_NAME))
        .and_then(|t| t["id"].as_str()?.parse().ok())
        .ok_or_else(|| anyhow!("could not create or find the suite's SMS template"))
}

/// `GET url` with a bearer token: the JSON of a successful answer.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Value> {
    json_answer(http.get(url).bearer_auth(token)).await
}

/// `POST url` of `body` with a bearer token: the JSON of a successful
/// answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    json_answer(http.post(url).bearer_auth(token).json(body)).await
}

async fn json_answer(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    Ok(request.send().await?.error_for_status()?.json().await?)
}

/// An out-of-band HTTP client (setup, verification, polling): never measured.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()?)
}

/// Logs in out of band; returns the access token.
pub async fn login(http: &reqwest::Client, api: &str, email: &str) -> anyhow::Result<String> {
    let response = http
        .post(format!("{api}/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .with_context(|| format!("logging in as {email}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("login as {email} answered {status}: {body}"))
}

/// The form a carrier POSTs, signed over the API's public URL.
pub fn signed_form(
    public_url: &str,
    path: &str,
    auth_token: &str,
    params: &[(&str, String)],
) -> (String, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let signature =
        switchboard_core::carrier::sign(auth_token, &format!("{public_url}{path}"), &owned);
    let body = serde_urlencoded_pairs(&owned);
    (body, signature)
}

fn serde_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&urlencode(k));
        out.push('=');
        out.push_str(&urlencode(v));
    }
    out
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A measured request: Goose records it under `name` (method + name in the
/// reports), counting any status other than `expect` as a failure.
pub struct Call<'a> {
    /// The HTTP method.
    pub method: GooseMethod,
    /// Path and query, relative to the API.
    pub path: &'a str,
    /// The name Goose records it under, ids replaced
    /// (`POST /v1/customers/{id}/notes`).
    pub name: &'a str,
    /// A bearer token, if any.
    pub token: Option<&'a str>,
    /// A JSON body, if any.
    pub json: Option<&'a Value>,
    /// A signed carrier form: (body, signature).
    pub form: Option<(String, String)>,
    /// Any other body: (content type, body); used instead of `json`.
    pub raw: Option<(&'static str, String)>,
    /// The status of a correct answer.
    pub expect: u16,
    /// Another status that is a correct answer here, not a failure (a
    /// control refused with 409 because the simulated callee hung up).
    pub tolerate: Option<u16>,
}

impl<'a> Call<'a> {
    /// `GET path` with a bearer token, expecting 200.
    pub fn get(path: &'a str, name: &'a str, token: &'a str) -> Self {
        Call {
            method: GooseMethod::Get,
            path,
            name,
            token: Some(token),
            json: None,
            form: None,
            raw: None,
            expect: 200,
            tolerate: None,
        }
    }

    /// `POST path` of `json` with a bearer token, expecting 200.
    pub fn post(path: &'a str, name: &'a str, token: &'a str, json: &'a Value) -> Self {
        Call {
            method: GooseMethod::Post,
            path,
            name,
            token: Some(token),
            json: Some(json),
            form: None,
            raw: None,
            expect: 200,
            tolerate: None,
        }
    }

    /// A carrier callback: `POST path` of a [`signed_form`], no token,
    /// expecting 200.
    pub fn webhook(path: &'a str, name: &'a str, form: (String, String)) -> Self {
        Call {
            method: GooseMethod::Post,
            path,
            name,
            token: None,
            json: None,
            form: Some(form),
            raw: None,
            expect: 200,
            tolerate: None,
        }
    }

    /// Expects `status` instead.
    pub fn expect(mut self, status: u16) -> Self {
        self.expect = status;
        self
    }

    /// Also takes `status` as a correct answer.
    pub fn tolerate(mut self, status: u16) -> Self {
        self.tolerate = Some(status);
        self
    }

    /// Sends with `method` instead (a `PATCH` with a JSON body).
    pub fn method(mut self, method: GooseMethod) -> Self {
        self.method = method;
        self
    }

    /// Sends it; returns the status and the JSON body (Null when none).
    pub async fn send(self, user: &mut GooseUser) -> Result<(u16, Value), Box<TransactionError>> {
        self.send_told(user)
            .await
            .map(|(status, body, _)| (status, body))
    }

    /// Sends it, for its measurement alone: the answer is not needed.
    pub async fn perform(self, user: &mut GooseUser) -> TransactionResult {
        self.send(user).await.map(drop)
    }

    /// As [`send`](Self::send), and when the answer is a refusal that says
    /// when to come back (503 or 429 with `Retry-After`), an error that
    /// carries those seconds ([`retry_after`]) for a caller that, as a real
    /// client does, waits and tries again.
    pub async fn send_told(
        self,
        user: &mut GooseUser,
    ) -> Result<(u16, Value, Option<u64>), Box<TransactionError>> {
        let mut builder = user.get_request_builder(&self.method, self.path)?;
        if let Some(token) = self.token {
            builder = builder.bearer_auth(token);
        }
        if let Some((content_type, body)) = self.raw {
            builder = builder.header("content-type", content_type).body(body);
        } else if let Some(body) = self.json {
            builder = builder.json(body);
        }
        if let Some((body, signature)) = self.form {
            builder = builder
                .header("content-type", "application/x-www-form-urlencoded")
                .header(switchboard_core::carrier::SIGNATURE_HEADER, signature)
                .body(body);
        }
        let request = GooseRequest::builder()
            .method(self.method)
            .path(self.path)
            .name(self.name)
            .expect_status_code(self.expect)
            .set_request_builder(builder)
            .build();
        let mut goose = user.request(request).await?;
        if goose.response.is_ok() {
            let ctx = current();
            if let Some(requests) = &ctx.requests {
                requests.record(ctx.started);
            }
        }
        match goose.response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                if Some(status) == self.tolerate {
                    user.set_success(&mut goose.request)?;
                    return Ok((status, body, None));
                }
                if status != self.expect {
                    let told = match (status, retry_after) {
                        (429 | 503, Some(seconds)) => format!(" {RETRY_AFTER_MARK}{seconds}s"),
                        _ => String::new(),
                    };
                    return Err(Box::new(TransactionError::Custom(format!(
                        "{} {} answered {status}{told}: {:.200}",
                        self.name, self.path, body
                    ))));
                }
                Ok((status, body, retry_after))
            }
            Err(error) => Err(Box::new(TransactionError::Custom(format!(
                "{}: {error}",
                self.name
            )))),
        }
    }
}

const RETRY_AFTER_MARK: &str = "retry-after=";

/// The seconds a refusal told the client to wait ([`Call::send_told`]).
pub fn retry_after(error: &TransactionError) -> Option<u64> {
    let TransactionError::Custom(message) = error else {
        return None;
    };
    let (_, rest) = message.split_once(RETRY_AFTER_MARK)?;
    rest.split('s').next()?.parse().ok()
}

/// A transaction error with a message.
pub fn fail(message: impl std::fmt::Display) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(message.to_string()))
}

/// Open-model pacing for rate-targeted scenarios (see the README's
/// "coordinated omission"): each user owns a fixed schedule of intended start
/// times, `interval` apart. A user that falls behind does not skip or
/// reschedule; it starts late, and the lateness is part of the latency
/// recorded from the intended start.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// The next intended start.
    pub next: Instant,
    /// The gap between this user's intended starts.
    pub interval: Duration,
}

impl Pacer {
    /// A schedule for one of `users` users sharing `rate` operations/s,
    /// phase-shifted by the user's index so starts spread evenly.
    pub fn new(rate: f64, users: usize, index: usize) -> Pacer {
        let interval = Duration::from_secs_f64(users as f64 / rate.max(0.001));
        let phase = interval.mul_f64((index % users.max(1)) as f64 / users.max(1) as f64);
        Pacer {
            next: Instant::now() + phase,
            interval,
        }
    }

    /// Changes the gap between this user's starts from the next one on.
    pub fn retime(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Waits for the next intended start and returns it.
    pub async fn tick(&mut self) -> Instant {
        let intended = self.next;
        let now = Instant::now();
        if intended > now {
            tokio::time::sleep(intended - now).await;
        }
        self.next += self.interval;
        intended
    }
}

/// A random pick.
pub fn pick<T>(items: &[T]) -> &T {
    &items[rand::random_range(0..items.len())]
}

/// A message body of 50–160 GSM-7 characters.
pub fn sms_body() -> String {
    const WORDS: &[&str] = &[
        "hello",
        "your",
        "appointment",
        "is",
        "confirmed",
        "for",
        "tomorrow",
        "please",
        "call",
        "back",
        "at",
        "your",
        "convenience",
        "thanks",
        "order",
        "shipped",
        "today",
        "reply",
        "with",
        "any",
        "questions",
        "we",
        "are",
        "here",
        "to",
        "help",
    ];
    let target = rand::random_range(50..=160);
    let mut body = String::new();
    while body.len() < target {
        if !body.is_empty() {
            body.push(' ');
        }
        body.push_str(pick::<&str>(WORDS));
    }
    body.truncate(target);
    body
}

/// Time since the process started, as microseconds: a marker two tasks of
/// this process can compare (fan-out payloads carry it).
pub fn epoch_micros() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// The instant an [`epoch_micros`] value names.
pub fn epoch_instant(micros: u64) -> Instant {
    epoch() + Duration::from_micros(micros)
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_carries_its_retry_after_and_nothing_else_does() {
        let told = TransactionError::Custom(format!(
            "POST /v1/auth/login /v1/auth/login answered 503 {RETRY_AFTER_MARK}3s: {{}}"
        ));
        assert_eq!(retry_after(&told), Some(3));
        let plain =
            TransactionError::Custom("POST /v1/auth/login /v1/auth/login answered 500: {}".into());
        assert_eq!(retry_after(&plain), None);
    }

    #[test]
    fn forms_are_signed_over_the_public_url_and_sorted_parameters() {
        let (body, signature) = signed_form(
            "http://127.0.0.1:8080",
            "/webhooks/carrier/voice/status",
            "acme-carrier-token",
            &[
                ("CallSid", "CAfeedface".into()),
                ("CallStatus", "in-progress".into()),
                ("From", "+12025550100".into()),
                ("To", "+13125550177".into()),
                ("AccountSid", "ACacme".into()),
                ("CallDuration", "0".into()),
            ],
        );
        // The vector core's carrier tests take from Twilio's own library.
        assert_eq!(signature, "q2NZ5Uwu5kBfr+Tb42yy8XR72Uw=");
        assert!(body.starts_with("CallSid=CAfeedface&CallStatus=in-progress&From=%2B1202"));
    }

    #[test]
    fn bodies_are_50_to_160_characters() {
        for _ in 0..200 {
            let body = sms_body();
            assert!((50..=160).contains(&body.len()), "{}", body.len());
        }
    }

    #[tokio::test]
    async fn pacing_keeps_the_schedule_when_late() {
        let mut pacer = Pacer::new(1000.0, 1, 0);
        let first = pacer.tick().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Late: the next start is the scheduled one, not now.
        let second = pacer.tick().await;
        assert_eq!(second - first, Duration::from_millis(1));
    }
}

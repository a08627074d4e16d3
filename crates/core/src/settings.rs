//! The one configuration model, loaded once from the environment.
//!
//! Every setting has a local default so nothing is needed where PostgreSQL
//! and Redis listen on their standard ports. Secrets are [`SecretString`]s:
//! they print as `[REDACTED]`, so logging the settings cannot leak them.
//! With `SWITCHBOARD_ENV=production`, [`Settings::ensure_production_safe`]
//! refuses default secrets.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// `DATABASE_URL` when unset: the `switchboard` database of a local PostgreSQL.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres:postgres@localhost:5432/switchboard";
/// `REDIS_URL` when unset: a local Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// `SWITCHBOARD_JWT_SECRET` when unset. Every checkout knows it, so
/// [`Settings::ensure_production_safe`] refuses it.
pub const DEFAULT_JWT_SECRET: &str = "switchboard-dev-jwt-secret-change-me";

/// The kind of deployment (`SWITCHBOARD_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `development` or `dev`, the default.
    Development,
    /// `test`: treated as development.
    Test,
    /// `production` or `prod`: default secrets, fault injection and demo
    /// data are refused.
    Production,
}

/// Who plays the phone network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierMode {
    /// Our own carrier simulator (a worker queue) answers calls and messages.
    Simulated,
    /// Nothing is simulated: callbacks come from outside (a real carrier, or
    /// the load suite playing one).
    External,
}

/// Argon2id cost parameters for agent passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations (`SWITCHBOARD_ARGON2_T_COST`, default `2`).
    pub t_cost: u32,
    /// Parallelism, in lanes (`SWITCHBOARD_ARGON2_P_COST`, default `1`).
    pub p_cost: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommended minimum for argon2id (19 MiB, 2 iterations, 1 lane).
    fn default() -> Self {
        Self {
            m_cost: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Login throttling: failed logins allowed per sliding window, kept in Redis
/// so every API instance counts the same attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures one account (email) may collect within `account_window`
    /// before its logins are refused with 429 until the oldest one ages out.
    pub account_max_failures: u32,
    /// The sliding window of `account_max_failures`
    /// (`SWITCHBOARD_LOGIN_ACCOUNT_WINDOW_SECS`, in seconds; default `900`).
    pub account_window: Duration,
    /// Failures one client address may collect within `address_window`,
    /// across all accounts. Accounts that already logged in successfully
    /// from the address are exempt (see `login_throttle.rs` in the API).
    pub address_max_failures: u32,
    /// The sliding window of `address_max_failures`
    /// (`SWITCHBOARD_LOGIN_ADDRESS_WINDOW_SECS`, in seconds; default `900`).
    pub address_window: Duration,
    /// How long a successful login exempts its (account, address) pair from
    /// the address limit.
    pub known_address_ttl: Duration,
}

impl Default for LoginThrottle {
    /// 10 failures per account per 15 minutes: a person who mistypes does
    /// not get there, a guesser gets 40 tries an hour instead of what argon2
    /// allows (hundreds a minute). 100 failures per address per 15 minutes:
    /// an office of 300 agents behind one NAT mistyping at the start of a
    /// shift reaches perhaps 30, a password spray across accounts is cut off.
    fn default() -> Self {
        Self {
            account_max_failures: 10,
            account_window: Duration::from_secs(15 * 60),
            address_max_failures: 100,
            address_window: Duration::from_secs(15 * 60),
            known_address_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The configuration every Switchboard service shares, read from the
/// environment by [`Settings::from_env`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The kind of deployment (`SWITCHBOARD_ENV`, default `development`).
    pub environment: Environment,
    /// PostgreSQL connection URL (`DATABASE_URL`, default
    /// [`DEFAULT_DATABASE_URL`]).
    pub database_url: SecretString,
    /// Redis connection URL (`REDIS_URL`, default [`DEFAULT_REDIS_URL`]).
    pub redis_url: SecretString,
    /// Namespace for every Redis key and channel, so several deployments (or
    /// parallel test runs) can share one Redis.
    pub redis_prefix: String,
    /// Address the API listens on (`SWITCHBOARD_API_ADDR`, default
    /// `127.0.0.1:8080`).
    pub api_addr: SocketAddr,
    /// Address the realtime (Socket.IO) server listens on
    /// (`SWITCHBOARD_REALTIME_ADDR`, default `127.0.0.1:8081`).
    pub realtime_addr: SocketAddr,
    /// Address of the worker's `/health`, `/ready` and `/metrics`
    /// (`SWITCHBOARD_WORKER_ADDR`, default `127.0.0.1:8082`).
    pub worker_addr: SocketAddr,
    /// The API's public base URL as carriers see it; carrier signatures are
    /// computed over it, and proxies change the Host header.
    pub public_url: String,
    /// Who plays the phone network (`SWITCHBOARD_CARRIER`: `simulated`, the
    /// default, or `external`).
    pub carrier: CarrierMode,
    /// Time factor for the carrier simulator: 1 = real telephony timings.
    pub carrier_speed: f64,
    /// HS256 key that signs and verifies access tokens
    /// (`SWITCHBOARD_JWT_SECRET`, at least 16 characters; default
    /// [`DEFAULT_JWT_SECRET`], refused in production).
    pub jwt_secret: SecretString,
    /// Lifetime of an access token (`SWITCHBOARD_JWT_TTL_SECS`, in seconds;
    /// default `3600`).
    pub jwt_ttl: Duration,
    /// Argon2id cost of new password hashes (`SWITCHBOARD_ARGON2_M_COST`,
    /// `_T_COST`, `_P_COST`).
    pub argon2: Argon2Params,
    /// Failed-login limits (`SWITCHBOARD_LOGIN_*`).
    pub login_throttle: LoginThrottle,
    /// Most connections in each PostgreSQL pool
    /// (`SWITCHBOARD_DB_MAX_CONNECTIONS`, default `20`); the API's
    /// group-commit pool is sized apart.
    pub db_max_connections: u32,
    /// How long to wait for a pooled PostgreSQL connection before giving up;
    /// the API then answers 503 (`SWITCHBOARD_DB_ACQUIRE_TIMEOUT_MS`, in
    /// milliseconds; default `5000`).
    pub db_acquire_timeout: Duration,
    /// Most connections in each Redis pool (`SWITCHBOARD_REDIS_POOL_SIZE`,
    /// default `32`).
    pub redis_pool_size: usize,
    /// Region assumed for phone numbers typed without a country code.
    pub default_region: String,
    /// Largest API request body, in bytes; larger is a 413
    /// (`SWITCHBOARD_MAX_BODY_BYTES`, default `262144`).
    pub max_body_bytes: usize,
    /// Longest an API request may run before it is answered 503
    /// `request_timeout` (`SWITCHBOARD_REQUEST_TIMEOUT_MS`, in milliseconds;
    /// default `30000`).
    pub request_timeout: Duration,
    /// Latency injected into every API request (fault injection for the load
    /// suite's regression detection), in milliseconds with fractions (a
    /// regression of 20 % of a 2 ms median is 0.4 ms). Zero in normal
    /// operation.
    pub fault_latency: Duration,
    /// Fault injection for the load suite's rules: the realtime relay
    /// drops every event of this tenant (a lost event). None normally.
    pub fault_drop_events_tenant: Option<Uuid>,
    /// Fault injection: the carrier simulator never plays this tenant's
    /// calls and messages (a stalled simulator). None normally.
    pub fault_stall_carrier_tenant: Option<Uuid>,
    /// JSON logs instead of text (`SWITCHBOARD_LOG_FORMAT=json`; default
    /// `text`).
    pub log_json: bool,
    /// Worker: jobs one worker process runs at once, per queue.
    pub worker_concurrency: usize,
    /// Worker: attempts before a transiently failing job is dead-lettered.
    pub job_max_attempts: u32,
    /// Worker: the first retry's delay; each retry doubles it (capped at 5 min).
    pub job_retry_base: Duration,
    /// Worker: longest one job may run before it counts as a transient failure.
    pub job_timeout: Duration,
    /// Worker: how long a claimed job stays claimed without its worker
    /// renewing the claim; a killed worker's jobs run again after this.
    pub job_lease: Duration,
    /// Worker watchdog: a queue whose oldest due job has waited this long
    /// while the queue made no progress is declared stalled (ERROR log,
    /// `/ready` 503) and its worker restarted.
    pub queue_stall_after: Duration,
    /// Carrier simulator: random seed for outcomes and timings.
    pub sim_seed: u64,
    /// Carrier simulator: calls and messages it plays at once in one worker
    /// process (the `carrier.sim` queue's concurrency). The simulator stands
    /// for the phone network, whose concurrency is not ours to bound: its
    /// jobs spend their time waiting for the API to answer a callback, so
    /// at the worker's own concurrency the network, not the stack, would
    /// set the pace of a campaign.
    pub sim_concurrency: usize,
    /// Carrier simulator: inbound calls/texts per minute it places to the
    /// tenants' numbers (0 = none); keeps a demo stack alive.
    pub sim_inbound_calls_per_minute: f64,
    /// Carrier simulator: inbound texts per minute
    /// (`SWITCHBOARD_SIM_INBOUND_SMS_PER_MIN`, default `0`).
    pub sim_inbound_sms_per_minute: f64,
    /// How long an API instance may answer from its read caches (the
    /// principal's tenant and agent, customers by phone) before it reads the
    /// row again; `0` turns the caches off. Writes invalidate entries at
    /// once (PostgreSQL notifications): this bounds staleness only when the
    /// notifications themselves are lost.
    pub cache_ttl: Duration,
    /// Logins that may wait for a password check (argon2id, run a few at a
    /// time) before more are refused with 503 and `Retry-After`: a burst
    /// then costs its clients a retry instead of a timeout, and never
    /// starves every other request of CPU.
    pub login_queue_max: usize,
    /// Sweeper: a record waiting this long without progress is re-driven.
    pub sweep_after: Duration,
    /// How often the worker sweeps, rolls reports up and trims queues.
    pub maintenance_interval: Duration,
    /// Largest CSV file `POST /v1/imports` accepts (bytes); larger is a 413.
    pub import_max_bytes: usize,
    /// Most data rows one import takes; more is a 413.
    pub import_max_rows: usize,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable's value is unusable.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable (or group of variables) at fault.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A setting production must not run with (see
    /// [`Settings::ensure_production_safe`]); the message names it.
    #[error("refusing to start in production: {0}")]
    Unsafe(String),
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_lookup(|_| None).expect("the defaults are valid")
    }
}

impl Settings {
    /// Loads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Loads the settings from any variable source (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let environment = match get("SWITCHBOARD_ENV").as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("test") => Environment::Test,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(invalid(
                    "SWITCHBOARD_ENV",
                    format!("expected development, test or production, got {other:?}"),
                ));
            }
        };
        let carrier = match get("SWITCHBOARD_CARRIER").as_deref() {
            None | Some("simulated") => CarrierMode::Simulated,
            Some("external") => CarrierMode::External,
            Some(other) => {
                return Err(invalid(
                    "SWITCHBOARD_CARRIER",
                    format!("expected simulated or external, got {other:?}"),
                ));
            }
        };
        let carrier_speed: f64 = parse(&get, "SWITCHBOARD_CARRIER_SPEED", 1.0)?;
        if !(carrier_speed.is_finite() && carrier_speed > 0.0) {
            return Err(invalid(
                "SWITCHBOARD_CARRIER_SPEED",
                "must be a positive number".into(),
            ));
        }
        let cost = Argon2Params::default();
        let argon2 = Argon2Params {
            m_cost: parse(&get, "SWITCHBOARD_ARGON2_M_COST", cost.m_cost)?,
            t_cost: parse(&get, "SWITCHBOARD_ARGON2_T_COST", cost.t_cost)?,
            p_cost: parse(&get, "SWITCHBOARD_ARGON2_P_COST", cost.p_cost)?,
        };
        // The defaults, each overridden by its variable when set.
        let mut login_throttle = LoginThrottle::default();
        for (name, limit) in [
            (
                "SWITCHBOARD_LOGIN_ACCOUNT_MAX_FAILURES",
                &mut login_throttle.account_max_failures,
            ),
            (
                "SWITCHBOARD_LOGIN_ADDRESS_MAX_FAILURES",
                &mut login_throttle.address_max_failures,
            ),
        ] {
            *limit = parse(&get, name, *limit)?;
        }
        for (name, window) in [
            (
                "SWITCHBOARD_LOGIN_ACCOUNT_WINDOW_SECS",
                &mut login_throttle.account_window,
            ),
            (
                "SWITCHBOARD_LOGIN_ADDRESS_WINDOW_SECS",
                &mut login_throttle.address_window,
            ),
            (
                "SWITCHBOARD_LOGIN_KNOWN_ADDRESS_TTL_SECS",
                &mut login_throttle.known_address_ttl,
            ),
        ] {
            *window = duration(&get, name, window.as_secs())?;
        }
        if login_throttle.account_max_failures == 0
            || login_throttle.address_max_failures == 0
            || login_throttle.account_window.is_zero()
            || login_throttle.address_window.is_zero()
        {
            return Err(invalid(
                "SWITCHBOARD_LOGIN_*",
                "failure limits and windows must be positive".into(),
            ));
        }
        let public_url = get("SWITCHBOARD_PUBLIC_URL")
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(invalid(
                "SWITCHBOARD_PUBLIC_URL",
                "must start with http:// or https://".into(),
            ));
        }
        let redis_prefix = get("SWITCHBOARD_REDIS_PREFIX").unwrap_or_else(|| "sb".into());
        let settings = Self {
            environment,
            database_url: SecretString::from(
                get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            ),
            redis_url: SecretString::from(
                get("REDIS_URL").unwrap_or_else(|| DEFAULT_REDIS_URL.into()),
            ),
            redis_prefix,
            api_addr: parse(&get, "SWITCHBOARD_API_ADDR", ([127, 0, 0, 1], 8080).into())?,
            realtime_addr: parse(
                &get,
                "SWITCHBOARD_REALTIME_ADDR",
                ([127, 0, 0, 1], 8081).into(),
            )?,
            worker_addr: parse(
                &get,
                "SWITCHBOARD_WORKER_ADDR",
                ([127, 0, 0, 1], 8082).into(),
            )?,
            public_url,
            carrier,
            carrier_speed,
            jwt_secret: SecretString::from(
                get("SWITCHBOARD_JWT_SECRET").unwrap_or_else(|| DEFAULT_JWT_SECRET.into()),
            ),
            jwt_ttl: duration(&get, "SWITCHBOARD_JWT_TTL_SECS", 3600)?,
            argon2,
            login_throttle,
            db_max_connections: parse(&get, "SWITCHBOARD_DB_MAX_CONNECTIONS", 20u32)?,
            db_acquire_timeout: duration(&get, "SWITCHBOARD_DB_ACQUIRE_TIMEOUT_MS", 5_000)?,
            redis_pool_size: parse(&get, "SWITCHBOARD_REDIS_POOL_SIZE", 32usize)?,
            default_region: get("SWITCHBOARD_DEFAULT_REGION")
                .unwrap_or_else(|| "US".into())
                .to_uppercase(),
            max_body_bytes: parse(&get, "SWITCHBOARD_MAX_BODY_BYTES", 256 * 1024usize)?,
            request_timeout: duration(&get, "SWITCHBOARD_REQUEST_TIMEOUT_MS", 30_000)?,
            fault_latency: fault_latency(&get)?,
            fault_drop_events_tenant: optional(&get, "SWITCHBOARD_FAULT_DROP_EVENTS_TENANT")?,
            fault_stall_carrier_tenant: optional(&get, "SWITCHBOARD_FAULT_STALL_CARRIER_TENANT")?,
            log_json: matches!(get("SWITCHBOARD_LOG_FORMAT").as_deref(), Some("json")),
            worker_concurrency: parse(&get, "SWITCHBOARD_WORKER_CONCURRENCY", 64usize)?,
            job_max_attempts: parse(&get, "SWITCHBOARD_JOB_MAX_ATTEMPTS", 6u32)?,
            job_retry_base: duration(&get, "SWITCHBOARD_JOB_RETRY_BASE_MS", 1_000)?,
            job_timeout: duration(&get, "SWITCHBOARD_JOB_TIMEOUT_MS", 30_000)?,
            job_lease: duration(&get, "SWITCHBOARD_JOB_LEASE_MS", 10_000)?,
            queue_stall_after: duration(&get, "SWITCHBOARD_QUEUE_STALL_AFTER_MS", 60_000)?,
            cache_ttl: duration(&get, "SWITCHBOARD_CACHE_TTL_SECS", 300)?,
            login_queue_max: parse(&get, "SWITCHBOARD_LOGIN_QUEUE_MAX", 64usize)?,
            sim_seed: parse(&get, "SWITCHBOARD_SIM_SEED", 42u64)?,
            sim_concurrency: parse(&get, "SWITCHBOARD_SIM_CONCURRENCY", 256usize)?,
            sim_inbound_calls_per_minute: parse(
                &get,
                "SWITCHBOARD_SIM_INBOUND_CALLS_PER_MIN",
                0.0f64,
            )?,
            sim_inbound_sms_per_minute: parse(&get, "SWITCHBOARD_SIM_INBOUND_SMS_PER_MIN", 0.0f64)?,
            sweep_after: duration(&get, "SWITCHBOARD_SWEEP_AFTER_MS", 120_000)?,
            maintenance_interval: duration(&get, "SWITCHBOARD_MAINTENANCE_INTERVAL_MS", 15_000)?,
            // 100 000 rows of name, phone, email, company and tags are about
            // 8 MiB: 32 MiB leaves room for wide files with metadata columns.
            import_max_bytes: parse(&get, "SWITCHBOARD_IMPORT_MAX_BYTES", 32 * 1024 * 1024usize)?,
            import_max_rows: parse(&get, "SWITCHBOARD_IMPORT_MAX_ROWS", 200_000usize)?,
        };
        if settings.jwt_secret.expose_secret().len() < 16 {
            return Err(invalid(
                "SWITCHBOARD_JWT_SECRET",
                "must be at least 16 characters".into(),
            ));
        }
        if settings.jwt_ttl.is_zero() {
            return Err(invalid(
                "SWITCHBOARD_JWT_TTL_SECS",
                "must be positive".into(),
            ));
        }
        if settings.job_lease < Duration::from_secs(1) || settings.queue_stall_after.is_zero() {
            return Err(invalid(
                "SWITCHBOARD_JOB_LEASE_MS / SWITCHBOARD_QUEUE_STALL_AFTER_MS",
                "the lease must be at least 1000 ms and the stall time positive".into(),
            ));
        }
        if settings.worker_concurrency == 0
            || settings.sim_concurrency == 0
            || settings.job_max_attempts == 0
        {
            return Err(invalid(
                "SWITCHBOARD_WORKER_CONCURRENCY / SWITCHBOARD_SIM_CONCURRENCY / SWITCHBOARD_JOB_MAX_ATTEMPTS",
                "must be positive".into(),
            ));
        }
        for (name, rate) in [
            (
                "SWITCHBOARD_SIM_INBOUND_CALLS_PER_MIN",
                settings.sim_inbound_calls_per_minute,
            ),
            (
                "SWITCHBOARD_SIM_INBOUND_SMS_PER_MIN",
                settings.sim_inbound_sms_per_minute,
            ),
        ] {
            if !(rate.is_finite() && rate >= 0.0) {
                return Err(invalid(name, "must be a number ≥ 0".into()));
            }
        }
        if settings.db_max_connections == 0 || settings.redis_pool_size == 0 {
            return Err(invalid("pool size", "must be positive".into()));
        }
        argon2::Params::new(
            settings.argon2.m_cost,
            settings.argon2.t_cost,
            settings.argon2.p_cost,
            None,
        )
        .map_err(|e| invalid("SWITCHBOARD_ARGON2_*", e.to_string()))?;
        Ok(settings)
    }

    /// Whether `SWITCHBOARD_ENV` is `production` (or `prod`).
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// In production, refuses the secrets every checkout knows.
    pub fn ensure_production_safe(&self) -> Result<(), SettingsError> {
        if !self.is_production() {
            return Ok(());
        }
        if self.jwt_secret.expose_secret() == DEFAULT_JWT_SECRET {
            return Err(SettingsError::Unsafe(
                "SWITCHBOARD_JWT_SECRET is the development default".into(),
            ));
        }
        for (set, name) in [
            (
                self.fault_latency > Duration::ZERO,
                "SWITCHBOARD_FAULT_LATENCY_MS",
            ),
            (
                self.fault_drop_events_tenant.is_some(),
                "SWITCHBOARD_FAULT_DROP_EVENTS_TENANT",
            ),
            (
                self.fault_stall_carrier_tenant.is_some(),
                "SWITCHBOARD_FAULT_STALL_CARRIER_TENANT",
            ),
        ] {
            if set {
                return Err(SettingsError::Unsafe(format!(
                    "{name} is a test-only fault injection"
                )));
            }
        }
        Ok(())
    }

    /// The Redis key or channel name for `suffix`, inside this deployment's namespace.
    pub fn redis_key(&self, suffix: &str) -> String {
        format!("{}:{}", self.redis_prefix, suffix)
    }
}

fn invalid(name: &'static str, reason: String) -> SettingsError {
    SettingsError::Invalid { name, reason }
}

/// `SWITCHBOARD_FAULT_LATENCY_MS`: milliseconds, fractions allowed, at
/// most a minute.
fn fault_latency(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, SettingsError> {
    const NAME: &str = "SWITCHBOARD_FAULT_LATENCY_MS";
    let ms: f64 = parse(get, NAME, 0.0)?;
    if !(0.0..=60_000.0).contains(&ms) {
        return Err(invalid(
            NAME,
            format!("{ms} is not a latency in milliseconds from 0 to 60 000"),
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// A whole number of the unit the variable's name ends with, `_MS` or
/// `_SECS`; `default` of them when unset.
fn duration(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, SettingsError> {
    let count = parse(get, name, default)?;
    Ok(if name.ends_with("_MS") {
        Duration::from_millis(count)
    } else {
        debug_assert!(name.ends_with("_SECS"), "{name} names no unit");
        Duration::from_secs(count)
    })
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| invalid(name, format!("{e} (got {raw:?})"))),
    }
}

/// A setting with no default: absent or empty is `None`.
fn optional<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, SettingsError>
where
    T::Err: std::fmt::Display,
{
    match get(name).filter(|raw| !raw.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| invalid(name, format!("{e} (got {raw:?})"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn durations_are_read_in_the_unit_their_name_ends_with() {
        let s = load(&[
            ("SWITCHBOARD_JOB_LEASE_MS", "1500"),
            ("SWITCHBOARD_JWT_TTL_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(s.job_lease, Duration::from_millis(1500));
        assert_eq!(s.jwt_ttl, Duration::from_secs(60));
    }

    #[test]
    fn defaults_need_no_environment() {
        let s = load(&[]).unwrap();
        assert_eq!(s.api_addr.port(), 8080);
        assert_eq!(s.realtime_addr.port(), 8081);
        assert_eq!(s.worker_addr.port(), 8082);
        assert_eq!(s.carrier, CarrierMode::Simulated);
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let s = load(&[
            ("SWITCHBOARD_JWT_SECRET", "a-very-secret-value-123"),
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("a-very-secret-value-123"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = load(&[("SWITCHBOARD_API_ADDR", "not-an-addr")]).unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_API_ADDR"), "{err}");
        let err = load(&[("SWITCHBOARD_CARRIER", "pigeon")]).unwrap_err();
        assert!(err.to_string().contains("SWITCHBOARD_CARRIER"), "{err}");
        assert!(load(&[("SWITCHBOARD_CARRIER_SPEED", "0")]).is_err());
        assert!(load(&[("SWITCHBOARD_ARGON2_M_COST", "1")]).is_err());
    }

    #[test]
    fn production_refuses_the_default_jwt_secret() {
        let s = load(&[("SWITCHBOARD_ENV", "production")]).unwrap();
        assert!(s.ensure_production_safe().is_err());
        let s = load(&[
            ("SWITCHBOARD_ENV", "production"),
            ("SWITCHBOARD_JWT_SECRET", "a-real-secret-from-a-vault"),
        ])
        .unwrap();
        assert!(s.ensure_production_safe().is_ok());
        assert!(load(&[]).unwrap().ensure_production_safe().is_ok());
    }

    #[test]
    fn fault_injection_is_refused_in_production_and_parsed_elsewhere() {
        let tenant = "0195c2a0-0000-7000-8000-000000000001";
        for name in [
            "SWITCHBOARD_FAULT_DROP_EVENTS_TENANT",
            "SWITCHBOARD_FAULT_STALL_CARRIER_TENANT",
        ] {
            let s = load(&[
                ("SWITCHBOARD_ENV", "production"),
                ("SWITCHBOARD_JWT_SECRET", "a-real-secret-from-a-vault"),
                (name, tenant),
            ])
            .unwrap();
            assert!(
                matches!(s.ensure_production_safe(), Err(SettingsError::Unsafe(m)) if m.contains(name))
            );
            assert!(load(&[(name, "not-a-uuid")]).is_err(), "{name}");
        }
        let s = load(&[("SWITCHBOARD_FAULT_DROP_EVENTS_TENANT", tenant)]).unwrap();
        assert_eq!(s.fault_drop_events_tenant, tenant.parse().ok());
        assert_eq!(s.fault_stall_carrier_tenant, None);
    }

    /// A regression of a fifth of a 2 ms median is 0.4 ms: the latency
    /// fault takes fractions of a millisecond, and nothing negative, not a
    /// number or over a minute.
    #[test]
    fn the_latency_fault_takes_fractions_of_a_millisecond() {
        let latency = |raw: &str| load(&[("SWITCHBOARD_FAULT_LATENCY_MS", raw)]);
        assert_eq!(load(&[]).unwrap().fault_latency, Duration::ZERO);
        assert_eq!(
            latency("0.4").unwrap().fault_latency,
            Duration::from_micros(400)
        );
        assert_eq!(
            latency("150").unwrap().fault_latency,
            Duration::from_millis(150)
        );
        for bad in ["-1", "NaN", "inf", "60001", "fast"] {
            let err = latency(bad).unwrap_err();
            assert!(
                err.to_string().contains("SWITCHBOARD_FAULT_LATENCY_MS"),
                "{bad}: {err}"
            );
        }
        let production = load(&[
            ("SWITCHBOARD_ENV", "production"),
            ("SWITCHBOARD_JWT_SECRET", "a-real-secret-from-a-vault"),
            ("SWITCHBOARD_FAULT_LATENCY_MS", "0.4"),
        ])
        .unwrap();
        assert!(production.ensure_production_safe().is_err());
    }
}

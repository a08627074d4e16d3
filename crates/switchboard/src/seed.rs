//! `switchboard seed`: deterministic demo data.
//!
//! Two tenants (`acme`, `globex`) with their numbers, agents, API keys and
//! templates, then volume data (customers, historical calls with their
//! events, messages, voicemails, notes) streamed with `COPY` inside one
//! transaction: a crash leaves nothing half-written, and a `seed_runs` row
//! makes a second run a no-op instead of a duplicate.
//!
//! The same `--seed` gives the same rows; timestamps are laid out over the
//! 90 days before the anchor (default: today, 00:00 UTC) so dashboards show
//! recent activity.

use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use switchboard_core::calls::{CallEventKind, CallStatus, Direction, Route, TranscriptionStatus};
use switchboard_core::sms::{self, MessageStatus};
use switchboard_core::{Settings, auth, auth::Role, ids::id_at};
use uuid::Uuid;

/// The password of every demo agent and admin.
pub const DEMO_PASSWORD: &str = "switchboard-demo";
const DAYS_OF_HISTORY: i64 = 90;

/// The share of seeded voicemails left unheard (the rest were listened to
/// within two days of arriving). The load suite's workday refills each
/// tenant's inbox to this share before and while it runs, since its agents
/// mark voicemail heard.
pub const UNHEARD_VOICEMAIL_SHARE: f64 = 0.3;

/// How much to seed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SeedParams {
    /// Customers to create, alternating between the two tenants.
    pub customers: u64,
    /// Historical calls, each with its status history in `call_events`.
    pub calls: u64,
    /// Historical messages.
    pub messages: u64,
    /// Voicemails: one per unanswered inbound call while there are enough,
    /// standalone after that.
    pub voicemails: u64,
    /// Random seed: the same seed gives the same rows.
    pub seed: u64,
    /// History covers the 90 days before this date (00:00 UTC).
    pub anchor: NaiveDate,
}

impl Default for SeedParams {
    fn default() -> Self {
        Self {
            customers: 10_000,
            calls: 100_000,
            messages: 100_000,
            voicemails: 5_000,
            seed: 42,
            anchor: Utc::now().date_naive(),
        }
    }
}

/// A demo tenant, fixed by DESIGN.md.
#[derive(Debug, Clone)]
pub struct DemoTenant {
    /// A fixed id, derived from the slug.
    pub id: Uuid,
    /// `acme` or `globex`.
    pub slug: &'static str,
    /// Display name (`Acme Corporation`, `Globex Corporation`).
    pub name: &'static str,
    /// The token the carrier signs the tenant's webhooks with
    /// (`acme-carrier-token`, `globex-carrier-token`).
    pub carrier_auth_token: &'static str,
    /// The tenant's numbers, E.164.
    pub numbers: Vec<String>,
    /// The tenant's demo API key (role `admin`), derived from its slug.
    pub api_key: String,
    /// `agent01` to `agent15` (`agent15` the supervisor), then the admin.
    pub agents: Vec<DemoAgent>,
}

/// A demo tenant's agent, supervisor or admin.
#[derive(Debug, Clone)]
pub struct DemoAgent {
    /// A fixed id, the same in every seed.
    pub id: Uuid,
    /// `agentNN@<slug>.example` or `admin@<slug>.example`.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What the agent may do.
    pub role: Role,
}

/// The two demo tenants with every credential they have. Deterministic, so
/// the load suite and the README can rely on them.
pub fn demo_tenants() -> Vec<DemoTenant> {
    [
        ("acme", "Acme Corporation", "acme-carrier-token", 100u32),
        (
            "globex",
            "Globex Corporation",
            "globex-carrier-token",
            150u32,
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(t, (slug, name, token, first_number))| {
        let tenant_id = fixed_id(&format!("tenant:{slug}"));
        let mut agents: Vec<DemoAgent> = (1..=15)
            .map(|n| DemoAgent {
                id: fixed_id(&format!("agent:{slug}:{n}")),
                email: format!("agent{n:02}@{slug}.example"),
                name: format!(
                    "{} {}",
                    FIRST_NAMES[(n + t * 15) % FIRST_NAMES.len()],
                    LAST_NAMES[(n * 7 + t) % LAST_NAMES.len()]
                ),
                // The last agent of each team supervises it.
                role: if n == 15 {
                    Role::Supervisor
                } else {
                    Role::Agent
                },
            })
            .collect();
        agents.push(DemoAgent {
            id: fixed_id(&format!("agent:{slug}:admin")),
            email: format!("admin@{slug}.example"),
            name: format!("{name} Admin"),
            role: Role::Admin,
        });
        DemoTenant {
            id: tenant_id,
            slug,
            name,
            carrier_auth_token: token,
            numbers: (first_number..first_number + 50)
                .map(|n| format!("+120255501{:02}", n - 100))
                .collect(),
            api_key: demo_api_key(slug),
            agents,
        }
    })
    .collect()
}

/// A demo API key derived from the tenant's slug: public by design, refused
/// in production like the rest of the demo data.
fn demo_api_key(slug: &str) -> String {
    let digest = Sha256::digest(format!("switchboard-demo-api-key:{slug}").as_bytes());
    format!("{}demo{}", auth::API_KEY_PREFIX, &hex::encode(digest)[..36])
}

/// A stable UUIDv7-shaped id for a named demo row (2026-01-01 + a hash).
fn fixed_id(name: &str) -> Uuid {
    let digest = Sha256::digest(name.as_bytes());
    let entropy = u128::from_be_bytes(digest[..16].try_into().unwrap_or([0; 16]));
    id_at(
        DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
        entropy,
    )
}

/// What a seed run did.
#[derive(Debug)]
pub struct SeedReport {
    /// The demo tenants with their credentials, seeded now or before.
    pub tenants: Vec<DemoTenant>,
    /// `None` when the volume data was already there.
    pub rows: Option<u64>,
    /// How long the run took.
    pub elapsed: std::time::Duration,
    /// What the existing data was seeded with, when the run found it
    /// already there (`None` if it seeded, or the parameters are unknown).
    pub existing_params: Option<SeedParams>,
}

/// Seeds the database (migrated already). Idempotent: a second run reports
/// what is there and changes nothing; `reset` empties every table first.
pub async fn run(
    pool: &PgPool,
    settings: &Settings,
    params: &SeedParams,
    reset: bool,
    progress: bool,
) -> anyhow::Result<SeedReport> {
    if settings.is_production() {
        bail!("refusing to seed: SWITCHBOARD_ENV=production and the demo credentials are public");
    }
    let started = Instant::now();
    let tenants = demo_tenants();
    let mut conn = pool.acquire().await?;
    if reset {
        reset_all(&mut conn).await?;
    }
    let existing: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT params FROM seed_runs WHERE name = 'demo'")
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(existing) = existing {
        return Ok(SeedReport {
            tenants,
            rows: None,
            elapsed: started.elapsed(),
            existing_params: serde_json::from_value(existing).ok(),
        });
    }

    // One hash for every demo agent: they share a password, and argon2 at
    // production cost is deliberately slow.
    let password_hash = auth::hash_password(DEMO_PASSWORD, settings.argon2);
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Serialise concurrent seeders (two load-suite runs starting at once).
    sqlx::query("SELECT pg_advisory_xact_lock(7702001)")
        .execute(&mut *tx)
        .await?;
    let already: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM seed_runs WHERE name = 'demo')")
            .fetch_one(&mut *tx)
            .await?;
    if already {
        return Ok(SeedReport {
            tenants,
            rows: None,
            elapsed: started.elapsed(),
            existing_params: None,
        });
    }
    let mut generator = Generator::new(params, &tenants, progress);
    let rows = generator.write_all(&mut tx, &password_hash).await?;
    sqlx::query("INSERT INTO seed_runs (name, params, rows) VALUES ('demo', $1, $2)")
        .bind(serde_json::to_value(params)?)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    generator.bar.finish_and_clear();
    // Sets the visibility map too, so reports get index-only scans at once
    // (autovacuum would, eventually).
    sqlx::query("VACUUM (ANALYZE)").execute(&mut *conn).await?;
    drop(conn);
    // The history is settled: roll it into the report rollups now rather
    // than on the worker's first maintenance pass.
    let rolled = switchboard_core::reports::roll_up(pool, Utc::now())
        .await
        .context("rolling the seeded history into the report rollups")?;
    if let Some(failures) = rolled.failures() {
        anyhow::bail!("seeding: {failures}");
    }
    Ok(SeedReport {
        tenants,
        rows: Some(rows),
        elapsed: started.elapsed(),
        existing_params: None,
    })
}

async fn reset_all(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query(
        "TRUNCATE tenants, phone_numbers, agents, api_keys, customers, customer_notes, calls,
                  call_events, recordings, templates, campaigns, messages, opt_outs, voicemails,
                  idempotency_keys, tenant_webhooks, report_rollup_state, report_rollups_hourly,
                  agent_rollups_hourly, seed_runs CASCADE",
    )
    .execute(conn)
    .await
    .context("emptying the tables")?;
    Ok(())
}

// Generation ------------------------------------------------------------------

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Margaret",
    "Ken",
    "Radia",
    "Dennis",
    "Hedy",
    "Tim",
    "Katherine",
    "Linus",
    "Sophie",
    "Guido",
    "Annie",
    "Bjarne",
    "Joan",
    "Niklaus",
    "Karen",
    "Leslie",
    "Mary",
    "Vint",
    "Shafi",
    "Robin",
    "Anita",
    "Claude",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Ritchie",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "Torvalds",
    "Wilson",
    "van Rossum",
    "Easley",
    "Stroustrup",
    "Clarke",
    "Wirth",
    "Jones",
    "Lamport",
    "Keller",
    "Cerf",
    "Goldwasser",
    "Milner",
    "Borg",
    "Shannon",
];
const COMPANIES: &[&str] = &[
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay Industries",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Wonka",
    "Gringotts",
    "Monsters Inc",
];
/// Area codes whose numbers libphonenumber accepts as valid US numbers.
const AREA_CODES: &[u32] = &[
    212, 213, 305, 312, 415, 503, 512, 602, 617, 646, 702, 713, 718, 720, 303, 404, 206, 214, 347,
    619,
];
const MESSAGE_BODIES: &[&str] = &[
    "Hi {name}, your appointment is confirmed for tomorrow at 10am. Reply C to confirm.",
    "Thanks for calling, {name}! Your ticket number is {n}.",
    "Your order {n} has shipped and should arrive within 2 business days.",
    "Can we move our call to 3pm?",
    "Yes, that works for me. Talk soon.",
    "Reminder: your invoice {n} is due on Friday. Pay online or call us.",
    "We missed your call. An agent will call you back within the hour.",
    "Great, thanks! 👍",
    "Your verification code is {n}. It expires in 10 minutes.",
    "Bonjour {name}, votre rendez-vous est confirmé. À bientôt !",
    "Is the quote still valid? We'd like to go ahead with 20 seats.",
    "Our office is closed today; we're back Monday at 9am. For urgent issues call the hotline.",
];
const TEMPLATES: &[(&str, &str)] = &[
    (
        "appointment-reminder",
        "Hi {{first_name}}, this is a reminder of your appointment on {{date}}. Reply STOP to opt out.",
    ),
    (
        "missed-call",
        "Hi {{first_name}}, we missed your call. An agent will call you back shortly.",
    ),
    (
        "payment-due",
        "Hello {{name}}, invoice {{invoice}} for {{amount}} is due on {{date}}.",
    ),
    (
        "welcome",
        "Welcome to {{company}}, {{first_name}}! Save this number to reach our team.",
    ),
];
const TRANSCRIPTS: &[&str] = &[
    "Hi, this is a message about my account. Please call me back when you can.",
    "Hello, I'm calling about the invoice I received last week. There's a question about the total.",
    "Hey, just returning your call. I'm free this afternoon after two.",
    "Hi, I'd like to reschedule my appointment to next week if possible. Thanks.",
    "This is a message for the support team: the issue we discussed is happening again.",
];

struct CustomerRow {
    id: Uuid,
    name: String,
    phone: String,
}

struct CallRow {
    id: Uuid,
    tenant: usize,
    from: String,
    to: String,
    customer: Option<Uuid>,
    created_at: DateTime<Utc>,
}

struct Generator<'a> {
    params: &'a SeedParams,
    tenants: &'a [DemoTenant],
    rng: ChaCha8Rng,
    start: DateTime<Utc>,
    span_secs: i64,
    bar: ProgressBar,
    customers: Vec<CustomerRow>,
    /// Inbound calls nobody answered: where voicemails come from.
    unanswered_inbound: Vec<CallRow>,
}

impl<'a> Generator<'a> {
    fn new(params: &'a SeedParams, tenants: &'a [DemoTenant], progress: bool) -> Self {
        let anchor = params
            .anchor
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_else(Utc::now);
        let total = params.customers + params.calls * 4 + params.messages + params.voicemails;
        let bar = if progress {
            ProgressBar::new(total)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg:<12} [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            params,
            tenants,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            start: anchor - Duration::days(DAYS_OF_HISTORY),
            span_secs: DAYS_OF_HISTORY * 86_400,
            bar,
            customers: Vec::new(),
            unanswered_inbound: Vec::new(),
        }
    }

    /// A random moment in the history window, weighted to business hours.
    fn moment(&mut self) -> DateTime<Utc> {
        let day = self.rng.random_range(0..self.span_secs / 86_400);
        let hour: i64 = if self.rng.random_bool(0.85) {
            self.rng.random_range(13..23) // 8am–6pm US Eastern, in UTC
        } else {
            self.rng.random_range(0..24)
        };
        let second = self.rng.random_range(0..3600);
        self.start + Duration::seconds(day * 86_400 + hour * 3600 + second)
    }

    /// `n` moments in the history window, oldest first.
    fn sorted_moments(&mut self, n: u64) -> Vec<DateTime<Utc>> {
        let mut moments: Vec<DateTime<Utc>> = (0..n).map(|_| self.moment()).collect();
        moments.sort_unstable();
        moments
    }

    fn id_at(&mut self, at: DateTime<Utc>) -> Uuid {
        id_at(at, self.rng.random())
    }

    fn sid(&mut self, prefix: &str) -> String {
        format!("{prefix}{:032x}", self.rng.random::<u128>())
    }

    async fn write_all(
        &mut self,
        tx: &mut PgConnection,
        password_hash: &str,
    ) -> anyhow::Result<u64> {
        let mut rows = self.write_tenants(tx, password_hash).await?;
        rows += self.write_customers(tx).await?;
        rows += self.write_calls(tx).await?;
        rows += self.write_messages(tx).await?;
        rows += self.write_voicemails(tx).await?;
        Ok(rows)
    }

    async fn write_tenants(
        &mut self,
        tx: &mut PgConnection,
        password_hash: &str,
    ) -> anyhow::Result<u64> {
        let mut rows = 0;
        for tenant in self.tenants {
            sqlx::query(
                "INSERT INTO tenants (id, slug, name, carrier_auth_token) VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant.id)
            .bind(tenant.slug)
            .bind(tenant.name)
            .bind(tenant.carrier_auth_token)
            .execute(&mut *tx)
            .await?;
            let defaults: Vec<bool> = (0..tenant.numbers.len()).map(|i| i == 0).collect();
            sqlx::query(
                "INSERT INTO phone_numbers (number, tenant_id, is_default)
                 SELECT n, $2, d FROM unnest($1::text[], $3::bool[]) AS t(n, d)",
            )
            .bind(&tenant.numbers)
            .bind(tenant.id)
            .bind(&defaults)
            .execute(&mut *tx)
            .await?;
            let ids: Vec<Uuid> = tenant.agents.iter().map(|a| a.id).collect();
            let emails: Vec<&str> = tenant.agents.iter().map(|a| a.email.as_str()).collect();
            let names: Vec<&str> = tenant.agents.iter().map(|a| a.name.as_str()).collect();
            let roles: Vec<&str> = tenant.agents.iter().map(|a| a.role.as_str()).collect();
            sqlx::query(
                "INSERT INTO agents (id, tenant_id, email, name, role, password_hash)
                 SELECT id, $2, email, name, role, $6
                 FROM unnest($1::uuid[], $3::text[], $4::text[], $5::text[]) AS t(id, email, name, role)",
            )
            .bind(&ids)
            .bind(tenant.id)
            .bind(&emails)
            .bind(&names)
            .bind(&roles)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role)
                 VALUES ($1, $2, 'demo', $3, $4, $5)",
            )
            .bind(fixed_id(&format!("api-key:{}", tenant.slug)))
            .bind(tenant.id)
            .bind(auth::api_key_display_prefix(&tenant.api_key))
            .bind(auth::hash_api_key(&tenant.api_key))
            .bind(Role::Admin)
            .execute(&mut *tx)
            .await?;
            for (name, body) in TEMPLATES {
                sqlx::query(
                    "INSERT INTO templates (id, tenant_id, name, body) VALUES ($1, $2, $3, $4)",
                )
                .bind(fixed_id(&format!("template:{}:{name}", tenant.slug)))
                .bind(tenant.id)
                .bind(name)
                .bind(body)
                .execute(&mut *tx)
                .await?;
            }
            rows += 1
                + tenant.numbers.len() as u64
                + tenant.agents.len() as u64
                + 1
                + TEMPLATES.len() as u64;
        }
        Ok(rows)
    }

    async fn write_customers(&mut self, tx: &mut PgConnection) -> anyhow::Result<u64> {
        self.bar.set_message("customers");
        let mut copy = Copy::new(tx, COPY_CUSTOMERS).await?;
        let mut notes: Vec<(Uuid, usize, Uuid, DateTime<Utc>)> = Vec::new();
        for i in 0..self.params.customers {
            let tenant = (i % self.tenants.len() as u64) as usize;
            let tenants = self.tenants;
            let first = *FIRST_NAMES.choose(&mut self.rng).unwrap_or(&"Ada");
            let last = *LAST_NAMES.choose(&mut self.rng).unwrap_or(&"Lovelace");
            let name = format!("{first} {last}");
            let phone = customer_phone(i / self.tenants.len() as u64);
            let created = self.moment();
            let id = self.id_at(created);
            let email = format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace([' ', '-'], ""),
                i
            );
            let company = self
                .rng
                .random_bool(0.6)
                .then(|| *COMPANIES.choose(&mut self.rng).unwrap_or(&"Initech"));
            let tags = match self.rng.random_range(0..10) {
                0 => "{vip}",
                1 => "{churn-risk}",
                2 => "{vip,enterprise}",
                _ => "{}",
            };
            copy.row(&[
                Some(id.to_string().as_str()),
                Some(tenants[tenant].id.to_string().as_str()),
                Some(&name),
                Some(&email),
                Some(&phone),
                company,
                Some(tags),
                Some("{}"),
                Some(&created.to_rfc3339()),
                Some(&created.to_rfc3339()),
            ])
            .await?;
            if self.rng.random_bool(0.2) {
                let at = created + Duration::hours(self.rng.random_range(1..72));
                notes.push((self.id_at(at), tenant, id, at));
            }
            self.customers.push(CustomerRow { id, name, phone });
            self.bar.inc(1);
        }
        let mut rows = copy.finish().await?;
        let mut copy = Copy::new(tx, COPY_CUSTOMER_NOTES).await?;
        for (id, tenant, customer, at) in notes {
            let agent = self.tenants[tenant].agents[self.rng.random_range(0..15)].id;
            copy.row(&[
                Some(id.to_string().as_str()),
                Some(self.tenants[tenant].id.to_string().as_str()),
                Some(customer.to_string().as_str()),
                Some(agent.to_string().as_str()),
                Some("Spoke with the customer; follow-up scheduled."),
                Some(&at.to_rfc3339()),
            ])
            .await?;
        }
        rows += copy.finish().await?;
        Ok(rows)
    }

    async fn write_calls(&mut self, tx: &mut PgConnection) -> anyhow::Result<u64> {
        self.bar.set_message("calls");
        let mut calls = Copy::new(tx, COPY_CALLS).await?;
        let mut events: Vec<u8> = Vec::new();
        let mut event_rows = 0u64;
        // History accumulates in time order, as in a live system, so rows of
        // one period sit together on disk.
        let moments = self.sorted_moments(self.params.calls);
        for created in moments {
            let (tenant, customer, outbound, our_number) = self.draw_parties(0.6);
            let t = &self.tenants[tenant];
            let their_number = match customer {
                Some(i) => self.customers[i].phone.clone(),
                None => customer_phone(10_000_000 + self.rng.random_range(0..1_000_000)),
            };
            let (from, to) = if outbound {
                (our_number, their_number)
            } else {
                (their_number, our_number)
            };
            let status = [
                (CallStatus::Completed, 68u32),
                (CallStatus::NoAnswer, 14),
                (CallStatus::Busy, 9),
                (CallStatus::Failed, 3),
                (CallStatus::Canceled, 6),
            ]
            .choose_weighted(&mut self.rng, |s| s.1)
            .map_or(CallStatus::Completed, |s| s.0);
            let id = self.id_at(created);
            let ringing = created + Duration::milliseconds(self.rng.random_range(300..2500));
            let answered = (status == CallStatus::Completed)
                .then(|| ringing + Duration::milliseconds(self.rng.random_range(2000..25_000)));
            // Talk time: mostly a few minutes, with a long tail.
            let talk = answered.map(|_| {
                let base: f64 = self.rng.random_range(0.0f64..1.0).powi(2);
                (20.0 + base * 900.0) as i64
            });
            let ended = match (answered, talk) {
                (Some(a), Some(secs)) => a + Duration::seconds(secs),
                _ => ringing + Duration::seconds(self.rng.random_range(5..40)),
            };
            let agent = (outbound || status == CallStatus::Completed)
                .then(|| t.agents[self.rng.random_range(0..15)].id);
            let routed_to = (!outbound).then(|| {
                if status == CallStatus::Completed {
                    Route::Agent
                } else {
                    Route::Voicemail
                }
            });
            let direction = if outbound {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let sid = self.sid("CA");
            let customer_id = customer.map(|i| self.customers[i].id);
            calls
                .row(&[
                    Some(id.to_string().as_str()),
                    Some(t.id.to_string().as_str()),
                    Some(direction.as_str()),
                    Some(&from),
                    Some(&to),
                    Some(status.as_str()),
                    Some(&sid),
                    customer_id.map(|c| c.to_string()).as_deref(),
                    agent.map(|a| a.to_string()).as_deref(),
                    routed_to.map(Route::as_str),
                    Some(&created.to_rfc3339()),
                    Some(&ringing.to_rfc3339()),
                    answered.map(|a| a.to_rfc3339()).as_deref(),
                    Some(&ended.to_rfc3339()),
                    talk.map(|s| s.to_string()).as_deref(),
                    Some(&ended.to_rfc3339()),
                ])
                .await?;
            // The history this call went through, as the live system records it.
            let mut steps = vec![(CallStatus::Queued, CallStatus::Ringing, ringing)];
            if let Some(a) = answered {
                steps.push((CallStatus::Ringing, CallStatus::InProgress, a));
                steps.push((CallStatus::InProgress, CallStatus::Completed, ended));
            } else {
                steps.push((CallStatus::Ringing, status, ended));
            }
            let tenant_id = t.id.to_string();
            let call_id = id.to_string();
            push_row(
                &mut events,
                &[
                    Some(&tenant_id),
                    Some(&call_id),
                    Some(CallEventKind::Status.as_str()),
                    None,
                    Some(CallStatus::Queued.as_str()),
                    Some(&created.to_rfc3339()),
                ],
            );
            for (from_status, to_status, at) in steps {
                push_row(
                    &mut events,
                    &[
                        Some(&tenant_id),
                        Some(&call_id),
                        Some(CallEventKind::Status.as_str()),
                        Some(from_status.as_str()),
                        Some(to_status.as_str()),
                        Some(&at.to_rfc3339()),
                    ],
                );
                event_rows += 1;
            }
            event_rows += 1;
            if !outbound && status != CallStatus::Completed {
                self.unanswered_inbound.push(CallRow {
                    id,
                    tenant,
                    from,
                    to,
                    customer: customer_id,
                    created_at: created,
                });
            }
            self.bar.inc(1);
        }
        let mut rows = calls.finish().await?;
        let mut copy = Copy::new(tx, COPY_CALL_EVENTS).await?;
        // Buffered until the calls exist (foreign key); sent in large chunks.
        for chunk in events.chunks(1 << 20) {
            copy.raw(chunk).await?;
        }
        rows += copy.finish().await?;
        self.bar.inc(event_rows);
        Ok(rows)
    }

    /// Who a call or message is between, drawn in this order: a tenant
    /// (its index), maybe one of its customers, whether it goes the way
    /// taken with probability `p`, and one of the tenant's numbers.
    fn draw_parties(&mut self, p: f64) -> (usize, Option<usize>, bool, String) {
        let tenants = self.tenants;
        let tenant = self.rng.random_range(0..tenants.len());
        let t = &tenants[tenant];
        let customer = self.pick_customer(tenant);
        let way = self.rng.random_bool(p);
        let our_number = t.numbers[self.rng.random_range(0..t.numbers.len())].clone();
        (tenant, customer, way, our_number)
    }

    fn pick_customer(&mut self, tenant: usize) -> Option<usize> {
        if self.customers.is_empty() || !self.rng.random_bool(0.85) {
            return None;
        }
        // Customers alternate tenants: index parity selects the tenant.
        let n = self.tenants.len();
        let per_tenant = self.customers.len().div_ceil(n);
        let k = self.rng.random_range(0..per_tenant);
        let i = k * n + tenant;
        (i < self.customers.len()).then_some(i)
    }

    async fn write_messages(&mut self, tx: &mut PgConnection) -> anyhow::Result<u64> {
        self.bar.set_message("messages");
        let mut copy = Copy::new(tx, COPY_MESSAGES).await?;
        let moments = self.sorted_moments(self.params.messages);
        for created in moments {
            let (tenant, customer, inbound, our_number) = self.draw_parties(0.3);
            let t = &self.tenants[tenant];
            let (their_number, first_name) = match customer {
                Some(i) => (
                    self.customers[i].phone.clone(),
                    self.customers[i]
                        .name
                        .split(' ')
                        .next()
                        .unwrap_or("there")
                        .to_string(),
                ),
                None => (
                    customer_phone(10_000_000 + self.rng.random_range(0..1_000_000)),
                    "there".to_string(),
                ),
            };
            let body = MESSAGE_BODIES
                .choose(&mut self.rng)
                .unwrap_or(&"Hello")
                .replace("{name}", &first_name)
                .replace("{n}", &self.rng.random_range(100_000..999_999).to_string());
            let seg = sms::segment(&body);
            let status = if inbound {
                MessageStatus::Received
            } else {
                [
                    (MessageStatus::Delivered, 88u32),
                    (MessageStatus::Sent, 4),
                    (MessageStatus::Undelivered, 5),
                    (MessageStatus::Failed, 3),
                ]
                .choose_weighted(&mut self.rng, |s| s.1)
                .map_or(MessageStatus::Delivered, |s| s.0)
            };
            let error_code = match status {
                MessageStatus::Undelivered => Some("30003"),
                MessageStatus::Failed => Some("30008"),
                _ => None,
            };
            let id = self.id_at(created);
            let sent = (!inbound && status != MessageStatus::Failed)
                .then(|| created + Duration::milliseconds(self.rng.random_range(50..900)));
            let delivered = (status == MessageStatus::Delivered)
                .then(|| created + Duration::milliseconds(self.rng.random_range(900..6000)));
            let (from, to) = if inbound {
                (their_number, our_number)
            } else {
                (our_number, their_number)
            };
            let agent = (!inbound).then(|| t.agents[self.rng.random_range(0..15)].id);
            let direction = if inbound {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            let sid = self.sid("SM");
            let updated = delivered.or(sent).unwrap_or(created);
            copy.row(&[
                Some(id.to_string().as_str()),
                Some(t.id.to_string().as_str()),
                Some(direction.as_str()),
                Some(&from),
                Some(&to),
                Some(&body),
                Some(status.as_str()),
                Some(seg.segments.to_string().as_str()),
                Some(seg.encoding.as_str()),
                Some(&sid),
                error_code,
                customer
                    .map(|i| self.customers[i].id.to_string())
                    .as_deref(),
                agent.map(|a| a.to_string()).as_deref(),
                Some(&created.to_rfc3339()),
                sent.map(|s| s.to_rfc3339()).as_deref(),
                delivered.map(|d| d.to_rfc3339()).as_deref(),
                Some(&updated.to_rfc3339()),
            ])
            .await?;
            self.bar.inc(1);
        }
        copy.finish().await
    }

    async fn write_voicemails(&mut self, tx: &mut PgConnection) -> anyhow::Result<u64> {
        self.bar.set_message("voicemails");
        let mut copy = Copy::new(tx, COPY_VOICEMAILS).await?;
        let calls = std::mem::take(&mut self.unanswered_inbound);
        for i in 0..self.params.voicemails as usize {
            // Voicemails come from unanswered inbound calls while there are
            // enough of them, and stand alone after that.
            let (tenant, call_id, customer, from, to, at) = match calls.get(i) {
                Some(c) => (
                    c.tenant,
                    Some(c.id),
                    c.customer,
                    c.from.clone(),
                    c.to.clone(),
                    c.created_at + Duration::seconds(30),
                ),
                None => {
                    let tenant = self.rng.random_range(0..self.tenants.len());
                    let at = self.moment();
                    let to = self.tenants[tenant].numbers[0].clone();
                    (
                        tenant,
                        None,
                        None,
                        customer_phone(20_000_000 + i as u64),
                        to,
                        at,
                    )
                }
            };
            let id = self.id_at(at);
            let sid = self.sid("RE");
            let url = format!("https://recordings.switchboard.example/{sid}.wav");
            let listened = self
                .rng
                .random_bool(1.0 - UNHEARD_VOICEMAIL_SHARE)
                .then(|| at + Duration::hours(self.rng.random_range(1..48)));
            let transcript = *TRANSCRIPTS.choose(&mut self.rng).unwrap_or(&"");
            copy.row(&[
                Some(id.to_string().as_str()),
                Some(self.tenants[tenant].id.to_string().as_str()),
                call_id.map(|c| c.to_string()).as_deref(),
                customer.map(|c| c.to_string()).as_deref(),
                Some(&from),
                Some(&to),
                Some(&sid),
                Some(&url),
                Some(self.rng.random_range(4..120).to_string().as_str()),
                Some(TranscriptionStatus::Completed.as_str()),
                Some(transcript),
                listened.map(|l| l.to_rfc3339()).as_deref(),
                Some(&at.to_rfc3339()),
            ])
            .await?;
            self.bar.inc(1);
        }
        copy.finish().await
    }
}

/// The `i`-th distinct valid US number outside the demo tenants' range.
pub fn customer_phone(i: u64) -> String {
    let area = AREA_CODES[(i % AREA_CODES.len() as u64) as usize];
    let rest = i / AREA_CODES.len() as u64;
    // Exchanges 201–998, skipping N11 service codes and 555.
    let exchanges: Vec<u64> = (201..999).filter(|e| e % 100 != 11 && *e != 555).collect();
    let exchange = exchanges[(rest % exchanges.len() as u64) as usize];
    let line = (rest / exchanges.len() as u64) % 10_000;
    format!("+1{area}{exchange}{line:04}")
}

// COPY statements, one per table the seed writes -----------------------------

const COPY_CUSTOMERS: &str = "COPY customers
    (id, tenant_id, name, email, phone, company, tags, metadata, created_at, updated_at)
    FROM STDIN";

const COPY_CUSTOMER_NOTES: &str = "COPY customer_notes
    (id, tenant_id, customer_id, agent_id, body, created_at)
    FROM STDIN";

const COPY_CALLS: &str = "COPY calls
    (id, tenant_id, direction, from_number, to_number, status, carrier_sid, customer_id,
     agent_id, routed_to, created_at, ringing_at, answered_at, ended_at, duration_seconds, updated_at)
    FROM STDIN";

const COPY_CALL_EVENTS: &str = "COPY call_events
    (tenant_id, call_id, kind, from_status, to_status, occurred_at)
    FROM STDIN";

const COPY_MESSAGES: &str = "COPY messages
    (id, tenant_id, direction, from_number, to_number, body, status, segments, encoding,
     carrier_sid, error_code, customer_id, agent_id, created_at, sent_at, delivered_at, updated_at)
    FROM STDIN";

const COPY_VOICEMAILS: &str = "COPY voicemails
    (id, tenant_id, call_id, customer_id, from_number, to_number, recording_sid, recording_url,
     duration_seconds, transcription_status, transcription, listened_at, created_at)
    FROM STDIN";

// COPY ------------------------------------------------------------------------

/// Streams rows in PostgreSQL's text COPY format, flushing every megabyte.
struct Copy<'c> {
    inner: sqlx::postgres::PgCopyIn<&'c mut PgConnection>,
    buf: Vec<u8>,
    rows: u64,
}

impl<'c> Copy<'c> {
    async fn new(conn: &'c mut PgConnection, statement: &str) -> anyhow::Result<Self> {
        let inner = conn.copy_in_raw(statement).await?;
        Ok(Self {
            inner,
            buf: Vec::with_capacity(1 << 20),
            rows: 0,
        })
    }

    async fn row(&mut self, fields: &[Option<&str>]) -> anyhow::Result<()> {
        push_row(&mut self.buf, fields);
        self.rows += 1;
        if self.buf.len() >= 1 << 20 {
            self.inner.send(std::mem::take(&mut self.buf)).await?;
        }
        Ok(())
    }

    async fn raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.inner.send(bytes.to_vec()).await?;
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<u64> {
        if !self.buf.is_empty() {
            self.inner.send(std::mem::take(&mut self.buf)).await?;
        }
        let copied = self.inner.finish().await?;
        Ok(copied.max(self.rows))
    }
}

/// Appends one text-format COPY row: tab-separated, `\N` for NULL, with
/// backslash, tab, newline and carriage return escaped.
fn push_row(buf: &mut Vec<u8>, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        match field {
            None => buf.extend_from_slice(b"\\N"),
            Some(value) => {
                for byte in value.bytes() {
                    match byte {
                        b'\\' => buf.extend_from_slice(b"\\\\"),
                        b'\t' => buf.extend_from_slice(b"\\t"),
                        b'\n' => buf.extend_from_slice(b"\\n"),
                        b'\r' => buf.extend_from_slice(b"\\r"),
                        other => buf.push(other),
                    }
                }
            }
        }
    }
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use switchboard_core::phone::E164;

    use super::*;

    #[test]
    fn generated_customer_numbers_are_valid_distinct_e164() {
        let mut seen = HashSet::new();
        for i in (0..2_000_000u64).step_by(997) {
            let n = customer_phone(i);
            assert_eq!(
                E164::parse(&n, "US").map(String::from).as_deref(),
                Ok(n.as_str()),
                "{n}"
            );
            assert!(seen.insert(n));
        }
    }

    #[test]
    fn demo_tenants_match_the_design() {
        let tenants = demo_tenants();
        // Each tenant's numbers, first and last.
        let ranges: Vec<_> = tenants
            .iter()
            .map(|t| (t.numbers.first().cloned(), t.numbers.last().cloned()))
            .collect();
        let range = |first: &str, last: &str| (Some(first.to_string()), Some(last.to_string()));
        assert_eq!(
            ranges,
            [
                range("+12025550100", "+12025550149"),
                range("+12025550150", "+12025550199")
            ]
        );
        assert_eq!(tenants[0].agents.len(), 16);
        assert_eq!(tenants[0].agents[0].email, "agent01@acme.example");
        assert_eq!(tenants[1].agents[15].email, "admin@globex.example");
        assert_eq!(demo_tenants()[0].api_key, tenants[0].api_key);
        assert!(tenants[0].api_key.starts_with(auth::API_KEY_PREFIX));
    }

    #[test]
    fn copy_rows_escape_special_characters() {
        let mut buf = Vec::new();
        push_row(&mut buf, &[Some("a\tb"), None, Some("line\nbreak\\")]);
        assert_eq!(buf, b"a\\tb\t\\N\tline\\nbreak\\\\\n");
    }
}

//! A whole stack for worker tests: a fresh database, a private Redis
//! prefix, the API on port 0 (its public URL is what the simulator signs
//! for), and the worker — in this process, or as a real `switchboard worker`
//! child process that a test can SIGKILL.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use reqwest::{Client, Method, Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_core::{Settings, sms::MessageStatus};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    api::{ApiServer, TestTenant, add_number, bind_any, insert_tenant},
    db::TestDatabase,
    events::TenantEvents,
};

/// Inserts tenant `slug` (see [`insert_tenant`]) with its API key made an
/// admin's.
async fn insert_admin_tenant(db: &TestDatabase, settings: &Settings, slug: &str) -> TestTenant {
    let tenant = insert_tenant(db, settings, slug).await;
    sqlx::query("UPDATE api_keys SET role = 'admin' WHERE tenant_id = $1")
        .bind(tenant.id)
        .execute(&db.pool)
        .await
        .expect("admin key");
    tenant
}

/// The API and (once started) a worker over one test database.
pub struct Stack {
    /// Its database (dropped with the stack).
    pub db: TestDatabase,
    /// The settings the API and the worker run with.
    pub settings: Arc<Settings>,
    /// A client for requests to the API.
    pub client: Client,
    /// The API's base URL (also its public URL).
    pub base: String,
    /// The tenant's id (slug `acme`).
    pub tenant_id: Uuid,
    /// The tenant's API key (role admin).
    pub api_key: String,
    /// The in-process worker's ops address (`/ready`, `/metrics`), once started.
    pub worker_base: Option<String>,
    _api: ApiServer,
    worker_stop: Option<oneshot::Sender<()>>,
    worker_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Fast simulated telephony and short sweeps, so lifecycles finish in seconds.
pub fn fast(settings: &mut Settings) {
    settings.carrier_speed = 200.0;
    settings.job_retry_base = Duration::from_millis(500);
    settings.sweep_after = Duration::from_secs(3);
    settings.maintenance_interval = Duration::from_millis(500);
    // A killed worker's jobs come back after two seconds.
    settings.job_lease = Duration::from_secs(2);
}

impl Stack {
    /// API and an in-process worker.
    pub async fn start(configure: impl FnOnce(&mut Settings)) -> Stack {
        let mut stack = Stack::api_only(configure).await;
        stack.start_worker().await;
        stack
    }

    /// Only the API (start a worker later).
    pub async fn api_only(configure: impl FnOnce(&mut Settings)) -> Stack {
        let db = TestDatabase::new().await;
        let listener = bind_any().await;
        let addr = listener.local_addr().expect("addr");
        let mut settings = (*db.settings()).clone();
        fast(&mut settings);
        settings.public_url = format!("http://{addr}");
        configure(&mut settings);
        let settings = Arc::new(settings);
        let api = ApiServer::serve(listener, settings.clone()).await;

        // One tenant whose API key is an admin's, sending fast enough that
        // its rate never paces a test.
        let tenant = insert_admin_tenant(&db, &settings, "acme").await;
        sqlx::query("UPDATE tenants SET sms_rate_per_second = 1000 WHERE id = $1")
            .bind(tenant.id)
            .execute(&db.pool)
            .await
            .expect("tenant rate");
        add_number(&db.pool, tenant.id, "+12025550100").await;
        Stack {
            db,
            settings,
            client: Client::new(),
            base: format!("http://{addr}"),
            tenant_id: tenant.id,
            api_key: tenant.api_key,
            worker_base: None,
            _api: api,
            worker_stop: None,
            worker_task: None,
        }
    }

    /// Starts a worker in this process.
    pub async fn start_worker(&mut self) {
        let listener = bind_any().await;
        self.worker_base = Some(format!("http://{}", listener.local_addr().expect("addr")));
        let (tx, rx) = oneshot::channel::<()>();
        let settings = self.settings.clone();
        self.worker_task = Some(tokio::spawn(async move {
            if let Err(error) = switchboard_worker::serve(listener, settings, async move {
                let _ = rx.await;
            })
            .await
            {
                panic!("worker failed: {error:#}");
            }
        }));
        self.worker_stop = Some(tx);
    }

    /// Stops the in-process worker as SIGTERM would and waits until it has
    /// finished (running jobs done, held jobs handed back).
    pub async fn stop_worker(&mut self) {
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.worker_task.take() {
            task.await.expect("worker stopped cleanly");
        }
        self.worker_base = None;
    }

    /// `switchboard worker` as a child process with this stack's settings;
    /// `bin` is the binary (`env!("CARGO_BIN_EXE_switchboard")`).
    pub fn spawn_worker_process(&self, bin: &str) -> Child {
        self.command(bin, &["worker"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn switchboard worker")
    }

    /// Runs `switchboard <args>` against this stack; returns its stdout.
    pub fn cli(&self, bin: &str, args: &[&str]) -> String {
        let output = self.command(bin, args).output().expect("run switchboard");
        assert!(output.status.success(), "switchboard {args:?}: {output:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    }

    fn command(&self, bin: &str, args: &[&str]) -> Command {
        let s = &self.settings;
        let mut command = Command::new(bin);
        command
            .args(args)
            .env("DATABASE_URL", s.database_url.expose_secret())
            .env("REDIS_URL", s.redis_url.expose_secret())
            .env("SWITCHBOARD_REDIS_PREFIX", &s.redis_prefix)
            .env("SWITCHBOARD_PUBLIC_URL", &s.public_url)
            .env("SWITCHBOARD_WORKER_ADDR", "127.0.0.1:0")
            .env("SWITCHBOARD_DB_MAX_CONNECTIONS", "10")
            .env("RUST_LOG", "warn")
            .env("SWITCHBOARD_CARRIER_SPEED", s.carrier_speed.to_string());
        for (name, duration) in [
            ("SWITCHBOARD_SWEEP_AFTER_MS", s.sweep_after),
            (
                "SWITCHBOARD_MAINTENANCE_INTERVAL_MS",
                s.maintenance_interval,
            ),
            ("SWITCHBOARD_JOB_RETRY_BASE_MS", s.job_retry_base),
            ("SWITCHBOARD_JOB_LEASE_MS", s.job_lease),
        ] {
            command.env(name, duration.as_millis().to_string());
        }
        command
    }

    /// The URL of `path` on the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Another tenant, `slug`, whose API key (returned) is an admin's.
    pub async fn other_tenant(&self, slug: &str) -> String {
        insert_admin_tenant(&self.db, &self.settings, slug)
            .await
            .api_key
    }

    /// A request to `path` with `key` as its bearer credential.
    pub async fn request_as(&self, method: Method, path: &str, key: &str) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The stack's tenant's published events, from now on.
    pub async fn events(&self) -> TenantEvents {
        TenantEvents::subscribe(&self.settings, self.tenant_id).await
    }

    /// POSTs `body` as JSON with the API key; returns the status and the JSON body (`null` if none).
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path` with the API key, asserting 200; returns the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("json")
    }

    /// Polls `path` until `done` holds for its body (or panics after `limit`).
    pub async fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {path}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Originates a call to `to`, asserting 201; returns it.
    pub async fn originate(&self, to: &str) -> Value {
        let (status, call) = self.post("/v1/calls", json!({"to": to})).await;
        assert_eq!(status, StatusCode::CREATED, "{call}");
        call
    }

    /// Sends an SMS to `to`, asserting 201; returns it.
    pub async fn send_sms(&self, to: &str, body: &str) -> Value {
        let (status, message) = self
            .post("/v1/messages", json!({"to": to, "body": body}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        message
    }

    /// Creates a template and a campaign to `numbers`; returns the campaign id.
    pub async fn campaign(&self, numbers: &[String]) -> String {
        let (status, template) = self
            .post("/v1/templates", json!({"name": format!("promo {}", numbers.len()), "body": "Spring sale: 20% off until Sunday."}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{template}");
        let (status, campaign) = self
            .post("/v1/campaigns", json!({"name": "Spring", "template_id": template["id"], "recipients": {"phone_numbers": numbers}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{campaign}");
        campaign["id"].as_str().expect("campaign id").to_string()
    }

    /// Starts a 1 000-recipient campaign to `+1202<prefix>0000`… sent at 200
    /// messages a second (about five seconds) and waits until at least 150
    /// have been handed over: the moment for a test to break something
    /// mid-campaign. Returns the campaign id.
    pub async fn campaign_under_way(&self, prefix: &str) -> String {
        sqlx::query("UPDATE tenants SET sms_rate_per_second = 200")
            .execute(&self.db.pool)
            .await
            .expect("tenant rate");
        let numbers: Vec<String> = (0..1000).map(|i| format!("+1202{prefix}{i:04}")).collect();
        let id = self.campaign(&numbers).await;
        self.wait_until_sql(
            &format!(
                "SELECT count(*) >= 150 FROM messages WHERE campaign_id = '{id}' AND status <> '{}'",
                MessageStatus::Queued
            ),
            Duration::from_secs(60),
        )
        .await;
        id
    }

    /// How many of campaign `id`'s messages have left `queued`.
    pub async fn handed_over(&self, id: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE campaign_id = $1::uuid AND status <> $2",
        )
        .bind(id)
        .bind(MessageStatus::Queued)
        .fetch_one(&self.db.pool)
        .await
        .expect("handed over")
    }

    /// Waits until all `count` messages of campaign `id` are final, then
    /// checks that each was sent exactly once: queued → sending → sent →
    /// final, one step each (the version counts applied changes), one
    /// carrier SID each.
    pub async fn assert_campaign_sent_exactly_once(&self, id: &str, count: i64, limit: Duration) {
        self.wait_until_sql(
            &format!(
                "SELECT count(*) = {count} FROM messages WHERE campaign_id = '{id}'
                 AND status IN ({ended})",
                ended = MessageStatus::sql_list(MessageStatus::settled()),
            ),
            limit,
        )
        .await;
        let (messages, exact, sids): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE version = 4), count(DISTINCT carrier_sid)
             FROM messages WHERE campaign_id = $1::uuid",
        )
        .bind(id)
        .fetch_one(&self.db.pool)
        .await
        .expect("campaign messages");
        assert_eq!((messages, exact, sids), (count, count, count));
    }

    /// Waits until a database query returns true.
    pub async fn wait_until_sql(&self, sql: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let done: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&self.db.pool)
                .await
                .expect("query");
            if done {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {sql}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether `status` is a final message status.
pub fn is_terminal_message(status: &str) -> bool {
    matches!(status, "delivered" | "undelivered" | "failed")
}

impl Stack {
    /// POSTs a carrier callback signed as the tenant's carrier signs it.
    pub async fn carrier(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = format!("{}{path}", self.settings.public_url);
        let signature = crate::http::carrier_signature("acme-carrier-token", &url, params);
        let response =
            crate::http::post_carrier_form(&self.client, &url, Some(&signature), params).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("ack")
    }
}

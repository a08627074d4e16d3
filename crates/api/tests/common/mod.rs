//! The test harness: a real API server on port 0 over a fresh database and
//! a private Redis prefix, with two tenants, their agents and API keys.

#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use switchboard_core::{
    Settings,
    auth::{self, generate_api_key},
    testing::TestDatabase,
};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestTenant {
    pub id: Uuid,
    pub slug: String,
    pub agent_id: Uuid,
    pub agent_email: String,
    pub admin_email: String,
    pub api_key: String,
    /// An access token for the tenant's first agent.
    pub token: String,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub db: TestDatabase,
    pub settings: Arc<Settings>,
    pub a: TestTenant,
    pub b: TestTenant,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the API with settings adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::new().await;
    let mut settings = (*db.settings()).clone();
    configure(&mut settings);
    let settings = Arc::new(settings);
    let state = switchboard_api::state(settings.clone())
        .await
        .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tokens = Arc::clone(&state.tokens);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(switchboard_api::serve_on(listener, state, async move {
        let _ = rx.await;
    }));
    let client = Client::builder().build().expect("client");
    let mut app = TestApp {
        addr,
        client,
        settings: settings.clone(),
        a: insert_tenant(&db, &settings, "alpha").await,
        b: insert_tenant(&db, &settings, "bravo").await,
        db,
        shutdown: Some(tx),
    };
    // Each tenant owns numbers, as the demo tenants do.
    for (tenant, number) in [
        (&app.a, "+12025550100"),
        (&app.a, "+12025550101"),
        (&app.b, "+12025550150"),
    ] {
        app.add_number(tenant, number).await;
    }
    // Minted rather than logged in: login needs Redis (its throttle), and a
    // test may run the API without it.
    app.a.token = tokens.issue(app.a.agent_id, app.a.id, auth::Role::Agent).0;
    app.b.token = tokens.issue(app.b.agent_id, app.b.id, auth::Role::Agent).0;
    app
}

/// Another API instance over the same database and Redis prefix, as a
/// second replica behind a load balancer would be; stopped on drop.
pub struct Peer {
    pub addr: SocketAddr,
    client: Client,
    _shutdown: oneshot::Sender<()>,
}

impl Peer {
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(format!("http://{}{}", self.addr, path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }
}

impl TestApp {
    /// Starts a second instance of the API beside this one.
    pub async fn spawn_peer(&self) -> Peer {
        let state = switchboard_api::state(self.settings.clone())
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(switchboard_api::serve_on(listener, state, async move {
            let _ = rx.await;
        }));
        Peer {
            addr,
            client: Client::new(),
            _shutdown: tx,
        }
    }
}

/// Polls `probe` every 5 ms until it returns `Some`, for at most `within`;
/// panics with `what` if it never does. For changes that reach another
/// instance through a notification, whose delivery is not instantaneous.
pub async fn within<T, F: Future<Output = Option<T>>>(
    within: std::time::Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn insert_tenant(db: &TestDatabase, settings: &Settings, slug: &str) -> TestTenant {
    let tenant_id = Uuid::now_v7();
    let suffix = &tenant_id.simple().to_string()[20..];
    sqlx::query("INSERT INTO tenants (id, slug, name, carrier_auth_token) VALUES ($1, $2, $3, $4)")
        .bind(tenant_id)
        .bind(slug)
        .bind(format!("{slug} inc"))
        .bind(format!("{slug}-carrier-token"))
        .execute(&db.pool)
        .await
        .expect("tenant");
    let hash = auth::hash_password(PASSWORD, settings.argon2);
    let agent_id = Uuid::now_v7();
    let agent_email = format!("agent-{suffix}@{slug}.test");
    let admin_email = format!("admin-{suffix}@{slug}.test");
    for (id, email, role) in [
        (agent_id, agent_email.clone(), "agent"),
        (Uuid::now_v7(), admin_email.clone(), "admin"),
    ] {
        sqlx::query(
            "INSERT INTO agents (id, tenant_id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(&email)
        .bind(format!("{role} of {slug}"))
        .bind(role)
        .bind(&hash)
        .execute(&db.pool)
        .await
        .expect("agent");
    }
    let api_key = generate_api_key();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash) VALUES ($1, $2, 'test', $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(auth::api_key_display_prefix(&api_key))
    .bind(auth::hash_api_key(&api_key))
    .execute(&db.pool)
    .await
    .expect("api key");
    TestTenant {
        id: tenant_id,
        slug: slug.to_string(),
        agent_id,
        agent_email,
        admin_email,
        api_key,
        token: String::new(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), StatusCode::OK, "login as {email}");
        let body: Value = response.json().await.expect("login body");
        body["access_token"].as_str().expect("token").to_string()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, token)
            .json(&body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates a customer for `token`'s tenant and returns it.
    pub async fn create_customer(&self, token: &str, body: Value) -> Value {
        let response = self.post("/v1/customers", token, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("customer body")
    }
}

/// Reads a response as `(status, json)`, asserting it is JSON.
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("expected JSON ({content_type}), got {status}: {text}"));
    (status, body)
}

/// Asserts the documented error shape and returns the error object.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let has_request_id = response.headers().contains_key("x-request-id");
    let (actual, body) = json_of(response).await;
    assert_eq!(actual, status, "{body}");
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    assert!(has_request_id, "x-request-id header missing");
    error
}

impl TestApp {
    /// POSTs a carrier webhook signed with `auth_token`, the way the carrier
    /// signs it (over the configured public URL).
    pub async fn carrier_post(
        &self,
        path: &str,
        auth_token: &str,
        params: &[(&str, &str)],
    ) -> Response {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = switchboard_core::carrier::sign(
            auth_token,
            &format!("{}{}", self.settings.public_url, path),
            &owned,
        );
        self.client
            .post(self.url(path))
            .header("x-twilio-signature", signature)
            .form(&owned)
            .send()
            .await
            .expect("webhook POST")
    }

    /// The carrier auth token of a test tenant (see `insert_tenant`).
    pub fn carrier_token(tenant: &TestTenant) -> String {
        format!("{}-carrier-token", tenant.slug)
    }

    /// Gives `tenant` a phone number.
    pub async fn add_number(&self, tenant: &TestTenant, number: &str) {
        sqlx::query("INSERT INTO phone_numbers (number, tenant_id, is_default) VALUES ($1, $2, NOT EXISTS (SELECT 1 FROM phone_numbers WHERE tenant_id = $2))")
            .bind(number)
            .bind(tenant.id)
            .execute(&self.db.pool)
            .await
            .expect("phone number");
    }
}

/// SMS helpers (messages, templates, campaigns, SMS webhooks).
impl TestApp {
    /// Sends a message for `token`'s tenant, asserting 201, and returns it.
    pub async fn send_message(&self, token: &str, body: Value) -> Value {
        let (status, message) = json_of(self.post("/v1/messages", token, body).await).await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
        message
    }

    /// Creates a template for `token`'s tenant, asserting 201, and returns it.
    pub async fn create_template(&self, token: &str, name: &str, body: &str) -> Value {
        let (status, template) = json_of(
            self.post("/v1/templates", token, json!({"name": name, "body": body}))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{template}");
        template
    }

    /// Posts a signed SMS delivery receipt as `tenant`'s carrier.
    pub async fn sms_status(&self, tenant: &TestTenant, sid: &str, status: &str) -> Response {
        self.carrier_post(
            "/webhooks/carrier/sms/status",
            &Self::carrier_token(tenant),
            &[("MessageSid", sid), ("MessageStatus", status)],
        )
        .await
    }

    /// Posts a signed inbound SMS to `to` (a number of `tenant`).
    pub async fn inbound_sms(
        &self,
        tenant: &TestTenant,
        sid: &str,
        from: &str,
        to: &str,
        body: &str,
    ) -> Response {
        self.carrier_post(
            "/webhooks/carrier/sms/incoming",
            &Self::carrier_token(tenant),
            &[
                ("MessageSid", sid),
                ("From", from),
                ("To", to),
                ("Body", body),
            ],
        )
        .await
    }

    /// Rows in `messages` for `tenant`.
    pub async fn message_count(&self, tenant: &TestTenant) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(&self.db.pool)
            .await
            .expect("count messages")
    }

    /// Whether `tenant` has an opt-out for `phone`, and its keyword.
    pub async fn opt_out_keyword(&self, tenant: &TestTenant, phone: &str) -> Option<String> {
        sqlx::query_scalar("SELECT keyword FROM opt_outs WHERE tenant_id = $1 AND phone = $2")
            .bind(tenant.id)
            .bind(phone)
            .fetch_optional(&self.db.pool)
            .await
            .expect("opt-out lookup")
    }

    /// The payloads waiting on job queue `queue` (e.g. `sms.send`), as
    /// text, oldest first: the rows the write's transaction inserted.
    pub async fn queued_jobs(&self, queue: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT payload::text FROM jobs WHERE queue = $1 ORDER BY id")
            .bind(queue)
            .fetch_all(&self.db.pool)
            .await
            .expect("queued jobs")
    }
}

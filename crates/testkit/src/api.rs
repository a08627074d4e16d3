//! The API on port 0 over a fresh database and a private Redis prefix,
//! with two tenants, their agents and API keys; the requests the tests make
//! of it, and the assertions they share on its answers (the documented
//! error shape, 404 for another tenant's resources, refused inputs).

use std::{net::SocketAddr, sync::Arc};

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use switchboard_core::{
    Settings,
    auth::{self, Role, TokenKeys, generate_api_key},
};
use tokio::{net::TcpListener, sync::oneshot};
use uuid::Uuid;

use crate::{db::TestDatabase, events::TenantEvents};

/// The password of every agent the fixtures insert.
pub const PASSWORD: &str = "correct horse battery staple";

/// A tenant the fixtures inserted, with what a test needs to act as it.
pub struct TestTenant {
    /// Its id.
    pub id: Uuid,
    /// Its slug (its carrier token is `<slug>-carrier-token`).
    pub slug: String,
    /// The id of its agent (role `agent`).
    pub agent_id: Uuid,
    /// The agent's email.
    pub agent_email: String,
    /// Its admin's email.
    pub admin_email: String,
    /// An API key of the tenant.
    pub api_key: String,
    /// An access token for the tenant's first agent.
    pub token: String,
}

/// The API on port 0 over its own database, with tenants `a` and `b`.
pub struct TestApp {
    /// The server's address.
    pub addr: SocketAddr,
    /// A client for requests to it.
    pub client: Client,
    /// Its database (dropped with the app).
    pub db: TestDatabase,
    /// The settings it runs with.
    pub settings: Arc<Settings>,
    /// Tenant A (`alpha`): numbers +12025550100 and +12025550101.
    pub a: TestTenant,
    /// Tenant B (`bravo`): number +12025550150.
    pub b: TestTenant,
    _server: ApiServer,
}

/// Spawns the API with the test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An API server running on the test's runtime; stops when dropped.
pub struct ApiServer {
    /// The server's address.
    pub addr: SocketAddr,
    /// Mints access tokens the server accepts.
    pub tokens: Arc<TokenKeys>,
    _shutdown: oneshot::Sender<()>,
}

impl ApiServer {
    /// Serves the API with `settings` on `listener` (bound by the caller,
    /// so settings such as the public URL can name its address).
    pub async fn serve(listener: TcpListener, settings: Arc<Settings>) -> Self {
        let state = switchboard_api::state(settings).await.expect("API state");
        let addr = listener.local_addr().expect("addr");
        let tokens = Arc::clone(&state.tokens);
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(switchboard_api::serve_on(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            tokens,
            _shutdown: tx,
        }
    }

    /// Serves the API with `settings` on a port of its own.
    pub async fn start(settings: Arc<Settings>) -> Self {
        Self::serve(bind_any().await, settings).await
    }
}

/// A listener on 127.0.0.1, port 0.
pub async fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Spawns the API with settings adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::new().await;
    let mut settings = (*db.settings()).clone();
    configure(&mut settings);
    let settings = Arc::new(settings);
    let server = ApiServer::start(settings.clone()).await;
    let mut app = TestApp {
        addr: server.addr,
        client: Client::new(),
        settings: settings.clone(),
        a: insert_tenant(&db, &settings, "alpha").await,
        b: insert_tenant(&db, &settings, "bravo").await,
        db,
        _server: server,
    };
    // Each tenant owns numbers, as the demo tenants do.
    for (tenant, number) in [
        (&app.a, "+12025550100"),
        (&app.a, "+12025550101"),
        (&app.b, "+12025550150"),
    ] {
        add_number(&app.db.pool, tenant.id, number).await;
    }
    // Minted rather than logged in: login needs Redis (its throttle), and a
    // test may run the API without it.
    let tokens = &app._server.tokens;
    app.a.token = tokens.issue(app.a.agent_id, app.a.id, auth::Role::Agent).0;
    app.b.token = tokens.issue(app.b.agent_id, app.b.id, auth::Role::Agent).0;
    app
}

/// Another API instance over the same database and Redis prefix, as a
/// second replica behind a load balancer would be; stopped on drop.
pub struct Peer {
    /// The peer's address.
    pub addr: SocketAddr,
    client: Client,
    _server: ApiServer,
}

impl Peer {
    /// The URL of `path` on the peer.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs `path` from the peer with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }
}

impl TestApp {
    /// Starts a second instance of the API beside this one.
    pub async fn spawn_peer(&self) -> Peer {
        let server = ApiServer::start(self.settings.clone()).await;
        Peer {
            addr: server.addr,
            client: Client::new(),
            _server: server,
        }
    }
}

/// Inserts tenant `slug` with an agent and an admin (password [`PASSWORD`]),
/// an API key, and carrier token `<slug>-carrier-token`.
pub async fn insert_tenant(db: &TestDatabase, settings: &Settings, slug: &str) -> TestTenant {
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
    let agent_email = format!("agent-{suffix}@{slug}.test");
    let admin_email = format!("admin-{suffix}@{slug}.test");
    let agent_id = insert_agent(&db.pool, tenant_id, &agent_email, Role::Agent, &hash).await;
    insert_agent(&db.pool, tenant_id, &admin_email, Role::Admin, &hash).await;
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
    /// The URL of `path` on this API.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request to `path` with `token` as its bearer credential.
    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Logs in as `email` and returns the access token, asserting 200.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.login_response(email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {email}");
        let body: Value = response.json().await.expect("login body");
        body["access_token"].as_str().expect("token").to_string()
    }

    /// GETs `path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.send(Method::GET, path, token, None).await
    }

    /// POSTs `body` as JSON to `path` with `token`.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(Method::POST, path, token, Some(body)).await
    }

    /// PATCHes `body` as JSON to `path` with `token`.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(Method::PATCH, path, token, Some(body)).await
    }

    /// DELETEs `path` with `token`.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.send(Method::DELETE, path, token, None).await
    }

    /// Sends a `method` request to `path` with `token`, and `body` as JSON
    /// when there is one.
    async fn send(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        let what = format!("{method} {path}");
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect(&what)
    }

    /// The answer to a login as `email`, whatever it is.
    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.client
            .post(self.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// GETs `path` with `query` as its query string (percent-encoded, as a
    /// client library would).
    pub async fn get_query(&self, path: &str, token: &str, query: &[(&str, &str)]) -> Response {
        self.request(Method::GET, path, token)
            .query(query)
            .send()
            .await
            .expect("GET")
    }

    /// GETs `path`, asserting 200, and returns the JSON body.
    pub async fn get_ok(&self, path: &str, token: &str) -> Value {
        let (status, body) = json_of(self.get(path, token).await).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// One page of the list at `path` (`limit` items after `cursor`),
    /// asserting 200.
    pub async fn page(&self, path: &str, token: &str, limit: u32, cursor: Option<&str>) -> Value {
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        query.extend(cursor.map(|c| ("cursor", c)));
        let (status, page) = json_of(self.get_query(path, token, &query).await).await;
        assert_eq!(status, StatusCode::OK, "GET {path} {query:?}: {page}");
        page
    }

    /// Every item of the list at `path`, in order, walking its cursor
    /// `limit` items at a time.
    pub async fn walk_pages(&self, path: &str, token: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.page(path, token, limit, cursor.as_deref()).await;
            items.extend(
                page["data"]
                    .as_array()
                    .expect("a data array")
                    .iter()
                    .cloned(),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }

    /// POSTs `body` to `path`, asserting 201, and returns what was created.
    pub async fn create(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, created) = json_of(self.post(path, token, body).await).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {created}");
        created
    }

    /// Creates a customer for `token`'s tenant and returns it.
    pub async fn create_customer(&self, token: &str, body: Value) -> Value {
        self.create("/v1/customers", token, body).await
    }

    /// Creates customer `name` (no other fields) for `token`'s tenant.
    pub async fn customer_named(&self, token: &str, name: &str) -> Value {
        self.create_customer(token, json!({ "name": name })).await
    }

    /// Creates customer `name` with `phone` for `token`'s tenant.
    pub async fn customer_with_phone(&self, token: &str, name: &str, phone: &str) -> Value {
        let body = json!({"name": name, "phone": phone});
        self.create_customer(token, body).await
    }

    /// Places a call to `to` for `token`'s tenant, asserting 201.
    pub async fn originate(&self, token: &str, to: &str) -> Value {
        self.create("/v1/calls", token, json!({ "to": to })).await
    }

    /// POSTs `body` to `path` with an `Idempotency-Key`.
    pub async fn post_idempotent(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: Value,
    ) -> Response {
        self.request(Method::POST, path, token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    /// POSTs `body` as it is (not encoded as JSON), with `content_type` if
    /// there is one: for requests no JSON client would send.
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Response {
        let mut request = self
            .request(Method::POST, path, token)
            .body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("POST")
    }

    /// POSTs `params` form-encoded to `path` with `signature` as the
    /// carrier's signature header, or none: for the signature checks (a
    /// correctly signed request is [`TestApp::carrier_post`]).
    pub async fn post_form(
        &self,
        path: &str,
        signature: Option<&str>,
        params: &[(&str, &str)],
    ) -> Response {
        crate::http::post_carrier_form(&self.client, &self.url(path), signature, params).await
    }

    /// Asserts each of `bodies`, POSTed to `path` as JSON, is a 400
    /// `malformed_json`.
    pub async fn expect_malformed_json(&self, path: &str, token: &str, bodies: &[&str]) {
        for body in bodies {
            let response = self
                .post_raw(path, token, Some("application/json"), body)
                .await;
            let what = format!("POST {path} {body:?}");
            expect_error_in(&what, response, StatusCode::BAD_REQUEST, "malformed_json").await;
        }
    }

    /// POSTs each `(body, field)` of `cases` to `path` and asserts it is
    /// refused with error `code` (and the status the API gives that code)
    /// naming `field`.
    pub async fn expect_refused<'a>(
        &self,
        path: &str,
        token: &str,
        code: &str,
        cases: impl IntoIterator<Item = (Value, &'a str)>,
    ) {
        for (body, field) in cases {
            let what = format!("POST {path} {body}");
            let response = self.post(path, token, body).await;
            expect_field_error(response, code, field, &what).await;
        }
    }

    /// For each `(parameter, values)` of `cases`, GETs `path?parameter=value`
    /// for each value (as written: already percent-encoded) and asserts it
    /// is refused with error `code` naming the parameter.
    pub async fn expect_refused_params(
        &self,
        path: &str,
        token: &str,
        code: &str,
        cases: &[(&str, &[&str])],
    ) {
        for (parameter, values) in cases {
            for value in *values {
                let path = format!("{path}?{parameter}={value}");
                let response = self.get(&path, token).await;
                expect_field_error(response, code, parameter, &format!("GET {path}")).await;
            }
        }
    }

    /// Asserts `path`, a resource of another tenant, is a 404 `not_found`
    /// for `tenant`, with its access token and with its API key alike.
    pub async fn expect_hidden_from(&self, tenant: &TestTenant, path: &str) {
        for credential in [&tenant.token, &tenant.api_key] {
            expect_not_found(self.get(path, credential).await).await;
        }
    }

    /// Rows in `table`, whatever their tenant.
    pub async fn count_rows(&self, table: &str) -> i64 {
        self.db.count_rows(table).await
    }

    /// The API's `/metrics` text.
    pub async fn metrics(&self) -> String {
        crate::http::get_text(&self.client, &self.url("/metrics")).await
    }

    /// The value of the first metric sample starting with `prefix` (0 if
    /// there is none).
    pub async fn metric(&self, prefix: &str) -> f64 {
        crate::http::metric_value(&self.metrics().await, prefix)
    }

    /// Subscribes to `tenant`'s published events; what is published from
    /// now on is read with [`TenantEvents::next`].
    pub async fn events(&self, tenant: &TestTenant) -> TenantEvents {
        TenantEvents::subscribe(&self.settings, tenant.id).await
    }
}

/// Gives tenant `tenant_id` a phone number (its default if it is the first).
pub async fn add_number(pool: &PgPool, tenant_id: Uuid, number: &str) {
    sqlx::query("INSERT INTO phone_numbers (number, tenant_id, is_default) VALUES ($1, $2, NOT EXISTS (SELECT 1 FROM phone_numbers WHERE tenant_id = $2))")
        .bind(number)
        .bind(tenant_id)
        .execute(pool)
        .await
        .expect("phone number");
}

/// Adds an agent to a tenant (named after its role and email) and answers
/// its id; `password_hash` as [`auth::hash_password`] makes it, or any text
/// for an agent that never logs in.
pub async fn insert_agent(
    pool: &PgPool,
    tenant_id: Uuid,
    email: &str,
    role: Role,
    password_hash: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO agents (id, tenant_id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(email)
    .bind(format!("{role} {email}"))
    .bind(role.as_str())
    .bind(password_hash)
    .execute(pool)
    .await
    .expect("agent");
    id
}

/// The OpenAPI document the API serves, as JSON.
pub fn openapi_json() -> Value {
    let text = switchboard_api::openapi_document()
        .to_json()
        .expect("the document serialises");
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Every operation of an OpenAPI document: `(method, path, operation)`,
/// the method lowercase as the document keys it.
pub fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item is an object");
            item.iter()
                .map(move |(method, op)| (method.as_str(), path.as_str(), op))
        })
        .collect()
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

/// The status the API answers error `code` with: each code has one.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "malformed_json"
        | "invalid_query"
        | "invalid_cursor"
        | "invalid_path"
        | "invalid_parameter"
        | "missing_parameter"
        | "invalid_idempotency_key" => StatusCode::BAD_REQUEST,
        "validation_failed" | "invalid_body" => StatusCode::UNPROCESSABLE_ENTITY,
        "not_found" | "route_not_found" => StatusCode::NOT_FOUND,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "invalid_signature" | "forbidden" => StatusCode::FORBIDDEN,
        other => panic!("no status known for error code {other}"),
    }
}

/// Asserts a 404 `not_found` in the documented error shape.
pub async fn expect_not_found(response: Response) -> Value {
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await
}

/// Asserts error `code` with its status (see [`status_of`]) in the
/// documented shape, and returns the error object; `what` says which case
/// failed.
pub async fn expect_code(response: Response, code: &str, what: &str) -> Value {
    expect_error_in(what, response, status_of(code), code).await
}

/// Asserts error `code` (with its status, see [`status_of`]) naming
/// `field`; `what` says which case failed.
pub async fn expect_field_error(response: Response, code: &str, field: &str, what: &str) -> Value {
    let error = expect_code(response, code, what).await;
    assert_eq!(error["field"], field, "{what}: {error}");
    error
}

/// Asserts the documented error shape and returns the error object.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    expect_error_in("", response, status, code).await
}

/// [`expect_error`], saying `what` was asked (if anything) in any failure.
async fn expect_error_in(what: &str, response: Response, status: StatusCode, code: &str) -> Value {
    let what = if what.is_empty() {
        String::new()
    } else {
        format!("{what}: ")
    };
    let has_request_id = response.headers().contains_key("x-request-id");
    let (actual, body) = json_of(response).await;
    assert_eq!(actual, status, "{what}{body}");
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "{what}{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}{body}"
    );
    assert!(
        error["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{what}{body}"
    );
    assert!(has_request_id, "{what}x-request-id header missing");
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
        let signature = self.carrier_signature(auth_token, path, params);
        self.post_form(path, Some(&signature), params).await
    }

    /// The signature a carrier holding `auth_token` puts on `params`
    /// posted to `path`.
    pub fn carrier_signature(
        &self,
        auth_token: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> String {
        let url = format!("{}{}", self.settings.public_url, path);
        crate::http::carrier_signature(auth_token, &url, params)
    }

    /// The carrier auth token of a test tenant (see `insert_tenant`).
    pub fn carrier_token(tenant: &TestTenant) -> String {
        format!("{}-carrier-token", tenant.slug)
    }

    /// Gives `tenant` a phone number.
    pub async fn add_number(&self, tenant: &TestTenant, number: &str) {
        add_number(&self.db.pool, tenant.id, number).await;
    }
}

/// SMS helpers (messages, templates, campaigns, SMS webhooks).
impl TestApp {
    /// Sends a message for `token`'s tenant, asserting 201, and returns it.
    pub async fn send_message(&self, token: &str, body: Value) -> Value {
        self.create("/v1/messages", token, body).await
    }

    /// Sends text `body` to `to` for `token`'s tenant (see
    /// [`TestApp::send_message`]).
    pub async fn send_text(&self, token: &str, to: &str, body: &str) -> Value {
        let message = json!({"to": to, "body": body});
        self.send_message(token, message).await
    }

    /// Creates a template for `token`'s tenant, asserting 201, and returns it.
    pub async fn create_template(&self, token: &str, name: &str, body: &str) -> Value {
        let body = json!({"name": name, "body": body});
        self.create("/v1/templates", token, body).await
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

    /// Asserts that `created`, just created in `collection` (e.g.
    /// `/v1/messages`), reads back unchanged with `token` and that a job on
    /// `queue` names it; returns its id.
    pub async fn assert_stored_and_queued(
        &self,
        collection: &str,
        token: &str,
        created: &Value,
        queue: &str,
    ) -> String {
        let id = created["id"].as_str().expect("an id").to_string();
        let fetched = self.get_ok(&format!("{collection}/{id}"), token).await;
        assert_eq!(&fetched, created);
        let jobs = self.queued_jobs(queue).await;
        assert!(
            jobs.iter().any(|job| job.contains(&id)),
            "a {queue} job names {id}: {jobs:?}"
        );
        id
    }
}

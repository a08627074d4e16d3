//! Authentication: login, logout, `/v1/me`, and the [`Principal`] extractor
//! every protected handler takes.
//!
//! Two bearer credentials are accepted: an agent's JWT access token (from
//! login, revocable by logout) and a tenant API key (`sbk_...`, stored as
//! SHA-256). Every failure is a 401 in the error shape; login never says
//! whether the email or the password was wrong.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Extension;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::auth::{
    self, API_KEY_PREFIX, Claims, PasswordMemory, Role, TokenError, hash_api_key, verify_password,
    verify_password_against_nothing,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::login_throttle::Attempt;
use crate::state::AppState;

/// The routes of login, logout and `/v1/me`, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Who is calling: an agent (JWT) or a tenant API key.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant whose records the request may touch.
    pub tenant_id: Uuid,
    /// What it may do there.
    pub role: Role,
    /// How it authenticated.
    pub credential: Credential,
}

/// The bearer credential a request carried.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An agent's access token.
    Agent {
        /// The agent.
        agent_id: Uuid,
        /// The token's verified claims.
        claims: Claims,
    },
    /// A tenant API key (`sbk_…`).
    ApiKey {
        /// The key's id.
        key_id: Uuid,
    },
}

impl Principal {
    /// The acting agent, if the caller is one.
    pub fn agent_id(&self) -> Option<Uuid> {
        match &self.credential {
            Credential::Agent { agent_id, .. } => Some(*agent_id),
            Credential::ApiKey { .. } => None,
        }
    }

    /// Refuses callers below `role`.
    pub fn require(&self, role: Role) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this action needs the {role} role"
            )))
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let token = bearer_token(parts)?;
        let principal = if token.starts_with(API_KEY_PREFIX) {
            authenticate_api_key(state, token).await?
        } else {
            authenticate_jwt(state, token).await?
        };
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// What a tenant's handler starts from: the application state and the
/// authenticated caller, taken together as `TenantRequest { state, principal }`.
/// Rejects as [`Principal`] does (401).
#[derive(Clone)]
pub struct TenantRequest {
    /// The application state.
    pub state: AppState,
    /// The authenticated caller.
    pub principal: Principal,
}

impl FromRequestParts<AppState> for TenantRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self {
            principal: Principal::from_request_parts(parts, state).await?,
            state: state.clone(),
        })
    }
}

fn bearer_token(parts: &Parts) -> ApiResult<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer credential"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized("expected a Bearer credential"));
    }
    Ok(token)
}

async fn authenticate_jwt(state: &AppState, token: &str) -> ApiResult<Principal> {
    let claims = state.tokens.verify(token).map_err(token_error)?;
    let revoked = state
        .revocations
        .is_revoked(&state.redis, &state.settings, claims.jti)
        .await
        .map_err(|e| {
            metrics::counter!("redis_errors_total", "op" => "revocation_check").increment(1);
            tracing::error!(error = %e, "revocation check failed");
            // Fail closed: without the revocation list we cannot tell.
            ApiError::unavailable("authentication is temporarily unavailable")
        })?;
    if revoked {
        return Err(token_error(TokenError::Revoked));
    }
    Ok(Principal {
        tenant_id: claims.tid,
        role: claims.role,
        credential: Credential::Agent {
            agent_id: claims.sub,
            claims,
        },
    })
}

fn token_error(error: TokenError) -> ApiError {
    ApiError::unauthorized(match error {
        TokenError::Expired => "the access token has expired; log in again",
        TokenError::Invalid => "the access token is invalid",
        TokenError::Revoked => "the access token has been revoked; log in again",
    })
}

async fn authenticate_api_key(state: &AppState, key: &str) -> ApiResult<Principal> {
    let row: Option<(Uuid, Uuid, Role)> = sqlx::query_as(
        "SELECT id, tenant_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_api_key(key))
    .fetch_optional(&state.db)
    .await?;
    let (key_id, tenant_id, role) =
        row.ok_or_else(|| ApiError::unauthorized("the API key is invalid or revoked"))?;
    Ok(Principal {
        tenant_id,
        role,
        credential: Credential::ApiKey { key_id },
    })
}

// Handlers --------------------------------------------------------------------

/// An agent's credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The agent's login email.
    #[schema(example = "agent01@acme.example")]
    pub email: String,
    /// The agent's password.
    #[schema(example = "switchboard-demo")]
    pub password: String,
}

/// A new access token and the agent it belongs to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// The agent who logged in.
    pub agent: Agent,
}

/// An agent (a user of a tenant).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Agent {
    /// The agent's id.
    pub id: Uuid,
    /// The agent's login email.
    pub email: String,
    /// The agent's display name.
    pub name: String,
    /// What the agent may do.
    pub role: Role,
    /// The tenant the agent belongs to.
    pub tenant_id: Uuid,
}

/// The argon2 checks logins run: `slots` at a time, at most `queue_max`
/// more waiting; beyond that a login is refused at once. Each running check
/// borrows one of at most `slots` working memories (~19 MiB each at the
/// OWASP minimum), so the memory logins take is fixed however many arrive.
pub struct PasswordChecks {
    slots: usize,
    queue_max: usize,
    permits: tokio::sync::Semaphore,
    /// Checks running or waiting.
    admitted: AtomicUsize,
    /// Working memories not in use.
    memories: std::sync::Mutex<Vec<PasswordMemory>>,
}

impl PasswordChecks {
    /// `slots` checks at a time, at most `queue_max` more waiting.
    pub fn new(slots: usize, queue_max: usize) -> Self {
        Self {
            slots,
            queue_max,
            permits: tokio::sync::Semaphore::new(slots),
            admitted: AtomicUsize::new(0),
            memories: std::sync::Mutex::new(Vec::with_capacity(slots)),
        }
    }

    /// Runs an argon2 check on a blocking thread, a bounded number at a
    /// time, in a working memory of the pool; refuses at once (503,
    /// `Retry-After`) when too many already wait.
    async fn check<T: Send + 'static>(
        self: &Arc<Self>,
        check: impl FnOnce(&mut PasswordMemory) -> T + Send + 'static,
    ) -> ApiResult<T> {
        /// Leaves the queue however the check ends (a client that hangs up
        /// drops this future while it waits).
        struct Admitted<'a>(&'a AtomicUsize);
        impl Drop for Admitted<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let ahead = self.admitted.fetch_add(1, Ordering::Relaxed);
        let _admitted = Admitted(&self.admitted);
        if ahead >= self.slots + self.queue_max {
            metrics::counter!("auth_logins_shed_total").increment(1);
            // About when the queue ahead will have drained, at ~20 checks per
            // second per slot (argon2id at the OWASP minimum on one core of
            // this class of machine), never less than a second.
            let seconds = 1 + ahead as u64 / (20 * self.slots as u64);
            return Err(ApiError::login_busy(seconds));
        }
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        metrics::counter!("auth_password_checks_total").increment(1);
        let checks = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let lock = || checks.memories.lock().unwrap_or_else(|p| p.into_inner());
            let mut memory = lock().pop().unwrap_or_default();
            let answer = check(&mut memory);
            lock().push(memory);
            answer
        })
        .await
        .map_err(ApiError::internal)
    }
}

/// Exchanges an agent's email and password for an access token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, body = ErrorBody, description = "Wrong email or password (never says which)"),
        (status = 422, body = ErrorBody, description = "A field is missing or not a string"),
        (status = 429, body = ErrorBody,
            description = "Too many failed logins for this account or from this address \
                (`too_many_attempts`), whatever the password; retry after `Retry-After` seconds",
            headers(("Retry-After" = u64, description = "Seconds until an attempt is allowed again"))),
        (status = 503, body = ErrorBody,
            description = "The shared login throttle (Redis) is unavailable (`unavailable`), or too many \
                logins already wait for a password check (`login_busy`, with `Retry-After`)",
            headers(("Retry-After" = u64, description = "With `login_busy`: seconds after which a retry is likely to be served"))),
    ))]
pub async fn login(
    State(state): State<AppState>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let email = req.email.trim().to_lowercase();
    if email.is_empty() || email.len() > 320 || req.password.is_empty() || req.password.len() > 1024
    {
        return Err(invalid_credentials());
    }
    // Before any hashing: a throttled attempt never costs an argon2 run.
    let attempt = Attempt::new(
        &state,
        &email,
        connect_info.map(|Extension(ConnectInfo(peer))| peer),
    );
    attempt.check(&state).await?;
    let row: Option<(Uuid, Uuid, String, Role, String)> = sqlx::query_as(
        "SELECT id, tenant_id, name, role, password_hash FROM agents WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(&state.db)
    .await?;
    let params = state.settings.argon2;
    let password = req.password;
    let Some((agent_id, tenant_id, name, role, hash)) = row else {
        state
            .password_checks
            .check(move |memory| verify_password_against_nothing(&password, params, memory))
            .await?;
        attempt.failed(&state).await?;
        return Err(invalid_credentials());
    };
    let ok = state
        .password_checks
        .check(move |memory| verify_password(&password, &hash, memory))
        .await?;
    if !ok {
        attempt.failed(&state).await?;
        return Err(invalid_credentials());
    }
    attempt.succeeded(&state).await?;
    let (access_token, _) = state.tokens.issue(agent_id, tenant_id, role);
    sqlx::query("UPDATE agents SET last_login_at = now() WHERE id = $1")
        .bind(agent_id)
        .execute(&state.db)
        .await?;
    metrics::counter!("auth_logins_total").increment(1);
    Ok(Json(LoginResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.tokens.ttl_secs(),
        agent: Agent {
            id: agent_id,
            email,
            name,
            role,
            tenant_id,
        },
    }))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "the email or password is incorrect",
    )
}

/// Revokes the access token used to call it.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "The token is revoked"),
        (status = 400, body = ErrorBody, description = "Called with an API key, which has no session"),
    ))]
pub async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<StatusCode> {
    let Credential::Agent { claims, .. } = &principal.credential else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "API keys have no session to log out of; revoke the key instead",
        ));
    };
    auth::revoke(&state.redis, &state.settings, claims)
        .await
        .map_err(|e| {
            metrics::counter!("redis_errors_total", "op" => "revoke").increment(1);
            ApiError::internal(e)
        })?;
    state.revocations.note(claims.jti);
    Ok(StatusCode::NO_CONTENT)
}

switchboard_core::text_enum! {
    /// Which kind of credential a request carries.
    pub enum PrincipalKind {
        /// An agent's access token (`agent`).
        Agent = "agent",
        /// A tenant API key (`api_key`).
        ApiKey = "api_key",
    }
}

/// Who the credential of the request belongs to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// Which kind of credential it is.
    pub principal: PrincipalKind,
    /// What the caller may do.
    pub role: Role,
    /// The caller's tenant.
    pub tenant: Tenant,
    /// The agent, when the caller is one.
    pub agent: Option<Agent>,
    /// The key's id, when the caller is an API key.
    pub api_key_id: Option<Uuid>,
    /// When the access token expires (agents only).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A tenant (one customer organisation of Switchboard).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Tenant {
    /// The tenant's id.
    pub id: Uuid,
    /// The tenant's short unique name.
    pub slug: String,
    /// The tenant's display name.
    pub name: String,
}

/// Who the credential belongs to.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Me>> {
    let (tenant, agent) =
        principal_records(&state, principal.tenant_id, principal.agent_id()).await?;
    let tenant =
        tenant.ok_or_else(|| ApiError::unauthorized("the credential's tenant no longer exists"))?;
    let me = match &principal.credential {
        Credential::Agent { claims, .. } => {
            let agent = agent
                .filter(|agent| agent.tenant_id == tenant.id)
                .ok_or_else(|| ApiError::unauthorized("the agent no longer exists"))?;
            Me {
                principal: PrincipalKind::Agent,
                role: principal.role,
                agent: Some(agent),
                tenant,
                api_key_id: None,
                expires_at: DateTime::from_timestamp(claims.exp, 0),
            }
        }
        Credential::ApiKey { key_id } => Me {
            principal: PrincipalKind::ApiKey,
            role: principal.role,
            tenant,
            agent: None,
            api_key_id: Some(*key_id),
            expires_at: None,
        },
    };
    Ok(Json(me))
}

/// The principal's tenant and agent (each `None` if gone), from the caches
/// when both are there, else in one statement that refills both.
async fn principal_records(
    state: &AppState,
    tenant_id: Uuid,
    agent_id: Option<Uuid>,
) -> ApiResult<(Option<Tenant>, Option<Agent>)> {
    let caches = &state.caches;
    let tenant = caches.tenants.get(&tenant_id);
    let agent = match agent_id {
        Some(id) => caches.agents.get(&id),
        None => Some(None),
    };
    if let (Some(tenant), Some(agent)) = (tenant, agent) {
        return Ok((tenant, agent));
    }
    let (tenant_ticket, agent_ticket) = (caches.tenants.ticket(), caches.agents.ticket());
    // Each side is looked up on its own (an agent of another tenant is
    // still that agent): the caller decides what a mismatch means.
    let row: PrincipalRow = sqlx::query_as(
        "SELECT t.id, t.slug, t.name,
                a.id AS agent_id, a.email, a.name AS agent_name, a.role, a.tenant_id AS agent_tenant_id
         FROM (SELECT) AS one
         LEFT JOIN tenants t ON t.id = $1
         LEFT JOIN agents a ON a.id = $2",
    )
    .bind(tenant_id)
    .bind(agent_id)
    .fetch_one(&state.db)
    .await?;
    let tenant = match (row.id, row.slug, row.name) {
        (Some(id), Some(slug), Some(name)) => Some(Tenant { id, slug, name }),
        _ => None,
    };
    let agent = match (
        row.agent_id,
        row.email,
        row.agent_name,
        row.role,
        row.agent_tenant_id,
    ) {
        (Some(id), Some(email), Some(name), Some(role), Some(tenant_id)) => Some(Agent {
            id,
            email,
            name,
            role,
            tenant_id,
        }),
        _ => None,
    };
    caches
        .tenants
        .fill(tenant_ticket, tenant_id, tenant.clone());
    if let Some(id) = agent_id {
        caches.agents.fill(agent_ticket, id, agent.clone());
    }
    Ok((tenant, agent))
}

/// The tenant's columns, then the agent's; NULL where a row is missing.
#[derive(sqlx::FromRow)]
struct PrincipalRow {
    id: Option<Uuid>,
    slug: Option<String>,
    name: Option<String>,
    agent_id: Option<Uuid>,
    email: Option<String>,
    agent_name: Option<String>,
    role: Option<Role>,
    agent_tenant_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::auth::hash_password;
    use switchboard_core::settings::Argon2Params;

    /// However many logins arrive together, the checks share at most one
    /// working memory per slot, and every answer is still right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_share_one_working_memory_per_slot() {
        let params = Argon2Params {
            m_cost: 2048,
            t_cost: 1,
            p_cost: 1,
        };
        let hash = Arc::new(hash_password("right", params));
        let checks = Arc::new(PasswordChecks::new(2, 64));
        let attempts = (0..24).map(|i| {
            let (checks, hash) = (Arc::clone(&checks), Arc::clone(&hash));
            tokio::spawn(async move {
                let password = if i % 2 == 0 { "right" } else { "wrong" };
                let ok = checks
                    .check(move |memory| verify_password(password, &hash, memory))
                    .await
                    .unwrap_or_else(|_| panic!("check {i} was refused"));
                assert_eq!(ok, i % 2 == 0, "check {i}");
            })
        });
        for attempt in futures::future::join_all(attempts).await {
            attempt.unwrap();
        }
        let made = checks.memories.lock().unwrap().len();
        assert!(
            (1..=2).contains(&made),
            "{made} working memories for 2 slots"
        );
    }
}

//! `Idempotency-Key` support for POSTs that create things.
//!
//! The key is claimed by inserting a row *in the same transaction* as the
//! write it protects, and the response is stored in that row before commit:
//!
//! - a retry after success finds the committed row and replays the stored
//!   response (marked `Idempotent-Replayed: true`);
//! - a concurrent duplicate blocks on the row lock until the first commits,
//!   then replays; if the first rolled back, the duplicate proceeds;
//! - a failed request leaves no row, so the client may retry with the key;
//! - the same key with a different request is refused (422).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The request header that makes a POST safe to retry.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header marking a replayed answer (`true`).
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The optional `Idempotency-Key` header (1–255 visible ASCII characters),
/// with the method and path it came to: what a key protects is "this request
/// to this route", so the route is read from the request, not written again
/// by each handler. An operation that takes it lists it with
/// `params(IdempotencyKey)`, so every one documents it alike.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(Option<Keyed>);

/// A request that came with a key.
#[derive(Debug, Clone)]
struct Keyed {
    /// The key.
    key: String,
    /// The request's method.
    method: Method,
    /// The request's path.
    path: String,
}

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::openapi::header_param(
            "Idempotency-Key",
            utoipa::openapi::Required::False,
            "Makes retries safe: a repeat with the same key and body replays the first response \
             (`Idempotent-Replayed: true`); the same key with another body is a 422",
            crate::openapi::idempotency_key_schema(),
        )]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(&IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        Ok(IdempotencyKey(Some(Keyed {
            key: valid_key(value)?,
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
        })))
    }
}

/// The header's value as a key: 1–255 visible ASCII characters.
fn valid_key(value: &HeaderValue) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
        .with_field("Idempotency-Key")
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(key.to_string())
}

impl IdempotencyKey {
    /// Begins the transaction of a create and claims the key in it, for
    /// this request's `body` (see the module docs). `Ok(Err(replay))` is the
    /// stored answer to an earlier identical request, for the handler to
    /// return as is; `Ok(Ok((tx, claim)))` means proceed, writing in `tx`,
    /// and commit it through the claim ([`Claim::commit`]). Without a key the
    /// body is not even fingerprinted.
    pub async fn begin(
        self,
        db: &PgPool,
        tenant_id: Uuid,
        body: &impl Serialize,
    ) -> ApiResult<Result<(Transaction<'static, Postgres>, Claim), Response>> {
        let mut tx = db.begin().await?;
        let Some(Keyed { key, method, path }) = self.0 else {
            return Ok(Ok((tx, Claim(None))));
        };
        let fingerprint = request_fingerprint(method.as_str(), &path, body);
        let claimed = claim(&mut tx, tenant_id, key, &fingerprint).await?;
        Ok(claimed.map(|claim| (tx, Claim(Some(claim)))))
    }
}

/// What identifies "the same request": method, path and the parsed body
/// (re-serialised, so whitespace and key order do not matter).
fn request_fingerprint(method: &str, path: &str, body: &impl Serialize) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    // A Value's maps are sorted, so field order in the request is irrelevant.
    let canonical = serde_json::to_value(body)
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_default();
    hasher.update(&canonical);
    hasher.finalize().to_vec()
}

/// A claimed key (or none, without the header): the create commits through
/// it ([`Claim::commit`]).
#[derive(Debug)]
#[must_use = "a create commits through its claim, which stores the answer with it"]
pub struct Claim(Option<Claimed>);

#[derive(Debug)]
struct Claimed {
    tenant_id: Uuid,
    key: String,
}

/// Claims `key` inside the caller's transaction. `Ok(Err(response))` is a
/// replay the handler must return as is; `Ok(Ok(claimed))` means proceed.
async fn claim(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    key: String,
    fingerprint: &[u8],
) -> ApiResult<Result<Claimed, Response>> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, key) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(&key)
    .bind(fingerprint)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Ok(Claimed { tenant_id, key }));
    }
    let (hash, status, body): (Vec<u8>, Option<i16>, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT request_hash, status_code, response_body FROM idempotency_keys
         WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant_id)
    .bind(&key)
    .fetch_one(&mut *tx)
    .await?;
    if hash != fingerprint {
        return Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request",
        )
        .with_field("Idempotency-Key"));
    }
    let (Some(status), Some(body)) = (status, body) else {
        // Only reachable if a row was committed without its response, which
        // `Claim::commit` prevents; answer as "try again" rather than guess.
        return Err(ApiError::conflict(
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed",
        ));
    };
    let status = StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    Ok(Err(response))
}

impl Claim {
    /// Ends a keyed create: stores `created` as the `201 Created` answer to
    /// the key, in the transaction that claimed it, and commits. The one way
    /// a create commits, so the answer a retry replays is always written
    /// with the rows it describes.
    pub async fn commit(
        self,
        mut tx: Transaction<'static, Postgres>,
        created: &impl Serialize,
    ) -> ApiResult<()> {
        if let Some(claim) = self.0 {
            let body = serde_json::to_value(created).map_err(ApiError::internal)?;
            sqlx::query(
                "UPDATE idempotency_keys SET status_code = $3, response_body = $4,
                     completed_at = now()
                 WHERE tenant_id = $1 AND key = $2",
            )
            .bind(claim.tenant_id)
            .bind(&claim.key)
            // 201 fits the column's smallint.
            .bind(StatusCode::CREATED.as_u16() as i16)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

//! The one error type every handler returns, and the JSON shape clients see:
//! `{"error": {"code", "message", "field"?, "request_id"}}`.
//!
//! 4xx errors carry a stable snake_case `code` and a message meant for
//! humans. 5xx errors are logged with the request id and answered opaquely:
//! a database or internal error's text never reaches a client.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware so errors
    /// built anywhere in the handler can quote it.
    pub static REQUEST_ID: String;
}

/// The current request's id, when called within a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A handler's result: its answer, or an error in the API's shape.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answer: its status, a stable `code`, a message and, for a bad
/// value, the `field` it is in (see [`ErrorBody`]).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    /// Seconds for a `Retry-After` header (429 answers).
    retry_after: Option<u64>,
    code: Cow<'static, str>,
    message: Cow<'static, str>,
    field: Option<String>,
    /// Kept for the log line of a 5xx; never serialised.
    source: Option<anyhow::Error>,
}

/// The error body, as documented in the OpenAPI schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong with a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable snake_case code.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The id of the request (also in the `x-request-id` header).
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            retry_after: None,
            code: code.into(),
            message: message.into(),
            field: None,
            source: None,
        }
    }

    /// Names the field (or parameter) at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The field at fault, if one is named.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422 for a well-formed request whose `field` holds an unacceptable value.
    pub fn validation(field: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_field(field)
    }

    /// 404 `not_found`: "{what} not found".
    pub fn not_found(what: &'static str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409: the request conflicts with the records' state.
    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 with a code of its own.
    pub fn unprocessable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503 `unavailable`: a dependency is down; retry.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 503 for a login shed because too many wait for a password check,
    /// with `Retry-After`.
    pub fn login_busy(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "login_busy",
                "too many logins are waiting for a password check; retry after the Retry-After header's seconds",
            )
        }
    }

    /// 429 for a login refused by the throttle, with `Retry-After`.
    pub fn throttled(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed login attempts; retry after the Retry-After header's seconds",
            )
        }
    }

    /// A failure that is ours, not the caller's: logged, answered opaquely.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "an internal error occurred; quote the request id when reporting it",
            )
        }
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.to_string(),
                field: self.field.clone(),
                request_id: current_request_id(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                request_id = current_request_id().as_deref().unwrap_or("-"),
                code = %self.code,
                error = ?self.source,
                "request failed"
            );
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchboard\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::not_found("resource"),
            sqlx::Error::Database(db) => match db.constraint().and_then(constraint_error) {
                Some(mapped) => mapped,
                None => Self::internal(error),
            },
            sqlx::Error::PoolTimedOut => {
                Self::unavailable("the service is overloaded; retry shortly")
            }
            _ => Self::internal(error),
        }
    }
}

/// A batch of a group commit failed: answered as the batch's own database
/// error would be for a statement of this request's (an exhausted pool is a
/// 503, anything else a 500).
impl From<switchboard_core::group_commit::BatchError> for ApiError {
    fn from(error: switchboard_core::group_commit::BatchError) -> Self {
        match error.database() {
            Some(sqlx::Error::PoolTimedOut) => {
                Self::unavailable("the service is overloaded; retry shortly")
            }
            _ => Self::internal(error),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(error)
    }
}

/// Maps a violated constraint to the client error it means. Constraints not
/// listed here are bugs (the handler should have validated first) and stay 5xx.
fn constraint_error(constraint: &str) -> Option<ApiError> {
    let error = match constraint {
        "customers_tenant_phone_key" => ApiError::conflict(
            "phone_taken",
            "another customer already has this phone number",
        )
        .with_field("phone"),
        "templates_tenant_id_name_key" => {
            ApiError::conflict("name_taken", "a template with this name already exists")
                .with_field("name")
        }
        "agents_email_key" => {
            ApiError::conflict("email_taken", "an agent with this email already exists")
                .with_field("email")
        }
        "customer_notes_tenant_id_customer_id_fkey" => ApiError::not_found("customer"),
        // Campaign creation checks (and locks) its template first, so this
        // is only violated by deleting a template that campaigns use.
        "campaigns_tenant_id_template_id_fkey" => ApiError::conflict(
            "template_in_use",
            "a campaign uses this template; it cannot be deleted",
        ),
        _ => return None,
    };
    Some(error)
}

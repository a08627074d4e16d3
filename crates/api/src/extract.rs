//! Extractors that answer bad input in the API's error shape instead of
//! axum's plain-text defaults, naming the offending field where serde can.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::text::{self, TextKind};

/// A JSON body. Rejections: 415 for another content type, 413 over the
/// body limit, 400 for invalid JSON, 422 for valid JSON of the wrong shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request body with Content-Type: application/json",
            ));
        }
        let bytes = read_body(
            req,
            state,
            "the request body is larger than this endpoint accepts",
        )
        .await?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The whole body, within the body limit: over it a 413 saying `too_large`,
/// a body that cannot be read a 400.
pub(crate) async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
    too_large: &'static str,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                too_large,
            )
        } else {
            ApiError::bad_request("unreadable_body", "the request body could not be read")
        }
    })
}

fn is_json(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises `bytes` as `T`, classifying failures as the API reports them.
/// Rewrites every number with no fractional part written as a float (`3.0`,
/// `1e3`) as the integer it is; answers whether anything changed.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Within ±2^53 every integral float is exactly an integer.
            if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                *value = serde_json::Value::from(f as i64);
                true
            } else {
                false
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        _ => false,
    }
}

/// Every string and key is checked first ([`text::check_json`]), so no
/// handler ever sees a NUL or a stray control character.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Parsed twice (as a tree for the text check, then as `T`) so `T`'s own
    // rules — duplicate fields, unknown fields — still see the raw document.
    let mut tree: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {err}"),
        )
    })?;
    if !tree.is_object() {
        // serde would read a struct from an array too (`[null, null]`).
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the request body must be a JSON object",
        ));
    }
    text::check_json(&tree)?;
    // JSON Schema's `integer` includes `3.0`; serde's integers do not.
    let normalised;
    let bytes = if integral_floats_to_integers(&mut tree) {
        normalised = serde_json::to_vec(&tree).map_err(ApiError::internal)?;
        normalised.as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::bad_request(
                    "malformed_json",
                    format!("the request body is not valid JSON: {inner}"),
                )
            }
            serde_json::error::Category::Io | serde_json::error::Category::Data => {
                field_error(&path, &inner.to_string(), "invalid_body")
            }
        }
    })?;
    de.end().map_err(|_| {
        ApiError::bad_request("malformed_json", "unexpected data after the JSON value")
    })?;
    Ok(value)
}

/// A deserialisation error as a 422 naming the field. serde reports a missing
/// field from its parent (`.`) with the name in backticks; lift it out.
fn field_error(path: &str, message: &str, code: &'static str) -> ApiError {
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string);
    let field = match (missing, path) {
        (Some(name), "." | "") => Some(name),
        (Some(name), parent) => Some(format!("{parent}.{name}")),
        (None, "." | "") => None,
        (None, path) => Some(path.to_string()),
    };
    let status = if code == "invalid_query" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let error = ApiError::new(status, code, message);
    match field {
        Some(field) => error.with_field(field),
        None => error,
    }
}

/// A query string. Unknown parameters and unparseable values are a 400
/// naming the parameter (query structs use `deny_unknown_fields`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Deserialises a query string as `T`: a parameter holding a control
/// character, an unknown one or an unparseable value is a 400 naming it.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let refused = text::refused_char(&name, TextKind::Line)
            .or_else(|| text::refused_char(&value, TextKind::Line));
        if let Some(c) = refused {
            let what = format!("query parameter {name:?}");
            return Err(
                text::refused_parameter("invalid_query", &what, c).with_field(name.into_owned())
            );
        }
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        field_error(&path, &err.into_inner().to_string(), "invalid_query")
    })
}

/// Path parameters; a malformed id (or one holding a control character) is
/// a 400, not axum's plain text.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))?;
        for (name, value) in &raw {
            if let Some(c) = text::refused_char(value, TextKind::Line) {
                return Err(
                    text::refused_parameter("invalid_path", name, c).with_field(name.to_string())
                );
            }
        }
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let message = match &rejection {
            PathRejection::FailedToDeserializePathParams(inner) => inner.body_text(),
            other => other.body_text(),
        };
        ApiError::bad_request("invalid_path", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Cap {
        n: u32,
        x: f64,
    }

    #[test]
    fn an_integer_written_as_a_float_is_read_as_the_integer_and_a_fraction_is_refused() {
        let cap: Cap = parse_json(br#"{"n": 3069.0, "x": 2.0}"#).unwrap();
        assert_eq!(cap.n, 3069);
        assert_eq!(cap.x, 2.0);
        let refused = parse_json::<Cap>(br#"{"n": 3.5, "x": 1}"#).unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}

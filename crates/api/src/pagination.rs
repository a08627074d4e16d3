//! Cursor pagination: `?limit=&cursor=` in, `{"data", "next_cursor"}` out.
//!
//! Cursors are opaque to clients (base64url) and carry a [`Position`]: lists
//! ordered by id carry the last id seen (ids are UUIDv7, so id order is
//! creation order); lists merged from several tables carry `(timestamp, id)`;
//! an import's errors, a row number. Keyset pagination visits every row
//! exactly once even while rows are being inserted.
//!
//! A list handler takes [`Listing`] (its filters and the page) or, without
//! filters, [`PageRequest`] alone: `limit` and `cursor` are read, validated
//! and documented here, once for every list.

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::parse_query;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 200;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Validates `limit` (1..=200, default 50).
pub fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )
        .with_field("limit")),
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "the cursor is not one this API issued")
        .with_field("cursor")
}

/// What a list is ordered by, and so what its cursor carries: the position
/// of the last item of the previous page.
pub trait Position: Sized {
    /// The bytes a cursor at this position holds.
    fn to_bytes(&self) -> Vec<u8>;
    /// The position an issued cursor holds; `None` for bytes this API did
    /// not issue.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

/// Lists ordered by id (UUIDv7, so creation order).
impl Position for Uuid {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Uuid::from_slice(bytes).ok()
    }
}

/// Lists ordered by a number: an import's rows (`i32`, file order), a
/// call's history entries (`i64`, the order they were written).
macro_rules! number_position {
    ($($number:ty),*) => {$(
        impl Position for $number {
            fn to_bytes(&self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }

            fn from_bytes(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(<$number>::from_be_bytes)
            }
        }
    )*};
}

number_position!(i32, i64);

/// Lists ordered by a unique text (the tenant's agents, by email).
impl Position for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        // What we issue is a stored value; a control character (a NUL,
        // which PostgreSQL refuses in text) was forged.
        String::from_utf8(bytes.to_vec())
            .ok()
            .filter(|text| !text.chars().any(char::is_control))
    }
}

/// Lists merged from several tables, ordered by `(timestamp, id)`.
impl Position for (DateTime<Utc>, Uuid) {
    fn to_bytes(&self) -> Vec<u8> {
        let (at, id) = self;
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(id.as_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (micros, id) = bytes.split_first_chunk::<8>()?;
        let at = DateTime::from_timestamp_micros(i64::from_be_bytes(*micros))?;
        // Cursors we issue hold real row times; anything PostgreSQL could not
        // even represent was forged.
        if !(1..=9999).contains(&chrono::Datelike::year(&at)) {
            return None;
        }
        Some((at, Uuid::from_slice(id).ok()?))
    }
}

/// The cursor after the item at `position`.
fn encode_cursor<P: Position>(position: &P) -> String {
    URL_SAFE_NO_PAD.encode(position.to_bytes())
}

/// The position an issued cursor holds; none without a cursor.
fn decode_cursor<P: Position>(cursor: Option<&str>) -> Result<Option<P>, ApiError> {
    cursor
        .map(|cursor| {
            let bytes = URL_SAFE_NO_PAD.decode(cursor).ok();
            bytes
                .as_deref()
                .and_then(P::from_bytes)
                .ok_or_else(invalid_cursor)
        })
        .transpose()
}

/// What a client asked of a list ordered by `P`: SQL filters past `after`
/// (when set), orders by `P` and fetches [`PageRequest::fetch`] rows.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<P = Uuid> {
    /// Rows the page holds.
    pub limit: u32,
    /// The position of the previous page's last item; `None` for the first
    /// page.
    pub after: Option<P>,
}

impl<P: Position> PageRequest<P> {
    /// Validates the `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        Ok(PageRequest {
            limit: self::limit(limit)?,
            after: decode_cursor(cursor)?,
        })
    }

    /// How many rows to fetch: one more than a page, to know whether
    /// another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page of the fetched `rows`; its cursor is the last row's position.
    pub fn page<T>(&self, mut rows: Vec<T>, position_of: impl Fn(&T) -> P) -> Page<T> {
        let limit = self.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| encode_cursor(&position_of(row)))
        } else {
            None
        };
        Page {
            data: rows,
            next_cursor,
        }
    }
}

/// The two query parameters every list takes, read apart from its filters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParameters {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl PageParameters {
    /// Their names in a query string.
    const NAMES: [&'static str; 2] = ["limit", "cursor"];
}

/// A list's query string: its own filters `Q` (a query struct with
/// `deny_unknown_fields`), and the page asked for with `limit` and `cursor`,
/// validated. The page parameters are declared and documented here once, for
/// every list; an unknown parameter is still a 400 naming it.
#[derive(Debug)]
pub struct Listing<Q, P = Uuid>(pub Q, pub PageRequest<P>);

impl<S, Q, P> FromRequestParts<S> for Listing<Q, P>
where
    S: Send + Sync,
    Q: DeserializeOwned,
    P: Position,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let (page, filters): (Vec<_>, Vec<_>) = form_urlencoded::parse(query.as_bytes())
            .partition(|(name, _)| PageParameters::NAMES.contains(&name.as_ref()));
        let page: PageParameters = parse_query(&reencode(page))?;
        let filters: Q = parse_query(&reencode(filters))?;
        let request = PageRequest::parse(page.limit, page.cursor.as_deref())?;
        Ok(Listing(filters, request))
    }
}

fn reencode(pairs: Vec<(Cow<'_, str>, Cow<'_, str>)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl<Q: IntoParams, P> IntoParams for Listing<Q, P> {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = Q::into_params(parameter_in);
        params.push(
            ParameterBuilder::new()
                .name("limit")
                .parameter_in(ParameterIn::Query)
                .description(Some(format!(
                    "Page size, 1–{MAX_LIMIT} (default {DEFAULT_LIMIT})."
                )))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                        .minimum(Some(1))
                        .maximum(Some(MAX_LIMIT))
                        .default(Some(DEFAULT_LIMIT.into())),
                ))
                .build(),
        );
        params.push(
            ParameterBuilder::new()
                .name("cursor")
                .parameter_in(ParameterIn::Query)
                .description(Some("`next_cursor` from the previous page."))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        params
    }
}

/// The filters of a list that has none: any parameter but `limit` and
/// `cursor` is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFilters {}

impl IntoParams for NoFilters {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Vec::new()
    }
}

/// A list without filters takes its page request alone: `limit` and
/// `cursor`, and no other parameter.
impl<S, P> FromRequestParts<S> for PageRequest<P>
where
    S: Send + Sync,
    P: Position,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Listing(NoFilters {}, request) = Listing::from_request_parts(parts, state).await?;
        Ok(request)
    }
}

impl<P> IntoParams for PageRequest<P> {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Listing::<NoFilters, P>::into_params(parameter_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Time = (DateTime<Utc>, Uuid);

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(Some(&encode_cursor(&id))).unwrap(), Some(id));
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(
            decode_cursor::<Time>(Some(&encode_cursor(&(at, id)))).unwrap(),
            Some((at, id))
        );
        assert_eq!(
            decode_cursor(Some(&encode_cursor(&42_i32))).unwrap(),
            Some(42)
        );
        assert_eq!(
            decode_cursor(Some(&encode_cursor(&(1_i64 << 40)))).unwrap(),
            Some(1_i64 << 40)
        );
        let email = "agent07@acme.example".to_string();
        assert_eq!(
            decode_cursor(Some(&encode_cursor(&email))).unwrap(),
            Some(email)
        );
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let ancient = DateTime::from_timestamp(-200_000_000_000, 0).unwrap();
        let forged = encode_cursor(&(ancient, Uuid::nil()));
        assert!(decode_cursor::<Time>(Some(&forged)).is_err());
        assert!(decode_cursor::<Uuid>(Some("not base64!")).is_err());
        assert!(decode_cursor::<Uuid>(Some("AAAA")).is_err());
        let id_cursor = encode_cursor(&Uuid::now_v7());
        assert!(decode_cursor::<Time>(Some(&id_cursor)).is_err());
        assert!(decode_cursor::<i32>(Some(&id_cursor)).is_err());
        assert!(decode_cursor::<i64>(Some(&id_cursor)).is_err());
        let nul = encode_cursor(&"a\0b".to_string());
        assert!(decode_cursor::<String>(Some(&nul)).is_err());
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let request = PageRequest::<i32> {
            limit: 2,
            after: None,
        };
        let p = request.page(vec![1, 2, 3], |n| *n);
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!(p.next_cursor, Some(encode_cursor(&2)));
        let p = request.page(vec![1, 2], |n| *n);
        assert_eq!(p.next_cursor, None);
    }
}

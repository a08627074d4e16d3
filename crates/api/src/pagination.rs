//! Cursor pagination: `?limit=&cursor=` in, `{"data", "next_cursor"}` out.
//!
//! Cursors are opaque to clients (base64url). Lists ordered by id carry the
//! last id seen (ids are UUIDv7, so id order is creation order); lists merged
//! from several tables carry `(timestamp, id)`. Keyset pagination visits
//! every row exactly once even while rows are being inserted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

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

/// The bytes an issued cursor encodes; none without a cursor.
fn cursor_bytes(cursor: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    cursor
        .map(|cursor| URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid_cursor()))
        .transpose()
}

/// A cursor holding the last id of the previous page.
pub fn decode_id_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    cursor_bytes(cursor)?
        .map(|bytes| Uuid::from_slice(&bytes).map_err(|_| invalid_cursor()))
        .transpose()
}

/// The cursor after the item `id` (see [`decode_id_cursor`]).
pub fn encode_id_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// A cursor holding the last position (a row number) of the previous page.
pub fn decode_number_cursor(cursor: Option<&str>) -> Result<Option<i32>, ApiError> {
    cursor_bytes(cursor)?
        .map(|bytes| {
            let bytes: [u8; 4] = bytes.try_into().map_err(|_| invalid_cursor())?;
            Ok(i32::from_be_bytes(bytes))
        })
        .transpose()
}

/// The cursor after the row `position` (see [`decode_number_cursor`]).
pub fn encode_number_cursor(position: i32) -> String {
    URL_SAFE_NO_PAD.encode(position.to_be_bytes())
}

/// A cursor holding `(timestamp, id)` of the last item of the previous page.
pub fn decode_time_cursor(cursor: Option<&str>) -> Result<Option<(DateTime<Utc>, Uuid)>, ApiError> {
    let Some(bytes) = cursor_bytes(cursor)? else {
        return Ok(None);
    };
    if bytes.len() != 24 {
        return Err(invalid_cursor());
    }
    let micros = i64::from_be_bytes(bytes[..8].try_into().map_err(|_| invalid_cursor())?);
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid_cursor)?;
    // Cursors we issue hold real row times; anything PostgreSQL could not
    // even represent was forged.
    if !(1..=9999).contains(&chrono::Datelike::year(&at)) {
        return Err(invalid_cursor());
    }
    let id = Uuid::from_slice(&bytes[8..]).map_err(|_| invalid_cursor())?;
    Ok(Some((at, id)))
}

/// The cursor after the item `(at, id)` (see [`decode_time_cursor`]).
pub fn encode_time_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds a page from `limit + 1` fetched rows: the extra row only tells
/// whether another page exists.
pub fn page<T>(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page {
        data: rows,
        next_cursor,
    }
}

/// What a client asked of a list ordered by id, newest first: SQL filters
/// `id < after` (when set), orders by `id DESC` and fetches
/// [`IdPageRequest::fetch`] rows.
#[derive(Debug, Clone, Copy)]
pub struct IdPageRequest {
    /// Rows the page holds.
    pub limit: u32,
    /// The last id of the previous page; `None` for the first page.
    pub after: Option<Uuid>,
}

impl IdPageRequest {
    /// Validates the `limit` and `cursor` query parameters.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        Ok(IdPageRequest {
            limit: self::limit(limit)?,
            after: decode_id_cursor(cursor)?,
        })
    }

    /// How many rows to fetch: one more than a page, to know whether
    /// another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page of the fetched `rows`; its cursor is the last row's id.
    pub fn page<T>(&self, rows: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        page(rows, self.limit, |row| encode_id_cursor(id_of(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(
            decode_id_cursor(Some(&encode_id_cursor(id))).unwrap(),
            Some(id)
        );
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(
            decode_time_cursor(Some(&encode_time_cursor(at, id))).unwrap(),
            Some((at, id))
        );
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let ancient = DateTime::from_timestamp(-200_000_000_000, 0).unwrap();
        assert!(decode_time_cursor(Some(&encode_time_cursor(ancient, Uuid::nil()))).is_err());
        assert!(decode_id_cursor(Some("not base64!")).is_err());
        assert!(decode_id_cursor(Some("AAAA")).is_err());
        assert!(decode_time_cursor(Some(&encode_id_cursor(Uuid::now_v7()))).is_err());
    }

    #[test]
    fn a_page_knows_whether_more_follow() {
        let p = page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let p = page(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(p.next_cursor, None);
    }
}

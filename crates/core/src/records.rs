//! The records the API answers with and events carry — a message, a call, a
//! voicemail — each written once, as the list of its fields.
//!
//! The API reads a record into its typed struct with [`Columns`] (`SELECT` /
//! `RETURNING` lists); a worker that publishes the same record straight from
//! SQL builds its JSON with [`JsonObject`]. Both render the same field list,
//! so an event's record and the API's cannot drift apart. (The API's
//! structs, which carry the OpenAPI schema, check their fields against these
//! lists in their unit tests.)

use std::fmt;

/// How PostgreSQL writes a UTC timestamp the way the API serialises one
/// (`2026-12-06T10:20:00.000000Z`), for `to_char(<ts> AT TIME ZONE 'UTC', …)`.
pub const UTC_TIMESTAMP_FORMAT: &str = "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"";

/// One field of a record: its name in the API's JSON and the SQL (over the
/// record's table, unqualified) that yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub sql: &'static str,
    /// A `timestamptz`: JSON built in SQL formats it as the API does.
    pub timestamp: bool,
}

impl Field {
    /// A column shown under its own name.
    pub const fn column(name: &'static str) -> Self {
        Field::named(name, name)
    }

    /// A value shown under another name (`from_number` as `from`).
    pub const fn named(name: &'static str, sql: &'static str) -> Self {
        Field {
            name,
            sql,
            timestamp: false,
        }
    }

    /// A `timestamptz` column shown under its own name.
    pub const fn timestamp(name: &'static str) -> Self {
        Field {
            timestamp: true,
            ..Field::column(name)
        }
    }
}

/// A record's fields as a `SELECT` / `RETURNING` list, each under its API
/// name (for `sqlx::FromRow`).
#[derive(Debug, Clone, Copy)]
pub struct Columns(pub &'static [Field]);

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_each(f, self.0, |f, field| {
            if field.sql == field.name {
                f.write_str(field.name)
            } else {
                write!(f, "{} AS \"{}\"", field.sql, field.name)
            }
        })
    }
}

/// A record as one `jsonb_build_object(...)` expression, shaped as the API
/// serialises it (timestamps in UTC with `Z`).
#[derive(Debug, Clone, Copy)]
pub struct JsonObject(pub &'static [Field]);

impl fmt::Display for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("jsonb_build_object(")?;
        write_each(f, self.0, |f, field| {
            if field.timestamp {
                write!(
                    f,
                    "'{}', to_char({} AT TIME ZONE 'UTC', '{UTC_TIMESTAMP_FORMAT}')",
                    field.name, field.sql
                )
            } else {
                write!(f, "'{}', {}", field.name, field.sql)
            }
        })?;
        f.write_str(")")
    }
}

/// Writes each field with `write`, separated by commas.
fn write_each(
    f: &mut fmt::Formatter<'_>,
    fields: &[Field],
    write: impl Fn(&mut fmt::Formatter<'_>, &Field) -> fmt::Result,
) -> fmt::Result {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write(f, field)?;
    }
    Ok(())
}

/// The names of a record's fields, in order.
pub fn names(fields: &[Field]) -> impl Iterator<Item = &'static str> + '_ {
    fields.iter().map(|field| field.name)
}

/// An SMS (table `messages`).
pub const MESSAGE: &[Field] = &[
    Field::column("id"),
    Field::column("tenant_id"),
    Field::column("direction"),
    Field::named("from", "from_number"),
    Field::named("to", "to_number"),
    Field::column("body"),
    Field::column("status"),
    Field::column("segments"),
    Field::column("encoding"),
    Field::column("carrier_sid"),
    Field::column("error_code"),
    Field::column("customer_id"),
    Field::column("campaign_id"),
    Field::column("template_id"),
    Field::column("agent_id"),
    Field::timestamp("created_at"),
    Field::timestamp("sent_at"),
    Field::timestamp("delivered_at"),
    Field::column("version"),
    Field::timestamp("updated_at"),
];

/// [`MESSAGE`] for `SELECT` and `RETURNING`.
pub const MESSAGE_COLUMNS: Columns = Columns(MESSAGE);
/// [`MESSAGE`] as its `message.*` events carry it.
pub const MESSAGE_JSON: JsonObject = JsonObject(MESSAGE);

/// A call (table `calls`).
pub const CALL: &[Field] = &[
    Field::column("id"),
    Field::column("tenant_id"),
    Field::column("direction"),
    Field::named("from", "from_number"),
    Field::named("to", "to_number"),
    Field::column("status"),
    Field::column("carrier_sid"),
    Field::column("customer_id"),
    Field::column("agent_id"),
    Field::column("on_hold"),
    Field::column("muted"),
    Field::column("recording"),
    Field::column("transferred_to"),
    Field::column("routed_to"),
    Field::timestamp("created_at"),
    Field::timestamp("ringing_at"),
    Field::timestamp("answered_at"),
    Field::timestamp("ended_at"),
    Field::column("duration_seconds"),
    Field::column("version"),
    Field::timestamp("updated_at"),
];

/// [`CALL`] for `SELECT` and `RETURNING`.
pub const CALL_COLUMNS: Columns = Columns(CALL);
/// [`CALL`] as its `call.*` events carry it.
pub const CALL_JSON: JsonObject = JsonObject(CALL);

/// A voicemail (table `voicemails`).
pub const VOICEMAIL: &[Field] = &[
    Field::column("id"),
    Field::column("tenant_id"),
    Field::column("call_id"),
    Field::column("customer_id"),
    Field::named("from", "from_number"),
    Field::named("to", "to_number"),
    Field::column("recording_url"),
    Field::column("duration_seconds"),
    Field::column("transcription_status"),
    Field::column("transcription"),
    Field::named("listened", "listened_at IS NOT NULL"),
    Field::timestamp("listened_at"),
    Field::timestamp("created_at"),
];

/// [`VOICEMAIL`] for `SELECT` and `RETURNING`.
pub const VOICEMAIL_COLUMNS: Columns = Columns(VOICEMAIL);
/// [`VOICEMAIL`] as its `voicemail.*` events carry it.
pub const VOICEMAIL_JSON: JsonObject = JsonObject(VOICEMAIL);

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[Field] = &[
        Field::column("id"),
        Field::named("from", "from_number"),
        Field::timestamp("created_at"),
    ];

    #[test]
    fn columns_name_each_value_as_the_api_does() {
        assert_eq!(
            Columns(SAMPLE).to_string(),
            "id, from_number AS \"from\", created_at"
        );
    }

    #[test]
    fn json_formats_timestamps_in_utc() {
        assert_eq!(
            JsonObject(SAMPLE).to_string(),
            "jsonb_build_object('id', id, 'from', from_number, 'created_at', \
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
        );
    }

    #[test]
    fn records_fit_in_one_jsonb_build_object() {
        // PostgreSQL passes at most 100 arguments to a function.
        for record in [MESSAGE, CALL, VOICEMAIL] {
            assert!(record.len() * 2 <= 100);
        }
    }
}

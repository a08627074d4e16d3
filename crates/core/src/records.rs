//! The records the API answers with and events carry — a message, a call, a
//! voicemail — each written once, as the list of its fields.
//!
//! The API reads a record into its typed struct with [`Columns`] (`SELECT` /
//! `RETURNING` lists); a worker that publishes the same record straight from
//! SQL builds its JSON with [`JsonObject`]. Both render the same field list,
//! so an event's record and the API's cannot drift apart. (The API's
//! structs, which carry the OpenAPI schema, check their fields against these
//! lists in their unit tests.)

use std::{
    fmt,
    marker::PhantomData,
    sync::{LazyLock, OnceLock},
};

/// How PostgreSQL writes a UTC timestamp the way the API serialises one
/// (`2026-12-06T10:20:00.000000Z`), for `to_char(<ts> AT TIME ZONE 'UTC', …)`.
pub const UTC_TIMESTAMP_FORMAT: &str = "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"";

/// The `timestamptz` expression `sql` as JSON built in SQL shows it: text
/// in UTC with `Z`, as the API serialises a timestamp.
pub fn utc_text(sql: &str) -> String {
    format!("to_char({sql} AT TIME ZONE 'UTC', '{UTC_TIMESTAMP_FORMAT}')")
}

/// One field of a record: its name in the API's JSON and the SQL (over the
/// record's table, unqualified) that yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name in the API's JSON.
    pub name: &'static str,
    /// The SQL expression over the record's table that yields the value.
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

/// A record's fields rendered once, on first use, as SQL text: requests
/// splice the text, they do not render it again.
#[derive(Debug)]
pub struct Rendered<R> {
    fields: &'static [Field],
    text: OnceLock<String>,
    _as: PhantomData<R>,
}

impl<R: Render> Rendered<R> {
    /// `fields`, to be rendered as `R` on first use.
    pub const fn new(fields: &'static [Field]) -> Self {
        Self {
            fields,
            text: OnceLock::new(),
            _as: PhantomData,
        }
    }

    /// The rendered SQL.
    pub fn as_str(&self) -> &str {
        self.text.get_or_init(|| R::render(self.fields))
    }
}

impl<R: Render> fmt::Display for Rendered<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SQL text built once, on first use, by a function: for a record whose
/// shape is more than a list of fields (a nested aggregate), spliced into
/// statements like a [`Rendered`] one.
#[derive(Debug)]
pub struct BuiltSql(LazyLock<String>);

impl BuiltSql {
    /// The text `build` makes, built on first use.
    pub const fn new(build: fn() -> String) -> Self {
        Self(LazyLock::new(build))
    }
}

impl fmt::Display for BuiltSql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a [`Rendered`] record is written.
pub trait Render {
    /// The SQL for `fields`.
    fn render(fields: &[Field]) -> String;
}

/// A record's fields as a `SELECT` / `RETURNING` list, each under its API
/// name (for `sqlx::FromRow`).
#[derive(Debug)]
pub struct Columns;

impl Render for Columns {
    fn render(fields: &[Field]) -> String {
        let shown: Vec<String> = fields
            .iter()
            .map(|field| {
                if field.sql == field.name {
                    field.name.to_string()
                } else {
                    format!("{} AS \"{}\"", field.sql, field.name)
                }
            })
            .collect();
        shown.join(", ")
    }
}

/// A record as one `jsonb_build_object(...)` expression, shaped as the API
/// serialises it (timestamps in UTC with `Z`).
#[derive(Debug)]
pub struct JsonObject;

impl Render for JsonObject {
    fn render(fields: &[Field]) -> String {
        let pairs: Vec<String> = fields
            .iter()
            .map(|field| {
                if field.timestamp {
                    format!("'{}', {}", field.name, utc_text(field.sql))
                } else {
                    format!("'{}', {}", field.name, field.sql)
                }
            })
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    }
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
pub static MESSAGE_COLUMNS: Rendered<Columns> = Rendered::new(MESSAGE);
/// [`MESSAGE`] as its `message.*` events carry it.
pub static MESSAGE_JSON: Rendered<JsonObject> = Rendered::new(MESSAGE);

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
pub static CALL_COLUMNS: Rendered<Columns> = Rendered::new(CALL);
/// [`CALL`] as its `call.*` events carry it.
pub static CALL_JSON: Rendered<JsonObject> = Rendered::new(CALL);

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
pub static VOICEMAIL_COLUMNS: Rendered<Columns> = Rendered::new(VOICEMAIL);
/// [`VOICEMAIL`] as its `voicemail.*` events carry it.
pub static VOICEMAIL_JSON: Rendered<JsonObject> = Rendered::new(VOICEMAIL);

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
            Columns::render(SAMPLE),
            "id, from_number AS \"from\", created_at"
        );
    }

    #[test]
    fn json_formats_timestamps_in_utc() {
        assert_eq!(
            JsonObject::render(SAMPLE),
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

//! # switchboard-core
//!
//! Everything the Switchboard services share, so the API, the realtime
//! server, the worker and the load suite agree on one definition of each:
//!
//! - [`settings`]: the one configuration model, loaded from the environment;
//! - [`db`] and [`redis`]: PostgreSQL and Redis pools, database creation and
//!   migrations;
//! - [`auth`]: password hashing, JWT access tokens, revocation, API keys, roles;
//! - [`phone`]: E.164 normalisation of phone numbers; [`email`]: the address check;
//! - [`lifecycle`]: what a reported status does (shared by calls and messages);
//! - [`calls`]: the call state machine and agent controls;
//! - [`carrier`]: carrier webhook signatures (Twilio's scheme);
//! - [`templates`]: SMS template rendering;
//! - [`events`]: the event envelope and its Redis publisher;
//! - [`jobs`]: job payloads and their PostgreSQL queues (enqueued in the write's transaction);
//! - [`presence`]: agent presence in Redis (tabs, heartbeats, routing);
//! - [`reports`]: report aggregation and the hourly rollups behind it;
//! - [`sms`]: GSM-7/UCS-2 encoding, segment counting and the message lifecycle;
//! - [`records`]: the message, call and voicemail records, as SQL columns and JSON;
//! - [`telemetry`]: the process's Prometheus recorder;
//! - [`imports`]: the CSV files of bulk customer imports and their rows;
//! - [`ids`]: time-ordered identifiers.

#![warn(missing_docs)]

pub mod auth;
pub mod calls;
pub mod carrier;
pub mod db;
pub mod email;
pub mod events;
pub mod group_commit;
pub mod health;
pub mod ids;
pub mod imports;
pub mod jobs;
pub mod lifecycle;
pub mod memo;
pub mod phone;
pub mod presence;
pub mod records;
pub mod redis;
pub mod reports;
pub mod scheduling;
pub mod search;
pub mod settings;
pub mod sms;
pub mod telemetry;
pub mod templates;
pub mod ticker;

pub use settings::Settings;

/// Declares a closed set of names (a status, a role, an event type) as an
/// enum whose every value is spelled once, here, for all that reads or
/// writes it: serde (requests, answers, events, job payloads), sqlx (a
/// `text` column), the OpenAPI document (utoipa) and `as_str` (binds,
/// metric labels, `Display`) and `from_name` (its inverse, for a `FromStr`
/// that wants one). `ALL` lists the values in declaration order.
/// Attributes pass through: docs, extra derives, `#[default]`,
/// `#[schema(as = …)]`. (Each name is taken as a token tree, not a
/// `literal` fragment: a fragment reaches the derives wrapped in an
/// invisible group, which utoipa does not read as a rename.)
///
/// ```
/// switchboard_core::text_enum! {
///     /// Which way a light is.
///     pub enum Light {
///         /// Lit.
///         On = "on",
///         /// Dark.
///         Off = "off",
///     }
/// }
/// assert_eq!(Light::On.as_str(), "on");
/// assert_eq!(serde_json::to_string(&Light::Off).unwrap(), "\"off\"");
/// assert_eq!(Light::ALL, [Light::On, Light::Off]);
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_attr:meta])*
                $variant:ident = $text:tt
            ),+ $(,)?
        }
    ) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema, ::sqlx::Type,
        )]
        #[sqlx(type_name = "text")]
        $(#[$attr])*
        $vis enum $name {
            $(
                $(#[$variant_attr])*
                #[serde(rename = $text)]
                #[sqlx(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The value's name, as it is stored, sent and documented.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The names of `values` as an SQL list of literals (`'a', 'b'`),
            /// for a condition that a partial index must be able to serve:
            /// PostgreSQL uses one only where it can prove, from the
            /// statement's own conditions, that they imply the index's
            /// predicate, and a bound array proves nothing once the statement
            /// is planned generically.
            pub fn sql_list(values: impl IntoIterator<Item = Self>) -> String {
                values
                    .into_iter()
                    .map(|value| format!("'{}'", value.as_str().replace('\'', "''")))
                    .collect::<Vec<_>>()
                    .join(", ")
            }

            /// The value `name` names exactly; `None` for any other text.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    text_enum! {
        /// A set whose names need every renaming rule: a dash, a dot, capitals.
        enum Sample {
            /// `in-progress`.
            InProgress = "in-progress",
            /// `call.status`.
            Dotted = "call.status",
            /// `GSM-7`.
            Upper = "GSM-7",
        }
    }

    /// A value is written (`as_str`, `Display`), sent and read back (serde)
    /// and stored (sqlx, as text) under the one name its declaration gives.
    #[test]
    fn a_text_enum_value_has_one_name_everywhere() {
        for (value, name) in Sample::ALL
            .into_iter()
            .zip(["in-progress", "call.status", "GSM-7"])
        {
            assert_eq!(value.as_str(), name);
            assert_eq!(value.to_string(), name);
            assert_eq!(serde_json::to_value(value).unwrap(), name);
            let read: Sample = serde_json::from_value(name.into()).unwrap();
            assert_eq!(read, value);
            assert_eq!(Sample::from_name(name), Some(value));
        }
        assert_eq!(Sample::from_name("InProgress"), None);
        assert!(serde_json::from_value::<Sample>("InProgress".into()).is_err());
        assert_eq!(
            <Sample as sqlx::Type<sqlx::Postgres>>::type_info(),
            <String as sqlx::Type<sqlx::Postgres>>::type_info()
        );
    }

    text_enum! {
        /// A name with a quote in it.
        enum Quoted {
            /// `it's`.
            It = "it's",
        }
    }

    /// A predicate's list of literals holds the names, each quoted as SQL
    /// quotes text: a quote in a name cannot end its literal.
    #[test]
    fn sql_list_quotes_each_name_as_an_sql_literal() {
        assert_eq!(
            Sample::sql_list([Sample::InProgress, Sample::Upper]),
            "'in-progress', 'GSM-7'"
        );
        assert_eq!(Sample::sql_list([]), "");
        assert_eq!(Quoted::from_name("it's"), Some(Quoted::It));
        assert_eq!(Quoted::sql_list(Quoted::ALL), "'it''s'");
    }
}

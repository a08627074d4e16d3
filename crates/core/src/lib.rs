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

/// The one of `all` that `name` spells `s`: the inverse of an enum's
/// `as_str`, so each spelling is written once.
pub(crate) fn from_name<T: Copy>(all: &[T], name: fn(T) -> &'static str, s: &str) -> Option<T> {
    all.iter().copied().find(|&value| name(value) == s)
}

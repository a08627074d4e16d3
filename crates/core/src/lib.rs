//! # switchboard-core
//!
//! Everything the Switchboard services share, so the API, the realtime
//! server, the worker and the load suite agree on one definition of each:
//!
//! - [`settings`]: the one configuration model, loaded from the environment;
//! - [`db`] and [`redis`]: PostgreSQL and Redis pools, database creation and
//!   migrations;
//! - [`auth`]: password hashing, JWT access tokens, revocation, API keys, roles;
//! - [`phone`]: E.164 normalisation of phone numbers;
//! - [`events`]: the event envelope and its Redis publisher;
//! - [`sms`]: GSM-7/UCS-2 encoding and segment counting;
//! - [`ids`]: time-ordered identifiers.

pub mod auth;
pub mod db;
pub mod events;
pub mod ids;
pub mod phone;
pub mod redis;
pub mod settings;
pub mod sms;
#[cfg(feature = "testing")]
pub mod testing;

pub use settings::Settings;

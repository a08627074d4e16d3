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
//! - [`calls`]: the call state machine and agent controls;
//! - [`carrier`]: carrier webhook signatures (Twilio's scheme);
//! - [`templates`]: SMS template rendering;
//! - [`events`]: the event envelope and its Redis publisher;
//! - [`jobs`]: job payloads and their PostgreSQL queues (enqueued in the write's transaction);
//! - [`presence`]: agent presence in Redis (tabs, heartbeats, routing);
//! - [`reports`]: report aggregation and the hourly rollups behind it;
//! - [`sms`]: GSM-7/UCS-2 encoding and segment counting;
//! - [`telemetry`]: the process's Prometheus recorder;
//! - [`imports`]: the CSV files of bulk customer imports and their rows;
//! - [`ids`]: time-ordered identifiers.

pub mod auth;
pub mod calls;
pub mod carrier;
pub mod db;
pub mod events;
pub mod group_commit;
pub mod health;
pub mod ids;
pub mod imports;
pub mod jobs;
pub mod memo;
pub mod phone;
pub mod presence;
pub mod redis;
pub mod reports;
pub mod scheduling;
pub mod search;
pub mod settings;
pub mod sms;
pub mod telemetry;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;

pub use settings::Settings;

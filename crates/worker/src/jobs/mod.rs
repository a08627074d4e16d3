//! The job handlers, one module per queue family.

pub mod campaign;
pub mod import;
pub mod media;
pub mod scheduled;
pub mod sms;
pub mod webhook;

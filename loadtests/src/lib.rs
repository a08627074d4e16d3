//! # switchboard-load
//!
//! Switchboard's load suite, on Goose 0.19. A tour:
//!
//! - [`cli`]: the command line (a fixed contract);
//! - [`run`]: the job — prepare the database, start the stack, verify,
//!   attack, collect, judge, report, compare with a baseline, exit code;
//! - [`stack`]: the stack under test as a child process (re-executing this
//!   binary as `__stack`), with its CPU and memory read from `/proc`;
//! - [`verify`]: the correctness pass that gates measurement;
//! - [`scenarios`]: one module per scenario, each declaring all of itself
//!   (seed section, carrier, nominal load, rules per tier, hooks), and the
//!   registry of them;
//! - [`profile`]: profiles, tiers, and the shape a profile makes of a
//!   scenario's nominal load;
//! - [`context`]: what an attack's users share, measured requests, signed
//!   carrier forms, pacing;
//! - [`sio`]: a Socket.IO v5 client that stamps arrival times;
//! - [`probe`]: the control probe beside Goose, which tells the stack's
//!   latency from the generator's own;
//! - [`measure`], [`results`], [`thresholds`], [`baseline`], [`report`]:
//!   turning an attack into numbers, verdicts and files.

#![warn(missing_docs)]

pub mod baseline;
pub mod cli;
pub mod context;
pub mod measure;
pub mod probe;
pub mod profile;
pub mod report;
pub mod results;
pub mod run;
pub mod scenarios;
pub mod sio;
pub mod stack;
pub mod thresholds;
pub mod verify;

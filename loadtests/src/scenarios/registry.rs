//! What every scenario declares about itself ([`LoadScenario`]) and the
//! registry of them ([`Scenario`]). The job ([`crate::run`]) asks a
//! scenario for its seed section, carrier, load shape, rules and hooks, and
//! knows none of them by name.

use std::{fmt, str::FromStr};

use futures::future::BoxFuture;
use serde::Serialize;

use super::{
    cache, database, fanout, health, import, queues, reporting, scheduling, sms, storm, voice,
    workday,
};
use crate::{
    context::RunContext,
    profile::{Load, Profile, Shape, Tier},
    results::{Extras, ScenarioResult},
    stack::Carrier,
    thresholds::Rule,
};

/// What a scenario's [`LoadScenario::setup`] did.
#[derive(Default)]
pub struct Setup {
    /// One line for the report.
    pub note: Option<String>,
    /// What puts the stack back after the attack, whatever its outcome
    /// (later scenarios share the database).
    pub undo: Option<BoxFuture<'static, anyhow::Result<()>>>,
}

impl Setup {
    /// A setup with `note` for the report and nothing to undo.
    pub fn noted(note: String) -> Setup {
        Setup {
            note: Some(note),
            undo: None,
        }
    }
}

/// A scenario's run, as its hooks see it.
pub struct Run<'a> {
    /// What the attack's users share: endpoints, tenants, shape, and the
    /// scenario's own state.
    pub ctx: &'a RunContext,
    /// Whether this suite started the stack, and so owns its database:
    /// only then does a scenario change or clean up the stack's data.
    pub own_stack: bool,
    /// The profile it runs under (`--profile`).
    pub profile: Profile,
    /// When setup began: whatever the run created is newer.
    pub since: chrono::DateTime<chrono::Utc>,
}

/// What a scenario declares as plain facts.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// Its name on the command line (`--scenarios`) and in the reports.
    pub name: &'static str,
    /// The seed section (or sections) it implements.
    pub implements: &'static str,
    /// Who plays the carrier in a stack this suite starts for it.
    pub carrier: Carrier,
    /// How much faster than real telephony the simulator plays calls and
    /// messages (`SWITCHBOARD_CARRIER_SPEED` overrides it).
    pub carrier_speed: f64,
    /// Whether its users follow a schedule (open model, its `rate.achieved`
    /// counting completed operations) rather than think times.
    pub paced: bool,
    /// Whether `--rate` (and the peak profile) drives it in the open model:
    /// its rate is then HTTP requests per second, judged on what was asked.
    pub open_model: bool,
}

impl About {
    /// A scenario with think times, against the simulator playing twenty
    /// times faster than real telephony.
    pub const fn new(name: &'static str, implements: &'static str) -> About {
        About {
            name,
            implements,
            carrier: Carrier::Simulated,
            carrier_speed: 20.0,
            paced: false,
            open_model: false,
        }
    }

    /// Its users follow a schedule (the field `paced`).
    pub const fn paced(self) -> About {
        About {
            paced: true,
            ..self
        }
    }

    /// `--rate` drives it in the open model (the field `open_model`).
    pub const fn open_model(self) -> About {
        About {
            open_model: true,
            ..self
        }
    }

    /// `carrier` plays the carrier in a stack this suite starts for it.
    pub const fn played_by(self, carrier: Carrier) -> About {
        About { carrier, ..self }
    }

    /// The simulator plays calls and messages `speed` times faster than
    /// real telephony.
    pub const fn carrier_speed(self, speed: f64) -> About {
        About {
            carrier_speed: speed,
            ..self
        }
    }
}

/// Everything about one load scenario, declared by its module.
pub trait LoadScenario: Sync {
    /// What it declares as plain facts.
    fn about(&self) -> About;

    /// Its nominal ("average") load under `tier`.
    fn load(&self, tier: Tier) -> Load;

    /// The shape `profile` gives it under `tier`.
    fn shape(&self, profile: Profile, tier: Tier) -> Shape {
        self.load(tier).shape(profile)
    }

    /// Its pass/fail rules in `tier` (the rules every scenario shares are
    /// added by [`crate::thresholds::rules`]).
    fn rules(&self, tier: Tier) -> Vec<Rule>;

    /// The Goose scenario its users run.
    fn goose(&self, shape: &Shape) -> goose::goose::Scenario;

    /// Goose's arguments for how many users run and for how long.
    fn users_args(&self, shape: &Shape) -> Vec<String> {
        vec!["--test-plan".into(), shape.test_plan()]
    }

    /// Before the attack's clock starts: shared state its users need, or
    /// work done out of band.
    fn setup<'a>(&'a self, _run: &'a Run<'a>) -> BoxFuture<'a, anyhow::Result<Setup>> {
        Box::pin(async { Ok(Setup::default()) })
    }

    /// After the attack, whatever its outcome: teardown, and the figures
    /// it measures itself. A figure that could not be read is reported
    /// here and fails the rule that needs it.
    fn finish<'a>(&'a self, _run: &'a Run<'a>, _extras: &'a mut Extras) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Figures derived from Goose's rows once they are in the result.
    fn read_rows(&self, _result: &mut ScenarioResult) {}
}

/// The scenarios, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `workday`: the 30-agent workday (seed 000, scenario 1 "Concurrent
    /// User Load").
    Workday,
    /// `voice`: 15 agents on calls, the suite playing the carrier (seed 000,
    /// scenario 2 "Voice Call Load").
    Voice,
    /// `sms`: 20 SMS conversations and a bulk campaign (seed 000, scenario 3
    /// "SMS Messaging Load").
    Sms,
    /// `database`: 50 users querying the seeded tables without think time
    /// (seed 000, scenario 4 "Database Performance").
    Database,
    /// `fanout`: customer notes fanned out to 200 subscriber sockets (seed
    /// 001 §3 "Redis Pub/Sub Throughput", seed 000 scenario 5 "Socket.io
    /// Scaling").
    Fanout,
    /// `storm`: signed `voice/status` callbacks at a target rate (seed 001
    /// §1 "Call State Updates").
    Storm,
    /// `reporting`: the report endpoints at a target rate (seed 001 §2
    /// "Reporting Endpoints").
    Reporting,
    /// `queues`: bulk SMS campaigns through the worker's queues (seed 003
    /// and seed 002 "Queue Metrics").
    Queues,
    /// `import`: concurrent 1 000-row CSV lead imports (seed 002 "Bulk
    /// Import", seed 003 batch lead import).
    Import,
    /// `health`: `GET /health` at a target rate (seed 002 §1 "API Health
    /// Check Load Test").
    Health,
    /// `scheduling`: scheduled calls at a target rate, and how punctually
    /// the worker places them (seed 002 "Call Scheduling").
    Scheduling,
    /// `cache`: phone lookups, `GET /v1/me` and customer updates against the
    /// API's caches (seed 003 "Cache Metrics").
    Cache,
}

impl Scenario {
    /// Every scenario, in the order `--scenarios all` runs them.
    pub const ALL: [Scenario; 12] = [
        Scenario::Workday,
        Scenario::Voice,
        Scenario::Sms,
        Scenario::Database,
        Scenario::Fanout,
        Scenario::Storm,
        Scenario::Reporting,
        Scenario::Queues,
        Scenario::Import,
        Scenario::Health,
        Scenario::Scheduling,
        Scenario::Cache,
    ];

    /// What its module declares.
    pub fn spec(self) -> &'static dyn LoadScenario {
        match self {
            Scenario::Workday => &workday::Workday,
            Scenario::Voice => &voice::Voice,
            Scenario::Sms => &sms::Sms,
            Scenario::Database => &database::Database,
            Scenario::Fanout => &fanout::Fanout,
            Scenario::Storm => &storm::Storm,
            Scenario::Reporting => &reporting::Reporting,
            Scenario::Queues => &queues::Queues,
            Scenario::Import => &import::Import,
            Scenario::Health => &health::Health,
            Scenario::Scheduling => &scheduling::Scheduling,
            Scenario::Cache => &cache::Cache,
        }
    }

    /// What its module declares as plain facts.
    pub fn about(self) -> About {
        self.spec().about()
    }

    /// Its name on the command line and in the reports (`workday`, ...).
    pub fn name(self) -> &'static str {
        self.about().name
    }

    /// The shape `profile` gives it under `tier`.
    pub fn shape(self, profile: Profile, tier: Tier) -> Shape {
        self.spec().shape(profile, tier)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown scenario {s:?} (expected one of {})",
                    Scenario::ALL.map(Scenario::name).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.name().parse::<Scenario>(), Ok(sc));
        }
        assert!("nope".parse::<Scenario>().is_err());
    }
}

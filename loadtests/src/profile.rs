//! Scenarios, profiles and the load shape each profile gives each scenario.
//!
//! A [`Shape`] is a Goose test plan (users ramped up, held, ramped down)
//! and, for rate-targeted scenarios, the total rate the users share.

use std::{fmt, str::FromStr, time::Duration};

use serde::Serialize;

use crate::stack::Carrier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Workday,
    Voice,
    Sms,
    Database,
    Fanout,
    Storm,
    Reporting,
    Queues,
    Import,
    Health,
    Scheduling,
    Cache,
}

impl Scenario {
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

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Workday => "workday",
            Scenario::Voice => "voice",
            Scenario::Sms => "sms",
            Scenario::Database => "database",
            Scenario::Fanout => "fanout",
            Scenario::Storm => "storm",
            Scenario::Reporting => "reporting",
            Scenario::Queues => "queues",
            Scenario::Import => "import",
            Scenario::Health => "health",
            Scenario::Scheduling => "scheduling",
            Scenario::Cache => "cache",
        }
    }

    /// Who plays the carrier in a stack this suite starts for the scenario:
    /// the storm and the voice scenario send the carrier's callbacks
    /// themselves (and time them); everything else uses the simulator.
    pub fn carrier(self) -> Carrier {
        match self {
            Scenario::Storm | Scenario::Voice => Carrier::External,
            _ => Carrier::Simulated,
        }
    }

    /// Whether it needs the worker (SMS delivery, campaigns, the simulator).
    pub fn needs_worker(self) -> bool {
        matches!(
            self,
            Scenario::Sms
                | Scenario::Queues
                | Scenario::Workday
                | Scenario::Import
                | Scenario::Scheduling
        )
    }

    /// Whether its users follow a schedule (open model) rather than think
    /// times (closed model).
    pub fn paced(self) -> bool {
        matches!(
            self,
            Scenario::Storm
                | Scenario::Reporting
                | Scenario::Health
                | Scenario::Fanout
                | Scenario::Sms
                | Scenario::Scheduling
        )
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Smoke,
    Baseline,
    Average,
    Peak,
    Basic,
    Stress,
    Stages,
    Spike,
    Soak,
    Sustained,
    Breakpoint,
    Nightly,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Smoke => "smoke",
            Profile::Baseline => "baseline",
            Profile::Average => "average",
            Profile::Peak => "peak",
            Profile::Basic => "basic",
            Profile::Stress => "stress",
            Profile::Stages => "stages",
            Profile::Spike => "spike",
            Profile::Soak => "soak",
            Profile::Sustained => "sustained",
            Profile::Breakpoint => "breakpoint",
            Profile::Nightly => "nightly",
        }
    }

    /// The scenarios a profile runs when `--scenarios` is not given.
    pub fn default_scenarios(self) -> Vec<Scenario> {
        match self {
            Profile::Nightly => Scenario::ALL.to_vec(),
            _ => vec![Scenario::Workday],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The seeds' own targets.
    Seed,
    /// Ours: what this stack should reach on a 2-core machine.
    Goal,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Seed => "seed",
            Tier::Goal => "goal",
        }
    }

    pub fn other(self) -> Tier {
        match self {
            Tier::Seed => Tier::Goal,
            Tier::Goal => Tier::Seed,
        }
    }
}

/// A load shape for one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape {
    /// Users held in the steady phase.
    pub users: usize,
    pub ramp: Duration,
    pub steady: Duration,
    pub down: Duration,
    /// For paced scenarios: operations per second shared by `users`.
    pub rate: Option<f64>,
    /// A whole Goose test plan, when the profile is not ramp/hold/down (spike).
    pub plan: Option<String>,
    /// Scenario-specific size: fan-out subscribers, campaign recipients.
    pub size: usize,
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

impl Shape {
    /// The Goose `--test-plan`.
    pub fn test_plan(&self) -> String {
        self.plan.clone().unwrap_or_else(|| {
            format!(
                "{u},{};{u},{};0,{}",
                secs(self.ramp),
                secs(self.steady),
                secs(self.down),
                u = self.users
            )
        })
    }

    /// The steady window in whole seconds since the attack started, leaving
    /// out one second at each edge (users still starting, stopping).
    pub fn steady_window(&self) -> (u64, u64) {
        let from = self.ramp.as_secs() + 1;
        let to = (self.ramp + self.steady).as_secs().saturating_sub(1);
        (from, to.max(from + 1))
    }

    pub fn total(&self) -> Duration {
        self.ramp + self.steady + self.down
    }

    /// The open model: the workday driven at `rate` HTTP requests/s on a
    /// schedule instead of think times (offered with [`RATE_HEADROOM`]),
    /// with as many agents as that rate needs (at least this shape's).
    pub fn open(self, rate: f64) -> Shape {
        let offered = rate * RATE_HEADROOM;
        Shape {
            users: self.users.max((offered / AGENT_MAX_RPS).ceil() as usize),
            rate: Some(offered),
            ..self
        }
    }

    /// The same shape with `factor` times the users and rate (breakpoint steps).
    pub fn scaled(&self, factor: f64) -> Shape {
        Shape {
            users: ((self.users as f64 * factor).ceil() as usize).max(1),
            rate: self.rate.map(|r| r * factor),
            size: self.size,
            plan: None,
            ..self.clone()
        }
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// How much more than its target rate a paced scenario offers: a paced
/// generator never completes more than it offers, so a stack that can
/// sustain the target then shows it (`rate.achieved ≥ target`) and one that
/// cannot falls short. The rules stay at the targets.
pub const RATE_HEADROOM: f64 = 1.1;

/// The most HTTP requests per second one workday agent issues when a
/// schedule replaces its think times: a transaction of the mix averages
/// about four requests around seconds of talk, hold and reading pauses.
/// An open-model workday keeps at least `rate / AGENT_MAX_RPS` agents.
pub const AGENT_MAX_RPS: f64 = 1.25;

/// Seed 003 §2 "Peak Load Test": 250 requests/s for 15 minutes.
pub const PEAK_RPS: f64 = 250.0;

/// The shape `profile` gives `scenario` under `tier` (rate targets are the
/// tier's: the seeds' 500 call updates/s, or our 5 000).
pub fn shape(scenario: Scenario, profile: Profile, tier: Tier) -> Shape {
    let goal = tier == Tier::Goal;
    // Nominal ("average") users, rate and size per scenario.
    let (users, rate, size): (usize, Option<f64>, usize) = match scenario {
        Scenario::Workday => (30, None, 0),
        Scenario::Voice => (15, None, 0),
        // 100 messages a minute over 20 conversations.
        Scenario::Sms => (20, Some(100.0 / 60.0), 0),
        Scenario::Database => (50, None, 0),
        // Publishers; `size` subscribers.
        Scenario::Fanout => (10, Some(if goal { 150.0 } else { 500.0 }), 200),
        // A user has one callback in flight, so its interval (users / rate)
        // should outlast the stack's tail service time, or the lateness its
        // own previous callback caused is what the schedule measures. 96
        // users at the goal's 5 500/s were 17 ms apart against a service
        // p99 of 23 ms (from-schedule p99 113 ms); 192 are 35 ms apart
        // (from-schedule p99 64–84 ms, service p99 38–41 ms with twice as
        // many in flight).
        Scenario::Storm => (
            if goal { 192 } else { 32 },
            Some(if goal { 5_000.0 } else { 500.0 }),
            0,
        ),
        Scenario::Reporting => (
            if goal { 48 } else { 16 },
            Some(if goal { 1_000.0 } else { 100.0 }),
            0,
        ),
        // Campaign recipients; users poll its progress.
        Scenario::Queues => (1, None, if goal { 20_000 } else { 2_000 }),
        // Seed 002: 10 concurrent uploads of `size` rows (both tiers; the
        // goal tier asks them to finish ten times sooner).
        Scenario::Import => (10, None, 1_000),
        Scenario::Health => (
            if goal { 64 } else { 16 },
            Some(if goal { 20_000.0 } else { 1_000.0 }),
            0,
        ),
        // Seed 002 "Call Scheduling": 50 scheduled calls/s; ours ten times.
        Scenario::Scheduling => (
            if goal { 64 } else { 16 },
            Some(if goal { 500.0 } else { 50.0 }),
            0,
        ),
        // Seed 003 names no user count for its cache test: the database
        // scenario's 50 agents.
        Scenario::Cache => (50, None, 0),
    };
    let rate = rate.map(|r| r * RATE_HEADROOM);
    let base = Shape {
        users,
        ramp: s(if scenario == Scenario::Workday { 20 } else { 5 }),
        steady: s(match scenario {
            Scenario::Workday => 120,
            Scenario::Health | Scenario::Import | Scenario::Cache => 30,
            _ => 60,
        }),
        down: s(if scenario == Scenario::Workday { 10 } else { 2 }),
        rate,
        plan: None,
        size,
    };
    match profile {
        Profile::Average | Profile::Nightly | Profile::Breakpoint => base,
        Profile::Smoke => Shape {
            users: (users / 6).clamp(1, 5),
            ramp: s(2),
            steady: s(8),
            down: s(1),
            rate: rate.map(|r| (r / 20.0).max(2.0)),
            plan: None,
            size: (size / 20).max(if size > 0 { 20 } else { 0 }),
        },
        // Seed 000's scenario 1 (1 m ramp, 5 m steady, 1 m down); rate
        // scenarios hold their target for 3 minutes (seed 001).
        Profile::Baseline => Shape {
            ramp: s(if scenario == Scenario::Workday {
                60
            } else {
                30
            }),
            steady: s(if scenario == Scenario::Workday {
                300
            } else {
                180
            }),
            down: s(if scenario == Scenario::Workday {
                60
            } else {
                10
            }),
            ..base
        },
        // Beyond capacity: five times the users and twice the rate.
        Profile::Stress => Shape {
            users: users * if rate.is_some() { 2 } else { 5 },
            ramp: s(120),
            steady: s(300),
            down: s(60),
            rate: rate.map(|r| r * 2.0),
            ..base
        },
        // Seed 002: 1 → 100 → 1; here nominal → 10× → nominal, then watch
        // the recovery.
        Profile::Spike => {
            let peak = users * 10;
            Shape {
                plan: Some(format!(
                    "{users},10s;{users},30s;{peak},10s;{peak},60s;{users},10s;{users},60s;0,5s"
                )),
                ramp: s(10),
                steady: s(170),
                down: s(5),
                ..base
            }
        }
        // Seed 002's soak: an hour at nominal load.
        Profile::Soak => Shape {
            steady: s(3_600),
            ..base
        },
        // Seed 003 §2 "Peak Load Test", 2× normal load for 15 minutes: the
        // workday at 250 requests/s (open model), everything else at twice
        // its users and rate.
        Profile::Peak if scenario == Scenario::Workday => Shape {
            ramp: s(60),
            steady: s(780),
            down: s(60),
            ..base
        }
        .open(PEAK_RPS),
        Profile::Peak => Shape {
            users: users * 2,
            rate: rate.map(|r| r * 2.0),
            ramp: s(30),
            steady: s(840),
            down: s(30),
            ..base
        },
        // Seed 004 "Basic Load Test": 100 users spawned at 5/s, 30 minutes
        // of normal business hours; other scenarios at their nominal load.
        Profile::Basic => Shape {
            users: if scenario == Scenario::Workday {
                100
            } else {
                users
            },
            ramp: s(20),
            steady: s(1_770),
            down: s(10),
            ..base
        },
        // Seed 004 "Sustained Load Test": 200 users spawned at 10/s for two
        // hours; other scenarios at twice their nominal users and rate.
        Profile::Sustained => Shape {
            users: if scenario == Scenario::Workday {
                200
            } else {
                users * 2
            },
            rate: rate.map(|r| r * 2.0),
            ramp: s(20),
            steady: s(7_170),
            down: s(10),
            ..base
        },
        // Seed 004's k6 stages: 2 m up to 100, 5 m at 100, 2 m up to 200,
        // 5 m at 200, 2 m down. The workday takes the users as written;
        // other scenarios their nominal users, then twice as many.
        Profile::Stages => {
            let first = if scenario == Scenario::Workday {
                100
            } else {
                users
            };
            let second = first * 2;
            Shape {
                users: first,
                plan: Some(format!(
                    "{first},2m;{first},5m;{second},2m;{second},5m;0,2m"
                )),
                ramp: s(120),
                steady: s(720),
                down: s(120),
                ..base
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_job_fits_in_three_minutes() {
        let shape = shape(Scenario::Workday, Profile::Average, Tier::Goal);
        assert_eq!(shape.users, 30);
        assert!(shape.total() < Duration::from_secs(180));
        assert_eq!(shape.test_plan(), "30,20s;30,120s;0,10s");
    }

    #[test]
    fn nightly_stays_under_fifteen_minutes_of_load() {
        // Eleven scenarios of 30–120 s each (about 13 minutes with the
        // scheduling and import workloads); the workflow allows 120.
        let total: Duration = Scenario::ALL
            .iter()
            .map(|sc| shape(*sc, Profile::Nightly, Tier::Goal).total())
            .sum();
        assert!(total < Duration::from_secs(15 * 60), "{total:?}");
    }

    #[test]
    fn paced_scenarios_offer_more_than_their_target_rate() {
        let storm = shape(Scenario::Storm, Profile::Average, Tier::Goal);
        assert!(storm.rate.is_some_and(|r| r > 5_000.0), "{storm:?}");
        let seed = shape(Scenario::Storm, Profile::Average, Tier::Seed);
        assert!(seed.rate.is_some_and(|r| r > 500.0), "{seed:?}");
    }

    #[test]
    fn the_seeds_profiles_have_their_users_and_durations() {
        let peak = shape(Scenario::Workday, Profile::Peak, Tier::Seed);
        assert_eq!(peak.total(), Duration::from_secs(15 * 60));
        assert!(peak.rate.is_some_and(|r| r >= PEAK_RPS), "{peak:?}");
        // Enough agents for the rate, never fewer than the seed's 50.
        assert!(peak.users as f64 * AGENT_MAX_RPS >= PEAK_RPS && peak.users >= 50);
        let basic = shape(Scenario::Workday, Profile::Basic, Tier::Seed);
        assert_eq!(
            (basic.users, basic.total()),
            (100, Duration::from_secs(30 * 60))
        );
        let sustained = shape(Scenario::Workday, Profile::Sustained, Tier::Seed);
        assert_eq!(
            (sustained.users, sustained.total()),
            (200, Duration::from_secs(2 * 3_600))
        );
        let stages = shape(Scenario::Workday, Profile::Stages, Tier::Seed);
        assert_eq!(stages.test_plan(), "100,2m;100,5m;200,2m;200,5m;0,2m");
        assert_eq!(stages.total(), Duration::from_secs(16 * 60));
    }

    #[test]
    fn smoke_is_seconds() {
        for sc in Scenario::ALL {
            assert!(shape(sc, Profile::Smoke, Tier::Seed).total() <= Duration::from_secs(12));
        }
    }

    #[test]
    fn scenario_names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.name().parse::<Scenario>(), Ok(sc));
        }
        assert!("nope".parse::<Scenario>().is_err());
    }
}

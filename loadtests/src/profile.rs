//! Profiles, tiers, and the load shape a profile makes of a scenario's
//! nominal load.
//!
//! A scenario declares its nominal [`Load`] (see
//! [`crate::scenarios::LoadScenario`]); a [`Shape`] is what a profile makes
//! of it: a Goose test plan (users ramped up, held, ramped down) and, for
//! rate-targeted scenarios, the total rate the users share.

use std::time::Duration;

use serde::Serialize;

use crate::scenarios::Scenario;

/// A load profile (`--profile`): the shape each scenario's nominal load
/// takes, and (for `nightly`) the scenarios run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A few users (rates ÷ 20) for 8 s on a small seed: seconds, for CI.
    Smoke,
    /// Workday: 30 users, 1 m ramp, 5 m steady, 1 m down; other scenarios
    /// hold their nominal load 3 min.
    Baseline,
    /// Each scenario's nominal load; the workday's 30 users in under 3
    /// minutes.
    Average,
    /// The open-model workday at 250 requests/s for 15 min; other
    /// scenarios 2× users and rate.
    Peak,
    /// Workday: 100 users for 30 min; other scenarios nominal for 30 min.
    Basic,
    /// 5× the users (paced scenarios: 2× users and rate), 2 m / 5 m / 1 m.
    Stress,
    /// 2 m up to the nominal users, 5 m there, 2 m up to twice as many, 5 m
    /// there, 2 m down (workday: 100, then 200).
    Stages,
    /// Nominal → 10× the users in 10 s, held 60 s → nominal, then 60 s of
    /// recovery.
    Spike,
    /// Nominal load for an hour.
    Soak,
    /// Workday: 200 users for 2 h; other scenarios 2× users and rate.
    Sustained,
    /// The nominal load × 1, 1.5, 2, 3, 4, 6, 8, 12 (5 s ramp, 30 s held,
    /// each against a fresh stack) until a threshold breaks.
    Breakpoint,
    /// Every scenario at nominal load, 30–120 s each: about 13 minutes.
    Nightly,
}

impl Profile {
    /// Its name on the command line, in reports and in baselines.
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

/// A threshold tier (`--tier`): whose targets a run's rules hold it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The seeds' own targets.
    Seed,
    /// Ours: what this stack should reach on a 2-core machine.
    Goal,
}

impl Tier {
    /// Its name on the command line, in reports and in baselines.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Seed => "seed",
            Tier::Goal => "goal",
        }
    }

    /// `seed` under the seeds' tier, `goal` under ours.
    pub fn choose<T>(self, seed: T, goal: T) -> T {
        match self {
            Tier::Seed => seed,
            Tier::Goal => goal,
        }
    }

    /// The other tier (its rules are judged too, for information only).
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
    /// How long `users` take to start.
    pub ramp: Duration,
    /// How long `users` are held.
    pub steady: Duration,
    /// How long they take to stop.
    pub down: Duration,
    /// For paced scenarios: operations per second shared by `users`.
    pub rate: Option<f64>,
    /// A whole Goose test plan, when the profile is not ramp/hold/down (spike).
    pub plan: Option<String>,
    /// Scenario-specific size: fan-out subscribers, campaign recipients.
    pub size: usize,
}

/// A phase of a Goose test plan: whole seconds, at least one.
fn plan_secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

impl Shape {
    /// The Goose `--test-plan`.
    pub fn test_plan(&self) -> String {
        self.plan.clone().unwrap_or_else(|| {
            format!(
                "{u},{};{u},{};0,{}",
                plan_secs(self.ramp),
                plan_secs(self.steady),
                plan_secs(self.down),
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

    /// The whole attack: ramp, steady and down.
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

    /// The same load ramped up in `ramp` seconds, held `steady`, and
    /// stopped in `down`.
    pub fn phases(self, ramp: u64, steady: u64, down: u64) -> Shape {
        Shape {
            ramp: secs(ramp),
            steady: secs(steady),
            down: secs(down),
            ..self
        }
    }

    /// The same shape run by a Goose test plan of its own (`plan`), the
    /// phases standing for its ramp, hold and stop.
    pub fn planned(self, plan: String) -> Shape {
        Shape {
            plan: Some(plan),
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

/// Whole seconds.
pub const fn secs(n: u64) -> Duration {
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

/// A scenario's nominal ("average") load, from which every profile's
/// shape is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Users held in the steady phase.
    pub users: usize,
    /// For paced scenarios: the target operations per second (offered
    /// with [`RATE_HEADROOM`]).
    pub rate: Option<f64>,
    /// Scenario-specific size: fan-out subscribers, campaign recipients.
    pub size: usize,
    /// How long `users` take to start.
    pub ramp: Duration,
    /// How long `users` are held.
    pub steady: Duration,
    /// How long they take to stop.
    pub down: Duration,
}

impl Load {
    /// `users` users, ramped up in 5 s, held a minute, stopped in 2 s.
    pub const fn users(users: usize) -> Load {
        Load {
            users,
            rate: None,
            size: 0,
            ramp: secs(5),
            steady: secs(60),
            down: secs(2),
        }
    }

    /// The same load, paced at `rate` operations per second in all.
    pub const fn rate(self, rate: f64) -> Load {
        Load {
            rate: Some(rate),
            ..self
        }
    }

    /// The same load with a scenario-specific `size`.
    pub const fn size(self, size: usize) -> Load {
        Load { size, ..self }
    }

    /// The same load held `steady`.
    pub const fn steady(self, steady: Duration) -> Load {
        Load { steady, ..self }
    }

    /// The shape `profile` makes of this load.
    pub fn shape(&self, profile: Profile) -> Shape {
        let Load {
            users, rate, size, ..
        } = *self;
        let rate = rate.map(|r| r * RATE_HEADROOM);
        let base = Shape {
            users,
            ramp: self.ramp,
            steady: self.steady,
            down: self.down,
            rate,
            plan: None,
            size,
        };
        // Twice the nominal users and rate.
        let doubled = Shape {
            users: users * 2,
            rate: rate.map(|r| r * 2.0),
            ..base.clone()
        };
        match profile {
            Profile::Average | Profile::Nightly | Profile::Breakpoint => base,
            Profile::Smoke => Shape {
                users: (users / 6).clamp(1, 5),
                rate: rate.map(|r| (r / 20.0).max(2.0)),
                size: (size / 20).max(if size > 0 { 20 } else { 0 }),
                ..base.phases(2, 8, 1)
            },
            // Rate scenarios hold their target for 3 minutes (seed 001).
            Profile::Baseline => base.phases(30, 180, 10),
            // Beyond capacity: five times the users and twice the rate.
            Profile::Stress => Shape {
                users: users * if rate.is_some() { 2 } else { 5 },
                ..doubled.phases(120, 300, 60)
            },
            // Seed 002: 1 → 100 → 1; here nominal → 10× → nominal, then
            // watch the recovery.
            Profile::Spike => {
                let peak = users * 10;
                base.phases(10, 170, 5).planned(format!(
                    "{users},10s;{users},30s;{peak},10s;{peak},60s;{users},10s;{users},60s;0,5s"
                ))
            }
            // Seed 002's soak: an hour at nominal load.
            Profile::Soak => Shape {
                steady: secs(3_600),
                ..base
            },
            // Seed 003 §2 "Peak Load Test", 2× normal load for 15 minutes.
            Profile::Peak => doubled.phases(30, 840, 30),
            // Seed 004 "Basic Load Test": 30 minutes of normal business
            // hours at the nominal load.
            Profile::Basic => base.phases(20, 1_770, 10),
            // Seed 004 "Sustained Load Test": two hours at twice the
            // nominal users and rate.
            Profile::Sustained => doubled.phases(20, 7_170, 10),
            // Seed 004's k6 stages: 2 m up to the nominal users, 5 m there,
            // 2 m up to twice as many, 5 m there, 2 m down.
            Profile::Stages => {
                let second = users * 2;
                base.phases(120, 720, 120).planned(format!(
                    "{users},2m;{users},5m;{second},2m;{second},5m;0,2m"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_stays_under_fifteen_minutes_of_load() {
        // Eleven scenarios of 30–120 s each (about 13 minutes with the
        // scheduling and import workloads); the workflow allows 120.
        let total: Duration = Scenario::ALL
            .iter()
            .map(|sc| sc.shape(Profile::Nightly, Tier::Goal).total())
            .sum();
        assert!(total < Duration::from_secs(15 * 60), "{total:?}");
    }

    #[test]
    fn paced_scenarios_offer_more_than_their_target_rate() {
        let storm = Scenario::Storm.shape(Profile::Average, Tier::Goal);
        assert!(storm.rate.is_some_and(|r| r > 5_000.0), "{storm:?}");
        let seed = Scenario::Storm.shape(Profile::Average, Tier::Seed);
        assert!(seed.rate.is_some_and(|r| r > 500.0), "{seed:?}");
    }

    #[test]
    fn smoke_is_seconds() {
        for sc in Scenario::ALL {
            assert!(sc.shape(Profile::Smoke, Tier::Seed).total() <= Duration::from_secs(12));
        }
    }
}

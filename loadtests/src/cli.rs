//! The command line (a fixed contract: the nightly workflow and docker
//! compose call it).

use std::path::PathBuf;

use clap::Parser;

use crate::{
    profile::{Profile, Tier},
    scenarios::Scenario,
};

/// Switchboard's load suite. With no arguments: the main job (prepare the
/// database, start the stack, verify it, run the 30-user agent workday for
/// under three minutes, report, judge).
#[derive(Debug, Parser)]
#[command(name = "switchboard-load", version)]
pub struct Cli {
    /// Load profile [default: average, the 30-user main job].
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Threshold tier: the seeds' targets or our goals.
    #[arg(long, value_enum, default_value = "goal")]
    pub tier: Tier,
    /// Scenarios to run, comma separated, or `all` [default: the profile's].
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// The API of an already running stack (no stack is started).
    #[arg(long, requires = "realtime")]
    pub host: Option<String>,
    /// Its Socket.IO server.
    #[arg(long, requires = "host")]
    pub realtime: Option<String>,
    /// Its worker's /health and /metrics.
    #[arg(long, requires = "host")]
    pub worker: Option<String>,
    /// Open model: drive the workday at this many HTTP requests/s, each
    /// agent on a schedule instead of think times (the agent pool grows to
    /// what the rate needs). The `peak` profile sets 250 (seed 003 §2).
    #[arg(long, value_parser = positive_rate)]
    pub rate: Option<f64>,
    /// Compare with this baseline; exit 4 on regression.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Add this run to this baseline file.
    #[arg(long)]
    pub save_baseline: Option<PathBuf>,
    /// Run no load: judge these finished runs (their `summary.json`)
    /// against `--baseline`, pooled (each metric's median across them);
    /// exit 4 on regression. The paired comparison
    /// (`scripts/paired-perf.sh`) judges the candidate's runs this way
    /// against the runs of the previous revision made in the same job.
    #[arg(long, num_args = 1.., requires = "baseline", conflicts_with = "save_baseline")]
    pub judge: Vec<PathBuf>,
    /// Run no load: add these finished runs (their `summary.json`) to
    /// `--save-baseline` (a baseline re-recorded from runs already made,
    /// such as a nightly job's artifacts).
    #[arg(long, num_args = 1.., requires = "save_baseline", conflicts_with_all = ["judge", "baseline"])]
    pub record: Vec<PathBuf>,
    /// Where reports go [default: target/loadtest/<run-id>].
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Demo data volume when this suite seeds. Seeding is skipped when data
    /// exists.
    #[arg(long, value_enum, default_value = "default")]
    pub seed_size: SeedSize,
    /// With --host: whether that stack's carrier is `external`
    /// (this suite then plays the carrier everywhere).
    #[arg(long)]
    pub external_carrier: bool,
    /// Development only: measure without the verification pass (the
    /// summary marks the run unverified and the exit code is 1).
    #[arg(long, hide = true)]
    pub no_verify: bool,
}

/// How much demo data the suite seeds (`--seed-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedSize {
    /// 1 000 customers, 5 000 calls: what `--profile smoke` seeds instead of `default`.
    Small,
    /// 10 000 customers, 100 000 calls.
    Default,
    /// 100 000 customers, 1 000 000 calls: the reporting goal's size.
    Large,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{s:?} is not a positive request rate")),
    }
}

impl Cli {
    /// The `--profile` given, or `average`.
    pub fn profile(&self) -> Profile {
        self.profile.unwrap_or(Profile::Average)
    }

    /// The scenarios to run: those of `--scenarios` (every one for `all`),
    /// or the profile's own when it is not given; an unknown name is an error.
    pub fn scenarios(&self) -> Result<Vec<Scenario>, String> {
        if self.scenarios.is_empty() {
            return Ok(self.profile().default_scenarios());
        }
        if self.scenarios.iter().any(|s| s.trim() == "all") {
            return Ok(Scenario::ALL.to_vec());
        }
        let mut out: Vec<Scenario> = self
            .scenarios
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line `switchboard-load args...`.
    fn try_parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("switchboard-load").chain(args.iter().copied()))
    }

    fn parse(args: &[&str]) -> Cli {
        try_parse(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(args: &[&str]) -> bool {
        try_parse(args).is_err()
    }

    #[test]
    fn no_arguments_is_the_main_job() {
        let cli = parse(&[]);
        assert_eq!(cli.profile(), Profile::Average);
        assert_eq!(cli.tier, Tier::Goal);
        assert_eq!(cli.scenarios(), Ok(vec![Scenario::Workday]));
    }

    #[test]
    fn the_contract_parses() {
        let cli = parse(&[
            "--profile",
            "nightly",
            "--tier",
            "seed",
            "--scenarios",
            "storm,reporting",
            "--host",
            "http://127.0.0.1:8080",
            "--realtime",
            "http://127.0.0.1:8081",
            "--worker",
            "http://127.0.0.1:8082",
            "--baseline",
            "b.json",
            "--save-baseline",
            "c.json",
            "--report-dir",
            "out",
        ]);
        assert_eq!(
            cli.scenarios(),
            Ok(vec![Scenario::Storm, Scenario::Reporting])
        );
        assert!(refused(&["--profile", "nope"]));
        let judge = parse(&[
            "--baseline",
            "a.json",
            "--judge",
            "b1/summary.json",
            "b2/summary.json",
        ]);
        assert_eq!(judge.judge.len(), 2);
        assert!(refused(&["--judge", "b/summary.json"]));
        let record = parse(&["--save-baseline", "a.json", "--record", "a1/summary.json"]);
        assert_eq!(record.record.len(), 1);
        assert!(refused(&["--record", "a1/summary.json"]));
        assert!(refused(&["--rate", "0"]));
        let open = parse(&["--profile", "peak", "--rate", "300"]);
        assert_eq!((open.profile(), open.rate), (Profile::Peak, Some(300.0)));
        assert!(parse(&["--scenarios", "nope"]).scenarios().is_err());
    }
}

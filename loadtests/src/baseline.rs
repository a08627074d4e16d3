//! Baselines: `--save-baseline FILE` records this run's gated metrics;
//! `--baseline FILE` compares this run with them and fails on regression.
//!
//! The rule is noise-aware. A baseline holds up to five runs of each
//! metric (saving again into the same file appends). The reference is their
//! median; the tolerance is the larger of a per-kind floor, measured from
//! run-to-run variation on the reference machine (see BASELINES.md), and
//! twice the relative spread (max − min) the stored runs themselves show.
//! Latency also has an absolute allowance, because at a millisecond or two
//! scheduler noise dominates any percentage:
//!
//! - latency (`*_ms`): regression if now > ref × (1 + tol) + 2 ms;
//! - throughput (`rate.achieved`, `*per_s`, `*.rps` of paced work): regression
//!   if now < ref × (1 − tol);
//! - errors (`*.error_pct`): regression if now > ref + 0.5 points;
//! - memory (`stack.peak_rss_mib`): regression if now > ref × (1 + tol) + 16 MiB.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::results::ScenarioResult;

const KEEP: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Baseline {
    pub machine_class: String,
    pub description: String,
    pub profile: String,
    pub tier: String,
    pub saved: Vec<String>,
    /// scenario → metric → the stored runs' values.
    pub samples: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Latency,
    Throughput,
    Errors,
    Memory,
}

/// Which metrics are compared, and how. Per-request rows are left out
/// (too few samples each for a stable percentile); aggregates are in.
fn kind(metric: &str) -> Option<(Kind, f64)> {
    let latency_floor = |m: &str| {
        if m.ends_with("p50_ms") {
            0.25
        } else if m.ends_with("p95_ms") {
            0.35
        } else {
            0.50
        }
    };
    let aggregate = metric.starts_with("http.")
        || metric.starts_with("all SIO.")
        || metric.starts_with("all SCHED.")
        || metric.starts_with("all QUEUE.")
        || metric.starts_with("fanout.")
        || metric.starts_with("queue.");
    if metric == "rate.achieved" || metric.ends_with("per_s") {
        return Some((Kind::Throughput, 0.10));
    }
    if metric == "stack.peak_rss_mib" {
        return Some((Kind::Memory, 0.25));
    }
    if !aggregate {
        return None;
    }
    if metric.ends_with("error_pct") {
        return Some((Kind::Errors, 0.0));
    }
    if metric.ends_with("p50_ms") || metric.ends_with("p95_ms") || metric.ends_with("p99_ms") {
        return Some((Kind::Latency, latency_floor(metric)));
    }
    None
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub scenario: String,
    pub metric: String,
    pub reference: f64,
    pub now: f64,
    /// The limit `now` was held to.
    pub limit: f64,
    pub regressed: bool,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

impl Baseline {
    pub fn load(path: &Path) -> anyhow::Result<Baseline> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Adds this run to `path` (created if missing; a baseline of another
    /// profile is replaced).
    pub fn save(
        path: &Path,
        results: &[ScenarioResult],
        profile: &str,
        tier: &str,
        description: &str,
    ) -> anyhow::Result<Baseline> {
        let mut baseline = Baseline::load(path)
            .ok()
            .filter(|b| b.profile == profile)
            .unwrap_or_default();
        baseline.machine_class = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        baseline.description = description.to_string();
        baseline.profile = profile.to_string();
        baseline.tier = tier.to_string();
        baseline.saved.push(chrono::Utc::now().to_rfc3339());
        if baseline.saved.len() > KEEP {
            baseline.saved.remove(0);
        }
        for result in results {
            let scenario = baseline.samples.entry(result.scenario.clone()).or_default();
            for (metric, value) in &result.metrics {
                if kind(metric).is_some() && value.is_finite() {
                    let runs = scenario.entry(metric.clone()).or_default();
                    runs.push(*value);
                    if runs.len() > KEEP {
                        runs.remove(0);
                    }
                }
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&baseline)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(baseline)
    }

    /// Compares each gated metric present in both.
    pub fn compare(&self, results: &[ScenarioResult]) -> Vec<Comparison> {
        let mut out = Vec::new();
        for result in results {
            let Some(stored) = self.samples.get(&result.scenario) else {
                continue;
            };
            for (metric, runs) in stored {
                let (Some((kind, floor)), Some(now)) = (kind(metric), result.metrics.get(metric))
                else {
                    continue;
                };
                if runs.is_empty() {
                    continue;
                }
                let reference = median(runs);
                let spread = if runs.len() > 1 && reference.abs() > 1e-9 {
                    let max = runs.iter().copied().fold(f64::MIN, f64::max);
                    let min = runs.iter().copied().fold(f64::MAX, f64::min);
                    (max - min) / reference.abs()
                } else {
                    0.0
                };
                let tol = floor.max(2.0 * spread);
                let (limit, regressed) = match kind {
                    Kind::Latency => {
                        let limit = reference * (1.0 + tol) + 2.0;
                        (limit, *now > limit)
                    }
                    Kind::Throughput => {
                        let limit = reference * (1.0 - tol.min(0.9));
                        (limit, *now < limit)
                    }
                    Kind::Errors => {
                        let limit = reference + 0.5;
                        (limit, *now > limit)
                    }
                    Kind::Memory => {
                        let limit = reference * (1.0 + tol) + 16.0;
                        (limit, *now > limit)
                    }
                };
                out.push(Comparison {
                    scenario: result.scenario.clone(),
                    metric: metric.clone(),
                    reference,
                    now: *now,
                    limit,
                    regressed,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(p95: f64, rate: f64) -> ScenarioResult {
        let mut r = ScenarioResult {
            scenario: "workday".into(),
            ..Default::default()
        };
        r.metrics.insert("http.p95_ms".into(), p95);
        r.metrics.insert("rate.achieved".into(), rate);
        r.metrics.insert("HTTP GET /v1/me.p95_ms".into(), p95);
        r
    }

    #[test]
    fn the_same_figures_do_not_regress_and_a_slower_stack_does() {
        let dir = std::env::temp_dir().join(format!("sb-baseline-{}", uuid::Uuid::now_v7()));
        let path = dir.join("test-class.json");
        Baseline::save(&path, &[result(10.0, 100.0)], "average", "goal", "test")
            .unwrap_or_else(|e| panic!("{e}"));
        Baseline::save(&path, &[result(12.0, 98.0)], "average", "goal", "test")
            .unwrap_or_else(|e| panic!("{e}"));
        let baseline = Baseline::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(baseline.samples["workday"]["http.p95_ms"], vec![10.0, 12.0]);
        // Per-request rows are not gated.
        assert!(!baseline.samples["workday"].contains_key("HTTP GET /v1/me.p95_ms"));
        let same = baseline.compare(&[result(12.5, 97.0)]);
        assert!(same.iter().all(|c| !c.regressed), "{same:?}");
        let slow = baseline.compare(&[result(35.0, 97.0)]);
        assert!(
            slow.iter()
                .any(|c| c.regressed && c.metric == "http.p95_ms")
        );
        let starved = baseline.compare(&[result(11.0, 50.0)]);
        assert!(
            starved
                .iter()
                .any(|c| c.regressed && c.metric == "rate.achieved")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

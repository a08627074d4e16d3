//! One scenario's results: Goose's per-request rows (HTTP and custom),
//! the HTTP aggregate, the achieved rate of paced scenarios, extras
//! (fan-out delivery, queue statistics) and the stack's resources, plus a
//! flat map of named metrics that thresholds and baselines refer to.

use std::collections::BTreeMap;

use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};
use serde::{Deserialize, Serialize};

use crate::{stack::Resources, verify::Verification};

/// One line of the results table: a request's count, rate and latency
/// percentiles, or a whole kind's (named `all`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `HTTP`, or the custom method label (`SIO`, `SCHED`, `QUEUE`, `FLOW`;
    /// the control probe's rows are `PROBE`).
    pub kind: String,
    /// The request: `METHOD /path` for HTTP (ids as `{id}`), the custom
    /// request's name otherwise (`connect`, `api→socket call:created`);
    /// `all` in a per-kind aggregate.
    pub name: String,
    /// Requests made, failed ones included.
    pub count: u64,
    /// Of `count`, the requests that failed.
    pub fails: u64,
    /// `count` per second over the whole attack, not its steady phase only.
    pub rps: f64,
    /// Median (p50) time, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile time, in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile time, in milliseconds.
    pub p99_ms: f64,
    /// Absent from runs recorded before it was measured.
    #[serde(default)]
    pub p999_ms: f64,
    /// Longest time, in milliseconds.
    pub max_ms: f64,
}

impl Row {
    fn of(kind: &str, name: &str, t: &GooseRequestMetricTimingData, fails: u64, secs: f64) -> Row {
        let ms = |p: f32| t.percentile_us(p) as f64 / 1000.0;
        Row {
            kind: kind.to_string(),
            name: name.to_string(),
            count: t.counter as u64,
            fails,
            rps: t.counter as f64 / secs.max(1e-9),
            p50_ms: ms(0.50),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: t.maximum_time_us as f64 / 1000.0,
        }
    }

    /// The key thresholds and baselines use: `HTTP GET /v1/me`, `SIO connect`.
    pub fn key(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }

    /// `fails` as a percentage of `count` (0 to 100).
    pub fn error_pct(&self) -> f64 {
        100.0 * self.fails as f64 / (self.count.max(1)) as f64
    }
}

/// One rule's verdict on a scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    /// The rule as the report prints it: `metric op limit (source)`.
    pub rule: String,
    /// The name, in [`ScenarioResult::metrics`], of the metric the rule reads.
    pub metric: String,
    /// The metric's value; `None` when it had no samples (the rule fails).
    pub observed: Option<f64>,
    /// Whether `observed` met the rule.
    pub passed: bool,
}

/// The other tier's verdicts on the same figures (informational).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtherTier {
    /// The other tier's name: `seed` or `goal`.
    pub tier: String,
    /// Its rules' verdicts on this scenario's figures.
    pub thresholds: Vec<ThresholdOutcome>,
}

/// What the control probe ([`crate::probe`]) said of Goose's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeVerdict {
    /// Goose's p95 for some request beyond the probe's by more than the
    /// margin: Goose's latencies include the generator's own delays.
    pub generator_bound: bool,
    /// Request by request: Goose's p95 beside the probe's.
    pub comparison: String,
}

/// Figures a scenario measures beyond Goose's rows, by metric name.
pub type Extras = BTreeMap<String, f64>;

/// One scenario's run: what ran, what it measured and how it was judged
/// (an entry of `summary.json`'s `scenarios`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ScenarioResult {
    /// The scenario's `--scenarios` name (`workday`, `storm`, ...).
    pub scenario: String,
    /// What the scenario implements (seed and section).
    pub implements: String,
    /// Who played the carrier for the stack: `simulated` or `external`.
    pub carrier: String,
    /// The Goose `--test-plan` the attack ran.
    pub test_plan: String,
    /// The rate offered, per second, target plus 10 % headroom: operations
    /// of a paced scenario, HTTP requests of the open-model workday; `None`
    /// for a closed model.
    pub target_rate: Option<f64>,
    /// How long Goose's attack ran, in whole seconds.
    pub duration_s: f64,
    /// What the scenario's setup did, in one line; for a breakpoint run,
    /// where it broke.
    pub setup: Option<String>,
    /// The correctness pass's checks; `None` where it was not run.
    pub verification: Option<Verification>,
    /// One row per request: Goose's (HTTP first, then by kind and name),
    /// then the control probe's `PROBE` rows.
    pub rows: Vec<Row>,
    /// The aggregate of every HTTP request (the `http.*` metrics); `None`
    /// when there were none.
    pub http: Option<Row>,
    /// One aggregate row per kind (HTTP, SIO, SCHED, QUEUE, FLOW).
    pub kinds: Vec<Row>,
    /// Figures measured beyond Goose's rows (`rate.achieved`,
    /// `fanout.p95_ms`, `breakpoint.*`, ...), by metric name.
    pub extras: Extras,
    /// The stack's CPU and memory, and the generator's and the machine's
    /// CPU, over the attack; only for a stack the suite started.
    pub resources: Option<Resources>,
    /// Every figure by metric name: what thresholds and baselines read (see
    /// [`ScenarioResult::rebuild_metrics`]).
    pub metrics: BTreeMap<String, f64>,
    /// The verdicts of the `--tier` rules; a failed one is a breach (exit 3)
    /// unless `break_found`.
    pub thresholds: Vec<ThresholdOutcome>,
    /// The other tier's rules on these figures, where the load was the
    /// same under both tiers; never part of the verdict.
    #[serde(default)]
    pub other_tier: Option<OtherTier>,
    /// A breakpoint step above nominal load that broke: its failed
    /// thresholds say where the break is, and are not a breach.
    #[serde(default)]
    pub break_found: bool,
    /// The control probe's figures against Goose's for the same requests.
    #[serde(default)]
    pub probe: Option<ProbeVerdict>,
    /// Breakpoint: one line per step run.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Why the scenario was not measured (the stack did not start,
    /// verification failed, the attack failed); the run exits 1.
    pub error: Option<String>,
    /// Stopped by Ctrl-C this many seconds into the attack: the figures
    /// cover only that part of the plan and the run is not judged.
    #[serde(default)]
    pub interrupted: Option<f64>,
    /// The paths of Goose's `report.html`, `report.json` and `report.md`.
    pub reports: Vec<String>,
}

impl ScenarioResult {
    /// Fills rows, the HTTP aggregate and the flat metric map from Goose.
    pub fn absorb(&mut self, metrics: &GooseMetrics) {
        let secs = metrics.duration.max(1) as f64;
        self.duration_s = metrics.duration as f64;
        let mut aggregates: BTreeMap<String, (GooseRequestMetricTimingData, u64)> = BTreeMap::new();
        let mut rows = Vec::new();
        for request in metrics.requests.values() {
            let kind = if request.custom_method.is_empty() {
                "HTTP".to_string()
            } else {
                request.custom_method.clone()
            };
            let t = &request.raw_data;
            rows.push(Row::of(
                &kind,
                &request.path,
                t,
                request.fail_count as u64,
                secs,
            ));
            let (aggregate, fails) = aggregates.entry(kind).or_default();
            *fails += request.fail_count as u64;
            for (bucket, count) in t.times_us.iter() {
                let before = aggregate.times_us.get(bucket).copied().unwrap_or(0);
                aggregate.times_us.insert(*bucket, before + count);
            }
            if aggregate.counter == 0 || t.minimum_time_us < aggregate.minimum_time_us {
                aggregate.minimum_time_us = t.minimum_time_us;
            }
            aggregate.maximum_time_us = aggregate.maximum_time_us.max(t.maximum_time_us);
            aggregate.total_time_us += t.total_time_us;
            aggregate.counter += t.counter;
        }
        rows.sort_by(|a, b| {
            (a.kind != "HTTP", &a.kind, &a.name).cmp(&(b.kind != "HTTP", &b.kind, &b.name))
        });
        self.rows = rows;
        self.kinds = aggregates
            .iter()
            .filter(|(_, (t, _))| t.counter > 0)
            .map(|(kind, (t, fails))| Row::of(kind, "all", t, *fails, secs))
            .collect();
        self.http = self.kinds.iter().find(|r| r.kind == "HTTP").cloned();
        self.rebuild_metrics();
    }

    /// The flat metric map: `http.p95_ms`, `HTTP GET /v1/me.p95_ms`,
    /// `SIO connect.p99_ms`, `rate.achieved`, `stack.peak_rss_mib`, ...
    pub fn rebuild_metrics(&mut self) {
        let mut m = BTreeMap::new();
        let put_row = |prefix: &str, r: &Row, m: &mut BTreeMap<String, f64>| {
            m.insert(format!("{prefix}.count"), r.count as f64);
            m.insert(format!("{prefix}.errors"), r.fails as f64);
            m.insert(format!("{prefix}.error_pct"), r.error_pct());
            m.insert(format!("{prefix}.rps"), r.rps);
            m.insert(format!("{prefix}.p50_ms"), r.p50_ms);
            m.insert(format!("{prefix}.p95_ms"), r.p95_ms);
            m.insert(format!("{prefix}.p99_ms"), r.p99_ms);
            m.insert(format!("{prefix}.p999_ms"), r.p999_ms);
            m.insert(format!("{prefix}.max_ms"), r.max_ms);
        };
        if let Some(http) = &self.http {
            put_row("http", http, &mut m);
        }
        for row in &self.rows {
            put_row(&row.key(), row, &mut m);
        }
        for row in &self.kinds {
            put_row(&format!("all {}", row.kind), row, &mut m);
        }
        for (k, v) in &self.extras {
            m.insert(k.clone(), *v);
        }
        if let Some(r) = &self.resources {
            m.insert("stack.cpu_cores".into(), r.cpu_cores);
            m.insert("machine.cpu_cores".into(), r.machine_cpu_cores);
            m.insert("stack.peak_rss_mib".into(), r.peak_rss_mib);
            m.insert("generator.cpu_cores".into(), r.generator_cpu_cores);
            m.insert(
                "stack.lifetime_peak_rss_mib".into(),
                r.lifetime_peak_rss_mib,
            );
        }
        if let Some(probe) = &self.probe {
            m.insert(
                "generator.bound".into(),
                f64::from(u8::from(probe.generator_bound)),
            );
        }
        self.metrics = m;
    }

    /// Whether the scenario ran with no error, passed its verification
    /// (when run) and met every threshold.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.verification.as_ref().is_none_or(|v| v.passed)
            && self.thresholds.iter().all(|t| t.passed)
    }
}

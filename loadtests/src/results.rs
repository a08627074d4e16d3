//! One scenario's results: Goose's per-request rows (HTTP and custom),
//! the HTTP aggregate, the achieved rate of paced scenarios, extras
//! (fan-out delivery, queue statistics) and the stack's resources, plus a
//! flat map of named metrics that thresholds and baselines refer to.

use std::collections::BTreeMap;

use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};
use serde::{Deserialize, Serialize};

use crate::{stack::Resources, verify::Verification};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `HTTP`, or the custom method label (`SIO`, `SCHED`, `QUEUE`, `FLOW`).
    pub kind: String,
    pub name: String,
    pub count: u64,
    pub fails: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Absent from runs recorded before it was measured.
    #[serde(default)]
    pub p999_ms: f64,
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

    pub fn error_pct(&self) -> f64 {
        100.0 * self.fails as f64 / (self.count.max(1)) as f64
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdOutcome {
    pub rule: String,
    pub metric: String,
    pub observed: Option<f64>,
    pub passed: bool,
}

/// The other tier's verdicts on the same figures (informational).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtherTier {
    pub tier: String,
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

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ScenarioResult {
    pub scenario: String,
    /// What the scenario implements (seed and section).
    pub implements: String,
    pub carrier: String,
    pub test_plan: String,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub setup: Option<String>,
    pub verification: Option<Verification>,
    pub rows: Vec<Row>,
    pub http: Option<Row>,
    /// One aggregate row per kind (HTTP, SIO, SCHED, QUEUE, FLOW).
    pub kinds: Vec<Row>,
    pub extras: Extras,
    pub resources: Option<Resources>,
    pub metrics: BTreeMap<String, f64>,
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
    pub error: Option<String>,
    /// Stopped by Ctrl-C this many seconds into the attack: the figures
    /// cover only that part of the plan and the run is not judged.
    #[serde(default)]
    pub interrupted: Option<f64>,
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

    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.verification.as_ref().is_none_or(|v| v.passed)
            && self.thresholds.iter().all(|t| t.passed)
    }
}

//! Measurements Goose does not make itself: completions per second of a
//! rate-targeted scenario, latency samples too numerous to hand to Goose one
//! by one (fan-out deliveries), and the worker's Prometheus histograms.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Completions counted per second since the attack started.
#[derive(Default)]
pub struct Throughput {
    seconds: Mutex<BTreeMap<u64, u64>>,
}

impl Throughput {
    /// Counts one completion now, in its whole second since `started` (the
    /// attack's start).
    pub fn record(&self, started: Instant) {
        let second = started.elapsed().as_secs();
        *self
            .seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(second)
            .or_default() += 1;
    }

    /// Mean and minimum completions per second over whole seconds in
    /// `[from, to)`, seconds since the attack started.
    pub fn steady(&self, from: u64, to: u64) -> Option<(f64, f64)> {
        let seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        if to <= from {
            return None;
        }
        let counts: Vec<u64> = (from..to)
            .map(|s| seconds.get(&s).copied().unwrap_or(0))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let min = counts.iter().copied().min().unwrap_or(0);
        Some((total as f64 / counts.len() as f64, min as f64))
    }

    /// Every completion counted so far.
    pub fn total(&self) -> u64 {
        self.seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Samples {
    micros: Mutex<Vec<u32>>,
}

impl Samples {
    /// Adds one latency.
    pub fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u32::MAX as u128) as u32;
        self.micros
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(us);
    }

    /// Adds latencies already in microseconds.
    pub fn record_many(&self, latencies: &[u32]) {
        self.micros
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(latencies);
    }

    /// At most `max` samples, evenly spaced (to hand to Goose).
    pub fn sampled(&self, max: usize) -> Vec<Duration> {
        let v = self.micros.lock().unwrap_or_else(|p| p.into_inner());
        let step = v.len().div_ceil(max.max(1)).max(1);
        v.iter()
            .step_by(step)
            .map(|us| Duration::from_micros(u64::from(*us)))
            .collect()
    }

    /// The percentiles of every sample so far; `None` when there is none.
    pub fn summary(&self) -> Option<Distribution> {
        let mut v = self
            .micros
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Distribution::of(&mut v)
    }
}

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Distribution {
    /// Number of samples.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest sample, ms.
    pub max_ms: f64,
}

impl Distribution {
    /// Nearest-rank percentiles of `micros` (latencies in microseconds,
    /// sorted in place); `None` when it is empty.
    pub fn of(micros: &mut [u32]) -> Option<Distribution> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let at = |p: f64| {
            let i = ((micros.len() as f64 - 1.0) * p).round() as usize;
            micros[i.min(micros.len() - 1)] as f64 / 1000.0
        };
        Some(Distribution {
            count: micros.len() as u64,
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: micros[micros.len() - 1] as f64 / 1000.0,
        })
    }
}

/// One Prometheus histogram: cumulative bucket counts by upper bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// (upper bound `le`, cumulative count) per bucket, lowest bound first;
    /// `+Inf` is [`f64::INFINITY`].
    pub buckets: Vec<(f64, f64)>,
    /// Number of observations (`_count`).
    pub count: f64,
    /// Sum of the observed values (`_sum`), in the metric's unit.
    pub sum: f64,
}

impl Histogram {
    /// `self - earlier`: the observations made between two scrapes.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, c)| {
                    let before = earlier
                        .buckets
                        .iter()
                        .find(|(l, _)| l == le)
                        .map(|(_, c)| *c)
                        .unwrap_or(0.0);
                    (*le, c - before)
                })
                .collect(),
            count: self.count - earlier.count,
            sum: self.sum - earlier.sum,
        }
    }

    /// The `q` quantile, interpolated within its bucket as Prometheus'
    /// `histogram_quantile` does; seconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let mut previous = (0.0, 0.0);
        for (le, cumulative) in &self.buckets {
            if *cumulative >= rank {
                if le.is_infinite() {
                    return Some(previous.0);
                }
                let in_bucket = cumulative - previous.1;
                let fraction = if in_bucket > 0.0 {
                    (rank - previous.1) / in_bucket
                } else {
                    1.0
                };
                return Some(previous.0 + (le - previous.0) * fraction);
            }
            previous = (*le, *cumulative);
        }
        Some(previous.0)
    }
}

/// Parses the series of `name` (a histogram) whose labels contain
/// `label_filter` (e.g. `queue="sms.send"`; empty for all, summed).
pub fn parse_histogram(text: &str, name: &str, label_filter: &str) -> Histogram {
    let mut buckets: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut h = Histogram::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if !series.contains(label_filter) {
            continue;
        }
        if let Some(rest) = series.strip_prefix(&format!("{name}_bucket")) {
            let Some(le) = rest.split("le=\"").nth(1).and_then(|s| s.split('"').next()) else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let entry = buckets.entry(le.to_string()).or_insert((bound, 0.0));
            entry.1 += value;
        } else if series.starts_with(&format!("{name}_count")) {
            h.count += value;
        } else if series.starts_with(&format!("{name}_sum")) {
            h.sum += value;
        }
    }
    let mut list: Vec<(f64, f64)> = buckets.into_values().collect();
    list.sort_by(|a, b| a.0.total_cmp(&b.0));
    h.buckets = list;
    h
}

/// A service's `/metrics` text (empty when it does not answer).
pub async fn scrape(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Sums every series of a counter or gauge `name` matching `label_filter`.
pub fn parse_value(text: &str, name: &str, label_filter: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let bare = series.split('{').next().unwrap_or(series);
        if bare == name && series.contains(label_filter) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# TYPE job_duration_seconds histogram
job_duration_seconds_bucket{queue=\"sms.send\",le=\"0.005\"} 10
job_duration_seconds_bucket{queue=\"sms.send\",le=\"0.01\"} 90
job_duration_seconds_bucket{queue=\"sms.send\",le=\"0.1\"} 100
job_duration_seconds_bucket{queue=\"sms.send\",le=\"+Inf\"} 100
job_duration_seconds_sum{queue=\"sms.send\"} 0.8
job_duration_seconds_count{queue=\"sms.send\"} 100
jobs_queue_depth{queue=\"sms.send\"} 7
jobs_queue_depth{queue=\"carrier.sim\"} 3
";

    #[test]
    fn histogram_quantiles_interpolate_within_buckets() {
        let h = parse_histogram(SCRAPE, "job_duration_seconds", "queue=\"sms.send\"");
        assert_eq!(h.count, 100.0);
        let p50 = h.quantile(0.5).unwrap_or_default();
        assert!((p50 - 0.0075).abs() < 1e-9, "{p50}");
        let p95 = h.quantile(0.95).unwrap_or_default();
        assert!((p95 - 0.055).abs() < 1e-9, "{p95}");
        assert_eq!(h.since(&h).count, 0.0);
    }

    #[test]
    fn gauges_sum_over_matching_series() {
        assert_eq!(parse_value(SCRAPE, "jobs_queue_depth", ""), Some(10.0));
        assert_eq!(
            parse_value(SCRAPE, "jobs_queue_depth", "carrier.sim"),
            Some(3.0)
        );
    }

    #[test]
    fn distributions_take_nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let d = Distribution::of(&mut v).unwrap_or_else(|| unreachable!());
        assert_eq!(d.count, 100);
        assert_eq!(d.p50_ms, 51.0);
        assert_eq!(d.p99_ms, 99.0);
        assert_eq!(d.max_ms, 100.0);
    }

    #[test]
    fn throughput_is_averaged_over_the_steady_seconds() {
        let t = Throughput::default();
        let started = Instant::now();
        for _ in 0..10 {
            t.record(started);
        }
        assert_eq!(t.steady(0, 1), Some((10.0, 10.0)));
        assert_eq!(t.steady(0, 2), Some((5.0, 0.0)));
    }
}

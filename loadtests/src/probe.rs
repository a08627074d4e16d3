//! The control probe: one light client beside Goose, on a thread and a
//! runtime of its own, sending a few fixed requests at a low fixed rate for
//! the whole attack. Goose's users share one runtime with hundreds of
//! sockets and tasks; under load they time their own scheduling delays as
//! well as the stack's. The probe's percentiles for the same requests are
//! what a client that is not itself overloaded sees, and a run whose Goose
//! figures exceed them beyond [`MARGIN`] is marked generator-bound: its
//! latencies are the generator's as much as the stack's.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    context::{self, Tenant},
    measure::Distribution,
    results::{ProbeVerdict, Row},
};

/// Requests a second the probe sends, round-robin over its requests.
pub const RATE: f64 = 10.0;

/// Goose's p95 for a request may exceed the probe's by this factor plus
/// [`MARGIN_MS`] before the run is called generator-bound.
pub const MARGIN: f64 = 2.0;
/// Milliseconds Goose's p95 may exceed [`MARGIN`] times the probe's before
/// the run is called generator-bound.
pub const MARGIN_MS: f64 = 5.0;

/// Fewer samples than this on either side say nothing about a p95.
const MIN_SAMPLES: u64 = 20;

/// The probe's row kind in reports and the metric map (`PROBE GET /v1/me.p95_ms`).
pub const KIND: &str = "PROBE";

struct Target {
    /// Goose's name for the same request.
    name: &'static str,
    path: String,
    authenticated: bool,
}

/// A running probe; [`Probe::finish`] stops it and returns its rows.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Row>>,
}

impl Probe {
    /// Starts probing `api` as `tenant`'s admin: `GET /health`,
    /// `GET /v1/me`, and a lookup by phone and the timeline of one of its
    /// customers.
    pub fn start(api: &str, tenant: &Tenant) -> anyhow::Result<Probe> {
        let mut targets = vec![
            Target {
                name: "GET /health",
                path: "/health".into(),
                authenticated: false,
            },
            Target {
                name: "GET /v1/me",
                path: "/v1/me".into(),
                authenticated: true,
            },
        ];
        if let Some((id, phone)) = tenant.customers.first() {
            // Answered from the API's cache once warm.
            targets.push(Target {
                name: "GET /v1/customers?phone=",
                path: format!("/v1/customers?phone={}", phone.replace('+', "%2B")),
                authenticated: true,
            });
            // Always a PostgreSQL query: waits for a pool connection like
            // Goose's requests do, so a saturated pool shows here too.
            targets.push(Target {
                name: "GET /v1/customers/{id}/timeline",
                path: format!("/v1/customers/{id}/timeline"),
                authenticated: true,
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (api, admin, stopping) = (api.to_string(), tenant.admin.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || runtime.block_on(probe(api, admin, targets, stopping)))?;
        Ok(Probe { stop, thread })
    }

    /// Stops the probe: one row per request, kind [`KIND`].
    pub fn finish(self) -> Vec<Row> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

async fn probe(
    api: String,
    admin: String,
    targets: Vec<Target>,
    stop: Arc<AtomicBool>,
) -> Vec<Row> {
    let started = Instant::now();
    let mut samples: Vec<(Vec<u32>, u64)> = targets.iter().map(|_| (Vec::new(), 0)).collect();
    let Ok(http) = context::client() else {
        return Vec::new();
    };
    let mut token = context::login(&http, &api, &admin).await.ok();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let target = &targets[next % targets.len()];
        next += 1;
        let mut request = http.get(format!("{api}{}", target.path));
        if target.authenticated {
            match &token {
                Some(token) => request = request.bearer_auth(token),
                None => {
                    token = context::login(&http, &api, &admin).await.ok();
                    continue;
                }
            }
        }
        let sent = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|_| status)
            }
            Err(error) => Err(error),
        };
        let took = sent.elapsed();
        let (micros, fails) = &mut samples[(next - 1) % targets.len()];
        match outcome {
            Ok(status) if status.is_success() => {
                micros.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Ok(status) => {
                *fails += 1;
                if status == reqwest::StatusCode::UNAUTHORIZED {
                    // Expired: log in again before the next authenticated request.
                    token = None;
                }
            }
            Err(_) => *fails += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    targets
        .iter()
        .zip(samples)
        .filter_map(|(target, (mut micros, fails))| {
            let d = Distribution::of(&mut micros)?;
            Some(Row {
                kind: KIND.into(),
                name: target.name.into(),
                count: d.count + fails,
                fails,
                rps: (d.count + fails) as f64 / seconds.max(1e-9),
                p50_ms: d.p50_ms,
                p95_ms: d.p95_ms,
                p99_ms: d.p99_ms,
                p999_ms: d.p999_ms,
                max_ms: d.max_ms,
            })
        })
        .collect()
}

/// How Goose's figures compare with the probe's, request by request
/// (`GET /v1/me: Goose p95 136 ms, probe 16 ms`), and whether any of them
/// is beyond the margin.
pub fn compare(rows: &[Row]) -> Option<ProbeVerdict> {
    let mut bound = false;
    let mut lines = Vec::new();
    for probe in rows.iter().filter(|r| r.kind == KIND) {
        let Some(goose) = rows
            .iter()
            .find(|r| r.kind == "HTTP" && r.name == probe.name)
        else {
            continue;
        };
        if goose.count < MIN_SAMPLES || probe.count < MIN_SAMPLES {
            continue;
        }
        let beyond = goose.p95_ms > MARGIN * probe.p95_ms + MARGIN_MS;
        bound |= beyond;
        lines.push(format!(
            "{}: Goose p95 {:.1} ms, probe p95 {:.1} ms{}",
            probe.name,
            goose.p95_ms,
            probe.p95_ms,
            if beyond { " (beyond the margin)" } else { "" }
        ));
    }
    (!lines.is_empty()).then(|| ProbeVerdict {
        generator_bound: bound,
        comparison: lines.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, name: &str, count: u64, p95_ms: f64) -> Row {
        Row {
            kind: kind.into(),
            name: name.into(),
            count,
            fails: 0,
            rps: 1.0,
            p50_ms: p95_ms / 2.0,
            p95_ms,
            p99_ms: p95_ms,
            p999_ms: p95_ms,
            max_ms: p95_ms,
        }
    }

    #[test]
    fn goose_beyond_twice_the_probe_plus_five_ms_is_generator_bound() {
        let agree = [
            row("HTTP", "GET /v1/me", 500, 24.0),
            row(KIND, "GET /v1/me", 600, 10.0),
        ];
        assert_eq!(compare(&agree).map(|c| c.generator_bound), Some(false));
        let bound = [
            row("HTTP", "GET /v1/me", 500, 136.0),
            row(KIND, "GET /v1/me", 600, 16.0),
            row("HTTP", "GET /health", 500, 2.0),
            row(KIND, "GET /health", 600, 2.0),
        ];
        let verdict = compare(&bound).unwrap();
        assert!(verdict.generator_bound);
        assert!(
            verdict
                .comparison
                .contains("GET /v1/me: Goose p95 136.0 ms, probe p95 16.0 ms (beyond")
        );
        // Too few samples, or nothing to compare: no verdict.
        let thin = [
            row("HTTP", "GET /v1/me", 5, 136.0),
            row(KIND, "GET /v1/me", 600, 16.0),
        ];
        assert!(compare(&thin).is_none());
    }
}

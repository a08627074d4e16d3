//! The process's one Prometheus recorder.
//!
//! `metrics` allows a single global recorder per process; every service in
//! the process (api, realtime and worker run together in `switchboard all`,
//! in tests and in the load suite's stack) records through it and renders
//! it at its own `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) fine enough to tell 1 ms from 2 ms, since the
/// goals are stated in single-digit milliseconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Queue wait can be long (a burst queueing behind itself, a paced campaign),
/// and so can a bulk import: their buckets run from milliseconds to ten minutes.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

/// Installs the recorder on first use and returns a handle to render it.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A full-name match wins over the suffix match.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("job_wait_seconds".into()),
                        QUEUE_WAIT_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("import_duration_seconds".into()),
                        QUEUE_WAIT_BUCKETS,
                    )
                })
                .and_then(|b| {
                    // Lateness behind `run_at`: milliseconds to minutes too.
                    b.set_buckets_for_metric(
                        Matcher::Full("scheduled_call_lag_seconds".into()),
                        QUEUE_WAIT_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // An embedding program may have installed its own recorder; ours
            // then renders only what is recorded through its handle.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

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

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// `handle`'s metrics followed by this process's own (see
/// [`process_metrics`]): what every service answers at `/metrics`.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    text.push_str(&process_metrics());
    text
}

/// The process collector every Prometheus client library exports, under its
/// standard names (the dashboards' memory panel and the memory alerts read
/// `process_resident_memory_bytes`): CPU seconds, resident and virtual
/// memory, open and maximum file descriptors, threads and start time, read
/// from `/proc/self` on each scrape. Where `/proc` is not there (not Linux),
/// nothing is written. In `switchboard all` the three services share one
/// process, so they report the same figures.
pub fn process_metrics() -> String {
    let Some(process) = read_process() else {
        return String::new();
    };
    let rows: [(&str, &str, &str, f64); 7] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            process.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            process.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            process.virtual_bytes,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            process.open_fds,
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            process.max_fds,
        ),
        (
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            process.threads,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            process.start_time_seconds,
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in rows {
        if value.is_finite() {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
    }
    text
}

/// Linux's clock tick for `/proc/<pid>/stat` times (`USER_HZ`), fixed at 100
/// on every architecture Linux exports to user space.
const USER_HZ: f64 = 100.0;

struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: f64,
    threads: f64,
    start_time_seconds: f64,
}

fn read_process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // the fields that follow start after its closing parenthesis, at field 3.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let value: f64 = line
            .get(key.len()..)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(value * 1024.0)
    };
    let boot_time: Option<f64> = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok());
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.get("Max open files".len()..)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(f64::NAN);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(f64::NAN, |d| d.count() as f64);
    Some(Process {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        resident_bytes: kib("VmRSS:")?,
        virtual_bytes: kib("VmSize:")?,
        open_fds,
        max_fds,
        threads: field(20)?,
        start_time_seconds: boot_time
            .zip(field(22))
            .map_or(f64::NAN, |(boot, ticks)| boot + ticks / USER_HZ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_reports_its_memory_cpu_fds_and_threads() {
        // Hold 64 MiB resident so the figure has something to show.
        let ballast = vec![1u8; 64 << 20];
        let text = process_metrics();
        assert!(value(&text, "process_resident_memory_bytes") >= (64 << 20) as f64);
        assert!(
            value(&text, "process_virtual_memory_bytes")
                >= value(&text, "process_resident_memory_bytes")
        );
        assert!(value(&text, "process_cpu_seconds_total") >= 0.0);
        assert!(value(&text, "process_open_fds") >= 3.0);
        assert!(value(&text, "process_max_fds") >= value(&text, "process_open_fds"));
        assert!(value(&text, "process_threads") >= 1.0);
        let started = value(&text, "process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        drop(ballast);
    }
}

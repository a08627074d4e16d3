//! The stack under test as a child process, so its CPU time and memory are
//! its own and can be read from `/proc/<pid>`.
//!
//! The parent re-executes its own binary as `switchboard-load __stack`,
//! which runs the same library code as `switchboard all` (api + realtime +
//! worker). The child is put in its own process group, so a Ctrl-C at the
//! terminal stops the load (Goose handles it) but not the stack mid-run; it
//! stops on SIGTERM, or when its stdin closes because the parent died.
//!
//! The child binds port 0 for each service itself and writes the addresses
//! it got to a file the parent names: ports picked by the parent and bound
//! later by the child could be taken in between, by any other socket on the
//! machine (a parallel test's stack, an outbound connection).

use std::{
    io::ErrorKind,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    io::AsyncReadExt,
    process::{Child, Command},
};

/// The hidden subcommand that runs the stack.
pub const STACK_SUBCOMMAND: &str = "__stack";

/// Who plays the phone network in a spawned stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    /// The stack's own carrier simulator answers calls and messages.
    Simulated,
    /// Nothing is simulated: the suite sends the carrier's callbacks itself.
    External,
}

impl Carrier {
    /// Its `SWITCHBOARD_CARRIER` value: `simulated` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Simulated => "simulated",
            Carrier::External => "external",
        }
    }
}

/// Where the services answer.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    /// The API's base URL.
    pub api: String,
    /// The Socket.IO server's base URL.
    pub realtime: String,
    /// `None` only for a stack given with `--host` whose worker was not
    /// given (`--worker`) or did not answer its `/health`; a stack the suite
    /// starts is not ready until its worker is.
    pub worker: Option<String>,
    /// The URL carrier signatures are computed over (the API's
    /// `SWITCHBOARD_PUBLIC_URL`).
    pub public_url: String,
    /// Who plays the phone network for this stack.
    pub carrier: Carrier,
}

/// A running child stack and its resource sampler.
pub struct Stack {
    child: Child,
    pid: u32,
    /// Where its api, realtime and worker answer (free ports on 127.0.0.1).
    pub endpoints: Endpoints,
    sampler: Arc<Sampler>,
    stop_sampling: Arc<AtomicBool>,
}

/// CPU and memory of the child, sampled every 200 ms.
#[derive(Default)]
struct Sampler {
    peak_rss_kib: AtomicU64,
    window_peak_rss_kib: AtomicU64,
}

/// What the stack used during a measurement window.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Resources {
    /// Average CPU over the window, in cores (1.0 = one core busy).
    pub cpu_cores: f64,
    /// CPU seconds (user + system) spent in the window.
    pub cpu_seconds: f64,
    /// Highest resident set size seen in the window, MiB.
    pub peak_rss_mib: f64,
    /// Highest resident set size since the stack started (VmHWM), MiB.
    pub lifetime_peak_rss_mib: f64,
    /// Length of the window, seconds.
    pub window_seconds: f64,
    /// The whole machine's CPU use over the window (PostgreSQL, Redis and
    /// the load generator included), in cores: saturation shows here.
    pub machine_cpu_cores: f64,
    /// The load generator's own CPU over the window (this process: Goose's
    /// users, their sockets and the probe), in cores.
    #[serde(default)]
    pub generator_cpu_cores: f64,
}

/// A measurement window opened with [`Stack::window`].
pub struct Window {
    started: Instant,
    cpu_ticks: u64,
    generator_cpu_ticks: u64,
    machine_busy_ticks: u64,
}

/// The last lines of the stack's log, with where the whole of it is.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("(log: {}, last lines:)\n{tail}", log.display())
}

/// How long a stack may take to bind its addresses and say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The addresses the child bound, as it writes them for the parent.
#[derive(Debug, Serialize, Deserialize)]
struct Bound {
    api: SocketAddr,
    realtime: SocketAddr,
    worker: SocketAddr,
}

/// Asks `attempt` every `every` until it answers `Ok(Ok(value))`. Fails
/// with the log's tail when the child exits or `deadline` passes first;
/// `Ok(Err(last))` is "not yet" and says what it saw, for that error, and
/// `Err` fails at once.
async fn poll<T, Fut>(
    child: &mut Child,
    log: &Path,
    deadline: Instant,
    every: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the stack exited ({status}) before it was ready:\n{}",
                log_tail(log)
            );
        }
        let last = match attempt().await? {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if Instant::now() > deadline {
            bail!(
                "{what} within {} s; {last}\n{}",
                READY_WITHIN.as_secs(),
                log_tail(log)
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// The addresses the child wrote to `file`, once it has.
async fn read_bound(file: &Path) -> anyhow::Result<Result<Bound, String>> {
    match std::fs::read(file) {
        Ok(bytes) => Ok(Ok(serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", file.display()))?)),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            Ok(Err(format!("{} was not written", file.display())))
        }
        Err(error) => Err(error).context(format!("reading {}", file.display())),
    }
}

/// Whether `url` answers 2xx; if not, what it answered.
async fn answers(http: &reqwest::Client, url: &str) -> anyhow::Result<Result<(), String>> {
    Ok(match http.get(url).send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            Err(format!("it last answered {status} {body}"))
        }
        Err(error) => Err(format!("it last answered {:#}", anyhow::Error::from(error))),
    })
}

impl Stack {
    /// Starts the stack with `carrier` and waits until every service is ready.
    /// The child inherits the environment (`DATABASE_URL`, `REDIS_URL`,
    /// `SWITCHBOARD_FAULT_LATENCY_MS`, ...); its logs go to `log`.
    pub async fn spawn(carrier: Carrier, speed: f64, log: &Path) -> anyhow::Result<Stack> {
        let exe = std::env::current_exe().context("locating the load suite's executable")?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let addrs_file = log.with_extension("addrs");
        match std::fs::remove_file(&addrs_file) {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                return Err(error).context(format!("removing {}", addrs_file.display()));
            }
            _ => {}
        }
        let mut command = Command::new(exe);
        command
            .arg(STACK_SUBCOMMAND)
            .arg(&addrs_file)
            .env("SWITCHBOARD_API_ADDR", "127.0.0.1:0")
            .env("SWITCHBOARD_REALTIME_ADDR", "127.0.0.1:0")
            .env("SWITCHBOARD_WORKER_ADDR", "127.0.0.1:0")
            .env("SWITCHBOARD_CARRIER", carrier.as_str())
            .env("SWITCHBOARD_CARRIER_SPEED", speed.to_string())
            .env(
                "RUST_LOG",
                std::env::var("SWITCHBOARD_LOAD_STACK_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().context("starting the stack")?;
        let pid = child.id().context("the stack exited at once")?;
        let deadline = Instant::now() + READY_WITHIN;
        let bound = poll(
            &mut child,
            log,
            deadline,
            Duration::from_millis(20),
            "the stack did not bind its addresses",
            || read_bound(&addrs_file),
        )
        .await?;
        let api = format!("http://{}", bound.api);
        let mut stack = Stack {
            child,
            pid,
            endpoints: Endpoints {
                public_url: api.clone(),
                api,
                realtime: format!("http://{}", bound.realtime),
                worker: Some(format!("http://{}", bound.worker)),
                carrier,
            },
            sampler: Arc::default(),
            stop_sampling: Arc::new(AtomicBool::new(false)),
        };
        stack.wait_ready(&bound, log, deadline).await?;
        stack.start_sampler();
        Ok(stack)
    }

    /// Waits until every service's `/ready` answers 2xx.
    async fn wait_ready(
        &mut self,
        bound: &Bound,
        log: &Path,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        for addr in [bound.api, bound.realtime, bound.worker] {
            let url = format!("http://{addr}/ready");
            let what = format!("{url} was not ready");
            let every = Duration::from_millis(100);
            poll(&mut self.child, log, deadline, every, &what, || {
                answers(&http, &url)
            })
            .await?;
        }
        Ok(())
    }

    fn start_sampler(&self) {
        let (pid, sampler, stop) = (self.pid, self.sampler.clone(), self.stop_sampling.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    sampler.peak_rss_kib.fetch_max(rss, Ordering::Relaxed);
                    sampler
                        .window_peak_rss_kib
                        .fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Opens a measurement window (CPU and peak memory are read from here).
    pub fn window(&self) -> Window {
        self.sampler.window_peak_rss_kib.store(
            status_kib(self.pid, "VmRSS:").unwrap_or(0),
            Ordering::Relaxed,
        );
        Window {
            started: Instant::now(),
            cpu_ticks: cpu_ticks(self.pid).unwrap_or(0),
            generator_cpu_ticks: cpu_ticks(std::process::id()).unwrap_or(0),
            machine_busy_ticks: machine_busy_ticks().unwrap_or(0),
        }
    }

    /// What the stack used since `window` opened.
    pub fn resources(&self, window: &Window) -> Resources {
        let seconds = window.started.elapsed().as_secs_f64();
        let ticks = cpu_ticks(self.pid)
            .unwrap_or(window.cpu_ticks)
            .saturating_sub(window.cpu_ticks);
        // USER_HZ is 100 on every Linux architecture the kernel exports to userspace.
        let cpu_seconds = ticks as f64 / 100.0;
        Resources {
            cpu_cores: cpu_seconds / seconds.max(1e-9),
            cpu_seconds,
            peak_rss_mib: self.sampler.window_peak_rss_kib.load(Ordering::Relaxed) as f64 / 1024.0,
            lifetime_peak_rss_mib: status_kib(self.pid, "VmHWM:")
                .unwrap_or_else(|| self.sampler.peak_rss_kib.load(Ordering::Relaxed))
                as f64
                / 1024.0,
            window_seconds: seconds,
            machine_cpu_cores: machine_busy_ticks()
                .unwrap_or(window.machine_busy_ticks)
                .saturating_sub(window.machine_busy_ticks) as f64
                / 100.0
                / seconds.max(1e-9),
            generator_cpu_cores: cpu_ticks(std::process::id())
                .unwrap_or(window.generator_cpu_ticks)
                .saturating_sub(window.generator_cpu_ticks) as f64
                / 100.0
                / seconds.max(1e-9),
        }
    }

    /// SIGTERM, then up to 20 s for a graceful drain, then SIGKILL.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_sampling.store(true, Ordering::Relaxed);
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("the stack did not stop within 20 s; killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// user + system time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Busy (non-idle, non-iowait) clock ticks of all CPUs, from `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = fields.iter().take(8).sum();
    Some(total - fields.get(3)? - fields.get(4)?)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The child's side: binds the addresses its environment names (port 0 from
/// [`Stack::spawn`]), writes the ones it got to `addrs_file`, and runs
/// `switchboard::run_all` (api + realtime + worker) on them until SIGTERM or
/// until stdin closes (the parent is gone).
pub async fn run_child(addrs_file: &Path) -> anyhow::Result<()> {
    let mut settings = switchboard_core::Settings::from_env()?;
    let listeners = switchboard::Listeners::bind(&settings).await?;
    let bound = Bound {
        api: listeners.api.local_addr()?,
        realtime: listeners.realtime.local_addr()?,
        worker: listeners.worker.local_addr()?,
    };
    settings.api_addr = bound.api;
    settings.realtime_addr = bound.realtime;
    settings.worker_addr = bound.worker;
    // The carrier simulator calls back here.
    settings.public_url = format!("http://{}", bound.api);
    let settings = Arc::new(settings);
    switchboard::init_tracing(&settings);
    // Written whole, then renamed into place: the parent never reads half.
    let partial = addrs_file.with_extension("addrs.partial");
    std::fs::write(&partial, serde_json::to_vec(&bound)?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, addrs_file)
        .with_context(|| format!("writing {}", addrs_file.display()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let parent_gone = async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        tokio::select! {
            () = switchboard::shutdown_signal() => {},
            () = parent_gone => {},
        }
        let _ = stop_tx.send(true);
    });
    switchboard::run_all(settings, listeners, async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(status_kib(pid, "VmRSS:").unwrap_or(0) > 0);
        assert!(machine_busy_ticks().is_some());
    }
}

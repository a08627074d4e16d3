//! The suite's own summary: printed, and written next to Goose's reports as
//! `summary.json` and `summary.md`.

use std::{fmt::Write as _, path::Path};

use serde::{Deserialize, Serialize};

use crate::{
    baseline::Comparison,
    results::{ScenarioResult, ThresholdOutcome},
};

/// The machine a run was measured on (the load generator shares it with
/// the stack).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    /// CPUs available to the suite.
    pub cores: usize,
    /// Total memory (`MemTotal`), in GiB.
    pub memory_gib: f64,
    /// The CPU's model name, from `/proc/cpuinfo`.
    pub cpu: String,
    /// The Linux kernel release.
    pub kernel: String,
    /// The 1, 5 and 15 minute load averages when the run started.
    pub load_average_before: String,
    /// The 1, 5 and 15 minute load averages after the last scenario.
    pub load_average_after: String,
}

impl Machine {
    /// The machine in one line, as the summary shows it and a baseline
    /// stores it as its `description`.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {:.0} GiB, Linux {}; load generator on the same machine; load average before {} / after {}",
            self.cores,
            self.cpu,
            self.memory_gib,
            self.kernel,
            self.load_average_before,
            self.load_average_after
        )
    }
}

/// A whole run, as `summary.json` holds it and `summary.md` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Summary {
    /// `<UTC start, %Y%m%d-%H%M%S>-<profile>`: the default report
    /// directory's name.
    pub run_id: String,
    /// The `--profile` name.
    pub profile: String,
    /// The `--tier` the rules were judged in: `seed` or `goal`.
    pub tier: String,
    /// When the run started, RFC 3339 (UTC).
    pub started: String,
    /// When the last scenario finished, RFC 3339 (UTC).
    pub finished: String,
    /// The machine the run was measured on.
    pub machine: Machine,
    /// What preparing the database did; `None` against a stack given with
    /// `--host`.
    pub preparation: Option<String>,
    /// Measured with `--no-verify` (development only).
    pub unverified: bool,
    /// Each scenario's result, in the order run.
    pub scenarios: Vec<ScenarioResult>,
    /// The `--baseline` file compared with, if any.
    pub baseline: Option<String>,
    /// Each gated metric against that baseline.
    pub comparisons: Vec<Comparison>,
    /// The run's exit code: `0` pass, `1` error or interrupted, `3`
    /// threshold breach, `4` regression against the baseline.
    pub exit_code: u8,
    /// The exit code in words (`PASS`, `THRESHOLD BREACH`, ...).
    pub verdict: String,
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The machine this runs on, read from `/proc`; `load_before` is the
/// [`load_average`] taken when the run started.
pub fn machine(load_before: String) -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        memory_gib: mem_kib / 1024.0 / 1024.0,
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        load_average_before: load_before,
        load_average_after: load_average(),
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "no samples".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The summary as Markdown (also what the console shows).
pub fn markdown(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Load run {} — profile `{}`, tier `{}`: {}",
        summary.run_id, summary.profile, summary.tier, summary.verdict
    );
    let _ = writeln!(out, "\nMachine: {}.", summary.machine.describe());
    if summary.unverified {
        let _ = writeln!(out, "\n**Unverified run (--no-verify): not a result.**");
    }
    for r in &summary.scenarios {
        let _ = writeln!(out, "\n## {} — {}\n", r.scenario, r.implements);
        if let Some(seconds) = r.interrupted {
            let _ = writeln!(
                out,
                "**Interrupted (Ctrl-C) {seconds:.0} s into the attack:** the figures below cover only that part of the plan `{}`; its rules are shown, not judged.\n",
                r.test_plan
            );
        }
        let _ = writeln!(
            out,
            "Plan `{}`{}, carrier `{}`, {:.0} s.{}",
            r.test_plan,
            r.target_rate
                .map(|t| format!(", target {t:.1} ops/s"))
                .unwrap_or_default(),
            r.carrier,
            r.duration_s,
            r.setup
                .as_ref()
                .map(|s| format!(" Setup: {s}."))
                .unwrap_or_default()
        );
        if let Some(v) = &r.verification {
            let _ = writeln!(
                out,
                "\nVerification: {}",
                if v.passed { "passed" } else { "FAILED" }
            );
            for c in &v.checks {
                let _ = writeln!(
                    out,
                    "- {} {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "\n**Error:** {e}");
        }
        if !r.steps.is_empty() {
            let _ = writeln!(out, "\nBreakpoint steps:\n");
            for step in &r.steps {
                let _ = writeln!(out, "- {step}");
            }
        }
        if !r.rows.is_empty() {
            let _ = writeln!(
                out,
                "\n| kind | transaction | count | rps | p50 ms | p95 ms | p99 ms | max ms | errors |"
            );
            let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
            for row in r.rows.iter().chain(r.kinds.iter()) {
                let name = if row.name == "all" {
                    format!("**all {}**", row.kind)
                } else {
                    row.name.clone()
                };
                table_row(
                    &mut out,
                    &[
                        &row.kind,
                        &name,
                        &row.count,
                        &format!("{:.1}", row.rps),
                        &ms(row.p50_ms),
                        &ms(row.p95_ms),
                        &ms(row.p99_ms),
                        &ms(row.max_ms),
                        &format!("{} ({:.2} %)", row.fails, row.error_pct()),
                    ],
                );
            }
        }
        if let Some(probe) = &r.probe {
            let _ = writeln!(
                out,
                "\nControl probe (one client outside Goose, on its own thread, {} requests/s; `{}` rows): {}. {}",
                crate::probe::RATE,
                crate::probe::KIND,
                probe.comparison,
                if probe.generator_bound {
                    format!(
                        "**Generator-bound**: Goose's p95 exceeds the probe's by more than {}× + {} ms, so Goose's latencies above include the load generator's own delays; the probe's are the stack's.",
                        crate::probe::MARGIN,
                        crate::probe::MARGIN_MS
                    )
                } else {
                    format!(
                        "Goose agrees with the probe within the margin ({}× + {} ms).",
                        crate::probe::MARGIN,
                        crate::probe::MARGIN_MS
                    )
                }
            );
        }
        if !r.extras.is_empty() {
            let extras: Vec<String> = r
                .extras
                .iter()
                .map(|(k, v)| format!("{k} = {}", num(Some(*v))))
                .collect();
            let _ = writeln!(out, "\nAlso measured: {}.", extras.join(", "));
        }
        if let Some(res) = &r.resources {
            let _ = writeln!(
                out,
                "\nStack (child process: api + realtime + worker): CPU {:.2} cores on average ({:.1} CPU-s over {:.0} s), peak RSS {:.0} MiB during the run ({:.0} MiB since start). Load generator (this process): {:.2} cores. Whole machine (PostgreSQL, Redis, the load generator and anything else running): {:.2} of {} cores busy.",
                res.cpu_cores,
                res.cpu_seconds,
                res.window_seconds,
                res.peak_rss_mib,
                res.lifetime_peak_rss_mib,
                res.generator_cpu_cores,
                res.machine_cpu_cores,
                summary.machine.cores
            );
        }
        if !r.thresholds.is_empty() {
            let heading = format!(
                "{} tier{}",
                summary.tier,
                if r.break_found {
                    ", at the breakpoint step that broke: the break, not a breach"
                } else {
                    ""
                }
            );
            threshold_table(&mut out, &heading, &r.thresholds, "**FAIL**");
        }
        if let Some(other) = &r.other_tier {
            let heading = format!(
                "{} tier, same figures; informational, not the exit code",
                other.tier
            );
            threshold_table(&mut out, &heading, &other.thresholds, "fail");
        }
    }
    if let Some(b) = &summary.baseline {
        out.push_str(&comparison_table(b, &summary.comparisons));
    }
    let _ = writeln!(
        out,
        "\nCoordinated omission: paced scenarios (`SCHED` rows) time each operation from its \
         intended start on a fixed schedule, so a stall counts against every operation it \
         delays; closed-model scenarios (think times) report service time as a user sees it. \
         See the README's \"Load suite\"."
    );
    let _ = writeln!(
        out,
        "\nExit code {}: {}.",
        summary.exit_code, summary.verdict
    );
    out
}

/// The comparisons with a baseline, as a Markdown section.
pub fn comparison_table(baseline: &str, comparisons: &[Comparison]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Against the baseline `{baseline}`\n");
    let _ = writeln!(
        out,
        "| scenario | metric | baseline | now | limit | verdict |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
    for c in comparisons {
        table_row(
            &mut out,
            &[
                &c.scenario,
                &c.metric,
                &num(Some(c.reference)),
                &num(Some(c.now)),
                &num(Some(c.limit)),
                &if c.regressed { "**REGRESSED**" } else { "ok" },
            ],
        );
    }
    let _ = writeln!(out, "\n{}", crate::baseline::samples_rule());
    out
}

/// Writes `summary.json` and `summary.md` (`markdown`) into `dir`, which
/// it creates if missing.
pub fn write(summary: &Summary, markdown: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(summary)? + "\n",
    )?;
    std::fs::write(dir.join("summary.md"), markdown)?;
    Ok(())
}

/// A Markdown table of threshold verdicts under `| threshold (heading) |`.
fn threshold_table(out: &mut String, heading: &str, rules: &[ThresholdOutcome], failed: &str) {
    let _ = writeln!(out, "\n| threshold ({heading}) | observed | verdict |");
    let _ = writeln!(out, "|---|---:|---|");
    for t in rules {
        let verdict = if t.passed { "pass" } else { failed };
        table_row(out, &[&t.rule, &num(t.observed), &verdict]);
    }
}

/// One row of a Markdown table.
fn table_row(out: &mut String, cells: &[&dyn std::fmt::Display]) {
    out.push('|');
    for cell in cells {
        let _ = write!(out, " {cell} |");
    }
    out.push('\n');
}

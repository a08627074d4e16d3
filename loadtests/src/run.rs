//! The job: prepare, then for each scenario start a stack (unless one is
//! given), verify it, set up, attack with Goose, collect, judge; then the
//! summary, the reports, the baseline, and the exit code.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use goose::{GooseError, config::GooseConfiguration, prelude::*};

use crate::{
    baseline::{self, Baseline},
    cli::{Cli, SeedSize},
    context::{self, RunContext},
    probe::{self, Probe},
    profile::{Profile, Shape},
    report::{self, Summary},
    results::{Extras, ScenarioResult, ThresholdOutcome},
    scenarios::{LoadScenario, Run, Scenario},
    stack::{Carrier, Endpoints, Stack},
    thresholds,
    verify::verify,
};

/// Exit code: pass (no error, threshold breach or regression).
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (preparing, running, verifying or reporting
/// failed), a run unverified (`--no-verify`) or interrupted by Ctrl-C, or
/// no finished run left to judge or record.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: bad usage: arguments refused, or a baseline or finished
/// run's summary that cannot be read or does not fit (another profile or
/// tier, no shared metric).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a threshold rule failed (for `breakpoint`, only at × 1).
pub const EXIT_BREACH: u8 = 3;
/// Exit code: a metric regressed against `--baseline`.
pub const EXIT_REGRESSION: u8 = 4;

/// What a seed of the given size writes.
fn seed_params(size: SeedSize) -> switchboard::seed::SeedParams {
    let base = switchboard::seed::SeedParams::default();
    match size {
        SeedSize::Small => switchboard::seed::SeedParams {
            customers: 1_000,
            calls: 5_000,
            messages: 5_000,
            voicemails: 200,
            ..base
        },
        SeedSize::Default => base,
        SeedSize::Large => switchboard::seed::SeedParams {
            customers: 100_000,
            calls: 1_000_000,
            messages: 200_000,
            voicemails: 10_000,
            ..base
        },
    }
}

/// Creates, migrates and seeds the database the spawned stacks will use.
async fn prepare(size: SeedSize) -> anyhow::Result<String> {
    let settings = switchboard_core::Settings::from_env().context("reading the settings")?;
    let started = Instant::now();
    let pool = switchboard_core::db::migrate(&settings)
        .await
        .context("creating/migrating the database (is PostgreSQL running? see DATABASE_URL)")?;
    let report = switchboard::seed::run(&pool, &settings, &seed_params(size), false, false)
        .await
        .context("seeding the demo data")?;
    pool.close().await;
    Ok(match report.rows {
        Some(rows) => format!(
            "database migrated and seeded: {rows} rows in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        None => "database migrated; demo data already present".to_string(),
    })
}

/// With autovacuum off (this project's CI machine runs PostgreSQL so), the
/// dead rows every earlier run left in the database it owns would be in
/// the way of the next one, which no production server with its default
/// autovacuum would let happen: vacuum and analyse before each scenario so
/// every run starts from the state such a server keeps. Returns how long
/// it took, or `None` when autovacuum is on.
async fn vacuum_if_autovacuum_is_off() -> anyhow::Result<Option<f64>> {
    let settings = switchboard_core::Settings::from_env().context("reading the settings")?;
    let db = switchboard_core::db::connect(&settings).await?;
    let autovacuum: String = sqlx::query_scalar("SHOW autovacuum").fetch_one(&db).await?;
    if autovacuum == "on" {
        db.close().await;
        return Ok(None);
    }
    let started = Instant::now();
    sqlx::query("VACUUM (ANALYZE)").execute(&db).await?;
    db.close().await;
    Ok(Some(started.elapsed().as_secs_f64()))
}

/// What autovacuum's analyse half does on a default server, while a
/// scenario runs against a PostgreSQL that has it off: every
/// [`AutoAnalyze::EVERY`], each table changed by more than 50 rows + 10 % of
/// its size since its last analyse (autovacuum's default thresholds) is
/// analysed. Without it a table that was empty when the run began keeps
/// statistics saying so, and every cached plan over it stays the one made
/// for an empty table: a goal-tier scheduling run spent most of
/// PostgreSQL's time in sequential scans of `scheduled_call_attempts`
/// (11 ms per scheduled call's JSON at 21 000 rows) for that reason alone.
/// Stops when dropped.
struct AutoAnalyze {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl AutoAnalyze {
    /// Autovacuum's default naptime is a minute; a scenario is often only
    /// one long, so half that.
    const EVERY: Duration = Duration::from_secs(30);

    fn start() -> AutoAnalyze {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        tokio::spawn(async move {
            let Ok(settings) = switchboard_core::Settings::from_env() else {
                return;
            };
            let Ok(db) = switchboard_core::db::connect(&settings).await else {
                return;
            };
            let mut next = Instant::now() + Self::EVERY;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if Instant::now() < next {
                    continue;
                }
                next = Instant::now() + Self::EVERY;
                if let Err(error) = Self::pass(&db).await {
                    eprintln!("  analysing changed tables: {error:#}");
                }
            }
            db.close().await;
        });
        AutoAnalyze { stop }
    }

    async fn pass(db: &sqlx::PgPool) -> anyhow::Result<()> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT format('%I.%I', s.schemaname, s.relname)
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)",
        )
        .fetch_all(db)
        .await?;
        for table in tables {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(db)
                .await?;
        }
        Ok(())
    }
}

impl Drop for AutoAnalyze {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How much faster than real telephony the simulator plays: the
/// scenario's speed unless `SWITCHBOARD_CARRIER_SPEED` says otherwise.
fn carrier_speed(scenario: &dyn LoadScenario) -> f64 {
    std::env::var("SWITCHBOARD_CARRIER_SPEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| scenario.about().carrier_speed)
}

/// Everything one scenario run needs to know.
struct Plan<'a> {
    cli: &'a Cli,
    scenario: Scenario,
    shape: Shape,
    dir: PathBuf,
    verify: bool,
}

/// Runs one scenario end to end. Errors become the result's `error`.
async fn run_scenario(plan: Plan<'_>) -> ScenarioResult {
    let mut result = ScenarioResult {
        scenario: plan.scenario.name().to_string(),
        implements: plan.scenario.about().implements.to_string(),
        test_plan: plan.shape.test_plan(),
        target_rate: plan.shape.rate,
        ..Default::default()
    };
    let mut autoanalyze = None;
    let stack = if plan.cli.host.is_some() {
        None
    } else {
        match vacuum_if_autovacuum_is_off().await {
            Ok(Some(took)) => {
                println!(
                    "  autovacuum is off on this PostgreSQL: vacuumed and analysed the database first ({took:.1} s); \
                     tables analysed as autovacuum would during the run"
                );
                autoanalyze = Some(AutoAnalyze::start());
            }
            Ok(None) => {}
            Err(error) => eprintln!("  could not check or vacuum the database: {error:#}"),
        }
        let spec = plan.scenario.spec();
        println!(
            "  starting the stack (carrier {}) ...",
            spec.about().carrier.as_str()
        );
        match Stack::spawn(
            spec.about().carrier,
            carrier_speed(spec),
            &plan.dir.join("stack.log"),
        )
        .await
        {
            Ok(stack) => Some(stack),
            Err(e) => {
                result.error = Some(format!("the stack did not start: {e:#}"));
                return result;
            }
        }
    };
    let endpoints = match &stack {
        Some(stack) => stack.endpoints.clone(),
        None => given_endpoints(plan.cli).await,
    };
    result.carrier = endpoints.carrier.as_str().to_string();
    if endpoints.worker.is_none() {
        println!(
            "  note: no worker answers (its /health): SMS delivery and queues cannot be measured"
        );
    }
    let outcome = measure(&plan, &endpoints, stack.as_ref(), &mut result).await;
    if let Err(e) = outcome {
        result.error = Some(format!("{e:#}"));
    }
    drop(autoanalyze);
    if let Some(stack) = stack
        && let Err(e) = stack.stop().await
    {
        eprintln!("  stopping the stack: {e:#}");
    }
    // A scenario that was not measured has nothing to judge: its error says why.
    if result.error.is_none() {
        thresholds::judge(&mut result, plan.scenario, plan.cli.tier, plan.shape.users);
        thresholds::judge_other_tier(
            &mut result,
            plan.scenario,
            plan.cli.profile(),
            plan.cli.tier,
            plan.shape.users,
        );
    }
    result
}

async fn given_endpoints(cli: &Cli) -> Endpoints {
    let api = cli
        .host
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let mut worker = cli
        .worker
        .clone()
        .map(|w| w.trim_end_matches('/').to_string());
    if let Some(w) = worker.clone() {
        let healthy = match context::client() {
            Ok(http) => http
                .get(format!("{w}/health"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false),
            Err(_) => false,
        };
        if !healthy {
            worker = None;
        }
    }
    Endpoints {
        public_url: std::env::var("SWITCHBOARD_PUBLIC_URL").unwrap_or_else(|_| api.clone()),
        api,
        realtime: cli
            .realtime
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        worker,
        carrier: if cli.external_carrier {
            Carrier::External
        } else {
            Carrier::Simulated
        },
    }
}

async fn measure(
    plan: &Plan<'_>,
    endpoints: &Endpoints,
    stack: Option<&Stack>,
    result: &mut ScenarioResult,
) -> anyhow::Result<()> {
    let tenants = context::tenants(&endpoints.api)
        .await
        .context("reading the demo tenants from the API")?;
    if plan.verify {
        let verification = verify(endpoints, &tenants[0]).await;
        for check in &verification.checks {
            println!(
                "  verify {} {} ({} ms): {}",
                if check.passed { "PASS" } else { "FAIL" },
                check.name,
                check.millis,
                check.detail
            );
        }
        let passed = verification.passed;
        result.verification = Some(verification);
        if !passed && !plan.cli.no_verify {
            anyhow::bail!("verification failed: the target is not measured");
        }
    }
    let ctx = Arc::new(RunContext {
        endpoints: endpoints.clone(),
        tenants,
        shape: plan.shape.clone(),
        started: Instant::now(),
        extra: RwLock::new(None),
        throughput: Default::default(),
        requests: None,
    });
    let spec = plan.scenario.spec();
    let open_model = spec.about().open_model;
    let setup_started = chrono::Utc::now();
    let run = |ctx| Run {
        ctx,
        own_stack: stack.is_some(),
        profile: plan.cli.profile(),
        since: setup_started,
    };
    let setup = spec.setup(&run(&ctx)).await?;
    result.setup = setup.note;
    if let Some(setup) = &result.setup {
        println!("  setup: {setup}");
    }
    // The attack's clock starts now (pacing and steady windows use it).
    let ctx = Arc::new(RunContext {
        started: Instant::now(),
        endpoints: ctx.endpoints.clone(),
        tenants: ctx.tenants.clone(),
        shape: ctx.shape.clone(),
        extra: RwLock::new(ctx.extra.read().unwrap_or_else(|p| p.into_inner()).clone()),
        throughput: Default::default(),
        requests: (open_model && plan.shape.rate.is_some()).then(Default::default),
    });
    context::install(ctx.clone());
    let probe = match Probe::start(&ctx.endpoints.api, &ctx.tenants[0]) {
        Ok(probe) => Some(probe),
        Err(error) => {
            eprintln!("  the control probe did not start: {error:#}");
            None
        }
    };
    let window = stack.map(Stack::window);
    println!(
        "  attacking: plan {} {}",
        plan.shape.test_plan(),
        plan.shape
            .rate
            .map(|r| if open_model {
                format!("at {r:.1} requests/s (open model)")
            } else {
                format!("at {r:.1} ops/s")
            })
            .unwrap_or_default()
    );
    let metrics = attack(plan).await;
    let probed = probe.map(Probe::finish).unwrap_or_default();
    if let Some(undo) = setup.undo
        && let Err(error) = undo.await
    {
        eprintln!("  teardown: {error:#}");
    }
    if goose::is_killswitch_triggered() {
        // Ctrl-C: Goose stopped early and returns what it had. The report
        // shows it, marked partial, and the run is never judged on it (a
        // two-hour profile stopped after 15 minutes still tells what those
        // minutes measured).
        let seconds = ctx.started.elapsed().as_secs_f64();
        println!("  interrupted (Ctrl-C) {seconds:.0} s into the attack: a partial report follows");
        result.interrupted = Some(seconds);
    }
    if let (Some(stack), Some(window)) = (stack, &window) {
        result.resources = Some(stack.resources(window));
    }
    collect_rate(spec, &ctx, &mut result.extras);
    spec.finish(&run(&ctx), &mut result.extras).await;
    let metrics = metrics?;
    result.absorb(&metrics);
    spec.read_rows(result);
    result.rows.extend(probed);
    result.probe = probe::compare(&result.rows);
    result.rebuild_metrics();
    result.reports = ["report.html", "report.json", "report.md"]
        .iter()
        .map(|f| plan.dir.join(f).display().to_string())
        .collect();
    Ok(())
}

/// What the run's rate target counts, over the steady window: HTTP
/// answers for an open-model scenario, completed operations for a paced one.
fn collect_rate(scenario: &dyn LoadScenario, ctx: &RunContext, extras: &mut Extras) {
    let completions = match &ctx.requests {
        Some(requests) => requests,
        None if scenario.about().paced => &ctx.throughput,
        None => return,
    };
    let (from, to) = ctx.shape.steady_window();
    if let Some((mean, min)) = completions.steady(from, to) {
        extras.insert("rate.achieved".into(), mean);
        extras.insert("rate.min_second".into(), min);
    }
    extras.insert("rate.completed".into(), completions.total() as f64);
}

/// The Goose attack for one scenario.
async fn attack(plan: &Plan<'_>) -> anyhow::Result<GooseMetrics> {
    std::fs::create_dir_all(&plan.dir)?;
    let file = |name: &str| plan.dir.join(name).display().to_string();
    let host = context::current().endpoints.api.clone();
    let mut args: Vec<String> = vec![
        "switchboard-load".into(),
        "--host".into(),
        host,
        "--report-file".into(),
        file("report.html"),
        "--report-file".into(),
        file("report.json"),
        "--report-file".into(),
        file("report.md"),
        "--no-print-metrics".into(),
        // No telnet controller: several suites may run on one machine.
        "--no-telnet".into(),
        "--quiet".into(),
        "--timeout".into(),
        "30".into(),
    ];
    let spec = plan.scenario.spec();
    args.extend(spec.users_args(&plan.shape));
    let config = GooseConfiguration::try_parse_from_args(&args)?;
    let scenario = spec.goose(&plan.shape);
    goose::reset_killswitch();
    let outcome = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario)
        .execute()
        .await;
    match outcome {
        Ok(metrics) => Ok(metrics),
        Err(GooseError::ThresholdsFailed { metrics, .. }) => Ok(*metrics.0),
        Err(e) => Err(anyhow::anyhow!("the Goose attack failed: {e}")),
    }
}

trait ParseArgs: Sized {
    fn try_parse_from_args(args: &[String]) -> anyhow::Result<Self>;
}

impl ParseArgs for GooseConfiguration {
    fn try_parse_from_args(args: &[String]) -> anyhow::Result<Self> {
        use clap::Parser;
        GooseConfiguration::try_parse_from(args).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Breakpoint: the nominal shape scaled up step by step (30 s each) until a
/// threshold breaks; reports the last step that held and the first that
/// broke.
async fn breakpoint(cli: &Cli, scenario: Scenario, dir: &Path) -> ScenarioResult {
    const FACTORS: [f64; 8] = [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0];
    let nominal = scenario.shape(Profile::Average, cli.tier);
    let mut last_pass: Option<(f64, ScenarioResult)> = None;
    // Where the other tier's rules (informational) first broke, and which.
    let mut other_broke: Option<(f64, String)> = None;
    // One line per step, kept in the result (the passing steps' own
    // results are not).
    let mut steps: Vec<String> = Vec::new();
    for (i, factor) in FACTORS.iter().enumerate() {
        let mut step = nominal.scaled(*factor);
        step.ramp = Duration::from_secs(5);
        step.steady = Duration::from_secs(30);
        step.down = Duration::from_secs(2);
        println!(
            "  breakpoint step {}: ×{factor} ({} users{})",
            i + 1,
            step.users,
            step.rate
                .map(|r| format!(", {r:.0} ops/s"))
                .unwrap_or_default()
        );
        let mut result = run_scenario(Plan {
            cli,
            scenario,
            shape: step.clone(),
            dir: dir.join(format!("step-{}", i + 1)),
            verify: i == 0,
        })
        .await;
        let line = step_line(*factor, step.users, &result);
        println!("    {line}");
        steps.push(line);
        if other_broke.is_none()
            && let Some(other) = &result.other_tier
            && other.thresholds.iter().any(|t| !t.passed)
        {
            let failed: Vec<String> = broken(&other.thresholds).collect();
            other_broke = Some((*factor, failed.join("; ")));
        }
        if !result.passed() {
            let failed: Vec<String> = broken(&result.thresholds)
                .chain(result.error.clone())
                .collect();
            result
                .extras
                .insert("breakpoint.broke_at_factor".into(), *factor);
            result
                .extras
                .insert("breakpoint.broke_at_users".into(), step.users as f64);
            if let Some(rate) = step.rate {
                result
                    .extras
                    .insert("breakpoint.broke_at_rate".into(), rate);
            }
            if let Some((f, _)) = &last_pass {
                result
                    .extras
                    .insert("breakpoint.last_pass_factor".into(), *f);
            }
            result.setup = Some(format!(
                "broke at ×{factor} ({} users{}): {}",
                step.users,
                step.rate
                    .map(|r| format!(", {r:.0} ops/s"))
                    .unwrap_or_default(),
                failed.join("; ")
            ));
            note_other_tier(&mut result, cli, &other_broke);
            result.steps = steps;
            result.rebuild_metrics();
            // A breakpoint run finds the break: that is its result, not a
            // breach, unless it broke at nominal load. The failed rules keep
            // their verdicts, so the summary shows which ones broke.
            result.break_found = i > 0;
            return result;
        }
        last_pass = Some((*factor, result));
    }
    let (factor, mut result) = last_pass.unwrap_or_default();
    result.setup = Some(format!("no threshold broke up to ×{factor}"));
    result
        .extras
        .insert("breakpoint.last_pass_factor".into(), factor);
    note_other_tier(&mut result, cli, &other_broke);
    result.steps = steps;
    result.rebuild_metrics();
    result
}

/// The rules that broke, each with what was observed.
fn broken(outcomes: &[ThresholdOutcome]) -> impl Iterator<Item = String> + '_ {
    outcomes
        .iter()
        .filter(|t| !t.passed)
        .map(|t| format!("{} (observed {:?})", t.rule, t.observed))
}

/// A breakpoint step in one line: its load, the figures its thresholds
/// read, and whether it held.
fn step_line(factor: f64, users: usize, r: &ScenarioResult) -> String {
    let v = |key: &str| {
        r.metrics
            .get(key)
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    if let Some(error) = &r.error {
        return format!("×{factor} ({users} users): not measured: {error}");
    }
    format!(
        "×{factor} ({users} users): HTTP {} requests, p50/p95/p99 {}/{}/{} ms, {} errors; \
         SIO p95 {} ms, {} errors; QUEUE p95 {} ms, {} errors; stack {} cores, peak RSS {} MiB; \
         generator {} cores{}; machine {} of its cores busy; {}",
        v("http.count"),
        v("http.p50_ms"),
        v("http.p95_ms"),
        v("http.p99_ms"),
        v("http.errors"),
        v("all SIO.p95_ms"),
        v("all SIO.errors"),
        v("all QUEUE.p95_ms"),
        v("all QUEUE.errors"),
        v("stack.cpu_cores"),
        v("stack.peak_rss_mib"),
        v("generator.cpu_cores"),
        if r.probe.as_ref().is_some_and(|p| p.generator_bound) {
            " (generator-bound)"
        } else {
            ""
        },
        v("machine.cpu_cores"),
        if r.passed() { "held" } else { "broke" }
    )
}

/// Adds where the other tier's rules first broke to a breakpoint result.
fn note_other_tier(result: &mut ScenarioResult, cli: &Cli, other_broke: &Option<(f64, String)>) {
    let Some((factor, failed)) = other_broke else {
        return;
    };
    let other = cli.tier.other().name();
    result
        .extras
        .insert(format!("breakpoint.{other}_broke_at_factor"), *factor);
    let setup = result.setup.take().unwrap_or_default();
    result.setup = Some(format!(
        "{setup}; the {other} tier's rules (informational) first broke at ×{factor}: {failed}"
    ));
}

/// The summaries of finished runs, without the runs that failed (their
/// figures measure nothing).
fn finished_runs(files: &[PathBuf]) -> anyhow::Result<Vec<Summary>> {
    let mut runs = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let summary: Summary =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        if summary.exit_code == EXIT_ERROR {
            println!(
                "left out: {} (that run failed: {})",
                file.display(),
                summary.verdict
            );
        } else {
            runs.push(summary);
        }
    }
    Ok(runs)
}

/// `--record`: no load. The finished runs added to `--save-baseline`.
fn record(cli: &Cli) -> u8 {
    let Some(path) = &cli.save_baseline else {
        eprintln!("switchboard-load: --record needs --save-baseline");
        return EXIT_USAGE;
    };
    let runs = match finished_runs(&cli.record) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("switchboard-load: {e:#}");
            return EXIT_USAGE;
        }
    };
    for run in &runs {
        if let Err(e) = Baseline::save(
            path,
            &run.scenarios,
            &run.profile,
            &run.tier,
            &run.machine.describe(),
            &run.started,
        ) {
            eprintln!("switchboard-load: {e:#}");
            return EXIT_ERROR;
        }
    }
    println!("{} run(s) added to {}", runs.len(), path.display());
    if runs.is_empty() { EXIT_ERROR } else { EXIT_OK }
}

/// `--judge`: no load. The finished runs' summaries, pooled (each metric's
/// median across them), against `--baseline`.
fn judge(cli: &Cli) -> u8 {
    let Some(path) = &cli.baseline else {
        eprintln!("switchboard-load: --judge needs --baseline");
        return EXIT_USAGE;
    };
    let baseline = match Baseline::load(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("switchboard-load: {e:#}");
            return EXIT_USAGE;
        }
    };
    let runs: Vec<_> = match finished_runs(&cli.judge) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("switchboard-load: {e:#}");
            return EXIT_USAGE;
        }
    };
    for run in &runs {
        if let Err(e) = baseline.check_like(path, &run.profile, &run.tier) {
            eprintln!("switchboard-load: {e:#}");
            return EXIT_USAGE;
        }
    }
    let runs: Vec<_> = runs.into_iter().map(|run| run.scenarios).collect();
    if runs.is_empty() {
        eprintln!("switchboard-load: no run left to judge");
        return EXIT_ERROR;
    }
    let comparisons = baseline.compare(&baseline::pooled(&runs));
    if comparisons.is_empty() {
        eprintln!(
            "switchboard-load: the runs judged share no gated metric with {}",
            path.display()
        );
        return EXIT_USAGE;
    }
    print!(
        "{}",
        report::comparison_table(&path.display().to_string(), &comparisons)
    );
    let regressed = comparisons.iter().filter(|c| c.regressed).count();
    println!(
        "\n{} run(s) pooled against {} stored run(s): {}",
        runs.len(),
        baseline.saved.len(),
        if regressed == 0 {
            "no regression".to_string()
        } else {
            format!("{regressed} metric(s) REGRESSED")
        }
    );
    if regressed == 0 {
        EXIT_OK
    } else {
        EXIT_REGRESSION
    }
}

/// The whole job; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    if !cli.judge.is_empty() {
        return judge(&cli);
    }
    if !cli.record.is_empty() {
        return record(&cli);
    }
    let scenarios = match cli.scenarios() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            return EXIT_USAGE;
        }
    };
    let profile = cli.profile();
    // A baseline that cannot be read, or holds another profile or tier, is
    // refused before any load, not after it.
    let stored = cli
        .baseline
        .iter()
        .chain(cli.save_baseline.iter().filter(|path| path.exists()));
    for path in stored {
        if let Err(e) =
            Baseline::load(path).and_then(|b| b.check_like(path, profile.name(), cli.tier.name()))
        {
            eprintln!("switchboard-load: {e:#}");
            return EXIT_USAGE;
        }
    }
    let run_id = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        profile.name()
    );
    let report_dir = cli
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/loadtest").join(&run_id));
    if let Err(e) = std::fs::create_dir_all(&report_dir) {
        eprintln!("switchboard-load: creating {}: {e}", report_dir.display());
        return EXIT_ERROR;
    }
    let started = chrono::Utc::now();
    let load_before = report::load_average();
    println!(
        "switchboard-load: profile {}, tier {}, scenarios {}; reports in {}",
        profile.name(),
        cli.tier.name(),
        scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(","),
        report_dir.display()
    );
    let mut preparation = None;
    if cli.host.is_none() {
        let size = if profile == Profile::Smoke && cli.seed_size == SeedSize::Default {
            SeedSize::Small
        } else {
            cli.seed_size
        };
        match prepare(size).await {
            Ok(done) => {
                println!("{done}");
                preparation = Some(done);
            }
            Err(e) => {
                eprintln!("switchboard-load: {e:#}");
                return EXIT_ERROR;
            }
        }
    }
    let mut results = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let dir = if scenarios.len() > 1 {
            report_dir.join(scenario.name())
        } else {
            report_dir.clone()
        };
        println!("\n== {} ({})", scenario, scenario.about().implements);
        let result = if profile == Profile::Breakpoint {
            breakpoint(&cli, *scenario, &dir).await
        } else {
            run_scenario(Plan {
                cli: &cli,
                scenario: *scenario,
                shape: match cli.rate {
                    Some(rate) if scenario.about().open_model => {
                        scenario.shape(profile, cli.tier).open(rate)
                    }
                    _ => scenario.shape(profile, cli.tier),
                },
                dir,
                verify: i == 0 || cli.host.is_none(),
            })
            .await
        };
        if let Some(error) = &result.error {
            println!("  ERROR: {error}");
        }
        let interrupted = result.interrupted.is_some();
        results.push(result);
        if interrupted {
            // The user asked the run to stop: no further scenario starts.
            break;
        }
    }
    let mut summary = Summary {
        run_id,
        profile: profile.name().to_string(),
        tier: cli.tier.name().to_string(),
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        machine: report::machine(load_before),
        preparation,
        unverified: cli.no_verify,
        scenarios: results,
        baseline: None,
        comparisons: Vec::new(),
        exit_code: 0,
        verdict: String::new(),
    };
    if let Some(path) = &cli.baseline {
        match Baseline::load(path).and_then(|b| {
            b.check_like(path, &summary.profile, &summary.tier)
                .map(|()| b)
        }) {
            Ok(baseline) => {
                summary.baseline = Some(path.display().to_string());
                summary.comparisons = baseline.compare(&summary.scenarios);
            }
            Err(e) => {
                eprintln!("switchboard-load: {e:#}");
                return EXIT_USAGE;
            }
        }
    }
    let (code, verdict) = verdict(&summary);
    summary.exit_code = code;
    summary.verdict = verdict.to_string();
    if let Some(path) = &cli.save_baseline {
        if code == EXIT_ERROR {
            eprintln!(
                "switchboard-load: not saving a baseline from a run that failed or was interrupted"
            );
        } else {
            match Baseline::save(
                path,
                &summary.scenarios,
                &summary.profile,
                &summary.tier,
                &summary.machine.describe(),
                &summary.started,
            ) {
                Ok(b) => println!(
                    "baseline saved to {} ({} run(s) stored)",
                    path.display(),
                    b.saved.len()
                ),
                Err(e) => eprintln!("switchboard-load: {e:#}"),
            }
        }
    }
    let text = report::markdown(&summary);
    println!("\n{text}");
    if let Err(e) = report::write(&summary, &text, &report_dir) {
        eprintln!("switchboard-load: writing the summary: {e:#}");
        return EXIT_ERROR;
    }
    println!("reports: {}", report_dir.display());
    code
}

/// A finished run's exit code and verdict. A run stopped by Ctrl-C is
/// never judged, whatever its partial figures say; a run that failed to run
/// or to verify is an error before it is a regression or a breach.
fn verdict(summary: &Summary) -> (u8, &'static str) {
    let scenarios = &summary.scenarios;
    if scenarios.iter().any(|r| r.interrupted.is_some()) {
        return (
            EXIT_ERROR,
            "INTERRUPTED (Ctrl-C): a partial report, shown and not judged",
        );
    }
    let errored = summary.unverified
        || scenarios
            .iter()
            .any(|r| r.error.is_some() || r.verification.as_ref().is_some_and(|v| !v.passed));
    if errored {
        (
            EXIT_ERROR,
            "ERROR (a scenario failed to run or its target failed verification)",
        )
    } else if summary.comparisons.iter().any(|c| c.regressed) {
        (EXIT_REGRESSION, "REGRESSION against the baseline")
    } else if scenarios
        .iter()
        .any(|r| !r.break_found && r.thresholds.iter().any(|t| !t.passed))
    {
        (EXIT_BREACH, "THRESHOLD BREACH")
    } else {
        (EXIT_OK, "PASS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_run_is_reported_and_never_judged() {
        let passing = ScenarioResult {
            thresholds: vec![crate::results::ThresholdOutcome {
                rule: "HTTP p99 < 2000 ms".into(),
                metric: "http.p99_ms".into(),
                observed: Some(120.0),
                passed: true,
            }],
            ..Default::default()
        };
        let mut summary = Summary {
            scenarios: vec![passing],
            ..Default::default()
        };
        assert_eq!(verdict(&summary).0, EXIT_OK);
        summary.scenarios[0].thresholds[0].passed = false;
        assert_eq!(verdict(&summary).0, EXIT_BREACH);
        summary.scenarios[0].thresholds[0].passed = true;
        summary.scenarios[0].interrupted = Some(900.0);
        let (code, text) = verdict(&summary);
        assert_eq!(code, EXIT_ERROR, "a partial run passed: {text}");
        assert!(text.starts_with("INTERRUPTED"), "{text}");
        let report = report::markdown(&Summary {
            verdict: text.to_string(),
            ..summary
        });
        assert!(
            report.contains("Interrupted (Ctrl-C) 900 s into the attack"),
            "{report}"
        );
    }

    #[test]
    fn a_breakpoint_step_reads_as_one_line() {
        let mut result = ScenarioResult::default();
        result.metrics.insert("http.p95_ms".into(), 12.34);
        let line = step_line(1.5, 45, &result);
        assert!(line.starts_with("×1.5 (45 users): "), "{line}");
        assert!(line.contains("p50/p95/p99 -/12.3/- ms"), "{line}");
        assert!(line.ends_with("held"), "{line}");
        result.error = Some("the stack did not start".into());
        assert!(step_line(1.5, 45, &result).contains("not measured: the stack did not start"));
    }
}

//! `switchboard`: runs a Switchboard service or an admin task.
//! Parsing only; the work lives in the libraries.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard::{Listeners, bind, init_tracing, seed, shutdown_signal};
use switchboard_core::Settings;

/// mimalloc instead of glibc's malloc: in the carrier storm glibc's
/// allocator (`_int_malloc`, `malloc_consolidate`, `free`) was ~9 % of the
/// whole machine, a quarter of the stack's CPU. Against a glibc build of
/// the same tree, mimalloc costs 12 % less stack CPU per callback (115
/// against 131 µs) and holds more memory (peak RSS 159 against 118 MiB);
/// BASELINES.md, 6 December (later).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard telephony/CRM backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (SWITCHBOARD_API_ADDR, default 127.0.0.1:8080).
    Api,
    /// Serve the Socket.IO realtime server (SWITCHBOARD_REALTIME_ADDR).
    Realtime,
    /// Run the queue workers and the carrier simulator (SWITCHBOARD_WORKER_ADDR).
    Worker,
    /// Run api, realtime and worker in one process.
    All,
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Load deterministic demo data (refused in production).
    Seed(SeedArgs),
    /// Inspect and manage the job queues.
    #[command(subcommand)]
    Jobs(JobsCommand),
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Jobs that failed permanently or ran out of attempts.
    #[command(subcommand, name = "dead-letter")]
    DeadLetter(DeadLetterCommand),
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List dead jobs, oldest first (JSON lines with --json).
    List {
        /// Only this queue (e.g. sms.send, webhook.deliver).
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Put dead jobs back on their queues as fresh first attempts.
    Retry {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this dead job.
        #[arg(long)]
        id: Option<uuid::Uuid>,
    },
}

#[derive(clap::Args)]
struct SeedArgs {
    /// Customers to create (split across the two tenants).
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
    /// Historical calls (each with its status events).
    #[arg(long, default_value_t = 100_000)]
    calls: u64,
    /// Historical messages.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Voicemails.
    #[arg(long, default_value_t = 5_000)]
    voicemails: u64,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// History ends at this date (YYYY-MM-DD, UTC); default today.
    #[arg(long)]
    anchor: Option<chrono::NaiveDate>,
    /// Empty every table first (all data, not only the demo tenants).
    #[arg(long)]
    reset: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => Arc::new(settings),
        Err(error) => {
            eprintln!("switchboard: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    match run(cli.command, settings).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchboard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Arc<Settings>) -> anyhow::Result<ExitCode> {
    match command {
        Command::Api => {
            let listener = bind(settings.api_addr, "api").await?;
            switchboard_api::serve(listener, settings, shutdown_signal()).await?;
        }
        Command::Realtime => {
            let listener = bind(settings.realtime_addr, "realtime").await?;
            switchboard_realtime::serve(listener, settings, shutdown_signal()).await?;
        }
        Command::Worker => {
            let listener = bind(settings.worker_addr, "worker").await?;
            switchboard_worker::serve(listener, settings, shutdown_signal()).await?;
        }
        Command::All => {
            let listeners = Listeners::bind(&settings).await?;
            switchboard::run_all(settings, listeners, shutdown_signal()).await?;
        }
        Command::Jobs(JobsCommand::DeadLetter(command)) => {
            return dead_letter(command, &settings).await;
        }
        Command::Migrate => {
            let pool = switchboard_core::db::migrate(&settings).await?;
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await?;
            println!("database ready: {applied} migrations applied");
        }
        Command::Seed(args) => run_seed(args, &settings).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn dead_letter(
    command: DeadLetterCommand,
    settings: &Arc<Settings>,
) -> anyhow::Result<ExitCode> {
    use switchboard_worker::deadletter;
    let db = switchboard_core::db::connect(settings).await?;
    let known = |queue: &Option<String>| match queue {
        Some(q) if !deadletter::QUEUES.contains(&q.as_str()) => Err(anyhow::anyhow!(
            "unknown queue {q:?}; queues: {}",
            deadletter::QUEUES.join(", ")
        )),
        _ => Ok(()),
    };
    match command {
        DeadLetterCommand::List { queue, json } => {
            known(&queue)?;
            let dead = deadletter::list(&db, queue.as_deref()).await?;
            for job in &dead {
                if json {
                    println!("{}", serde_json::to_string(job)?);
                } else {
                    println!(
                        "{}  {:<20} {}  attempts {}  {}: {}\n    {}",
                        job.failed_at.format("%Y-%m-%d %H:%M:%S"),
                        job.queue,
                        job.id,
                        job.attempts,
                        job.kind,
                        job.error,
                        job.job
                    );
                }
            }
            if !json {
                println!("{} dead job(s)", dead.len());
            }
        }
        DeadLetterCommand::Retry { queue, id } => {
            known(&queue)?;
            let count = deadletter::retry(&db, queue.as_deref(), id).await?;
            println!("re-queued {count} dead job(s)");
            if count == 0 && id.is_some() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_seed(args: SeedArgs, settings: &Settings) -> anyhow::Result<()> {
    let pool = switchboard_core::db::migrate(settings)
        .await
        .context("preparing the database")?;
    let params = seed::SeedParams {
        customers: args.customers,
        calls: args.calls,
        messages: args.messages,
        voicemails: args.voicemails,
        seed: args.seed,
        anchor: args
            .anchor
            .unwrap_or_else(|| chrono::Utc::now().date_naive()),
    };
    let report = seed::run(&pool, settings, &params, args.reset, !args.quiet).await?;
    match report.rows {
        Some(rows) => {
            let secs = report.elapsed.as_secs_f64();
            println!(
                "seeded {rows} rows in {secs:.1} s ({:.0} rows/s)",
                rows as f64 / secs.max(1e-9)
            );
        }
        None => {
            println!("already seeded; nothing changed (use --reset to start over)");
            if let Some(existing) = report.existing_params.filter(|p| {
                p.customers != params.customers
                    || p.calls != params.calls
                    || p.messages != params.messages
                    || p.voicemails != params.voicemails
            }) {
                println!(
                    "note: the existing data was seeded with {} customers, {} calls, {} messages, {} voicemails",
                    existing.customers, existing.calls, existing.messages, existing.voicemails
                );
            }
        }
    }
    println!(
        "\nDemo credentials (password for every agent: {}):",
        seed::DEMO_PASSWORD
    );
    for tenant in &report.tenants {
        println!(
            "  {:<7} agents agent01..agent15@{}.example, admin@{}.example  numbers {}..{}",
            tenant.slug,
            tenant.slug,
            tenant.slug,
            tenant.numbers.first().map(String::as_str).unwrap_or("-"),
            tenant.numbers.last().map(String::as_str).unwrap_or("-"),
        );
        println!("          API key {}", tenant.api_key);
        println!("          carrier auth token {}", tenant.carrier_auth_token);
    }
    Ok(())
}

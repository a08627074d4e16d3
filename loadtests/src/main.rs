//! `switchboard-load`: parses arguments and runs the job (see the library).

use std::{path::Path, process::ExitCode};

use clap::Parser;
use switchboard_load::{cli::Cli, run, stack};

/// The same allocator as the `switchboard` binary: this binary runs the
/// stack too (`switchboard-load __stack`), and it is measured as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            return ExitCode::from(run::EXIT_ERROR);
        }
    };
    if std::env::args().nth(1).as_deref() == Some(stack::STACK_SUBCOMMAND) {
        let outcome = match std::env::args_os().nth(2) {
            Some(addrs_file) => runtime.block_on(stack::run_child(Path::new(&addrs_file))),
            None => Err(anyhow::anyhow!(
                "usage: switchboard-load {} <file for the bound addresses>",
                stack::STACK_SUBCOMMAND
            )),
        };
        // The child watches its parent by reading stdin, on a blocking
        // thread that returns only at EOF; dropping the runtime would wait
        // for it. Without this, a stack whose service failed printed why
        // and then stayed up, unready, until the suite gave up on /ready.
        runtime.shutdown_background();
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard-load stack: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { run::EXIT_USAGE } else { 0 });
        }
    };
    ExitCode::from(runtime.block_on(run::run(cli)))
}

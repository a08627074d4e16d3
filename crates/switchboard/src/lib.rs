//! # switchboard
//!
//! The `switchboard` command's library: each subcommand is a function here
//! so the load suite's stack spawner can run exactly what the binary runs.
//!
//! - [`seed`]: deterministic demo data;
//! - [`shutdown_signal`]: SIGTERM / Ctrl-C as a future, for graceful shutdown;
//! - [`init_tracing`]: logs as text or JSON, filtered by `RUST_LOG`.

pub mod seed;

use switchboard_core::Settings;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

/// Installs the global tracing subscriber (`RUST_LOG`, default `info`).
pub fn init_tracing(settings: &Settings) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = if settings.log_json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

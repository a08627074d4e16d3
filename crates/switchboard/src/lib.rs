//! # switchboard
//!
//! The `switchboard` command's library: each subcommand is a function here
//! so the load suite's stack spawner can run exactly what the binary runs.
//!
//! - [`seed`]: deterministic demo data;
//! - [`shutdown_signal`]: SIGTERM / Ctrl-C as a future, for graceful shutdown;
//! - [`init_tracing`]: logs as text or JSON, filtered by `RUST_LOG`;
//! - [`bind`] and [`Listeners`]: the services' addresses, bound before any
//!   service starts;
//! - [`run_all`]: api, realtime and worker in one process.

#![warn(missing_docs)]

pub mod seed;

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use futures::FutureExt;
use switchboard_core::Settings;
use tokio::net::TcpListener;

/// Binds `addr` for `service`. Each command binds before its service starts,
/// so a taken address fails at once and names itself, and a port 0 (the
/// load suite's stack) is known before the services are told their
/// addresses: nothing else can take it in between. Until the service has
/// started, connections wait in the listen backlog rather than being refused.
pub async fn bind(addr: SocketAddr, service: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {service} address {addr}"))
}

/// The three services' listeners, for [`run_all`].
#[derive(Debug)]
pub struct Listeners {
    /// The API's (`SWITCHBOARD_API_ADDR`).
    pub api: TcpListener,
    /// The realtime server's (`SWITCHBOARD_REALTIME_ADDR`).
    pub realtime: TcpListener,
    /// The worker's ops endpoints (`SWITCHBOARD_WORKER_ADDR`).
    pub worker: TcpListener,
}

impl Listeners {
    /// Binds the three addresses `settings` names.
    pub async fn bind(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            api: bind(settings.api_addr, "api").await?,
            realtime: bind(settings.realtime_addr, "realtime").await?,
            worker: bind(settings.worker_addr, "worker").await?,
        })
    }
}

/// Runs the API, the realtime server and the worker in this process, each
/// on its own listener, until `shutdown` resolves; then stops all three
/// gracefully. Fails as soon as one of them fails (the others are stopped).
pub async fn run_all(
    settings: Arc<Settings>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    settings.ensure_production_safe()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
        .boxed()
    };
    let Listeners {
        api,
        realtime,
        worker,
    } = listeners;
    let mut api = tokio::spawn(switchboard_api::serve(api, settings.clone(), signal()));
    let mut realtime = tokio::spawn(switchboard_realtime::serve(
        realtime,
        settings.clone(),
        signal(),
    ));
    let mut worker = tokio::spawn(switchboard_worker::serve(
        worker,
        settings.clone(),
        signal(),
    ));
    let first = tokio::select! {
        () = shutdown => None,
        r = &mut api => Some(("api", r)),
        r = &mut realtime => Some(("realtime", r)),
        r = &mut worker => Some(("worker", r)),
    };
    let _ = stop.send(true);
    let failure = match first {
        Some((name, Ok(Ok(())))) => Some(anyhow::anyhow!("{name} stopped unexpectedly")),
        Some((name, Ok(Err(error)))) => Some(error.context(format!("{name} failed"))),
        Some((name, Err(join))) => Some(anyhow::anyhow!("{name} panicked: {join}")),
        None => None,
    };
    for (name, task) in [("api", api), ("realtime", realtime), ("worker", worker)] {
        if task.is_finished() && failure.is_some() {
            continue;
        }
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(service = name, %error, "stopped with an error"),
            Err(join) => tracing::warn!(service = name, %join, "panicked while stopping"),
        }
    }
    failure.map_or(Ok(()), Err)
}

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

//! # switchboard-realtime
//!
//! The Socket.IO v5 / Engine.IO 4 server (socketioxide) that puts agents'
//! screens live: presence and call/message events.
//!
//! - [`serve`] / [`serve_on`] run it until a shutdown future resolves (the
//!   binary, the tests and the load suite all call them);
//! - [`sockets`]: connect-time JWT auth, rooms `tenant:{id}` / `agent:{id}`,
//!   and the client events (`presence:set`, `call:watch`, `call:unwatch`);
//! - [`relay`]: the Redis event stream the API publishes, turned into emits,
//!   one call's events in `version` order ([`ordering`]); presence follows
//!   calls; heartbeats and the reaper keep presence honest;
//! - [`ops`]: `/health`, `/ready` and `/metrics` on the same port.
//!
//! Several instances behave as one: presence lives in Redis
//! ([`switchboard_core::presence`]), every instance relays every event to its
//! own sockets, and rooms/broadcasts go through the socketioxide-redis
//! adapter.

#![warn(missing_docs)]

pub mod ops;
pub mod ordering;
pub mod relay;
pub mod sessions;
pub mod sockets;
pub mod state;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, routing::get};
use secrecy::ExposeSecret;
use socketioxide::{SocketIo, handler::ConnectHandler};
use socketioxide_redis::{
    RedisAdapter, RedisAdapterConfig, RedisAdapterCtr, drivers::redis::redis_client,
};
use tokio::{net::TcpListener, sync::watch};

use switchboard_core::Settings;

pub use state::{RealtimeConfig, RealtimeState};

/// Builds the state: pools (connecting lazily), token keys, presence store.
pub async fn state(
    settings: Arc<Settings>,
    config: RealtimeConfig,
) -> anyhow::Result<RealtimeState> {
    RealtimeState::new(settings, config).await
}

/// The Redis URL with RESP3 requested, which the adapter's driver needs
/// (it receives pub/sub messages as RESP3 pushes on a shared connection).
fn resp3_url(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// Serves Socket.IO and the ops routes on `listener` until `shutdown`
/// resolves; then stops accepting, disconnects every socket (their agents go
/// offline unless another instance still holds a tab), and drains.
pub async fn serve_on(
    listener: TcpListener,
    state: RealtimeState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = state.settings().clone();
    let client = redis_client::Client::open(resp3_url(settings.redis_url.expose_secret()))
        .context("invalid REDIS_URL")?;
    let adapter = RedisAdapterCtr::new_with_redis_config(
        &client,
        RedisAdapterConfig::new().with_prefix(settings.redis_key("socket.io")),
    )
    .await
    .context("connecting the Socket.IO Redis adapter")?;
    let config = state.config().clone();
    let (layer, io) = SocketIo::builder()
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .max_buffer_size(config.socket_buffer)
        .with_state(state.clone())
        .with_adapter::<RedisAdapter<_>>(adapter)
        .build_layer();
    io.ns(
        "/",
        sockets::on_connect
            .with(sockets::admit)
            .with(sockets::authenticate),
    )
    .await
    .context("initialising the Socket.IO namespace")?;

    // `stop` tells the background tasks and the HTTP server to wind down.
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = [
        tokio::spawn(relay::run(state.clone(), io.clone(), stop_rx.clone())),
        tokio::spawn(relay::heartbeats(
            state.clone(),
            io.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(relay::reaper(state.clone(), stop_rx.clone())),
        tokio::spawn(sessions::watch(state.clone(), io.clone(), stop_rx.clone())),
    ];

    let app = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .with_state(state.clone())
        .layer(layer);

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "realtime listening");

    let closing = {
        let (io, state) = (io.clone(), state.clone());
        async move {
            shutdown.await;
            tracing::info!("realtime shutting down: closing sockets");
            let _ = stop_tx.send(true);
            // Sockets are long-lived: the HTTP server cannot drain until they close.
            let local = state.local_sockets();
            io.close().await;
            // Disconnect handlers may not have run for every socket yet;
            // doing it here is idempotent and makes the presence exact.
            for (sid, identity) in local {
                let _ = state
                    .presence()
                    .disconnect(identity.tenant_id, identity.agent_id, &sid)
                    .await;
            }
        }
    };
    let mut server_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stopped(&mut server_stop).await;
    });
    let mut drain_limit = stop_rx.clone();
    let drain_timeout = config.drain_timeout;
    let serving = async move {
        tokio::select! {
            result = server => result.context("serving realtime"),
            // A polling client or a slow peer must not hold shutdown forever.
            _ = async move {
                stopped(&mut drain_limit).await;
                tokio::time::sleep(drain_timeout).await;
            } => {
                tracing::warn!("realtime drain timed out");
                Ok(())
            }
        }
    };
    let (result, ()) = tokio::join!(serving, closing);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    state.close().await;
    tracing::info!("realtime stopped");
    result
}

/// Resolves once the stop flag is raised (or its sender is gone). Returns
/// nothing, so no borrow of the channel outlives the wait.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// [`stopped`], owning its receiver (for a [`Ticker`](switchboard_core::ticker::Ticker)).
pub(crate) async fn stopped_owned(mut stop: watch::Receiver<bool>) {
    stopped(&mut stop).await;
}

/// Serves Socket.IO on `listener` (the caller binds
/// `settings.realtime_addr`: `switchboard::bind`) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    settings.ensure_production_safe()?;
    let state = state(settings.clone(), RealtimeConfig::default()).await?;
    serve_on(listener, state, shutdown).await
}

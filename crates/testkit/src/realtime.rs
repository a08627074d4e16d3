//! Realtime servers on port 0, beside the API harness: one stopped
//! gracefully, one killed the way a crash would kill it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use switchboard_core::Settings;
use switchboard_realtime::RealtimeConfig;
use tokio::sync::oneshot;

use crate::api::bind_any;

/// Timings short enough for expiry to happen inside a test.
pub fn test_config() -> RealtimeConfig {
    RealtimeConfig {
        heartbeat_interval: Duration::from_millis(150),
        socket_ttl: Duration::from_millis(900),
        // Generous, so a slow CI machine never flushes a gap that is about to fill.
        reorder_window: Duration::from_secs(2),
        ..RealtimeConfig::default()
    }
}

/// A realtime server running on the test's runtime, stopped gracefully on drop.
pub struct RealtimeServer {
    /// The server's address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    /// The serving task, until [`RealtimeServer::stop`] takes it.
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl RealtimeServer {
    /// Starts a server with [`test_config`].
    pub async fn start(settings: Arc<Settings>) -> Self {
        Self::start_with(settings, test_config()).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(settings: Arc<Settings>, config: RealtimeConfig) -> Self {
        let state = switchboard_realtime::state(settings, config)
            .await
            .expect("realtime state");
        let listener = bind_any().await;
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(switchboard_realtime::serve_on(
            listener,
            state,
            async move {
                let _ = rx.await;
            },
        ));
        wait_ready(addr).await;
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Triggers a graceful shutdown and waits for `serve_on` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("shutdown within 20 s")
            .expect("serve task")
    }
}

impl Drop for RealtimeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A realtime server on its own runtime, so the test can kill it the way a
/// crash would: every task and connection dies, no shutdown code runs.
pub struct KillableServer {
    /// The server's address.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl KillableServer {
    /// Starts a server on a runtime of its own.
    pub async fn start(settings: Arc<Settings>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = oneshot::channel();
        runtime.spawn(async move {
            let state = switchboard_realtime::state(settings, test_config())
                .await
                .expect("realtime state");
            let listener = bind_any().await;
            let _ = tx.send(listener.local_addr().expect("addr"));
            let _ = switchboard_realtime::serve_on(listener, state, std::future::pending()).await;
        });
        let addr = rx.await.expect("server address");
        wait_ready(addr).await;
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    /// Kills the instance without any graceful step.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for KillableServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits until `/ready` answers 200 (the relay is subscribed).
pub async fn wait_ready(addr: SocketAddr) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("http://{addr}/ready")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("realtime server at {addr} never became ready");
}

/// Polls `check` until it returns true (bounded), for state that changes
/// asynchronously on the server (e.g. after a socket closes).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

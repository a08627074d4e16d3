//! Cross-cutting request handling: request ids, timeouts, Prometheus
//! request metrics, and the optional injected latency used to prove that
//! the load suite catches regressions.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{ApiError, REQUEST_ID};
use crate::state::AppState;

/// The request id header: echoed when the client sends one, made up
/// otherwise, and quoted in every error.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Accepts a sane client-supplied `x-request-id` or makes one, scopes it for
/// error bodies and logs, applies the request timeout, and echoes the id.
pub async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let timeout = state.settings.request_timeout;
    let fault = state.settings.fault_latency;
    let mut response = REQUEST_ID
        .scope(request_id.clone(), async move {
            if !fault.is_zero() {
                inject_latency(fault).await;
            }
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "request_timeout",
                    "the request took too long and was abandoned",
                )
                .into_response(),
            }
        })
        .instrument(span)
        .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Delays a request by `fault`, to a few microseconds: a regression test
/// slows the stack by a known fraction of its median, a fraction of a
/// millisecond. The runtime's timer rounds up to whole milliseconds and a
/// thread's sleep overshoots by its timer slack (~50 µs), so a blocking
/// thread sleeps most of it and spins the rest.
async fn inject_latency(fault: Duration) {
    const SLACK: Duration = Duration::from_micros(100);
    let deadline = Instant::now() + fault;
    let _ = tokio::task::spawn_blocking(move || {
        std::thread::sleep(fault.saturating_sub(SLACK));
        while Instant::now() < deadline {
            std::hint::spin_loop();
        }
    })
    .await;
}

/// Counts and times every request by method, matched route and status.
/// Unmatched paths share one label so scanners cannot blow up cardinality.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed);
    if response.status().is_server_error() {
        tracing::warn!(
            status = response.status().as_u16(),
            elapsed_ms = elapsed * 1e3,
            "request failed"
        );
    } else {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = elapsed * 1e3,
            "request"
        );
    }
    response
}

//! Health, Prometheus metrics and request logs (DEBUG level). Logs carry the route template (`/{resource_type}/{id}`),
//! never the concrete path or query, which can hold personal data.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::fhir_json::fhir_response;
use crate::AppState;

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process; later calls reuse it).
pub fn init_metrics() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .as_ref()
}

/// Records the count and latency of every request by method, route and status, and logs it.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let seconds = started.elapsed().as_secs_f64();
    let labels = [("method", method.clone()), ("route", route.clone()), ("status", status.clone())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(seconds);
    tracing::debug!(%method, %route, %status, latency_ms = seconds * 1000.0, "request");
    response
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics() -> Response {
    match init_metrics() {
        Some(handle) => {
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response(),
    }
}

/// `GET /healthz`: the process is up and its store answers.
pub async fn healthz(State(state): State<AppState>) -> Response {
    let backend = state.record.store().backend_name();
    match state.record.store().read("Organization", "healthz-probe").await {
        Ok(_) => fhir_response(StatusCode::OK, &json!({"status": "ok", "store": backend})),
        Err(error) => {
            tracing::error!(%error, "health check failed");
            fhir_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "unavailable", "store": backend}))
        }
    }
}

//! `GET /metrics`: the Prometheus text exposition.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::clock::now_unix;
use crate::metrics::{render_shared_quota, snapshot_sources, status_sources};
use crate::state::AppState;

const EXPOSITION: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// Metrics for Prometheus: requests, latency, lookups, reports, data age.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Text exposition format 0.0.4: requests by route template and status, \
        a latency histogram per route, lookups by plan, reports accepted and refused, \
        data age and last error per source, reloads by outcome, snapshot build time \
        and resident memory. Open, like the probes: bind the service to a private \
        address or filter `/metrics` at the proxy if it must not be public.",
    responses((status = 200, description = "The metrics", content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshot.load();
    let status = state.data_status.load();
    let sources = if status.sources.is_empty() {
        snapshot_sources(&snapshot)
    } else {
        status_sources(&status)
    };
    let mut body = state.metrics.render(&snapshot, &sources, now_unix());
    if let Some(shared) = state.accounts.shared_quota() {
        render_shared_quota(&mut body, &shared.stats());
    }
    ([(header::CONTENT_TYPE, EXPOSITION)], body).into_response()
}

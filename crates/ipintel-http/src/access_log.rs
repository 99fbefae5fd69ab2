//! One access log line per request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::KeyTag;
use crate::state::AppState;

/// Logs method, route template, status, duration and key id (never the
/// secret, never the raw path, which holds the looked-up address), and
/// counts the request in the metrics under its route template.
pub(crate) async fn access_log(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();

    let response = next.run(request).await;

    let elapsed = started.elapsed();
    let route = route.as_ref().map(MatchedPath::as_str);
    state
        .metrics
        .request(route, response.status().as_u16(), elapsed);
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let key_id = response.extensions().get::<KeyTag>().map(|tag| tag.0.id());
    tracing::info!(
        target: "ipintel::access",
        method = %method,
        route = route.unwrap_or("-"),
        status = response.status().as_u16(),
        duration_us,
        key_id = key_id.map_or("-", |id| id.as_str()),
        "request"
    );
    response
}

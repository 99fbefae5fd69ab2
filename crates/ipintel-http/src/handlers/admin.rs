//! `POST /v1/admin/reload`: reload the IP data now.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::openapi::schemas::ErrorEnvelope;
use crate::reload::{ReloadReport, Trigger};
use crate::reply;
use crate::state::AppState;

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorised(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = state.admin_token.as_deref() else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|presented| same(presented.trim().as_bytes(), token.as_bytes()))
}

/// Downloads what is due, rebuilds the snapshot if a file changed and
/// swaps it in; waits for a reload already running to finish first.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    tag = "operations",
    operation_id = "adminReload",
    summary = "Reload the IP data now",
    description = "Send the token of `IPINTEL_ADMIN_TOKEN` as `Authorization: Bearer <token>`. \
        Without that setting the route answers 403.",
    responses(
        (status = 200, description = "The reload ran; `outcome` says whether a new snapshot is in service", body = ReloadReport),
        (status = 403, description = "`admin_forbidden`: no IPINTEL_ADMIN_TOKEN set, or a wrong token", body = ErrorEnvelope),
        (status = 503, description = "`not_ready`: this service cannot reload", body = ErrorEnvelope),
    )
)]
pub(crate) async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorised(&state, &headers) {
        return ApiError::AdminForbidden.into_response();
    }
    let Some(reloader) = state.reloader.clone() else {
        return ApiError::NotReady.into_response();
    };
    match reloader.reload(&state, Trigger::Admin, true).await {
        Some(report) => reply::ok(&report),
        None => ApiError::Internal("a waiting reload did not run".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}

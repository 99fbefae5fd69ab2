//! `GET /v1/usage` and `POST /v1/keys`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use ipintel_store::{KeyHandle, Plan};
use serde::Serialize;
use utoipa::ToSchema;

use crate::client::client_addr;
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::openapi::schemas::{ErrorEnvelope, PlanName, UsageReport};
use crate::reply;
use crate::state::AppState;

/// Usage of the presented key.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "account",
    operation_id = "usage",
    summary = "Usage and quota of the presented key",
    description = "Lookups counted today (UTC) and this month, the daily limit and \
        when it resets, and the lookups of each of the last 30 UTC days (today last, \
        days without lookups as 0). Does not count as a lookup.",
    responses(
        (status = 200, description = "Usage report", body = UsageReport),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
) -> Result<Response, ApiError> {
    let report = state.accounts.usage(&key, now_unix()).await?;
    Ok(reply::ok(&report))
}

/// A key just created; the only time its full text is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewKey)]
pub(crate) struct NewKey {
    /// The full key, to send as `X-API-Key`. Shown once; only a hash is kept.
    key: String,
    /// The key's public id (safe to log and to quote to support).
    id: String,
    /// The plan of the key.
    #[schema(value_type = PlanName)]
    plan: Plan,
    /// Lookups allowed per UTC day.
    daily_limit: u64,
    /// A reminder to store the key.
    note: &'static str,
}

/// The client address of a request, trusted proxies honoured.
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => addr.ip(),
            None => {
                // Only when the router is driven without `serve` (in-process tests).
                tracing::debug!("no peer address recorded for the connection");
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        };
        let trusted = &state.config.trusted_proxies;
        Ok(Self(client_addr(peer, &parts.headers, trusted)))
    }
}

/// Self-service creation of a free key.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "account",
    operation_id = "create_key",
    summary = "Create a free API key",
    description = "Creates a key on the free plan and returns it once. Limited per \
        client address (IPv6 per /64) within a sliding hour.",
    responses(
        (status = 201, description = "The new key; store it now", body = NewKey),
        (status = 429, description = "`rate_limited`: too many keys from this address",
            body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
) -> Result<Response, ApiError> {
    state
        .key_creation
        .admit(client, Instant::now())
        .map_err(|wait| ApiError::RateLimited {
            retry_after_secs: ceil_secs(wait),
        })?;

    let (info, key) = state
        .accounts
        .create_key(Some("self-service".to_owned()), Some(Plan::Free))
        .await?;
    let daily_limit = state.accounts.limits().daily_limit(Some(Plan::Free), None);
    tracing::info!(key_id = %info.id, "self-service key created");

    let body = NewKey {
        key,
        id: info.id.to_string(),
        plan: Plan::Free,
        daily_limit,
        note: "Store this key now: it is shown only once and cannot be recovered.",
    };
    let mut response = reply::json(StatusCode::CREATED, &body);
    let no_store = HeaderValue::from_static("no-store");
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, no_store);
    Ok(response)
}

/// Whole seconds, rounded up, at least 1.
fn ceil_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(7)), 7);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }
}

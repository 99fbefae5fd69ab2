//! The keyless routes behind the web portal: a lookup limited per client
//! address, the caller's own address, and a cached copy of the live feed.

use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use super::account::ClientAddr;
use super::lookup::{parse_path, with_reports, IpPath};
use super::reports::{self, LiveFeed};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::openapi::schemas::{self, ErrorEnvelope};
use crate::reply;
use crate::state::AppState;

/// Entries of the portal's live feed.
pub(crate) const PORTAL_FEED_LIMIT: usize = 20;
/// How long one copy of the portal's live feed is served.
const FEED_TTL: Duration = Duration::from_secs(2);

/// The last rendering of the portal's live feed. Concurrent requests after
/// it expires wait for one new rendering instead of each making their own.
#[derive(Debug, Default)]
pub(crate) struct FeedCache {
    latest: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
}

/// The address a request came from, as the service sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallerAddress {
    /// The client address (trusted proxies honoured), canonical text.
    ip: String,
    #[schema(minimum = 4, maximum = 6)]
    ip_version: u8,
}

/// Keyless lookup of one address, for the web portal.
#[utoipa::path(
    get,
    path = "/v1/portal/ip/{ip}",
    tag = "portal",
    operation_id = "portal_lookup_ip",
    summary = "Everything known about one IP address, without a key",
    description = "The same record as `GET /v1/ip/{ip}`, for the web portal. No key \
        is needed; instead each client address (IPv6: its /64) may make a burst of \
        `IPINTEL_PORTAL_PER_MINUTE` lookups (default 30) refilled evenly over a \
        minute, and `IPINTEL_PORTAL_PER_DAY` (default 300) per UTC day. An invalid \
        address is refused before and without counting.",
    params(("ip" = String, Path,
        description = "IPv4 (canonical dotted quad) or IPv6 address; `:` may be sent as `%3A`")),
    responses(
        (status = 200, description = "The record", body = schemas::IpRecord),
        (status = 400, description = "`invalid_ip` (not counted)", body = ErrorEnvelope),
        (status = 429, description = "`portal_rate_limited`: this address made too many \
            lookups; `Retry-After` says when to try again", body = ErrorEnvelope),
    )
)]
pub(crate) async fn lookup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    path: IpPath,
) -> Result<Response, ApiError> {
    let ip = parse_path(path)?;
    let admitted = state.portal.admit(client, Instant::now(), now_unix());
    state.metrics.portal_lookup(admitted.is_ok());
    admitted.map_err(|refusal| ApiError::PortalRateLimited {
        retry_after_secs: refusal.retry_after_secs(),
    })?;

    Ok(no_store(with_reports(&state, ip, |record| {
        reply::ok(record)
    })))
}

/// The caller's own address.
#[utoipa::path(
    get,
    path = "/v1/portal/me",
    tag = "portal",
    operation_id = "portal_me",
    summary = "The address this request came from",
    description = "The client address as the service sees it (through trusted proxies \
        only), so the portal can offer \"my address\". Needs no key and counts nothing.",
    responses(
        (status = 200, description = "The caller's address", body = CallerAddress),
    )
)]
pub(crate) async fn me(ClientAddr(client): ClientAddr) -> Response {
    let body = CallerAddress {
        ip: client.to_string(),
        ip_version: if client.is_ipv4() { 4 } else { 6 },
    };
    no_store(reply::ok(&body))
}

/// The live feed of the portal.
#[utoipa::path(
    get,
    path = "/v1/portal/threats/live",
    tag = "portal",
    operation_id = "portal_threats_live",
    summary = "The most recently reported addresses, without a key",
    description = "The first 20 entries of `GET /v1/ip/threats/live`, for the web \
        portal. Needs no key; every caller gets the same copy, made again at most \
        every 2 seconds.",
    responses(
        (status = 200, description = "The feed", body = LiveFeed),
    )
)]
pub(crate) async fn live(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut latest = state.portal_feed.latest.lock().await;
    if let Some((made, body)) = latest.as_ref() {
        if made.elapsed() < FEED_TTL {
            return Ok(cached(body.clone()));
        }
    }

    let query = format!("limit={PORTAL_FEED_LIMIT}");
    let fresh = reports::live(State(state.clone()), RawQuery(Some(query))).await?;
    if fresh.status() != StatusCode::OK {
        return Ok(fresh);
    }
    let body = axum::body::to_bytes(fresh.into_body(), usize::MAX)
        .await
        .map_err(|err| ApiError::Internal(format!("reading the live feed: {err}")))?;
    *latest = Some((Instant::now(), body.clone()));
    Ok(cached(body))
}

fn cached(body: Bytes) -> Response {
    let mut response = reply::bytes_response(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `response` marked as not to be stored by caches: it depends on the
/// caller, or counts against the caller's allowance.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

//! `GET /v1/ip/{ip}` and its `/geo` and `/threat` views.

use std::net::IpAddr;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use ipintel_core::addr::parse_ip;
use ipintel_core::IpRecord;
use ipintel_store::KeyHandle;

use crate::clock::now_unix;
use crate::error::ApiError;
use crate::openapi::schemas::{self, ErrorEnvelope, GeoView, ThreatView};
use crate::reply;
use crate::state::AppState;

pub(crate) type IpPath = Result<Path<String>, PathRejection>;

/// Parses the address (invalid input is refused before and without
/// counting), then counts one lookup against the key's daily quota.
async fn admit(state: &AppState, key: &KeyHandle, path: IpPath) -> Result<IpAddr, ApiError> {
    let ip = parse_path(path)?;
    state.accounts.charge(key, 1, now_unix()).await?;
    state.metrics.lookup(key.plan());
    Ok(ip)
}

/// The address in the path, strictly parsed.
///
/// The router has already percent-decoded the segment once, so
/// `2606%3A4700%3A%3A1111` and `2606:4700::1111` arrive as the same text.
pub(crate) fn parse_path(path: IpPath) -> Result<IpAddr, ApiError> {
    let Path(text) = path.map_err(|rejection| {
        tracing::debug!(%rejection, "address path segment rejected");
        ApiError::InvalidIp("the path segment is not valid percent-encoded UTF-8".into())
    })?;
    parse_ip(&text).map_err(|err| ApiError::InvalidIp(err.to_string()))
}

/// Full record of one address.
#[utoipa::path(
    get,
    path = "/v1/ip/{ip}",
    tag = "lookup",
    operation_id = "lookup_ip",
    summary = "Everything known about one IP address",
    description = "Location, network, threat score with its reasons, and flags. \
        Fields the data cannot fill are null. Reserved (special-purpose) addresses \
        are answered from the IANA registries only, with `reserved` set. \
        IPv4-mapped IPv6 addresses are answered as the IPv4 address. \
        Counts one lookup against the key's daily quota.",
    params(("ip" = String, Path,
        description = "IPv4 (canonical dotted quad) or IPv6 address; `:` may be sent as `%3A`")),
    responses(
        (status = 200, description = "The record", body = schemas::IpRecord),
        (status = 400, description = "`invalid_ip` (not counted)", body = ErrorEnvelope),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 429, description = "`quota_exceeded`: today's quota is used up", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn full(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    path: IpPath,
) -> Result<Response, ApiError> {
    let ip = admit(&state, &key, path).await?;

    Ok(with_reports(&state, ip, |record| reply::ok(record)))
}

/// Looks `ip` up and hands the record, with its abuse reports overlaid if
/// there are any, to `respond`. One probe of the report index; none at
/// all while it is empty.
pub(crate) fn with_reports<R>(
    state: &AppState,
    ip: IpAddr,
    respond: impl FnOnce(&IpRecord<'_>) -> R,
) -> R {
    let snapshot = state.snapshot.load();
    let record = snapshot.lookup(ip);
    let Some(summary) = state.reports.summary(ip, now_unix()) else {
        return respond(&record);
    };
    let threat = record.threat.with_reports(&summary);
    respond(&record.with_reports(&threat, &summary))
}

/// Location view of one address.
#[utoipa::path(
    get,
    path = "/v1/ip/{ip}/geo",
    tag = "lookup",
    operation_id = "lookup_ip_geo",
    summary = "Location of one IP address",
    description = "The `geo` part of the record with the address fields. Counts one lookup.",
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses(
        (status = 200, description = "The location view", body = GeoView),
        (status = 400, description = "`invalid_ip` (not counted)", body = ErrorEnvelope),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 429, description = "`quota_exceeded`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn geo(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    path: IpPath,
) -> Result<Response, ApiError> {
    let ip = admit(&state, &key, path).await?;

    let snapshot = state.snapshot.load();
    let record = snapshot.lookup(ip);
    let response = reply::ok(&record.geo_view());
    Ok(response)
}

/// Threat view of one address.
#[utoipa::path(
    get,
    path = "/v1/ip/{ip}/threat",
    tag = "lookup",
    operation_id = "lookup_ip_threat",
    summary = "Threat score and flags of one IP address",
    description = "Score (noisy-OR of the matched signals' weights), level, reasons, \
        flags and flag details, with the address fields. Counts one lookup.",
    params(("ip" = String, Path, description = "IPv4 or IPv6 address")),
    responses(
        (status = 200, description = "The threat view", body = ThreatView),
        (status = 400, description = "`invalid_ip` (not counted)", body = ErrorEnvelope),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 429, description = "`quota_exceeded`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn threat(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    path: IpPath,
) -> Result<Response, ApiError> {
    let ip = admit(&state, &key, path).await?;

    Ok(with_reports(&state, ip, |record| {
        reply::ok(&record.threat_view())
    }))
}

/// `/v1/ip/` with nothing after it: an empty address, never "the caller".
#[utoipa::path(
    get,
    path = "/v1/ip/",
    tag = "lookup",
    operation_id = "lookup_empty",
    summary = "Empty address",
    description = "Always `invalid_ip`: an empty address is refused, never \
        taken to mean the caller's own address. Not counted.",
    responses(
        (status = 400, description = "`invalid_ip`", body = ErrorEnvelope),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn empty() -> ApiError {
    ApiError::InvalidIp("the address is empty".into())
}

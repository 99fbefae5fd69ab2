//! `POST /v1/ip/report` and `GET /v1/ip/threats/live`.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use ipintel_core::reports::{rfc3339, ReportCategories, Severity};
use ipintel_core::ThreatLevel;
use ipintel_store::{KeyHandle, LiveItem, NewReport, ReportError, ReporterNet, StoredReport};
use serde::Serialize;
use utoipa::ToSchema;

use super::account::ClientAddr;
use super::report_input::{check, read_fields, ReportInput};
use crate::clock::now_unix;
use crate::error::ApiError;
use crate::openapi::schemas::{ErrorEnvelope, ReportCategoryName, ReportRequest, SeverityName};
use crate::reply;
use crate::state::AppState;

/// Addresses listed by the live feed unless `limit` says otherwise.
const DEFAULT_LIVE: usize = 50;
/// The most the live feed lists.
const MAX_LIVE: usize = 500;

/// A stored report, as acknowledged.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportReceipt {
    /// The report's id.
    id: i64,
    /// The reported address (canonical text).
    ip: String,
    /// What the address did.
    #[schema(value_type = Vec<ReportCategoryName>)]
    categories: ReportCategories,
    /// How bad it was.
    #[schema(value_type = SeverityName)]
    severity: Severity,
    /// The reporter's confidence, 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    confidence: u8,
    /// The comment as kept (trimmed, at most 1024 characters).
    #[schema(required = true)]
    comment: Option<String>,
    /// When it happened (RFC 3339, UTC).
    reported_at: String,
    /// When the service stored it (RFC 3339, UTC).
    received_at: String,
}

impl From<&StoredReport> for ReportReceipt {
    fn from(stored: &StoredReport) -> Self {
        let r = &stored.report;
        ReportReceipt {
            id: stored.id,
            ip: r.ip.to_string(),
            categories: r.categories,
            severity: r.severity,
            confidence: r.confidence,
            comment: r.comment.clone(),
            reported_at: rfc3339(r.reported_at),
            received_at: rfc3339(r.received_at),
        }
    }
}

/// Files an abuse report.
#[utoipa::path(
    post,
    path = "/v1/ip/report",
    tag = "reports",
    operation_id = "report_ip",
    summary = "Report an abusive IP address",
    description = "Takes `ip`, `category` (names or AbuseIPDB numbers, comma-separated \
        or a JSON array), `severity` (low, medium, high, critical or 1-4; default medium), \
        `confidence` (0-100; default 75), `comment` (cut to 1024 characters) and \
        `reported_at` (RFC 3339 or unix seconds; at most 5 minutes ahead, at most 30 \
        days old; default now), as JSON or as a form. The report is committed to the \
        database before the 201 is sent. One key may report one address once per 15 \
        minutes; reports count against the plan's daily report limit, not the lookup quota.",
    request_body(
        description = "The report, as JSON or `application/x-www-form-urlencoded`",
        content(
            (ReportRequest = "application/json"),
            (ReportRequest = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 201, description = "Stored", body = ReportReceipt),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`", body = ErrorEnvelope),
        (status = 422, description = "`invalid_field`; `error.field` names the field", body = ErrorEnvelope),
        (status = 429, description = "`duplicate_report` (same key and address within 15 \
            minutes) or `report_quota_exceeded`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn report(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    ClientAddr(client): ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let reporter = Reporter { key, client };
    let stored = match accept(&state, &reporter, parts.headers, body).await {
        Ok(stored) => stored,
        Err(err) => {
            state.metrics.report_refused(err.code());
            return Err(err);
        }
    };
    state.metrics.report_accepted();
    tracing::info!(
        report_id = stored.id,
        key_id = %reporter.key.id(),
        "abuse report stored"
    );

    Ok(reply::json(
        StatusCode::CREATED,
        &ReportReceipt::from(&stored),
    ))
}

/// Who files a report: the key, and the client address it came from.
struct Reporter {
    key: KeyHandle,
    client: IpAddr,
}

/// Reads, checks, stores and indexes one report.
async fn accept(
    state: &AppState,
    reporter: &Reporter,
    headers: HeaderMap,
    body: Body,
) -> Result<StoredReport, ApiError> {
    let fields = read_fields(&headers, body).await?;
    let now = now_unix();
    let input = check(&fields, now)?;

    let report = new_report(state, reporter, input, now);
    state
        .report_desk
        .submit(report, reporter.key.plan())
        .await
        .map_err(refused)
}

/// The row to store: the request plus what the data says about the
/// address, and the reporter's network and plan, which the score uses to
/// tell reporters apart.
fn new_report(state: &AppState, reporter: &Reporter, input: ReportInput, now: i64) -> NewReport {
    let snapshot = state.snapshot.load();
    let record = snapshot.lookup(input.ip);
    NewReport {
        key_id: reporter.key.id().clone(),
        ip: input.ip,
        categories: input.categories,
        severity: input.severity,
        confidence: input.confidence,
        comment: input.comment,
        reported_at: input.reported_at,
        received_at: now,
        country: record.country().map(str::to_owned),
        asn: record.asn(),
        asn_name: record.isp().map(str::to_owned),
        reporter_network: ReporterNet::of(reporter.client),
        reporter_plan: Some(reporter.key.plan()),
    }
}

fn refused(err: ReportError) -> ApiError {
    match err {
        ReportError::Duplicate { retry_after_secs } => {
            ApiError::DuplicateReport { retry_after_secs }
        }
        ReportError::QuotaExceeded {
            retry_after_secs, ..
        } => ApiError::ReportQuotaExceeded { retry_after_secs },
        ReportError::Store(cause) => ApiError::StoreUnavailable(cause),
        other => ApiError::Internal(other.to_string()),
    }
}

/// The live feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiveFeed {
    /// IPv6 addresses are grouped by networks of this prefix length.
    v6_prefix: u8,
    /// Entries listed.
    count: usize,
    /// Most recently reported first.
    items: Vec<LiveEntry>,
}

/// One reported address (IPv6: network) of the live feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiveEntry {
    /// The address, or for IPv6 the network (`2001:db8::/64`).
    network: String,
    /// The address of the latest report.
    ip: String,
    /// Threat score of that address with the group's reports, 0..=100.
    #[schema(minimum = 0, maximum = 100)]
    score: u8,
    #[schema(value_type = crate::openapi::schemas::ThreatLevel)]
    level: ThreatLevel,
    /// Every category reported.
    #[schema(value_type = Vec<ReportCategoryName>)]
    categories: ReportCategories,
    /// Reports in the last 30 days.
    reports: u64,
    /// Distinct reporters: keys that reported from one network (/24, /48) count once.
    distinct_reporters: u32,
    /// The latest report's time (RFC 3339, UTC).
    last_reported_at: String,
    /// Country of the address at the latest report.
    #[schema(required = true)]
    country: Option<String>,
    /// AS number of the address at the latest report.
    #[schema(required = true)]
    asn: Option<u32>,
}

/// The most recently reported addresses.
#[utoipa::path(
    get,
    path = "/v1/ip/threats/live",
    tag = "reports",
    operation_id = "threats_live",
    summary = "Most recently reported addresses",
    description = "Addresses reported in the last 30 days, latest report first, each \
        once, with the threat score that data and reports give it. IPv6 addresses are \
        grouped into networks of a configured prefix (default /64) so one host cannot \
        fill the feed. Does not count as a lookup.",
    params(("limit" = Option<u32>, Query, description = "Entries to list, 1 to 500 (default 50)")),
    responses(
        (status = 200, description = "The feed", body = LiveFeed),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 422, description = "`invalid_field` naming `limit`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn live(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let limit = live_limit(query.as_deref())?;
    let now = now_unix();

    let prefix = state.report_desk.settings().live_v6_prefix;
    let items = state.reports.live(limit, prefix, now);
    let snapshot = state.snapshot.load();
    let items: Vec<LiveEntry> = items
        .iter()
        .map(|item| live_entry(&snapshot, item))
        .collect();

    let feed = LiveFeed {
        v6_prefix: prefix,
        count: items.len(),
        items,
    };
    Ok(reply::ok(&feed))
}

fn live_limit(query: Option<&str>) -> Result<usize, ApiError> {
    let pairs: HashMap<String, String> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let Some(text) = pairs.get("limit") else {
        return Ok(DEFAULT_LIVE);
    };
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIVE).contains(n))
        .ok_or_else(|| ApiError::InvalidField {
            field: "limit",
            message: format!("`limit` must be a whole number 1 to {MAX_LIVE}"),
        })
}

fn live_entry(snapshot: &ipintel_core::Snapshot, item: &LiveItem) -> LiveEntry {
    let record = snapshot.lookup(item.last_ip);
    let threat = record.threat.with_reports(&item.summary);
    LiveEntry {
        network: item.network.clone(),
        ip: item.last_ip.to_string(),
        score: threat.score,
        level: threat.level,
        categories: item.summary.categories,
        reports: item.summary.count,
        distinct_reporters: item.summary.distinct_reporters,
        last_reported_at: rfc3339(item.summary.last_reported_at),
        country: item.country.clone(),
        asn: item.asn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_limits() {
        assert_eq!(live_limit(None).unwrap(), 50);
        assert_eq!(live_limit(Some("limit=7")).unwrap(), 7);
        assert_eq!(live_limit(Some("limit=500")).unwrap(), 500);
        for bad in ["limit=0", "limit=501", "limit=x", "limit=-1", "limit="] {
            assert!(
                matches!(
                    live_limit(Some(bad)),
                    Err(ApiError::InvalidField { field: "limit", .. })
                ),
                "{bad}"
            );
        }
    }
}

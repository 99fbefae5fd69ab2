//! `GET /v1/reports`: the reports filed with the presented key.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::Extension;
use ipintel_core::country_name;
use ipintel_core::reports::{rfc3339, ReportCategories, Severity};
use ipintel_store::{KeyHandle, StoredReport};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::openapi::schemas::{ErrorEnvelope, ReportCategoryName, SeverityName};
use crate::reply;
use crate::state::AppState;

/// Reports listed unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 50;
/// The most listed at once.
const MAX_LIMIT: u32 = 500;

/// The key's reports.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyReports {
    /// Entries listed.
    count: usize,
    /// Newest first.
    items: Vec<KeyReport>,
}

/// One report as stored, with what the data said of the address then.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyReport {
    /// The report's id.
    id: i64,
    /// The reported address (canonical text).
    ip: String,
    #[schema(value_type = Vec<ReportCategoryName>)]
    categories: ReportCategories,
    #[schema(value_type = SeverityName)]
    severity: Severity,
    #[schema(minimum = 0, maximum = 100)]
    confidence: u8,
    #[schema(required = true)]
    comment: Option<String>,
    /// When it happened (RFC 3339, UTC).
    reported_at: String,
    /// When the service stored it (RFC 3339, UTC).
    received_at: String,
    /// Country of the address when the report arrived.
    #[schema(required = true)]
    country: Option<String>,
    /// English short name of `country`.
    #[schema(required = true)]
    country_name: Option<&'static str>,
    /// AS number of the address when the report arrived.
    #[schema(required = true)]
    asn: Option<u32>,
    /// AS holder name when the report arrived.
    #[schema(required = true)]
    asn_name: Option<String>,
}

impl From<StoredReport> for KeyReport {
    fn from(stored: StoredReport) -> Self {
        let r = stored.report;
        KeyReport {
            id: stored.id,
            ip: r.ip.to_string(),
            categories: r.categories,
            severity: r.severity,
            confidence: r.confidence,
            comment: r.comment,
            reported_at: rfc3339(r.reported_at),
            received_at: rfc3339(r.received_at),
            country_name: r.country.as_deref().and_then(country_name),
            country: r.country,
            asn: r.asn,
            asn_name: r.asn_name,
        }
    }
}

/// The reports filed with the presented key.
#[utoipa::path(
    get,
    path = "/v1/reports",
    tag = "reports",
    operation_id = "key_reports",
    summary = "The abuse reports filed with the presented key",
    description = "Newest first, read from the database (older than the 30 days that \
        weigh in scores included), each with the country and network the data gave the \
        address when the report arrived. Does not count as a lookup.",
    params(("limit" = Option<u32>, Query, description = "Entries to list, 1 to 500 (default 50)")),
    responses(
        (status = 200, description = "The key's reports", body = KeyReports),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 422, description = "`invalid_field` naming `limit`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let limit = limit(query.as_deref())?;

    let stored = state
        .accounts
        .store()
        .reports_by_key(key.id(), limit)
        .await?;

    let items: Vec<KeyReport> = stored.into_iter().map(KeyReport::from).collect();
    Ok(reply::ok(&KeyReports {
        count: items.len(),
        items,
    }))
}

/// The `limit` query parameter: 1 to [`MAX_LIMIT`], else the default.
fn limit(query: Option<&str>) -> Result<u32, ApiError> {
    let pairs: HashMap<String, String> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let Some(text) = pairs.get("limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| ApiError::InvalidField {
            field: "limit",
            message: format!("`limit` must be a whole number 1 to {MAX_LIMIT}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("limit=3")).unwrap(), 3);
        assert_eq!(limit(Some("other=1&limit=500")).unwrap(), 500);
        for bad in ["limit=0", "limit=501", "limit=x", "limit=-1", "limit="] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }
}

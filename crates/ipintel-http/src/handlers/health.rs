//! Liveness, readiness and the OpenAPI document.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ipintel_core::SnapshotMeta;
use ipintel_data::DataStatus;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::{age_days, now_unix, parse_date, rfc3339};
use crate::error::ApiError;
use crate::openapi::schemas::ErrorEnvelope;
use crate::reply;
use crate::state::AppState;

/// Body of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Health {
    /// Always `ok` while the process serves.
    status: &'static str,
}

/// Body of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Readiness<'a> {
    /// `ready`.
    status: &'static str,
    /// When the loaded snapshot was built (RFC 3339, UTC).
    built_at: String,
    /// The same instant in unix seconds.
    built_at_unix: i64,
    /// Merged IPv4 intervals in the snapshot.
    ranges_v4: u64,
    /// Merged IPv6 intervals in the snapshot.
    ranges_v6: u64,
    /// Each data source with its age.
    sources: Vec<SourceAge<'a>>,
    /// The last reload attempt (unix seconds); null before the first.
    #[schema(required = true)]
    last_reload_unix: Option<i64>,
    /// Why the last reload failed (the last good snapshot keeps serving).
    #[schema(required = true)]
    last_reload_error: Option<&'a str>,
}

/// The last error of one source.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceErrorView<'a> {
    /// What went wrong; a parse error names the file and line.
    message: &'a str,
    /// When (unix seconds).
    at_unix: i64,
}

/// One data source of the loaded snapshot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceAge<'a> {
    /// Source name.
    name: &'a str,
    /// Package version the data came from.
    #[schema(required = true)]
    version: Option<&'a str>,
    /// Date of the data (YYYY-MM-DD).
    #[schema(required = true)]
    data_date: Option<&'a str>,
    /// Licence of the data.
    licence: &'a str,
    /// Attribution required by the licence.
    attribution: &'a str,
    /// Whole days from `data_date` to now; null without a date.
    #[schema(required = true)]
    age_days: Option<i64>,
    /// Records read from the source.
    records: u64,
    /// Last successful load or download (unix seconds); null when unknown.
    #[schema(required = true)]
    last_success_unix: Option<i64>,
    /// Seconds since `last_success_unix`; null when unknown.
    #[schema(required = true)]
    age_seconds: Option<i64>,
    /// The source's last error, kept until it loads again; null when healthy.
    #[schema(required = true)]
    last_error: Option<SourceErrorView<'a>>,
}

/// Liveness: 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness probe",
    responses((status = 200, description = "The process is serving", body = Health))
)]
pub(crate) async fn healthz() -> Response {
    reply::ok(&Health { status: "ok" })
}

/// Readiness: 200 with the age of each source once data is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness probe with data age",
    responses(
        (status = 200, description = "Data is loaded", body = Readiness),
        (status = 503, description = "`not_ready`: no data loaded", body = ErrorEnvelope),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshot.load();
    let meta = snapshot.meta();
    if meta.sources.is_empty() {
        return ApiError::NotReady.into_response();
    }
    let status = state.data_status.load();
    reply::ok(&readiness(meta, &status, now_unix()))
}

fn readiness<'a>(meta: &'a SnapshotMeta, status: &'a DataStatus, now: i64) -> Readiness<'a> {
    let health = |name: &str| {
        let s = status.source(name);
        let last_success_unix = s.and_then(|s| s.last_success_unix);
        let last_error = s
            .and_then(|s| s.last_error.as_ref())
            .map(|e| SourceErrorView {
                message: &e.message,
                at_unix: e.at_unix,
            });
        (
            last_success_unix,
            last_success_unix.map(|t| (now - t).max(0)),
            last_error,
        )
    };
    let mut sources: Vec<SourceAge<'a>> = meta
        .sources
        .iter()
        .map(|source| (source, health(&source.name)))
        .map(
            |(source, (last_success_unix, age_seconds, last_error))| SourceAge {
                name: &source.name,
                version: source.version.as_deref(),
                data_date: source.data_date.as_deref(),
                licence: &source.licence,
                attribution: &source.attribution,
                age_days: source
                    .data_date
                    .as_deref()
                    .and_then(parse_date)
                    .map(|day| age_days(day, now)),
                records: source.records,
                last_success_unix,
                age_seconds,
                last_error,
            },
        )
        .collect();
    let missing = status
        .sources
        .iter()
        .filter(|s| !meta.sources.iter().any(|m| m.name == s.name));
    sources.extend(missing.map(|s| {
        let (last_success_unix, age_seconds, last_error) = health(&s.name);
        SourceAge {
            name: &s.name,
            version: None,
            data_date: None,
            licence: "",
            attribution: "",
            age_days: None,
            records: 0,
            last_success_unix,
            age_seconds,
            last_error,
        }
    }));
    Readiness {
        status: "ready",
        built_at: rfc3339(meta.built_at_unix),
        built_at_unix: meta.built_at_unix,
        ranges_v4: meta.ranges_v4,
        ranges_v6: meta.ranges_v6,
        sources,
        last_reload_unix: status.last_reload_unix,
        last_reload_error: status.last_reload_error.as_deref(),
    }
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn openapi_json() -> Response {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| match serde_json::to_vec(&crate::openapi()) {
        Ok(bytes) => Bytes::from(bytes),
        Err(err) => {
            tracing::error!(error = %err, "serialising the OpenAPI document failed");
            Bytes::from_static(b"{}")
        }
    });
    reply::bytes_response(StatusCode::OK, body.clone())
}

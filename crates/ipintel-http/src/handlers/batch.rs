//! `POST /v1/ip/batch`: up to [`MAX_BATCH`] addresses in one request.
//!
//! The body is `{"ips": [...]}` or a bare JSON array of address strings.
//! The answer maps each distinct input string, exactly as sent, to the
//! full record (as `GET /v1/ip/{ip}` answers it) or to a per-entry error
//! envelope (`invalid_ip`). Counting: one lookup per distinct valid entry;
//! a string sent twice is one entry; invalid entries are free. The whole
//! batch is refused (429, nothing counted) when the key has fewer lookups
//! left today than it needs, so a batch never half-succeeds.

use std::collections::HashSet;
use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use ipintel_core::addr::parse_ip;
use ipintel_store::{AuthError, KeyHandle};
use serde::Deserialize;

use super::body::{self, BodyError};
use crate::clock::now_unix;
use crate::error::{ApiError, Envelope, EnvelopeBody};
use crate::openapi::schemas::{BatchReply, BatchRequest, ErrorEnvelope};
use crate::reply;
use crate::state::AppState;

/// Most entries (duplicates included) in one batch.
pub(crate) const MAX_BATCH: usize = 1000;

/// Largest body read, in bytes: room for 1,000 of the longest addresses
/// with generous whitespace.
pub(crate) const MAX_BATCH_BODY: usize = 256 * 1024;

/// The two accepted shapes of the body.
#[derive(Deserialize)]
#[serde(untagged)]
enum BatchBody {
    Wrapped { ips: Vec<String> },
    Bare(Vec<String>),
}

/// Looks up many addresses at once.
#[utoipa::path(
    post,
    path = "/v1/ip/batch",
    tag = "lookup",
    operation_id = "lookup_batch",
    summary = "Look up to 1,000 addresses in one request",
    description = "Takes `{\"ips\": [...]}` or a bare JSON array of address strings \
        (at most 1,000 entries, body at most 262,144 bytes). `results` maps each \
        distinct input string, exactly as sent, to its full record (as `GET \
        /v1/ip/{ip}` answers it, reserved addresses included) or to an error \
        envelope (`invalid_ip`) for an entry that is not an address. Each distinct \
        valid entry counts one lookup (`counted`); an entry sent twice appears and \
        counts once; invalid entries are not counted. When the key has fewer \
        lookups left today than the batch needs, the whole batch is refused with \
        429 and nothing is counted. `X-RateLimit-Remaining` is the count after.",
    request_body(
        description = "The addresses, as `{\"ips\": [...]}` or as a bare array",
        content((BatchRequest = "application/json"))
    ),
    responses(
        (status = 200, description = "One result per distinct entry", body = BatchReply),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 413, description = "`batch_too_large`: more than 1,000 entries, \
            or a larger body; the message states the limit", body = ErrorEnvelope),
        (status = 415, description = "`unsupported_media_type`: not JSON", body = ErrorEnvelope),
        (status = 422, description = "`invalid_field` (`ips`): an empty list, or a body \
            that is not a list of strings", body = ErrorEnvelope),
        (status = 429, description = "`quota_exceeded`: the batch needs more lookups \
            than the key has left today; nothing was counted", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn batch(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let texts = read_batch(&parts.headers, body).await?;
    let entries = distinct(texts);
    let valid = entries.iter().filter(|(_, ip)| ip.is_ok()).count() as u64;

    if valid > 0 {
        state
            .accounts
            .charge(&key, valid, now_unix())
            .await
            .map_err(|err| refusal(err, valid))?;
        for _ in 0..valid {
            state.metrics.lookup(key.plan());
        }
    }

    let body = render(&state, &entries, valid);
    Ok(reply::bytes_response(StatusCode::OK, Bytes::from(body)))
}

/// Reads the body as JSON (any JSON media type, or none) and checks its
/// size and shape.
async fn read_batch(headers: &HeaderMap, body: Body) -> Result<Vec<String>, ApiError> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = text.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::BatchMediaType);
        }
    }
    let bytes = body::read(body, MAX_BATCH_BODY)
        .await
        .map_err(|err| match err {
            BodyError::TooLarge => ApiError::BatchTooLarge(None),
            BodyError::Broken(cause) => ApiError::InvalidField {
                field: "body",
                message: format!("the body could not be read: {cause}"),
            },
            BodyError::TimedOut => ApiError::BodyTimeout,
        })?;
    let texts = match serde_json::from_slice::<BatchBody>(&bytes) {
        Ok(BatchBody::Wrapped { ips } | BatchBody::Bare(ips)) => ips,
        Err(_) => {
            return Err(ApiError::InvalidField {
                field: "ips",
                message: "send {\"ips\": [\"8.8.8.8\", ...]} or a JSON array of address strings"
                    .into(),
            })
        }
    };
    if texts.is_empty() {
        return Err(ApiError::InvalidField {
            field: "ips",
            message: "the batch is empty".into(),
        });
    }
    if texts.len() > MAX_BATCH {
        return Err(ApiError::BatchTooLarge(Some(texts.len())));
    }
    Ok(texts)
}

/// The entries in order of first appearance, duplicates dropped, each
/// strictly parsed.
fn distinct(texts: Vec<String>) -> Vec<(String, Result<IpAddr, String>)> {
    let mut seen = HashSet::with_capacity(texts.len());
    texts
        .into_iter()
        .filter(|text| seen.insert(text.clone()))
        .map(|text| {
            let ip = parse_ip(&text).map_err(|err| format!("not a valid IP address: {err}"));
            (text, ip)
        })
        .collect()
}

/// A quota refusal names what the batch needed and what was left.
fn refusal(err: AuthError, needed: u64) -> ApiError {
    match err {
        AuthError::QuotaExceeded {
            quota,
            retry_after_secs,
        } => ApiError::BatchQuotaExceeded {
            needed,
            remaining: quota.remaining,
            retry_after_secs,
        },
        other => other.into(),
    }
}

/// `{"count", "counted", "results": {...}}`, the results in the order of
/// the entries, each record with its abuse reports overlaid as in a single
/// lookup.
fn render(state: &AppState, entries: &[(String, Result<IpAddr, String>)], counted: u64) -> Vec<u8> {
    let snapshot = state.snapshot.load();
    let now = now_unix();
    let mut out = Vec::with_capacity(entries.len() * 900);
    out.extend_from_slice(
        format!(
            r#"{{"count":{},"counted":{counted},"results":{{"#,
            entries.len()
        )
        .as_bytes(),
    );
    for (i, (text, ip)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing JSON into a Vec fails only on a serialiser bug.
        let _ = serde_json::to_writer(&mut out, text);
        out.push(b':');
        let written = match ip {
            Ok(ip) => {
                let record = snapshot.lookup(*ip);
                match state.reports.summary(*ip, now) {
                    None => serde_json::to_writer(&mut out, &record),
                    Some(summary) => {
                        let threat = record.threat.with_reports(&summary);
                        serde_json::to_writer(&mut out, &record.with_reports(&threat, &summary))
                    }
                }
            }
            Err(reason) => serde_json::to_writer(&mut out, &entry_error(reason)),
        };
        if let Err(err) = written {
            tracing::error!(error = %err, "serialising a batch entry failed");
            out.extend_from_slice(b"null");
        }
    }
    out.extend_from_slice(b"}}");
    out
}

/// The error envelope of one invalid entry, as a single lookup answers it.
fn entry_error(reason: &str) -> Envelope<'_> {
    Envelope {
        error: EnvelopeBody {
            code: "invalid_ip",
            message: reason,
            status: StatusCode::BAD_REQUEST.as_u16(),
            field: None,
        },
    }
}

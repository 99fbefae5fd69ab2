//! The one error type of the API and its JSON envelope.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ipintel_store::{AuthError, StoreError};
use serde::Serialize;

use crate::reply;

/// `Retry-After` of a `store_unavailable` answer, in seconds. The store
/// pool gives up on a connection after a few seconds and a node reconnects
/// at the first request after the database returns, so a client that waits
/// this long tries again once the outage is over or finds it still on,
/// without hammering a database that is coming back. Nothing was stored or
/// counted, so the same request may simply be sent again.
pub(crate) const STORE_RETRY_AFTER_SECS: u64 = 5;
/// `Retry-After` of `not_ready`: a node loads its data in a few seconds.
const NOT_READY_RETRY_AFTER_SECS: u64 = 2;

/// Every way a request can fail, each with a stable machine-readable code.
///
/// Rendering (`IntoResponse`) is the only place where errors become HTTP:
/// the status, the envelope `{"error": {"code", "message", "status"}}`, and
/// `Retry-After` where the client should wait. Causes that the client must
/// not see (store failures, internal errors) are logged here, once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The path segment is not a strictly formed IP address.
    #[error("the path does not hold a valid IP address: {0}")]
    InvalidIp(String),
    /// No key in `X-API-Key` nor in `Authorization: Bearer`.
    #[error(
        "an API key is required: send it in the X-API-Key header or as Authorization: Bearer <key>"
    )]
    MissingApiKey,
    /// The key is malformed or unknown (deliberately not told apart).
    #[error("the API key is malformed or unknown")]
    InvalidApiKey,
    /// The key exists but was revoked.
    #[error("the API key has been revoked")]
    RevokedApiKey,
    /// Today's quota of the key is used up.
    #[error("the daily lookup quota of this key is used up; it resets at 00:00 UTC")]
    QuotaExceeded {
        /// Seconds until the quota resets.
        retry_after_secs: u64,
    },
    /// No route matches the path.
    #[error("no such resource")]
    NotFound,
    /// The path exists but not with this method.
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    /// Too many keys created from one client address.
    #[error("too many keys were created from this address; try again later")]
    RateLimited {
        /// Seconds until another key may be created.
        retry_after_secs: u64,
    },
    /// Too many keyless portal lookups from one client address.
    #[error("too many lookups without a key from this address; wait, or sign in with an API key")]
    PortalRateLimited {
        /// Seconds until another lookup is allowed.
        retry_after_secs: u64,
    },
    /// The store of keys, usage and reports could not answer.
    #[error("the store of keys, usage and reports is unavailable; try again shortly")]
    StoreUnavailable(#[source] StoreError),
    /// The shared quota cannot be checked (Redis unreachable with the
    /// `closed` fallback); answered as `store_unavailable` with `Retry-After`.
    #[error("the shared quota store is unavailable; nothing was counted, try again shortly")]
    QuotaUnavailable {
        /// Seconds after which to try again.
        retry_after_secs: u64,
    },
    /// No IP data is loaded yet.
    #[error("no IP data is loaded")]
    NotReady,
    /// A request field is missing or malformed; `field` names it.
    #[error("{message}")]
    InvalidField {
        /// The field at fault, e.g. `severity`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The body is neither JSON nor a form.
    #[error("send the body as application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    /// The key reported this address less than 15 minutes ago.
    #[error("this key reported this address less than 15 minutes ago")]
    DuplicateReport {
        /// Seconds until the address may be reported again.
        retry_after_secs: u64,
    },
    /// The key's daily report limit is reached.
    #[error("the daily report limit of this key is used up; it resets at 00:00 UTC")]
    ReportQuotaExceeded {
        /// Seconds until the limit resets.
        retry_after_secs: u64,
    },
    /// The country path segment is not two letters.
    #[error("invalid country code: {0}")]
    InvalidCountry(String),
    /// A well-formed code that is neither an ISO 3166-1 code nor in the data.
    #[error("no such country code")]
    UnknownCountry,
    /// The AS path segment is not an AS number.
    #[error("invalid AS number: {0}")]
    InvalidAsn(String),
    /// The data has no range of this AS.
    #[error("the data has no range of this AS number")]
    UnknownAsn,
    /// The admin route is disabled (no `IPINTEL_ADMIN_TOKEN`) or the token is wrong.
    #[error("admin access is disabled or the admin token is wrong")]
    AdminForbidden,
    /// A batch with more entries than allowed (`Some(count)`), or a body
    /// larger than a full batch can be (`None`).
    #[error("{}", batch_too_large(*.0))]
    BatchTooLarge(Option<usize>),
    /// The request body did not arrive in time.
    #[error("the request body did not arrive within {} s", crate::handlers::body::BODY_TIMEOUT.as_secs())]
    BodyTimeout,
    /// A batch body that is not JSON.
    #[error("send the batch as JSON (Content-Type: application/json)")]
    BatchMediaType,
    /// The key has fewer lookups left today than the batch needs.
    #[error(
        "this batch needs {needed} lookups but the key has {remaining} left today; \
         nothing was counted (the quota resets at 00:00 UTC)"
    )]
    BatchQuotaExceeded {
        /// Distinct valid entries of the batch.
        needed: u64,
        /// Lookups left today.
        remaining: u64,
        /// Seconds until the quota resets.
        retry_after_secs: u64,
    },
    /// Anything unexpected; the cause is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

fn batch_too_large(count: Option<usize>) -> String {
    let limit = crate::handlers::batch::MAX_BATCH;
    match count {
        Some(count) => format!("a batch holds at most {limit} addresses; this one has {count}"),
        None => format!(
            "the body is larger than {} bytes; a batch holds at most {limit} addresses",
            crate::handlers::batch::MAX_BATCH_BODY
        ),
    }
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidIp(_) | Self::InvalidCountry(_) | Self::InvalidAsn(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnknownCountry | Self::UnknownAsn => StatusCode::NOT_FOUND,
            Self::MissingApiKey | Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::RevokedApiKey | Self::AdminForbidden => StatusCode::FORBIDDEN,
            Self::QuotaExceeded { .. }
            | Self::BatchQuotaExceeded { .. }
            | Self::RateLimited { .. }
            | Self::PortalRateLimited { .. }
            | Self::DuplicateReport { .. }
            | Self::ReportQuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType | Self::BatchMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) | Self::QuotaUnavailable { .. } | Self::NotReady => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidIp(_) => "invalid_ip",
            Self::InvalidCountry(_) => "invalid_country",
            Self::UnknownCountry => "unknown_country",
            Self::InvalidAsn(_) => "invalid_asn",
            Self::UnknownAsn => "unknown_asn",
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidApiKey => "invalid_api_key",
            Self::RevokedApiKey => "revoked_api_key",
            Self::QuotaExceeded { .. } | Self::BatchQuotaExceeded { .. } => "quota_exceeded",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::PortalRateLimited { .. } => "portal_rate_limited",
            Self::StoreUnavailable(_) | Self::QuotaUnavailable { .. } => "store_unavailable",
            Self::NotReady => "not_ready",
            Self::InvalidField { .. } => "invalid_field",
            Self::UnsupportedMediaType | Self::BatchMediaType => "unsupported_media_type",
            Self::BatchTooLarge(_) => "batch_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::DuplicateReport { .. } => "duplicate_report",
            Self::ReportQuotaExceeded { .. } => "report_quota_exceeded",
            Self::AdminForbidden => "admin_forbidden",
            Self::Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::QuotaExceeded { retry_after_secs }
            | Self::BatchQuotaExceeded {
                retry_after_secs, ..
            }
            | Self::RateLimited { retry_after_secs }
            | Self::PortalRateLimited { retry_after_secs }
            | Self::DuplicateReport { retry_after_secs }
            | Self::ReportQuotaExceeded { retry_after_secs }
            | Self::QuotaUnavailable { retry_after_secs } => Some(*retry_after_secs),
            Self::StoreUnavailable(_) => Some(STORE_RETRY_AFTER_SECS),
            Self::NotReady => Some(NOT_READY_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    fn log_cause(&self) {
        match self {
            Self::StoreUnavailable(cause) => {
                tracing::error!(error = %cause, "store unavailable");
            }
            Self::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            _ => {}
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Malformed | AuthError::UnknownKey => Self::InvalidApiKey,
            AuthError::Revoked => Self::RevokedApiKey,
            AuthError::QuotaExceeded {
                retry_after_secs, ..
            } => Self::QuotaExceeded { retry_after_secs },
            AuthError::Unavailable(cause) => Self::StoreUnavailable(cause),
            AuthError::QuotaUnavailable { retry_after_secs } => {
                Self::QuotaUnavailable { retry_after_secs }
            }
            other => Self::Internal(format!("unexpected authentication error: {other}")),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::StoreUnavailable(err)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a> {
    pub(crate) error: EnvelopeBody<'a>,
}

/// The inside of [`Envelope`].
#[derive(Debug, Serialize)]
pub(crate) struct EnvelopeBody<'a> {
    pub(crate) code: &'a str,
    pub(crate) message: &'a str,
    pub(crate) status: u16,
    /// The request field at fault (`invalid_field` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<&'a str>,
}

/// Renders an envelope without logging anything.
pub(crate) fn envelope_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = Envelope {
        error: EnvelopeBody {
            code,
            message,
            status: status.as_u16(),
            field: None,
        },
    };
    reply::json(status, &body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_cause();
        let status = self.status();
        let message = match &self {
            Self::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        let field = match &self {
            Self::InvalidField { field, .. } => Some(*field),
            _ => None,
        };
        let body = Envelope {
            error: EnvelopeBody {
                code: self.code(),
                message: &message,
                status: status.as_u16(),
                field,
            },
        };
        let mut response = reply::json(status, &body);
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn envelope_carries_code_message_and_status() {
        let response = ApiError::InvalidIp("bad".into()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "invalid_ip");
        assert_eq!(body["error"]["status"], 400);
        assert!(body["error"]["message"].as_str().unwrap().contains("bad"));
    }

    #[tokio::test]
    async fn internal_error_hides_its_cause() {
        let response = ApiError::Internal("secret detail".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("secret detail"));
    }

    #[tokio::test]
    async fn invalid_field_names_the_field() {
        let response = ApiError::InvalidField {
            field: "severity",
            message: "bad".into(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(body["error"]["field"], "severity");
        let other = body_json(ApiError::NotFound.into_response()).await;
        assert!(other["error"].get("field").is_none());
    }

    #[tokio::test]
    async fn an_unreachable_shared_quota_is_a_503_with_retry_after() {
        let error = ApiError::from(AuthError::QuotaUnavailable {
            retry_after_secs: 2,
        });
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "store_unavailable");
    }

    #[test]
    fn quota_refusal_sets_retry_after() {
        let response = ApiError::QuotaExceeded {
            retry_after_secs: 42,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn store_unavailable_asks_to_retry_shortly() {
        let cause = StoreError::Corrupt {
            table: "reports",
            column: "id",
            message: "database detail".into(),
        };
        let response = ApiError::StoreUnavailable(cause).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry = &response.headers()[header::RETRY_AFTER];
        assert_eq!(retry, &STORE_RETRY_AFTER_SECS.to_string());
        let body = body_json(response).await;
        assert_eq!(body["error"]["code"], "store_unavailable");
        assert!(!body.to_string().contains("database detail"));
    }
}

//! API-key authentication and the rate-limit headers of keyed routes.

use axum::extract::{Request, State};
use axum::http::header::{HeaderName, AUTHORIZATION};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipintel_store::{KeyHandle, Quota};

use crate::clock::now_unix;
use crate::error::ApiError;
use crate::state::AppState;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The key a request was made with, put on the response for the access
/// log, which writes its id (never the secret).
#[derive(Debug, Clone)]
pub(crate) struct KeyTag(pub(crate) KeyHandle);

/// The key text presented in `X-API-Key` or `Authorization: Bearer`.
///
/// `X-API-Key` wins when both are sent. A header that is not valid text,
/// or an `Authorization` header of another scheme, is an invalid key.
pub(crate) fn presented_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    fn text(value: &HeaderValue) -> Result<&str, ApiError> {
        value.to_str().map_err(|_| ApiError::InvalidApiKey)
    }
    if let Some(value) = headers.get(&X_API_KEY) {
        return key_from(Some(text(value)?), None);
    }
    let authorization = headers.get(AUTHORIZATION).map(text).transpose()?;
    key_from(None, authorization)
}

/// [`presented_key`] from the text of the two headers, when present.
pub(crate) fn key_from<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Result<&'a str, ApiError> {
    if let Some(text) = x_api_key {
        return Ok(text.trim());
    }
    let Some(text) = authorization else {
        return Err(ApiError::MissingApiKey);
    };
    let (scheme, token) = text.trim().split_once(' ').ok_or(ApiError::InvalidApiKey)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidApiKey);
    }
    Ok(token.trim())
}

/// Middleware of keyed routes: authenticates the key (no counting), hands
/// the [`KeyHandle`] to the handler, then stamps `X-RateLimit-*` on
/// whatever the handler answered, errors included.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let handle = match authenticate(&state, request.headers()).await {
        Ok(handle) => handle,
        Err(err) => return err.into_response(),
    };
    request.extensions_mut().insert(handle.clone());

    let mut response = next.run(request).await;

    let quota = state.accounts.quota(&handle, now_unix());
    set_rate_limit_headers(response.headers_mut(), &quota);
    response.extensions_mut().insert(KeyTag(handle));
    response
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<KeyHandle, ApiError> {
    let presented = presented_key(headers)?;
    Ok(state.accounts.authenticate(presented).await?)
}

/// Writes `X-RateLimit-Limit`, `-Remaining` and `-Reset` (unix seconds of
/// the next 00:00 UTC).
pub(crate) fn set_rate_limit_headers(headers: &mut HeaderMap, quota: &Quota) {
    headers.insert(LIMIT.clone(), HeaderValue::from(quota.limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(quota.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(quota.reset_unix));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn reads_x_api_key() {
        let map = headers(&[("x-api-key", "ipintel_abc_def")]);
        assert_eq!(presented_key(&map).unwrap(), "ipintel_abc_def");
    }

    #[test]
    fn reads_bearer_token_case_insensitively() {
        let map = headers(&[("authorization", "bearer ipintel_abc_def")]);
        assert_eq!(presented_key(&map).unwrap(), "ipintel_abc_def");
    }

    #[test]
    fn x_api_key_wins_over_authorization() {
        let map = headers(&[("authorization", "Bearer b"), ("x-api-key", "a")]);
        assert_eq!(presented_key(&map).unwrap(), "a");
    }

    #[test]
    fn missing_and_foreign_schemes() {
        assert!(matches!(
            presented_key(&HeaderMap::new()),
            Err(ApiError::MissingApiKey)
        ));
        let basic = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert!(matches!(
            presented_key(&basic),
            Err(ApiError::InvalidApiKey)
        ));
    }
}

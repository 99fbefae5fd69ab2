//! JSON responses serialised into one `Bytes` body.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Room reserved for a body before serialising: a full record is about
/// 1.5 KB, so most bodies are written without growing the buffer.
pub(crate) const BODY_CAPACITY: usize = 2048;

/// Serialises `value` with serde_json and returns it with `status`.
///
/// Serialisation of the API's own types cannot fail in practice; if it
/// does, the cause is logged once and a bare 500 envelope is returned.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => bytes_response(status, Bytes::from(body)),
        Err(err) => {
            tracing::error!(error = %err, "serialising a response failed");
            let fallback =
                br#"{"error":{"code":"internal","message":"internal error","status":500}}"#;
            bytes_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(fallback),
            )
        }
    }
}

/// A response with `status` holding already serialised JSON.
pub(crate) fn bytes_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, JSON);
    response
}

/// `json` with status 200.
pub(crate) fn ok<T: Serialize + ?Sized>(value: &T) -> Response {
    json(StatusCode::OK, value)
}

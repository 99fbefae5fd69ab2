//! Reading a request body whole, within a size and a time limit.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::LengthLimitError;

/// How long a body may take to arrive once the head is in. A client that
/// sends a head and then trickles (or withholds) its body would otherwise
/// hold a connection slot for as long as it likes.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// It broke off: a malformed chunk, a closed connection.
    Broken(String),
    /// It did not arrive within [`BODY_TIMEOUT`].
    TimedOut,
}

/// The whole body, at most `limit` bytes, within [`BODY_TIMEOUT`].
pub(crate) async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => {
            let cause = err.into_inner();
            if cause.is::<LengthLimitError>() {
                Err(BodyError::TooLarge)
            } else {
                Err(BodyError::Broken(cause.to_string()))
            }
        }
    }
}

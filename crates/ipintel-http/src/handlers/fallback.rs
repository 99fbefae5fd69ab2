//! Answers for unknown paths and wrong methods, in the error envelope.

use crate::error::ApiError;

/// Any path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A known path with a method it does not serve; axum adds `Allow`.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

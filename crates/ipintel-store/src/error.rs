//! Error types of the store and of the request path.

use std::path::PathBuf;

use crate::accounts::Quota;

/// A failure of the key/usage store.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory for the database file could not be created.
    #[error("cannot create database directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The task running the call on the store's runtime failed (it
    /// panicked, or that runtime is shutting down).
    #[error("store task failed: {0}")]
    Task(String),
    /// A write in flight to the store did not finish in time (a database
    /// that stopped answering mid-statement); nothing was read.
    #[error("timed out waiting for {0}")]
    TimedOut(&'static str),
    /// A row holds a value this code cannot read (edited by hand, or newer schema).
    #[error("unreadable value in {table}.{column}: {message}")]
    Corrupt {
        /// Table of the value.
        table: &'static str,
        /// Column of the value.
        column: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The shared quota's Redis client could not be set up (a URL it
    /// cannot use). An unreachable server is not this error: it is a
    /// fallback, see `SharedQuota`.
    #[error("shared quota: {0}")]
    SharedQuota(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(error)
    }
}

/// Why a request's key was not admitted.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum AuthError {
    /// The text is not of the form `ipintel_<id>_<secret>`.
    #[error("malformed API key")]
    Malformed,
    /// No such key, or the secret does not match (deliberately not told apart).
    #[error("unknown API key")]
    UnknownKey,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
    /// Today's quota would be exceeded; nothing was counted.
    #[error("daily quota of {} lookups exceeded", quota.limit)]
    QuotaExceeded {
        /// The quota as it stands.
        quota: Quota,
        /// Seconds until the quota resets (next 00:00 UTC), at least 1.
        retry_after_secs: u64,
    },
    /// The shared quota cannot be checked (Redis unreachable and the
    /// `closed` fallback in force); nothing was counted.
    #[error("shared quota unavailable")]
    QuotaUnavailable {
        /// Seconds after which to try again.
        retry_after_secs: u64,
    },
    /// The store could not be reached to look the key up.
    #[error("key store unavailable: {0}")]
    Unavailable(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        AuthError::Unavailable(error)
    }
}

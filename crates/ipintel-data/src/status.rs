//! What the service reports about each source: `/readyz` and the metrics.

use serde::Serialize;

/// Health of every source, with the snapshot in service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataStatus {
    /// When the snapshot in service was built (unix seconds).
    pub built_at_unix: i64,
    /// The last reload attempt (unix seconds), if any.
    pub last_reload_unix: Option<i64>,
    /// Why the last reload failed, when it did (the last good snapshot stays).
    pub last_reload_error: Option<String>,
    /// One entry per source of the sources file.
    pub sources: Vec<SourceStatus>,
}

/// Health of one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// Source name.
    pub name: String,
    /// What it tells (`geo`, `asn`, `tor`, ...).
    pub kinds: Vec<String>,
    /// Its URL or files.
    pub location: String,
    /// When its data last loaded or downloaded successfully (unix seconds).
    pub last_success_unix: Option<i64>,
    /// Date of its data (`YYYY-MM-DD`).
    pub data_date: Option<String>,
    /// Records in service.
    pub records: u64,
    /// The last error, kept until the source loads again.
    pub last_error: Option<SourceError>,
}

/// An error of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceError {
    /// What went wrong; names the file and line for a parse error.
    pub message: String,
    /// When (unix seconds).
    pub at_unix: i64,
}

impl DataStatus {
    /// The entry of `name`.
    pub fn source(&self, name: &str) -> Option<&SourceStatus> {
        self.sources.iter().find(|s| s.name == name)
    }
}

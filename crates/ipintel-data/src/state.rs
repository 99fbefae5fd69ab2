//! Per-source download state, kept in `<data dir>/sources-state.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// File name of the state file in the data directory.
pub const STATE_FILE: &str = "sources-state.json";

/// What is known about one downloaded source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    /// `ETag` of the copy on disk.
    pub etag: Option<String>,
    /// `Last-Modified` of the copy on disk.
    pub last_modified: Option<String>,
    /// Last attempt to download (unix seconds).
    pub last_attempt_unix: Option<i64>,
    /// Last download that ended with a good copy on disk, new or unchanged (unix seconds).
    pub last_success_unix: Option<i64>,
    /// When the copy on disk was written (unix seconds).
    pub stored_unix: Option<i64>,
    /// Why the last attempt failed; cleared by a success.
    pub last_error: Option<String>,
    /// When that failure happened (unix seconds).
    pub last_error_unix: Option<i64>,
    /// Records in the copy on disk.
    pub records: Option<u64>,
    /// SHA-256 of the copy on disk (checked when the snapshot is built).
    pub sha256: Option<String>,
    /// Size of the copy on disk.
    pub bytes: Option<u64>,
    /// Data date of the copy on disk (`YYYY-MM-DD`), from the feed or its download.
    pub data_date: Option<String>,
}

/// The state of every downloaded source, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedStates {
    /// Sources by name.
    pub sources: BTreeMap<String, FeedState>,
}

impl FeedStates {
    /// Path of the state file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads the state file; a missing file is an empty state.
    pub fn read(dir: &Path) -> Result<Self, DataError> {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| DataError::parse(&path, e.line() as u64, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(DataError::Io { path, source }),
        }
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn write(&self, dir: &Path) -> Result<(), DataError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let io = |source| DataError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// State of `name`, if it was ever downloaded.
    pub fn get(&self, name: &str) -> Option<&FeedState> {
        self.sources.get(name)
    }
}

//! The one error type of the loaders.

use std::path::PathBuf;

/// Why a data directory could not be loaded.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DataError {
    /// `manifest.json` does not exist.
    #[error("no manifest at {path}")]
    MissingManifest {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// `manifest.json` is not what `scripts/fetch_data.py` writes.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The manifest lists no file for a role the loader needs.
    #[error("manifest lists no file with role {role}")]
    MissingRole {
        /// The role, e.g. `geo-mmdb`.
        role: String,
    },
    /// A file's SHA-256 differs from the one recorded for it.
    #[error("{file}: SHA-256 {actual} does not match {expected} recorded in {recorded_in}")]
    Checksum {
        /// The file.
        file: PathBuf,
        /// Where the expected digest is recorded: `manifest.json` for
        /// packaged files, `sources-state.json` for downloaded feeds.
        recorded_in: PathBuf,
        /// The recorded digest.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
    /// A file's size differs from the manifest.
    #[error("{file}: {actual} bytes, the manifest says {expected}")]
    Size {
        /// The file.
        file: PathBuf,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A record in a file is malformed. `line` is the 1-based line for text
    /// files, the 1-based record number for binary tables, 0 when the format
    /// has no lines (JSON, mmdb).
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// Line or record number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The sources file is unusable.
    #[error(transparent)]
    Sources(#[from] crate::sources::SourcesError),
    /// A download failed or was held back.
    #[error("{source_name}: {message}")]
    Download {
        /// The source.
        source_name: String,
        /// What happened (URL, HTTP status, size, shrink, parse error with file and line).
        message: String,
    },
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl DataError {
    /// The file the error is about, if it names one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            DataError::Checksum { file, .. }
            | DataError::Size { file, .. }
            | DataError::Parse { file, .. } => Some(file),
            DataError::Io { path, .. } => Some(path),
            _ => None,
        }
    }

    /// A [`DataError::Parse`] for `file` at `line`.
    pub(crate) fn parse(file: &std::path::Path, line: u64, message: impl Into<String>) -> Self {
        DataError::Parse {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

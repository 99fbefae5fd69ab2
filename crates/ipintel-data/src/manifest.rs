//! `data/manifest.json`, as written by `scripts/fetch_data.py`.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::DataError;

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Format version (1).
    pub manifest_version: u32,
    /// When the data was fetched (RFC 3339).
    pub fetched_at: Option<String>,
    /// One entry per package.
    pub sources: Vec<ManifestSource>,
}

/// One fetched package.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestSource {
    /// Short name, e.g. `iporigin`.
    pub name: String,
    /// Registry package name.
    pub package: Option<String>,
    /// Package version.
    pub version: Option<String>,
    /// Date of the data.
    pub data_date: Option<String>,
    /// Licence.
    pub licence: String,
    /// Attribution line.
    pub attribution: String,
    /// Data files.
    pub files: Vec<ManifestFile>,
}

/// One data file.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestFile {
    /// Path relative to the data directory.
    pub path: String,
    /// What the file is, e.g. `geo-mmdb`, `asn-csv`, `netset`.
    pub role: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Date of the data in this file.
    pub data_date: Option<String>,
}

/// Name of the manifest in a data directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Reads and parses `<dir>/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, DataError> {
    let path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::MissingManifest { path });
        }
        Err(source) => return Err(DataError::Io { path, source }),
    };
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| DataError::Manifest {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if manifest.manifest_version != 1 {
        let message = format!("unsupported manifest_version {}", manifest.manifest_version);
        return Err(DataError::Manifest { path, message });
    }
    for f in manifest.sources.iter().flat_map(|s| &s.files) {
        if !is_relative_inside(&f.path) {
            let message = format!("file path {:?} must be relative, without ..", f.path);
            return Err(DataError::Manifest { path, message });
        }
    }
    Ok(manifest)
}

fn is_relative_inside(path: &str) -> bool {
    Path::new(path)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
}

/// Reads a listed file and checks its size and SHA-256 against the manifest.
pub fn read_verified(dir: &Path, file: &ManifestFile) -> Result<(PathBuf, Vec<u8>), DataError> {
    let path = dir.join(&file.path);
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    if bytes.len() as u64 != file.bytes {
        return Err(DataError::Size {
            file: path,
            expected: file.bytes,
            actual: bytes.len() as u64,
        });
    }
    let actual = hex(&Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(&file.sha256) {
        return Err(DataError::Checksum {
            file: path,
            recorded_in: dir.join(MANIFEST_FILE),
            expected: file.sha256.clone(),
            actual,
        });
    }
    Ok((path, bytes))
}

/// Lowercase hex of a digest.
pub fn hex_digest(bytes: &[u8]) -> String {
    hex(bytes)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside() {
        assert!(is_relative_inside("asn/asn-ipv4.csv"));
        assert!(!is_relative_inside("../etc/passwd"));
        assert!(!is_relative_inside("/etc/passwd"));
        assert!(!is_relative_inside("a/../../b"));
    }

    #[test]
    fn sha256_hex() {
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

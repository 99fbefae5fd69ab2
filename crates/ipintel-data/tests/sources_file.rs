//! `config/sources.toml` reproduces the snapshot that the manifest alone
//! describes: same sources in the same order, same metadata, same answers.
//! Loads the real data twice: run in release mode
//! (`cargo test --release -p ipintel-data --test sources_file`).

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipintel_core::Snapshot;
use ipintel_data::{load_snapshot, load_sources, SourcesConfig};
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> PathBuf {
    std::env::var_os("IPINTEL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("data"))
}

/// Metadata plus the full records of a fixed pseudo-random sample of
/// addresses (both families), hashed.
fn fingerprint(snapshot: &Snapshot) -> (String, String, usize, Vec<String>) {
    let mut meta = serde_json::to_value(snapshot.meta()).unwrap();
    meta["built_at_unix"] = 0.into();
    meta["build_ms"] = 0.into();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut hash = Sha256::new();
    let mut flagged = 0;
    let mut records = Vec::new();
    for i in 0..200_000u32 {
        let ip = if i % 4 == 0 {
            let high = u128::from(0x2000_u16 | (next() as u16 & 0x1fff)) << 112;
            IpAddr::V6(Ipv6Addr::from(high | u128::from(next())))
        } else {
            IpAddr::V4(Ipv4Addr::from(next() as u32))
        };
        let record = serde_json::to_string(&snapshot.lookup(ip)).unwrap();
        flagged += usize::from(record.contains("\"reasons\":[{"));
        hash.update(record.as_bytes());
        if records.len() < 50_000 {
            records.push(record);
        }
    }
    let digest = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    (meta.to_string(), digest, flagged, records)
}

#[test]
fn packaged_sources_file_reproduces_the_manifest_snapshot() {
    let dir = data_dir();
    let from_manifest = fingerprint(&load_snapshot(&dir).unwrap());
    let config = SourcesConfig::from_file(&repo().join("config/sources.toml")).unwrap();
    let from_file = fingerprint(&load_sources(&dir, &config).unwrap());
    assert!(
        from_manifest.2 > 1000,
        "the sample hits few signals: {}",
        from_manifest.2
    );
    assert_eq!(from_manifest.0, from_file.0, "metadata differs");
    let first = from_manifest
        .3
        .iter()
        .zip(&from_file.3)
        .find(|(a, b)| a != b);
    assert_eq!(first, None, "first differing answer");
    assert_eq!(from_manifest.1, from_file.1, "answers differ");
    eprintln!(
        "sample: 200000 addresses, {} with reasons, identical",
        from_file.2
    );
}

//! `load_snapshot` refuses a data directory whose manifest or files do not
//! check out, before parsing anything.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ipintel_data::sources::feed_path;
use ipintel_data::state::{FeedState, FeedStates};
use ipintel_data::{load_snapshot, load_sources, DataError, SourcesConfig};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_manifest(dir: &Path, files: &[(&str, &str, &str, u64)]) {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, role, sha, bytes)| {
            serde_json::json!({"path": path, "role": role, "sha256": sha, "bytes": bytes, "data_date": "2026-01-01"})
        })
        .collect();
    let manifest = serde_json::json!({
        "manifest_version": 1,
        "fetched_at": "2026-01-01T00:00:00+00:00",
        "sources": [{
            "name": "fixture", "registry": "npm", "package": "fixture", "version": "1",
            "data_date": "2026-01-01", "licence": "test", "attribution": "test",
            "files": files
        }]
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("geo.mmdb"), b"not really a database").unwrap();
    std::fs::write(
        dir.path().join("asn.csv"),
        b"1.0.0.0,1.0.0.255,13335,Cloudflare\n",
    )
    .unwrap();
    dir
}

#[test]
fn missing_manifest() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_snapshot(dir.path()),
        Err(DataError::MissingManifest { .. })
    ));
}

#[test]
fn checksum_mismatch_is_refused() {
    let dir = fixture_dir();
    let asn = b"1.0.0.0,1.0.0.255,13335,Cloudflare\n";
    write_manifest(
        dir.path(),
        &[
            ("geo.mmdb", "geo-mmdb", &"0".repeat(64), 21),
            ("asn.csv", "asn-csv", &sha256_hex(asn), asn.len() as u64),
        ],
    );
    match load_snapshot(dir.path()) {
        Err(err @ DataError::Checksum { .. }) => {
            let DataError::Checksum {
                file, recorded_in, ..
            } = &err
            else {
                unreachable!()
            };
            assert!(file.ends_with("geo.mmdb"));
            assert!(recorded_in.ends_with("manifest.json"));
            assert!(err.to_string().contains("manifest.json"), "{err}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

#[test]
fn a_downloaded_feed_is_checked_against_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("geo.csv"),
        "5.0.0.0,7.255.255.255,DE,Berlin,,Berlin,,52.52,13.40\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("feeds")).unwrap();
    std::fs::write(root.join(feed_path("testfeed")), "192.0.2.0/24\n").unwrap();
    let mut states = FeedStates::default();
    states.sources.insert(
        "testfeed".into(),
        FeedState {
            sha256: Some("0".repeat(64)),
            ..FeedState::default()
        },
    );
    states.write(root).unwrap();
    let sources = root.join("sources.toml");
    std::fs::write(
        &sources,
        "[[source]]\nname = \"fixture-geo\"\ntells = [\"geo\"]\nformat = \"csv-geo\"\n\
         location = \"geo.csv\"\nlicence = \"test\"\nattribution = \"test\"\n\n\
         [[source]]\nname = \"testfeed\"\ntells = [\"blocklist\"]\nformat = \"netset\"\n\
         location = \"http://127.0.0.1:9/feed\"\nrefresh = \"1h\"\nlicence = \"test\"\n\
         attribution = \"test\"\n",
    )
    .unwrap();
    let config = SourcesConfig::from_file(&sources).unwrap();

    let err = load_sources(root, &config).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
    assert!(text.contains("sources-state.json"), "{text}");
    assert!(!text.contains("manifest"), "{text}");
}

#[test]
fn size_mismatch_is_refused() {
    let dir = fixture_dir();
    let geo = b"not really a database";
    write_manifest(
        dir.path(),
        &[
            ("geo.mmdb", "geo-mmdb", &sha256_hex(geo), 5),
            ("asn.csv", "asn-csv", "00", 1),
        ],
    );
    assert!(matches!(
        load_snapshot(dir.path()),
        Err(DataError::Size { expected: 5, .. })
    ));
}

#[test]
fn corrupt_database_with_a_good_checksum_is_a_parse_error() {
    let dir = fixture_dir();
    let geo = b"not really a database";
    let asn = b"1.0.0.0,1.0.0.255,13335,Cloudflare\n";
    write_manifest(
        dir.path(),
        &[
            ("geo.mmdb", "geo-mmdb", &sha256_hex(geo), geo.len() as u64),
            ("asn.csv", "asn-csv", &sha256_hex(asn), asn.len() as u64),
        ],
    );
    let err = load_snapshot(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("geo.mmdb"), "{err}");
}

#[test]
fn paths_outside_the_directory_are_refused() {
    let dir = fixture_dir();
    write_manifest(
        dir.path(),
        &[
            ("../geo.mmdb", "geo-mmdb", "00", 1),
            ("asn.csv", "asn-csv", "00", 1),
        ],
    );
    assert!(matches!(
        load_snapshot(dir.path()),
        Err(DataError::Manifest { .. })
    ));
}

#[test]
fn required_roles_must_be_listed() {
    let dir = fixture_dir();
    write_manifest(dir.path(), &[("asn.csv", "asn-csv", "00", 1)]);
    match load_snapshot(dir.path()) {
        Err(DataError::MissingRole { role }) => assert_eq!(role, "geo-mmdb"),
        other => panic!("expected a missing role, got {other:?}"),
    }
}

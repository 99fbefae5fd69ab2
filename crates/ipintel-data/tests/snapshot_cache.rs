//! The snapshot cache: the first load writes `cache/snapshot.bin`, the
//! next reads it, and any change to what the build reads (a data file,
//! the manifest, the feed state, the sources) makes the load build again.
//! `IPINTEL_SNAPSHOT_CACHE=off` is tested in `snapshot_cache_off.rs` (its
//! own process, as it sets a variable).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ipintel_core::addr::parse_ip;
use ipintel_core::Snapshot;
use ipintel_data::cache::{CACHE_DIR, CACHE_FILE};
use ipintel_data::{load_sources_report, Aggregates, CacheUse, LoadReport, SourcesConfig};

const SOURCES: &str = r#"
[[source]]
name = "geo"
tells = ["geo"]
format = "csv-geo"
location = "geo.csv"
licence = "test"
attribution = "test"

[[source]]
name = "asn"
tells = ["asn"]
format = "csv-asn"
location = "asn.csv"
licence = "test"
attribution = "test"

[[source]]
name = "blocks"
tells = ["blocklist"]
format = "netset"
location = "blocks.netset"
licence = "test"
attribution = "test"
"#;

const FILES: [&str; 3] = ["geo.csv", "asn.csv", "blocks.netset"];

/// An hour ago: older than the cache's settling time.
fn an_hour_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
}

/// Sets the modification time of `dir/name`.
fn set_mtime(dir: &Path, name: &str, time: SystemTime) {
    let file = std::fs::File::options()
        .write(true)
        .open(dir.join(name))
        .unwrap();
    file.set_modified(time).unwrap();
}

/// A data directory whose files were last changed an hour ago.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "geo.csv",
        "8.8.8.0,8.8.8.255,US,California,,Mountain View,,37.4,-122.1\n\
         2a01:4f8::,2a01:4f8:ffff:ffff:ffff:ffff:ffff:ffff,DE,Bavaria,,Gunzenhausen,,49.1,10.7\n",
    );
    write("asn.csv", "8.8.8.0,8.8.8.255,15169,Google LLC\n");
    write("blocks.netset", "9.9.9.0/24\n2a01:4f8:1::/48\n");
    for name in FILES {
        set_mtime(dir.path(), name, an_hour_ago());
    }
    dir
}

fn config(text: &str) -> SourcesConfig {
    SourcesConfig::from_toml(Path::new("sources.toml"), text).unwrap()
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join(CACHE_DIR).join(CACHE_FILE)
}

fn load(dir: &Path, text: &str) -> (Snapshot, LoadReport) {
    load_sources_report(dir, &config(text), Aggregates::OnFirstUse).unwrap()
}

fn answers(s: &Snapshot) -> String {
    [
        "8.8.8.8",
        "9.9.9.9",
        "2a01:4f8:1::1",
        "2a01:4f8:2::1",
        "1.1.1.1",
    ]
    .iter()
    .map(|ip| serde_json::to_string(&s.lookup(parse_ip(ip).unwrap())).unwrap())
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn the_first_load_writes_the_cache_and_the_second_reads_it() {
    let dir = data_dir();
    let (built, report) = load(dir.path(), SOURCES);
    assert_eq!(report.cache, CacheUse::Written);
    assert_eq!(report.miss.as_deref(), Some("no cache file yet"));
    assert!(cache_file(dir.path()).is_file());

    let (read, report) = load(dir.path(), SOURCES);
    assert_eq!(report.cache, CacheUse::Read, "{report:?}");
    assert_eq!(report.miss, None);
    assert_eq!(answers(&built), answers(&read));
    assert_eq!(built.meta().built_at_unix, read.meta().built_at_unix);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path().join(CACHE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [CACHE_FILE]);
}

#[test]
fn a_touched_data_file_makes_the_load_build_again() {
    let dir = data_dir();
    load(dir.path(), SOURCES);
    for name in FILES {
        // The same bytes, another modification time.
        set_mtime(dir.path(), name, an_hour_ago() - Duration::from_secs(60));
        let (_, report) = load(dir.path(), SOURCES);
        let miss = report.miss.unwrap_or_default();
        assert!(miss.contains(name), "{name}: {miss}");
        assert_eq!(report.cache, CacheUse::Written, "{name}");
        assert_eq!(load(dir.path(), SOURCES).1.cache, CacheUse::Read, "{name}");
    }
}

#[cfg(unix)]
#[test]
fn a_changed_data_file_is_answered_from_its_new_content() {
    let dir = data_dir();
    let (before, _) = load(dir.path(), SOURCES);
    // Same size, same modification time: only the inode and change time
    // tell (a file replaced by a rename, as downloads are).
    let path = dir.path().join("blocks.netset");
    let tmp = dir.path().join("blocks.netset.new");
    std::fs::write(&tmp, "8.8.8.0/24\n2a01:4f8:1::/48\n").unwrap();
    assert_eq!(
        std::fs::metadata(&tmp).unwrap().len(),
        std::fs::metadata(&path).unwrap().len()
    );
    let old_mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(old_mtime)
        .unwrap();
    std::fs::rename(&tmp, &path).unwrap();

    let (after, report) = load(dir.path(), SOURCES);
    assert_ne!(report.cache, CacheUse::Read);
    assert!(report.miss.unwrap_or_default().contains("blocks.netset"));
    assert_ne!(answers(&before), answers(&after));
    let ip = parse_ip("8.8.8.8").unwrap();
    assert_eq!(after.lookup(ip).score(), 70);
}

#[test]
fn changed_sources_make_the_load_build_again() {
    let dir = data_dir();
    load(dir.path(), SOURCES);
    let weighted = SOURCES.replace(
        "location = \"blocks.netset\"",
        "location = \"blocks.netset\"\nweights = { blocklist = { weight = 20, confidence = 0.5 } }",
    );
    let (snapshot, report) = load(dir.path(), &weighted);
    assert_eq!(report.miss.as_deref(), Some("sources changed"));
    assert_eq!(report.cache, CacheUse::Written);
    assert_eq!(snapshot.lookup(parse_ip("9.9.9.9").unwrap()).score(), 20);
    assert_eq!(load(dir.path(), &weighted).1.cache, CacheUse::Read);
    let (snapshot, report) = load(dir.path(), SOURCES);
    assert_eq!(report.cache, CacheUse::Written);
    assert_eq!(snapshot.lookup(parse_ip("9.9.9.9").unwrap()).score(), 70);
}

#[test]
fn a_new_manifest_or_feed_state_makes_the_load_build_again() {
    let dir = data_dir();
    load(dir.path(), SOURCES);
    for name in ["manifest.json", "sources-state.json"] {
        let text = match name {
            "manifest.json" => r#"{"manifest_version": 1, "sources": []}"#,
            _ => r#"{"sources": {}}"#,
        };
        std::fs::write(dir.path().join(name), text).unwrap();
        set_mtime(dir.path(), name, an_hour_ago());
        let (_, report) = load(dir.path(), SOURCES);
        let miss = report.miss.unwrap_or_default();
        assert!(miss.contains(name), "{name}: {miss}");
        assert_eq!(load(dir.path(), SOURCES).1.cache, CacheUse::Read, "{name}");
    }
}

#[test]
fn a_damaged_cache_file_is_built_over() {
    let dir = data_dir();
    let (built, _) = load(dir.path(), SOURCES);
    let path = cache_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    let (rebuilt, report) = load(dir.path(), SOURCES);
    assert!(report.miss.unwrap_or_default().contains("checksum"));
    assert_eq!(report.cache, CacheUse::Written);
    assert_eq!(answers(&built), answers(&rebuilt));
    assert_eq!(load(dir.path(), SOURCES).1.cache, CacheUse::Read);

    // Cut short, or not a snapshot at all.
    for junk in [&bytes[..bytes.len() - 100], b"not a snapshot".as_slice()] {
        std::fs::write(&path, junk).unwrap();
        let (snapshot, report) = load(dir.path(), SOURCES);
        assert!(report.miss.is_some());
        assert_eq!(report.cache, CacheUse::Written);
        assert_eq!(answers(&built), answers(&snapshot));
    }
}

#[test]
fn inputs_changed_just_now_are_not_cached() {
    let dir = data_dir();
    std::fs::write(
        dir.path().join("asn.csv"),
        "8.8.8.0,8.8.8.255,15169,Google\n",
    )
    .unwrap();
    let (_, report) = load(dir.path(), SOURCES);
    assert!(
        matches!(&report.cache, CacheUse::NotWritten(why) if why.contains("changed less than")),
        "{report:?}"
    );
    assert!(!cache_file(dir.path()).exists());
}

#[test]
fn a_failed_build_writes_nothing() {
    let dir = data_dir();
    std::fs::write(dir.path().join("blocks.netset"), "9.9.9.0/33\n").unwrap();
    set_mtime(dir.path(), "blocks.netset", an_hour_ago());
    let err = load_sources_report(dir.path(), &config(SOURCES), Aggregates::Now).unwrap_err();
    assert!(err.to_string().contains("blocks.netset"), "{err}");
    assert!(!cache_file(dir.path()).exists());
}

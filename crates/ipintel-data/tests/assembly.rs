//! How parsed files are combined into one snapshot: files are parsed on
//! worker threads and fed to the builder as they come, yet sources keep
//! the sources file's order, a source's files add up, and the first
//! broken file in that order is the one reported.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ipintel_core::addr::parse_ip;
use ipintel_data::{load_sources, load_sources_with, Aggregates, SourcesConfig};

const SOURCES: &str = r#"
[[source]]
name = "geo"
tells = ["geo"]
format = "csv-geo"
location = ["geo-v4.csv", "geo-v6.csv"]
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
location = ["big.netset", "small.netset"]
licence = "test"
attribution = "test"
"#;

/// A data directory for [`SOURCES`]; `big.netset` is much larger than the
/// other files, so it is parsed first and finishes last.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "geo-v4.csv",
        "1.0.0.0,1.0.0.255,AU,Queensland,,South Brisbane,,-27.48,153.02\n\
         8.8.8.0,8.8.8.255,US,California,,Mountain View,,37.4,-122.1\n",
    );
    write(
        "geo-v6.csv",
        "2a01:4f8::,2a01:4f8:ffff:ffff:ffff:ffff:ffff:ffff,DE,Bavaria,,Gunzenhausen,,49.1,10.7\n",
    );
    write("asn.csv", "8.8.8.0,8.8.8.255,15169,Google LLC\n");
    let big: String = (0..20_000u32)
        .map(|i| format!("60.{}.{}.0/24\n", i / 256, i % 256))
        .collect();
    write("big.netset", &big);
    write("small.netset", "2a01:4f8:1::/48\n9.9.9.0/24\n");
    dir
}

fn config(dir: &Path) -> SourcesConfig {
    SourcesConfig::from_toml(&dir.join("sources.toml"), SOURCES).unwrap()
}

#[test]
fn sources_keep_their_order_and_add_up_their_files() {
    let dir = data_dir();
    let snapshot = load_sources(dir.path(), &config(dir.path())).unwrap();

    let sources: Vec<(&str, u64)> = snapshot
        .meta()
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.records))
        .collect();
    assert_eq!(sources, [("geo", 3), ("asn", 1), ("blocks", 20_002)]);
    let lookup = |addr: &str| snapshot.lookup(parse_ip(addr).unwrap());
    assert_eq!(lookup("1.0.0.1").geo.city, Some("South Brisbane"));
    assert_eq!(lookup("2a01:4f8:2::1").geo.city, Some("Gunzenhausen"));
    assert_eq!(lookup("8.8.8.8").network.asn, Some(15169));
    for listed in ["60.0.0.1", "60.78.31.1", "9.9.9.9", "2a01:4f8:1::1"] {
        let reasons = &lookup(listed).threat.reasons;
        assert_eq!(reasons.len(), 1, "{listed}");
        assert_eq!(&*reasons[0].source, "blocks", "{listed}");
    }
    assert!(lookup("8.8.8.8").threat.reasons.is_empty());
}

#[test]
fn the_first_broken_file_in_source_order_is_reported() {
    let dir = data_dir();
    // Both broken; the big one is parsed first, the geo file comes first.
    std::fs::write(dir.path().join("geo-v6.csv"), "not,a,geo,row\n").unwrap();
    std::fs::write(dir.path().join("big.netset"), "300.0.0.0/8\n").unwrap();
    for _ in 0..5 {
        let err = load_sources(dir.path(), &config(dir.path())).unwrap_err();
        assert!(err.to_string().contains("geo-v6.csv"), "{err}");
    }
}

#[test]
fn aggregates_left_for_first_use_answer_the_same() {
    let dir = data_dir();
    let now = load_sources(dir.path(), &config(dir.path())).unwrap();
    let later = load_sources_with(dir.path(), &config(dir.path()), Aggregates::OnFirstUse).unwrap();
    for addr in ["1.0.0.1", "8.8.8.8", "9.9.9.9", "2a01:4f8:1::1"] {
        let ip = parse_ip(addr).unwrap();
        assert_eq!(
            serde_json::to_string(&now.lookup(ip)).unwrap(),
            serde_json::to_string(&later.lookup(ip)).unwrap()
        );
    }
    assert_eq!(
        format!("{:?}", now.country_intel("US")),
        format!("{:?}", later.country_intel("US"))
    );
}

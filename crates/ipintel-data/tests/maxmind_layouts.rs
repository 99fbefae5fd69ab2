//! MaxMind-layout databases as sources, on the MaxMind DB test corpus that
//! `IPINTEL_SHARED_DIR/maxmind-db-test-data` holds (skipped without it):
//! a GeoLite2 City and a GeoLite2 ASN database build a snapshot whose answers
//! match the JSON the databases were built from, and every corrupt database
//! is refused by the loader.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ipintel_data::{load_sources, SourcesConfig};

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(&std::env::var_os("IPINTEL_SHARED_DIR")?).join("maxmind-db-test-data");
    dir.is_dir().then_some(dir)
}

fn sources(geo: &str) -> SourcesConfig {
    let text = format!(
        "[[source]]\nname = \"city\"\ntells = [\"geo\"]\nformat = \"mmdb-geolite2-city\"\nlocation = \"{geo}\"\n\n\
         [[source]]\nname = \"asn\"\ntells = [\"asn\"]\nformat = \"mmdb-geolite2-asn\"\nlocation = \"asn.mmdb\"\n"
    );
    SourcesConfig::from_toml(Path::new("t.toml"), &text).unwrap()
}

#[test]
fn geolite2_city_and_asn_layouts() {
    let Some(base) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| {
        std::fs::copy(base.join(from), dir.path().join(to)).unwrap();
    };
    copy("test-data/GeoLite2-City-Test.mmdb", "city.mmdb");
    copy("test-data/GeoLite2-ASN-Test.mmdb", "asn.mmdb");
    let snapshot = load_sources(dir.path(), &sources("city.mmdb")).unwrap();
    let record = serde_json::to_value(snapshot.lookup("81.2.69.142".parse().unwrap())).unwrap();
    assert_eq!(record["geo"]["country"], "GB", "{record}");
    assert_eq!(record["geo"]["city"], "London", "{record}");
    assert_eq!(record["geo"]["region"], "England", "{record}");
    assert_eq!(record["geo"]["latitude"], 51.5142, "{record}");
    let google = serde_json::to_value(snapshot.lookup("1.0.0.1".parse().unwrap())).unwrap();
    assert_eq!(google["network"]["asn"], 15169, "{google}");
    assert_eq!(google["network"]["isp"], "Google Inc.", "{google}");

    for entry in std::fs::read_dir(base.join("bad-data")).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join("bad.mmdb")).unwrap();
        let result = load_sources(dir.path(), &sources("bad.mmdb"));
        let err = result
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", entry.path().display()));
        assert!(err.to_string().contains("bad.mmdb"), "{err}");
    }
}

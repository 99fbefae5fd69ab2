//! `IPINTEL_SNAPSHOT_CACHE=off`: the cache is neither read nor written.
//! One test in its own process, since it sets the variable.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use ipintel_data::cache::{CACHE_DIR, CACHE_FILE};
use ipintel_data::{load_sources_report, Aggregates, CacheUse, SourcesConfig, CACHE_ENV};

const SOURCES: &str = r#"
[[source]]
name = "blocks"
tells = ["blocklist"]
format = "netset"
location = "blocks.netset"
licence = "test"
attribution = "test"
"#;

#[test]
fn off_bypasses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.netset");
    std::fs::write(&path, "9.9.9.0/24\n").unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let config = SourcesConfig::from_toml(Path::new("sources.toml"), SOURCES).unwrap();
    let load = || {
        load_sources_report(dir.path(), &config, Aggregates::Now)
            .unwrap()
            .1
    };
    let cache = dir.path().join(CACHE_DIR).join(CACHE_FILE);

    std::env::set_var(CACHE_ENV, "off");
    let report = load();
    assert_eq!((report.cache, report.miss), (CacheUse::Off, None));
    assert!(!cache.exists());

    // A cache written while it was on is not read while it is off.
    std::env::set_var(CACHE_ENV, "on");
    assert_eq!(load().cache, CacheUse::Written);
    assert_eq!(load().cache, CacheUse::Read);
    std::env::set_var(CACHE_ENV, "off");
    assert_eq!(load().cache, CacheUse::Off);

    // An unknown value turns the cache off rather than guess.
    std::env::set_var(CACHE_ENV, "maybe");
    assert_eq!(load().cache, CacheUse::Off);
    std::env::remove_var(CACHE_ENV);
    assert_eq!(load().cache, CacheUse::Read);
}

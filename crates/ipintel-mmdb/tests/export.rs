//! Exported databases read back with the `maxminddb` crate: every field of
//! every probed address must equal what `Snapshot::lookup` answers.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::net::IpAddr;

use ipintel_core::{
    GeoData, IpRange, Signal, SignalKind, Snapshot, SnapshotBuilder, SourceId, SourceMeta,
};
use ipintel_mmdb::export::DATABASE_TYPE;
use ipintel_mmdb::export_snapshot;
use maxminddb::Reader;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn r(text: &str) -> IpRange {
    match text.split_once('-') {
        Some((a, b)) => IpRange::new(a.parse().unwrap(), b.parse().unwrap()).unwrap(),
        None => IpRange::from_cidr(text).unwrap(),
    }
}

fn source(b: &mut SnapshotBuilder, name: &str) -> SourceId {
    b.source(SourceMeta {
        name: name.into(),
        package: None,
        version: None,
        data_date: Some("2026-06-17".into()),
        licence: "CC0".into(),
        attribution: format!("{name} test data"),
        records: 0,
    })
}

fn signal(source: SourceId, kind: SignalKind, weight: u8, confidence: f32) -> Signal {
    Signal {
        kind,
        source,
        weight,
        confidence,
        provider: None,
        detail: None,
    }
}

fn place(country: &str, city: &str, lat: f64, lon: f64) -> GeoData {
    GeoData {
        country: Some(country.into()),
        region: Some(format!("{city} region")),
        city: Some(city.into()),
        latitude: Some(lat),
        longitude: Some(lon),
        ..GeoData::default()
    }
}

/// Ranges of both families whose boundaries cross, several signals with
/// providers, a reserved range with data, and a location without coordinates.
fn fixture() -> Snapshot {
    let mut b = SnapshotBuilder::new();
    let lists = source(&mut b, "lists");
    let ranges = source(&mut b, "ranges");
    b.geo(
        r("8.8.8.0/24"),
        place("US", "Mountain View", 37.422, -122.085),
    );
    b.geo(
        r("1.0.0.0-1.0.3.77"),
        place("AU", "Brisbane", -27.4679, 153.0281),
    );
    b.geo(
        r("185.220.100.0/22"),
        GeoData {
            country: Some("DE".into()),
            ..GeoData::default()
        },
    );
    b.geo(r("10.0.0.0/8"), place("US", "Nowhere", 1.0, 2.0));
    b.geo(
        r("2606:4700::/32"),
        place("US", "San Francisco", 37.7749, -122.4194),
    );
    b.geo(r("2a00:1450::/29"), place("IE", "Dublin", 53.3498, -6.2603));
    b.asn(r("8.8.8.0/24"), 15169, "Google LLC");
    b.asn(r("1.0.0.0/24"), 13335, "Cloudflare, Inc.");
    b.asn(r("1.0.1.0-1.0.2.200"), 4134, "Chinanet");
    b.asn(r("185.220.100.0/22"), 208_294, "Relayon");
    b.asn(r("10.0.0.0/8"), 64512, "Private");
    b.asn(r("2606:4700::/33"), 13335, "Cloudflare, Inc.");
    b.asn(r("2a00:1450:4000::/37"), 15169, "Google LLC");
    b.asn(r("3.3.3.0/24"), 16509, "Amazon");
    let mut dc = signal(ranges, SignalKind::Datacenter, 10, 0.9);
    dc.provider = Some("Google".into());
    b.signal(r("8.8.8.0/24"), dc);
    b.signal(r("8.8.8.8/32"), signal(lists, SignalKind::Vpn, 5, 0.3));
    b.signal(
        r("185.220.101.0/24"),
        signal(ranges, SignalKind::Tor, 40, 0.95),
    );
    b.signal(
        r("185.220.100.0/23"),
        signal(lists, SignalKind::Blocklist, 70, 0.8),
    );
    let mut cdn = signal(ranges, SignalKind::Cdn, 5, 0.9);
    cdn.provider = Some("Cloudflare".into());
    b.signal(r("2606:4700::/40"), cdn.clone());
    b.signal(r("1.0.0.0/25"), cdn);
    b.signal(
        r("2a00:1450:4001::/48"),
        signal(lists, SignalKind::Proxy, 20, 0.6),
    );
    b.signal(r("9.9.9.9/32"), signal(lists, SignalKind::Botnet, 90, 1.0));
    b.build()
}

fn export(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = export_snapshot(snapshot, &mut out, 1_780_000_000).unwrap();
    assert_eq!(stats.layout.total_bytes, out.len() as u64);
    out
}

/// What the database should hold for `ip`: the API record without its
/// per-address CIDRs, nulls and abuse reports; `None` when the record
/// knows nothing (or the address is reserved).
fn expected(snapshot: &Snapshot, ip: IpAddr) -> Option<Value> {
    let record = serde_json::to_value(snapshot.lookup(ip)).unwrap();
    if !record["reserved"].is_null() {
        return None;
    }
    let mut geo = without_nulls(&record["geo"]);
    geo.remove("network");
    let mut network = without_nulls(&record["network"]);
    network.remove("prefix");
    let reasons: Vec<Value> = record["threat"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Value::Object(without_nulls(r)))
        .collect();
    if geo.is_empty() && network.is_empty() && reasons.is_empty() {
        return None;
    }
    let mut out = Map::new();
    if !geo.is_empty() {
        out.insert("geo".into(), Value::Object(geo));
    }
    if !network.is_empty() {
        out.insert("network".into(), Value::Object(network));
    }
    out.insert("flags".into(), record["flags"].clone());
    out.insert(
        "threat".into(),
        json!({
            "score": record["threat"]["score"],
            "level": record["threat"]["level"],
            "reasons": reasons,
        }),
    );
    Some(Value::Object(out))
}

fn without_nulls(value: &Value) -> Map<String, Value> {
    value
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Confidences are stored as 32-bit floats; compare them at that width.
fn normalise(mut value: Value) -> Value {
    if let Some(reasons) = value
        .pointer_mut("/threat/reasons")
        .and_then(Value::as_array_mut)
    {
        for reason in reasons {
            let c = reason["confidence"].as_f64().unwrap() as f32;
            reason["confidence"] = json!(c.to_string());
        }
    }
    value
}

fn check(reader: &Reader<Vec<u8>>, snapshot: &Snapshot, ip: IpAddr) {
    let got: Option<Value> = reader.lookup(ip).unwrap().decode().unwrap();
    let want = expected(snapshot, ip);
    assert_eq!(got.map(normalise), want.map(normalise), "{ip}");
}

fn probes() -> Vec<&'static str> {
    vec![
        "8.8.8.8",
        "8.8.8.7",
        "8.8.8.255",
        "8.8.9.0",
        "1.0.0.1",
        "1.0.0.128",
        "1.0.1.5",
        "1.0.2.200",
        "1.0.2.201",
        "1.0.3.77",
        "1.0.3.78",
        "185.220.100.1",
        "185.220.101.7",
        "185.220.103.255",
        "3.3.3.3",
        "9.9.9.9",
        "9.9.9.8",
        "10.1.2.3",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "2606:4700::1111",
        "2606:4700:ff::1",
        "2606:4700:8000::1",
        "2a00:1450:4001::5",
        "2a00:1450:4001:1::5",
        "2a00:1450:4800::1",
        "2a00:1450::1",
        "2001:db8::1",
        "fe80::1",
        "::ffff:8.8.8.8",
        "4000::1",
    ]
}

#[test]
fn every_field_reads_back_as_the_lookup_answers() {
    let snapshot = fixture();
    let reader = Reader::from_source(export(&snapshot)).unwrap();
    reader.verify().unwrap();
    for text in probes() {
        check(&reader, &snapshot, text.parse().unwrap());
    }
}

#[test]
fn the_record_of_a_known_address_is_complete() {
    let snapshot = fixture();
    let reader = Reader::from_source(export(&snapshot)).unwrap();
    let got: Value = reader
        .lookup("8.8.8.8".parse().unwrap())
        .unwrap()
        .decode()
        .unwrap()
        .unwrap();
    assert_eq!(got["geo"]["country"], "US");
    assert_eq!(got["geo"]["country_name"], "United States");
    assert_eq!(got["geo"]["city"], "Mountain View");
    assert_eq!(got["geo"]["latitude"], 37.422);
    assert_eq!(got["network"]["asn"], 15169);
    assert_eq!(got["network"]["isp"], "Google LLC");
    assert_eq!(got["network"]["org"], "Google");
    assert_eq!(got["network"]["connection_type"], "datacenter");
    assert_eq!(got["flags"]["datacenter"], true);
    assert_eq!(got["flags"]["vpn"], false);
    assert_eq!(got["threat"]["level"], "clean");
    assert_eq!(got["threat"]["reasons"].as_array().unwrap().len(), 2);
    let network = reader
        .lookup("8.8.8.8".parse().unwrap())
        .unwrap()
        .network()
        .unwrap();
    assert_eq!(
        network.to_string(),
        "8.8.8.8/32",
        "the VPN /32 splits the /24"
    );
}

#[test]
fn metadata_describes_an_ipv6_database() {
    let snapshot = fixture();
    let reader = Reader::from_source(export(&snapshot)).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.ip_version, 6);
    assert_eq!(meta.binary_format_major_version, 2);
    assert_eq!(meta.database_type, DATABASE_TYPE);
    assert_eq!(meta.build_epoch, 1_780_000_000);
    assert!(meta.description["en"].contains("lists test data"));
    assert_eq!(meta.record_size, 24);
}

#[test]
fn equal_records_are_stored_once() {
    // A thousand separate /24s of one AS in one place make one record.
    let mut b = SnapshotBuilder::new();
    source(&mut b, "s");
    for i in 0..1000u32 {
        let net = std::net::Ipv4Addr::from(0x0b00_0000 + (i << 9));
        let range = IpRange::from_cidr(&format!("{net}/24")).unwrap();
        b.geo(range, place("FR", "Paris", 48.85, 2.35));
        b.asn(range, 3215, "Orange");
    }
    let snapshot = b.build();
    let mut out = Vec::new();
    let stats = export_snapshot(&snapshot, &mut out, 0).unwrap();
    assert_eq!(stats.records, 1);
    assert!(stats.layout.data_bytes < 300, "{}", stats.layout.data_bytes);
    let reader = Reader::from_source(out).unwrap();
    reader.verify().unwrap();
    let a = reader.lookup("11.0.0.1".parse().unwrap()).unwrap();
    let b = reader.lookup("11.0.2.1".parse().unwrap()).unwrap();
    assert!(a.has_data() && b.has_data());
    assert_eq!(a.offset(), b.offset());
    assert!(!reader
        .lookup("11.0.1.1".parse().unwrap())
        .unwrap()
        .has_data());
}

#[test]
fn an_empty_snapshot_gives_a_valid_empty_database() {
    let snapshot = Snapshot::empty();
    let reader = Reader::from_source(export(&snapshot)).unwrap();
    reader.verify().unwrap();
    assert!(!reader
        .lookup("8.8.8.8".parse().unwrap())
        .unwrap()
        .has_data());
    assert!(!reader
        .lookup("2a00::1".parse().unwrap())
        .unwrap()
        .has_data());
}

/// A snapshot of random ranges within 20.0.0.0/16 and 2a00::/112, small
/// spaces, so that ranges cross often.
fn random_snapshot(
    geo: &[(u16, u16, u8)],
    asn: &[(u16, u16, u8)],
    sig: &[(u16, u16, u8)],
) -> Snapshot {
    let mut b = SnapshotBuilder::new();
    let s = source(&mut b, "random");
    let cities = ["A", "B", "C", "D"];
    let kinds = [
        SignalKind::Tor,
        SignalKind::Vpn,
        SignalKind::Datacenter,
        SignalKind::Blocklist,
    ];
    let v4 = |a: u16| std::net::Ipv4Addr::from(0x1400_0000 | u32::from(a));
    let v6 = |a: u16| std::net::Ipv6Addr::from((0x2a00_u128 << 112) | u128::from(a));
    for (i, family) in [0, 1].iter().enumerate() {
        let range = |a: u16, b: u16| {
            let (lo, hi) = (a.min(b), a.max(b));
            if *family == 0 {
                IpRange::new(v4(lo).into(), v4(hi).into()).unwrap()
            } else {
                IpRange::new(v6(lo).into(), v6(hi).into()).unwrap()
            }
        };
        for (a, z, v) in geo {
            let c = cities[usize::from(*v) % 4];
            b.geo(
                range(*a, *z),
                place(if i == 0 { "NL" } else { "JP" }, c, f64::from(*v), 1.5),
            );
        }
        for (a, z, v) in asn {
            b.asn(
                range(*a, *z),
                64_000 + u32::from(*v % 4),
                &format!("AS {}", v % 4),
            );
        }
        for (a, z, v) in sig {
            let kind = kinds[usize::from(*v) % 4];
            b.signal(
                range(*a, *z),
                signal(s, kind, 10 + v % 50, 0.4 + f32::from(v % 6) / 10.0),
            );
        }
    }
    b.build()
}

fn triples() -> impl Strategy<Value = Vec<(u16, u16, u8)>> {
    prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_ranges_read_back_as_looked_up(
        geo in triples(),
        asn in triples(),
        sig in triples(),
        probes in prop::collection::vec(any::<u16>(), 1..40),
    ) {
        let snapshot = random_snapshot(&geo, &asn, &sig);
        let reader = Reader::from_source(export(&snapshot)).unwrap();
        reader.verify().unwrap();
        for p in probes {
            check(&reader, &snapshot, IpAddr::V4(std::net::Ipv4Addr::from(0x1400_0000 | u32::from(p))));
            check(&reader, &snapshot, IpAddr::V6(std::net::Ipv6Addr::from((0x2a00_u128 << 112) | u128::from(p))));
        }
    }
}

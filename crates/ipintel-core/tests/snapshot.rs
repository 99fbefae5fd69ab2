//! End-to-end tests of the builder and lookup on a small fixture.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use ipintel_core::addr::parse_ip;
use ipintel_core::{
    Aggregates, GeoData, GeoRanges, IpRange, Signal, SignalKind, Snapshot, SnapshotBuilder,
    SourceId, SourceMeta, ThreatLevel,
};

fn source(b: &mut SnapshotBuilder, name: &str, date: &str) -> SourceId {
    b.source(SourceMeta {
        name: name.into(),
        package: Some(format!("{name}-pkg")),
        version: Some("1.0.0".into()),
        data_date: Some(date.into()),
        licence: "test".into(),
        attribution: format!("{name} fixture"),
        records: 0,
    })
}

fn signal(
    kind: SignalKind,
    source: SourceId,
    weight: u8,
    confidence: f32,
    provider: Option<&str>,
) -> Signal {
    Signal {
        kind,
        source,
        weight,
        confidence,
        provider: provider.map(Into::into),
        detail: None,
    }
}

fn cidr(text: &str) -> IpRange {
    IpRange::from_cidr(text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    parse_ip(text).unwrap()
}

fn fixture() -> Snapshot {
    let mut b = SnapshotBuilder::new();
    let geo = source(&mut b, "geo", "2026-06-05");
    let iporigin = source(&mut b, "iporigin", "2026-10-05");
    let cloudcheck = source(&mut b, "cloudcheck", "2026-10-20");
    let firehol = source(&mut b, "firehol_level1", "2026-03-30");
    let spamhaus = source(&mut b, "spamhaus_drop", "2026-04-02");
    let _ = geo;
    b.geo(
        cidr("8.8.8.0/24"),
        GeoData {
            country: Some("US".into()),
            region: Some("California".into()),
            city: Some("Mountain View".into()),
            latitude: Some(37.422),
            longitude: Some(-122.085),
            timezone: Some("America/Los_Angeles".into()),
        },
    );
    b.geo(
        cidr("9.0.0.0/8"),
        GeoData {
            country: Some("DE".into()),
            ..GeoData::default()
        },
    );
    b.asn(
        IpRange::new(ip("8.8.8.0"), ip("8.8.9.255")).unwrap(),
        15169,
        "Google LLC",
    );
    b.asn(cidr("2001:4860::/32"), 15169, "Google LLC");
    b.signal(
        cidr("8.8.8.0/24"),
        signal(SignalKind::Datacenter, iporigin, 10, 0.95, Some("Google")),
    );
    b.signal(
        cidr("8.8.0.0/16"),
        signal(SignalKind::Datacenter, cloudcheck, 10, 0.8, Some("Google")),
    );
    // Overlapping blocklists on 9.9.9.0/24 plus a hole punched by nothing.
    b.signal(
        cidr("9.9.0.0/16"),
        signal(SignalKind::Blocklist, firehol, 70, 0.8, None),
    );
    b.signal(
        cidr("9.9.9.0/24"),
        signal(SignalKind::Blocklist, spamhaus, 85, 0.9, None),
    );
    b.signal(
        cidr("9.9.9.9/32"),
        signal(SignalKind::Blocklist, spamhaus, 85, 0.9, None),
    );
    b.signal(
        cidr("10.0.0.0/8"),
        signal(SignalKind::Blocklist, firehol, 70, 0.8, None),
    );
    // Different kinds combine by noisy-OR: 1 - 0.55 * 0.75 -> 59.
    b.signal(
        cidr("5.5.5.0/24"),
        signal(SignalKind::Tor, iporigin, 45, 0.95, Some("Tor")),
    );
    b.signal(
        cidr("5.5.5.5/32"),
        signal(SignalKind::Vpn, iporigin, 25, 0.9, Some("Mullvad")),
    );
    b.build()
}

#[test]
fn record_json_shape() {
    let s = fixture();
    // The exact text, so field order and number formatting are pinned too.
    let json = serde_json::to_string_pretty(&s.lookup(ip("8.8.8.8"))).unwrap();
    insta::assert_snapshot!("google_record", json);
}

#[test]
fn geo_and_threat_views() {
    let s = fixture();
    let r = s.lookup(ip("8.8.8.8"));
    insta::assert_snapshot!(
        "google_geo_view",
        serde_json::to_string_pretty(&r.geo_view()).unwrap()
    );
    insta::assert_snapshot!(
        "google_threat_view",
        serde_json::to_string_pretty(&r.threat_view()).unwrap()
    );
}

#[test]
fn reserved_addresses_ignore_data() {
    let s = fixture();
    let r = s.lookup(ip("10.1.2.3"));
    assert_eq!(r.reserved.map(|x| x.name), Some("Private-Use"));
    assert_eq!(r.score(), 0);
    assert!(r.threat.reasons.is_empty());
    insta::assert_snapshot!("private_record", serde_json::to_string_pretty(&r).unwrap());
}

#[test]
fn unknown_address_is_all_null() {
    let s = fixture();
    let json = serde_json::to_value(s.lookup(ip("1.1.1.1"))).unwrap();
    for key in [
        "country",
        "country_name",
        "region",
        "city",
        "latitude",
        "longitude",
        "timezone",
        "network",
    ] {
        assert!(json["geo"][key].is_null(), "geo.{key}");
    }
    for key in ["asn", "isp", "org", "connection_type", "prefix"] {
        assert!(json["network"][key].is_null(), "network.{key}");
    }
    assert_eq!(json["threat"]["level"], "clean");
    assert_eq!(json["flag_details"], serde_json::json!({}));
}

#[test]
fn overlapping_blocklists_combine_once_per_source() {
    let s = fixture();
    // firehol 70 and spamhaus 85 both say "blocklist": the kind counts at
    // its heaviest weight (85); the /24 and /32 of spamhaus are one claim.
    let r = s.lookup(ip("9.9.9.9"));
    assert_eq!(r.score(), 85);
    assert_eq!(r.level(), ThreatLevel::Critical);
    assert_eq!(r.threat.reasons.len(), 2);
    let r = s.lookup(ip("9.9.1.1"));
    assert_eq!((r.score(), r.level()), (70, ThreatLevel::High));
    assert_eq!(r.country(), Some("DE"));
    assert_eq!(r.geo.country_name, Some("Germany"));
    assert_eq!(
        r.geo.network.map(|n| n.to_string()).as_deref(),
        Some("9.0.0.0/8")
    );
}

#[test]
fn different_kinds_combine_by_noisy_or() {
    let s = fixture();
    let r = s.lookup(ip("5.5.5.5"));
    assert_eq!((r.score(), r.level()), (59, ThreatLevel::Medium));
    assert!(r.flags().tor && r.flags().vpn);
    assert_eq!(r.network.org, Some("Mullvad"));
    assert_eq!(s.lookup(ip("5.5.5.4")).score(), 45);
}

#[test]
fn prefixes_are_largest_cidr_inside_the_range() {
    let s = fixture();
    let r = s.lookup(ip("8.8.9.1"));
    assert_eq!(
        r.network.prefix.map(|n| n.to_string()).as_deref(),
        Some("8.8.8.0/23")
    );
    assert_eq!(r.network.org, Some("Google"));
    let r = s.lookup(ip("2001:4860:4860::8888"));
    assert_eq!(r.asn(), Some(15169));
    assert_eq!(
        r.network.prefix.map(|n| n.to_string()).as_deref(),
        Some("2001:4860::/32")
    );
    assert_eq!(r.network.org, Some("Google LLC"));
}

#[test]
fn mapped_ipv6_is_answered_as_ipv4() {
    let s = fixture();
    let a = serde_json::to_value(s.lookup(ip("8.8.8.8"))).unwrap();
    let b = serde_json::to_value(s.lookup("::ffff:8.8.8.8".parse().unwrap())).unwrap();
    assert_eq!(a, b);
}

#[test]
fn empty_snapshot_answers() {
    let s = Snapshot::empty();
    let r = s.lookup(ip("8.8.8.8"));
    assert_eq!(r.country(), None);
    assert_eq!(r.score(), 0);
    assert!(s.meta().sources.is_empty());
}

#[test]
fn build_is_deterministic() {
    let a = serde_json::to_string(&fixture().lookup(ip("9.9.9.9"))).unwrap();
    let b = serde_json::to_string(&fixture().lookup(ip("9.9.9.9"))).unwrap();
    assert_eq!(a, b);
}

#[test]
fn snapshot_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Snapshot>();
}

#[test]
fn weak_evidence_scores_but_raises_no_flag() {
    let mut b = SnapshotBuilder::new();
    let noisy = source(&mut b, "noisy_vpn_list", "2026-01-01");
    let precise = source(&mut b, "provider_feed", "2026-10-05");
    b.signal(
        cidr("20.0.0.0/8"),
        signal(SignalKind::Vpn, noisy, 5, 0.3, None),
    );
    b.signal(
        cidr("20.1.0.0/16"),
        signal(SignalKind::Vpn, precise, 25, 0.9, Some("Mullvad")),
    );
    let s = b.build();

    let weak = s.lookup(ip("20.2.0.1"));
    assert!(!weak.flags().vpn);
    assert_eq!(weak.score(), 5);
    assert_eq!(weak.threat.reasons.len(), 1);
    let json = serde_json::to_value(weak).unwrap();
    assert_eq!(json["flag_details"], serde_json::json!({}));

    let strong = s.lookup(ip("20.1.0.1"));
    assert!(strong.flags().vpn);
    let json = serde_json::to_value(strong).unwrap();
    assert_eq!(
        json["flag_details"]["vpn"]["sources"],
        serde_json::json!(["provider_feed"])
    );
}

/// The kinds of the reasons of `addr`, sorted.
fn kinds(s: &Snapshot, addr: &str) -> Vec<SignalKind> {
    let mut kinds: Vec<SignalKind> = s
        .lookup(ip(addr))
        .threat
        .reasons
        .iter()
        .map(|r| r.signal)
        .collect();
    kinds.sort_unstable();
    kinds
}

/// The families are merged on two threads, each numbering its signal sets
/// on its own; IPv6's sets, shared with IPv4 or its own, must still name
/// the right signals.
#[test]
fn signal_sets_of_both_families_keep_their_signals() {
    let mut b = SnapshotBuilder::new();
    let feed = source(&mut b, "feed", "2026-01-01");
    let tor = signal(SignalKind::Tor, feed, 45, 0.95, None);
    let vpn = signal(SignalKind::Vpn, feed, 25, 0.9, Some("Mullvad"));
    let listed = signal(SignalKind::Blocklist, feed, 70, 0.8, None);
    b.signal(cidr("1.0.0.0/16"), vpn.clone());
    b.signal(cidr("1.0.0.0/24"), tor.clone());
    b.signal(cidr("2a01:4f8:1::/48"), listed.clone());
    b.signal(cidr("2a01:4f8:1::/64"), tor.clone());
    b.signal(cidr("2a01:4f8:2::/48"), vpn.clone());
    b.signal(cidr("2a01:4f8:3::/48"), listed);
    b.signal(cidr("2a01:4f8:3::/48"), vpn);
    let s = b.build();

    use SignalKind::{Blocklist, Tor, Vpn};
    assert_eq!(kinds(&s, "1.0.0.1"), [Tor, Vpn]);
    assert_eq!(kinds(&s, "1.0.1.1"), [Vpn]);
    assert_eq!(kinds(&s, "1.1.0.1"), []);
    assert_eq!(kinds(&s, "2a01:4f8:1::1"), [Tor, Blocklist]);
    assert_eq!(kinds(&s, "2a01:4f8:1:1::1"), [Blocklist]);
    assert_eq!(kinds(&s, "2a01:4f8:2::1"), [Vpn]);
    assert_eq!(kinds(&s, "2a01:4f8:3::1"), [Vpn, Blocklist]);
    assert_eq!(kinds(&s, "2a01:4f8:4::1"), []);
}

#[test]
fn aggregates_on_first_use_equal_those_built_at_once() {
    let build = |aggregates| {
        let mut b = SnapshotBuilder::new();
        b.geo(
            cidr("8.8.8.0/24"),
            GeoData {
                country: Some("US".into()),
                ..GeoData::default()
            },
        );
        b.asn(cidr("8.8.8.0/24"), 15169, "Google LLC");
        b.build_with(aggregates)
    };
    let now = build(Aggregates::Now);
    let later = build(Aggregates::OnFirstUse);
    assert_eq!(
        format!("{:?}", now.country_intel("US")),
        format!("{:?}", later.country_intel("US"))
    );
    assert_eq!(
        format!("{:?}", now.asn_intel(15169)),
        format!("{:?}", later.asn_intel(15169))
    );
    assert!(later.country_intel("US").is_some());
}

#[test]
fn geo_range_batches_answer_as_single_ranges() {
    let places = ["AU", "US", "DE"].map(|c| GeoData {
        country: Some(c.into()),
        ..GeoData::default()
    });
    let ranges = [
        ("1.0.0.0/24", 0),
        ("1.0.1.0/24", 0),
        ("8.8.8.0/24", 1),
        ("2a01:4f8::/32", 2),
        ("2a01:4f9::/32", 1),
    ];
    // Twice each way: the second batch lands in non-empty tables. A
    // location interned first makes the ids differ from the indexes.
    let mut one_by_one = SnapshotBuilder::new();
    let mut batched = SnapshotBuilder::new();
    let first = GeoData {
        country: Some("FR".into()),
        ..GeoData::default()
    };
    one_by_one.location(&first);
    batched.location(&first);
    for _ in 0..2 {
        let ids = places.clone().map(|g| one_by_one.location(&g));
        for (text, i) in ranges {
            one_by_one.geo_location(cidr(text), ids[i]);
        }
        let ids = places.clone().map(|g| batched.location(&g));
        let mut batch = GeoRanges::new();
        for (text, i) in ranges {
            batch.push(cidr(text), i as u32);
        }
        batched.geo_ranges(batch, &ids);
    }
    let (a, b) = (one_by_one.build(), batched.build());
    for addr in [
        "1.0.0.1",
        "1.0.1.255",
        "1.0.2.0",
        "8.8.8.8",
        "2a01:4f8::1",
        "2a01:4f9::1",
        "2a01:4fa::1",
    ] {
        assert_eq!(
            serde_json::to_string(&a.lookup(ip(addr))).unwrap(),
            serde_json::to_string(&b.lookup(ip(addr))).unwrap(),
            "{addr}"
        );
    }
    assert_eq!(b.lookup(ip("2a01:4f9::1")).country(), Some("US"));
}

/// Addresses at, just below and just above every edge of `cidrs`, plus the
/// reserved edges that lie near them and a few fixed points.
fn edge_probes(cidrs: &[&str]) -> Vec<IpAddr> {
    let mut probes = Vec::new();
    for text in cidrs {
        let edges = match cidr(text) {
            IpRange::V4 { first, last } => [IpAddr::V4(first), IpAddr::V4(last)],
            IpRange::V6 { first, last } => [IpAddr::V6(first), IpAddr::V6(last)],
        };
        for edge in edges {
            probes.push(edge);
            match edge {
                IpAddr::V4(v4) => {
                    let n = u32::from(v4);
                    probes.push(IpAddr::V4(n.wrapping_sub(1).into()));
                    probes.push(IpAddr::V4(n.wrapping_add(1).into()));
                }
                IpAddr::V6(v6) => {
                    let n = u128::from(v6);
                    probes.push(IpAddr::V6(n.wrapping_sub(1).into()));
                    probes.push(IpAddr::V6(n.wrapping_add(1).into()));
                }
            }
        }
    }
    probes
}

#[test]
fn one_search_answers_as_the_separate_tables_do() {
    let s = fixture();
    let mut probes = edge_probes(&[
        "8.8.8.0/24",
        "8.8.0.0/16",
        "8.8.8.0/23",
        "9.0.0.0/8",
        "9.9.9.0/24",
        "9.9.9.9/32",
        "10.0.0.0/8",
        "5.5.5.0/24",
        "5.5.5.5/32",
        "2001:4860::/32",
        "127.0.0.0/8",
        "100.64.0.0/10",
        "2001:db8::/32",
        "fe80::/10",
        "::ffff:0:0/96",
        "2002::/16",
    ]);
    probes.extend(["0.0.0.0", "255.255.255.255", "::", "::1", "::ffff:8.8.8.8"].map(ip));
    for probe in probes {
        let fast = serde_json::to_value(s.lookup(probe)).unwrap();
        let slow = serde_json::to_value(s.lookup_by_tables(probe)).unwrap();
        assert_eq!(fast, slow, "{probe}");
    }
}

proptest::proptest! {
    #[test]
    fn one_search_matches_the_tables_anywhere(v4 in proptest::prelude::any::<u32>(), v6 in proptest::prelude::any::<u128>()) {
        let s = fixture_once();
        for probe in [IpAddr::V4(v4.into()), IpAddr::V6(v6.into()), IpAddr::V6((0x2001_4860_u128 << 96 | (v6 >> 32)).into())] {
            let fast = serde_json::to_value(s.lookup(probe)).unwrap();
            let slow = serde_json::to_value(s.lookup_by_tables(probe)).unwrap();
            proptest::prop_assert_eq!(fast, slow, "{}", probe);
        }
    }
}

fn fixture_once() -> &'static Snapshot {
    static FIXTURE: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(fixture)
}

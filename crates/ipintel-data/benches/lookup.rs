//! Lookup speed on the real data: `snapshot.lookup(ip)` alone, and lookup
//! plus serializing the record to JSON, for fixed pseudo-random public IPv4
//! and IPv6 addresses. Needs the fetched data (`data/` or
//! `IPINTEL_DATA_DIR`): `cargo bench -p ipintel-data --bench lookup`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use ipintel_core::Snapshot;
use ipintel_data::sample::{public_v4, public_v6, Seeded};

const SAMPLES: usize = 4096;

fn data_dir() -> PathBuf {
    std::env::var_os("IPINTEL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"))
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
    let path = dir.join("asn/asn-ipv6.csv");
    let text = std::fs::read_to_string(&path).expect("asn-ipv6.csv");
    let announced = ipintel_data::asn::parse_asn_csv(&path, &text).expect("AS rows");
    let mut seq = Seeded::new(0x1D_1A7E);
    let v4 = public_v4(&mut seq, SAMPLES);
    let v6 = public_v6(&announced, &mut seq, SAMPLES);
    bench_family(c, &snapshot, "v4", &v4);
    bench_family(c, &snapshot, "v6", &v6);
}

criterion_group!(lookup, benches);
criterion_main!(lookup);

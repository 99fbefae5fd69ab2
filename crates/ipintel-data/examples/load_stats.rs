//! Loads the real data directory once and prints the load time, the
//! resident memory afterwards and a few sample records.
//!
//! `cargo run --release -p ipintel-data --example load_stats [DATA_DIR] [IP...]`
//! (DATA_DIR defaults to `IPINTEL_DATA_DIR` or `data/` of the workspace).
//! The first run after a change of the data or of the program builds the
//! snapshot and writes the snapshot cache; the next ones read it. For a
//! build every time: `IPINTEL_SNAPSHOT_CACHE=off`.
//! The time of each file (parsing, then feeding the builder) is logged by
//! the binary: `RUST_LOG=warn,ipintel_data=debug ipintel lookup 1.1.1.1`.

use std::path::PathBuf;
use std::time::Instant;

fn data_dir(arg: Option<String>) -> PathBuf {
    arg.filter(|a| !a.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("IPINTEL_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"))
}

fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Best-of-rounds time per lookup (and per lookup + JSON) over fixed
/// pseudo-random public addresses; the minimum is robust to a busy box.
fn time_lookups(snapshot: &ipintel_core::Snapshot) {
    let mut x = 0x1D1A7Eu64;
    let mut next = move || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let v4: Vec<std::net::IpAddr> =
        std::iter::repeat_with(|| std::net::IpAddr::from(std::net::Ipv4Addr::from(next() as u32)))
            .filter(|ip| ipintel_core::reserved::classify(*ip).is_none())
            .take(4096)
            .collect();
    let v6: Vec<std::net::IpAddr> = std::iter::repeat_with(|| {
        let hi = (0x2a00u128 + u128::from(next() % 0x20)) << 112;
        std::net::IpAddr::from(std::net::Ipv6Addr::from(hi | (u128::from(next()) << 48)))
    })
    .take(4096)
    .collect();
    for (name, ips) in [("v4", &v4), ("v6", &v6)] {
        let mut best = (f64::MAX, f64::MAX);
        let mut buf = Vec::with_capacity(2048);
        let rounds: usize = std::env::var("LOOKUP_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(15);
        for _ in 0..rounds {
            let t = Instant::now();
            let mut acc = 0u64;
            for ip in ips.iter() {
                acc += u64::from(snapshot.lookup(*ip).score());
            }
            std::hint::black_box(acc);
            best.0 = best.0.min(t.elapsed().as_nanos() as f64 / ips.len() as f64);
            let t = Instant::now();
            for ip in ips.iter() {
                buf.clear();
                let _ = serde_json::to_writer(&mut buf, &snapshot.lookup(*ip));
            }
            best.1 = best.1.min(t.elapsed().as_nanos() as f64 / ips.len() as f64);
        }
        println!(
            "{name}: lookup {:.0} ns, lookup+json {:.0} ns (best of {rounds} rounds x 4096)",
            best.0, best.1
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = data_dir(args.next());
    let rss_before = vm_rss_kib().unwrap_or(0);
    let started = Instant::now();
    let (snapshot, report) = match ipintel_data::load_snapshot_report(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(1);
        }
    };
    let elapsed = started.elapsed();
    let rss = vm_rss_kib().unwrap_or(0);
    let (iv4, iv6) = snapshot.intervals();
    let cache = match &report.cache {
        ipintel_data::CacheUse::Read => "read from the snapshot cache".to_owned(),
        ipintel_data::CacheUse::Written => "built, snapshot cache written".to_owned(),
        ipintel_data::CacheUse::NotWritten(why) => {
            format!("built, snapshot cache not written: {why}")
        }
        ipintel_data::CacheUse::Off => {
            format!("built, snapshot cache off ({})", ipintel_data::CACHE_ENV)
        }
    };
    println!(
        "load_snapshot: {:.2} s, {cache} (merge {} ms when built, aggregates {} ms)",
        elapsed.as_secs_f64(),
        snapshot.meta().build_ms,
        snapshot.intel_build_ms()
    );
    if let Some(miss) = &report.miss {
        println!("snapshot cache not read: {miss}");
    }
    println!(
        "VmRSS after load: {} MiB (before: {} MiB)",
        rss / 1024,
        rss_before / 1024
    );
    println!(
        "ranges pushed v4 {} v6 {}; intervals v4 {iv4} v6 {iv6}; signal sets {}",
        snapshot.meta().ranges_v4,
        snapshot.meta().ranges_v6,
        snapshot.signal_sets()
    );
    time_lookups(&snapshot);
    for ip in args {
        match ipintel_core::addr::parse_ip(&ip) {
            Ok(addr) => match serde_json::to_string_pretty(&snapshot.lookup(addr)) {
                Ok(json) => println!("{json}"),
                Err(e) => eprintln!("{ip}: {e}"),
            },
            Err(e) => eprintln!("{ip}: {e}"),
        }
    }
}

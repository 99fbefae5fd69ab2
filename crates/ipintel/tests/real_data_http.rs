//! The service as a new user meets it: the real binary, the real fetched
//! datasets, a key from `POST /v1/keys`, and plain HTTP on loopback.
//!
//! The data folder is `IPINTEL_DATA_DIR` or the workspace's `data/`
//! (`scripts/fetch_data.py` fills it). A missing folder fails the test: this
//! is the integration test on the real data that CI must run.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[path = "support/server.rs"]
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde_json::Value;

use server::{Reply, Server};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("IPINTEL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    assert!(
        dir.join("manifest.json").is_file(),
        "no datasets in {}: run scripts/fetch_data.py first",
        dir.display()
    );
    dir
}

/// A new user's key, made through the self-service endpoint.
fn new_key(server: &Server) -> String {
    let reply = server.request("POST", "/v1/keys", &[]);
    assert_eq!(reply.status, 201, "{reply:?}");
    reply.json()["key"].as_str().unwrap().to_owned()
}

fn lookup(server: &Server, key: &str, ip: &str) -> Value {
    let reply = server.get(&format!("/v1/ip/{ip}"), Some(key));
    assert_eq!(reply.status, 200, "{ip}: {reply:?}");
    reply.json()
}

/// The IPv4 ranges of one provider in iporigin's table, read straight from
/// the file (header, labels, then `<u32 start, u32 end, u16 label>` records,
/// little-endian) so that the test does not trust the loader it checks.
fn iporigin_ranges(data: &Path, provider: &str) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let blob = std::fs::read(data.join("iporigin/ranges.bin")).unwrap();
    assert_eq!(&blob[..8], b"IPORIGIN");
    let u16_at = |at: usize| u16::from_le_bytes([blob[at], blob[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(blob[at..at + 4].try_into().unwrap());
    let n_labels = usize::from(u16_at(18));
    let n_v4 = u32_at(20) as usize;
    let mut at = 28;
    let mut wanted = Vec::new();
    for index in 0..n_labels {
        let len = usize::from(u16_at(at));
        let label = std::str::from_utf8(&blob[at + 2..at + 2 + len]).unwrap();
        if label.split('\t').next() == Some(provider) {
            wanted.push(u16::try_from(index).unwrap());
        }
        at += 2 + len;
    }
    assert!(!wanted.is_empty(), "no {provider} label in ranges.bin");
    (0..n_v4)
        .map(|i| at + i * 10)
        .filter(|&rec| wanted.contains(&u16_at(rec + 8)))
        .map(|rec| (Ipv4Addr::from(u32_at(rec)), Ipv4Addr::from(u32_at(rec + 4))))
        .collect()
}

/// Public members of FireHOL level 1 (the list also carries bogons, which
/// are reserved space and must not be scored).
fn firehol_members(data: &Path) -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string(data.join("seek/firehol_level1.netset")).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('/').next().unwrap().parse::<Ipv4Addr>().unwrap())
        .filter(|ip| ipintel_core::reserved::classify(IpAddr::V4(*ip)).is_none())
        .collect()
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.json()["error"]["code"], code, "{reply:?}");
}

#[test]
fn a_new_user_gets_real_answers() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&data, &dir.path().join("e2e.db"), &[]);
    let key = new_key(&server);

    let google = lookup(&server, &key, "8.8.8.8");
    assert_eq!(google["geo"]["country"], "US", "{google}");
    assert_eq!(google["network"]["asn"], 15169, "{google}");
    assert!(
        google["network"]["isp"]
            .as_str()
            .unwrap()
            .contains("Google"),
        "{google}"
    );
    assert!(
        google["geo"]["timezone"]
            .as_str()
            .unwrap()
            .starts_with("America/"),
        "{google}"
    );

    for (first, last) in iporigin_ranges(&data, "Tor").into_iter().take(5) {
        for ip in [first, last] {
            let record = lookup(&server, &key, &ip.to_string());
            assert_eq!(record["flags"]["tor"], true, "{record}");
        }
    }

    for provider in ["Mullvad", "ProtonVPN"] {
        let (first, _) = iporigin_ranges(&data, provider)[0];
        let record = lookup(&server, &key, &first.to_string());
        assert_eq!(record["flags"]["vpn"], true, "{provider}: {record}");
        assert!(
            record["flag_details"]["vpn"]["confidence"]
                .as_f64()
                .unwrap()
                > 0.5
        );
    }

    for ip in firehol_members(&data).into_iter().step_by(97).take(10) {
        let record = lookup(&server, &key, &ip.to_string());
        let level = record["threat"]["level"].as_str().unwrap();
        assert!(matches!(level, "high" | "critical"), "{ip}: {record}");
        let reasons = record["threat"]["reasons"].as_array().unwrap();
        assert!(
            reasons
                .iter()
                .any(|r| r["source"].as_str().unwrap().starts_with("firehol")),
            "{ip}: {record}"
        );
        assert!(
            reasons.iter().all(|r| r["data_date"].is_string()),
            "{record}"
        );
    }

    let cloudflare = lookup(&server, &key, "2606:4700:4700::1111");
    assert_eq!(cloudflare["ip_version"], 6);
    assert_eq!(cloudflare["network"]["asn"], 13335, "{cloudflare}");
    let escaped = server.get("/v1/ip/2606%3A4700%3A4700%3A%3A1111", Some(&key));
    assert_eq!(escaped.json(), cloudflare);

    server.stop();
}

#[test]
fn every_edge_case_row_holds_on_real_data() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&data, &dir.path().join("cases.db"), &[]);
    let key = new_key(&server);

    for (mapped, plain) in [
        ("::ffff:123.202.30.78", "123.202.30.78"),
        ("0:0:0:0:0:FFFF:222.1.41.90", "222.1.41.90"),
    ] {
        let record = lookup(&server, &key, mapped);
        assert_eq!(record["ip"], plain);
        assert_eq!(record["ip_version"], 4);
        assert_eq!(record, lookup(&server, &key, plain));
    }

    for bad in [
        "192.012.1.1",
        "10.10.1.011",
        "not-an-ip",
        "",
        "1.2.3.4.5",
        "1.2.3.256",
    ] {
        let reply = server.get(&format!("/v1/ip/{bad}"), Some(&key));
        assert_error(&reply, 400, "invalid_ip");
    }

    for reserved in [
        "127.0.0.1",
        "10.10.123.190",
        "::1",
        "fe80::1",
        "100.64.0.1",
        "198.18.0.1",
        "2001:db8::1",
    ] {
        let record = lookup(&server, &key, reserved);
        assert!(record["reserved"]["name"].is_string(), "{record}");
        assert!(record["geo"]["country"].is_null(), "{record}");
        assert!(record["geo"]["latitude"].is_null(), "{record}");
        assert!(record["network"]["asn"].is_null(), "{record}");
        assert_eq!(record["threat"]["score"], 0, "{record}");
    }
    server.stop();
}

#[test]
fn forwarded_for_is_believed_only_through_trusted_proxies() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("xff.db");
    let one_key_each = [("IPINTEL_KEYS_PER_HOUR_PER_CLIENT", "1")];
    let post = |server: &Server, xff: &str| {
        server
            .request("POST", "/v1/keys", &[("X-Forwarded-For", xff)])
            .status
    };

    // Untrusted peer: the header is ignored, both requests are the peer's.
    let server = Server::start(&data, &db, &one_key_each);
    assert_eq!(post(&server, "1.1.1.1, 2.2.2.2, 3.3.3.3"), 201);
    assert_eq!(post(&server, "5.5.5.5"), 429);
    server.stop();

    // The loopback peer stands in for the trusted 4.4.4.4 of the case.
    let trusted = [
        one_key_each[0],
        ("IPINTEL_TRUSTED_PROXIES", "127.0.0.1/32,3.3.3.3/32"),
    ];
    let server = Server::start(&data, &db, &trusted);
    assert_eq!(post(&server, "1.1.1.1, 2.2.2.2, 3.3.3.3"), 201);
    // The same client, 2.2.2.2, whatever it claims further left.
    assert_eq!(post(&server, "9.9.9.9, 2.2.2.2, 3.3.3.3"), 429);
    // Another client behind the same proxies.
    assert_eq!(post(&server, "2.2.2.2, 5.5.5.5, 3.3.3.3"), 201);
    server.stop();
}

#[test]
fn the_101st_lookup_of_a_free_key_is_refused_across_a_restart() {
    let data = data_dir();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("quota.db");

    let server = Server::start(&data, &db, &[]);
    let key = new_key(&server);
    for n in 1..=60u32 {
        let reply = server.get(&format!("/v1/ip/1.1.1.{n}"), Some(&key));
        assert_eq!(reply.status, 200, "{reply:?}");
        let remaining = (100 - n).to_string();
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(remaining.as_str())
        );
    }
    server.stop();

    let server = Server::start(&data, &db, &[]);
    for n in 61..=100u32 {
        let reply = server.get(&format!("/v1/ip/1.1.1.{n}"), Some(&key));
        assert_eq!(reply.status, 200, "lookup {n}: {reply:?}");
    }
    let refused = server.get("/v1/ip/1.1.1.101", Some(&key));
    assert_error(&refused, 429, "quota_exceeded");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("100"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(refused.header("x-ratelimit-reset").is_some());
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    server.stop();

    let server = Server::start(&data, &db, &[]);
    let refused = server.get("/v1/ip/8.8.8.8", Some(&key));
    assert_error(&refused, 429, "quota_exceeded");
    let usage = server.get("/v1/usage", Some(&key)).json();
    assert_eq!(usage["today"], 100, "{usage}");
    assert_eq!(usage["plan"], "free", "{usage}");
    server.stop();
}

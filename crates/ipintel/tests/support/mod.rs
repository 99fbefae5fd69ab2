//! Test fixtures: a tiny data directory (a hand-written MaxMind DB for
//! location and an AS CSV) with its manifest.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

pub mod postgres;
pub mod server;

use std::net::Ipv4Addr;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Values of the MaxMind DB data format used here.
enum Field<'a> {
    Text(&'a str),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, Field<'a>)>),
    Array(Vec<Field<'a>>),
}

/// Control byte(s) for `kind` (1..=15) with a `size` below 29.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let size = u8::try_from(size).unwrap();
    assert!(size < 29, "long fields are not needed by the fixture");
    if kind <= 7 {
        out.push((kind << 5) | size);
    } else {
        out.push(size);
        out.push(kind - 7);
    }
}

fn encode_uint(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, bytes.len() - skip);
    out.extend_from_slice(&bytes[skip..]);
}

fn encode(out: &mut Vec<u8>, field: &Field<'_>) {
    match field {
        Field::Text(text) => {
            control(out, 2, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Field::Double(value) => {
            control(out, 3, 8);
            out.extend_from_slice(&value.to_be_bytes());
        }
        Field::U16(value) => encode_uint(out, 5, u64::from(*value)),
        Field::U32(value) => encode_uint(out, 6, u64::from(*value)),
        Field::U64(value) => encode_uint(out, 9, *value),
        Field::Map(entries) => {
            control(out, 7, entries.len());
            for (key, value) in entries {
                encode(out, &Field::Text(key));
                encode(out, value);
            }
        }
        Field::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

fn push_record(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes()[1..]);
}

/// An IPv4 MaxMind DB (24-bit records) in which `network/prefix` holds one
/// DB-IP style city record; every other address has no data.
fn city_mmdb(network: Ipv4Addr, prefix: u32, record: &Field<'_>) -> Vec<u8> {
    let node_count = prefix;
    let mut data = Vec::new();
    encode(&mut data, record);
    let bits = u32::from(network);

    let mut out = Vec::new();
    for depth in 0..prefix {
        let bit = (bits >> (31 - depth)) & 1;
        let onward = if depth + 1 == prefix {
            node_count + 16 // data pointer: the record at data offset 0
        } else {
            depth + 1
        };
        let (left, right) = if bit == 0 {
            (onward, node_count)
        } else {
            (node_count, onward)
        };
        push_record(&mut out, left);
        push_record(&mut out, right);
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = Field::Map(vec![
        ("binary_format_major_version", Field::U16(2)),
        ("binary_format_minor_version", Field::U16(0)),
        ("build_epoch", Field::U64(1_780_000_000)),
        ("database_type", Field::Text("DBIP-City-Lite")),
        (
            "description",
            Field::Map(vec![("en", Field::Text("test fixture"))]),
        ),
        ("ip_version", Field::U16(4)),
        ("languages", Field::Array(vec![Field::Text("en")])),
        ("node_count", Field::U32(node_count)),
        ("record_size", Field::U16(24)),
    ]);
    encode(&mut out, &metadata);
    out
}

fn manifest_file(path: &str, role: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "role": role,
        "sha256": format!("{:x}", Sha256::digest(bytes)),
        "bytes": bytes.len(),
        "data_date": "2026-06-17"
    })
}

fn manifest_source(name: &str, files: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "package": format!("fixture-{name}"),
        "version": "1.0.0",
        "data_date": "2026-06-17",
        "licence": "CC-BY-4.0",
        "attribution": "test fixture",
        "files": files
    })
}

/// Writes a data directory: 8.8.8.0/24 located in Mountain View, and AS
/// ranges for 8.8.8.0/24, 1.0.0.0/24 and 10.0.0.0/8.
pub fn tiny_data_dir(dir: &Path) {
    let city = Field::Map(vec![
        ("city", Field::Text("Mountain View")),
        ("country_code", Field::Text("US")),
        ("latitude", Field::Double(37.422)),
        ("longitude", Field::Double(-122.085)),
        ("state1", Field::Text("California")),
    ]);
    let mmdb = city_mmdb(Ipv4Addr::new(8, 8, 8, 0), 24, &city);
    let csv = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
               8.8.8.0,8.8.8.255,15169,Google LLC\n\
               10.0.0.0,10.255.255.255,64512,Private\n";

    std::fs::create_dir_all(dir.join("geo")).unwrap();
    std::fs::create_dir_all(dir.join("asn")).unwrap();
    std::fs::write(dir.join("geo/city-ipv4.mmdb"), &mmdb).unwrap();
    std::fs::write(dir.join("asn/asn-ipv4.csv"), csv).unwrap();
    let geo_file = manifest_file("geo/city-ipv4.mmdb", "geo-mmdb", &mmdb);
    let asn_file = manifest_file("asn/asn-ipv4.csv", "asn-csv", csv.as_bytes());
    let manifest = serde_json::json!({
        "manifest_version": 1,
        "fetched_at": "2026-06-18T00:00:00+00:00",
        "sources": [
            manifest_source("dbip-city", vec![geo_file]),
            manifest_source("asn", vec![asn_file]),
        ]
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

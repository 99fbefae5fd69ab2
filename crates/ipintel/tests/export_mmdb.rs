//! `ipintel export --mmdb` run as a process. On the tiny data set the file
//! is read back with the `maxminddb` crate. On the real data (the
//! workspace's `data/` or `IPINTEL_DATA_DIR`; a missing folder fails the
//! test, as in `real_data_http.rs`) it is read with Debian's `mmdblookup`
//! (package `mmdb-bin`, which `scripts/test.sh` installs) for 8.8.8.8, a
//! Tor exit and an IPv6 address, and with the `maxminddb` crate for a few
//! thousand random addresses, every field against `ipintel lookup`.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use maxminddb::Reader;
use predicates::prelude::*;
use serde_json::{json, Map, Value};

use support::server::SETTINGS;
use support::tiny_data_dir;

fn ipintel(data: &Path) -> Command {
    let mut cmd = cargo_bin_cmd!("ipintel");
    for name in SETTINGS {
        cmd.env_remove(name);
    }
    cmd.env("IPINTEL_DATA_DIR", data).env("RUST_LOG", "warn");
    cmd
}

fn export(data: &Path, file: &Path) -> String {
    let out = ipintel(data)
        .args(["export", "--mmdb"])
        .arg(file)
        .assert()
        .success();
    String::from_utf8(out.get_output().stderr.clone()).unwrap()
}

/// `ipintel lookup` records of `addrs`, in order.
fn lookups(data: &Path, addrs: &[String]) -> Vec<Value> {
    let out = ipintel(data).arg("lookup").args(addrs).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the database should hold for a lookup record (see the field table
/// in `ipintel_mmdb::export`): no nulls, no per-address CIDRs, no reports;
/// `None` for reserved addresses and addresses without any data.
fn expected(record: &Value) -> Option<Value> {
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
        .map(|r| {
            let mut r = without_nulls(r);
            let c = r["confidence"].as_f64().unwrap() as f32;
            r.insert("confidence".into(), json!(c.to_string()));
            Value::Object(r)
        })
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
    let threat = json!({
        "score": record["threat"]["score"],
        "level": record["threat"]["level"],
        "reasons": reasons,
    });
    out.insert("threat".into(), threat);
    Some(Value::Object(out))
}

fn without_nulls(value: &Value) -> Map<String, Value> {
    let object = value.as_object().unwrap();
    object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The database's answer, confidences compared at their stored width.
fn stored(reader: &Reader<Vec<u8>>, ip: IpAddr) -> Option<Value> {
    let mut value: Value = reader.lookup(ip).unwrap().decode().unwrap()?;
    if let Some(reasons) = value
        .pointer_mut("/threat/reasons")
        .and_then(Value::as_array_mut)
    {
        for r in reasons {
            let c = r["confidence"].as_f64().unwrap() as f32;
            r["confidence"] = json!(c.to_string());
        }
    }
    Some(value)
}

fn check_all(reader: &Reader<Vec<u8>>, records: &[Value]) -> usize {
    let mut with_data = 0;
    for record in records {
        let ip: IpAddr = record["ip"].as_str().unwrap().parse().unwrap();
        let want = expected(record);
        with_data += usize::from(want.is_some());
        assert_eq!(stored(reader, ip), want, "{ip}");
    }
    with_data
}

#[test]
fn tiny_data_reads_back_field_for_field() {
    let data = tempfile::tempdir().unwrap();
    tiny_data_dir(data.path());
    let file = data.path().join("out/ipintel.mmdb");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let report = export(data.path(), &file);
    assert!(report.contains("wrote"), "{report}");
    assert!(!file.with_file_name("ipintel.mmdb.partial").exists());

    let reader = Reader::open_readfile(&file).unwrap();
    reader.verify().unwrap();
    assert_eq!(reader.metadata().database_type, "ipintel-IP-Intel");
    let addrs: Vec<String> = [
        "8.8.8.8",
        "8.8.8.255",
        "8.8.9.1",
        "1.0.0.1",
        "10.1.1.1",
        "::ffff:1.0.0.7",
        "2606:4700::1",
    ]
    .map(str::to_owned)
    .to_vec();
    let records = lookups(data.path(), &addrs);
    assert_eq!(check_all(&reader, &records), 4);
    let google = stored(&reader, "8.8.8.8".parse().unwrap()).unwrap();
    assert_eq!(google["geo"]["city"], "Mountain View");
    assert_eq!(google["geo"]["timezone"], "America/Los_Angeles");
    assert_eq!(google["network"]["asn"], 15169);
    assert_eq!(google["flags"]["tor"], false);
    assert_eq!(google["threat"]["level"], "clean");
}

#[test]
fn an_unwritable_target_fails_with_its_path() {
    let data = tempfile::tempdir().unwrap();
    tiny_data_dir(data.path());
    ipintel(data.path())
        .args(["export", "--mmdb"])
        .arg(data.path().join("no/such/dir/x.mmdb"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no/such/dir"));
}

fn real_data_dir() -> PathBuf {
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

/// `mmdblookup`'s value at `path` (its text before the `<type>` tag), or
/// `None` when the address has no entry.
fn mmdblookup(file: &Path, ip: &str, path: &[&str]) -> Option<String> {
    let out = StdCommand::new("mmdblookup")
        .arg("--file")
        .arg(file)
        .args(["--ip", ip])
        .args(path)
        .output()
        .unwrap_or_else(|e| panic!("mmdblookup (Debian package mmdb-bin) is needed: {e}"));
    let text = String::from_utf8(out.stdout).unwrap();
    let value = text.lines().find(|l| l.contains(" <"))?;
    let value = value[..value.rfind(" <").unwrap()].trim();
    Some(value.trim_matches('"').to_owned())
}

/// Compares `mmdblookup`'s answers for `ip` with the lookup record.
fn check_mmdblookup(file: &Path, record: &Value) {
    let ip = record["ip"].as_str().unwrap();
    let text = |path: &[&str], want: &Value| {
        let got = mmdblookup(file, ip, path);
        match want {
            Value::Null => assert_eq!(got, None, "{ip} {path:?}"),
            Value::String(s) => assert_eq!(got.as_deref(), Some(s.as_str()), "{ip} {path:?}"),
            Value::Bool(b) => assert_eq!(got, Some(b.to_string()), "{ip} {path:?}"),
            Value::Number(n) => {
                let got: f64 = got.unwrap().parse().unwrap();
                assert!((got - n.as_f64().unwrap()).abs() < 1e-5, "{ip} {path:?}");
            }
            other => panic!("unexpected {other}"),
        }
    };
    text(&["geo", "country"], &record["geo"]["country"]);
    text(&["geo", "city"], &record["geo"]["city"]);
    text(&["geo", "latitude"], &record["geo"]["latitude"]);
    text(&["geo", "longitude"], &record["geo"]["longitude"]);
    text(&["geo", "timezone"], &record["geo"]["timezone"]);
    text(&["network", "asn"], &record["network"]["asn"]);
    text(&["network", "org"], &record["network"]["org"]);
    for flag in ["vpn", "proxy", "tor", "datacenter", "botnet"] {
        text(&["flags", flag], &record["flags"][flag]);
    }
    text(&["threat", "score"], &record["threat"]["score"]);
    text(&["threat", "level"], &record["threat"]["level"]);
    let reasons = record["threat"]["reasons"].as_array().unwrap();
    for (i, reason) in reasons.iter().enumerate() {
        let i = i.to_string();
        text(&["threat", "reasons", &i, "source"], &reason["source"]);
        text(&["threat", "reasons", &i, "weight"], &reason["weight"]);
    }
}

/// A seeded spread of public addresses: 80 % IPv4 anywhere, 20 % IPv6 in
/// the allocated 2000::/4.
fn sample(count: usize) -> Vec<String> {
    let mut state = 0x2026_1205_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state
    };
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let ip = if next() % 5 != 0 {
            IpAddr::V4(Ipv4Addr::from((next() >> 32) as u32))
        } else {
            let bits = (u128::from(next()) << 64 | u128::from(next())) >> 4;
            IpAddr::V6(Ipv6Addr::from(0x2 << 124 | bits))
        };
        if ipintel_core::reserved::classify(ip).is_none() {
            out.push(ip.to_string());
        }
    }
    out
}

#[test]
fn real_data_export_matches_lookups_in_mmdblookup_and_maxminddb() {
    let data = real_data_dir();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ipintel.mmdb");
    let report = export(&data, &file);
    assert!(report.contains("wrote"), "{report}");
    let reader = Reader::open_readfile(&file).unwrap();

    // A Tor exit: the first address the export flags in ranges known for
    // exits, confirmed below by the lookup.
    let tor = [
        "185.220.100.0",
        "192.42.116.0",
        "109.70.100.0",
        "204.8.96.0",
    ]
    .iter()
    .flat_map(|base| {
        let base = u32::from(base.parse::<Ipv4Addr>().unwrap());
        (0..1024u32)
            .step_by(7)
            .map(move |i| Ipv4Addr::from(base + i))
    })
    .find(|ip| stored(&reader, IpAddr::V4(*ip)).is_some_and(|v| v["flags"]["tor"] == true))
    .expect("no Tor exit in the exported database");

    let mut addrs = vec![
        "8.8.8.8".to_owned(),
        tor.to_string(),
        "2606:4700:4700::1111".to_owned(),
        "2a00:1450:4001:81c::200e".to_owned(),
        "1.1.1.1".to_owned(),
        "10.1.2.3".to_owned(),
        "::ffff:8.8.4.4".to_owned(),
    ];
    addrs.extend(sample(3000));
    let records = lookups(&data, &addrs);
    assert_eq!(records.len(), addrs.len());
    assert_eq!(records[1]["flags"]["tor"], true, "{}", records[1]);
    assert_eq!(records[2]["network"]["asn"], 13335, "{}", records[2]);

    for record in &records[..3] {
        check_mmdblookup(&file, record);
    }
    assert_eq!(
        mmdblookup(&file, "10.1.2.3", &[]),
        None,
        "reserved: no entry"
    );

    let with_data = check_all(&reader, &records);
    assert!(
        with_data > 2000,
        "only {with_data} sampled addresses had data"
    );
}

//! The `ipintel` command run as a process: key management against a
//! SQLite file in a temporary directory, configuration errors, offline
//! lookups and a serve/stop cycle on a tiny data set.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

use support::server::{Server, SETTINGS};
use support::tiny_data_dir;

/// The binary with none of its settings inherited from the caller.
fn ipintel(db: &Path) -> Command {
    let mut cmd = cargo_bin_cmd!("ipintel");
    for name in SETTINGS {
        cmd.env_remove(name);
    }
    cmd.env("IPINTEL_DB", db).env("RUST_LOG", "warn");
    cmd
}

fn stdout_json(cmd: &mut Command) -> Value {
    let output = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&output).unwrap()
}

#[test]
fn keys_create_list_revoke_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");

    let created = stdout_json(ipintel(&db).args([
        "keys",
        "create",
        "--label",
        "alice",
        "--plan",
        "professional",
        "--json",
    ]));
    let id = created["id"].as_str().unwrap().to_owned();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("ipintel_{id}_")));
    assert_eq!(created["plan"], "professional");
    assert_eq!(created["daily_limit"], 10_000);

    let listed = stdout_json(ipintel(&db).args(["keys", "list", "--json"]));
    let entry = &listed.as_array().unwrap()[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["label"], "alice");
    assert_eq!(entry["plan"], "professional");
    assert_eq!(entry["revoked_at"], Value::Null);
    assert!(
        !listed.to_string().contains(&key[key.len() - 32..]),
        "secret listed"
    );

    ipintel(&db)
        .args(["keys", "revoke", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("revoked {id}")));
    let listed = stdout_json(ipintel(&db).args(["keys", "list", "--json"]));
    assert!(listed[0]["revoked_at"].is_i64());

    ipintel(&db)
        .args(["keys", "revoke", &id])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already revoked"));
}

#[test]
fn keys_text_output_shows_the_key_once_and_lists_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");

    let out = ipintel(&db)
        .args(["keys", "create", "--label", "bob"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let key = text
        .lines()
        .find_map(|line| line.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_owned();
    let id = key.split('_').nth(1).unwrap().to_owned();

    ipintel(&db)
        .args(["keys", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(id.as_str()))
        .stdout(predicate::str::contains("bob"))
        .stdout(predicate::str::contains(&key[key.len() - 32..]).not());
}

#[test]
fn custom_daily_limit_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let created =
        stdout_json(ipintel(&db).args(["keys", "create", "--daily-limit", "42", "--json"]));
    assert_eq!(created["plan"], "custom");
    assert_eq!(created["daily_limit"], 42);
    let listed = stdout_json(ipintel(&db).args(["keys", "list", "--json"]));
    assert_eq!(listed[0]["daily_limit_override"], 42);
    assert_eq!(listed[0]["plan"], "custom");
}

#[test]
fn daily_limit_on_another_plan_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    ipintel(&db)
        .args(["keys", "create", "--plan", "free", "--daily-limit", "5"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("--daily-limit"));
    assert!(!db.exists(), "nothing should have been written");
}

#[test]
fn bad_configuration_exits_64_naming_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    ipintel(&db)
        .env("IPINTEL_BIND", "nonsense")
        .env("IPINTEL_PLAN_FREE_DAILY", "lots")
        .env("IPINTEL_TRUSTED_PROXIES", "10.0.0.0/33")
        .env("IPINTEL_LOG_FORMAT", "xml")
        .arg("serve")
        .assert()
        .code(64)
        .stderr(predicate::str::contains("IPINTEL_BIND"))
        .stderr(predicate::str::contains("IPINTEL_PLAN_FREE_DAILY"))
        .stderr(predicate::str::contains("IPINTEL_TRUSTED_PROXIES"))
        .stderr(predicate::str::contains("IPINTEL_LOG_FORMAT"));
    assert!(!db.exists());
}

#[test]
fn bad_plan_limit_stops_key_commands_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    ipintel(&db)
        .env("IPINTEL_PLAN_CUSTOM_DAILY", "-1")
        .args(["keys", "list"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("IPINTEL_PLAN_CUSTOM_DAILY"));
}

#[test]
fn unknown_flag_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    ipintel(&dir.path().join("x.db"))
        .args(["serve", "--no-such-flag"])
        .assert()
        .code(64);
}

#[test]
fn lookup_prints_records_from_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    let out = ipintel(&dir.path().join("x.db"))
        .env("IPINTEL_DATA_DIR", dir.path())
        .args(["lookup", "8.8.8.8", "::ffff:1.0.0.1", "10.1.1.1"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["network"]["asn"], 15169);
    assert_eq!(records[0]["geo"]["city"], "Mountain View");
    assert_eq!(records[0]["geo"]["timezone"], "America/Los_Angeles");
    assert_eq!(records[1]["ip"], "1.0.0.1");
    assert_eq!(records[1]["network"]["isp"], "Cloudflare, Inc.");
    assert_eq!(records[2]["network"]["asn"], Value::Null);
    assert!(records[2]["reserved"].is_object());
}

#[test]
fn lookup_reports_invalid_addresses() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    ipintel(&dir.path().join("x.db"))
        .args(["lookup", "--data-dir"])
        .arg(dir.path())
        .args(["8.8.8.8", "192.012.1.1"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("15169"))
        .stderr(predicate::str::contains("192.012.1.1"));
}

#[test]
fn lookup_prints_an_aligned_table() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    let out = ipintel(&dir.path().join("x.db"))
        .env("IPINTEL_DATA_DIR", dir.path())
        .args(["lookup", "--format", "table", "8.8.8.8", "10.1.1.1"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{text}");
    let google = blocks[0];
    assert!(google.starts_with("8.8.8.8 (IPv4)\n"), "{google}");
    for row in [
        "  country       US (United States)",
        "  city          Mountain View",
        "  coordinates   37.422, -122.085",
        "  time zone     America/Los_Angeles",
        "  ASN           AS15169",
        "  ISP           Google LLC",
        "  threat        clean (0/100)",
        "  flags         none",
        "  reserved      -",
    ] {
        assert!(google.lines().any(|l| l == row), "{row:?} in\n{google}");
    }
    for line in google.lines().skip(1) {
        let bytes = line.as_bytes();
        let aligned = bytes.len() > 16 && bytes[15] == b' ' && bytes[16] != b' ';
        assert!(aligned, "value not at column 16: {line:?}");
    }
    assert!(blocks[1].contains("  reserved      Private-Use (10.0.0.0/8, RFC 1918)"));
}

#[test]
fn missing_data_dir_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    ipintel(&dir.path().join("x.db"))
        .args(["lookup", "--data-dir", "no-such-dir", "8.8.8.8"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no-such-dir"));
}

#[test]
fn serve_answers_then_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    let db = dir.path().join("serve.db");
    let created = stdout_json(ipintel(&db).args(["keys", "create", "--json"]));
    let key = created["key"].as_str().unwrap();

    let server = Server::start(dir.path(), &db, &[]);
    let ready = server.get("/readyz", None);
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(ready.body.contains("\"name\":\"asn\""), "{ready:?}");
    let record = server.get("/v1/ip/8.8.8.8", Some(key));
    assert_eq!(record.status, 200, "{record:?}");
    assert_eq!(record.json()["network"]["asn"], 15169, "{record:?}");
    assert_eq!(record.header("x-ratelimit-remaining"), Some("99"));

    let rest = server.stop();
    assert!(rest.contains("\"message\":\"stopped\""), "{rest}");
    assert!(!rest.contains(&key[key.len() - 32..]), "secret in logs");

    // The lookup was flushed before exit: the key got its free plan.
    let listed = stdout_json(ipintel(&db).args(["keys", "list", "--json"]));
    assert_eq!(listed[0]["plan"], "free", "{listed}");
}

/// Sends `signal` (`TERM`, `INT`) to the server process.
fn send_signal(server: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads the rest of the log and waits for the exit, at most 10 s.
fn wait_exit(mut server: Server) -> (ExitStatus, String, Duration) {
    let started = Instant::now();
    let mut rest = String::new();
    server.log.read_to_string(&mut rest).unwrap();
    let status = server.child.wait().unwrap();
    (status, rest, started.elapsed())
}

#[test]
fn sigterm_does_not_wait_for_a_half_sent_request() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    let server = Server::start(dir.path(), &dir.path().join("half.db"), &[]);
    let mut half = TcpStream::connect(&server.addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: t").unwrap();
    std::thread::sleep(Duration::from_millis(200));

    send_signal(&server, "TERM");
    let (status, rest, took) = wait_exit(server);
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(took < Duration::from_secs(5), "{took:?} {rest}");
    assert!(!rest.contains("cut off"), "{rest}");
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once_with_130() {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    let db = dir.path().join("twice.db");
    let created = stdout_json(ipintel(&db).args(["keys", "create", "--json"]));
    let key = created["key"].as_str().unwrap();
    let server = Server::start(dir.path(), &db, &[]);

    // A report whose body is half sent keeps a request in flight, so the
    // first signal starts a drain that does not end by itself.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /v1/ip/report HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ip\":"
    );
    stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    send_signal(&server, "TERM");
    std::thread::sleep(Duration::from_millis(500));
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none(), "did not drain");

    send_signal(&server, "INT");
    let (status, rest, took) = wait_exit(server);
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(took < Duration::from_secs(3), "{took:?} {rest}");
    assert!(rest.contains("second signal"), "{rest}");
    assert!(rest.contains("usage counts flushed"), "{rest}");
}

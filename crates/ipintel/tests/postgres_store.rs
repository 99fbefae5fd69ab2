//! `ipintel keys` and `ipintel serve` on PostgreSQL: `IPINTEL_DB` (here
//! `--db`) given a `postgres://` URL whose `search_path` names a schema
//! made for the test.
//!
//! PostgreSQL is reached at `IPINTEL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); when it cannot be reached
//! the test fails if `CI` is set, and otherwise says why it skips.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::postgres::Schema;
use support::server::{create_key, Server};
use support::tiny_data_dir;

/// Posts a form report; returns the status code.
fn post_report(addr: &str, key: &str, form: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "POST /v1/ip/report HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         X-API-Key: {key}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    raw.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn keys_lookups_reports_and_usage_live_in_postgres() {
    let Some(schema) = Schema::create("e2e") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tiny_data_dir(&data);
    let db = schema.db();

    let key = create_key(db, &["--label", "on-postgres"]);
    assert_eq!(schema.bigint("SELECT COUNT(*) FROM api_keys"), 1);

    let server = Server::start(&data, db, &[]);
    for _ in 0..3 {
        let reply = server.get("/v1/ip/8.8.8.8", Some(&key));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let form = "ip=8.8.8.8&category=22&severity=high&comment=sshd";
    assert_eq!(post_report(&server.addr, &key, form), 201);
    assert_eq!(post_report(&server.addr, &key, form), 429, "a duplicate");
    let usage = server.get("/v1/usage", Some(&key)).json();
    assert_eq!(usage["today"], 3, "{usage}");
    assert_eq!(usage["plan"], "free", "{usage}");

    // The counts reach the database within a few flushes.
    let started = Instant::now();
    while schema.bigint("SELECT COALESCE(SUM(count), 0)::BIGINT FROM usage_daily") < 3 {
        assert!(started.elapsed() < Duration::from_secs(10), "not flushed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(schema.bigint("SELECT COUNT(*) FROM reports"), 1);
    let log = server.stop();
    assert!(log.contains("stopped"), "{log}");

    // A new process reads the report back from PostgreSQL.
    let server = Server::start(&data, db, &[]);
    let threat = server.get("/v1/ip/8.8.8.8/threat", Some(&key)).json();
    assert_eq!(threat["threat"]["reports"]["count"], 1, "{threat}");
    let usage = server.get("/v1/usage", Some(&key)).json();
    // The three lookups of the first process, and the threat lookup.
    assert_eq!(usage["today"], 4, "the count survives the restart: {usage}");
    server.stop();
}

#[test]
fn the_password_of_a_postgres_url_stays_out_of_the_output() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: opening the store fails, and says so.
    let url = "postgres://ipintel:s3cret-pw@127.0.0.1:9/ipintel";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ipintel"))
        .env_clear()
        .env("IPINTEL_DB", url)
        .args(["keys", "list"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("postgres://ipintel:***@127.0.0.1:9/ipintel"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ipintel"))
        .env_clear()
        .env("IPINTEL_DB", format!("{url}?sslmode=sometimes"))
        .args(["keys", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("IPINTEL_DB"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

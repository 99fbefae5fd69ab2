//! An acknowledged abuse report survives `kill -9` of the server process.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::server::{create_key, Server};
use support::tiny_data_dir;

/// Posts a form report and reads the response head and body.
fn post_report(addr: &str, key: &str, form: &str) -> String {
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
    raw
}

#[test]
fn an_acknowledged_report_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = dir.path().join("state").join("ipintel.db");
    tiny_data_dir(&data);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let key = create_key(&db, &["--label", "reporter"]);

    let mut server = Server::start(&data, &db, &[]);
    let form = "ip=8.8.8.8&category=22%2C14&severity=high&comment=sshd";
    let raw = post_report(&server.addr, &key, form);
    // SIGKILL at once: no graceful shutdown, no final flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");

    let server = Server::start(&data, &db, &[]);
    let threat = server.get("/v1/ip/8.8.8.8/threat", Some(&key)).json();
    let reports = &threat["threat"]["reports"];
    assert_eq!(reports["count"], 1, "{threat}");
    assert_eq!(
        reports["categories"],
        serde_json::json!(["port_scan", "ssh_bruteforce"])
    );
    let reason = threat["threat"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["signal"] == "abuse_reports");
    assert!(reason, "{threat}");
    server.stop();
}

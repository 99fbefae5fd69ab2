//! `ipintel enrich` run as a process on the tiny data set: every input
//! format with broken lines, CSV quoting, JSON lines without the field,
//! IPv6, invalid and reserved addresses, output order across batches, and
//! a reader that closes the pipe early.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::cargo::cargo_bin_cmd;
use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

use support::server::SETTINGS;
use support::tiny_data_dir;

/// The binary on the tiny data set, with nothing inherited from the caller.
fn enrich(data: &Path) -> Command {
    let mut cmd = cargo_bin_cmd!("ipintel");
    for name in SETTINGS {
        cmd.env_remove(name);
    }
    cmd.env("IPINTEL_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .arg("enrich");
    cmd
}

struct Run {
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn csv(&self) -> Vec<csv::StringRecord> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(self.stdout.as_bytes());
        reader.records().map(Result::unwrap).collect()
    }

    /// The counts of the summary line, by name.
    fn count(&self, what: &str) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("ipintel enrich:"))
            .unwrap_or_else(|| panic!("no summary in {:?}", self.stderr));
        let at = line
            .find(what)
            .unwrap_or_else(|| panic!("{what} in {line}"));
        let number = line[..at].trim_end().rsplit([' ', ':']).next().unwrap();
        number.replace(',', "").parse().unwrap()
    }
}

fn run(cmd: &mut Command, input: &str) -> Run {
    let out = cmd
        .write_stdin(input)
        .assert()
        .success()
        .get_output()
        .clone();
    Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny_data_dir(dir.path());
    dir
}

const NGINX: &str = "\
8.8.8.8 - - [10/Oct/2026:13:55:36 +0000] \"GET /a?b=1 HTTP/1.1\" 200 612 \"-\" \"curl/8.5.0\"
this line is not a log line
2001:db8:0:1::5 - - [10/Oct/2026:13:55:37 +0000] \"GET / HTTP/1.1\" 404 0 \"https://example.com/\" \"Mozilla/5.0 (X11)\"

2a00:1450:4001:81c::200e - - [10/Oct/2026:13:55:37 +0000] \"GET / HTTP/1.1\" 200 12 \"-\" \"ua\"
192.012.1.1 - - [10/Oct/2026:13:55:38 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"ua\"
1.0.0.9 - - [10/Oct/2026:13:55:39 +0000] \"POST /login HTTP/1.1\" 302 - \"-\" \"ua\" \"extra field\"
8.8.8.8 - - [10/Oct/2026:13:55:40 +0000] \"GET /a HTTP/1.1\" 200 6
";

#[test]
fn nginx_lines_become_json_records_with_intel() {
    let data = data();
    let out = run(enrich(data.path()).args(["--format", "nginx"]), NGINX);
    let records = out.json();
    assert_eq!(records.len(), 7, "the blank line is dropped: {records:?}");

    let google = &records[0];
    assert_eq!(google["remote_addr"], "8.8.8.8");
    assert_eq!(google["request"], "GET /a?b=1 HTTP/1.1");
    assert_eq!(google["status"], 200);
    assert_eq!(google["body_bytes_sent"], 612);
    assert_eq!(google["http_referer"], Value::Null);
    assert_eq!(google["http_user_agent"], "curl/8.5.0");
    let intel = &google["ipintel"];
    assert_eq!(intel["country"], "US");
    assert_eq!(intel["region"], "California");
    assert_eq!(intel["city"], "Mountain View");
    assert_eq!(intel["latitude"], 37.422);
    assert_eq!(intel["longitude"], -122.085);
    assert_eq!(intel["timezone"], "America/Los_Angeles");
    assert_eq!(intel["asn"], 15169);
    assert_eq!(intel["org"], "Google LLC");
    assert_eq!(intel["flags"], serde_json::json!([]));
    assert_eq!(intel["threat_score"], 0);
    assert_eq!(intel["threat_level"], "clean");

    assert_eq!(records[1]["unparsed"], "this line is not a log line");
    assert_eq!(records[1]["ipintel"], Value::Null);

    // IPv6: documentation space is reserved; a public address is looked up.
    assert_eq!(records[2]["remote_addr"], "2001:db8:0:1::5");
    assert_eq!(records[2]["ipintel"]["reserved"], "Documentation");
    assert_eq!(records[3]["remote_addr"], "2a00:1450:4001:81c::200e");
    assert!(records[3]["ipintel"].is_object());
    assert_eq!(records[3]["ipintel"]["reserved"], Value::Null);

    assert_eq!(records[4]["remote_addr"], "192.012.1.1");
    assert_eq!(records[4]["ipintel"], Value::Null, "not canonical: invalid");

    assert_eq!(records[5]["body_bytes_sent"], Value::Null);
    assert_eq!(records[5]["extra"], "\"extra field\"");
    assert_eq!(records[5]["ipintel"]["org"], "Cloudflare, Inc.");
    assert_eq!(records[6]["ipintel"], records[0]["ipintel"], "a cache hit");

    assert_eq!(out.count("lines"), 7);
    assert_eq!(out.count("enriched"), 5);
    assert_eq!(out.count("invalid addresses"), 1);
    assert_eq!(out.count("without an address"), 0);
    assert_eq!(out.count("unparsable"), 1);
    assert!(out.stderr.contains("lines/s"), "{}", out.stderr);
}

#[test]
fn apache_lines_with_escapes_and_the_common_format() {
    let data = data();
    let input = concat!(
        r#"8.8.8.8 - frank [10/Oct/2000:13:55:36 -0700] "GET /say \"hi\" HTTP/1.0" 200 2326 "-" "ua \"q\"""#,
        "\n",
        "8.8.4.4 - - [10/Oct/2000:13:55:37 -0700] \"GET / HTTP/1.0\" 304 -\n",
        "8.8.8.8 - - [10/Oct/2000:13:55:37 -0700] \"GET / HTTP/1.0\" 200\n",
        "8.8.8.8 - - [10/Oct/2000:13:55:37 -0700] \"GET / HTTP/1.0 200 5 \"-\" \"ua\"\n",
    );
    let out = run(enrich(data.path()).args(["--format", "apache"]), input);
    let records = out.json();
    assert_eq!(records[0]["remote_user"], "frank");
    assert_eq!(
        records[0]["request"], r#"GET /say \"hi\" HTTP/1.0"#,
        "as logged"
    );
    assert_eq!(records[0]["http_user_agent"], r#"ua \"q\""#);
    assert_eq!(records[1]["http_referer"], Value::Null, "common format");
    assert_eq!(
        records[1]["ipintel"]["asn"],
        Value::Null,
        "no data for 8.8.4.4"
    );
    assert!(records[2]["unparsed"].is_string(), "no size");
    assert!(records[3]["unparsed"].is_string(), "unterminated request");
    assert_eq!((out.count("enriched"), out.count("unparsable")), (2, 2));
}

#[test]
fn nginx_to_csv_keeps_columns_and_quotes() {
    let data = data();
    let out = run(
        enrich(data.path()).args(["--format", "combined", "--output", "csv"]),
        NGINX,
    );
    let rows = out.csv();
    let header: Vec<&str> = rows[0].iter().collect();
    assert_eq!(header[0], "remote_addr");
    assert_eq!(header[9], "extra");
    assert_eq!(header[10], "ipintel_country");
    assert_eq!(header.last(), Some(&"ipintel_reserved"));
    let width = header.len();
    assert!(rows.iter().all(|r| r.len() == width), "{rows:?}");
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let google = &rows[1];
    assert_eq!(&google[column("ipintel_city")], "Mountain View");
    assert_eq!(&google[column("ipintel_latitude")], "37.422");
    assert_eq!(&google[column("ipintel_asn")], "15169");
    assert_eq!(&google[column("ipintel_threat_level")], "clean");
    assert_eq!(&rows[2][0], "this line is not a log line");
    assert_eq!(&rows[2][column("ipintel_threat_level")], "");
    assert_eq!(&rows[3][column("ipintel_reserved")], "Documentation");
    let cloudflare = &rows[6];
    assert_eq!(
        &cloudflare[column("ipintel_org")],
        "Cloudflare, Inc.",
        "quoted"
    );
    assert_eq!(&cloudflare[column("extra")], "\"extra field\"");
}

#[test]
fn json_lines_with_missing_broken_and_odd_fields() {
    let data = data();
    let input = concat!(
        r#"{"ts": "2026-10-10T13:55:36Z", "client": "8.8.8.8", "bytes": 612}"#,
        "\n",
        r#"{"ts": "2026-10-10T13:55:37Z", "path": "/health"}"#,
        "\n",
        r#"{"client": "2606:4700:4700::1111"}"#,
        "\n",
        r#"{"client": 42}"#,
        "\n",
        r#"{"client": "not an ip", "n": [1, {"client": "8.8.8.8"}]}"#,
        "\n",
        "{\"client\": \"8.8.8.8\", \"broken\": \n",
        "[\"8.8.8.8\"]\n",
        r#"{"client": "1.0.0.1", "ipintel": "old"}"#,
        "\r\n",
        r#"{"client": "8.8.8.8\u0000"}"#,
        "\n",
    );
    let out = run(enrich(data.path()).args(["--field", "client"]), input);
    let records = out.json();
    assert_eq!(records.len(), 9);
    assert_eq!(records[0]["bytes"], 612, "the original members stay");
    assert_eq!(records[0]["ts"], "2026-10-10T13:55:36Z");
    assert_eq!(records[0]["ipintel"]["asn"], 15169);
    assert_eq!(records[1]["path"], "/health");
    assert_eq!(records[1]["ipintel"], Value::Null, "no field: no intel");
    assert!(records[2]["ipintel"].is_object(), "IPv6");
    assert_eq!(records[3]["ipintel"], Value::Null, "a number is no address");
    assert_eq!(records[4]["ipintel"], Value::Null);
    assert_eq!(
        records[4]["n"][1]["client"], "8.8.8.8",
        "nested members kept"
    );
    assert!(records[5]["unparsed"].as_str().unwrap().contains("broken"));
    assert_eq!(records[6]["unparsed"], "[\"8.8.8.8\"]");
    assert_eq!(records[7]["ipintel"]["org"], "Cloudflare, Inc.", "replaced");
    assert_eq!(records[8]["ipintel"], Value::Null);
    assert_eq!(out.count("enriched"), 3);
    assert_eq!(out.count("invalid addresses"), 3);
    assert_eq!(out.count("without an address"), 1);
    assert_eq!(out.count("unparsable"), 2);
}

#[test]
fn json_lines_find_a_usual_field_and_write_csv() {
    let data = data();
    let input =
        "{\"remote_addr\": \"8.8.8.8\", \"msg\": \"a, \\\"b\\\"\"}\n{\"remote_addr\": \"x\"}\n";
    let out = run(enrich(data.path()).args(["--output", "csv"]), input);
    let rows = out.csv();
    assert_eq!(&rows[0][0], "record");
    let record: Value = serde_json::from_str(&rows[1][0]).unwrap();
    assert_eq!(record["msg"], "a, \"b\"");
    assert_eq!(&rows[1][1], "US");
    assert_eq!(&rows[2][1], "");
    assert_eq!(out.count("invalid addresses"), 1);
}

#[test]
fn csv_with_quoted_fields_and_broken_rows() {
    let data = data();
    let input = concat!(
        "when,Client_IP,note\n",
        "2026-10-10,8.8.8.8,\"hello, world\"\n",
        "2026-10-10,1.0.0.1,\"say \"\"hi\"\"\nacross two lines\"\n",
        "2026-10-10,2606:4700:4700::1111,plain\n",
        "2026-10-10,,no address\n",
        "2026-10-10,8.8.8.8\n",
        "2026-10-10,999.1.1.1,bad\n",
    );
    let out = run(enrich(data.path()).args(["--output", "csv"]), input);
    let rows = out.csv();
    let header: Vec<&str> = rows[0].iter().collect();
    assert_eq!(&header[..3], ["when", "Client_IP", "note"]);
    assert_eq!(header[3], "ipintel_country");
    assert_eq!(&rows[1][2], "hello, world");
    assert_eq!(&rows[1][3], "US");
    assert_eq!(&rows[2][2], "say \"hi\"\nacross two lines");
    assert_eq!(&rows[2][3 + 7], "Cloudflare, Inc.", "ipintel_org");
    assert_eq!(&rows[3][1], "2606:4700:4700::1111");
    assert_eq!(&rows[4][3], "");
    assert_eq!(
        &rows[5][0], "2026-10-10,8.8.8.8",
        "a short row is kept as text"
    );
    assert_eq!(&rows[6][3], "");
    assert_eq!(out.count("lines"), 6);
    assert_eq!(out.count("enriched"), 3);
    assert_eq!(out.count("without an address"), 1);
    assert_eq!(out.count("unparsable"), 1);
    assert_eq!(out.count("invalid addresses"), 1);

    let out = run(
        enrich(data.path()).args(["--column", "client_ip", "--unparsable", "skip"]),
        input,
    );
    let records = out.json();
    assert_eq!(records.len(), 5, "the short row is skipped");
    assert_eq!(records[0]["note"], "hello, world");
    assert_eq!(records[0]["Client_IP"], "8.8.8.8");
    assert_eq!(records[0]["ipintel"]["city"], "Mountain View");
    assert_eq!(records[1]["note"], "say \"hi\"\nacross two lines");
}

#[test]
fn unparsable_lines_can_be_skipped() {
    let data = data();
    let out = run(
        enrich(data.path()).args(["--format", "nginx", "--unparsable", "skip"]),
        NGINX,
    );
    let records = out.json();
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r.get("unparsed").is_none()));
    assert_eq!(out.count("unparsable"), 1, "still counted");
}

#[test]
fn a_file_argument_and_format_detection() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, format!("\n{NGINX}")).unwrap();
    let out = enrich(data.path()).arg(&log).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["ipintel"]["asn"], 15169);

    enrich(data.path())
        .arg(dir.path().join("missing.log"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.log"));
    enrich(data.path())
        .write_stdin("just some words\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--format"));
    enrich(data.path())
        .write_stdin("a,b\n1,2\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--column"));
    // Empty input: nothing to do, no error.
    let out = run(&mut enrich(data.path()), "");
    assert_eq!(out.stdout, "");
    assert_eq!(out.count("lines"), 0);
}

/// A log over several batches (of 1 MiB), with the addresses numbered.
fn long_log(lines: u32) -> String {
    let mut log = String::new();
    for i in 0..lines {
        let ip = if i % 3 == 0 {
            "8.8.8.8".to_owned()
        } else {
            format!("1.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
        };
        log.push_str(&format!(
            "{ip} - - [10/Oct/2026:13:55:36 +0000] \"GET /{i} HTTP/1.1\" 200 {i} \"-\" \"ua\"\n"
        ));
    }
    log
}

#[test]
fn output_keeps_the_input_order_across_batches() {
    let data = data();
    let lines = 60_000;
    let out = run(&mut enrich(data.path()), &long_log(lines));
    let records = out.json();
    assert_eq!(records.len(), lines as usize);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["body_bytes_sent"], i, "line {i}");
    }
    assert_eq!(out.count("enriched"), u64::from(lines));
}

#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    std::fs::write(&log, long_log(150_000)).unwrap();
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_ipintel"))
        .env_clear()
        .env("IPINTEL_DATA_DIR", data.path())
        .env("RUST_LOG", "warn")
        .arg("enrich")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 4096];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn standard_input_streams_line_by_line() {
    // A slow writer: the first record comes out before the input ends.
    let data = data();
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_ipintel"))
        .env_clear()
        .env("IPINTEL_DATA_DIR", data.path())
        .env("RUST_LOG", "warn")
        .args(["enrich", "--format", "nginx", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(NGINX.lines().next().unwrap().as_bytes())
        .unwrap();
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "output ended early");
        got.push(byte[0]);
    }
    let record: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(record["ipintel"]["asn"], 15169);
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

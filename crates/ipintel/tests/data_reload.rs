//! The data updates itself: a feed served on loopback changes, the running
//! service picks it up on an admin reload and on SIGHUP while a bounded load
//! runs, with no failed request and no answer mixing old and new data; a
//! truncated feed then changes nothing but the error `/readyz` reports.

#![allow(clippy::unwrap_used)]

#[path = "support/server.rs"]
mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use server::{create_key, Server, SETTINGS};

/// A loopback HTTP server for one feed, with ETags and 304 answers.
struct Feed {
    addr: String,
    body: Arc<Mutex<(u64, String)>>,
    gets: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Feed {
    fn start(body: &str) -> Feed {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let feed = Feed {
            addr,
            body: Arc::new(Mutex::new((1, body.to_owned()))),
            gets: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (body, gets, stop) = (feed.body.clone(), feed.gets.clone(), feed.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(conn) = conn {
                    gets.fetch_add(1, Ordering::Relaxed);
                    answer(conn, &body);
                }
            }
        });
        feed
    }

    fn set(&self, text: &str) {
        let mut guard = self.body.lock().unwrap();
        guard.0 += 1;
        guard.1 = text.to_owned();
    }

    fn url(&self) -> String {
        format!("http://{}/blocklist.netset", self.addr)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn answer(conn: TcpStream, body: &Mutex<(u64, String)>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut if_none_match = None;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 2 {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("if-none-match:") {
            if_none_match = Some(v.trim().to_owned());
        }
        line.clear();
    }
    let (version, text) = body.lock().unwrap().clone();
    let etag = format!("\"v{version}\"");
    let mut conn = conn;
    let reply = if if_none_match.as_deref() == Some(etag.as_str()) {
        format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n")
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
    };
    let _ = conn.write_all(reply.as_bytes());
}

/// Filler so that the feed has the same size in every version (the shrink
/// guard compares record counts).
fn feed_text(extra: &str) -> String {
    let mut text = String::from("# test blocklist\n5.5.5.5\n");
    for i in 1..=20 {
        text.push_str(&format!("7.7.{i}.0/24\n"));
    }
    text.push_str(extra);
    text
}

const WATCHED: &str = "6.6.6.6";

/// One lookup of the watched address on a fresh connection: `Ok(listed)`,
/// or `Err` for anything but a consistent 200.
fn probe(addr: &str, key: &str) -> Result<bool, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "GET /v1/ip/{WATCHED} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (status_line, rest) = raw.split_once("\r\n").ok_or("no status line")?;
    if !status_line.contains(" 200 ") {
        return Err(format!("{status_line}: {rest}"));
    }
    let body: Value = serde_json::from_str(rest.split_once("\r\n\r\n").ok_or("no body")?.1)
        .map_err(|e| e.to_string())?;
    let reasons = body["threat"]["reasons"].as_array().ok_or("no reasons")?;
    let reason = reasons.iter().any(|r| r["source"] == "testfeed");
    let detail = body["flag_details"].get("blocklist").is_some()
        || body["threat"]["score"].as_u64().unwrap_or(0) > 0;
    let geo = body["geo"]["country"] == "DE";
    if reason != detail || !geo {
        return Err(format!("mixed answer: {body}"));
    }
    Ok(reason)
}

/// What one client saw: requests, failures, and the sequence of distinct answers.
type ClientLog = (u64, Vec<String>, Vec<bool>);

struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<ClientLog>>,
}

/// Two client threads, each at most 4000 requests and 30 s.
fn start_load(addr: &str, key: &str) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..2)
        .map(|_| {
            let (addr, key, stop) = (addr.to_owned(), key.to_owned(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let (mut n, mut errors, mut seen) = (0u64, Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed)
                    && n < 4000
                    && started.elapsed() < Duration::from_secs(30)
                {
                    n += 1;
                    match probe(&addr, &key) {
                        Ok(listed) => {
                            if seen.last() != Some(&listed) {
                                seen.push(listed);
                            }
                        }
                        Err(e) => errors.push(e),
                    }
                }
                (n, errors, seen)
            })
        })
        .collect();
    Load { stop, threads }
}

fn admin_reload(server: &Server, token: &str) -> Value {
    let auth = format!("Bearer {token}");
    let reply = server.request("POST", "/v1/admin/reload", &[("Authorization", &auth)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn source_status(server: &Server, name: &str) -> Value {
    let ready = server.get("/readyz", None).json();
    ready["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} missing in {ready}"))
}

fn wait_for(mut check: impl FnMut() -> bool, what: &str) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn feed_changes_reach_the_running_service_and_a_bad_feed_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let feed = Feed::start(&feed_text(""));
    let sources = sources_with_feed(
        dir.path(),
        &feed.url(),
        "weights = { blocklist = { weight = 70, confidence = 0.8 } }\n",
    );
    let db = dir.path().join("keys.db");
    let key = create_key(&db, &["--plan", "enterprise"]);
    let token = "test-admin-token-1234";
    let server = Server::start(
        &data,
        &db,
        &[
            ("IPINTEL_SOURCES", sources.to_str().unwrap()),
            ("IPINTEL_ADMIN_TOKEN", token),
            ("IPINTEL_DATA_REFRESH_SECS", "0"),
            // no access log: nobody drains the server's stderr during the load
            ("RUST_LOG", "warn,ipintel::serve=info"),
        ],
    );
    assert_eq!(probe(&server.addr, &key), Ok(false), "not listed at first");
    let wrong = server.request(
        "POST",
        "/v1/admin/reload",
        &[("Authorization", "Bearer nope")],
    );
    assert_eq!(wrong.status, 403);

    // 1. the feed lists the watched address; an admin reload under load
    let load = start_load(&server.addr, &key);
    std::thread::sleep(Duration::from_millis(300));
    feed.set(&feed_text(&format!("{WATCHED}\n")));
    let report = admin_reload(&server, token);
    assert_eq!(report["outcome"], "reloaded", "{report}");
    assert_eq!(report["feeds"][0]["result"], "updated", "{report}");
    wait_for(
        || probe(&server.addr, &key) == Ok(true),
        "the listed answer",
    );

    // 2. the feed drops it again; SIGHUP under the same load
    feed.set(&feed_text("8.8.0.0/16\n"));
    let gets = feed.gets.load(Ordering::Relaxed);
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(
        || feed.gets.load(Ordering::Relaxed) > gets,
        "the SIGHUP download",
    );
    wait_for(
        || probe(&server.addr, &key) == Ok(false),
        "the unlisted answer",
    );
    std::thread::sleep(Duration::from_millis(300));
    load.stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for thread in load.threads {
        let (n, errors, seen) = thread.join().unwrap();
        total += n;
        assert!(
            errors.is_empty(),
            "{} failed requests, first: {}",
            errors.len(),
            errors[0]
        );
        // each client saw unlisted, then listed, then unlisted: never back and forth
        assert!(seen.len() <= 3 && seen.first() == Some(&false), "{seen:?}");
    }
    assert!(total > 20, "the load ran only {total} requests");
    eprintln!("load: {total} requests, 0 failed, across 2 reloads");

    // 3. a truncated feed: nothing changes but the error of that source.
    // Its last line is cut inside the prefix length: `7.7.20.0/2` would
    // be a quarter of IPv4 (the watched address included).
    let before = server.get("/readyz", None).json();
    let full = feed_text("");
    feed.set(&full[..full.len() - 2]);
    let report = admin_reload(&server, token);
    assert_eq!(report["outcome"], "unchanged", "{report}");
    assert_eq!(report["feeds"][0]["result"], "failed", "{report}");
    let status = source_status(&server, "testfeed");
    let message = status["last_error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("testfeed.new:22:"), "{status}");
    assert_eq!(probe(&server.addr, &key), Ok(false));
    let after = server.get("/readyz", None).json();
    assert_eq!(before["built_at_unix"], after["built_at_unix"]);
    assert_eq!(
        status["records"],
        source_status(&server, "testfeed")["records"]
    );
    assert!(source_status(&server, "fixture-geo")["last_error"].is_null());
    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains("ipintel_reloads_total{outcome=\"failed\"} 1"),
        "a refused feed counts as a failed reload:\n{metrics}"
    );

    // 4. a good feed again clears the error
    feed.set(&feed_text(&format!("{WATCHED}\n")));
    let report = admin_reload(&server, token);
    assert_eq!(report["outcome"], "reloaded", "{report}");
    assert!(source_status(&server, "testfeed")["last_error"].is_null());
    assert_eq!(probe(&server.addr, &key), Ok(true));
    server.stop();
}

/// A sources file with the fixture geo data and one URL source at `url`,
/// `extra` added to the feed's table.
fn sources_with_feed(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("geo.csv"),
        "5.0.0.0,7.255.255.255,DE,Berlin,,Berlin,,52.52,13.40\n",
    )
    .unwrap();
    let sources = dir.join("sources.toml");
    std::fs::write(
        &sources,
        format!(
            "[[source]]\nname = \"fixture-geo\"\ntells = [\"geo\"]\nformat = \"csv-geo\"\n\
             location = \"geo.csv\"\nlicence = \"test\"\nattribution = \"test\"\n\n\
             [[source]]\nname = \"testfeed\"\ntells = [\"blocklist\"]\nformat = \"netset\"\n\
             location = \"{url}\"\nrefresh = \"1h\"\nlicence = \"test\"\nattribution = \"test\"\n\
             {extra}"
        ),
    )
    .unwrap();
    sources
}

#[test]
fn a_feed_unreachable_at_first_start_is_named_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port that nothing listens on any more.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sources = sources_with_feed(dir.path(), &format!("http://{closed}/feed.netset"), "");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipintel"));
    for name in SETTINGS {
        cmd.env_remove(name);
    }
    let output = cmd
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--db")
        .arg(dir.path().join("keys.db"))
        .env("IPINTEL_SOURCES", &sources)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("testfeed"), "names the source: {stderr}");
    assert!(
        stderr.contains("refused"),
        "says what failed on the wire: {stderr}"
    );
    assert!(stderr.contains("no earlier copy"), "{stderr}");
    assert!(!stderr.contains("No such file"), "{stderr}");
}

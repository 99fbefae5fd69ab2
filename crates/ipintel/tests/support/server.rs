//! An `ipintel serve` process for tests, and a minimal HTTP/1.1 client that
//! talks to it over loopback.
#![allow(
    dead_code,
    reason = "several test binaries share this, each using a part"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every setting the binary reads from the environment; tests clear them so
/// that nothing leaks in from the caller's shell.
pub const SETTINGS: [&str; 23] = [
    "IPINTEL_BIND",
    "IPINTEL_HEADER_TIMEOUT_SECS",
    "IPINTEL_MAX_CONNECTIONS",
    "IPINTEL_DATA_DIR",
    "IPINTEL_DB",
    "IPINTEL_TRUSTED_PROXIES",
    "IPINTEL_PLAN_FREE_DAILY",
    "IPINTEL_PLAN_PROFESSIONAL_DAILY",
    "IPINTEL_PLAN_ENTERPRISE_DAILY",
    "IPINTEL_PLAN_CUSTOM_DAILY",
    "IPINTEL_KEYS_PER_HOUR_PER_CLIENT",
    "IPINTEL_PORTAL_PER_MINUTE",
    "IPINTEL_PORTAL_PER_DAY",
    "IPINTEL_LOG_FORMAT",
    "IPINTEL_SOURCES",
    "IPINTEL_DATA_REFRESH_SECS",
    "IPINTEL_ADMIN_TOKEN",
    "IPINTEL_REDIS_URL",
    "IPINTEL_REDIS_TIMEOUT_MS",
    "IPINTEL_REDIS_PREFIX",
    "IPINTEL_QUOTA_FALLBACK",
    "RUST_LOG",
    "IPINTEL_UNUSED",
];

/// Creates a key with the CLI on `db` (`extra` adds flags such as
/// `--plan enterprise`); returns the full key text.
pub fn create_key(db: &Path, extra: &[&str]) -> String {
    create_key_with_id(db, extra).1
}

/// [`create_key`], returning the key's id with its full text.
pub fn create_key_with_id(db: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["keys", "create", "--json"];
    args.extend_from_slice(extra);
    let created: Value = serde_json::from_str(&cli(db, &args)).unwrap();
    let field = |name: &str| created[name].as_str().unwrap().to_owned();
    (field("id"), field("key"))
}

/// Runs the CLI on `db` with `args`, with none of the developer's
/// `IPINTEL_*` settings; returns its standard output.
pub fn cli(db: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipintel"));
    for name in SETTINGS {
        cmd.env_remove(name);
    }
    let output = cmd
        .env("IPINTEL_DB", db)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A running server, killed and reaped if a test ends without stopping it.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub log: BufReader<ChildStderr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Starts `ipintel serve` on an ephemeral loopback port and waits for its
    /// "listening" line (the data is loaded by then).
    pub fn start(data: &Path, db: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipintel"));
        for name in SETTINGS {
            cmd.env_remove(name);
        }
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--db")
            .arg(db)
            .env("IPINTEL_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let log = BufReader::new(child.stderr.take().unwrap());
        let mut server = Server {
            child,
            addr: String::new(),
            log,
        };
        let started = Instant::now();
        let mut line = String::new();
        loop {
            line.clear();
            let read = server.log.read_line(&mut line).unwrap();
            assert!(read > 0, "server exited early");
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["message"] == "listening" {
                server.addr = event["addr"].as_str().unwrap().to_owned();
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no listening line"
            );
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the rest of the log.
    pub fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = String::new();
        self.log.read_to_string(&mut rest).unwrap();
        let exit = self.child.wait().unwrap();
        assert_eq!(exit.code(), Some(0), "{rest}");
        rest
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n",
            self.addr
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        parse_reply(&raw).unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"))
    }

    /// `GET path`, with the key in `X-API-Key` when one is given.
    pub fn get(&self, path: &str, key: Option<&str>) -> Reply {
        match key {
            Some(key) => self.request("GET", path, &[("X-API-Key", key)]),
            None => self.request("GET", path, &[]),
        }
    }
}

/// A response: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn try_json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The body as JSON; panics (showing the reply) if it is not.
    pub fn json(&self) -> Value {
        self.try_json()
            .unwrap_or_else(|| panic!("not a JSON body: {self:?}"))
    }

    /// The error code of an error response.
    pub fn code(&self) -> Option<String> {
        self.try_json()?["error"]["code"]
            .as_str()
            .map(str::to_owned)
    }

    /// `Retry-After` in whole seconds, if present and well formed.
    pub fn retry_after(&self) -> Option<u64> {
        self.header("retry-after")?.parse().ok()
    }
}

/// Reads a whole response (the connection closed after it); `None` when
/// it is not one.
pub fn parse_reply(raw: &str) -> Option<Reply> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// The body of a chunked transfer, or `None` if it is cut short.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
    None
}

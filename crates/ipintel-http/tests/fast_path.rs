//! The direct path for `GET /v1/ip/{ip}` on raw connections: it must send
//! what the router sends, keep pipelined requests in order across the
//! hand-over to the router, count exactly what the router counts, and
//! leave every refusal to the router.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::time::Duration;

use common::{temp_db, Options, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(5);

/// One response: status line, headers (lower-case names, in order) and body.
#[derive(Debug)]
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Reads whole responses off one connection, keeping what follows.
struct Reader {
    stream: TcpStream,
    data: Vec<u8>,
}

impl Reader {
    async fn connect(server: &TestServer) -> Reader {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        Reader {
            stream,
            data: Vec::new(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.unwrap();
    }

    async fn next(&mut self) -> Response {
        loop {
            if let Some(response) = self.take() {
                return response;
            }
            let mut chunk = [0_u8; 8192];
            let n = timeout(PATIENCE, self.stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(n, 0, "closed before a whole response");
            self.data.extend_from_slice(&chunk[..n]);
        }
    }

    fn take(&mut self) -> Option<Response> {
        let end = self.data.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8(self.data[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        if self.data.len() < end + 4 + length {
            return None;
        }
        let body = self.data[end + 4..end + 4 + length].to_vec();
        self.data.drain(..end + 4 + length);
        Some(Response {
            status,
            headers,
            body,
        })
    }
}

fn lookup(ip: &str, key: &str, extra: &str) -> String {
    format!("GET /v1/ip/{ip} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n{extra}\r\n")
}

#[tokio::test]
async fn direct_answer_equals_the_routers() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    let mut direct = Reader::connect(&server).await;
    direct.send(&lookup("8.8.8.8", &key, "")).await;
    let fast = direct.next().await;
    // `Connection: close` is left to the router.
    let mut routed = Reader::connect(&server).await;
    routed
        .send(&lookup("8.8.8.8", &key, "Connection: close\r\n"))
        .await;
    let slow = routed.next().await;

    assert_eq!(fast.status, "HTTP/1.1 200 OK");
    assert_eq!(fast.status, slow.status);
    assert_eq!(fast.body, slow.body);
    let names = |r: &Response| -> Vec<String> {
        r.headers
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| n != "connection")
            .collect()
    };
    assert_eq!(names(&fast), names(&slow));
    for name in [
        "content-type",
        "x-ratelimit-limit",
        "x-ratelimit-reset",
        "content-length",
    ] {
        assert_eq!(fast.header(name), slow.header(name), "{name}");
    }
    assert_eq!(fast.header("x-ratelimit-remaining"), Some("99"));
    assert_eq!(slow.header("x-ratelimit-remaining"), Some("98"));
    assert!(fast.header("date").unwrap().ends_with(" GMT"));
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_keep_their_order_across_the_hand_over() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    let mut conn = Reader::connect(&server).await;
    let batch = [
        lookup("8.8.8.8", &key, ""),
        lookup("1.1.1.1", &key, ""),
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
        lookup("9.9.9.9", &key, ""),
        lookup("not-an-ip", &key, ""),
        lookup("2001:4860:4860::8888", &key, ""),
    ]
    .concat();
    conn.send(&batch).await;

    assert_eq!(conn.next().await.json()["ip"], "8.8.8.8");
    assert_eq!(conn.next().await.json()["ip"], "1.1.1.1");
    assert_eq!(conn.next().await.json()["status"], "ok");
    assert_eq!(conn.next().await.json()["ip"], "9.9.9.9");
    let invalid = conn.next().await;
    assert!(invalid.status.starts_with("HTTP/1.1 400"), "{invalid:?}");
    assert_eq!(invalid.json()["error"]["code"], "invalid_ip");
    assert_eq!(conn.next().await.json()["ip"], "2001:4860:4860::8888");

    // Four lookups counted; the invalid address and /healthz not.
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 4, "{}", usage.body);
    server.stop().await;
}

#[tokio::test]
async fn a_spent_quota_is_refused_by_the_router_and_nothing_more_is_counted() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::free_limit(2)).await;
    let key = server.new_key().await;

    let mut conn = Reader::connect(&server).await;
    for remaining in ["1", "0"] {
        conn.send(&lookup("8.8.8.8", &key, "")).await;
        let ok = conn.next().await;
        assert_eq!(ok.status, "HTTP/1.1 200 OK");
        assert_eq!(ok.header("x-ratelimit-remaining"), Some(remaining));
    }
    conn.send(&lookup("8.8.8.8", &key, "")).await;
    let refused = conn.next().await;
    assert!(refused.status.starts_with("HTTP/1.1 429"), "{refused:?}");
    assert_eq!(refused.json()["error"]["code"], "quota_exceeded");

    let mut fresh = Reader::connect(&server).await;
    fresh.send(&lookup("8.8.8.8", &key, "")).await;
    assert!(fresh.next().await.status.starts_with("HTTP/1.1 429"));
    server.stop().await;
}

#[tokio::test]
async fn bad_keys_are_refused_by_the_router() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;

    let mut conn = Reader::connect(&server).await;
    conn.send("GET /v1/ip/8.8.8.8 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    assert_eq!(conn.next().await.json()["error"]["code"], "missing_api_key");

    let mut conn = Reader::connect(&server).await;
    conn.send(&lookup("8.8.8.8", "ipintel_nope_nope", "")).await;
    let reply = conn.next().await;
    assert!(reply.status.starts_with("HTTP/1.1 401"), "{reply:?}");
    assert_eq!(reply.json()["error"]["code"], "invalid_api_key");
    server.stop().await;
}

#[tokio::test]
async fn direct_lookups_are_counted_in_the_metrics() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    let mut conn = Reader::connect(&server).await;
    for _ in 0..3 {
        conn.send(&lookup("8.8.8.8", &key, "")).await;
        conn.next().await;
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("ipintel_http_requests_total{route=\"/v1/ip/{ip}\",status=\"200\"} 3"),
        "{metrics}"
    );
    server.stop().await;
}

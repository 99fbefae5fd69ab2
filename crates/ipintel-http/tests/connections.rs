//! Connection handling of the real server: the header read timeout, the
//! connection cap, and a shutdown that waits for requests in flight only.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::{temp_db, Options, TestServer};
use ipintel_http::ServeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Far longer than any test should take; a test waiting this long has failed.
const PATIENCE: Duration = Duration::from_secs(5);

fn options(header_timeout: Duration, max_connections: usize) -> Options {
    Options {
        serve: ServeOptions {
            header_timeout,
            max_connections,
            ..ServeOptions::default()
        },
        ..Options::default()
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.unwrap()
}

/// Reads one response with a `Content-Length` body; returns its status line
/// and body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut data = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap();
            if data.len() >= end + 4 + length {
                let status = text.lines().next().unwrap().to_owned();
                return (status, text[end + 4..end + 4 + length].to_owned());
            }
        }
        let read = timeout(PATIENCE, stream.read(&mut chunk)).await.unwrap();
        let read = read.unwrap();
        assert_ne!(
            read,
            0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&chunk[..read]);
    }
}

/// Waits for the server to close `stream`; returns how long that took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0_u8; 1024];
    loop {
        match timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            // A 408 or similar before the close is fine.
            Ok(Ok(_)) => {}
        }
    }
}

fn get(path: &str, key: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\n\r\n")
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, options(Duration::from_millis(300), 64)).await;

    let mut half = connect(&server).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let mut silent = connect(&server).await;
    let waited = closed_after(&mut half).await;
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    closed_after(&mut silent).await;

    // The timeout also ends a keep-alive connection whose next request
    // stalls half-way.
    let key = server.new_key().await;
    let mut keep = connect(&server).await;
    keep.write_all(get("/v1/ip/8.8.8.8", &key).as_bytes())
        .await
        .unwrap();
    let (status, _) = read_response(&mut keep).await;
    assert!(status.contains(" 200 "), "{status}");
    keep.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    closed_after(&mut keep).await;
    server.stop().await;
}

#[tokio::test]
async fn a_slow_client_sending_a_header_line_a_time_is_cut_off() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, options(Duration::from_millis(400), 64)).await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();

    let started = Instant::now();
    let mut cut_off = false;
    for n in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow
            .write_all(format!("X-Slow-{n}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            cut_off = true;
            break;
        }
    }
    if !cut_off {
        closed_after(&mut slow).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_or_half_sent_connections() {
    let (_dir, db) = temp_db();
    // A header timeout far beyond the test's patience: only shutdown may
    // close these connections in time.
    let server = TestServer::start(&db, options(Duration::from_secs(60), 64)).await;
    let key = server.new_key().await;

    let mut idle = connect(&server).await;
    for _ in 0..3 {
        idle.write_all(get("/v1/ip/8.8.8.8", &key).as_bytes())
            .await
            .unwrap();
        let (status, _) = read_response(&mut idle).await;
        assert!(status.contains(" 200 "), "{status}");
    }
    let mut half = connect(&server).await;
    half.write_all(b"GET /v1/ip/8.8.8.8 HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut silent = connect(&server).await;
    // Let the server take the half-sent bytes in.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let db = timeout(PATIENCE, server.stop())
        .await
        .expect("shutdown hung");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for stream in [&mut idle, &mut half, &mut silent] {
        closed_after(stream).await;
    }

    // The final flush wrote the three lookups.
    let server = TestServer::start(&db, Options::default()).await;
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 3, "{}", usage.body);
    server.stop().await;
}

#[tokio::test]
async fn a_request_in_flight_during_shutdown_completes() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, options(Duration::from_secs(60), 64)).await;
    let key = server.new_key().await;
    let body = r#"{"ip": "123.202.30.78", "category": "ssh_bruteforce"}"#;
    let (first, rest) = body.split_at(20);

    // Head and half the body sent: the handler is waiting for the rest.
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /v1/ip/report HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let (status, reply) = read_response(&mut stream).await;
    assert!(status.contains(" 201 "), "{status} {reply}");
    closed_after(&mut stream).await;
    timeout(PATIENCE, server.stop())
        .await
        .expect("shutdown hung");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, options(Duration::from_secs(60), 1)).await;
    let key = server.new_key().await;
    let request = get("/v1/ip/8.8.8.8", &key);

    let mut first = connect(&server).await;
    first.write_all(request.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut first).await;
    assert!(status.contains(" 200 "), "{status}");

    // The second connection sits in the backlog while the first is open.
    let mut second = connect(&server).await;
    second.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0_u8; 16];
    let early = timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(early.is_err(), "answered beyond the cap: {early:?}");

    drop(first);
    let (status, _) = read_response(&mut second).await;
    assert!(status.contains(" 200 "), "{status}");
    drop(second);
    server.stop().await;
}

/// A report body whose chunked encoding breaks is answered as unreadable,
/// not as too large, and one over the limit as too large.
#[tokio::test]
async fn a_broken_chunked_body_is_told_apart_from_a_large_one() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let head = |extra: &str| {
        format!(
            "POST /v1/ip/report HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{extra}\r\n"
        )
    };

    let mut stream = connect(&server).await;
    let broken = format!(
        "{}5\r\nip=1.\r\nzz\r\n",
        head("Transfer-Encoding: chunked\r\n")
    );
    stream.write_all(broken.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert!(status.contains(" 422 "), "{status} {body}");
    assert!(body.contains("could not be read"), "{body}");
    assert!(!body.contains("larger than"), "{body}");

    let mut stream = connect(&server).await;
    let filler = "x".repeat(70 * 1024);
    let large = format!(
        "{}ip=1.2.3.4&category=18&comment={filler}",
        head(&format!("Content-Length: {}\r\n", 26 + filler.len()))
    );
    stream.write_all(large.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert!(status.contains(" 422 "), "{status} {body}");
    assert!(body.contains("larger than 65536 bytes"), "{body}");
    server.stop().await;
}

/// A body that stops arriving is answered with 408 after 10 s instead of
/// holding the connection for as long as the client likes.
#[tokio::test]
async fn a_withheld_body_is_answered_after_the_body_timeout() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /v1/ip/report HTTP/1.1\r\nHost: test\r\nX-API-Key: {key}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nip=1."
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // `read_response` waits 5 s for each read; the answer is due at 10 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (status, body) = read_response(&mut stream).await;
    let waited = started.elapsed();
    assert!(status.contains(" 408 "), "{status} {body}");
    assert!(body.contains("body_timeout"), "{body}");
    assert!(
        waited >= Duration::from_secs(9),
        "answered after {waited:?}"
    );
    server.stop().await;
}

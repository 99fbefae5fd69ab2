//! A direct HTTP/1.1 path for the hottest route, `GET /v1/ip/{ip}`.
//!
//! Under load, the general stack (hyper's dispatcher, the router, two
//! middleware layers and the extractors) cost more CPU per lookup than the
//! lookup, the score and the JSON together. So every connection starts
//! here. While its requests are plain `GET /v1/ip/{ip}` requests over
//! HTTP/1.1, without a body, with a key that authenticates and quota left,
//! they are parsed with `httparse` and answered from this loop with the
//! bytes the router would send for them.
//!
//! The first request that is anything else is handed to hyper and the
//! router, with every byte read so far, and they serve the rest of the
//! connection. That covers another route or method, a body, an upgrade, an
//! `Expect` header, a percent-encoded or query-carrying path, an invalid
//! address, a key that fails and a spent quota. Nothing is counted before
//! the hand-over, so each error answer and each other route keeps a single
//! implementation.

use std::cell::RefCell;
use std::net::IpAddr;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use ipintel_core::addr::parse_ip;
use ipintel_store::{KeyHandle, Quota};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::auth::key_from;
use crate::clock::now_unix;
use crate::handlers::lookup::with_reports;
use crate::reply::BODY_CAPACITY;
use crate::routes::panic_cause;
use crate::state::AppState;

/// The route template this path answers, as metrics and the access log
/// name it.
pub(crate) const ROUTE: &str = "/v1/ip/{ip}";

const PREFIX: &str = "/v1/ip/";

/// A request head longer than this is left to hyper and its limits.
const MAX_HEAD: usize = 16 * 1024;

/// More headers than this and the request is left to hyper.
const MAX_HEADERS: usize = 32;

/// How a connection left the fast path.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The connection is over: closed by the client, timed out waiting for
    /// a request, failed, or shut down between requests.
    Done,
    /// Serve the rest of the connection with the router, starting with
    /// these bytes, already read from the socket.
    HandOver(Bytes),
}

/// What a request head in the buffer asks for.
enum Parsed {
    /// Not all of the head has arrived yet.
    Partial,
    /// A lookup this path can answer, if the key and quota allow.
    Lookup {
        head_len: usize,
        ip: IpAddr,
        key: Range<usize>,
    },
    /// Anything else: the router's business.
    Other,
}

/// Answers the connection's requests while they are plain lookups; see
/// the module comment.
pub(crate) async fn serve(
    stream: &mut TcpStream,
    state: &AppState,
    header_timeout: Duration,
    shutdown: &CancellationToken,
) -> Outcome {
    let mut input = BytesMut::with_capacity(4096);
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    let mut output = Vec::with_capacity(BODY_CAPACITY);
    loop {
        let deadline = tokio::time::Instant::now() + header_timeout;
        let (head_len, ip, key) = loop {
            match parse(&input) {
                Parsed::Lookup { head_len, ip, key } => break (head_len, ip, key),
                Parsed::Other => return Outcome::HandOver(input.freeze()),
                Parsed::Partial if input.len() >= MAX_HEAD => {
                    return Outcome::HandOver(input.freeze())
                }
                Parsed::Partial => {}
            }
            let read = tokio::select! {
                () = shutdown.cancelled() => return Outcome::Done,
                () = tokio::time::sleep_until(deadline) => return Outcome::Done,
                read = stream.read_buf(&mut input) => read,
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Outcome::Done;
            }
        };

        let started = Instant::now();
        let Some((key, quota)) = admit(state, &input[key]).await else {
            return Outcome::HandOver(input.freeze());
        };
        respond(state, ip, &quota, &mut body, &mut output);
        input.advance(head_len);
        if stream.write_all(&output).await.is_err() {
            return Outcome::Done;
        }
        log(state, &key, started.elapsed());
        if shutdown.is_cancelled() {
            return Outcome::Done;
        }
    }
}

/// Reads the request head at the start of `input`.
fn parse(input: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if request.method != Some("GET") || request.version != Some(1) {
        return Parsed::Other;
    }
    let Some(text) = request.path.and_then(|path| path.strip_prefix(PREFIX)) else {
        return Parsed::Other;
    };
    // The router percent-decodes and drops queries; leave those to it.
    if text.is_empty() || text.contains(['/', '?', '#', '%']) {
        return Parsed::Other;
    }
    let Ok(ip) = parse_ip(text) else {
        return Parsed::Other;
    };
    match presented_key(input, request.headers) {
        Some(key) => Parsed::Lookup { head_len, ip, key },
        None => Parsed::Other,
    }
}

/// Where in `input` the presented key is, when the headers are ones this
/// path serves: no body, no upgrade, no `Expect`, no `Connection: close`,
/// and a key header in plain visible text.
fn presented_key(input: &[u8], headers: &[httparse::Header<'_>]) -> Option<Range<usize>> {
    let mut x_api_key = None;
    let mut authorization = None;
    for header in headers {
        let name = header.name;
        let is = |other: &str| name.eq_ignore_ascii_case(other);
        if is("content-length") || is("transfer-encoding") || is("expect") || is("upgrade") {
            return None;
        }
        if is("connection") && !header.value.eq_ignore_ascii_case(b"keep-alive") {
            return None;
        }
        if is("x-api-key") && x_api_key.is_none() {
            x_api_key = Some(visible_text(header.value)?);
        } else if is("authorization") && authorization.is_none() {
            authorization = Some(header.value);
        }
    }
    // As the router reads them: `X-API-Key` first, `Authorization` only
    // without it.
    let authorization = match x_api_key {
        Some(_) => None,
        None => Some(visible_text(authorization?)?),
    };
    let key = key_from(x_api_key, authorization).ok()?;
    let start = key.as_ptr() as usize - input.as_ptr() as usize;
    Some(start..start + key.len())
}

/// `value` as text when every byte is visible ASCII, space or tab (what
/// the router's header text accepts).
fn visible_text(value: &[u8]) -> Option<&str> {
    let plain = value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    plain.then(|| std::str::from_utf8(value).ok()).flatten()
}

/// Authenticates `key` and counts one lookup, giving the quota as it
/// stands after it, or `None` (nothing counted) when the router should
/// answer: not valid UTF-8, not in memory (unknown, or not yet read from
/// the store), wrong, revoked, or out of quota.
async fn admit(state: &AppState, key: &[u8]) -> Option<(KeyHandle, Quota)> {
    let key = std::str::from_utf8(key).ok()?;
    // Only keys in memory: the router reads an unseen key from the store
    // once, with its time limit, rather than this path and then the router
    // each waiting on a database that does not answer.
    let handle = state.accounts.authenticate_cached(key)?;
    let quota = state.accounts.charge(&handle, 1, now_unix()).await.ok()?;
    state.metrics.lookup(handle.plan());
    Some((handle, quota))
}

/// Writes the whole response to one counted lookup into `out`, using
/// `body` as scratch: the record, or the router's 500 answer should
/// serialising it fail or panic.
fn respond(state: &AppState, ip: IpAddr, quota: &Quota, body: &mut Vec<u8>, out: &mut Vec<u8>) {
    body.clear();
    out.clear();
    let rendered = catch_unwind(AssertUnwindSafe(|| {
        with_reports(state, ip, |record| {
            serde_json::to_writer(&mut *body, record)
        })
    }));
    match rendered {
        Ok(Ok(())) => {
            write_head(out, "200 OK", body.len(), Some(quota));
            out.extend_from_slice(body);
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "serialising a response failed");
            internal_error(out);
        }
        Err(payload) => {
            tracing::error!(panic = %panic_cause(payload.as_ref()), "request handler panicked");
            internal_error(out);
        }
    }
}

/// The generic 500 envelope, as the router answers a failure.
fn internal_error(out: &mut Vec<u8>) {
    let body = br#"{"error":{"code":"internal","message":"internal error","status":500}}"#;
    out.clear();
    write_head(out, "500 Internal Server Error", body.len(), None);
    out.extend_from_slice(body);
}

/// Status line and headers, in the order hyper writes the router's.
fn write_head(out: &mut Vec<u8>, status: &str, body_len: usize, quota: Option<&Quota>) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\n");
    if let Some(quota) = quota {
        out.extend_from_slice(b"x-ratelimit-limit: ");
        out.extend_from_slice(number.format(quota.limit).as_bytes());
        out.extend_from_slice(b"\r\nx-ratelimit-remaining: ");
        out.extend_from_slice(number.format(quota.remaining).as_bytes());
        out.extend_from_slice(b"\r\nx-ratelimit-reset: ");
        out.extend_from_slice(number.format(quota.reset_unix).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(number.format(body_len).as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    with_date(|date| out.extend_from_slice(date));
    out.extend_from_slice(b"\r\n\r\n");
}

/// Calls `f` with the current HTTP date, formatted once a second per thread.
fn with_date(f: impl FnOnce(&[u8])) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = httpdate::fmt_http_date(now);
        }
        f(text.as_bytes());
    });
}

/// Counts the request and writes its access log line, as the router's
/// access log does.
fn log(state: &AppState, key: &KeyHandle, elapsed: Duration) {
    state.metrics.request(Some(ROUTE), 200, elapsed);
    let duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "ipintel::access",
        method = "GET",
        route = ROUTE,
        status = 200u16,
        duration_us,
        key_id = key.id().as_str(),
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &str) -> Option<(IpAddr, String)> {
        match parse(head.as_bytes()) {
            Parsed::Lookup { head_len, ip, key } => {
                assert_eq!(head_len, head.len());
                Some((ip, head[key].to_owned()))
            }
            Parsed::Partial | Parsed::Other => None,
        }
    }

    #[test]
    fn takes_a_plain_lookup_with_either_key_header() {
        let (ip, key) =
            parsed("GET /v1/ip/8.8.8.8 HTTP/1.1\r\nHost: a\r\nX-API-Key:  k1 \r\n\r\n").unwrap();
        assert_eq!(ip.to_string(), "8.8.8.8");
        assert_eq!(key, "k1");

        let (ip, key) =
            parsed("GET /v1/ip/2001:db8::1 HTTP/1.1\r\nauthorization: bearer k2\r\n\r\n").unwrap();
        assert_eq!(ip.to_string(), "2001:db8::1");
        assert_eq!(key, "k2");

        let (_, key) = parsed(
            "GET /v1/ip/1.1.1.1 HTTP/1.1\r\nAuthorization: Bearer b\r\nx-api-key: a\r\n\r\n",
        )
        .unwrap();
        assert_eq!(key, "a");
    }

    #[test]
    fn leaves_everything_else_to_the_router() {
        let key = "X-API-Key: k\r\n";
        for head in [
            format!("HEAD /v1/ip/8.8.8.8 HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/8.8.8.8 HTTP/1.0\r\n{key}\r\n"),
            format!("GET /v1/ip/8.8.8.8/geo HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/8.8.8.8?x=1 HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/2001%3Adb8%3A%3A1 HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/ HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/batch HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/999.1.1.1 HTTP/1.1\r\n{key}\r\n"),
            format!("GET /v1/ip/8.8.8.8 HTTP/1.1\r\n{key}Content-Length: 0\r\n\r\n"),
            format!("GET /v1/ip/8.8.8.8 HTTP/1.1\r\n{key}Transfer-Encoding: chunked\r\n\r\n"),
            format!("GET /v1/ip/8.8.8.8 HTTP/1.1\r\n{key}Expect: 100-continue\r\n\r\n"),
            format!("GET /v1/ip/8.8.8.8 HTTP/1.1\r\n{key}Connection: close\r\n\r\n"),
            format!("GET /v1/ip/8.8.8.8 HTTP/1.1\r\n{key}Upgrade: h2c\r\n\r\n"),
            "GET /v1/ip/8.8.8.8 HTTP/1.1\r\n\r\n".to_owned(),
            "GET /v1/ip/8.8.8.8 HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n".to_owned(),
            "GET /v1/ip/8.8.8.8 HTTP/1.1\r\nX-API-Key: k\u{e9}\r\n\r\n".to_owned(),
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(),
            "GET http://h/v1/ip/8.8.8.8 HTTP/1.1\r\nX-API-Key: k\r\n\r\n".to_owned(),
        ] {
            assert!(
                matches!(parse(head.as_bytes()), Parsed::Other),
                "should hand over: {head:?}"
            );
        }
    }

    #[test]
    fn waits_for_the_rest_of_a_head() {
        assert!(matches!(parse(b""), Parsed::Partial));
        assert!(matches!(
            parse(b"GET /v1/ip/8.8.8.8 HTTP/1.1\r\nX-API-Key: k\r\n"),
            Parsed::Partial
        ));
    }

    #[test]
    fn head_lists_the_headers_in_the_routers_order() {
        let quota = Quota {
            limit: 100,
            remaining: 99,
            reset_unix: 1_800_000_000,
        };
        let mut out = Vec::new();
        write_head(&mut out, "200 OK", 12, Some(&quota));
        let text = String::from_utf8(out).unwrap();
        let names: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':').map(|(name, _)| name))
            .collect();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(
            names,
            [
                "content-type",
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                "content-length",
                "date"
            ]
        );
        assert!(text.contains("x-ratelimit-remaining: 99\r\n"));
        assert!(text.contains("content-length: 12\r\n"));
    }
}

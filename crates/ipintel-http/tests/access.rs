//! Keys, quotas, rate-limit headers, key creation and error envelopes,
//! through the real server.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{temp_db, Options, Reply, TestServer};
use ipintel_http::{HttpConfig, TrustedProxies};

async fn default_server() -> (tempfile::TempDir, TestServer) {
    let (dir, db) = temp_db();
    (dir, TestServer::start(&db, Options::default()).await)
}

fn next_utc_midnight() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now / 86_400 + 1) * 86_400
}

fn assert_rate_headers(reply: &Reply, limit: u64, remaining: u64) {
    assert_eq!(reply.header_u64("x-ratelimit-limit"), limit);
    assert_eq!(reply.header_u64("x-ratelimit-remaining"), remaining);
    let reset = reply.header_u64("x-ratelimit-reset");
    // The reset is the next 00:00 UTC (allow for a test running across it).
    let expected = next_utc_midnight();
    assert!(
        reset == expected || reset + 86_400 == expected,
        "{reset} vs {expected}"
    );
}

#[tokio::test]
async fn missing_key_is_401() {
    let (_dir, server) = default_server().await;
    let reply = server.get("/v1/ip/8.8.8.8", None).await;
    reply.assert_error(401, "missing_api_key");
    assert!(reply.headers.get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn malformed_and_unknown_keys_are_401() {
    let (_dir, server) = default_server().await;
    let key = server.new_key().await;
    let unknown = format!("ipintel_zzzzzzzzzzzz_{}", &key[key.len() - 32..]);
    for bad in ["nonsense", "ipintel_short_x", unknown.as_str()] {
        let reply = server.get("/v1/ip/8.8.8.8", Some(bad)).await;
        reply.assert_error(401, "invalid_api_key");
    }
    // A known id with the wrong secret is refused alike.
    let mut wrong_secret = key.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'a' { 'b' } else { 'a' });
    let reply = server.get("/v1/ip/8.8.8.8", Some(&wrong_secret)).await;
    reply.assert_error(401, "invalid_api_key");
}

#[tokio::test]
async fn bearer_token_is_accepted() {
    let (_dir, server) = default_server().await;
    let key = server.new_key().await;
    let response = server
        .client
        .get(server.url("/v1/ip/8.8.8.8"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let reply = Reply::from(response).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_rate_headers(&reply, 100, 99);
}

#[tokio::test]
async fn revoked_key_is_403() {
    let (_dir, server) = default_server().await;
    let key = server.new_key().await;
    assert_eq!(server.get("/v1/ip/8.8.8.8", Some(&key)).await.status, 200);

    let id: ipintel_store::KeyId = key.split('_').nth(1).unwrap().parse().unwrap();
    assert!(server.accounts.revoke_key(&id).await.unwrap());

    let reply = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    reply.assert_error(403, "revoked_api_key");
}

#[tokio::test]
async fn unknown_route_is_a_404_envelope() {
    let (_dir, server) = default_server().await;
    for path in ["/nope", "/v1/ip/8.8.8.8/extra", "/v1", "/v1/ip"] {
        server.get(path, None).await.assert_error(404, "not_found");
    }
}

#[tokio::test]
async fn wrong_method_is_a_405_envelope() {
    let (_dir, server) = default_server().await;
    let key = server.new_key().await;

    let post = server
        .client
        .post(server.url("/v1/ip/8.8.8.8"))
        .send()
        .await
        .unwrap();
    let reply = Reply::from(post).await;
    reply.assert_error(405, "method_not_allowed");
    assert!(reply.header("allow").contains("GET"), "{:?}", reply.headers);

    let delete = server
        .client
        .delete(server.url("/v1/usage"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    Reply::from(delete)
        .await
        .assert_error(405, "method_not_allowed");

    let get_keys = server.get("/v1/keys", None).await;
    get_keys.assert_error(405, "method_not_allowed");
    assert!(get_keys.header("allow").contains("POST"));
}

#[tokio::test]
async fn every_keyed_response_carries_rate_limit_headers() {
    let (_dir, server) = default_server().await;
    let key = server.new_key().await;

    let ok = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    assert_rate_headers(&ok, 100, 99);
    let bad = server.get("/v1/ip/1.2.3.256", Some(&key)).await;
    bad.assert_error(400, "invalid_ip");
    assert_rate_headers(&bad, 100, 99);
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_rate_headers(&usage, 100, 99);
}

#[tokio::test]
async fn usage_figures_move_after_lookups() {
    let (_dir, server) = default_server().await;
    let key = server.new_key().await;

    let before = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.body["today"], 0);
    assert_eq!(before.body["daily_limit"], 100);
    assert_eq!(before.body["plan"], "free");
    assert_eq!(before.body["key_id"], key.split('_').nth(1).unwrap());

    for _ in 0..3 {
        assert_eq!(
            server.get("/v1/ip/8.8.8.8/threat", Some(&key)).await.status,
            200
        );
    }
    let after = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(after.body["today"], 3);
    assert_eq!(after.body["this_month"], 3);
    assert_eq!(after.body["reset_unix"], next_utc_midnight());
}

/// Lookups up to the limit pass; the next is refused with the envelope,
/// `Retry-After` and the rate-limit headers; a restart on the same
/// database file keeps the count.
#[tokio::test]
async fn free_key_101st_lookup_is_refused_even_after_restart() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    for n in 1..=100u64 {
        let reply = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
        assert_eq!(reply.status, 200, "lookup {n}: {}", reply.body);
        assert_eq!(reply.header_u64("x-ratelimit-remaining"), 100 - n);
    }
    let refused = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    assert_quota_refusal(&refused);

    let db = server.stop().await;
    let server = TestServer::start(&db, Options::default()).await;
    let refused = server.get("/v1/ip/8.8.8.8/geo", Some(&key)).await;
    assert_quota_refusal(&refused);
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 100, "{}", usage.body);
}

fn assert_quota_refusal(reply: &Reply) {
    reply.assert_error(429, "quota_exceeded");
    assert_rate_headers(reply, 100, 0);
    let retry: u64 = reply.header_u64("retry-after");
    assert!((1..=86_400).contains(&retry), "{retry}");
}

#[tokio::test]
async fn configured_plan_limit_applies() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::free_limit(2)).await;
    let key = server.new_key().await;
    assert_eq!(server.get("/v1/ip/8.8.8.8", Some(&key)).await.status, 200);
    assert_eq!(server.get("/v1/ip/8.8.8.8", Some(&key)).await.status, 200);
    let reply = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    reply.assert_error(429, "quota_exceeded");
    assert_rate_headers(&reply, 2, 0);
}

#[tokio::test]
async fn created_key_is_shown_once_and_works() {
    let (_dir, server) = default_server().await;
    let reply = server.post("/v1/keys", None).await;

    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["plan"], "free");
    assert_eq!(reply.body["daily_limit"], 100);
    assert!(reply.body["note"].is_string());
    assert_eq!(reply.header("cache-control"), "no-store");
    let key = reply.body["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("ipintel_{}_", reply.body["id"].as_str().unwrap())));

    let lookup = server.get("/v1/ip/8.8.8.8", Some(key)).await;
    assert_eq!(lookup.status, 200);
    let listed = server.accounts.list_keys().await.unwrap();
    assert!(!serde_json::to_string(&listed).unwrap().contains(key));
}

#[tokio::test]
async fn key_creation_is_rate_limited_per_client() {
    let (_dir, server) = default_server().await;
    for n in 1..=5 {
        let reply = server.post("/v1/keys", None).await;
        assert_eq!(reply.status, 201, "creation {n}: {}", reply.body);
    }
    let refused = server.post("/v1/keys", None).await;
    refused.assert_error(429, "rate_limited");
    let retry = refused.header_u64("retry-after");
    assert!((3500..=3600).contains(&retry), "{retry}");
}

fn proxied(trusted: &str, per_hour: u32) -> Options {
    Options {
        config: HttpConfig {
            trusted_proxies: trusted.parse::<TrustedProxies>().unwrap(),
            keys_per_hour_per_client: per_hour,
            ..HttpConfig::default()
        },
        ..Options::default()
    }
}

/// Peer 127.0.0.1 and 3.3.3.3 are trusted proxies, so the client of
/// `1.1.1.1, 2.2.2.2, 3.3.3.3` is 2.2.2.2: its creations share one bucket
/// whatever is left of it, and another client has its own.
#[tokio::test]
async fn forwarded_for_through_trusted_proxies_is_the_client() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, proxied("127.0.0.1/32, 3.3.3.3", 2)).await;
    let via_proxies = Some("1.1.1.1, 2.2.2.2, 3.3.3.3");

    assert_eq!(server.post("/v1/keys", via_proxies).await.status, 201);
    assert_eq!(server.post("/v1/keys", via_proxies).await.status, 201);
    server
        .post("/v1/keys", via_proxies)
        .await
        .assert_error(429, "rate_limited");
    server
        .post("/v1/keys", Some("9.9.9.9, 2.2.2.2"))
        .await
        .assert_error(429, "rate_limited");
    assert_eq!(
        server
            .post("/v1/keys", Some("2.2.2.9, 3.3.3.3"))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, proxied("3.3.3.3", 2)).await;

    assert_eq!(server.post("/v1/keys", Some("1.1.1.1")).await.status, 201);
    assert_eq!(server.post("/v1/keys", Some("2.2.2.2")).await.status, 201);
    server
        .post("/v1/keys", Some("5.5.5.5"))
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn health_and_readiness() {
    let (_dir, server) = default_server().await;
    let health = server.get("/healthz", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");

    let ready = server.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let sources = ready.body["sources"].as_array().unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fixture-geo", "fixture-asn", "fixture-threat"]);
    assert_eq!(sources[0]["data_date"], "2026-06-05");
    assert_eq!(sources[0]["licence"], "CC0-1.0");
    assert!(sources[0]["age_days"].is_i64());
    // 2026-06-17 is 12 days after 2026-06-05, whatever today is.
    let age = |i: usize| sources[i]["age_days"].as_i64().unwrap();
    assert_eq!(age(0) - age(1), 12);
    assert!(ready.body["built_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn readiness_fails_without_data() {
    let (_dir, db) = temp_db();
    let options = Options {
        snapshot: std::sync::Arc::new(ipintel_core::Snapshot::empty()),
        ..Options::default()
    };
    let server = TestServer::start(&db, options).await;
    server
        .get("/readyz", None)
        .await
        .assert_error(503, "not_ready");
    assert_eq!(server.get("/healthz", None).await.status, 200);
}

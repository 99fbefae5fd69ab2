//! The keyless portal routes, the usage history and the key's own reports,
//! through the real server.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use common::{temp_db, Options, Reply, TestServer};
use ipintel_http::HttpConfig;
use serde_json::json;

fn portal_options(per_minute: u32, per_day: u32) -> Options {
    Options {
        config: HttpConfig {
            trusted_proxies: "127.0.0.1".parse().unwrap(),
            portal_per_minute: per_minute,
            portal_per_day: per_day,
            ..HttpConfig::default()
        },
        ..Options::default()
    }
}

/// `GET path` as if from `client` (the loopback peer is a trusted proxy).
async fn get_from(server: &TestServer, path: &str, client: &str) -> Reply {
    let request = server
        .client
        .get(server.url(path))
        .header("X-Forwarded-For", client);
    Reply::from(request.send().await.unwrap()).await
}

#[tokio::test]
async fn portal_lookup_needs_no_key_and_answers_the_full_record() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, portal_options(30, 300)).await;
    let key = server.new_key().await;

    let portal = server.get("/v1/portal/ip/8.8.8.8", None).await;
    let keyed = server.get("/v1/ip/8.8.8.8", Some(&key)).await;

    assert_eq!(portal.status, 200, "{}", portal.body);
    assert_eq!(portal.body, keyed.body);
    assert_eq!(portal.header("cache-control"), "no-store");
    assert!(portal.headers.get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn portal_refuses_a_bad_address_without_counting_it() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, portal_options(1, 10)).await;

    for bad in ["1.2.3.256", "192.012.1.1", "nope"] {
        let reply = get_from(&server, &format!("/v1/portal/ip/{bad}"), "203.0.113.9").await;
        reply.assert_error(400, "invalid_ip");
    }
    let reply = get_from(&server, "/v1/portal/ip/8.8.8.8", "203.0.113.9").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn portal_limits_each_client_address_with_429_and_retry_after() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, portal_options(3, 300)).await;

    for _ in 0..3 {
        let reply = get_from(&server, "/v1/portal/ip/8.8.8.8", "198.51.100.7").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let refused = get_from(&server, "/v1/portal/ip/8.8.8.8", "198.51.100.7").await;
    refused.assert_error(429, "portal_rate_limited");
    let wait = refused.header_u64("retry-after");
    assert!((1..=20).contains(&wait), "Retry-After {wait}");

    // Another client still has its whole allowance.
    let other = get_from(&server, "/v1/portal/ip/8.8.8.8", "198.51.100.8").await;
    assert_eq!(other.status, 200, "{}", other.body);

    let metrics = server.metrics().await;
    assert!(metrics.contains("ipintel_portal_lookups_total{outcome=\"served\"} 4"));
    assert!(metrics.contains("ipintel_portal_lookups_total{outcome=\"limited\"} 1"));
}

#[tokio::test]
async fn portal_daily_allowance_waits_for_midnight() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, portal_options(60, 2)).await;

    for _ in 0..2 {
        let reply = get_from(&server, "/v1/portal/ip/1.0.0.1", "198.51.100.7").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let refused = get_from(&server, "/v1/portal/ip/1.0.0.1", "198.51.100.7").await;
    refused.assert_error(429, "portal_rate_limited");
    assert!(refused.header_u64("retry-after") <= 86_400);
}

#[tokio::test]
async fn portal_off_when_its_allowance_is_zero() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, portal_options(0, 300)).await;
    let reply = server.get("/v1/portal/ip/8.8.8.8", None).await;
    reply.assert_error(429, "portal_rate_limited");
}

#[tokio::test]
async fn me_is_the_client_address_through_trusted_proxies_only() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, portal_options(30, 300)).await;

    let direct = server.get("/v1/portal/me", None).await;
    assert_eq!(direct.body, json!({"ip": "127.0.0.1", "ip_version": 4}));
    let forwarded = get_from(&server, "/v1/portal/me", "2001:db8::7").await;
    assert_eq!(
        forwarded.body,
        json!({"ip": "2001:db8::7", "ip_version": 6})
    );
    assert_eq!(forwarded.header("cache-control"), "no-store");

    let (_other_dir, other_db) = temp_db();
    let untrusted = TestServer::start(&other_db, Options::default()).await;
    let ignored = get_from(&untrusted, "/v1/portal/me", "2001:db8::7").await;
    assert_eq!(ignored.body["ip"], "127.0.0.1");
}

#[tokio::test]
async fn portal_live_feed_shows_reports_without_a_key() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    let empty = server.get("/v1/portal/threats/live", None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["count"], 0);

    let report = json!({"ip": "123.202.30.78", "category": "ssh_bruteforce"});
    let stored = server.post_json("/v1/ip/report", &key, &report).await;
    assert_eq!(stored.status, 201, "{}", stored.body);

    // The portal's copy is remade at most every 2 seconds.
    let mut feed = server.get("/v1/portal/threats/live", None).await;
    for _ in 0..40 {
        if feed.body["count"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        feed = server.get("/v1/portal/threats/live", None).await;
    }
    assert_eq!(feed.body["count"], 1, "{}", feed.body);
    assert_eq!(feed.body["items"][0]["ip"], "123.202.30.78");
    assert_eq!(feed.body["items"][0]["country"], "HK");
}

#[tokio::test]
async fn usage_lists_the_last_30_days_with_zeros() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    for ip in ["8.8.8.8", "1.0.0.1", "8.8.8.8"] {
        assert_eq!(
            server.get(&format!("/v1/ip/{ip}"), Some(&key)).await.status,
            200
        );
    }

    let usage = server.get("/v1/usage", Some(&key)).await;

    let history = usage.body["history"].as_array().unwrap();
    assert_eq!(history.len(), 30);
    let today = history.last().unwrap();
    assert_eq!(today["lookups"], 3);
    assert_eq!(usage.body["today"], 3);
    assert!(history[..29].iter().all(|d| d["lookups"] == 0));
    let days: Vec<&str> = history.iter().map(|d| d["day"].as_str().unwrap()).collect();
    let mut sorted = days.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(days, sorted, "days in order, each once");
}

#[tokio::test]
async fn usage_history_reads_earlier_days_from_the_store() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let id: ipintel_store::KeyId = key.split('_').nth(1).unwrap().parse().unwrap();
    let today = ipintel_store::UtcDay::from_unix(ipintel_store::now_unix());
    let store = ipintel_store::SqliteStore::open(&db).await.unwrap();
    let deltas = [(2, 5), (29, 7), (30, 100)].map(|(ago, count)| ipintel_store::UsageDelta {
        key: id.clone(),
        day: ipintel_store::UtcDay::from_days(today.days() - ago),
        count,
    });
    ipintel_store::Store::add_usage(&store, &deltas)
        .await
        .unwrap();

    let usage = server.get("/v1/usage", Some(&key)).await;

    let history = usage.body["history"].as_array().unwrap();
    let lookups: Vec<u64> = history
        .iter()
        .map(|d| d["lookups"].as_u64().unwrap())
        .collect();
    assert_eq!(lookups[0], 7, "29 days ago is the first listed");
    assert_eq!(lookups[27], 5, "2 days ago");
    assert_eq!(lookups.iter().sum::<u64>(), 12, "30 days ago is not listed");
}

#[tokio::test]
async fn reports_lists_the_keys_own_reports_newest_first() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let other = server.new_key().await;
    for ip in ["123.202.30.78", "222.1.2.3"] {
        let body = json!({"ip": ip, "category": "port_scan", "comment": "seen"});
        assert_eq!(
            server.post_json("/v1/ip/report", &key, &body).await.status,
            201
        );
    }
    let body = json!({"ip": "8.8.8.8", "category": "spam"});
    assert_eq!(
        server
            .post_json("/v1/ip/report", &other, &body)
            .await
            .status,
        201
    );

    let mine = server.get("/v1/reports", Some(&key)).await;

    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["count"], 2);
    let first = &mine.body["items"][0];
    assert_eq!(first["ip"], "222.1.2.3");
    assert_eq!(first["country"], "JP");
    assert_eq!(first["country_name"], "Japan");
    assert_eq!(first["asn"], 17506);
    assert_eq!(first["categories"], json!(["port_scan"]));
    assert_eq!(mine.body["items"][1]["ip"], "123.202.30.78");

    let one = server.get("/v1/reports?limit=1", Some(&key)).await;
    assert_eq!(one.body["count"], 1);
    let bad = server.get("/v1/reports?limit=0", Some(&key)).await;
    bad.assert_error(422, "invalid_field");
    let anonymous = server.get("/v1/reports", None).await;
    anonymous.assert_error(401, "missing_api_key");
}

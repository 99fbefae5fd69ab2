//! Country and AS intel routes and `/metrics`, on a real server over the
//! fixture snapshot of `common`.
#![allow(clippy::unwrap_used, reason = "test code fails loudly")]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{temp_db, Options, TestServer};

/// Usage counted today for `key`.
async fn used_today(server: &TestServer, key: &str) -> u64 {
    let usage = server.get("/v1/usage", Some(key)).await;
    assert_eq!(usage.status, 200);
    usage.body["today"].as_u64().unwrap()
}

#[tokio::test]
async fn asn_spellings_answer_the_same() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    let mut bodies = Vec::new();
    for spelling in ["AS15169", "as15169", "15169"] {
        let reply = server
            .get(&format!("/v1/ip/asn/{spelling}"), Some(&key))
            .await;
        assert_eq!(reply.status, 200, "{spelling}: {}", reply.body);
        reply.header("X-RateLimit-Remaining");
        bodies.push(reply.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    let body = &bodies[0];
    // The fixture: 8.8.8.0/24, Google LLC, US, all of it datacenter.
    assert_eq!(body["asn"], 15169);
    assert_eq!(body["name"], "Google LLC");
    assert_eq!(body["country"], "US");
    assert_eq!(body["country_name"], "United States");
    assert_eq!(body["connection_type"], "datacenter");
    assert_eq!(body["ipv4"]["addresses"], 256);
    assert_eq!(body["ipv4"]["networks"], 1);
    assert_eq!(body["ipv4"]["prefixes"], 1);
    assert_eq!(body["ipv4"]["flagged"]["datacenter"]["addresses"], 256);
    assert_eq!(body["ipv4"]["flagged"]["datacenter"]["share"], 1.0);
    assert_eq!(body["ipv4"]["flagged"]["tor"]["share"], 0.0);
    assert_eq!(body["ipv6"]["addresses"], "0");
    assert_eq!(body["prefixes"], serde_json::json!(["8.8.8.0/24"]));
    assert_eq!(body["prefixes_total"], 1);
    assert_eq!(body["prefixes_truncated"], false);
    assert_eq!(body["reports"]["last_week"], 0);
    assert_eq!(used_today(&server, &key).await, 3);
}

#[tokio::test]
async fn ipv6_asn_counts_are_decimal_strings() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let reply = server.get("/v1/ip/asn/AS13335", Some(&key)).await;
    assert_eq!(reply.status, 200);
    let want = (1u128 << 96).to_string(); // 2606:4700::/32
    assert_eq!(reply.body["ipv6"]["addresses"], want.as_str());
    assert_eq!(reply.body["ipv6"]["prefixes"], 1);
    assert_eq!(reply.body["connection_type"], "cdn");
    assert_eq!(reply.body["prefixes"][0], "2606:4700::/32");
}

#[tokio::test]
async fn unknown_and_malformed_asns_are_refused_uncounted() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let started = Instant::now();
    let unknown = server.get("/v1/ip/asn/AS64999", Some(&key)).await;
    let took = started.elapsed();
    unknown.assert_error(404, "unknown_asn");
    assert!(
        took < Duration::from_millis(500),
        "unknown ASN took {took:?}"
    );
    for bad in [
        "ASx",
        "AS",
        "-1",
        "4294967296",
        "015169",
        "AS%2015169",
        "1.5",
    ] {
        let reply = server.get(&format!("/v1/ip/asn/{bad}"), Some(&key)).await;
        reply.assert_error(400, "invalid_asn");
    }
    server
        .get("/v1/ip/asn/15169", None)
        .await
        .assert_error(401, "missing_api_key");
    assert_eq!(used_today(&server, &key).await, 0);
}

#[tokio::test]
async fn country_figures_and_refusals() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;

    let us = server.get("/v1/ip/country/us", Some(&key)).await;
    assert_eq!(us.status, 200, "{}", us.body);
    let body = &us.body;
    assert_eq!(body["country"], "US");
    assert_eq!(body["name"], "United States");
    // Fixture geo for US: 8.8.8.0/24, 10.0.0.0/8, 127.0.0.0/8 (IPv4) and
    // 2606:4700::/32 (IPv6).
    let v4 = 256 + 2 * (1u64 << 24);
    assert_eq!(body["ipv4"]["addresses"], v4);
    assert_eq!(body["ipv4"]["networks"], 3);
    assert_eq!(body["ipv4"]["flagged"]["datacenter"]["addresses"], 256);
    // 10.0.0.0/8 carries a bogon blocklist entry in the fixture.
    assert_eq!(
        body["ipv4"]["flagged"]["blocklisted"]["addresses"],
        1u64 << 24
    );
    let share = body["ipv4"]["flagged"]["datacenter"]["share"]
        .as_f64()
        .unwrap();
    assert!((share - 256.0 / v4 as f64).abs() < 1e-12);
    assert_eq!(
        body["ipv6"]["addresses"],
        (1u128 << 96).to_string().as_str()
    );
    assert_eq!(
        body["ipv6"]["flagged"]["datacenter"]["addresses"],
        (1u128 << 96).to_string().as_str()
    );
    let top: Vec<(u64, &str)> = body["top_networks"]["ipv4"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["asn"].as_u64().unwrap(), n["name"].as_str().unwrap()))
        .collect();
    assert_eq!(top, vec![(64512, "Private AS"), (15169, "Google LLC")]);
    assert_eq!(body["top_networks"]["ipv6"][0]["asn"], 13335);
    assert_eq!(body["reports"]["last_day"], 0);

    let gb = server.get("/v1/ip/country/GB", Some(&key)).await;
    assert_eq!(gb.status, 200, "a valid code without data answers zeros");
    assert_eq!(gb.body["name"], "United Kingdom");
    assert_eq!(gb.body["ipv4"]["addresses"], 0);
    assert_eq!(gb.body["ipv6"]["addresses"], "0");
    assert_eq!(gb.body["top_networks"]["ipv4"], serde_json::json!([]));

    server
        .get("/v1/ip/country/ZZ", Some(&key))
        .await
        .assert_error(404, "unknown_country");
    for bad in ["USA", "U", "1A", "%C3%A9"] {
        let reply = server
            .get(&format!("/v1/ip/country/{bad}"), Some(&key))
            .await;
        reply.assert_error(400, "invalid_country");
    }
    assert_eq!(used_today(&server, &key).await, 2);
}

/// Parses the text exposition into `series -> value`, checking each line's
/// shape on the way.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| {
            assert_eq!(value, "+Inf", "{line:?}");
            f64::INFINITY
        });
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "duplicate {series}"
        );
    }
    out
}

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    parse_exposition(&response.text().await.unwrap())
}

fn value(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_lookups_and_latency() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let before = scrape(&server).await;

    for _ in 0..3 {
        assert_eq!(server.get("/v1/ip/8.8.8.8", Some(&key)).await.status, 200);
    }
    server.get("/v1/ip/asn/AS64999", Some(&key)).await;
    server.get("/nowhere", None).await;
    let after = scrape(&server).await;

    let ip_ok = r#"ipintel_http_requests_total{route="/v1/ip/{ip}",status="200"}"#;
    assert_eq!(value(&after, ip_ok) - value(&before, ip_ok), 3.0);
    let asn_404 = r#"ipintel_http_requests_total{route="/v1/ip/asn/{asn}",status="404"}"#;
    assert_eq!(value(&after, asn_404), 1.0);
    let unmatched = r#"ipintel_http_requests_total{route="unmatched",status="404"}"#;
    assert_eq!(value(&after, unmatched), 1.0);
    let free = r#"ipintel_lookups_total{plan="free"}"#;
    assert_eq!(value(&after, free) - value(&before, free), 3.0);
    let count = r#"ipintel_http_request_duration_seconds_count{route="/v1/ip/{ip}"}"#;
    let inf = r#"ipintel_http_request_duration_seconds_bucket{route="/v1/ip/{ip}",le="+Inf"}"#;
    assert_eq!(value(&after, count), 3.0);
    assert_eq!(value(&after, inf), 3.0);
    let sum = r#"ipintel_http_request_duration_seconds_sum{route="/v1/ip/{ip}"}"#;
    assert!(value(&after, sum) > 0.0);
    // The first scrape is itself counted by the second.
    assert_eq!(
        value(
            &after,
            r#"ipintel_http_requests_total{route="/metrics",status="200"}"#
        ),
        1.0
    );
    // Data age per source of the fixture (each has a data date).
    for source in ["fixture-geo", "fixture-asn", "fixture-threat"] {
        let age = format!("ipintel_source_age_seconds{{source=\"{source}\"}}");
        assert!(value(&after, &age) > 0.0, "{age}");
    }
    assert!(after.contains_key("ipintel_snapshot_build_seconds"));
}

//! Lookups through the real server: the address table of the API brief.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use common::{temp_db, Options, TestServer};
use serde_json::Value;

async fn server() -> (tempfile::TempDir, TestServer, String) {
    let (dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    (dir, server, key)
}

fn assert_no_record(body: &Value) {
    for field in ["ip", "geo", "network", "threat", "flags"] {
        assert!(
            body.get(field).is_none(),
            "error body leaks `{field}`: {body}"
        );
    }
}

#[tokio::test]
async fn known_address_gets_its_full_record() {
    let (_dir, server, key) = server().await;

    let reply = server.get("/v1/ip/8.8.8.8", Some(&key)).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["ip"], "8.8.8.8");
    assert_eq!(body["ip_version"], 4);
    assert_eq!(body["hostname"], Value::Null);
    assert_eq!(body["reserved"], Value::Null);
    assert_eq!(body["geo"]["country"], "US");
    assert_eq!(body["geo"]["city"], "Mountain View");
    assert_eq!(body["network"]["asn"], 15169);
    assert_eq!(body["network"]["isp"], "Google LLC");
    assert_eq!(body["threat"]["reasons"][0]["signal"], "datacenter");
    assert_eq!(body["flags"]["datacenter"], true);
    assert_eq!(reply.header("content-type"), "application/json");
}

#[tokio::test]
async fn ipv4_mapped_ipv6_is_answered_as_the_ipv4_record() {
    let (_dir, server, key) = server().await;
    let cases = [
        ("::ffff:123.202.30.78", "123.202.30.78"),
        ("0:0:0:0:0:FFFF:222.1.41.90", "222.1.41.90"),
    ];
    for (mapped, v4) in cases {
        let via_v6 = server.get(&format!("/v1/ip/{mapped}"), Some(&key)).await;
        let via_v4 = server.get(&format!("/v1/ip/{v4}"), Some(&key)).await;

        assert_eq!(via_v6.status, 200, "{mapped}: {}", via_v6.body);
        assert_eq!(via_v6.body["ip"], v4);
        assert_eq!(via_v6.body["ip_version"], 4);
        assert!(via_v6.body["geo"]["country"].is_string(), "{}", via_v6.body);
        assert_eq!(via_v6.body, via_v4.body, "{mapped} differs from {v4}");
    }
}

#[tokio::test]
async fn ipv4_with_leading_zeros_is_invalid() {
    let (_dir, server, key) = server().await;
    for text in ["192.012.1.1", "10.10.1.011"] {
        let reply = server.get(&format!("/v1/ip/{text}"), Some(&key)).await;
        reply.assert_error(400, "invalid_ip");
        assert_no_record(&reply.body);
    }
}

#[tokio::test]
async fn garbage_is_invalid_and_never_the_callers_record() {
    let (_dir, server, key) = server().await;
    for path in [
        "/v1/ip/not-an-ip",
        "/v1/ip/",
        "/v1/ip/1.2.3.4.5",
        "/v1/ip/1.2.3.256",
    ] {
        let reply = server.get(path, Some(&key)).await;
        reply.assert_error(400, "invalid_ip");
        assert_no_record(&reply.body);
        assert!(!reply.body.to_string().contains("127.0.0.1"), "{path}");
    }
}

#[tokio::test]
async fn undecodable_path_segment_is_invalid() {
    let (_dir, server, key) = server().await;
    let reply = server.get("/v1/ip/%FF%FE", Some(&key)).await;
    reply.assert_error(400, "invalid_ip");
}

#[tokio::test]
async fn invalid_input_is_not_counted() {
    let (_dir, server, key) = server().await;
    let before = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    let remaining = before.header_u64("x-ratelimit-remaining");

    for path in ["/v1/ip/1.2.3.256", "/v1/ip/", "/v1/ip/192.012.1.1/geo"] {
        let reply = server.get(path, Some(&key)).await;
        reply.assert_error(400, "invalid_ip");
        assert_eq!(
            reply.header_u64("x-ratelimit-remaining"),
            remaining,
            "{path}"
        );
    }
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 1);
}

async fn assert_reserved(server: &TestServer, key: &str, ip: &str, network: &str) {
    let reply = server.get(&format!("/v1/ip/{ip}"), Some(key)).await;
    assert_eq!(reply.status, 200, "{ip}: {}", reply.body);
    let body = &reply.body;
    assert_eq!(body["ip"], ip);
    assert!(
        body["reserved"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{ip}: {body}"
    );
    assert_eq!(body["reserved"]["network"], network, "{ip}");
    assert!(body["reserved"]["rfc"].is_string(), "{ip}");
    for (field, value) in body["geo"].as_object().unwrap() {
        assert_eq!(*value, Value::Null, "{ip}: geo.{field}");
    }
    for (field, value) in body["network"].as_object().unwrap() {
        assert_eq!(*value, Value::Null, "{ip}: network.{field}");
    }
    assert_eq!(body["threat"]["score"], 0, "{ip}");
    assert_eq!(body["threat"]["level"], "clean", "{ip}");
    assert_eq!(body["threat"]["reasons"], Value::Array(vec![]), "{ip}");
    assert!(
        body["flags"]
            .as_object()
            .unwrap()
            .values()
            .all(|f| *f == false),
        "{ip}"
    );
    assert_eq!(body["flag_details"], serde_json::json!({}), "{ip}");
}

#[tokio::test]
async fn loopback_private_and_link_local_are_reserved() {
    let (_dir, server, key) = server().await;
    assert_reserved(&server, &key, "127.0.0.1", "127.0.0.0/8").await;
    assert_reserved(&server, &key, "10.10.123.190", "10.0.0.0/8").await;
    assert_reserved(&server, &key, "::1", "::1/128").await;
    assert_reserved(&server, &key, "fe80::1", "fe80::/10").await;
}

#[tokio::test]
async fn shared_benchmark_and_documentation_space_is_reserved() {
    let (_dir, server, key) = server().await;
    assert_reserved(&server, &key, "100.64.0.1", "100.64.0.0/10").await;
    assert_reserved(&server, &key, "198.18.0.1", "198.18.0.0/15").await;
    assert_reserved(&server, &key, "2001:db8::1", "2001:db8::/32").await;
}

#[tokio::test]
async fn percent_encoded_ipv6_is_the_same_lookup() {
    let (_dir, server, key) = server().await;
    let plain = server.get("/v1/ip/2606:4700:4700::1111", Some(&key)).await;
    let upper = server
        .get("/v1/ip/2606%3A4700%3A4700%3A%3A1111", Some(&key))
        .await;
    let lower = server
        .get("/v1/ip/2606%3a4700%3a4700%3a%3a1111", Some(&key))
        .await;

    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(plain.body["ip"], "2606:4700:4700::1111");
    assert_eq!(plain.body["network"]["asn"], 13335);
    assert_eq!(plain.body, upper.body);
    assert_eq!(plain.body, lower.body);

    let geo_plain = server
        .get("/v1/ip/2606:4700:4700::1111/geo", Some(&key))
        .await;
    let geo_encoded = server
        .get("/v1/ip/2606%3A4700%3A4700%3A%3A1111/geo", Some(&key))
        .await;
    assert_eq!(geo_plain.status, 200);
    assert_eq!(geo_plain.body, geo_encoded.body);
}

#[tokio::test]
async fn geo_and_threat_views_hold_their_parts_of_the_record() {
    let (_dir, server, key) = server().await;
    let full = server.get("/v1/ip/185.220.101.7", Some(&key)).await;
    let geo = server.get("/v1/ip/185.220.101.7/geo", Some(&key)).await;
    let threat = server.get("/v1/ip/185.220.101.7/threat", Some(&key)).await;

    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&geo.body), ["geo", "ip", "ip_version", "reserved"]);
    assert_eq!(
        keys(&threat.body),
        [
            "flag_details",
            "flags",
            "ip",
            "ip_version",
            "reserved",
            "threat"
        ]
    );
    assert_eq!(geo.body["geo"], full.body["geo"]);
    assert_eq!(threat.body["threat"], full.body["threat"]);
    assert_eq!(threat.body["flags"]["tor"], true);
    assert_eq!(threat.body["flag_details"], full.body["flag_details"]);
    assert!(threat.body["threat"]["score"].as_u64().unwrap() >= 80);
}

#[tokio::test]
async fn every_lookup_route_counts_one() {
    let (_dir, server, key) = server().await;
    for path in [
        "/v1/ip/8.8.8.8",
        "/v1/ip/8.8.8.8/geo",
        "/v1/ip/8.8.8.8/threat",
    ] {
        assert_eq!(server.get(path, Some(&key)).await.status, 200);
    }
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 3);
}

//! `POST /v1/ip/batch` through the real server: the 1,000-entry limit,
//! per-entry errors, results keyed by the exact input, quota counting and
//! refusal, body shapes and authentication.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use common::{temp_db, Options, Reply, TestServer};
use ipintel_store::Plan;
use serde_json::{json, Value};

const PATH: &str = "/v1/ip/batch";

async fn server() -> (tempfile::TempDir, TestServer) {
    let (dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    (dir, server)
}

/// `n` distinct public addresses.
fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("8.{}.{}.{}", i / 65536, i / 256 % 256, i % 256))
        .collect()
}

async fn post_raw(
    server: &TestServer,
    key: Option<&str>,
    content_type: Option<&str>,
    body: String,
) -> Reply {
    let mut request = server.client.post(server.url(PATH)).body(body);
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    if let Some(kind) = content_type {
        request = request.header("Content-Type", kind);
    }
    Reply::from(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_batch_of_1000_is_answered_and_1001_is_refused_with_the_limit() {
    let (_dir, server) = server().await;
    let key = server.key_on(Plan::Professional).await;

    let full = server
        .post_json(PATH, &key, &json!({"ips": addresses(1000)}))
        .await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(full.body["count"], 1000);
    assert_eq!(full.body["counted"], 1000);
    assert_eq!(full.body["results"].as_object().unwrap().len(), 1000);
    assert_eq!(full.body["results"]["8.0.3.231"]["ip"], "8.0.3.231");
    assert_eq!(full.header_u64("x-ratelimit-remaining"), 9000);

    let over = server
        .post_json(PATH, &key, &json!({"ips": addresses(1001)}))
        .await;
    over.assert_error(413, "batch_too_large");
    let message = over.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1000") && message.contains("1001"),
        "{message}"
    );
    assert_eq!(
        over.header_u64("x-ratelimit-remaining"),
        9000,
        "nothing counted"
    );

    // Duplicates count toward the 1,000 entries of a body.
    let mut dup = addresses(1000);
    dup.push("8.0.0.0".to_owned());
    let over = server.post_json(PATH, &key, &Value::from(dup)).await;
    over.assert_error(413, "batch_too_large");
}

#[tokio::test]
async fn results_are_keyed_by_the_exact_input_with_per_entry_errors() {
    let (_dir, server) = server().await;
    let key = server.new_key().await;
    let lower = "2606:4700:4700::abcd";
    let upper = lower.to_uppercase();
    let ips = json!([
        lower,
        upper,
        "8.8.8.8",
        "8.8.8.8",
        "::ffff:8.8.8.8",
        "192.012.1.1",
        "",
        "10.1.2.3",
        "185.220.101.7 "
    ]);
    let reply = server.post_json(PATH, &key, &ips).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let results = reply.body["results"].as_object().unwrap();
    assert_eq!(reply.body["count"], 8, "8.8.8.8 twice is one entry");
    assert_eq!(results.len(), 8);
    assert_eq!(reply.body["counted"], 5);
    assert_eq!(reply.header_u64("x-ratelimit-remaining"), 95);

    assert_eq!(results[lower]["ip"], lower);
    assert_eq!(
        results[upper.as_str()]["ip"],
        lower,
        "canonical in the record"
    );
    assert_eq!(results[upper.as_str()]["network"]["asn"], 13335);
    assert_eq!(results["::ffff:8.8.8.8"]["ip"], "8.8.8.8");
    assert_eq!(results["10.1.2.3"]["reserved"]["name"], "Private-Use");
    assert_eq!(results["10.1.2.3"]["network"]["asn"], Value::Null);
    for bad in ["192.012.1.1", "", "185.220.101.7 "] {
        let error = &results[bad]["error"];
        assert_eq!(error["code"], "invalid_ip", "{bad:?}: {error}");
        assert_eq!(error["status"], 400);
        assert!(results[bad].get("ip").is_none());
    }

    // A batch record is the single lookup's record.
    let single = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    assert_eq!(results["8.8.8.8"], single.body);
    let single = server.get(&format!("/v1/ip/{lower}"), Some(&key)).await;
    assert_eq!(results[lower], single.body);
}

#[tokio::test]
async fn a_batch_is_counted_whole_or_refused_whole() {
    let (_dir, server) = server().await;
    let key = server.new_key().await; // free: 100 a day

    let mut ips = addresses(60);
    ips.extend(["x".to_owned(), "8.0.0.1".to_owned(), "1.2.3".to_owned()]);
    let first = server.post_json(PATH, &key, &json!({"ips": ips})).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body["counted"], 60,
        "invalid and repeated entries are free"
    );
    assert_eq!(first.header_u64("x-ratelimit-remaining"), 40);

    let refused = server
        .post_json(PATH, &key, &json!({"ips": addresses(41)}))
        .await;
    refused.assert_error(429, "quota_exceeded");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("41") && message.contains("40"),
        "{message}"
    );
    assert!(refused.header_u64("retry-after") >= 1);
    assert_eq!(
        refused.header_u64("x-ratelimit-remaining"),
        40,
        "nothing counted"
    );

    let exact = server
        .post_json(PATH, &key, &json!({"ips": addresses(40)}))
        .await;
    assert_eq!(exact.status, 200, "{}", exact.body);
    assert_eq!(exact.header_u64("x-ratelimit-remaining"), 0);

    // Nothing left: invalid entries still get their errors, uncounted.
    let invalid_only = server.post_json(PATH, &key, &json!(["nope"])).await;
    assert_eq!(invalid_only.status, 200);
    assert_eq!(invalid_only.body["counted"], 0);
    let one_more = server.post_json(PATH, &key, &json!(["8.8.8.8"])).await;
    one_more.assert_error(429, "quota_exceeded");
    server
        .get("/v1/ip/8.8.8.8", Some(&key))
        .await
        .assert_error(429, "quota_exceeded");

    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 100, "{}", usage.body);
}

#[tokio::test]
async fn body_shapes_media_types_and_sizes() {
    let (_dir, server) = server().await;
    let key = server.new_key().await;

    let bare = server.post_json(PATH, &key, &json!(["8.8.8.8"])).await;
    assert_eq!(bare.status, 200);
    let untyped = post_raw(&server, Some(&key), None, r#"{"ips":["8.8.8.8"]}"#.into()).await;
    assert_eq!(untyped.status, 200, "no content type: read as JSON");
    let charset = Some("application/json; charset=utf-8");
    let typed = post_raw(&server, Some(&key), charset, r#"["8.8.8.8"]"#.into()).await;
    assert_eq!(typed.status, 200);

    for body in [
        json!({"ips": []}),
        json!([]),
        json!({"ips": "8.8.8.8"}),
        json!([1, 2]),
        json!({"ip": ["8.8.8.8"]}),
    ] {
        let reply = server.post_json(PATH, &key, &body).await;
        reply.assert_error(422, "invalid_field");
        assert_eq!(reply.body["error"]["field"], "ips", "{body}");
    }
    let broken = post_raw(
        &server,
        Some(&key),
        Some("application/json"),
        "[\"8.8.8.8\"".into(),
    )
    .await;
    broken.assert_error(422, "invalid_field");

    let form = post_raw(
        &server,
        Some(&key),
        Some("application/x-www-form-urlencoded"),
        "ips=8.8.8.8".into(),
    )
    .await;
    form.assert_error(415, "unsupported_media_type");

    let huge = format!("[{}]", vec!["\"8.8.8.8\""; 30_000].join(","));
    let reply = post_raw(&server, Some(&key), Some("application/json"), huge).await;
    reply.assert_error(413, "batch_too_large");
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1000"));

    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["today"], 3, "only the three answered batches");
}

#[tokio::test]
async fn a_batch_needs_a_valid_key() {
    let (_dir, server) = server().await;
    let body = r#"["8.8.8.8"]"#.to_owned();
    let json = Some("application/json");
    post_raw(&server, None, json, body.clone())
        .await
        .assert_error(401, "missing_api_key");
    post_raw(&server, Some("ipintel_bogus"), json, body.clone())
        .await
        .assert_error(401, "invalid_api_key");
    let key = server.new_key().await;
    let id: ipintel_store::KeyId = key.split('_').nth(1).unwrap().parse().unwrap();
    server.accounts.revoke_key(&id).await.unwrap();
    post_raw(&server, Some(&key), json, body)
        .await
        .assert_error(403, "revoked_api_key");
}

#[tokio::test]
async fn reported_addresses_carry_their_reports_as_in_a_single_lookup() {
    let (_dir, server) = server().await;
    let key = server.new_key().await;
    let report = json!({"ip": "123.202.30.78", "category": "ssh_bruteforce"});
    let stored = server.post_json("/v1/ip/report", &key, &report).await;
    assert_eq!(stored.status, 201, "{}", stored.body);

    let reply = server
        .post_json(PATH, &key, &json!(["123.202.30.78"]))
        .await;
    let record = &reply.body["results"]["123.202.30.78"];
    assert!(record["threat"]["reports"].is_object(), "{record}");
    let single = server.get("/v1/ip/123.202.30.78", Some(&key)).await;
    assert_eq!(record, &single.body);
}

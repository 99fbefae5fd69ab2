//! The OpenAPI document is kept true: a snapshot of it, its routes against
//! the router's, and real response bodies validated against its schemas.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::BTreeSet;

use common::{temp_db, Options, Reply, TestServer};
use ipintel_http::{HttpConfig, TrustedProxies};
use ipintel_store::PlanLimits;
use reqwest::Method;
use serde_json::{json, Value};

fn document() -> Value {
    serde_json::to_value(ipintel_http::openapi()).unwrap()
}

#[test]
fn openapi_document_snapshot() {
    insta::assert_json_snapshot!("openapi_document", document());
}

#[test]
fn document_is_openapi_3_1_with_both_key_schemes() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = document();
    let routed: BTreeSet<(String, String)> = ipintel_http::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    assert_eq!(routed, documented_routes(&doc));
}

/// Drives each documented path with every method: documented ones are
/// served (not 404/405), the others are refused with 405.
#[tokio::test]
async fn router_serves_exactly_the_documented_methods() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let doc = document();
    let documented = documented_routes(&doc);

    for (path, _) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{ip}", "8.8.8.8");
        for method in METHODS {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .client
                .request(method.clone(), server.url(&concrete))
                .header("X-API-Key", &key)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if documented.contains(&(method.to_string(), path.clone())) {
                assert!(status != 404 && status != 405, "{method} {path}: {status}");
            } else {
                assert_eq!(status, 405, "{method} {path}");
            }
        }
    }
}

/// Validates `instance` against `schema`, resolving `#/components/...`
/// references in `doc`.
fn assert_valid(doc: &Value, schema: &Value, instance: &Value, context: &str) {
    let mut root = schema.clone();
    root.as_object_mut()
        .unwrap()
        .insert("components".into(), doc["components"].clone());
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|err| panic!("{context}: schema does not compile: {err}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{context}: {errors:#?}\nbody: {instance}"
    );
}

/// Checks a real reply against the document's entry for `method path`:
/// its status is documented, its body matches the schema, and every
/// documented header is present.
fn check(doc: &Value, method: &str, path: &str, reply: &Reply) {
    let context = format!("{method} {path} -> {}", reply.status.as_u16());
    let response = &doc["paths"][path][method]["responses"][reply.status.as_str()];
    assert!(response.is_object(), "{context}: status not documented");
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{context}: no JSON schema documented");
    assert_valid(doc, schema, &reply.body, &context);
    if let Some(headers) = response["headers"].as_object() {
        for name in headers.keys() {
            assert!(
                reply.headers.contains_key(name.as_str()),
                "{context}: no {name} header"
            );
        }
    }
}

fn envelope_schema() -> Value {
    json!({"$ref": "#/components/schemas/ErrorEnvelope"})
}

#[tokio::test]
async fn real_bodies_match_the_documented_schemas() {
    let (_dir, db) = temp_db();
    let options = Options {
        limits: PlanLimits {
            free: 12,
            ..PlanLimits::default()
        },
        config: HttpConfig {
            trusted_proxies: TrustedProxies::default(),
            keys_per_hour_per_client: 1,
            ..HttpConfig::default()
        },
        ..Options::default()
    };
    let server = TestServer::start(&db, options).await;
    let key = server.new_key().await;
    let doc = document();

    for ip in [
        "8.8.8.8",
        "185.220.101.7",
        "127.0.0.1",
        "2606:4700:4700::1111",
        "1.0.0.1",
    ] {
        let full = server.get(&format!("/v1/ip/{ip}"), Some(&key)).await;
        assert_eq!(full.status, 200);
        check(&doc, "get", "/v1/ip/{ip}", &full);
    }
    let geo = server.get("/v1/ip/8.8.8.8/geo", Some(&key)).await;
    check(&doc, "get", "/v1/ip/{ip}/geo", &geo);
    let threat = server.get("/v1/ip/185.220.101.7/threat", Some(&key)).await;
    check(&doc, "get", "/v1/ip/{ip}/threat", &threat);
    let reserved_threat = server.get("/v1/ip/10.1.2.3/threat", Some(&key)).await;
    check(&doc, "get", "/v1/ip/{ip}/threat", &reserved_threat);

    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.status, 200);
    check(&doc, "get", "/v1/usage", &usage);

    let invalid = server.get("/v1/ip/1.2.3.256/geo", Some(&key)).await;
    assert_eq!(invalid.status, 400);
    check(&doc, "get", "/v1/ip/{ip}/geo", &invalid);
    let empty = server.get("/v1/ip/", Some(&key)).await;
    check(&doc, "get", "/v1/ip/", &empty);
    let missing = server.get("/v1/ip/8.8.8.8/threat", None).await;
    assert_eq!(missing.status, 401);
    check(&doc, "get", "/v1/ip/{ip}/threat", &missing);
    let malformed = server.get("/v1/usage", Some("bogus")).await;
    check(&doc, "get", "/v1/usage", &malformed);

    // Use up the quota (8 lookups counted so far, limit 12).
    for _ in 0..4 {
        assert_eq!(server.get("/v1/ip/8.8.8.8", Some(&key)).await.status, 200);
    }
    let refused = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    check(&doc, "get", "/v1/ip/{ip}", &refused);

    let id: ipintel_store::KeyId = key.split('_').nth(1).unwrap().parse().unwrap();
    server.accounts.revoke_key(&id).await.unwrap();
    let revoked = server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    assert_eq!(revoked.status, 403);
    check(&doc, "get", "/v1/ip/{ip}", &revoked);

    let created = server.post("/v1/keys", None).await;
    assert_eq!(created.status, 201);
    check(&doc, "post", "/v1/keys", &created);
    let limited = server.post("/v1/keys", None).await;
    assert_eq!(limited.status, 429);
    check(&doc, "post", "/v1/keys", &limited);

    for path in ["/healthz", "/readyz"] {
        let reply = server.get(path, None).await;
        assert_eq!(reply.status, 200);
        check(&doc, "get", path, &reply);
    }

    let not_found = server.get("/nowhere", None).await;
    assert_valid(&doc, &envelope_schema(), &not_found.body, "404");
    let wrong_method = server.post("/healthz", None).await;
    assert_eq!(wrong_method.status, 405);
    assert_valid(&doc, &envelope_schema(), &wrong_method.body, "405");
}

#[tokio::test]
async fn unready_body_matches_the_documented_schema() {
    let (_dir, db) = temp_db();
    let options = Options {
        snapshot: std::sync::Arc::new(ipintel_core::Snapshot::empty()),
        ..Options::default()
    };
    let server = TestServer::start(&db, options).await;
    let reply = server.get("/readyz", None).await;
    assert_eq!(reply.status, 503);
    check(&document(), "get", "/readyz", &reply);
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let reply = server.get("/openapi.json", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, document());
}

#[test]
fn schemas_reject_a_body_that_drifts() {
    // Guards the validation itself: an extra or missing field must fail.
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/ErrorEnvelope"});
    let mut root = schema.clone();
    root.as_object_mut()
        .unwrap()
        .insert("components".into(), doc["components"].clone());
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let good = json!({"error": {"code": "not_found", "message": "x", "status": 404}});
    assert!(validator.is_valid(&good));
    let extra = json!({"error": {"code": "not_found", "message": "x", "status": 404, "x": 1}});
    assert!(!validator.is_valid(&extra));
    let unknown_code = json!({"error": {"code": "oops", "message": "x", "status": 404}});
    assert!(!validator.is_valid(&unknown_code));
    let missing = json!({"error": {"code": "not_found", "status": 404}});
    assert!(!validator.is_valid(&missing));
}

#[tokio::test]
async fn intel_bodies_match_the_documented_schemas() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let doc = document();
    for (path, template) in [
        ("/v1/ip/country/US", "/v1/ip/country/{cc}"),
        ("/v1/ip/country/gb", "/v1/ip/country/{cc}"),
        ("/v1/ip/country/ZZ", "/v1/ip/country/{cc}"),
        ("/v1/ip/country/USA", "/v1/ip/country/{cc}"),
        ("/v1/ip/asn/AS15169", "/v1/ip/asn/{asn}"),
        ("/v1/ip/asn/13335", "/v1/ip/asn/{asn}"),
        ("/v1/ip/asn/AS64999", "/v1/ip/asn/{asn}"),
        ("/v1/ip/asn/ASx", "/v1/ip/asn/{asn}"),
    ] {
        let reply = server.get(path, Some(&key)).await;
        check(&doc, "get", template, &reply);
    }
}

#[tokio::test]
async fn report_bodies_match_the_documented_schemas() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let doc = document();
    let path = "/v1/ip/report";

    let body = json!({"ip": "123.202.30.78", "category": [22, 14], "comment": "x"});
    let stored = server.post_json(path, &key, &body).await;
    assert_eq!(stored.status, 201, "{}", stored.body);
    check(&doc, "post", path, &stored);
    let form = [("ip", "2606:4700::1"), ("category", "web_attack")];
    let by_form = server.post_form(path, &key, &form).await;
    assert_eq!(by_form.status, 201, "{}", by_form.body);
    check(&doc, "post", path, &by_form);
    let duplicate = server.post_json(path, &key, &body).await;
    assert_eq!(duplicate.status, 429);
    check(&doc, "post", path, &duplicate);
    let bad = server
        .post_json(
            path,
            &key,
            &json!({"ip": "1.2.3.4", "category": "22", "severity": 9}),
        )
        .await;
    assert_eq!(bad.status, 422);
    check(&doc, "post", path, &bad);
    let unsupported = Reply::from(
        server
            .client
            .post(server.url(path))
            .header("X-API-Key", &key)
            .header("Content-Type", "text/plain")
            .body("ip=1.2.3.4")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unsupported.status, 415);
    check(&doc, "post", path, &unsupported);

    let threat = server.get("/v1/ip/123.202.30.78/threat", Some(&key)).await;
    assert!(threat.body["threat"]["reports"].is_object());
    check(&doc, "get", "/v1/ip/{ip}/threat", &threat);
    let full = server.get("/v1/ip/2606:4700::1", Some(&key)).await;
    check(&doc, "get", "/v1/ip/{ip}", &full);
    let live = server.get("/v1/ip/threats/live?limit=10", Some(&key)).await;
    assert_eq!(live.body["count"], 2);
    check(&doc, "get", "/v1/ip/threats/live", &live);
    let bad_limit = server.get("/v1/ip/threats/live?limit=0", Some(&key)).await;
    check(&doc, "get", "/v1/ip/threats/live", &bad_limit);
}

#[tokio::test]
async fn portal_usage_and_key_report_bodies_match_the_documented_schemas() {
    let (_dir, db) = temp_db();
    let options = Options {
        config: HttpConfig {
            portal_per_minute: 2,
            ..HttpConfig::default()
        },
        ..Options::default()
    };
    let server = TestServer::start(&db, options).await;
    let key = server.new_key().await;
    let doc = document();

    for ip in ["8.8.8.8", "10.1.2.3"] {
        let reply = server.get(&format!("/v1/portal/ip/{ip}"), None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        check(&doc, "get", "/v1/portal/ip/{ip}", &reply);
    }
    let limited = server.get("/v1/portal/ip/8.8.8.8", None).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    check(&doc, "get", "/v1/portal/ip/{ip}", &limited);
    let invalid = server.get("/v1/portal/ip/8.8.8", None).await;
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    check(&doc, "get", "/v1/portal/ip/{ip}", &invalid);
    check(
        &doc,
        "get",
        "/v1/portal/me",
        &server.get("/v1/portal/me", None).await,
    );

    let body = json!({"ip": "123.202.30.78", "category": "port_scan", "comment": "x"});
    assert_eq!(
        server.post_json("/v1/ip/report", &key, &body).await.status,
        201
    );
    let live = server.get("/v1/portal/threats/live", None).await;
    check(&doc, "get", "/v1/portal/threats/live", &live);

    let reports = server.get("/v1/reports", Some(&key)).await;
    assert_eq!(reports.body["count"], 1, "{}", reports.body);
    check(&doc, "get", "/v1/reports", &reports);
    let bad_limit = server.get("/v1/reports?limit=x", Some(&key)).await;
    check(&doc, "get", "/v1/reports", &bad_limit);

    server.get("/v1/ip/8.8.8.8", Some(&key)).await;
    let usage = server.get("/v1/usage", Some(&key)).await;
    assert_eq!(usage.body["history"].as_array().unwrap().len(), 30);
    check(&doc, "get", "/v1/usage", &usage);
}

#[tokio::test]
async fn batch_bodies_match_the_documented_schemas() {
    let (_dir, db) = temp_db();
    let options = Options {
        limits: PlanLimits {
            free: 3,
            ..PlanLimits::default()
        },
        ..Options::default()
    };
    let server = TestServer::start(&db, options).await;
    let key = server.new_key().await;
    let doc = document();
    let path = "/v1/ip/batch";

    let ips = json!({"ips": ["8.8.8.8", "10.1.2.3", "2606:4700::1", "nope"]});
    let answered = server.post_json(path, &key, &ips).await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    check(&doc, "post", path, &answered);
    let empty = server.post_json(path, &key, &json!([])).await;
    assert_eq!(empty.status, 422);
    check(&doc, "post", path, &empty);
    let ips: Vec<String> = (0..1001)
        .map(|i| format!("9.9.{}.{}", i / 256, i % 256))
        .collect();
    let too_many = server.post_json(path, &key, &json!(ips)).await;
    assert_eq!(too_many.status, 413);
    check(&doc, "post", path, &too_many);
    let refused = server.post_json(path, &key, &json!(["8.8.8.8"])).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    check(&doc, "post", path, &refused);
    let unsupported = Reply::from(
        server
            .client
            .post(server.url(path))
            .header("X-API-Key", &key)
            .header("Content-Type", "text/plain")
            .body("8.8.8.8")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unsupported.status, 415);
    check(&doc, "post", path, &unsupported);
}

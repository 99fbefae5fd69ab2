//! Abuse reports through the real server: intake, refusals, the score
//! overlay, the live feed and the fail2ban action's own command.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::{temp_db, Options, Reply, TestServer};
use ipintel_http::TrustedProxies;
use ipintel_store::{Plan, PlanLimits, ReportSettings};
use serde_json::{json, Value};

/// An address of the fixture with location data and no signal: clean.
const CLEAN: &str = "123.202.30.78";

async fn server_with(options: Options) -> (tempfile::TempDir, TestServer) {
    let (dir, db) = temp_db();
    let server = TestServer::start(&db, options).await;
    (dir, server)
}

async fn report(server: &TestServer, key: &str, ip: &str, extra: Value) -> Reply {
    let mut body = json!({"ip": ip, "category": "ssh_bruteforce"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    server.post_json("/v1/ip/report", key, &body).await
}

async fn threat(server: &TestServer, key: &str, ip: &str) -> Value {
    let reply = server.get(&format!("/v1/ip/{ip}/threat"), Some(key)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["threat"].clone()
}

#[tokio::test]
async fn json_and_form_reports_are_stored_and_shown_in_the_threat_answer() {
    let (_dir, server) = server_with(Options::default()).await;
    let key = server.new_key().await;
    assert_eq!(threat(&server, &key, CLEAN).await["reports"], Value::Null);

    let by_json = report(
        &server,
        &key,
        CLEAN,
        json!({"category": [22, "port_scan"], "severity": "high", "confidence": 90,
               "comment": "sshd: 12 failures", "reported_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    by_json.assert_error(422, "invalid_field");
    assert_eq!(by_json.body["error"]["field"], "reported_at");

    let by_json = report(
        &server,
        &key,
        CLEAN,
        json!({"category": [22, "port_scan"], "severity": "high", "confidence": 90,
               "comment": "sshd: 12 failures"}),
    )
    .await;
    assert_eq!(by_json.status, 201, "{}", by_json.body);
    assert_eq!(by_json.body["ip"], CLEAN);
    assert_eq!(
        by_json.body["categories"],
        json!(["port_scan", "ssh_bruteforce"])
    );
    assert_eq!(by_json.body["severity"], "high");
    assert_eq!(by_json.body["confidence"], 90);
    assert_eq!(by_json.body["comment"], "sshd: 12 failures");
    assert!(by_json.body["id"].as_i64().unwrap() > 0);

    let by_form = server
        .post_form(
            "/v1/ip/report",
            &key,
            &[
                ("ip", "222.1.41.90"),
                ("category", "14,18"),
                ("severity", "2"),
            ],
        )
        .await;
    assert_eq!(by_form.status, 201, "{}", by_form.body);
    assert_eq!(
        by_form.body["categories"],
        json!(["port_scan", "brute_force"])
    );
    assert_eq!(by_form.body["severity"], "medium");
    assert_eq!(by_form.body["confidence"], 75, "the default");

    let shown = threat(&server, &key, CLEAN).await;
    assert_eq!(shown["reports"]["count"], 1);
    assert_eq!(shown["reports"]["distinct_reporters"], 1);
    assert_eq!(
        shown["reports"]["categories"],
        json!(["port_scan", "ssh_bruteforce"])
    );
    let reason = shown["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["signal"] == "abuse_reports")
        .unwrap();
    assert_eq!(reason["source"], "ipintel reports");
    assert!(reason["weight"].as_u64().unwrap() > 0);
    assert_eq!(shown["score"], reason["weight"], "the only signal");
    let full = server.get(&format!("/v1/ip/{CLEAN}"), Some(&key)).await;
    assert_eq!(full.body["threat"], shown, "both answers overlay alike");
}

#[tokio::test]
async fn each_bad_field_is_a_422_naming_it() {
    let (_dir, server) = server_with(Options::default()).await;
    let key = server.new_key().await;
    let cases = [
        (json!({"ip": "1.2.3.04"}), "ip"),
        (json!({"ip": "not-an-ip"}), "ip"),
        (json!({"ip": "10.1.2.3"}), "ip"),
        (json!({"ip": "2001:db8::1"}), "ip"),
        (json!({"category": "teleportation"}), "category"),
        (json!({"category": ""}), "category"),
        (json!({"severity": "apocalyptic"}), "severity"),
        (json!({"severity": 0}), "severity"),
        (json!({"confidence": 101}), "confidence"),
        (json!({"confidence": "sure"}), "confidence"),
        (json!({"reported_at": 4_102_444_800_i64}), "reported_at"),
        (json!({"reported_at": "last tuesday"}), "reported_at"),
    ];
    for (extra, field) in cases {
        let reply = report(&server, &key, CLEAN, extra.clone()).await;
        reply.assert_error(422, "invalid_field");
        assert_eq!(reply.body["error"]["field"], field, "{extra}");
    }
    let no_ip = server
        .post_json("/v1/ip/report", &key, &json!({"category": "22"}))
        .await;
    assert_eq!(no_ip.body["error"]["field"], "ip");

    let live = server
        .get("/v1/ip/threats/live?limit=501", Some(&key))
        .await;
    live.assert_error(422, "invalid_field");
    assert_eq!(live.body["error"]["field"], "limit");
    let nothing = server.get("/v1/ip/threats/live", Some(&key)).await;
    assert_eq!(nothing.body["count"], 0, "refused reports are not stored");
}

#[tokio::test]
async fn a_second_report_within_15_minutes_is_a_429_with_retry_after() {
    let (_dir, server) = server_with(Options::default()).await;
    let key = server.new_key().await;
    let other = server.new_key().await;

    assert_eq!(report(&server, &key, CLEAN, json!({})).await.status, 201);
    let again = report(&server, &key, CLEAN, json!({"category": "port_scan"})).await;
    again.assert_error(429, "duplicate_report");
    let wait = again.header_u64("retry-after");
    assert!((880..=900).contains(&wait), "{wait}");

    assert_eq!(report(&server, &other, CLEAN, json!({})).await.status, 201);
    assert_eq!(
        report(&server, &key, "222.1.41.90", json!({})).await.status,
        201
    );
    assert_eq!(threat(&server, &key, CLEAN).await["reports"]["count"], 2);
}

#[tokio::test]
async fn reports_have_their_own_daily_limit() {
    let limits = PlanLimits {
        free: 5,
        free_reports: 2,
        ..PlanLimits::default()
    };
    let (_dir, server) = server_with(Options {
        limits,
        ..Options::default()
    })
    .await;
    let key = server.new_key().await;

    for ip in ["123.202.0.1", "123.202.0.2"] {
        assert_eq!(report(&server, &key, ip, json!({})).await.status, 201);
    }
    let over = report(&server, &key, "123.202.0.3", json!({})).await;
    over.assert_error(429, "report_quota_exceeded");
    assert!(over.header_u64("retry-after") <= 86_400);

    let lookup = server.get(&format!("/v1/ip/{CLEAN}"), Some(&key)).await;
    assert_eq!(lookup.status, 200, "the lookup quota is separate");
    assert_eq!(lookup.header_u64("x-ratelimit-remaining"), 4);
}

/// A server behind a trusted proxy on loopback, so that a test can file
/// reports "from" other networks with `X-Forwarded-For`.
async fn server_behind_proxy() -> (tempfile::TempDir, TestServer) {
    let mut options = Options::default();
    options.config.trusted_proxies = "127.0.0.1/32".parse::<TrustedProxies>().unwrap();
    server_with(options).await
}

/// Files a report with `key` as if sent by `client` through the proxy.
async fn report_from(server: &TestServer, key: &str, client: &str, extra: Value) -> Reply {
    let mut body = json!({"ip": CLEAN, "category": "ssh_bruteforce"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let request = server
        .client
        .post(server.url("/v1/ip/report"))
        .header("X-API-Key", key)
        .header("X-Forwarded-For", client)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    Reply::from(request.send().await.unwrap()).await
}

#[tokio::test]
async fn three_distinct_keys_make_a_clean_address_at_least_medium() {
    let (_dir, server) = server_behind_proxy().await;
    let reader = server.new_key().await;
    assert_eq!(threat(&server, &reader, CLEAN).await["level"], "clean");

    let sites = ["198.51.100.7", "203.0.113.9", "2001:db8:77::1"];
    for (n, site) in sites.into_iter().enumerate() {
        let key = server.new_key().await;
        let reply = report_from(&server, &key, site, json!({})).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let level = threat(&server, &reader, CLEAN).await["level"].clone();
        if n == 0 {
            assert_ne!(level, "medium", "one default report stays below medium");
        }
    }
    let shown = threat(&server, &reader, CLEAN).await;
    let level = shown["level"].as_str().unwrap();
    assert!(["medium", "high", "critical"].contains(&level), "{shown}");
    assert_eq!(shown["reports"]["distinct_reporters"], 3);
    assert_eq!(shown["is_clean"], false);
}

#[tokio::test]
async fn three_keys_from_one_host_are_one_reporter_and_still_medium() {
    let (_dir, server) = server_with(Options::default()).await;
    let reader = server.new_key().await;
    for _ in 0..3 {
        let key = server.new_key().await;
        assert_eq!(report(&server, &key, CLEAN, json!({})).await.status, 201);
    }
    let shown = threat(&server, &reader, CLEAN).await;
    assert_eq!(shown["reports"]["count"], 3);
    assert_eq!(shown["reports"]["distinct_reporters"], 1, "{shown}");
    assert_eq!(shown["level"], "medium", "{shown}");
}

#[tokio::test]
async fn free_keys_cannot_make_an_address_critical() {
    let (_dir, server) = server_behind_proxy().await;
    let reader = server.new_key().await;
    let worst = json!({"severity": "critical", "confidence": 100});

    // Many free keys from one host: one reporter, capped at medium.
    for _ in 0..5 {
        let key = server.new_key().await;
        let reply = report_from(&server, &key, "198.51.100.7", worst.clone()).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let shown = threat(&server, &reader, CLEAN).await;
    assert_eq!(shown["reports"]["distinct_reporters"], 1, "{shown}");
    assert_eq!(shown["level"], "medium", "{shown}");

    // Free keys from many networks: at most high.
    for n in 0..8 {
        let key = server.new_key().await;
        let site = format!("203.0.{n}.9");
        let reply = report_from(&server, &key, &site, worst.clone()).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let shown = threat(&server, &reader, CLEAN).await;
    assert_eq!(shown["reports"]["distinct_reporters"], 9, "{shown}");
    assert_eq!(shown["level"], "high", "{shown}");
    assert_eq!(shown["score"], 70, "{shown}");

    // An accountable (paid) reporter can take it further.
    let paid = server.key_on(Plan::Professional).await;
    let reply = report_from(&server, &paid, "192.0.2.10", worst).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(threat(&server, &reader, CLEAN).await["level"], "critical");
}

#[tokio::test]
async fn twenty_reports_from_one_key_do_not_make_a_network_critical() {
    let (_dir, server) = server_with(Options::default()).await;
    let key = server.key_on(Plan::Professional).await;
    for n in 1..=20 {
        let ip = format!("2606:4700:0:1::{n:x}");
        let extra = json!({"severity": "critical", "confidence": 100});
        let reply = report(&server, &key, &ip, extra).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let shown = threat(&server, &key, "2606:4700:0:1::ffff").await;
    assert_eq!(shown["reports"]["count"], 20, "one /64, one entry");
    assert_eq!(shown["reports"]["distinct_reporters"], 1);
    assert_ne!(shown["level"], "critical", "{shown}");
    assert!(shown["score"].as_u64().unwrap() < 80);
}

#[tokio::test]
async fn live_feed_orders_limits_and_groups_by_prefix() {
    let options = Options {
        reports: ReportSettings { live_v6_prefix: 48 },
        ..Options::default()
    };
    let (_dir, server) = server_with(options).await;
    let key = server.key_on(Plan::Professional).await;
    let now = ipintel_store::now_unix();
    let reports = [
        ("123.202.0.1", 50),
        ("2606:4700:1:1::1", 40),
        ("2606:4700:1:2::1", 30),
        ("222.1.41.90", 20),
        ("185.220.101.7", 10),
    ];
    for (ip, ago) in reports {
        let reply = report(&server, &key, ip, json!({"reported_at": now - ago})).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }

    let feed = server.get("/v1/ip/threats/live", Some(&key)).await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert_eq!(feed.body["v6_prefix"], 48);
    let items = feed.body["items"].as_array().unwrap();
    let networks: Vec<&str> = items
        .iter()
        .map(|i| i["network"].as_str().unwrap())
        .collect();
    assert_eq!(
        networks,
        [
            "185.220.101.7",
            "222.1.41.90",
            "2606:4700:1::/48",
            "123.202.0.1"
        ]
    );
    let grouped = &items[2];
    assert_eq!(grouped["reports"], 2, "two /64s in one /48");
    assert_eq!(grouped["ip"], "2606:4700:1:2::1", "the latest report");
    let tor = &items[0];
    assert!(
        tor["score"].as_u64().unwrap() > 90,
        "data and reports: {tor}"
    );
    assert_eq!(tor["country"], "DE");
    assert_eq!(tor["asn"], 60729);

    let two = server.get("/v1/ip/threats/live?limit=2", Some(&key)).await;
    assert_eq!(two.body["count"], 2);
    assert_eq!(two.body["items"][1]["network"], "222.1.41.90");
}

#[tokio::test]
async fn reports_are_read_back_after_a_restart() {
    let (_dir, db) = temp_db();
    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    assert_eq!(report(&server, &key, CLEAN, json!({})).await.status, 201);
    server.stop().await;

    let server = TestServer::start(&db, Options::default()).await;
    assert_eq!(threat(&server, &key, CLEAN).await["reports"]["count"], 1);
    let again = report(&server, &key, CLEAN, json!({})).await;
    again.assert_error(429, "duplicate_report");
}

#[tokio::test]
async fn reports_from_any_client_network_are_read_back_after_a_restart() {
    let (_dir, db) = temp_db();
    let mut options = Options::default();
    options.config.trusted_proxies = "127.0.0.1/32".parse::<TrustedProxies>().unwrap();
    let server = TestServer::start(&db, options).await;
    // Networks whose first address is the unspecified one.
    for client in ["::1", "0.0.0.5", "::ffff:0.0.0.7"] {
        let key = server.new_key().await;
        let reply = report_from(&server, &key, client, json!({})).await;
        assert_eq!(reply.status, 201, "{client}: {}", reply.body);
    }
    server.stop().await;

    let server = TestServer::start(&db, Options::default()).await;
    let key = server.new_key().await;
    let shown = threat(&server, &key, CLEAN).await;
    assert_eq!(shown["reports"]["count"], 3);
    assert_eq!(shown["reports"]["distinct_reporters"], 2, "{shown}");
}

#[tokio::test]
async fn a_paid_key_does_not_lift_free_keys_of_its_network() {
    let (_dir, server) = server_behind_proxy().await;
    let reader = server.new_key().await;
    let worst = json!({"severity": "critical", "confidence": 100});

    let paid = server.key_on(Plan::Professional).await;
    let faint = json!({"severity": "low", "confidence": 1});
    let reply = report_from(&server, &paid, "198.51.100.10", faint).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    for site in ["203.0.113.1", "192.0.2.1", "198.51.100.200"] {
        let key = server.new_key().await;
        let reply = report_from(&server, &key, site, worst.clone()).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let shown = threat(&server, &reader, CLEAN).await;
    assert_eq!(shown["reports"]["distinct_reporters"], 3, "{shown}");
    assert_eq!(shown["level"], "high", "{shown}");
}

/// The `[Definition] actionban` command and the `[Init]` parameters of the
/// shipped fail2ban action.
fn fail2ban_action() -> (String, HashMap<String, String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contrib/fail2ban/ipintel.conf"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut section = "";
    let mut command = None;
    let mut params = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
            continue;
        }
        let (name, value) = line.split_once('=').unwrap();
        let (name, value) = (name.trim(), value.trim());
        match section {
            "Definition" if name == "actionban" => command = Some(value.to_owned()),
            "Init" => {
                params.insert(name.to_owned(), value.to_owned());
            }
            _ => {}
        }
    }
    (command.unwrap(), params)
}

#[tokio::test]
async fn the_fail2ban_action_files_a_report_that_reaches_the_live_feed() {
    let (_dir, server) = server_with(Options::default()).await;
    let key = server.new_key().await;
    let (mut command, mut params) = fail2ban_action();
    params.insert("ipintel_url".into(), format!("http://{}", server.addr));
    params.insert("ipintel_apikey".into(), key.clone());
    params.insert("ip".into(), "222.1.41.90".into());
    params.insert("name".into(), "sshd".into());
    params.insert("failures".into(), "7".into());
    for (name, value) in &params {
        command = command.replace(&format!("<{name}>"), value);
    }
    assert!(!command.contains('<'), "unsubstituted tag in {command}");

    let output = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .args(["-c", &command])
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("ALL_PROXY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {:?}", output);
    let receipt: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(receipt["categories"], json!(["ssh_bruteforce"]));
    assert_eq!(
        receipt["comment"],
        "fail2ban jail sshd: banned after 7 failures"
    );

    let feed = server.get("/v1/ip/threats/live", Some(&key)).await;
    assert_eq!(feed.body["items"][0]["ip"], "222.1.41.90", "{}", feed.body);
    assert_eq!(
        feed.body["items"][0]["categories"],
        json!(["ssh_bruteforce"])
    );
}

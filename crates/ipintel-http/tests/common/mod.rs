//! A real server on 127.0.0.1:0 with a SQLite store in a temporary
//! directory and a small snapshot built by the test.
#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipintel_core::{GeoData, IpRange, Signal, SignalKind, Snapshot, SnapshotBuilder, SourceMeta};
use ipintel_http::{AppState, HttpConfig, ServeOptions};
use ipintel_store::{Accounts, PlanLimits, SqliteStore, Store};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn source(name: &str, date: &str) -> SourceMeta {
    SourceMeta {
        name: name.to_owned(),
        package: Some(format!("fixture-{name}")),
        version: Some("1.0.0".to_owned()),
        data_date: Some(date.to_owned()),
        licence: "CC0-1.0".to_owned(),
        attribution: format!("{name} fixture built by the test"),
        records: 0,
    }
}

fn range(cidr: &str) -> IpRange {
    IpRange::from_cidr(cidr).unwrap()
}

fn place(country: &str, region: &str, city: &str, lat: f64, lon: f64, tz: &str) -> GeoData {
    GeoData {
        country: Some(country.to_owned()),
        region: Some(region.to_owned()),
        city: Some(city.to_owned()),
        latitude: Some(lat),
        longitude: Some(lon),
        timezone: Some(tz.to_owned()),
    }
}

/// A few ranges with location, AS and signals. Private and loopback space
/// carries data too (like bogon lists do) so tests can prove that reserved
/// addresses never consult it.
pub fn fixture_snapshot() -> Snapshot {
    let mut b = SnapshotBuilder::new();
    b.source(source("fixture-geo", "2026-06-05"));
    b.source(source("fixture-asn", "2026-06-17"));
    let threat = b.source(source("fixture-threat", "2026-10-05"));

    let mtv = place(
        "US",
        "California",
        "Mountain View",
        37.422,
        -122.085,
        "America/Los_Angeles",
    );
    b.geo(range("8.8.8.0/24"), mtv.clone());
    b.asn(range("8.8.8.0/24"), 15169, "Google LLC");
    b.signal(
        range("8.8.8.0/24"),
        signal(threat, SignalKind::Datacenter, 10, "Google"),
    );

    let hk = place(
        "HK",
        "Central and Western",
        "Hong Kong",
        22.28,
        114.15,
        "Asia/Hong_Kong",
    );
    b.geo(range("123.202.0.0/16"), hk);
    b.asn(range("123.202.0.0/16"), 9269, "Hong Kong Broadband Network");

    let tokyo = place("JP", "Tokyo", "Tokyo", 35.69, 139.69, "Asia/Tokyo");
    b.geo(range("222.1.0.0/16"), tokyo);
    b.asn(range("222.1.0.0/16"), 17506, "ARTERIA Networks");

    let sf = place(
        "US",
        "California",
        "San Francisco",
        37.77,
        -122.39,
        "America/Los_Angeles",
    );
    b.geo(range("2606:4700::/32"), sf);
    b.asn(range("2606:4700::/32"), 13335, "Cloudflare, Inc.");
    b.signal(
        range("2606:4700::/32"),
        signal(threat, SignalKind::Cdn, 5, "Cloudflare"),
    );

    let berlin = place("DE", "Berlin", "Berlin", 52.52, 13.40, "Europe/Berlin");
    b.geo(range("185.220.101.0/24"), berlin);
    b.asn(
        range("185.220.101.0/24"),
        60729,
        "Stiftung Erneuerbare Freiheit",
    );
    b.signal(
        range("185.220.101.0/24"),
        signal(threat, SignalKind::Tor, 90, "Tor Project"),
    );

    // Data over reserved space, which lookups must ignore.
    b.geo(range("10.0.0.0/8"), mtv.clone());
    b.geo(range("127.0.0.0/8"), mtv);
    b.asn(range("10.0.0.0/8"), 64512, "Private AS");
    b.signal(
        range("10.0.0.0/8"),
        signal(threat, SignalKind::Blocklist, 80, "bogons"),
    );
    b.signal(
        range("100.64.0.0/10"),
        signal(threat, SignalKind::Blocklist, 80, "bogons"),
    );
    b.signal(
        range("fe80::/10"),
        signal(threat, SignalKind::Blocklist, 80, "bogons"),
    );
    b.build()
}

fn signal(source: ipintel_core::SourceId, kind: SignalKind, weight: u8, provider: &str) -> Signal {
    Signal {
        kind,
        source,
        weight,
        confidence: 0.9,
        provider: Some(provider.to_owned()),
        detail: None,
    }
}

/// A running server and what it runs on.
pub struct TestServer {
    pub addr: SocketAddr,
    pub accounts: Arc<Accounts>,
    pub client: reqwest::Client,
    db: PathBuf,
    store: Arc<SqliteStore>,
    shutdown: CancellationToken,
    accounts_stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    flusher: JoinHandle<()>,
}

/// Options of a test server.
#[derive(Clone)]
pub struct Options {
    pub config: HttpConfig,
    pub limits: PlanLimits,
    pub snapshot: Arc<Snapshot>,
    pub reports: ipintel_store::ReportSettings,
    pub serve: ServeOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: HttpConfig::default(),
            limits: PlanLimits::default(),
            snapshot: Arc::new(fixture_snapshot()),
            reports: ipintel_store::ReportSettings::default(),
            serve: ServeOptions::default(),
        }
    }
}

impl Options {
    /// The default options with a free-plan daily limit of `free`.
    pub fn free_limit(free: u64) -> Options {
        Options {
            limits: PlanLimits {
                free,
                ..PlanLimits::default()
            },
            ..Options::default()
        }
    }
}

impl TestServer {
    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Starts a server on the database file `db`.
    pub async fn start(db: &Path, options: Options) -> TestServer {
        let store = Arc::new(SqliteStore::open(db).await.unwrap());
        let shared: Arc<dyn Store> = store.clone();
        let accounts = Accounts::open(shared, options.limits).await.unwrap();
        let accounts_stop = CancellationToken::new();
        let flusher = accounts.spawn_background(accounts_stop.clone());

        let snapshot = Arc::new(ArcSwap::new(options.snapshot));
        let desk = ipintel_store::ReportDesk::open(
            store.clone(),
            options.limits,
            options.reports,
            ipintel_store::now_unix(),
        )
        .await
        .unwrap();
        let state =
            AppState::new(snapshot, Arc::clone(&accounts), options.config).with_report_desk(desk);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(ipintel_http::serve_with(
            listener,
            state,
            options.serve,
            shutdown.clone(),
        ));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        TestServer {
            addr,
            accounts,
            client,
            db: db.to_path_buf(),
            store,
            shutdown,
            accounts_stop,
            server,
            flusher,
        }
    }

    /// Graceful stop: drain, then the final flush of usage counts.
    pub async fn stop(self) -> PathBuf {
        self.begin_stop();
        self.server.await.unwrap().unwrap();
        self.accounts_stop.cancel();
        self.flusher.await.unwrap();
        self.store.close().await;
        self.db
    }

    /// Fires the shutdown token only; [`stop`](Self::stop) finishes.
    pub fn begin_stop(&self) {
        self.shutdown.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A new key created through the accounts API (free plan, unprovisioned).
    pub async fn new_key(&self) -> String {
        self.accounts
            .create_key(Some("test".into()), None)
            .await
            .unwrap()
            .1
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        Reply::from(request.send().await.unwrap()).await
    }

    /// `POST path` with a JSON body and a key.
    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> Reply {
        let request = self
            .client
            .post(self.url(path))
            .header("X-API-Key", key)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        Reply::from(request.send().await.unwrap()).await
    }

    /// `POST path` with a form body and a key.
    pub async fn post_form(&self, path: &str, key: &str, pairs: &[(&str, &str)]) -> Reply {
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", form_escape(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .client
            .post(self.url(path))
            .header("X-API-Key", key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        Reply::from(request.send().await.unwrap()).await
    }

    /// A new key on `plan`.
    pub async fn key_on(&self, plan: ipintel_store::Plan) -> String {
        self.accounts
            .create_key(Some("test".into()), Some(plan))
            .await
            .unwrap()
            .1
    }

    pub async fn post(&self, path: &str, forwarded_for: Option<&str>) -> Reply {
        let mut request = self.client.post(self.url(path));
        if let Some(xff) = forwarded_for {
            request = request.header("X-Forwarded-For", xff);
        }
        Reply::from(request.send().await.unwrap()).await
    }
}

/// A finished response, body parsed as JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {text:?}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn header_u64(&self, name: &str) -> u64 {
        self.header(name).parse().unwrap()
    }

    /// Asserts the error envelope with `code` and status.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{:?}", self.body);
        assert_eq!(self.body["error"]["status"], status);
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(self.header("content-type"), "application/json");
    }
}

/// Percent-encodes everything but unreserved characters.
fn form_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A temporary directory with a database path in it.
pub fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ipintel.db");
    (dir, db)
}

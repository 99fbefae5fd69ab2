//! A PostgreSQL schema of a test's own on the local test server, made when
//! the test starts and dropped when it ends, with the `IPINTEL_DB` URL that
//! names it and a few ways to read it back directly.
//!
//! The server is `IPINTEL_TEST_POSTGRES_URL`, or [`DEFAULT_URL`] when that
//! is unset. When it cannot be reached, [`Schema::create`] fails the test
//! if `CI` is set (a CI run must not pass by skipping), and otherwise says
//! loudly that the test skips and returns `None`.
#![allow(
    dead_code,
    reason = "several test binaries share this, each using a part"
)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

/// The test server when `IPINTEL_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Every statement the helper runs gets this long, connecting included.
const STATEMENT_LIMIT: Duration = Duration::from_secs(10);

/// Whether the `CI` environment variable is set (to anything non-empty).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// A schema made for one test; dropped, with its tables, on drop.
pub struct Schema {
    runtime: tokio::runtime::Runtime,
    /// The server, without a `search_path`.
    server: PgConnectOptions,
    /// The URL text of the server as configured (it may hold a password,
    /// so it is never printed).
    server_url: String,
    name: String,
    /// The `IPINTEL_DB` value naming the schema.
    url: String,
}

impl Schema {
    /// Makes a new, empty schema named after `test` (lower-case letters,
    /// digits and `_`) and this process; `None` when the server cannot be
    /// reached and `CI` is not set.
    pub fn create(test: &str) -> Option<Schema> {
        assert!(
            test.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a schema name must be a plain identifier: {test:?}"
        );
        let server_url = std::env::var("IPINTEL_TEST_POSTGRES_URL")
            .ok()
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let server = PgConnectOptions::from_str(&server_url)
            .unwrap_or_else(|err| panic!("IPINTEL_TEST_POSTGRES_URL is not a URL: {err}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let name = format!("ipintel_{test}_{}", std::process::id());
        let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}");
        if let Err(err) = runtime.block_on(execute(&server, sql)) {
            // Host and port only: the URL may hold a password.
            let why = format!(
                "PostgreSQL at {}:{} cannot be reached ({err}); start it or set \
                 IPINTEL_TEST_POSTGRES_URL",
                server.get_host(),
                server.get_port()
            );
            assert!(!ci(), "{why}. CI is set, so this test must run");
            eprintln!("SKIPPED: {why}. (With CI set this is a failure.)");
            return None;
        }
        let url = with_search_path(&server_url, &name);
        Some(Schema {
            runtime,
            server,
            server_url,
            name,
            url,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `IPINTEL_DB` value (or `--db` argument) naming the schema.
    pub fn db(&self) -> &Path {
        Path::new(&self.url)
    }

    /// The address the server listens on, as the URL names it.
    pub fn server_addr(&self) -> SocketAddr {
        let host = self.server.get_host();
        let port = self.server.get_port();
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("the test server's host {host} does not resolve"))
    }

    /// The `IPINTEL_DB` value naming the schema, reached through `via`
    /// (say, a proxy in front of the server) instead of the server's own
    /// host and port.
    pub fn db_through(&self, via: SocketAddr) -> String {
        with_search_path(&replace_authority_host(&self.server_url, via), &self.name)
    }

    /// Runs `sql` (one or more statements) in the schema.
    pub fn execute(&self, sql: &str) {
        let options = self.in_schema();
        self.runtime
            .block_on(execute(&options, sql.to_owned()))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// The first column of every row `sql` selects in the schema, as
    /// BIGINT (cast in the query where needed).
    pub fn bigints(&self, sql: &str) -> Vec<i64> {
        let options = self.in_schema();
        let text = sql.to_owned();
        let work = async move {
            let mut conn = PgConnection::connect_with(&options).await?;
            let rows: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(text))
                .fetch_all(&mut conn)
                .await?;
            conn.close().await?;
            Ok(rows)
        };
        self.block_on(work)
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// The one BIGINT that `sql` selects in the schema.
    pub fn bigint(&self, sql: &str) -> i64 {
        let rows = self.bigints(sql);
        assert_eq!(rows.len(), 1, "{sql} selected {} rows", rows.len());
        rows[0]
    }

    /// Options that connect to the schema directly (not through a proxy).
    pub fn connect_options(&self) -> PgConnectOptions {
        self.in_schema()
    }

    fn in_schema(&self) -> PgConnectOptions {
        self.server
            .clone()
            .options([("search_path", self.name.as_str())])
    }

    /// Runs `work` on the schema's runtime, giving it [`STATEMENT_LIMIT`].
    fn block_on<T>(&self, work: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, String> {
        self.runtime.block_on(async {
            match tokio::time::timeout(STATEMENT_LIMIT, work).await {
                Ok(done) => done.map_err(|err| err.to_string()),
                Err(_) => Err(format!("no answer within {STATEMENT_LIMIT:?}")),
            }
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(err) = self.runtime.block_on(execute(&self.server, sql)) {
            eprintln!("warning: test schema {} was not dropped: {err}", self.name);
        }
    }
}

/// Connects with `options`, runs `sql` as a simple query, disconnects.
async fn execute(options: &PgConnectOptions, sql: String) -> Result<(), String> {
    let work = async {
        let mut conn = PgConnection::connect_with(options).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await
    };
    match tokio::time::timeout(STATEMENT_LIMIT, work).await {
        Ok(done) => done.map_err(|err| err.to_string()),
        Err(_) => Err(format!("no answer within {STATEMENT_LIMIT:?}")),
    }
}

/// `url` with a `search_path` of `schema` set for every connection.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// `url` with the host and port of its authority replaced by `via`; the
/// user, password, database and parameters are kept. Only URLs of the form
/// `postgres://[user[:password]@]host[:port][/database][?params]` are
/// understood.
fn replace_authority_host(url: &str, via: SocketAddr) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("the test server's URL has no scheme"));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let user = authority
        .rsplit_once('@')
        .map_or(String::new(), |(user, _)| format!("{user}@"));
    format!("{scheme}://{user}{via}{tail}")
}

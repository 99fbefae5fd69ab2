//! The harness of the store suite: every test written against [`TestDb`]
//! runs twice, on SQLite (a file in a temporary directory) and on
//! PostgreSQL (a schema of its own, created for the test and dropped after
//! it), through [`store_tests!`].
//!
//! PostgreSQL is reached at `IPINTEL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached,
//! the PostgreSQL tests fail if the `CI` variable is set, and otherwise
//! say why they skip and pass.
#![allow(
    clippy::unwrap_used,
    dead_code,
    reason = "test helpers fail loudly; each test binary uses a part"
)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ipintel_store::{key, NewKey, PostgresStore, PostgresUrl, SqliteStore, Store};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

/// Where the PostgreSQL half of the suite runs unless told otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long reaching PostgreSQL may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Defines one test per backend for each named `async fn NAME(db: TestDb)`
/// of the file: `sqlite::NAME` and `postgres::NAME`.
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::run(crate::support::Backend::Sqlite, super::$name).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::run(crate::support::Backend::Postgres, super::$name).await;
                }
            )+
        }
    };
}
pub(crate) use store_tests;

/// The two store implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's database: a place that store handles open, as several
/// processes would, each with its own connections.
#[derive(Debug, Clone)]
pub struct TestDb(Arc<Place>);

#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per test, behind an Arc")]
enum Place {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        /// The server's URL as given (it may hold a password).
        server_url: String,
        /// The server, without the schema.
        server: PgConnectOptions,
        schema: String,
        /// The server with `search_path` set to `schema`, as a user would
        /// write it in `IPINTEL_DB`.
        url: PostgresUrl,
    },
}

/// Runs `test` on a fresh database of `backend`, then removes it, whether
/// the test passed or panicked.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = match backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => match TestDb::postgres().await {
            Ok(db) => db,
            Err(why) => return unreachable_postgres(&why),
        },
    };
    let outcome = CatchPanic(Box::pin(test(db.clone()))).await;
    db.remove().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A future that returns the panic of the one it wraps instead of
/// unwinding, so that the database is removed after a failed test too.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for CatchPanic<F> {
    type Output = std::thread::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn unreachable_postgres(why: &str) {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    if ci {
        panic!(
            "{why}. CI is set, so the PostgreSQL store tests must run: start PostgreSQL \
             or point IPINTEL_TEST_POSTGRES_URL at one"
        );
    }
    eprintln!(
        "skipped: {why}. Start PostgreSQL or set IPINTEL_TEST_POSTGRES_URL to run this test \
         (with CI set, this is a failure)"
    );
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("state").join("keys.db");
        TestDb(Arc::new(Place::Sqlite { _dir: dir, path }))
    }

    /// A new schema on the test server, or why there is none.
    async fn postgres() -> Result<Self, String> {
        let text = std::env::var("IPINTEL_TEST_POSTGRES_URL")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
        let shown = PostgresUrl::parse(&text)
            .unwrap_or_else(|err| panic!("IPINTEL_TEST_POSTGRES_URL: {err}"))
            .to_string();
        let server = PgConnectOptions::from_str(&text).unwrap();
        let mut admin = connect(&server)
            .await
            .map_err(|err| format!("PostgreSQL at {shown} is unreachable ({err})"))?;
        let schema = format!("ipintel_t_{:016x}", rand::random::<u64>());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();

        let url = with_search_path(&text, &schema);
        Ok(TestDb(Arc::new(Place::Postgres {
            server_url: text,
            server,
            schema,
            url,
        })))
    }

    /// Drops a PostgreSQL schema with everything in it.
    async fn remove(&self) {
        let Place::Postgres { server, schema, .. } = &*self.0 else {
            return;
        };
        // A connection the test left in a transaction must not hang the
        // run: give up after a while instead, and say so.
        let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA {schema} CASCADE");
        let dropped = async {
            let mut admin = connect(server).await?;
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await;
            done.map_err(|err| err.to_string())?;
            admin.close().await.map_err(|err| err.to_string())
        };
        if let Err(err) = dropped.await {
            eprintln!("warning: test schema {schema} not dropped: {err}");
        }
    }

    pub fn backend(&self) -> Backend {
        match &*self.0 {
            Place::Sqlite { .. } => Backend::Sqlite,
            Place::Postgres { .. } => Backend::Postgres,
        }
    }

    /// A new handle on the database, with connections of its own.
    pub async fn open(&self) -> Arc<dyn Store> {
        match &*self.0 {
            Place::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).await.unwrap()),
            Place::Postgres { url, .. } => Arc::new(PostgresStore::open(url).await.unwrap()),
        }
    }

    /// The SQLite file, for SQLite-only checks.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &*self.0 {
            Place::Sqlite { path, .. } => Some(path),
            Place::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL server's URL with its `search_path` set to
    /// `schema`, for PostgreSQL-only checks.
    pub fn postgres_url(&self, schema: &str) -> PostgresUrl {
        let Place::Postgres { server_url, .. } = &*self.0 else {
            unreachable!("a PostgreSQL URL for a SQLite database");
        };
        with_search_path(server_url, schema)
    }

    /// The folder of this backend's migrations.
    pub fn migrations_dir(&self) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        match self.backend() {
            Backend::Sqlite => root,
            Backend::Postgres => root.join("postgres"),
        }
    }

    /// Runs `sql` (one or more statements) on a connection of its own.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        match &*self.0 {
            Place::Sqlite { path, .. } => {
                let mut conn = sqlite_connection(path).await;
                sql.execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Place::Postgres { .. } => {
                let mut conn = self.postgres_connection().await;
                sql.execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// The one integer that `sql` selects, read on a connection of its own.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &*self.0 {
            Place::Sqlite { path, .. } => {
                let mut conn = sqlite_connection(path).await;
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Place::Postgres { .. } => {
                let mut conn = self.postgres_connection().await;
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// Everything the database holds, as bytes to search: the SQLite files
    /// (main file, WAL, shared memory), or the text of every row of every
    /// table of the PostgreSQL schema (binary columns in hex).
    pub async fn everything_stored(&self) -> Vec<u8> {
        match &*self.0 {
            Place::Sqlite { path, .. } => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
                    bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                bytes
            }
            Place::Postgres { schema, .. } => {
                let mut conn = self.postgres_connection().await;
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = $1",
                )
                .bind(schema)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                assert!(!tables.is_empty(), "no tables in {schema}");
                let mut text = String::new();
                for table in tables {
                    let sql = format!("SELECT t::text FROM \"{table}\" t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    text.extend(rows.into_iter().map(|row| row + "\n"));
                }
                text.into_bytes()
            }
        }
    }

    /// Makes every `event` (INSERT or UPDATE) on `table` fail until the
    /// returned refusal is lifted.
    pub async fn refuse(&self, event: &'static str, table: &'static str) -> Refusal {
        let name = format!("refuse_{}_{table}", event.to_ascii_lowercase());
        let (create, drop) = match self.backend() {
            Backend::Sqlite => (
                format!(
                    "CREATE TRIGGER {name} BEFORE {event} ON {table} \
                     BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
                ),
                format!("DROP TRIGGER {name}"),
            ),
            Backend::Postgres => (
                format!(
                    "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$; \
                     CREATE TRIGGER {name} BEFORE {event} ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION {name}()"
                ),
                format!("DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()"),
            ),
        };
        self.execute(&create).await;
        Refusal {
            db: self.clone(),
            drop,
        }
    }

    /// A connection of its own to the test schema (PostgreSQL only).
    pub async fn postgres_connection(&self) -> PgConnection {
        let Place::Postgres { server, schema, .. } = &*self.0 else {
            unreachable!("a PostgreSQL connection to a SQLite database");
        };
        let options = server.clone().options([("search_path", schema.as_str())]);
        connect(&options).await.unwrap()
    }
}

/// A refusal set up by [`TestDb::refuse`].
#[derive(Debug)]
pub struct Refusal {
    db: TestDb,
    drop: String,
}

impl Refusal {
    /// Lets the writes through again.
    pub async fn lift(self) {
        self.db.execute(&self.drop).await;
    }
}

/// `server` (a URL) with its `search_path` set to `schema`, the way an
/// operator would write it in `IPINTEL_DB`.
pub fn with_search_path(server: &str, schema: &str) -> PostgresUrl {
    let mut url = url::Url::parse(server).unwrap();
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={schema}"));
    PostgresUrl::parse(url.as_str()).unwrap()
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(connected) => connected.map_err(|err| err.to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

async fn sqlite_connection(path: &Path) -> SqliteConnection {
    let url = format!("sqlite://{}", path.display());
    SqliteConnection::connect(&url).await.unwrap()
}

/// A key to insert, created at `created_at`, and its full text.
pub fn new_key(created_at: i64) -> (key::PresentedKey, NewKey) {
    let presented = key::generate();
    let new = NewKey {
        id: presented.id.clone(),
        secret_hash: presented.secret_hash(),
        label: Some("test".into()),
        plan: None,
        daily_limit_override: None,
        created_at,
    };
    (presented, new)
}

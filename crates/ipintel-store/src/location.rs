//! Where the store lives, as the `IPINTEL_DB` setting names it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::home::HomeRuntime;
use crate::postgres::{BadDatabaseUrl, PostgresStore, PostgresUrl};
use crate::sqlite::SqliteStore;
use crate::store::Store;
use crate::StoreError;

/// A SQLite file or a PostgreSQL database.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A SQLite database file, created (with its directories) if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<PostgresUrl>),
}

impl StoreLocation {
    /// Reads the setting: a `postgres://` or `postgresql://` URL names
    /// PostgreSQL, and any text without a `SCHEME://` prefix is the path
    /// of a SQLite file. Another scheme (`sqlite://`, a misspelling) is an
    /// error rather than a file of that name.
    pub fn from_setting(value: PathBuf) -> Result<Self, BadDatabaseUrl> {
        let Some(text) = value.to_str() else {
            return Ok(Self::Sqlite(value));
        };
        if PostgresUrl::is_postgres(text) {
            return PostgresUrl::parse(text).map(|url| Self::Postgres(Box::new(url)));
        }
        // `postgres:user:pw@host/db` (the slashes forgotten) would otherwise
        // become a file path, created and logged with its password.
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
            return Err(BadDatabaseUrl::new(
                "a PostgreSQL URL starts with postgres:// or postgresql://".to_owned(),
            ));
        }
        if let Some(scheme) = url_scheme(text) {
            return Err(BadDatabaseUrl::new(format!(
                "unsupported scheme '{scheme}://': give a SQLite file path or a \
                 postgres:// URL"
            )));
        }
        Ok(Self::Sqlite(value))
    }

    /// `"sqlite"` or `"postgres"`, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Opens the store here, applying its migrations.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            // Its sockets must stay on this runtime: see `HomeRuntime`.
            Self::Postgres(url) => HomeRuntime::wrap(Arc::new(PostgresStore::open(url).await?)),
        })
    }
}

impl fmt::Display for StoreLocation {
    /// The file's path, or the URL with its password hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// The scheme of `text` if it starts like a URL (`letters://`).
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<StoreLocation, BadDatabaseUrl> {
        StoreLocation::from_setting(PathBuf::from(text))
    }

    #[test]
    fn paths_are_sqlite_and_postgres_urls_are_postgres() {
        for path in [
            "var/ipintel.db",
            "/srv/state/keys.db",
            "postgres.db",
            "a:b/c.db",
        ] {
            let location = read(path).unwrap();
            assert!(matches!(&location, StoreLocation::Sqlite(p) if p.to_str() == Some(path)));
            assert_eq!(location.backend(), "sqlite");
            assert_eq!(location.to_string(), path);
        }
        for url in ["postgres://u:pw@h/db", "postgresql://h:5433/db"] {
            let location = read(url).unwrap();
            assert_eq!(location.backend(), "postgres");
            assert!(!location.to_string().contains("pw"), "{location}");
        }
    }

    #[test]
    fn other_schemes_and_bad_urls_are_refused() {
        let err = read("sqlite://var/ipintel.db").unwrap_err().to_string();
        assert!(err.contains("'sqlite://'"), "{err}");
        for slashless in ["postgres:u:secret@h/db", "PostgreSQL:/h/db"] {
            let err = read(slashless).unwrap_err().to_string();
            assert!(err.contains("postgres://"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        let err = read("postgres://u:pw@h:99999/db").unwrap_err().to_string();
        assert!(!err.contains("pw"), "{err}");
    }
}

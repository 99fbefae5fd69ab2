//! The PostgreSQL connection URL: checked when it is read, and shown
//! (in errors and logs) only with its password hidden.

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use url::Url;

/// What stands in for a password wherever a URL is shown.
const HIDDEN: &str = "***";

/// The query parameters the PostgreSQL driver reads. Any other is refused:
/// the driver would ignore it with a warning that prints its value.
const KNOWN_PARAMETERS: [&str; 18] = [
    "application_name",
    "dbname",
    "host",
    "hostaddr",
    "options",
    "password",
    "port",
    "ssl-ca",
    "ssl-cert",
    "ssl-key",
    "ssl-mode",
    "ssl-root-cert",
    "sslcert",
    "sslkey",
    "sslmode",
    "sslrootcert",
    "statement-cache-capacity",
    "user",
];

/// A `postgres://` or `postgresql://` URL, checked when parsed.
///
/// [`fmt::Display`] and [`fmt::Debug`] show it with the password (in the
/// user part or a `password` parameter) replaced by `***`.
#[derive(Clone)]
pub struct PostgresUrl {
    /// The URL as given: never shown.
    url: Url,
    options: PgConnectOptions,
}

/// A database URL that cannot be used. The message never holds the
/// password.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct BadDatabaseUrl(String);

impl BadDatabaseUrl {
    pub(crate) fn new(message: String) -> Self {
        Self(message)
    }
}

impl PostgresUrl {
    /// Whether `text` names PostgreSQL (a `postgres:` or `postgresql:`
    /// URL, any case) rather than a SQLite file.
    pub fn is_postgres(text: &str) -> bool {
        let scheme = text.split_once("://").map_or("", |(scheme, _)| scheme);
        scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
    }

    /// Parses and checks `text`: a PostgreSQL URL whose parameters the
    /// driver knows and whose values it accepts.
    pub fn parse(text: &str) -> Result<Self, BadDatabaseUrl> {
        let url = Url::parse(text).map_err(|err| {
            // The text may hold a password and could not be split into
            // parts, so it is not repeated.
            BadDatabaseUrl(format!(
                "not a valid URL ({err}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(BadDatabaseUrl(format!(
                "{}: the scheme must be postgres:// or postgresql://",
                redact(&url)
            )));
        }
        for (name, _) in url.query_pairs() {
            let known = KNOWN_PARAMETERS.contains(&name.as_ref())
                || (name.starts_with("options[") && name.ends_with(']'));
            if !known {
                return Err(BadDatabaseUrl(format!(
                    "{}: unknown parameter '{name}' (known: {}, options[NAME])",
                    redact(&url),
                    KNOWN_PARAMETERS.join(", ")
                )));
            }
        }
        let options = PgConnectOptions::from_str(url.as_str()).map_err(|err| {
            let text = err.to_string();
            let text = text.trim_start_matches("error with configuration: ");
            BadDatabaseUrl(format!("{}: {text}", redact(&url)))
        })?;
        Ok(Self { url, options })
    }

    /// The driver's options for this URL.
    pub(crate) fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }
}

impl FromStr for PostgresUrl {
    type Err = BadDatabaseUrl;

    fn from_str(text: &str) -> Result<Self, BadDatabaseUrl> {
        Self::parse(text)
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&redact(&self.url))
            .finish()
    }
}

/// `url` with its password, if any, replaced by [`HIDDEN`].
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Fails only for URLs without a host, which cannot carry a
        // password in their user part.
        let _ = shown.set_password(Some(HIDDEN));
    }
    let has_password_parameter = url.query_pairs().any(|(name, _)| name == "password");
    if has_password_parameter {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "password" {
                    HIDDEN.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_schemes_are_recognised() {
        for text in [
            "postgres://h/db",
            "postgresql://h/db",
            "POSTGRES://h/db",
            "PostgreSQL://u@h",
        ] {
            assert!(PostgresUrl::is_postgres(text), "{text}");
        }
        for text in [
            "var/ipintel.db",
            "/tmp/postgres.db",
            "sqlite://x.db",
            "postgres:x",
        ] {
            assert!(!PostgresUrl::is_postgres(text), "{text}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let url: PostgresUrl = "postgres://ipintel:s3cr%40t@db.internal:5433/keys?sslmode=require"
            .parse()
            .unwrap();
        let shown = url.to_string();
        assert_eq!(
            shown,
            "postgres://ipintel:***@db.internal:5433/keys?sslmode=require"
        );
        assert!(!format!("{url:?}").contains("s3cr"));

        let url: PostgresUrl = "postgresql://u@h/db?password=hunter2&application_name=x"
            .parse()
            .unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("application_name=x"), "{shown}");
    }

    #[test]
    fn options_reach_the_driver() {
        let url: PostgresUrl =
            "postgres://u:p@127.0.0.1:6543/db?options=-c%20search_path%3Dtenant_a"
                .parse()
                .unwrap();
        let options = url.connect_options();
        assert_eq!(options.get_host(), "127.0.0.1");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_username(), "u");
        assert_eq!(options.get_database(), Some("db"));
        assert_eq!(options.get_options(), Some("-c search_path=tenant_a"));
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        let cases = [
            ("postgres://u:pw1@h:notaport/db", "not a valid URL"),
            ("postgres://u:pw2@h/db?sslmode=sometimes", "sometimes"),
            (
                "postgres://u:pw3@h/db?pasword=x",
                "unknown parameter 'pasword'",
            ),
            ("mysql://u:pw4@h/db", "scheme"),
        ];
        for (text, expected) in cases {
            let err = PostgresUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("pw"), "{text}: {err}");
        }
    }
}

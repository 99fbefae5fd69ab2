//! The `IPINTEL_REDIS_URL` setting, which may carry a password.

use std::fmt;

/// A `redis://` URL. `Display` and `Debug` hide the password, so the URL
/// can be logged and shown in configuration errors.
#[derive(Clone)]
pub struct RedisUrl {
    text: String,
    shown: String,
}

/// Why a Redis URL was refused. The message never holds the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BadRedisUrl(String);

impl RedisUrl {
    /// Reads `redis://[user[:password]@]host[:port][/db]`. `rediss://`
    /// (TLS) is refused: this build speaks to Redis in the clear, which
    /// belongs on loopback or a private network.
    pub fn parse(text: &str) -> Result<Self, BadRedisUrl> {
        let url = url::Url::parse(text).map_err(|err| {
            BadRedisUrl(format!("not a URL ({err}); expected redis://host:port/db"))
        })?;
        match url.scheme() {
            "redis" => {}
            "rediss" => {
                return Err(BadRedisUrl(
                    "rediss:// (TLS) is not supported by this build; use redis:// on a \
                     private network"
                        .to_owned(),
                ))
            }
            other => {
                return Err(BadRedisUrl(format!(
                    "unsupported scheme '{other}://'; expected redis://host:port/db"
                )))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(BadRedisUrl("the URL names no host".to_owned()));
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(BadRedisUrl(format!(
                "the path must be a database number, not '/{db}'"
            )));
        }
        Ok(Self {
            shown: redacted(&url),
            text: text.to_owned(),
        })
    }

    /// The full text, password included: only for the client.
    pub(crate) fn expose(&self) -> &str {
        &self.text
    }
}

/// The URL with any password replaced by `***`: the one before the host
/// and a `password` query parameter, which the client reads too.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Cannot fail: the URL has a host, checked above.
        let _ = shown.set_password(Some("***"));
    }
    if url.query_pairs().any(|(name, _)| is_secret(&name)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret(&name) {
                    "***".into()
                } else {
                    value
                };
                (name.into_owned(), value.into_owned())
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

fn is_secret(name: &str) -> bool {
    name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("pass")
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let url = RedisUrl::parse("redis://quota:hunter2@127.0.0.1:6379/2").unwrap();
        assert_eq!(url.to_string(), "redis://quota:***@127.0.0.1:6379/2");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(url.expose().contains("hunter2"));

        let query = RedisUrl::parse("redis://127.0.0.1:6379/0?password=PWLEAK9&protocol=resp3");
        let query = query.unwrap();
        assert_eq!(
            query.to_string(),
            "redis://127.0.0.1:6379/0?password=***&protocol=resp3"
        );
        assert!(!format!("{query:?}").contains("PWLEAK9"));
    }

    #[test]
    fn other_schemes_paths_and_hostless_urls_are_refused() {
        for text in [
            "rediss://h:6379/0",
            "http://h:6379",
            "redis://h:6379/cache",
            "redis:///0",
            "127.0.0.1:6379",
        ] {
            assert!(RedisUrl::parse(text).is_err(), "{text} should be refused");
        }
        let err = RedisUrl::parse("redis://u:secret@h/zero").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

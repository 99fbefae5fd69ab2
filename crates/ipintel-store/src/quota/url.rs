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

/// The URL with any password replaced by `***`.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Cannot fail: the URL has a host, checked above.
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
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

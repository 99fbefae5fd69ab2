//! Per-client limit on self-service key creation (`POST /v1/keys`).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Above this many tracked clients, stale entries are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

/// A sliding-window limit: at most `per_window` creations per client within
/// any `window`. IPv6 clients are counted per /64, the usual allocation to
/// one host or site, so rotating addresses inside it does not help.
#[derive(Debug)]
pub(crate) struct CreationLimiter {
    per_window: usize,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl CreationLimiter {
    /// A limiter allowing `per_window` creations per client per `window`.
    pub(crate) fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window: usize::try_from(per_window).unwrap_or(usize::MAX),
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Records one creation by `client` at `now`, or refuses it with the
    /// time to wait until the oldest creation in the window expires.
    pub(crate) fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_window == 0 {
            return Err(self.window);
        }
        let bucket = bucket_of(client);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() > SWEEP_ABOVE {
            clients.retain(|_, stamps| stamps.back().is_some_and(|t| now - *t < self.window));
        }
        let stamps = clients.entry(bucket).or_default();
        while stamps.front().is_some_and(|t| now - *t >= self.window) {
            stamps.pop_front();
        }
        if stamps.len() >= self.per_window {
            let oldest = stamps.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now - oldest));
        }
        stamps.push_back(now);
        Ok(())
    }
}

/// The key a client is counted under: the address, or its /64 for IPv6.
pub(crate) fn bucket_of(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn allows_the_limit_then_refuses_with_wait_time() {
        let limiter = CreationLimiter::new(2, HOUR);
        let t0 = Instant::now();
        assert!(limiter.admit(ip("192.0.2.1"), t0).is_ok());
        assert!(limiter
            .admit(ip("192.0.2.1"), t0 + Duration::from_secs(60))
            .is_ok());
        let wait = limiter
            .admit(ip("192.0.2.1"), t0 + Duration::from_secs(600))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(3000));
    }

    #[test]
    fn window_slides() {
        let limiter = CreationLimiter::new(1, HOUR);
        let t0 = Instant::now();
        assert!(limiter.admit(ip("192.0.2.1"), t0).is_ok());
        assert!(limiter.admit(ip("192.0.2.1"), t0 + HOUR / 2).is_err());
        assert!(limiter.admit(ip("192.0.2.1"), t0 + HOUR).is_ok());
    }

    #[test]
    fn clients_are_counted_apart() {
        let limiter = CreationLimiter::new(1, HOUR);
        let t0 = Instant::now();
        assert!(limiter.admit(ip("192.0.2.1"), t0).is_ok());
        assert!(limiter.admit(ip("192.0.2.2"), t0).is_ok());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let limiter = CreationLimiter::new(1, HOUR);
        let t0 = Instant::now();
        assert!(limiter.admit(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(limiter.admit(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert!(limiter.admit(ip("2001:db8:1:3::1"), t0).is_ok());
    }

    #[test]
    fn zero_disables_creation() {
        let limiter = CreationLimiter::new(0, HOUR);
        assert_eq!(limiter.admit(ip("192.0.2.1"), Instant::now()), Err(HOUR));
    }
}

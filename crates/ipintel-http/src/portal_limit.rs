//! Per-client limit of the keyless portal lookups (`/v1/portal/ip/{ip}`).
//!
//! Two allowances per client: a steady rate with a burst (`per_minute`
//! lookups at once, then one every `60 s / per_minute`), and a count per UTC
//! day. A client is an address, or its /64 for IPv6 (see
//! [`crate::limiter::bucket_of`]). The state of a client is a few words, so
//! many clients cost little memory; it lives in memory only, so a restart
//! forgets it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipintel_store::SECS_PER_DAY;

use crate::limiter::bucket_of;

/// Above this many tracked clients, clients with nothing left to
/// remember are swept on insert.
const SWEEP_ABOVE: usize = 100_000;

/// What the limiter remembers of one client.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    /// When the rate allowance will be whole again (GCRA's theoretical
    /// arrival time): each lookup pushes it one interval further.
    full_at: Instant,
    /// The UTC day (days since 1970-01-01) `used_today` counts.
    day: i64,
    /// Lookups on `day`.
    used_today: u32,
}

/// Why a lookup was refused, with how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The per-minute rate; the wait is until one more lookup is allowed.
    Rate(Duration),
    /// The daily count; the wait is until 00:00 UTC.
    Daily(Duration),
    /// Portal lookups are turned off (a limit of 0).
    Disabled,
}

impl Refusal {
    /// Seconds to put in `Retry-After`, rounded up, at least 1.
    pub(crate) fn retry_after_secs(self) -> u64 {
        let wait = match self {
            Refusal::Rate(wait) | Refusal::Daily(wait) => wait,
            Refusal::Disabled => Duration::from_secs(3600),
        };
        (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
    }
}

/// The portal's limiter; share it in an `Arc`.
#[derive(Debug)]
pub(crate) struct PortalLimiter {
    per_day: u32,
    /// Time that one lookup uses of the rate allowance.
    interval: Duration,
    /// How far `full_at` may run ahead of now: the burst, less one.
    tolerance: Duration,
    clients: Mutex<HashMap<IpAddr, Allowance>>,
}

impl PortalLimiter {
    /// A limiter allowing `per_minute` lookups a minute (all at once at
    /// most) and `per_day` per UTC day to each client. Either at 0 turns
    /// portal lookups off.
    pub(crate) fn new(per_minute: u32, per_day: u32) -> Self {
        let interval = if per_minute == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(60) / per_minute
        };
        Self {
            per_day: if per_minute == 0 { 0 } else { per_day },
            interval,
            tolerance: interval * per_minute.saturating_sub(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one lookup by `client` at `now` (`now_unix` on the wall
    /// clock, for the UTC day), or refuses it without counting.
    pub(crate) fn admit(&self, client: IpAddr, now: Instant, now_unix: i64) -> Result<(), Refusal> {
        if self.per_day == 0 {
            return Err(Refusal::Disabled);
        }
        let today = now_unix.div_euclid(SECS_PER_DAY);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() > SWEEP_ABOVE {
            clients.retain(|_, a| a.day == today || a.full_at > now);
        }
        let allowance = clients.entry(bucket_of(client)).or_insert(Allowance {
            full_at: now,
            day: today,
            used_today: 0,
        });

        let start = allowance.full_at.max(now);
        let ahead = start - now;
        if ahead > self.tolerance {
            return Err(Refusal::Rate(ahead - self.tolerance));
        }
        if allowance.day != today {
            allowance.day = today;
            allowance.used_today = 0;
        }
        if allowance.used_today >= self.per_day {
            let left = (today + 1) * SECS_PER_DAY - now_unix;
            let left = u64::try_from(left).unwrap_or(0);
            return Err(Refusal::Daily(Duration::from_secs(left)));
        }
        allowance.full_at = start + self.interval;
        allowance.used_today += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_796_904_000; // 2026-12-10T12:00:00Z

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_of_the_minute_allowance_then_one_every_interval() {
        let limiter = PortalLimiter::new(3, 100);
        let t0 = Instant::now();
        let client = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(limiter.admit(client, t0, NOON), Ok(()));
        }
        assert_eq!(
            limiter.admit(client, t0, NOON),
            Err(Refusal::Rate(Duration::from_secs(20)))
        );
        let later = t0 + Duration::from_secs(20);
        assert_eq!(limiter.admit(client, later, NOON + 20), Ok(()));
        assert!(limiter.admit(client, later, NOON + 20).is_err());
    }

    #[test]
    fn the_daily_count_waits_for_midnight_utc() {
        let limiter = PortalLimiter::new(60, 2);
        let t0 = Instant::now();
        let client = ip("192.0.2.1");
        assert!(limiter.admit(client, t0, NOON).is_ok());
        assert!(limiter.admit(client, t0, NOON).is_ok());
        let refusal = limiter.admit(client, t0, NOON).unwrap_err();
        assert_eq!(refusal, Refusal::Daily(Duration::from_secs(12 * 3600)));
        assert_eq!(refusal.retry_after_secs(), 12 * 3600);
        let tomorrow = t0 + Duration::from_secs(12 * 3600);
        assert!(limiter.admit(client, tomorrow, NOON + 12 * 3600).is_ok());
    }

    #[test]
    fn a_refused_lookup_is_not_counted() {
        let limiter = PortalLimiter::new(1, 2);
        let t0 = Instant::now();
        let client = ip("192.0.2.1");
        assert!(limiter.admit(client, t0, NOON).is_ok());
        for _ in 0..5 {
            assert!(limiter.admit(client, t0, NOON).is_err());
        }
        let later = t0 + Duration::from_secs(60);
        assert!(limiter.admit(client, later, NOON + 60).is_ok());
    }

    #[test]
    fn clients_are_apart_and_ipv6_counts_per_slash_64() {
        let limiter = PortalLimiter::new(1, 10);
        let t0 = Instant::now();
        assert!(limiter.admit(ip("192.0.2.1"), t0, NOON).is_ok());
        assert!(limiter.admit(ip("192.0.2.2"), t0, NOON).is_ok());
        assert!(limiter.admit(ip("2001:db8:1:2::1"), t0, NOON).is_ok());
        assert!(limiter.admit(ip("2001:db8:1:2::99"), t0, NOON).is_err());
        assert!(limiter.admit(ip("2001:db8:1:3::1"), t0, NOON).is_ok());
    }

    #[test]
    fn zero_turns_the_portal_off() {
        for (minute, day) in [(0, 10), (10, 0)] {
            let limiter = PortalLimiter::new(minute, day);
            let refusal = limiter.admit(ip("192.0.2.1"), Instant::now(), NOON);
            assert_eq!(refusal, Err(Refusal::Disabled), "{minute} {day}");
        }
    }
}

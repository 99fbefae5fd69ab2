//! Daily quotas shared by several nodes through Redis.
//!
//! Without it ([`Accounts`](crate::Accounts) alone) each node enforces a
//! key's limit on its own count, so N nodes allow N times the limit. With
//! a [`SharedQuota`] attached, the limit is enforced on one counter per key
//! and UTC day in Redis:
//!
//! - **Exact mode** (limits up to [`EXACT_MAX_LIMIT`], the free plan
//!   among them): every counted request asks Redis atomically "add n if
//!   the total stays within the limit", so the limit is never exceeded,
//!   whichever node a request lands on. A batch is all or nothing.
//! - **Leased mode** (larger limits): a node takes a block of
//!   [`lease_block`] lookups at a time and spends it in memory; only the
//!   request that finds the block spent waits for Redis, one per key and
//!   node at a time. The total never exceeds the limit; instead up to
//!   nodes × block lookups may be refused early while they sit unspent in
//!   other nodes' blocks. Unspent blocks go back on graceful shutdown.
//!
//! "Never exceeded" holds while Redis answers within the timeout. A request
//! whose own Redis call fails or times out is decided by the node's
//! [`QuotaFallback`], as during an outage; after
//! [`FAILURES_BEFORE_DOWN`] failed calls in a row (one answer resets the
//! run) the node stops asking Redis on the request path altogether. A
//! background step then retries every second and, once Redis answers, adds
//! the lookups admitted meanwhile to the shared counters before going back
//! to them. The lookups a fallback admits are also added while Redis stays
//! in use.

mod redis;
mod url;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use self::redis::RedisCounters;
pub(crate) use self::redis::{RedisFailure, Take};
pub use self::url::{BadRedisUrl, RedisUrl};
use crate::day::UtcDay;
use crate::key::KeyId;
use crate::StoreError;

/// Largest daily limit counted exactly, one Redis round trip per request.
pub const EXACT_MAX_LIMIT: u64 = 1_000;

/// How often a node whose Redis is unreachable asks again.
pub const REDIS_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Failed Redis calls in a row that switch a node to its fallback: one
/// slow reply (a busy server, a lost packet) only sends its own request to
/// the fallback, instead of the whole node for a second or more.
pub(crate) const FAILURES_BEFORE_DOWN: u32 = 3;

/// The block a node leases at once for a key with `limit` lookups a day:
/// 1 % of the limit, at least 1 and at most 1,000.
pub fn lease_block(limit: u64) -> u64 {
    (limit / 100).clamp(1, 1_000)
}

/// What a node does about quotas while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaFallback {
    /// Each node enforces the whole remaining limit on its own count: up
    /// to N times the limit across N nodes, but no request is refused for
    /// the outage.
    Local,
    /// Each node enforces its share, the remaining limit divided by this
    /// many nodes (rounded up).
    Share(u64),
    /// Metered requests are refused (503, `Retry-After`) until Redis
    /// answers; lookups already leased are still spent.
    Closed,
}

impl fmt::Display for QuotaFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Share(nodes) => write!(f, "share:{nodes}"),
            Self::Closed => f.write_str("closed"),
        }
    }
}

impl FromStr for QuotaFallback {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "local" => return Ok(Self::Local),
            "closed" => return Ok(Self::Closed),
            _ => {}
        }
        let nodes = text
            .strip_prefix("share:")
            .ok_or_else(|| "expected local, share:N or closed".to_owned())?;
        match nodes.parse::<u64>() {
            Ok(nodes) if nodes >= 1 => Ok(Self::Share(nodes)),
            _ => Err(format!("'{nodes}' is not a node count of at least 1")),
        }
    }
}

/// Settings of the shared quota.
#[derive(Debug, Clone)]
pub struct SharedQuotaSettings {
    /// The Redis server (`IPINTEL_REDIS_URL`).
    pub url: RedisUrl,
    /// Prefix of every Redis key written (`IPINTEL_REDIS_PREFIX`, default
    /// `ipintel:`), so tests and deployments sharing a server keep apart.
    pub prefix: String,
    /// Longest wait for one Redis answer (`IPINTEL_REDIS_TIMEOUT_MS`).
    pub timeout: Duration,
    /// What to do while Redis is unreachable (`IPINTEL_QUOTA_FALLBACK`).
    pub fallback: QuotaFallback,
}

impl SharedQuotaSettings {
    /// Default prefix of the Redis keys.
    pub const DEFAULT_PREFIX: &'static str = "ipintel:";
    /// Default timeout of one Redis call: well above a loaded server's
    /// usual reply time, and still short enough that the request it holds
    /// up is served by the fallback without a client noticing much.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

    /// Settings for `url` with every default.
    pub fn new(url: RedisUrl) -> Self {
        Self {
            url,
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            fallback: QuotaFallback::Local,
        }
    }
}

/// Counters of the shared quota since start, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaStats {
    /// Whether Redis is in use now (false: the fallback decides).
    pub redis_up: bool,
    /// Redis calls answered.
    pub redis_calls_ok: u64,
    /// Redis calls failed or timed out.
    pub redis_calls_failed: u64,
    /// Metered requests decided by the fallback while Redis was down.
    pub fallback_decisions: u64,
    /// Blocks leased for keys in leased mode.
    pub leases: u64,
    /// Counters seeded from the store's count (a new day, or Redis lost
    /// them): every attempt Redis answered, including those that found
    /// another node's seed first.
    pub seeds: u64,
}

/// The connection to Redis and whether it is in use; attach it to the
/// [`Accounts`](crate::Accounts) of a node with
/// [`Accounts::attach_shared_quota`](crate::Accounts::attach_shared_quota).
pub struct SharedQuota {
    counters: RedisCounters,
    url: RedisUrl,
    fallback: QuotaFallback,
    up: AtomicBool,
    /// Redis calls failed in a row since the last answer.
    failures: AtomicU32,
    /// Set when some key holds lookups admitted by the fallback that are
    /// not yet in Redis.
    unsynced: AtomicBool,
    down_since: Mutex<Option<Instant>>,
    calls_ok: AtomicU64,
    calls_failed: AtomicU64,
    fallback_decisions: AtomicU64,
    leases: AtomicU64,
    seeds: AtomicU64,
}

impl fmt::Debug for SharedQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedQuota")
            .field("url", &self.url)
            .field("fallback", &self.fallback)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl SharedQuota {
    /// Prepares the connection and asks Redis once. An unreachable Redis
    /// is not an error: the node starts in fallback mode and keeps asking.
    pub async fn connect(settings: SharedQuotaSettings) -> Result<Arc<SharedQuota>, StoreError> {
        let counters = RedisCounters::new(&settings.url, &settings.prefix, settings.timeout)
            .map_err(|error| StoreError::SharedQuota(error.to_string()))?;
        let quota = Arc::new(SharedQuota {
            counters,
            url: settings.url,
            fallback: settings.fallback,
            up: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            unsynced: AtomicBool::new(false),
            down_since: Mutex::new(None),
            calls_ok: AtomicU64::new(0),
            calls_failed: AtomicU64::new(0),
            fallback_decisions: AtomicU64::new(0),
            leases: AtomicU64::new(0),
            seeds: AtomicU64::new(0),
        });
        match quota.ping().await {
            Ok(()) => tracing::info!(
                redis = %quota.url,
                fallback = %quota.fallback,
                "quotas shared through Redis"
            ),
            Err(error) => quota.mark_down(&error),
        }
        Ok(quota)
    }

    /// Whether requests ask Redis (false: the fallback decides).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The mode in force while Redis is unreachable.
    pub fn fallback(&self) -> QuotaFallback {
        self.fallback
    }

    /// The counters since start.
    pub fn stats(&self) -> QuotaStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        QuotaStats {
            redis_up: self.is_up(),
            redis_calls_ok: read(&self.calls_ok),
            redis_calls_failed: read(&self.calls_failed),
            fallback_decisions: read(&self.fallback_decisions),
            leases: read(&self.leases),
            seeds: read(&self.seeds),
        }
    }

    /// Stops asking Redis on the request path; logs the switch once.
    pub(crate) fn mark_down(&self, error: &RedisFailure) {
        if self.up.swap(false, Ordering::AcqRel) {
            *self
                .down_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            tracing::warn!(
                %error,
                redis = %self.url,
                fallback = %self.fallback,
                "Redis unreachable: quotas fall back until it answers (retried every second)"
            );
        }
    }

    /// Goes back to Redis; logs the switch once.
    pub(crate) fn mark_up(&self, reconciled_lookups: u64) {
        if !self.up.swap(true, Ordering::AcqRel) {
            let since = self
                .down_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let down_ms = since.map_or(0, |at| {
                u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)
            });
            tracing::info!(
                redis = %self.url,
                down_ms,
                reconciled_lookups,
                "Redis answers again: quotas shared again"
            );
        }
    }

    pub(crate) fn note_fallback(&self) {
        self.fallback_decisions.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that lookups were admitted by the fallback.
    pub(crate) fn note_unsynced(&self) {
        if !self.unsynced.load(Ordering::Relaxed) {
            self.unsynced.store(true, Ordering::Release);
        }
    }

    /// Takes the flag set by [`SharedQuota::note_unsynced`].
    pub(crate) fn take_unsynced(&self) -> bool {
        self.unsynced.swap(false, Ordering::AcqRel)
    }

    /// Counts a call's outcome. An answer ends a run of failures; the
    /// [`FAILURES_BEFORE_DOWN`]th failure in a row marks Redis down.
    fn note<T>(&self, result: Result<T, RedisFailure>) -> Result<T, RedisFailure> {
        match &result {
            Ok(_) => {
                self.failures.store(0, Ordering::Relaxed);
                self.calls_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.calls_failed.fetch_add(1, Ordering::Relaxed);
                let in_a_row = self
                    .failures
                    .fetch_add(1, Ordering::AcqRel)
                    .saturating_add(1);
                if in_a_row >= FAILURES_BEFORE_DOWN {
                    self.mark_down(error);
                }
            }
        }
        result
    }

    pub(crate) async fn take(
        &self,
        key: &KeyId,
        day: UtcDay,
        wanted: u64,
        at_least: u64,
        limit: u64,
    ) -> Result<Take, RedisFailure> {
        let taken = self.note(self.counters.take(key, day, wanted, at_least, limit).await)?;
        if matches!(taken, Take::Granted { .. }) && wanted > at_least {
            self.leases.fetch_add(1, Ordering::Relaxed);
        }
        Ok(taken)
    }

    pub(crate) async fn add(
        &self,
        key: &KeyId,
        day: UtcDay,
        n: u64,
    ) -> Result<Option<u64>, RedisFailure> {
        self.note(self.counters.add(key, day, n).await)
    }

    pub(crate) async fn seed(
        &self,
        key: &KeyId,
        day: UtcDay,
        count: u64,
    ) -> Result<(), RedisFailure> {
        self.note(self.counters.seed(key, day, count).await)?;
        self.seeds.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) async fn give_back(
        &self,
        key: &KeyId,
        day: UtcDay,
        n: u64,
    ) -> Result<u64, RedisFailure> {
        self.note(self.counters.give_back(key, day, n).await)
    }

    pub(crate) async fn ping(&self) -> Result<(), RedisFailure> {
        // A ping while down is counted but must not log the outage again.
        self.note(self.counters.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_one_percent_within_bounds() {
        assert_eq!(lease_block(1_001), 10);
        assert_eq!(lease_block(10_000), 100);
        assert_eq!(lease_block(50), 1);
        assert_eq!(lease_block(10_000_000), 1_000);
    }

    #[test]
    fn fallback_modes_read_and_print() {
        for (text, mode) in [
            ("local", QuotaFallback::Local),
            ("Closed", QuotaFallback::Closed),
            ("share:3", QuotaFallback::Share(3)),
        ] {
            assert_eq!(text.parse::<QuotaFallback>(), Ok(mode));
        }
        assert_eq!(QuotaFallback::Share(4).to_string(), "share:4");
        for bad in ["share:0", "share:", "share:x", "open", ""] {
            assert!(bad.parse::<QuotaFallback>().is_err(), "{bad}");
        }
    }
}

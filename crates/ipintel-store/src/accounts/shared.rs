//! Counting against a quota shared by several nodes (see [`crate::quota`]).
//!
//! Every path here runs only with a [`SharedQuota`] attached; without one
//! [`Accounts::charge`] is [`Accounts::consume`], with no lock and no
//! allocation added.

use std::sync::Arc;
use std::time::Duration;

use super::entry::{KeyEntry, MAX_COUNT};
use super::{quota, Accounts, KeyHandle, Quota};
use crate::day::UtcDay;
use crate::quota::{lease_block, QuotaFallback, RedisFailure, SharedQuota, Take, EXACT_MAX_LIMIT};
use crate::{now_unix, AuthError};

/// `Retry-After` of a request refused by the `closed` fallback: about when
/// the next retry of Redis is due.
const CLOSED_RETRY_SECS: u64 = 2;

/// Longest wait for the store's count when seeding a counter, and for the
/// key's lease lock held by the request doing so: a frozen database read
/// sends the waiting requests to the fallback instead of stalling them.
const SEED_WAIT: Duration = Duration::from_secs(3);

/// How a shared count turned out.
enum Decision {
    /// Counted on `day`; `used` is the total as this node now knows it.
    Admitted { used: u64, day: UtcDay },
    /// Refused without counting; `used` and `day` as for `Admitted`.
    Refused { used: u64, day: UtcDay },
    /// Redis is not in use, or the request's own call failed: the
    /// fallback decides.
    Unavailable,
}

/// Why a counter could not be seeded.
#[derive(Debug, thiserror::Error)]
pub(super) enum SeedFailure {
    /// The store's count took longer than [`SEED_WAIT`].
    #[error("the store's count took longer than {} s", SEED_WAIT.as_secs())]
    StoreTimeout,
    /// Redis gave no answer.
    #[error(transparent)]
    Redis(#[from] RedisFailure),
}

impl Accounts {
    /// Shares this node's quotas with every node attached to the same
    /// Redis from now on. Attach before [`Accounts::spawn_background`],
    /// whose task then also retries Redis and reconciles. Returns the quota
    /// back if one is attached already.
    pub fn attach_shared_quota(&self, shared: Arc<SharedQuota>) -> Result<(), Arc<SharedQuota>> {
        self.shared.set(shared)
    }

    /// The shared quota, if one is attached.
    pub fn shared_quota(&self) -> Option<&Arc<SharedQuota>> {
        self.shared.get()
    }

    /// Counts `n` lookups against today's quota (the UTC day of
    /// `now_unix`) or refuses without counting, like
    /// [`Accounts::consume`], but against the quota shared by every node
    /// when a [`SharedQuota`] is attached. This is what the request path
    /// calls.
    pub async fn charge(&self, key: &KeyHandle, n: u64, now_unix: i64) -> Result<Quota, AuthError> {
        let Some(shared) = self.shared.get() else {
            return self.consume(key, n, now_unix);
        };
        // Boxed so that the shared state machine, many times the size of
        // everything else here, is not part of every request's future
        // when no Redis is configured: 48 bytes instead of 1,304 (measured
        // by `a_charge_without_redis_keeps_a_small_future`).
        Box::pin(self.charge_shared(shared, key, n, now_unix)).await
    }

    /// [`Accounts::charge`] with a shared quota attached.
    async fn charge_shared(
        &self,
        shared: &SharedQuota,
        key: &KeyHandle,
        n: u64,
        now_unix: i64,
    ) -> Result<Quota, AuthError> {
        let entry = &key.entry;
        if entry.is_revoked() {
            return Err(AuthError::Revoked);
        }
        if n == 0 {
            return Ok(self.quota(key, now_unix));
        }
        let day = UtcDay::from_unix(now_unix);
        let limit = entry.daily_limit();
        let decision = if limit <= EXACT_MAX_LIMIT {
            self.charge_exact(shared, entry, day, n, limit).await
        } else {
            self.charge_leased(shared, entry, day, n, limit).await
        };
        match decision {
            Decision::Admitted { used, day } => {
                self.count_admitted(entry, day, n);
                Ok(quota(limit, used, day))
            }
            Decision::Refused { used, day } => Err(exceeded(quota(limit, used, day), now_unix)),
            Decision::Unavailable => self.charge_fallback(shared, entry, day, n, now_unix),
        }
    }

    /// Every request asks Redis "add n if it fits" on the counter of its
    /// own day (a request stamped just before midnight that arrives late
    /// is still exact against that day's counter).
    async fn charge_exact(
        &self,
        shared: &SharedQuota,
        entry: &KeyEntry,
        day: UtcDay,
        n: u64,
        limit: u64,
    ) -> Decision {
        if let Some(refused) = spent_out(entry, day, limit) {
            return refused;
        }
        if !shared.is_up() {
            return Decision::Unavailable;
        }
        let mut taken = shared.take(&entry.id, day, n, n, limit).await;
        if matches!(taken, Ok(Take::Missing)) {
            // One request per key and node seeds; the others find it done.
            let Some(_seeding) = lock_share(entry).await else {
                return Decision::Unavailable;
            };
            taken = shared.take(&entry.id, day, n, n, limit).await;
            // A counter gone again right after a seed (evicted, or Redis
            // restarted in between) is seeded once more before giving up.
            for _ in 0..2 {
                if !matches!(taken, Ok(Take::Missing)) {
                    break;
                }
                if self.seed(shared, entry, day).await.is_err() {
                    return Decision::Unavailable;
                }
                taken = shared.take(&entry.id, day, n, n, limit).await;
            }
        }
        match taken {
            Ok(Take::Granted { total, .. }) => {
                entry.share.saw(day, total);
                Decision::Admitted { used: total, day }
            }
            Ok(Take::Refused { total }) => {
                entry.share.saw(day, total);
                Decision::Refused { used: total, day }
            }
            // Seeded twice and gone each time: Redis is not keeping what
            // it is given.
            Ok(Take::Missing) | Err(_) => Decision::Unavailable,
        }
    }

    /// Spends the node's block; only the request that finds it spent asks
    /// Redis for another, and the others of this key wait for that one.
    ///
    /// The day counted is [`KeyShare::current_day`]: a request stamped
    /// with an earlier day than the block this node holds is counted as
    /// one of the block's day, so it never leases its old day's quota.
    async fn charge_leased(
        &self,
        shared: &SharedQuota,
        entry: &KeyEntry,
        day: UtcDay,
        n: u64,
        limit: u64,
    ) -> Decision {
        let share = &entry.share;
        let day = share.current_day(day);
        if share.spend(day, n) {
            return admitted(entry, day);
        }
        if let Some(refused) = spent_out(entry, day, limit) {
            return refused;
        }
        if !shared.is_up() {
            return Decision::Unavailable;
        }
        let Some(_leasing) = lock_share(entry).await else {
            return Decision::Unavailable;
        };
        // Another request may have moved the key on to a later day while
        // this one waited.
        let day = share.current_day(day);
        let mut seeds = 0;
        // Each turn spends, or takes a block (bounded by the limit), or ends.
        loop {
            if share.spend(day, n) {
                return admitted(entry, day);
            }
            if let Some(refused) = spent_out(entry, day, limit) {
                return refused;
            }
            if !shared.is_up() {
                return Decision::Unavailable;
            }
            let needed = n.saturating_sub(share.block(day));
            let wanted = needed.max(lease_block(limit));
            match shared.take(&entry.id, day, wanted, needed, limit).await {
                Ok(Take::Granted { granted, total }) => {
                    share.saw(day, total);
                    if !share.lease(day, granted) {
                        // Unreachable while the lock is held (only a lease
                        // moves the block to a later day), but should it
                        // happen, the lookups just taken serve this request
                        // instead of ever joining another day's block.
                        return Decision::Admitted { used: total, day };
                    }
                }
                Ok(Take::Refused { total }) => {
                    share.saw(day, total);
                    return Decision::Refused {
                        used: share.used_estimate(day),
                        day,
                    };
                }
                // Seeded once more if the counter is gone right after a
                // seed (evicted, or Redis restarted in between).
                Ok(Take::Missing) if seeds < 2 => {
                    seeds += 1;
                    if self.seed(shared, entry, day).await.is_err() {
                        return Decision::Unavailable;
                    }
                }
                Ok(Take::Missing) | Err(_) => return Decision::Unavailable,
            }
        }
    }

    /// Creates the key's counter for `day` in Redis from the best count
    /// this node knows: the store's total plus its unwritten counts and its
    /// unspent block, or the total it last saw in Redis if higher (Redis
    /// lost its data). Another node's seed, if first, stands.
    ///
    /// A store that fails at once is replaced by this node's own count; one
    /// that does not answer within [`SEED_WAIT`] fails the seed, so the
    /// request is decided by the fallback rather than waiting on.
    async fn seed(
        &self,
        shared: &SharedQuota,
        entry: &KeyEntry,
        day: UtcDay,
    ) -> Result<(), SeedFailure> {
        let read = self.store.usage_between(&entry.id, day, day);
        let stored = match tokio::time::timeout(SEED_WAIT, read).await {
            Ok(Ok(count)) => count,
            Ok(Err(error)) => {
                tracing::warn!(
                    %error,
                    key_id = %entry.id,
                    "store unreadable while seeding a shared quota counter; seeding from memory"
                );
                entry.used_on(day)
            }
            Err(_) => {
                tracing::warn!(
                    key_id = %entry.id,
                    wait_ms = SEED_WAIT.as_millis(),
                    "store too slow while seeding a shared quota counter; the fallback decides"
                );
                return Err(SeedFailure::StoreTimeout);
            }
        };
        let unwritten = entry.pending_between(day, day) + self.retry_between(&entry.id, day, day);
        let known = (stored + unwritten + entry.share.block(day)).max(entry.share.seen(day));
        Ok(shared.seed(&entry.id, day, known).await?)
    }

    /// Decides while Redis is not in use, by the configured fallback.
    fn charge_fallback(
        &self,
        shared: &SharedQuota,
        entry: &KeyEntry,
        day: UtcDay,
        n: u64,
        now_unix: i64,
    ) -> Result<Quota, AuthError> {
        shared.note_fallback();
        // Fallback counts keep to one day: a late request is the later day's.
        let day = entry.share.current_day(day);
        let limit = entry.daily_limit();
        let room = limit.saturating_sub(entry.share.seen(day));
        let allowance = match shared.fallback() {
            QuotaFallback::Local => room,
            QuotaFallback::Share(nodes) => room.div_ceil(nodes),
            QuotaFallback::Closed => {
                return Err(AuthError::QuotaUnavailable {
                    retry_after_secs: CLOSED_RETRY_SECS,
                })
            }
        };
        let (counted, used) = match entry.share.try_unsynced(day, n, allowance) {
            Ok(total) => (true, total),
            Err(used) => (false, used),
        };
        let standing = Quota {
            limit,
            remaining: allowance.saturating_sub(used),
            reset_unix: day.next_start_unix(),
        };
        if !counted {
            return Err(exceeded(standing, now_unix));
        }
        shared.note_unsynced();
        self.count_admitted(entry, day, n);
        Ok(standing)
    }

    /// Counts admitted lookups on this node: its view of the day, and the
    /// delta the next flush writes to the store.
    fn count_admitted(&self, entry: &KeyEntry, day: UtcDay, n: u64) {
        let counted_day = entry
            .try_count(day, n, MAX_COUNT)
            .map_or(day, |(counted_day, _)| counted_day);
        self.record(entry, counted_day, n);
    }

    /// The background step, every second with a shared quota: while Redis
    /// is down, asks it again and, once it answers, adds the lookups the
    /// fallback admitted before going back to it; while up, adds any such
    /// lookups admitted since.
    pub(crate) async fn sync_shared_quota(&self) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        if shared.is_up() {
            if shared.take_unsynced() && self.reconcile(shared).await.is_err() {
                shared.note_unsynced();
            }
            return;
        }
        if shared.ping().await.is_err() {
            return;
        }
        if let Ok(reconciled) = self.reconcile(shared).await {
            shared.mark_up(reconciled);
        }
    }

    /// The cached keys that `keep` picks, taken out of the map so that
    /// no guard is held across the awaits that follow.
    fn cached_where(&self, keep: impl Fn(&KeyEntry) -> bool) -> Vec<Arc<KeyEntry>> {
        self.keys
            .pin()
            .values()
            .filter(|entry| keep(entry))
            .cloned()
            .collect()
    }

    /// Adds today's fallback counts of every key to its shared counter.
    /// Returns the lookups added. A missing counter is seeded instead: the
    /// store's count already holds those lookups.
    async fn reconcile(&self, shared: &SharedQuota) -> Result<u64, SeedFailure> {
        let day = UtcDay::from_unix(now_unix());
        let waiting = self.cached_where(|entry| entry.share.unsynced(day) > 0);
        let mut added = 0;
        for entry in waiting {
            let count = entry.share.unsynced(day);
            match shared.add(&entry.id, day, count).await? {
                Some(total) => entry.share.saw(day, total),
                None => self.seed(shared, &entry, day).await?,
            }
            entry.share.synced(day, count);
            added += count;
        }
        Ok(added)
    }

    /// Gives every unspent leased lookup of today back to Redis, so other
    /// nodes can use it (on graceful shutdown). Best effort: what cannot be
    /// returned stays counted as used until the day ends.
    pub async fn return_leases(&self) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        if !shared.is_up() {
            return;
        }
        let day = UtcDay::from_unix(now_unix());
        let holding = self.cached_where(|entry| entry.share.block(day) > 0);
        let mut returned = 0;
        for entry in holding {
            let unspent = entry.share.take_block(day);
            match shared.give_back(&entry.id, day, unspent).await {
                Ok(back) => returned += back,
                Err(error) => {
                    tracing::warn!(%error, "unspent quota blocks not returned to Redis");
                    break;
                }
            }
        }
        if returned > 0 {
            tracing::info!(
                returned_lookups = returned,
                "unspent quota blocks returned to Redis"
            );
        }
    }
}

/// A refusal without a round trip once this node has seen the shared
/// counter at the limit: it only grows during the day, so a key that keeps
/// asking after its quota is spent costs Redis nothing. (A block returned
/// later by a node shutting down is then left to nodes that had not seen
/// the counter full.)
fn spent_out(entry: &KeyEntry, day: UtcDay, limit: u64) -> Option<Decision> {
    (entry.share.seen(day) >= limit).then(|| Decision::Refused {
        used: entry.share.used_estimate(day),
        day,
    })
}

/// Admitted from the block of `day`.
fn admitted(entry: &KeyEntry, day: UtcDay) -> Decision {
    Decision::Admitted {
        used: entry.share.used_estimate(day),
        day,
    }
}

/// The key's lease lock, or `None` after [`SEED_WAIT`]: the holder is
/// stuck seeding on a frozen store, and this request goes to the fallback.
async fn lock_share(entry: &KeyEntry) -> Option<tokio::sync::MutexGuard<'_, ()>> {
    tokio::time::timeout(SEED_WAIT, entry.share.lease.lock())
        .await
        .ok()
}

/// The refusal of a request that `standing` does not allow.
pub(super) fn exceeded(standing: Quota, now_unix: i64) -> AuthError {
    let retry_after_secs = u64::try_from(standing.reset_unix - now_unix)
        .unwrap_or(0)
        .max(1);
    AuthError::QuotaExceeded {
        quota: standing,
        retry_after_secs,
    }
}

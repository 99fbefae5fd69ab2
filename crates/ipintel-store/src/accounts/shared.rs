//! Counting against a quota shared by several nodes (see [`crate::quota`]).
//!
//! Every path here runs only with a [`SharedQuota`] attached; without one
//! [`Accounts::charge`] is [`Accounts::consume`], with no lock and no
//! allocation added.

use std::sync::Arc;

use super::entry::{KeyEntry, MAX_COUNT};
use super::{quota, Accounts, KeyHandle, Quota};
use crate::day::UtcDay;
use crate::quota::{lease_block, QuotaFallback, RedisFailure, SharedQuota, Take, EXACT_MAX_LIMIT};
use crate::{now_unix, AuthError};

/// `Retry-After` of a request refused by the `closed` fallback: about when
/// the next retry of Redis is due.
const CLOSED_RETRY_SECS: u64 = 2;

/// How a shared count turned out.
enum Decision {
    /// Counted; `used` is the total as this node now knows it.
    Admitted { used: u64 },
    /// Refused without counting; `used` as for `Admitted`.
    Refused { used: u64 },
    /// Redis is not in use (down, or it just failed): the fallback decides.
    Unavailable,
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
            Decision::Admitted { used } => {
                self.count_admitted(entry, day, n);
                Ok(quota(limit, used, day))
            }
            Decision::Refused { used } => Err(exceeded(quota(limit, used, day), now_unix)),
            Decision::Unavailable => self.charge_fallback(shared, entry, day, n, now_unix),
        }
    }

    /// Every request asks Redis "add n if it fits".
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
            let _seeding = entry.share.lease.lock().await;
            taken = shared.take(&entry.id, day, n, n, limit).await;
            if matches!(taken, Ok(Take::Missing)) {
                taken = match self.seed(shared, entry, day).await {
                    Ok(()) => shared.take(&entry.id, day, n, n, limit).await,
                    Err(failure) => Err(failure),
                };
            }
        }
        match taken {
            Ok(Take::Granted { total, .. }) => {
                entry.share.saw(day, total);
                Decision::Admitted { used: total }
            }
            Ok(Take::Refused { total }) => {
                entry.share.saw(day, total);
                Decision::Refused { used: total }
            }
            // Seeded and gone at once: Redis is not keeping what it is given.
            Ok(Take::Missing) | Err(_) => Decision::Unavailable,
        }
    }

    /// Spends the node's block; only the request that finds it spent asks
    /// Redis for another, and the others of this key wait for that one.
    async fn charge_leased(
        &self,
        shared: &SharedQuota,
        entry: &KeyEntry,
        day: UtcDay,
        n: u64,
        limit: u64,
    ) -> Decision {
        let share = &entry.share;
        if share.spend(day, n) {
            return Decision::Admitted {
                used: share.used_estimate(day),
            };
        }
        if let Some(refused) = spent_out(entry, day, limit) {
            return refused;
        }
        if !shared.is_up() {
            return Decision::Unavailable;
        }
        let _leasing = share.lease.lock().await;
        let mut seeded = false;
        // Each turn spends, or takes a block (bounded by the limit), or ends.
        loop {
            if share.spend(day, n) {
                return Decision::Admitted {
                    used: share.used_estimate(day),
                };
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
                    share.lease(day, granted);
                }
                Ok(Take::Refused { total }) => {
                    share.saw(day, total);
                    return Decision::Refused {
                        used: share.used_estimate(day),
                    };
                }
                Ok(Take::Missing) if !seeded => {
                    seeded = true;
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
    async fn seed(
        &self,
        shared: &SharedQuota,
        entry: &KeyEntry,
        day: UtcDay,
    ) -> Result<(), RedisFailure> {
        let stored = match self.store.usage_between(&entry.id, day, day).await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(
                    %error,
                    key_id = %entry.id,
                    "store unreadable while seeding a shared quota counter; seeding from memory"
                );
                entry.used_on(day)
            }
        };
        let unwritten = entry.pending_between(day, day) + self.retry_between(&entry.id, day, day);
        let known = (stored + unwritten + entry.share.block(day)).max(entry.share.seen(day));
        shared.seed(&entry.id, day, known).await
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

    /// Adds today's fallback counts of every key to its shared counter.
    /// Returns the lookups added. A missing counter is seeded instead: the
    /// store's count already holds those lookups.
    async fn reconcile(&self, shared: &SharedQuota) -> Result<u64, RedisFailure> {
        let day = UtcDay::from_unix(now_unix());
        let waiting: Vec<Arc<KeyEntry>> = self
            .keys
            .pin()
            .values()
            .filter(|entry| entry.share.unsynced(day) > 0)
            .cloned()
            .collect();
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
        let holding: Vec<Arc<KeyEntry>> = self
            .keys
            .pin()
            .values()
            .filter(|entry| entry.share.block(day) > 0)
            .cloned()
            .collect();
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
    })
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

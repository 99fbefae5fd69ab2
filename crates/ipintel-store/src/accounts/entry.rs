//! One cached key: its hash, plan, limit and lock-free day counters.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::day::UtcDay;
use crate::key::{KeyId, SecretHash};
use crate::plan::{Plan, PlanLimits};
use crate::store::StoredKey;

/// Bits of a packed word that hold a count; the rest hold the day number.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Largest count a packed word holds (about 10^12): every limit is capped to it.
pub(crate) const MAX_COUNT: u64 = COUNT_MASK;

fn pack(day: u64, count: u64) -> u64 {
    (day << COUNT_BITS) | (count & COUNT_MASK)
}

fn unpack(word: u64) -> (u64, u64) {
    (word >> COUNT_BITS, word & COUNT_MASK)
}

fn day_number(day: UtcDay) -> u64 {
    // `UtcDay` is clamped to 0..=2_932_896, which fits the 24 day bits.
    u64::try_from(day.days()).unwrap_or(0)
}

fn utc_day(number: u64) -> UtcDay {
    UtcDay::from_days(i64::try_from(number).unwrap_or(i64::MAX))
}

/// Lookups counted for one UTC day, day and count packed in one atomic word
/// so a day rollover and an increment can never interleave.
pub(super) struct DayCounter(AtomicU64);

impl DayCounter {
    fn new(day: u64, count: u64) -> Self {
        Self(AtomicU64::new(pack(day, count.min(MAX_COUNT))))
    }

    /// Count on `day`. A later day than the stored one starts at zero; an
    /// earlier one (clock stepped back) still reads the stored day.
    fn used(&self, day: u64) -> u64 {
        let (stored, count) = unpack(self.0.load(Ordering::Acquire));
        if day > stored {
            0
        } else {
            count
        }
    }

    /// Adds `n` if the total stays within `limit`. Returns the day counted
    /// and the new total, or the current total when refused.
    fn try_add(&self, day: u64, n: u64, limit: u64) -> Result<(u64, u64), u64> {
        let limit = limit.min(MAX_COUNT);
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let (stored, count) = unpack(current);
            let (day, used) = if day > stored {
                (day, 0)
            } else {
                (stored, count)
            };
            let total = match used.checked_add(n) {
                Some(total) if total <= limit => total,
                _ => return Err(used),
            };
            match self.0.compare_exchange_weak(
                current,
                pack(day, total),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok((day, total)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Raises the count of `day` to at least `total` (a later day replaces
    /// the stored one; an earlier one changes nothing).
    fn raise(&self, day: u64, total: u64) {
        let total = total.min(MAX_COUNT);
        self.update(|stored, count| match day.cmp(&stored) {
            std::cmp::Ordering::Greater => Some(pack(day, total)),
            std::cmp::Ordering::Equal if total > count => Some(pack(day, total)),
            _ => None,
        });
    }

    /// Takes `n` from the count of `day`, all or nothing: false when the
    /// count is for another day or smaller than `n`.
    fn spend(&self, day: u64, n: u64) -> bool {
        self.update(|stored, count| (stored == day && count >= n).then(|| pack(day, count - n)))
            .is_some()
    }

    /// Takes away up to `n` from the count of `day`; another day's count
    /// is left alone.
    fn sub(&self, day: u64, n: u64) {
        self.update(|stored, count| {
            (stored == day && n > 0).then(|| pack(day, count.saturating_sub(n)))
        });
    }

    /// Adds `n` to the count of exactly `day` if the total stays within
    /// `limit`; a later day than the stored one starts from zero. An
    /// earlier day is refused (`Err(None)`) and changes nothing, so one
    /// day's lookups never land in another's count. `Err(Some(total))`:
    /// over the limit.
    fn try_add_on(&self, day: u64, n: u64, limit: u64) -> Result<u64, Option<u64>> {
        let limit = limit.min(MAX_COUNT);
        let mut refused = None;
        let replaced = self.update(|stored, count| {
            let used = match day.cmp(&stored) {
                std::cmp::Ordering::Less => return None,
                std::cmp::Ordering::Equal => count,
                std::cmp::Ordering::Greater => 0,
            };
            match used.checked_add(n) {
                Some(total) if total <= limit => Some(pack(day, total)),
                _ => {
                    refused = Some(used);
                    None
                }
            }
        });
        match replaced {
            Some(word) => {
                let (stored, count) = unpack(word);
                Ok(if stored == day { count + n } else { n })
            }
            None => Err(refused),
        }
    }

    /// The day of the stored count.
    fn day(&self) -> u64 {
        unpack(self.0.load(Ordering::Acquire)).0
    }

    /// The count of exactly `day` (0 for any other day).
    fn on(&self, day: u64) -> u64 {
        let (stored, count) = unpack(self.0.load(Ordering::Acquire));
        if stored == day {
            count
        } else {
            0
        }
    }

    /// Applies `next` (stored day, count) -> new word until it wins or
    /// declines; returns the word it replaced.
    fn update(&self, mut next: impl FnMut(u64, u64) -> Option<u64>) -> Option<u64> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let (stored, count) = unpack(current);
            let word = next(stored, count)?;
            match self
                .0
                .compare_exchange_weak(current, word, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(current),
                Err(actual) => current = actual,
            }
        }
    }
}

/// A key's part of the shared quota (used only with a
/// [`SharedQuota`](crate::SharedQuota) attached; a few idle words otherwise).
pub(crate) struct KeyShare {
    /// The shared counter as last seen in Redis (or the store's count
    /// when the key was loaded): the base of the fallback.
    seen: DayCounter,
    /// Lookups leased from Redis and not yet spent (leased mode).
    block: DayCounter,
    /// Lookups admitted by the fallback and not yet added in Redis.
    unsynced: DayCounter,
    /// Held while leasing or seeding, so one request per key and node
    /// waits for Redis and the others wait for it.
    pub(crate) lease: tokio::sync::Mutex<()>,
}

impl KeyShare {
    fn new(day: u64, count: u64) -> Self {
        Self {
            seen: DayCounter::new(day, count),
            block: DayCounter::new(0, 0),
            unsynced: DayCounter::new(0, 0),
            lease: tokio::sync::Mutex::const_new(()),
        }
    }

    /// The shared total last seen for exactly `day` (0 once a later day
    /// was seen: that day's total says nothing of this one).
    pub(crate) fn seen(&self, day: UtcDay) -> u64 {
        self.seen.on(day_number(day))
    }

    /// The day a request stamped `day` is counted on in leased mode and
    /// by the fallback: its own, or the latest day this node already
    /// holds a shared total, a block or fallback counts for. A request
    /// stamped just before midnight that arrives after the node moved on
    /// is thus one of the new day's, as the node's own meter counts it,
    /// and never takes its old day's quota into the new day's block.
    pub(crate) fn current_day(&self, day: UtcDay) -> UtcDay {
        let latest = [&self.seen, &self.block, &self.unsynced]
            .iter()
            .map(|counter| counter.day())
            .fold(day_number(day), u64::max);
        utc_day(latest)
    }

    pub(crate) fn saw(&self, day: UtcDay, total: u64) {
        self.seen.raise(day_number(day), total);
    }

    /// Unspent leased lookups of `day`.
    pub(crate) fn block(&self, day: UtcDay) -> u64 {
        self.block.on(day_number(day))
    }

    /// Spends `n` leased lookups of `day`, all or nothing.
    pub(crate) fn spend(&self, day: UtcDay, n: u64) -> bool {
        self.block.spend(day_number(day), n)
    }

    /// Adds `n` freshly leased lookups of `day`, dropping an earlier day's
    /// block. False, with nothing changed, when the block is already for a
    /// later day: lookups of one day never join another day's block.
    pub(crate) fn lease(&self, day: UtcDay, n: u64) -> bool {
        self.block.try_add_on(day_number(day), n, MAX_COUNT).is_ok()
    }

    /// Takes every unspent leased lookup of `day`.
    pub(crate) fn take_block(&self, day: UtcDay) -> u64 {
        let day = day_number(day);
        self.block
            .update(|stored, count| (stored == day && count > 0).then(|| pack(day, 0)))
            .map_or(0, |replaced| unpack(replaced).1)
    }

    /// Lookups admitted by the fallback on `day`, not yet in Redis.
    pub(crate) fn unsynced(&self, day: UtcDay) -> u64 {
        self.unsynced.on(day_number(day))
    }

    /// Counts `n` fallback lookups on exactly `day` if they stay within
    /// `allowance`. Ok: the new total; Err: the current one, or the
    /// allowance when the fallback counts are already for a later day.
    pub(crate) fn try_unsynced(&self, day: UtcDay, n: u64, allowance: u64) -> Result<u64, u64> {
        self.unsynced
            .try_add_on(day_number(day), n, allowance)
            .map_err(|refused| refused.unwrap_or(allowance))
    }

    /// Forgets `n` fallback lookups of `day`, now in Redis.
    pub(crate) fn synced(&self, day: UtcDay, n: u64) {
        self.unsynced.sub(day_number(day), n);
    }

    /// What this node knows of the lookups used on `day` across nodes: the
    /// shared total less its own unspent block, plus its fallback count.
    pub(crate) fn used_estimate(&self, day: UtcDay) -> u64 {
        (self.seen(day).saturating_sub(self.block(day))).saturating_add(self.unsynced(day))
    }
}

/// Lookups counted but not yet written to the store, for one day.
struct PendingDelta(AtomicU64);

impl PendingDelta {
    /// Adds `n` for `day`. If an older day still holds a delta, it is
    /// displaced and returned so the caller can queue it.
    fn add(&self, day: u64, n: u64) -> Option<(u64, u64)> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let (stored, delta) = unpack(current);
            let (next, displaced) = if stored == day {
                (pack(day, delta.saturating_add(n)), None)
            } else if delta == 0 {
                (pack(day, n), None)
            } else {
                (pack(day, n), Some((stored, delta)))
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return displaced,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes the whole delta, leaving zero.
    fn take(&self) -> Option<(u64, u64)> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let (day, delta) = unpack(current);
            if delta == 0 {
                return None;
            }
            match self.0.compare_exchange_weak(
                current,
                pack(day, 0),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some((day, delta)),
                Err(actual) => current = actual,
            }
        }
    }

    fn peek(&self) -> (u64, u64) {
        unpack(self.0.load(Ordering::Acquire))
    }
}

/// Plan code: 0 while the key has no plan in the store nor in memory.
const NO_PLAN: u8 = 0;

fn plan_code(plan: Option<Plan>) -> u8 {
    match plan {
        None => NO_PLAN,
        Some(Plan::Free) => 1,
        Some(Plan::Professional) => 2,
        Some(Plan::Enterprise) => 3,
        Some(Plan::Custom) => 4,
    }
}

fn plan_from_code(code: u8) -> Option<Plan> {
    match code {
        1 => Some(Plan::Free),
        2 => Some(Plan::Professional),
        3 => Some(Plan::Enterprise),
        4 => Some(Plan::Custom),
        _ => None,
    }
}

/// A key in the request-path cache. Everything mutable is atomic: readers
/// never lock.
pub(crate) struct KeyEntry {
    pub(crate) id: KeyId,
    hash: SecretHash,
    plan: AtomicU8,
    limit: AtomicU64,
    revoked: AtomicBool,
    /// Set when the free plan was assigned in memory and not yet persisted.
    provision_pending: AtomicBool,
    used: DayCounter,
    pending: PendingDelta,
    /// The shared quota's state of this key.
    pub(crate) share: KeyShare,
}

impl KeyEntry {
    /// An entry for `stored`, with `count` lookups already on `day`.
    pub(crate) fn new(stored: &StoredKey, limits: &PlanLimits, day: UtcDay, count: u64) -> Self {
        let info = &stored.info;
        // A zero count is stored as day 0 so any later day reads as fresh.
        let counter_day = if count > 0 { day_number(day) } else { 0 };
        Self {
            id: info.id.clone(),
            hash: stored.secret_hash,
            plan: AtomicU8::new(plan_code(info.plan)),
            limit: AtomicU64::new(limits.daily_limit(info.plan, info.daily_limit_override)),
            revoked: AtomicBool::new(info.revoked_at.is_some()),
            provision_pending: AtomicBool::new(false),
            used: DayCounter::new(counter_day, count),
            pending: PendingDelta(AtomicU64::new(0)),
            share: KeyShare::new(counter_day, count),
        }
    }

    pub(crate) fn secret_hash(&self) -> &SecretHash {
        &self.hash
    }

    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    pub(crate) fn mark_revoked(&self) {
        self.revoked.store(true, Ordering::Release);
    }

    /// The plan as stored or provisioned in memory (`None` before either).
    pub(crate) fn plan(&self) -> Option<Plan> {
        plan_from_code(self.plan.load(Ordering::Acquire))
    }

    pub(crate) fn daily_limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// Applies the store's view of the key (after a change by any process).
    /// A plan provisioned in memory but not yet persisted is kept while the
    /// store still has none.
    pub(crate) fn apply(&self, stored: &StoredKey, limits: &PlanLimits) {
        let info = &stored.info;
        if info.revoked_at.is_some() {
            self.mark_revoked();
        }
        if let Some(plan) = info.plan {
            self.plan.store(plan_code(Some(plan)), Ordering::Release);
            let limit = limits.daily_limit(Some(plan), info.daily_limit_override);
            self.limit.store(limit, Ordering::Release);
        }
    }

    /// Sets the plan in memory at once (an operator change made here).
    pub(crate) fn set_plan(&self, plan: Plan, limit: u64) {
        self.plan.store(plan_code(Some(plan)), Ordering::Release);
        self.limit.store(limit, Ordering::Release);
    }

    /// Gives a key without plan the free plan, to be persisted by the next flush.
    pub(crate) fn provision_free(&self) {
        // A plain load first: the hot path then never writes this line.
        if self.plan.load(Ordering::Acquire) != NO_PLAN {
            return;
        }
        let swapped = self.plan.compare_exchange(
            NO_PLAN,
            plan_code(Some(Plan::Free)),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if swapped.is_ok() {
            self.provision_pending.store(true, Ordering::Release);
        }
    }

    /// Takes the pending provisioning flag.
    pub(crate) fn take_provision(&self) -> bool {
        self.provision_pending.swap(false, Ordering::AcqRel)
    }

    /// Restores the flag after a failed write.
    pub(crate) fn restore_provision(&self) {
        self.provision_pending.store(true, Ordering::Release);
    }

    pub(crate) fn used_on(&self, day: UtcDay) -> u64 {
        self.used.used(day_number(day))
    }

    /// Counts `n` lookups on `day` if `limit` allows. Ok: the day counted
    /// and the new total; Err: the current total.
    pub(crate) fn try_count(&self, day: UtcDay, n: u64, limit: u64) -> Result<(UtcDay, u64), u64> {
        self.used
            .try_add(day_number(day), n, limit)
            .map(|(day, total)| (utc_day(day), total))
    }

    /// Records `n` lookups to write for `day`; returns an older day's
    /// unwritten delta if this displaced it.
    pub(crate) fn add_pending(&self, day: UtcDay, n: u64) -> Option<(UtcDay, u64)> {
        self.pending
            .add(day_number(day), n)
            .map(|(day, n)| (utc_day(day), n))
    }

    /// Takes the unwritten delta, if any.
    pub(crate) fn take_pending(&self) -> Option<(UtcDay, u64)> {
        self.pending.take().map(|(day, n)| (utc_day(day), n))
    }

    /// The unwritten delta, if it is for a day in `first..=last`.
    pub(crate) fn pending_between(&self, first: UtcDay, last: UtcDay) -> u64 {
        let (day, delta) = self.pending.peek();
        let day = utc_day(day);
        if day >= first && day <= last {
            delta
        } else {
            0
        }
    }
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("id", &self.id)
            .field("plan", &self.plan())
            .field("limit", &self.daily_limit())
            .field("revoked", &self.is_revoked())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_refuses_past_the_limit_without_counting() {
        let counter = DayCounter::new(10, 0);
        assert_eq!(counter.try_add(10, 3, 5), Ok((10, 3)));
        assert_eq!(counter.try_add(10, 3, 5), Err(3));
        assert_eq!(counter.try_add(10, 2, 5), Ok((10, 5)));
        assert_eq!(counter.try_add(10, 1, 5), Err(5));
        assert_eq!(counter.used(10), 5);
    }

    #[test]
    fn counter_resets_on_a_later_day_only() {
        let counter = DayCounter::new(10, 5);
        assert_eq!(counter.used(11), 0);
        assert_eq!(counter.try_add(9, 1, 5), Err(5));
        assert_eq!(counter.try_add(11, 1, 5), Ok((11, 1)));
        assert_eq!(counter.used(10), 1, "an earlier day reads the stored one");
    }

    #[test]
    fn counter_rejects_overflowing_requests() {
        let counter = DayCounter::new(1, 2);
        assert_eq!(counter.try_add(1, u64::MAX, u64::MAX), Err(2));
        assert_eq!(
            counter.try_add(1, MAX_COUNT - 2, u64::MAX),
            Ok((1, MAX_COUNT))
        );
    }

    #[test]
    fn a_lease_block_is_spent_whole_and_only_on_its_day() {
        let share = KeyShare::new(0, 0);
        let (day, next) = (UtcDay::from_days(20_000), UtcDay::from_days(20_001));
        share.lease(day, 10);
        assert!(share.spend(day, 4));
        assert!(!share.spend(day, 7), "all or nothing");
        assert!(!share.spend(next, 1), "a block is spent on its own day");
        assert_eq!(share.block(day), 6);
        share.lease(next, 3);
        assert_eq!(
            (share.block(day), share.block(next)),
            (0, 3),
            "rollover drops it"
        );
        assert_eq!(share.take_block(next), 3);
        assert_eq!(share.take_block(next), 0);
    }

    #[test]
    fn a_block_never_takes_an_earlier_days_lease() {
        let share = KeyShare::new(0, 0);
        let (day, next) = (UtcDay::from_days(20_000), UtcDay::from_days(20_001));
        assert!(share.lease(next, 10));
        assert!(!share.lease(day, 90), "an earlier day's lease is refused");
        assert_eq!((share.block(day), share.block(next)), (0, 10));
        assert_eq!(
            share.current_day(day),
            next,
            "a late request is the new day's"
        );
        assert_eq!(share.current_day(next), next);
    }

    #[test]
    fn shared_totals_and_fallback_counts_keep_to_their_day() {
        let share = KeyShare::new(0, 0);
        let (day, next) = (UtcDay::from_days(20_000), UtcDay::from_days(20_001));
        share.saw(next, 7);
        assert_eq!(share.seen(day), 0, "a later day's total is not this day's");
        assert_eq!(share.try_unsynced(next, 2, 5), Ok(2));
        assert_eq!(
            share.try_unsynced(day, 1, 5),
            Err(5),
            "not into the later day"
        );
        assert_eq!(share.unsynced(next), 2);
        assert_eq!(share.try_unsynced(next, 4, 5), Err(2));
    }

    #[test]
    fn the_seen_total_only_rises_and_estimates_use() {
        let share = KeyShare::new(0, 0);
        let day = UtcDay::from_days(20_000);
        share.saw(day, 50);
        share.saw(day, 40);
        assert_eq!(share.seen(day), 50);
        share.lease(day, 10);
        assert_eq!(share.try_unsynced(day, 3, 5), Ok(3));
        assert_eq!(share.try_unsynced(day, 3, 5), Err(3));
        assert_eq!(share.used_estimate(day), 50 - 10 + 3);
        share.synced(day, 2);
        assert_eq!(share.unsynced(day), 1);
    }

    #[test]
    fn pending_displaces_an_older_day() {
        let pending = PendingDelta(AtomicU64::new(0));
        assert_eq!(pending.add(5, 2), None);
        assert_eq!(pending.add(5, 3), None);
        assert_eq!(pending.add(6, 1), Some((5, 5)));
        assert_eq!(pending.take(), Some((6, 1)));
        assert_eq!(pending.take(), None);
        assert_eq!(
            pending.add(7, 4),
            None,
            "an empty older day is not displaced"
        );
    }
}

//! The request path: key cache, quota checks and the usage meter.
//!
//! Everything a request needs is answered from memory once its key has been
//! seen: the secret is checked against the cached hash and the lookup is
//! counted with an atomic compare-and-swap. Counts reach the store through a
//! background task (see [`Accounts::spawn_background`]) that writes the
//! deltas every second in one transaction.
//!
//! Durability: a graceful shutdown (cancelling the background task and
//! awaiting it) loses no count; a crash loses at most the last second of
//! counts. A failed write keeps the deltas in memory for the next attempt.
//! Only one server process should meter a database: two would each enforce
//! the quota with their own counts.

pub(crate) mod background;
mod entry;
mod misses;
mod shared;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;

use self::entry::KeyEntry;
use self::misses::MissCache;
use crate::day::UtcDay;
use crate::key::{self, KeyId};
use crate::plan::{Plan, PlanLimits};
use crate::quota::SharedQuota;
use crate::store::{KeyInfo, NewKey, Store, UsageDelta};
use crate::{now_unix, AuthError, StoreError};

/// How long an unknown key id is remembered as unknown.
const MISS_TTL: Duration = Duration::from_secs(30);
/// At most this many unknown ids are remembered.
const MISS_CAPACITY: usize = 10_000;
/// How long a usage report waits for a flush in flight: a flush stuck on
/// a database that stopped answering would otherwise hold it until the
/// connection is given up (minutes).
const USAGE_FLUSH_WAIT: Duration = Duration::from_secs(3);
/// How long a request waits to read a key it has not seen from the store.
const KEY_LOAD_WAIT: Duration = Duration::from_secs(3);
/// At most this many store look-ups for uncached ids run at once, so a flood
/// of random ids cannot take every database connection.
const CONCURRENT_LOADS: usize = 2;

/// A daily quota as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// Lookups allowed per UTC day.
    pub limit: u64,
    /// Lookups left today.
    pub remaining: u64,
    /// Unix time of the next 00:00 UTC, when the quota resets.
    pub reset_unix: i64,
}

/// A key's usage, for `GET /v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// The key.
    pub key_id: KeyId,
    /// Its plan ([`Plan::Free`] if not yet provisioned).
    pub plan: Plan,
    /// Lookups allowed per UTC day.
    pub daily_limit: u64,
    /// Lookups counted today (UTC).
    pub today: u64,
    /// Lookups counted this calendar month (UTC).
    pub this_month: u64,
    /// Unix time of the next 00:00 UTC, when the daily quota resets.
    pub reset_unix: i64,
    /// Lookups on each of the last [`HISTORY_DAYS`] UTC days, oldest
    /// first, today last; days without lookups count 0.
    pub history: Vec<DayUsage>,
}

/// Days listed in [`UsageReport::history`], today included.
pub const HISTORY_DAYS: i64 = 30;

/// Lookups of one key on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayUsage {
    /// The day, written `YYYY-MM-DD`.
    #[serde(serialize_with = "crate::day::serialize_day")]
    pub day: UtcDay,
    /// Lookups counted that day.
    pub lookups: u64,
}

/// An authenticated key, cheap to clone. Plan and limit are read live, so
/// a change polled from the store shows at once.
#[derive(Clone)]
pub struct KeyHandle {
    entry: Arc<KeyEntry>,
}

impl KeyHandle {
    /// The key's id (safe to log).
    pub fn id(&self) -> &KeyId {
        &self.entry.id
    }

    /// The key's plan ([`Plan::Free`] if not yet provisioned).
    pub fn plan(&self) -> Plan {
        self.entry.plan().unwrap_or(Plan::Free)
    }

    /// Lookups allowed per UTC day.
    pub fn daily_limit(&self) -> u64 {
        self.entry.daily_limit()
    }
}

impl fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHandle")
            .field("id", self.id())
            .field("plan", &self.plan())
            .field("daily_limit", &self.daily_limit())
            .finish()
    }
}

/// The request-path cache and usage meter. Share it in an `Arc`.
pub struct Accounts {
    store: Arc<dyn Store>,
    limits: PlanLimits,
    keys: papaya::HashMap<KeyId, Arc<KeyEntry>>,
    misses: MissCache,
    loads: Semaphore,
    /// Deltas to write that no longer sit in a key's pending counter: those
    /// of a failed write, and those displaced by a day rollover.
    retry: Mutex<Vec<UsageDelta>>,
    /// Held while deltas are in flight to the store.
    flush_lock: tokio::sync::Mutex<()>,
    flush_failing: AtomicBool,
    poll_failing: AtomicBool,
    /// `updated_at` (the database's clock) up to which key changes have
    /// been applied.
    changes_seen: AtomicI64,
    /// The quota shared with other nodes through Redis, once attached.
    shared: OnceLock<Arc<SharedQuota>>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("limits", &self.limits)
            .field("cached_keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Opens the meter on `store`: caches every key used today (UTC) with
    /// its count, so a restart does not reset a quota.
    pub async fn open(
        store: Arc<dyn Store>,
        limits: PlanLimits,
    ) -> Result<Arc<Accounts>, StoreError> {
        Self::open_at(store, limits, now_unix()).await
    }

    /// [`Accounts::open`] with the clock given, for tests. (Keys first seen
    /// later are still read with today's count by the system clock.)
    pub async fn open_at(
        store: Arc<dyn Store>,
        limits: PlanLimits,
        now_unix: i64,
    ) -> Result<Arc<Accounts>, StoreError> {
        // Key changes are polled on the database's clock, never this one.
        let changes_seen = store.clock().await?;
        let accounts = Accounts {
            store,
            limits,
            keys: papaya::HashMap::new(),
            misses: MissCache::new(MISS_TTL, MISS_CAPACITY),
            loads: Semaphore::new(CONCURRENT_LOADS),
            retry: Mutex::default(),
            flush_lock: tokio::sync::Mutex::new(()),
            flush_failing: AtomicBool::new(false),
            poll_failing: AtomicBool::new(false),
            changes_seen: AtomicI64::new(changes_seen),
            shared: OnceLock::new(),
        };
        accounts.load_today(UtcDay::from_unix(now_unix)).await?;
        Ok(Arc::new(accounts))
    }

    async fn load_today(&self, today: UtcDay) -> Result<(), StoreError> {
        for (id, count) in self.store.usage_for_day(today).await? {
            if let Some(stored) = self.store.get_key(&id).await? {
                let entry = KeyEntry::new(&stored, &self.limits, today, count);
                self.keys.pin().insert(id, Arc::new(entry));
            }
        }
        Ok(())
    }

    /// The daily limits in force.
    pub fn limits(&self) -> &PlanLimits {
        &self.limits
    }

    /// The store behind the meter (for other request-path services, such
    /// as the report desk, to share it).
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Checks the presented key text: format, known id, secret, not
    /// revoked. Counts nothing. A key seen before is checked in memory; an
    /// unseen id is read from the store once (and an unknown one is
    /// remembered as such for 30 s).
    pub async fn authenticate(&self, presented: &str) -> Result<KeyHandle, AuthError> {
        let key = key::parse(presented).map_err(|_| AuthError::Malformed)?;
        let entry = match self.cached(&key.id) {
            Some(entry) => entry,
            None => self.load(&key.id).await?.ok_or(AuthError::UnknownKey)?,
        };
        if !key.verify(entry.secret_hash()) {
            return Err(AuthError::UnknownKey);
        }
        if entry.is_revoked() {
            return Err(AuthError::Revoked);
        }
        Ok(KeyHandle { entry })
    }

    /// [`Accounts::authenticate`] for a key already in memory, without ever
    /// reading the store: `None` when the key is not cached, malformed,
    /// wrong or revoked (the caller then takes the full path, which says
    /// why). For a path that must not wait on the database.
    pub fn authenticate_cached(&self, presented: &str) -> Option<KeyHandle> {
        let key = key::parse(presented).ok()?;
        let entry = self.cached(&key.id)?;
        (key.verify(entry.secret_hash()) && !entry.is_revoked()).then_some(KeyHandle { entry })
    }

    /// [`Accounts::authenticate`] then [`Accounts::charge`] of `n` lookups:
    /// the whole admission check of one request.
    pub async fn admit(
        &self,
        presented: &str,
        n: u64,
        now_unix: i64,
    ) -> Result<(KeyHandle, Quota), AuthError> {
        let key = self.authenticate(presented).await?;
        let quota = self.charge(&key, n, now_unix).await?;
        Ok((key, quota))
    }

    fn cached(&self, id: &KeyId) -> Option<Arc<KeyEntry>> {
        self.keys.pin().get(id).cloned()
    }

    /// Reads an uncached key and today's count from the store and caches
    /// it, giving up after [`KEY_LOAD_WAIT`]: a read stuck on a database
    /// that stopped answering must not hold the request, nor the few load
    /// permits every other unseen key waits for.
    async fn load(&self, id: &KeyId) -> Result<Option<Arc<KeyEntry>>, StoreError> {
        tokio::time::timeout(KEY_LOAD_WAIT, self.load_uncached(id))
            .await
            .map_err(|_| StoreError::TimedOut("the key's record"))?
    }

    async fn load_uncached(&self, id: &KeyId) -> Result<Option<Arc<KeyEntry>>, StoreError> {
        if self.misses.contains(id, Instant::now()) {
            return Ok(None);
        }
        let _permit = self.loads.acquire().await;
        // Another request may have settled this id while we waited.
        if let Some(entry) = self.cached(id) {
            return Ok(Some(entry));
        }
        if self.misses.contains(id, Instant::now()) {
            return Ok(None);
        }
        let Some(stored) = self.store.get_key(id).await? else {
            tracing::debug!(key_id = %id, "unknown key id, remembered for 30 s");
            self.misses.insert(id.clone(), Instant::now());
            return Ok(None);
        };
        let today = UtcDay::from_unix(now_unix());
        let count = self.store.usage_between(id, today, today).await?;
        let entry = Arc::new(KeyEntry::new(&stored, &self.limits, today, count));
        Ok(Some(
            self.keys.pin().get_or_insert(id.clone(), entry).clone(),
        ))
    }

    /// Atomically counts `n` lookups against today's quota (the UTC day of
    /// `now_unix`), or refuses without counting when the total would exceed
    /// the limit. The first counted lookup of a key without plan provisions
    /// the free plan (persisted by the next flush). Never touches the store.
    ///
    /// This is this node's own meter: it does not consult a
    /// [`SharedQuota`]. The request path calls [`Accounts::charge`], which
    /// is this call when no shared quota is attached.
    pub fn consume(&self, key: &KeyHandle, n: u64, now_unix: i64) -> Result<Quota, AuthError> {
        let entry = &key.entry;
        if entry.is_revoked() {
            return Err(AuthError::Revoked);
        }
        let day = UtcDay::from_unix(now_unix);
        let limit = entry.daily_limit();
        match entry.try_count(day, n, limit) {
            Ok((counted_day, total)) => {
                if n > 0 {
                    self.record(entry, counted_day, n);
                }
                Ok(quota(limit, total, day))
            }
            Err(used) => Err(shared::exceeded(quota(limit, used, day), now_unix)),
        }
    }

    fn record(&self, entry: &KeyEntry, day: UtcDay, n: u64) {
        if let Some((old_day, count)) = entry.add_pending(day, n) {
            lock(&self.retry).push(UsageDelta {
                key: entry.id.clone(),
                day: old_day,
                count,
            });
        }
        entry.provision_free();
    }

    /// Today's quota of `key` (the UTC day of `now_unix`), counting nothing.
    /// With a shared quota, as this node last learned it from Redis.
    pub fn quota(&self, key: &KeyHandle, now_unix: i64) -> Quota {
        let day = UtcDay::from_unix(now_unix);
        let used = match self.shared.get() {
            Some(_) => key.entry.share.used_estimate(day),
            None => key.entry.used_on(day),
        };
        quota(key.entry.daily_limit(), used, day)
    }

    /// Usage of `key` today, this month and on each of the last
    /// [`HISTORY_DAYS`] days (UTC, from `now_unix`): the store's totals
    /// plus counts not yet written.
    ///
    /// Today's figure is this node's meter alone; with a shared quota it
    /// is the store's total for today plus this node's unwritten counts,
    /// so every node gives the same figure to within one flush interval.
    pub async fn usage(&self, key: &KeyHandle, now_unix: i64) -> Result<UsageReport, StoreError> {
        let entry = &key.entry;
        let day = UtcDay::from_unix(now_unix);
        let (first, last) = day.month_bounds();
        let oldest = UtcDay::from_days(day.days() - (HISTORY_DAYS - 1));
        // No deltas are in flight while this is held, so each count is
        // either in the store or in memory, never in both or neither.
        let _flushing = tokio::time::timeout(USAGE_FLUSH_WAIT, self.flush_lock.lock())
            .await
            .map_err(|_| StoreError::TimedOut("the usage flush in flight"))?;
        let stored = self.store.usage_between(&entry.id, first, last).await?;
        let stored_days = self.store.usage_by_day(&entry.id, oldest, day).await?;
        let unwritten =
            entry.pending_between(first, last) + self.retry_between(&entry.id, first, last);
        let written_on = |d: UtcDay| {
            stored_days
                .iter()
                .find(|(stored_day, _)| *stored_day == d)
                .map_or(0, |(_, count)| *count)
        };
        let unwritten_on =
            |d: UtcDay| entry.pending_between(d, d) + self.retry_between(&entry.id, d, d);
        let today = match self.shared.get() {
            Some(_) => written_on(day) + unwritten_on(day),
            None => entry.used_on(day),
        };
        let history = (oldest.days()..=day.days())
            .map(UtcDay::from_days)
            .map(|d| {
                let lookups = if d == day {
                    today
                } else {
                    written_on(d) + unwritten_on(d)
                };
                DayUsage { day: d, lookups }
            })
            .collect();
        Ok(UsageReport {
            key_id: entry.id.clone(),
            plan: key.plan(),
            daily_limit: entry.daily_limit(),
            today,
            this_month: stored + unwritten,
            reset_unix: day.next_start_unix(),
            history,
        })
    }

    fn retry_between(&self, id: &KeyId, first: UtcDay, last: UtcDay) -> u64 {
        lock(&self.retry)
            .iter()
            .filter(|d| d.key == *id && d.day >= first && d.day <= last)
            .map(|d| d.count)
            .sum()
    }

    /// Creates a key. Returns its listing and the full key text, which is
    /// shown once and never stored.
    pub async fn create_key(
        &self,
        label: Option<String>,
        plan: Option<Plan>,
    ) -> Result<(KeyInfo, String), StoreError> {
        let key = key::generate();
        let new = NewKey {
            id: key.id.clone(),
            secret_hash: key.secret_hash(),
            label,
            plan,
            daily_limit_override: None,
            created_at: now_unix(),
        };
        self.store.insert_key(&new).await?;
        self.misses.remove(&new.id);
        tracing::info!(key_id = %new.id, plan = ?plan, "API key created");
        let info = KeyInfo {
            id: new.id,
            label: new.label,
            plan,
            daily_limit_override: None,
            created_at: new.created_at,
            revoked_at: None,
            plan_provisioned_at: plan.map(|_| new.created_at),
        };
        Ok((info, key.expose_key_text()))
    }

    /// Lists every key (no secrets, no hashes).
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        self.store.list_keys().await
    }

    /// Revokes a key, effective here at once and in other processes after
    /// their next poll. Returns `false` if unknown or already revoked.
    pub async fn revoke_key(&self, id: &KeyId) -> Result<bool, StoreError> {
        let revoked = self.store.revoke_key(id, now_unix()).await?;
        if let Some(entry) = self.cached(id) {
            entry.mark_revoked();
        }
        if revoked {
            tracing::info!(key_id = %id, "API key revoked");
        }
        Ok(revoked)
    }

    /// Sets a key's plan (and, for [`Plan::Custom`], its own daily limit).
    /// Returns `false` if there is no such key.
    pub async fn set_plan(
        &self,
        id: &KeyId,
        plan: Plan,
        daily_limit_override: Option<u64>,
    ) -> Result<bool, StoreError> {
        let found = self
            .store
            .set_plan(id, plan, daily_limit_override, now_unix())
            .await?;
        if let Some(entry) = self.cached(id) {
            entry.set_plan(
                plan,
                self.limits.daily_limit(Some(plan), daily_limit_override),
            );
        }
        if found {
            tracing::info!(key_id = %id, plan = %plan, "plan changed");
        }
        Ok(found)
    }
}

fn quota(limit: u64, used: u64, day: UtcDay) -> Quota {
    Quota {
        limit,
        remaining: limit.saturating_sub(used),
        reset_unix: day.next_start_unix(),
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a single push, drain or read).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Merges deltas of the same key and day.
fn merge(deltas: Vec<UsageDelta>) -> Vec<UsageDelta> {
    let mut merged: HashMap<(KeyId, UtcDay), u64> = HashMap::new();
    for delta in deltas {
        *merged.entry((delta.key, delta.day)).or_default() += delta.count;
    }
    merged
        .into_iter()
        .map(|((key, day), count)| UsageDelta { key, day, count })
        .collect()
}

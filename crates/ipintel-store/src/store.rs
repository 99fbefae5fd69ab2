//! The storage interface for keys and usage, independent of the database.

use std::net::IpAddr;

use ipintel_core::reports::{ReportCategories, Severity};
use serde::Serialize;

use crate::day::UtcDay;
use crate::key::{KeyId, SecretHash};
use crate::plan::Plan;
use crate::reports::ReporterNet;
use crate::StoreError;

/// A key as listed to operators: everything but the secret hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Public id.
    pub id: KeyId,
    /// Free-text label chosen at creation.
    pub label: Option<String>,
    /// The plan; `None` until the key's first counted lookup provisions
    /// [`Plan::Free`] (or an operator sets one).
    pub plan: Option<Plan>,
    /// Daily limit of a [`Plan::Custom`] key, if set.
    pub daily_limit_override: Option<u64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Revocation time, Unix seconds.
    pub revoked_at: Option<i64>,
    /// When the plan was set, Unix seconds.
    pub plan_provisioned_at: Option<i64>,
}

/// A key row as the request path needs it.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The listed fields.
    pub info: KeyInfo,
    /// Digest of the secret.
    pub secret_hash: SecretHash,
    /// Last change to the row, Unix seconds by the database's clock (see
    /// [`Store::clock`]), whatever the writer's clock says: it drives
    /// change polling, which compares it with stamps from other writers.
    pub updated_at: i64,
}

/// A key to insert.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Public id.
    pub id: KeyId,
    /// Digest of the secret.
    pub secret_hash: SecretHash,
    /// Free-text label.
    pub label: Option<String>,
    /// Plan chosen at creation, if any.
    pub plan: Option<Plan>,
    /// Daily limit for a [`Plan::Custom`] key.
    pub daily_limit_override: Option<u64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// Lookups to add to a key's count for a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    /// The key.
    pub key: KeyId,
    /// The UTC day counted.
    pub day: UtcDay,
    /// Lookups to add.
    pub count: u64,
}

/// An abuse report to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    /// The reporting key.
    pub key_id: KeyId,
    /// The reported address (IPv4-mapped IPv6 already turned into IPv4).
    pub ip: IpAddr,
    /// What it did.
    pub categories: ReportCategories,
    /// How bad it was.
    pub severity: Severity,
    /// The reporter's confidence, 0..=100.
    pub confidence: u8,
    /// Free text, at most [`crate::MAX_COMMENT_CHARS`] characters.
    pub comment: Option<String>,
    /// When it happened (Unix seconds).
    pub reported_at: i64,
    /// When the service accepted it (Unix seconds).
    pub received_at: i64,
    /// Country of the address in the data at intake.
    pub country: Option<String>,
    /// AS number of the address at intake.
    pub asn: Option<u32>,
    /// AS holder name at intake.
    pub asn_name: Option<String>,
    /// The network the report came from, when known: keys reporting from
    /// one network count as one reporter.
    pub reporter_network: Option<ReporterNet>,
    /// The reporting key's plan when it reported (`None` in reports
    /// stored before the plan was recorded; they count as free).
    pub reporter_plan: Option<Plan>,
}

/// A stored report: its row id and contents.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    /// Row id, increasing with insertion.
    pub id: i64,
    /// The report.
    pub report: NewReport,
}

/// The rules a report insertion checks atomically with the insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRules {
    /// A report of the same key about the same address received less than
    /// this many seconds ago makes this one a duplicate.
    pub duplicate_window_secs: i64,
    /// Reports the key may file per UTC day.
    pub daily_limit: u64,
}

/// The outcome of [`Store::insert_report`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReportInsert {
    /// Stored and committed.
    Stored(StoredReport),
    /// The same key reported the same address within the window; nothing stored.
    Duplicate {
        /// Seconds until the window has passed, at least 1.
        retry_after_secs: u64,
    },
    /// The key's daily report limit is reached; nothing stored.
    QuotaExceeded {
        /// The limit.
        limit: u64,
        /// Seconds until the next 00:00 UTC, at least 1.
        retry_after_secs: u64,
    },
}

/// Persistent storage of keys and daily usage.
///
/// Times are Unix seconds and days are [`UtcDay`]s; an implementation maps
/// them to its own column types. Every method is a short, independent
/// operation. Two implementations exist, on SQLite and on PostgreSQL, and
/// one behavioural test suite (`crates/ipintel-store/tests/`) runs on both.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a new key. Fails if the id exists.
    async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError>;

    /// Reads one key, revoked or not.
    async fn get_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError>;

    /// Lists all keys, oldest first.
    async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError>;

    /// Marks a key revoked at `at`. Returns `false` if there is no such key
    /// or it was already revoked.
    async fn revoke_key(&self, id: &KeyId, at: i64) -> Result<bool, StoreError>;

    /// Sets a key's plan and override (an operator's choice). Returns
    /// `false` if there is no such key.
    async fn set_plan(
        &self,
        id: &KeyId,
        plan: Plan,
        daily_limit_override: Option<u64>,
        at: i64,
    ) -> Result<bool, StoreError>;

    /// Sets the plan only if the key has none yet (first-lookup
    /// provisioning). Returns whether it was set.
    async fn provision_plan(&self, id: &KeyId, plan: Plan, at: i64) -> Result<bool, StoreError>;

    /// Adds every delta to its (key, day) count, all in one transaction:
    /// on error nothing is added.
    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError>;

    /// Sum of a key's counts over the days `first..=last`.
    async fn usage_between(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<u64, StoreError>;

    /// A key's count on each day of `first..=last` that has one, in day
    /// order (days without usage are left out).
    async fn usage_by_day(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<Vec<(UtcDay, u64)>, StoreError>;

    /// Every key's count for `day` (keys without usage are left out).
    async fn usage_for_day(&self, day: UtcDay) -> Result<Vec<(KeyId, u64)>, StoreError>;

    /// Keys whose row changed at or after `since` (creation, revocation,
    /// plan change), so other processes' changes reach the request path.
    /// `since` is on the database's clock, as `updated_at` is.
    async fn keys_changed_since(&self, since: i64) -> Result<Vec<StoredKey>, StoreError>;

    /// The database's clock, Unix seconds: the clock that stamps
    /// `updated_at`, so one process's polling never depends on how far
    /// another writer's clock is off.
    async fn clock(&self) -> Result<i64, StoreError>;

    /// Inserts a report unless `rules` refuse it, checking and inserting in
    /// one transaction serialized with every other insertion for the same
    /// key, from any connection or process (so two concurrent duplicates
    /// cannot both pass), and returns only once the row is committed. The
    /// day of the quota is the UTC day of `report.received_at`.
    async fn insert_report(
        &self,
        report: &NewReport,
        rules: &ReportRules,
    ) -> Result<ReportInsert, StoreError>;

    /// Every report received at or after `since`, oldest first.
    async fn reports_since(&self, since: i64) -> Result<Vec<StoredReport>, StoreError>;

    /// The latest `limit` reports filed with key `id`, newest first.
    async fn reports_by_key(&self, id: &KeyId, limit: u32)
        -> Result<Vec<StoredReport>, StoreError>;

    /// The first `limit` committed reports with a row id above `after`, in
    /// id order: how a node reads the reports other nodes accepted.
    ///
    /// Ids are handed out at insertion, not at commit, so on PostgreSQL a
    /// lower id can become visible after a higher one; a caller that only
    /// moves past the highest id seen must ask again for the ids it skipped
    /// (with [`Store::reports_with_ids`]).
    async fn reports_after(&self, after: i64, limit: u32) -> Result<Vec<StoredReport>, StoreError>;

    /// The committed reports among row ids `ids`, in id order; ids without
    /// a committed row are left out.
    async fn reports_with_ids(&self, ids: &[i64]) -> Result<Vec<StoredReport>, StoreError>;

    /// Closes the store's connections, waiting for those in use to be
    /// returned; later calls fail with [`StoreError::Database`].
    async fn close(&self);
}

//! The storage interface for keys and usage, independent of the database.

use serde::Serialize;

use crate::day::UtcDay;
use crate::key::{KeyId, SecretHash};
use crate::plan::Plan;
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
    /// Last change to the row, Unix seconds (drives change polling).
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

/// Persistent storage of keys and daily usage.
///
/// Times are Unix seconds and days are [`UtcDay`]s; an implementation maps
/// them to its own column types. Every method is a short, independent
/// operation, so the trait suits any SQL database (a PostgreSQL
/// implementation would use the same statements with `$n` placeholders).
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

    /// Every key's count for `day` (keys without usage are left out).
    async fn usage_for_day(&self, day: UtcDay) -> Result<Vec<(KeyId, u64)>, StoreError>;

    /// Keys whose row changed at or after `since` (creation, revocation,
    /// plan change), so other processes' changes reach the request path.
    async fn keys_changed_since(&self, since: i64) -> Result<Vec<StoredKey>, StoreError>;
}

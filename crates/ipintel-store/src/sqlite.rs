//! [`Store`] on a SQLite file (WAL mode), via sqlx's runtime query API.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use crate::day::UtcDay;
use crate::key::KeyId;
use crate::plan::Plan;
use crate::reports::sql as report_sql;
use crate::rows::{corrupt, parse_key_id, to_i64, to_u64, KeyRow};
use crate::store::{
    KeyInfo, NewKey, NewReport, ReportInsert, ReportRules, Store, StoredKey, StoredReport,
    UsageDelta,
};
use crate::StoreError;

/// How long a statement waits for another connection's (or process's) lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in the pool; WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

const KEY_COLUMNS: &str = "id, secret_hash, label, plan, daily_limit_override, created_at, \
                           revoked_at, plan_provisioned_at, updated_at";

/// The SQLite store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if missing) the
    /// database file at `path`, switches it to WAL mode and applies the
    /// migrations in `crates/ipintel-store/migrations/`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        create_parent_dir(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it returns, so an
            // acknowledged report survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes every connection; later calls fail with [`StoreError::Database`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let provisioned_at = key.plan.map(|_| key.created_at);
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, label, plan, daily_limit_override, \
             created_at, revoked_at, plan_provisioned_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, NULL, ?, CAST(strftime('%s', 'now') AS INTEGER))",
        )
        .bind(key.id.as_str())
        .bind(key.secret_hash.as_bytes().as_slice())
        .bind(key.label.as_deref())
        .bind(key.plan.map(Plan::as_str))
        .bind(key.daily_limit_override.map(to_i64))
        .bind(key.created_at)
        .bind(provisioned_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_key_from_row).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| stored_key_from_row(row).map(|key| key.info))
            .collect()
    }

    async fn revoke_key(&self, id: &KeyId, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ?, updated_at = CAST(strftime('%s', 'now') AS INTEGER) \
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_plan(
        &self,
        id: &KeyId,
        plan: Plan,
        daily_limit_override: Option<u64>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET plan = ?, daily_limit_override = ?, \
             plan_provisioned_at = ?, updated_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE id = ?",
        )
        .bind(plan.as_str())
        .bind(daily_limit_override.map(to_i64))
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn provision_plan(&self, id: &KeyId, plan: Plan, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET plan = ?, plan_provisioned_at = ?, updated_at = CAST(strftime('%s', 'now') AS INTEGER) \
             WHERE id = ? AND plan IS NULL",
        )
        .bind(plan.as_str())
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for delta in deltas {
            sqlx::query(
                "INSERT INTO usage_daily (key_id, day, count) VALUES (?, ?, ?) \
                 ON CONFLICT (key_id, day) \
                 DO UPDATE SET count = usage_daily.count + excluded.count",
            )
            .bind(delta.key.as_str())
            .bind(delta.day.to_string())
            .bind(to_i64(delta.count))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage_between(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<u64, StoreError> {
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(count), 0) FROM usage_daily \
             WHERE key_id = ? AND day >= ? AND day <= ?",
        )
        .bind(id.as_str())
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_one(&self.pool)
        .await?;
        to_u64(total, "usage_daily", "count")
    }

    async fn usage_by_day(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<Vec<(UtcDay, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, count FROM usage_daily \
             WHERE key_id = ? AND day >= ? AND day <= ? ORDER BY day",
        )
        .bind(id.as_str())
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("day")?;
                let day = text.parse().map_err(|err: crate::day::BadDay| {
                    corrupt("usage_daily", "day", err.to_string())
                })?;
                let count = to_u64(row.try_get("count")?, "usage_daily", "count")?;
                Ok((day, count))
            })
            .collect()
    }

    async fn usage_for_day(&self, day: UtcDay) -> Result<Vec<(KeyId, u64)>, StoreError> {
        let rows = sqlx::query("SELECT key_id, count FROM usage_daily WHERE day = ?")
            .bind(day.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let id = parse_key_id(row.try_get("key_id")?, "usage_daily")?;
                let count = to_u64(row.try_get("count")?, "usage_daily", "count")?;
                Ok((id, count))
            })
            .collect()
    }

    async fn clock(&self) -> Result<i64, StoreError> {
        let now: i64 = sqlx::query_scalar("SELECT CAST(strftime('%s', 'now') AS INTEGER)")
            .fetch_one(&self.pool)
            .await?;
        Ok(now)
    }

    async fn keys_changed_since(&self, since: i64) -> Result<Vec<StoredKey>, StoreError> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE updated_at >= ? ORDER BY updated_at");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_key_from_row).collect()
    }

    async fn insert_report(
        &self,
        report: &NewReport,
        rules: &ReportRules,
    ) -> Result<ReportInsert, StoreError> {
        // IMMEDIATE takes the write lock first: the checks below and the
        // insert run with no other writer in between, in any process.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(refusal) = report_sql::refusal(&mut tx, report, rules).await? {
            tx.rollback().await?;
            return Ok(refusal);
        }
        let id = report_sql::insert(&mut tx, report).await?;
        tx.commit().await?;
        Ok(ReportInsert::Stored(StoredReport {
            id,
            report: report.clone(),
        }))
    }

    async fn reports_since(&self, since: i64) -> Result<Vec<StoredReport>, StoreError> {
        report_sql::since(&self.pool, since).await
    }

    async fn reports_by_key(
        &self,
        id: &KeyId,
        limit: u32,
    ) -> Result<Vec<StoredReport>, StoreError> {
        report_sql::by_key(&self.pool, id, limit).await
    }

    async fn reports_after(&self, after: i64, limit: u32) -> Result<Vec<StoredReport>, StoreError> {
        report_sql::after(&self.pool, after, limit).await
    }

    async fn reports_with_ids(&self, ids: &[i64]) -> Result<Vec<StoredReport>, StoreError> {
        report_sql::with_ids(&self.pool, ids).await
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}

fn stored_key_from_row(row: &SqliteRow) -> Result<StoredKey, StoreError> {
    KeyRow {
        id: row.try_get("id")?,
        secret_hash: row.try_get("secret_hash")?,
        label: row.try_get("label")?,
        plan: row.try_get("plan")?,
        daily_limit_override: row.try_get("daily_limit_override")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        plan_provisioned_at: row.try_get("plan_provisioned_at")?,
        updated_at: row.try_get("updated_at")?,
    }
    .into_stored()
}

//! [`Store`] on a PostgreSQL database, via sqlx's runtime query API.
//!
//! The tables are those of the SQLite store in PostgreSQL's types (see
//! `migrations/postgres/`). Several processes may share one database: every
//! write is a single statement or a transaction, and the report rules are
//! checked under a per-key advisory lock.

mod reports;
mod url;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};

pub use self::url::{BadDatabaseUrl, PostgresUrl};
use crate::day::UtcDay;
use crate::key::KeyId;
use crate::plan::Plan;
use crate::rows::{corrupt, parse_key_id, to_i64, to_u64, KeyRow};
use crate::store::{
    KeyInfo, NewKey, NewReport, ReportInsert, ReportRules, Store, StoredKey, StoredReport,
    UsageDelta,
};
use crate::StoreError;

/// Connections in the pool. Each statement is short; the request path
/// reaches the store only on a cache miss, a flush or a report.
const MAX_CONNECTIONS: u32 = 8;
/// How long getting a pooled connection may take, waiting for a free one
/// and opening a new one included; past it the operation fails and the API
/// answers 503 `store_unavailable`. This bounds every request that needs
/// the store while PostgreSQL is unreachable: sqlx keeps retrying a
/// refused connection until this deadline, and a database that accepts
/// connections but never answers is given up on only at it. Statements
/// take milliseconds, so a healthy pool never comes near it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the first connection, made at start-up for the migrations,
/// may take: more patient than a request, since nothing waits on it.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const KEY_COLUMNS: &str = "id, secret_hash, label, plan, daily_limit_override, created_at, \
                           revoked_at, plan_provisioned_at, updated_at";

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pool's options: they would show the password.
        f.debug_struct("PostgresStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and applies the migrations in
    /// `crates/ipintel-store/migrations/postgres/`.
    ///
    /// The tables live in the first schema of the connection's
    /// `search_path` (normally `public`; a URL can set another with
    /// `?options=-c%20search_path%3DNAME`), which must exist.
    pub async fn open(url: &PostgresUrl) -> Result<Self, StoreError> {
        let mut options = url.connect_options();
        if options.get_application_name().is_none() {
            options = options.application_name("ipintel");
        }
        // One connection first, for the set-up and for a clear error: a
        // pool that cannot connect reports only that it timed out.
        let mut conn = connect(&options).await?;
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut conn)
            .await?;
        let Some(schema) = schema else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "no schema of the search_path exists; create it, or name an existing one".into(),
            )));
        };
        MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
        tracing::debug!(schema, "PostgreSQL store open");

        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(IDLE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Closes every connection; later calls fail with [`StoreError::Database`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let provisioned_at = key.plan.map(|_| key.created_at);
        sqlx::query(
            "INSERT INTO api_keys (id, secret_hash, label, plan, daily_limit_override, \
             created_at, revoked_at, plan_provisioned_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, FLOOR(EXTRACT(EPOCH FROM clock_timestamp()))::BIGINT)",
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
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
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
            "UPDATE api_keys SET revoked_at = $1, updated_at = FLOOR(EXTRACT(EPOCH FROM clock_timestamp()))::BIGINT \
             WHERE id = $2 AND revoked_at IS NULL",
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
            "UPDATE api_keys SET plan = $1, daily_limit_override = $2, \
             plan_provisioned_at = $3, updated_at = FLOOR(EXTRACT(EPOCH FROM clock_timestamp()))::BIGINT WHERE id = $4",
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
            "UPDATE api_keys SET plan = $1, plan_provisioned_at = $2, updated_at = FLOOR(EXTRACT(EPOCH FROM clock_timestamp()))::BIGINT \
             WHERE id = $3 AND plan IS NULL",
        )
        .bind(plan.as_str())
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        // One statement, so one transaction: all rows are added or none.
        // The rows go in sorted by (key, day), so two concurrent flushes
        // lock shared rows in the same order and cannot deadlock; equal
        // rows are merged first, as a statement may not update a row twice.
        let mut merged: BTreeMap<(&str, UtcDay), u64> = BTreeMap::new();
        for delta in deltas {
            let count = merged.entry((delta.key.as_str(), delta.day)).or_default();
            *count = count.saturating_add(delta.count);
        }
        if merged.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(merged.len());
        let mut days = Vec::with_capacity(merged.len());
        let mut counts = Vec::with_capacity(merged.len());
        for ((key, day), count) in merged {
            keys.push(key);
            days.push(day.to_string());
            counts.push(to_i64(count));
        }
        sqlx::query(
            "INSERT INTO usage_daily (key_id, day, count) \
             SELECT key_id, day::date, count \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS delta (key_id, day, count) \
             ON CONFLICT (key_id, day) \
             DO UPDATE SET count = usage_daily.count + EXCLUDED.count",
        )
        .bind(keys)
        .bind(days)
        .bind(counts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn usage_between(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<u64, StoreError> {
        // SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
        let total: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(count), 0)::BIGINT FROM usage_daily \
             WHERE key_id = $1 AND day >= $2::date AND day <= $3::date",
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
            "SELECT to_char(day, 'YYYY-MM-DD') AS day, count FROM usage_daily \
             WHERE key_id = $1 AND day >= $2::date AND day <= $3::date ORDER BY day",
        )
        .bind(id.as_str())
        .bind(first.to_string())
        .bind(last.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let day = parse_day(row.try_get("day")?)?;
                let count = to_u64(row.try_get("count")?, "usage_daily", "count")?;
                Ok((day, count))
            })
            .collect()
    }

    async fn usage_for_day(&self, day: UtcDay) -> Result<Vec<(KeyId, u64)>, StoreError> {
        let rows = sqlx::query("SELECT key_id, count FROM usage_daily WHERE day = $1::date")
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
        let now: i64 =
            sqlx::query_scalar("SELECT FLOOR(EXTRACT(EPOCH FROM clock_timestamp()))::BIGINT")
                .fetch_one(&self.pool)
                .await?;
        Ok(now)
    }

    async fn keys_changed_since(&self, since: i64) -> Result<Vec<StoredKey>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE updated_at >= $1 ORDER BY updated_at"
        );
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
        let mut tx = self.pool.begin().await?;
        // Held until commit or rollback: another insertion for this key,
        // from any connection or process, waits here, and its checks then
        // see this one's row (READ COMMITTED reads what is committed when
        // each statement starts).
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(reports::LOCK_NAMESPACE)
            .bind(reports::lock_key(&report.key_id))
            .execute(&mut *tx)
            .await?;
        if let Some(refusal) = reports::refusal(&mut tx, report, rules).await? {
            tx.rollback().await?;
            return Ok(refusal);
        }
        let id = reports::insert(&mut tx, report).await?;
        tx.commit().await?;
        Ok(ReportInsert::Stored(StoredReport {
            id,
            report: report.clone(),
        }))
    }

    async fn reports_since(&self, since: i64) -> Result<Vec<StoredReport>, StoreError> {
        reports::since(&self.pool, since).await
    }

    async fn reports_by_key(
        &self,
        id: &KeyId,
        limit: u32,
    ) -> Result<Vec<StoredReport>, StoreError> {
        reports::by_key(&self.pool, id, limit).await
    }

    async fn reports_after(&self, after: i64, limit: u32) -> Result<Vec<StoredReport>, StoreError> {
        reports::after(&self.pool, after, limit).await
    }

    async fn reports_with_ids(&self, ids: &[i64]) -> Result<Vec<StoredReport>, StoreError> {
        reports::with_ids(&self.pool, ids).await
    }

    async fn close(&self) {
        PostgresStore::close(self).await;
    }
}

fn stored_key_from_row(row: &PgRow) -> Result<StoredKey, StoreError> {
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

/// One connection, within [`OPEN_TIMEOUT`].
async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(OPEN_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(connected) => connected,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from PostgreSQL within {} s",
                OPEN_TIMEOUT.as_secs()
            ),
        ))),
    }
}

fn parse_day(text: String) -> Result<UtcDay, StoreError> {
    text.parse()
        .map_err(|err: crate::day::BadDay| corrupt("usage_daily", "day", err.to_string()))
}

//! The SQL of the `reports` table (SQLite).

use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite, Transaction};

use super::NetKey;
use crate::day::UtcDay;
use crate::key::KeyId;
use crate::plan::Plan;
use crate::rows::{to_u64, ReportRow};
use crate::store::{NewReport, ReportInsert, ReportRules, StoredReport};
use crate::StoreError;

const COLUMNS: &str = "id, key_id, ip, categories, severity, confidence, comment, \
                       reported_at, received_at, country, asn, asn_name, \
                       reporter_network, reporter_plan";

/// Why `report` may not be stored, if it may not: a duplicate first, then
/// the daily limit.
pub(crate) async fn refusal(
    tx: &mut Transaction<'static, Sqlite>,
    report: &NewReport,
    rules: &ReportRules,
) -> Result<Option<ReportInsert>, StoreError> {
    let now = report.received_at;
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(received_at) FROM reports \
         WHERE key_id = ? AND ip = ? AND received_at > ?",
    )
    .bind(report.key_id.as_str())
    .bind(report.ip.to_string())
    .bind(now - rules.duplicate_window_secs)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(last) = last {
        let left = last + rules.duplicate_window_secs - now;
        return Ok(Some(ReportInsert::Duplicate {
            retry_after_secs: u64::try_from(left).unwrap_or(0).max(1),
        }));
    }
    let day = UtcDay::from_unix(now);
    let used: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM reports WHERE key_id = ? AND received_at >= ? AND received_at < ?",
    )
    .bind(report.key_id.as_str())
    .bind(day.start_unix())
    .bind(day.next_start_unix())
    .fetch_one(&mut **tx)
    .await?;
    if to_u64(used, "reports", "count")? >= rules.daily_limit {
        let left = day.next_start_unix() - now;
        return Ok(Some(ReportInsert::QuotaExceeded {
            limit: rules.daily_limit,
            retry_after_secs: u64::try_from(left).unwrap_or(0).max(1),
        }));
    }
    Ok(None)
}

/// Inserts the row; returns its id.
pub(crate) async fn insert(
    tx: &mut Transaction<'static, Sqlite>,
    report: &NewReport,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO reports (key_id, ip, ip_family, network_key, categories, severity, \
         confidence, comment, reported_at, received_at, country, asn, asn_name, \
         reporter_network, reporter_plan) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(report.key_id.as_str())
    .bind(report.ip.to_string())
    .bind(if report.ip.is_ipv4() { 4 } else { 6 })
    .bind(NetKey::of(report.ip).to_string())
    .bind(report.categories.to_names())
    .bind(i64::from(report.severity.level()))
    .bind(i64::from(report.confidence))
    .bind(report.comment.as_deref())
    .bind(report.reported_at)
    .bind(report.received_at)
    .bind(report.country.as_deref())
    .bind(report.asn.map(i64::from))
    .bind(report.asn_name.as_deref())
    .bind(report.reporter_network.map(|n| n.to_string()))
    .bind(report.reporter_plan.map(Plan::as_str))
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// Reports received at or after `since`, oldest first.
pub(crate) async fn since(pool: &SqlitePool, since: i64) -> Result<Vec<StoredReport>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE received_at >= ? ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The latest `limit` reports of key `id`, newest first (read-only).
pub(crate) async fn by_key(
    pool: &SqlitePool,
    id: &KeyId,
    limit: u32,
) -> Result<Vec<StoredReport>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE key_id = ? ORDER BY id DESC LIMIT ?");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The first `limit` reports with an id above `after`, in id order.
pub(crate) async fn after(
    pool: &SqlitePool,
    after: i64,
    limit: u32,
) -> Result<Vec<StoredReport>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE id > ? ORDER BY id LIMIT ?");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The reports among `ids`, in id order.
pub(crate) async fn with_ids(
    pool: &SqlitePool,
    ids: &[i64],
) -> Result<Vec<StoredReport>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One parameter whatever the number of ids: a JSON array of integers,
    // unpacked by SQLite's json_each.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT {COLUMNS} FROM reports \
         WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(format!("[{list}]"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &SqliteRow) -> Result<StoredReport, StoreError> {
    ReportRow {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        ip: row.try_get("ip")?,
        categories: row.try_get("categories")?,
        severity: row.try_get("severity")?,
        confidence: row.try_get("confidence")?,
        comment: row.try_get("comment")?,
        reported_at: row.try_get("reported_at")?,
        received_at: row.try_get("received_at")?,
        country: row.try_get("country")?,
        asn: row.try_get("asn")?,
        asn_name: row.try_get("asn_name")?,
        reporter_network: row.try_get("reporter_network")?,
        reporter_plan: row.try_get("reporter_plan")?,
    }
    .into_stored()
}

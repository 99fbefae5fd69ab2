//! The SQL of the `reports` table (PostgreSQL).

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};

use crate::day::UtcDay;
use crate::key::KeyId;
use crate::plan::Plan;
use crate::reports::NetKey;
use crate::rows::{to_u64, ReportRow};
use crate::store::{NewReport, ReportInsert, ReportRules, StoredReport};
use crate::StoreError;

/// First half of the advisory lock taken around a report insertion ("ipin"
/// in ASCII), so that it cannot meet other users' two-key locks by chance.
pub(super) const LOCK_NAMESPACE: i32 = 0x6970_696e;

/// `ip` is read back as text without a prefix length (`host()`), the
/// small integers widened to BIGINT.
const COLUMNS: &str = "id, key_id, host(ip) AS ip, categories, severity::BIGINT AS severity, \
                       confidence::BIGINT AS confidence, comment, reported_at, received_at, \
                       country, asn, asn_name, reporter_network, reporter_plan";

/// Second half of the advisory lock: the key id hashed to 32 bits. Keys
/// that share a hash only wait for each other.
pub(super) fn lock_key(id: &KeyId) -> i32 {
    let digest = Sha256::digest(id.as_str().as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Why `report` may not be stored, if it may not: a duplicate first, then
/// the daily limit.
pub(super) async fn refusal(
    tx: &mut Transaction<'static, Postgres>,
    report: &NewReport,
    rules: &ReportRules,
) -> Result<Option<ReportInsert>, StoreError> {
    let now = report.received_at;
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(received_at) FROM reports \
         WHERE key_id = $1 AND ip = $2::inet AND received_at > $3",
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
        "SELECT COUNT(*) FROM reports \
         WHERE key_id = $1 AND received_at >= $2 AND received_at < $3",
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
pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    report: &NewReport,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO reports (key_id, ip, ip_family, network_key, categories, severity, \
         confidence, comment, reported_at, received_at, country, asn, asn_name, \
         reporter_network, reporter_plan) \
         VALUES ($1, $2::inet, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         RETURNING id",
    )
    .bind(report.key_id.as_str())
    .bind(report.ip.to_string())
    .bind(if report.ip.is_ipv4() { 4_i16 } else { 6 })
    .bind(NetKey::of(report.ip).to_string())
    .bind(report.categories.to_names())
    .bind(i16::from(report.severity.level()))
    .bind(i16::from(report.confidence))
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
///
/// Ids come from a sequence: they increase in the order rows are inserted,
/// which for two keys reporting at once may differ from the commit order.
pub(super) async fn since(pool: &PgPool, since: i64) -> Result<Vec<StoredReport>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE received_at >= $1 ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The latest `limit` reports of key `id`, newest first.
pub(super) async fn by_key(
    pool: &PgPool,
    id: &KeyId,
    limit: u32,
) -> Result<Vec<StoredReport>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE key_id = $1 ORDER BY id DESC LIMIT $2");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The first `limit` committed reports with an id above `after`, in id
/// order. A row whose id was handed out earlier but that commits later is
/// not among them if this runs before its commit.
pub(super) async fn after(
    pool: &PgPool,
    after: i64,
    limit: u32,
) -> Result<Vec<StoredReport>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE id > $1 ORDER BY id LIMIT $2");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The committed reports among `ids`, in id order.
pub(super) async fn with_ids(pool: &PgPool, ids: &[i64]) -> Result<Vec<StoredReport>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM reports WHERE id = ANY($1) ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &PgRow) -> Result<StoredReport, StoreError> {
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

//! Rows as both SQL stores read them: plain column values, checked and
//! turned into the store's types in one place, so that SQLite and
//! PostgreSQL accept and refuse exactly the same stored values.

use std::net::IpAddr;
use std::str::FromStr;

use ipintel_core::reports::{ReportCategories, Severity};

use crate::key::{KeyId, SecretHash};
use crate::store::{KeyInfo, NewReport, StoredKey, StoredReport};
use crate::StoreError;

/// The columns of an `api_keys` row.
#[derive(Debug)]
pub(crate) struct KeyRow {
    pub(crate) id: String,
    pub(crate) secret_hash: Vec<u8>,
    pub(crate) label: Option<String>,
    pub(crate) plan: Option<String>,
    pub(crate) daily_limit_override: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) plan_provisioned_at: Option<i64>,
    pub(crate) updated_at: i64,
}

impl KeyRow {
    pub(crate) fn into_stored(self) -> Result<StoredKey, StoreError> {
        let secret_hash = SecretHash::from_slice(&self.secret_hash).ok_or_else(|| {
            corrupt(
                "api_keys",
                "secret_hash",
                format!(
                    "{} bytes, expected {}",
                    self.secret_hash.len(),
                    SecretHash::LEN
                ),
            )
        })?;
        let info = KeyInfo {
            id: parse_key_id(self.id, "api_keys")?,
            label: self.label,
            plan: parse_optional(self.plan, "api_keys", "plan")?,
            daily_limit_override: self
                .daily_limit_override
                .map(|v| to_u64(v, "api_keys", "daily_limit_override"))
                .transpose()?,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            plan_provisioned_at: self.plan_provisioned_at,
        };
        Ok(StoredKey {
            info,
            secret_hash,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of a `reports` row, the address as text.
#[derive(Debug)]
pub(crate) struct ReportRow {
    pub(crate) id: i64,
    pub(crate) key_id: String,
    pub(crate) ip: String,
    pub(crate) categories: String,
    pub(crate) severity: i64,
    pub(crate) confidence: i64,
    pub(crate) comment: Option<String>,
    pub(crate) reported_at: i64,
    pub(crate) received_at: i64,
    pub(crate) country: Option<String>,
    pub(crate) asn: Option<i64>,
    pub(crate) asn_name: Option<String>,
    pub(crate) reporter_network: Option<String>,
    pub(crate) reporter_plan: Option<String>,
}

impl ReportRow {
    pub(crate) fn into_stored(self) -> Result<StoredReport, StoreError> {
        let bad = |column, what: &dyn std::fmt::Display| {
            corrupt("reports", column, format!("unreadable value {what}"))
        };
        let ip: IpAddr = self.ip.parse().map_err(|_| bad("ip", &self.ip))?;
        let categories =
            ReportCategories::parse_list(&self.categories).map_err(|e| bad("categories", &e))?;
        let severity = u8::try_from(self.severity)
            .ok()
            .and_then(Severity::from_level)
            .ok_or_else(|| bad("severity", &self.severity))?;
        let confidence = u8::try_from(self.confidence)
            .ok()
            .filter(|c| *c <= 100)
            .ok_or_else(|| bad("confidence", &self.confidence))?;
        let asn = self
            .asn
            .map(|v| u32::try_from(v).map_err(|_| bad("asn", &v)))
            .transpose()?;
        let report = NewReport {
            key_id: parse_key_id(self.key_id, "reports")?,
            ip,
            categories,
            severity,
            confidence,
            comment: self.comment,
            reported_at: self.reported_at,
            received_at: self.received_at,
            country: self.country,
            asn,
            asn_name: self.asn_name,
            reporter_network: parse_optional(self.reporter_network, "reports", "reporter_network")?,
            reporter_plan: parse_optional(self.reporter_plan, "reports", "reporter_plan")?,
        };
        Ok(StoredReport {
            id: self.id,
            report,
        })
    }
}

/// A stored key id (column `id` of `api_keys`, `key_id` elsewhere).
pub(crate) fn parse_key_id(text: String, table: &'static str) -> Result<KeyId, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt {
        table,
        column: if table == "api_keys" { "id" } else { "key_id" },
        message: format!("{text:?} is not a key id"),
    })
}

/// A nullable text column parsed into `T`.
fn parse_optional<T>(
    text: Option<String>,
    table: &'static str,
    column: &'static str,
) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.map(|t| {
        t.parse()
            .map_err(|e| corrupt(table, column, format!("unreadable value {e}")))
    })
    .transpose()
}

/// SQL integers are signed; counts and limits never reach 2^63.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A count or limit read back: negative means the row was edited by hand.
pub(crate) fn to_u64(
    value: i64,
    table: &'static str,
    column: &'static str,
) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(table, column, format!("negative value {value}")))
}

pub(crate) fn corrupt(table: &'static str, column: &'static str, message: String) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        message,
    }
}

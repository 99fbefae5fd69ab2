//! API keys, plans and usage metering for ipintel.
//!
//! - [`key`]: key generation, strict parsing and hashing for storage.
//! - [`Plan`] and [`PlanLimits`]: the plans and their daily limits.
//! - [`Store`]: the storage interface, with [`SqliteStore`] on a SQLite file
//!   and [`PostgresStore`] on a PostgreSQL database; [`StoreLocation`] reads
//!   which one a setting names and opens it.
//! - [`Accounts`]: the request path's key cache and usage meter, flushed to
//!   the store by a background task.
//! - [`SharedQuota`]: daily quotas enforced across nodes through Redis,
//!   attached to the [`Accounts`] of each node, with a documented fallback
//!   while Redis is unreachable.
//! - [`reports`]: abuse reports, stored by a [`ReportDesk`] and held in
//!   memory by a [`ReportIndex`].
#![forbid(unsafe_code)]

mod accounts;
mod day;
mod error;
mod home;
pub mod key;
mod location;
mod plan;
mod postgres;
mod quota;
pub mod reports;
mod rows;
mod sqlite;
mod store;

pub use accounts::background::{FLUSH_INTERVAL, POLL_INTERVAL};
pub use accounts::{Accounts, DayUsage, KeyHandle, Quota, UsageReport, HISTORY_DAYS};
pub use day::{UtcDay, SECS_PER_DAY};
pub use error::{AuthError, StoreError};
pub use home::HomeRuntime;
pub use key::{KeyFormatError, KeyId, PresentedKey};
pub use location::StoreLocation;
pub use plan::{Plan, PlanLimits, UnknownPlan};
pub use postgres::{BadDatabaseUrl, PostgresStore, PostgresUrl};
pub use quota::{
    lease_block, BadRedisUrl, QuotaFallback, QuotaStats, RedisUrl, SharedQuota,
    SharedQuotaSettings, EXACT_MAX_LIMIT, REDIS_RETRY_INTERVAL,
};
pub use reports::{
    AreaReportStats, LiveItem, NetKey, NetworkReports, ReportDesk, ReportError, ReportIndex,
    ReportSettings, ReporterNet, REPORT_POLL_INTERVAL,
};
pub use sqlite::SqliteStore;
pub use store::{
    KeyInfo, NewKey, NewReport, ReportInsert, ReportRules, Store, StoredKey, StoredReport,
    UsageDelta,
};

/// Longest comment kept with a report, in characters (longer ones are cut).
pub const MAX_COMMENT_CHARS: usize = 1024;

/// The current Unix time in seconds, from the system clock.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

//! Accepting a report: store it (committed), then index it.

use std::fmt;
use std::sync::Arc;

use ipintel_core::reports::WINDOW_SECS;

use super::ReportIndex;
use crate::plan::{Plan, PlanLimits};
use crate::store::{NewReport, ReportInsert, ReportRules, Store, StoredReport};
use crate::StoreError;

/// A key reporting the same address again within this many seconds is
/// refused (`duplicate_report`).
pub const DUPLICATE_WINDOW_SECS: i64 = 15 * 60;

/// Settings of the report service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSettings {
    /// The live feed groups IPv6 addresses by this prefix length (1..=64).
    pub live_v6_prefix: u8,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self { live_v6_prefix: 64 }
    }
}

/// Why a report was not accepted.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ReportError {
    /// The key reported this address less than 15 minutes ago.
    #[error("this key reported this address less than 15 minutes ago")]
    Duplicate {
        /// Seconds until it may report the address again.
        retry_after_secs: u64,
    },
    /// The key's daily report limit is reached.
    #[error("daily limit of {limit} reports reached")]
    QuotaExceeded {
        /// The limit.
        limit: u64,
        /// Seconds until the next 00:00 UTC.
        retry_after_secs: u64,
    },
    /// The store failed; nothing was acknowledged.
    #[error("report store failed: {0}")]
    Store(#[from] StoreError),
    /// The storing task ended abnormally (a panic); nothing was acknowledged.
    #[error("the report task failed: {0}")]
    Task(String),
}

/// Stores and indexes reports. Share it in an `Arc`.
pub struct ReportDesk {
    store: Arc<dyn Store>,
    index: Arc<ReportIndex>,
    limits: PlanLimits,
    settings: ReportSettings,
}

impl fmt::Debug for ReportDesk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportDesk")
            .field("index", &self.index)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ReportDesk {
    /// A desk whose index holds the reports received in the last 30 days
    /// before `now`, read from `store`.
    pub async fn open(
        store: Arc<dyn Store>,
        limits: PlanLimits,
        settings: ReportSettings,
        now: i64,
    ) -> Result<Arc<ReportDesk>, StoreError> {
        let reports = store.reports_since(now - WINDOW_SECS).await?;
        let index = Arc::new(ReportIndex::from_reports(&reports, now));
        tracing::info!(
            reports = reports.len(),
            addresses = index.len(),
            "abuse reports loaded"
        );
        Ok(Arc::new(ReportDesk {
            store,
            index,
            limits,
            settings,
        }))
    }

    /// A desk with an empty index (nothing read from `store`): for a new
    /// database, or before [`ReportDesk::open`] has run.
    pub fn unloaded(
        store: Arc<dyn Store>,
        limits: PlanLimits,
        settings: ReportSettings,
    ) -> Arc<ReportDesk> {
        Arc::new(ReportDesk {
            store,
            index: Arc::new(ReportIndex::new()),
            limits,
            settings,
        })
    }

    /// The index of accepted reports.
    pub fn index(&self) -> &Arc<ReportIndex> {
        &self.index
    }

    /// The settings.
    pub fn settings(&self) -> ReportSettings {
        self.settings
    }

    /// The daily report limit of a key on `plan`.
    pub fn daily_limit(&self, plan: Plan) -> u64 {
        self.limits.daily_report_limit(Some(plan))
    }

    /// Stores `report` (refusing a duplicate or one over the key's daily
    /// limit), waits for the commit, then indexes it. The work runs in its
    /// own task: a client that hangs up cannot leave a committed report
    /// out of the index.
    pub async fn submit(
        self: &Arc<Self>,
        report: NewReport,
        plan: Plan,
    ) -> Result<StoredReport, ReportError> {
        let desk = Arc::clone(self);
        let task = tokio::spawn(async move { desk.store_and_index(report, plan).await });
        task.await
            .map_err(|err| ReportError::Task(err.to_string()))?
    }

    async fn store_and_index(
        &self,
        report: NewReport,
        plan: Plan,
    ) -> Result<StoredReport, ReportError> {
        let rules = ReportRules {
            duplicate_window_secs: DUPLICATE_WINDOW_SECS,
            daily_limit: self.daily_limit(plan),
        };
        match self.store.insert_report(&report, &rules).await? {
            ReportInsert::Stored(stored) => {
                self.index.add(&stored.report, stored.report.received_at);
                Ok(stored)
            }
            ReportInsert::Duplicate { retry_after_secs } => {
                Err(ReportError::Duplicate { retry_after_secs })
            }
            ReportInsert::QuotaExceeded {
                limit,
                retry_after_secs,
            } => Err(ReportError::QuotaExceeded {
                limit,
                retry_after_secs,
            }),
        }
    }
}

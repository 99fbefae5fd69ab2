//! Accepting a report: store it (committed), then index it; and reading
//! the reports other processes accepted (see [`super::poll`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use ipintel_core::reports::WINDOW_SECS;
use tokio::time::MissedTickBehavior;

use super::poll::{Seen, PAGE, PAGES_PER_POLL, REPORT_POLL_INTERVAL};
use super::ReportIndex;
use crate::plan::{Plan, PlanLimits};
use crate::store::{NewReport, ReportInsert, ReportRules, Store, StoredReport};
use crate::{now_unix, StoreError};

/// A key reporting the same address again within this many seconds is
/// refused (`duplicate_report`).
pub const DUPLICATE_WINDOW_SECS: i64 = 15 * 60;

/// How long storing one report may take, getting a connection included,
/// before the desk gives up and refuses it (503, "store unavailable"). The
/// pool bounds the wait for a connection, but not a statement on a
/// connection that stops answering mid-transaction (a network partition):
/// without this the request would hang until the network heals or the
/// kernel gives up on the socket, minutes later. A report given up on was
/// not acknowledged, yet it may still commit: the PostgreSQL store runs
/// each call as a task on its own runtime (`HomeRuntime`), which goes on
/// after the request stops waiting. The poll then indexes it, and sending
/// it again gets `duplicate_report`.
pub(crate) const REPORT_STORE_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// Which report ids are in the index.
    seen: Mutex<Seen>,
    /// Held by the poll that runs, so that two never interleave.
    polling: tokio::sync::Mutex<()>,
    poll_failing: AtomicBool,
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
    /// before `now`, read from `store`, and that from then on reads every
    /// [`REPORT_POLL_INTERVAL`] the reports other processes store (see
    /// [`ReportDesk::catch_up`]). The poll runs in a task of its own, which
    /// ends when the desk is dropped or the store closed.
    pub async fn open(
        store: Arc<dyn Store>,
        limits: PlanLimits,
        settings: ReportSettings,
        now: i64,
    ) -> Result<Arc<ReportDesk>, StoreError> {
        let reports = store.reports_since(now - WINDOW_SECS).await?;
        let index = ReportIndex::from_reports(&reports, now);
        tracing::info!(
            reports = reports.len(),
            addresses = index.len(),
            "abuse reports loaded"
        );
        let ids: Vec<i64> = reports.iter().map(|stored| stored.id).collect();
        let desk = Self::with_index(
            store,
            limits,
            settings,
            index,
            Seen::after_load(&ids, Instant::now()),
        );
        spawn_poll(&desk);
        Ok(desk)
    }

    /// A desk with an empty index (nothing read from `store`, no poll): for
    /// a new database, or before [`ReportDesk::open`] has run.
    pub fn unloaded(
        store: Arc<dyn Store>,
        limits: PlanLimits,
        settings: ReportSettings,
    ) -> Arc<ReportDesk> {
        Self::with_index(store, limits, settings, ReportIndex::new(), Seen::default())
    }

    fn with_index(
        store: Arc<dyn Store>,
        limits: PlanLimits,
        settings: ReportSettings,
        index: ReportIndex,
        seen: Seen,
    ) -> Arc<ReportDesk> {
        Arc::new(ReportDesk {
            store,
            index: Arc::new(index),
            limits,
            settings,
            seen: Mutex::new(seen),
            polling: tokio::sync::Mutex::new(()),
            poll_failing: AtomicBool::new(false),
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
        let insert = self.store.insert_report(&report, &rules);
        let Ok(inserted) = tokio::time::timeout(REPORT_STORE_TIMEOUT, insert).await else {
            return Err(ReportError::Store(StoreError::TimedOut(
                "storing the report",
            )));
        };
        match inserted? {
            ReportInsert::Stored(stored) => {
                // A poll may have read the committed row already.
                if lock(&self.seen).claim(stored.id) {
                    self.index.add(&stored.report, stored.report.received_at);
                }
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

impl ReportDesk {
    /// Indexes the reports that other processes (or other desks on the
    /// same store) stored since the last call, and those that committed
    /// late; returns how many it added. Reports already in the index, this
    /// desk's own included, are not added again. The poll task calls this
    /// every [`REPORT_POLL_INTERVAL`]; tests may call it directly.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let _polling = self.polling.lock().await;
        let mut added = self.read_gaps().await?;
        for _ in 0..PAGES_PER_POLL {
            let after = lock(&self.seen).high();
            let page = self.store.reports_after(after, PAGE).await?;
            let ids: Vec<i64> = page.iter().map(|stored| stored.id).collect();
            let (fresh, given_up) = lock(&self.seen).take_page(&ids, Instant::now());
            note_given_up(given_up, "too many skipped report ids at once");
            added += self.add_fresh(&page, &fresh);
            if page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(added)
    }

    /// Asks again for the ids a poll skipped; indexes those now committed.
    async fn read_gaps(&self) -> Result<usize, StoreError> {
        let (awaited, given_up) = lock(&self.seen).awaited(Instant::now());
        note_given_up(given_up, "skipped report ids never committed");
        if awaited.is_empty() {
            return Ok(0);
        }
        let found = self.store.reports_with_ids(&awaited).await?;
        let fresh: Vec<bool> = {
            let mut seen = lock(&self.seen);
            found.iter().map(|stored| seen.claim(stored.id)).collect()
        };
        Ok(self.add_fresh(&found, &fresh))
    }

    /// Indexes the reports marked fresh that are inside the window.
    fn add_fresh(&self, reports: &[StoredReport], fresh: &[bool]) -> usize {
        let now = now_unix();
        let mut added = 0;
        for (stored, _) in reports.iter().zip(fresh).filter(|(_, fresh)| **fresh) {
            // Rows older than the window are read once at start-up (as
            // gaps, or when none was loaded) and not kept.
            if stored.report.received_at >= now - WINDOW_SECS {
                self.index.add(&stored.report, now);
                added += 1;
            }
        }
        added
    }

    /// Logs the first failure of a run of failed polls, and the recovery.
    fn note_poll(&self, result: &Result<usize, StoreError>) {
        match result {
            Ok(added) => {
                if self.poll_failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("polling abuse reports recovered");
                }
                if *added > 0 {
                    tracing::debug!(added, "abuse reports from other processes indexed");
                }
            }
            Err(error) => {
                if !self.poll_failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(%error, "polling abuse reports failed; retrying");
                }
            }
        }
    }
}

/// Starts the task that calls [`ReportDesk::catch_up`] every
/// [`REPORT_POLL_INTERVAL`]. It holds the desk only while a poll runs, and
/// ends when the desk is dropped or the store is closed.
fn spawn_poll(desk: &Arc<ReportDesk>) {
    let desk = Arc::downgrade(desk);
    tokio::spawn(async move { run_poll(desk).await });
}

async fn run_poll(desk: Weak<ReportDesk>) {
    let mut tick = tokio::time::interval(REPORT_POLL_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(desk) = desk.upgrade() else {
            return;
        };
        let result = desk.catch_up().await;
        if let Err(StoreError::Database(sqlx::Error::PoolClosed)) = result {
            tracing::debug!("the store is closed; the abuse report poll stops");
            return;
        }
        desk.note_poll(&result);
    }
}

fn note_given_up(count: usize, why: &'static str) {
    if count > 0 {
        tracing::debug!(count, why, "stopped waiting for report ids");
    }
}

/// Locks the seen-ids state; it stays consistent even if a holder panicked
/// (every critical section is a few map operations).
fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

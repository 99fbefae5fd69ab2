//! Writing counts to the store and reading key changes back.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::entry::KeyEntry;
use super::{lock, merge, Accounts};
use crate::plan::Plan;
use crate::quota::REDIS_RETRY_INTERVAL;
use crate::store::UsageDelta;
use crate::{now_unix, StoreError};

/// How often pending counts are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often key changes made by other processes are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Changes are re-read this far back, so a change stamped by the database
/// and committed up to this long after its stamp is still seen. (Every
/// stamp comes from the database's clock, so writers' clocks do not matter.)
const POLL_OVERLAP_SECS: i64 = 10;
/// Attempts at the final flush on shutdown.
const FINAL_FLUSH_ATTEMPTS: u32 = 3;

impl Accounts {
    /// Writes every pending count (and pending free-plan provisioning) to
    /// the store now, in one transaction. On failure the counts stay in
    /// memory for the next attempt: nothing is lost or counted twice.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _flushing = self.flush_lock.lock().await;
        let (deltas, provisions) = self.take_pending();
        let result = match self.write_usage(deltas).await {
            Ok(()) => self.write_provisions(&provisions).await,
            Err(error) => {
                provisions.iter().for_each(|e| e.restore_provision());
                Err(error)
            }
        };
        self.note_flush(&result);
        result
    }

    /// Moves every unwritten delta out of the keys' counters.
    fn take_pending(&self) -> (Vec<UsageDelta>, Vec<Arc<KeyEntry>>) {
        let mut deltas = std::mem::take(&mut *lock(&self.retry));
        let mut provisions = Vec::new();
        for entry in self.keys.pin().values() {
            if let Some((day, count)) = entry.take_pending() {
                deltas.push(UsageDelta {
                    key: entry.id.clone(),
                    day,
                    count,
                });
            }
            if entry.take_provision() {
                provisions.push(Arc::clone(entry));
            }
        }
        (merge(deltas), provisions)
    }

    /// Writes the deltas in one transaction, or keeps them all for retry.
    async fn write_usage(&self, deltas: Vec<UsageDelta>) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let result = self.store.add_usage(&deltas).await;
        if result.is_err() {
            lock(&self.retry).extend(deltas);
        }
        result
    }

    /// Persists free plans given in memory; those not written stay pending.
    async fn write_provisions(&self, provisions: &[Arc<KeyEntry>]) -> Result<(), StoreError> {
        let now = now_unix();
        for (done, entry) in provisions.iter().enumerate() {
            if let Err(error) = self.store.provision_plan(&entry.id, Plan::Free, now).await {
                provisions[done..]
                    .iter()
                    .for_each(|e| e.restore_provision());
                return Err(error);
            }
        }
        Ok(())
    }

    /// Logs the first failure of a run of failed flushes, and the recovery.
    fn note_flush(&self, result: &Result<(), StoreError>) {
        match result {
            Ok(()) => {
                if self.flush_failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("usage flush recovered");
                }
            }
            Err(error) => {
                if !self.flush_failing.swap(true, Ordering::AcqRel) {
                    let kept_counts: u64 = lock(&self.retry).iter().map(|d| d.count).sum();
                    tracing::warn!(
                        %error,
                        kept_counts,
                        "usage flush failed; counts kept in memory, retrying"
                    );
                }
            }
        }
    }

    /// Applies key changes (revocations, plan changes, new keys) made in
    /// the store since the last poll, by this or any other process. Returns
    /// the number of changed keys read.
    pub async fn poll_changes(&self) -> Result<usize, StoreError> {
        let seen = self.changes_seen.load(Ordering::Acquire);
        let changed = match self
            .store
            .keys_changed_since(seen - POLL_OVERLAP_SECS)
            .await
        {
            Ok(changed) => changed,
            Err(error) => {
                if !self.poll_failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(%error, "polling key changes failed; retrying");
                }
                return Err(error);
            }
        };
        if self.poll_failing.swap(false, Ordering::AcqRel) {
            tracing::info!("polling key changes recovered");
        }
        let mut latest = seen;
        for stored in &changed {
            latest = latest.max(stored.updated_at);
            self.misses.remove(&stored.info.id);
            if let Some(entry) = self.cached(&stored.info.id) {
                entry.apply(stored, &self.limits);
            }
        }
        self.changes_seen.fetch_max(latest, Ordering::AcqRel);
        Ok(changed.len())
    }

    /// Starts the task that flushes counts every second and polls key
    /// changes every two seconds (and, with a shared quota, retries Redis
    /// and reconciles every second). When `shutdown` is cancelled it
    /// returns unspent quota blocks, flushes once more and ends: await the
    /// handle to lose no count.
    pub fn spawn_background(self: &Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let accounts = Arc::clone(self);
        tokio::spawn(async move { accounts.run_background(shutdown).await })
    }

    async fn run_background(&self, shutdown: CancellationToken) {
        // Each chore runs in a loop of its own, so one stuck on a database
        // that stopped answering mid-statement (a frozen flush can wait
        // minutes for the kernel to give its connection up) does not hold
        // up the others: revocations are still polled meanwhile.
        let sharing = self.shared.get().is_some();
        tokio::join!(
            every(FLUSH_INTERVAL, &shutdown, || async {
                // A failure is logged by `flush` and retried next tick.
                let _ = self.flush().await;
            }),
            every(POLL_INTERVAL, &shutdown, || async {
                let _ = self.poll_changes().await;
            }),
            async {
                if sharing {
                    every(REDIS_RETRY_INTERVAL, &shutdown, || self.sync_shared_quota()).await;
                }
            },
        );
        self.return_leases().await;
        self.final_flush().await;
    }

    async fn final_flush(&self) {
        for attempt in 1..=FINAL_FLUSH_ATTEMPTS {
            match self.flush().await {
                Ok(()) => return,
                Err(_) if attempt < FINAL_FLUSH_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    let lost: u64 = lock(&self.retry).iter().map(|d| d.count).sum();
                    tracing::error!(%error, lost_counts = lost, "final usage flush failed; counts lost");
                }
            }
        }
    }
}

/// Runs `chore` every `period` (a late tick delays the next ones rather
/// than bunching them) until `shutdown` is cancelled; a chore under way
/// is finished first.
async fn every<F, Fut>(period: Duration, shutdown: &CancellationToken, mut chore: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => chore().await,
        }
    }
}

//! Hot reload of the IP data: one reload at a time, built off the request
//! threads at a low CPU priority, swapped in atomically.
//!
//! A reload re-reads the sources file, downloads the URL sources that are
//! due (when enabled), and rebuilds the snapshot only when a data file (or
//! the sources file) changed since the snapshot in service was built. The
//! new snapshot replaces the old one with a single `ArcSwap::store`, so a
//! request sees one or the other, never a mix. When anything fails, the
//! last good snapshot keeps serving and the error is recorded against the
//! source it belongs to in [`DataStatus`].
//!
//! Each reload runs on a thread of its own (`ipintel-reload`) at the lowest
//! CPU priority (see `priority.rs`), so that the HTTP workers keep the
//! cores under load. That thread also frees the snapshot the new one
//! replaced, hundreds of megabytes that would otherwise be freed by
//! whichever request let go of it last.

mod priority;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipintel_core::Snapshot;
use ipintel_data::state::FeedStates;
use ipintel_data::update::{update_due, FeedResult, UpdateOptions, UpdateReport};
use ipintel_data::{DataError, DataStatus, SourceError, SourceStatus, SourcesConfig};
use serde::Serialize;
use tokio::sync::{oneshot, Mutex};
use utoipa::ToSchema;

use crate::state::AppState;

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The refresh timer.
    Timer,
    /// SIGHUP.
    Signal,
    /// `POST /v1/admin/reload`.
    Admin,
}

/// Where the sources come from.
#[derive(Debug, Clone)]
pub enum SourcesLocation {
    /// A sources file, re-read at every reload.
    File(PathBuf),
    /// The roles of the data directory's manifest.
    Manifest,
}

/// The outcome of a reload, as `POST /v1/admin/reload` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReloadReport {
    /// `reloaded` (a new snapshot is in service), `unchanged` (no data file
    /// changed) or `failed` (the last good snapshot stays).
    pub outcome: &'static str,
    /// When the snapshot in service was built (unix seconds).
    pub built_at_unix: i64,
    /// How long the reload took.
    pub duration_ms: u64,
    /// Each downloaded source: `not_due`, `not_modified`, `updated` or `failed`.
    pub feeds: Vec<FeedReport>,
    /// Why the reload failed.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// One downloaded source in a reload report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedReport {
    /// Source name.
    pub name: String,
    /// `not_due`, `not_modified`, `updated` or `failed`.
    pub result: &'static str,
    /// The error of a failed source.
    #[schema(required = true)]
    pub error: Option<String>,
}

/// Modification stamps of every file a snapshot was built from.
type Stamps = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

/// Reloads the data of a running service.
#[derive(Debug)]
pub struct DataReloader {
    data_dir: PathBuf,
    sources: SourcesLocation,
    download: bool,
    /// Held for the whole reload; the stamps of the snapshot in service.
    running: Mutex<Stamps>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl DataReloader {
    /// A reloader for `data_dir` and `sources`; `download` enables feed
    /// downloads. `config` is the sources file the first snapshot was built
    /// from, so that the first reload only rebuilds if something changed.
    pub fn new(
        data_dir: PathBuf,
        sources: SourcesLocation,
        download: bool,
        config: &SourcesConfig,
    ) -> Self {
        let stamps = stamps(&data_dir, &sources, config);
        Self {
            data_dir,
            sources,
            download,
            running: Mutex::new(stamps),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs a reload against `state`. With `wait` false, returns `None` at
    /// once when another reload is running.
    pub async fn reload(
        &self,
        state: &AppState,
        trigger: Trigger,
        wait: bool,
    ) -> Option<ReloadReport> {
        let mut stamps = if wait {
            self.running.lock().await
        } else {
            self.running.try_lock().ok()?
        };
        let started = Instant::now();
        let job = Job {
            data_dir: self.data_dir.clone(),
            sources: self.sources.clone(),
            download: self.download,
            force: trigger != Trigger::Timer,
            previous: stamps.clone(),
        };
        let (done, retire) = run_on_reload_thread(job).await;
        let (report, replaced) = self.apply(state, done, &mut stamps, started);
        if let (Some(retire), Some(replaced)) = (retire, replaced) {
            // Only fails if the reload thread is gone, which it is not
            // while it waits for this; then the snapshot is freed here.
            let _ = retire.send(replaced);
        }
        tracing::info!(
            trigger = ?trigger,
            outcome = report.outcome,
            duration_ms = report.duration_ms,
            error = report.error.as_deref().unwrap_or(""),
            "data reload"
        );
        Some(report)
    }

    /// Puts what the reload found in service; returns the report and the
    /// snapshot that the new one replaced, if any.
    fn apply(
        &self,
        state: &AppState,
        mut done: Done,
        stamps: &mut Stamps,
        started: Instant,
    ) -> (ReloadReport, Option<Arc<Snapshot>>) {
        let now = now_unix();
        let outcome = match (&done.snapshot, &done.error) {
            (_, Some(_)) => "failed",
            (Some(_), None) => "reloaded",
            (None, None) => "unchanged",
        };
        let replaced = done.snapshot.take().map(|snapshot| {
            if let Some(new) = done.stamps.take() {
                *stamps = new;
            }
            state.snapshot.swap(Arc::new(snapshot))
        });
        let feeds = feed_reports(done.update.as_ref());
        // A feed that was refused or held back failed too, even though the
        // last good snapshot stays in service.
        let feed_failed = feeds.iter().any(|f| f.result == "failed");
        let failed = outcome == "failed" || feed_failed;
        state.metrics.reload(if failed { "failed" } else { "ok" });
        let snapshot = state.snapshot.load();
        let previous = state.data_status.load();
        let status = match &done.config {
            Some(config) => status_of(config, &snapshot, &done.feed_states, &previous, &done, now),
            None => DataStatus {
                last_reload_unix: Some(now),
                last_reload_error: done.error.clone(),
                ..DataStatus::clone(&previous)
            },
        };
        state.data_status.store(Arc::new(status));
        let report = ReloadReport {
            outcome,
            built_at_unix: snapshot.meta().built_at_unix,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            feeds,
            error: done.error,
        };
        (report, replaced)
    }
}

/// Name of the thread each reload runs on.
const RELOAD_THREAD: &str = "ipintel-reload";

/// How long the reload thread waits for requests that still hold the
/// replaced snapshot before it leaves the freeing to the last of them.
const RETIRE_PATIENCE: Duration = Duration::from_secs(10);

/// Hands the replaced snapshot back to the reload thread, which frees it.
type Retire = oneshot::Sender<Arc<Snapshot>>;

/// Runs `job` on a new thread at a low CPU priority. Along with what it
/// found comes the way to hand that thread the replaced snapshot; the
/// thread ends once it has freed it, or at once when the sender is dropped.
async fn run_on_reload_thread(job: Job) -> (Done, Option<Retire>) {
    let (found, done) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(RELOAD_THREAD.to_owned())
        .spawn(move || {
            priority::lower_current_thread();
            let (retire, replaced) = oneshot::channel();
            // When the reload was abandoned (its request went away), what
            // it built comes back here and is freed on this thread.
            if found.send((job.run(), retire)).is_ok() {
                if let Ok(replaced) = replaced.blocking_recv() {
                    free_when_unused(replaced, RETIRE_PATIENCE);
                }
            }
        });
    if let Err(e) = spawned {
        let error = format!("cannot start the reload thread: {e}");
        return (Done::failed(None, error), None);
    }
    match done.await {
        Ok((done, retire)) => (done, Some(retire)),
        Err(_) => {
            let error = "the reload thread stopped without a result (it panicked)".to_owned();
            (Done::failed(None, error), None)
        }
    }
}

/// Drops `value` on the calling thread once no one else holds it, waiting
/// at most `patience`; after that the last holder frees it. Requests hold
/// the snapshot they loaded for the time of one lookup or batch, and the
/// swap has already counted them.
fn free_when_unused<T>(value: Arc<T>, patience: Duration) {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    while Arc::strong_count(&value) > 1 {
        if started.elapsed() >= patience {
            tracing::debug!(
                holders = Arc::strong_count(&value) - 1,
                waited_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "the replaced snapshot is still in use; its last user frees it"
            );
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    drop(value);
}

fn feed_reports(update: Option<&UpdateReport>) -> Vec<FeedReport> {
    let Some(update) = update else {
        return Vec::new();
    };
    update
        .feeds
        .iter()
        .map(|(name, result)| {
            let (result, error) = match result {
                FeedResult::NotDue => ("not_due", None),
                FeedResult::NotModified => ("not_modified", None),
                FeedResult::Updated { .. } => ("updated", None),
                FeedResult::Failed(e) => ("failed", Some(e.clone())),
            };
            FeedReport {
                name: name.clone(),
                result,
                error,
            }
        })
        .collect()
}

/// The blocking part of a reload.
struct Job {
    data_dir: PathBuf,
    sources: SourcesLocation,
    download: bool,
    /// Check every URL source now (admin request, SIGHUP), not only the due ones.
    force: bool,
    previous: Stamps,
}

/// What the blocking part found.
struct Done {
    config: Option<SourcesConfig>,
    update: Option<UpdateReport>,
    feed_states: FeedStates,
    snapshot: Option<Snapshot>,
    stamps: Option<Stamps>,
    error: Option<String>,
    /// The source the error belongs to, when it names a file of one.
    failed_source: Option<String>,
    /// True when a new snapshot was built.
    rebuilt: bool,
}

impl Done {
    fn failed(config: Option<SourcesConfig>, error: String) -> Self {
        Self {
            config,
            update: None,
            feed_states: FeedStates::default(),
            snapshot: None,
            stamps: None,
            error: Some(error),
            failed_source: None,
            rebuilt: false,
        }
    }
}

/// Reads the sources of `location`.
pub fn read_sources(
    data_dir: &Path,
    location: &SourcesLocation,
) -> Result<SourcesConfig, DataError> {
    match location {
        SourcesLocation::File(path) => Ok(SourcesConfig::from_file(path)?),
        SourcesLocation::Manifest => ipintel_data::manifest_sources(data_dir),
    }
}

/// Builds the first snapshot of a service. With `download`, the URL
/// sources that are due or have no copy on disk are fetched first; one
/// that fails to download only fails the start if it has no copy at all.
pub fn load_initial(
    data_dir: &Path,
    location: &SourcesLocation,
    download: bool,
) -> Result<(SourcesConfig, Snapshot), DataError> {
    let config = read_sources(data_dir, location)?;
    if download && config.sources.iter().any(|s| s.url().is_some()) {
        let opts = UpdateOptions {
            force: false,
            refetch: false,
            now_unix: now_unix(),
        };
        let report = update_due(data_dir, &config, opts)?;
        if let Some(missing) = report.missing_feed(data_dir) {
            return Err(missing);
        }
    }
    let snapshot = ipintel_data::load_sources(data_dir, &config)?;
    Ok((config, snapshot))
}

/// The status of a service that has just loaded `snapshot` from `config`.
pub fn initial_status(data_dir: &Path, config: &SourcesConfig, snapshot: &Snapshot) -> DataStatus {
    let feeds = FeedStates::read(data_dir).unwrap_or_default();
    let built = snapshot.meta().built_at_unix;
    let done = Done {
        config: None,
        update: None,
        feed_states: FeedStates::default(),
        snapshot: None,
        stamps: None,
        error: None,
        failed_source: None,
        rebuilt: true,
    };
    let mut status = status_of(
        config,
        snapshot,
        &feeds,
        &DataStatus::default(),
        &done,
        built,
    );
    status.last_reload_unix = None;
    status
}

impl Job {
    fn run(self) -> Done {
        let config = match read_sources(&self.data_dir, &self.sources) {
            Ok(c) => c,
            Err(e) => return Done::failed(None, e.to_string()),
        };
        let update = self.download.then(|| {
            let opts = UpdateOptions {
                force: self.force,
                refetch: false,
                now_unix: now_unix(),
            };
            update_due(&self.data_dir, &config, opts)
        });
        let update = match update.transpose() {
            Ok(u) => u,
            Err(e) => return Done::failed(Some(config), e.to_string()),
        };
        let feed_states = FeedStates::read(&self.data_dir).unwrap_or_default();
        let new_stamps = stamps(&self.data_dir, &self.sources, &config);
        let mut done = Done {
            config: None,
            update,
            feed_states,
            snapshot: None,
            stamps: None,
            error: None,
            failed_source: None,
            rebuilt: false,
        };
        let missing = done
            .update
            .as_ref()
            .and_then(|u| u.missing_feed(&self.data_dir));
        if let Some(DataError::Download { source_name, .. }) = &missing {
            done.failed_source = Some(source_name.clone());
        }
        if let Some(missing) = missing {
            done.error = Some(missing.to_string());
        } else if new_stamps != self.previous {
            match ipintel_data::load_sources(&self.data_dir, &config) {
                Ok(snapshot) => {
                    done.snapshot = Some(snapshot);
                    done.rebuilt = true;
                    done.stamps = Some(new_stamps);
                }
                Err(e) => {
                    done.failed_source = source_of(&self.data_dir, &config, &e);
                    done.error = Some(e.to_string());
                }
            }
        }
        done.config = Some(config);
        done
    }
}

/// The source whose file an error names.
fn source_of(dir: &Path, config: &SourcesConfig, error: &DataError) -> Option<String> {
    let file = error.file()?;
    config
        .sources
        .iter()
        .find(|s| s.files().iter().any(|f| dir.join(f) == file))
        .map(|s| s.name.clone())
}

fn stamps(dir: &Path, location: &SourcesLocation, config: &SourcesConfig) -> Stamps {
    let mut paths: Vec<PathBuf> = config
        .sources
        .iter()
        .flat_map(|s| s.files())
        .map(|f| dir.join(f))
        .collect();
    if let SourcesLocation::File(p) = location {
        paths.push(p.clone());
    }
    paths.push(dir.join("manifest.json"));
    paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let stamp = meta.and_then(|m| Some((m.len(), m.modified().ok()?)));
            (p, stamp)
        })
        .collect()
}

fn status_of(
    config: &SourcesConfig,
    snapshot: &Snapshot,
    feeds: &FeedStates,
    previous: &DataStatus,
    done: &Done,
    now: i64,
) -> DataStatus {
    let meta = snapshot.meta();
    let sources = config
        .sources
        .iter()
        .map(|spec| {
            let loaded = meta.sources.iter().find(|m| m.name == spec.name);
            let before = previous.source(&spec.name);
            let feed = feeds.get(&spec.name).filter(|_| spec.url().is_some());
            let last_error = if done.failed_source.as_deref() == Some(spec.name.as_str()) {
                done.error.clone().map(|message| SourceError {
                    message,
                    at_unix: now,
                })
            } else if let Some(message) = feed.and_then(|f| f.last_error.clone()) {
                let at_unix = feed.and_then(|f| f.last_error_unix).unwrap_or(now);
                Some(SourceError { message, at_unix })
            } else if done.error.is_some() {
                before.and_then(|b| b.last_error.clone())
            } else {
                None
            };
            let last_success_unix = match feed {
                Some(f) => f.last_success_unix,
                None if loaded.is_some() && done.error.is_none() && done.rebuilt => Some(now),
                None => before
                    .and_then(|b| b.last_success_unix)
                    .or(loaded.map(|_| meta.built_at_unix)),
            };
            SourceStatus {
                name: spec.name.clone(),
                kinds: spec.tells_text().into_iter().map(str::to_owned).collect(),
                location: spec.location_text(),
                last_success_unix,
                data_date: loaded.and_then(|m| m.data_date.clone()),
                records: loaded.map_or(0, |m| m.records),
                last_error,
            }
        })
        .collect();
    DataStatus {
        built_at_unix: meta.built_at_unix,
        last_reload_unix: Some(now),
        last_reload_error: done.error.clone(),
        sources,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    use super::free_when_unused;

    /// Records the name of the thread that drops it.
    struct Witness(Arc<Mutex<Option<String>>>);

    impl Drop for Witness {
        fn drop(&mut self) {
            let name = thread::current().name().map(str::to_owned);
            *self.0.lock().expect("witness lock") = name;
        }
    }

    fn named(name: &str, f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(f)
            .expect("a test thread starts")
    }

    #[test]
    fn the_waiting_thread_frees_the_value_once_its_last_user_lets_go() {
        let dropped_on = Arc::new(Mutex::new(None));
        let value = Arc::new(Witness(Arc::clone(&dropped_on)));
        let user = Arc::clone(&value);
        let waiter = named("waiter", move || {
            free_when_unused(value, Duration::from_secs(10))
        });
        thread::sleep(Duration::from_millis(30));
        named("user", move || drop(user)).join().expect("user ran");
        waiter.join().expect("waiter ran");
        assert_eq!(*dropped_on.lock().expect("lock"), Some("waiter".to_owned()));
    }

    #[test]
    fn a_user_holding_the_value_past_the_patience_frees_it_itself() {
        let dropped_on = Arc::new(Mutex::new(None));
        let value = Arc::new(Witness(Arc::clone(&dropped_on)));
        let user = Arc::clone(&value);
        named("waiter", move || {
            free_when_unused(value, Duration::from_millis(20))
        })
        .join()
        .expect("waiter ran");
        assert_eq!(*dropped_on.lock().expect("lock"), None);
        named("user", move || drop(user)).join().expect("user ran");
        assert_eq!(*dropped_on.lock().expect("lock"), Some("user".to_owned()));
    }
}

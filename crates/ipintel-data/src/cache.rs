//! The snapshot cache: `<data dir>/cache/snapshot.bin`, a built snapshot
//! written after a build (ipintel_core::persist) and read back by the next
//! load instead of building again.
//!
//! The file carries a key naming everything the build read: the layout
//! and crate versions, the program file itself (so that a rebuilt binary,
//! with other parsers or weights, never takes an older build's snapshot),
//! the sources (their validated form, defaults included), and the size,
//! modification time and (on Unix) inode and change time of the manifest,
//! the feed state file and every data file. A load whose key differs, or
//! whose cache file is damaged, builds from the files and writes the cache
//! anew. A cached snapshot skips the files' checksum pass: they were
//! checked when it was built, and changing one changes its stamp.
//!
//! A time stamp cannot tell apart two writes within its granularity, so a
//! build whose inputs changed less than [`SETTLE`] before it began is not
//! cached, nor one whose inputs changed while it ran.
//! `IPINTEL_SNAPSHOT_CACHE=off` turns the cache off.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipintel_core::{persist, Aggregates, Snapshot};

use crate::manifest::{sha256_hex, MANIFEST_FILE};
use crate::sources::SourcesConfig;
use crate::state::STATE_FILE;

/// The cache's folder in the data directory.
pub const CACHE_DIR: &str = "cache";

/// The cache file in [`CACHE_DIR`].
pub const CACHE_FILE: &str = "snapshot.bin";

/// The variable that turns the cache off: `off` (or `0`, `false`).
pub const CACHE_ENV: &str = "IPINTEL_SNAPSHOT_CACHE";

/// How long an input must have been left alone before a snapshot built
/// from it is cached (coarser than any file system's time stamps).
pub const SETTLE: Duration = Duration::from_secs(2);

/// What a load did with the snapshot cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUse {
    /// The snapshot was read from the cache.
    Read,
    /// The snapshot was built and the cache written.
    Written,
    /// The snapshot was built and the cache not written, for the reason
    /// given.
    NotWritten(String),
    /// The cache is off ([`CACHE_ENV`]).
    Off,
}

/// How a load went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// What the load did with the cache.
    pub cache: CacheUse,
    /// Why the cache was not read, when it is on and was not.
    pub miss: Option<String>,
    /// Milliseconds the whole load took.
    pub total_ms: u64,
}

/// The cache of one data directory, for one load.
#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    /// The program's stamp, or why the cache is not used.
    program: Result<String, Disabled>,
    /// The manifest's and the feed state's stamps, taken before either
    /// is read.
    early: Vec<(String, Stamp)>,
    /// When the early stamps were taken.
    since: SystemTime,
}

#[derive(Debug, Clone)]
enum Disabled {
    Off,
    Unusable(String),
}

/// What a load found in the cache.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The cache is off.
    Off,
    /// The cached snapshot.
    Hit(Box<Snapshot>),
    /// No snapshot to use, and why; the key to write the built one under,
    /// unless the cache is unusable.
    Miss { why: String, key: Option<Key> },
}

/// The key of one load: labelled lines, and the newest time among the
/// files stamped.
#[derive(Debug)]
pub(crate) struct Key {
    lines: Vec<(String, String)>,
    newest: Option<SystemTime>,
}

impl Key {
    fn text(&self) -> String {
        self.lines
            .iter()
            .fold(String::new(), |mut text, (label, value)| {
                let _ = writeln!(text, "{label}\t{value}");
                text
            })
    }

    /// The first line of `self` that `stored` lacks or has otherwise.
    fn differs_from(&self, stored: &[u8]) -> Option<String> {
        let stored = String::from_utf8_lossy(stored);
        let stored: Vec<(&str, &str)> = stored
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect();
        for (label, value) in &self.lines {
            match stored.iter().find(|(l, _)| l == label) {
                Some((_, v)) if v == value => {}
                Some(_) => return Some(format!("{label} changed")),
                None => return Some(format!("{label} is new")),
            }
        }
        if stored.len() != self.lines.len() {
            return Some("the set of input files changed".into());
        }
        None
    }
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    Absent,
    Present { text: String, modified: SystemTime },
    Unreadable(String),
}

impl Stamp {
    fn of(path: &Path) -> Stamp {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Stamp::Absent,
            Err(e) => return Stamp::Unreadable(format!("{}: {e}", path.display())),
        };
        let modified = match meta.modified() {
            Ok(t) => t,
            Err(e) => return Stamp::Unreadable(format!("{}: {e}", path.display())),
        };
        let mut text = format!("{} bytes, modified {}", meta.len(), nanos(modified));
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let changed = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
            let _ = write!(text, ", inode {}, changed {changed}", meta.ino());
        }
        Stamp::Present { text, modified }
    }

    fn text(&self) -> &str {
        match self {
            Stamp::Absent => "absent",
            Stamp::Present { text, .. } => text,
            Stamp::Unreadable(why) => why,
        }
    }
}

/// Nanoseconds since the Unix epoch, negative before it.
fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Whether [`CACHE_ENV`] leaves the cache on.
fn enabled() -> Result<(), Disabled> {
    let Some(value) = std::env::var_os(CACHE_ENV) else {
        return Ok(());
    };
    match value.to_str().map(str::trim) {
        Some("" | "on" | "1" | "true") => Ok(()),
        Some("off" | "0" | "false") => Err(Disabled::Off),
        _ => {
            tracing::warn!(
                variable = CACHE_ENV,
                value = %value.to_string_lossy(),
                "unknown value (expected on or off): the snapshot cache is off"
            );
            Err(Disabled::Off)
        }
    }
}

/// The running program's stamp.
fn program() -> Result<String, Disabled> {
    let path = std::env::current_exe()
        .map_err(|e| Disabled::Unusable(format!("the program's path is unknown: {e}")))?;
    match Stamp::of(&path) {
        Stamp::Present { text, .. } => Ok(text),
        other => Err(Disabled::Unusable(format!(
            "the program's file cannot be stamped: {}",
            other.text()
        ))),
    }
}

impl Cache {
    /// The cache of `dir`, stamping the manifest and the feed state file
    /// now, before the load reads them.
    pub(crate) fn open(dir: &Path) -> Cache {
        let since = SystemTime::now();
        Cache {
            dir: dir.to_path_buf(),
            program: enabled().and_then(|()| program()),
            early: early_stamps(dir),
            since,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(CACHE_DIR).join(CACHE_FILE)
    }

    /// The key for a load of `config`, with the early stamps taken by
    /// [`Cache::open`] (`fresh`: with new ones).
    fn key(&self, program: &str, config: &SourcesConfig, fresh: bool) -> Key {
        let mut key = Key {
            lines: vec![
                ("format".into(), persist::FORMAT_VERSION.to_string()),
                ("version".into(), env!("CARGO_PKG_VERSION").into()),
                ("program".into(), program.into()),
                // The validated sources, defaults applied, as text: every
                // field is rendered, and the program stamp covers a change
                // of the rendering.
                (
                    "sources".into(),
                    sha256_hex(format!("{:?}", config.sources).as_bytes()),
                ),
            ],
            newest: None,
        };
        let early = if fresh {
            early_stamps(&self.dir)
        } else {
            self.early.clone()
        };
        let files = config.sources.iter().flat_map(|s| s.files()).map(|rel| {
            let stamp = Stamp::of(&self.dir.join(&rel));
            (rel, stamp)
        });
        for (rel, stamp) in early.into_iter().chain(files) {
            if let Stamp::Present { modified, .. } = &stamp {
                key.newest = key.newest.max(Some(*modified));
            }
            key.lines
                .push((format!("file {rel}"), stamp.text().to_owned()));
        }
        key
    }

    /// The cached snapshot for `config`, or why there is none to use.
    pub(crate) fn read(&self, config: &SourcesConfig, aggregates: Aggregates) -> Lookup {
        let program = match &self.program {
            Ok(p) => p,
            Err(Disabled::Off) => return Lookup::Off,
            Err(Disabled::Unusable(why)) => {
                tracing::info!("data snapshot cache not used: {why}");
                let why = why.clone();
                return Lookup::Miss { why, key: None };
            }
        };
        let key = self.key(program, config, false);
        match self.read_file(&key, aggregates) {
            Ok(snapshot) => Lookup::Hit(Box::new(snapshot)),
            Err(why) => Lookup::Miss {
                why,
                key: Some(key),
            },
        }
    }

    /// Reads the cache file if its key is `key`; logs why not otherwise.
    fn read_file(&self, key: &Key, aggregates: Aggregates) -> Result<Snapshot, String> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let why = "no cache file yet".to_owned();
                tracing::info!(path = %path.display(), "data snapshot cache not used: {why}");
                return Err(why);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "data snapshot cache unreadable: building");
                return Err(format!("reading {}: {e}", path.display()));
            }
        };
        let change = match persist::read_key(&bytes) {
            Ok(stored) => key.differs_from(stored),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = change {
            tracing::info!(path = %path.display(), "data snapshot cache out of date ({why}): building");
            return Err(why);
        }
        persist::decode(&bytes, aggregates).map_err(|e| {
            tracing::warn!(path = %path.display(), error = %e, "data snapshot cache damaged: building");
            e.to_string()
        })
    }

    /// Writes `snapshot`, built from `config` under `key`, unless an input
    /// changed too recently to trust its stamp or while the build ran.
    pub(crate) fn write(&self, key: &Key, config: &SourcesConfig, snapshot: &Snapshot) -> CacheUse {
        let program = match &self.program {
            Ok(p) => p,
            Err(Disabled::Off) => return CacheUse::Off,
            Err(Disabled::Unusable(why)) => return CacheUse::NotWritten(why.clone()),
        };
        let settled = self.since.checked_sub(SETTLE).unwrap_or(UNIX_EPOCH);
        let why = if key.newest.is_some_and(|newest| newest > settled) {
            format!(
                "an input changed less than {} s before the build",
                SETTLE.as_secs()
            )
        } else if let Some(change) = self
            .key(program, config, true)
            .differs_from(key.text().as_bytes())
        {
            format!("{change} during the build")
        } else {
            return match self.write_file(key, snapshot) {
                Ok(()) => CacheUse::Written,
                Err(why) => {
                    tracing::warn!("data snapshot cache not written: {why}");
                    CacheUse::NotWritten(why)
                }
            };
        };
        tracing::info!("data snapshot cache not written: {why}");
        CacheUse::NotWritten(why)
    }

    fn write_file(&self, key: &Key, snapshot: &Snapshot) -> Result<(), String> {
        let started = Instant::now();
        let bytes = persist::encode(snapshot, key.text().as_bytes()).map_err(|e| e.to_string())?;
        let folder = self.dir.join(CACHE_DIR);
        let path = self.path();
        // A file of this write's own, renamed over the cache file: a
        // reader sees the old file or the new one, never a mix. No sync:
        // a file torn by a crash fails its checksum and is rebuilt.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = folder.join(format!(".{CACHE_FILE}.{}.{n}.tmp", std::process::id()));
        let written = std::fs::create_dir_all(&folder)
            .and_then(|()| std::fs::File::create(&tmp))
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("writing {}: {e}", path.display()));
        }
        tracing::info!(
            path = %path.display(),
            bytes = bytes.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "data snapshot cache written"
        );
        Ok(())
    }
}

fn early_stamps(dir: &Path) -> Vec<(String, Stamp)> {
    [MANIFEST_FILE, STATE_FILE]
        .into_iter()
        .map(|name| (name.to_owned(), Stamp::of(&dir.join(name))))
        .collect()
}

//! `ipintel data update`: download the URL sources that are due.
//!
//! Per source: a conditional GET (`If-None-Match` / `If-Modified-Since`
//! from the state file), the body streamed to `feeds/<name>.new` under a
//! size cap while its SHA-256 is computed, a full parse to validate it
//! (errors name the file and line), the shrink guard against the last good
//! copy, then an atomic rename over `feeds/<name>`. The state file records
//! the outcome either way; a failed source keeps its last good copy.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::load::parse_file;
use crate::sources::{feed_path, SourceSpec, SourcesConfig};
use crate::state::{FeedState, FeedStates};

/// What to download.
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions {
    /// Check every URL source, due or not (conditional requests still let
    /// the server answer 304 for a current copy).
    pub force: bool,
    /// Download every URL source in full, without conditional requests:
    /// replaces a copy on disk that no longer matches its checksum.
    pub refetch: bool,
    /// The current time (unix seconds).
    pub now_unix: i64,
}

/// What happened to one URL source.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedResult {
    /// Its refresh interval has not passed.
    NotDue,
    /// The server said 304 Not Modified.
    NotModified,
    /// A new copy replaced the old one.
    Updated {
        /// Records in the new copy.
        records: u64,
        /// Its size.
        bytes: u64,
    },
    /// The download failed or was held back; the last good copy stays.
    Failed(String),
}

/// The outcome of one update run, per URL source in sources-file order.
#[derive(Debug, Clone, Default)]
pub struct UpdateReport {
    /// `(source name, result)`.
    pub feeds: Vec<(String, FeedResult)>,
}

impl UpdateReport {
    /// True when at least one file on disk changed.
    pub fn changed(&self) -> bool {
        self.feeds
            .iter()
            .any(|(_, r)| matches!(r, FeedResult::Updated { .. }))
    }

    /// True when at least one source failed.
    pub fn failed(&self) -> bool {
        self.feeds
            .iter()
            .any(|(_, r)| matches!(r, FeedResult::Failed(_)))
    }

    /// The first source whose download failed and that has no earlier copy
    /// in `dir`, as the error that explains why no snapshot can be built
    /// (rather than the missing file the loader would report).
    pub fn missing_feed(&self, dir: &Path) -> Option<DataError> {
        self.feeds.iter().find_map(|(name, result)| match result {
            FeedResult::Failed(message) if !dir.join(feed_path(name)).exists() => {
                Some(DataError::Download {
                    source_name: name.clone(),
                    message: format!("{message}; there is no earlier copy to serve"),
                })
            }
            _ => None,
        })
    }
}

/// Downloads the URL sources of `config` that are due into `dir/feeds/`
/// and records the outcomes in the state file. Only a failure to write
/// the state itself is an error; each source's failure is in the report.
pub fn update_due(
    dir: &Path,
    config: &SourcesConfig,
    opts: UpdateOptions,
) -> Result<UpdateReport, DataError> {
    let mut states = FeedStates::read(dir)?;
    let mut report = UpdateReport::default();
    for spec in &config.sources {
        let Some(url) = spec.url() else { continue };
        let state = states.sources.entry(spec.name.clone()).or_default();
        let present = dir.join(feed_path(&spec.name)).is_file();
        if !(opts.force || opts.refetch) && present && !is_due(spec, state, opts.now_unix) {
            report.feeds.push((spec.name.clone(), FeedResult::NotDue));
            continue;
        }
        state.last_attempt_unix = Some(opts.now_unix);
        let conditional = present && !opts.refetch;
        let result = match fetch(dir, spec, url, state, conditional, opts.now_unix) {
            Ok(result) => {
                state.last_success_unix = Some(opts.now_unix);
                state.last_error = None;
                state.last_error_unix = None;
                result
            }
            Err(message) => {
                let outcome = if present {
                    "the last good copy stays"
                } else {
                    "there is no earlier copy"
                };
                tracing::warn!(source = %spec.name, error = %message, "feed update failed; {outcome}");
                state.last_error = Some(message.clone());
                state.last_error_unix = Some(opts.now_unix);
                FeedResult::Failed(message)
            }
        };
        report.feeds.push((spec.name.clone(), result));
    }
    if !report.feeds.is_empty() {
        states.write(dir)?;
    }
    Ok(report)
}

fn is_due(spec: &SourceSpec, state: &FeedState, now: i64) -> bool {
    let Some(every) = spec.refresh else {
        return false;
    };
    let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    state
        .last_attempt_unix
        .is_none_or(|last| now.saturating_sub(last) >= every)
}

fn client(spec: &SourceSpec) -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(spec.timeout)
        .connect_timeout(Duration::from_secs(10).min(spec.timeout))
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(concat!("ipintel/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// One download (conditional when `conditional`), validation and swap.
fn fetch(
    dir: &Path,
    spec: &SourceSpec,
    url: &str,
    state: &mut FeedState,
    conditional: bool,
    now: i64,
) -> Result<FeedResult, String> {
    let mut request = client(spec)?.get(url);
    if conditional {
        if let Some(etag) = &state.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &state.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
    }
    let response = request
        .send()
        .map_err(|e| format!("GET {url}: {}", with_causes(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && conditional {
        return Ok(FeedResult::NotModified);
    }
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, modified) = (
        header(reqwest::header::ETAG),
        header(reqwest::header::LAST_MODIFIED),
    );
    let target = dir.join(feed_path(&spec.name));
    let part = target.with_extension("new");
    let stored = store(response, &part, spec.max_bytes, url)?;
    let checked = validate(&part, spec, state).inspect_err(|_| {
        let _ = std::fs::remove_file(&part);
    })?;
    std::fs::rename(&part, &target)
        .map_err(|e| format!("renaming {} to {}: {e}", part.display(), target.display()))?;
    state.etag = etag;
    state.last_modified = modified;
    state.sha256 = Some(stored.sha256);
    state.bytes = Some(stored.bytes);
    state.records = Some(checked.records);
    state.stored_unix = Some(now);
    state.data_date = checked.data_date.or_else(|| Some(date_of(now)));
    tracing::info!(source = %spec.name, records = checked.records, bytes = stored.bytes, "feed updated");
    Ok(FeedResult::Updated {
        records: checked.records,
        bytes: stored.bytes,
    })
}

struct Stored {
    sha256: String,
    bytes: u64,
}

/// Streams the body to `part`, refusing more than `max` bytes.
fn store(mut body: impl Read, part: &PathBuf, max: u64, url: &str) -> Result<Stored, String> {
    if let Some(parent) = part.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let io = |e: std::io::Error| format!("writing {}: {e}", part.display());
    let mut file = std::fs::File::create(part).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| format!("GET {url}: reading the body: {}", with_causes(&e)))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            drop(file);
            let _ = std::fs::remove_file(part);
            return Err(format!("GET {url}: larger than the {max}-byte cap"));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    Ok(Stored {
        sha256: crate::manifest::hex_digest(&hasher.finalize()),
        bytes: total,
    })
}

struct Checked {
    records: u64,
    data_date: Option<String>,
}

/// Parses the new copy and applies the shrink guard.
fn validate(part: &Path, spec: &SourceSpec, state: &FeedState) -> Result<Checked, String> {
    let bytes = std::fs::read(part).map_err(|e| format!("reading {}: {e}", part.display()))?;
    if spec.format.is_line_based() && !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
        return Err(format!(
            "{}:{lines}: the last line has no newline: the download looks truncated",
            part.display()
        ));
    }
    let parsed = parse_file(part, bytes, spec, &crate::load::TZ).map_err(|e| e.to_string())?;
    let records = parsed.records();
    if let Some(last) = state.records.filter(|n| *n > 0) {
        let floor = (last as f64) * (1.0 - spec.max_shrink);
        if (records as f64) < floor {
            return Err(format!(
                "held back: {records} records against {last} in the last good copy \
                 (more than {:.0} % fewer)",
                spec.max_shrink * 100.0
            ));
        }
    }
    Ok(Checked {
        records,
        data_date: parsed.data_date().map(str::to_owned),
    })
}

/// An error and its chain of causes, `outer: inner: ...` (an HTTP
/// client's own message rarely says what went wrong on the wire).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let line = inner.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}

/// `YYYY-MM-DD` of a unix time (UTC).
pub fn date_of(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // civil-from-days (proleptic Gregorian), after H. Hinnant's algorithm
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(1_796_342_400), "2026-12-04");
    }
}

//! Reading a whole data directory into a [`Snapshot`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use ipintel_core::{Snapshot, SnapshotBuilder, SourceMeta};

use crate::asn::{parse_asn_csv, AsnBatch};
use crate::batch::SignalBatch;
use crate::cloudcheck::parse_cloudcheck;
use crate::error::DataError;
use crate::geo::{parse_dbip_mmdb, GeoBatch};
use crate::iporigin::parse_iporigin;
use crate::lists::{parse_emerging_threats, parse_firehol, parse_kavachnet, parse_spamhaus_drop};
use crate::manifest::{read_manifest, read_verified, Manifest, ManifestFile, ManifestSource};
use crate::tz::TzResolver;

/// How a file is parsed, from its manifest role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Geo,
    Asn,
    IpOrigin,
    Firehol,
    Spamhaus,
    EmergingThreats,
    Kavachnet,
    Cloudcheck,
    VerifyOnly,
}

impl Kind {
    fn of(role: &str) -> Kind {
        match role {
            "geo-mmdb" => Kind::Geo,
            "asn-csv" => Kind::Asn,
            "iporigin-ranges" => Kind::IpOrigin,
            "netset" => Kind::Firehol,
            "spamhaus-drop" => Kind::Spamhaus,
            "emerging-threats" => Kind::EmergingThreats,
            "kavachnet-list" => Kind::Kavachnet,
            "cloudcheck-json" => Kind::Cloudcheck,
            _ => Kind::VerifyOnly,
        }
    }

    fn is_signal(self) -> bool {
        !matches!(self, Kind::Geo | Kind::Asn | Kind::VerifyOnly)
    }
}

/// One file to verify and parse.
#[derive(Debug)]
struct Job<'m> {
    source: &'m ManifestSource,
    file: &'m ManifestFile,
    kind: Kind,
}

/// A parsed file.
enum Parsed {
    Geo(GeoBatch),
    Asn(AsnBatch),
    Signals(SignalBatch),
    Nothing,
}

/// Reads `<dir>/manifest.json`, verifies every listed file's size and
/// SHA-256, parses each source (in parallel, one worker per core) and
/// builds the snapshot. Fails on the first broken file; nothing partial is
/// returned.
pub fn load_snapshot(dir: &Path) -> Result<Snapshot, DataError> {
    let started = Instant::now();
    let manifest = read_manifest(dir)?;
    let jobs = plan(&manifest)?;
    let parsed = run_jobs(dir, &jobs)?;
    let parsed_ms = started.elapsed().as_millis();
    let snapshot = assemble(&jobs, parsed);
    tracing::info!(
        parse_ms = parsed_ms as u64,
        merge_ms = snapshot.meta().build_ms,
        total_ms = started.elapsed().as_millis() as u64,
        ranges_v4 = snapshot.meta().ranges_v4,
        ranges_v6 = snapshot.meta().ranges_v6,
        "data snapshot loaded"
    );
    Ok(snapshot)
}

fn plan(manifest: &Manifest) -> Result<Vec<Job<'_>>, DataError> {
    let jobs: Vec<Job<'_>> = manifest
        .sources
        .iter()
        .flat_map(|source| {
            source.files.iter().map(move |file| Job {
                source,
                file,
                kind: Kind::of(&file.role),
            })
        })
        .collect();
    for required in ["geo-mmdb", "asn-csv"] {
        if !jobs.iter().any(|j| j.file.role == required) {
            return Err(DataError::MissingRole {
                role: required.to_owned(),
            });
        }
    }
    for j in jobs.iter().filter(|j| j.kind == Kind::VerifyOnly) {
        tracing::debug!(file = %j.file.path, role = %j.file.role, "file checked but not used");
    }
    Ok(jobs)
}

/// Runs the jobs, largest file first, on up to one worker per core.
/// Results come back in job order.
fn run_jobs(dir: &Path, jobs: &[Job<'_>]) -> Result<Vec<Parsed>, DataError> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(jobs[*i].file.bytes));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Parsed, DataError>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let tz = OnceLock::new();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(jobs.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let result = run_job(dir, &jobs[i], &tz);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            let taken = slot.into_inner().ok().flatten();
            taken.unwrap_or_else(|| {
                Err(DataError::Manifest {
                    path: dir.join("manifest.json"),
                    message: "a loader worker stopped".into(),
                })
            })
        })
        .collect()
}

fn run_job(dir: &Path, job: &Job<'_>, tz: &OnceLock<TzResolver>) -> Result<Parsed, DataError> {
    let started = Instant::now();
    let (path, bytes) = read_verified(dir, job.file)?;
    let parsed = parse(&path, bytes, job.kind, tz)?;
    tracing::info!(file = %job.file.path, duration_ms = started.elapsed().as_millis() as u64, "data file parsed");
    Ok(parsed)
}

fn text(path: &Path, bytes: &[u8]) -> Result<String, DataError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let line = bytes[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
            + 1;
        DataError::parse(path, line, "not valid UTF-8")
    })
}

fn parse(
    path: &Path,
    bytes: Vec<u8>,
    kind: Kind,
    tz: &OnceLock<TzResolver>,
) -> Result<Parsed, DataError> {
    Ok(match kind {
        Kind::Geo => Parsed::Geo(parse_dbip_mmdb(
            path,
            bytes,
            tz.get_or_init(TzResolver::new),
        )?),
        Kind::Asn => Parsed::Asn(parse_asn_csv(path, &text(path, &bytes)?)?),
        Kind::IpOrigin => Parsed::Signals(parse_iporigin(path, &bytes)?.1),
        Kind::Firehol => Parsed::Signals(parse_firehol(path, &text(path, &bytes)?)?),
        Kind::Spamhaus => Parsed::Signals(parse_spamhaus_drop(path, &text(path, &bytes)?)?),
        Kind::EmergingThreats => {
            Parsed::Signals(parse_emerging_threats(path, &text(path, &bytes)?)?)
        }
        Kind::Kavachnet => Parsed::Signals(parse_kavachnet(path, &text(path, &bytes)?)?),
        Kind::Cloudcheck => Parsed::Signals(parse_cloudcheck(path, &text(path, &bytes)?)?),
        Kind::VerifyOnly => Parsed::Nothing,
    })
}

/// The name reasons use for a signal file: the package name, or the file
/// stem when one package ships several signal lists (seek).
fn signal_source_name(job: &Job<'_>) -> String {
    let signal_files = job
        .source
        .files
        .iter()
        .filter(|f| Kind::of(&f.role).is_signal())
        .count();
    if signal_files > 1 {
        let stem = PathBuf::from(&job.file.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        stem.unwrap_or_else(|| job.source.name.clone())
    } else {
        job.source.name.clone()
    }
}

fn meta(source: &ManifestSource, name: String, data_date: Option<&String>) -> SourceMeta {
    SourceMeta {
        name,
        package: source.package.clone(),
        version: source.version.clone(),
        data_date: data_date.or(source.data_date.as_ref()).cloned(),
        licence: source.licence.clone(),
        attribution: source.attribution.clone(),
        records: 0,
    }
}

/// Feeds the parsed files to the builder in manifest order.
fn assemble(jobs: &[Job<'_>], parsed: Vec<Parsed>) -> Snapshot {
    let mut builder = SnapshotBuilder::new();
    let mut table_sources: Vec<(&str, ipintel_core::SourceId, u64)> = Vec::new();
    for (job, parsed) in jobs.iter().zip(parsed) {
        match parsed {
            Parsed::Geo(batch) => {
                let id = table_source(&mut builder, &mut table_sources, job);
                let ids: Vec<_> = batch
                    .locations
                    .iter()
                    .map(|g| builder.location(g))
                    .collect();
                count(&mut table_sources, id, batch.ranges.len());
                for (range, loc) in batch.ranges {
                    builder.geo_location(range, ids[loc as usize]);
                }
            }
            Parsed::Asn(batch) => {
                let id = table_source(&mut builder, &mut table_sources, job);
                count(&mut table_sources, id, batch.rows.len());
                for (range, asn, holder) in batch.rows {
                    builder.asn(range, asn, &batch.holders[holder as usize]);
                }
            }
            Parsed::Signals(batch) => {
                let id = builder.source(meta(
                    job.source,
                    signal_source_name(job),
                    job.file.data_date.as_ref(),
                ));
                builder.set_records(id, batch.ranges.len() as u64);
                batch.feed(&mut builder, id);
            }
            Parsed::Nothing => {}
        }
    }
    for (_, id, records) in table_sources {
        builder.set_records(id, records);
    }
    builder.build()
}

/// One source per package for geo and AS tables (their files are the two
/// families of one data set).
fn table_source<'m>(
    builder: &mut SnapshotBuilder,
    seen: &mut Vec<(&'m str, ipintel_core::SourceId, u64)>,
    job: &Job<'m>,
) -> ipintel_core::SourceId {
    if let Some((_, id, _)) = seen.iter().find(|(n, _, _)| *n == job.source.name) {
        return *id;
    }
    let id = builder.source(meta(
        job.source,
        job.source.name.clone(),
        job.file.data_date.as_ref(),
    ));
    seen.push((&job.source.name, id, 0));
    id
}

fn count(seen: &mut [(&str, ipintel_core::SourceId, u64)], id: ipintel_core::SourceId, n: usize) {
    if let Some(entry) = seen.iter_mut().find(|(_, i, _)| *i == id) {
        entry.2 += n as u64;
    }
}

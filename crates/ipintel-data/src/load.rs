//! Reading a data directory into a [`Snapshot`], driven by a sources file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Instant;

use ipintel_core::{Aggregates, Snapshot, SnapshotBuilder, SourceId, SourceMeta};

use crate::asn::{parse_asn_csv, parse_geolite2_asn_mmdb, AsnBatch};
use crate::batch::SignalBatch;
use crate::cache::{Cache, CacheUse, LoadReport, Lookup};
use crate::cloudcheck::parse_cloudcheck_with;
use crate::error::DataError;
use crate::feeds::{parse_json_prefixes, parse_tor_exit_addresses};
use crate::geo::{dbip_mmdb, geo_csv, geolite2_city_mmdb, GeoBatch};
use crate::iporigin::parse_iporigin_with;
use crate::lists::{
    parse_emerging_threats_with, parse_ip_port, parse_kavachnet_with, parse_netset,
    parse_spamhaus_drop_with,
};
use crate::manifest::{
    read_manifest, read_verified, sha256_hex, Manifest, ManifestFile, ManifestSource,
};
use crate::sources::{Format, SourceSpec, SourcesConfig};
use crate::state::FeedStates;
use crate::tz::TzResolver;
use crate::weights::SourceWeights;

/// The time-zone index, built once per process (slow to build, and every
/// reload needs it).
pub(crate) static TZ: OnceLock<TzResolver> = OnceLock::new();

/// One file to verify and parse.
#[derive(Debug)]
struct Job<'a> {
    spec: &'a SourceSpec,
    rel: String,
    listed: Option<(&'a ManifestSource, &'a ManifestFile)>,
    feed_sha: Option<String>,
    feed_date: Option<String>,
}

/// A parsed file.
pub(crate) enum Parsed {
    Geo(GeoBatch),
    Asn(AsnBatch),
    Signals(SignalBatch, Option<String>),
}

/// Reads `<dir>/manifest.json`, verifies every listed file's size and
/// SHA-256, and builds the snapshot from the sources the manifest's file
/// roles name (the same sources as `config/sources.toml`). Fails on the
/// first broken file; nothing partial is returned.
/// The snapshot cache (see [`crate::cache`]) answers instead when it holds
/// a snapshot built from exactly these files.
pub fn load_snapshot(dir: &Path) -> Result<Snapshot, DataError> {
    load_snapshot_report(dir).map(|(snapshot, _)| snapshot)
}

/// [`load_snapshot`], also telling how the load went (whether the
/// snapshot came from the cache, and why not).
pub fn load_snapshot_report(dir: &Path) -> Result<(Snapshot, LoadReport), DataError> {
    // Opened first: it stamps the manifest and feed state before they are read.
    let cache = Cache::open(dir);
    let manifest = read_manifest(dir)?;
    let config = crate::from_manifest::sources_of(&manifest)?;
    let feeds = FeedStates::read(dir)?;
    load(
        dir,
        &config,
        Some(&manifest),
        &feeds,
        Aggregates::Now,
        &cache,
    )
}

/// The sources that the roles of `<dir>/manifest.json` name.
pub fn manifest_sources(dir: &Path) -> Result<SourcesConfig, DataError> {
    crate::from_manifest::sources_of(&read_manifest(dir)?)
}

/// Builds the snapshot from the sources of `config`, reading files from
/// `dir`. A file listed in `dir/manifest.json` is checked against it; a
/// downloaded feed is checked against the SHA-256 its download recorded.
/// The snapshot cache answers instead when it holds a snapshot built from
/// exactly these sources and files.
pub fn load_sources(dir: &Path, config: &SourcesConfig) -> Result<Snapshot, DataError> {
    load_sources_with(dir, config, Aggregates::Now)
}

/// [`load_sources`], computing the snapshot's country and AS aggregates
/// when `aggregates` says: a one-off run that only looks addresses up
/// (`ipintel enrich`) leaves them for a first use that never comes.
pub fn load_sources_with(
    dir: &Path,
    config: &SourcesConfig,
    aggregates: Aggregates,
) -> Result<Snapshot, DataError> {
    load_sources_report(dir, config, aggregates).map(|(snapshot, _)| snapshot)
}

/// [`load_sources_with`], also telling how the load went (whether the
/// snapshot came from the cache, and why not).
pub fn load_sources_report(
    dir: &Path,
    config: &SourcesConfig,
    aggregates: Aggregates,
) -> Result<(Snapshot, LoadReport), DataError> {
    // Opened first: it stamps the manifest and feed state before they are read.
    let cache = Cache::open(dir);
    let manifest = match read_manifest(dir) {
        Ok(m) => Some(m),
        Err(DataError::MissingManifest { .. }) => None,
        Err(e) => return Err(e),
    };
    let feeds = FeedStates::read(dir)?;
    load(dir, config, manifest.as_ref(), &feeds, aggregates, &cache)
}

/// Reads the snapshot from the cache, or builds it and writes the cache.
fn load(
    dir: &Path,
    config: &SourcesConfig,
    manifest: Option<&Manifest>,
    feeds: &FeedStates,
    aggregates: Aggregates,
    cache: &Cache,
) -> Result<(Snapshot, LoadReport), DataError> {
    let started = Instant::now();
    let (miss, key) = match cache.read(config, aggregates) {
        Lookup::Hit(snapshot) => {
            let snapshot = *snapshot;
            let total_ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                total_ms,
                ranges_v4 = snapshot.meta().ranges_v4,
                ranges_v6 = snapshot.meta().ranges_v6,
                "data snapshot read from the cache"
            );
            let report = LoadReport {
                cache: CacheUse::Read,
                miss: None,
                total_ms,
            };
            return Ok((snapshot, report));
        }
        Lookup::Off => (None, None),
        Lookup::Miss { why, key } => (Some(why), key),
    };
    let snapshot = build(dir, config, manifest, feeds, aggregates)?;
    let cache_use = match &key {
        Some(key) => cache.write(key, config, &snapshot),
        None if miss.is_none() => CacheUse::Off,
        None => CacheUse::NotWritten(miss.clone().unwrap_or_default()),
    };
    let report = LoadReport {
        cache: cache_use,
        miss,
        total_ms: started.elapsed().as_millis() as u64,
    };
    Ok((snapshot, report))
}

fn build(
    dir: &Path,
    config: &SourcesConfig,
    manifest: Option<&Manifest>,
    feeds: &FeedStates,
    aggregates: Aggregates,
) -> Result<Snapshot, DataError> {
    let started = Instant::now();
    let jobs = plan(config, manifest, feeds);
    let mut assembly = Assembly::new();
    run_jobs(dir, &jobs, |job, parsed| assembly.add(job, parsed))?;
    let files_ms = started.elapsed().as_millis() as u64;
    let snapshot = assembly.builder.build_with(aggregates);
    tracing::info!(
        files_ms,
        merge_ms = snapshot.meta().build_ms,
        total_ms = started.elapsed().as_millis() as u64,
        ranges_v4 = snapshot.meta().ranges_v4,
        ranges_v6 = snapshot.meta().ranges_v6,
        "data snapshot loaded"
    );
    Ok(snapshot)
}

fn plan<'a>(
    config: &'a SourcesConfig,
    manifest: Option<&'a Manifest>,
    feeds: &FeedStates,
) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for spec in &config.sources {
        let feed = feeds.get(&spec.name).filter(|_| spec.url().is_some());
        for rel in spec.files() {
            let listed = manifest.and_then(|m| listed(m, &rel));
            if listed.is_none() && feed.is_none() {
                tracing::debug!(source = %spec.name, file = %rel, "file not in the manifest: read unverified");
            }
            jobs.push(Job {
                spec,
                rel,
                listed,
                feed_sha: feed.and_then(|f| f.sha256.clone()),
                feed_date: feed.and_then(|f| f.data_date.clone()),
            });
        }
    }
    jobs
}

fn listed<'m>(manifest: &'m Manifest, rel: &str) -> Option<(&'m ManifestSource, &'m ManifestFile)> {
    manifest
        .sources
        .iter()
        .find_map(|s| s.files.iter().find(|f| f.path == rel).map(|f| (s, f)))
}

/// Runs the jobs, largest file first, on up to one worker per core, and
/// hands each parsed file to `take` on the calling thread in job order,
/// as soon as it and every file before it are parsed (the builder takes
/// the first files while the workers parse the rest). Stops at the first
/// job, in job order, that fails.
fn run_jobs(
    dir: &Path,
    jobs: &[Job<'_>],
    mut take: impl FnMut(&Job<'_>, Parsed),
) -> Result<(), DataError> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(jobs[*i].listed.map_or(0, |(_, f)| f.bytes)));
    let (order, next) = (&order, &AtomicUsize::new(0));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(jobs.len())
        .max(1);
    std::thread::scope(|scope| {
        let (done, results) = mpsc::channel();
        for _ in 0..workers {
            let done = done.clone();
            scope.spawn(move || {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    // The receiver is gone only after a failure: stop.
                    if done.send((i, run_job(dir, &jobs[i], &TZ))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);
        let mut waiting: Vec<Option<Result<Parsed, DataError>>> =
            jobs.iter().map(|_| None).collect();
        let mut taken = 0;
        for (i, result) in results {
            waiting[i] = Some(result);
            while let Some(ready) = waiting.get_mut(taken).and_then(Option::take) {
                take(&jobs[taken], ready?);
                taken += 1;
            }
        }
        if taken < jobs.len() {
            return Err(DataError::Manifest {
                path: dir.join(crate::manifest::MANIFEST_FILE),
                message: "a loader worker stopped".into(),
            });
        }
        Ok(())
    })
}

fn read_job(dir: &Path, job: &Job<'_>) -> Result<(PathBuf, Vec<u8>), DataError> {
    if let Some((_, file)) = job.listed {
        return read_verified(dir, file);
    }
    let path = dir.join(&job.rel);
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    if let Some(expected) = &job.feed_sha {
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(DataError::Checksum {
                file: path,
                recorded_in: dir.join(crate::state::STATE_FILE),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok((path, bytes))
}

fn run_job(dir: &Path, job: &Job<'_>, tz: &OnceLock<TzResolver>) -> Result<Parsed, DataError> {
    let started = Instant::now();
    let (path, bytes) = read_job(dir, job)?;
    let parsed = parse_file(&path, bytes, job.spec, tz)?;
    tracing::info!(file = %job.rel, source = %job.spec.name, duration_ms = started.elapsed().as_millis() as u64, "data file parsed");
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

/// Parses one file of `spec` in its format, with its weights. Also used
/// to validate a download before it replaces the copy on disk.
pub(crate) fn parse_file(
    path: &Path,
    bytes: Vec<u8>,
    spec: &SourceSpec,
    tz: &OnceLock<TzResolver>,
) -> Result<Parsed, DataError> {
    let w: &SourceWeights = &spec.weights;
    let single = || {
        spec.single_weight()
            .ok_or_else(|| DataError::parse(path, 0, "the source names no signal kind"))
    };
    // Time zones are resolved once a geo file is read: the zone index is
    // built by the first file to get there while the others read on.
    let tz = || tz.get_or_init(TzResolver::new);
    let signals = |b: SignalBatch| Ok(Parsed::Signals(b, None));
    match spec.format {
        Format::MmdbDbip => Ok(Parsed::Geo(dbip_mmdb(path, bytes, tz)?)),
        Format::MmdbGeolite2City => Ok(Parsed::Geo(geolite2_city_mmdb(path, bytes, tz)?)),
        Format::CsvGeo => Ok(Parsed::Geo(geo_csv(path, &text(path, &bytes)?, tz)?)),
        Format::MmdbGeolite2Asn => Ok(Parsed::Asn(parse_geolite2_asn_mmdb(path, bytes)?)),
        Format::CsvAsn => Ok(Parsed::Asn(parse_asn_csv(path, &text(path, &bytes)?)?)),
        Format::Iporigin => signals(parse_iporigin_with(path, &bytes, w)?.1),
        Format::Netset => signals(parse_netset(path, &text(path, &bytes)?, single()?)?),
        Format::SpamhausDrop => signals(parse_spamhaus_drop_with(
            path,
            &text(path, &bytes)?,
            single()?,
        )?),
        Format::IpPort => signals(parse_ip_port(path, &text(path, &bytes)?, single()?)?),
        Format::JsonPrefixes => {
            signals(parse_json_prefixes(path, &text(path, &bytes)?, single()?)?)
        }
        Format::EmergingThreats => {
            signals(parse_emerging_threats_with(path, &text(path, &bytes)?, w)?)
        }
        Format::Kavachnet => signals(parse_kavachnet_with(path, &text(path, &bytes)?, w)?),
        Format::Cloudcheck => signals(parse_cloudcheck_with(path, &text(path, &bytes)?, w)?),
        Format::TorExitAddresses => {
            let exits = parse_tor_exit_addresses(path, &text(path, &bytes)?, single()?)?;
            Ok(Parsed::Signals(exits.batch, exits.newest_published))
        }
    }
}

impl Parsed {
    /// Records (ranges) the file gave.
    pub(crate) fn records(&self) -> u64 {
        match self {
            Parsed::Geo(b) => b.ranges.len() as u64,
            Parsed::Asn(b) => b.rows.len() as u64,
            Parsed::Signals(b, _) => b.ranges.len() as u64,
        }
    }

    /// The data date the file itself states, if any.
    pub(crate) fn data_date(&self) -> Option<&str> {
        match self {
            Parsed::Signals(_, date) => date.as_deref(),
            _ => None,
        }
    }
}

fn meta(job: &Job<'_>, parsed_date: Option<&str>) -> SourceMeta {
    let (package, version, licence, attribution, listed_date) = match job.listed {
        Some((s, f)) => (
            s.package.clone(),
            s.version.clone(),
            s.licence.clone(),
            s.attribution.clone(),
            f.data_date.clone().or_else(|| s.data_date.clone()),
        ),
        None => (None, None, String::new(), String::new(), None),
    };
    let pick = |own: &Option<String>, listed: String| {
        own.clone().filter(|_| listed.is_empty()).unwrap_or(listed)
    };
    SourceMeta {
        name: job.spec.name.clone(),
        package,
        version,
        data_date: parsed_date
            .map(str::to_owned)
            .or(listed_date)
            .or_else(|| job.feed_date.clone()),
        licence: pick(&job.spec.licence, licence),
        attribution: pick(&job.spec.attribution, attribution),
        records: 0,
    }
}

/// The builder, fed the parsed files in sources-file order, one builder
/// source per sources-file source.
struct Assembly {
    builder: SnapshotBuilder,
    /// The source being fed: its name, id and records so far.
    current: Option<(String, SourceId, u64)>,
}

impl Assembly {
    fn new() -> Self {
        Assembly {
            builder: SnapshotBuilder::new(),
            current: None,
        }
    }

    fn add(&mut self, job: &Job<'_>, parsed: Parsed) {
        let started = Instant::now();
        let records = parsed.records();
        let id = match &mut self.current {
            Some((name, id, n)) if *name == job.spec.name => {
                *n += records;
                *id
            }
            _ => {
                let id = self.builder.source(meta(job, parsed.data_date()));
                self.current = Some((job.spec.name.clone(), id, records));
                id
            }
        };
        if let Some((_, id, n)) = &self.current {
            self.builder.set_records(*id, *n);
        }
        feed(&mut self.builder, id, parsed);
        tracing::debug!(
            file = %job.rel,
            duration_ms = started.elapsed().as_millis() as u64,
            "data file fed to the builder"
        );
    }
}

fn feed(builder: &mut SnapshotBuilder, id: SourceId, parsed: Parsed) {
    match parsed {
        Parsed::Geo(batch) => {
            builder.reserve_locations(batch.locations.len());
            let ids: Vec<_> = batch
                .locations
                .iter()
                .map(|g| builder.location(g))
                .collect();
            builder.geo_ranges(batch.ranges, &ids);
        }
        Parsed::Asn(batch) => {
            for (range, asn, holder) in batch.rows {
                builder.asn(range, asn, &batch.holders[holder as usize]);
            }
        }
        Parsed::Signals(batch, _) => batch.feed(builder, id),
    }
}

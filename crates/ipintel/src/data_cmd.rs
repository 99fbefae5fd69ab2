//! `ipintel data update`: download the due feeds, then prove the data loads.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use ipintel_data::update::{update_due, FeedResult, UpdateOptions};

use crate::config::LookupConfig;

/// Options of `ipintel data update`.
#[derive(Debug, Clone)]
pub struct UpdateArgs {
    /// `--sources`, over the configured sources file.
    pub sources: Option<PathBuf>,
    /// `--force`: download every URL source in full, due or not, without
    /// conditional requests.
    pub force: bool,
}

/// Downloads what is due, prints one line per URL source, then builds a
/// full snapshot to prove the data directory loads. Fails when a source
/// failed or the snapshot does not build.
pub async fn update(config: LookupConfig, args: UpdateArgs) -> anyhow::Result<()> {
    let mut data = config.data;
    if args.sources.is_some() {
        data.sources = args.sources;
    }
    let location = crate::reload::location(&data);
    let dir = data.dir.clone();
    let force = args.force;
    let (report, snapshot) = tokio::task::spawn_blocking(move || {
        let sources = ipintel_http::read_sources(&dir, &location)?;
        std::fs::create_dir_all(&dir).map_err(|source| ipintel_data::DataError::Io {
            path: dir.clone(),
            source,
        })?;
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let report = update_due(
            &dir,
            &sources,
            UpdateOptions {
                force,
                refetch: force,
                now_unix,
            },
        )?;
        let snapshot = ipintel_data::load_sources(&dir, &sources);
        Ok::<_, ipintel_data::DataError>((report, snapshot))
    })
    .await
    .context("the update task failed")??;
    for (name, result) in &report.feeds {
        match result {
            FeedResult::NotDue => println!("{name}: not due"),
            FeedResult::NotModified => println!("{name}: not modified"),
            FeedResult::Updated { records, bytes } => {
                println!("{name}: updated, {records} records, {bytes} bytes");
            }
            FeedResult::Failed(e) => println!("{name}: FAILED: {e} (the last good copy stays)"),
        }
    }
    let snapshot =
        snapshot.with_context(|| format!("the data in {} does not load", data.dir.display()))?;
    let meta = snapshot.meta();
    println!(
        "snapshot: {} sources, {} IPv4 and {} IPv6 ranges, built in {} ms",
        meta.sources.len(),
        meta.ranges_v4,
        meta.ranges_v6,
        meta.build_ms
    );
    if report.failed() {
        bail!("some sources failed; the service keeps their last good copies");
    }
    Ok(())
}

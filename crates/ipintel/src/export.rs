//! `ipintel export --mmdb FILE`: the local data as a MaxMind DB file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ipintel_mmdb::{export_snapshot, ExportStats};

use crate::config::LookupConfig;
use crate::serve::load_data;

/// Loads the data, writes the database next to `path` and renames it into
/// place, so a reader never sees half a file. Prints what was written to
/// standard error.
pub async fn run(config: LookupConfig, path: PathBuf) -> anyhow::Result<()> {
    let (_, snapshot) = load_data(&config.data, false).await?;
    let started = Instant::now();
    let built = u64::try_from(snapshot.meta().built_at_unix).unwrap_or(0);
    let target = path.clone();
    let stats = tokio::task::spawn_blocking(move || {
        write_atomically(&target, |out| {
            export_snapshot(&snapshot, out, built).map_err(anyhow::Error::from)
        })
    })
    .await
    .context("the export task failed")??;
    let l = stats.layout;
    eprintln!(
        "ipintel: wrote {}: {} bytes ({} tree nodes, {}-bit records, {} data bytes, \
         {} distinct records, {} IPv4 and {} IPv6 ranges) in {:.2} s",
        path.display(),
        l.total_bytes,
        l.node_count,
        l.record_size,
        l.data_bytes,
        stats.records,
        stats.ranges_v4,
        stats.ranges_v6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<ExportStats>,
) -> anyhow::Result<ExportStats> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial = path.with_file_name(name);
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = write(&mut out).and_then(|stats| {
        out.flush()?;
        out.get_ref().sync_all()?;
        Ok(stats)
    });
    let stats = match written {
        Ok(stats) => stats,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err.context(format!("cannot write {}", partial.display())));
        }
    };
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move {} to {}", partial.display(), path.display()))?;
    Ok(stats)
}

//! The sources a manifest's file roles name, for a data directory without
//! a sources file. `config/sources.toml` lists the same sources.

use crate::error::DataError;
use crate::manifest::{Manifest, ManifestSource};
use crate::sources::{Format, Location, SourceSpec, SourcesConfig, TableKind, Tell};
use crate::weights::SourceWeights;

fn format_of(role: &str) -> Option<Format> {
    Some(match role {
        "geo-mmdb" => Format::MmdbDbip,
        "asn-csv" => Format::CsvAsn,
        "iporigin-ranges" => Format::Iporigin,
        "netset" => Format::Netset,
        "spamhaus-drop" => Format::SpamhausDrop,
        "emerging-threats" => Format::EmergingThreats,
        "kavachnet-list" => Format::Kavachnet,
        "cloudcheck-json" => Format::Cloudcheck,
        _ => return None,
    })
}

fn tells_of(format: Format) -> Vec<Tell> {
    use ipintel_core::SignalKind as K;
    let signals: &[K] = match format {
        Format::Iporigin => &[K::Tor, K::Vpn, K::Datacenter, K::Cdn, K::Crawler],
        Format::Netset | Format::SpamhausDrop => &[K::Blocklist],
        Format::EmergingThreats => &[K::Botnet, K::Attacker],
        Format::Kavachnet => &[K::Proxy, K::Vpn, K::Tor, K::Datacenter],
        Format::Cloudcheck => &[K::Datacenter, K::Cdn],
        _ => &[],
    };
    match format.table() {
        Some(kind) => vec![Tell::Table(kind)],
        None => signals.iter().map(|k| Tell::Signal(*k)).collect(),
    }
}

fn spec(name: String, format: Format, files: Vec<String>) -> SourceSpec {
    SourceSpec {
        name,
        tells: tells_of(format),
        format,
        locations: files.into_iter().map(Location::File).collect(),
        refresh: None,
        weights: SourceWeights::default(),
        licence: None,
        attribution: None,
        max_shrink: 0.5,
        max_bytes: u64::MAX,
        timeout: std::time::Duration::from_secs(60),
    }
}

/// Signal files take the package name, or the file stem when one package
/// ships several signal lists (seek); table files of one package are one
/// source.
fn specs_of(source: &ManifestSource) -> Vec<SourceSpec> {
    let signal_files = source
        .files
        .iter()
        .filter(|f| format_of(&f.role).is_some_and(|f| f.table().is_none()))
        .count();
    let mut out: Vec<SourceSpec> = Vec::new();
    for file in &source.files {
        let Some(format) = format_of(&file.role) else {
            continue;
        };
        if format.table().is_some() {
            if let Some(existing) = out.iter_mut().find(|s| s.format == format) {
                existing.locations.push(Location::File(file.path.clone()));
                continue;
            }
        }
        let name = if format.table().is_none() && signal_files > 1 {
            std::path::Path::new(&file.path)
                .file_stem()
                .map_or_else(|| source.name.clone(), |s| s.to_string_lossy().into_owned())
        } else {
            source.name.clone()
        };
        out.push(spec(name, format, vec![file.path.clone()]));
    }
    out
}

/// The sources of a manifest; geo and AS data must be present.
pub(crate) fn sources_of(manifest: &Manifest) -> Result<SourcesConfig, DataError> {
    let sources: Vec<SourceSpec> = manifest.sources.iter().flat_map(specs_of).collect();
    for (role, kind) in [("geo-mmdb", TableKind::Geo), ("asn-csv", TableKind::Asn)] {
        if !sources.iter().any(|s| s.tells == [Tell::Table(kind)]) {
            return Err(DataError::MissingRole {
                role: role.to_owned(),
            });
        }
    }
    Ok(SourcesConfig {
        path: "manifest.json".into(),
        sources,
    })
}

//! The sources file: which data sources make a snapshot, where each comes
//! from, how often it is refreshed and how much it weighs.
//!
//! ```toml
//! [defaults]
//! max_shrink = 0.5            # hold back a feed that loses more than half its records
//! timeout_secs = 60
//! max_bytes = 268435456
//!
//! [[source]]
//! name = "tor-exits"
//! tells = ["tor"]
//! format = "tor-exit-addresses"
//! location = "https://check.torproject.org/exit-addresses"
//! refresh = "1h"
//! licence = "CC0"
//! attribution = "The Tor Project"
//! weights = { tor = { weight = 45, confidence = 0.95 } }
//! ```
//!
//! docs/data-updates.md describes every key and format.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use ipintel_core::SignalKind;
use serde::Deserialize;

use crate::weights::{SourceWeights, Weight};

/// Why a sources file cannot be used.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum SourcesError {
    /// The file cannot be read.
    #[error("reading sources file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys (the message names the line).
    #[error("sources file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML reader said, with line and column.
        message: String,
    },
    /// One source entry is wrong.
    #[error("sources file {path}: source {name:?}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The source's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// What a source tells about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", untagged)]
pub enum Tell {
    /// A signal kind (tor, vpn, proxy, datacenter, cdn, crawler, blocklist, attacker, botnet).
    Signal(SignalKind),
    /// Location or AS data.
    Table(TableKind),
}

/// Non-signal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// Location.
    Geo,
    /// AS number and holder.
    Asn,
}

/// How a source's file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// DB-IP city mmdb (flat record).
    MmdbDbip,
    /// MaxMind GeoLite2/GeoIP2 City mmdb.
    MmdbGeolite2City,
    /// MaxMind GeoLite2/GeoIP2 ASN mmdb.
    MmdbGeolite2Asn,
    /// CSV `first,last,country,state1,state2,city,postcode,lat,lon[,tz]`.
    CsvGeo,
    /// CSV `first,last,asn,org`.
    CsvAsn,
    /// One address or CIDR per line, `#`/`;` comments (FireHOL netset/ipset).
    Netset,
    /// `CIDR ; SBLnnn`.
    SpamhausDrop,
    /// The Tor Project's `exit-addresses`.
    TorExitAddresses,
    /// `address:port` proxy lists.
    IpPort,
    /// `{"prefixes": [...]}` documents.
    JsonPrefixes,
    /// cloudcheck `cloud_providers_v3.json`.
    Cloudcheck,
    /// iporigin `ranges.bin`.
    Iporigin,
    /// Emerging Threats fwip rules (sectioned).
    EmergingThreats,
    /// kavachnet `ADDRESS|LABEL`.
    Kavachnet,
}

impl Format {
    /// Whether files of this format are lines of text, each ended by a
    /// newline (a download that stops mid-line is then refused).
    pub fn is_line_based(self) -> bool {
        !matches!(
            self,
            Format::MmdbDbip
                | Format::MmdbGeolite2City
                | Format::MmdbGeolite2Asn
                | Format::JsonPrefixes
                | Format::Cloudcheck
                | Format::Iporigin
        )
    }

    /// What the format can hold: `None` for signal formats.
    pub fn table(self) -> Option<TableKind> {
        match self {
            Format::MmdbDbip | Format::MmdbGeolite2City | Format::CsvGeo => Some(TableKind::Geo),
            Format::MmdbGeolite2Asn | Format::CsvAsn => Some(TableKind::Asn),
            _ => None,
        }
    }

    /// True for formats whose entries all make one claim (the source's
    /// single signal kind).
    pub fn is_single_kind(self) -> bool {
        matches!(
            self,
            Format::Netset
                | Format::SpamhausDrop
                | Format::TorExitAddresses
                | Format::IpPort
                | Format::JsonPrefixes
        )
    }
}

/// Where a source's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file relative to the data directory.
    File(String),
    /// An http(s) URL; the downloaded copy lives at `feeds/<name>` in the data directory.
    Url(String),
}

/// One source, validated.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Unique name; reasons and `/readyz` use it.
    pub name: String,
    /// What it tells.
    pub tells: Vec<Tell>,
    /// How its files are read.
    pub format: Format,
    /// Its files (several for a data set split by family), or one URL.
    pub locations: Vec<Location>,
    /// How often to refresh; `None` for a packaged snapshot that never changes by itself.
    pub refresh: Option<Duration>,
    /// Weights by kind over the format's defaults.
    pub weights: SourceWeights,
    /// Licence, when the manifest does not give it.
    pub licence: Option<String>,
    /// Attribution line, when the manifest does not give it.
    pub attribution: Option<String>,
    /// Largest share of records a new download may lose before it is held back.
    pub max_shrink: f64,
    /// Download size cap in bytes.
    pub max_bytes: u64,
    /// Download timeout.
    pub timeout: Duration,
}

impl SourceSpec {
    /// The URL, when the source is downloaded.
    pub fn url(&self) -> Option<&str> {
        self.locations.iter().find_map(|l| match l {
            Location::Url(u) => Some(u.as_str()),
            Location::File(_) => None,
        })
    }

    /// Files to read, relative to the data directory.
    pub fn files(&self) -> Vec<String> {
        self.locations
            .iter()
            .map(|l| match l {
                Location::File(f) => f.clone(),
                Location::Url(_) => feed_path(&self.name),
            })
            .collect()
    }

    /// The single signal kind of the source (first signal in `tells`).
    pub fn signal_kind(&self) -> Option<SignalKind> {
        self.tells.iter().find_map(|t| match t {
            Tell::Signal(k) => Some(*k),
            Tell::Table(_) => None,
        })
    }

    /// The weight of the source's single kind (for single-kind formats):
    /// the sources file's, else the format's default for that kind.
    pub fn single_weight(&self) -> Option<Weight> {
        let kind = self.signal_kind()?;
        let default = match (self.format, kind) {
            (Format::SpamhausDrop, SignalKind::Blocklist) => crate::weights::SPAMHAUS_DROP,
            _ => crate::weights::default_for(kind),
        };
        Some(self.weights.pick(default))
    }

    /// The `tells` as text.
    pub fn tells_text(&self) -> Vec<&'static str> {
        self.tells
            .iter()
            .map(|t| match t {
                Tell::Signal(k) => k.as_str(),
                Tell::Table(TableKind::Geo) => "geo",
                Tell::Table(TableKind::Asn) => "asn",
            })
            .collect()
    }

    /// Location as text (URL or files joined by commas).
    pub fn location_text(&self) -> String {
        self.url()
            .map_or_else(|| self.files().join(","), str::to_owned)
    }
}

/// Where the downloaded copy of source `name` lives in the data directory.
pub fn feed_path(name: &str) -> String {
    format!("feeds/{name}")
}

/// A whole sources file.
#[derive(Debug, Clone)]
pub struct SourcesConfig {
    /// The file it came from (for messages).
    pub path: PathBuf,
    /// The sources in file order (the snapshot's source order).
    pub sources: Vec<SourceSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    source: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default = "default_shrink")]
    max_shrink: f64,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    #[serde(default = "default_max_bytes")]
    max_bytes: u64,
}

impl Default for RawDefaults {
    fn default() -> Self {
        Self {
            max_shrink: default_shrink(),
            timeout_secs: default_timeout(),
            max_bytes: default_max_bytes(),
        }
    }
}

fn default_shrink() -> f64 {
    0.5
}
fn default_timeout() -> u64 {
    60
}
fn default_max_bytes() -> u64 {
    256 * 1024 * 1024
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeight {
    weight: u8,
    confidence: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    tells: Vec<Tell>,
    format: Format,
    location: OneOrMany,
    #[serde(default)]
    refresh: Option<String>,
    #[serde(default)]
    weights: BTreeMap<SignalKind, RawWeight>,
    licence: Option<String>,
    attribution: Option<String>,
    max_shrink: Option<f64>,
    max_bytes: Option<u64>,
    timeout_secs: Option<u64>,
}

impl SourcesConfig {
    /// Reads and validates a sources file.
    pub fn from_file(path: &Path) -> Result<Self, SourcesError> {
        let text = std::fs::read_to_string(path).map_err(|source| SourcesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses and validates sources-file text; `path` is used in messages.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, SourcesError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| SourcesError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut seen = HashSet::new();
        let mut sources = Vec::with_capacity(raw.source.len());
        for s in raw.source {
            let spec =
                validate(s, &raw.defaults).map_err(|(name, message)| SourcesError::Invalid {
                    path: path.to_path_buf(),
                    name,
                    message,
                })?;
            if !seen.insert(spec.name.clone()) {
                return Err(SourcesError::Invalid {
                    path: path.to_path_buf(),
                    name: spec.name,
                    message: "listed twice".into(),
                });
            }
            sources.push(spec);
        }
        Ok(Self {
            path: path.to_path_buf(),
            sources,
        })
    }

    /// The packaged sources file shipped in `config/sources.toml`: every
    /// packaged snapshot that `scripts/fetch_data.py` puts in `data/`.
    pub fn packaged() -> Result<Self, SourcesError> {
        Self::from_toml(
            Path::new("config/sources.toml"),
            include_str!("../../../config/sources.toml"),
        )
    }

    /// The source called `name`.
    pub fn get(&self, name: &str) -> Option<&SourceSpec> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Parses a refresh interval: `never`, or a number with `s`, `m`, `h` or `d`.
pub fn parse_interval(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "refresh {text:?}: expected never or N followed by s, m, h or d"
            ))
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("refresh {text:?}: {number:?} is not a whole number"))?;
    if n == 0 {
        return Err(format!("refresh {text:?} must be above zero"));
    }
    Ok(Some(Duration::from_secs(n.saturating_mul(factor))))
}

fn location(text: &str) -> Result<Location, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        return Ok(Location::Url(text.to_owned()));
    }
    if text.contains("://") {
        return Err(format!(
            "location {text:?}: only http and https URLs are fetched"
        ));
    }
    let inside = !text.is_empty()
        && Path::new(text)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if inside {
        Ok(Location::File(text.to_owned()))
    } else {
        Err(format!(
            "location {text:?} must be a URL or a path relative to the data directory, without .."
        ))
    }
}

fn validate(s: RawSource, d: &RawDefaults) -> Result<SourceSpec, (String, String)> {
    let name = s.name.clone();
    check(&s, d).map_err(|m| (name, m))
}

fn check(s: &RawSource, d: &RawDefaults) -> Result<SourceSpec, String> {
    let valid_name = !s.name.is_empty()
        && s.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.name.starts_with('.');
    if !valid_name {
        return Err("name must be letters, digits, '-', '_' or '.'".into());
    }
    let texts = match &s.location {
        OneOrMany::One(t) => vec![t.clone()],
        OneOrMany::Many(v) => v.clone(),
    };
    let locations = texts
        .iter()
        .map(|t| location(t))
        .collect::<Result<Vec<_>, _>>()?;
    let urls = locations
        .iter()
        .filter(|l| matches!(l, Location::Url(_)))
        .count();
    if locations.is_empty() || (urls > 0 && locations.len() > 1) {
        return Err("location must be one URL, or one or more files".into());
    }
    check_tells(s)?;
    let max_shrink = s.max_shrink.unwrap_or(d.max_shrink);
    if !(0.0..=1.0).contains(&max_shrink) {
        return Err(format!("max_shrink {max_shrink} must be within 0..=1"));
    }
    let weights = s
        .weights
        .iter()
        .map(|(kind, w)| {
            if w.weight > 100 || !(0.0..=1.0).contains(&w.confidence) {
                return Err(format!(
                    "weight of {}: weight 0..=100, confidence 0..=1",
                    kind.as_str()
                ));
            }
            Ok(Weight {
                kind: *kind,
                weight: w.weight,
                confidence: w.confidence,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SourceSpec {
        name: s.name.clone(),
        tells: s.tells.clone(),
        format: s.format,
        locations,
        refresh: s
            .refresh
            .as_deref()
            .map(parse_interval)
            .transpose()?
            .flatten(),
        weights: SourceWeights::new(weights),
        licence: s.licence.clone(),
        attribution: s.attribution.clone(),
        max_shrink,
        max_bytes: s.max_bytes.unwrap_or(d.max_bytes),
        timeout: Duration::from_secs(s.timeout_secs.unwrap_or(d.timeout_secs).max(1)),
    })
}

fn check_tells(s: &RawSource) -> Result<(), String> {
    let signals = s
        .tells
        .iter()
        .filter(|t| matches!(t, Tell::Signal(_)))
        .count();
    match s.format.table() {
        Some(kind) if s.tells != [Tell::Table(kind)] => Err(format!(
            "format {:?} holds {} data: tells must be [\"{}\"]",
            s.format,
            if kind == TableKind::Geo { "geo" } else { "asn" },
            if kind == TableKind::Geo { "geo" } else { "asn" },
        )),
        None if signals == 0 || signals != s.tells.len() => {
            Err("a signal format must tell signal kinds only (tor, vpn, proxy, ...)".into())
        }
        None if s.format.is_single_kind() && signals != 1 => Err(format!(
            "format {:?} makes one claim per entry: tells must name one kind",
            s.format
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourcesConfig, SourcesError> {
        SourcesConfig::from_toml(Path::new("s.toml"), text)
    }

    #[test]
    fn packaged_file_parses() {
        let c = SourcesConfig::packaged().unwrap();
        assert!(c.get("dbip-city").is_some());
        assert!(c.sources.iter().all(|s| s.url().is_none()));
    }

    #[test]
    fn upstream_file_parses() {
        let text = include_str!("../../../config/sources.upstream.toml");
        let c = parse(text).unwrap();
        assert!(c.sources.iter().any(|s| s.url().is_some()));
    }

    #[test]
    fn a_url_source() {
        let c = parse(
            "[[source]]\nname = \"tor\"\ntells = [\"tor\"]\nformat = \"tor-exit-addresses\"\n\
             location = \"http://127.0.0.1:1/x\"\nrefresh = \"30m\"\n\
             weights = { tor = { weight = 50, confidence = 0.9 } }\n",
        )
        .unwrap();
        let s = &c.sources[0];
        assert_eq!(s.refresh, Some(Duration::from_secs(1800)));
        assert_eq!(s.files(), ["feeds/tor"]);
        assert_eq!(s.single_weight().map(|w| w.weight), Some(50));
        assert!((s.max_shrink - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn mistakes_are_named() {
        let base = "[[source]]\nname = \"x\"\nformat = \"netset\"\n";
        let cases = [
            (format!("{base}tells = [\"blocklist\"]\nlocation = \"../etc/passwd\"\n"), "relative"),
            (format!("{base}tells = [\"blocklist\"]\nlocation = \"ftp://h/x\"\n"), "http"),
            (format!("{base}tells = [\"geo\"]\nlocation = \"a\"\n"), "signal"),
            (format!("{base}tells = [\"tor\", \"vpn\"]\nlocation = \"a\"\n"), "one kind"),
            (format!("{base}tells = [\"tor\"]\nlocation = \"a\"\nrefresh = \"5w\"\n"), "refresh"),
            (format!("{base}tells = [\"tor\"]\nlocation = \"a\"\nmax_shrink = 2.0\n"), "max_shrink"),
            (format!("{base}tells = [\"tor\"]\nlocation = \"a\"\nweights = {{ tor = {{ weight = 101, confidence = 1.0 }} }}\n"), "weight"),
        ];
        for (text, needle) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(
                err.contains("source \"x\"") && err.contains(needle),
                "{err}"
            );
        }
        let err = parse("[[source]]\nname = 1\n").unwrap_err().to_string();
        assert!(err.contains("s.toml") && err.contains("line"), "{err}");
        let twice = format!("{base}tells = [\"tor\"]\nlocation = \"a\"\n");
        let err = parse(&format!("{twice}{twice}")).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
    }
}

//! Input types handed to the [`crate::SnapshotBuilder`] by the loaders.

use serde::{Deserialize, Serialize};

/// Provenance of one data source, reported in the snapshot metadata.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SourceMeta {
    /// Short name used in reasons, e.g. `iporigin`.
    pub name: String,
    /// Registry package the data came from.
    pub package: Option<String>,
    /// Package version.
    pub version: Option<String>,
    /// Date of the data, `YYYY-MM-DD`.
    pub data_date: Option<String>,
    /// Licence text or identifier.
    pub licence: String,
    /// Attribution line to show users.
    pub attribution: String,
    /// Number of records read from the source.
    pub records: u64,
}

/// Handle of a source registered with [`crate::SnapshotBuilder::source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub(crate) u16);

impl SourceId {
    /// Position of the source in [`crate::SnapshotMeta::sources`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Location data for a range. Empty strings should be given as `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoData {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// First-level region (state, province).
    pub region: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
    /// IANA time zone name.
    pub timezone: Option<String>,
}

/// What a threat or infrastructure signal says about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Tor exit or relay.
    Tor,
    /// Commercial VPN endpoint.
    Vpn,
    /// Open or commercial proxy.
    Proxy,
    /// Hosting or cloud provider.
    Datacenter,
    /// Content delivery network.
    Cdn,
    /// Declared crawler or bot.
    Crawler,
    /// Listed on a general blocklist.
    Blocklist,
    /// Seen attacking (e.g. DShield top attackers).
    Attacker,
    /// Botnet command-and-control.
    Botnet,
    /// Reported by users of this service (`POST /v1/ip/report`).
    AbuseReports,
}

impl SignalKind {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Tor => "tor",
            SignalKind::Vpn => "vpn",
            SignalKind::Proxy => "proxy",
            SignalKind::Datacenter => "datacenter",
            SignalKind::Cdn => "cdn",
            SignalKind::Crawler => "crawler",
            SignalKind::Blocklist => "blocklist",
            SignalKind::Attacker => "attacker",
            SignalKind::Botnet => "botnet",
            SignalKind::AbuseReports => "abuse_reports",
        }
    }
}

/// One signal attached to a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// What the signal says.
    pub kind: SignalKind,
    /// Which source says it.
    pub source: SourceId,
    /// Contribution to the score, `0..=100`.
    pub weight: u8,
    /// How much the source is trusted for this claim, `0.0..=1.0`.
    pub confidence: f32,
    /// Operator named by the source (e.g. `Mullvad`, `Amazon AWS`).
    pub provider: Option<String>,
    /// Source-specific detail (e.g. a Spamhaus SBL id).
    pub detail: Option<String>,
}

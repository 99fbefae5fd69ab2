//! Default weights and confidences of every signal, per source.
//!
//! The score of an address is the noisy-OR of the weights of the signals
//! that cover it: `round(100 * (1 - prod(1 - w/100)))`. Confidence is
//! reported with each reason and flag but does not enter the score; a
//! signal below `ipintel_core::FLAG_MIN_CONFIDENCE` raises no flag.
//!
//! | source | list / label | signal | weight | confidence |
//! |---|---|---|---:|---:|
//! | seek: Spamhaus DROP | every entry | blocklist | 85 | 0.90 |
//! | seek: FireHOL level 1 | every entry | blocklist | 70 | 0.80 |
//! | seek: Emerging Threats | `# Feodo` / abuse.ch C&C section | botnet | 90 | 0.90 |
//! | seek: Emerging Threats | `#Dshield Top Attackers` section | attacker | 60 | 0.70 |
//! | seek: Emerging Threats | `#Spamhaus DROP Nets` section | skipped (same list as DROP) | - | - |
//! | iporigin | `tor` | tor | 45 | 0.95 |
//! | iporigin | `vpn` (Mullvad, ProtonVPN, Apple Private Relay) | vpn | 25 | 0.90 |
//! | iporigin | `hosting` | datacenter | 10 | 0.90 |
//! | iporigin | `cdn` | cdn | 5 | 0.90 |
//! | iporigin | `bot` (declared crawlers) | crawler | 0 | 0.90 |
//! | kavachnet | `PROXY` | proxy | 35 | 0.50 |
//! | kavachnet | `VPN` (noisy: holds datacenter ranges) | vpn | 5 | 0.30 |
//! | kavachnet | `TOR` | tor | 45 | 0.60 |
//! | kavachnet | `CLOUD` | datacenter | 5 | 0.60 |
//! | cloudcheck | tag `cloud` | datacenter | 10 | 0.80 |
//! | cloudcheck | tag `cdn` | cdn | 5 | 0.80 |
//!
//! docs/scoring.md carries the same table with the reasoning behind it.

use ipintel_core::SignalKind;

/// Weight and confidence of one kind of claim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weight {
    /// Signal kind.
    pub kind: SignalKind,
    /// Score weight, `0..=100`.
    pub weight: u8,
    /// Confidence, `0.0..=1.0`.
    pub confidence: f32,
}

const fn w(kind: SignalKind, weight: u8, confidence: f32) -> Weight {
    Weight {
        kind,
        weight,
        confidence,
    }
}

/// Spamhaus DROP entry.
pub const SPAMHAUS_DROP: Weight = w(SignalKind::Blocklist, 85, 0.9);
/// FireHOL level 1 entry.
pub const FIREHOL_LEVEL1: Weight = w(SignalKind::Blocklist, 70, 0.8);
/// Emerging Threats: abuse.ch Feodo C&C.
pub const ET_BOTNET_CC: Weight = w(SignalKind::Botnet, 90, 0.9);
/// Emerging Threats: DShield top attackers.
pub const ET_ATTACKER: Weight = w(SignalKind::Attacker, 60, 0.7);
/// iporigin `tor`.
pub const IPORIGIN_TOR: Weight = w(SignalKind::Tor, 45, 0.95);
/// iporigin `vpn`.
pub const IPORIGIN_VPN: Weight = w(SignalKind::Vpn, 25, 0.9);
/// iporigin `hosting`.
pub const IPORIGIN_HOSTING: Weight = w(SignalKind::Datacenter, 10, 0.9);
/// iporigin `cdn`.
pub const IPORIGIN_CDN: Weight = w(SignalKind::Cdn, 5, 0.9);
/// iporigin `bot`.
pub const IPORIGIN_BOT: Weight = w(SignalKind::Crawler, 0, 0.9);
/// kavachnet `PROXY`.
pub const KAVACHNET_PROXY: Weight = w(SignalKind::Proxy, 35, 0.5);
/// kavachnet `VPN`.
pub const KAVACHNET_VPN: Weight = w(SignalKind::Vpn, 5, 0.3);
/// kavachnet `TOR`.
pub const KAVACHNET_TOR: Weight = w(SignalKind::Tor, 45, 0.6);
/// kavachnet `CLOUD`.
pub const KAVACHNET_CLOUD: Weight = w(SignalKind::Datacenter, 5, 0.6);
/// cloudcheck tag `cloud`.
pub const CLOUDCHECK_CLOUD: Weight = w(SignalKind::Datacenter, 10, 0.8);
/// cloudcheck tag `cdn`.
pub const CLOUDCHECK_CDN: Weight = w(SignalKind::Cdn, 5, 0.8);

/// The default weight of a kind for a source whose format does not fix
/// one (generic lists, JSON prefixes, the Tor exit list).
pub fn default_for(kind: SignalKind) -> Weight {
    match kind {
        SignalKind::Tor => IPORIGIN_TOR,
        SignalKind::Vpn => IPORIGIN_VPN,
        SignalKind::Proxy => KAVACHNET_PROXY,
        SignalKind::Datacenter => IPORIGIN_HOSTING,
        SignalKind::Cdn => IPORIGIN_CDN,
        SignalKind::Crawler => IPORIGIN_BOT,
        SignalKind::Blocklist => FIREHOL_LEVEL1,
        SignalKind::Attacker => ET_ATTACKER,
        SignalKind::Botnet => ET_BOTNET_CC,
        // kinds that no data file makes (e.g. the score of abuse reports)
        other => w(other, 0, 0.5),
    }
}

/// Weights that a sources file sets for one source, by kind. A kind it
/// does not set keeps the format's default (the constants above).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceWeights {
    overrides: Vec<Weight>,
}

impl SourceWeights {
    /// Weights from explicit `(kind, weight, confidence)` entries.
    pub fn new(overrides: Vec<Weight>) -> Self {
        Self { overrides }
    }

    /// The weight of `default.kind`: the override if one is set, else `default`.
    pub fn pick(&self, default: Weight) -> Weight {
        self.overrides
            .iter()
            .find(|w| w.kind == default.kind)
            .copied()
            .unwrap_or(default)
    }

    /// The weight of `kind` with [`default_for`] underneath.
    pub fn of(&self, kind: SignalKind) -> Weight {
        self.pick(default_for(kind))
    }
}

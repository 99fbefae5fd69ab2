//! Precomputed verdicts for sets of signals.

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::model::SignalKind;
use crate::reports::{utc_date, ReportSummary, REPORTS_SOURCE};
use crate::score::{noisy_or, ThreatLevel};

/// A signal definition after interning (strings resolved).
#[derive(Debug, Clone)]
pub(crate) struct SignalDef {
    pub(crate) kind: SignalKind,
    pub(crate) source: u16,
    pub(crate) weight: u8,
    pub(crate) confidence: f32,
    pub(crate) provider: Option<Box<str>>,
    pub(crate) detail: Option<Box<str>>,
}

/// What a source contributes to a record, as listed under `threat.reasons`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reason {
    /// Kind of signal.
    pub signal: SignalKind,
    /// Source name.
    pub source: Box<str>,
    /// Operator named by the source.
    pub provider: Option<Box<str>>,
    /// Date of the source data, `YYYY-MM-DD`.
    pub data_date: Option<Box<str>>,
    /// Weight in the score.
    pub weight: u8,
    /// Source confidence.
    pub confidence: f32,
    /// Source-specific detail (e.g. an SBL id); not part of the JSON record.
    #[serde(skip)]
    pub detail: Option<Box<str>>,
}

/// The boolean flags of a record.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Flags {
    /// A VPN source matched.
    pub vpn: bool,
    /// A proxy source matched.
    pub proxy: bool,
    /// A Tor source matched.
    pub tor: bool,
    /// A hosting, cloud or CDN source matched.
    pub datacenter: bool,
    /// A botnet C&C source matched.
    pub botnet: bool,
}

/// Evidence for one raised flag.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlagDetail {
    /// Highest confidence among the sources that raised the flag.
    pub confidence: f32,
    /// Names of those sources.
    pub sources: Vec<Box<str>>,
}

/// `"datacenter"` or `"cdn"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    /// Hosting or cloud.
    Datacenter,
    /// Content delivery network.
    Cdn,
}

impl ConnectionType {
    /// The JSON name: `datacenter` or `cdn`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Datacenter => "datacenter",
            ConnectionType::Cdn => "cdn",
        }
    }
}

/// Score, level, reasons and flags for one set of signals.
///
/// The score is the noisy-OR over signal *kinds* of each kind's heaviest
/// weight: `round(100 * (1 - prod_k(1 - max_w(k)/100)))`. Two lists that
/// both say "blocklist" (FireHOL level 1 already includes Spamhaus DROP)
/// count once at the heavier weight; a blocklist entry and a Tor exit are
/// independent evidence and combine.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreatInfo {
    /// Score, `0..=100` (see the type docs).
    pub score: u8,
    /// Level from the score.
    pub level: ThreatLevel,
    /// One entry per (signal, source, provider), heaviest first.
    pub reasons: Vec<Reason>,
    /// Boolean flags.
    pub flags: Flags,
    /// One entry per raised flag, in the order of [`Flags`]' fields.
    pub flag_details: Vec<(&'static str, FlagDetail)>,
    /// Provider named by a range source, preferred as `network.org`.
    pub org: Option<Box<str>>,
    /// Connection type implied by the signals.
    pub connection_type: Option<ConnectionType>,
}

impl ThreatInfo {
    /// The verdict for no signals at all.
    pub fn empty() -> ThreatInfo {
        ThreatInfo {
            score: 0,
            level: ThreatLevel::Clean,
            reasons: Vec::new(),
            flags: Flags::default(),
            flag_details: Vec::new(),
            org: None,
            connection_type: None,
        }
    }

    /// Computes the verdict for a set of signal definitions.
    /// `sources[i]` is `(name, data_date)` of source `i`.
    pub(crate) fn compute(
        defs: &[&SignalDef],
        sources: &[(Box<str>, Option<Box<str>>)],
    ) -> ThreatInfo {
        let reasons = reasons(defs, sources);
        let score = noisy_or(kind_weights(&reasons));
        let flags = flags(&reasons);
        ThreatInfo {
            score,
            level: ThreatLevel::from_score(score),
            flag_details: flag_details(&reasons, flags),
            flags,
            org: org(&reasons),
            connection_type: connection_type(&reasons),
            reasons,
        }
    }

    /// True exactly when the level is clean.
    pub fn is_clean(&self) -> bool {
        self.level == ThreatLevel::Clean
    }

    /// This verdict with the reports' score joined in as its own kind
    /// (`abuse_reports`): one reason is added (replacing an earlier one)
    /// and score and level are recomputed. Flags do not change: reports
    /// raise none. A report score of weight 0 adds nothing.
    pub fn with_reports(&self, reports: &ReportSummary) -> ThreatInfo {
        let mut info = self.clone();
        info.reasons
            .retain(|r| r.signal != SignalKind::AbuseReports);
        if reports.score.weight > 0 {
            info.reasons.push(report_reason(reports));
            info.reasons
                .sort_by(|a, b| b.weight.cmp(&a.weight).then(a.signal.cmp(&b.signal)));
        }
        info.score = noisy_or(kind_weights(&info.reasons));
        info.level = ThreatLevel::from_score(info.score);
        info
    }
}

fn report_reason(reports: &ReportSummary) -> Reason {
    Reason {
        signal: SignalKind::AbuseReports,
        source: REPORTS_SOURCE.into(),
        provider: None,
        data_date: Some(utc_date(reports.last_reported_at).into()),
        weight: reports.score.weight,
        confidence: reports.score.confidence,
        detail: None,
    }
}

/// Merges definitions that agree on (kind, source, provider): the same claim
/// from overlapping ranges of one source counts once, at its highest weight.
fn reasons(defs: &[&SignalDef], sources: &[(Box<str>, Option<Box<str>>)]) -> Vec<Reason> {
    let mut sorted: Vec<&SignalDef> = defs.to_vec();
    sorted.sort_by(|a, b| {
        (a.kind, a.source, &a.provider)
            .cmp(&(b.kind, b.source, &b.provider))
            .then(b.weight.cmp(&a.weight))
    });
    sorted.dedup_by(|b, a| a.kind == b.kind && a.source == b.source && a.provider == b.provider);
    let mut out: Vec<Reason> = sorted
        .into_iter()
        .map(|d| {
            let (name, date) = sources
                .get(usize::from(d.source))
                .map_or(("unknown".into(), None), |(n, dd)| (n.clone(), dd.clone()));
            Reason {
                signal: d.kind,
                source: name,
                provider: d.provider.clone(),
                data_date: date,
                weight: d.weight,
                confidence: d.confidence,
                detail: d.detail.clone(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.signal.cmp(&b.signal)));
    out
}

/// The heaviest weight of each kind: several sources saying the same thing
/// corroborate one claim rather than add independent evidence.
fn kind_weights(reasons: &[Reason]) -> Vec<u8> {
    let mut best: Vec<(SignalKind, u8)> = Vec::new();
    for r in reasons {
        match best.iter_mut().find(|(k, _)| *k == r.signal) {
            Some((_, w)) => *w = (*w).max(r.weight),
            None => best.push((r.signal, r.weight)),
        }
    }
    best.into_iter().map(|(_, w)| w).collect()
}

fn raises(kind: SignalKind) -> Option<&'static str> {
    match kind {
        SignalKind::Vpn => Some("vpn"),
        SignalKind::Proxy => Some("proxy"),
        SignalKind::Tor => Some("tor"),
        SignalKind::Datacenter | SignalKind::Cdn => Some("datacenter"),
        SignalKind::Botnet => Some("botnet"),
        SignalKind::Crawler
        | SignalKind::Blocklist
        | SignalKind::Attacker
        | SignalKind::AbuseReports => None,
    }
}

/// The confidence below which a signal is kept as a reason (and weighs in
/// the score) but raises no flag: a flag is a claim a user may block on, so
/// weak, noisy evidence alone must not set it.
pub const FLAG_MIN_CONFIDENCE: f32 = 0.5;

/// The reasons strong enough to raise a flag.
fn flagging(reasons: &[Reason]) -> impl Iterator<Item = &Reason> {
    reasons
        .iter()
        .filter(|r| r.confidence >= FLAG_MIN_CONFIDENCE)
}

fn flags(reasons: &[Reason]) -> Flags {
    let mut f = Flags::default();
    for r in flagging(reasons) {
        match raises(r.signal) {
            Some("vpn") => f.vpn = true,
            Some("proxy") => f.proxy = true,
            Some("tor") => f.tor = true,
            Some("datacenter") => f.datacenter = true,
            Some("botnet") => f.botnet = true,
            _ => {}
        }
    }
    f
}

/// The flags' names, in the order of [`Flags`]' fields: the keys of
/// [`ThreatInfo::flag_details`].
pub(crate) const FLAG_NAMES: [&str; 5] = ["vpn", "proxy", "tor", "datacenter", "botnet"];

fn flag_details(reasons: &[Reason], flags: Flags) -> Vec<(&'static str, FlagDetail)> {
    let raised = [
        flags.vpn,
        flags.proxy,
        flags.tor,
        flags.datacenter,
        flags.botnet,
    ];
    FLAG_NAMES
        .into_iter()
        .zip(raised)
        .filter(|(_, on)| *on)
        .map(|(name, _)| (name, detail_for(reasons, name)))
        .collect()
}

fn detail_for(reasons: &[Reason], flag: &str) -> FlagDetail {
    let mut confidence = 0.0f32;
    let mut sources: Vec<Box<str>> = Vec::new();
    for r in flagging(reasons).filter(|r| raises(r.signal) == Some(flag)) {
        confidence = confidence.max(r.confidence);
        if !sources.contains(&r.source) {
            sources.push(r.source.clone());
        }
    }
    FlagDetail {
        confidence,
        sources,
    }
}

/// The provider of the first VPN, hosting, CDN or crawler reason, in that
/// order of kinds.
fn org(reasons: &[Reason]) -> Option<Box<str>> {
    let order = [
        SignalKind::Vpn,
        SignalKind::Datacenter,
        SignalKind::Cdn,
        SignalKind::Crawler,
    ];
    order.iter().find_map(|kind| {
        reasons
            .iter()
            .filter(|r| r.signal == *kind)
            .find_map(|r| r.provider.clone())
    })
}

fn connection_type(reasons: &[Reason]) -> Option<ConnectionType> {
    if reasons.iter().any(|r| r.signal == SignalKind::Cdn) {
        Some(ConnectionType::Cdn)
    } else if reasons.iter().any(|r| r.signal == SignalKind::Datacenter) {
        Some(ConnectionType::Datacenter)
    } else {
        None
    }
}

/// Serializes as the `threat` object: score, level, is_clean, reasons and
/// the address's reports (`null` without any).
#[derive(Debug, Clone, Copy)]
pub struct ThreatSummary<'a>(pub &'a ThreatInfo, pub Option<&'a ReportSummary>);

impl Serialize for ThreatSummary<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Threat", 5)?;
        st.serialize_field("score", &self.0.score)?;
        st.serialize_field("level", &self.0.level)?;
        st.serialize_field("is_clean", &self.0.is_clean())?;
        st.serialize_field("reasons", &self.0.reasons)?;
        st.serialize_field("reports", &self.1)?;
        st.end()
    }
}

/// Serializes as the `flag_details` object.
#[derive(Debug, Clone, Copy)]
pub struct FlagDetailsMap<'a>(pub &'a [(&'static str, FlagDetail)]);

impl Serialize for FlagDetailsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, detail) in self.0 {
            map.serialize_entry(name, detail)?;
        }
        map.end()
    }
}

//! Abuse reports: categories, severities and the report score.
//!
//! Pure arithmetic only; the reports themselves are stored and indexed by
//! `ipintel-store`. The formula is documented in `docs/scoring.md`
//! ("Abuse reports") and `docs/reports.md`:
//!
//! 1. One report's strength: `s = severity_factor * confidence/100 *
//!    0.5^(age / HALF_LIFE)`.
//! 2. One reporter: its reports combine by noisy-OR, `e = 1 - prod(1 - s)`,
//!    over at most [`MAX_EVIDENCE_PER_REPORTER`] of its most recent
//!    reports, and are capped: `c = REPORTER_CAP * e`. However often one
//!    reporter reports an address, it adds at most `REPORTER_CAP` (55,
//!    "medium"). Who counts as one reporter (keys that report from the same
//!    network are one) is decided by the caller, `ipintel-store`.
//! 3. Reporters are independent. Reporters on the free plan, whose keys
//!    anyone can create, together give at most [`FREE_PLAN_CEILING`]:
//!    `f = min(1 - prod(1 - c_free), FREE_PLAN_CEILING)`. The others
//!    combine freely: `p = 1 - prod(1 - c_paid)`.
//! 4. `weight = 100 * (1 - (1 - f) * (1 - p))`.

use std::fmt;

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// Seconds after which a report counts half as much as a fresh one.
pub const HALF_LIFE_SECS: i64 = 3 * 86_400;
/// Reports older than this are ignored (and not loaded at start-up).
pub const WINDOW_SECS: i64 = 30 * 86_400;
/// The most one reporter can contribute, as a share of 100.
pub const REPORTER_CAP: f64 = 0.55;
/// The most that reporters on the free plan give together, as a share of
/// 100 (70, "high"): free keys cost nothing, so however many of them
/// report an address, they alone cannot make it "critical".
pub const FREE_PLAN_CEILING: f64 = 0.70;
/// Reports of one reporter about one address that enter the score (the
/// most recent ones); older ones add next to nothing once decayed.
pub const MAX_EVIDENCE_PER_REPORTER: usize = 32;
/// Name of the source in threat reasons.
pub const REPORTS_SOURCE: &str = "ipintel reports";

macro_rules! categories {
    ($( $variant:ident = $name:literal, $abuse:expr; )*) => {
        /// What a reported address did. Named, or given as the numbered
        /// categories of other abuse databases (see [`ReportCategory::from_number`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ReportCategory {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl ReportCategory {
            /// Every category, in bit order.
            pub const ALL: &'static [ReportCategory] = &[$(ReportCategory::$variant),*];

            /// The snake_case name used in JSON and the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ReportCategory::$variant => $name,)*
                }
            }

            /// The number other abuse databases (AbuseIPDB) give this
            /// category, if any.
            pub fn number(self) -> Option<u8> {
                match self {
                    $(ReportCategory::$variant => $abuse,)*
                }
            }
        }
    };
}

categories! {
    DnsCompromise = "dns_compromise", Some(1);
    DnsPoisoning = "dns_poisoning", Some(2);
    Fraud = "fraud", Some(3);
    Ddos = "ddos", Some(4);
    FtpBruteforce = "ftp_bruteforce", Some(5);
    PingOfDeath = "ping_of_death", Some(6);
    Phishing = "phishing", Some(7);
    VoipFraud = "voip_fraud", Some(8);
    OpenProxy = "open_proxy", Some(9);
    WebSpam = "web_spam", Some(10);
    Spam = "spam", Some(11);
    BlogSpam = "blog_spam", Some(12);
    VpnIp = "vpn_ip", Some(13);
    PortScan = "port_scan", Some(14);
    Hacking = "hacking", Some(15);
    SqlInjection = "sql_injection", Some(16);
    Spoofing = "spoofing", Some(17);
    BruteForce = "brute_force", Some(18);
    BadBot = "bad_bot", Some(19);
    ExploitedHost = "exploited_host", Some(20);
    WebAttack = "web_attack", Some(21);
    SshBruteforce = "ssh_bruteforce", Some(22);
    IotTargeted = "iot_targeted", Some(23);
    Malware = "malware", None;
    Exploit = "exploit", None;
}

impl ReportCategory {
    /// The category named `name` (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<ReportCategory> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }

    /// The category numbered `n` in other abuse databases.
    pub fn from_number(n: u8) -> Option<ReportCategory> {
        Self::ALL.iter().copied().find(|c| c.number() == Some(n))
    }

    /// A name or a number.
    pub fn parse(text: &str) -> Option<ReportCategory> {
        let text = text.trim();
        match text.parse::<u8>() {
            Ok(n) => Self::from_number(n),
            Err(_) => Self::from_name(text),
        }
    }

    fn bit(self) -> u32 {
        let index = Self::ALL.iter().position(|c| *c == self).unwrap_or(0);
        1 << index
    }
}

impl fmt::Display for ReportCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A category text that is neither a known name nor a known number.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown report category {0:?}")]
pub struct UnknownCategory(pub String);

/// A set of categories, serialized as a list of names in a fixed order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ReportCategories(u32);

impl ReportCategories {
    /// Parses a comma-separated list of names and numbers. An empty list
    /// (or empty items only) is an error: a report says what happened.
    pub fn parse_list(text: &str) -> Result<ReportCategories, UnknownCategory> {
        let mut set = ReportCategories::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let category =
                ReportCategory::parse(item).ok_or_else(|| UnknownCategory(item.to_owned()))?;
            set.insert(category);
        }
        if set.is_empty() {
            return Err(UnknownCategory(text.to_owned()));
        }
        Ok(set)
    }

    /// Adds a category.
    pub fn insert(&mut self, category: ReportCategory) {
        self.0 |= category.bit();
    }

    /// The union of two sets.
    pub fn union(self, other: ReportCategories) -> ReportCategories {
        ReportCategories(self.0 | other.0)
    }

    /// True when no category is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `category` is in the set.
    pub fn contains(self, category: ReportCategory) -> bool {
        self.0 & category.bit() != 0
    }

    /// The categories, in [`ReportCategory::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = ReportCategory> {
        ReportCategory::ALL
            .iter()
            .copied()
            .filter(move |c| self.contains(*c))
    }

    /// Comma-separated names (the database form).
    pub fn to_names(self) -> String {
        self.iter()
            .map(ReportCategory::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Serialize for ReportCategories {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for category in self.iter() {
            seq.serialize_element(category.as_str())?;
        }
        seq.end()
    }
}

/// How bad the reported behaviour was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 1: noise, e.g. a single probe.
    Low,
    /// 2: a typical attack, e.g. a brute-force run (the default).
    Medium,
    /// 3: a sustained or damaging attack.
    High,
    /// 4: an attack that succeeded or threatens availability.
    Critical,
}

impl Severity {
    /// 1 to 4.
    pub fn level(self) -> u8 {
        match self {
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High => 3,
            Severity::Critical => 4,
        }
    }

    /// The severity of level 1 to 4.
    pub fn from_level(level: u8) -> Option<Severity> {
        match level {
            1 => Some(Severity::Low),
            2 => Some(Severity::Medium),
            3 => Some(Severity::High),
            4 => Some(Severity::Critical),
            _ => None,
        }
    }

    /// A name (`low` .. `critical`, case ignored) or a level (`1` .. `4`).
    pub fn parse(text: &str) -> Option<Severity> {
        let text = text.trim();
        if let Ok(level) = text.parse::<u8>() {
            return Self::from_level(level);
        }
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Share of a report's strength that the severity grants.
    pub fn factor(self) -> f64 {
        match self {
            Severity::Low => 0.4,
            Severity::Medium => 0.6,
            Severity::High => 0.8,
            Severity::Critical => 1.0,
        }
    }
}

/// What one report contributes to the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// When the reported behaviour happened (Unix seconds).
    pub reported_at: i64,
    /// Its severity.
    pub severity: Severity,
    /// The reporter's confidence, 0..=100.
    pub confidence: u8,
}

impl Evidence {
    /// Strength `0..=1` at `now`: severity, confidence and recency.
    pub fn strength(&self, now: i64) -> f64 {
        let age = (now - self.reported_at).max(0);
        if age > WINDOW_SECS {
            return 0.0;
        }
        let halves = age as f64 / HALF_LIFE_SECS as f64;
        let confidence = f64::from(self.confidence.min(100)) / 100.0;
        self.severity.factor() * confidence * 0.5f64.powf(halves)
    }
}

/// The score the reports give an address.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReportScore {
    /// Weight `0..=100`, combined with the data signals as its own kind.
    pub weight: u8,
    /// Confidence of the claim `0..=0.95`: grows with distinct reporters.
    pub confidence: f32,
}

/// One reporter's evidence about an address, as [`report_score`] takes it:
/// the reports filed with free keys and those filed with keys on a paid
/// plan, which an operator issued and which answer for their reports. A
/// reporter may hold both kinds (keys joined by a shared network).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reporter<'a> {
    /// Reports filed with free keys; they count under [`FREE_PLAN_CEILING`].
    pub free: &'a [Evidence],
    /// Reports filed with paid keys.
    pub paid: &'a [Evidence],
}

/// The score of an address's reports at `now`, one item per reporter.
///
/// A reporter's capped contribution `c` is split in two: `c_paid`, what
/// its paid reports alone give, and the free share `c_free`, the rest, with
/// `(1 - c_free) * (1 - c_paid) = 1 - c`. Free shares of all reporters
/// combine under the ceiling; a paid key therefore cannot lift the free
/// reports of its network past it.
pub fn report_score<'a, I>(reporters: I, now: i64) -> ReportScore
where
    I: IntoIterator<Item = Reporter<'a>>,
{
    let mut free_miss = 1.0f64;
    let mut paid_miss = 1.0f64;
    let mut doubt = 1.0f64;
    for reporter in reporters {
        let both = reporter.free.iter().chain(reporter.paid);
        let (total, confidence) = reporter_share(both, now);
        let (paid, _) = reporter_share(reporter.paid.iter(), now);
        paid_miss *= 1.0 - paid;
        // At most 1: with more than the evidence limit, the most recent
        // reports of both kinds may give less than the paid ones alone.
        free_miss *= ((1.0 - total) / (1.0 - paid)).min(1.0);
        doubt *= 1.0 - confidence / 2.0;
    }
    let free = (1.0 - free_miss).min(FREE_PLAN_CEILING);
    let miss = (1.0 - free) * paid_miss;
    let weight = (100.0 * (1.0 - miss)).round().clamp(0.0, 100.0);
    let weight = weight as u8;
    let confidence = if weight == 0 {
        0.0
    } else {
        ((1.0 - doubt).min(0.95) as f32 * 100.0).round() / 100.0
    };
    ReportScore { weight, confidence }
}

/// One reporter's capped contribution (at most [`REPORTER_CAP`], so never
/// 1) and its highest confidence (0..=1).
fn reporter_share<'a>(evidence: impl Iterator<Item = &'a Evidence>, now: i64) -> (f64, f64) {
    let mut recent: Vec<&Evidence> = evidence.collect();
    recent.sort_by_key(|e| std::cmp::Reverse(e.reported_at));
    recent.truncate(MAX_EVIDENCE_PER_REPORTER);
    let miss: f64 = recent.iter().map(|e| 1.0 - e.strength(now)).product();
    let confidence = recent
        .iter()
        .filter(|e| e.strength(now) > 0.0)
        .map(|e| f64::from(e.confidence.min(100)) / 100.0)
        .fold(0.0, f64::max);
    (REPORTER_CAP * (1.0 - miss), confidence)
}

/// What the threat answer says about an address's reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    /// Reports in the window.
    pub count: u64,
    /// Distinct reporters (keys reporting from one network count once).
    pub distinct_reporters: u32,
    /// Every category reported.
    pub categories: ReportCategories,
    /// The latest `reported_at` (Unix seconds).
    pub last_reported_at: i64,
    /// The score of the reports.
    pub score: ReportScore,
}

impl Serialize for ReportSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Reports", 4)?;
        st.serialize_field("count", &self.count)?;
        st.serialize_field("distinct_reporters", &self.distinct_reporters)?;
        st.serialize_field("categories", &self.categories)?;
        st.serialize_field("last_reported_at", &rfc3339(self.last_reported_at))?;
        st.end()
    }
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic
/// Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn utc_date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time.
pub fn rfc3339(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        utc_date(unix),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::ThreatLevel;

    const NOW: i64 = 1_790_000_000;

    fn fresh(severity: Severity, confidence: u8) -> Evidence {
        Evidence {
            reported_at: NOW,
            severity,
            confidence,
        }
    }

    /// The score of reporters on paid plans.
    fn score(reporters: &[Vec<Evidence>]) -> ReportScore {
        scored(reporters, true)
    }

    fn scored(reporters: &[Vec<Evidence>], paid: bool) -> ReportScore {
        let reporters = reporters.iter().map(|evidence| {
            if paid {
                Reporter {
                    free: &[],
                    paid: evidence,
                }
            } else {
                Reporter {
                    free: evidence,
                    paid: &[],
                }
            }
        });
        report_score(reporters, NOW)
    }

    #[test]
    fn abuse_database_numbers_map_to_names() {
        assert_eq!(
            ReportCategory::parse("22"),
            Some(ReportCategory::SshBruteforce)
        );
        assert_eq!(ReportCategory::parse("14"), Some(ReportCategory::PortScan));
        assert_eq!(
            ReportCategory::parse("18"),
            Some(ReportCategory::BruteForce)
        );
        assert_eq!(ReportCategory::parse("21"), Some(ReportCategory::WebAttack));
        assert_eq!(ReportCategory::parse("4"), Some(ReportCategory::Ddos));
        assert_eq!(ReportCategory::parse("11"), Some(ReportCategory::Spam));
        assert_eq!(ReportCategory::parse("0"), None);
        assert_eq!(ReportCategory::parse("24"), None);
        for n in 1..=23 {
            assert!(ReportCategory::from_number(n).is_some(), "{n}");
        }
        assert!(ReportCategory::ALL.len() <= 32, "fits the bit set");
    }

    #[test]
    fn lists_mix_names_and_numbers() {
        let set = ReportCategories::parse_list("22, port_scan,18,SSH_BRUTEFORCE").unwrap();
        assert_eq!(set.to_names(), "port_scan,brute_force,ssh_bruteforce");
        assert_eq!(
            serde_json::to_value(set).unwrap(),
            serde_json::json!(["port_scan", "brute_force", "ssh_bruteforce"])
        );
        assert!(ReportCategories::parse_list("").is_err());
        assert!(ReportCategories::parse_list(" , ").is_err());
        assert!(ReportCategories::parse_list("22,nonsense").is_err());
    }

    #[test]
    fn severities_parse_by_name_and_level() {
        assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
        assert_eq!(Severity::parse("1"), Some(Severity::Low));
        assert_eq!(Severity::parse("4"), Some(Severity::Critical));
        assert_eq!(Severity::parse("5"), None);
        assert_eq!(Severity::parse("severe"), None);
    }

    #[test]
    fn three_reporters_make_a_clean_address_medium() {
        let one = vec![fresh(Severity::Medium, 50)];
        let w = score(&[one.clone(), one.clone(), one]).weight;
        assert!(ThreatLevel::from_score(w) >= ThreatLevel::Medium, "{w}");
    }

    #[test]
    fn one_reporter_alone_never_passes_its_cap() {
        let many: Vec<Evidence> = (0..200)
            .map(|i| Evidence {
                reported_at: NOW - i * 60,
                ..fresh(Severity::Critical, 100)
            })
            .collect();
        let s = score(&[many]);
        assert!(s.weight <= 55, "{}", s.weight);
        assert!(ThreatLevel::from_score(s.weight) <= ThreatLevel::Medium);
    }

    #[test]
    fn free_reporters_alone_never_make_an_address_critical() {
        let critical = vec![fresh(Severity::Critical, 100)];
        for n in [2, 3, 10, 100] {
            let s = scored(&vec![critical.clone(); n], false);
            assert_eq!(s.weight, 70, "{n} free reporters");
            assert_eq!(ThreatLevel::from_score(s.weight), ThreatLevel::High);
        }
        let one = scored(std::slice::from_ref(&critical), false);
        assert_eq!(
            one.weight, 55,
            "below the ceiling a free reporter counts fully"
        );
    }

    #[test]
    fn a_paid_reporter_adds_to_free_ones() {
        let critical = vec![fresh(Severity::Critical, 100)];
        let free = Reporter {
            free: &critical,
            paid: &[],
        };
        let paid = Reporter {
            free: &[],
            paid: &critical,
        };
        let s = report_score([free, free, paid], NOW);
        assert_eq!(s.weight, 87, "1 - 0.30 * 0.45");
        assert_eq!(ThreatLevel::from_score(s.weight), ThreatLevel::Critical);
    }

    #[test]
    fn a_weak_paid_key_cannot_lift_free_reports_of_its_network() {
        let critical = vec![fresh(Severity::Critical, 100)];
        let faint = vec![fresh(Severity::Low, 1)];
        let free = Reporter {
            free: &critical,
            paid: &[],
        };
        let mixed = Reporter {
            free: &critical,
            paid: &faint,
        };
        let s = report_score([free, free, mixed], NOW);
        assert_eq!(s.weight, 70, "{s:?}");
        assert_eq!(ThreatLevel::from_score(s.weight), ThreatLevel::High);
        // A pure group scores as before the split.
        let alone = report_score([mixed], NOW).weight;
        assert_eq!(alone, 55);
    }

    #[test]
    fn reports_decay_with_a_three_day_half_life() {
        let now = score(&[vec![fresh(Severity::Critical, 100)]]).weight;
        let old = Evidence {
            reported_at: NOW - HALF_LIFE_SECS,
            ..fresh(Severity::Critical, 100)
        };
        let later = score(&[vec![old]]).weight;
        assert_eq!(now, 55);
        assert_eq!(later, 28, "half of 55, rounded");
        let expired = Evidence {
            reported_at: NOW - WINDOW_SECS - 1,
            ..old
        };
        assert_eq!(score(&[vec![expired]]), ReportScore::default());
    }

    #[test]
    fn severity_and_confidence_scale_a_report() {
        let low = score(&[vec![fresh(Severity::Low, 100)]]).weight;
        let critical = score(&[vec![fresh(Severity::Critical, 100)]]).weight;
        let unsure = score(&[vec![fresh(Severity::Critical, 20)]]).weight;
        assert!(
            low < critical && unsure < critical,
            "{low} {critical} {unsure}"
        );
        assert_eq!(score(&[vec![fresh(Severity::High, 0)]]).weight, 0);
    }

    #[test]
    fn confidence_grows_with_reporters() {
        let one = vec![fresh(Severity::Medium, 100)];
        let a = score(std::slice::from_ref(&one)).confidence;
        let c = score(&[one.clone(), one.clone(), one]).confidence;
        assert!((a - 0.5).abs() < 1e-6, "{a}");
        assert!(c > a && c <= 0.95, "{c}");
    }

    /// The worked figures of docs/scoring.md ("Abuse reports").
    #[test]
    fn documented_figures() {
        let one = |sev, conf| vec![fresh(sev, conf)];
        let twenty: Vec<Evidence> = (0..20)
            .map(|i| Evidence {
                reported_at: NOW - i * 900,
                ..fresh(Severity::Critical, 100)
            })
            .collect();
        let old = vec![Evidence {
            reported_at: NOW - HALF_LIFE_SECS,
            ..fresh(Severity::Critical, 100)
        }];
        let cases: [(Vec<Vec<Evidence>>, u8); 8] = [
            (vec![one(Severity::Medium, 75)], 25),
            (vec![one(Severity::High, 90)], 40),
            (vec![twenty], 55),
            (vec![one(Severity::Medium, 75); 3], 57),
            (vec![one(Severity::Medium, 50); 3], 42),
            (vec![one(Severity::Critical, 100); 2], 80),
            (vec![one(Severity::Critical, 100); 3], 91),
            (vec![old], 28),
        ];
        for (reporters, weight) in cases {
            assert_eq!(score(&reporters).weight, weight, "{reporters:?}");
        }
        let free: [(Vec<Vec<Evidence>>, u8); 3] = [
            (vec![one(Severity::Medium, 75); 3], 57),
            (vec![one(Severity::Critical, 100); 2], 70),
            (vec![one(Severity::Critical, 100); 3], 70),
        ];
        for (reporters, weight) in free {
            assert_eq!(scored(&reporters, false).weight, weight, "{reporters:?}");
        }
    }

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56Z");
        assert_eq!(utc_date(1_791_244_799), "2026-10-05");
    }
}

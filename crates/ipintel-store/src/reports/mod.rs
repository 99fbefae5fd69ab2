//! Abuse reports: the in-memory [`ReportIndex`] and the [`ReportDesk`]
//! that stores a report and then indexes it, and reads the reports other
//! processes sharing the store accepted every [`REPORT_POLL_INTERVAL`].
//!
//! The index holds the reports of the last 30 days
//! ([`ipintel_core::reports::WINDOW_SECS`]), grouped by [`NetKey`]: the
//! address for IPv4, its /64 for IPv6 (one host owns a /64, so reports
//! about addresses inside it add up). A lookup probes it once: a
//! lock-free hash-map read, and for a reported address a short critical
//! section on that address's entry only.

mod desk;
mod entry;
mod poll;
mod reporter;
pub(crate) mod sql;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipintel_core::reports::{ReportSummary, WINDOW_SECS};
use serde::Serialize;

pub use self::desk::{ReportDesk, ReportError, ReportSettings, DUPLICATE_WINDOW_SECS};
use self::entry::{Entry, Summarizer};
pub use self::poll::REPORT_POLL_INTERVAL;
pub use self::reporter::{BadReporterNet, ReporterNet, REPORTER_V4_PREFIX, REPORTER_V6_PREFIX};
use crate::store::{NewReport, StoredReport};

/// Seconds in a day and a week, for the area statistics.
const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// Networks listed in [`AreaReportStats::top_networks`].
const TOP_NETWORKS: usize = 10;
/// How often stale entries are swept (seconds).
const PRUNE_EVERY: i64 = 3_600;

/// The unit reports are grouped by: an IPv4 address, or the /64 network of
/// an IPv6 address (its upper 64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetKey {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl NetKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn of(ip: IpAddr) -> NetKey {
        match ip {
            IpAddr::V4(v4) => NetKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => NetKey::V4(v4),
                None => NetKey::V6(upper_64(v6)),
            },
        }
    }

    /// The live-feed group of this key: IPv6 networks shortened to
    /// `v6_prefix` bits (at most 64); IPv4 addresses stay single.
    fn group(self, v6_prefix: u8) -> NetKey {
        match self {
            NetKey::V4(_) => self,
            NetKey::V6(bits) => {
                let keep = u32::from(v6_prefix.min(64));
                let mask = u64::MAX.checked_shl(64 - keep).unwrap_or(0);
                NetKey::V6(bits & mask)
            }
        }
    }

    /// Text of a group: the address, or `network/prefix` for IPv6.
    fn label(self, v6_prefix: u8) -> String {
        match self {
            NetKey::V4(v4) => v4.to_string(),
            NetKey::V6(bits) => {
                let net = Ipv6Addr::from(u128::from(bits) << 64);
                format!("{net}/{}", v6_prefix.min(64))
            }
        }
    }
}

fn upper_64(v6: Ipv6Addr) -> u64 {
    // The shift leaves exactly 64 significant bits.
    u64::try_from(u128::from(v6) >> 64).unwrap_or(u64::MAX)
}

impl fmt::Display for NetKey {
    /// `1.2.3.4`, or `2001:db8::/64`: the `network_key` column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label(64))
    }
}

/// Reports about an area (a country or an AS).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AreaReportStats {
    /// Reports received in the last 24 hours.
    pub last_day: u64,
    /// Reports received in the last 7 days.
    pub last_week: u64,
    /// Addresses (IPv6: /64 networks) reported in the last 7 days.
    pub distinct_addresses_last_week: u64,
    /// The networks with the most reports in the last 7 days, most first.
    pub top_networks: Vec<NetworkReports>,
}

/// Reports of one network (AS) in [`AreaReportStats`].
#[derive(Debug, Clone, Serialize)]
pub struct NetworkReports {
    /// AS number, if the data knew the address's AS.
    pub asn: Option<u32>,
    /// AS holder name.
    pub name: Option<String>,
    /// Reports in the last 7 days.
    pub reports: u64,
}

/// One line of the live feed.
#[derive(Debug, Clone)]
pub struct LiveItem {
    /// The address (IPv4) or network (IPv6, `net/prefix`).
    pub network: String,
    /// The address of the latest report in the group.
    pub last_ip: IpAddr,
    /// The group's reports.
    pub summary: ReportSummary,
    /// Country of the latest report.
    pub country: Option<String>,
    /// AS of the latest report.
    pub asn: Option<u32>,
}

/// The reports of the last 30 days, in memory. Share it in an `Arc`.
pub struct ReportIndex {
    entries: papaya::HashMap<NetKey, Arc<Mutex<Entry>>>,
    last_prune: AtomicI64,
}

impl fmt::Debug for ReportIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportIndex")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Default for ReportIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportIndex {
    /// An empty index.
    pub fn new() -> ReportIndex {
        ReportIndex {
            entries: papaya::HashMap::new(),
            last_prune: AtomicI64::new(0),
        }
    }

    /// An index holding `reports` (as read from the store).
    pub fn from_reports(reports: &[StoredReport], now: i64) -> ReportIndex {
        let index = ReportIndex::new();
        for stored in reports {
            index.add(&stored.report, now);
        }
        index
    }

    /// Addresses (IPv6: /64 networks) with reports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is indexed (lookups then skip the probe).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Indexes one accepted report.
    pub fn add(&self, report: &NewReport, now: i64) {
        let key = NetKey::of(report.ip);
        let slot = Arc::new(Mutex::new(Entry::new(report)));
        let entry = self.entries.pin().get_or_insert(key, slot).clone();
        lock(&entry).add(report);
        self.maybe_prune(now);
    }

    /// The reports about `ip` (its /64 for IPv6) at `now`, if any.
    pub fn summary(&self, ip: IpAddr, now: i64) -> Option<ReportSummary> {
        if self.entries.is_empty() {
            return None;
        }
        let entry = self.entries.pin().get(&NetKey::of(ip)).cloned()?;
        let guard = lock(&entry);
        let mut summarizer = Summarizer::default();
        summarizer.add(&guard, now);
        summarizer.finish(now)
    }

    /// The most recently reported addresses, latest first, at most
    /// `limit`; IPv6 grouped by `v6_prefix` bits (at most 64), each
    /// address or group once.
    pub fn live(&self, limit: usize, v6_prefix: u8, now: i64) -> Vec<LiveItem> {
        let mut groups: HashMap<NetKey, Vec<Arc<Mutex<Entry>>>> = HashMap::new();
        for (key, entry) in self.entries.pin().iter() {
            groups
                .entry(key.group(v6_prefix))
                .or_default()
                .push(Arc::clone(entry));
        }
        let mut items: Vec<LiveItem> = groups
            .into_iter()
            .filter_map(|(key, entries)| live_item(key, &entries, v6_prefix, now))
            .collect();
        items.sort_by(|a, b| {
            b.summary
                .last_reported_at
                .cmp(&a.summary.last_reported_at)
                .then_with(|| a.network.cmp(&b.network))
        });
        items.truncate(limit);
        items
    }

    /// Reports about addresses of country `cc` (ISO code, case ignored).
    pub fn country_stats(&self, cc: &str, now: i64) -> AreaReportStats {
        self.area_stats(now, |e| {
            e.country
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(cc))
        })
    }

    /// Reports about addresses of AS `asn`.
    pub fn asn_stats(&self, asn: u32, now: i64) -> AreaReportStats {
        self.area_stats(now, |e| e.asn == Some(asn))
    }

    fn area_stats(&self, now: i64, matches: impl Fn(&Entry) -> bool) -> AreaReportStats {
        let mut stats = AreaReportStats::default();
        let mut networks: HashMap<Option<u32>, (Option<String>, u64)> = HashMap::new();
        for entry in self.entries.pin().values() {
            let entry = lock(entry);
            if !matches(&entry) {
                continue;
            }
            let week = entry.received_since(now - WEEK);
            stats.last_day += entry.received_since(now - DAY);
            stats.last_week += week;
            if week > 0 {
                stats.distinct_addresses_last_week += 1;
                let slot = networks.entry(entry.asn).or_default();
                slot.0 = entry.asn_name.as_deref().map(str::to_owned);
                slot.1 += week;
            }
        }
        stats.top_networks = top(networks);
        stats
    }

    /// Drops reports older than the window, at most once an hour.
    fn maybe_prune(&self, now: i64) {
        let last = self.last_prune.load(Ordering::Relaxed);
        if now - last < PRUNE_EVERY {
            return;
        }
        if self
            .last_prune
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.prune(now);
        }
    }

    /// Drops reports received more than the window before `now`, and
    /// addresses left without reports.
    pub fn prune(&self, now: i64) {
        let cutoff = now - WINDOW_SECS;
        self.entries
            .pin()
            .retain(|_, entry| !lock(entry).prune(cutoff));
    }
}

fn live_item(
    key: NetKey,
    entries: &[Arc<Mutex<Entry>>],
    v6_prefix: u8,
    now: i64,
) -> Option<LiveItem> {
    let mut summarizer = Summarizer::default();
    let mut latest: Option<(i64, IpAddr, Option<String>, Option<u32>)> = None;
    for entry in entries {
        // One entry locked at a time: no lock order to get wrong.
        let entry = lock(entry);
        summarizer.add(&entry, now);
        let at = entry.last_reported_at(now);
        if at.is_some() && at > latest.as_ref().map(|l| l.0) {
            let country = entry.country.as_deref().map(str::to_owned);
            latest = at.map(|at| (at, entry.last_ip, country, entry.asn));
        }
    }
    let (_, last_ip, country, asn) = latest?;
    let summary = summarizer.finish(now)?;
    let network = match key {
        NetKey::V6(_) => key.label(v6_prefix),
        NetKey::V4(_) => last_ip.to_string(),
    };
    Some(LiveItem {
        network,
        last_ip,
        summary,
        country,
        asn,
    })
}

fn top(networks: HashMap<Option<u32>, (Option<String>, u64)>) -> Vec<NetworkReports> {
    let mut list: Vec<NetworkReports> = networks
        .into_iter()
        .map(|(asn, (name, reports))| NetworkReports { asn, name, reports })
        .collect();
    list.sort_by(|a, b| b.reports.cmp(&a.reports).then(a.asn.cmp(&b.asn)));
    list.truncate(TOP_NETWORKS);
    list
}

/// Locks an entry; its data stays consistent even if a holder panicked
/// (every critical section is a push, a filter or a read).
fn lock(entry: &Mutex<Entry>) -> MutexGuard<'_, Entry> {
    entry.lock().unwrap_or_else(PoisonError::into_inner)
}

//! The reports about one network key, and summaries over several.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use ipintel_core::reports::{
    report_score, Evidence, ReportCategories, ReportSummary, Reporter, MAX_EVIDENCE_PER_REPORTER,
    WINDOW_SECS,
};

use super::ReporterNet;
use crate::key::KeyId;
use crate::plan::Plan;
use crate::store::NewReport;

/// Networks remembered per key and address. A key that reports one
/// address from more networks than this is still one reporter; only its
/// links to other keys through the later networks are not seen.
const MAX_NETWORKS_PER_KEY: usize = 16;

/// One report, as the counts need it.
#[derive(Debug, Clone, Copy)]
struct Mark {
    reported_at: i64,
    received_at: i64,
    reporter: u32,
    categories: ReportCategories,
}

/// Everything the index keeps about one address (IPv6: one /64).
#[derive(Debug)]
pub(crate) struct Entry {
    /// The address of the latest report.
    pub(crate) last_ip: IpAddr,
    pub(crate) country: Option<Arc<str>>,
    pub(crate) asn: Option<u32>,
    pub(crate) asn_name: Option<Arc<str>>,
    /// Each reporting key and its most recent evidence.
    reporters: Vec<KeyReports>,
    /// Every report in the window, in arrival order.
    marks: Vec<Mark>,
}

impl Entry {
    pub(crate) fn new(report: &NewReport) -> Entry {
        Entry {
            last_ip: report.ip,
            country: report.country.as_deref().map(Arc::from),
            asn: report.asn,
            asn_name: report.asn_name.as_deref().map(Arc::from),
            reporters: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// Records one report.
    pub(crate) fn add(&mut self, report: &NewReport) {
        self.last_ip = report.ip;
        if report.country.is_some() || report.asn.is_some() {
            self.country = report.country.as_deref().map(Arc::from);
            self.asn = report.asn;
            self.asn_name = report.asn_name.as_deref().map(Arc::from);
        }
        let reporter = self.reporter_index(&report.key_id);
        if let Some(reports) = self.reporters.get_mut(reporter) {
            reports.add(report);
        }
        self.marks.push(Mark {
            reported_at: report.reported_at,
            received_at: report.received_at,
            reporter: u32::try_from(reporter).unwrap_or(u32::MAX),
            categories: report.categories,
        });
    }

    fn reporter_index(&mut self, key: &KeyId) -> usize {
        match self.reporters.iter().position(|r| r.key == *key) {
            Some(i) => i,
            None => {
                self.reporters.push(KeyReports::new(key.clone()));
                self.reporters.len() - 1
            }
        }
    }

    /// Drops reports received before `cutoff`; true when nothing is left.
    pub(crate) fn prune(&mut self, cutoff: i64) -> bool {
        self.marks.retain(|m| m.received_at >= cutoff);
        self.marks.is_empty()
    }

    /// Reports received at or after `since`.
    pub(crate) fn received_since(&self, since: i64) -> u64 {
        let n = self.marks.iter().filter(|m| m.received_at >= since).count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Latest `reported_at` in the window at `now`.
    pub(crate) fn last_reported_at(&self, now: i64) -> Option<i64> {
        self.live_marks(now).map(|m| m.reported_at).max()
    }

    fn live_marks(&self, now: i64) -> impl Iterator<Item = &Mark> {
        self.marks
            .iter()
            .filter(move |m| now - m.reported_at <= WINDOW_SECS)
    }
}

/// One key's reports about one address.
#[derive(Debug)]
struct KeyReports {
    key: KeyId,
    /// The networks it reported from, first ones first.
    networks: Vec<ReporterNet>,
    /// Whether its latest report came from a paid plan.
    accountable: bool,
    /// Its most recent evidence.
    evidence: VecDeque<Evidence>,
}

impl KeyReports {
    fn new(key: KeyId) -> KeyReports {
        KeyReports {
            key,
            networks: Vec::new(),
            accountable: false,
            evidence: VecDeque::new(),
        }
    }

    fn add(&mut self, report: &NewReport) {
        if let Some(net) = report.reporter_network {
            if !self.networks.contains(&net) && self.networks.len() < MAX_NETWORKS_PER_KEY {
                self.networks.push(net);
            }
        }
        self.accountable = report.reporter_plan.is_some_and(|p| p != Plan::Free);
        if self.evidence.len() == MAX_EVIDENCE_PER_REPORTER {
            drop_oldest(&mut self.evidence);
        }
        self.evidence.push_back(Evidence {
            reported_at: report.reported_at,
            severity: report.severity,
            confidence: report.confidence,
        });
    }
}

/// Keeps the evidence list short by dropping its oldest item.
fn drop_oldest(list: &mut VecDeque<Evidence>) {
    if let Some(oldest) = list
        .iter()
        .enumerate()
        .min_by_key(|(_, e)| e.reported_at)
        .map(|(i, _)| i)
    {
        list.remove(oldest);
    }
}

/// What a summary gathers about one key.
#[derive(Debug, Default)]
struct KeyTally {
    networks: Vec<ReporterNet>,
    accountable: bool,
    evidence: Vec<Evidence>,
    /// Whether it has a report in the window.
    live: bool,
}

/// Builds one summary over one or more entries (a live-feed group).
#[derive(Debug, Default)]
pub(crate) struct Summarizer {
    keys: HashMap<KeyId, KeyTally>,
    count: u64,
    categories: ReportCategories,
    last: Option<i64>,
}

impl Summarizer {
    /// Adds an entry's reports in the window at `now` (copying what it
    /// needs, so entries are never locked two at a time).
    pub(crate) fn add(&mut self, entry: &Entry, now: i64) {
        let mut live = HashSet::new();
        for mark in entry.live_marks(now) {
            self.count += 1;
            self.categories = self.categories.union(mark.categories);
            self.last = self.last.max(Some(mark.reported_at));
            live.insert(mark.reporter);
        }
        for (i, reports) in entry.reporters.iter().enumerate() {
            let tally = self.keys.entry(reports.key.clone()).or_default();
            for net in &reports.networks {
                if !tally.networks.contains(net) {
                    tally.networks.push(*net);
                }
            }
            tally.accountable |= reports.accountable;
            tally.evidence.extend(reports.evidence.iter());
            tally.live |= u32::try_from(i).is_ok_and(|i| live.contains(&i));
        }
    }

    /// The summary, or `None` when no report is in the window.
    pub(crate) fn finish(self, now: i64) -> Option<ReportSummary> {
        let last_reported_at = self.last?;
        let live: Vec<KeyTally> = self.keys.into_values().filter(|t| t.live).collect();
        let groups = reporters(&live);
        let score = report_score(
            groups.iter().map(|(free, paid)| Reporter { free, paid }),
            now,
        );
        Some(ReportSummary {
            count: self.count,
            distinct_reporters: u32::try_from(groups.len()).unwrap_or(u32::MAX),
            categories: self.categories,
            last_reported_at,
            score,
        })
    }
}

/// The independent reporters among `keys`: keys that reported from a
/// shared network, directly or through other keys, are one reporter. Each
/// reporter's evidence from free keys and from accountable (paid) keys.
fn reporters(keys: &[KeyTally]) -> Vec<(Vec<Evidence>, Vec<Evidence>)> {
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    let mut first_key: HashMap<ReporterNet, usize> = HashMap::new();
    for (i, tally) in keys.iter().enumerate() {
        for net in &tally.networks {
            let j = *first_key.entry(*net).or_insert(i);
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    let mut groups: HashMap<usize, (Vec<Evidence>, Vec<Evidence>)> = HashMap::new();
    for (i, tally) in keys.iter().enumerate() {
        let (free, paid) = groups.entry(root(&mut parent, i)).or_default();
        let side = if tally.accountable { paid } else { free };
        side.extend(tally.evidence.iter());
    }
    groups.into_values().collect()
}

/// The root of `i` in a union-find forest, halving paths on the way.
fn root(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(nets: &[&str], accountable: bool) -> KeyTally {
        KeyTally {
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            accountable,
            evidence: vec![Evidence {
                reported_at: 0,
                severity: ipintel_core::reports::Severity::High,
                confidence: 90,
            }],
            live: true,
        }
    }

    fn sizes(keys: &[KeyTally]) -> Vec<usize> {
        let mut sizes: Vec<usize> = reporters(keys)
            .iter()
            .map(|(free, paid)| free.len() + paid.len())
            .collect();
        sizes.sort_unstable();
        sizes
    }

    #[test]
    fn keys_sharing_a_network_are_one_reporter() {
        let a = "198.51.100.0/24";
        let b = "203.0.113.0/24";
        let c = "2001:db8:1::/48";
        assert_eq!(sizes(&[tally(&[a], false), tally(&[a], false)]), [2]);
        assert_eq!(sizes(&[tally(&[a], false), tally(&[b], false)]), [1, 1]);
        // Linked through a third key that used both networks.
        let chain = [
            tally(&[a], false),
            tally(&[c], false),
            tally(&[a, c], false),
        ];
        assert_eq!(sizes(&chain), [3]);
        // Unknown networks (old rows) keep keys apart.
        assert_eq!(sizes(&[tally(&[], false), tally(&[], false)]), [1, 1]);
    }

    #[test]
    fn a_group_keeps_free_and_paid_evidence_apart() {
        let a = "198.51.100.0/24";
        let groups = reporters(&[tally(&[a], false), tally(&[a], true), tally(&[a], false)]);
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].0.len(), groups[0].1.len()), (2, 1));
    }
}

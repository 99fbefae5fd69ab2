//! The reports about one network key, and summaries over several.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use ipintel_core::reports::{
    report_score, Evidence, ReportCategories, ReportSummary, MAX_EVIDENCE_PER_REPORTER, WINDOW_SECS,
};

use crate::key::KeyId;
use crate::store::NewReport;

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
    /// Each reporter and its most recent evidence (oldest first).
    reporters: Vec<(KeyId, VecDeque<Evidence>)>,
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
        let evidence = Evidence {
            reported_at: report.reported_at,
            severity: report.severity,
            confidence: report.confidence,
        };
        if let Some((_, list)) = self.reporters.get_mut(reporter) {
            if list.len() == MAX_EVIDENCE_PER_REPORTER {
                drop_oldest(list);
            }
            list.push_back(evidence);
        }
        self.marks.push(Mark {
            reported_at: report.reported_at,
            received_at: report.received_at,
            reporter: u32::try_from(reporter).unwrap_or(u32::MAX),
            categories: report.categories,
        });
    }

    fn reporter_index(&mut self, key: &KeyId) -> usize {
        match self.reporters.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.reporters.push((key.clone(), VecDeque::new()));
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

/// Builds one summary over one or more entries (a live-feed group).
#[derive(Debug, Default)]
pub(crate) struct Summarizer {
    evidence: HashMap<KeyId, Vec<Evidence>>,
    reporters: HashSet<KeyId>,
    count: u64,
    categories: ReportCategories,
    last: Option<i64>,
}

impl Summarizer {
    /// Adds an entry's reports in the window at `now` (copying what it
    /// needs, so entries are never locked two at a time).
    pub(crate) fn add(&mut self, entry: &Entry, now: i64) {
        for mark in entry.live_marks(now) {
            self.count += 1;
            self.categories = self.categories.union(mark.categories);
            self.last = self.last.max(Some(mark.reported_at));
            if let Some((key, _)) = usize::try_from(mark.reporter)
                .ok()
                .and_then(|i| entry.reporters.get(i))
            {
                if !self.reporters.contains(key) {
                    self.reporters.insert(key.clone());
                }
            }
        }
        for (key, list) in &entry.reporters {
            self.evidence
                .entry(key.clone())
                .or_default()
                .extend(list.iter());
        }
    }

    /// The summary, or `None` when no report is in the window.
    pub(crate) fn finish(self, now: i64) -> Option<ReportSummary> {
        let last_reported_at = self.last?;
        let score = report_score(self.evidence.values().map(Vec::as_slice), now);
        Some(ReportSummary {
            count: self.count,
            distinct_reporters: u32::try_from(self.reporters.len()).unwrap_or(u32::MAX),
            categories: self.categories,
            last_reported_at,
            score,
        })
    }
}

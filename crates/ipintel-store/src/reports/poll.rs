//! Reading the reports other processes accepted into the same store.
//!
//! Several nodes may share one database. Each indexes the reports it
//! accepts itself at once; every [`REPORT_POLL_INTERVAL`] its desk asks the
//! store for the rows with an id above the highest it has seen and indexes
//! those it does not hold yet.
//!
//! Ids are handed out when a row is inserted, not when it commits: on
//! PostgreSQL two nodes inserting at once can commit id 42 before id 41,
//! and a poll between the two commits sees 42 but not 41. Moving past 42
//! alone would lose 41 for good. So every id skipped on the way up is
//! remembered as a gap and asked for again by id on the following polls,
//! until it shows up or [`GAP_PATIENCE`] has passed (an insertion that was
//! rolled back leaves a gap that never fills). No clock is involved: the
//! ids alone decide what is new.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How often a desk reads the reports other processes accepted. A report
/// accepted by one node shows on the others after at most this long plus
/// the time of one query.
pub const REPORT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Rows read per query.
pub(super) const PAGE: u32 = 1_000;
/// Queries of new rows per poll at most; a longer backlog is read on the
/// following polls.
pub(super) const PAGES_PER_POLL: usize = 10;
/// How long a skipped id is asked for again. An insertion commits within
/// milliseconds of taking its id; one still open after this long is taken
/// for rolled back. (If it commits after all, other nodes index it at
/// their next start.)
pub(super) const GAP_PATIENCE: Duration = Duration::from_secs(300);
/// Skipped ids remembered at most; past this the lowest are given up.
pub(super) const MAX_GAPS: usize = 1_024;
/// At start-up, the ids this far below the highest one loaded that were not
/// loaded are taken as gaps: one of them may belong to an insertion that
/// was still running while the window was read. (Most are reports older
/// than the window, read once on the first poll and dropped.)
pub(super) const OPEN_GAP_SPAN: i64 = 256;

/// Which report ids a desk has indexed, so that none is indexed twice and
/// none that commits late is missed.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The highest id read from the store. Every id at or below it has been
    /// indexed, is in `gaps`, or was given up.
    high: i64,
    /// Ids at or below `high` that were not there when the poll passed
    /// them, with when they were first missed.
    gaps: BTreeMap<i64, Instant>,
    /// Ids above `high` already indexed: this desk's own reports, accepted
    /// before a poll read them.
    ahead: BTreeSet<i64>,
}

impl Seen {
    /// The state after loading the rows `ids` (in increasing order) at
    /// start-up.
    ///
    /// With nothing loaded (no report in the window) the first polls read
    /// the table from its start, [`PAGES_PER_POLL`] pages a second, and
    /// keep none of the old rows: a one-off cost that only a table with
    /// many reports and none in the last 30 days makes noticeable.
    pub(super) fn after_load(ids: &[i64], now: Instant) -> Seen {
        let mut seen = Seen::default();
        let Some(&high) = ids.last() else {
            return seen;
        };
        seen.high = high;
        let floor = high.saturating_sub(OPEN_GAP_SPAN);
        let loaded: BTreeSet<i64> = ids.iter().copied().filter(|id| *id > floor).collect();
        seen.gaps = (floor.saturating_add(1).max(1)..high)
            .filter(|id| !loaded.contains(id))
            .map(|id| (id, now))
            .collect();
        seen
    }

    /// The id above which the next poll reads.
    pub(super) fn high(&self) -> i64 {
        self.high
    }

    /// Marks `id` as indexed by the caller; `false` if it already was (the
    /// caller must then not index it again).
    pub(super) fn claim(&mut self, id: i64) -> bool {
        if id > self.high {
            self.ahead.insert(id)
        } else {
            self.gaps.remove(&id).is_some()
        }
    }

    /// The gaps still awaited at `now`, lowest first; those older than
    /// [`GAP_PATIENCE`] are given up. Returns them and the number given up.
    pub(super) fn awaited(&mut self, now: Instant) -> (Vec<i64>, usize) {
        let before = self.gaps.len();
        self.gaps
            .retain(|_, missed| now.saturating_duration_since(*missed) < GAP_PATIENCE);
        let given_up = before - self.gaps.len();
        (self.gaps.keys().copied().collect(), given_up)
    }

    /// Takes a page of rows read above [`Seen::high`] (ids in increasing
    /// order): moves `high` to the last, records the ids skipped on the way
    /// as gaps, and says for each row whether to index it (not if this desk
    /// indexed it already). Also returns the number of gaps given up to
    /// stay within [`MAX_GAPS`].
    pub(super) fn take_page(&mut self, ids: &[i64], now: Instant) -> (Vec<bool>, usize) {
        let mut fresh = Vec::with_capacity(ids.len());
        let mut given_up = 0;
        for &id in ids {
            if id <= self.high {
                // Not above the mark: only a gap may be taken from here.
                fresh.push(self.claim(id));
                continue;
            }
            given_up += self.skip_to(id, now);
            fresh.push(!self.ahead.remove(&id));
            self.high = id;
        }
        let high = self.high;
        self.ahead.retain(|id| *id > high);
        (fresh, given_up)
    }

    /// Records the ids between `high` and `id` (both excluded) that this
    /// desk has not indexed as gaps. Returns the number given up to stay
    /// within [`MAX_GAPS`].
    fn skip_to(&mut self, id: i64, now: Instant) -> usize {
        let span = id.saturating_sub(self.high).saturating_sub(1);
        let cap = i64::try_from(MAX_GAPS).unwrap_or(i64::MAX);
        let first = self.high.saturating_add(1).max(id.saturating_sub(cap));
        let mut given_up = usize::try_from(span - (id - first)).unwrap_or(0);
        for missing in first..id {
            if !self.ahead.contains(&missing) {
                self.gaps.insert(missing, now);
            }
        }
        while self.gaps.len() > MAX_GAPS {
            self.gaps.pop_first();
            given_up += 1;
        }
        given_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(seen: &Seen) -> Vec<i64> {
        seen.gaps.keys().copied().collect()
    }

    #[test]
    fn a_skipped_id_is_awaited_and_taken_once() {
        let now = Instant::now();
        let mut seen = Seen::default();
        assert_eq!(seen.take_page(&[1, 2, 4], now), (vec![true; 3], 0));
        assert_eq!(seen.high(), 4);
        assert_eq!(gaps(&seen), [3]);
        // 3 commits late: the next poll asks for it by id.
        assert_eq!(seen.awaited(now), (vec![3], 0));
        assert!(seen.claim(3));
        assert!(!seen.claim(3), "a second sight of 3 is not fresh");
        assert!(gaps(&seen).is_empty());
    }

    #[test]
    fn the_desks_own_reports_are_not_taken_twice() {
        let now = Instant::now();
        let mut seen = Seen::after_load(&[1, 2], now);
        // Accepted here (5) before the poll, and after it (7).
        assert!(seen.claim(5));
        assert_eq!(
            seen.take_page(&[3, 4, 5, 6], now),
            (vec![true, true, false, true], 0)
        );
        assert!(!seen.claim(6), "read by the poll first");
        assert!(seen.claim(7));
        // The poll's read missed 7 (it committed after the query started)
        // but found 8: 7 is not a gap, it is indexed.
        assert_eq!(seen.take_page(&[8], now), (vec![true], 0));
        assert!(gaps(&seen).is_empty());
        assert!(seen.ahead.is_empty());
        assert!(!seen.claim(7));
    }

    #[test]
    fn an_own_report_below_the_mark_fills_its_gap() {
        let now = Instant::now();
        let mut seen = Seen::default();
        seen.take_page(&[1, 3], now);
        // This desk's insertion of 2 commits after the poll passed it.
        assert!(seen.claim(2));
        assert_eq!(seen.awaited(now), (vec![], 0));
    }

    #[test]
    fn gaps_are_given_up_after_the_patience() {
        let start = Instant::now();
        let mut seen = Seen::default();
        seen.take_page(&[2], start);
        assert_eq!(seen.awaited(start + GAP_PATIENCE / 2), (vec![1], 0));
        assert_eq!(seen.awaited(start + GAP_PATIENCE), (vec![], 1));
        assert!(!seen.claim(1), "a given-up id counts as seen");
    }

    #[test]
    fn gaps_stay_within_their_cap() {
        let now = Instant::now();
        let mut seen = Seen::default();
        let jump = i64::try_from(MAX_GAPS).unwrap() * 3;
        let (fresh, given_up) = seen.take_page(&[jump], now);
        assert_eq!(fresh, [true]);
        assert_eq!(seen.gaps.len(), MAX_GAPS);
        assert_eq!(given_up, 2 * MAX_GAPS - 1);
        assert_eq!(
            seen.gaps.keys().next(),
            Some(&(jump - i64::try_from(MAX_GAPS).unwrap()))
        );
        let (_, given_up) = seen.take_page(&[jump + 3], now);
        assert_eq!(given_up, 2, "the two oldest make room for 2 new gaps");
        assert_eq!(seen.gaps.len(), MAX_GAPS);
    }

    #[test]
    fn loading_takes_missing_ids_near_the_top_as_gaps() {
        let now = Instant::now();
        assert_eq!(Seen::after_load(&[], now).high(), 0);
        let seen = Seen::after_load(&[3, 5, 6, 9], now);
        assert_eq!(seen.high(), 9);
        assert_eq!(gaps(&seen), [1, 2, 4, 7, 8]);
        let far = 10_000;
        let seen = Seen::after_load(&[5, far - 2, far], now);
        let expected: Vec<i64> = (far - OPEN_GAP_SPAN + 1..far)
            .filter(|id| *id != far - 2)
            .collect();
        assert_eq!(gaps(&seen), expected);
    }
}

//! One search per lookup: a family's tables combined.
//!
//! A family keeps separate tables for locations, AS data and signal sets
//! (the aggregates and the segment walk read them one at a time), and the
//! reserved ranges have a table of their own. Answering a lookup from them
//! takes four searches, each a chain of dependent memory reads through a
//! radix index that mostly misses the cache. The combined table cuts the
//! address space at every start of every one of them, so each of its
//! intervals lies inside exactly one interval of each; one search finds a
//! [`Cell`] naming all of them.

use crate::reserved::ReservedRange;
use crate::table::{IntervalTable, Key, NONE};

/// What one interval of the combined table lies in: the interval of the
/// geo and AS tables (their values are the location and AS info ids, their
/// bounds give the networks), and the signal set or, for a reserved
/// range, that range. Twelve bytes, since there is one per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cell {
    /// Index of the geo table's interval.
    pub(crate) geo: u32,
    /// Index of the AS table's interval.
    pub(crate) asn: u32,
    /// Signal set id, or [`RESERVED`] plus an index into the family's
    /// reserved ranges.
    tag: u32,
}

/// Tags at or above this mark a reserved range (signal set ids stay far
/// below: there is one per distinct combination of signals).
const RESERVED: u32 = 0xffff_0000;

impl Cell {
    /// A cell of signal set `threat` (below [`RESERVED`]), or of reserved
    /// range `reserved` (an index below 2^16) when it is not [`NONE`].
    pub(crate) fn new(geo: u32, asn: u32, threat: u32, reserved: u32) -> Cell {
        let tag = if reserved == NONE {
            assert!(threat < RESERVED, "signal set id {threat} out of range");
            threat
        } else {
            RESERVED | (reserved & 0xffff)
        };
        Cell { geo, asn, tag }
    }

    /// The signal set id (0, no signals, for a reserved range).
    #[inline]
    pub(crate) fn threat(self) -> usize {
        if self.tag >= RESERVED {
            0
        } else {
            self.tag as usize
        }
    }

    /// Index of the reserved range, if the cell is one.
    #[inline]
    fn reserved(self) -> Option<usize> {
        (self.tag >= RESERVED).then_some((self.tag - RESERVED) as usize)
    }
}

/// The combined table of one family and the reserved ranges its cells
/// point to.
#[derive(Debug)]
pub(crate) struct Combined<K> {
    pub(crate) table: IntervalTable<K, Cell>,
    pub(crate) reserved: Vec<&'static ReservedRange>,
}

impl<K: Key> Combined<K> {
    /// Combines the three tables with the reserved ranges. Linear in their
    /// total length.
    pub(crate) fn new(
        geo: &IntervalTable<K>,
        asn: &IntervalTable<K>,
        signals: &IntervalTable<K>,
    ) -> Self {
        let (reserved_table, reserved) = K::reserved();
        let sources = [geo, asn, signals, &reserved_table];
        let total: usize = sources.iter().map(|t| t.len()).sum();
        let mut starts = Vec::with_capacity(total);
        let mut cells = Vec::with_capacity(total);
        // at[t]: the interval of table t holding the current start.
        let mut at = [0usize; 4];
        let mut start = K::ZERO;
        loop {
            starts.push(start);
            cells.push(Cell::new(
                index(at[0]),
                index(at[1]),
                signals.value(at[2]),
                reserved_table.value(at[3]),
            ));
            // The next cut is the nearest next start of any table.
            let next = sources
                .iter()
                .zip(at)
                .filter_map(|(table, i)| table.starts().get(i + 1).copied())
                .min();
            let Some(next) = next else { break };
            for (table, i) in sources.iter().zip(at.iter_mut()) {
                if table.starts().get(*i + 1) == Some(&next) {
                    *i += 1;
                }
            }
            start = next;
        }
        starts.shrink_to_fit();
        cells.shrink_to_fit();
        let table = IntervalTable::from_parts(starts, cells)
            .unwrap_or_else(|| unreachable!("the cuts start at zero and strictly increase"));
        Combined { table, reserved }
    }

    /// The cell of the interval holding `key`.
    #[inline]
    pub(crate) fn cell(&self, key: K) -> Cell {
        self.table.value(self.table.find(key))
    }

    /// The reserved range a cell lies in, if any.
    #[inline]
    pub(crate) fn reserved_range(&self, cell: Cell) -> Option<&'static ReservedRange> {
        self.reserved.get(cell.reserved()?).copied()
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or_else(|_| unreachable!("tables hold fewer than 2^32 intervals"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(ranges: &[(u32, u32, u32)]) -> IntervalTable<u32> {
        IntervalTable::from_disjoint(ranges.to_vec())
    }

    /// Every key's cell names the interval each table finds for it.
    fn check(geo: &IntervalTable<u32>, asn: &IntervalTable<u32>, sig: &IntervalTable<u32>) {
        let (reserved_table, _) = u32::reserved();
        let combined = Combined::new(geo, asn, sig);
        let mut probes: Vec<u32> = Vec::new();
        for t in [geo, asn, sig, &reserved_table] {
            for &s in t.starts() {
                probes.extend([s, s.saturating_sub(1), s.saturating_add(1)]);
            }
        }
        probes.extend([0, u32::MAX, 0x0808_0808, 0x7f00_0001]);
        for key in probes {
            let cell = combined.cell(key);
            let (g, a, s) = (geo.find(key), asn.find(key), sig.find(key));
            assert_eq!(cell.geo as usize, g, "{key:#x}");
            assert_eq!(cell.asn as usize, a, "{key:#x}");
            let reserved = reserved_table.value(reserved_table.find(key));
            if reserved == NONE {
                assert_eq!(cell.threat(), sig.value(s) as usize, "{key:#x}");
                assert_eq!(cell.reserved(), None, "{key:#x}");
            } else {
                assert_eq!(cell.reserved(), Some(reserved as usize), "{key:#x}");
            }
        }
    }

    #[test]
    fn cells_name_each_tables_interval() {
        let geo = table(&[(10, 19, 1), (30, 39, 2), (0x0808_0000, 0x0808_ffff, 3)]);
        let asn = table(&[(15, 35, 7), (0x0800_0000, 0x08ff_ffff, 8)]);
        let sig = IntervalTable::from_sorted(vec![(0, 0), (12, 4), (0x0808_0800, 0)]);
        check(&geo, &asn, &sig);
    }

    #[test]
    fn shared_starts_cut_once() {
        let geo = table(&[(100, 199, 1)]);
        let asn = table(&[(100, 199, 2)]);
        let sig = IntervalTable::from_sorted(vec![(0, 0), (100, 5), (200, 0)]);
        let (reserved_table, _) = u32::reserved();
        let combined = Combined::new(&geo, &asn, &sig);
        let starts = combined.table.starts();
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        assert!(starts.len() < geo.len() + asn.len() + sig.len() + reserved_table.len());
        check(&geo, &asn, &sig);
    }

    proptest! {
        #[test]
        fn matches_the_separate_tables(
            geo in prop::collection::vec((any::<u32>(), any::<u16>(), 0u32..5), 0..30),
            asn in prop::collection::vec((any::<u32>(), any::<u16>(), 0u32..5), 0..30),
            sig in prop::collection::vec((any::<u32>(), 0u32..4), 0..30),
        ) {
            let ranges = |v: Vec<(u32, u16, u32)>| -> Vec<(u32, u32, u32)> {
                v.into_iter().map(|(a, len, x)| (a, a.saturating_add(u32::from(len)), x)).collect()
            };
            let mut points: Vec<(u32, u32)> = sig;
            points.push((0, 0));
            points.sort_unstable_by_key(|p| p.0);
            points.dedup_by_key(|p| p.0);
            let sig = IntervalTable::from_sorted(points);
            check(&table(&ranges(geo)), &table(&ranges(asn)), &sig);
        }
    }
}

//! Sorted interval tables with a radix-tree index.
//!
//! A table partitions the whole address space of one family into intervals:
//! interval `i` spans `starts[i] ..= starts[i + 1] - 1` (the last one runs to
//! the top of the space) and carries `values[i]`. `starts[0]` is always 0.
//!
//! The index is a small radix tree over the sorted starts. The root splits
//! on the leading 16 bits; any node holding more than a few starts splits
//! again on the next bits where its starts differ, into about
//! `count / TARGET` children. A lookup walks two or three nodes and then
//! binary-searches a window of a handful of starts. Address data is very
//! unevenly spread (a few IPv6 `/32`s hold hundreds of thousands of
//! networks), which a single fixed-width index cannot serve well.

use std::net::IpAddr;

use crate::range::{largest_cidr_v4, largest_cidr_v6, Cidr};
use crate::reserved::{reserved_table_v4, reserved_table_v6, ReservedRange};

/// Marker for "no value" in tables whose values are ids.
pub(crate) const NONE: u32 = u32::MAX;

/// Average number of starts per leaf the index aims for.
const TARGET: usize = 8;

/// Most bits one node splits on.
const MAX_BITS: u32 = 16;

/// An unsigned integer form of an address (u32 for IPv4, u128 for IPv6).
pub(crate) trait Key: Copy + Ord + std::fmt::Debug + Send + Sync + 'static {
    /// Width in bits.
    const WIDTH: u32;
    /// Largest key.
    const MAX: Self;
    /// Smallest key.
    const ZERO: Self;
    /// The `bits` bits that follow the leading `shift` bits
    /// (`bits >= 1`, `shift + bits <= WIDTH`, `bits <= MAX_BITS`).
    fn bits_at(self, shift: u32, bits: u32) -> usize;
    /// Length of the common leading bits of two keys.
    fn common_prefix(self, other: Self) -> u32;
    /// `self + 1`, or `None` at the top.
    fn succ(self) -> Option<Self>;
    /// `self - 1` (never called on zero).
    fn pred(self) -> Self;
    /// Largest CIDR holding `self` inside `first..=last`.
    fn largest_cidr(self, first: Self, last: Self) -> Cidr;
    /// The family's reserved ranges as a table, and the ranges its values
    /// index.
    fn reserved() -> (IntervalTable<Self>, Vec<&'static ReservedRange>);
}

impl Key for u32 {
    const WIDTH: u32 = 32;
    const MAX: u32 = u32::MAX;
    const ZERO: u32 = 0;

    #[inline]
    fn bits_at(self, shift: u32, bits: u32) -> usize {
        (self.wrapping_shl(shift) >> (32 - bits)) as usize
    }

    fn common_prefix(self, other: u32) -> u32 {
        (self ^ other).leading_zeros()
    }

    fn succ(self) -> Option<u32> {
        self.checked_add(1)
    }

    fn pred(self) -> u32 {
        self - 1
    }

    fn largest_cidr(self, first: u32, last: u32) -> Cidr {
        let (net, len) = largest_cidr_v4(self, first, last);
        Cidr {
            addr: IpAddr::V4(net.into()),
            len,
        }
    }

    fn reserved() -> (IntervalTable<u32>, Vec<&'static ReservedRange>) {
        reserved_table_v4()
    }
}

impl Key for u128 {
    const WIDTH: u32 = 128;
    const MAX: u128 = u128::MAX;
    const ZERO: u128 = 0;

    #[inline]
    fn bits_at(self, shift: u32, bits: u32) -> usize {
        (self.wrapping_shl(shift) >> (128 - bits)) as usize
    }

    fn common_prefix(self, other: u128) -> u32 {
        (self ^ other).leading_zeros()
    }

    fn succ(self) -> Option<u128> {
        self.checked_add(1)
    }

    fn pred(self) -> u128 {
        self - 1
    }

    fn largest_cidr(self, first: u128, last: u128) -> Cidr {
        let (net, len) = largest_cidr_v6(self, first, last);
        Cidr {
            addr: IpAddr::V6(net.into()),
            len,
        }
    }

    fn reserved() -> (IntervalTable<u128>, Vec<&'static ReservedRange>) {
        reserved_table_v6()
    }
}

/// A node of the index: the starts `lo..hi` share a prefix; an inner node
/// splits them on `bits` bits after `shift`, its children at `child..`.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    lo: u32,
    hi: u32,
    child: u32,
    shift: u8,
    /// 0 for a leaf.
    bits: u8,
    /// The node skipped bits its starts all share; a key may differ there.
    skipped: bool,
}

/// Builds the index over sorted `starts`.
fn build_index<K: Key>(starts: &[K]) -> Vec<Node> {
    let mut nodes = vec![Node::default()];
    let mut work = vec![(0usize, 0usize, starts.len(), 0u32, true)];
    while let Some((at, lo, hi, shift, root)) = work.pop() {
        let node = split(&mut nodes, starts, lo, hi, shift, root, &mut work);
        nodes[at] = node;
    }
    nodes.shrink_to_fit();
    nodes
}

type Work = Vec<(usize, usize, usize, u32, bool)>;

fn split<K: Key>(
    nodes: &mut Vec<Node>,
    starts: &[K],
    lo: usize,
    hi: usize,
    shift: u32,
    root: bool,
    work: &mut Work,
) -> Node {
    let leaf = Node {
        lo: as_u32(lo),
        hi: as_u32(hi),
        ..Node::default()
    };
    let count = hi - lo;
    let (shift, skipped) = if root || count == 0 {
        (shift, false)
    } else {
        let shared = starts[lo].common_prefix(starts[hi - 1]).max(shift);
        (shared, shared > shift)
    };
    let bits = if root {
        MAX_BITS
    } else {
        node_bits(count, K::WIDTH - shift)
    };
    if bits == 0 {
        return leaf;
    }
    let child = nodes.len();
    nodes.resize(child + (1usize << bits), Node::default());
    let mut j = lo;
    for s in 0..(1usize << bits) {
        let first = j;
        while j < hi && starts[j].bits_at(shift, bits) == s {
            j += 1;
        }
        work.push((child + s, first, j, shift + bits, false));
    }
    Node {
        child: as_u32(child),
        shift: shift as u8,
        bits: bits as u8,
        skipped,
        ..leaf
    }
}

/// Split width for a node of `count` starts with `remaining` bits left.
fn node_bits(count: usize, remaining: u32) -> u32 {
    if count <= 2 * TARGET || remaining == 0 {
        return 0;
    }
    let wanted = (count / TARGET).next_power_of_two().trailing_zeros();
    wanted.clamp(1, MAX_BITS.min(remaining))
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An immutable interval table; see the module docs. Values are ids
/// (`u32`) unless a table carries a record per interval.
#[derive(Debug, Clone)]
pub(crate) struct IntervalTable<K, V = u32> {
    starts: Vec<K>,
    values: Vec<V>,
    index: Vec<Node>,
}

impl<K: Key> IntervalTable<K> {
    /// A table with one interval covering everything, valued `value`.
    pub(crate) fn uniform(value: u32) -> Self {
        Self::from_sorted(vec![(K::ZERO, value)])
    }

    /// Builds from `(start, value)` pairs sorted by strictly increasing
    /// start, the first at zero. Neighbours with equal values are merged.
    pub(crate) fn from_sorted(points: Vec<(K, u32)>) -> Self {
        let mut starts = Vec::with_capacity(points.len());
        let mut values: Vec<u32> = Vec::with_capacity(points.len());
        for (start, value) in points {
            if values.last() == Some(&value) {
                continue;
            }
            starts.push(start);
            values.push(value);
        }
        if starts.first() != Some(&K::ZERO) {
            starts.insert(0, K::ZERO);
            values.insert(0, NONE);
        }
        starts.shrink_to_fit();
        values.shrink_to_fit();
        let index = build_index(&starts);
        IntervalTable {
            starts,
            values,
            index,
        }
    }

    /// Builds from disjoint inclusive ranges (any order). Where ranges
    /// overlap, the one with the lower start keeps the shared part. Gaps get
    /// [`NONE`].
    pub(crate) fn from_disjoint(mut ranges: Vec<(K, K, u32)>) -> Self {
        ranges.sort_unstable_by_key(|r| (r.0, r.1));
        let mut points = Vec::with_capacity(ranges.len() * 2);
        let mut next_free = Some(K::ZERO); // first key not yet covered
        for (first, last, value) in ranges {
            let Some(free) = next_free else { break };
            if last < free {
                continue; // fully shadowed by an earlier range
            }
            let first = first.max(free);
            if first > free {
                points.push((free, NONE));
            }
            points.push((first, value));
            next_free = last.succ();
        }
        if let Some(free) = next_free {
            points.push((free, NONE));
        }
        Self::from_sorted(points)
    }

    /// Iterates `(first, last, value)` over all intervals.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, K, u32)> + '_ {
        (0..self.len()).map(|i| {
            let (a, b) = self.bounds(i);
            (a, b, self.values[i])
        })
    }
}

impl<K: Key, V: Copy> IntervalTable<K, V> {
    /// A table from the starts and values that [`starts`](Self::starts)
    /// and [`values`](Self::values) gave, with its index rebuilt; `None`
    /// unless the starts begin at zero, strictly increase and are as many
    /// as the values.
    pub(crate) fn from_parts(starts: Vec<K>, values: Vec<V>) -> Option<Self> {
        let ordered = starts.windows(2).all(|w| w[0] < w[1]);
        if starts.first() != Some(&K::ZERO) || !ordered || starts.len() != values.len() {
            return None;
        }
        let index = build_index(&starts);
        Some(IntervalTable {
            starts,
            values,
            index,
        })
    }

    /// The start of every interval, in order.
    pub(crate) fn starts(&self) -> &[K] {
        &self.starts
    }

    /// The value of every interval, in the order of the starts.
    pub(crate) fn values(&self) -> &[V] {
        &self.values
    }

    /// Index of the interval holding `key`.
    #[inline]
    pub(crate) fn find(&self, key: K) -> usize {
        let (lo, hi) = self.window(key);
        if hi <= lo {
            return lo - 1;
        }
        let pp = self.starts[lo..hi].partition_point(|s| *s <= key);
        lo + pp - 1
    }

    /// The starts to search for `key`, or an empty window at `p` meaning
    /// "the answer is `p - 1`". Starts before a window are all below `key`
    /// and starts[0] == 0 is in the first window, so the answer exists.
    #[inline]
    fn window(&self, key: K) -> (usize, usize) {
        let mut node = self.index[0];
        while node.bits != 0 {
            let (lo, hi) = (node.lo as usize, node.hi as usize);
            if node.skipped {
                // Outside the shared prefix, `key` is below or above them all.
                if key < self.starts[lo] {
                    return (lo, lo);
                }
                if key >= self.starts[hi - 1] {
                    return (hi, hi);
                }
            }
            let slot = key.bits_at(u32::from(node.shift), u32::from(node.bits));
            node = self.index[node.child as usize + slot];
        }
        (node.lo as usize, node.hi as usize)
    }

    /// Value of interval `i`.
    #[inline]
    pub(crate) fn value(&self, i: usize) -> V {
        self.values[i]
    }

    /// Bounds of interval `i`.
    #[inline]
    pub(crate) fn bounds(&self, i: usize) -> (K, K) {
        let last = self.starts.get(i + 1).map_or(K::MAX, |s| s.pred());
        (self.starts[i], last)
    }

    /// Number of intervals.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn disjoint_with_gaps() {
        let t = IntervalTable::<u32>::from_disjoint(vec![(10, 19, 1), (30, 39, 2), (20, 29, 1)]);
        let got: Vec<_> = t.iter().collect();
        assert_eq!(
            got,
            vec![(0, 9, NONE), (10, 29, 1), (30, 39, 2), (40, u32::MAX, NONE)]
        );
        assert_eq!(t.value(t.find(25)), 1);
        assert_eq!(t.value(t.find(u32::MAX)), NONE);
        assert_eq!(t.value(t.find(0)), NONE);
    }

    #[test]
    fn overlap_keeps_earlier() {
        let t = IntervalTable::<u32>::from_disjoint(vec![(0, 100, 1), (50, 150, 2), (60, 70, 3)]);
        let got: Vec<_> = t.iter().collect();
        assert_eq!(got, vec![(0, 100, 1), (101, 150, 2), (151, u32::MAX, NONE)]);
    }

    #[test]
    fn full_range_values() {
        let t = IntervalTable::<u128>::from_disjoint(vec![(0, u128::MAX, 7)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.value(t.find(u128::MAX)), 7);
        assert_eq!(t.bounds(0), (0, u128::MAX));
    }

    #[test]
    fn dense_buckets_get_a_sub_index() {
        // 10,000 starts inside one /16: the window must be small.
        let points: Vec<(u32, u32)> = (0..10_000u32)
            .map(|i| (0x0a0a_0000 + i * 5, i % 7))
            .collect();
        let mut points = points;
        points.insert(0, (0, NONE));
        let t = IntervalTable::from_sorted(points);
        let (lo, hi) = t.window(0x0a0a_1234u32);
        assert!(hi - lo <= 4 * TARGET, "window {}", hi - lo);
        for probe in [
            0x0a0a_0000u32,
            0x0a0a_1234,
            0x0a0a_c34f,
            0x0a0b_0000,
            0x0a09_ffff,
        ] {
            let i = t.find(probe);
            let (a, b) = t.bounds(i);
            assert!(a <= probe && probe <= b, "{probe:x}");
        }
    }

    #[test]
    fn bit_extraction() {
        assert_eq!(0x1234_abcdu32.bits_at(16, 4), 0xa);
        assert_eq!(0x1234_abcdu32.bits_at(16, 16), 0xabcd);
        assert_eq!(0x1234_abcdu32.bits_at(0, 16), 0x1234);
        assert_eq!((0x2a01_04f8_u128 << 96).bits_at(16, 16), 0x04f8);
        assert_eq!((0x2a01_04f8_u128 << 96).bits_at(24, 8), 0xf8);
        assert_eq!(5u128.bits_at(124, 4), 5);
    }

    #[test]
    fn clustered_keys_skip_shared_bits() {
        // Many starts inside one /120 far below the root split.
        let mut points: Vec<(u128, u32)> = vec![(0, NONE)];
        points.extend((0..200u128).map(|i| ((0x2a01_u128 << 112) + i, (i % 3) as u32)));
        points.push(((0x2a01_u128 << 112) + 1000, 9));
        let t = IntervalTable::from_sorted(points);
        for probe in [
            0x2a01_u128 << 112,
            (0x2a01_u128 << 112) + 150,
            (0x2a01_u128 << 112) + 500,
            (0x2a01_u128 << 112) + 1000,
            0x2a02_u128 << 112,
            (0x2a00_u128 << 112) + 5,
        ] {
            let i = t.find(probe);
            let (a, b) = t.bounds(i);
            assert!(a <= probe && probe <= b, "{probe:x}");
        }
    }

    fn check_against_naive<K: Key>(
        ranges: Vec<(u16, u16, u32)>,
        probes: Vec<u16>,
        scale: impl Fn(u16) -> K,
    ) {
        let mut ranges: Vec<(K, K, u32)> = ranges
            .into_iter()
            .map(|(a, b, v)| (scale(a.min(b)), scale(a.max(b)), v))
            .collect();
        let t = IntervalTable::from_disjoint(ranges.clone());
        ranges.sort_unstable_by_key(|r| (r.0, r.1));
        for p in probes {
            let k = scale(p);
            // Naive model: the first range in start order holding k wins.
            let want = ranges
                .iter()
                .find(|(a, b, _)| *a <= k && k <= *b)
                .map_or(NONE, |r| r.2);
            assert_eq!(t.value(t.find(k)), want, "probe {k:?}");
        }
    }

    proptest! {
        #[test]
        fn matches_naive_v4(ranges in prop::collection::vec((any::<u16>(), any::<u16>(), 0u32..4), 0..20), probes in prop::collection::vec(any::<u16>(), 1..50)) {
            check_against_naive::<u32>(ranges, probes, |x| u32::from(x) << 16 | 0x55);
        }

        #[test]
        fn matches_naive_dense_v4(ranges in prop::collection::vec((any::<u16>(), any::<u16>(), 0u32..4), 0..120), probes in prop::collection::vec(any::<u16>(), 1..80)) {
            // Everything inside one /16, so the sub-index is exercised.
            check_against_naive::<u32>(ranges, probes, |x| 0x0a0a_0000 | u32::from(x));
        }

        #[test]
        fn matches_naive_dense_v6(ranges in prop::collection::vec((any::<u16>(), any::<u16>(), 0u32..4), 0..120), probes in prop::collection::vec(any::<u16>(), 1..80)) {
            check_against_naive::<u128>(ranges, probes, |x| (0x2a01_u128 << 112) | (u128::from(x) << 90) | 1);
        }

        #[test]
        fn matches_naive_v6(ranges in prop::collection::vec((any::<u16>(), any::<u16>(), 0u32..4), 0..20), probes in prop::collection::vec(any::<u16>(), 1..50)) {
            check_against_naive::<u128>(ranges, probes, |x| (u128::from(x) << 107) | 3);
        }
    }
}

//! The search tree: a binary trie over address bits.
//!
//! Each node has two records, for a 0 bit and a 1 bit. A record names
//! another node (its number), "no data" (the node count), or data (the
//! node count + 16 + the value's offset in the data section). A lookup
//! walks from node 0 one bit at a time until a record is not a node.
//!
//! The tree here is an IPv6 one. IPv4 addresses live at `::/96` (what
//! readers look up for an IPv4 address in an IPv6 database), and
//! `::ffff:0:0/96` leads to the same IPv4 subtree, so an IPv4-mapped
//! address finds the IPv4 data, as it does in a lookup.
//!
//! The tree is built top-down from sorted ranges: a prefix that no range
//! touches is "no data", a prefix inside one range is that range's data,
//! and any other prefix becomes a node whose halves are built the same
//! way. No node is ever made for a prefix that a single record can answer,
//! so the tree is as small as the ranges allow.

use std::io::{self, Write};

/// A record as built: a node number, [`EMPTY`], or [`DATA`] plus an offset.
type Rec = u32;

const EMPTY: Rec = u32::MAX;
const DATA: Rec = 1 << 31;

/// `::ffff:0:0`, the start of the IPv4-mapped block.
const MAPPED: u128 = 0xffff << 32;

/// A range of addresses holding the data stored at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span<K> {
    /// First address.
    pub first: K,
    /// Last address.
    pub last: K,
    /// Offset of the data in the data section.
    pub offset: u32,
}

/// Why a tree cannot be built or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeError {
    /// Ranges not in increasing, non-overlapping order.
    #[error("ranges overlap or are out of order near {0:#x}")]
    Unsorted(u128),
    /// More nodes, or a larger data section, than 32-bit records can address.
    #[error("the database is too large for 32-bit records")]
    TooLarge,
}

/// A finished search tree.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<[Rec; 2]>,
}

impl Tree {
    /// Builds the tree of an IPv6 database from the IPv4 and the IPv6
    /// ranges, each sorted by address and non-overlapping. IPv6 ranges
    /// inside `::/96` and `::ffff:0:0/96` are ignored (the IPv4 ranges
    /// answer there). Neighbouring ranges with the same offset are merged.
    pub fn build(v4: Vec<Span<u32>>, v6: Vec<Span<u128>>) -> Result<Tree, TreeError> {
        let v4 = merged(
            v4.into_iter()
                .map(|s| (u128::from(s.first), u128::from(s.last), s.offset)),
        )?;
        let v6 = merged(v6.into_iter().map(|s| (s.first, s.last, s.offset)))?;
        let mut builder = Builder {
            nodes: Vec::new(),
            v4: &v4,
            v4_root: None,
        };
        let root = builder.subtree(&v6, 0, 0, 128, true)?;
        debug_assert_eq!(root, 0, "the root prefix holds ::/96, so it is a node");
        Ok(Tree {
            nodes: builder.nodes,
        })
    }

    /// Number of nodes.
    pub fn node_count(&self) -> u32 {
        // `subtree` refuses to number more than 2^31 nodes.
        self.nodes.len() as u32
    }

    /// The smallest record size (24, 28 or 32 bits) that can address every
    /// node and a data section of `data_len` bytes.
    pub fn record_size(&self, data_len: usize) -> Result<u16, TreeError> {
        let largest = u64::from(self.node_count()) + 16 + data_len as u64;
        match largest {
            _ if largest < 1 << 24 => Ok(24),
            _ if largest < 1 << 28 => Ok(28),
            _ if largest < 1 << 32 => Ok(32),
            _ => Err(TreeError::TooLarge),
        }
    }

    /// Writes the nodes with `record_size`-bit records.
    pub fn write(&self, out: &mut impl Write, record_size: u16) -> io::Result<()> {
        let node_count = self.node_count();
        let value = |rec: Rec| -> u32 {
            if rec == EMPTY {
                node_count
            } else if rec & DATA != 0 {
                node_count + 16 + (rec & !DATA)
            } else {
                rec
            }
        };
        let mut buf = Vec::with_capacity(1 << 16);
        for [left, right] in &self.nodes {
            let (l, r) = (value(*left), value(*right));
            match record_size {
                24 => {
                    buf.extend_from_slice(&l.to_be_bytes()[1..]);
                    buf.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                28 => {
                    // The middle byte holds the top nibble of each record.
                    buf.extend_from_slice(&l.to_be_bytes()[1..]);
                    buf.push((((l >> 24) as u8) << 4) | ((r >> 24) as u8 & 0x0f));
                    buf.extend_from_slice(&r.to_be_bytes()[1..]);
                }
                _ => {
                    buf.extend_from_slice(&l.to_be_bytes());
                    buf.extend_from_slice(&r.to_be_bytes());
                }
            }
            if buf.len() >= 1 << 16 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }
}

/// Checks the order and merges touching neighbours with equal data.
fn merged(
    spans: impl Iterator<Item = (u128, u128, u32)>,
) -> Result<Vec<(u128, u128, u32)>, TreeError> {
    let mut out: Vec<(u128, u128, u32)> = Vec::new();
    for (first, last, offset) in spans {
        if first > last {
            return Err(TreeError::Unsorted(first));
        }
        if let Some(prev) = out.last_mut() {
            if first <= prev.1 {
                return Err(TreeError::Unsorted(first));
            }
            if prev.2 == offset && prev.1 + 1 == first {
                prev.1 = last;
                continue;
            }
        }
        out.push((first, last, offset));
    }
    Ok(out)
}

struct Builder<'a> {
    nodes: Vec<[Rec; 2]>,
    v4: &'a [(u128, u128, u32)],
    v4_root: Option<Rec>,
}

impl Builder<'_> {
    /// The record for the prefix of `depth` bits starting at `lo` in a
    /// `width`-bit space, given the ranges that touch it.
    fn subtree(
        &mut self,
        ranges: &[(u128, u128, u32)],
        lo: u128,
        depth: u32,
        width: u32,
        v6: bool,
    ) -> Result<Rec, TreeError> {
        let holds_v4 = v6 && depth <= 96 && (lo == 0 || lo == MAPPED & high_bits(depth));
        if holds_v4 && depth == 96 {
            return self.ipv4();
        }
        if !holds_v4 {
            let hi = lo | low_bits(width - depth);
            match ranges {
                [] => return Ok(EMPTY),
                [(first, last, offset)] if *first <= lo && *last >= hi => {
                    return Ok(DATA | offset);
                }
                _ => {}
            }
        }
        let index = self.nodes.len();
        if index >= DATA as usize {
            return Err(TreeError::TooLarge);
        }
        self.nodes.push([EMPTY; 2]);
        let mid = lo | (1 << (width - depth - 1));
        let left = &ranges[..ranges.partition_point(|r| r.0 < mid)];
        let right = &ranges[ranges.partition_point(|r| r.1 < mid)..];
        let left = self.subtree(left, lo, depth + 1, width, v6)?;
        let right = self.subtree(right, mid, depth + 1, width, v6)?;
        self.nodes[index] = [left, right];
        Ok(index as Rec)
    }

    /// The IPv4 subtree's record, built on first use.
    fn ipv4(&mut self) -> Result<Rec, TreeError> {
        if let Some(rec) = self.v4_root {
            return Ok(rec);
        }
        let rec = self.subtree(self.v4, 0, 0, 32, false)?;
        self.v4_root = Some(rec);
        Ok(rec)
    }
}

/// A mask of the low `bits` bits.
fn low_bits(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1 << bits) - 1
    }
}

/// A mask of the high `bits` bits of a 128-bit value.
fn high_bits(bits: u32) -> u128 {
    !low_bits(128 - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the built tree like a reader (IPv4 through `::/96`).
    fn find(tree: &Tree, addr: u128, bits: u32) -> Rec {
        let mut node = 0u32;
        for i in (0..bits).rev() {
            let rec = tree.nodes[node as usize][((addr >> i) & 1) as usize];
            if rec == EMPTY || rec & DATA != 0 {
                return rec;
            }
            node = rec;
        }
        panic!("the walk ran past the last bit")
    }

    fn span<K>(first: K, last: K, offset: u32) -> Span<K> {
        Span {
            first,
            last,
            offset,
        }
    }

    #[test]
    fn ipv4_ranges_answer_through_both_v6_forms() {
        let v4 = [
            span(0x0808_0800, 0x0808_08ff, 7),
            span(0x0808_0900, 0x0808_09ff, 7),
        ];
        let tree = Tree::build(v4.to_vec(), Vec::new()).unwrap();
        assert_eq!(find(&tree, 0x0808_0808, 128), DATA | 7);
        assert_eq!(find(&tree, MAPPED | 0x0808_09ff, 128), DATA | 7);
        assert_eq!(find(&tree, 0x0808_0a00, 128), EMPTY);
        assert_eq!(find(&tree, 1 << 127, 128), EMPTY);
        // 80 nodes down to ::/80, 16 + 15 more to ::/96 and ::ffff:0:0/96,
        // and the two /24s merged into one /23: 23 nodes down to it.
        assert_eq!(tree.node_count(), 80 + 16 + 15 + 23);
    }

    #[test]
    fn ipv6_ranges_inside_the_v4_blocks_are_ignored() {
        let v6 = [span(0, u128::MAX, 3)];
        let tree = Tree::build(Vec::new(), v6.to_vec()).unwrap();
        assert_eq!(find(&tree, 5, 128), EMPTY);
        assert_eq!(find(&tree, MAPPED | 5, 128), EMPTY);
        assert_eq!(find(&tree, 1 << 127, 128), DATA | 3);
        assert_eq!(find(&tree, 0x1_0000_0000, 128), DATA | 3);
    }

    #[test]
    fn record_sizes_grow_with_the_database() {
        let tree = Tree::build(Vec::new(), Vec::new()).unwrap();
        assert_eq!(tree.record_size(1000).unwrap(), 24);
        assert_eq!(tree.record_size(1 << 24).unwrap(), 28);
        assert_eq!(tree.record_size(1 << 28).unwrap(), 32);
        assert_eq!(tree.record_size(1 << 32), Err(TreeError::TooLarge));
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let v4 = [span(10, 20, 0), span(15, 30, 1)];
        assert_eq!(
            Tree::build(v4.to_vec(), Vec::new()).unwrap_err(),
            TreeError::Unsorted(15)
        );
    }

    #[test]
    fn records_are_laid_out_per_size() {
        let tree = Tree {
            nodes: vec![[1, DATA | 2], [EMPTY, 0]],
        };
        let mut out = Vec::new();
        tree.write(&mut out, 24).unwrap();
        assert_eq!(out, [0, 0, 1, 0, 0, 20, 0, 0, 2, 0, 0, 0]);
        let mut out = Vec::new();
        tree.write(&mut out, 28).unwrap();
        assert_eq!(out.len(), 14);
        assert_eq!(&out[..7], &[0, 0, 1, 0, 0, 0, 20]);
        let mut out = Vec::new();
        tree.write(&mut out, 32).unwrap();
        assert_eq!(&out[..8], &[0, 0, 0, 1, 0, 0, 0, 20]);
    }
}

//! Seeded samples of public addresses, the same on every run, for the
//! benchmarks that compare lookups (`benches/lookup.rs` here and
//! `ipintel-mmdb`'s `benches/peer.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipintel_core::reserved::classify;
use ipintel_core::IpRange;

use crate::asn::AsnBatch;

/// SplitMix64: a fixed sequence from its seed.
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    /// The sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `n` uniformly drawn IPv4 addresses outside the special-purpose ranges.
pub fn public_v4(seq: &mut Seeded, n: usize) -> Vec<IpAddr> {
    std::iter::repeat_with(|| IpAddr::V4(Ipv4Addr::from(seq.next_u64() as u32)))
        .filter(|ip| classify(*ip).is_none())
        .take(n)
        .collect()
}

/// `n` IPv6 addresses inside the IPv6 rows of `announced` (uniform random
/// IPv6 would almost always miss the data), outside the special-purpose
/// ranges. Empty when `announced` has no IPv6 row.
pub fn public_v6(announced: &AsnBatch, seq: &mut Seeded, n: usize) -> Vec<IpAddr> {
    let ranges: Vec<(u128, u128)> = announced
        .rows
        .iter()
        .filter_map(|(range, _, _)| match *range {
            IpRange::V6 { first, last } => Some((u128::from(first), u128::from(last))),
            IpRange::V4 { .. } => None,
        })
        .collect();
    if ranges.is_empty() {
        return Vec::new();
    }
    std::iter::repeat_with(|| {
        let (first, last) = ranges[(seq.next_u64() % ranges.len() as u64) as usize];
        let wide = u128::from(seq.next_u64()) << 64 | u128::from(seq.next_u64());
        let offset = wide % (last - first).saturating_add(1).max(1);
        IpAddr::V6(Ipv6Addr::from(first + offset))
    })
    .filter(|ip| classify(*ip).is_none())
    .take(n)
    .collect()
}

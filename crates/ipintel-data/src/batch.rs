//! Parsed-but-not-yet-merged signal data, built off the main thread.

use std::collections::HashMap;

use ipintel_core::{IpRange, Signal, SnapshotBuilder, SourceId};

use crate::weights::Weight;

/// One distinct claim of a source (weight plus optional strings).
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Kind, weight and confidence.
    pub weight: Weight,
    /// Operator named by the source.
    pub provider: Option<String>,
    /// Source-specific detail.
    pub detail: Option<String>,
}

/// Signal ranges of one source with their claims interned.
#[derive(Debug, Default)]
pub struct SignalBatch {
    /// Distinct claims.
    pub claims: Vec<Claim>,
    /// Ranges, each naming a claim by index.
    pub ranges: Vec<(IpRange, u32)>,
    ids: HashMap<(u8, Option<String>, Option<String>), u32>,
}

impl SignalBatch {
    /// Index of the claim, adding it if new. Claims are keyed by kind,
    /// provider and detail: one source gives one weight per kind.
    pub fn claim(&mut self, weight: Weight, provider: Option<&str>, detail: Option<&str>) -> u32 {
        let key = (
            weight.kind as u8,
            provider.map(str::to_owned),
            detail.map(str::to_owned),
        );
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = u32::try_from(self.claims.len()).unwrap_or(u32::MAX);
        self.claims.push(Claim {
            weight,
            provider: key.1.clone(),
            detail: key.2.clone(),
        });
        self.ids.insert(key, id);
        id
    }

    /// Adds a range for claim `claim`.
    pub fn push(&mut self, range: IpRange, claim: u32) {
        self.ranges.push((range, claim));
    }

    /// Sorts and removes exact duplicates (same range, same claim).
    pub fn dedup(&mut self) {
        self.ranges
            .sort_unstable_by_key(|(r, c)| (range_key(r), *c));
        self.ranges.dedup();
    }

    /// Hands everything to the builder under `source`.
    pub fn feed(self, builder: &mut SnapshotBuilder, source: SourceId) {
        let defs: Vec<_> = self
            .claims
            .into_iter()
            .map(|c| {
                builder.signal_def(Signal {
                    kind: c.weight.kind,
                    source,
                    weight: c.weight.weight,
                    confidence: c.weight.confidence,
                    provider: c.provider,
                    detail: c.detail,
                })
            })
            .collect();
        for (range, claim) in self.ranges {
            builder.signal_at(range, defs[claim as usize]);
        }
    }
}

fn range_key(r: &IpRange) -> (u8, u128, u128) {
    match r {
        IpRange::V4 { first, last } => (4, u32::from(*first).into(), u32::from(*last).into()),
        IpRange::V6 { first, last } => (6, u128::from(*first), u128::from(*last)),
    }
}

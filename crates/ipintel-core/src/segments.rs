//! The whole snapshot as consecutive pieces of address space.
//!
//! [`Snapshot::segments_v4`] and [`Snapshot::segments_v6`] walk the geo, AS
//! and signal tables of one family side by side, together with a table of
//! the reserved ranges, and yield the pieces over which every one of them
//! is constant. Everything a lookup answers, apart from the two per-address
//! CIDRs (`geo.network`, `network.prefix`), is therefore the same for every
//! address of a piece: an export (the MaxMind DB writer) needs nothing else.
//!
//! Neighbouring pieces may carry equal intel (a table boundary that changes
//! nothing visible, such as a CIDR split of one AS); consumers that want
//! maximal ranges merge on [`RangeIntel::key`].

use crate::reserved::{reserved_table_v4, reserved_table_v6, ReservedRange};
use crate::snapshot::{AsInfo, Family, Location, Snapshot};
use crate::table::{IntervalTable, Key, NONE};
use crate::threat::ThreatInfo;
use crate::{GeoView, NetworkView};

/// What every address of a piece gets from a lookup.
#[derive(Debug, Clone, Copy)]
pub struct RangeIntel<'a> {
    /// Location; `network` is `None` (it depends on the address).
    pub geo: GeoView<'a>,
    /// AS and provider; `prefix` is `None` (it depends on the address).
    pub network: NetworkView<'a>,
    /// Score, level, reasons and flags.
    pub threat: &'a ThreatInfo,
    /// Identifies the intel within its snapshot: equal keys mean equal
    /// intel (location, AS info and signal set ids).
    pub key: [u32; 3],
}

/// One piece of address space: `first..=last` and what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a, K> {
    /// First address, as an integer (`u32` for IPv4, `u128` for IPv6).
    pub first: K,
    /// Last address.
    pub last: K,
    /// The reserved range the piece lies in; its addresses are answered
    /// with the reserved marker and no data.
    pub reserved: Option<&'static ReservedRange>,
    /// The intel (empty for reserved pieces).
    pub intel: RangeIntel<'a>,
}

/// Iterator over the pieces of one family, in address order, covering the
/// whole family's space exactly once.
#[derive(Debug)]
pub struct Segments<'a, K: 'static> {
    snapshot: &'a Snapshot,
    family: &'a Family<K>,
    reserved: (IntervalTable<K>, Vec<&'static ReservedRange>),
    at: [usize; 4],
    next: Option<K>,
}

impl Snapshot {
    /// The IPv4 space as pieces of constant intel (see the module docs).
    pub fn segments_v4(&self) -> Segments<'_, u32> {
        start(self, self.family_v4(), reserved_table_v4())
    }

    /// The IPv6 space as pieces of constant intel. IPv4-mapped addresses
    /// (`::ffff:0:0/96`) are a reserved piece here: a lookup answers them
    /// from the IPv4 pieces.
    pub fn segments_v6(&self) -> Segments<'_, u128> {
        start(self, self.family_v6(), reserved_table_v6())
    }
}

/// A walk from the start of the family's space.
fn start<'a, K: Key>(
    snapshot: &'a Snapshot,
    family: &'a Family<K>,
    reserved: (IntervalTable<K>, Vec<&'static ReservedRange>),
) -> Segments<'a, K> {
    Segments {
        snapshot,
        family,
        reserved,
        at: [0; 4],
        next: Some(K::ZERO),
    }
}

/// The next piece: up to the nearest interval end among the four tables.
fn step<'a, K: Key>(walk: &mut Segments<'a, K>) -> Option<Segment<'a, K>> {
    let first = walk.next?;
    let tables = [
        &walk.family.geo,
        &walk.family.asn,
        &walk.family.signals,
        &walk.reserved.0,
    ];
    let ends = [0, 1, 2, 3].map(|t| tables[t].bounds(walk.at[t]).1);
    let last = ends.iter().copied().min().unwrap_or(K::MAX);
    let values = [0, 1, 2, 3].map(|t| tables[t].value(walk.at[t]));
    for (t, end) in ends.iter().enumerate() {
        if *end == last {
            walk.at[t] += 1;
        }
    }
    walk.next = last.succ();
    let reserved = walk.reserved.1.get(values[3] as usize).copied();
    let key = if reserved.is_some() {
        [NONE, NONE, 0]
    } else {
        [values[0], values[1], values[2]]
    };
    Some(Segment {
        first,
        last,
        reserved,
        intel: intel(walk.snapshot.parts(), key),
    })
}

impl<'a> Iterator for Segments<'a, u32> {
    type Item = Segment<'a, u32>;

    fn next(&mut self) -> Option<Self::Item> {
        step(self)
    }
}

impl<'a> Iterator for Segments<'a, u128> {
    type Item = Segment<'a, u128>;

    fn next(&mut self) -> Option<Self::Item> {
        step(self)
    }
}

/// The intel for table values `[location, AS info, signal set]`, built the
/// way [`Snapshot::lookup`] builds a record.
fn intel<'a>(
    (locations, as_infos, threats): (&'a [Location], &'a [AsInfo], &'a [ThreatInfo]),
    key: [u32; 3],
) -> RangeIntel<'a> {
    let [loc, info, set] = key;
    let threat = &threats[set as usize];
    let geo = locations
        .get(loc as usize)
        .map_or_else(GeoView::default, |l| GeoView {
            country: l.part(0),
            country_name: l.part(1),
            region: l.part(2),
            city: l.part(3),
            latitude: l.latitude,
            longitude: l.longitude,
            timezone: l.part(4),
            network: None,
        });
    let info = as_infos.get(info as usize);
    let isp = info.map(|a| &*a.holder);
    let network = NetworkView {
        asn: info.map(|a| a.asn),
        isp,
        org: threat.org.as_deref().or(isp),
        connection_type: threat.connection_type,
        prefix: None,
    };
    RangeIntel {
        geo,
        network,
        threat,
        key,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use crate::{GeoData, IpRange, Signal, SignalKind, SnapshotBuilder, SourceMeta};

    fn r(cidr: &str) -> IpRange {
        IpRange::from_cidr(cidr).unwrap()
    }

    fn fixture() -> crate::Snapshot {
        let mut b = SnapshotBuilder::new();
        let s = b.source(SourceMeta {
            name: "t".into(),
            package: None,
            version: None,
            data_date: Some("2026-01-01".into()),
            licence: "CC0".into(),
            attribution: "t".into(),
            records: 0,
        });
        let geo = GeoData {
            country: Some("US".into()),
            city: Some("A".into()),
            latitude: Some(1.5),
            longitude: Some(-2.0),
            ..GeoData::default()
        };
        b.geo(r("8.0.0.0/7"), geo.clone());
        b.geo(r("2a00::/16"), geo);
        b.asn(r("8.8.8.0/24"), 15169, "Google LLC");
        b.asn(r("9.0.0.0/8"), 7, "Nine");
        b.signal(
            r("8.8.8.8/32"),
            Signal {
                kind: SignalKind::Tor,
                source: s,
                weight: 40,
                confidence: 0.9,
                provider: None,
                detail: None,
            },
        );
        // Data in a reserved range must not show.
        b.asn(r("10.0.0.0/8"), 64512, "Private");
        b.build()
    }

    #[test]
    fn v4_pieces_tile_the_space_and_agree_with_lookups() {
        let snap = fixture();
        let mut expected_first = 0u32;
        let mut pieces = 0;
        for seg in snap.segments_v4() {
            assert_eq!(seg.first, expected_first);
            assert!(seg.first <= seg.last);
            for probe in [seg.first, seg.last, seg.first / 2 + seg.last / 2] {
                let record = snap.lookup(IpAddr::V4(Ipv4Addr::from(probe)));
                assert_eq!(record.reserved.is_some(), seg.reserved.is_some());
                let geo = crate::GeoView {
                    network: None,
                    ..record.geo
                };
                assert_eq!(geo, seg.intel.geo);
                assert_eq!(record.network.asn, seg.intel.network.asn);
                assert_eq!(record.network.org, seg.intel.network.org);
                assert_eq!(record.threat, seg.intel.threat);
            }
            pieces += 1;
            match seg.last.checked_add(1) {
                Some(next) => expected_first = next,
                None => break,
            }
        }
        assert!(pieces > 5);
        let private = snap
            .segments_v4()
            .find(|s| s.first <= 0x0a00_0001 && 0x0a00_0001 <= s.last)
            .unwrap();
        assert_eq!(private.reserved.unwrap().name, "Private-Use");
        assert_eq!(private.intel.network.asn, None);
    }

    #[test]
    fn v6_pieces_cover_the_space() {
        let snap = fixture();
        let segs: Vec<_> = snap.segments_v6().collect();
        assert_eq!(segs[0].first, 0);
        assert_eq!(segs.last().unwrap().last, u128::MAX);
        for pair in segs.windows(2) {
            assert_eq!(pair[0].last + 1, pair[1].first);
        }
        let probe = u128::from("2a00::1".parse::<Ipv6Addr>().unwrap());
        let seg = segs
            .iter()
            .find(|s| s.first <= probe && probe <= s.last)
            .unwrap();
        assert_eq!(seg.intel.geo.country, Some("US"));
        let mapped = u128::from("::ffff:8.8.8.8".parse::<Ipv6Addr>().unwrap());
        let seg = segs
            .iter()
            .find(|s| s.first <= mapped && mapped <= s.last)
            .unwrap();
        assert!(seg.reserved.is_some());
    }
}

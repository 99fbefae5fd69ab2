//! The immutable, shareable lookup structure.

use std::net::IpAddr;
use std::sync::OnceLock;

use serde::Serialize;

use crate::addr::canonical;
use crate::builder::Aggregates;
use crate::combined::{Cell, Combined};
use crate::intel::{AsnView, CountryView, IntelIndex};
use crate::model::SourceMeta;
use crate::record::{GeoView, IpRecord, NetworkView};
use crate::reserved::classify;
use crate::table::{IntervalTable, Key, NONE};
use crate::threat::ThreatInfo;

/// Build facts about a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotMeta {
    /// When the snapshot was built (Unix seconds).
    pub built_at_unix: i64,
    /// How long merging took, in milliseconds (loading excluded).
    pub build_ms: u64,
    /// The sources, in registration order.
    pub sources: Vec<SourceMeta>,
    /// IPv4 ranges pushed (geo, AS and signal ranges together).
    pub ranges_v4: u64,
    /// IPv6 ranges pushed.
    pub ranges_v6: u64,
}

/// A location with its strings packed into one allocation (one cache
/// miss to reach all of them): country, country name, region, city and
/// time zone, in that order, `ends[i]` marking where each one ends.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    text: Box<str>,
    ends: [u16; 5],
    present: u8,
    pub(crate) latitude: Option<f64>,
    pub(crate) longitude: Option<f64>,
}

impl Location {
    /// Packs the five optional strings (each at most 64 KiB).
    pub(crate) fn new(
        parts: [Option<&str>; 5],
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Location {
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let mut ends = [0u16; 5];
        let mut present = 0u8;
        for (i, part) in parts.iter().enumerate() {
            if let Some(p) = part {
                let room = usize::from(u16::MAX) - text.len();
                text.push_str(truncate(p, room));
                present |= 1 << i;
            }
            ends[i] = u16::try_from(text.len()).unwrap_or(u16::MAX);
        }
        Location {
            text: text.into_boxed_str(),
            ends,
            present,
            latitude,
            longitude,
        }
    }

    /// A location from what [`Location::packed`] gave; `None` unless
    /// [`Location::new`] could have made it: every end on a character
    /// boundary and none before the previous one, the last at the end of
    /// the text, absent strings empty.
    pub(crate) fn from_packed(
        text: Box<str>,
        ends: [u16; 5],
        present: u8,
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Option<Location> {
        let mut start = 0;
        for (i, end) in ends.iter().map(|e| usize::from(*e)).enumerate() {
            let absent = present & (1 << i) == 0;
            if end < start || !text.is_char_boundary(end) || (absent && end != start) {
                return None;
            }
            start = end;
        }
        if start != text.len() || present >> ends.len() != 0 {
            return None;
        }
        Some(Location {
            text,
            ends,
            present,
            latitude,
            longitude,
        })
    }

    /// The packed strings, where each one ends, and which are present.
    pub(crate) fn packed(&self) -> (&str, [u16; 5], u8) {
        (&self.text, self.ends, self.present)
    }

    /// String `i` (0 country, 1 country name, 2 region, 3 city, 4 zone).
    #[inline]
    pub(crate) fn part(&self, i: usize) -> Option<&str> {
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 {
            0
        } else {
            usize::from(self.ends[i - 1])
        };
        self.text.get(start..usize::from(self.ends[i]))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An autonomous system: number and holder name.
#[derive(Debug, Clone)]
pub(crate) struct AsInfo {
    pub(crate) asn: u32,
    pub(crate) holder: Box<str>,
}

/// The three tables of one address family, and the table combining them
/// (with the reserved ranges) that lookups search. Made only by
/// [`Family::new`], so that whatever a family derives from its tables is
/// derived in one place (the builder and the snapshot decoder both call it).
#[derive(Debug)]
pub(crate) struct Family<K> {
    pub(crate) geo: IntervalTable<K>,
    pub(crate) asn: IntervalTable<K>,
    pub(crate) signals: IntervalTable<K>,
    combined: Combined<K>,
}

impl<K: Key> Family<K> {
    /// A family of its geo, AS and signal tables.
    pub(crate) fn new(
        geo: IntervalTable<K>,
        asn: IntervalTable<K>,
        signals: IntervalTable<K>,
    ) -> Self {
        let combined = Combined::new(&geo, &asn, &signals);
        Family {
            geo,
            asn,
            signals,
            combined,
        }
    }

    fn empty() -> Self {
        Family::new(
            IntervalTable::uniform(NONE),
            IntervalTable::uniform(NONE),
            IntervalTable::uniform(0),
        )
    }
}

/// Everything needed to answer lookups; immutable, `Send + Sync`.
#[derive(Debug)]
pub struct Snapshot {
    meta: SnapshotMeta,
    locations: Vec<Location>,
    as_infos: Vec<AsInfo>,
    threats: Vec<ThreatInfo>,
    v4: Family<u32>,
    v6: Family<u128>,
    /// The country and AS aggregates, computed at build time or on first
    /// use (see [`Aggregates`]).
    intel: OnceLock<IntelIndex>,
}

impl Snapshot {
    /// A snapshot without data: every public address gets an empty record.
    pub fn empty() -> Snapshot {
        let meta = SnapshotMeta {
            built_at_unix: 0,
            build_ms: 0,
            sources: Vec::new(),
            ranges_v4: 0,
            ranges_v6: 0,
        };
        let threats = vec![ThreatInfo::empty()];
        Snapshot::from_parts(
            meta,
            Vec::new(),
            Vec::new(),
            threats,
            Family::empty(),
            Family::empty(),
            Aggregates::Now,
        )
    }

    pub(crate) fn from_parts(
        meta: SnapshotMeta,
        locations: Vec<Location>,
        as_infos: Vec<AsInfo>,
        threats: Vec<ThreatInfo>,
        v4: Family<u32>,
        v6: Family<u128>,
        aggregates: Aggregates,
    ) -> Snapshot {
        let snapshot = Snapshot {
            meta,
            locations,
            as_infos,
            threats,
            v4,
            v6,
            intel: OnceLock::new(),
        };
        if aggregates == Aggregates::Now {
            snapshot.intel();
        }
        snapshot
    }

    /// The aggregates, computed on the first call if the build left them.
    fn intel(&self) -> &IntelIndex {
        self.intel.get_or_init(|| {
            IntelIndex::compute(
                &self.locations,
                &self.as_infos,
                &self.threats,
                &self.v4,
                &self.v6,
            )
        })
    }

    /// Aggregates of a country (ISO alpha-2 code, any case), or `None` if
    /// the data places no address there. A map probe (the first call
    /// computes the aggregates if the build left them for later).
    pub fn country_intel(&self, code: &str) -> Option<CountryView<'_>> {
        self.intel().country(code, &self.as_infos)
    }

    /// Aggregates of an AS, or `None` if the data has no range of it.
    /// A map probe, as for [`Snapshot::country_intel`].
    pub fn asn_intel(&self, asn: u32) -> Option<AsnView<'_>> {
        self.intel().asn(asn, &self.as_infos, &self.v4, &self.v6)
    }

    /// True if the data has a range of AS `asn`.
    pub fn has_asn(&self, asn: u32) -> bool {
        self.intel().has_asn(asn)
    }

    /// Approximate heap bytes of the country and AS aggregates.
    pub fn intel_heap_bytes(&self) -> usize {
        self.intel().heap_bytes()
    }

    /// Milliseconds spent computing the country and AS aggregates
    /// (computing them now if the build left them for later).
    pub fn intel_build_ms(&self) -> u64 {
        self.intel().build_ms()
    }

    /// The IPv4 tables (for the segment walk in `segments.rs`).
    pub(crate) fn family_v4(&self) -> &Family<u32> {
        &self.v4
    }

    /// The IPv6 tables.
    pub(crate) fn family_v6(&self) -> &Family<u128> {
        &self.v6
    }

    /// Locations, AS infos and verdicts, indexed by the table values.
    pub(crate) fn parts(&self) -> (&[Location], &[AsInfo], &[ThreatInfo]) {
        (&self.locations, &self.as_infos, &self.threats)
    }

    /// Build metadata and sources.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Number of distinct signal sets (for diagnostics).
    pub fn signal_sets(&self) -> usize {
        self.threats.len()
    }

    /// Number of table intervals per family: `(v4, v6)`.
    pub fn intervals(&self) -> (usize, usize) {
        let count = |geo: usize, asn: usize, sig: usize| geo + asn + sig;
        (
            count(self.v4.geo.len(), self.v4.asn.len(), self.v4.signals.len()),
            count(self.v6.geo.len(), self.v6.asn.len(), self.v6.signals.len()),
        )
    }

    /// Everything known about `ip`. IPv4-mapped IPv6 is answered as IPv4;
    /// reserved addresses get an empty record with `reserved` set.
    ///
    /// One search of the family's combined table (see `combined.rs`).
    pub fn lookup(&self, ip: IpAddr) -> IpRecord<'_> {
        let ip = canonical(ip);
        match ip {
            IpAddr::V4(v4) => self.lookup_in(ip, &self.v4, u32::from(v4)),
            IpAddr::V6(v6) => self.lookup_in(ip, &self.v6, u128::from(v6)),
        }
    }

    /// [`Snapshot::lookup`] the long way: the reserved ranges, then a
    /// search of each of the family's three tables. The same answer, more
    /// slowly; tests hold the two against each other.
    pub fn lookup_by_tables(&self, ip: IpAddr) -> IpRecord<'_> {
        let ip = canonical(ip);
        if let Some(range) = classify(ip) {
            return IpRecord::reserved(ip, range, &self.threats[0]);
        }
        match ip {
            IpAddr::V4(v4) => {
                let key = u32::from(v4);
                self.record(ip, &self.v4, key, cell_by_tables(&self.v4, key))
            }
            IpAddr::V6(v6) => {
                let key = u128::from(v6);
                self.record(ip, &self.v6, key, cell_by_tables(&self.v6, key))
            }
        }
    }

    #[inline]
    fn lookup_in<K: Key>(&self, ip: IpAddr, family: &Family<K>, key: K) -> IpRecord<'_> {
        let cell = family.combined.cell(key);
        if let Some(range) = family.combined.reserved_range(cell) {
            return IpRecord::reserved(ip, range, &self.threats[0]);
        }
        self.record(ip, family, key, cell)
    }

    #[inline]
    fn record<K: Key>(&self, ip: IpAddr, family: &Family<K>, key: K, cell: Cell) -> IpRecord<'_> {
        let threat = &self.threats[cell.threat()];
        IpRecord {
            ip,
            reserved: None,
            geo: self.geo_of(family, key, cell),
            network: self.network_of(family, key, cell, threat),
            threat,
            reports: None,
        }
    }

    #[inline]
    fn geo_of<K: Key>(&self, family: &Family<K>, key: K, cell: Cell) -> GeoView<'_> {
        let location = family.geo.value(cell.geo as usize);
        let Some(loc) = self.locations.get(location as usize) else {
            return GeoView::default();
        };
        let (first, last) = family.geo.bounds(cell.geo as usize);
        GeoView {
            country: loc.part(0),
            country_name: loc.part(1),
            region: loc.part(2),
            city: loc.part(3),
            latitude: loc.latitude,
            longitude: loc.longitude,
            timezone: loc.part(4),
            network: Some(key.largest_cidr(first, last)),
        }
    }

    #[inline]
    fn network_of<'a, K: Key>(
        &'a self,
        family: &Family<K>,
        key: K,
        cell: Cell,
        threat: &'a ThreatInfo,
    ) -> NetworkView<'a> {
        let info = self
            .as_infos
            .get(family.asn.value(cell.asn as usize) as usize);
        let isp = info.map(|a| &*a.holder);
        let prefix = info.map(|_| {
            let (first, last) = family.asn.bounds(cell.asn as usize);
            key.largest_cidr(first, last)
        });
        NetworkView {
            asn: info.map(|a| a.asn),
            isp,
            org: threat.org.as_deref().or(isp),
            connection_type: threat.connection_type,
            prefix,
        }
    }
}

/// The cell the combined table would give for `key`, from the three tables.
fn cell_by_tables<K: Key>(family: &Family<K>, key: K) -> Cell {
    let index = |i: usize| u32::try_from(i).unwrap_or(NONE);
    Cell::new(
        index(family.geo.find(key)),
        index(family.asn.find(key)),
        family.signals.value(family.signals.find(key)),
        NONE,
    )
}

//! Collects ranges from the loaders and merges them into a [`Snapshot`].

use std::collections::BTreeMap;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::country::country_name;
use crate::intern::StrPool;
use crate::model::{GeoData, Signal, SourceId, SourceMeta};
use crate::range::IpRange;
use crate::snapshot::{AsInfo, Family, Location, Snapshot, SnapshotMeta};
use crate::table::{IntervalTable, Key, NONE};
use crate::threat::{SignalDef, ThreatInfo};

/// Handle of an interned location, from [`SnapshotBuilder::location`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocationId(u32);

/// Handle of an interned signal, from [`SnapshotBuilder::signal_def`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalDefId(u32);

#[derive(Debug, Hash, PartialEq, Eq)]
struct LocKey {
    country: u32,
    region: u32,
    city: u32,
    lat: Option<u64>,
    lon: Option<u64>,
    tz: u32,
}

#[derive(Debug, Hash, PartialEq, Eq)]
struct DefKey {
    kind: crate::SignalKind,
    source: u16,
    weight: u8,
    confidence: u32,
    provider: Option<Box<str>>,
    detail: Option<Box<str>>,
}

/// Ranges of one family, as pushed.
#[derive(Debug)]
struct Ranges<K> {
    geo: Vec<(K, K, u32)>,
    asn: Vec<(K, K, u32)>,
    signals: Vec<(K, K, u32)>,
    pushed: u64,
}

impl<K: Key> Default for Ranges<K> {
    fn default() -> Self {
        Ranges {
            geo: Vec::new(),
            asn: Vec::new(),
            signals: Vec::new(),
            pushed: 0,
        }
    }
}

/// Pushes `(first, last, value)`, extending the previous range instead when
/// it ends right before `first` with the same value (sorted input shrinks a
/// lot this way, e.g. adjacent networks of one city).
fn push_range<K: Key>(list: &mut Vec<(K, K, u32)>, first: K, last: K, value: u32) {
    if let Some(prev) = list.last_mut() {
        if prev.2 == value && prev.1.succ() == Some(first) {
            prev.1 = last;
            return;
        }
    }
    list.push((first, last, value));
}

/// The geo ranges of one loader's batch, by family, each naming a
/// location by its index in the batch's own list of locations (see
/// [`SnapshotBuilder::geo_ranges`]). Kept in the builder's own layout, so
/// that a batch becomes a family's table input without a copy.
#[derive(Debug, Clone, Default)]
pub struct GeoRanges {
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u128, u32)>,
}

impl GeoRanges {
    /// No ranges.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a range of location `index`, extending the previous range of
    /// its family instead when it ends right before this one with the same
    /// index.
    pub fn push(&mut self, range: IpRange, index: u32) {
        match range {
            IpRange::V4 { first, last } => {
                push_range(&mut self.v4, first.into(), last.into(), index)
            }
            IpRange::V6 { first, last } => {
                push_range(&mut self.v6, first.into(), last.into(), index)
            }
        }
    }

    /// Number of ranges (after merging).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True without ranges.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ranges with their location indexes, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = (IpRange, u32)> + '_ {
        let v4 = self.v4.iter().map(|&(first, last, index)| {
            let range = IpRange::V4 {
                first: first.into(),
                last: last.into(),
            };
            (range, index)
        });
        let v6 = self.v6.iter().map(|&(first, last, index)| {
            let range = IpRange::V6 {
                first: first.into(),
                last: last.into(),
            };
            (range, index)
        });
        v4.chain(v6)
    }
}

/// Appends `ranges` to `list` with their indexes replaced by the interned
/// ids (`NONE` for an index without one); into an empty list they move
/// whole.
fn append_geo<K: Key>(
    list: &mut Vec<(K, K, u32)>,
    mut ranges: Vec<(K, K, u32)>,
    ids: &[LocationId],
) {
    for range in &mut ranges {
        range.2 = ids.get(range.2 as usize).map_or(NONE, |id| id.0);
    }
    if list.is_empty() {
        *list = ranges;
        return;
    }
    list.reserve(ranges.len());
    for (first, last, id) in ranges {
        push_range(list, first, last, id);
    }
}

/// Accumulates data for a [`Snapshot`]. Feed it, then call [`build`](Self::build).
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    sources: Vec<SourceMeta>,
    strings: StrPool,
    locations: Vec<Location>,
    location_ids: FxHashMap<LocKey, u32>,
    country_names: FxHashMap<u32, u32>,
    as_infos: Vec<AsInfo>,
    as_ids: FxHashMap<(u32, u32), u32>,
    defs: Vec<SignalDef>,
    def_ids: FxHashMap<DefKey, u32>,
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

impl SnapshotBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a source; its name and data date appear in reasons.
    pub fn source(&mut self, meta: SourceMeta) -> SourceId {
        let id = u16::try_from(self.sources.len()).unwrap_or(u16::MAX);
        self.sources.push(meta);
        SourceId(id)
    }

    /// Updates the record count of a registered source.
    pub fn set_records(&mut self, source: SourceId, records: u64) {
        if let Some(meta) = self.sources.get_mut(source.index()) {
            meta.records = records;
        }
    }

    /// Interns a location; equal locations share one id.
    pub fn location(&mut self, geo: &GeoData) -> LocationId {
        let key = LocKey {
            country: self.strings.intern_opt(geo.country.as_deref()),
            region: self.strings.intern_opt(geo.region.as_deref()),
            city: self.strings.intern_opt(geo.city.as_deref()),
            lat: geo.latitude.map(f64::to_bits),
            lon: geo.longitude.map(f64::to_bits),
            tz: self.strings.intern_opt(geo.timezone.as_deref()),
        };
        if let Some(id) = self.location_ids.get(&key) {
            return LocationId(*id);
        }
        let name = self.country_name_id(key.country);
        let parts =
            [key.country, name, key.region, key.city, key.tz].map(|id| self.strings.get(id));
        let loc = Location::new(parts, geo.latitude, geo.longitude);
        let id = u32::try_from(self.locations.len()).unwrap_or(NONE);
        self.locations.push(loc);
        self.location_ids.insert(key, id);
        LocationId(id)
    }

    fn country_name_id(&mut self, country: u32) -> u32 {
        if let Some(id) = self.country_names.get(&country) {
            return *id;
        }
        let name = self.strings.get(country).and_then(country_name);
        let id = self.strings.intern_opt(name);
        self.country_names.insert(country, id);
        id
    }

    /// Adds a geo range with an interned location. Geo ranges are expected
    /// to be disjoint; where they overlap the lower start wins.
    pub fn geo_location(&mut self, range: IpRange, location: LocationId) {
        match range {
            IpRange::V4 { first, last } => {
                self.v4.pushed += 1;
                push_range(&mut self.v4.geo, first.into(), last.into(), location.0);
            }
            IpRange::V6 { first, last } => {
                self.v6.pushed += 1;
                push_range(&mut self.v6.geo, first.into(), last.into(), location.0);
            }
        }
    }

    /// Adds a batch of geo ranges whose indexes point into `locations`
    /// (the interned ids of the batch's locations, in the batch's order).
    /// Lookups answer as if each range had been added with
    /// [`geo_location`](Self::geo_location); a family without geo ranges
    /// yet takes the batch's ranges whole, without a per-range copy.
    pub fn geo_ranges(&mut self, ranges: GeoRanges, locations: &[LocationId]) {
        self.v4.pushed += ranges.v4.len() as u64;
        self.v6.pushed += ranges.v6.len() as u64;
        append_geo(&mut self.v4.geo, ranges.v4, locations);
        append_geo(&mut self.v6.geo, ranges.v6, locations);
    }

    /// Adds a geo range.
    pub fn geo(&mut self, range: IpRange, geo: GeoData) {
        let id = self.location(&geo);
        self.geo_location(range, id);
    }

    /// Adds an AS range (disjoint, like geo ranges).
    pub fn asn(&mut self, range: IpRange, asn: u32, holder: &str) {
        let holder = self.strings.intern(holder);
        let next = u32::try_from(self.as_infos.len()).unwrap_or(NONE);
        let id = *self.as_ids.entry((asn, holder)).or_insert(next);
        if id == next {
            let holder = self.strings.get(holder).unwrap_or_default().into();
            self.as_infos.push(AsInfo { asn, holder });
        }
        match range {
            IpRange::V4 { first, last } => {
                self.v4.pushed += 1;
                push_range(&mut self.v4.asn, first.into(), last.into(), id);
            }
            IpRange::V6 { first, last } => {
                self.v6.pushed += 1;
                push_range(&mut self.v6.asn, first.into(), last.into(), id);
            }
        }
    }

    /// Interns a signal; equal signals share one id.
    pub fn signal_def(&mut self, signal: Signal) -> SignalDefId {
        let key = DefKey {
            kind: signal.kind,
            source: signal.source.0,
            weight: signal.weight.min(100),
            confidence: signal.confidence.clamp(0.0, 1.0).to_bits(),
            provider: signal.provider.map(String::into_boxed_str),
            detail: signal.detail.map(String::into_boxed_str),
        };
        if let Some(id) = self.def_ids.get(&key) {
            return SignalDefId(*id);
        }
        let id = u32::try_from(self.defs.len()).unwrap_or(NONE);
        self.defs.push(SignalDef {
            kind: key.kind,
            source: key.source,
            weight: key.weight,
            confidence: f32::from_bits(key.confidence),
            provider: key.provider.clone(),
            detail: key.detail.clone(),
        });
        self.def_ids.insert(key, id);
        SignalDefId(id)
    }

    /// Attaches an interned signal to a range. Signal ranges may overlap
    /// anything.
    pub fn signal_at(&mut self, range: IpRange, def: SignalDefId) {
        match range {
            IpRange::V4 { first, last } => {
                self.v4.pushed += 1;
                push_range(&mut self.v4.signals, first.into(), last.into(), def.0);
            }
            IpRange::V6 { first, last } => {
                self.v6.pushed += 1;
                push_range(&mut self.v6.signals, first.into(), last.into(), def.0);
            }
        }
    }

    /// Attaches a signal to a range.
    pub fn signal(&mut self, range: IpRange, signal: Signal) {
        let def = self.signal_def(signal);
        self.signal_at(range, def);
    }

    /// Makes room for `additional` more locations (a loader that knows
    /// its count saves the growth of the location tables).
    pub fn reserve_locations(&mut self, additional: usize) {
        self.locations.reserve(additional);
        self.location_ids.reserve(additional);
    }

    /// Merges everything into an immutable snapshot, the country and AS
    /// aggregates included. The result depends only on what was pushed,
    /// not on timing (apart from the build metadata).
    pub fn build(self) -> Snapshot {
        self.build_with(Aggregates::Now)
    }

    /// Merges everything into an immutable snapshot, computing the
    /// aggregates when `aggregates` says. Lookups answer the same either
    /// way.
    pub fn build_with(self, aggregates: Aggregates) -> Snapshot {
        let started = Instant::now();
        let (ranges_v4, ranges_v6) = (self.v4.pushed, self.v6.pushed);
        // The families are independent: IPv6 is merged on a second thread
        // while this one merges IPv4.
        let (v4, v6) = std::thread::scope(|scope| {
            let v6 = scope.spawn(move || merge_family(self.v6));
            let v4 = merge_family(self.v4);
            match v6.join() {
                Ok(v6) => (v4, v6),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        // Set ids as a sequential build numbers them: IPv4's sets first,
        // then IPv6's new ones in the order IPv6 met them.
        let mut sets = v4.sets;
        let renumber: Vec<u32> = v6.sets.sets.iter().map(|set| sets.intern(set)).collect();
        let v6_points = v6
            .points
            .into_iter()
            .map(|(start, set)| (start, renumber[set as usize]))
            .collect();
        let source_names: Vec<(Box<str>, Option<Box<str>>)> = self
            .sources
            .iter()
            .map(|s| {
                (
                    s.name.as_str().into(),
                    s.data_date.as_deref().map(Into::into),
                )
            })
            .collect();
        let threats: Vec<ThreatInfo> = sets
            .sets
            .iter()
            .map(|set| {
                let defs: Vec<&SignalDef> = set.iter().map(|d| &self.defs[*d as usize]).collect();
                ThreatInfo::compute(&defs, &source_names)
            })
            .collect();
        let v4 = Family::new(v4.geo, v4.asn, IntervalTable::from_sorted(v4.points));
        let v6 = Family::new(v6.geo, v6.asn, IntervalTable::from_sorted(v6_points));
        let meta = SnapshotMeta {
            built_at_unix: unix_now(),
            build_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            sources: self.sources,
            ranges_v4,
            ranges_v6,
        };
        Snapshot::from_parts(
            meta,
            self.locations,
            self.as_infos,
            threats,
            v4,
            v6,
            aggregates,
        )
    }
}

/// When a snapshot computes its country and AS aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregates {
    /// While it is built (a server answers its first country or AS query
    /// at once).
    #[default]
    Now,
    /// On the first query that needs them (a one-off lookup run that asks
    /// none does not pay for them).
    OnFirstUse,
}

/// One family's tables, with its signal pieces still numbered by the
/// family's own set interner.
struct MergedFamily<K> {
    geo: IntervalTable<K>,
    asn: IntervalTable<K>,
    points: Vec<(K, u32)>,
    sets: SetInterner,
}

fn merge_family<K: Key>(ranges: Ranges<K>) -> MergedFamily<K> {
    let mut sets = SetInterner::new();
    let points = sweep(ranges.signals, &mut sets);
    MergedFamily {
        geo: IntervalTable::from_disjoint(ranges.geo),
        asn: IntervalTable::from_disjoint(ranges.asn),
        points,
        sets,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Dense ids for sets of signal definitions; set 0 is the empty set.
struct SetInterner {
    sets: Vec<Vec<u32>>,
    ids: FxHashMap<Vec<u32>, u32>,
}

impl SetInterner {
    fn new() -> Self {
        let mut ids = FxHashMap::default();
        ids.insert(Vec::new(), 0);
        SetInterner {
            sets: vec![Vec::new()],
            ids,
        }
    }

    fn intern(&mut self, set: &[u32]) -> u32 {
        if let Some(id) = self.ids.get(set) {
            return *id;
        }
        let id = u32::try_from(self.sets.len()).unwrap_or(NONE);
        self.sets.push(set.to_vec());
        self.ids.insert(set.to_vec(), id);
        id
    }
}

/// Turns overlapping `(first, last, def)` ranges into a partition of the
/// space where each piece carries the id of the set of defs covering it.
fn sweep<K: Key>(ranges: Vec<(K, K, u32)>, sets: &mut SetInterner) -> Vec<(K, u32)> {
    // Event: (position, def, is_start). Ends are placed at last + 1.
    let mut events: Vec<(K, u32, bool)> = Vec::with_capacity(ranges.len() * 2);
    for (first, last, def) in ranges {
        events.push((first, def, true));
        if let Some(after) = last.succ() {
            events.push((after, def, false));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut active: BTreeMap<u32, u32> = BTreeMap::new();
    let mut points: Vec<(K, u32)> = vec![(K::ZERO, 0)];
    let mut current: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let pos = events[i].0;
        while i < events.len() && events[i].0 == pos {
            let (_, def, start) = events[i];
            apply(&mut active, def, start);
            i += 1;
        }
        current.clear();
        current.extend(active.keys().copied());
        let id = sets.intern(&current);
        if points.last().is_some_and(|p| p.0 == pos) {
            points.pop();
        }
        points.push((pos, id));
    }
    points
}

fn apply(active: &mut BTreeMap<u32, u32>, def: u32, start: bool) {
    if start {
        *active.entry(def).or_insert(0) += 1;
    } else if let Some(count) = active.get_mut(&def) {
        *count -= 1;
        if *count == 0 {
            active.remove(&def);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(ranges: &[(u32, u32, u32)], probe: u32) -> Vec<u32> {
        let mut set: Vec<u32> = ranges
            .iter()
            .filter(|(a, b, _)| *a <= probe && probe <= *b)
            .map(|r| r.2)
            .collect();
        set.sort_unstable();
        set.dedup();
        set
    }

    proptest! {
        #[test]
        fn sweep_matches_brute_force(
            raw in prop::collection::vec((0u32..200, 0u32..200, 0u32..6), 0..25),
            probes in prop::collection::vec(0u32..210, 1..60),
        ) {
            let ranges: Vec<(u32, u32, u32)> = raw.iter().map(|(a, b, d)| (*a.min(b), *a.max(b), *d)).collect();
            let mut sets = SetInterner::new();
            let table = IntervalTable::from_sorted(sweep(ranges.clone(), &mut sets));
            for p in probes {
                let got = &sets.sets[table.value(table.find(p)) as usize];
                prop_assert_eq!(got, &naive(&ranges, p), "probe {}", p);
            }
        }
    }

    #[test]
    fn sweep_handles_top_of_space() {
        let mut sets = SetInterner::new();
        let pts = sweep(
            vec![(u32::MAX - 1, u32::MAX, 3), (0, u32::MAX, 4)],
            &mut sets,
        );
        let table = IntervalTable::from_sorted(pts);
        assert_eq!(
            sets.sets[table.value(table.find(u32::MAX)) as usize],
            vec![3, 4]
        );
        assert_eq!(sets.sets[table.value(table.find(5)) as usize], vec![4]);
    }
}

//! Collects ranges from the loaders and merges them into a [`Snapshot`].

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

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

/// Accumulates data for a [`Snapshot`]. Feed it, then call [`build`](Self::build).
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    sources: Vec<SourceMeta>,
    strings: StrPool,
    locations: Vec<Location>,
    location_ids: HashMap<LocKey, u32>,
    country_names: HashMap<u32, u32>,
    as_infos: Vec<AsInfo>,
    as_ids: HashMap<(u32, u32), u32>,
    defs: Vec<SignalDef>,
    def_ids: HashMap<DefKey, u32>,
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

    /// Merges everything into an immutable snapshot. The result depends only
    /// on what was pushed, not on timing (apart from the build metadata).
    pub fn build(self) -> Snapshot {
        let started = Instant::now();
        let mut sets = SetInterner::new();
        let v4_signals = sweep(self.v4.signals, &mut sets);
        let v6_signals = sweep(self.v6.signals, &mut sets);
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
        let v4 = Family {
            geo: IntervalTable::from_disjoint(self.v4.geo),
            asn: IntervalTable::from_disjoint(self.v4.asn),
            signals: IntervalTable::from_sorted(v4_signals),
        };
        let v6 = Family {
            geo: IntervalTable::from_disjoint(self.v6.geo),
            asn: IntervalTable::from_disjoint(self.v6.asn),
            signals: IntervalTable::from_sorted(v6_signals),
        };
        let meta = SnapshotMeta {
            built_at_unix: unix_now(),
            build_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            sources: self.sources,
            ranges_v4: self.v4.pushed,
            ranges_v6: self.v6.pushed,
        };
        Snapshot::from_parts(meta, self.locations, self.as_infos, threats, v4, v6)
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
    ids: HashMap<Vec<u32>, u32>,
}

impl SetInterner {
    fn new() -> Self {
        let mut ids = HashMap::new();
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

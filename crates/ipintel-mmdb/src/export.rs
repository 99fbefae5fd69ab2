//! A snapshot as a MaxMind DB file.
//!
//! Each address gets the same answer as `GET /v1/ip/{ip}` (the same
//! location, network, flags and verdict), as one map:
//!
//! | key | value |
//! |---|---|
//! | `geo` | map: `country`, `country_name`, `region`, `city` (strings), `latitude`, `longitude` (doubles), `timezone` (string) |
//! | `network` | map: `asn` (uint32), `isp`, `org`, `connection_type` (strings) |
//! | `flags` | map: `vpn`, `proxy`, `tor`, `datacenter`, `botnet` (booleans, always all five) |
//! | `threat` | map: `score` (uint16), `level` (string), `reasons` (array of maps: `signal`, `source`, `provider`, `data_date` (strings), `weight` (uint16), `confidence` (float)) |
//!
//! A field the API answers with `null` is left out (the format has no
//! null), and so are `geo` and `network` when every field of theirs would
//! be. Reserved addresses, and addresses about which nothing is known (no
//! location, no network, no signal), have no entry at all. The per-address
//! CIDRs (`geo.network`, `network.prefix`) are not stored: readers answer
//! the matched network themselves. Abuse reports are not exported: they
//! change by the minute and live in the service's database.
//!
//! Equal maps are stored once: each location, network, verdict and whole
//! record is written once and pointed to from everywhere it applies.

use std::io::Write;

use ipintel_core::{ConnectionType, RangeIntel, Segment, Snapshot, ThreatInfo};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::data::{DataSection, Value};
use crate::tree::{Span, Tree};
use crate::writer::{write_database, Layout, Metadata};
use crate::MmdbError;

/// The `database_type` in the metadata.
pub const DATABASE_TYPE: &str = "ipintel-IP-Intel";

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportStats {
    /// Sizes of the file.
    pub layout: Layout,
    /// Distinct records (top-level maps) in the data section.
    pub records: usize,
    /// IPv4 ranges with data (neighbours with equal data merged).
    pub ranges_v4: usize,
    /// IPv6 ranges with data, likewise.
    pub ranges_v6: usize,
}

/// Writes the whole snapshot to `out` (see the module docs).
pub fn export_snapshot(
    snapshot: &Snapshot,
    out: &mut impl Write,
    build_epoch: u64,
) -> Result<ExportStats, MmdbError> {
    let mut records = Records::default();
    let next = |a: u32, b: u32| a.checked_add(1) == Some(b);
    let v4 = spans(snapshot.segments_v4(), &mut records, next)?;
    let next = |a: u128, b: u128| a.checked_add(1) == Some(b);
    let v6 = spans(snapshot.segments_v6(), &mut records, next)?;
    let (ranges_v4, ranges_v6) = (v4.len(), v6.len());
    let distinct = records.distinct.len();
    // The caches and the deduplication index are done with: free them
    // before the tree takes its memory.
    let data = records.data.into_bytes();
    let tree = Tree::build(v4, v6)?;
    let description = description(snapshot);
    let meta = Metadata {
        database_type: DATABASE_TYPE,
        description: &description,
        build_epoch,
    };
    let layout = write_database(out, &tree, &data, &meta)?;
    Ok(ExportStats {
        layout,
        records: distinct,
        ranges_v4,
        ranges_v6,
    })
}

/// A sentence naming the sources, as their licences ask.
fn description(snapshot: &Snapshot) -> String {
    let sources: Vec<String> = snapshot
        .meta()
        .sources
        .iter()
        .map(|s| format!("{}: {}", s.name, s.attribution))
        .collect();
    format!(
        "ipintel consolidated IP intelligence (location, network, flags, threat score). Sources: {}",
        sources.join("; ")
    )
}

/// The ranges that have data, with their records stored.
fn spans<'a, K: Copy>(
    segments: impl Iterator<Item = Segment<'a, K>>,
    records: &mut Records,
    touching: impl Fn(K, K) -> bool,
) -> Result<Vec<Span<K>>, MmdbError> {
    let mut out: Vec<Span<K>> = Vec::new();
    for seg in segments {
        if seg.reserved.is_some() {
            continue;
        }
        let Some(offset) = records.offset(&seg.intel)? else {
            continue;
        };
        // Segments come in order and tile the space: a neighbour with the
        // same record just grows the previous range.
        match out.last_mut() {
            Some(prev) if prev.offset == offset && touching(prev.last, seg.first) => {
                prev.last = seg.last;
            }
            _ => out.push(Span {
                first: seg.first,
                last: seg.last,
                offset,
            }),
        }
    }
    Ok(out)
}

/// The data section, with caches from snapshot ids to stored offsets so
/// that each location, AS and verdict is encoded once.
#[derive(Default)]
struct Records {
    data: DataSection,
    by_key: FxHashMap<[u32; 3], Option<u32>>,
    geo: FxHashMap<u32, Option<u32>>,
    verdict: FxHashMap<u32, (u32, u32)>,
    distinct: FxHashSet<u32>,
}

impl Records {
    /// The record of `intel`, or `None` when nothing is known.
    fn offset(&mut self, intel: &RangeIntel<'_>) -> Result<Option<u32>, MmdbError> {
        if let Some(known) = self.by_key.get(&intel.key) {
            return Ok(*known);
        }
        let record = self.record(intel)?;
        self.by_key.insert(intel.key, record);
        Ok(record)
    }

    fn record(&mut self, intel: &RangeIntel<'_>) -> Result<Option<u32>, MmdbError> {
        let [location, _, set] = intel.key;
        let geo = match self.geo.get(&location) {
            Some(geo) => *geo,
            None => {
                let geo = self.store(geo_map(intel))?;
                self.geo.insert(location, geo);
                geo
            }
        };
        let network = self.store(network_map(intel))?;
        let known = geo.is_some() || network.is_some() || !intel.threat.reasons.is_empty();
        if !known {
            return Ok(None);
        }
        let (flags, threat) = match self.verdict.get(&set) {
            Some(pair) => *pair,
            None => {
                let flags = self.data.insert(&flags_map(intel.threat))?;
                let threat = self.data.insert(&threat_map(intel.threat))?;
                self.verdict.insert(set, (flags, threat));
                (flags, threat)
            }
        };
        let mut map = Vec::with_capacity(4);
        if let Some(geo) = geo {
            map.push(("geo", Value::Stored(geo)));
        }
        if let Some(network) = network {
            map.push(("network", Value::Stored(network)));
        }
        map.push(("flags", Value::Stored(flags)));
        map.push(("threat", Value::Stored(threat)));
        let offset = self.data.insert(&Value::Map(map))?;
        self.distinct.insert(offset);
        Ok(Some(offset))
    }

    /// Stores a map unless it has no entries.
    fn store(&mut self, entries: Vec<(&str, Value<'_>)>) -> Result<Option<u32>, MmdbError> {
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.data.insert(&Value::Map(entries))?))
    }
}

fn geo_map<'a>(intel: &RangeIntel<'a>) -> Vec<(&'static str, Value<'a>)> {
    let g = &intel.geo;
    let mut map = Vec::with_capacity(7);
    text(&mut map, "country", g.country);
    text(&mut map, "country_name", g.country_name);
    text(&mut map, "region", g.region);
    text(&mut map, "city", g.city);
    if let Some(lat) = g.latitude {
        map.push(("latitude", Value::Double(lat)));
    }
    if let Some(lon) = g.longitude {
        map.push(("longitude", Value::Double(lon)));
    }
    text(&mut map, "timezone", g.timezone);
    map
}

fn network_map<'a>(intel: &RangeIntel<'a>) -> Vec<(&'static str, Value<'a>)> {
    let n = &intel.network;
    let mut map = Vec::with_capacity(4);
    if let Some(asn) = n.asn {
        map.push(("asn", Value::U32(asn)));
    }
    text(&mut map, "isp", n.isp);
    text(&mut map, "org", n.org);
    text(
        &mut map,
        "connection_type",
        n.connection_type.map(ConnectionType::as_str),
    );
    map
}

fn flags_map(threat: &ThreatInfo) -> Value<'static> {
    let f = threat.flags;
    Value::Map(vec![
        ("vpn", Value::Bool(f.vpn)),
        ("proxy", Value::Bool(f.proxy)),
        ("tor", Value::Bool(f.tor)),
        ("datacenter", Value::Bool(f.datacenter)),
        ("botnet", Value::Bool(f.botnet)),
    ])
}

fn threat_map(threat: &ThreatInfo) -> Value<'_> {
    let reasons = threat
        .reasons
        .iter()
        .map(|r| {
            let mut map = vec![
                ("signal", Value::Str(r.signal.as_str())),
                ("source", Value::Str(&r.source)),
            ];
            text(&mut map, "provider", r.provider.as_deref());
            text(&mut map, "data_date", r.data_date.as_deref());
            map.push(("weight", Value::U16(u16::from(r.weight))));
            map.push(("confidence", Value::Float(r.confidence)));
            Value::Map(map)
        })
        .collect();
    Value::Map(vec![
        ("score", Value::U16(u16::from(threat.score))),
        ("level", Value::Str(threat.level.as_str())),
        ("reasons", Value::Array(reasons)),
    ])
}

fn text<'a>(map: &mut Vec<(&'static str, Value<'a>)>, key: &'static str, value: Option<&'a str>) {
    if let Some(value) = value {
        map.push((key, Value::Str(value)));
    }
}

//! The intel added to each line, rendered once per distinct address.

use std::net::IpAddr;

use ipintel_core::addr::parse_ip;
use ipintel_core::{IpRecord, Snapshot};
use rustc_hash::FxHashMap;

use super::text::{csv_field, json_str};
use super::OutputFormat;

/// The intel columns of CSV output, in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "ipintel_country",
    "ipintel_region",
    "ipintel_city",
    "ipintel_latitude",
    "ipintel_longitude",
    "ipintel_timezone",
    "ipintel_asn",
    "ipintel_org",
    "ipintel_connection_type",
    "ipintel_flags",
    "ipintel_threat_score",
    "ipintel_threat_level",
    "ipintel_reserved",
];

/// Distinct addresses remembered before the cache starts over (at about
/// 300 bytes of JSON each, some 75 MiB per worker when full).
const CACHE_ENTRIES: usize = 1 << 18;

/// Renders the intel of an address (a JSON object, or the CSV intel
/// columns each preceded by a comma) and keeps the last
/// [`CACHE_ENTRIES`] distinct addresses' renderings: log lines repeat
/// their clients, and a hit costs one hash probe and a copy.
#[derive(Debug)]
pub struct IntelCache<'s> {
    snapshot: &'s Snapshot,
    format: OutputFormat,
    spans: FxHashMap<IpAddr, (u32, u32)>,
    arena: Vec<u8>,
}

impl<'s> IntelCache<'s> {
    /// An empty cache rendering for `format`.
    pub fn new(snapshot: &'s Snapshot, format: OutputFormat) -> Self {
        IntelCache {
            snapshot,
            format,
            spans: FxHashMap::with_capacity_and_hasher(CACHE_ENTRIES, Default::default()),
            arena: Vec::with_capacity(1 << 20),
        }
    }

    /// The rendered intel of `text`, or `None` if it is not an address.
    pub fn get(&mut self, text: &[u8]) -> Option<&[u8]> {
        let ip = std::str::from_utf8(text)
            .ok()
            .and_then(|t| parse_ip(t).ok())?;
        if let Some(&(start, len)) = self.spans.get(&ip) {
            return Some(&self.arena[start as usize..(start + len) as usize]);
        }
        if self.spans.len() >= CACHE_ENTRIES || self.arena.len() > u32::MAX as usize / 2 {
            self.spans.clear();
            self.arena.clear();
        }
        let start = self.arena.len();
        let record = self.snapshot.lookup(ip);
        match self.format {
            OutputFormat::Jsonl => render_json(&mut self.arena, &record),
            OutputFormat::Csv => render_csv(&mut self.arena, &record),
        }
        let span = (start as u32, (self.arena.len() - start) as u32);
        self.spans.insert(ip, span);
        Some(&self.arena[start..])
    }
}

/// The intel of one address, as written (JSON: the `ipintel` object with
/// these names; CSV: the `ipintel_*` columns).
struct Intel<'a> {
    country: Option<&'a str>,
    region: Option<&'a str>,
    city: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    timezone: Option<&'a str>,
    asn: Option<u32>,
    org: Option<&'a str>,
    connection_type: Option<&'static str>,
    flags: Vec<&'static str>,
    threat_score: u8,
    threat_level: &'static str,
    reserved: Option<&'static str>,
}

impl<'a> Intel<'a> {
    fn of(r: &IpRecord<'a>) -> Self {
        Intel {
            country: r.geo.country,
            region: r.geo.region,
            city: r.geo.city,
            latitude: r.geo.latitude,
            longitude: r.geo.longitude,
            timezone: r.geo.timezone,
            asn: r.network.asn,
            org: r.network.org,
            connection_type: r.network.connection_type.map(|c| c.as_str()),
            flags: flags(r),
            threat_score: r.threat.score,
            threat_level: r.threat.level.as_str(),
            reserved: r.reserved.map(|range| range.name),
        }
    }
}

/// The names of the raised flags, in the API's order.
fn flags(r: &IpRecord<'_>) -> Vec<&'static str> {
    let f = r.threat.flags;
    [
        ("vpn", f.vpn),
        ("proxy", f.proxy),
        ("tor", f.tor),
        ("datacenter", f.datacenter),
        ("botnet", f.botnet),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// The `ipintel` object, written field by field (this runs once per
/// distinct address, so it is on the path of every cache miss).
fn render_json(out: &mut Vec<u8>, record: &IpRecord<'_>) {
    let i = Intel::of(record);
    let text = |out: &mut Vec<u8>, key: &[u8], v: Option<&str>| {
        out.extend_from_slice(key);
        match v {
            Some(v) => json_str(out, v.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
    };
    let number = |out: &mut Vec<u8>, key: &[u8], v: Option<f64>| {
        out.extend_from_slice(key);
        // A finite f64 always serialises; null otherwise, as serde_json does.
        match v.filter(|v| v.is_finite()) {
            Some(v) => {
                let _ = serde_json::to_writer(&mut *out, &v);
            }
            None => out.extend_from_slice(b"null"),
        }
    };
    text(out, b"{\"country\":", i.country);
    text(out, b",\"region\":", i.region);
    text(out, b",\"city\":", i.city);
    number(out, b",\"latitude\":", i.latitude);
    number(out, b",\"longitude\":", i.longitude);
    text(out, b",\"timezone\":", i.timezone);
    out.extend_from_slice(b",\"asn\":");
    match i.asn {
        Some(asn) => out.extend_from_slice(itoa::Buffer::new().format(asn).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    text(out, b",\"org\":", i.org);
    text(out, b",\"connection_type\":", i.connection_type);
    out.extend_from_slice(b",\"flags\":[");
    for (n, flag) in i.flags.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        json_str(out, flag.as_bytes());
    }
    out.extend_from_slice(b"],\"threat_score\":");
    out.extend_from_slice(itoa::Buffer::new().format(i.threat_score).as_bytes());
    text(out, b",\"threat_level\":", Some(i.threat_level));
    text(out, b",\"reserved\":", i.reserved);
    out.push(b'}');
}

fn render_csv(out: &mut Vec<u8>, record: &IpRecord<'_>) {
    let intel = Intel::of(record);
    let text = |out: &mut Vec<u8>, v: Option<&str>| {
        out.push(b',');
        csv_field(out, v.unwrap_or_default().as_bytes());
    };
    let shown = |out: &mut Vec<u8>, v: Option<String>| {
        out.push(b',');
        if let Some(v) = v {
            csv_field(out, v.as_bytes());
        }
    };
    text(out, intel.country);
    text(out, intel.region);
    text(out, intel.city);
    shown(out, intel.latitude.map(|v| v.to_string()));
    shown(out, intel.longitude.map(|v| v.to_string()));
    text(out, intel.timezone);
    shown(out, intel.asn.map(|v| v.to_string()));
    text(out, intel.org);
    text(out, intel.connection_type);
    shown(out, Some(intel.flags.join(";")));
    shown(out, Some(intel.threat_score.to_string()));
    text(out, Some(intel.threat_level));
    text(out, intel.reserved);
}

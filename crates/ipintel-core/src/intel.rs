//! Per-country and per-AS aggregates, computed once per snapshot.
//!
//! Per address family the geo, AS and signal tables each partition the
//! whole space, so one merge walk over the three sorted tables cuts the
//! space into segments where location, AS and signal set are all constant.
//! Each segment adds its size to its country, its AS, the (country, AS)
//! pair and, per flag kind its signal set raises, to the flagged sums.
//! Requests then read finished figures: a map probe, no scan.

use std::collections::HashMap;
use std::time::Instant;

use crate::range::Cidr;
use crate::snapshot::{AsInfo, Family, Location};
use crate::table::{IntervalTable, Key, NONE};
use crate::threat::{ConnectionType, ThreatInfo, FLAG_MIN_CONFIDENCE};
use crate::SignalKind;

/// The flag kinds counted by the aggregates, in the order of
/// [`FamilyFigures::flagged`].
pub const FLAG_KINDS: [&str; 6] = ["tor", "vpn", "proxy", "datacenter", "blocklisted", "botnet"];

/// How many networks [`CountryView::top_v4`] and `top_v6` list.
pub const TOP_NETWORKS: usize = 10;

/// Counts of one address family for a country or an AS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyFigures {
    /// Ranges in the data: merged geo ranges for a country, merged AS
    /// ranges for an AS.
    pub networks: u64,
    /// Addresses those ranges cover.
    pub addresses: u128,
    /// Flagged addresses per kind of [`FLAG_KINDS`]; `None` when none is.
    flagged: Option<Box<[u128; 6]>>,
}

impl FamilyFigures {
    /// Addresses flagged with each kind of [`FLAG_KINDS`].
    pub fn flagged(&self) -> [u128; 6] {
        self.flagged.as_deref().copied().unwrap_or_default()
    }

    fn add(&mut self, size: u128, mask: u8) {
        self.addresses = self.addresses.saturating_add(size);
        if mask == 0 {
            return;
        }
        let sums = self.flagged.get_or_insert_with(Box::default);
        for (k, sum) in sums.iter_mut().enumerate() {
            if mask & (1 << k) != 0 {
                *sum = sum.saturating_add(size);
            }
        }
    }

    fn merge(&mut self, other: &FamilyFigures) {
        self.networks += other.networks;
        self.addresses = self.addresses.saturating_add(other.addresses);
        if let Some(theirs) = other.flagged.as_deref() {
            let mine = self.flagged.get_or_insert_with(Box::default);
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m = m.saturating_add(*t);
            }
        }
    }
}

#[derive(Debug, Default)]
struct CountryIntel {
    code: Box<str>,
    fam: [FamilyFigures; 2],
    /// `(asn, addresses)`, most addresses first, per family.
    top: [Vec<(u32, u128)>; 2],
}

#[derive(Debug, Default)]
struct AsnIntel {
    /// The AS info (holder name) with the most addresses.
    info: u32,
    country: Option<u16>,
    fam: [FamilyFigures; 2],
    prefixes: [u64; 2],
    /// `(offset, len)` into `IntelIndex::ranges[family]`.
    ranges: [(u32, u32); 2],
    connection_type: Option<ConnectionType>,
}

/// The aggregates of one snapshot.
#[derive(Debug, Default)]
pub(crate) struct IntelIndex {
    countries: Vec<CountryIntel>,
    country_ids: HashMap<Box<str>, u16>,
    asns: HashMap<u32, AsnIntel>,
    /// AS-table interval indices, grouped by ASN, per family.
    ranges: [Vec<u32>; 2],
    build_ms: u64,
}

/// A key widened to u128, for address counts.
trait Wide: Key {
    fn wide(self) -> u128;
}

impl Wide for u32 {
    fn wide(self) -> u128 {
        u128::from(self)
    }
}

impl Wide for u128 {
    fn wide(self) -> u128 {
        self
    }
}

/// Everything the sweep adds up for one family, indexed densely.
struct Sums {
    country: Vec<FamilyFigures>,
    info: Vec<FamilyFigures>,
    /// Per AS info: `(datacenter, cdn)` addresses by connection type.
    conn: Vec<(u128, u128)>,
    pairs: HashMap<(u16, u32), u128>,
}

impl Sums {
    fn new(countries: usize, infos: usize) -> Self {
        Sums {
            country: vec![FamilyFigures::default(); countries],
            info: vec![FamilyFigures::default(); infos],
            conn: vec![(0, 0); infos],
            pairs: HashMap::new(),
        }
    }
}

/// Per signal set: the flag-kind bit mask and the connection type.
fn set_traits(threat: &ThreatInfo) -> (u8, Option<ConnectionType>) {
    let f = threat.flags;
    let listed = threat.reasons.iter().any(|r| {
        matches!(r.signal, SignalKind::Blocklist | SignalKind::Attacker)
            && r.confidence >= FLAG_MIN_CONFIDENCE
    });
    let bits = [f.tor, f.vpn, f.proxy, f.datacenter, listed, f.botnet];
    let mask = bits
        .iter()
        .enumerate()
        .fold(0u8, |m, (i, on)| if *on { m | (1 << i) } else { m });
    (mask, threat.connection_type)
}

/// Inputs shared by both families' sweeps.
struct Ctx<'a> {
    loc_country: Vec<u16>,
    countries: usize,
    traits: Vec<(u8, Option<ConnectionType>)>,
    infos: &'a [AsInfo],
}

impl IntelIndex {
    /// Computes the aggregates from the finished tables.
    pub(crate) fn compute(
        locations: &[Location],
        infos: &[AsInfo],
        threats: &[ThreatInfo],
        v4: &Family<u32>,
        v6: &Family<u128>,
    ) -> IntelIndex {
        let started = Instant::now();
        let mut index = IntelIndex::default();
        let loc_country = index.country_of_locations(locations);
        let ctx = Ctx {
            loc_country,
            countries: index.countries.len(),
            traits: threats.iter().map(set_traits).collect(),
            infos,
        };
        let sums = sweep_both(&ctx, v4, v6);
        index.fill_countries(
            &ctx,
            &sums,
            [&geo_networks(&ctx, v4), &geo_networks(&ctx, v6)],
        );
        index.fill_asns(&ctx, &sums);
        index.fill_ranges(0, &v4.asn, infos);
        index.fill_ranges(1, &v6.asn, infos);
        index.fill_asn_countries(&ctx, &sums);
        index.asns.shrink_to_fit();
        index.build_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        index
    }

    /// Approximate heap bytes held by the aggregates.
    pub(crate) fn heap_bytes(&self) -> usize {
        let boxed = |f: &[FamilyFigures; 2]| {
            f.iter().filter(|x| x.flagged.is_some()).count() * std::mem::size_of::<[u128; 6]>()
        };
        let asns = self.asns.capacity() * (4 + std::mem::size_of::<AsnIntel>() + 1)
            + self.asns.values().map(|a| boxed(&a.fam)).sum::<usize>();
        let countries: usize = self
            .countries
            .iter()
            .map(|c| {
                std::mem::size_of::<CountryIntel>()
                    + boxed(&c.fam)
                    + c.top.iter().map(|t| t.capacity() * 32).sum::<usize>()
            })
            .sum();
        asns + countries + self.ranges.iter().map(|r| r.capacity() * 4).sum::<usize>()
    }

    /// Milliseconds the aggregation took.
    pub(crate) fn build_ms(&self) -> u64 {
        self.build_ms
    }

    /// Dense country index per location ([`u16::MAX`] for none).
    fn country_of_locations(&mut self, locations: &[Location]) -> Vec<u16> {
        locations
            .iter()
            .map(|loc| match loc.part(0) {
                Some(code) if !code.is_empty() => self.country_id(code),
                _ => u16::MAX,
            })
            .collect()
    }

    fn country_id(&mut self, code: &str) -> u16 {
        let code = code.to_ascii_uppercase();
        if let Some(id) = self.country_ids.get(code.as_str()) {
            return *id;
        }
        let id = u16::try_from(self.countries.len()).unwrap_or(u16::MAX);
        self.countries.push(CountryIntel {
            code: code.as_str().into(),
            ..CountryIntel::default()
        });
        self.country_ids.insert(code.into(), id);
        id
    }

    fn fill_countries(&mut self, ctx: &Ctx<'_>, sums: &[Sums; 2], networks: [&[u64]; 2]) {
        for (c, country) in self.countries.iter_mut().enumerate() {
            for f in 0..2 {
                country.fam[f] = sums[f].country[c].clone();
                country.fam[f].networks = networks[f][c];
            }
        }
        for (f, family) in sums.iter().enumerate() {
            let mut per_country: Vec<HashMap<u32, u128>> =
                vec![HashMap::new(); self.countries.len()];
            for ((c, info), size) in &family.pairs {
                let asn = ctx.infos[*info as usize].asn;
                let slot = per_country[usize::from(*c)].entry(asn).or_default();
                *slot = slot.saturating_add(*size);
            }
            for (country, map) in self.countries.iter_mut().zip(per_country) {
                country.top[f] = top_n(map.into_iter().collect(), TOP_NETWORKS);
            }
        }
    }

    fn fill_asns(&mut self, ctx: &Ctx<'_>, sums: &[Sums; 2]) {
        let mut best: HashMap<u32, (u128, u128)> = HashMap::new();
        let mut conn: HashMap<u32, [(u128, u128); 2]> = HashMap::new();
        for (i, info) in ctx.infos.iter().enumerate() {
            let entry = self.asns.entry(info.asn).or_insert_with(|| AsnIntel {
                info: as_u32(i),
                ..AsnIntel::default()
            });
            let size = (sums[0].info[i].addresses, sums[1].info[i].addresses);
            let top = best.entry(info.asn).or_insert(size);
            if size > *top {
                *top = size;
                entry.info = as_u32(i);
            }
            let c = conn.entry(info.asn).or_default();
            for f in 0..2 {
                entry.fam[f].merge(&sums[f].info[i]);
                c[f].0 = c[f].0.saturating_add(sums[f].conn[i].0);
                c[f].1 = c[f].1.saturating_add(sums[f].conn[i].1);
            }
        }
        for (asn, intel) in &mut self.asns {
            let c = conn.get(asn).copied().unwrap_or_default();
            let f = main_family(&intel.fam);
            intel.connection_type = majority_type(intel.fam[f].addresses, c[f]);
        }
    }

    /// Groups the AS intervals by ASN; counts networks and CIDR prefixes.
    fn fill_ranges<K: Wide>(&mut self, f: usize, table: &IntervalTable<K>, infos: &[AsInfo]) {
        let mut by_asn: Vec<(u32, u32)> = (0..table.len())
            .filter_map(|i| {
                let info = infos.get(table.value(i) as usize)?;
                Some((info.asn, as_u32(i)))
            })
            .collect();
        by_asn.sort_unstable();
        let mut start = 0usize;
        while start < by_asn.len() {
            let asn = by_asn[start].0;
            let end = start + by_asn[start..].partition_point(|p| p.0 == asn);
            if let Some(intel) = self.asns.get_mut(&asn) {
                intel.ranges[f] = (as_u32(start), as_u32(end - start));
                intel.fam[f].networks = (end - start) as u64;
                intel.prefixes[f] = by_asn[start..end]
                    .iter()
                    .map(|p| {
                        let (a, b) = table.bounds(p.1 as usize);
                        cidr_count(a.wide(), b.wide(), K::WIDTH)
                    })
                    .sum();
            }
            start = end;
        }
        self.ranges[f] = by_asn.into_iter().map(|p| p.1).collect();
    }

    /// The country with most of each AS's addresses (IPv4 decides when
    /// the AS has IPv4 space, else IPv6).
    fn fill_asn_countries(&mut self, ctx: &Ctx<'_>, sums: &[Sums; 2]) {
        let mut per: HashMap<(u32, u16), [u128; 2]> = HashMap::new();
        for (f, family) in sums.iter().enumerate() {
            for ((c, info), size) in &family.pairs {
                let asn = ctx.infos[*info as usize].asn;
                let slot = &mut per.entry((asn, *c)).or_default()[f];
                *slot = slot.saturating_add(*size);
            }
        }
        let mut best: HashMap<u32, ([u128; 2], u16)> = HashMap::new();
        for ((asn, c), sizes) in per {
            let entry = best.entry(asn).or_insert((sizes, c));
            if (sizes, std::cmp::Reverse(c)) > (entry.0, std::cmp::Reverse(entry.1)) {
                *entry = (sizes, c);
            }
        }
        for (asn, (_, c)) in best {
            if let Some(intel) = self.asns.get_mut(&asn) {
                intel.country = Some(c);
            }
        }
    }
}

/// Geo intervals per dense country index.
fn geo_networks<K: Wide>(ctx: &Ctx<'_>, family: &Family<K>) -> Vec<u64> {
    let mut counts = vec![0u64; ctx.countries];
    for i in 0..family.geo.len() {
        if let Some(c) = ctx.country_at(family.geo.value(i)) {
            counts[usize::from(c)] += 1;
        }
    }
    counts
}

impl Ctx<'_> {
    fn country_at(&self, loc: u32) -> Option<u16> {
        let c = *self.loc_country.get(loc as usize)?;
        (c != u16::MAX).then_some(c)
    }
}

/// Both families' sweeps, side by side on two threads.
fn sweep_both(ctx: &Ctx<'_>, v4: &Family<u32>, v6: &Family<u128>) -> [Sums; 2] {
    std::thread::scope(|scope| {
        let v6 = scope.spawn(|| sweep(ctx, v6));
        let v4 = sweep(ctx, v4);
        let v6 = v6
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        [v4, v6]
    })
}

/// The merge walk over the three tables of one family.
fn sweep<K: Wide>(ctx: &Ctx<'_>, family: &Family<K>) -> Sums {
    let mut sums = Sums::new(ctx.countries, ctx.infos.len());
    let tables = [&family.geo, &family.asn, &family.signals];
    let mut at = [0usize; 3];
    let mut pos = K::ZERO;
    let mut run: Option<((u16, u32), u128)> = None;
    loop {
        let ends = [0, 1, 2].map(|t| tables[t].bounds(at[t]).1);
        let end = ends.iter().copied().min().unwrap_or(K::MAX);
        let size = (end.wide() - pos.wide()).saturating_add(1);
        let values = [0, 1, 2].map(|t| tables[t].value(at[t]));
        add_segment(ctx, &mut sums, &mut run, values, size);
        let Some(next) = end.succ() else { break };
        for t in 0..3 {
            if ends[t] == end {
                at[t] += 1;
            }
        }
        pos = next;
    }
    flush_run(&mut sums, run.take());
    sums
}

fn add_segment(
    ctx: &Ctx<'_>,
    sums: &mut Sums,
    run: &mut Option<((u16, u32), u128)>,
    [loc, info, set]: [u32; 3],
    size: u128,
) {
    let (mask, conn) = ctx.traits.get(set as usize).copied().unwrap_or((0, None));
    let country = ctx.country_at(loc);
    if let Some(c) = country {
        sums.country[usize::from(c)].add(size, mask);
    }
    if info == NONE || info as usize >= sums.info.len() {
        return;
    }
    let i = info as usize;
    sums.info[i].add(size, mask);
    match conn {
        Some(ConnectionType::Datacenter) => sums.conn[i].0 = sums.conn[i].0.saturating_add(size),
        Some(ConnectionType::Cdn) => sums.conn[i].1 = sums.conn[i].1.saturating_add(size),
        None => {}
    }
    let Some(c) = country else { return };
    match run {
        Some((key, sum)) if *key == (c, info) => *sum = sum.saturating_add(size),
        _ => flush_run(sums, run.replace(((c, info), size))),
    }
}

/// Adds a finished run of one (country, AS info) pair to the pair sums.
fn flush_run(sums: &mut Sums, run: Option<((u16, u32), u128)>) {
    if let Some((key, size)) = run {
        let slot = sums.pairs.entry(key).or_default();
        *slot = slot.saturating_add(size);
    }
}

fn top_n(mut list: Vec<(u32, u128)>, n: usize) -> Vec<(u32, u128)> {
    list.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    list.truncate(n);
    list
}

/// 0 (IPv4) when the AS has IPv4 addresses, else 1 (IPv6).
fn main_family(fam: &[FamilyFigures; 2]) -> usize {
    usize::from(fam[0].addresses == 0)
}

/// Datacenter or CDN when more than half of `total` is either, naming the
/// larger of the two.
fn majority_type(total: u128, (dc, cdn): (u128, u128)) -> Option<ConnectionType> {
    let typed = dc.saturating_add(cdn);
    if total == 0 || typed <= total / 2 {
        return None;
    }
    Some(if cdn > dc {
        ConnectionType::Cdn
    } else {
        ConnectionType::Datacenter
    })
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The CIDR blocks exactly covering `first..=last` in a `width`-bit space,
/// in address order, as `(network, prefix length)`.
pub(crate) fn cidr_blocks(first: u128, last: u128, width: u32) -> impl Iterator<Item = (u128, u8)> {
    let mut next = Some(first);
    std::iter::from_fn(move || {
        let start = next.filter(|s| *s <= last)?;
        let (size_bits, end) = largest_block(start, last, width);
        next = end.checked_add(1);
        Some((start, (width - size_bits) as u8))
    })
}

/// The largest aligned block starting at `start` that ends by `last`:
/// `(log2 of its size, its last address)`.
fn largest_block(start: u128, last: u128, width: u32) -> (u32, u128) {
    let mut bits = start.trailing_zeros().min(width);
    loop {
        let span = if bits >= 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        if let Some(end) = start.checked_add(span) {
            if end <= last {
                return (bits, end);
            }
        }
        bits -= 1;
    }
}

fn cidr_count(first: u128, last: u128, width: u32) -> u64 {
    cidr_blocks(first, last, width).count() as u64
}

/// One network in a country's ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopNetwork<'a> {
    /// AS number.
    pub asn: u32,
    /// Holder name.
    pub name: &'a str,
    /// Addresses of this AS located in the country.
    pub addresses: u128,
}

/// Aggregates of one country, borrowed from a snapshot.
#[derive(Debug, Clone)]
pub struct CountryView<'a> {
    /// Upper-case ISO 3166-1 alpha-2 code as found in the data.
    pub code: &'a str,
    /// IPv4 figures.
    pub v4: &'a FamilyFigures,
    /// IPv6 figures.
    pub v6: &'a FamilyFigures,
    /// The ASes with the most IPv4 addresses in the country.
    pub top_v4: Vec<TopNetwork<'a>>,
    /// The ASes with the most IPv6 addresses in the country.
    pub top_v6: Vec<TopNetwork<'a>>,
}

/// Aggregates of one AS, borrowed from a snapshot.
#[derive(Debug, Clone)]
pub struct AsnView<'a> {
    /// AS number.
    pub asn: u32,
    /// Holder name (the one covering most addresses if the data has several).
    pub name: &'a str,
    /// Country holding most of its addresses (IPv4 decides if it has any).
    pub country: Option<&'a str>,
    /// IPv4 figures (`networks` = merged AS ranges).
    pub v4: &'a FamilyFigures,
    /// IPv6 figures.
    pub v6: &'a FamilyFigures,
    /// CIDR prefixes exactly covering its ranges: `[IPv4, IPv6]`.
    pub prefix_counts: [u64; 2],
    /// Datacenter or CDN when most of its space (IPv4 if any) is.
    pub connection_type: Option<ConnectionType>,
    ranges: [&'a [u32]; 2],
    tables: (&'a IntervalTable<u32>, &'a IntervalTable<u128>),
}

impl IntelIndex {
    /// The figures of country `code` (any case), if the data has it.
    pub(crate) fn country<'a>(
        &'a self,
        code: &str,
        infos: &'a [AsInfo],
    ) -> Option<CountryView<'a>> {
        let id = *self.country_ids.get(code.to_ascii_uppercase().as_str())?;
        let c = self.countries.get(usize::from(id))?;
        let top = |list: &'a [(u32, u128)]| {
            list.iter()
                .map(|(asn, addresses)| TopNetwork {
                    asn: *asn,
                    name: self.asn_name(*asn, infos).unwrap_or(""),
                    addresses: *addresses,
                })
                .collect()
        };
        Some(CountryView {
            code: &c.code,
            v4: &c.fam[0],
            v6: &c.fam[1],
            top_v4: top(&c.top[0]),
            top_v6: top(&c.top[1]),
        })
    }

    /// The figures of AS `asn`, if the data has it.
    pub(crate) fn asn<'a>(
        &'a self,
        asn: u32,
        infos: &'a [AsInfo],
        v4: &'a Family<u32>,
        v6: &'a Family<u128>,
    ) -> Option<AsnView<'a>> {
        let a = self.asns.get(&asn)?;
        let slice = |f: usize| {
            let (start, len) = a.ranges[f];
            let start = start as usize;
            self.ranges[f]
                .get(start..start + len as usize)
                .unwrap_or(&[])
        };
        Some(AsnView {
            asn,
            name: infos.get(a.info as usize).map_or("", |i| &i.holder),
            country: a
                .country
                .and_then(|c| self.countries.get(usize::from(c)))
                .map(|c| &*c.code),
            v4: &a.fam[0],
            v6: &a.fam[1],
            prefix_counts: a.prefixes,
            connection_type: a.connection_type,
            ranges: [slice(0), slice(1)],
            tables: (&v4.asn, &v6.asn),
        })
    }

    /// True if the data has AS `asn` (a map probe).
    pub(crate) fn has_asn(&self, asn: u32) -> bool {
        self.asns.contains_key(&asn)
    }

    fn asn_name<'a>(&self, asn: u32, infos: &'a [AsInfo]) -> Option<&'a str> {
        let a = self.asns.get(&asn)?;
        infos.get(a.info as usize).map(|i| &*i.holder)
    }
}

impl AsnView<'_> {
    /// Up to `limit` CIDR prefixes exactly covering the AS's ranges, IPv4
    /// first, each family in address order.
    pub fn prefixes(&self, limit: usize) -> Vec<Cidr> {
        let mut out = Vec::new();
        push_prefixes(&mut out, limit, self.ranges[0], self.tables.0);
        push_prefixes(&mut out, limit, self.ranges[1], self.tables.1);
        out
    }
}

fn push_prefixes<K: Wide>(
    out: &mut Vec<Cidr>,
    limit: usize,
    ranges: &[u32],
    table: &IntervalTable<K>,
) {
    for i in ranges {
        let (a, b) = table.bounds(*i as usize);
        for (net, len) in cidr_blocks(a.wide(), b.wide(), K::WIDTH) {
            if out.len() >= limit {
                return;
            }
            out.push(to_cidr(net, len, K::WIDTH));
        }
    }
}

fn to_cidr(net: u128, len: u8, width: u32) -> Cidr {
    let addr = match u32::try_from(net) {
        Ok(v4) if width == 32 => std::net::IpAddr::V4(v4.into()),
        _ => std::net::IpAddr::V6(net.into()),
    };
    Cidr { addr, len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        GeoData, IpRange, Signal, SignalKind, Snapshot, SnapshotBuilder, SourceId, SourceMeta,
    };
    use proptest::prelude::*;

    fn r(text: &str) -> IpRange {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        if a.contains('/') {
            return IpRange::from_cidr(a).unwrap();
        }
        IpRange::new(a.parse().unwrap(), b.parse().unwrap()).unwrap()
    }

    fn geo(country: &str, city: &str) -> GeoData {
        GeoData {
            country: Some(country.into()),
            city: Some(city.into()),
            ..GeoData::default()
        }
    }

    fn sig(source: SourceId, kind: SignalKind, confidence: f32) -> Signal {
        Signal {
            kind,
            source,
            weight: 30,
            confidence,
            provider: None,
            detail: None,
        }
    }

    fn builder() -> (SnapshotBuilder, SourceId) {
        let mut b = SnapshotBuilder::new();
        let s = b.source(SourceMeta {
            name: "t".into(),
            package: None,
            version: None,
            data_date: None,
            licence: "CC0".into(),
            attribution: "t".into(),
            records: 0,
        });
        (b, s)
    }

    /// Geo, AS and signal ranges whose boundaries cross each other.
    fn fixture() -> Snapshot {
        let (mut b, s) = builder();
        b.geo(r("1.0.0.0/24"), geo("US", "A"));
        b.geo(r("1.0.1.0/24"), geo("US", "B"));
        b.geo(r("2.0.0.0/25"), geo("DE", "C"));
        b.asn(r("1.0.0.0-1.0.1.127"), 100, "Alpha");
        b.asn(r("1.0.1.128-1.0.1.255"), 200, "Beta");
        b.asn(r("2.0.0.0/24"), 100, "Alpha");
        b.signal(r("1.0.0.100-1.0.1.149"), sig(s, SignalKind::Tor, 0.9));
        b.signal(r("2.0.0.0/24"), sig(s, SignalKind::Datacenter, 0.9));
        b.signal(r("1.0.0.0/30"), sig(s, SignalKind::Blocklist, 0.8));
        b.signal(r("1.0.1.0/24"), sig(s, SignalKind::Proxy, 0.3));
        b.asn(r("3.0.0.0/24"), 400, "CloudCo");
        b.signal(r("3.0.0.0/25"), sig(s, SignalKind::Datacenter, 0.9));
        b.signal(r("3.0.0.128/26"), sig(s, SignalKind::Cdn, 0.9));
        b.asn(r("4.0.0.0/24"), 500, "CdnCo");
        b.signal(r("4.0.0.0/24"), sig(s, SignalKind::Cdn, 0.9));
        b.geo(r("2a00::/32"), geo("JP", "D"));
        b.geo(r("4000::/2"), geo("FR", "E"));
        b.asn(r("2a00::/48"), 300, "Gamma");
        b.asn(r("2a00:0:1::/48"), 300, "Gamma");
        b.signal(r("2a00::/64"), sig(s, SignalKind::Tor, 0.9));
        b.build()
    }

    const TOR: usize = 0;
    const PROXY: usize = 2;
    const DC: usize = 3;
    const LISTED: usize = 4;

    #[test]
    fn country_figures_follow_the_ranges() {
        let snap = fixture();
        let us = snap.country_intel("us").unwrap();
        assert_eq!(us.code, "US");
        assert_eq!((us.v4.networks, us.v4.addresses), (2, 512));
        let flagged = us.v4.flagged();
        assert_eq!(flagged[TOR], 156 + 150);
        assert_eq!(flagged[LISTED], 4);
        assert_eq!(flagged[PROXY], 0, "a low-confidence claim flags nothing");
        assert_eq!(us.v6.addresses, 0);
        let top: Vec<_> = us
            .top_v4
            .iter()
            .map(|t| (t.asn, t.name, t.addresses))
            .collect();
        assert_eq!(top, vec![(100, "Alpha", 384), (200, "Beta", 128)]);

        let de = snap.country_intel("DE").unwrap();
        assert_eq!((de.v4.networks, de.v4.addresses), (1, 128));
        assert_eq!(de.v4.flagged()[DC], 128);
        assert!(snap.country_intel("GB").is_none());
    }

    #[test]
    fn ipv6_counts_exceed_u64() {
        let snap = fixture();
        let jp = snap.country_intel("JP").unwrap();
        assert_eq!((jp.v6.networks, jp.v6.addresses), (1, 1u128 << 96));
        assert_eq!(jp.v6.flagged()[TOR], 1u128 << 64);
        assert_eq!(jp.top_v6[0].addresses, 1u128 << 81);
        let fr = snap.country_intel("FR").unwrap();
        assert_eq!(fr.v6.addresses, 1u128 << 126);
        let gamma = snap.asn_intel(300).unwrap();
        assert_eq!((gamma.v6.networks, gamma.v6.addresses), (1, 1u128 << 81));
        assert_eq!(gamma.prefix_counts, [0, 1]);
        assert_eq!(gamma.prefixes(10)[0].to_string(), "2a00::/47");
        assert_eq!(gamma.country, Some("JP"));
    }

    #[test]
    fn asn_figures_follow_the_ranges() {
        let snap = fixture();
        let alpha = snap.asn_intel(100).unwrap();
        assert_eq!(alpha.name, "Alpha");
        assert_eq!((alpha.v4.networks, alpha.v4.addresses), (2, 640));
        assert_eq!(alpha.v4.flagged()[TOR], 156 + 128);
        assert_eq!(alpha.v4.flagged()[DC], 256);
        assert_eq!(alpha.country, Some("US"));
        assert_eq!(alpha.connection_type, None, "256 of 640 is not most");
        let prefixes: Vec<String> = alpha.prefixes(10).iter().map(ToString::to_string).collect();
        assert_eq!(prefixes, ["1.0.0.0/24", "1.0.1.0/25", "2.0.0.0/24"]);
        assert_eq!(alpha.prefix_counts, [3, 0]);
        assert_eq!(alpha.prefixes(2).len(), 2);

        let beta = snap.asn_intel(200).unwrap();
        assert_eq!(beta.v4.flagged()[TOR], 22);
        let cloud = snap.asn_intel(400).unwrap();
        assert_eq!(cloud.connection_type, Some(ConnectionType::Datacenter));
        assert_eq!(cloud.country, None);
        let cdn = snap.asn_intel(500).unwrap();
        assert_eq!(cdn.connection_type, Some(ConnectionType::Cdn));
        assert!(snap.asn_intel(999).is_none());
        assert!(snap.has_asn(500) && !snap.has_asn(999));
    }

    #[test]
    fn cidr_blocks_cover_exactly() {
        let blocks: Vec<_> = cidr_blocks(1, 6, 32).collect();
        assert_eq!(blocks, vec![(1, 32), (2, 31), (4, 31), (6, 32)]);
        assert_eq!(
            cidr_blocks(0, u128::from(u32::MAX), 32).collect::<Vec<_>>(),
            vec![(0, 0)]
        );
        assert_eq!(
            cidr_blocks(0, u128::MAX, 128).collect::<Vec<_>>(),
            vec![(0, 0)]
        );
        assert_eq!(cidr_count(u128::MAX, u128::MAX, 128), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn cidr_blocks_tile_the_range(a in any::<u32>(), b in any::<u32>()) {
            let (first, last) = (u128::from(a.min(b)), u128::from(a.max(b)));
            let mut next = first;
            for (net, len) in cidr_blocks(first, last, 32) {
                prop_assert_eq!(net, next);
                let size = 1u128 << (32 - u32::from(len));
                prop_assert_eq!(net % size, 0);
                next = net + size;
            }
            prop_assert_eq!(next, last + 1);
        }

        /// Aggregates equal a count of lookups, address by address.
        #[test]
        fn aggregates_match_per_address_lookups(
            geo_r in prop::collection::vec((0u32..512, 0u32..512, 0usize..3), 0..8),
            asn_r in prop::collection::vec((0u32..512, 0u32..512, 0u32..3), 0..8),
            sig_r in prop::collection::vec((0u32..512, 0u32..512, 0usize..4), 0..8),
        ) {
            let snap = random_snapshot(&geo_r, &asn_r, &sig_r);
            check_against_lookups(&snap);
        }
    }

    const BASE: u32 = 0x0500_0000;

    fn range_at(a: u32, b: u32) -> IpRange {
        let (a, b) = (BASE + a.min(b), BASE + a.max(b));
        IpRange::new(
            std::net::Ipv4Addr::from(a).into(),
            std::net::Ipv4Addr::from(b).into(),
        )
        .unwrap()
    }

    fn random_snapshot(
        geo_r: &[(u32, u32, usize)],
        asn_r: &[(u32, u32, u32)],
        sig_r: &[(u32, u32, usize)],
    ) -> Snapshot {
        let (mut b, s) = builder();
        let places = [geo("US", "x"), geo("US", "y"), geo("DE", "z")];
        for (x, y, p) in geo_r {
            b.geo(range_at(*x, *y), places[*p].clone());
        }
        for (x, y, a) in asn_r {
            b.asn(range_at(*x, *y), 10 + a, &format!("AS{a}"));
        }
        let kinds = [
            SignalKind::Tor,
            SignalKind::Vpn,
            SignalKind::Blocklist,
            SignalKind::Cdn,
        ];
        for (x, y, k) in sig_r {
            b.signal(range_at(*x, *y), sig(s, kinds[*k], 0.9));
        }
        b.build()
    }

    fn kinds_of(record: &crate::IpRecord<'_>) -> [bool; 6] {
        let f = record.threat.flags;
        let listed = record
            .threat
            .reasons
            .iter()
            .any(|r| r.signal == SignalKind::Blocklist);
        [f.tor, f.vpn, f.proxy, f.datacenter, listed, f.botnet]
    }

    fn check_against_lookups(snap: &Snapshot) {
        let mut country: HashMap<String, (u128, [u128; 6])> = HashMap::new();
        let mut asn: HashMap<u32, (u128, [u128; 6])> = HashMap::new();
        for i in 0..600u32 {
            let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(BASE + i));
            let rec = snap.lookup(ip);
            let kinds = kinds_of(&rec);
            let add = |entry: &mut (u128, [u128; 6])| {
                entry.0 += 1;
                for (k, on) in kinds.iter().enumerate() {
                    entry.1[k] += u128::from(*on);
                }
            };
            if let Some(c) = rec.geo.country {
                add(country.entry(c.to_owned()).or_default());
            }
            if let Some(a) = rec.network.asn {
                add(asn.entry(a).or_default());
            }
        }
        for code in ["US", "DE"] {
            let want = country.get(code).copied().unwrap_or_default();
            let got = snap
                .country_intel(code)
                .map(|c| (c.v4.addresses, c.v4.flagged()));
            assert_eq!(got.unwrap_or_default(), want, "{code}");
        }
        for a in 10..13 {
            let want = asn.get(&a).copied().unwrap_or_default();
            let got = snap.asn_intel(a).map(|v| (v.v4.addresses, v.v4.flagged()));
            assert_eq!(got.unwrap_or_default(), want, "AS{a}");
        }
    }
}

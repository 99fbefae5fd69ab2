//! A built [`Snapshot`] as bytes, so that a later run can read it back
//! instead of building it again from the data files.
//!
//! Layout, every integer little-endian:
//!
//! | part | encoding |
//! |---|---|
//! | magic | the 8 bytes `IPINTSNP` |
//! | format version | u32, [`FORMAT_VERSION`] |
//! | crate version | string (u32 byte length, then UTF-8) |
//! | key | u32 length, then bytes the caller chose (the loader's cache key) |
//! | parts | u64 section length; meta (build time and duration, range counts, the sources), then the locations, AS infos and verdicts, each a u32 count and the entries field by field |
//! | IPv4 tables | u64 section length; geo, AS, signals: u64 count, the starts, the values |
//! | IPv6 tables | the same |
//! | checksum | u64, XXH3 of every byte before it |
//!
//! A table keeps only its starts and values, written as bulk arrays; its
//! index, and whatever else a family derives from its tables, is rebuilt
//! on reading. The sections let the IPv6 tables be decoded on a second
//! thread while the first does the rest. A verdict's flag names are
//! stored as text and map back to the same `'static` names. Reading checks
//! the header, then the checksum, then every count, string, tag and table
//! value: any fault is an error, never a partial snapshot.

use xxhash_rust::xxh3::xxh3_64;

use crate::builder::Aggregates;
use crate::model::{SignalKind, SourceMeta};
use crate::score::ThreatLevel;
use crate::snapshot::{AsInfo, Family, Location, Snapshot, SnapshotMeta};
use crate::table::{IntervalTable, Key, NONE};
use crate::threat::{ConnectionType, FlagDetail, Flags, Reason, ThreatInfo, FLAG_NAMES};

/// Version of the layout; raised whenever the layout changes.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"IPINTSNP";
const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");
const CHECKSUM_LEN: usize = 8;

/// Why bytes could not be read back as a snapshot, or a snapshot written.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistError {
    /// The bytes do not start with the snapshot magic.
    #[error("not a snapshot file")]
    NotASnapshot,
    /// Written in another layout.
    #[error("snapshot format version {found}, this build reads version {FORMAT_VERSION}")]
    FormatVersion {
        /// The version in the file.
        found: u32,
    },
    /// Written by another version of this crate.
    #[error("snapshot written by ipintel-core {found}, this is {CRATE_VERSION}")]
    CrateVersion {
        /// The version in the file.
        found: String,
    },
    /// The bytes end before the snapshot does.
    #[error("the snapshot file ends early")]
    Truncated,
    /// The checksum does not match: the file is torn or damaged.
    #[error("the snapshot checksum does not match: the file is damaged")]
    Checksum,
    /// The checksum matches but the content is not a valid snapshot.
    #[error("the snapshot is invalid: {0}")]
    Invalid(String),
    /// A part is too large for the layout.
    #[error("the snapshot cannot be written: {0}")]
    TooLarge(&'static str),
}

type Result<T> = std::result::Result<T, PersistError>;

fn invalid<T>(what: impl Into<String>) -> Result<T> {
    Err(PersistError::Invalid(what.into()))
}

/// Encodes `snapshot` with `key`, bytes the caller reads back with
/// [`read_key`] to decide whether the snapshot is still the one it wants.
/// The country and AS aggregates are not stored: they are computed from
/// the rest.
pub fn encode(snapshot: &Snapshot, key: &[u8]) -> Result<Vec<u8>> {
    let (iv4, iv6) = snapshot.intervals();
    let mut w = Writer {
        out: Vec::with_capacity(1024 + iv4 * 8 + iv6 * 20),
    };
    w.out.extend_from_slice(MAGIC);
    w.u32(FORMAT_VERSION);
    w.str(CRATE_VERSION)?;
    w.bytes(key)?;
    w.section(|w| write_parts(w, snapshot))?;
    w.section(|w| {
        write_family(w, snapshot.family_v4());
        Ok(())
    })?;
    w.section(|w| {
        write_family(w, snapshot.family_v6());
        Ok(())
    })?;
    let checksum = xxh3_64(&w.out);
    w.u64(checksum);
    Ok(w.out)
}

/// The key stored by [`encode`], after checking the magic and the
/// versions (not the checksum: [`decode`] checks that).
pub fn read_key(bytes: &[u8]) -> Result<&[u8]> {
    let mut r = Reader { bytes };
    read_header(&mut r)?;
    r.bytes()
}

/// Decodes a snapshot written by [`encode`], computing its aggregates
/// when `aggregates` says, as a build would.
pub fn decode(bytes: &[u8], aggregates: Aggregates) -> Result<Snapshot> {
    read_header(&mut Reader { bytes })?;
    let Some(split) = bytes.len().checked_sub(CHECKSUM_LEN) else {
        return Err(PersistError::Truncated);
    };
    let (body, stored) = bytes.split_at(split);
    let checksum = Reader { bytes: stored }.u64()?;
    if xxh3_64(body) != checksum {
        return Err(PersistError::Checksum);
    }
    let [parts, v4, v6] = sections(body)?;
    // The IPv6 tables on a second thread, the rest on this one.
    let (v6, parts, v4) = std::thread::scope(|scope| {
        let v6 = scope.spawn(|| read_tables::<u128>(v6));
        let parts = read_parts(parts);
        let v4 = read_tables::<u32>(v4);
        (join(v6), parts, v4)
    });
    let v6 = v6?;
    let ((meta, locations, as_infos, threats), v4) = (parts?, v4?);
    let counts = (locations.len(), as_infos.len(), threats.len());
    check_values(&v4, counts)?;
    check_values(&v6, counts)?;
    let (v4, v6) = std::thread::scope(|scope| {
        let v6 = scope.spawn(|| {
            let [geo, asn, signals] = v6;
            Family::new(geo, asn, signals)
        });
        let [geo, asn, signals] = v4;
        (Family::new(geo, asn, signals), join(v6))
    });
    Ok(Snapshot::from_parts(
        meta, locations, as_infos, threats, v4, v6, aggregates,
    ))
}

/// The result of a scoped thread, its panic passed on.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The parts, IPv4 and IPv6 sections of `body`, after the header and key.
fn sections(body: &[u8]) -> Result<[Reader<'_>; 3]> {
    let mut r = Reader { bytes: body };
    read_header(&mut r)?;
    r.bytes()?;
    let sections = [r.section()?, r.section()?, r.section()?];
    if !r.bytes.is_empty() {
        return invalid("bytes after the last section");
    }
    Ok(sections)
}

fn read_header(r: &mut Reader<'_>) -> Result<()> {
    if r.take(MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
        return Err(PersistError::NotASnapshot);
    }
    let found = r.u32()?;
    if found != FORMAT_VERSION {
        return Err(PersistError::FormatVersion { found });
    }
    let version = r.str()?;
    if version != CRATE_VERSION {
        let found = version.to_owned();
        return Err(PersistError::CrateVersion { found });
    }
    Ok(())
}

// === Writing ===

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// What `body` writes, after its length.
    fn section(&mut self, body: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let at = self.out.len();
        self.u64(0);
        body(self)?;
        let len = (self.out.len() - at - 8) as u64;
        self.out[at..at + 8].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    fn count(&mut self, n: usize) -> Result<()> {
        let n = u32::try_from(n).map_err(|_| PersistError::TooLarge("a list over 2^32 entries"))?;
        self.u32(n);
        Ok(())
    }

    fn bytes(&mut self, b: &[u8]) -> Result<()> {
        self.count(b.len())?;
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn str(&mut self, s: &str) -> Result<()> {
        self.bytes(s.as_bytes())
    }

    fn opt_str(&mut self, s: Option<&str>) -> Result<()> {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s)?;
            }
        }
        Ok(())
    }

    fn opt_f64(&mut self, v: Option<f64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v.to_bits());
            }
        }
    }

    fn bulk<K: Wire>(&mut self, items: &[K]) {
        self.out.reserve(items.len() * K::SIZE);
        for item in items {
            item.put(&mut self.out);
        }
    }
}

fn write_parts(w: &mut Writer, snapshot: &Snapshot) -> Result<()> {
    write_meta(w, snapshot.meta())?;
    let (locations, as_infos, threats) = snapshot.parts();
    w.count(locations.len())?;
    for loc in locations {
        write_location(w, loc)?;
    }
    w.count(as_infos.len())?;
    for info in as_infos {
        w.u32(info.asn);
        w.str(&info.holder)?;
    }
    w.count(threats.len())?;
    for threat in threats {
        write_threat(w, threat)?;
    }
    Ok(())
}

fn write_meta(w: &mut Writer, meta: &SnapshotMeta) -> Result<()> {
    w.out.extend_from_slice(&meta.built_at_unix.to_le_bytes());
    w.u64(meta.build_ms);
    w.u64(meta.ranges_v4);
    w.u64(meta.ranges_v6);
    w.count(meta.sources.len())?;
    for s in &meta.sources {
        w.str(&s.name)?;
        w.opt_str(s.package.as_deref())?;
        w.opt_str(s.version.as_deref())?;
        w.opt_str(s.data_date.as_deref())?;
        w.str(&s.licence)?;
        w.str(&s.attribution)?;
        w.u64(s.records);
    }
    Ok(())
}

fn write_location(w: &mut Writer, loc: &Location) -> Result<()> {
    let (text, ends, present) = loc.packed();
    w.str(text)?;
    for end in ends {
        w.u16(end);
    }
    w.u8(present);
    w.opt_f64(loc.latitude);
    w.opt_f64(loc.longitude);
    Ok(())
}

fn write_threat(w: &mut Writer, t: &ThreatInfo) -> Result<()> {
    w.u8(t.score);
    w.u8(level_code(t.level));
    w.u8(flag_bits(t.flags));
    w.count(t.reasons.len())?;
    for r in &t.reasons {
        w.u8(kind_code(r.signal));
        w.str(&r.source)?;
        w.opt_str(r.provider.as_deref())?;
        w.opt_str(r.data_date.as_deref())?;
        w.u8(r.weight);
        w.u32(r.confidence.to_bits());
        w.opt_str(r.detail.as_deref())?;
    }
    w.count(t.flag_details.len())?;
    for (name, detail) in &t.flag_details {
        w.str(name)?;
        w.u32(detail.confidence.to_bits());
        w.count(detail.sources.len())?;
        for source in &detail.sources {
            w.str(source)?;
        }
    }
    w.opt_str(t.org.as_deref())?;
    w.u8(match t.connection_type {
        None => 0,
        Some(ConnectionType::Datacenter) => 1,
        Some(ConnectionType::Cdn) => 2,
    });
    Ok(())
}

fn write_family<K: Key + Wire>(w: &mut Writer, family: &Family<K>) {
    for table in [&family.geo, &family.asn, &family.signals] {
        w.u64(table.len() as u64);
        w.bulk(table.starts());
        w.bulk(table.values());
    }
}

// === Reading ===

/// Fewest bytes an entry of each list takes, to bound a count by the
/// bytes left before anything is allocated for it.
const LOCATION_MIN: usize = 17;
const AS_INFO_MIN: usize = 8;
const THREAT_MIN: usize = 13;
const SOURCE_MIN: usize = 23;
const REASON_MIN: usize = 13;
const FLAG_DETAIL_MIN: usize = 12;
const STRING_MIN: usize = 4;

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(PersistError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn f32(&mut self) -> Result<f32> {
        self.u32().map(f32::from_bits)
    }

    /// A section's bytes, after its u64 length.
    fn section(&mut self) -> Result<Reader<'a>> {
        let len = usize::try_from(self.u64()?).map_err(|_| PersistError::Truncated)?;
        Ok(Reader {
            bytes: self.take(len)?,
        })
    }

    /// A u32 count of entries of at least `min_size` bytes each.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() {
            return Err(PersistError::Truncated);
        }
        Ok(n)
    }

    fn list<T>(
        &mut self,
        min_size: usize,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let n = self.count(min_size)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.count(1)?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| PersistError::Invalid("a string is not UTF-8".into()))
    }

    fn tag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => invalid(format!("option tag {other}")),
        }
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>> {
        if self.tag()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_boxed(&mut self) -> Result<Option<Box<str>>> {
        Ok(self.opt_str()?.map(Into::into))
    }

    fn opt_f64(&mut self) -> Result<Option<f64>> {
        if self.tag()? {
            self.u64().map(|bits| Some(f64::from_bits(bits)))
        } else {
            Ok(None)
        }
    }

    fn bulk<K: Wire>(&mut self, count: usize) -> Result<Vec<K>> {
        let len = count.checked_mul(K::SIZE).ok_or(PersistError::Truncated)?;
        Ok(self.take(len)?.chunks_exact(K::SIZE).map(K::get).collect())
    }
}

/// The meta, locations, AS infos and verdicts of a snapshot.
type Parts = (SnapshotMeta, Vec<Location>, Vec<AsInfo>, Vec<ThreatInfo>);

/// What [`write_parts`] wrote, all of the section.
fn read_parts(mut r: Reader<'_>) -> Result<Parts> {
    let meta = read_meta(&mut r)?;
    let locations = r.list(LOCATION_MIN, read_location)?;
    let as_infos = r.list(AS_INFO_MIN, |r| {
        let asn = r.u32()?;
        let holder = r.str()?.into();
        Ok(AsInfo { asn, holder })
    })?;
    let threats = r.list(THREAT_MIN, read_threat)?;
    if !r.bytes.is_empty() {
        return invalid("bytes after the verdicts");
    }
    Ok((meta, locations, as_infos, threats))
}

fn read_meta(r: &mut Reader<'_>) -> Result<SnapshotMeta> {
    let built_at_unix = r.array().map(i64::from_le_bytes)?;
    let build_ms = r.u64()?;
    let ranges_v4 = r.u64()?;
    let ranges_v6 = r.u64()?;
    let sources = r.list(SOURCE_MIN, |r| {
        Ok(SourceMeta {
            name: r.str()?.to_owned(),
            package: r.opt_str()?.map(str::to_owned),
            version: r.opt_str()?.map(str::to_owned),
            data_date: r.opt_str()?.map(str::to_owned),
            licence: r.str()?.to_owned(),
            attribution: r.str()?.to_owned(),
            records: r.u64()?,
        })
    })?;
    Ok(SnapshotMeta {
        built_at_unix,
        build_ms,
        sources,
        ranges_v4,
        ranges_v6,
    })
}

fn read_location(r: &mut Reader<'_>) -> Result<Location> {
    let text = r.str()?.into();
    let mut ends = [0u16; 5];
    for end in &mut ends {
        *end = r.u16()?;
    }
    let present = r.u8()?;
    let latitude = r.opt_f64()?;
    let longitude = r.opt_f64()?;
    match Location::from_packed(text, ends, present, latitude, longitude) {
        Some(loc) => Ok(loc),
        None => invalid("a location's strings do not fit its text"),
    }
}

fn read_threat(r: &mut Reader<'_>) -> Result<ThreatInfo> {
    let score = r.u8()?;
    let level = level_of(r.u8()?)?;
    let flags = flags_of(r.u8()?)?;
    let reasons = r.list(REASON_MIN, read_reason)?;
    let flag_details = r.list(FLAG_DETAIL_MIN, |r| {
        let name = flag_name(r.str()?)?;
        let confidence = r.f32()?;
        let sources = r.list(STRING_MIN, |r| Ok(Box::from(r.str()?)))?;
        Ok((
            name,
            FlagDetail {
                confidence,
                sources,
            },
        ))
    })?;
    let org = r.opt_boxed()?;
    let connection_type = match r.u8()? {
        0 => None,
        1 => Some(ConnectionType::Datacenter),
        2 => Some(ConnectionType::Cdn),
        other => return invalid(format!("connection type {other}")),
    };
    Ok(ThreatInfo {
        score,
        level,
        reasons,
        flags,
        flag_details,
        org,
        connection_type,
    })
}

fn read_reason(r: &mut Reader<'_>) -> Result<Reason> {
    Ok(Reason {
        signal: kind_of(r.u8()?)?,
        source: r.str()?.into(),
        provider: r.opt_boxed()?,
        data_date: r.opt_boxed()?,
        weight: r.u8()?,
        confidence: r.f32()?,
        detail: r.opt_boxed()?,
    })
}

/// The geo, AS and signal tables [`write_family`] wrote, all of the
/// section.
fn read_tables<K: Key + Wire>(mut r: Reader<'_>) -> Result<[IntervalTable<K>; 3]> {
    let mut table = || -> Result<IntervalTable<K>> {
        let count = usize::try_from(r.u64()?).map_err(|_| PersistError::Truncated)?;
        let starts = r.bulk(count)?;
        let values = r.bulk(count)?;
        match IntervalTable::from_parts(starts, values) {
            Some(table) => Ok(table),
            None => invalid("a table's starts are not in order from zero"),
        }
    };
    let tables = [table()?, table()?, table()?];
    if !r.bytes.is_empty() {
        return invalid("bytes after a family's tables");
    }
    Ok(tables)
}

/// Checks that every value of the geo, AS and signal tables names an
/// entry (or none, where a table may have none): lookups index the
/// verdicts without a check.
fn check_values<K: Key>(
    [geo, asn, signals]: &[IntervalTable<K>; 3],
    (locations, as_infos, threats): (usize, usize, usize),
) -> Result<()> {
    let within = |values: &[u32], len: usize, none_ok: bool| {
        values
            .iter()
            .all(|v| (*v as usize) < len || (none_ok && *v == NONE))
    };
    if !within(geo.values(), locations, true) {
        return invalid("a geo range names a missing location");
    }
    if !within(asn.values(), as_infos, true) {
        return invalid("an AS range names a missing AS");
    }
    if !within(signals.values(), threats, false) {
        return invalid("a signal range names a missing verdict");
    }
    Ok(())
}

// === Codes ===

fn level_code(level: ThreatLevel) -> u8 {
    match level {
        ThreatLevel::Clean => 0,
        ThreatLevel::Low => 1,
        ThreatLevel::Medium => 2,
        ThreatLevel::High => 3,
        ThreatLevel::Critical => 4,
    }
}

fn level_of(code: u8) -> Result<ThreatLevel> {
    Ok(match code {
        0 => ThreatLevel::Clean,
        1 => ThreatLevel::Low,
        2 => ThreatLevel::Medium,
        3 => ThreatLevel::High,
        4 => ThreatLevel::Critical,
        other => return invalid(format!("threat level {other}")),
    })
}

fn kind_code(kind: SignalKind) -> u8 {
    match kind {
        SignalKind::Tor => 0,
        SignalKind::Vpn => 1,
        SignalKind::Proxy => 2,
        SignalKind::Datacenter => 3,
        SignalKind::Cdn => 4,
        SignalKind::Crawler => 5,
        SignalKind::Blocklist => 6,
        SignalKind::Attacker => 7,
        SignalKind::Botnet => 8,
        SignalKind::AbuseReports => 9,
    }
}

fn kind_of(code: u8) -> Result<SignalKind> {
    Ok(match code {
        0 => SignalKind::Tor,
        1 => SignalKind::Vpn,
        2 => SignalKind::Proxy,
        3 => SignalKind::Datacenter,
        4 => SignalKind::Cdn,
        5 => SignalKind::Crawler,
        6 => SignalKind::Blocklist,
        7 => SignalKind::Attacker,
        8 => SignalKind::Botnet,
        9 => SignalKind::AbuseReports,
        other => return invalid(format!("signal kind {other}")),
    })
}

/// The flags as bits, in the order of [`FLAG_NAMES`].
fn flag_bits(f: Flags) -> u8 {
    [f.vpn, f.proxy, f.tor, f.datacenter, f.botnet]
        .iter()
        .enumerate()
        .fold(0, |bits, (i, on)| bits | (u8::from(*on) << i))
}

fn flags_of(bits: u8) -> Result<Flags> {
    if bits >> FLAG_NAMES.len() != 0 {
        return invalid(format!("flag bits {bits:#x}"));
    }
    let on = |i: usize| bits & (1 << i) != 0;
    Ok(Flags {
        vpn: on(0),
        proxy: on(1),
        tor: on(2),
        datacenter: on(3),
        botnet: on(4),
    })
}

/// The `'static` name equal to `name`.
fn flag_name(name: &str) -> Result<&'static str> {
    match FLAG_NAMES.iter().find(|known| **known == name) {
        Some(known) => Ok(known),
        None => invalid(format!("unknown flag name {name:?}")),
    }
}

/// A table key or value as little-endian bytes.
trait Wire: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    /// From exactly `SIZE` bytes.
    fn get(bytes: &[u8]) -> Self;
}

impl Wire for u32 {
    const SIZE: usize = 4;

    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn get(bytes: &[u8]) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes);
        u32::from_le_bytes(b)
    }
}

impl Wire for u128 {
    const SIZE: usize = 16;

    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn get(bytes: &[u8]) -> u128 {
        let mut b = [0u8; 16];
        b.copy_from_slice(bytes);
        u128::from_le_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    // Test helpers outside #[test] functions may unwrap too.
    #![allow(clippy::unwrap_used)]

    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::{GeoData, IpRange, Signal, SnapshotBuilder, SourceId};

    fn cidr(text: &str) -> IpRange {
        IpRange::from_cidr(text).unwrap()
    }

    fn signal(kind: SignalKind, source: SourceId, weight: u8, confidence: f32) -> Signal {
        Signal {
            kind,
            source,
            weight,
            confidence,
            provider: None,
            detail: None,
        }
    }

    /// Every kind of part: sources with and without optional fields,
    /// locations with every string or none, AS data of both families, and
    /// signals of every kind, provider and detail, overlapping.
    fn fixture() -> Snapshot {
        let mut b = SnapshotBuilder::new();
        let geo = b.source(SourceMeta {
            name: "geo".into(),
            package: Some("geo-pkg".into()),
            version: Some("1.0.0".into()),
            data_date: Some("2026-06-05".into()),
            licence: "CC-BY-4.0".into(),
            attribution: "geo fixture".into(),
            records: 4,
        });
        let lists = b.source(SourceMeta {
            name: "lists".into(),
            package: None,
            version: None,
            data_date: None,
            licence: String::new(),
            attribution: String::new(),
            records: 0,
        });
        let _ = geo;
        let full = GeoData {
            country: Some("US".into()),
            region: Some("California".into()),
            city: Some("Mountain View".into()),
            latitude: Some(37.422),
            longitude: Some(-122.085),
            timezone: Some("America/Los_Angeles".into()),
        };
        b.geo(cidr("8.8.8.0/24"), full.clone());
        b.geo(cidr("2001:4860::/32"), full);
        let german = GeoData {
            country: Some("DE".into()),
            city: Some("Zürich-Nord".into()),
            ..GeoData::default()
        };
        b.geo(cidr("9.0.0.0/8"), german);
        b.geo(cidr("2a00::/16"), GeoData::default());
        b.asn(cidr("8.8.0.0/16"), 15169, "Google LLC");
        b.asn(cidr("2001:4860::/32"), 15169, "Google LLC");
        b.asn(cidr("9.9.9.0/24"), 19281, "");
        let kinds = [
            SignalKind::Tor,
            SignalKind::Vpn,
            SignalKind::Proxy,
            SignalKind::Datacenter,
            SignalKind::Cdn,
            SignalKind::Crawler,
            SignalKind::Blocklist,
            SignalKind::Attacker,
            SignalKind::Botnet,
            SignalKind::AbuseReports,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let n = i as u8;
            let mut s = signal(kind, lists, 5 + 9 * n, 0.3 + 0.07 * f32::from(n));
            s.provider = (i % 2 == 0).then(|| format!("provider {i}"));
            s.detail = (i % 3 == 0).then(|| format!("SBL{i}"));
            b.signal(cidr(&format!("5.{n}.0.0/16")), s.clone());
            b.signal(cidr(&format!("5.0.{n}.0/24")), s.clone());
            b.signal(cidr(&format!("2a00:{n:x}::/32")), s);
            // Every kind at once, confidently: every flag raised.
            b.signal(cidr("6.6.6.0/24"), signal(kind, lists, 50, 0.9));
        }
        b.signal(cidr("8.8.8.0/24"), signal(SignalKind::Cdn, lists, 5, 0.9));
        b.signal(
            cidr("0.0.0.0/0"),
            signal(SignalKind::Crawler, lists, 0, 0.1),
        );
        b.build()
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn v6(n: u128) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(n))
    }

    /// Every table start, the address before it, and pseudo-random ones.
    fn probes(s: &Snapshot) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let f4 = s.family_v4();
        for t in [&f4.geo, &f4.asn, &f4.signals] {
            for start in t.starts() {
                out.extend([v4(*start), v4(start.wrapping_sub(1))]);
            }
        }
        let f6 = s.family_v6();
        for t in [&f6.geo, &f6.asn, &f6.signals] {
            for start in t.starts() {
                out.extend([v6(*start), v6(start.wrapping_sub(1))]);
            }
        }
        let mut x = 0x5EED_u64;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.push(v4((x >> 32) as u32));
            let hi = 0x2a00u128 + u128::from(x >> 60);
            out.push(v6((hi << 112) | (u128::from(x) << 40)));
        }
        out
    }

    fn json(s: &Snapshot, ip: IpAddr) -> String {
        serde_json::to_string(&s.lookup(ip)).unwrap()
    }

    #[test]
    fn round_trip_answers_the_same() {
        let built = fixture();
        let bytes = encode(&built, b"key").unwrap();
        let read = decode(&bytes, Aggregates::Now).unwrap();
        for ip in probes(&built) {
            assert_eq!(json(&built, ip), json(&read, ip), "{ip}");
        }
        assert_eq!(built.parts().2, read.parts().2);
        assert_eq!(
            serde_json::to_string(built.meta()).unwrap(),
            serde_json::to_string(read.meta()).unwrap()
        );
        assert_eq!(built.intervals(), read.intervals());
        let walk = |s: &Snapshot| {
            let v4 = s.segments_v4().map(|seg| format!("{seg:?}"));
            v4.chain(s.segments_v6().map(|seg| format!("{seg:?}")))
                .collect::<Vec<_>>()
        };
        assert_eq!(walk(&built), walk(&read));
        let country = |s: &Snapshot| format!("{:?}", s.country_intel("US"));
        assert_eq!(country(&built), country(&read));
        let asn = |s: &Snapshot| format!("{:?}", s.asn_intel(15169));
        assert_eq!(asn(&built), asn(&read));
        // Nothing is lost: writing the decoded snapshot gives the same bytes.
        assert_eq!(encode(&read, b"key").unwrap(), bytes);
    }

    #[test]
    fn the_fixture_has_every_part() {
        let s = fixture();
        let (locations, as_infos, threats) = s.parts();
        assert!(locations
            .iter()
            .any(|l| (0..5).all(|i| l.part(i).is_some())));
        assert!(locations.iter().any(|l| l.latitude.is_none()));
        assert!(!as_infos.is_empty());
        assert!(threats
            .iter()
            .any(|t| t.flag_details.len() == FLAG_NAMES.len()));
        assert!(threats.iter().any(|t| t.org.is_some()));
        assert!(threats
            .iter()
            .any(|t| t.connection_type == Some(ConnectionType::Cdn)));
        assert!(threats
            .iter()
            .any(|t| t.reasons.iter().any(|r| r.detail.is_some())));
        let (iv4, iv6) = s.intervals();
        assert!(iv4 > 10 && iv6 > 10);
    }

    #[test]
    fn the_key_reads_back() {
        let bytes = encode(&fixture(), b"inputs v1").unwrap();
        assert_eq!(read_key(&bytes).unwrap(), b"inputs v1");
    }

    #[test]
    fn every_truncation_fails() {
        let bytes = encode(&fixture(), b"k").unwrap();
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len], Aggregates::OnFirstUse).is_err(),
                "{len} of {} bytes",
                bytes.len()
            );
        }
    }

    #[test]
    fn every_bit_flip_fails() {
        let bytes = encode(&fixture(), b"k").unwrap();
        let mut copy = bytes.clone();
        for i in 0..bytes.len() * 8 {
            copy[i / 8] ^= 1 << (i % 8);
            assert!(decode(&copy, Aggregates::OnFirstUse).is_err(), "bit {i}");
            copy[i / 8] ^= 1 << (i % 8);
        }
    }

    #[test]
    fn header_faults_are_named() {
        let bytes = encode(&fixture(), b"k").unwrap();
        let mut other = bytes.clone();
        other[0] = b'X';
        assert_eq!(read_key(&other), Err(PersistError::NotASnapshot));
        let mut other = bytes.clone();
        other[8] = 9;
        assert_eq!(
            decode(&other, Aggregates::Now).err(),
            Some(PersistError::FormatVersion { found: 9 })
        );
        let mut other = bytes.clone();
        other[16] = b'9';
        assert!(matches!(
            read_key(&other),
            Err(PersistError::CrateVersion { .. })
        ));
        let mut other = bytes;
        let last = other.len() - 1;
        other[last] ^= 0x80;
        assert_eq!(
            decode(&other, Aggregates::Now).err(),
            Some(PersistError::Checksum)
        );
    }

    /// Replaces the checksum, so that a deliberate change gets past it.
    fn reseal(bytes: &mut Vec<u8>) {
        bytes.truncate(bytes.len() - CHECKSUM_LEN);
        let checksum = xxh3_64(bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
    }

    #[test]
    fn an_unknown_flag_name_fails() {
        let mut bytes = encode(&fixture(), b"k").unwrap();
        let needle = b"\x06\0\0\0botnet";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at + needle.len() - 1] = b'x';
        reseal(&mut bytes);
        let err = decode(&bytes, Aggregates::Now).unwrap_err();
        assert!(err.to_string().contains("\"botnex\""), "{err}");
    }

    #[test]
    fn a_value_without_its_entry_fails() {
        let built = fixture();
        let (locations, as_infos, threats) = built.parts();
        let signals = IntervalTable::from_parts(vec![0u32], vec![threats.len() as u32]).unwrap();
        let v4 = Family::new(
            IntervalTable::uniform(NONE),
            IntervalTable::uniform(NONE),
            signals,
        );
        let v6 = Family::new(
            IntervalTable::uniform(NONE),
            IntervalTable::uniform(NONE),
            IntervalTable::uniform(0),
        );
        let broken = Snapshot::from_parts(
            built.meta().clone(),
            locations.to_vec(),
            as_infos.to_vec(),
            threats.to_vec(),
            v4,
            v6,
            Aggregates::OnFirstUse,
        );
        let bytes = encode(&broken, b"k").unwrap();
        let err = decode(&bytes, Aggregates::OnFirstUse).unwrap_err();
        assert!(matches!(err, PersistError::Invalid(_)), "{err}");
    }

    #[test]
    fn locations_must_be_packed_as_new_packs_them() {
        let loc = Location::new(
            [Some("DE"), Some("Germany"), None, Some("Zürich"), None],
            None,
            None,
        );
        let (text, ends, present) = loc.packed();
        let again = Location::from_packed(text.into(), ends, present, None, None).unwrap();
        assert_eq!(format!("{loc:?}"), format!("{again:?}"));
        let bad = |text: &str, ends, present| {
            Location::from_packed(text.into(), ends, present, None, None).is_none()
        };
        // An absent string with text, an end inside a character, ends out
        // of order, text past the last end, a sixth string.
        assert!(bad("DEx", [2, 3, 3, 3, 3], 0b00001));
        assert!(bad("Zü", [2, 2, 2, 2, 3], 0b11111));
        assert!(bad("DE", [2, 1, 2, 2, 2], 0b11111));
        assert!(bad("DEx", [2, 2, 2, 2, 2], 0b00001));
        assert!(bad("DE", [2, 2, 2, 2, 2], 0b100001));
        assert!(!bad("DE", [2, 2, 2, 2, 2], 0b00001));
    }

    #[test]
    fn tables_must_start_at_zero_in_order() {
        assert!(IntervalTable::<u32>::from_parts(vec![0, 5, 9], vec![1, 2, 3]).is_some());
        assert!(IntervalTable::<u32>::from_parts(vec![1, 5], vec![1, 2]).is_none());
        assert!(IntervalTable::<u32>::from_parts(vec![0, 5, 5], vec![1, 2, 3]).is_none());
        assert!(IntervalTable::<u32>::from_parts(vec![0, 5], vec![1]).is_none());
        assert!(IntervalTable::<u128>::from_parts(vec![], vec![]).is_none());
    }
}

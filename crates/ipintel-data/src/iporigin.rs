//! iporigin `ranges.bin`: a compact table of provider ranges.
//!
//! Layout (little-endian unless noted): header `magic[8] = "IPORIGIN"`,
//! `version: u16 = 1`, `built_at: u64` (Unix seconds), `n_labels: u16`,
//! `n_v4: u32`, `n_v6: u32`; then `n_labels` × (`len: u16`, UTF-8
//! `"provider\tkind"`); then `n_v4` × (`start: u32`, `end: u32`,
//! `label: u16`); then `n_v6` × (`start: [u8; 16]` big-endian,
//! `end: [u8; 16]` big-endian, `label: u16`). Ranges of each family are
//! sorted and do not overlap.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipintel_core::IpRange;

use crate::batch::SignalBatch;
use crate::error::DataError;
use crate::weights::{self, SourceWeights, Weight};

const MAGIC: &[u8; 8] = b"IPORIGIN";
const HEADER_LEN: usize = 8 + 2 + 8 + 2 + 4 + 4;

/// A little-endian reader over a byte slice with bounds checks.
struct Cursor<'a> {
    file: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DataError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(DataError::parse(
                self.file,
                0,
                format!("truncated at byte {} reading {what}", self.pos),
            ));
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DataError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16, DataError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DataError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

fn kind_weight(kind: &str) -> Option<Weight> {
    match kind {
        "hosting" => Some(weights::IPORIGIN_HOSTING),
        "cdn" => Some(weights::IPORIGIN_CDN),
        "vpn" => Some(weights::IPORIGIN_VPN),
        "tor" => Some(weights::IPORIGIN_TOR),
        "bot" => Some(weights::IPORIGIN_BOT),
        _ => None,
    }
}

/// Header facts of a ranges.bin file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// When the table was built (Unix seconds).
    pub built_at: u64,
    /// Number of labels.
    pub labels: u16,
    /// Number of IPv4 ranges.
    pub v4: u32,
    /// Number of IPv6 ranges.
    pub v6: u32,
}

fn header(c: &mut Cursor<'_>) -> Result<Header, DataError> {
    if c.bytes.len() < HEADER_LEN {
        return Err(DataError::parse(c.file, 0, "shorter than the header"));
    }
    if c.take(8, "magic")? != MAGIC {
        return Err(DataError::parse(c.file, 0, "bad magic (expected IPORIGIN)"));
    }
    let version = c.u16("version")?;
    if version != 1 {
        return Err(DataError::parse(
            c.file,
            0,
            format!("unsupported version {version}"),
        ));
    }
    let built_at = u64::from_le_bytes(c.array("built_at")?);
    Ok(Header {
        built_at,
        labels: c.u16("n_labels")?,
        v4: c.u32("n_v4")?,
        v6: c.u32("n_v6")?,
    })
}

/// Parses the table into signal claims (one per label).
pub fn parse_iporigin(file: &Path, bytes: &[u8]) -> Result<(Header, SignalBatch), DataError> {
    parse_iporigin_with(file, bytes, &SourceWeights::default())
}

/// Parses the table with the weights a sources file gives it.
pub fn parse_iporigin_with(
    file: &Path,
    bytes: &[u8],
    w: &SourceWeights,
) -> Result<(Header, SignalBatch), DataError> {
    let mut c = Cursor {
        file,
        bytes,
        pos: 0,
    };
    let head = header(&mut c)?;
    let mut batch = SignalBatch::default();
    let mut claims = Vec::with_capacity(usize::from(head.labels));
    for i in 0..head.labels {
        let len = usize::from(c.u16("label length")?);
        let text = std::str::from_utf8(c.take(len, "label")?)
            .map_err(|_| DataError::parse(file, u64::from(i) + 1, "label is not UTF-8"))?;
        let (provider, kind) = text.split_once('\t').ok_or_else(|| {
            DataError::parse(
                file,
                u64::from(i) + 1,
                format!("label {text:?} lacks a tab"),
            )
        })?;
        let weight = kind_weight(kind).ok_or_else(|| {
            DataError::parse(file, u64::from(i) + 1, format!("unknown kind {kind:?}"))
        })?;
        claims.push(batch.claim(w.pick(weight), Some(provider), None));
    }
    read_v4(&mut c, head.v4, &claims, &mut batch)?;
    read_v6(&mut c, head.v6, &claims, &mut batch)?;
    if c.pos != bytes.len() {
        return Err(DataError::parse(
            file,
            0,
            format!("{} trailing bytes", bytes.len() - c.pos),
        ));
    }
    Ok((head, batch))
}

fn label(c: &Cursor<'_>, claims: &[u32], label: u16, record: u64) -> Result<u32, DataError> {
    claims
        .get(usize::from(label))
        .copied()
        .ok_or_else(|| DataError::parse(c.file, record, format!("label {label} out of range")))
}

fn read_v4(
    c: &mut Cursor<'_>,
    n: u32,
    claims: &[u32],
    batch: &mut SignalBatch,
) -> Result<(), DataError> {
    let mut prev_end: Option<u32> = None;
    for i in 0..n {
        let record = u64::from(i) + 1;
        let (start, end, l) = (c.u32("v4 start")?, c.u32("v4 end")?, c.u16("v4 label")?);
        if start > end || prev_end.is_some_and(|p| start <= p) {
            return Err(DataError::parse(
                c.file,
                record,
                "IPv4 ranges not sorted and disjoint",
            ));
        }
        prev_end = Some(end);
        let claim = label(c, claims, l, record)?;
        batch.push(
            IpRange::V4 {
                first: Ipv4Addr::from(start),
                last: Ipv4Addr::from(end),
            },
            claim,
        );
    }
    Ok(())
}

fn read_v6(
    c: &mut Cursor<'_>,
    n: u32,
    claims: &[u32],
    batch: &mut SignalBatch,
) -> Result<(), DataError> {
    let mut prev_end: Option<u128> = None;
    for i in 0..n {
        let record = u64::from(i) + 1;
        let start = u128::from_be_bytes(c.array("v6 start")?);
        let end = u128::from_be_bytes(c.array("v6 end")?);
        let l = c.u16("v6 label")?;
        if start > end || prev_end.is_some_and(|p| start <= p) {
            return Err(DataError::parse(
                c.file,
                record,
                "IPv6 ranges not sorted and disjoint",
            ));
        }
        prev_end = Some(end);
        let claim = label(c, claims, l, record)?;
        batch.push(
            IpRange::V6 {
                first: Ipv6Addr::from(start),
                last: Ipv6Addr::from(end),
            },
            claim,
        );
    }
    Ok(())
}

/// Serializes a table in the ranges.bin layout (for tests and fixtures).
pub fn encode(labels: &[&str], v4: &[(u32, u32, u16)], v6: &[(u128, u128, u16)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(labels.len() as u16).to_le_bytes());
    out.extend_from_slice(&(v4.len() as u32).to_le_bytes());
    out.extend_from_slice(&(v6.len() as u32).to_le_bytes());
    for l in labels {
        out.extend_from_slice(&(l.len() as u16).to_le_bytes());
        out.extend_from_slice(l.as_bytes());
    }
    for (s, e, l) in v4 {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        out.extend_from_slice(&l.to_le_bytes());
    }
    for (s, e, l) in v6 {
        out.extend_from_slice(&s.to_be_bytes());
        out.extend_from_slice(&e.to_be_bytes());
        out.extend_from_slice(&l.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipintel_core::SignalKind;

    fn file() -> &'static Path {
        Path::new("ranges.bin")
    }

    #[test]
    fn round_trip() {
        let bytes = encode(
            &["Tor\ttor", "Mullvad\tvpn"],
            &[(0x01020300, 0x010203ff, 1), (0x05060708, 0x05060708, 0)],
            &[(1 << 120, (1 << 120) + 5, 0)],
        );
        let (head, batch) = parse_iporigin(file(), &bytes).unwrap();
        assert_eq!((head.labels, head.v4, head.v6), (2, 2, 1));
        let (r, c) = &batch.ranges[0];
        assert_eq!(r.to_string(), "1.2.3.0-1.2.3.255");
        assert_eq!(batch.claims[*c as usize].weight.kind, SignalKind::Vpn);
        assert_eq!(
            batch.claims[*c as usize].provider.as_deref(),
            Some("Mullvad")
        );
        assert_eq!(batch.ranges[2].0.to_string(), "100::-100::5");
    }

    fn error_of(bytes: &[u8]) -> (u64, String) {
        match parse_iporigin(file(), bytes) {
            Err(DataError::Parse { line, message, .. }) => (line, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_broken_tables() {
        let good = encode(&["Tor\ttor"], &[(1, 2, 0), (5, 9, 0)], &[]);
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(error_of(&bad_magic).1.contains("magic"));
        let mut bad_version = good.clone();
        bad_version[8] = 2;
        assert!(error_of(&bad_version).1.contains("version"));
        assert!(error_of(&good[..good.len() - 1]).1.contains("truncated"));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(error_of(&trailing).1.contains("trailing"));
        let unsorted = encode(&["Tor\ttor"], &[(5, 9, 0), (1, 2, 0)], &[]);
        assert_eq!(error_of(&unsorted).0, 2);
        let bad_label = encode(&["Tor\ttor"], &[(1, 2, 3)], &[]);
        assert!(error_of(&bad_label).1.contains("label 3"));
        let bad_kind = encode(&["Tor\tghost"], &[], &[]);
        assert!(error_of(&bad_kind).1.contains("unknown kind"));
    }
}

//! AS data in the GeoLite2-ASN layout: one map per range with
//! `autonomous_system_number` (uint32) and `autonomous_system_organization`
//! (string), so that readers written for MaxMind's ASN database (nginx's
//! geoip2 module, `geoip2::Asn` of the `maxminddb` crate) can look up the AS
//! rows that ipintel loads. Peer benchmarks use it; the caller parses the
//! source files.

use std::io::Write;

use ipintel_core::IpRange;
use rustc_hash::FxHashMap;

use crate::{write_database, DataSection, Layout, Metadata, MmdbError, Span, Tree, Value};

/// `database_type` in the metadata, as MaxMind names the layout.
pub const DATABASE_TYPE: &str = "GeoLite2-ASN";

/// Writes `(range, asn, organization)` rows as a GeoLite2-ASN-layout
/// database. Rows may come in any order; where two overlap, the one that
/// starts first keeps the overlap (a search tree holds one answer per
/// address).
pub fn write_asn_database<'a>(
    rows: impl IntoIterator<Item = (IpRange, u32, &'a str)>,
    out: &mut impl Write,
    build_epoch: u64,
) -> Result<Layout, MmdbError> {
    let mut data = DataSection::new();
    let mut offsets: FxHashMap<(u32, &str), u32> = FxHashMap::default();
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (range, asn, org) in rows {
        let offset = match offsets.get(&(asn, org)) {
            Some(offset) => *offset,
            None => {
                let offset = data.insert(&record(asn, org))?;
                offsets.insert((asn, org), offset);
                offset
            }
        };
        match range {
            IpRange::V4 { first, last } => v4.push(Span {
                first: u32::from(first),
                last: u32::from(last),
                offset,
            }),
            IpRange::V6 { first, last } => v6.push(Span {
                first: u128::from(first),
                last: u128::from(last),
                offset,
            }),
        }
    }
    drop(offsets);

    let tree = Tree::build(
        without_overlaps(v4, |k| k.checked_add(1)),
        without_overlaps(v6, |k| k.checked_add(1)),
    )?;
    let meta = Metadata {
        database_type: DATABASE_TYPE,
        description: "AS data of ipintel's packaged sources (RouteViews and DB-IP, CC BY 4.0) \
                      in the GeoLite2-ASN layout",
        build_epoch,
    };
    write_database(out, &tree, &data.into_bytes(), &meta)
}

fn record<'a>(asn: u32, org: &'a str) -> Value<'a> {
    Value::Map(vec![
        ("autonomous_system_number", Value::U32(asn)),
        ("autonomous_system_organization", Value::Str(org)),
    ])
}

/// Sorts the spans and trims each overlap off the later span; a span left
/// empty by that is dropped.
fn without_overlaps<K: Copy + Ord>(
    mut spans: Vec<Span<K>>,
    next: impl Fn(K) -> Option<K>,
) -> Vec<Span<K>> {
    spans.sort_by_key(|s| s.first);
    let mut out: Vec<Span<K>> = Vec::with_capacity(spans.len());
    for mut span in spans {
        if let Some(prev) = out.last() {
            if span.first <= prev.last {
                match next(prev.last) {
                    Some(after) if after <= span.last => span.first = after,
                    _ => continue,
                }
            }
        }
        out.push(span);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u32, last: u32, offset: u32) -> Span<u32> {
        Span {
            first,
            last,
            offset,
        }
    }

    fn bounds(spans: &[Span<u32>]) -> Vec<(u32, u32, u32)> {
        spans.iter().map(|s| (s.first, s.last, s.offset)).collect()
    }

    #[test]
    fn overlaps_go_to_the_span_that_starts_first() {
        let spans = vec![span(20, 40, 2), span(0, 29, 1), span(50, 60, 3)];
        let out = without_overlaps(spans, |k| k.checked_add(1));
        assert_eq!(bounds(&out), [(0, 29, 1), (30, 40, 2), (50, 60, 3)]);
    }

    #[test]
    fn a_span_inside_an_earlier_one_is_dropped() {
        let spans = vec![span(0, 100, 1), span(10, 20, 2), span(101, 101, 3)];
        let out = without_overlaps(spans, |k| k.checked_add(1));
        assert_eq!(bounds(&out), [(0, 100, 1), (101, 101, 3)]);
    }

    #[test]
    fn a_span_after_the_last_address_is_dropped() {
        let spans = vec![span(0, u32::MAX, 1), span(u32::MAX, u32::MAX, 2)];
        let out = without_overlaps(spans, |k| k.checked_add(1));
        assert_eq!(bounds(&out), [(0, u32::MAX, 1)]);
    }
}

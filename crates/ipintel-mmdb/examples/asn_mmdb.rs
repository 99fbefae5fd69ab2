//! Writes the packaged AS data (the RouteViews/DB-IP CSV files that ipintel
//! loads) as a MaxMind DB in the GeoLite2-ASN layout
//! (`autonomous_system_number`, `autonomous_system_organization`), so that
//! peers that read only MaxMind DBs (nginx's geoip2 module, the `maxminddb`
//! crate) can look up the same AS data in benchmarks.
//!
//! `cargo run --release -p ipintel-mmdb --example asn_mmdb -- DATA_DIR OUT`

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ipintel_core::IpRange;
use ipintel_mmdb::{write_database, DataSection, Metadata, Span, Tree, Value};

/// Sorted spans, each overlap given to the span that starts first (the
/// CSV has a few nested rows; a search tree holds one answer per address).
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: asn_mmdb DATA_DIR OUT".into());
    };
    let dir = PathBuf::from(dir);
    let mut data = DataSection::new();
    let mut offsets = std::collections::HashMap::new();
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for name in ["asn/asn-ipv4.csv", "asn/asn-ipv6.csv"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)?;
        let batch = ipintel_data::asn::parse_asn_csv(Path::new(&path), &text)?;
        for (range, asn, holder) in batch.rows {
            let org = &batch.holders[holder as usize];
            let key = (asn, org.clone());
            let offset = match offsets.get(&key) {
                Some(offset) => *offset,
                None => {
                    let record = Value::Map(vec![
                        ("autonomous_system_number", Value::U32(asn)),
                        ("autonomous_system_organization", Value::Str(org)),
                    ]);
                    let offset = data.insert(&record)?;
                    offsets.insert(key, offset);
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
    }
    let tree = Tree::build(
        without_overlaps(v4, |k| k.checked_add(1)),
        without_overlaps(v6, |k| k.checked_add(1)),
    )?;
    let meta = Metadata {
        database_type: "GeoLite2-ASN",
        description: "AS data of ipintel's packaged sources (RouteViews and DB-IP, CC BY 4.0), \
                      in the GeoLite2-ASN layout, for benchmarks",
        build_epoch: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    };
    let mut file = BufWriter::new(std::fs::File::create(&out)?);
    let layout = write_database(&mut file, &tree, &data.into_bytes(), &meta)?;
    eprintln!(
        "wrote {} ({} bytes, {} nodes)",
        PathBuf::from(&out).display(),
        layout.total_bytes,
        layout.node_count
    );
    Ok(())
}

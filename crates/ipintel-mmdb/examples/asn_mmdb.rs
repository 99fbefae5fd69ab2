//! Writes the packaged AS data (the RouteViews/DB-IP CSV files that ipintel
//! loads) as a MaxMind DB in the GeoLite2-ASN layout
//! (`autonomous_system_number`, `autonomous_system_organization`), so that
//! peers that read only MaxMind DBs (nginx's geoip2 module, the `maxminddb`
//! crate) can look up the same AS data in benchmarks.
//!
//! `cargo run --release -p ipintel-mmdb --example asn_mmdb -- DATA_DIR OUT`

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use ipintel_data::asn::{parse_asn_csv, AsnBatch};
use ipintel_mmdb::asn::write_asn_database;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: asn_mmdb DATA_DIR OUT".into());
    };
    let dir = PathBuf::from(dir);
    let mut batches: Vec<AsnBatch> = Vec::new();
    for name in ["asn/asn-ipv4.csv", "asn/asn-ipv6.csv"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)?;
        batches.push(parse_asn_csv(&path, &text)?);
    }
    let rows = batches.iter().flat_map(|batch| {
        let holders = &batch.holders;
        batch
            .rows
            .iter()
            .map(|&(range, asn, holder)| (range, asn, holders[holder as usize].as_str()))
    });

    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut file = BufWriter::new(std::fs::File::create(&out)?);
    let layout = write_asn_database(rows, &mut file, epoch)?;
    file.flush()?;
    eprintln!(
        "wrote {} ({} bytes, {} nodes)",
        PathBuf::from(&out).display(),
        layout.total_bytes,
        layout.node_count
    );
    Ok(())
}

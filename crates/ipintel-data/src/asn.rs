//! AS ranges: CSV rows `first,last,asn,org` without a header.

use std::path::Path;

use ipintel_core::addr::parse_ip_exact;
use ipintel_core::IpRange;

use crate::error::DataError;

/// Parsed AS rows; holder names are interned per file.
#[derive(Debug, Default)]
pub struct AsnBatch {
    /// Distinct holder names.
    pub holders: Vec<String>,
    /// `(range, asn, holder index)`.
    pub rows: Vec<(IpRange, u32, u32)>,
}

/// Parses the CSV text. Errors name the file and the 1-based line.
pub fn parse_asn_csv(file: &Path, text: &str) -> Result<AsnBatch, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut batch = AsnBatch::default();
    let mut holder_ids = std::collections::HashMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(DataError::parse(file, line, format!("CSV: {e}"))),
        }
        let line = record.position().map_or(line, |p| p.line());
        let (range, asn, holder) = row(&record).map_err(|m| DataError::parse(file, line, m))?;
        let next = u32::try_from(batch.holders.len()).unwrap_or(u32::MAX);
        let id = *holder_ids.entry(holder.to_owned()).or_insert(next);
        if id == next {
            batch.holders.push(holder.to_owned());
        }
        batch.rows.push((range, asn, id));
    }
    Ok(batch)
}

#[derive(serde::Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

/// Reads a MaxMind GeoLite2/GeoIP2 ASN database
/// (`autonomous_system_number`, `autonomous_system_organization`).
/// Networks without a number are skipped.
pub fn parse_geolite2_asn_mmdb(file: &Path, bytes: Vec<u8>) -> Result<AsnBatch, DataError> {
    let err = |e: &dyn std::fmt::Display| DataError::parse(file, 0, format!("mmdb: {e}"));
    let reader = maxminddb::Reader::from_source(bytes).map_err(|e| err(&e))?;
    let mut batch = AsnBatch::default();
    let mut holder_ids = std::collections::HashMap::new();
    let networks = reader
        .networks(maxminddb::WithinOptions::default())
        .map_err(|e| err(&e))?;
    for item in networks {
        let item = item.map_err(|e| err(&e))?;
        let net = item.network().map_err(|e| err(&e))?;
        let Some(record) = item.decode::<AsnRecord<'_>>().map_err(|e| err(&e))? else {
            continue;
        };
        let Some(asn) = record.autonomous_system_number else {
            continue;
        };
        let range = IpRange::from_prefix(net.ip(), net.prefix()).map_err(|e| err(&e))?;
        let holder = record.autonomous_system_organization.unwrap_or_default();
        let next = u32::try_from(batch.holders.len()).unwrap_or(u32::MAX);
        let id = *holder_ids.entry(holder.to_owned()).or_insert(next);
        if id == next {
            batch.holders.push(holder.to_owned());
        }
        batch.rows.push((range, asn, id));
    }
    Ok(batch)
}

fn row(record: &csv::StringRecord) -> Result<(IpRange, u32, &str), String> {
    if record.len() != 4 {
        return Err(format!(
            "expected 4 fields (first,last,asn,org), got {}",
            record.len()
        ));
    }
    let first =
        parse_ip_exact(&record[0]).map_err(|e| format!("first address {:?}: {e}", &record[0]))?;
    let last =
        parse_ip_exact(&record[1]).map_err(|e| format!("last address {:?}: {e}", &record[1]))?;
    let range = IpRange::new(first, last).map_err(|e| format!("range: {e}"))?;
    let asn: u32 = record[2]
        .parse()
        .map_err(|_| format!("ASN {:?} is not a number", &record[2]))?;
    Ok((range, asn, &record[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("asn.csv")
    }

    #[test]
    fn quoted_org_with_commas() {
        let text = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\
                    1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd\n\
                    2001::,2001::ffff,6939,\"Say \"\"hi\"\", Inc\"\n";
        let b = parse_asn_csv(file(), text).unwrap();
        assert_eq!(b.rows.len(), 3);
        assert_eq!(b.holders[b.rows[0].2 as usize], "Cloudflare, Inc.");
        assert_eq!(b.holders[b.rows[2].2 as usize], "Say \"hi\", Inc");
        assert_eq!(b.rows[1].1, 38803);
    }

    fn error_line(text: &str) -> u64 {
        match parse_asn_csv(file(), text) {
            Err(DataError::Parse { line, file, .. }) => {
                assert_eq!(file, Path::new("asn.csv"));
                line
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn broken_rows_name_their_line() {
        let good = "1.0.0.0,1.0.0.255,1,A\n";
        assert_eq!(error_line(&format!("{good}1.0.1.0,1.0.1.255,x,B\n")), 2);
        assert_eq!(
            error_line(&format!("{good}{good}1.0.1.0,1.0.0.255,1,B\n")),
            3
        );
        assert_eq!(error_line(&format!("{good}1.0.1.0,::1,1,B\n")), 2);
        assert_eq!(error_line(&format!("{good}1.0.1.0,1.0.1.9,1\n")), 2);
        assert_eq!(error_line("1.0.1.0,1.0.01.9,1,B\n"), 1);
    }
}

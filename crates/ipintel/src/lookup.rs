//! `ipintel lookup ADDR...`: records from the local data, no server.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::bail;
use ipintel_core::addr::parse_ip;
use ipintel_core::IpRecord;

use crate::config::LookupConfig;
use crate::serve::load_data;

/// How `ipintel lookup` prints a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LookupFormat {
    /// The API's JSON record, one per line.
    Json,
    /// Aligned text, one block per address.
    Table,
}

/// Prints one record per valid address; invalid addresses are reported on
/// standard error and make the command fail.
pub async fn run(
    config: LookupConfig,
    addrs: &[String],
    format: LookupFormat,
) -> anyhow::Result<()> {
    let (_, snapshot) = load_data(&config.data, false).await?;
    let mut out = std::io::stdout().lock();
    let mut invalid = 0usize;
    let mut printed = 0usize;
    for text in addrs {
        let ip = match parse_ip(text) {
            Ok(ip) => ip,
            Err(err) => {
                eprintln!("ipintel: '{text}' is not a valid IP address: {err}");
                invalid += 1;
                continue;
            }
        };
        let record = snapshot.lookup(ip);
        match format {
            LookupFormat::Json => writeln!(out, "{}", serde_json::to_string(&record)?)?,
            LookupFormat::Table => {
                if printed > 0 {
                    writeln!(out)?;
                }
                out.write_all(table(&record).as_bytes())?;
            }
        }
        printed += 1;
    }
    if invalid > 0 {
        bail!("{invalid} of {} addresses were invalid", addrs.len());
    }
    Ok(())
}

/// The record as aligned `label  value` lines; `-` stands for null.
pub fn table(record: &IpRecord<'_>) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let text = |v: Option<&str>| v.unwrap_or("-").to_owned();
    let shown = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let reserved = record
        .reserved
        .map(|r| format!("{} ({}, {})", r.name, r.network, r.rfc));
    rows.push(("reserved", shown(reserved)));
    let g = &record.geo;
    let country = g.country.map(|c| match g.country_name {
        Some(name) => format!("{c} ({name})"),
        None => c.to_owned(),
    });
    rows.push(("country", shown(country)));
    rows.push(("region", text(g.region)));
    rows.push(("city", text(g.city)));
    let coordinates = g
        .latitude
        .zip(g.longitude)
        .map(|(a, b)| format!("{a}, {b}"));
    rows.push(("coordinates", shown(coordinates)));
    rows.push(("time zone", text(g.timezone)));
    rows.push(("geo network", shown(g.network.map(|n| n.to_string()))));
    let n = &record.network;
    rows.push(("ASN", shown(n.asn.map(|a| format!("AS{a}")))));
    rows.push(("ISP", text(n.isp)));
    rows.push(("organisation", text(n.org)));
    rows.push(("connection", text(n.connection_type.map(|c| c.as_str()))));
    rows.push(("AS prefix", shown(n.prefix.map(|p| p.to_string()))));
    let t = record.threat;
    rows.push(("threat", format!("{} ({}/100)", t.level.as_str(), t.score)));
    rows.push(("flags", flags(record)));

    let mut out = String::new();
    let _ = writeln!(out, "{} (IPv{})", record.ip, record.ip_version());
    for (label, value) in &rows {
        let _ = writeln!(out, "  {label:<14}{value}");
    }
    reasons(&mut out, record);
    out
}

fn flags(record: &IpRecord<'_>) -> String {
    let details = &record.threat.flag_details;
    if details.is_empty() {
        return "none".to_owned();
    }
    let parts: Vec<String> = details
        .iter()
        .map(|(name, d)| {
            let sources: Vec<&str> = d.sources.iter().map(|s| &**s).collect();
            format!(
                "{name} ({}, confidence {})",
                sources.join(", "),
                d.confidence
            )
        })
        .collect();
    parts.join("; ")
}

/// The reasons as a sub-table with aligned columns.
fn reasons(out: &mut String, record: &IpRecord<'_>) {
    let reasons = &record.threat.reasons;
    if reasons.is_empty() {
        let _ = writeln!(out, "  {:<14}none", "reasons");
        return;
    }
    let cells: Vec<[String; 6]> = reasons
        .iter()
        .map(|r| {
            [
                r.signal.as_str().to_owned(),
                r.source.to_string(),
                r.provider.as_deref().unwrap_or("-").to_owned(),
                r.data_date.as_deref().unwrap_or("-").to_owned(),
                format!("weight {}", r.weight),
                format!("confidence {}", r.confidence),
            ]
        })
        .collect();
    let mut widths = [0usize; 6];
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for (i, row) in cells.iter().enumerate() {
        let label = if i == 0 { "reasons" } else { "" };
        let mut line = format!("  {label:<14}");
        for (j, (cell, width)) in row.iter().zip(widths).enumerate() {
            if j + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

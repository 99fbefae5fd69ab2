//! Feed formats that upstream projects publish directly: the Tor Project's
//! `exit-addresses` list and JSON prefix documents.

use std::path::Path;

use ipintel_core::addr::parse_ip_exact;
use ipintel_core::IpRange;
use serde_json::Value;

use crate::batch::SignalBatch;
use crate::error::DataError;
use crate::weights::Weight;

/// What a Tor `exit-addresses` document held besides its addresses.
#[derive(Debug, Default)]
pub struct TorExits {
    /// One range per distinct exit address.
    pub batch: SignalBatch,
    /// Relays (`ExitNode` records) read.
    pub relays: u64,
    /// The newest `Published` date (`YYYY-MM-DD`), the data date of the list.
    pub newest_published: Option<String>,
}

/// True when `s` has the shape of `pattern`, where `9` stands for a digit.
fn shaped(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(b, p)| {
            if p == b'9' {
                b.is_ascii_digit()
            } else {
                b == p
            }
        })
}

/// Checks `YYYY-MM-DD HH:MM:SS` and returns the date part.
fn timestamp(text: &str) -> Option<&str> {
    let (date, time) = text.trim().split_once(' ')?;
    (shaped(date, "9999-99-99") && shaped(time, "99:99:99")).then_some(date)
}

/// Parses the Tor Project's `exit-addresses`: records of `ExitNode <fp>`,
/// `Published <ts>`, `LastStatus <ts>` and one or more
/// `ExitAddress <ip> <ts>` lines. Every line must be one of these; an
/// `ExitNode` without an address (a cut-off file) is an error.
pub fn parse_tor_exit_addresses(
    file: &Path,
    text: &str,
    weight: Weight,
) -> Result<TorExits, DataError> {
    let mut out = TorExits::default();
    let claim = out.batch.claim(weight, Some("Tor Project"), None);
    let mut open_record: Option<(u64, bool)> = None;
    let mut last_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        last_line = line;
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('@') || entry.starts_with('#') {
            continue;
        }
        let (key, rest) = entry.split_once(' ').unwrap_or((entry, ""));
        let bad = |m: String| DataError::parse(file, line, m);
        match key {
            "ExitNode" => {
                close_record(file, open_record)?;
                let fp = rest.trim();
                if fp.len() != 40 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("fingerprint {fp:?} is not 40 hex digits")));
                }
                out.relays += 1;
                open_record = Some((line, false));
            }
            "Published" | "LastStatus" => {
                let date =
                    timestamp(rest).ok_or_else(|| bad(format!("{key}: bad time {rest:?}")))?;
                if key == "Published" && out.newest_published.as_deref() < Some(date) {
                    out.newest_published = Some(date.to_owned());
                }
            }
            "ExitAddress" => {
                let (addr, when) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
                timestamp(when).ok_or_else(|| bad(format!("ExitAddress: bad time {when:?}")))?;
                let ip = parse_ip_exact(addr).map_err(|e| bad(format!("{addr:?}: {e}")))?;
                let Some((_, seen)) = open_record.as_mut() else {
                    return Err(bad("ExitAddress before any ExitNode".into()));
                };
                *seen = true;
                out.batch.push(IpRange::single(ip), claim);
            }
            other => return Err(bad(format!("unknown keyword {other:?}"))),
        }
    }
    close_record(file, open_record).map_err(|e| match e {
        DataError::Parse { file, message, .. } => DataError::Parse {
            file,
            line: last_line,
            message,
        },
        other => other,
    })?;
    out.batch.dedup();
    Ok(out)
}

fn close_record(file: &Path, record: Option<(u64, bool)>) -> Result<(), DataError> {
    match record {
        Some((line, false)) => Err(DataError::parse(
            file,
            line,
            "ExitNode record without an ExitAddress (file cut off?)",
        )),
        _ => Ok(()),
    }
}

/// Keys under which prefix documents name a network.
const PREFIX_KEYS: [&str; 6] = [
    "ip_prefix",
    "ipv6_prefix",
    "ipv4Prefix",
    "ipv6Prefix",
    "prefix",
    "cidr",
];

/// A generic JSON prefix document: `{"prefixes": [...]}` where each item
/// is a CIDR string or an object holding one under `ip_prefix`,
/// `ipv6_prefix`, `ipv4Prefix`, `ipv6Prefix`, `prefix` or `cidr` (the
/// layouts cloud providers publish). `ipv6_prefixes` is read too.
pub fn parse_json_prefixes(
    file: &Path,
    text: &str,
    weight: Weight,
) -> Result<SignalBatch, DataError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| DataError::parse(file, e.line() as u64, format!("invalid JSON: {e}")))?;
    let mut batch = SignalBatch::default();
    let claim = batch.claim(weight, None, None);
    let lists = ["prefixes", "ipv6_prefixes"]
        .iter()
        .filter_map(|k| doc.get(k).map(|v| (*k, v)))
        .collect::<Vec<_>>();
    if lists.is_empty() {
        return Err(DataError::parse(file, 0, "no \"prefixes\" array"));
    }
    for (key, list) in lists {
        let items = list
            .as_array()
            .ok_or_else(|| DataError::parse(file, 0, format!("\"{key}\" is not an array")))?;
        for (n, item) in items.iter().enumerate() {
            let text = item
                .as_str()
                .or_else(|| PREFIX_KEYS.iter().find_map(|k| item.get(k)?.as_str()))
                .ok_or_else(|| DataError::parse(file, 0, format!("{key}[{n}] names no prefix")))?;
            let range = IpRange::from_cidr_or_ip(text)
                .map_err(|e| DataError::parse(file, 0, format!("{key}[{n}] {text:?}: {e}")))?;
            batch.push(range, claim);
        }
    }
    batch.dedup();
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::default_for;
    use ipintel_core::SignalKind;

    const FP: &str = "0011BD2485AD45D984EC4159C88FC066E5E3300E";

    fn tor(text: &str) -> Result<TorExits, DataError> {
        parse_tor_exit_addresses(Path::new("exits"), text, default_for(SignalKind::Tor))
    }

    fn line_of(err: DataError) -> u64 {
        match err {
            DataError::Parse { line, .. } => line,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tor_exit_records() {
        let text = format!(
            "ExitNode {FP}\nPublished 2026-11-30 05:12:01\nLastStatus 2026-12-01 06:00:00\n\
             ExitAddress 185.220.101.1 2026-12-01 06:03:12\nExitAddress 2a0b:f4c2::1 2026-12-01 06:03:12\n\
             ExitNode {FP}\nPublished 2026-12-02 01:00:00\nLastStatus 2026-12-02 02:00:00\n\
             ExitAddress 185.220.101.1 2026-12-02 02:03:12\n"
        );
        let exits = tor(&text).unwrap();
        assert_eq!(exits.relays, 2);
        assert_eq!(exits.batch.ranges.len(), 2);
        assert_eq!(exits.newest_published.as_deref(), Some("2026-12-02"));
        let kind = exits.batch.claims[0].weight.kind;
        assert_eq!(kind, SignalKind::Tor);
    }

    #[test]
    fn tor_errors_name_the_line() {
        let head = format!("ExitNode {FP}\nPublished 2026-11-30 05:12:01\n");
        assert_eq!(
            line_of(tor(&format!("{head}ExitAddress 1.2.3 2026-11-30 05:12:01\n")).unwrap_err()),
            3
        );
        assert_eq!(line_of(tor(&format!("{head}Bogus x\n")).unwrap_err()), 3);
        assert_eq!(line_of(tor("ExitNode abc\n").unwrap_err()), 1);
        // cut off before its address: the error points at the last line
        assert_eq!(line_of(tor(&head).unwrap_err()), 2);
        assert_eq!(line_of(tor("Published 2026-13-x\n").unwrap_err()), 1);
    }

    #[test]
    fn json_prefix_layouts() {
        let w = default_for(SignalKind::Datacenter);
        let text = r#"{"prefixes": ["1.2.3.0/24", {"ip_prefix": "5.0.0.0/8"}, {"ipv6Prefix": "2001:db8::/32"}],
                       "ipv6_prefixes": [{"ipv6_prefix": "2600::/16"}]}"#;
        let b = parse_json_prefixes(Path::new("p.json"), text, w).unwrap();
        assert_eq!(b.ranges.len(), 4);
        assert!(parse_json_prefixes(Path::new("p.json"), r#"{"x": 1}"#, w).is_err());
        let err = parse_json_prefixes(Path::new("p.json"), r#"{"prefixes": ["1.2.3.0/99"]}"#, w)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.json") && err.contains("prefixes[0]"),
            "{err}"
        );
        assert_eq!(
            line_of(
                parse_json_prefixes(Path::new("p.json"), "{\n\"prefixes\": [\n", w).unwrap_err()
            ),
            3
        );
    }
}

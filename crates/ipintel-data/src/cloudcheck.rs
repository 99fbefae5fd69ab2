//! cloudcheck `cloud_providers_v3.json`: `{provider: {name, tags, cidrs}}`.
//!
//! Tag `cloud` gives a datacenter claim, tag `cdn` a CDN claim; a provider
//! with only other tags (`gov`, `waf`, `security`) is skipped.

use std::collections::BTreeMap;
use std::path::Path;

use ipintel_core::IpRange;
use serde::Deserialize;

use crate::batch::SignalBatch;
use crate::error::DataError;
use crate::weights::{self, SourceWeights};

#[derive(Deserialize)]
struct Provider {
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    cidrs: Vec<String>,
}

/// Parses the provider table.
pub fn parse_cloudcheck(file: &Path, text: &str) -> Result<SignalBatch, DataError> {
    parse_cloudcheck_with(file, text, &SourceWeights::default())
}

/// Parses the provider table with the weights a sources file gives it.
pub fn parse_cloudcheck_with(
    file: &Path,
    text: &str,
    w: &SourceWeights,
) -> Result<SignalBatch, DataError> {
    let providers: BTreeMap<String, Provider> = serde_json::from_str(text)
        .map_err(|e| DataError::parse(file, e.line() as u64, format!("invalid JSON: {e}")))?;
    let mut batch = SignalBatch::default();
    for (key, p) in providers {
        let name = p.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&key);
        let has = |t: &str| p.tags.iter().any(|x| x == t);
        let mut claims = Vec::new();
        if has("cloud") {
            claims.push(batch.claim(w.pick(weights::CLOUDCHECK_CLOUD), Some(name), None));
        }
        if has("cdn") {
            claims.push(batch.claim(w.pick(weights::CLOUDCHECK_CDN), Some(name), None));
        }
        for cidr in &p.cidrs {
            let range = IpRange::from_cidr_or_ip(cidr)
                .map_err(|e| DataError::parse(file, 0, format!("provider {key}: {cidr:?}: {e}")))?;
            for c in &claims {
                batch.push(range, *c);
            }
        }
    }
    batch.dedup();
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipintel_core::SignalKind;

    #[test]
    fn tags_map_to_kinds() {
        let text = r#"{
            "Amazon": {"name": "Amazon", "tags": ["cloud"], "cidrs": ["1.2.3.0/24", "2600:1f00::/24"]},
            "Fastly": {"name": "Fastly", "tags": ["cdn"], "cidrs": ["5.5.0.0/16"]},
            "Gov": {"name": "Gov", "tags": ["gov"], "cidrs": ["7.0.0.0/8"]},
            "Both": {"tags": ["cloud", "waf"], "cidrs": ["8.8.0.0/16"]}
        }"#;
        let b = parse_cloudcheck(Path::new("c.json"), text).unwrap();
        let got: Vec<(String, SignalKind, Option<String>)> = b
            .ranges
            .iter()
            .map(|(r, c)| {
                let claim = &b.claims[*c as usize];
                (r.to_string(), claim.weight.kind, claim.provider.clone())
            })
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.contains(&(
            "8.8.0.0-8.8.255.255".into(),
            SignalKind::Datacenter,
            Some("Both".into())
        )));
        assert!(got.contains(&(
            "5.5.0.0-5.5.255.255".into(),
            SignalKind::Cdn,
            Some("Fastly".into())
        )));
        assert!(!got.iter().any(|g| g.0.starts_with("7.")));
    }

    #[test]
    fn bad_cidr_names_the_provider() {
        let text = r#"{"X": {"tags": ["cloud"], "cidrs": ["1.2.3.0/40"]}}"#;
        let err = parse_cloudcheck(Path::new("c.json"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.json") && err.contains("provider X"),
            "{err}"
        );
        assert!(parse_cloudcheck(Path::new("c.json"), "{").is_err());
    }
}

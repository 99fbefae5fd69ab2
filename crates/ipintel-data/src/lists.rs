//! Text lists: FireHOL netsets, Spamhaus DROP, Emerging Threats fwip and
//! the kavachnet VPN/proxy list.

use std::net::IpAddr;
use std::path::Path;

use ipintel_core::addr::parse_ip_exact;
use ipintel_core::{IpRange, SignalKind};

use crate::batch::SignalBatch;
use crate::error::DataError;
use crate::weights::{self, SourceWeights, Weight};

/// Numbered lines with comments (`#` or `;` first) and blanks removed.
fn entries<'a>(text: &'a str, comment: char) -> impl Iterator<Item = (u64, &'a str)> + 'a {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim()))
        .filter(move |(_, l)| !l.is_empty() && !l.starts_with(comment))
}

/// An address or a CIDR. A CIDR must name its network (no host bits
/// set): lists write networks that way, and a line cut short inside the
/// prefix length (`10.1.2.0/2` for `/24`) would otherwise turn into a
/// block a thousand times larger.
fn range(file: &Path, line: u64, text: &str) -> Result<IpRange, DataError> {
    let parsed = IpRange::from_cidr_or_ip(text)
        .map_err(|e| DataError::parse(file, line, format!("{text:?}: {e}")))?;
    let network = match parsed {
        IpRange::V4 { first, .. } => IpAddr::V4(first),
        IpRange::V6 { first, .. } => IpAddr::V6(first),
    };
    let named = text.split_once('/').map(|(addr, _)| parse_ip_exact(addr));
    if let Some(Ok(addr)) = named {
        if addr != network {
            return Err(DataError::parse(
                file,
                line,
                format!("{text:?}: host bits are set (the network is {network})"),
            ));
        }
    }
    Ok(parsed)
}

/// FireHOL level 1: one CIDR or address per line, `#` comments.
pub fn parse_firehol(file: &Path, text: &str) -> Result<SignalBatch, DataError> {
    parse_netset(file, text, weights::FIREHOL_LEVEL1)
}

/// A plain list (FireHOL netset/ipset and the like): one CIDR or address
/// per line, `#` or `;` comments, every entry claiming `weight`.
pub fn parse_netset(file: &Path, text: &str, weight: Weight) -> Result<SignalBatch, DataError> {
    let mut batch = SignalBatch::default();
    let claim = batch.claim(weight, None, None);
    for (line, entry) in entries(text, '#').filter(|(_, l)| !l.starts_with(';')) {
        let entry = entry.split_whitespace().next().unwrap_or(entry);
        batch.push(range(file, line, entry)?, claim);
    }
    Ok(batch)
}

/// Proxy lists: `address:port` (IPv6 as `[address]:port`) or a bare
/// address per line, `#` comments. Entries differing only in the port
/// collapse into one.
pub fn parse_ip_port(file: &Path, text: &str, weight: Weight) -> Result<SignalBatch, DataError> {
    let mut batch = SignalBatch::default();
    let claim = batch.claim(weight, None, None);
    for (line, entry) in entries(text, '#') {
        let entry = entry.split_whitespace().next().unwrap_or(entry);
        let host = match entry.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").map(|(h, _)| h).ok_or_else(|| {
                DataError::parse(file, line, format!("{entry:?} is not [address]:port"))
            })?,
            None => entry,
        };
        let parsed = if host == entry {
            kavachnet_range(file, line, entry)?
        } else {
            range(file, line, host)?
        };
        batch.push(parsed, claim);
    }
    batch.dedup();
    Ok(batch)
}

/// Spamhaus DROP: `CIDR ; SBLnnn`, `;` comments. The SBL id is the detail.
pub fn parse_spamhaus_drop(file: &Path, text: &str) -> Result<SignalBatch, DataError> {
    parse_spamhaus_drop_with(file, text, weights::SPAMHAUS_DROP)
}

/// Spamhaus DROP with the weight a sources file gives it.
pub fn parse_spamhaus_drop_with(
    file: &Path,
    text: &str,
    weight: Weight,
) -> Result<SignalBatch, DataError> {
    let mut batch = SignalBatch::default();
    for (line, entry) in entries(text, ';') {
        let (cidr, id) = entry.split_once(';').ok_or_else(|| {
            DataError::parse(file, line, format!("{entry:?}: expected `CIDR ; SBLnnn`"))
        })?;
        let (cidr, id) = (cidr.trim(), id.trim());
        if !id.starts_with("SBL") {
            return Err(DataError::parse(
                file,
                line,
                format!("expected an SBL id, got {id:?}"),
            ));
        }
        let claim = batch.claim(weight, None, Some(id));
        batch.push(range(file, line, cidr)?, claim);
    }
    Ok(batch)
}

/// Section of the Emerging Threats fwip file an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EtSection {
    Unknown,
    Botnet,
    Skip,
    Attacker,
}

fn et_section(comment: &str) -> Option<EtSection> {
    let title = comment.trim_start_matches('#').trim().to_ascii_lowercase();
    match title.as_str() {
        "feodo" | "palevo" | "abuse.ch c&c list" => Some(EtSection::Botnet),
        "spamhaus drop nets" => Some(EtSection::Skip),
        "dshield top attackers" => Some(EtSection::Attacker),
        _ => None,
    }
}

/// Emerging Threats fwip rules: entries grouped under comment headers.
/// abuse.ch C&C (Feodo, Palevo) -> botnet; DShield -> attacker; the
/// Spamhaus DROP section is skipped (the DROP list is loaded on its own).
pub fn parse_emerging_threats(file: &Path, text: &str) -> Result<SignalBatch, DataError> {
    parse_emerging_threats_with(file, text, &SourceWeights::default())
}

/// Emerging Threats with the weights a sources file gives it.
pub fn parse_emerging_threats_with(
    file: &Path,
    text: &str,
    w: &SourceWeights,
) -> Result<SignalBatch, DataError> {
    let mut batch = SignalBatch::default();
    let botnet = batch.claim(w.pick(weights::ET_BOTNET_CC), None, None);
    let attacker = batch.claim(w.pick(weights::ET_ATTACKER), None, None);
    let mut section = EtSection::Unknown;
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        let entry = raw.trim();
        if entry.starts_with('#') {
            section = et_section(entry).unwrap_or(section);
            continue;
        }
        if entry.is_empty() {
            continue;
        }
        let r = range(file, line, entry)?;
        match section {
            EtSection::Botnet => batch.push(r, botnet),
            EtSection::Attacker => batch.push(r, attacker),
            EtSection::Skip => {}
            EtSection::Unknown => {
                return Err(DataError::parse(
                    file,
                    line,
                    "entry outside a known section",
                ));
            }
        }
    }
    Ok(batch)
}

fn kavachnet_weight(label: &str) -> Option<Weight> {
    match label {
        "PROXY" => Some(weights::KAVACHNET_PROXY),
        "VPN" => Some(weights::KAVACHNET_VPN),
        "TOR" => Some(weights::KAVACHNET_TOR),
        "CLOUD" => Some(weights::KAVACHNET_CLOUD),
        _ => None,
    }
}

/// An address that may carry a `:port` suffix (IPv4 only; IPv6 entries
/// are written as CIDRs or bare addresses).
fn kavachnet_range(file: &Path, line: u64, text: &str) -> Result<IpRange, DataError> {
    if text.contains('/') {
        return range(file, line, text);
    }
    if let Ok(ip) = parse_ip_exact(text) {
        return Ok(IpRange::single(ip));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if host.contains('.') && port.parse::<u16>().is_ok() => {
            range(file, line, host)
        }
        _ => Err(DataError::parse(
            file,
            line,
            format!("{text:?} is not an address, CIDR or address:port"),
        )),
    }
}

/// kavachnet `vpn_ip_list.txt`: `CIDR-or-ip[:port]|LABEL`. Entries that
/// differ only in the port collapse into one.
pub fn parse_kavachnet(file: &Path, text: &str) -> Result<SignalBatch, DataError> {
    parse_kavachnet_with(file, text, &SourceWeights::default())
}

/// kavachnet with the weights a sources file gives it.
pub fn parse_kavachnet_with(
    file: &Path,
    text: &str,
    w: &SourceWeights,
) -> Result<SignalBatch, DataError> {
    let mut batch = SignalBatch::default();
    for (line, entry) in entries(text, '#') {
        let (addr, label) = entry
            .rsplit_once('|')
            .ok_or_else(|| DataError::parse(file, line, "expected ADDRESS|LABEL"))?;
        let weight = kavachnet_weight(label.trim())
            .ok_or_else(|| DataError::parse(file, line, format!("unknown label {label:?}")))?;
        let range = kavachnet_range(file, line, addr.trim())?;
        let (weight, detail) = kavachnet_claim(w.pick(weight), &range);
        let claim = batch.claim(weight, None, detail);
        batch.push(range, claim);
    }
    batch.dedup();
    Ok(batch)
}

/// Confidence of a kavachnet `PROXY` entry that is a whole network.
///
/// An open proxy is a host. The list also labels whole hosting blocks as
/// proxies (cloud /21s among them); such entries stay as weak reasons but
/// fall below [`ipintel_core::FLAG_MIN_CONFIDENCE`], so they raise no flag,
/// and weigh at most [`COARSE_PROXY_WEIGHT`].
const COARSE_PROXY_CONFIDENCE: f32 = 0.3;

/// Weight cap of a kavachnet `PROXY` entry that is a whole network.
const COARSE_PROXY_WEIGHT: u8 = 10;

/// The weight of one kavachnet entry, and a detail that keeps coarse proxy
/// entries a claim of their own.
fn kavachnet_claim(weight: Weight, range: &IpRange) -> (Weight, Option<&'static str>) {
    let single = match *range {
        IpRange::V4 { first, last } => first == last,
        IpRange::V6 { first, last } => first == last,
    };
    if weight.kind == SignalKind::Proxy && !single {
        let coarse = Weight {
            weight: weight.weight.min(COARSE_PROXY_WEIGHT),
            confidence: weight.confidence.min(COARSE_PROXY_CONFIDENCE),
            ..weight
        };
        return (coarse, Some("network-wide proxy entry"));
    }
    (weight, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> &'static Path {
        Path::new("fixture.txt")
    }

    fn kinds(batch: &SignalBatch) -> Vec<(String, SignalKind)> {
        batch
            .ranges
            .iter()
            .map(|(r, c)| (r.to_string(), batch.claims[*c as usize].weight.kind))
            .collect()
    }

    fn parse_error_line(result: Result<SignalBatch, DataError>) -> u64 {
        match result {
            Err(DataError::Parse { line, file, .. }) => {
                assert_eq!(file, Path::new("fixture.txt"));
                line
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn firehol() {
        let b = parse_firehol(file(), "# header\n\n1.2.3.0/24\n5.6.7.8\n").unwrap();
        assert_eq!(
            kinds(&b),
            vec![
                ("1.2.3.0-1.2.3.255".into(), SignalKind::Blocklist),
                ("5.6.7.8-5.6.7.8".into(), SignalKind::Blocklist)
            ]
        );
        assert_eq!(
            parse_error_line(parse_firehol(file(), "# h\n1.2.3.0/24\n1.2.3.0/33\n")),
            3
        );
        assert_eq!(parse_error_line(parse_firehol(file(), "01.2.3.4\n")), 1);
    }

    #[test]
    fn spamhaus() {
        let text = "; Spamhaus DROP\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\n";
        let b = parse_spamhaus_drop(file(), text).unwrap();
        assert_eq!(b.ranges.len(), 2);
        assert_eq!(b.claims[0].detail.as_deref(), Some("SBL256894"));
        assert_eq!(b.claims[0].weight, weights::SPAMHAUS_DROP);
        assert_eq!(
            parse_error_line(parse_spamhaus_drop(file(), "; x\n1.2.3.0/24 ; nope\n")),
            2
        );
        assert_eq!(
            parse_error_line(parse_spamhaus_drop(file(), "; x\n\nfoo ; SBL1\n")),
            3
        );
        assert_eq!(
            parse_error_line(parse_spamhaus_drop(
                file(),
                "1.2.3.0/24 ; SBL1\n1.32.128.0/1\n"
            )),
            2,
            "a line without its SBL id (cut short?)"
        );
    }

    #[test]
    fn a_cidr_with_host_bits_is_refused() {
        let w = weights::FIREHOL_LEVEL1;
        let cut = "10.1.2.0/24\n90.84.62.0/2\n";
        let err = parse_netset(file(), cut, w).unwrap_err();
        assert!(err.to_string().contains("host bits"), "{err}");
        assert_eq!(parse_error_line(parse_netset(file(), cut, w)), 2);
        assert!(parse_netset(file(), "2001:db8:1::/48\n2001:db8::1\n", w).is_ok());
        assert_eq!(
            parse_error_line(parse_netset(file(), "2001:db8::1/48\n", w)),
            1
        );
    }

    #[test]
    fn emerging_threats_sections() {
        let text = "#\n# Spam nets identified by Spamhaus\n# Top Attackers listed by DShield\n\
                    # Abuse.ch C&C List\n\n# Feodo\n\n1.1.1.1\n\n#Spamhaus DROP Nets\n2.2.0.0/16\n\
                    #Dshield Top Attackers\n3.3.3.0/24\n";
        let b = parse_emerging_threats(file(), text).unwrap();
        assert_eq!(
            kinds(&b),
            vec![
                ("1.1.1.1-1.1.1.1".into(), SignalKind::Botnet),
                ("3.3.3.0-3.3.3.255".into(), SignalKind::Attacker)
            ]
        );
        assert_eq!(
            parse_error_line(parse_emerging_threats(file(), "# intro\n1.2.3.4\n")),
            2
        );
        assert_eq!(
            parse_error_line(parse_emerging_threats(file(), "# Feodo\n1.2.3.4x\n")),
            2
        );
    }

    #[test]
    fn ip_port_lists() {
        let w = weights::default_for(SignalKind::Proxy);
        let text = "# proxies\n1.2.3.4:8080\n1.2.3.4:3128\n[2001:db8::1]:1080\n5.6.7.8\n";
        let b = parse_ip_port(file(), text, w).unwrap();
        let mut got = kinds(&b);
        got.sort();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.contains(&("2001:db8::1-2001:db8::1".into(), SignalKind::Proxy)));
        assert_eq!(
            parse_error_line(parse_ip_port(file(), "1.2.3.4:80\n1.2.3:80\n", w)),
            2
        );
        assert_eq!(
            parse_error_line(parse_ip_port(file(), "[2001:db8::1:80\n", w)),
            1
        );
    }

    #[test]
    fn netset_with_its_own_weight() {
        let tor = weights::default_for(SignalKind::Tor);
        let b = parse_netset(file(), "; c\n# c\n1.2.3.4 # exit\n", tor).unwrap();
        assert_eq!(kinds(&b), vec![("1.2.3.4-1.2.3.4".into(), SignalKind::Tor)]);
    }

    #[test]
    fn kavachnet() {
        let text = "1.2.3.4:8080|PROXY\n1.2.3.4:3128|PROXY\n10.0.0.0/8|VPN\n2a01:300::/32|VPN\n\
                    5.5.5.5|TOR\n6.6.6.0/23|CLOUD\n";
        let b = parse_kavachnet(file(), text).unwrap();
        let mut got = kinds(&b);
        got.sort();
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got.contains(&("1.2.3.4-1.2.3.4".into(), SignalKind::Proxy)));
        assert!(got.contains(&("5.5.5.5-5.5.5.5".into(), SignalKind::Tor)));
        assert!(got.contains(&("6.6.6.0-6.6.7.255".into(), SignalKind::Datacenter)));
        assert_eq!(
            parse_error_line(parse_kavachnet(file(), "1.2.3.4|PROXY\n1.2.3.4|SOCKS\n")),
            2
        );
        assert_eq!(parse_error_line(parse_kavachnet(file(), "1.2.3.4\n")), 1);
        assert_eq!(
            parse_error_line(parse_kavachnet(file(), "1.2.3.4:99999|PROXY\n")),
            1
        );
    }

    #[test]
    fn kavachnet_proxy_networks_are_too_coarse_to_flag() {
        let b = parse_kavachnet(file(), "1.2.3.4:8080|PROXY\n44.212.176.0/21|PROXY\n").unwrap();
        let confidence = |first: &str| {
            let (_, claim) = b
                .ranges
                .iter()
                .find(|(r, _)| r.to_string().starts_with(first))
                .unwrap();
            b.claims[*claim as usize].weight.confidence
        };
        assert!(confidence("1.2.3.4") >= ipintel_core::FLAG_MIN_CONFIDENCE);
        assert!(confidence("44.212.176.0") < ipintel_core::FLAG_MIN_CONFIDENCE);
    }
}

//! Strict textual IP address parsing.
//!
//! The accepted forms are a canonical dotted quad (exactly four decimal
//! parts, each `0..=255`, no leading zeros) and IPv6 text per RFC 4291
//! (hex groups, `::` compression, an optional trailing dotted quad that obeys
//! the same IPv4 rules). Zone ids, brackets, whitespace and the historic
//! shorthand forms (`127.1`, `0x7f.1.1.1`, octal parts) are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest valid text: a full IPv6 address with an embedded dotted quad.
const MAX_LEN: usize = 45;

/// Why a text is not a valid IP address.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    /// The input is empty.
    #[error("empty address")]
    Empty,
    /// An IPv4 part has a leading zero (ambiguous: octal in some parsers).
    #[error("IPv4 part with a leading zero is not canonical")]
    NonCanonicalV4,
    /// The input contains whitespace, a zone id or brackets.
    #[error("address contains whitespace, a zone id or brackets")]
    Decorated,
    /// Anything else that is not an address.
    #[error("not an IP address")]
    Invalid,
}

/// Parses `input` strictly; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is returned
/// as the IPv4 address.
pub fn parse_ip(input: &str) -> Result<IpAddr, AddrError> {
    let ip = parse_ip_exact(input)?;
    Ok(canonical(ip))
}

/// Like [`parse_ip`] but keeps the family as written: `::ffff:1.2.3.4` stays
/// IPv6. Used for CIDR text, where the prefix length depends on the family.
pub fn parse_ip_exact(input: &str) -> Result<IpAddr, AddrError> {
    if input.is_empty() {
        return Err(AddrError::Empty);
    }
    if input.len() > MAX_LEN {
        return Err(AddrError::Invalid);
    }
    if input
        .bytes()
        .any(|b| b.is_ascii_whitespace() || matches!(b, b'%' | b'[' | b']'))
    {
        return Err(AddrError::Decorated);
    }
    if input.contains(':') {
        parse_v6(input).map(IpAddr::V6)
    } else {
        parse_v4(input).map(IpAddr::V4)
    }
}

/// Maps IPv4-mapped IPv6 addresses to IPv4; other addresses are unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses a canonical dotted quad.
pub fn parse_v4(input: &str) -> Result<Ipv4Addr, AddrError> {
    let mut octets = [0u8; 4];
    let mut parts = input.split('.');
    for slot in &mut octets {
        let part = parts.next().ok_or(AddrError::Invalid)?;
        *slot = parse_octet(part)?;
    }
    if parts.next().is_some() {
        return Err(AddrError::Invalid);
    }
    Ok(Ipv4Addr::from(octets))
}

fn parse_octet(part: &str) -> Result<u8, AddrError> {
    let bytes = part.as_bytes();
    if bytes.is_empty() || bytes.len() > 3 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(AddrError::Invalid);
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(AddrError::NonCanonicalV4);
    }
    let value = bytes
        .iter()
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    u8::try_from(value).map_err(|_| AddrError::Invalid)
}

fn parse_v6(input: &str) -> Result<Ipv6Addr, AddrError> {
    if input.contains('.') {
        // The standard parser accepts the embedded quad; check it ourselves
        // first so that the IPv4 rules (no leading zeros) hold there too.
        let tail = input.rsplit(':').next().ok_or(AddrError::Invalid)?;
        parse_v4(tail)?;
    }
    input.parse::<Ipv6Addr>().map_err(|_| AddrError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_inputs() {
        let cases: &[(&str, AddrError)] = &[
            ("", AddrError::Empty),
            ("192.012.1.1", AddrError::NonCanonicalV4),
            ("10.10.1.011", AddrError::NonCanonicalV4),
            ("01.1.1.1", AddrError::NonCanonicalV4),
            ("not-an-ip", AddrError::Invalid),
            ("1.2.3.4.5", AddrError::Invalid),
            ("1.2.3.256", AddrError::Invalid),
            ("1.2.3", AddrError::Invalid),
            ("127.1", AddrError::Invalid),
            ("0x7f.1.1.1", AddrError::Invalid),
            ("1.2.3.-4", AddrError::Invalid),
            ("1.2.3.+4", AddrError::Invalid),
            ("1..3.4", AddrError::Invalid),
            ("1.2.3.4.", AddrError::Invalid),
            ("1.2.3.1000", AddrError::Invalid),
            (" 1.2.3.4", AddrError::Decorated),
            ("1.2.3.4 ", AddrError::Decorated),
            ("1.2.3.4\n", AddrError::Decorated),
            ("fe80::1%eth0", AddrError::Decorated),
            ("[::1]", AddrError::Decorated),
            ("::ffff:1.2.3.04", AddrError::NonCanonicalV4),
            ("::ffff:001.2.3.4", AddrError::NonCanonicalV4),
            ("::ffff:1.2.3", AddrError::Invalid),
            ("1:2:3:4:5:6:7:8:9", AddrError::Invalid),
            ("12345::", AddrError::Invalid),
            ("1:::2", AddrError::Invalid),
            ("g::1", AddrError::Invalid),
            ("::1::", AddrError::Invalid),
            ("１.2.3.4", AddrError::Invalid),
        ];
        for (input, want) in cases {
            assert_eq!(parse_ip(input), Err(want.clone()), "input {input:?}");
        }
    }

    #[test]
    fn accepts_good_inputs() {
        let cases: &[(&str, &str)] = &[
            ("0.0.0.0", "0.0.0.0"),
            ("8.8.8.8", "8.8.8.8"),
            ("255.255.255.255", "255.255.255.255"),
            ("10.0.0.1", "10.0.0.1"),
            ("::ffff:123.202.30.78", "123.202.30.78"),
            ("0:0:0:0:0:FFFF:222.1.41.90", "222.1.41.90"),
            ("::ffff:0808:0808", "8.8.8.8"),
            ("::1", "::1"),
            ("::", "::"),
            ("2001:DB8::1", "2001:db8::1"),
            ("2606:4700:4700::1111", "2606:4700:4700::1111"),
            ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ];
        for (input, want) in cases {
            let got = parse_ip(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got.to_string(), *want, "input {input:?}");
        }
    }

    #[test]
    fn mapped_is_answered_as_v4() {
        assert!(parse_ip("::ffff:1.2.3.4").unwrap().is_ipv4());
        assert!(parse_ip_exact("::ffff:1.2.3.4").unwrap().is_ipv6());
    }

    proptest! {
        #[test]
        fn v4_display_round_trips(bits: u32) {
            let ip = Ipv4Addr::from(bits);
            prop_assert_eq!(parse_ip(&ip.to_string()), Ok(IpAddr::V4(ip)));
        }

        #[test]
        fn v6_display_round_trips(bits: u128) {
            let ip = Ipv6Addr::from(bits);
            prop_assert_eq!(parse_ip(&ip.to_string()), Ok(canonical(IpAddr::V6(ip))));
            prop_assert_eq!(parse_ip_exact(&ip.to_string()), Ok(IpAddr::V6(ip)));
        }

        #[test]
        fn mapped_v4_round_trips(bits: u32) {
            let v4 = Ipv4Addr::from(bits);
            let text = format!("::ffff:{v4}");
            prop_assert_eq!(parse_ip(&text), Ok(IpAddr::V4(v4)));
        }

        #[test]
        fn never_panics(text in "\\PC{0,50}") {
            let _ = parse_ip(&text);
        }
    }
}

//! The IANA IPv4 and IPv6 special-purpose address registries (plus IPv4
//! multicast from the multicast registry).
//!
//! # Which entries count as reserved
//!
//! Every registry entry is listed here, with the registry's "Globally
//! Reachable" column. [`classify`] takes the most specific entry that holds
//! the address and answers it only when that entry is **not** globally
//! reachable. Entries marked reachable (for example AS112 anycast, AMT,
//! ORCHIDv2, the NAT64 well-known prefix) and the ones the registry marks
//! "N/A" because they carry public traffic (TEREDO `2001::/32`, 6to4
//! `2002::/16`, the deprecated 6to4 relay anycast `192.88.99.0/24`) are
//! therefore not reserved: lookups consult the data sources for them.
//! Because the most specific entry decides, `2001:20::1` (ORCHIDv2, inside
//! the non-reachable `2001::/23`) is not reserved while `2001:5::1` is.

use std::net::IpAddr;

use serde::Serialize;

use crate::table::{IntervalTable, NONE};

/// A special-purpose range as reported in a record.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ReservedRange {
    /// Registry name of the range, e.g. `Private-Use`.
    pub name: &'static str,
    /// The range in CIDR notation.
    pub network: &'static str,
    /// The defining document, e.g. `RFC 1918`.
    pub rfc: &'static str,
}

struct Entry<T> {
    net: T,
    len: u8,
    reachable: bool,
    range: ReservedRange,
}

const fn v4(
    net: [u8; 4],
    len: u8,
    reachable: bool,
    name: &'static str,
    network: &'static str,
    rfc: &'static str,
) -> Entry<u32> {
    Entry {
        net: u32::from_be_bytes(net),
        len,
        reachable,
        range: ReservedRange { name, network, rfc },
    }
}

const fn v6(
    net: u128,
    len: u8,
    reachable: bool,
    name: &'static str,
    network: &'static str,
    rfc: &'static str,
) -> Entry<u128> {
    Entry {
        net,
        len,
        reachable,
        range: ReservedRange { name, network, rfc },
    }
}

const R: bool = true; // globally reachable (or public traffic): not reserved
const N: bool = false; // not globally reachable: reserved

static V4: &[Entry<u32>] = &[
    v4([0, 0, 0, 0], 8, N, "This network", "0.0.0.0/8", "RFC 791"),
    v4(
        [0, 0, 0, 0],
        32,
        N,
        "This host on this network",
        "0.0.0.0/32",
        "RFC 1122",
    ),
    v4([10, 0, 0, 0], 8, N, "Private-Use", "10.0.0.0/8", "RFC 1918"),
    v4(
        [100, 64, 0, 0],
        10,
        N,
        "Shared Address Space",
        "100.64.0.0/10",
        "RFC 6598",
    ),
    v4([127, 0, 0, 0], 8, N, "Loopback", "127.0.0.0/8", "RFC 1122"),
    v4(
        [169, 254, 0, 0],
        16,
        N,
        "Link Local",
        "169.254.0.0/16",
        "RFC 3927",
    ),
    v4(
        [172, 16, 0, 0],
        12,
        N,
        "Private-Use",
        "172.16.0.0/12",
        "RFC 1918",
    ),
    v4(
        [192, 0, 0, 0],
        24,
        N,
        "IETF Protocol Assignments",
        "192.0.0.0/24",
        "RFC 6890",
    ),
    v4(
        [192, 0, 0, 0],
        29,
        N,
        "IPv4 Service Continuity Prefix",
        "192.0.0.0/29",
        "RFC 7335",
    ),
    v4(
        [192, 0, 0, 8],
        32,
        N,
        "IPv4 dummy address",
        "192.0.0.8/32",
        "RFC 7600",
    ),
    v4(
        [192, 0, 0, 9],
        32,
        R,
        "Port Control Protocol Anycast",
        "192.0.0.9/32",
        "RFC 7723",
    ),
    v4(
        [192, 0, 0, 10],
        32,
        R,
        "Traversal Using Relays around NAT Anycast",
        "192.0.0.10/32",
        "RFC 8155",
    ),
    v4(
        [192, 0, 0, 170],
        32,
        N,
        "NAT64/DNS64 Discovery",
        "192.0.0.170/32",
        "RFC 8880",
    ),
    v4(
        [192, 0, 0, 171],
        32,
        N,
        "NAT64/DNS64 Discovery",
        "192.0.0.171/32",
        "RFC 8880",
    ),
    v4(
        [192, 0, 2, 0],
        24,
        N,
        "Documentation (TEST-NET-1)",
        "192.0.2.0/24",
        "RFC 5737",
    ),
    v4(
        [192, 31, 196, 0],
        24,
        R,
        "AS112-v4",
        "192.31.196.0/24",
        "RFC 7535",
    ),
    v4(
        [192, 52, 193, 0],
        24,
        R,
        "AMT",
        "192.52.193.0/24",
        "RFC 7450",
    ),
    v4(
        [192, 88, 99, 0],
        24,
        R,
        "Deprecated (6to4 Relay Anycast)",
        "192.88.99.0/24",
        "RFC 7526",
    ),
    v4(
        [192, 168, 0, 0],
        16,
        N,
        "Private-Use",
        "192.168.0.0/16",
        "RFC 1918",
    ),
    v4(
        [192, 175, 48, 0],
        24,
        R,
        "Direct Delegation AS112 Service",
        "192.175.48.0/24",
        "RFC 7534",
    ),
    v4(
        [198, 18, 0, 0],
        15,
        N,
        "Benchmarking",
        "198.18.0.0/15",
        "RFC 2544",
    ),
    v4(
        [198, 51, 100, 0],
        24,
        N,
        "Documentation (TEST-NET-2)",
        "198.51.100.0/24",
        "RFC 5737",
    ),
    v4(
        [203, 0, 113, 0],
        24,
        N,
        "Documentation (TEST-NET-3)",
        "203.0.113.0/24",
        "RFC 5737",
    ),
    v4([224, 0, 0, 0], 4, N, "Multicast", "224.0.0.0/4", "RFC 5771"),
    v4([240, 0, 0, 0], 4, N, "Reserved", "240.0.0.0/4", "RFC 1112"),
    v4(
        [255, 255, 255, 255],
        32,
        N,
        "Limited Broadcast",
        "255.255.255.255/32",
        "RFC 919",
    ),
];

static V6: &[Entry<u128>] = &[
    v6(0, 128, N, "Unspecified Address", "::/128", "RFC 4291"),
    v6(1, 128, N, "Loopback Address", "::1/128", "RFC 4291"),
    v6(
        0xffff_0000_0000,
        96,
        N,
        "IPv4-mapped Address",
        "::ffff:0:0/96",
        "RFC 4291",
    ),
    v6(
        0x0064_ff9b << 96,
        96,
        R,
        "IPv4-IPv6 Translation",
        "64:ff9b::/96",
        "RFC 6052",
    ),
    v6(
        0x0064_ff9b_0001 << 80,
        48,
        N,
        "IPv4-IPv6 Translation (local use)",
        "64:ff9b:1::/48",
        "RFC 8215",
    ),
    v6(
        0x0100 << 112,
        64,
        N,
        "Discard-Only Address Block",
        "100::/64",
        "RFC 6666",
    ),
    v6(
        (0x0100 << 112) | (1 << 64),
        64,
        N,
        "Dummy IPv6 Prefix",
        "100:0:0:1::/64",
        "RFC 9780",
    ),
    v6(
        0x2001 << 112,
        23,
        N,
        "IETF Protocol Assignments",
        "2001::/23",
        "RFC 2928",
    ),
    v6(0x2001 << 112, 32, R, "TEREDO", "2001::/32", "RFC 4380"),
    v6(
        (0x2001_0001 << 96) | 1,
        128,
        R,
        "Port Control Protocol Anycast",
        "2001:1::1/128",
        "RFC 7723",
    ),
    v6(
        (0x2001_0001 << 96) | 2,
        128,
        R,
        "Traversal Using Relays around NAT Anycast",
        "2001:1::2/128",
        "RFC 8155",
    ),
    v6(
        (0x2001_0001 << 96) | 3,
        128,
        R,
        "DNS-SD Service Registration Protocol Anycast",
        "2001:1::3/128",
        "RFC 9665",
    ),
    v6(
        0x2001_0002 << 96,
        48,
        N,
        "Benchmarking",
        "2001:2::/48",
        "RFC 5180",
    ),
    v6(0x2001_0003 << 96, 32, R, "AMT", "2001:3::/32", "RFC 7450"),
    v6(
        0x2001_0004_0112 << 80,
        48,
        R,
        "AS112-v6",
        "2001:4:112::/48",
        "RFC 7535",
    ),
    v6(
        0x2001_0010 << 96,
        28,
        N,
        "Deprecated (previously ORCHID)",
        "2001:10::/28",
        "RFC 4843",
    ),
    v6(
        0x2001_0020 << 96,
        28,
        R,
        "ORCHIDv2",
        "2001:20::/28",
        "RFC 7343",
    ),
    v6(
        0x2001_0030 << 96,
        28,
        R,
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        "2001:30::/28",
        "RFC 9374",
    ),
    v6(
        0x2001_0db8 << 96,
        32,
        N,
        "Documentation",
        "2001:db8::/32",
        "RFC 3849",
    ),
    v6(0x2002 << 112, 16, R, "6to4", "2002::/16", "RFC 3056"),
    v6(
        0x2620_004f_8000 << 80,
        48,
        R,
        "Direct Delegation AS112 Service",
        "2620:4f:8000::/48",
        "RFC 7534",
    ),
    v6(
        0x3fff << 112,
        20,
        N,
        "Documentation",
        "3fff::/20",
        "RFC 9637",
    ),
    v6(
        0x5f00 << 112,
        16,
        N,
        "Segment Routing (SRv6) SIDs",
        "5f00::/16",
        "RFC 9602",
    ),
    v6(0xfc00 << 112, 7, N, "Unique-Local", "fc00::/7", "RFC 4193"),
    v6(
        0xfe80 << 112,
        10,
        N,
        "Link-Local Unicast",
        "fe80::/10",
        "RFC 4291",
    ),
    v6(0xff00 << 112, 8, N, "Multicast", "ff00::/8", "RFC 4291"),
];

/// The special-purpose range holding `ip`, if the most specific registry
/// entry for it is not globally reachable (see the module docs).
pub fn classify(ip: IpAddr) -> Option<&'static ReservedRange> {
    match ip {
        IpAddr::V4(ip) => most_specific(V4, u32::from(ip), 32),
        IpAddr::V6(ip) => most_specific(V6, u128::from(ip), 128),
    }
}

fn most_specific<T>(table: &'static [Entry<T>], ip: T, width: u32) -> Option<&'static ReservedRange>
where
    T: Copy + PartialEq + std::ops::Shr<u32, Output = T>,
{
    let mut best: Option<&Entry<T>> = None;
    for entry in table {
        let shift = width - u32::from(entry.len);
        let matches = entry.len == 0 || (ip >> shift) == (entry.net >> shift);
        if matches && best.is_none_or(|b| b.len < entry.len) {
            best = Some(entry);
        }
    }
    best.filter(|e| !e.reachable).map(|e| &e.range)
}

/// The IPv4 space as a table whose values index the returned list of
/// reserved ranges ([`NONE`] where [`classify`] answers `None`).
pub(crate) fn reserved_table_v4() -> (IntervalTable<u32>, Vec<&'static ReservedRange>) {
    let (points, ranges) = partition(V4, 32, |p| most_specific(V4, p as u32, 32));
    let points = points.into_iter().map(|(p, v)| (p as u32, v)).collect();
    (IntervalTable::from_sorted(points), ranges)
}

/// The IPv6 space as a table, like [`reserved_table_v4`].
pub(crate) fn reserved_table_v6() -> (IntervalTable<u128>, Vec<&'static ReservedRange>) {
    let (points, ranges) = partition(V6, 128, |p| most_specific(V6, p, 128));
    (IntervalTable::from_sorted(points), ranges)
}

/// Cuts the space at every entry's first and one-past-last address; inside
/// each piece the set of entries holding an address is constant, so the
/// piece's first address decides for all of it.
fn partition<T: Copy + Into<u128>>(
    entries: &[Entry<T>],
    width: u32,
    decide: impl Fn(u128) -> Option<&'static ReservedRange>,
) -> (Vec<(u128, u32)>, Vec<&'static ReservedRange>) {
    let top = u128::MAX >> (128 - width);
    let mut cuts = vec![0u128];
    for e in entries {
        let first: u128 = e.net.into();
        let host_bits = width - u32::from(e.len);
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        cuts.push(first);
        if let Some(after) = (first | span).checked_add(1).filter(|a| *a <= top) {
            cuts.push(after);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut ranges: Vec<&'static ReservedRange> = Vec::new();
    let points = cuts
        .into_iter()
        .map(|p| {
            let value = decide(p).map_or(NONE, |range| {
                let at = ranges.iter().position(|r| std::ptr::eq(*r, range));
                let at = at.unwrap_or_else(|| {
                    ranges.push(range);
                    ranges.len() - 1
                });
                u32::try_from(at).unwrap_or(NONE)
            });
            (p, value)
        })
        .collect();
    (points, ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(ip: &str) -> Option<&'static str> {
        classify(ip.parse().unwrap()).map(|r| r.name)
    }

    #[test]
    fn table_cases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("10.10.123.190", Some("Private-Use")),
            ("172.31.255.255", Some("Private-Use")),
            ("172.32.0.0", None),
            ("192.168.1.1", Some("Private-Use")),
            ("127.0.0.1", Some("Loopback")),
            ("0.1.2.3", Some("This network")),
            ("0.0.0.0", Some("This host on this network")),
            ("100.64.0.1", Some("Shared Address Space")),
            ("100.128.0.1", None),
            ("169.254.1.1", Some("Link Local")),
            ("192.0.0.5", Some("IPv4 Service Continuity Prefix")),
            ("192.0.0.9", None),
            ("192.0.0.100", Some("IETF Protocol Assignments")),
            ("192.0.2.1", Some("Documentation (TEST-NET-1)")),
            ("198.51.100.7", Some("Documentation (TEST-NET-2)")),
            ("203.0.113.9", Some("Documentation (TEST-NET-3)")),
            ("198.19.1.1", Some("Benchmarking")),
            ("192.88.99.1", None),
            ("192.31.196.1", None),
            ("224.0.0.1", Some("Multicast")),
            ("239.255.255.255", Some("Multicast")),
            ("240.0.0.1", Some("Reserved")),
            ("255.255.255.254", Some("Reserved")),
            ("255.255.255.255", Some("Limited Broadcast")),
            ("8.8.8.8", None),
            ("::", Some("Unspecified Address")),
            ("::1", Some("Loopback Address")),
            ("::ffff:1.2.3.4", Some("IPv4-mapped Address")),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::1", Some("IPv4-IPv6 Translation (local use)")),
            ("100::1", Some("Discard-Only Address Block")),
            ("2001::1", None),
            ("2001:5::1", Some("IETF Protocol Assignments")),
            ("2001:2::1", Some("Benchmarking")),
            ("2001:1::1", None),
            ("2001:1::4", Some("IETF Protocol Assignments")),
            ("2001:10::1", Some("Deprecated (previously ORCHID)")),
            ("2001:20::1", None),
            ("2001:db8::1", Some("Documentation")),
            ("2002::1", None),
            ("3fff:fff::1", Some("Documentation")),
            ("3fff:1000::1", None),
            ("5f00::1", Some("Segment Routing (SRv6) SIDs")),
            ("fd00::1", Some("Unique-Local")),
            ("fe80::1", Some("Link-Local Unicast")),
            ("febf::1", Some("Link-Local Unicast")),
            ("fec0::1", None),
            ("ff02::1", Some("Multicast")),
            ("2606:4700:4700::1111", None),
        ];
        for (ip, want) in cases {
            assert_eq!(name(ip), *want, "{ip}");
        }
    }

    #[test]
    fn reserved_tables_agree_with_classify() {
        let (v4, names4) = reserved_table_v4();
        let (v6, names6) = reserved_table_v6();
        let mut probes4: Vec<u32> = vec![0, u32::MAX];
        for e in V4 {
            let last = e.net | (u32::MAX >> 1 >> (e.len.max(1) - 1));
            probes4.extend([e.net, e.net.wrapping_sub(1), last, last.wrapping_add(1)]);
        }
        for p in probes4 {
            let want = classify(IpAddr::V4(p.into())).map(|r| r.name);
            let got = names4.get(v4.value(v4.find(p)) as usize).map(|r| r.name);
            assert_eq!(got, want, "{}", std::net::Ipv4Addr::from(p));
        }
        let mut probes6: Vec<u128> = vec![0, 1, 2, u128::MAX];
        for e in V6 {
            let host = 128 - u32::from(e.len);
            let span = if host == 128 {
                u128::MAX
            } else {
                (1 << host) - 1
            };
            let last = e.net | span;
            probes6.extend([e.net, e.net.wrapping_sub(1), last, last.wrapping_add(1)]);
        }
        for p in probes6 {
            let want = classify(IpAddr::V6(p.into())).map(|r| r.name);
            let got = names6.get(v6.value(v6.find(p)) as usize).map(|r| r.name);
            assert_eq!(got, want, "{}", std::net::Ipv6Addr::from(p));
        }
    }

    #[test]
    fn network_and_rfc_are_reported() {
        let r = classify("10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!((r.network, r.rfc), ("10.0.0.0/8", "RFC 1918"));
    }

    #[test]
    fn entries_are_consistent_with_their_text() {
        for e in V4 {
            let range = crate::IpRange::from_cidr(e.range.network).unwrap();
            let crate::IpRange::V4 { first, .. } = range else {
                panic!("family")
            };
            assert_eq!(u32::from(first), e.net, "{}", e.range.network);
            assert!(e.range.network.ends_with(&format!("/{}", e.len)));
        }
        for e in V6 {
            let range = crate::IpRange::from_cidr(e.range.network).unwrap();
            let crate::IpRange::V6 { first, .. } = range else {
                panic!("family")
            };
            assert_eq!(u128::from(first), e.net, "{}", e.range.network);
            assert!(e.range.network.ends_with(&format!("/{}", e.len)));
        }
    }
}

//! Inclusive address ranges and CIDR helpers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::parse_ip_exact;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpRange {
    /// IPv4 range, `first <= last`.
    V4 {
        /// First address in the range.
        first: Ipv4Addr,
        /// Last address in the range (inclusive).
        last: Ipv4Addr,
    },
    /// IPv6 range, `first <= last`.
    V6 {
        /// First address in the range.
        first: Ipv6Addr,
        /// Last address in the range (inclusive).
        last: Ipv6Addr,
    },
}

/// Why a range could not be built.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// The text lacks the `/len` part or has more than one `/`.
    #[error("CIDR text must be address/length")]
    NotCidr,
    /// The address part is not a valid address.
    #[error("invalid address in range: {0}")]
    Address(#[from] crate::addr::AddrError),
    /// The prefix length is not a number within the family's width.
    #[error("invalid prefix length")]
    PrefixLength,
    /// The two ends have different families.
    #[error("range ends have different address families")]
    MixedFamilies,
    /// `first` is greater than `last`.
    #[error("range start is after its end")]
    Reversed,
}

impl IpRange {
    /// Parses `addr/len`. Host bits below the prefix are cleared, so
    /// `10.1.2.3/8` is `10.0.0.0 - 10.255.255.255`.
    pub fn from_cidr(text: &str) -> Result<IpRange, RangeError> {
        let (addr, len) = text.split_once('/').ok_or(RangeError::NotCidr)?;
        if len.contains('/') || len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeError::NotCidr);
        }
        let len: u8 = len.parse().map_err(|_| RangeError::PrefixLength)?;
        IpRange::from_prefix(parse_ip_exact(addr)?, len)
    }

    /// The block `ip/len` (host bits of `ip` are cleared).
    pub fn from_prefix(ip: IpAddr, len: u8) -> Result<IpRange, RangeError> {
        match ip {
            IpAddr::V4(ip) if len <= 32 => {
                let (first, last) = prefix_bounds_v4(u32::from(ip), len);
                Ok(IpRange::V4 {
                    first: first.into(),
                    last: last.into(),
                })
            }
            IpAddr::V6(ip) if len <= 128 => {
                let (first, last) = prefix_bounds_v6(u128::from(ip), len);
                Ok(IpRange::V6 {
                    first: first.into(),
                    last: last.into(),
                })
            }
            _ => Err(RangeError::PrefixLength),
        }
    }

    /// Parses either `addr/len` or a bare address (a single-address range).
    pub fn from_cidr_or_ip(text: &str) -> Result<IpRange, RangeError> {
        if text.contains('/') {
            IpRange::from_cidr(text)
        } else {
            Ok(IpRange::single(parse_ip_exact(text)?))
        }
    }

    /// Builds `first..=last`; both ends must be of one family, in order.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<IpRange, RangeError> {
        match (first, last) {
            (IpAddr::V4(first), IpAddr::V4(last)) if first <= last => {
                Ok(IpRange::V4 { first, last })
            }
            (IpAddr::V6(first), IpAddr::V6(last)) if first <= last => {
                Ok(IpRange::V6 { first, last })
            }
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Err(RangeError::Reversed)
            }
            _ => Err(RangeError::MixedFamilies),
        }
    }

    /// The range holding exactly `ip`.
    pub fn single(ip: IpAddr) -> IpRange {
        match ip {
            IpAddr::V4(ip) => IpRange::V4 {
                first: ip,
                last: ip,
            },
            IpAddr::V6(ip) => IpRange::V6 {
                first: ip,
                last: ip,
            },
        }
    }

    /// True if `ip` lies inside the range (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpRange::V4 { first, last }, IpAddr::V4(ip)) => *first <= ip && ip <= *last,
            (IpRange::V6 { first, last }, IpAddr::V6(ip)) => *first <= ip && ip <= *last,
            _ => false,
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpRange::V4 { first, last } => write!(f, "{first}-{last}"),
            IpRange::V6 { first, last } => write!(f, "{first}-{last}"),
        }
    }
}

/// A CIDR block: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::text::AddrText::cidr(self.addr, self.len).as_str())
    }
}

pub(crate) fn prefix_bounds_v4(addr: u32, len: u8) -> (u32, u32) {
    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (addr & !host, addr | host)
}

pub(crate) fn prefix_bounds_v6(addr: u128, len: u8) -> (u128, u128) {
    let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (addr & !host, addr | host)
}

/// Largest prefix holding `ip` that stays inside `first..=last` (for u32;
/// `first <= ip <= last`).
///
/// The block of `2^k` addresses holding `ip` starts at or after `first`
/// while `k` stays at or below the highest bit where `ip` and `first - 1`
/// differ, and ends at or before `last` while `k` stays at or below the
/// highest bit where `ip` and `last + 1` differ; the widest block takes
/// the smaller of the two.
pub(crate) fn largest_cidr_v4(ip: u32, first: u32, last: u32) -> (u32, u8) {
    let below = first
        .checked_sub(1)
        .map_or(32, |f| (32 - (ip ^ f).leading_zeros()).saturating_sub(1));
    let above = last
        .checked_add(1)
        .map_or(32, |l| (32 - (ip ^ l).leading_zeros()).saturating_sub(1));
    let len = 32 - below.min(above) as u8;
    (prefix_bounds_v4(ip, len).0, len)
}

/// Largest prefix holding `ip` that stays inside `first..=last` (for u128),
/// as [`largest_cidr_v4`].
pub(crate) fn largest_cidr_v6(ip: u128, first: u128, last: u128) -> (u128, u8) {
    let below = first
        .checked_sub(1)
        .map_or(128, |f| (128 - (ip ^ f).leading_zeros()).saturating_sub(1));
    let above = last
        .checked_add(1)
        .map_or(128, |l| (128 - (ip ^ l).leading_zeros()).saturating_sub(1));
    let len = 128 - below.min(above) as u8;
    (prefix_bounds_v6(ip, len).0, len)
}

/// The prefix search that the closed forms above replace, kept to test them.
#[cfg(test)]
fn largest_cidr_by_search(ip: u128, first: u128, last: u128, width: u8) -> (u128, u8) {
    (0..=width)
        .find_map(|len| {
            let host = u128::MAX
                .checked_shr(u32::from(len) + 128 - u32::from(width))
                .unwrap_or(0);
            let (lo, hi) = (ip & !host, ip | host);
            (lo >= first && hi <= last).then_some((lo, len))
        })
        .unwrap_or((ip, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        let r = IpRange::from_cidr("10.1.2.3/8").unwrap();
        assert_eq!(r.to_string(), "10.0.0.0-10.255.255.255");
        let r = IpRange::from_cidr("2001:db8::/32").unwrap();
        assert_eq!(
            r.to_string(),
            "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(
            IpRange::from_cidr("0.0.0.0/0").unwrap().to_string(),
            "0.0.0.0-255.255.255.255"
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "::/129",
            "x/8",
            "10.0.0.0/+8",
        ] {
            assert!(IpRange::from_cidr(bad).is_err(), "{bad}");
        }
        assert!(IpRange::from_cidr_or_ip("1.2.3.4").is_ok());
    }

    #[test]
    fn new_checks_order_and_family() {
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        let b: IpAddr = "1.2.3.5".parse().unwrap();
        let c: IpAddr = "::1".parse().unwrap();
        assert!(IpRange::new(a, b).is_ok());
        assert_eq!(IpRange::new(b, a), Err(RangeError::Reversed));
        assert_eq!(IpRange::new(a, c), Err(RangeError::MixedFamilies));
    }

    #[test]
    fn largest_cidr_inside_range() {
        let ip = u32::from(Ipv4Addr::new(1, 0, 150, 7));
        let first = u32::from(Ipv4Addr::new(1, 0, 128, 0));
        let last = u32::from(Ipv4Addr::new(1, 0, 196, 255));
        let (net, len) = largest_cidr_v4(ip, first, last);
        assert_eq!(
            (Ipv4Addr::from(net), len),
            (Ipv4Addr::new(1, 0, 128, 0), 18)
        );
        let ip = u32::from(Ipv4Addr::new(1, 0, 196, 7));
        let (net, len) = largest_cidr_v4(ip, first, last);
        assert_eq!(
            (Ipv4Addr::from(net), len),
            (Ipv4Addr::new(1, 0, 196, 0), 24)
        );
        assert_eq!(largest_cidr_v4(5, 0, u32::MAX), (0, 0));
        assert_eq!(largest_cidr_v6(5, 5, 5), (5, 128));
        assert_eq!(largest_cidr_v6(7, 0, 7), (0, 125));
        assert_eq!(largest_cidr_v6(7, 0, u128::MAX), (0, 0));
        assert_eq!(largest_cidr_v4(u32::MAX, 0, u32::MAX), (0, 0));
        assert_eq!(
            largest_cidr_v4(u32::MAX, u32::MAX, u32::MAX),
            (u32::MAX, 32)
        );
        assert_eq!(largest_cidr_v6(u128::MAX, 1, u128::MAX), (1 << 127, 1));
    }

    proptest::proptest! {
        #[test]
        fn closed_forms_match_the_search(a in proptest::prelude::any::<u128>(), b in proptest::prelude::any::<u128>(), c in proptest::prelude::any::<u128>(), narrow in 0u32..128) {
            // Three sorted points: first <= ip <= last, often close together.
            let mut p = [a, b >> narrow, c >> narrow];
            p.sort_unstable();
            let (first, ip, last) = (p[0], p[1], p[2]);
            proptest::prop_assert_eq!(largest_cidr_v6(ip, first, last), largest_cidr_by_search(ip, first, last, 128));
            let mut q = [a as u32, (b >> narrow) as u32, (c >> narrow) as u32];
            q.sort_unstable();
            let (first, ip, last) = (q[0], q[1], q[2]);
            let (net, len) = largest_cidr_v4(ip, first, last);
            proptest::prop_assert_eq!((u128::from(net), len), largest_cidr_by_search(u128::from(ip), u128::from(first), u128::from(last), 32));
        }
    }
}

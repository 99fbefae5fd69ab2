//! Who filed a report, as far as the score is concerned.
//!
//! Free keys cost nothing, so a key is a weak identity: one person can hold
//! many. The score therefore treats keys that report from the same network
//! as one reporter. The network is the client's /24 for IPv4 and /48 for
//! IPv6 (what one site or customer is usually given), taken from the
//! request with the trusted-proxy rules applied.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Prefix length of an IPv4 reporting network.
pub const REPORTER_V4_PREFIX: u8 = 24;
/// Prefix length of an IPv6 reporting network.
pub const REPORTER_V6_PREFIX: u8 = 48;

/// The network a report came from: an IPv4 /24 or an IPv6 /48.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReporterNet {
    /// The upper 24 bits of an IPv4 address.
    V4(u32),
    /// The upper 48 bits of an IPv6 address.
    V6(u64),
}

impl ReporterNet {
    /// The network of a client address (an IPv4-mapped IPv6 address counts
    /// as IPv4). `None` for the unspecified address, which a request has
    /// only when no peer address was recorded: such reports are grouped by
    /// key alone.
    pub fn of(client: IpAddr) -> Option<ReporterNet> {
        let client = client.to_canonical();
        if client.is_unspecified() {
            return None;
        }
        Some(Self::containing(client))
    }

    /// The network that holds `address`, whatever the address.
    fn containing(address: IpAddr) -> ReporterNet {
        match address.to_canonical() {
            IpAddr::V4(v4) => ReporterNet::V4(u32::from(v4) >> (32 - REPORTER_V4_PREFIX)),
            IpAddr::V6(v6) => {
                let top = u128::from(v6) >> (128 - REPORTER_V6_PREFIX);
                ReporterNet::V6(u64::try_from(top).unwrap_or(u64::MAX))
            }
        }
    }

    fn first_address(self) -> IpAddr {
        match self {
            ReporterNet::V4(bits) => IpAddr::V4(Ipv4Addr::from(bits << (32 - REPORTER_V4_PREFIX))),
            ReporterNet::V6(bits) => IpAddr::V6(Ipv6Addr::from(
                u128::from(bits) << (128 - REPORTER_V6_PREFIX),
            )),
        }
    }

    fn prefix(self) -> u8 {
        match self {
            ReporterNet::V4(_) => REPORTER_V4_PREFIX,
            ReporterNet::V6(_) => REPORTER_V6_PREFIX,
        }
    }
}

impl fmt::Display for ReporterNet {
    /// `203.0.113.0/24` or `2001:db8:1::/48`: the `reporter_network` column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.first_address(), self.prefix())
    }
}

/// Text that is not a reporting network as [`ReporterNet`] writes it.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("not a reporting network (an IPv4 /24 or IPv6 /48): {0:?}")]
pub struct BadReporterNet(pub String);

impl FromStr for ReporterNet {
    type Err = BadReporterNet;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadReporterNet(text.to_owned());
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let net = ReporterNet::containing(address);
        let exact = prefix == net.prefix().to_string() && net.first_address() == address;
        if exact {
            Ok(net)
        } else {
            Err(bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(client: &str) -> ReporterNet {
        ReporterNet::of(client.parse().unwrap()).unwrap()
    }

    #[test]
    fn clients_of_one_site_share_a_network() {
        assert_eq!(net("198.51.100.7"), net("198.51.100.250"));
        assert_ne!(net("198.51.100.7"), net("198.51.101.7"));
        assert_eq!(net("2001:db8:7:1::1"), net("2001:db8:7:ffff::2"));
        assert_ne!(net("2001:db8:7::1"), net("2001:db8:8::1"));
        assert_eq!(net("::ffff:198.51.100.9"), net("198.51.100.7"));
    }

    #[test]
    fn text_round_trips() {
        for (client, text) in [
            ("198.51.100.7", "198.51.100.0/24"),
            ("2001:db8:7:1::1", "2001:db8:7::/48"),
            ("127.0.0.1", "127.0.0.0/24"),
            // Networks whose first address is the unspecified one.
            ("0.0.0.5", "0.0.0.0/24"),
            ("::1", "::/48"),
            ("::ffff:0.0.0.9", "0.0.0.0/24"),
        ] {
            let n = net(client);
            assert_eq!(n.to_string(), text);
            assert_eq!(text.parse::<ReporterNet>(), Ok(n));
        }
    }

    #[test]
    fn every_network_reads_back_as_written() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v4 = IpAddr::V4(Ipv4Addr::from((x >> 32) as u32 & 0x00ff_ffff));
            let v6 = IpAddr::V6(Ipv6Addr::from(u128::from(x) << 64 >> (x % 128)));
            for client in [v4, v6] {
                if let Some(net) = ReporterNet::of(client) {
                    assert_eq!(net.to_string().parse(), Ok(net), "{client}");
                }
            }
        }
    }

    #[test]
    fn rejects_other_text() {
        for text in [
            "198.51.100.7/24",
            "198.51.100.0/23",
            "198.51.100.0",
            "2001:db8:7::/64",
            "::ffff:198.51.100.0/24",
            "nonsense",
        ] {
            assert!(text.parse::<ReporterNet>().is_err(), "{text}");
        }
    }

    #[test]
    fn an_unknown_peer_has_no_network() {
        assert_eq!(ReporterNet::of("0.0.0.0".parse().unwrap()), None);
        assert_eq!(ReporterNet::of("::".parse().unwrap()), None);
    }
}

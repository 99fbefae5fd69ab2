//! Which address a request comes from, honouring trusted proxies only.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::header::HeaderName;
use axum::http::HeaderMap;
use ipnet::IpNet;

/// The `X-Forwarded-For` header name.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Networks whose hosts are proxies allowed to tell the client address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A CIDR in a trusted-proxy list did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a CIDR network or an IP address")]
pub struct BadProxyCidr(pub String);

impl TrustedProxies {
    /// A list of trusted networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether `addr` lies in a trusted network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }
}

impl FromStr for TrustedProxies {
    type Err = BadProxyCidr;

    /// Parses a comma-separated list of CIDRs; a bare address is a /32 or /128.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = IpNet::from_str(item)
                .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                .map_err(|_| BadProxyCidr(item.to_owned()))?;
            networks.push(net);
        }
        Ok(Self(networks))
    }
}

/// The client address of a request.
///
/// It is the socket `peer` unless the peer is a trusted proxy. Then the
/// `X-Forwarded-For` entries are walked from the right (the hop nearest to
/// us), skipping trusted proxies; the first untrusted address is the
/// client. An entry that does not parse ends the walk at the last address
/// known good, so a forged or broken header cannot pick an arbitrary
/// address. Headers from an untrusted peer are ignored entirely.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted.contains(client) {
        return client;
    }
    for hop in forwarded_hops(headers).rev() {
        let Ok(addr) = IpAddr::from_str(hop) else {
            return client;
        };
        client = addr.to_canonical();
        if !trusted.contains(client) {
            return client;
        }
    }
    client
}

/// All `X-Forwarded-For` entries, left to right, over repeated headers.
fn forwarded_hops(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    let values: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|value| value.to_str().unwrap_or(""))
        .collect();
    values
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(&X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    #[test]
    fn walks_forwarded_for_from_the_right_past_trusted_hops() {
        let headers = xff(&["1.1.1.1, 2.2.2.2, 3.3.3.3"]);
        let proxies = trusted("3.3.3.3/32, 4.4.4.4");
        assert_eq!(
            client_addr(ip("4.4.4.4"), &headers, &proxies),
            ip("2.2.2.2")
        );
    }

    #[test]
    fn ignores_forwarded_for_from_an_untrusted_peer() {
        let headers = xff(&["1.1.1.1, 2.2.2.2, 3.3.3.3"]);
        let proxies = trusted("3.3.3.3/32");
        assert_eq!(
            client_addr(ip("4.4.4.4"), &headers, &proxies),
            ip("4.4.4.4")
        );
    }

    #[test]
    fn repeated_headers_are_one_list_in_order() {
        let headers = xff(&["1.1.1.1, 2.2.2.2", "3.3.3.3"]);
        let proxies = trusted("3.3.3.0/24,4.4.4.4");
        assert_eq!(
            client_addr(ip("4.4.4.4"), &headers, &proxies),
            ip("2.2.2.2")
        );
    }

    #[test]
    fn unparsable_entry_stops_at_the_last_trusted_hop() {
        let headers = xff(&["1.1.1.1, garbage, 3.3.3.3"]);
        let proxies = trusted("3.3.3.3, 4.4.4.4");
        assert_eq!(
            client_addr(ip("4.4.4.4"), &headers, &proxies),
            ip("3.3.3.3")
        );
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let headers = xff(&["10.0.0.1, 10.0.0.2"]);
        let proxies = trusted("10.0.0.0/8, 4.4.4.4");
        assert_eq!(
            client_addr(ip("4.4.4.4"), &headers, &proxies),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let proxies = trusted("4.4.4.4");
        assert_eq!(
            client_addr(ip("4.4.4.4"), &HeaderMap::new(), &proxies),
            ip("4.4.4.4")
        );
    }

    #[test]
    fn ipv4_mapped_peer_matches_ipv4_networks() {
        let headers = xff(&["2001:db8::7"]);
        let proxies = trusted("127.0.0.0/8");
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &headers, &proxies),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn bad_cidr_is_reported_by_item() {
        let err = "10.0.0.0/8, 300.1.1.1/8".parse::<TrustedProxies>();
        assert_eq!(err, Err(BadProxyCidr("300.1.1.1/8".into())));
    }
}

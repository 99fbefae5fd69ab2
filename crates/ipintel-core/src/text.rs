//! Allocation-free text for addresses and CIDRs, used when serializing
//! records. The output is exactly what `Display` gives (RFC 5952 for
//! IPv6); `fmt` machinery is just slower on the hot path.

use std::net::{IpAddr, Ipv6Addr};

/// Longest text: an uncompressible IPv6 address plus `/128`.
const CAP: usize = 48;

/// A short ASCII string on the stack.
pub(crate) struct AddrText {
    buf: [u8; CAP],
    len: usize,
}

impl AddrText {
    /// `ip` as text.
    pub(crate) fn ip(ip: IpAddr) -> AddrText {
        let mut t = AddrText {
            buf: [0; CAP],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => t.v4(u32::from(v4)),
            IpAddr::V6(v6) => t.v6(v6),
        }
        t
    }

    /// `ip/len` as text.
    pub(crate) fn cidr(ip: IpAddr, len: u8) -> AddrText {
        let mut t = AddrText::ip(ip);
        t.push(b'/');
        t.decimal(len);
        t
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn decimal(&mut self, n: u8) {
        if n >= 100 {
            self.push(b'0' + n / 100);
        }
        if n >= 10 {
            self.push(b'0' + (n / 10) % 10);
        }
        self.push(b'0' + n % 10);
    }

    fn v4(&mut self, bits: u32) {
        for (i, octet) in bits.to_be_bytes().into_iter().enumerate() {
            if i > 0 {
                self.push(b'.');
            }
            self.decimal(octet);
        }
    }

    fn hex(&mut self, group: u16) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut started = false;
        for shift in [12u16, 8, 4, 0] {
            let d = usize::from((group >> shift) & 0xf);
            if d != 0 || started || shift == 0 {
                self.push(DIGITS[d]);
                started = true;
            }
        }
    }

    fn v6(&mut self, ip: Ipv6Addr) {
        if let Some(v4) = ip.to_ipv4_mapped() {
            // `::ffff:a.b.c.d`, as std writes it.
            for b in *b"::ffff:" {
                self.push(b);
            }
            self.v4(u32::from(v4));
            return;
        }
        let groups = ip.segments();
        let (zero_at, zero_len) = longest_zero_run(&groups);
        let mut i = 0;
        while i < 8 {
            if zero_len > 1 && i == zero_at {
                self.push(b':');
                self.push(b':');
                i += zero_len;
                continue;
            }
            if i > 0 && !(zero_len > 1 && i == zero_at + zero_len) {
                self.push(b':');
            }
            self.hex(groups[i]);
            i += 1;
        }
    }
}

/// Start and length of the first longest run of zero groups.
fn longest_zero_run(groups: &[u16; 8]) -> (usize, usize) {
    let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
    for (i, g) in groups.iter().enumerate() {
        if *g == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                best = run;
                best_len = run_len;
            }
        } else {
            run_len = 0;
        }
    }
    (best, best_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(ip: IpAddr) {
        assert_eq!(AddrText::ip(ip).as_str(), ip.to_string());
    }

    #[test]
    fn special_forms() {
        for text in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "::",
            "::1",
            "1::",
            "1::1",
            "1:0:0:1::",
            "2001:db8::1",
            "2001:db8:0:1:1:1:1:1",
            "::ffff:1.2.3.4",
            "1:0:1:0:1:0:1:0",
            "0:1:0:0:1:0:0:0",
            "fe80::1:0:0:0",
            "2606:4700:4700::1111",
        ] {
            same(text.parse().unwrap());
        }
        assert_eq!(
            AddrText::cidr("10.0.0.0".parse().unwrap(), 8).as_str(),
            "10.0.0.0/8"
        );
        assert_eq!(
            AddrText::cidr("::".parse().unwrap(), 128).as_str(),
            "::/128"
        );
    }

    proptest! {
        #[test]
        fn v4_matches_display(bits: u32) {
            same(IpAddr::V4(bits.into()));
        }

        #[test]
        fn v6_matches_display(groups in prop::array::uniform8(prop_oneof![Just(0u16), Just(1u16), any::<u16>()])) {
            same(IpAddr::V6(Ipv6Addr::from(groups)));
        }

        #[test]
        fn v6_random_matches_display(bits: u128) {
            same(IpAddr::V6(bits.into()));
        }
    }
}

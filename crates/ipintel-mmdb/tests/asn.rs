//! AS databases read back with the `maxminddb` crate as `geoip2::Asn`.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::net::IpAddr;

use ipintel_core::IpRange;
use ipintel_mmdb::asn::{write_asn_database, DATABASE_TYPE};
use maxminddb::{geoip2, Reader};

fn r(text: &str) -> IpRange {
    IpRange::from_cidr(text).unwrap()
}

fn written(rows: &[(IpRange, u32, &str)]) -> Reader<Vec<u8>> {
    let mut bytes = Vec::new();
    write_asn_database(rows.iter().copied(), &mut bytes, 1_750_000_000).unwrap();
    Reader::from_source(bytes).unwrap()
}

fn asn_of(reader: &Reader<Vec<u8>>, ip: &str) -> Option<(u32, String)> {
    let ip: IpAddr = ip.parse().unwrap();
    let asn: geoip2::Asn<'_> = reader.lookup(ip).unwrap().decode().unwrap()?;
    Some((
        asn.autonomous_system_number.unwrap(),
        asn.autonomous_system_organization.unwrap().to_owned(),
    ))
}

#[test]
fn rows_of_both_families_read_back_in_the_asn_layout() {
    let reader = written(&[
        (r("8.8.8.0/24"), 15169, "GOOGLE"),
        (r("1.1.1.0/24"), 13335, "CLOUDFLARENET"),
        (r("2001:4860::/32"), 15169, "GOOGLE"),
    ]);

    assert_eq!(reader.metadata().database_type, DATABASE_TYPE);
    assert_eq!(asn_of(&reader, "8.8.8.8"), Some((15169, "GOOGLE".into())));
    assert_eq!(
        asn_of(&reader, "1.1.1.255"),
        Some((13335, "CLOUDFLARENET".into()))
    );
    assert_eq!(
        asn_of(&reader, "2001:4860::8888"),
        Some((15169, "GOOGLE".into()))
    );
    assert_eq!(asn_of(&reader, "8.8.9.0"), None);
    assert_eq!(asn_of(&reader, "2001:4861::"), None);
}

#[test]
fn a_nested_row_loses_to_the_row_that_starts_first() {
    let reader = written(&[
        (r("10.0.0.0/8"), 64500, "OUTER"),
        (r("10.1.0.0/16"), 64501, "INNER"),
        (r("11.0.0.0/8"), 64502, "NEXT"),
    ]);

    assert_eq!(asn_of(&reader, "10.1.2.3"), Some((64500, "OUTER".into())));
    assert_eq!(asn_of(&reader, "11.0.0.1"), Some((64502, "NEXT".into())));
}

//! DB-IP city databases in MaxMind DB format.
//!
//! Records carry `city`, `country_code`, `latitude`, `longitude`,
//! `postcode`, `state1`, `state2` and `timezone`; `state1` becomes the
//! region, empty strings become `None`, and the time zone is derived from
//! the coordinates (see [`crate::tz`]). Each distinct data record (by its
//! offset in the data section) is decoded once.

use std::path::Path;

use ipintel_core::{GeoData, GeoRanges, IpRange};
use maxminddb::{Reader, WithinOptions};
use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::error::DataError;
use crate::tz::TzResolver;

/// Geo ranges of one database with their locations interned.
#[derive(Debug, Default)]
pub struct GeoBatch {
    /// Distinct locations.
    pub locations: Vec<GeoData>,
    /// Ranges naming a location by index; adjacent networks with the same
    /// record are merged.
    pub ranges: GeoRanges,
}

#[derive(Deserialize)]
struct DbipRecord<'a> {
    #[serde(borrow)]
    city: Option<&'a str>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(default, deserialize_with = "coordinate")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "coordinate")]
    longitude: Option<f64>,
    #[serde(borrow)]
    state1: Option<&'a str>,
}

/// Accepts a coordinate stored as `float` or `double`. A `float` is
/// widened through its shortest decimal form, so `37.422f32` becomes
/// `37.422` rather than `37.42200088500977`.
fn coordinate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a float or double coordinate")
        }

        fn visit_f32<E: serde::de::Error>(self, v: f32) -> Result<Self::Value, E> {
            Ok(widen(v).filter(|x| x.is_finite()))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v).filter(|x| x.is_finite()))
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(Visitor)
        }
    }
    d.deserialize_option(Visitor)
}

/// `v` through its shortest decimal form, written on the stack (this runs
/// for every coordinate of a city database).
fn widen(v: f32) -> Option<f64> {
    use std::io::Write;
    let mut buf = [0u8; 64];
    let mut rest = &mut buf[..];
    write!(rest, "{v}").ok()?;
    let len = 64 - rest.len();
    std::str::from_utf8(&buf[..len]).ok()?.parse().ok()
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The location of a record, its time zone still unset.
fn location(record: &DbipRecord<'_>) -> GeoData {
    GeoData {
        country: non_empty(record.country_code).map(|c| c.to_ascii_uppercase()),
        region: non_empty(record.state1),
        city: non_empty(record.city),
        latitude: record.latitude,
        longitude: record.longitude,
        timezone: None,
    }
}

/// Derives each location's zone from its coordinates and country.
fn add_timezones(batch: &mut GeoBatch, tz: &TzResolver) {
    for geo in &mut batch.locations {
        if let (Some(c), Some(lat), Some(lon)) = (&geo.country, geo.latitude, geo.longitude) {
            geo.timezone = tz.resolve(lat, lon, c).map(str::to_owned);
        }
    }
}

fn mmdb_error(file: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::parse(file, 0, format!("mmdb: {e}"))
}

/// Reads every network of a DB-IP (flat record) database.
pub fn parse_dbip_mmdb(
    file: &Path,
    bytes: Vec<u8>,
    tz: &TzResolver,
) -> Result<GeoBatch, DataError> {
    dbip_mmdb(file, bytes, || tz)
}

/// [`parse_dbip_mmdb`], asking for the zone index only once every
/// network is read.
pub(crate) fn dbip_mmdb<'t>(
    file: &Path,
    bytes: Vec<u8>,
    tz: impl FnOnce() -> &'t TzResolver,
) -> Result<GeoBatch, DataError> {
    let reader = Reader::from_source(bytes).map_err(|e| mmdb_error(file, e))?;
    let mut batch = read_networks(file, &reader, |r: DbipRecord<'_>| location(&r))?;
    add_timezones(&mut batch, tz());
    Ok(batch)
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(default, deserialize_with = "coordinate")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "coordinate")]
    longitude: Option<f64>,
}

/// The part of a MaxMind GeoLite2/GeoIP2 City record that ipintel uses.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    city: Option<Named<'a>>,
    #[serde(borrow, default)]
    subdivisions: Vec<Named<'a>>,
    location: Option<Location>,
}

fn english<'a>(n: Option<&Named<'a>>) -> Option<&'a str> {
    n.and_then(|n| n.names.as_ref()).and_then(|n| n.en)
}

/// Reads every network of a MaxMind GeoLite2/GeoIP2 City database
/// (`country.iso_code`, English city and first subdivision names,
/// `location.latitude/longitude`; the zone is derived as for DB-IP).
pub fn parse_geolite2_city_mmdb(
    file: &Path,
    bytes: Vec<u8>,
    tz: &TzResolver,
) -> Result<GeoBatch, DataError> {
    geolite2_city_mmdb(file, bytes, || tz)
}

/// [`parse_geolite2_city_mmdb`], asking for the zone index only once
/// every network is read.
pub(crate) fn geolite2_city_mmdb<'t>(
    file: &Path,
    bytes: Vec<u8>,
    tz: impl FnOnce() -> &'t TzResolver,
) -> Result<GeoBatch, DataError> {
    let reader = Reader::from_source(bytes).map_err(|e| mmdb_error(file, e))?;
    let mut batch = read_networks(file, &reader, |r: CityRecord<'_>| {
        let flat = DbipRecord {
            city: english(r.city.as_ref()),
            country_code: r.country.as_ref().and_then(|c| c.iso_code),
            latitude: r.location.as_ref().and_then(|l| l.latitude),
            longitude: r.location.as_ref().and_then(|l| l.longitude),
            state1: english(r.subdivisions.first()),
        };
        location(&flat)
    })?;
    add_timezones(&mut batch, tz());
    Ok(batch)
}

/// Walks every network of `reader`, decoding each distinct record once.
fn read_networks<'r, T, F>(
    file: &Path,
    reader: &'r Reader<Vec<u8>>,
    mut to_geo: F,
) -> Result<GeoBatch, DataError>
where
    T: Deserialize<'r>,
    F: FnMut(T) -> GeoData,
{
    let mut batch = GeoBatch::default();
    let mut by_offset: FxHashMap<usize, u32> = FxHashMap::default();
    let networks = reader
        .networks(WithinOptions::default())
        .map_err(|e| mmdb_error(file, e))?;
    for item in networks {
        let item = item.map_err(|e| mmdb_error(file, e))?;
        let Some(offset) = item.offset() else {
            continue;
        };
        let net = item.network().map_err(|e| mmdb_error(file, e))?;
        let range =
            IpRange::from_prefix(net.ip(), net.prefix()).map_err(|e| mmdb_error(file, e))?;
        let id = match by_offset.get(&offset) {
            Some(id) => *id,
            None => {
                let record: T = item
                    .decode()
                    .map_err(|e| mmdb_error(file, e))?
                    .ok_or_else(|| mmdb_error(file, "network without data"))?;
                let id = u32::try_from(batch.locations.len()).unwrap_or(u32::MAX);
                batch.locations.push(to_geo(record));
                by_offset.insert(offset, id);
                id
            }
        };
        batch.ranges.push(range, id);
    }
    Ok(batch)
}

/// Geo CSV ranges in the ip-location-db city layout, without a header:
/// `first,last,country_code,state1,state2,city,postcode,latitude,longitude[,timezone]`.
/// Empty fields are `None`; the zone is derived from the coordinates.
pub fn parse_geo_csv(file: &Path, text: &str, tz: &TzResolver) -> Result<GeoBatch, DataError> {
    geo_csv(file, text, || tz)
}

/// [`parse_geo_csv`], asking for the zone index only once every row is
/// read.
pub(crate) fn geo_csv<'t>(
    file: &Path,
    text: &str,
    tz: impl FnOnce() -> &'t TzResolver,
) -> Result<GeoBatch, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut batch = GeoBatch::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(DataError::parse(file, line, format!("CSV: {e}"))),
        }
        let line = record.position().map_or(line, |p| p.line());
        let (range, flat) = geo_row(&record).map_err(|m| DataError::parse(file, line, m))?;
        let id = u32::try_from(batch.locations.len()).unwrap_or(u32::MAX);
        batch.locations.push(location(&flat));
        batch.ranges.push(range, id);
    }
    add_timezones(&mut batch, tz());
    Ok(batch)
}

fn geo_row(record: &csv::StringRecord) -> Result<(IpRange, DbipRecord<'_>), String> {
    if !(9..=10).contains(&record.len()) {
        return Err(format!(
            "expected 9 or 10 fields (first,last,country,state1,state2,city,postcode,lat,lon[,tz]), got {}",
            record.len()
        ));
    }
    let ip = |i: usize| {
        ipintel_core::addr::parse_ip_exact(&record[i])
            .map_err(|e| format!("address {:?}: {e}", &record[i]))
    };
    let range = IpRange::new(ip(0)?, ip(1)?).map_err(|e| format!("range: {e}"))?;
    let coord = |i: usize| -> Result<Option<f64>, String> {
        match record[i].trim() {
            "" => Ok(None),
            t => t
                .parse::<f64>()
                .map(Some)
                .map_err(|_| format!("coordinate {t:?} is not a number")),
        }
    };
    let flat = DbipRecord {
        country_code: Some(&record[2]),
        state1: Some(&record[3]),
        city: Some(&record[5]),
        latitude: coord(7)?,
        longitude: coord(8)?,
    };
    Ok((range, flat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adjacent_ranges() {
        let mut v = GeoRanges::new();
        v.push(IpRange::from_cidr("1.0.0.0/24").unwrap(), 1);
        v.push(IpRange::from_cidr("1.0.1.0/24").unwrap(), 1);
        v.push(IpRange::from_cidr("1.0.2.0/24").unwrap(), 2);
        v.push(IpRange::from_cidr("1.0.4.0/24").unwrap(), 2);
        v.push(IpRange::from_cidr("2a01::/32").unwrap(), 2);
        v.push(IpRange::from_cidr("2a01:1::/32").unwrap(), 2);
        v.push(IpRange::from_cidr("2a01:3::/32").unwrap(), 2);
        let got: Vec<String> = v.iter().map(|(r, i)| format!("{r}#{i}")).collect();
        assert_eq!(
            got,
            [
                "1.0.0.0-1.0.1.255#1",
                "1.0.2.0-1.0.2.255#2",
                "1.0.4.0-1.0.4.255#2",
                "2a01::-2a01:1:ffff:ffff:ffff:ffff:ffff:ffff#2",
                "2a01:3::-2a01:3:ffff:ffff:ffff:ffff:ffff:ffff#2",
            ]
        );
    }

    #[test]
    fn float_coordinates_widen_through_their_shortest_form() {
        for v in [
            37.422f32,
            -122.085,
            0.0,
            -0.0,
            1e-7,
            89.99999,
            f32::MAX,
            f32::MIN,
        ] {
            assert_eq!(widen(v), v.to_string().parse::<f64>().ok(), "{v}");
        }
        assert_eq!(widen(37.422), Some(37.422));
        assert!(widen(f32::NAN).is_some_and(f64::is_nan));
    }

    #[test]
    fn geo_csv_rows() {
        let tz = TzResolver::new();
        let text = "1.0.0.0,1.0.0.255,AU,Queensland,,South Brisbane,,-27.48,153.02\n\
                    2001:db8::,2001:db8::ffff,US,California,,\"Mountain View, CA\",,37.4,-122.1,\n";
        let b = parse_geo_csv(Path::new("g.csv"), text, &tz).unwrap();
        assert_eq!(b.ranges.len(), 2);
        assert_eq!(b.locations[0].country.as_deref(), Some("AU"));
        assert_eq!(
            b.locations[0].timezone.as_deref(),
            Some("Australia/Brisbane")
        );
        assert_eq!(b.locations[1].city.as_deref(), Some("Mountain View, CA"));
        let err = parse_geo_csv(Path::new("g.csv"), "1.0.0.0,1.0.0.255,AU,,,,,x,1\n", &tz)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("g.csv:1:"), "{err}");
    }

    #[test]
    fn broken_database_is_an_error() {
        let tz = TzResolver::new();
        let err =
            parse_dbip_mmdb(Path::new("x.mmdb"), b"not a database".to_vec(), &tz).unwrap_err();
        assert!(err.to_string().starts_with("x.mmdb:0: mmdb:"), "{err}");
    }

    /// Runs the MaxMind test corpus through the reader when
    /// `IPINTEL_SHARED_DIR` points at a directory holding
    /// `maxmind-db-test-data`; skipped otherwise. Every corrupt database must
    /// be refused with an error (never a panic, never partial data), and the
    /// well-formed ones must not panic.
    #[test]
    fn maxmind_test_corpus_if_present() {
        let Some(dir) = std::env::var_os("IPINTEL_SHARED_DIR") else {
            return;
        };
        let base = Path::new(&dir).join("maxmind-db-test-data");
        let tz = TzResolver::new();
        for (sub, must_fail) in [("bad-data", true), ("test-data", false)] {
            let Ok(entries) = std::fs::read_dir(base.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "mmdb") {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let city = path.to_string_lossy().contains("City");
                let result = if city {
                    parse_geolite2_city_mmdb(&path, bytes, &tz)
                } else {
                    parse_dbip_mmdb(&path, bytes, &tz)
                };
                eprintln!(
                    "{}: {}",
                    path.display(),
                    result
                        .as_ref()
                        .map_or_else(|e| e.to_string(), |b| format!("{} ranges", b.ranges.len()))
                );
                let broken = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("broken"));
                if must_fail || broken {
                    assert!(result.is_err(), "{} was accepted", path.display());
                }
            }
        }
    }
}

//! DB-IP city databases in MaxMind DB format.
//!
//! Records carry `city`, `country_code`, `latitude`, `longitude`,
//! `postcode`, `state1`, `state2` and `timezone`; `state1` becomes the
//! region, empty strings become `None`, and the time zone is derived from
//! the coordinates (see [`crate::tz`]). Each distinct data record (by its
//! offset in the data section) is decoded once.

use std::collections::HashMap;
use std::path::Path;

use ipintel_core::{GeoData, IpRange};
use maxminddb::{Reader, WithinOptions};
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
    pub ranges: Vec<(IpRange, u32)>,
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
            Ok(v.to_string().parse::<f64>().ok().filter(|x| x.is_finite()))
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

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn location(record: &DbipRecord<'_>, tz: &TzResolver) -> GeoData {
    let country = non_empty(record.country_code).map(|c| c.to_ascii_uppercase());
    let timezone = match (&country, record.latitude, record.longitude) {
        (Some(c), Some(lat), Some(lon)) => tz.resolve(lat, lon, c).map(str::to_owned),
        _ => None,
    };
    GeoData {
        country,
        region: non_empty(record.state1),
        city: non_empty(record.city),
        latitude: record.latitude,
        longitude: record.longitude,
        timezone,
    }
}

fn mmdb_error(file: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::parse(file, 0, format!("mmdb: {e}"))
}

/// Reads every network of the database.
pub fn parse_dbip_mmdb(
    file: &Path,
    bytes: Vec<u8>,
    tz: &TzResolver,
) -> Result<GeoBatch, DataError> {
    let reader = Reader::from_source(bytes).map_err(|e| mmdb_error(file, e))?;
    let mut batch = GeoBatch::default();
    let mut by_offset: HashMap<usize, u32> = HashMap::new();
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
                let record: DbipRecord<'_> = item
                    .decode()
                    .map_err(|e| mmdb_error(file, e))?
                    .ok_or_else(|| mmdb_error(file, "network without data"))?;
                let id = u32::try_from(batch.locations.len()).unwrap_or(u32::MAX);
                batch.locations.push(location(&record, tz));
                by_offset.insert(offset, id);
                id
            }
        };
        push_merged(&mut batch.ranges, range, id);
    }
    Ok(batch)
}

/// Appends, or extends the last range when it is adjacent with the same id.
fn push_merged(ranges: &mut Vec<(IpRange, u32)>, range: IpRange, id: u32) {
    if let Some((last, last_id)) = ranges.last_mut() {
        if *last_id == id {
            match (last, range) {
                (
                    IpRange::V4 { last: end, .. },
                    IpRange::V4 {
                        first,
                        last: new_end,
                    },
                ) if u32::from(*end).checked_add(1) == Some(u32::from(first)) => {
                    *end = new_end;
                    return;
                }
                (
                    IpRange::V6 { last: end, .. },
                    IpRange::V6 {
                        first,
                        last: new_end,
                    },
                ) if u128::from(*end).checked_add(1) == Some(u128::from(first)) => {
                    *end = new_end;
                    return;
                }
                _ => {}
            }
        }
    }
    ranges.push((range, id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adjacent_ranges() {
        let mut v = Vec::new();
        push_merged(&mut v, IpRange::from_cidr("1.0.0.0/24").unwrap(), 1);
        push_merged(&mut v, IpRange::from_cidr("1.0.1.0/24").unwrap(), 1);
        push_merged(&mut v, IpRange::from_cidr("1.0.2.0/24").unwrap(), 2);
        push_merged(&mut v, IpRange::from_cidr("1.0.4.0/24").unwrap(), 2);
        let got: Vec<String> = v.iter().map(|(r, i)| format!("{r}#{i}")).collect();
        assert_eq!(
            got,
            [
                "1.0.0.0-1.0.1.255#1",
                "1.0.2.0-1.0.2.255#2",
                "1.0.4.0-1.0.4.255#2"
            ]
        );
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
                let result = parse_dbip_mmdb(&path, bytes, &tz);
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

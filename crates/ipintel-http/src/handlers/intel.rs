//! `GET /v1/ip/country/{cc}` and `GET /v1/ip/asn/{asn}`: aggregates
//! precomputed with the snapshot, plus the report statistics of the area.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use ipintel_core::{country_name, AsnView, ConnectionType, FamilyFigures, TopNetwork};
use ipintel_store::{AreaReportStats, KeyHandle};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::clock::now_unix;
use crate::error::ApiError;
use crate::openapi::schemas::{AsnIntel, CountryIntel, ErrorEnvelope};
use crate::reply;
use crate::state::AppState;

/// Most prefixes listed in an AS answer; `prefixes_total` has them all.
pub(crate) const PREFIX_LIMIT: usize = 1000;

type TextPath = Result<Path<String>, PathRejection>;

/// An address count: a JSON number for IPv4, a decimal string for IPv6
/// (whose counts exceed what JSON numbers carry exactly).
#[derive(Debug, Clone, Copy)]
struct Count {
    value: u128,
    v6: bool,
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(self.value) {
            Ok(n) if !self.v6 => s.serialize_u64(n),
            _ => s.collect_str(&self.value),
        }
    }
}

/// Flagged addresses of one kind and their share of the family's addresses.
#[derive(Debug, Serialize)]
struct Flagged {
    addresses: Count,
    share: f64,
}

/// The figures of one family, flag kinds in [`ipintel_core::FLAG_KINDS`] order.
#[derive(Debug)]
struct Family<'a> {
    figures: &'a FamilyFigures,
    v6: bool,
    prefixes: Option<u64>,
}

impl Serialize for Family<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = if self.prefixes.is_some() { 4 } else { 3 };
        let mut st = s.serialize_struct("Family", fields)?;
        st.serialize_field("networks", &self.figures.networks)?;
        if let Some(p) = self.prefixes {
            st.serialize_field("prefixes", &p)?;
        }
        st.serialize_field("addresses", &self.count(self.figures.addresses))?;
        st.serialize_field("flagged", &FlagMap(self))?;
        st.end()
    }
}

impl Family<'_> {
    fn count(&self, value: u128) -> Count {
        Count { value, v6: self.v6 }
    }

    fn flagged(&self, value: u128) -> Flagged {
        let total = self.figures.addresses;
        let share = if total == 0 {
            0.0
        } else {
            value as f64 / total as f64
        };
        Flagged {
            addresses: self.count(value),
            share,
        }
    }
}

struct FlagMap<'a, 'b>(&'b Family<'a>);

impl Serialize for FlagMap<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Flagged", ipintel_core::FLAG_KINDS.len())?;
        let flagged = self.0.figures.flagged();
        for (kind, value) in ipintel_core::FLAG_KINDS.iter().zip(flagged) {
            st.serialize_field(kind, &self.0.flagged(value))?;
        }
        st.end()
    }
}

#[derive(Debug, Serialize)]
struct Network<'a> {
    asn: u32,
    name: &'a str,
    addresses: Count,
}

fn networks<'a>(list: &[TopNetwork<'a>], v6: bool) -> Vec<Network<'a>> {
    list.iter()
        .map(|t| Network {
            asn: t.asn,
            name: t.name,
            addresses: Count {
                value: t.addresses,
                v6,
            },
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct TopNetworks<'a> {
    ipv4: Vec<Network<'a>>,
    ipv6: Vec<Network<'a>>,
}

#[derive(Debug, Serialize)]
struct CountryAnswer<'a> {
    country: String,
    name: Option<&'static str>,
    ipv4: Family<'a>,
    ipv6: Family<'a>,
    top_networks: TopNetworks<'a>,
    reports: AreaReportStats,
}

#[derive(Debug, Serialize)]
struct AsnAnswer<'a> {
    asn: u32,
    name: &'a str,
    country: Option<&'a str>,
    country_name: Option<&'static str>,
    connection_type: Option<ConnectionType>,
    ipv4: Family<'a>,
    ipv6: Family<'a>,
    prefixes: Vec<String>,
    prefixes_total: u64,
    prefixes_truncated: bool,
    reports: AreaReportStats,
}

fn path_text(path: TextPath, invalid: impl Fn(String) -> ApiError) -> Result<String, ApiError> {
    let Path(text) = path.map_err(|rejection| {
        tracing::debug!(%rejection, "path segment rejected");
        invalid("the path segment is not valid percent-encoded UTF-8".into())
    })?;
    Ok(text)
}

/// `cc` as an upper-case code: exactly two ASCII letters.
pub(crate) fn parse_country(text: &str) -> Result<String, ApiError> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Ok(text.to_ascii_uppercase());
    }
    Err(ApiError::InvalidCountry(
        "a country is an ISO 3166-1 alpha-2 code: two letters".into(),
    ))
}

/// `AS15169`, `as15169` or `15169`: decimal digits without a leading
/// zero, within 32 bits, after an optional `AS` in any case.
pub(crate) fn parse_asn(text: &str) -> Result<u32, ApiError> {
    let digits = match text.get(..2) {
        Some(p) if p.eq_ignore_ascii_case("as") => &text[2..],
        _ => text,
    };
    let plain = !digits.is_empty()
        && digits.len() <= 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    plain
        .then(|| digits.parse::<u32>().ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::InvalidAsn("an AS number is 0..4294967295, written 15169 or AS15169".into())
        })
}

/// Aggregates of one country.
#[utoipa::path(
    get,
    path = "/v1/ip/country/{cc}",
    tag = "intel",
    operation_id = "country_intel",
    summary = "Addresses, networks, flagged space and reports of one country",
    description = "Counts from the loaded data, precomputed when the snapshot is built: \
        geo ranges and addresses per family, addresses flagged per kind with their \
        share, the networks (ASes) with the most addresses there, and abuse reports \
        of the last day and week. IPv4 counts are numbers, IPv6 counts decimal \
        strings. A valid code the data does not place anywhere answers zeros. \
        Counts one lookup.",
    params(("cc" = String, Path, description = "ISO 3166-1 alpha-2 code, any case")),
    responses(
        (status = 200, description = "The country's figures", body = CountryIntel),
        (status = 400, description = "`invalid_country`: not two letters (not counted)", body = ErrorEnvelope),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_country`: no such code and none in the data (not counted)", body = ErrorEnvelope),
        (status = 429, description = "`quota_exceeded`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn country(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    path: TextPath,
) -> Result<Response, ApiError> {
    let code = parse_country(&path_text(path, ApiError::InvalidCountry)?)?;
    let snapshot = state.snapshot.load();
    let view = snapshot.country_intel(&code);
    let name = country_name(&code);
    if view.is_none() && name.is_none() {
        return Err(ApiError::UnknownCountry);
    }
    state.accounts.charge(&key, 1, now_unix()).await?;
    state.metrics.lookup(key.plan());
    let zero = FamilyFigures::default();
    let (v4, v6) = view.as_ref().map_or((&zero, &zero), |v| (v.v4, v.v6));
    let answer = CountryAnswer {
        name,
        ipv4: Family {
            figures: v4,
            v6: false,
            prefixes: None,
        },
        ipv6: Family {
            figures: v6,
            v6: true,
            prefixes: None,
        },
        top_networks: TopNetworks {
            ipv4: view
                .as_ref()
                .map_or_else(Vec::new, |v| networks(&v.top_v4, false)),
            ipv6: view
                .as_ref()
                .map_or_else(Vec::new, |v| networks(&v.top_v6, true)),
        },
        reports: state.reports.country_stats(&code, now_unix()),
        country: code,
    };
    Ok(reply::ok(&answer))
}

/// Aggregates of one autonomous system.
#[utoipa::path(
    get,
    path = "/v1/ip/asn/{asn}",
    tag = "intel",
    operation_id = "asn_intel",
    summary = "Name, country, prefixes, flagged space and reports of one AS",
    description = "Counts from the loaded data, precomputed when the snapshot is built. \
        `networks` counts the AS's ranges (adjacent ranges merged), `prefixes` the CIDR \
        blocks exactly covering them; at most 1000 prefixes are listed, IPv4 first. \
        The country is the one holding most of its addresses (IPv4 decides when the AS \
        has any); the connection type is datacenter or cdn when most of its space is. \
        An unknown AS answers 404 at once. Counts one lookup.",
    params(("asn" = String, Path, description = "AS number: `15169`, `AS15169` or `as15169`")),
    responses(
        (status = 200, description = "The AS's figures", body = AsnIntel),
        (status = 400, description = "`invalid_asn` (not counted)", body = ErrorEnvelope),
        (status = 401, description = "`missing_api_key` or `invalid_api_key`", body = ErrorEnvelope),
        (status = 403, description = "`revoked_api_key`", body = ErrorEnvelope),
        (status = 404, description = "`unknown_asn`: the data has no range of this AS (not counted)", body = ErrorEnvelope),
        (status = 429, description = "`quota_exceeded`", body = ErrorEnvelope),
        (status = 503, description = "`store_unavailable`", body = ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn asn(
    State(state): State<AppState>,
    Extension(key): Extension<KeyHandle>,
    path: TextPath,
) -> Result<Response, ApiError> {
    let asn = parse_asn(&path_text(path, ApiError::InvalidAsn)?)?;
    let snapshot = state.snapshot.load();
    let view = snapshot.asn_intel(asn).ok_or(ApiError::UnknownAsn)?;
    state.accounts.charge(&key, 1, now_unix()).await?;
    state.metrics.lookup(key.plan());
    let reports = state.reports.asn_stats(asn, now_unix());
    Ok(reply::ok(&asn_answer(&view, reports)))
}

fn asn_answer<'a>(view: &AsnView<'a>, reports: AreaReportStats) -> AsnAnswer<'a> {
    let total = view.prefix_counts[0] + view.prefix_counts[1];
    let prefixes: Vec<String> = view
        .prefixes(PREFIX_LIMIT)
        .iter()
        .map(ToString::to_string)
        .collect();
    AsnAnswer {
        asn: view.asn,
        name: view.name,
        country: view.country,
        country_name: view.country.and_then(country_name),
        connection_type: view.connection_type,
        ipv4: Family {
            figures: view.v4,
            v6: false,
            prefixes: Some(view.prefix_counts[0]),
        },
        ipv6: Family {
            figures: view.v6,
            v6: true,
            prefixes: Some(view.prefix_counts[1]),
        },
        prefixes_truncated: (prefixes.len() as u64) < total,
        prefixes,
        prefixes_total: total,
        reports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn_spellings() {
        for ok in ["AS15169", "as15169", "As15169", "15169", "0", "4294967295"] {
            assert!(parse_asn(ok).is_ok(), "{ok}");
        }
        assert_eq!(parse_asn("AS15169").ok(), Some(15169));
        for bad in [
            "",
            "AS",
            "AS-1",
            "015169",
            "4294967296",
            "15169x",
            "+1",
            "AS 1",
            "ASN1",
            " 1",
        ] {
            assert!(parse_asn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn country_spellings() {
        assert_eq!(parse_country("us").ok().as_deref(), Some("US"));
        for bad in ["", "u", "usa", "1a", "é"] {
            assert!(parse_country(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_counts_are_strings() {
        let big = Count {
            value: 1u128 << 100,
            v6: true,
        };
        assert_eq!(
            serde_json::to_string(&big).ok().as_deref(),
            Some("\"1267650600228229401496703205376\"")
        );
        let small = Count {
            value: 42,
            v6: false,
        };
        assert_eq!(serde_json::to_string(&small).ok().as_deref(), Some("42"));
    }
}

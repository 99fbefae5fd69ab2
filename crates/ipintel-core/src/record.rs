//! The lookup result and its JSON form (contract section 1).

use std::net::IpAddr;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::range::Cidr;
use crate::reports::ReportSummary;
use crate::reserved::ReservedRange;
use crate::score::ThreatLevel;
use crate::text::AddrText;
use crate::threat::{ConnectionType, FlagDetailsMap, Flags, ThreatInfo, ThreatSummary};

/// Location part of a record; every field is `None` when unknown.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct GeoView<'a> {
    /// ISO 3166-1 alpha-2 code.
    pub country: Option<&'a str>,
    /// English country name.
    pub country_name: Option<&'a str>,
    /// Region (state, province).
    pub region: Option<&'a str>,
    /// City.
    pub city: Option<&'a str>,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
    /// IANA time zone.
    pub timezone: Option<&'a str>,
    /// Largest CIDR holding the address inside the matched geo range
    /// (adjacent ranges with identical location data count as one range).
    pub network: Option<Cidr>,
}

/// Network part of a record; every field is `None` when unknown.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct NetworkView<'a> {
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// AS holder name.
    pub isp: Option<&'a str>,
    /// Provider named by a range source, else the AS holder.
    pub org: Option<&'a str>,
    /// `datacenter`, `cdn`, or unknown.
    pub connection_type: Option<ConnectionType>,
    /// Largest CIDR holding the address inside the matched AS range
    /// (adjacent ranges of the same AS and holder count as one range).
    pub prefix: Option<Cidr>,
}

/// Everything known about one address, borrowing from the snapshot.
/// Serializes to the full JSON record.
#[derive(Debug, Clone, Copy)]
pub struct IpRecord<'a> {
    /// The address (IPv4-mapped IPv6 already turned into IPv4).
    pub ip: IpAddr,
    /// The special-purpose range, if the address is reserved.
    pub reserved: Option<&'static ReservedRange>,
    /// Location.
    pub geo: GeoView<'a>,
    /// AS and provider.
    pub network: NetworkView<'a>,
    /// Score, reasons and flags.
    pub threat: &'a ThreatInfo,
    /// Abuse reports about the address (its /64 for IPv6), if any; set by
    /// [`IpRecord::with_reports`].
    pub reports: Option<&'a ReportSummary>,
}

impl<'a> IpRecord<'a> {
    pub(crate) fn reserved(
        ip: IpAddr,
        range: &'static ReservedRange,
        empty: &'a ThreatInfo,
    ) -> Self {
        IpRecord {
            ip,
            reserved: Some(range),
            geo: GeoView::default(),
            network: NetworkView::default(),
            threat: empty,
            reports: None,
        }
    }

    /// This record with its reports overlaid: `threat` is the verdict that
    /// [`ThreatInfo::with_reports`] made from this record's own, and
    /// `reports` the summary shown under `threat.reports`. Reserved
    /// addresses cannot be reported and are returned unchanged.
    pub fn with_reports<'b>(
        &self,
        threat: &'b ThreatInfo,
        reports: &'b ReportSummary,
    ) -> IpRecord<'b>
    where
        'a: 'b,
    {
        if self.reserved.is_some() {
            return *self;
        }
        IpRecord {
            threat,
            reports: Some(reports),
            ..*self
        }
    }

    /// 4 or 6.
    pub fn ip_version(&self) -> u8 {
        if self.ip.is_ipv4() {
            4
        } else {
            6
        }
    }

    /// Country code.
    pub fn country(&self) -> Option<&'a str> {
        self.geo.country
    }

    /// Time zone.
    pub fn timezone(&self) -> Option<&'a str> {
        self.geo.timezone
    }

    /// AS number.
    pub fn asn(&self) -> Option<u32> {
        self.network.asn
    }

    /// AS holder.
    pub fn isp(&self) -> Option<&'a str> {
        self.network.isp
    }

    /// Threat score.
    pub fn score(&self) -> u8 {
        self.threat.score
    }

    /// Threat level.
    pub fn level(&self) -> ThreatLevel {
        self.threat.level
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        self.threat.flags
    }

    /// `{ip, ip_version, reserved, geo}`.
    pub fn geo_view(&self) -> impl Serialize + '_ {
        GeoOnly(self)
    }

    /// `{ip, ip_version, reserved, threat, flags, flag_details}`.
    pub fn threat_view(&self) -> impl Serialize + '_ {
        ThreatOnly(self)
    }
}

impl Serialize for IpRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("IpRecord", 9)?;
        st.serialize_field("ip", AddrText::ip(self.ip).as_str())?;
        st.serialize_field("ip_version", &self.ip_version())?;
        st.serialize_field("hostname", &None::<&str>)?;
        st.serialize_field("reserved", &self.reserved)?;
        st.serialize_field("geo", &self.geo)?;
        st.serialize_field("network", &self.network)?;
        st.serialize_field("threat", &ThreatSummary(self.threat, self.reports))?;
        st.serialize_field("flags", &self.threat.flags)?;
        st.serialize_field("flag_details", &FlagDetailsMap(&self.threat.flag_details))?;
        st.end()
    }
}

struct GeoOnly<'r, 'a>(&'r IpRecord<'a>);

impl Serialize for GeoOnly<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut st = s.serialize_struct("IpGeo", 4)?;
        st.serialize_field("ip", AddrText::ip(r.ip).as_str())?;
        st.serialize_field("ip_version", &r.ip_version())?;
        st.serialize_field("reserved", &r.reserved)?;
        st.serialize_field("geo", &r.geo)?;
        st.end()
    }
}

struct ThreatOnly<'r, 'a>(&'r IpRecord<'a>);

impl Serialize for ThreatOnly<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut st = s.serialize_struct("IpThreat", 6)?;
        st.serialize_field("ip", AddrText::ip(r.ip).as_str())?;
        st.serialize_field("ip_version", &r.ip_version())?;
        st.serialize_field("reserved", &r.reserved)?;
        st.serialize_field("threat", &ThreatSummary(r.threat, r.reports))?;
        st.serialize_field("flags", &r.threat.flags)?;
        st.serialize_field("flag_details", &FlagDetailsMap(&r.threat.flag_details))?;
        st.end()
    }
}

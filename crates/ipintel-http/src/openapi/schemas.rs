//! Schemas of the bodies the API returns, for the OpenAPI document.
//!
//! The record types live in `ipintel-core` and the usage report in
//! `ipintel-store`, which know nothing of OpenAPI. These mirror their JSON
//! form; they are never built. Tests drive the real router and validate its
//! bodies against these schemas, so a drift fails the build.
#![expect(dead_code, reason = "types exist only to describe JSON bodies")]

use utoipa::ToSchema;

/// The error envelope of every error response.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorEnvelope {
    error: ErrorBody,
}

/// The inside of the error envelope.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBody {
    code: ErrorCode,
    /// Human-readable explanation; may change, do not match on it.
    message: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
}

/// Stable machine-readable error codes.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    InvalidIp,
    MissingApiKey,
    InvalidApiKey,
    RevokedApiKey,
    QuotaExceeded,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    StoreUnavailable,
    NotReady,
    Internal,
}

/// Everything known about one address.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IpRecord {
    /// Canonical text of the address (IPv4-mapped IPv6 shown as IPv4).
    ip: String,
    #[schema(minimum = 4, maximum = 6)]
    ip_version: u8,
    /// Always null: no reverse DNS is done in process.
    #[schema(required = true)]
    hostname: Option<String>,
    /// Set when the address is in an IANA special-purpose range.
    #[schema(required = true)]
    reserved: Option<Reserved>,
    geo: Geo,
    network: Network,
    threat: Threat,
    flags: Flags,
    flag_details: FlagDetails,
}

/// The location view: `GET /v1/ip/{ip}/geo`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GeoView {
    ip: String,
    #[schema(minimum = 4, maximum = 6)]
    ip_version: u8,
    #[schema(required = true)]
    reserved: Option<Reserved>,
    geo: Geo,
}

/// The threat view: `GET /v1/ip/{ip}/threat`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThreatView {
    ip: String,
    #[schema(minimum = 4, maximum = 6)]
    ip_version: u8,
    #[schema(required = true)]
    reserved: Option<Reserved>,
    threat: Threat,
    flags: Flags,
    flag_details: FlagDetails,
}

/// An IANA special-purpose range.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reserved {
    /// Registry name, e.g. `Private-Use`.
    name: String,
    /// The range, e.g. `10.0.0.0/8`.
    network: String,
    /// Defining document, e.g. `RFC 1918`.
    rfc: String,
}

/// Location; every field null when the data has none.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Geo {
    /// ISO 3166-1 alpha-2 code.
    #[schema(required = true)]
    country: Option<String>,
    #[schema(required = true)]
    country_name: Option<String>,
    #[schema(required = true)]
    region: Option<String>,
    #[schema(required = true)]
    city: Option<String>,
    #[schema(required = true)]
    latitude: Option<f64>,
    #[schema(required = true)]
    longitude: Option<f64>,
    /// IANA time zone name.
    #[schema(required = true)]
    timezone: Option<String>,
    /// Largest CIDR holding the address inside the matched location range.
    #[schema(required = true)]
    network: Option<String>,
}

/// The network (autonomous system) of the address.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Network {
    #[schema(required = true)]
    asn: Option<u32>,
    /// AS holder name.
    #[schema(required = true)]
    isp: Option<String>,
    /// Provider from a range source, else the AS holder.
    #[schema(required = true)]
    org: Option<String>,
    /// Null when no source says.
    #[schema(required = true)]
    connection_type: Option<ConnectionType>,
    /// Largest CIDR holding the address inside the matched AS range.
    #[schema(required = true)]
    prefix: Option<String>,
}

/// Kind of connection, when a source says.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnectionType {
    Datacenter,
    Cdn,
}

/// Threat score with its reasons.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Threat {
    /// Noisy-OR of the signal weights, 0..=100.
    #[schema(minimum = 0, maximum = 100)]
    score: u8,
    level: ThreatLevel,
    /// True exactly when `level` is `clean`.
    is_clean: bool,
    reasons: Vec<ThreatReason>,
}

/// Level cut-points: clean 0-19, low 20-39, medium 40-59, high 60-79, critical 80-100.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ThreatLevel {
    Clean,
    Low,
    Medium,
    High,
    Critical,
}

/// One matched signal.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThreatReason {
    signal: SignalKind,
    /// Source name, as in `/readyz`.
    source: String,
    #[schema(required = true)]
    provider: Option<String>,
    /// Date of the source's data (YYYY-MM-DD).
    #[schema(required = true)]
    data_date: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    weight: u8,
    #[schema(minimum = 0.0, maximum = 1.0)]
    confidence: f32,
}

/// Kinds of signal.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SignalKind {
    Tor,
    Vpn,
    Proxy,
    Datacenter,
    Cdn,
    Crawler,
    Blocklist,
    Attacker,
    Botnet,
}

/// Flags raised by the signals.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Flags {
    vpn: bool,
    proxy: bool,
    tor: bool,
    datacenter: bool,
    botnet: bool,
}

/// One entry per raised flag only.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagDetails {
    #[schema(nullable = false)]
    vpn: Option<FlagDetail>,
    #[schema(nullable = false)]
    proxy: Option<FlagDetail>,
    #[schema(nullable = false)]
    tor: Option<FlagDetail>,
    #[schema(nullable = false)]
    datacenter: Option<FlagDetail>,
    #[schema(nullable = false)]
    botnet: Option<FlagDetail>,
}

/// Why a flag is raised.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagDetail {
    #[schema(minimum = 0.0, maximum = 1.0)]
    confidence: f32,
    /// Sources that raised the flag.
    sources: Vec<String>,
}

/// Plans.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Plan)]
pub(crate) enum PlanName {
    Free,
    Professional,
    Enterprise,
    Custom,
}

/// Usage of one key.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageReport {
    key_id: String,
    #[schema(value_type = PlanName)]
    plan: PlanName,
    daily_limit: u64,
    /// Lookups counted today (UTC).
    today: u64,
    /// Lookups counted this calendar month (UTC).
    this_month: u64,
    /// Unix seconds of the next 00:00 UTC, when `today` resets.
    reset_unix: i64,
}

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
    /// The request field at fault; only with `invalid_field`.
    #[schema(nullable = false)]
    field: Option<String>,
}

/// Stable machine-readable error codes.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    InvalidIp,
    InvalidCountry,
    UnknownCountry,
    InvalidAsn,
    UnknownAsn,
    MissingApiKey,
    InvalidApiKey,
    RevokedApiKey,
    QuotaExceeded,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    PortalRateLimited,
    StoreUnavailable,
    NotReady,
    Internal,
    InvalidField,
    UnsupportedMediaType,
    DuplicateReport,
    ReportQuotaExceeded,
    BatchTooLarge,
    BodyTimeout,
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

/// The body of `POST /v1/ip/batch`; a bare JSON array of the same
/// strings is accepted too.
#[derive(ToSchema)]
pub(crate) struct BatchRequest {
    /// Addresses (canonical IPv4 or IPv6 text), 1 to 1,000 entries.
    #[schema(min_items = 1, max_items = 1000, example = json!(["8.8.8.8", "2606:4700:4700::1111"]))]
    ips: Vec<String>,
}

/// The answer of `POST /v1/ip/batch`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchReply {
    /// Distinct entries (keys of `results`).
    count: u32,
    /// Lookups counted against the key's quota: the distinct valid entries.
    counted: u32,
    /// Each distinct input string, exactly as sent, to its result.
    results: std::collections::HashMap<String, BatchResult>,
}

/// The result of one entry: the record, or the error a single lookup gives.
#[derive(ToSchema)]
#[serde(untagged)]
pub(crate) enum BatchResult {
    Record(Box<IpRecord>),
    Error(ErrorEnvelope),
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
    /// Abuse reports about the address (IPv6: its /64) in the last 30
    /// days; null when there are none.
    #[schema(required = true)]
    reports: Option<Reports>,
}

/// Abuse reports about an address.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reports {
    /// Reports in the last 30 days.
    count: u64,
    /// Distinct reporters: keys that reported from one network (/24, /48) count once.
    distinct_reporters: u32,
    /// Every category reported.
    categories: Vec<ReportCategoryName>,
    /// Time of the latest report (RFC 3339, UTC).
    last_reported_at: String,
}

/// Report categories. The numbers 1-23 of AbuseIPDB are accepted on input
/// and mapped to these names (see docs/reports.md).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ReportCategory)]
pub(crate) enum ReportCategoryName {
    DnsCompromise,
    DnsPoisoning,
    Fraud,
    Ddos,
    FtpBruteforce,
    PingOfDeath,
    Phishing,
    VoipFraud,
    OpenProxy,
    WebSpam,
    Spam,
    BlogSpam,
    VpnIp,
    PortScan,
    Hacking,
    SqlInjection,
    Spoofing,
    BruteForce,
    BadBot,
    ExploitedHost,
    WebAttack,
    SshBruteforce,
    IotTargeted,
    Malware,
    Exploit,
}

/// Severity of a report (input also accepts 1-4).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Severity)]
pub(crate) enum SeverityName {
    Low,
    Medium,
    High,
    Critical,
}

/// The body of `POST /v1/ip/report` (JSON or form fields of these names).
#[derive(ToSchema)]
pub(crate) struct ReportRequest {
    /// The address (canonical IPv4 or IPv6 text); reserved addresses are refused.
    ip: String,
    /// Category names or numbers, comma-separated (or a JSON array).
    /// `categories` is accepted as another name of this field.
    #[schema(example = "ssh_bruteforce,22")]
    category: String,
    /// `low`, `medium`, `high`, `critical` or `1`-`4`; default `medium`.
    #[schema(nullable = false)]
    severity: Option<String>,
    /// 0 to 100; default 75.
    #[schema(nullable = false, minimum = 0, maximum = 100)]
    confidence: Option<u8>,
    /// Free text; cut to 1024 characters.
    #[schema(nullable = false)]
    comment: Option<String>,
    /// When it happened: RFC 3339 or unix seconds; default now.
    #[schema(nullable = false)]
    reported_at: Option<String>,
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
#[serde(rename_all = "snake_case")]
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
    AbuseReports,
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
    /// Lookups on each of the last 30 UTC days, oldest first, today last
    /// (days without lookups count 0).
    #[schema(min_items = 30, max_items = 30)]
    history: Vec<DayUsage>,
}

/// Lookups of one key on one UTC day.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DayUsage {
    /// The UTC day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    day: String,
    lookups: u64,
}

/// `GET /v1/ip/country/{cc}`: figures precomputed from the loaded data.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CountryIntel {
    /// Upper-case ISO 3166-1 alpha-2 code.
    country: String,
    /// English short name; null for a code outside ISO 3166-1 found in the data.
    #[schema(required = true)]
    name: Option<String>,
    ipv4: CountryV4,
    ipv6: CountryV6,
    top_networks: TopNetworks,
    reports: AreaReports,
}

/// `GET /v1/ip/asn/{asn}`: figures precomputed from the loaded data.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsnIntel {
    asn: u32,
    /// AS holder name (the one covering most addresses).
    name: String,
    /// Country holding most of its addresses (IPv4 decides when it has any).
    #[schema(required = true)]
    country: Option<String>,
    #[schema(required = true)]
    country_name: Option<String>,
    /// Datacenter or CDN when most of its space is, else null.
    #[schema(required = true)]
    connection_type: Option<ConnectionType>,
    ipv4: AsnV4,
    ipv6: AsnV6,
    /// CIDR blocks exactly covering its ranges, IPv4 first, at most 1000.
    prefixes: Vec<String>,
    /// All CIDR blocks, listed or not.
    prefixes_total: u64,
    /// True when `prefixes` lists fewer than `prefixes_total`.
    prefixes_truncated: bool,
    reports: AreaReports,
}

/// IPv4 figures of a country.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CountryV4 {
    /// Geo ranges (adjacent networks with one location merged).
    networks: u64,
    addresses: u64,
    flagged: FlaggedV4,
}

/// IPv6 figures of a country; counts are decimal strings.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CountryV6 {
    networks: u64,
    #[schema(pattern = "^[0-9]+$")]
    addresses: String,
    flagged: FlaggedV6,
}

/// IPv4 figures of an AS.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsnV4 {
    /// AS ranges (adjacent ranges merged).
    networks: u64,
    /// CIDR blocks exactly covering the ranges.
    prefixes: u64,
    addresses: u64,
    flagged: FlaggedV4,
}

/// IPv6 figures of an AS; counts are decimal strings.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsnV6 {
    networks: u64,
    prefixes: u64,
    #[schema(pattern = "^[0-9]+$")]
    addresses: String,
    flagged: FlaggedV6,
}

/// Flagged IPv4 addresses per kind (as the lookup flags; `blocklisted`:
/// a blocklist or attacker list).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlaggedV4 {
    tor: FlagCountV4,
    vpn: FlagCountV4,
    proxy: FlagCountV4,
    datacenter: FlagCountV4,
    blocklisted: FlagCountV4,
    botnet: FlagCountV4,
}

/// Flagged IPv6 addresses per kind.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlaggedV6 {
    tor: FlagCountV6,
    vpn: FlagCountV6,
    proxy: FlagCountV6,
    datacenter: FlagCountV6,
    blocklisted: FlagCountV6,
    botnet: FlagCountV6,
}

/// Flagged IPv4 addresses of one kind.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagCountV4 {
    addresses: u64,
    /// `addresses` over the family's addresses (0 when it has none).
    #[schema(minimum = 0.0, maximum = 1.0)]
    share: f64,
}

/// Flagged IPv6 addresses of one kind.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagCountV6 {
    #[schema(pattern = "^[0-9]+$")]
    addresses: String,
    #[schema(minimum = 0.0, maximum = 1.0)]
    share: f64,
}

/// The ASes with the most addresses in a country, most first (at most 10 each).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopNetworks {
    ipv4: Vec<TopNetworkV4>,
    ipv6: Vec<TopNetworkV6>,
}

/// An AS and its IPv4 addresses in the country.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopNetworkV4 {
    asn: u32,
    name: String,
    addresses: u64,
}

/// An AS and its IPv6 addresses in the country.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopNetworkV6 {
    asn: u32,
    name: String,
    #[schema(pattern = "^[0-9]+$")]
    addresses: String,
}

/// Abuse reports about addresses of the area (country or AS).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AreaReports {
    /// Reports received in the last 24 hours.
    last_day: u64,
    /// Reports received in the last 7 days.
    last_week: u64,
    /// Addresses (IPv6: /64 networks) reported in the last 7 days.
    distinct_addresses_last_week: u64,
    /// The networks with the most reports in the last 7 days, most first.
    top_networks: Vec<AreaNetworkReports>,
}

/// Reports of one network in [`AreaReports`].
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AreaNetworkReports {
    #[schema(required = true)]
    asn: Option<u32>,
    #[schema(required = true)]
    name: Option<String>,
    reports: u64,
}

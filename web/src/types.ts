// The JSON bodies of the ipintel API that the interface reads (see
// /openapi.json for the full description).

export type Level = "clean" | "low" | "medium" | "high" | "critical";

export type FlagKind = "vpn" | "proxy" | "tor" | "datacenter" | "botnet";

export interface Reserved {
  name: string;
  network: string;
  rfc: string;
}

export interface Geo {
  country: string | null;
  country_name: string | null;
  region: string | null;
  city: string | null;
  latitude: number | null;
  longitude: number | null;
  timezone: string | null;
  network: string | null;
}

export interface Network {
  asn: number | null;
  isp: string | null;
  org: string | null;
  connection_type: "datacenter" | "cdn" | null;
  prefix: string | null;
}

export interface Reason {
  signal: string;
  source: string;
  provider: string | null;
  data_date: string | null;
  weight: number;
  confidence: number;
}

export interface ReportSummary {
  count: number;
  distinct_reporters: number;
  categories: string[];
  last_reported_at: string;
}

export interface Threat {
  score: number;
  level: Level;
  is_clean: boolean;
  reasons: Reason[];
  reports: ReportSummary | null;
}

export interface FlagDetail {
  confidence: number;
  sources: string[];
}

export interface IpRecord {
  ip: string;
  ip_version: 4 | 6;
  hostname: string | null;
  reserved: Reserved | null;
  geo: Geo;
  network: Network;
  threat: Threat;
  flags: Record<FlagKind, boolean>;
  flag_details: Partial<Record<FlagKind, FlagDetail>>;
}

export interface LiveEntry {
  network: string;
  ip: string;
  score: number;
  level: Level;
  categories: string[];
  reports: number;
  distinct_reporters: number;
  last_reported_at: string;
  country: string | null;
  asn: number | null;
}

export interface LiveFeed {
  v6_prefix: number;
  count: number;
  items: LiveEntry[];
}

export interface DayUsage {
  day: string;
  lookups: number;
}

export interface Usage {
  key_id: string;
  plan: string;
  daily_limit: number;
  today: number;
  this_month: number;
  reset_unix: number;
  history: DayUsage[];
}

export interface KeyReport {
  id: number;
  ip: string;
  categories: string[];
  severity: string;
  confidence: number;
  comment: string | null;
  reported_at: string;
  received_at: string;
  country: string | null;
  country_name: string | null;
  asn: number | null;
  asn_name: string | null;
}

export interface KeyReports {
  count: number;
  items: KeyReport[];
}

export interface ReportReceipt {
  id: number;
  ip: string;
  categories: string[];
  severity: string;
  confidence: number;
  comment: string | null;
  reported_at: string;
  received_at: string;
}

export interface NewKey {
  key: string;
  id: string;
  plan: string;
  daily_limit: number;
  note: string;
}

export interface CallerAddress {
  ip: string;
  ip_version: 4 | 6;
}

export interface FlagCount {
  addresses: number | string;
  share: number;
}

export type Flagged = Record<
  "tor" | "vpn" | "proxy" | "datacenter" | "blocklisted" | "botnet",
  FlagCount
>;

export interface Family {
  networks: number;
  prefixes?: number;
  addresses: number | string;
  flagged: Flagged;
}

export interface AreaReports {
  last_day: number;
  last_week: number;
  distinct_addresses_last_week: number;
  top_networks: { asn: number | null; name: string | null; reports: number }[];
}

export interface TopNetwork {
  asn: number;
  name: string;
  addresses: number | string;
}

export interface CountryIntel {
  country: string;
  name: string | null;
  ipv4: Family;
  ipv6: Family;
  top_networks: { ipv4: TopNetwork[]; ipv6: TopNetwork[] };
  reports: AreaReports;
}

export interface AsnIntel {
  asn: number;
  name: string;
  country: string | null;
  country_name: string | null;
  connection_type: "datacenter" | "cdn" | null;
  ipv4: Family;
  ipv6: Family;
  prefixes: string[];
  prefixes_total: number;
  prefixes_truncated: boolean;
  reports: AreaReports;
}

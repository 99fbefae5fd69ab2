// Words and numbers as the interface shows them.

import type { Level, Reserved } from "./types";

export const LEVELS: Level[] = ["clean", "low", "medium", "high", "critical"];

export const LEVEL_WORDS: Record<Level, string> = {
  clean: "Clean",
  low: "Low risk",
  medium: "Medium risk",
  high: "High risk",
  critical: "Critical",
};

export const LEVEL_RANGES: Record<Level, string> = {
  clean: "0–19",
  low: "20–39",
  medium: "40–59",
  high: "60–79",
  critical: "80–100",
};

const SIGNAL_WORDS: Record<string, string> = {
  tor: "Tor exit or relay",
  vpn: "VPN endpoint",
  proxy: "Proxy",
  datacenter: "Datacenter or hosting",
  cdn: "Content delivery network",
  crawler: "Declared crawler",
  blocklist: "On a blocklist",
  attacker: "Seen attacking",
  botnet: "Botnet command and control",
  abuse_reports: "Reported by ipintel users",
};

export function signalWords(signal: string): string {
  return SIGNAL_WORDS[signal] ?? signal;
}

export const FLAG_WORDS = {
  vpn: "VPN",
  proxy: "Proxy",
  tor: "Tor",
  datacenter: "Datacenter",
  botnet: "Botnet",
} as const;

const ACRONYMS: Record<string, string> = {
  dns: "DNS",
  ftp: "FTP",
  ssh: "SSH",
  sql: "SQL",
  voip: "VoIP",
  ddos: "DDoS",
  iot: "IoT",
  vpn: "VPN",
  ip: "IP",
};

/** `ssh_bruteforce` → "SSH bruteforce". */
export function categoryWords(name: string): string {
  const words = name.split("_").map((w) => ACRONYMS[w] ?? w);
  const first = words[0] ?? "";
  words[0] = first.charAt(0).toUpperCase() + first.slice(1);
  return words.join(" ");
}

export const CATEGORIES = [
  "ssh_bruteforce",
  "brute_force",
  "port_scan",
  "web_attack",
  "sql_injection",
  "hacking",
  "ddos",
  "spam",
  "web_spam",
  "blog_spam",
  "phishing",
  "fraud",
  "bad_bot",
  "exploited_host",
  "open_proxy",
  "vpn_ip",
  "ftp_bruteforce",
  "dns_compromise",
  "dns_poisoning",
  "ping_of_death",
  "voip_fraud",
  "spoofing",
  "iot_targeted",
  "malware",
  "exploit",
];

export function percent(share: number): string {
  const pct = share * 100;
  if (pct > 0 && pct < 0.1) return "< 0.1 %";
  if (pct > 0 && pct < 10) return `${pct.toFixed(1)} %`;
  return `${Math.round(pct)} %`;
}

const SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹";

export function coordinates(lat: number, lon: number): string {
  const ns = lat >= 0 ? "N" : "S";
  const ew = lon >= 0 ? "E" : "W";
  return `${Math.abs(lat).toFixed(4)}° ${ns}, ${Math.abs(lon).toFixed(4)}° ${ew}`;
}

/** `2026-12-04T18:22:05Z` → "2026-12-04 18:22 UTC". */
export function utc(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** "3 minutes ago" for a recent RFC 3339 time. */
export function ago(iso: string, now = Date.now()): string {
  const secs = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (Number.isNaN(secs)) return iso;
  if (secs < 60) return "just now";
  if (secs < 3600) return plural(Math.floor(secs / 60), "minute") + " ago";
  if (secs < 86_400) return plural(Math.floor(secs / 3600), "hour") + " ago";
  return plural(Math.floor(secs / 86_400), "day") + " ago";
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The time now in `zone`, or null if the browser does not know the zone. */
export function localTime(zone: string): string | null {
  try {
    return new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      hour: "2-digit",
      minute: "2-digit",
      weekday: "short",
    }).format(new Date());
  } catch {
    return null;
  }
}

const NUMBER = new Intl.NumberFormat("en-US");

/** A count, which IPv6 figures give as decimal text. */
export function count(value: number | string): string {
  if (typeof value === "number") return NUMBER.format(value);
  if (value.length > 15) {
    const [mantissa, exponent = ""] = Number(value).toExponential(2).split("e+");
    const power = [...exponent].map((d) => SUPERSCRIPT[Number(d)]).join("");
    return `about ${mantissa} × 10${power}`;
  }
  return NUMBER.format(Number(value));
}

/** What a reserved (special-purpose) range is, in a sentence. */
export function reservedWords(reserved: Reserved): string {
  const name = reserved.name.toLowerCase();
  const kinds: [string, string][] = [
    ["private", "a private address, used inside homes, offices and data centres; the same address is in use on many separate networks at once"],
    ["unique-local", "a private (unique local) IPv6 address, used inside one organisation's networks"],
    ["loopback", "a loopback address: it always means the computer you are on, and never leaves it"],
    ["link local", "a link-local address, valid only on a single network segment (often picked by a device that found no DHCP server)"],
    ["link-local", "a link-local address, valid only on a single network segment"],
    ["shared address", "shared address space, used by internet providers between their customers and their carrier-grade NAT"],
    ["documentation", "reserved for documentation and examples; no real host uses it"],
    ["benchmarking", "reserved for benchmarking network equipment in labs"],
    ["multicast", "a multicast address, which names a group of receivers rather than one host"],
    ["broadcast", "the limited broadcast address, which reaches every host on the local network"],
    ["this host", "the unspecified address, meaning “this host” before it has an address"],
    ["this network", "in the “this network” block, used only as a source address while a host starts up"],
    ["unspecified", "the unspecified address, meaning “no address”"],
    ["reserved", "reserved for future use by the IETF and not used on the internet"],
    ["ipv4-mapped", "an IPv4 address written in IPv6 form"],
    ["translation", "used to translate between IPv6 and IPv4"],
    ["6to4", "part of the old 6to4 transition scheme"],
    ["teredo", "part of the Teredo tunnelling scheme"],
    ["discard", "reserved to discard traffic"],
  ];
  const found = kinds.find(([key]) => name.includes(key));
  const what = found ? found[1] : "in a special-purpose range";
  return `This is ${what}. It is not a public internet address, so it has no location, no network owner and no threat score.`;
}

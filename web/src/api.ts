// Calls to the ipintel API, and every way they can fail, told in words.

import type {
  AsnIntel,
  CallerAddress,
  CountryIntel,
  IpRecord,
  KeyReports,
  LiveFeed,
  NewKey,
  ReportReceipt,
  Usage,
} from "./types";

/** How long a request may take before the service counts as unreachable. */
const TIMEOUT_MS = 15_000;

/** A failed call: the API's error code (or `unreachable` / `unreadable`),
 *  and a sentence for the person in front of the screen. */
export class ApiProblem extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly retryAfter: number | null = null,
    readonly field: string | null = null,
  ) {
    super(message);
    this.name = "ApiProblem";
  }
}

interface Envelope {
  error?: { code?: string; message?: string; field?: string };
}

async function call<T>(path: string, init: RequestInit = {}, key?: string): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Accept", "application/json");
  if (key) headers.set("X-API-Key", key);
  const abort = new AbortController();
  const timer = window.setTimeout(() => abort.abort(), TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers, signal: abort.signal, cache: "no-store" });
  } catch {
    throw new ApiProblem("unreachable", 0, unreachable());
  } finally {
    window.clearTimeout(timer);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ApiProblem(
      "unreadable",
      response.status,
      response.status >= 500
        ? `The service had a problem answering (HTTP ${response.status}). Try again shortly.`
        : `The service sent an answer that could not be read (HTTP ${response.status}).`,
    );
  }
  if (!response.ok) throw problem(response, body as Envelope);
  return body as T;
}

function unreachable(): string {
  return "The ipintel service cannot be reached. Check that it is running and that you are connected, then try again.";
}

function problem(response: Response, body: Envelope): ApiProblem {
  const code = body.error?.code ?? "unknown";
  const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  const retryAfter = Number.isFinite(retry) ? retry : null;
  const field = body.error?.field ?? null;
  const message = describe(code, response.status, body.error?.message ?? "", retryAfter, field);
  return new ApiProblem(code, response.status, message, retryAfter, field);
}

/** "in about 3 minutes", "in about 5 hours". */
export function waitWords(seconds: number | null): string {
  if (seconds === null) return "later";
  if (seconds < 1.5) return "in about a second";
  if (seconds < 90) return `in about ${Math.round(seconds)} seconds`;
  if (seconds < 90 * 60) return `in about ${Math.round(seconds / 60)} minutes`;
  return `in about ${Math.round(seconds / 3600)} hours`;
}

function describe(
  code: string,
  status: number,
  serviceMessage: string,
  retryAfter: number | null,
  field: string | null,
): string {
  switch (code) {
    case "invalid_ip":
      return "That is not a valid IP address. Write an IPv4 address like 8.8.8.8 or an IPv6 address like 2001:db8::1.";
    case "portal_rate_limited":
      return `Too many lookups without a key have come from your address. Try again ${waitWords(retryAfter)}, or sign in with an API key on the dashboard.`;
    case "quota_exceeded":
      return `This key's daily lookup quota is used up. It resets at 00:00 UTC, ${waitWords(retryAfter)}.`;
    case "missing_api_key":
    case "invalid_api_key":
      return "This API key is not valid. Check it, or get a new free key.";
    case "revoked_api_key":
      return "This API key has been revoked. Get a new key to go on.";
    case "rate_limited":
      return `Too many keys have been created from your address. Try again ${waitWords(retryAfter)}.`;
    case "duplicate_report":
      return `You reported this address less than 15 minutes ago. You can report it again ${waitWords(retryAfter)}.`;
    case "report_quota_exceeded":
      return `This key's daily report limit is used up. It resets at 00:00 UTC, ${waitWords(retryAfter)}.`;
    case "invalid_field":
      return `The ${fieldName(field)} is not right: ${serviceMessage}`;
    case "invalid_country":
      return "That is not a country code: a country is written as two letters, like US.";
    case "unknown_country":
      return "There is no country with that code.";
    case "invalid_asn":
      return "That is not an AS number: write it like 15169 or AS15169.";
    case "unknown_asn":
      return "The data has no network with that AS number.";
    case "store_unavailable":
    case "not_ready":
      return "The service cannot answer right now (its data or database is not available). Try again shortly.";
    case "not_found":
      return "The service does not know this page.";
    default:
      return status >= 500
        ? `The service had a problem answering (HTTP ${status}). Try again shortly.`
        : `The request was refused (HTTP ${status}): ${serviceMessage}`;
  }
}

function fieldName(field: string | null): string {
  switch (field) {
    case "ip":
      return "address";
    case "category":
      return "category";
    case "reported_at":
      return "time";
    case null:
      return "request";
    default:
      return field;
  }
}

const enc = encodeURIComponent;

export const api = {
  portalLookup: (ip: string) => call<IpRecord>(`/v1/portal/ip/${enc(ip)}`),
  me: () => call<CallerAddress>("/v1/portal/me"),
  portalLive: () => call<LiveFeed>("/v1/portal/threats/live"),
  lookup: (ip: string, key: string) => call<IpRecord>(`/v1/ip/${enc(ip)}`, {}, key),
  usage: (key: string) => call<Usage>("/v1/usage", {}, key),
  live: (key: string) => call<LiveFeed>("/v1/ip/threats/live?limit=20", {}, key),
  myReports: (key: string) => call<KeyReports>("/v1/reports?limit=50", {}, key),
  country: (cc: string, key: string) => call<CountryIntel>(`/v1/ip/country/${enc(cc)}`, {}, key),
  asn: (asn: string, key: string) => call<AsnIntel>(`/v1/ip/asn/${enc(asn)}`, {}, key),
  newKey: () => call<NewKey>("/v1/keys", { method: "POST" }),
  report: (key: string, body: Record<string, unknown>) =>
    call<ReportReceipt>(
      "/v1/ip/report",
      {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      },
      key,
    ),
};

/** The message of anything thrown by a call. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiProblem) return err.message;
  return "Something went wrong in the page itself. Reload it and try again.";
}

/** Whether `text` looks like an address at all (the service decides). */
export function looksLikeAddress(text: string): boolean {
  return /^[0-9a-fA-F:.]+$/.test(text) && (text.includes(".") || text.includes(":"));
}

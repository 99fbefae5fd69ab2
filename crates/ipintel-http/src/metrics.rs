//! Prometheus metrics, rendered in the text exposition format 0.0.4.
//!
//! Every counter is an atomic in a table sized when the router is built
//! (routes × known statuses, histogram buckets), so counting a request
//! takes no lock and allocates nothing. Gauges about the data (source age,
//! snapshot build time, memory) are read when `/metrics` is scraped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipintel_core::Snapshot;
use ipintel_store::{Plan, QuotaStats};

/// Statuses counted one by one; any other lands in `other`.
const STATUSES: [u16; 14] = [
    200, 201, 204, 400, 401, 403, 404, 405, 409, 415, 422, 429, 500, 503,
];

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

const PLANS: [Plan; 4] = [
    Plan::Free,
    Plan::Professional,
    Plan::Enterprise,
    Plan::Custom,
];

/// Refusal codes of reports counted one by one; any other is `other`.
const REFUSALS: [&str; 5] = [
    "invalid_field",
    "duplicate_report",
    "report_quota_exceeded",
    "store_unavailable",
    "unsupported_media_type",
];

/// Counters of one route.
#[derive(Debug)]
struct RouteCounters {
    route: &'static str,
    /// One per [`STATUSES`] entry, then `other`.
    statuses: [AtomicU64; STATUSES.len() + 1],
    /// One per [`BUCKETS`] entry, then `+Inf`; not cumulative.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl RouteCounters {
    fn new(route: &'static str) -> Self {
        RouteCounters {
            route,
            statuses: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

/// The service's metrics; shared in `AppState.metrics`.
#[derive(Debug)]
pub struct Metrics {
    routes: Vec<RouteCounters>,
    route_index: HashMap<&'static str, usize>,
    lookups: [AtomicU64; PLANS.len()],
    reports_accepted: AtomicU64,
    /// One per [`REFUSALS`] entry, then `other`.
    reports_refused: [AtomicU64; REFUSALS.len() + 1],
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    portal_served: AtomicU64,
    portal_limited: AtomicU64,
}

impl Metrics {
    /// Metrics for a router serving the path templates `routes`.
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a &'static str>) -> Metrics {
        let mut list: Vec<RouteCounters> = Vec::new();
        let mut route_index = HashMap::new();
        for route in routes.into_iter().copied().chain([UNMATCHED]) {
            if !route_index.contains_key(route) {
                route_index.insert(route, list.len());
                list.push(RouteCounters::new(route));
            }
        }
        Metrics {
            routes: list,
            route_index,
            lookups: std::array::from_fn(|_| AtomicU64::new(0)),
            reports_accepted: AtomicU64::new(0),
            reports_refused: std::array::from_fn(|_| AtomicU64::new(0)),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            portal_served: AtomicU64::new(0),
            portal_limited: AtomicU64::new(0),
        }
    }

    /// Counts one finished request: its route template (`None` when no
    /// route matched), status and duration.
    pub fn request(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        let i = route
            .and_then(|r| self.route_index.get(r))
            .or_else(|| self.route_index.get(UNMATCHED))
            .copied()
            .unwrap_or(0);
        let Some(counters) = self.routes.get(i) else {
            return;
        };
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len());
        counters.statuses[s].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let b = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        counters.buckets[b].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one lookup charged to a key of `plan`.
    pub fn lookup(&self, plan: Plan) {
        if let Some(i) = PLANS.iter().position(|p| *p == plan) {
            self.lookups[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one keyless portal lookup, served or refused by the
    /// per-client limit.
    pub fn portal_lookup(&self, served: bool) {
        let counter = if served {
            &self.portal_served
        } else {
            &self.portal_limited
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one accepted abuse report.
    pub fn report_accepted(&self) {
        self.reports_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one refused abuse report by its error code.
    pub fn report_refused(&self, code: &'static str) {
        let i = REFUSALS
            .iter()
            .position(|c| *c == code)
            .unwrap_or(REFUSALS.len());
        self.reports_refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one data reload attempt; `outcome` is `"ok"` or `"failed"`.
    pub fn reload(&self, outcome: &'static str) {
        let counter = if outcome == "ok" {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The whole exposition, with data gauges read from `snapshot` and
    /// `sources` at `now` (unix seconds).
    pub fn render(&self, snapshot: &Snapshot, sources: &[SourceGauge], now: i64) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        self.render_counters(&mut out);
        render_data(&mut out, snapshot, sources, now);
        render_memory(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        header(
            out,
            "ipintel_http_requests_total",
            "counter",
            "HTTP requests by route template and status.",
        );
        for r in &self.routes {
            for (i, count) in r.statuses.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = STATUSES.get(i).map_or("other".to_owned(), u16::to_string);
                let route = escape(r.route);
                let _ = writeln!(
                    out,
                    "ipintel_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        let name = "ipintel_http_request_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Time from request to response head, by route template.",
        );
        for r in &self.routes {
            let route = escape(r.route);
            let mut cumulative = 0u64;
            for (i, count) in r.buckets.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let le = BUCKETS.get(i).map_or("+Inf".to_owned(), f64::to_string);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = r.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {cumulative}");
        }
    }

    fn render_counters(&self, out: &mut String) {
        header(
            out,
            "ipintel_lookups_total",
            "counter",
            "Lookups charged to keys, by plan.",
        );
        for (plan, n) in PLANS.iter().zip(&self.lookups) {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ipintel_lookups_total{{plan=\"{}\"}} {n}",
                plan.as_str()
            );
        }
        header(
            out,
            "ipintel_reports_accepted_total",
            "counter",
            "Abuse reports accepted.",
        );
        let n = self.reports_accepted.load(Ordering::Relaxed);
        let _ = writeln!(out, "ipintel_reports_accepted_total {n}");
        header(
            out,
            "ipintel_reports_refused_total",
            "counter",
            "Abuse reports refused, by error code.",
        );
        for (i, n) in self.reports_refused.iter().enumerate() {
            let code = REFUSALS.get(i).copied().unwrap_or("other");
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "ipintel_reports_refused_total{{code=\"{code}\"}} {n}");
        }
        header(
            out,
            "ipintel_reloads_total",
            "counter",
            "Data reload attempts, by outcome.",
        );
        for (outcome, n) in [("ok", &self.reloads_ok), ("failed", &self.reloads_failed)] {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "ipintel_reloads_total{{outcome=\"{outcome}\"}} {n}");
        }
        header(
            out,
            "ipintel_portal_lookups_total",
            "counter",
            "Keyless portal lookups, by outcome (served, or limited per client).",
        );
        let outcomes = [
            ("served", &self.portal_served),
            ("limited", &self.portal_limited),
        ];
        for (outcome, n) in outcomes {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ipintel_portal_lookups_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}

/// Appends the shared quota's series (only rendered with
/// `IPINTEL_REDIS_URL` set): Redis calls by outcome, fallback decisions,
/// leased blocks, seeded counters, and whether Redis is in use.
pub fn render_shared_quota(out: &mut String, stats: &QuotaStats) {
    header(
        out,
        "ipintel_quota_redis_calls_total",
        "counter",
        "Calls to the shared quota's Redis, by outcome (error includes timeouts).",
    );
    for (outcome, n) in [
        ("ok", stats.redis_calls_ok),
        ("error", stats.redis_calls_failed),
    ] {
        let _ = writeln!(
            out,
            "ipintel_quota_redis_calls_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    let series = [
        (
            "ipintel_quota_fallback_total",
            "Metered requests decided by the fallback while Redis was unreachable.",
            stats.fallback_decisions,
        ),
        (
            "ipintel_quota_leases_total",
            "Blocks of quota leased from Redis for keys in leased mode.",
            stats.leases,
        ),
        (
            "ipintel_quota_seeds_total",
            "Shared counters created from the store's count (new day, or Redis lost them).",
            stats.seeds,
        ),
    ];
    for (name, help, n) in series {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {n}");
    }
    header(
        out,
        "ipintel_quota_redis_up",
        "gauge",
        "1 while quotas are shared through Redis, 0 while the fallback decides.",
    );
    let _ = writeln!(out, "ipintel_quota_redis_up {}", u8::from(stats.redis_up));
}

/// Age and error state of one source at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGauge {
    /// Source name.
    pub name: String,
    /// Unix seconds the age is measured from (last successful refresh, else
    /// the start of the data date); `None` when unknown.
    pub since_unix: Option<i64>,
    /// Start of the data's own date (unix seconds), when known.
    pub data_date_unix: Option<i64>,
    /// True while the source's last attempt failed.
    pub failing: bool,
}

/// Gauges of the sources of `snapshot`, measured from their data dates.
pub fn snapshot_sources(snapshot: &Snapshot) -> Vec<SourceGauge> {
    let gauge = |s: &ipintel_core::SourceMeta| {
        let date = date_unix(s.data_date.as_deref());
        SourceGauge {
            name: s.name.clone(),
            since_unix: date,
            data_date_unix: date,
            failing: false,
        }
    };
    snapshot.meta().sources.iter().map(gauge).collect()
}

/// Gauges of the sources in a data status (the sources file), measured
/// from their last successful refresh, else their data date.
pub fn status_sources(status: &ipintel_data::DataStatus) -> Vec<SourceGauge> {
    let gauge = |s: &ipintel_data::SourceStatus| {
        let date = date_unix(s.data_date.as_deref());
        SourceGauge {
            name: s.name.clone(),
            since_unix: s.last_success_unix.or(date),
            data_date_unix: date,
            failing: s.last_error.is_some(),
        }
    };
    status.sources.iter().map(gauge).collect()
}

/// Start (00:00 UTC) of a `YYYY-MM-DD` date in unix seconds.
fn date_unix(date: Option<&str>) -> Option<i64> {
    date.and_then(crate::clock::parse_date)
        .map(|day| day * 86_400)
}

/// Reads one gauge's value off a source, if it has one.
type GaugeValue<'a> = dyn Fn(&SourceGauge) -> Option<String> + 'a;

fn render_data(out: &mut String, snapshot: &Snapshot, sources: &[SourceGauge], now: i64) {
    let age = |s: &SourceGauge| s.since_unix.map(|since| (now - since).max(0).to_string());
    let date = |s: &SourceGauge| s.data_date_unix.map(|d| d.to_string());
    let failing = |s: &SourceGauge| Some(u8::from(s.failing).to_string());
    let gauges: [(&str, &str, &GaugeValue<'_>); 3] = [
        (
            "ipintel_source_age_seconds",
            "Seconds since the source last refreshed successfully (since its data date when never refreshed).",
            &age,
        ),
        (
            "ipintel_source_data_date_timestamp_seconds",
            "Start (00:00 UTC) of the date of the source's data.",
            &date,
        ),
        (
            "ipintel_source_last_error",
            "1 while the source's last load or download failed, else 0.",
            &failing,
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        for s in sources {
            if let Some(v) = value(s) {
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {v}", escape(&s.name));
            }
        }
    }
    render_snapshot(out, snapshot);
}

fn render_snapshot(out: &mut String, snapshot: &Snapshot) {
    let meta = snapshot.meta();
    let intel = snapshot.intel_build_ms() as f64 / 1e3;
    let gauges = [
        (
            "ipintel_snapshot_build_seconds",
            "Time to merge the snapshot in service and compute its aggregates.",
            (meta.build_ms as f64 / 1e3 + intel).to_string(),
        ),
        (
            "ipintel_snapshot_intel_build_seconds",
            "Part of the build spent on the country and AS aggregates.",
            intel.to_string(),
        ),
        (
            "ipintel_snapshot_built_timestamp_seconds",
            "Unix time the snapshot in service was built.",
            meta.built_at_unix.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// Resident memory from `/proc/self/status` (Linux); absent elsewhere.
fn render_memory(out: &mut String) {
    let Some(kib) = vm_rss_kib() else { return };
    header(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    );
    let _ = writeln!(out, "process_resident_memory_bytes {}", kib * 1024);
}

fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_series() {
        let m = Metrics::new(&["/a", "/b/{x}"]);
        m.request(Some("/b/{x}"), 200, Duration::from_micros(300));
        m.request(Some("/b/{x}"), 200, Duration::from_secs(9));
        m.request(None, 404, Duration::from_micros(5));
        m.request(Some("/a"), 418, Duration::from_micros(5));
        m.lookup(Plan::Professional);
        m.report_refused("duplicate_report");
        m.report_refused("weird");
        m.reload("failed");
        let text = m.render(&Snapshot::empty(), &[], 0);
        for line in [
            "ipintel_http_requests_total{route=\"/b/{x}\",status=\"200\"} 2",
            "ipintel_http_requests_total{route=\"unmatched\",status=\"404\"} 1",
            "ipintel_http_requests_total{route=\"/a\",status=\"other\"} 1",
            "ipintel_http_request_duration_seconds_bucket{route=\"/b/{x}\",le=\"0.0005\"} 1",
            "ipintel_http_request_duration_seconds_bucket{route=\"/b/{x}\",le=\"+Inf\"} 2",
            "ipintel_http_request_duration_seconds_count{route=\"/b/{x}\"} 2",
            "ipintel_lookups_total{plan=\"professional\"} 1",
            "ipintel_reports_refused_total{code=\"duplicate_report\"} 1",
            "ipintel_reports_refused_total{code=\"other\"} 1",
            "ipintel_reloads_total{outcome=\"failed\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn shared_quota_series_render() {
        let stats = QuotaStats {
            redis_up: true,
            redis_calls_ok: 7,
            redis_calls_failed: 2,
            fallback_decisions: 3,
            leases: 4,
            seeds: 1,
        };
        let mut text = String::new();
        render_shared_quota(&mut text, &stats);
        for line in [
            "ipintel_quota_redis_calls_total{outcome=\"ok\"} 7",
            "ipintel_quota_redis_calls_total{outcome=\"error\"} 2",
            "ipintel_quota_fallback_total 3",
            "ipintel_quota_leases_total 4",
            "ipintel_quota_seeds_total 1",
            "ipintel_quota_redis_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

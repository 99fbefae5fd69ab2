//! Typed configuration: one struct per area, each read from environment
//! variables, with command-line flags taking precedence.
//!
//! Every problem is collected with the name of the setting at fault, so one
//! run reports all of them; the caller exits with code 64.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipintel_http::{HttpConfig, ServeOptions, TrustedProxies};
use ipintel_store::{
    PlanLimits, QuotaFallback, RedisUrl, ReportSettings, SharedQuotaSettings, StoreLocation,
};
use tracing_subscriber::EnvFilter;

/// Exit code for bad configuration or usage (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// A snapshot of the environment variables this program reads.
#[derive(Debug, Default, Clone)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
}

impl Env {
    /// The variables of this process.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
                .collect(),
        }
    }

    /// Given variables, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let vars = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
            .collect();
        Self { vars }
    }

    /// The text of `name`; unset and empty are the same. Non-UTF-8 is a problem.
    fn text(&self, name: &'static str, problems: &mut Problems) -> Option<String> {
        let value = self.vars.get(name)?;
        match value.to_str() {
            Some("") => None,
            Some(text) => Some(text.trim().to_owned()),
            None => {
                problems.add(name, "is not valid UTF-8");
                None
            }
        }
    }

    /// Parses `name` if set, recording a problem naming it if it does not parse.
    fn parse<T>(&self, name: &'static str, what: &str, problems: &mut Problems) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = self.text(name, problems)?;
        match text.parse() {
            Ok(value) => Some(value),
            Err(err) => {
                problems.add(name, format!("'{text}' is not {what}: {err}"));
                None
            }
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The environment variable or flag at fault.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

/// All configuration problems found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, setting: &str, message: impl Into<String>) {
        self.0.push(Problem {
            setting: setting.to_owned(),
            message: message.into(),
        });
    }

    /// The problems, in the order found.
    #[cfg(test)]
    pub fn list(&self) -> &[Problem] {
        &self.0
    }

    fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bad configuration:")?;
        for problem in &self.0 {
            writeln!(f, "  {}: {}", problem.setting, problem.message)?;
        }
        Ok(())
    }
}

/// Where the server listens, and how it treats connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Socket address to bind (`IPINTEL_BIND`, `--bind`).
    pub bind: SocketAddr,
    /// Seconds a client has to send a request's head, also the keep-alive
    /// idle timeout (`IPINTEL_HEADER_TIMEOUT_SECS`, default 10), and the
    /// most connections served at once (`IPINTEL_MAX_CONNECTIONS`, default
    /// 4096).
    pub connections: ServeOptions,
}

impl ServerConfig {
    const DEFAULT_BIND: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

    fn load(env: &Env, flag: Option<SocketAddr>, problems: &mut Problems) -> Self {
        let bind = flag
            .or_else(|| env.parse("IPINTEL_BIND", "a socket address (host:port)", problems))
            .unwrap_or(Self::DEFAULT_BIND);
        let mut connections = ServeOptions::default();
        if let Some(secs) = positive(env, "IPINTEL_HEADER_TIMEOUT_SECS", "seconds", problems) {
            connections.header_timeout = Duration::from_secs(secs);
        }
        if let Some(count) = positive(env, "IPINTEL_MAX_CONNECTIONS", "connections", problems) {
            connections.max_connections = usize::try_from(count).unwrap_or(usize::MAX);
        }
        match positive(env, "IPINTEL_HTTP_WORKERS", "threads", problems) {
            Some(count) if count > MAX_HTTP_WORKERS => problems.add(
                "IPINTEL_HTTP_WORKERS",
                format!("must be at most {MAX_HTTP_WORKERS} threads"),
            ),
            Some(count) => connections.workers = usize::try_from(count).unwrap_or(1),
            None => {}
        }
        Self { bind, connections }
    }
}

/// Most HTTP worker threads `IPINTEL_HTTP_WORKERS` may ask for.
const MAX_HTTP_WORKERS: u64 = 256;

/// A whole number of at least 1 from `name`, if set.
fn positive(env: &Env, name: &'static str, unit: &str, problems: &mut Problems) -> Option<u64> {
    let value = env.parse::<u64>(name, &format!("a whole number of {unit}"), problems)?;
    if value == 0 {
        problems.add(name, format!("must be at least 1 {unit}"));
        return None;
    }
    Some(value)
}

/// Where the IP data lives and how it is refreshed.
#[derive(Debug, Clone)]
pub struct DataConfig {
    /// Directory holding the data files (`IPINTEL_DATA_DIR`, `--data-dir`).
    pub dir: PathBuf,
    /// The sources file (`IPINTEL_SOURCES`, `--sources`); by default
    /// `config/sources.toml` when it exists, else the manifest's roles.
    pub sources: Option<PathBuf>,
    /// Seconds between timer reloads, which also download due feeds
    /// (`IPINTEL_DATA_REFRESH_SECS`, default 3600; 0 turns the timer off).
    pub refresh_secs: u64,
    /// Token of `POST /v1/admin/reload` (`IPINTEL_ADMIN_TOKEN`); unset disables it.
    pub admin_token: Option<Secret>,
}

/// A setting that must never be printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The packaged sources file, used when it exists and none is named.
pub const DEFAULT_SOURCES: &str = "config/sources.toml";

impl DataConfig {
    fn load(
        env: &Env,
        flag: Option<PathBuf>,
        sources: Option<PathBuf>,
        problems: &mut Problems,
    ) -> Self {
        let dir = flag
            .or_else(|| env.text("IPINTEL_DATA_DIR", problems).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("data"));
        let sources = sources
            .or_else(|| env.text("IPINTEL_SOURCES", problems).map(PathBuf::from))
            .or_else(|| Some(PathBuf::from(DEFAULT_SOURCES)).filter(|p| p.is_file()));
        let refresh_secs = env
            .parse("IPINTEL_DATA_REFRESH_SECS", "a number of seconds", problems)
            .unwrap_or(3600);
        let admin_token = env.text("IPINTEL_ADMIN_TOKEN", problems).map(Secret);
        Self {
            dir,
            sources,
            refresh_secs,
            admin_token,
        }
    }
}

/// Where keys, usage and reports are stored.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A SQLite file, or PostgreSQL when the setting is a `postgres://` or
    /// `postgresql://` URL (`IPINTEL_DB`, `--db`; default `var/ipintel.db`).
    pub db: StoreLocation,
}

impl StoreConfig {
    const DEFAULT_DB: &'static str = "var/ipintel.db";

    fn load(env: &Env, flag: Option<PathBuf>, problems: &mut Problems) -> Self {
        let (setting, value) = match flag {
            Some(path) => ("--db", path),
            None => match env.text("IPINTEL_DB", problems) {
                Some(text) => ("IPINTEL_DB", PathBuf::from(text)),
                None => ("IPINTEL_DB", PathBuf::from(Self::DEFAULT_DB)),
            },
        };
        let db = StoreLocation::from_setting(value).unwrap_or_else(|err| {
            // The message shows the URL with its password hidden.
            problems.add(setting, err.to_string());
            StoreLocation::Sqlite(PathBuf::from(Self::DEFAULT_DB))
        });
        Self { db }
    }
}

/// Quotas shared by several nodes through Redis.
#[derive(Debug, Clone, Default)]
pub struct QuotaConfig {
    /// `None` (`IPINTEL_REDIS_URL` unset): each node meters on its own, as
    /// a single node does. Otherwise the Redis URL (shown without its
    /// password), `IPINTEL_REDIS_PREFIX` (default `ipintel:`),
    /// `IPINTEL_REDIS_TIMEOUT_MS` (1 to 10,000, default 250) and
    /// `IPINTEL_QUOTA_FALLBACK` (`local`, `share:N` or `closed`; default
    /// `local`). Any of these three without `IPINTEL_REDIS_URL` is a
    /// problem: the operator meant to share quotas, and silently metering
    /// each node on its own would allow N times every limit.
    pub shared: Option<SharedQuotaSettings>,
}

impl QuotaConfig {
    /// Longest Redis timeout accepted: a request may wait this long once.
    const MAX_TIMEOUT_MS: u64 = 10_000;

    /// Settings that mean nothing without `IPINTEL_REDIS_URL`.
    const NEED_URL: [&'static str; 3] = [
        "IPINTEL_REDIS_TIMEOUT_MS",
        "IPINTEL_REDIS_PREFIX",
        "IPINTEL_QUOTA_FALLBACK",
    ];

    fn load(env: &Env, problems: &mut Problems) -> Self {
        let url_text = env.text("IPINTEL_REDIS_URL", problems);
        if url_text.is_none() {
            for name in Self::NEED_URL {
                if env.vars.get(name).is_some_and(|value| !value.is_empty()) {
                    problems.add(
                        name,
                        "is set but IPINTEL_REDIS_URL is not: set both or neither",
                    );
                }
            }
        }
        let url = url_text.and_then(|text| {
            RedisUrl::parse(&text)
                .map_err(|err| problems.add("IPINTEL_REDIS_URL", err.to_string()))
                .ok()
        });
        let mut settings = url.map(SharedQuotaSettings::new);
        let timeout_name = "IPINTEL_REDIS_TIMEOUT_MS";
        match positive(env, timeout_name, "milliseconds", problems) {
            Some(ms) if ms > Self::MAX_TIMEOUT_MS => problems.add(
                timeout_name,
                format!("must be at most {} milliseconds", Self::MAX_TIMEOUT_MS),
            ),
            Some(ms) => {
                if let Some(settings) = settings.as_mut() {
                    settings.timeout = Duration::from_millis(ms);
                }
            }
            None => {}
        }
        let fallback: Option<QuotaFallback> = env.parse(
            "IPINTEL_QUOTA_FALLBACK",
            "a fallback mode (local, share:N or closed)",
            problems,
        );
        let prefix = env.text("IPINTEL_REDIS_PREFIX", problems);
        if let Some(settings) = settings.as_mut() {
            if let Some(fallback) = fallback {
                settings.fallback = fallback;
            }
            if let Some(prefix) = prefix {
                settings.prefix = prefix;
            }
        }
        Self { shared: settings }
    }
}

/// Daily lookup and report limits per plan.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// The limits (`IPINTEL_PLAN_<PLAN>_DAILY`,
    /// `IPINTEL_PLAN_<PLAN>_REPORTS_DAILY`).
    pub limits: PlanLimits,
}

impl PlanConfig {
    fn load(env: &Env, problems: &mut Problems) -> Self {
        let defaults = PlanLimits::default();
        let mut read = |name, what, default| env.parse(name, what, problems).unwrap_or(default);
        let (lookups, reports) = ("a whole number of lookups", "a whole number of reports");
        let limits = PlanLimits {
            free: read("IPINTEL_PLAN_FREE_DAILY", lookups, defaults.free),
            professional: read(
                "IPINTEL_PLAN_PROFESSIONAL_DAILY",
                lookups,
                defaults.professional,
            ),
            enterprise: read(
                "IPINTEL_PLAN_ENTERPRISE_DAILY",
                lookups,
                defaults.enterprise,
            ),
            custom: read("IPINTEL_PLAN_CUSTOM_DAILY", lookups, defaults.custom),
            free_reports: read(
                "IPINTEL_PLAN_FREE_REPORTS_DAILY",
                reports,
                defaults.free_reports,
            ),
            professional_reports: read(
                "IPINTEL_PLAN_PROFESSIONAL_REPORTS_DAILY",
                reports,
                defaults.professional_reports,
            ),
            enterprise_reports: read(
                "IPINTEL_PLAN_ENTERPRISE_REPORTS_DAILY",
                reports,
                defaults.enterprise_reports,
            ),
            custom_reports: read(
                "IPINTEL_PLAN_CUSTOM_REPORTS_DAILY",
                reports,
                defaults.custom_reports,
            ),
        };
        Self { limits }
    }
}

/// Abuse reports and the live feed.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// The report service's settings (`IPINTEL_LIVE_V6_PREFIX`, 1 to 64,
    /// default 64).
    pub settings: ReportSettings,
}

impl ReportConfig {
    fn load(env: &Env, problems: &mut Problems) -> Self {
        let name = "IPINTEL_LIVE_V6_PREFIX";
        let mut settings = ReportSettings::default();
        if let Some(prefix) = env.parse::<u8>(name, "a prefix length", problems) {
            if (1..=64).contains(&prefix) {
                settings.live_v6_prefix = prefix;
            } else {
                problems.add(
                    name,
                    format!("{prefix} is not a prefix length from 1 to 64"),
                );
            }
        }
        Self { settings }
    }
}

/// Who may forward client addresses, self-service key creation and the
/// keyless portal's allowance.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The HTTP layer's settings (`IPINTEL_TRUSTED_PROXIES`,
    /// `IPINTEL_KEYS_PER_HOUR_PER_CLIENT`, `IPINTEL_PORTAL_PER_MINUTE`,
    /// `IPINTEL_PORTAL_PER_DAY`).
    pub http: HttpConfig,
}

impl AccessConfig {
    fn load(env: &Env, problems: &mut Problems) -> Self {
        let defaults = HttpConfig::default();
        let trusted_proxies: TrustedProxies = env
            .parse(
                "IPINTEL_TRUSTED_PROXIES",
                "a comma-separated list of CIDR networks",
                problems,
            )
            .unwrap_or_default();
        let keys_per_hour_per_client = env
            .parse(
                "IPINTEL_KEYS_PER_HOUR_PER_CLIENT",
                "a whole number of keys",
                problems,
            )
            .unwrap_or(defaults.keys_per_hour_per_client);
        let portal_per_minute = env
            .parse(
                "IPINTEL_PORTAL_PER_MINUTE",
                "a whole number of lookups",
                problems,
            )
            .unwrap_or(defaults.portal_per_minute);
        let portal_per_day = env
            .parse(
                "IPINTEL_PORTAL_PER_DAY",
                "a whole number of lookups",
                problems,
            )
            .unwrap_or(defaults.portal_per_day);
        Self {
            http: HttpConfig {
                trusted_proxies,
                keys_per_hour_per_client,
                portal_per_minute,
                portal_per_day,
            },
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected json or text".to_owned()),
        }
    }
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Format (`IPINTEL_LOG_FORMAT`, default text).
    pub format: LogFormat,
    /// Filter directives (`RUST_LOG`, default `info`).
    pub filter: String,
}

impl LogConfig {
    fn load(env: &Env, problems: &mut Problems) -> Self {
        let format = env
            .parse("IPINTEL_LOG_FORMAT", "a log format", problems)
            .unwrap_or(LogFormat::Text);
        let filter = env
            .text("RUST_LOG", problems)
            .unwrap_or_else(|| "info".to_owned());
        if let Err(err) = EnvFilter::try_new(&filter) {
            problems.add("RUST_LOG", format!("'{filter}' is not a filter: {err}"));
        }
        Self { format, filter }
    }
}

/// Flags of `ipintel serve` that override the environment.
#[derive(Debug, Clone, Default)]
pub struct ServeFlags {
    /// `--bind`.
    pub bind: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--sources`.
    pub sources: Option<PathBuf>,
}

/// Everything `ipintel serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Listening address.
    pub server: ServerConfig,
    /// IP data.
    pub data: DataConfig,
    /// Key store.
    pub store: StoreConfig,
    /// Plan limits.
    pub plans: PlanConfig,
    /// Quotas shared across nodes.
    pub quota: QuotaConfig,
    /// Proxies and key creation.
    pub access: AccessConfig,
    /// Abuse reports.
    pub reports: ReportConfig,
    /// Logging.
    pub log: LogConfig,
}

impl ServeConfig {
    /// Reads every area; all problems at once.
    pub fn load(env: &Env, flags: ServeFlags) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let config = Self {
            server: ServerConfig::load(env, flags.bind, &mut problems),
            data: DataConfig::load(env, flags.data_dir, flags.sources, &mut problems),
            store: StoreConfig::load(env, flags.db, &mut problems),
            plans: PlanConfig::load(env, &mut problems),
            quota: QuotaConfig::load(env, &mut problems),
            access: AccessConfig::load(env, &mut problems),
            reports: ReportConfig::load(env, &mut problems),
            log: LogConfig::load(env, &mut problems),
        };
        problems.into_result(config)
    }
}

/// Everything `ipintel keys ...` needs.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// Key store.
    pub store: StoreConfig,
    /// Plan limits (to report a key's daily limit).
    pub plans: PlanConfig,
    /// Logging.
    pub log: LogConfig,
}

impl KeysConfig {
    /// Reads the areas the key commands use.
    pub fn load(env: &Env, db: Option<PathBuf>) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let config = Self {
            store: StoreConfig::load(env, db, &mut problems),
            plans: PlanConfig::load(env, &mut problems),
            log: LogConfig::load(env, &mut problems),
        };
        problems.into_result(config)
    }
}

/// Everything `ipintel lookup` needs.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    /// IP data.
    pub data: DataConfig,
    /// Logging.
    pub log: LogConfig,
}

impl LookupConfig {
    /// Reads the areas the offline lookup uses.
    pub fn load(env: &Env, data_dir: Option<PathBuf>) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let config = Self {
            data: DataConfig::load(env, data_dir, None, &mut problems),
            log: LogConfig::load(env, &mut problems),
        };
        problems.into_result(config)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn settings(problems: &Problems) -> Vec<&str> {
        problems.list().iter().map(|p| p.setting.as_str()).collect()
    }

    #[test]
    fn defaults_apply_without_variables() {
        let config = ServeConfig::load(&Env::default(), ServeFlags::default()).unwrap();
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data.dir, PathBuf::from("data"));
        assert!(
            matches!(&config.store.db, StoreLocation::Sqlite(p) if p == Path::new("var/ipintel.db"))
        );
        assert_eq!(config.plans.limits, PlanLimits::default());
        assert_eq!(config.access.http.keys_per_hour_per_client, 5);
        assert_eq!(config.access.http.portal_per_minute, 30);
        assert_eq!(config.access.http.portal_per_day, 300);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.server.connections, ServeOptions::default());
    }

    #[test]
    fn redis_settings_are_read_checked_and_never_shown_with_the_password() {
        let config = ServeConfig::load(&Env::default(), ServeFlags::default()).unwrap();
        assert!(config.quota.shared.is_none(), "no Redis unless configured");
        let env = Env::from_pairs(&[("IPINTEL_REDIS_URL", "redis://127.0.0.1:6379/0")]);
        let config = ServeConfig::load(&env, ServeFlags::default()).unwrap();
        let timeout = config.quota.shared.unwrap().timeout;
        assert_eq!(
            timeout,
            Duration::from_millis(250),
            "the documented default"
        );

        let env = Env::from_pairs(&[
            ("IPINTEL_REDIS_URL", "redis://q:hunter2@127.0.0.1:6379/1"),
            ("IPINTEL_REDIS_TIMEOUT_MS", "20"),
            ("IPINTEL_REDIS_PREFIX", "eu:"),
            ("IPINTEL_QUOTA_FALLBACK", "share:3"),
        ]);
        let config = ServeConfig::load(&env, ServeFlags::default()).unwrap();
        let shared = config.quota.shared.unwrap();
        assert_eq!(shared.timeout, Duration::from_millis(20));
        assert_eq!(shared.prefix, "eu:");
        assert_eq!(shared.fallback, QuotaFallback::Share(3));
        assert!(!format!("{shared:?}").contains("hunter2"));

        let env = Env::from_pairs(&[
            ("IPINTEL_REDIS_PREFIX", "eu:"),
            ("IPINTEL_REDIS_TIMEOUT_MS", "200"),
            ("IPINTEL_QUOTA_FALLBACK", "closed"),
        ]);
        let problems = ServeConfig::load(&env, ServeFlags::default()).unwrap_err();
        assert_eq!(
            settings(&problems),
            [
                "IPINTEL_REDIS_TIMEOUT_MS",
                "IPINTEL_REDIS_PREFIX",
                "IPINTEL_QUOTA_FALLBACK"
            ],
            "Redis settings without IPINTEL_REDIS_URL are not silently ignored"
        );
        assert!(problems.to_string().contains("IPINTEL_REDIS_URL is not"));
        let env = Env::from_pairs(&[("IPINTEL_REDIS_URL", ""), ("IPINTEL_REDIS_PREFIX", "")]);
        assert!(ServeConfig::load(&env, ServeFlags::default()).is_ok());

        let env = Env::from_pairs(&[
            ("IPINTEL_REDIS_URL", "rediss://q:hunter2@h/0"),
            ("IPINTEL_REDIS_TIMEOUT_MS", "0"),
            ("IPINTEL_QUOTA_FALLBACK", "share:0"),
        ]);
        let problems = ServeConfig::load(&env, ServeFlags::default()).unwrap_err();
        assert_eq!(
            settings(&problems),
            [
                "IPINTEL_REDIS_URL",
                "IPINTEL_REDIS_TIMEOUT_MS",
                "IPINTEL_QUOTA_FALLBACK"
            ]
        );
        assert!(!problems.to_string().contains("hunter2"));
    }

    #[test]
    fn connection_settings_are_read_and_checked() {
        let env = Env::from_pairs(&[
            ("IPINTEL_HEADER_TIMEOUT_SECS", "3"),
            ("IPINTEL_MAX_CONNECTIONS", "100"),
        ]);
        let config = ServeConfig::load(&env, ServeFlags::default()).unwrap();
        assert_eq!(
            config.server.connections.header_timeout,
            Duration::from_secs(3)
        );
        assert_eq!(config.server.connections.max_connections, 100);

        let env = Env::from_pairs(&[
            ("IPINTEL_HEADER_TIMEOUT_SECS", "0"),
            ("IPINTEL_MAX_CONNECTIONS", "lots"),
        ]);
        let problems = ServeConfig::load(&env, ServeFlags::default()).unwrap_err();
        assert_eq!(
            settings(&problems),
            ["IPINTEL_HEADER_TIMEOUT_SECS", "IPINTEL_MAX_CONNECTIONS"]
        );
    }

    #[test]
    fn variables_are_read() {
        let env = Env::from_pairs(&[
            ("IPINTEL_BIND", "0.0.0.0:9000"),
            ("IPINTEL_PLAN_FREE_DAILY", "250"),
            ("IPINTEL_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("IPINTEL_KEYS_PER_HOUR_PER_CLIENT", "2"),
            ("IPINTEL_PORTAL_PER_MINUTE", "12"),
            ("IPINTEL_PORTAL_PER_DAY", "0"),
            ("IPINTEL_LOG_FORMAT", "JSON"),
        ]);
        let config = ServeConfig::load(&env, ServeFlags::default()).unwrap();
        assert_eq!(config.server.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(config.plans.limits.free, 250);
        assert_eq!(config.access.http.trusted_proxies.networks().len(), 2);
        assert_eq!(config.access.http.keys_per_hour_per_client, 2);
        assert_eq!(config.access.http.portal_per_minute, 12);
        assert_eq!(config.access.http.portal_per_day, 0);
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn flags_override_variables_and_their_problems() {
        let env = Env::from_pairs(&[("IPINTEL_BIND", "nonsense"), ("IPINTEL_DB", "a.db")]);
        let flags = ServeFlags {
            bind: Some("127.0.0.1:1".parse().unwrap()),
            db: Some(PathBuf::from("b.db")),
            ..ServeFlags::default()
        };
        let config = ServeConfig::load(&env, flags).unwrap();
        assert_eq!(config.server.bind.port(), 1);
        assert_eq!(config.store.db.to_string(), "b.db");
    }

    #[test]
    fn every_problem_is_reported_by_name() {
        let env = Env::from_pairs(&[
            ("IPINTEL_BIND", "localhost"),
            ("IPINTEL_PLAN_PROFESSIONAL_DAILY", "-3"),
            ("IPINTEL_TRUSTED_PROXIES", "10.0.0.0/8,not-a-net"),
            ("IPINTEL_KEYS_PER_HOUR_PER_CLIENT", "many"),
            ("IPINTEL_LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,[[["),
        ]);
        let problems = ServeConfig::load(&env, ServeFlags::default()).unwrap_err();
        assert_eq!(
            settings(&problems),
            [
                "IPINTEL_BIND",
                "IPINTEL_PLAN_PROFESSIONAL_DAILY",
                "IPINTEL_TRUSTED_PROXIES",
                "IPINTEL_KEYS_PER_HOUR_PER_CLIENT",
                "IPINTEL_LOG_FORMAT",
                "RUST_LOG",
            ]
        );
        let text = problems.to_string();
        assert!(text.contains("not-a-net"), "{text}");
    }

    #[test]
    fn key_commands_ignore_server_settings() {
        let env = Env::from_pairs(&[("IPINTEL_BIND", "broken"), ("IPINTEL_DB", "k.db")]);
        let config = KeysConfig::load(&env, None).unwrap();
        assert_eq!(config.store.db.to_string(), "k.db");
    }

    #[test]
    fn a_postgres_url_selects_postgres() {
        for url in [
            "postgres://ipintel:pw@db.internal:5432/ipintel",
            "postgresql://ipintel@127.0.0.1/ipintel?options=-c%20search_path%3Dkeys",
        ] {
            let env = Env::from_pairs(&[("IPINTEL_DB", url)]);
            let config = KeysConfig::load(&env, None).unwrap();
            assert!(
                matches!(config.store.db, StoreLocation::Postgres(_)),
                "{url}"
            );
            assert!(!config.store.db.to_string().contains("pw"));
        }
    }

    #[test]
    fn a_bad_database_url_is_reported_without_its_password() {
        let env = Env::from_pairs(&[("IPINTEL_DB", "postgres://u:hunter2@h/db?sslmode=maybe")]);
        let problems = ServeConfig::load(&env, ServeFlags::default()).unwrap_err();
        assert_eq!(settings(&problems), ["IPINTEL_DB"]);
        let text = problems.to_string();
        assert!(text.contains("maybe"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let flags = ServeFlags {
            db: Some(PathBuf::from("sqlite://var/ipintel.db")),
            ..ServeFlags::default()
        };
        let problems = ServeConfig::load(&Env::default(), flags).unwrap_err();
        assert_eq!(settings(&problems), ["--db"]);
    }

    #[test]
    fn empty_variable_means_unset() {
        let env = Env::from_pairs(&[("IPINTEL_BIND", "")]);
        let config = ServeConfig::load(&env, ServeFlags::default()).unwrap();
        assert_eq!(config.server.bind.port(), 8080);
    }
}

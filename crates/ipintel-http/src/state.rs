//! Shared state of the router and its configuration.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipintel_core::Snapshot;
use ipintel_store::{Accounts, ReportDesk, ReportIndex, ReportSettings};

use crate::client::TrustedProxies;
use crate::handlers::portal::FeedCache;
use crate::limiter::CreationLimiter;
use crate::metrics::Metrics;
use crate::portal_limit::PortalLimiter;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: TrustedProxies,
    /// Keys that one client address may create per hour via `POST /v1/keys`
    /// (0 disables self-service creation).
    pub keys_per_hour_per_client: u32,
    /// Keyless portal lookups one client address may make per minute, all
    /// at once at most (0 turns portal lookups off).
    pub portal_per_minute: u32,
    /// Keyless portal lookups one client address may make per UTC day
    /// (0 turns portal lookups off).
    pub portal_per_day: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            keys_per_hour_per_client: 5,
            portal_per_minute: 30,
            portal_per_day: 300,
        }
    }
}

/// Everything a handler needs, behind one `Arc`: axum clones the state
/// for each extractor and middleware of every request, and one reference
/// count is cheaper to move between cores than one per part.
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateParts>);

/// The parts of [`AppState`], reached through `Deref`.
#[derive(Clone)]
pub struct StateParts {
    /// The IP data; a reload swaps it atomically, handlers `load()` it.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Keys, plans and usage metering.
    pub accounts: Arc<Accounts>,
    /// HTTP settings.
    pub config: Arc<HttpConfig>,
    /// Abuse reports in memory (the index of `report_desk`).
    pub reports: Arc<ReportIndex>,
    /// Stores and indexes new abuse reports.
    pub report_desk: Arc<ReportDesk>,
    /// Prometheus counters; see `docs/metrics.md`.
    pub metrics: Arc<Metrics>,
    /// Health of each data source; a reload replaces it.
    pub data_status: Arc<ArcSwap<ipintel_data::DataStatus>>,
    /// Reloads the data; `None` when the service cannot reload.
    pub reloader: Option<Arc<crate::reload::DataReloader>>,
    /// Token of `POST /v1/admin/reload`; `None` disables the route (403).
    pub(crate) admin_token: Option<Arc<str>>,
    pub(crate) key_creation: Arc<CreationLimiter>,
    pub(crate) portal: Arc<PortalLimiter>,
    pub(crate) portal_feed: Arc<FeedCache>,
}

impl AppState {
    /// State for a router serving `snapshot` with `accounts`.
    pub fn new(
        snapshot: Arc<ArcSwap<Snapshot>>,
        accounts: Arc<Accounts>,
        config: HttpConfig,
    ) -> Self {
        let key_creation = Arc::new(CreationLimiter::new(
            config.keys_per_hour_per_client,
            Duration::from_secs(3600),
        ));
        let portal = Arc::new(PortalLimiter::new(
            config.portal_per_minute,
            config.portal_per_day,
        ));
        let report_desk = ReportDesk::unloaded(
            accounts.store(),
            *accounts.limits(),
            ReportSettings::default(),
        );
        Self(Arc::new(StateParts {
            snapshot,
            reports: Arc::clone(report_desk.index()),
            report_desk,
            accounts,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new(&crate::routes::route_paths())),
            data_status: Arc::new(ArcSwap::from_pointee(ipintel_data::DataStatus::default())),
            reloader: None,
            admin_token: None,
            key_creation,
            portal,
            portal_feed: Arc::new(FeedCache::default()),
        }))
    }

    /// This state with `reloader` reloading the data, `status` as the
    /// current data status, and `admin_token` (when set and non-empty)
    /// opening `POST /v1/admin/reload`.
    pub fn with_reloader(
        mut self,
        reloader: Arc<crate::reload::DataReloader>,
        status: ipintel_data::DataStatus,
        admin_token: Option<String>,
    ) -> Self {
        let parts = Arc::make_mut(&mut self.0);
        parts.reloader = Some(reloader);
        parts.data_status.store(Arc::new(status));
        parts.admin_token = admin_token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// This state with `desk` (opened on the same store, its index loaded)
    /// taking reports, instead of the empty one [`AppState::new`] makes.
    pub fn with_report_desk(mut self, desk: Arc<ReportDesk>) -> Self {
        let parts = Arc::make_mut(&mut self.0);
        parts.reports = Arc::clone(desk.index());
        parts.report_desk = desk;
        self
    }
}

impl Deref for AppState {
    type Target = StateParts;

    fn deref(&self) -> &StateParts {
        &self.0
    }
}

impl fmt::Debug for StateParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = self.snapshot.load();
        f.debug_struct("StateParts")
            .field("snapshot_sources", &meta.meta().sources.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

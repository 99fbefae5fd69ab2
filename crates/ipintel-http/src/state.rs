//! Shared state of the router and its configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipintel_core::Snapshot;
use ipintel_store::Accounts;

use crate::client::TrustedProxies;
use crate::limiter::CreationLimiter;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: TrustedProxies,
    /// Keys that one client address may create per hour via `POST /v1/keys`
    /// (0 disables self-service creation).
    pub keys_per_hour_per_client: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            keys_per_hour_per_client: 5,
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The IP data; a reload swaps it atomically, handlers `load()` it.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Keys, plans and usage metering.
    pub accounts: Arc<Accounts>,
    /// HTTP settings.
    pub config: HttpConfig,
    pub(crate) key_creation: Arc<CreationLimiter>,
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
        Self {
            snapshot,
            accounts,
            config,
            key_creation,
        }
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = self.snapshot.load();
        f.debug_struct("AppState")
            .field("snapshot_sources", &meta.meta().sources.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

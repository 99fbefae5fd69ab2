//! `ipintel serve`: load the data, open the store, serve until a signal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use ipintel_core::Snapshot;
use ipintel_data::SourcesConfig;
use ipintel_http::{AppState, ServeOptions};
use ipintel_store::{
    now_unix, Accounts, PlanLimits, ReportDesk, SharedQuota, SharedQuotaSettings, Store,
    StoreLocation,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{DataConfig, ServeConfig};

/// How long in-flight requests may run on after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// How long the best-effort flush of usage counts may take after a second
/// signal, before the process exits anyway.
const FORCED_FLUSH_DEADLINE: Duration = Duration::from_secs(1);

/// Runs the server until SIGINT or SIGTERM, then drains, flushes usage
/// counts and returns.
///
/// The store is opened and the address bound before the (slow) data load,
/// so that a wrong path or a taken port fails at once. Connections that
/// arrive during the load wait in the listen backlog.
///
/// On the first signal the listener closes, connections with no request in
/// flight are closed at once, and requests in flight get up to 30 s to
/// finish. A second SIGINT or SIGTERM during the drain or the final flush
/// stops the process at once, after trying for up to 1 s to flush the usage
/// counts: the exit code is then 130 (SIGINT) or 143 (SIGTERM).
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let (store, accounts) = open_accounts(&config.store.db, config.plans.limits).await?;
    if let Some(settings) = &config.quota.shared {
        share_quotas(&accounts, settings.clone()).await?;
    }
    let listener = TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {} (IPINTEL_BIND)", config.server.bind))?;
    let (sources, snapshot) = load_data(&config.data, true).await?;

    let accounts_stop = CancellationToken::new();
    let background = accounts.spawn_background(accounts_stop.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone(), Arc::clone(&accounts)));
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let (shared, limits) = (Arc::clone(&store), config.plans.limits);
    let desk = ReportDesk::open(shared, limits, config.reports.settings, now_unix())
        .await
        .context("cannot read the abuse reports from the store")?;
    let state =
        AppState::new(snapshot, Arc::clone(&accounts), config.access.http).with_report_desk(desk);
    let state = crate::reload::attach(state, &config.data, &sources);
    crate::reload::spawn_triggers(&state, &config.data, shutdown.clone());
    if !ipintel_http::web_interface_built() {
        tracing::warn!(
            "the web interface is not in this binary (web/dist was missing when it was \
             built): run scripts/build_web.sh, then build again"
        );
    }
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let options = config.server.connections;
    serve_until_drained(listener, state, options, &shutdown).await?;

    accounts_stop.cancel();
    background.await.context("the usage flusher task failed")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Loads and verifies the data set off the async threads, logging its
/// sources. Returns the sources it was built from with it.
pub async fn load_data(
    data: &DataConfig,
    download: bool,
) -> anyhow::Result<(SourcesConfig, Snapshot)> {
    let started = Instant::now();
    let dir = data.dir.clone();
    let location = crate::reload::location(data);
    let (sources, snapshot) =
        tokio::task::spawn_blocking(move || ipintel_http::load_initial(&dir, &location, download))
            .await
            .context("the data loading task failed")?
            .with_context(|| format!("cannot load the IP data in {}", data.dir.display()))?;
    let meta = snapshot.meta();
    tracing::info!(
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        sources = meta.sources.len(),
        sources_file = %sources.path.display(),
        ranges_v4 = meta.ranges_v4,
        ranges_v6 = meta.ranges_v6,
        "IP data loaded"
    );
    for source in &meta.sources {
        tracing::info!(
            source = %source.name,
            version = source.version.as_deref().unwrap_or("-"),
            data_date = source.data_date.as_deref().unwrap_or("-"),
            records = source.records,
            "data source"
        );
    }
    Ok((sources, snapshot))
}

/// Opens the store that `db` names (SQLite or PostgreSQL) and the
/// accounts meter on it.
pub async fn open_accounts(
    db: &StoreLocation,
    limits: PlanLimits,
) -> anyhow::Result<(Arc<dyn Store>, Arc<Accounts>)> {
    // `db` shows a PostgreSQL URL with its password hidden.
    let store = db
        .open()
        .await
        .with_context(|| format!("cannot open the key store {db}"))?;
    tracing::info!(backend = db.backend(), location = %db, "key store open");
    let accounts = Accounts::open(Arc::clone(&store), limits)
        .await
        .context("cannot read today's usage from the key store")?;
    Ok((store, accounts))
}

/// Attaches the quota shared through Redis to `accounts` (before their
/// background task starts, which then also retries Redis and reconciles).
/// An unreachable Redis is not fatal: the node starts in its fallback mode.
async fn share_quotas(accounts: &Accounts, settings: SharedQuotaSettings) -> anyhow::Result<()> {
    let shared = SharedQuota::connect(settings)
        .await
        .context("cannot set up the shared quota (IPINTEL_REDIS_URL)")?;
    if accounts.attach_shared_quota(shared).is_err() {
        anyhow::bail!("a shared quota was attached twice");
    }
    Ok(())
}

/// Serves until `shutdown` fires and in-flight requests finish, or until
/// the drain deadline passes after it fired.
async fn serve_until_drained(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let server = ipintel_http::serve_with(listener, state, options, shutdown.clone());
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(DRAIN_DEADLINE).await;
    };
    tokio::select! {
        served = server => served.context("the HTTP server failed")?,
        () = deadline => tracing::warn!(
            deadline_secs = DRAIN_DEADLINE.as_secs(),
            "requests still running at the drain deadline were cut off"
        ),
    }
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM; on a second one, flushes the
/// usage counts (best effort, within [`FORCED_FLUSH_DEADLINE`]) and exits
/// with 128 + the signal number.
async fn stop_on_signal(shutdown: CancellationToken, accounts: Arc<Accounts>) {
    let mut signals = Signals::new();
    let first = signals.next().await;
    tracing::info!(
        signal = first.name,
        "shutting down: no new connections, draining requests"
    );
    shutdown.cancel();

    let second = signals.next().await;
    tracing::warn!(
        signal = second.name,
        "second signal: stopping now, requests in flight are cut off"
    );
    match tokio::time::timeout(FORCED_FLUSH_DEADLINE, accounts.flush()).await {
        Ok(Ok(())) => tracing::info!("usage counts flushed"),
        // `flush` has logged its error.
        Ok(Err(_)) => {}
        Err(_) => tracing::warn!(
            deadline_ms = u64::try_from(FORCED_FLUSH_DEADLINE.as_millis()).unwrap_or(u64::MAX),
            "usage counts not flushed before the deadline; up to a second of counts is lost"
        ),
    }
    std::process::exit(second.exit_code);
}

/// A stop signal received.
#[derive(Debug, Clone, Copy)]
struct Received {
    name: &'static str,
    /// 128 + the signal number, the shell's convention.
    exit_code: i32,
}

const SIGINT: Received = Received {
    name: "SIGINT",
    exit_code: 130,
};

#[cfg(unix)]
const SIGTERM: Received = Received {
    name: "SIGTERM",
    exit_code: 143,
};

/// SIGINT and SIGTERM, watched from creation on so none is missed between
/// two waits.
#[cfg(unix)]
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind, name| {
            signal(kind)
                .inspect_err(
                    |err| tracing::warn!(error = %err, signal = name, "cannot watch signal"),
                )
                .ok()
        };
        Self {
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
            terminate: watch(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// The next SIGINT or SIGTERM; pending forever if neither can be watched.
    async fn next(&mut self) -> Received {
        async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) {
            match stream {
                Some(stream) => {
                    if stream.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.interrupt) => SIGINT,
            () = recv(&mut self.terminate) => SIGTERM,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> Self {
        Self
    }

    async fn next(&mut self) -> Received {
        let _ = tokio::signal::ctrl_c().await;
        SIGINT
    }
}

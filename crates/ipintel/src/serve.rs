//! `ipintel serve`: load the data, open the store, serve until a signal.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use ipintel_core::Snapshot;
use ipintel_data::SourcesConfig;
use ipintel_http::AppState;
use ipintel_store::{now_unix, Accounts, PlanLimits, ReportDesk, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{DataConfig, ServeConfig};

/// How long in-flight requests may run on after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the server until SIGINT or SIGTERM, then drains, flushes usage
/// counts and returns.
///
/// The store is opened and the address bound before the (slow) data load,
/// so that a wrong path or a taken port fails at once. Connections that
/// arrive during the load wait in the listen backlog.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let (store, accounts) = open_accounts(&config.store.db, config.plans.limits).await?;
    let listener = TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {} (IPINTEL_BIND)", config.server.bind))?;
    let (sources, snapshot) = load_data(&config.data, true).await?;

    let accounts_stop = CancellationToken::new();
    let background = accounts.spawn_background(accounts_stop.clone());
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let shared: Arc<dyn Store> = store.clone();
    let limits = config.plans.limits;
    let desk = ReportDesk::open(shared, limits, config.reports.settings, now_unix())
        .await
        .context("cannot read the abuse reports from the store")?;
    let state =
        AppState::new(snapshot, Arc::clone(&accounts), config.access.http).with_report_desk(desk);
    let state = crate::reload::attach(state, &config.data, &sources);
    crate::reload::spawn_triggers(&state, &config.data, shutdown.clone());
    tracing::info!(addr = %listener.local_addr()?, "listening");
    serve_until_drained(listener, state, &shutdown).await?;

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

/// Opens the SQLite store and the accounts meter on it.
pub async fn open_accounts(
    db: &Path,
    limits: PlanLimits,
) -> anyhow::Result<(Arc<SqliteStore>, Arc<Accounts>)> {
    let store = SqliteStore::open(db)
        .await
        .with_context(|| format!("cannot open the key store {}", db.display()))?;
    let store = Arc::new(store);
    let shared: Arc<dyn Store> = store.clone();
    let accounts = Accounts::open(shared, limits)
        .await
        .context("cannot read today's usage from the key store")?;
    Ok((store, accounts))
}

/// Serves until `shutdown` fires and in-flight requests finish, or until
/// the drain deadline passes after it fired.
async fn serve_until_drained(
    listener: TcpListener,
    state: AppState,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let server = ipintel_http::serve(listener, state, shutdown.clone());
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

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let signal = wait_for_signal().await;
    tracing::info!(
        signal,
        "shutting down: no new connections, draining requests"
    );
    shutdown.cancel();
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

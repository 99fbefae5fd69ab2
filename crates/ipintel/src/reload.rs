//! Wiring of data reloads into the running service: the reloader in the
//! state, the refresh timer and SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use ipintel_data::SourcesConfig;
use ipintel_http::{AppState, DataReloader, SourcesLocation, Trigger};
use tokio_util::sync::CancellationToken;

use crate::config::DataConfig;

/// Where the service reads its sources from.
pub fn location(data: &DataConfig) -> SourcesLocation {
    data.sources
        .clone()
        .map_or(SourcesLocation::Manifest, SourcesLocation::File)
}

/// `state` with a reloader for `data` and the status of the first snapshot.
pub fn attach(state: AppState, data: &DataConfig, sources: &SourcesConfig) -> AppState {
    let reloader = DataReloader::new(data.dir.clone(), location(data), true, sources);
    let status = ipintel_http::initial_status(&data.dir, sources, &state.snapshot.load());
    let token = data.admin_token.as_ref().map(|t| t.0.clone());
    if token.is_none() {
        tracing::info!("IPINTEL_ADMIN_TOKEN is not set: POST /v1/admin/reload answers 403");
    }
    state.with_reloader(Arc::new(reloader), status, token)
}

/// Starts the refresh timer (unless `refresh_secs` is 0) and the SIGHUP
/// watcher; both stop at `shutdown`.
pub fn spawn_triggers(state: &AppState, data: &DataConfig, shutdown: CancellationToken) {
    if data.refresh_secs > 0 {
        let every = Duration::from_secs(data.refresh_secs);
        tokio::spawn(timer(state.clone(), every, shutdown.clone()));
    }
    tokio::spawn(on_hangup(state.clone(), shutdown));
}

async fn run(state: &AppState, trigger: Trigger) {
    let Some(reloader) = state.reloader.clone() else {
        return;
    };
    if reloader.reload(state, trigger, false).await.is_none() {
        tracing::info!(trigger = ?trigger, "a reload is already running; this one is skipped");
    }
}

async fn timer(state: AppState, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => run(&state, Trigger::Timer).await,
        }
    }
}

#[cfg(unix)]
async fn on_hangup(state: AppState, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch SIGHUP; reload by timer or admin request");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hangups.recv() => {
                if got.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: reloading the data");
                run(&state, Trigger::Signal).await;
            }
        }
    }
}

#[cfg(not(unix))]
async fn on_hangup(_state: AppState, _shutdown: CancellationToken) {}

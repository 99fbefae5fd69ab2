//! The HTTP API of ipintel.
//!
//! [`router`] builds the axum application: keyed lookup routes under
//! `/v1/ip/...`, usage reporting, self-service key creation, health probes,
//! the OpenAPI document, the keyless routes of the web portal
//! (`/v1/portal/...`, limited per client address) and the web interface
//! itself (the portal at `/`, the dashboard at `/dashboard`), embedded at
//! build time. [`serve`] runs it on a listener until a
//! cancellation token fires, then drains in-flight requests; [`serve_with`]
//! does the same with a header timeout and connection cap of its own.
//!
//! Every error leaves through [`ApiError`], which renders the one JSON
//! envelope `{"error": {"code", "message", "status"}}`.
#![forbid(unsafe_code)]

mod access_log;
mod auth;
mod client;
mod clock;
mod error;
mod fast_path;
mod handlers;
mod limiter;
mod metrics;
mod openapi;
mod portal_limit;
mod reload;
mod reply;
mod routes;
mod server;
mod state;
mod ui;

pub use client::{client_addr, TrustedProxies};
pub use error::ApiError;
pub use metrics::{snapshot_sources, status_sources, Metrics, SourceGauge};
pub use openapi::openapi;
pub use reload::{
    initial_status, load_initial, read_sources, DataReloader, FeedReport, ReloadReport,
    SourcesLocation, Trigger,
};
pub use routes::{router, routes};
pub use server::ServeOptions;
pub use state::{AppState, HttpConfig, StateParts};
pub use ui::is_built as web_interface_built;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the API on `listener` until `shutdown` is cancelled, with the
/// default [`ServeOptions`].
///
/// See [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeOptions::default(), shutdown).await
}

/// Serves the API on `listener` until `shutdown` is cancelled.
///
/// A client gets [`ServeOptions::header_timeout`] to send each request's
/// line and headers (and to start its next request on a keep-alive
/// connection), else its connection is closed; at most
/// [`ServeOptions::max_connections`] connections are served at once, further
/// ones wait in the listen backlog.
///
/// On cancellation the listener stops accepting; connections with no
/// request in flight (idle keep-alive ones, and ones still sending a
/// request's head) are closed at once, and the call returns once the
/// requests in flight have finished. The socket peer address is recorded
/// per connection so that the client address can be derived (see
/// [`client_addr`]).
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    server::run(listener, state, options, shutdown).await
}

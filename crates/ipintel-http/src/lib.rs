//! The HTTP API of ipintel.
//!
//! [`router`] builds the axum application: keyed lookup routes under
//! `/v1/ip/...`, usage reporting, self-service key creation, health probes
//! and the OpenAPI document. [`serve`] runs it on a listener until a
//! cancellation token fires, then drains in-flight requests.
//!
//! Every error leaves through [`ApiError`], which renders the one JSON
//! envelope `{"error": {"code", "message", "status"}}`.
#![forbid(unsafe_code)]

mod access_log;
mod auth;
mod client;
mod clock;
mod error;
mod handlers;
mod limiter;
mod metrics;
mod openapi;
mod reload;
mod reply;
mod routes;
mod state;

pub use client::{client_addr, TrustedProxies};
pub use error::ApiError;
pub use metrics::{snapshot_sources, status_sources, Metrics, SourceGauge};
pub use openapi::openapi;
pub use reload::{
    initial_status, load_initial, read_sources, DataReloader, FeedReport, ReloadReport,
    SourcesLocation, Trigger,
};
pub use routes::{router, routes};
pub use state::{AppState, HttpConfig};

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the API on `listener` until `shutdown` is cancelled.
///
/// On cancellation the listener stops accepting, idle keep-alive connections
/// are closed, and the call returns once in-flight requests have finished.
/// The socket peer address is recorded per connection so that the client
/// address can be derived (see [`client_addr`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

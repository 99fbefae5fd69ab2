//! The connection loop: accepts TCP connections, serves each with hyper
//! under a header read timeout and a connection cap, and on shutdown waits
//! only for requests in flight.
//!
//! Three kinds of connection hold no request in flight and are dropped at
//! once when shutdown starts, so that they cannot stretch the drain:
//! a connection that has not yet sent a complete first request (nothing, a
//! partial request line or half its headers), an idle keep-alive connection
//! (hyper closes it on `graceful_shutdown`), and a keep-alive connection
//! half-way through sending its next request (hyper counts it as idle too).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// Connection settings of [`serve_with`](crate::serve_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// How long a client may take to send a request's line and headers,
    /// counted from the connection's start for the first request and from
    /// the end of the previous response for the next ones (so it is also
    /// the idle keep-alive timeout). The connection is closed when it runs
    /// out.
    pub header_timeout: Duration,
    /// Most connections served at once; further ones wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
}

impl ServeOptions {
    /// Default [`header_timeout`](Self::header_timeout): 10 seconds.
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`max_connections`](Self::max_connections): 4096.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Accepts until `shutdown`, then waits for the connections' requests in
/// flight (see the module comment for which connections are dropped).
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(http_builder(options.header_timeout));
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let tracker = TaskTracker::new();
    while let Some((stream, peer, permit)) = accept(&listener, &slots, &shutdown).await {
        let connection = Connection {
            builder: Arc::clone(&builder),
            router: router.clone(),
            header_timeout: options.header_timeout,
            shutdown: shutdown.clone(),
            _permit: permit,
        };
        tracker.spawn(connection.serve(stream, peer));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// One hyper builder shared by every connection: HTTP/1 with a header read
/// timeout, and HTTP/2 with prior knowledge.
fn http_builder(header_timeout: Duration) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// The next connection and a slot for it, or `None` once `shutdown` fires.
/// While every slot is taken, nothing is accepted.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = tokio::select! {
        () = shutdown.cancelled() => return None,
        permit = Arc::clone(slots).acquire_owned() => permit.ok()?,
    };
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Responses are written whole; do not hold them back.
                let _ = stream.set_nodelay(true);
                return Some((stream, peer, permit));
            }
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                // Out of file descriptors or similar: back off, then retry.
                tracing::error!(error = %err, "cannot accept a connection");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Errors of one connection that went away before it was accepted.
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// What a connection task needs.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
    /// Held for the connection's life: frees its slot when dropped.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves `stream` until it closes, its first request is too slow, or
    /// shutdown finds no request in flight on it.
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let started = Arc::new(AtomicBool::new(false));
        let service = ConnService {
            router: self.router,
            peer: ConnectInfo(peer),
            started: Arc::clone(&started),
        };
        let conn = self.builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);

        // Until the first request arrives, hyper may still be choosing the
        // protocol, where its own header timeout does not run yet.
        let first_request = tokio::time::sleep(self.header_timeout);
        tokio::pin!(first_request);
        loop {
            tokio::select! {
                result = conn.as_mut() => return log_end(result),
                () = self.shutdown.cancelled() => break,
                () = &mut first_request, if !started.load(Ordering::Relaxed) => {
                    // A request may have arrived while this `select!` ran.
                    if !started.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        }
        // The task alone polls `conn`, and a request reaches the service only
        // while it is polled: an unset flag means none ever did.
        if !started.load(Ordering::Relaxed) {
            return;
        }
        conn.as_mut().graceful_shutdown();
        log_end(conn.await);
    }
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// The router as a hyper service for one connection: adds the peer address
/// to each request and notes that a request has arrived.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: ConnectInfo<SocketAddr>,
    started: Arc<AtomicBool>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = <Router as Service<axum::extract::Request>>::Future;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        if !self.started.load(Ordering::Relaxed) {
            self.started.store(true, Ordering::Relaxed);
        }
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(self.peer);
        // `Router` is always ready; a clone is a reference count.
        self.router.clone().call(request)
    }
}

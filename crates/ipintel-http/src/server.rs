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
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::fast_path::{self, Outcome};
use crate::state::AppState;

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
    /// Threads serving connections, each running a single-threaded runtime
    /// (at least 1).
    pub workers: usize,
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
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        }
    }
}

/// Accepts until `shutdown`, then waits for the connections' requests in
/// flight (see the module comment for which connections are dropped).
///
/// Connections are served on [`ServeOptions::workers`] threads, each with a
/// single-threaded runtime of its own that accepts from the shared listening
/// socket: a connection stays on the thread that accepted it, so its
/// requests never wake another core, and the hot counters are not handed
/// between runtime workers. The returned future only waits for the threads.
pub(crate) async fn run(
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let router = crate::routes::router(state.clone());
    let shared = Arc::new(Shared {
        state,
        builder: http_builder(options.header_timeout),
        slots: Arc::new(Semaphore::new(options.max_connections.max(1))),
        header_timeout: options.header_timeout,
        shutdown,
    });
    let mut finished = Vec::new();
    for index in 0..options.workers.max(1) {
        let listener = listener.try_clone()?;
        let (done, wait) = oneshot::channel::<()>();
        let shared = Arc::clone(&shared);
        let router = router.clone();
        std::thread::Builder::new()
            .name(format!("ipintel-http-{index}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(shared.accept_loop(listener, router)),
                    Err(err) => tracing::error!(error = %err, "cannot start an HTTP worker"),
                }
                drop(done);
            })?;
        finished.push(wait);
    }
    drop(listener);
    for wait in finished {
        // An error only means the thread ended without sending: it is done.
        let _ = wait.await;
    }
    Ok(())
}

/// What every worker thread shares.
struct Shared {
    state: AppState,
    builder: Builder<TokioExecutor>,
    slots: Arc<Semaphore>,
    header_timeout: Duration,
    shutdown: CancellationToken,
}

impl Shared {
    /// One worker's loop: accepts on its own registration of the listening
    /// socket until shutdown, then waits for its connections to drain.
    async fn accept_loop(self: Arc<Self>, listener: std::net::TcpListener, router: Router) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(err) => {
                tracing::error!(error = %err, "an HTTP worker cannot use the listener");
                return;
            }
        };
        let tracker = TaskTracker::new();
        while let Some((stream, peer, permit)) =
            accept(&listener, &self.slots, &self.shutdown).await
        {
            let connection = Connection {
                shared: Arc::clone(&self),
                router: router.clone(),
                _permit: permit,
            };
            tracker.spawn(connection.serve(stream, peer));
        }
        drop(listener);
        tracker.close();
        tracker.wait().await;
    }
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
    shared: Arc<Shared>,
    router: Router,
    /// Held for the connection's life: frees its slot when dropped.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves `stream` until it closes, its first request is too slow, or
    /// shutdown finds no request in flight on it: plain lookups on the fast
    /// path while they last, then hyper and the router.
    async fn serve(self, mut stream: TcpStream, peer: SocketAddr) {
        let shared = &self.shared;
        let read = fast_path::serve(
            &mut stream,
            &shared.state,
            shared.header_timeout,
            &shared.shutdown,
        )
        .await;
        let Outcome::HandOver(read) = read else {
            return;
        };
        let stream = Prefixed { read, stream };

        let started = Arc::new(AtomicBool::new(false));
        let service = ConnService {
            router: self.router,
            peer: ConnectInfo(peer),
            started: Arc::clone(&started),
        };
        let conn = self
            .shared
            .builder
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);

        // Until the first request arrives, hyper may still be choosing the
        // protocol, where its own header timeout does not run yet.
        let first_request = tokio::time::sleep(self.shared.header_timeout);
        tokio::pin!(first_request);
        loop {
            tokio::select! {
                result = conn.as_mut() => return log_end(result),
                () = self.shared.shutdown.cancelled() => break,
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

/// A stream whose first bytes were already read: `read` is given out
/// before anything more is read from `stream`.
struct Prefixed {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
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

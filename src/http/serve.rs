//! The accept loop: hyper's HTTP/1.1 server with a header-read timeout (axum's `serve` does not
//! expose one), keep-alive, the peer address as `ConnectInfo`, a lingering close, and graceful
//! shutdown that lets in-flight requests finish (their rows are committed before they are
//! answered).
//!
//! **Lingering close.** A request refused before its body is read (413 on a declared length,
//! 404, 403, 429, a 401 on a large body) is answered at once and its connection closed. Closing
//! a socket that still has unread input makes the kernel send a reset, and a reset that reaches
//! the client while it is still sending discards the answer waiting in its receive buffer: a
//! plain client (`http.client`, `curl`, most provider senders) that writes the whole body before
//! reading then sees "connection reset" instead of "413". So once a connection's last response
//! is written and that request's body was not read to its end, the server shuts down its sending
//! half (the client reads the answer and end-of-stream), then reads and discards what the client
//! is still sending until it closes, for at most [`Limits::linger_bytes`], and never past
//! `body_timeout_secs` after the request started (the time the body would have had to arrive
//! had it been accepted) nor [`LINGER_IDLE`] without a byte. This is what nginx calls a
//! lingering close.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

/// How long after shutdown starts open connections may take to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// A lingering close ends when the client has sent nothing for this long.
pub const LINGER_IDLE: Duration = Duration::from_secs(2);
/// At most one "max_connections reached" log line per this interval (the metric counts each).
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The least a lingering close discards before giving up (see [`Limits::linger_bytes`]).
pub const LINGER_MIN_BYTES: usize = 16 * 1024 * 1024;

/// The accept loop's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `header_timeout_secs`.
    pub header_timeout: Duration,
    /// `body_timeout_secs`: a lingering close ends this long after its request started.
    pub body_timeout: Duration,
    /// The most a lingering close reads and discards: `max_body_bytes`, at least
    /// [`LINGER_MIN_BYTES`], so a body up to the limit plus that much gets its answer.
    pub linger_bytes: usize,
    /// `max_connections`: connections served at once; the accept loop waits past it.
    pub max_connections: usize,
}

impl Limits {
    /// The bounds for a gateway with these settings.
    pub fn new(header_timeout: Duration, body_timeout: Duration, max_body_bytes: usize) -> Self {
        Limits {
            header_timeout,
            body_timeout,
            linger_bytes: max_body_bytes.max(LINGER_MIN_BYTES),
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// These bounds with at most `max` connections at once.
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

/// What the connection task knows about its latest request.
#[derive(Default)]
struct Latest {
    started: Mutex<Option<Instant>>,
    /// Whether that request's body was read to its end (or had none).
    body_ended: AtomicBool,
}

/// A request body that records in [`Latest`] when it has been read to its end.
struct Watched {
    inner: Incoming,
    latest: Arc<Latest>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.latest.body_ended.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits up to
/// [`SHUTDOWN_GRACE`] for open requests (and lingering closes) to finish.
///
/// # Errors
/// Only if the listener itself fails permanently.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_counted(listener, router, limits, shutdown, None).await
}

/// [`serve`], counting in `at_cap` each time the connection cap makes the accept loop wait.
///
/// # Errors
/// Only if the listener itself fails permanently.
pub async fn serve_counted(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    at_cap: Option<prometheus_client::metrics::counter::Counter>,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut last_cap_log: Option<Instant> = None;
    // Every connection task holds a receiver; `closed()` resolves when the last one is gone.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(256 * 1024);
    tokio::pin!(shutdown);
    loop {
        // One permit per open connection: at the cap, stop accepting (new clients wait in the
        // kernel's backlog) until one closes, so that a flood of connections cannot hold more
        // memory and file descriptors than the operator allowed.
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(counter) = &at_cap {
                    counter.inc();
                }
                if last_cap_log.is_none_or(|t| t.elapsed() >= CAP_LOG_INTERVAL) {
                    last_cap_log = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "max_connections reached: new connections wait until open ones close"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let task = connection(
            stream,
            peer,
            router.clone(),
            builder.clone(),
            limits,
            stopped.clone(),
        );
        tokio::spawn(async move {
            task.await;
            drop(permit);
        });
    }
    drop(listener);
    drop(stopped);
    let _ = stop.send(true);
    tokio::select! {
        () = stop.closed() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("open connections did not finish within {} s of shutdown", SHUTDOWN_GRACE.as_secs());
        }
    }
    Ok(())
}

/// Runs one connection to its end, then lingers if its last request body was left unread.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: hyper::server::conn::http1::Builder,
    limits: Limits,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let latest = Arc::new(Latest::default());
    let service = {
        let latest = Arc::clone(&latest);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            *latest
                .started
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            let ended = request.body().is_end_stream();
            latest.body_ended.store(ended, Ordering::Relaxed);
            let latest = Arc::clone(&latest);
            let mut request = request.map(|inner| axum::body::Body::new(Watched { inner, latest }));
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            // Boxed so that the connection can be polled without being pinned for good (it is
            // taken apart afterwards to linger on its socket).
            Box::pin(router.clone().oneshot(request))
        })
    };
    let mut conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut draining = *stopping.borrow();
    if draining {
        Pin::new(&mut conn).graceful_shutdown();
    }
    let result = loop {
        tokio::select! {
            result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break result,
            changed = stopping.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        }
    };
    if let Err(error) = result {
        // Timeouts and malformed requests: hyper has answered what it could; just close.
        tracing::debug!(error = %error, peer = %peer, "connection ended with an error");
        return;
    }
    let parts = conn.into_parts();
    let started = *latest
        .started
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut stream = parts.io.into_inner();
    match started {
        Some(started) if !latest.body_ended.load(Ordering::Relaxed) => {
            let deadline = started + limits.body_timeout;
            linger(
                &mut stream,
                parts.read_buf.len(),
                deadline,
                limits.linger_bytes,
            )
            .await;
        }
        _ => {
            let _ = stream.shutdown().await;
        }
    }
}

/// Shuts down the sending half, then reads and discards until the client closes, `max_bytes`
/// have been discarded (counting `buffered`, what hyper had already read), `deadline`, or
/// [`LINGER_IDLE`] without a byte. Returns how many bytes were discarded.
async fn linger(
    stream: &mut TcpStream,
    buffered: usize,
    deadline: Instant,
    max_bytes: usize,
) -> usize {
    let mut discarded = buffered;
    if stream.shutdown().await.is_err() {
        return discarded;
    }
    // Small: a slow client can keep many lingering connections open at once.
    let mut buf = vec![0_u8; 16 * 1024];
    while discarded < max_bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left.min(LINGER_IDLE), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => discarded += n,
        }
    }
    discarded
}

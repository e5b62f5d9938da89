//! Serving the API port: one HTTP/1.1 connection per task, with the limits
//! that keep idle, slow or too many clients from starving the server.
//!
//! - A connection with no request in progress is closed after the idle
//!   timeout (keep-alive included), and one whose request head has started
//!   but is not complete after the header read timeout.
//! - A request body must arrive completely within the body read timeout
//!   (else 408).
//! - At most `max_connections` connections are served. When a new one
//!   arrives at the cap, the connection waiting longest for a request is
//!   closed to make room; requests in progress are never cut. When every
//!   connection is busy, up to [`OVERFLOW`] more are served; beyond them a
//!   few wait a moment for room, and the rest are answered 503 and closed
//!   at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower_service::Service;

use crate::hosts::agent_certs::Channel;

/// Connections served beyond the cap while none is idle to make room.
pub const OVERFLOW: usize = 64;
/// Connections beyond those that may wait [`WAIT`] for room.
const WAITING: usize = 64;
/// How long a connection beyond the hard limit waits for room.
const WAIT: Duration = Duration::from_secs(1);
/// Descriptors the API port may use beyond `max_connections`.
pub const HEADROOM: usize = OVERFLOW + WAITING;
/// How long shutdown waits for requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The limits of the API port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// A request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
struct BodyTimeout(Duration);

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What the accept loop and a connection's watcher know of a connection.
struct Conn {
    /// Requests whose response has not been sent completely.
    in_flight: AtomicUsize,
    /// No byte of a new request has arrived since the last one finished.
    waiting: AtomicBool,
    /// When the connection last became idle (ms since start).
    idle_since: AtomicU64,
    /// When the first byte of the current request head arrived.
    head_since: AtomicU64,
    /// Asked to close to make room.
    evict: Notify,
    evicted: AtomicBool,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            in_flight: AtomicUsize::new(0),
            waiting: AtomicBool::new(true),
            idle_since: AtomicU64::new(now_ms()),
            head_since: AtomicU64::new(0),
            evict: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }
}

/// Every open connection, for eviction.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn add(&self, c: Arc<Conn>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, c);
        id
    }

    fn len(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Asks the connection idle the longest to close; false if every
    /// connection has a request in progress.
    fn evict_one(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let victim = conns
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .filter(|c| !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| {
                if c.waiting.load(Ordering::Acquire) {
                    c.idle_since.load(Ordering::Acquire)
                } else {
                    c.head_since.load(Ordering::Acquire)
                }
            });
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Release);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's byte stream: plain TCP, or TLS over TCP.
pub trait ApiIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Tells the client there is no room (if that can be said without
    /// waiting), before the connection is dropped.
    fn refuse(&self);

    /// How the connection reached the API, handed to every request on it
    /// as an extension (agents' routes check the client certificate).
    fn channel(&self) -> Channel;
}

impl ApiIo for TcpStream {
    fn refuse(&self) {
        refuse(self);
    }

    fn channel(&self) -> Channel {
        Channel::Plain
    }
}

impl ApiIo for roost_pki::TlsStream<TcpStream> {
    /// A TLS answer cannot be written without waiting: the connection is
    /// just closed.
    fn refuse(&self) {
        tracing::debug!("too many connections; refused one");
    }

    /// The client certificate the handshake verified, if any.
    fn channel(&self) -> Channel {
        let peer = self
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|der| roost_pki::cert_info_der(der.as_ref()).ok());
        Channel::Tls(peer)
    }
}

/// What admitting a connection needs.
struct Admission {
    app: Router,
    limits: Limits,
    registry: Arc<Registry>,
    /// Set when the server stops: how long requests in progress may take.
    stop: watch::Receiver<Option<Duration>>,
    permits: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

impl Admission {
    /// Serves the connection if there is room (making some by evicting the
    /// connection idle the longest), else lets it wait a moment, else
    /// refuses it.
    fn admit<S: ApiIo>(&self, io: S, remote: SocketAddr) {
        let ctx = ConnCtx {
            app: self.app.clone(),
            limits: self.limits,
            registry: self.registry.clone(),
            stop: self.stop.clone(),
            remote,
        };
        if self.registry.len() >= self.limits.max_connections {
            // Make room: the connection waiting longest for a request goes.
            self.registry.evict_one();
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                // Registered here, not in the task, so that the next
                // connection already sees this one.
                let conn = Arc::new(Conn::new());
                let id = self.registry.add(conn.clone());
                tokio::spawn(async move {
                    ctx.serve(io, conn, id).await;
                    drop(permit);
                });
            }
            // At the hard limit: wait a moment for the room being made.
            Err(_) => match self.waiting.clone().try_acquire_owned() {
                Ok(wait) => {
                    let permits = self.permits.clone();
                    tokio::spawn(async move {
                        let permit = tokio::time::timeout(WAIT, permits.acquire_owned()).await;
                        drop(wait);
                        match permit {
                            Ok(Ok(permit)) => {
                                let conn = Arc::new(Conn::new());
                                let id = ctx.registry.add(conn.clone());
                                ctx.serve(io, conn, id).await;
                                drop(permit);
                            }
                            _ => io.refuse(),
                        }
                    });
                }
                Err(_) => io.refuse(),
            },
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests
/// in progress finish for as long as it said ([`SHUTDOWN_GRACE`] on a
/// signal; less before a handover, which long polls must not hold up).
///
/// With `tls`, each connection first completes a TLS handshake within the
/// header read timeout; at most [`roost_pki::ListenerLimits`]'s
/// `max_pending_handshakes` are in progress at once (the oldest is dropped
/// to make room, as on the DC listener), so clients that connect and say
/// nothing cannot hold the listener. Only connections past their
/// handshake count against `max_connections`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = Duration>,
) {
    let hard_limit = limits.max_connections + OVERFLOW;
    let permits = Arc::new(Semaphore::new(hard_limit));
    let (stop_tx, stop_rx) = watch::channel(None);
    let admission = Admission {
        app,
        limits,
        registry: Arc::new(Registry::default()),
        stop: stop_rx,
        permits: permits.clone(),
        waiting: Arc::new(Semaphore::new(WAITING)),
    };
    let acceptor = tls.map(roost_pki::TlsAcceptor::from);
    let mut handshakes = roost_pki::PendingHandshakes::new(
        roost_pki::ListenerLimits::default().max_pending_handshakes,
    );
    let mut shutdown = std::pin::pin!(shutdown);
    let grace;
    loop {
        let (tcp, remote) = tokio::select! {
            g = &mut shutdown => {
                grace = g;
                break;
            }
            done = handshakes.next() => {
                if let Some((tls, remote)) = done {
                    admission.admit(tls, remote);
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    if !roost_pki::is_connection_error(&e) {
                        // Out of file descriptors: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        match &acceptor {
            None => admission.admit(tcp, remote),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let timeout = limits.header_read_timeout;
                let mut ready = Vec::new();
                handshakes
                    .spawn(
                        async move {
                            roost_pki::accept_tls(&acceptor, tcp, remote, timeout)
                                .await
                                .map(|tls| (tls, remote))
                        },
                        |done| ready.extend(done),
                    )
                    .await;
                for (tls, remote) in ready {
                    admission.admit(tls, remote);
                }
            }
        }
    }
    drop(listener);
    drop(handshakes);
    let _ = stop_tx.send(Some(grace));
    // Every permit back means every connection has ended.
    let all = u32::try_from(hard_limit).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress at shutdown were cut");
    }
}

/// Answers 503 without reading anything, and closes.
fn refuse(tcp: &TcpStream) {
    let body = roost_api::error_body(
        503,
        "Service Unavailable",
        "too many connections; retry later",
    )
    .to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.try_write(reply.as_bytes());
    tracing::debug!("too many connections; refused one");
}

struct ConnCtx {
    app: Router,
    limits: Limits,
    registry: Arc<Registry>,
    /// Set when the server stops: how long requests in progress may take.
    stop: watch::Receiver<Option<Duration>>,
    remote: SocketAddr,
}

impl ConnCtx {
    async fn serve<S: ApiIo>(mut self, tcp: S, conn: Arc<Conn>, id: u64) {
        let channel = tcp.channel();
        let io = TokioIo::new(Watched {
            inner: tcp,
            conn: conn.clone(),
        });
        let app = self.app.clone();
        let remote = self.remote;
        let body_timeout = self.limits.body_read_timeout;
        let svc_conn = conn.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut app = app.clone();
            let guard = InFlight::start(svc_conn.clone());
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(remote));
            parts.extensions.insert(channel.clone());
            let body = if http_body::Body::is_end_stream(&body) {
                Body::new(body)
            } else {
                Body::new(TimedBody {
                    inner: body,
                    sleep: Box::pin(tokio::time::sleep(body_timeout)),
                    limit: body_timeout,
                    uncounted: 0,
                })
            };
            let req = Request::from_parts(parts, body);
            async move {
                let resp = app.call(req).await?;
                Ok::<_, Infallible>(resp.map(|b| {
                    Body::new(Guarded {
                        inner: b,
                        _guard: guard,
                    })
                }))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true).header_read_timeout(None);
        let http = builder.serve_connection(io, svc);
        let mut http = std::pin::pin!(http);
        let watch = watch_conn(conn.clone(), self.limits);
        let mut watch = std::pin::pin!(watch);
        let mut stopping = false;
        // Past the grace, a request still in progress is cut: its handler
        // is dropped with the connection, so nothing of the server is held.
        let cut = tokio::time::sleep(Duration::MAX);
        let mut cut = std::pin::pin!(cut);
        loop {
            tokio::select! {
                r = http.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, remote = %self.remote, "connection ended");
                    }
                    break;
                }
                () = watch.as_mut() => {
                    // Nothing in progress: dropping the connection closes it.
                    tracing::debug!(remote = %self.remote, "closing an idle or slow connection");
                    break;
                }
                _ = self.stop.changed(), if !stopping => {
                    // Finish the request in progress, if any, then close.
                    stopping = true;
                    let grace = (*self.stop.borrow()).unwrap_or(SHUTDOWN_GRACE);
                    cut.as_mut().reset(tokio::time::Instant::now() + grace);
                    http.as_mut().graceful_shutdown();
                }
                () = cut.as_mut(), if stopping => {
                    tracing::debug!(remote = %self.remote, "cut a request still in progress at shutdown");
                    break;
                }
            }
        }
        self.registry.remove(id);
    }
}

/// Resolves when the connection should be closed: idle too long, a request
/// head too slow, or evicted to make room. Never while a request is in
/// progress.
async fn watch_conn(conn: Arc<Conn>, limits: Limits) {
    let idle = limits.idle_timeout.as_millis() as u64;
    let head = limits.header_read_timeout.as_millis() as u64;
    loop {
        let now = now_ms();
        let deadline = if conn.in_flight.load(Ordering::Acquire) > 0 {
            now + idle
        } else if conn.waiting.load(Ordering::Acquire) {
            conn.idle_since.load(Ordering::Acquire) + idle
        } else {
            conn.head_since.load(Ordering::Acquire) + head
        };
        if deadline <= now && conn.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(deadline.saturating_sub(now).max(10))) => {}
            () = conn.evict.notified() => {
                if conn.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                conn.evicted.store(false, Ordering::Release);
            }
        }
    }
}

/// Marks a request in progress until its response body is dropped (sent).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: Arc<Conn>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.waiting.store(false, Ordering::Release);
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.idle_since.store(now_ms(), Ordering::Release);
        self.0.waiting.store(true, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's stream, noting when the first byte of a request head
/// arrives.
struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S: ApiIo> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.waiting.swap(false, Ordering::AcqRel) {
            self.conn.head_since.store(now_ms(), Ordering::Release);
        }
        r
    }
}

impl<S: ApiIo> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails once its time is up: `limit` from the end of
/// the head, plus [`TIME_PER_MIB`] for every MiB received, so that a large
/// upload (an application package) at a sound rate completes while a
/// trickle cannot hold the connection.
struct TimedBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    /// Bytes received not yet counted in the deadline.
    uncounted: u64,
}

/// Time a request body is given for every MiB it brings.
const TIME_PER_MIB: Duration = Duration::from_secs(1);

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(f) = Pin::new(&mut self.inner).poll_frame(cx) {
            if let Some(Ok(frame)) = &f
                && let Some(data) = frame.data_ref()
            {
                self.uncounted += data.len() as u64;
                let mib = self.uncounted >> 20;
                if mib > 0 {
                    self.uncounted -= mib << 20;
                    let deadline = self.sleep.deadline() + TIME_PER_MIB * mib as u32;
                    self.sleep.as_mut().reset(deadline);
                }
            }
            return Poll::Ready(f.map(|r| r.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds the request's [`InFlight`] mark.
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// True if `e` (a body rejection) comes from the body read timeout.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

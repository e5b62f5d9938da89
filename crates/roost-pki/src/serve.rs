use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::request::Parts;
use axum::serve::{IncomingStream, Listener};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::cert::{CertInfo, cert_info_der};

/// A TLS handshake that has not completed after this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many handshakes in flight. When full, the oldest pending
/// handshake is dropped to make room: a real client completes its
/// handshake in a few round trips, so idle connections cannot crowd it out.
const MAX_PENDING_HANDSHAKES: usize = 512;
/// Completed handshakes waiting for axum to pick them up.
const ACCEPT_QUEUE: usize = 64;
/// Connections without a client certificate (enrollment only): at most
/// this many at once, each closed after this long whatever it does.
const MAX_ANONYMOUS: usize = 64;
const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(30);
/// Connections with a verified client certificate: at most this many, each
/// closed after this long without a byte from the client.
const MAX_CERTIFIED: usize = 20_000;
const CERTIFIED_IDLE: Duration = Duration::from_secs(120);

/// Limits of a [`TlsListener`]; [`ListenerLimits::default`] gives the
/// production values.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    pub handshake_timeout: Duration,
    pub max_pending_handshakes: usize,
    pub max_anonymous: usize,
    pub anonymous_lifetime: Duration,
    pub max_certified: usize,
    pub certified_idle: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_pending_handshakes: MAX_PENDING_HANDSHAKES,
            max_anonymous: MAX_ANONYMOUS,
            anonymous_lifetime: ANONYMOUS_LIFETIME,
            max_certified: MAX_CERTIFIED,
            certified_idle: CERTIFIED_IDLE,
        }
    }
}

/// A TLS connection handed to axum: closed (reads fail with `TimedOut`) at
/// its deadline. Without a client certificate the deadline is fixed (its
/// lifetime); with one it moves on with every byte read (an idle timeout).
/// It counts against its class's connection cap until dropped.
pub struct GuardedStream {
    inner: TlsStream<TcpStream>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// `Some` for connections whose deadline moves on with each read.
    idle: Option<Duration>,
    _slot: Slot,
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream").finish_non_exhaustive()
    }
}

/// One place in a connection cap, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if let (Ok(()), Some(idle)) = (&r, self.idle)
                    && buf.filled().len() > before
                {
                    let at = tokio::time::Instant::now() + idle;
                    self.deadline.as_mut().reset(at);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection closed at its deadline",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
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

/// Per-connection info for `ConnectInfo<TlsConnectInfo>`: the remote
/// address and the verified client certificate, if the client presented one.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    pub remote_addr: SocketAddr,
    /// The client's leaf certificate. Only ever `Some` for a certificate
    /// that the server config's verifier accepted (issued by the DC CA and
    /// within its validity window at handshake time).
    pub peer: Option<CertInfo>,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsConnectInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Handler extractor for the verified client certificate of the connection
/// (`None`: no client certificate).
///
/// Reads a `PeerIdentity` request extension if one was inserted (handy for
/// testing routes without TLS), otherwise the `ConnectInfo<TlsConnectInfo>`
/// that [`serve_tls`] provides. Served any other way, it yields `None`, so
/// routes that require an identity fail closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity(pub Option<CertInfo>);

impl PeerIdentity {
    /// The subject CN of the client certificate, if any.
    pub fn cn(&self) -> Option<&str> {
        self.0.as_ref().and_then(|info| info.cn.as_deref())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerIdentity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<PeerIdentity>() {
            return Ok(identity.clone());
        }
        Ok(PeerIdentity(
            parts
                .extensions
                .get::<ConnectInfo<TlsConnectInfo>>()
                .and_then(|ConnectInfo(info)| info.peer.clone()),
        ))
    }
}

/// An [`axum::serve::Listener`] that completes TLS handshakes before handing
/// connections to axum.
///
/// Handshakes run concurrently in a background task (bounded, each with a
/// timeout), so a slow or silent client cannot stall the accept loop, and a
/// failed handshake (wrong CA, expired certificate, plain HTTP, port scan)
/// is logged at debug level and otherwise ignored. The background task stops
/// when the listener is dropped.
pub struct TlsListener {
    local_addr: SocketAddr,
    rx: mpsc::Receiver<(GuardedStream, TlsConnectInfo)>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Wraps a bound TCP listener. Must be called inside a tokio runtime.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        TlsListener::with_limits(listener, config, ListenerLimits::default())
    }

    /// [`TlsListener::new`] with explicit limits.
    pub fn with_limits(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        limits: ListenerLimits,
    ) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx, limits));
        Ok(TlsListener {
            local_addr,
            rx,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener for TlsListener {
    type Io = GuardedStream;
    type Addr = TlsConnectInfo;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            None => {
                // Only if the accept task died (panic); never resolve again.
                tracing::error!(addr = %self.local_addr, "TLS accept loop ended");
                std::future::pending().await
            }
        }
    }

    /// The local address, with `peer: None`.
    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(TlsConnectInfo {
            remote_addr: self.local_addr,
            peer: None,
        })
    }
}

/// Connection counts shared by the handshake tasks.
#[derive(Clone)]
struct Counts {
    anonymous: Arc<AtomicUsize>,
    certified: Arc<AtomicUsize>,
}

/// Handshakes in progress, at most `max` at once: when full, the oldest
/// pending one is dropped to make room (a real client completes its
/// handshake in a few round trips, so idle connections cannot crowd it
/// out). Used by every TLS listener of Roost: the DC listener and the API.
pub struct PendingHandshakes<T> {
    set: JoinSet<T>,
    /// Oldest first (finished ones are skipped lazily).
    order: VecDeque<AbortHandle>,
    max: usize,
}

impl<T: Send + 'static> PendingHandshakes<T> {
    pub fn new(max: usize) -> Self {
        PendingHandshakes {
            set: JoinSet::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Handshakes not yet reaped.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Starts `task`, first dropping the oldest pending handshake if full.
    /// Results of handshakes reaped to make room are handed to `done`.
    pub async fn spawn<F>(&mut self, task: F, mut done: impl FnMut(T))
    where
        F: Future<Output = T> + Send + 'static,
    {
        while self.set.len() >= self.max {
            match self.order.pop_front() {
                Some(oldest) if !oldest.is_finished() => {
                    tracing::debug!("too many pending TLS handshakes; dropping the oldest");
                    oldest.abort();
                }
                Some(_) => continue,
                None => {}
            }
            // Reap one so that `len` goes down.
            if let Some(Ok(t)) = self.set.join_next().await {
                done(t);
            }
        }
        if self.order.len() > 2 * self.max {
            self.order.retain(|h| !h.is_finished());
        }
        let h = self.set.spawn(task);
        self.order.push_back(h);
    }

    /// The next finished handshake's result; pending forever when there is
    /// none in progress (for use in `select!`).
    pub async fn next(&mut self) -> T {
        loop {
            if self.set.is_empty() {
                std::future::pending::<()>().await;
            }
            if let Some(Ok(t)) = self.set.join_next().await {
                return t;
            }
        }
    }
}

/// A TLS handshake on `tcp`, given up after `timeout`; `None` (logged at
/// debug) if it fails or takes too long.
pub async fn accept_tls(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    remote_addr: SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote_addr, "TLS handshake timed out");
            None
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(GuardedStream, TlsConnectInfo)>,
    limits: ListenerLimits,
) {
    let mut handshakes = PendingHandshakes::new(limits.max_pending_handshakes);
    let counts = Counts {
        anonymous: Arc::new(AtomicUsize::new(0)),
        certified: Arc::new(AtomicUsize::new(0)),
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote_addr)) => {
                    let _ = tcp.set_nodelay(true);
                    handshakes.spawn(handshake(
                        acceptor.clone(),
                        tcp,
                        remote_addr,
                        tx.clone(),
                        limits,
                        counts.clone(),
                    ), |()| {}).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept failed");
                    if !is_connection_error(&e) {
                        // e.g. EMFILE: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
            () = handshakes.next() => {}
            () = tx.closed() => break,
        }
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote_addr: SocketAddr,
    tx: mpsc::Sender<(GuardedStream, TlsConnectInfo)>,
    limits: ListenerLimits,
    counts: Counts,
) {
    let Some(tls) = accept_tls(&acceptor, tcp, remote_addr, limits.handshake_timeout).await else {
        return;
    };
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|der| match cert_info_der(der.as_ref()) {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::debug!(%remote_addr, error = %e, "cannot parse verified client certificate");
                None
            }
        });
    let (slot, wait, idle) = if peer.is_some() {
        (
            Slot::take(&counts.certified, limits.max_certified),
            limits.certified_idle,
            Some(limits.certified_idle),
        )
    } else {
        (
            Slot::take(&counts.anonymous, limits.max_anonymous),
            limits.anonymous_lifetime,
            None,
        )
    };
    let Some(slot) = slot else {
        tracing::debug!(%remote_addr, certified = peer.is_some(), "too many connections; closing");
        return;
    };
    let stream = GuardedStream {
        inner: tls,
        deadline: Box::pin(tokio::time::sleep(wait)),
        idle,
        _slot: slot,
    };
    let _ = tx
        .send((stream, TlsConnectInfo { remote_addr, peer }))
        .await;
}

pub fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves (then
/// drains in-flight connections, as `axum::serve`'s graceful shutdown does).
///
/// Handlers get the client certificate via the [`PeerIdentity`] extractor or
/// `ConnectInfo<TlsConnectInfo>`. A failed handshake never stops the server.
pub async fn serve_tls<F>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TlsListener::new(listener, config)?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<TlsConnectInfo>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

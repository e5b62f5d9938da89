use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::request::Parts;
use axum::serve::{IncomingStream, Listener};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::cert::{CertInfo, cert_info_der};

/// A TLS handshake that has not completed after this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many handshakes in flight; further connections are closed
/// until some finish.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// Completed handshakes waiting for axum to pick them up.
const ACCEPT_QUEUE: usize = 64;

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
    rx: mpsc::Receiver<(TlsStream<TcpStream>, TlsConnectInfo)>,
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
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
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
    type Io = TlsStream<TcpStream>;
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

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, TlsConnectInfo)>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote_addr)) => {
                    if handshakes.len() >= MAX_PENDING_HANDSHAKES {
                        tracing::debug!(%remote_addr, "too many pending TLS handshakes; closing");
                        continue;
                    }
                    let _ = tcp.set_nodelay(true);
                    handshakes.spawn(handshake(acceptor.clone(), tcp, remote_addr, tx.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "TCP accept failed");
                    if !is_connection_error(&e) {
                        // e.g. EMFILE: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            () = tx.closed() => break,
        }
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote_addr: SocketAddr,
    tx: mpsc::Sender<(TlsStream<TcpStream>, TlsConnectInfo)>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote_addr, "TLS handshake timed out");
            return;
        }
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
    let _ = tx.send((tls, TlsConnectInfo { remote_addr, peer })).await;
}

fn is_connection_error(e: &io::Error) -> bool {
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

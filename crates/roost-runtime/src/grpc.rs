//! A small gRPC client over HTTP/2 on a unix socket: enough for containerd
//! (unary calls, server streams, and the bidirectional content write).
//!
//! gRPC on the wire is HTTP/2 POST to `/<package>.<Service>/<Method>` with
//! `content-type: application/grpc`; each message is framed as one byte of
//! compression flag (always 0 here), four bytes of big-endian length and the
//! protobuf bytes; the status comes in the `grpc-status` / `grpc-message`
//! trailers (or headers, for a "trailers-only" reply).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Mutex, mpsc};

use crate::Error;

/// Largest message accepted from containerd (content reads come in 1 MiB
/// chunks; lists of containers or snapshots stay far below this).
const MAX_MESSAGE: usize = 16 << 20;

/// A request body: one message, or a stream of messages fed by a channel.
pub(crate) enum ReqBody {
    Once(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReqBody::Once(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Stream(rx) => rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReqBody::Once(None))
    }
}

/// Frames one protobuf message for gRPC.
pub(crate) fn frame<M: prost::Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.extend_from_slice(&[0]);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    m.encode(&mut buf).expect("BytesMut grows");
    buf.freeze()
}

/// One HTTP/2 connection to containerd, re-established when it breaks (for
/// example after a supervised containerd was restarted).
pub(crate) struct Channel {
    socket: PathBuf,
    namespace: String,
    sender: Mutex<Option<SendRequest<ReqBody>>>,
}

impl Channel {
    pub(crate) fn new(socket: &Path, namespace: &str) -> Channel {
        Channel {
            socket: socket.to_path_buf(),
            namespace: namespace.to_string(),
            sender: Mutex::new(None),
        }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    async fn sender(&self) -> Result<SendRequest<ReqBody>, Error> {
        let mut guard = self.sender.lock().await;
        if let Some(s) = guard.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "cannot connect to containerd at {}: {e}",
                    self.socket.display()
                ))
            })?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Unavailable(format!("HTTP/2 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "containerd connection closed");
            }
        });
        *guard = Some(send.clone());
        Ok(send)
    }

    async fn call(
        &self,
        path: &str,
        body: ReqBody,
        lease: Option<&str>,
    ) -> Result<Streaming, Error> {
        let mut send = self.sender().await?;
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("http://containerd{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("containerd-namespace", &self.namespace);
        if let Some(l) = lease {
            req = req.header("containerd-lease", l);
        }
        let req = req
            .body(body)
            .map_err(|e| Error::Protocol(format!("request {path}: {e}")))?;
        send.ready()
            .await
            .map_err(|e| Error::Unavailable(format!("containerd connection: {e}")))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| Error::Unavailable(format!("{path}: {e}")))?;
        let (parts, body) = resp.into_parts();
        if !parts.status.is_success() {
            return Err(Error::Protocol(format!(
                "{path}: HTTP status {}",
                parts.status
            )));
        }
        // A "trailers-only" reply carries the status in the headers.
        if let Some(code) = parts.headers.get("grpc-status") {
            let code: i32 = code.to_str().ok().and_then(|c| c.parse().ok()).unwrap_or(2);
            if code != 0 {
                let msg = grpc_message(&parts.headers);
                return Err(Error::from_grpc(path, code, msg));
            }
        }
        Ok(Streaming {
            path: path.to_string(),
            body,
            buf: BytesMut::new(),
            done: false,
            messages: VecDeque::new(),
        })
    }

    /// A unary call.
    pub(crate) async fn unary<Q: prost::Message, R: prost::Message + Default>(
        &self,
        path: &str,
        req: &Q,
        lease: Option<&str>,
    ) -> Result<R, Error> {
        let mut s = self
            .call(path, ReqBody::Once(Some(frame(req))), lease)
            .await?;
        let first = s.message::<R>().await?;
        // Drain to the trailers so an error status is seen.
        while s.message::<R>().await?.is_some() {}
        first.ok_or_else(|| Error::Protocol(format!("{path}: no response message")))
    }

    /// A call whose reply is a stream of messages.
    pub(crate) async fn server_stream<Q: prost::Message>(
        &self,
        path: &str,
        req: &Q,
    ) -> Result<Streaming, Error> {
        self.call(path, ReqBody::Once(Some(frame(req))), None).await
    }

    /// A bidirectional call fed by `rx`. The server may answer only after
    /// reading messages, so the caller must feed `rx` while awaiting this.
    pub(crate) async fn bidi(
        &self,
        path: &str,
        lease: Option<&str>,
        rx: mpsc::Receiver<Bytes>,
    ) -> Result<Streaming, Error> {
        self.call(path, ReqBody::Stream(rx), lease).await
    }
}

fn grpc_message(h: &http::HeaderMap) -> String {
    h.get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default()
}

/// grpc-message is percent-encoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The reply side of a call: messages in order, then the status.
pub(crate) struct Streaming {
    path: String,
    body: Incoming,
    buf: BytesMut,
    done: bool,
    messages: VecDeque<Bytes>,
}

impl Streaming {
    /// The next message, `None` at a clean end of the stream, or the error
    /// status containerd sent.
    pub(crate) async fn message<R: prost::Message + Default>(
        &mut self,
    ) -> Result<Option<R>, Error> {
        loop {
            if let Some(m) = self.messages.pop_front() {
                return R::decode(m)
                    .map(Some)
                    .map_err(|e| Error::Protocol(format!("{}: bad message: {e}", self.path)));
            }
            if self.done {
                return Ok(None);
            }
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => {
                    self.done = true;
                    if !self.buf.is_empty() {
                        return Err(Error::Protocol(format!(
                            "{}: stream ended inside a message",
                            self.path
                        )));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(Error::Unavailable(format!("{}: {e}", self.path)));
                }
                Some(Ok(f)) => {
                    if f.is_data() {
                        let data = f.into_data().unwrap_or_default();
                        self.buf.extend_from_slice(&data);
                        self.split()?;
                    } else if let Ok(t) = f.into_trailers() {
                        self.done = true;
                        let code: i32 = t
                            .get("grpc-status")
                            .and_then(|c| c.to_str().ok())
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(2);
                        if code != 0 {
                            return Err(Error::from_grpc(&self.path, code, grpc_message(&t)));
                        }
                    }
                }
            }
        }
    }

    fn split(&mut self) -> Result<(), Error> {
        while self.buf.len() >= 5 {
            let len =
                u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if self.buf[0] != 0 {
                return Err(Error::Protocol(format!(
                    "{}: compressed message not supported",
                    self.path
                )));
            }
            if len > MAX_MESSAGE {
                return Err(Error::Protocol(format!(
                    "{}: message of {len} bytes is too large",
                    self.path
                )));
            }
            if self.buf.len() < 5 + len {
                break;
            }
            self.buf.advance(5);
            let m = self.buf.split_to(len).freeze();
            self.messages.push_back(m);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_decoded() {
        assert_eq!(percent_decode("not%20found%3A x"), "not found: x");
        assert_eq!(percent_decode("100%"), "100%");
    }
}

//! Files served whole or from a byte offset (`Range: bytes=N-`, so that an
//! interrupted fetch resumes), read from disk as the client takes them:
//! never held whole in memory. At most [`MAX_TRANSFERS`] files are sent at
//! once (the others wait their turn), so a fleet fetching a release at the
//! same moment costs a bounded amount of memory whatever its size.

use std::path::Path;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Files sent at once, over every listener.
pub const MAX_TRANSFERS: usize = 64;
/// How long a request waits for its turn.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes read from disk at a time for one transfer.
const CHUNK: usize = 64 * 1024;

static TRANSFERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_TRANSFERS);

/// The file at `path` from the offset the `Range` header asks for, with
/// the number of bytes the answer carries. `Err(None)`: there is no such
/// file (the caller words the 404).
pub async fn file_response(
    path: &Path,
    headers: &HeaderMap,
    content_type: &'static str,
) -> Result<(Response, u64), Option<ApiError>> {
    use tokio::io::AsyncSeekExt;
    // A turn, or a 503 that tells the client to come back (fetches resume).
    let turn = match tokio::time::timeout(TURN_WAIT, TRANSFERS.acquire()).await {
        Ok(Ok(t)) => t,
        _ => {
            return Err(Some(ApiError {
                retry_after_ms: Some(5000),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{MAX_TRANSFERS} files are being sent; try again shortly"),
                )
            }));
        }
    };
    let mut file = tokio::fs::File::open(path).await.map_err(|_| None)?;
    let len = file.metadata().await.map_err(|_| None)?.len();
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if start > len {
        return Err(Some(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("the file has {len} bytes"),
        )));
    }
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| None)?;
    let status = if start > 0 {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let left = len - start;
    let body = FileBody {
        file,
        left,
        _turn: turn,
    };
    let mut resp = (status, Body::new(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if start > 0
        && let Ok(v) = format!("bytes {start}-{}/{len}", len.saturating_sub(1)).parse()
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok((resp, left))
}

/// A file as a response body, read in chunks as the client takes them;
/// it holds its turn among the transfers until it is dropped.
struct FileBody {
    file: tokio::fs::File,
    left: u64,
    _turn: tokio::sync::SemaphorePermit<'static>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        use tokio::io::AsyncRead;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let want = self.left.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the archive shrank while it was sent",
                    ))));
                }
                buf.truncate(n);
                self.left -= n as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

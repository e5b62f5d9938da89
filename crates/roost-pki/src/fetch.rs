//! Fetching a content-addressed file (an application package) from a
//! system controller over the mutual-TLS link: resumed with
//! `Range: bytes=N-` after an interruption, checked against its SHA-256
//! before it is used, and kept under its digest so it is fetched once.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// What a fetch left: the file, and the bytes that crossed the link for it
/// (0 when it was already here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub received: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The 64 hex digits of a `sha256:` digest.
fn digest_hex(digest: &str) -> Result<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::Invalid(format!("not a sha256 digest: {digest:?}")))
}

/// The digest (`sha256:<hex>`) and size of a file, read in 64 KiB pieces.
pub fn file_digest(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((format!("sha256:{hex}"), size))
}

/// Where a fetched file with this digest is kept in `dir`.
pub fn fetched_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    Ok(dir.join(format!("{}.tgz", digest_hex(digest)?)))
}

/// Fetches `url` (a file of `size` bytes whose SHA-256 is `digest`) into
/// `dir`: nothing when `<hex>.tgz` is there already; otherwise the bytes
/// after what an interrupted fetch left in `<hex>.part`, then the whole is
/// checked and renamed. A file with another digest is removed and refused.
pub async fn fetch_content(
    client: &reqwest::Client,
    url: &str,
    dir: &Path,
    digest: &str,
    size: u64,
) -> Result<Fetched> {
    let hex = digest_hex(digest)?;
    let done = dir.join(format!("{hex}.tgz"));
    if done.is_file() {
        return Ok(Fetched {
            path: done,
            received: 0,
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let part = dir.join(format!("{hex}.part"));
    let mut offset = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if offset > size {
        std::fs::remove_file(&part).map_err(io(&part))?;
        offset = 0;
    }
    let mut received = 0u64;
    if offset < size || size == 0 {
        let mut req = client.get(url);
        if offset > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let mut resp = req.send().await?;
        let status = resp.status();
        let append = match status.as_u16() {
            206 => true,
            200 => false,
            _ => {
                let body = resp.text().await.unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "fetching {digest}: {status}: {}",
                    body.chars().take(300).collect::<String>()
                )));
            }
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&part)
            .map_err(io(&part))?;
        let mut have = if append { offset } else { 0 };
        while let Some(chunk) = resp.chunk().await? {
            have += chunk.len() as u64;
            if have > size {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(Error::Invalid(format!(
                    "fetching {digest}: more than the {size} bytes announced"
                )));
            }
            file.write_all(&chunk).map_err(io(&part))?;
            received += chunk.len() as u64;
        }
        file.sync_all().map_err(io(&part))?;
    }
    let (got, _) = file_digest(&part)?;
    if got.strip_prefix("sha256:") != Some(hex) {
        let _ = std::fs::remove_file(&part);
        return Err(Error::Invalid(format!(
            "fetched package does not match its digest: expected sha256:{hex}, got {got}"
        )));
    }
    std::fs::rename(&part, &done).map_err(io(&done))?;
    Ok(Fetched {
        path: done,
        received,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};

    /// A plain HTTP server of `body` at `/f` honouring `Range: bytes=N-`;
    /// returns its URL and the Range headers it was sent (`-` for none).
    async fn serve(body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/f",
            axum::routing::get(move |headers: HeaderMap| {
                let body = body.clone();
                let log = log.clone();
                async move {
                    let range = headers
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    log.lock()
                        .unwrap()
                        .push(range.clone().unwrap_or("-".into()));
                    match range
                        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
                    {
                        Some(n) => (StatusCode::PARTIAL_CONTENT, body[n..].to_vec()),
                        None => (StatusCode::OK, body),
                    }
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/f", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, seen)
    }

    fn digest_of(b: &[u8]) -> String {
        let hex: String = Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        format!("sha256:{hex}")
    }

    #[tokio::test]
    async fn an_interrupted_fetch_resumes_is_checked_and_is_kept_for_next_time() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let digest = digest_of(&body);
        let (url, seen) = serve(body.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        // What an interrupted fetch left.
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(dir.path().join(format!("{hex}.part")), &body[..40_000]).unwrap();
        let client = reqwest::Client::new();
        let f = fetch_content(&client, &url, dir.path(), &digest, body.len() as u64)
            .await
            .unwrap();
        assert_eq!(f.received, 60_000, "only the rest crossed the link");
        assert_eq!(std::fs::read(&f.path).unwrap(), body);
        assert_eq!(f.path, fetched_path(dir.path(), &digest).unwrap());
        assert_eq!(*seen.lock().unwrap(), ["bytes=40000-"]);
        // Kept: fetched once.
        let again = fetch_content(&client, &url, dir.path(), &digest, body.len() as u64)
            .await
            .unwrap();
        assert_eq!(again.received, 0);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn bytes_that_do_not_match_the_digest_are_refused_and_removed() {
        let body = b"not the package".to_vec();
        let (url, _) = serve(body.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let want = digest_of(b"the package");
        let e = fetch_content(
            &reqwest::Client::new(),
            &url,
            dir.path(),
            &want,
            body.len() as u64,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("does not match its digest"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // More bytes than announced: refused too.
        let e = fetch_content(
            &reqwest::Client::new(),
            &url,
            dir.path(),
            &digest_of(&body),
            3,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("more than the 3 bytes"), "{e}");
        assert!(
            fetch_content(&reqwest::Client::new(), &url, dir.path(), "md5:x", 1)
                .await
                .is_err()
        );
    }
}

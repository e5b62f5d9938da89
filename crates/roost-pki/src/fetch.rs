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

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
    let got = sha256_file(&part)?;
    if got != hex {
        let _ = std::fs::remove_file(&part);
        return Err(Error::Invalid(format!(
            "fetched package does not match its digest: expected sha256:{hex}, got sha256:{got}"
        )));
    }
    std::fs::rename(&part, &done).map_err(io(&done))?;
    Ok(Fetched {
        path: done,
        received,
    })
}

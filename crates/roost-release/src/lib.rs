//! Software releases: the signed file a release travels in, its manifest
//! and the keys that sign it. No I/O beyond the readers and writers it is
//! handed; the server streams uploads through [`Opened`] and never holds a
//! payload in memory.
//!
//! A release file (`*.patch`, the extension the stock `software` client
//! uploads) is, in order:
//!
//! 1. the magic `ROOSTREL1\n`;
//! 2. the manifest: a big-endian u32 length, then that many bytes of JSON
//!    ([`Manifest`]), at most [`MAX_MANIFEST`];
//! 3. the signature: 64 bytes of Ed25519 over the magic and the manifest
//!    bytes exactly as stored, by the key the manifest names (`key_id`);
//! 4. the payload files, concatenated in the manifest's order, each of the
//!    size it declares, and nothing after them.
//!
//! The manifest carries each payload file's SHA-256, so the signature covers
//! the payload too: a file is accepted only once every byte was read and
//! every digest matched.

// First: its `named_states!` serves the modules after it.
#[macro_use]
pub mod states;

pub mod deploy;
mod keys;
mod manifest;
pub mod rollout;
pub mod strategy;

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

pub use keys::{PublicKey, SigningKey, TrustedKeys};
pub use manifest::{Hooks, Manifest, PayloadFile, split_release_id};
pub use states::{DeployEvent, DeployState, HostDeployState, ReleaseState};

/// The first bytes of every release file.
pub const MAGIC: &[u8] = b"ROOSTREL1\n";
/// The largest manifest accepted, bytes.
pub const MAX_MANIFEST: usize = 256 * 1024;
/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// Why a release, a key or a state change was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A deploy step that USM does not allow in the deploy's state.
    #[error("{0}")]
    NotAllowed(String),
    #[error("not a Roost release file (it does not start with the release magic)")]
    NotARelease,
    #[error("the release file is cut short ({0})")]
    Truncated(&'static str),
    #[error("the manifest is invalid: {0}")]
    Manifest(String),
    #[error("the release is signed by key {0}, which this cloud does not trust")]
    UntrustedKey(String),
    #[error("the release's signature does not verify: the manifest was changed after signing")]
    BadSignature,
    #[error("payload file {name} does not match its digest in the manifest (it was changed)")]
    BadDigest { name: String },
    #[error("the release file has bytes after its last payload file")]
    TrailingBytes,
    #[error("the signing key is invalid: {0}")]
    Key(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Truncated("end of file")
            } else {
                Error::Io { context, source }
            }
        }
    }
}

/// Writes a release file: `manifest` (its payload sizes and digests must
/// describe `files`, in order), signed by `key`, then each file's bytes.
/// The manifest's `key_id` is set to `key`'s.
pub fn write_release<W: Write>(
    out: &mut W,
    manifest: &Manifest,
    key: &SigningKey,
    files: &mut [&mut dyn Read],
) -> Result<(), Error> {
    let mut manifest = manifest.clone();
    manifest.key_id = key.public().id();
    manifest.check()?;
    if files.len() != manifest.payload.len() {
        return Err(Error::Manifest(format!(
            "{} payload files are listed but {} were given",
            manifest.payload.len(),
            files.len()
        )));
    }
    let bytes = serde_json::to_vec(&manifest)
        .map_err(|e| Error::Manifest(format!("cannot encode the manifest: {e}")))?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|&n| n as usize <= MAX_MANIFEST)
        .ok_or_else(|| Error::Manifest("the manifest is too large".into()))?;
    let signature = key.sign(&signed_bytes(&bytes));
    let w = Error::io("cannot write the release file");
    let mut head = Vec::with_capacity(MAGIC.len() + 4 + bytes.len() + SIGNATURE_LEN);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&len.to_be_bytes());
    head.extend_from_slice(&bytes);
    head.extend_from_slice(&signature);
    out.write_all(&head).map_err(w)?;
    for (file, entry) in files.iter_mut().zip(&manifest.payload) {
        let mut hasher = Sha256::new();
        let copied = copy_hashing(&mut file.take(entry.size + 1), out, &mut hasher)?;
        if copied != entry.size || hex(&hasher.finalize()) != entry.sha256 {
            return Err(Error::Manifest(format!(
                "payload file {} is not what the manifest says ({copied} bytes read, {} declared, \
                 or another digest)",
                entry.name, entry.size
            )));
        }
    }
    out.flush()
        .map_err(Error::io("cannot write the release file"))
}

/// What is signed: the magic and the manifest bytes.
fn signed_bytes(manifest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(MAGIC.len() + manifest.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(manifest);
    v
}

fn copy_hashing(
    from: &mut dyn Read,
    to: &mut dyn Write,
    hasher: &mut Sha256,
) -> Result<u64, Error> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(Error::io("cannot read a payload file"))?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])
            .map_err(Error::io("cannot write a payload file"))?;
        total += n as u64;
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A release file whose manifest is read and whose signature verified; its
/// payload is still to be read (and checked) with [`Opened::payload`].
pub struct Opened<R> {
    pub manifest: Manifest,
    reader: R,
}

/// Reads a release's head: the magic, the manifest (checked) and the
/// signature, verified under one of `trusted`.
pub fn open<R: Read>(mut reader: R, trusted: &TrustedKeys) -> Result<Opened<R>, Error> {
    let mut magic = [0u8; MAGIC.len()];
    read_exact(&mut reader, &mut magic, "the magic")?;
    if magic != MAGIC {
        return Err(Error::NotARelease);
    }
    let mut len = [0u8; 4];
    read_exact(&mut reader, &mut len, "the manifest length")?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MANIFEST {
        return Err(Error::Manifest(format!(
            "the manifest is {len} bytes; at most {MAX_MANIFEST} are accepted"
        )));
    }
    let mut bytes = vec![0u8; len];
    read_exact(&mut reader, &mut bytes, "the manifest")?;
    let mut signature = [0u8; SIGNATURE_LEN];
    read_exact(&mut reader, &mut signature, "the signature")?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Manifest(format!("not the manifest's JSON: {e}")))?;
    let key = trusted
        .get(&manifest.key_id)
        .ok_or_else(|| Error::UntrustedKey(manifest.key_id.clone()))?;
    if !key.verify(&signed_bytes(&bytes), &signature) {
        return Err(Error::BadSignature);
    }
    // Signed by a trusted key: now its content is worth checking.
    manifest.check()?;
    Ok(Opened { manifest, reader })
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Truncated(what)
        } else {
            Error::Io {
                context: format!("cannot read {what}"),
                source: e,
            }
        }
    })
}

impl<R: Read> Opened<R> {
    /// Reads every payload file, handing its bytes to `sink(entry)` as they
    /// come, and checks each against its digest, then that nothing follows.
    /// A sink is opened per file; what it wrote must be thrown away when
    /// this returns an error.
    pub fn payload<F>(mut self, mut sink: F) -> Result<Manifest, Error>
    where
        F: FnMut(&PayloadFile) -> Result<Box<dyn Write>, Error>,
    {
        for entry in &self.manifest.payload {
            let mut out = sink(entry)?;
            let mut hasher = Sha256::new();
            let copied = copy_hashing(
                &mut (&mut self.reader).take(entry.size),
                &mut out,
                &mut hasher,
            )?;
            if copied != entry.size {
                return Err(Error::Truncated("a payload file"));
            }
            out.flush()
                .map_err(Error::io("cannot write a payload file"))?;
            if hex(&hasher.finalize()) != entry.sha256 {
                return Err(Error::BadDigest {
                    name: entry.name.clone(),
                });
            }
        }
        let mut extra = [0u8; 1];
        match self.reader.read(&mut extra) {
            Ok(0) => Ok(self.manifest),
            Ok(_) => Err(Error::TrailingBytes),
            Err(e) => Err(Error::io("cannot read the release file")(e)),
        }
    }
}

#[cfg(test)]
mod tests;

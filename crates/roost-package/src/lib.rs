//! Roost's application package: a gzip-compressed tar (`.tgz`) holding
//!
//! - `metadata.yaml` with `app_name` and `app_version` (as StarlingX's),
//! - `manifests/*.yaml` (or `.yml`): the Kubernetes-style objects Roost runs
//!   (`roost_api::apps::manifest`),
//! - `images/*.tar`: OCI image layouts as tar archives (checked by the
//!   runtime when imported),
//! - a checksum file: `checksums.sha256` in `sha256sum` format (written by
//!   [`build`]) and/or any top-level `*.md5` in `md5sum` format (StarlingX's
//!   convention). Every line of each is checked as `sha256sum -c` /
//!   `md5sum -c` would; a mismatch is "checksum validation failed".
//!
//! Other files (StarlingX's `charts/`, `plugins/`, ...) are kept but unused.
//!
//! [`read`] unpacks a package from any `Read`, streaming (never the whole
//! package in memory), into a new directory. Every entry is checked before
//! anything is written for it: only regular files and directories, relative
//! paths without `..`, no links of any kind (so nothing can point out of the
//! directory), within the limits of [`Limits`]. Then come the checksums,
//! `metadata.yaml` and the manifests. On any error the directory is removed:
//! nothing is stored.
//!
//! [`upload`] decodes StarlingX's JSON upload body to a package file.

pub mod upload;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use md5::Md5;
use roost_api::apps::Metadata;
use roost_api::apps::manifest::{self, Object, Source};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

/// The checksum file [`build`] writes.
pub const CHECKSUM_FILE: &str = "checksums.sha256";

/// Why a package was refused or could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The package is malformed or unsafe (bad entry, missing file, ...).
    #[error("invalid application package: {0}")]
    Invalid(String),
    /// An entry or the whole package is past a limit.
    #[error("invalid application package: {0}")]
    TooLarge(String),
    /// A checksum file does not match.
    #[error("checksum validation failed: {0}")]
    Checksum(String),
    /// `metadata.yaml` is refused.
    #[error("invalid application package: {0}")]
    Metadata(roost_api::Error),
    /// A manifest is refused, or the manifests together.
    #[error("invalid application package: {0}")]
    Manifest(roost_api::Error),
    /// The target directory exists already.
    #[error("{0} already exists")]
    Exists(PathBuf),
    /// An upload body is not the JSON object StarlingX's client sends.
    #[error("invalid upload body: {0}")]
    Upload(String),
    /// An upload body's `binary_data` is not base64.
    #[error("invalid upload body: binary_data: {0}")]
    Base64(roost_api::Error),
    /// A decoded upload is larger than the configured limit.
    #[error("the application package is larger than the limit of {limit} bytes")]
    UploadTooLarge { limit: u64 },
    /// Reading or writing failed for a reason other than the package's
    /// content (disk full, permissions).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Bad input (a 4xx), rather than a failure of this host.
    pub fn is_invalid(&self) -> bool {
        !matches!(self, Error::Io { .. })
    }
}

/// A write of the decoded upload failed.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io {
            what: "storing the uploaded package".into(),
            source,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::Invalid(m.into())
}

/// Limits of [`read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of all files together once unpacked (and of the `.tgz`).
    pub max_total_bytes: u64,
    /// Entries in the archive (files and directories).
    pub max_entries: u64,
    /// Bytes of `metadata.yaml`, of a checksum file and of each manifest.
    pub max_manifest_bytes: u64,
    /// Refuse a package without a checksum file.
    pub require_checksum: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total_bytes: 1 << 30,
            max_entries: 10_000,
            max_manifest_bytes: 1 << 20,
            require_checksum: true,
        }
    }
}

/// One object of a package and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageObject {
    pub source: Source,
    pub object: Object,
}

/// A package read and checked by [`read`].
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// The directory it was unpacked into.
    pub root: PathBuf,
    pub metadata: Metadata,
    /// Every object of every manifest, in file then document order.
    pub objects: Vec<PackageObject>,
    /// The image archives (`images/*.tar`), sorted, as paths under `root`.
    pub images: Vec<PathBuf>,
    /// `sha256:<hex>` of the `.tgz` as read.
    pub digest: String,
    /// Bytes of the `.tgz` as read.
    pub size: u64,
}

/// Counts and hashes the compressed bytes as they are read.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
    limit: u64,
    /// The input itself failed (not the package's content).
    failed: Option<io::ErrorKind>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed = Some(e.kind());
            }
        })?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(io::Error::other(LimitExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct LimitExceeded;
impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("compressed package larger than the limit")
    }
}
impl std::error::Error for LimitExceeded {}

/// Reads a package from `input` into `target`, which must not exist yet.
/// On any error `target` is removed again.
pub fn read(input: impl Read, target: &Path, limits: &Limits) -> Result<Package, Error> {
    if target.symlink_metadata().is_ok() {
        return Err(Error::Exists(target.to_path_buf()));
    }
    fs::create_dir_all(target).map_err(io_err(format!("creating {}", target.display())))?;
    let result = read_into(input, target, limits);
    if result.is_err() {
        let _ = fs::remove_dir_all(target);
    }
    result
}

/// A path of an archive entry, checked: relative, no `..`, no empty name.
fn entry_path(raw: &[u8]) -> Result<PathBuf, Error> {
    let text = std::str::from_utf8(raw).map_err(|_| invalid("an entry name is not UTF-8"))?;
    let show = text.escape_debug().to_string();
    if text.starts_with('/') {
        return Err(invalid(format!("entry {show:?} has an absolute path")));
    }
    let mut out = PathBuf::new();
    for c in Path::new(text).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid(format!("entry {show:?} leaves the package ('..')")));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(format!("entry {show:?} has an absolute path")));
            }
        }
    }
    if text.contains('\0') {
        return Err(invalid(format!("entry {show:?} has a NUL byte")));
    }
    Ok(out)
}

fn read_into(input: impl Read, target: &Path, limits: &Limits) -> Result<Package, Error> {
    let mut hashing = Hashing {
        inner: input,
        hash: Sha256::new(),
        bytes: 0,
        limit: limits.max_total_bytes,
        failed: None,
    };
    let extracted = extract(&mut hashing, target, limits);
    if hashing.bytes > limits.max_total_bytes {
        return Err(Error::TooLarge(format!(
            "the package is larger than the limit of {} bytes",
            limits.max_total_bytes
        )));
    }
    if let (Err(_), Some(kind)) = (&extracted, hashing.failed) {
        return Err(Error::Io {
            what: "reading the package".into(),
            source: io::Error::from(kind),
        });
    }
    extracted?;
    // The rest of the stream (tar padding, gzip trailer) belongs to the digest.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| {
        if e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) {
            Error::TooLarge(format!(
                "the package is larger than the limit of {} bytes",
                limits.max_total_bytes
            ))
        } else {
            invalid(format!("reading the package: {e}"))
        }
    })?;
    let digest = format!("sha256:{}", hex(&hashing.hash.finalize()));
    let size = hashing.bytes;
    let mut package = load(target, limits)?;
    package.digest = digest;
    package.size = size;
    Ok(package)
}

/// Unpacks the entries, checking each before writing it.
fn extract(input: impl Read, target: &Path, limits: &Limits) -> Result<(), Error> {
    let mut entries = 0u64;
    let mut total = 0u64;
    let mut archive = tar::Archive::new(GzDecoder::new(input));
    let map_read = |e: io::Error| -> Error {
        if e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) {
            Error::TooLarge(format!(
                "the package is larger than the limit of {} bytes",
                limits.max_total_bytes
            ))
        } else {
            invalid(format!("not a gzip-compressed tar archive: {e}"))
        }
    };
    for entry in archive.entries().map_err(map_read)? {
        let mut entry = entry.map_err(map_read)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(Error::TooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        let raw = entry.path_bytes().into_owned();
        let rel = entry_path(&raw)?;
        let show = rel.display().to_string();
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {}
            T::Directory => {
                if rel.as_os_str().is_empty() {
                    continue;
                }
                fs::create_dir_all(target.join(&rel)).map_err(conflict(&show))?;
                continue;
            }
            // A pax global header (as `git archive` writes) holds no file.
            T::XGlobalHeader => continue,
            T::Symlink | T::Link => {
                let to = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                return Err(invalid(format!(
                    "entry {show:?} is a link (to {to:?}); links are not allowed in a package"
                )));
            }
            T::Char | T::Block => {
                return Err(invalid(format!(
                    "entry {show:?} is a device; only files and directories are allowed"
                )));
            }
            T::Fifo => {
                return Err(invalid(format!(
                    "entry {show:?} is a FIFO; only files and directories are allowed"
                )));
            }
            other => {
                return Err(invalid(format!(
                    "entry {show:?} has unsupported type {:?}; only files and directories are allowed",
                    other.as_byte() as char
                )));
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(invalid("a file entry has an empty name"));
        }
        let size = entry
            .header()
            .size()
            .map_err(|e| invalid(format!("entry {show:?}: {e}")))?;
        let top = rel.components().count() == 1;
        let name = rel.to_string_lossy();
        let small = name == "metadata.yaml"
            || (top && (name.ends_with(".md5") || name == CHECKSUM_FILE))
            || is_manifest(&rel);
        if small && size > limits.max_manifest_bytes {
            return Err(Error::TooLarge(format!(
                "{show} is {size} bytes, more than the limit of {} bytes",
                limits.max_manifest_bytes
            )));
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(Error::TooLarge(format!(
                "the unpacked package is larger than the limit of {} bytes",
                limits.max_total_bytes
            )));
        }
        let path = target.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(conflict(&show))?;
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    invalid(format!("entry {show:?} appears twice"))
                } else {
                    Error::Io {
                        what: format!("writing {show}"),
                        source: e,
                    }
                }
            })?;
        let mut w = BufWriter::new(file);
        let copied = io::copy(&mut (&mut entry).take(size), &mut w).map_err(map_read)?;
        if copied != size {
            return Err(invalid(format!("entry {show:?} is truncated")));
        }
        w.flush().map_err(io_err(format!("writing {show}")))?;
    }
    Ok(())
}

/// A directory that cannot be made because an entry's path goes through a
/// file of the package is the package's fault.
fn conflict(show: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| match e.kind() {
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
            invalid(format!("entry {show:?} conflicts with another entry"))
        }
        _ => Error::Io {
            what: format!("creating the folder of {show}"),
            source: e,
        },
    }
}

fn is_manifest(rel: &Path) -> bool {
    let mut c = rel.components();
    matches!(
        (c.next(), c.next(), c.next()),
        (Some(Component::Normal(d)), Some(Component::Normal(f)), None)
            if d == "manifests"
                && (f.to_string_lossy().ends_with(".yaml") || f.to_string_lossy().ends_with(".yml"))
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_small(path: &Path, rel: &str, limits: &Limits) -> Result<String, Error> {
    let meta = fs::symlink_metadata(path).map_err(|_| invalid(format!("{rel} is missing")))?;
    if !meta.is_file() {
        return Err(invalid(format!("{rel} is not a file")));
    }
    if meta.len() > limits.max_manifest_bytes {
        return Err(Error::TooLarge(format!(
            "{rel} is {} bytes, more than the limit of {} bytes",
            meta.len(),
            limits.max_manifest_bytes
        )));
    }
    let bytes = fs::read(path).map_err(io_err(format!("reading {rel}")))?;
    String::from_utf8(bytes).map_err(|_| invalid(format!("{rel} is not UTF-8 text")))
}

/// Sorted regular files of `dir` (relative names), refusing anything else.
fn files_in(dir: &Path) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(format!("reading {}", dir.display()))(e)),
    };
    for e in rd {
        let e = e.map_err(io_err(format!("reading {}", dir.display())))?;
        let ft = e
            .file_type()
            .map_err(io_err(format!("reading {}", dir.display())))?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|n| invalid(format!("{n:?} is not UTF-8")))?;
        if ft.is_file() {
            out.push(name);
        } else if ft.is_symlink() {
            return Err(invalid(format!(
                "{name} is a link; links are not allowed in a package"
            )));
        }
    }
    out.sort();
    Ok(out)
}

/// Checks the checksum files at the top of `root`.
fn verify_checksums(root: &Path, limits: &Limits) -> Result<(), Error> {
    let top = files_in(root)?;
    let mut found = false;
    for name in &top {
        let algo = if name == CHECKSUM_FILE {
            Algo::Sha256
        } else if name.ends_with(".md5") {
            Algo::Md5
        } else {
            continue;
        };
        found = true;
        let text = read_small(&root.join(name), name, limits)?;
        let lines =
            parse_checksums(&text, algo).map_err(|m| Error::Checksum(format!("{name}: {m}")))?;
        for (want, file) in lines {
            let got = hash_file(&root.join(&file), algo)
                .map_err(|m| Error::Checksum(format!("{name}: {}: {m}", file.display())))?;
            if got != want {
                return Err(Error::Checksum(format!(
                    "{name}: {} does not match",
                    file.display()
                )));
            }
        }
    }
    if !found && limits.require_checksum {
        return Err(invalid(format!(
            "no checksum file ({CHECKSUM_FILE} or *.md5) at the top of the package"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algo {
    Md5,
    Sha256,
}

/// Why a checksum file or a file it names cannot be used (the caller says
/// which file).
#[derive(Debug)]
struct Reason(String);

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `<hex>  <path>` or `<hex> *<path>` lines, as `md5sum`/`sha256sum` write.
fn parse_checksums(text: &str, algo: Algo) -> Result<Vec<(String, PathBuf)>, Reason> {
    let len = match algo {
        Algo::Md5 => 32,
        Algo::Sha256 => 64,
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || Reason(format!("line {} is not a checksum line", i + 1));
        let (sum, rest) = line.split_at_checked(len).ok_or_else(bad)?;
        if !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let file = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(bad)?;
        let path = entry_path(file.as_bytes()).map_err(|_| {
            Reason(format!(
                "line {}: {file:?} is not inside the package",
                i + 1
            ))
        })?;
        if path.as_os_str().is_empty() {
            return Err(bad());
        }
        out.push((sum.to_ascii_lowercase(), path));
    }
    if out.is_empty() {
        return Err(Reason("no checksum lines".into()));
    }
    Ok(out)
}

fn hash_file(path: &Path, algo: Algo) -> Result<String, Reason> {
    let meta = fs::symlink_metadata(path).map_err(|_| Reason("missing".into()))?;
    if !meta.is_file() {
        return Err(Reason("not a file".into()));
    }
    let mut f = File::open(path).map_err(|e| Reason(e.to_string()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| Reason(e.to_string()))?;
        if n == 0 {
            break;
        }
        match algo {
            Algo::Md5 => md5.update(&buf[..n]),
            Algo::Sha256 => sha.update(&buf[..n]),
        }
    }
    Ok(match algo {
        Algo::Md5 => hex(&md5.finalize()),
        Algo::Sha256 => hex(&sha.finalize()),
    })
}

/// Checks an unpacked package in `root`: checksums, metadata, manifests.
/// `digest` and `size` are left empty (they describe the `.tgz`).
pub fn load(root: &Path, limits: &Limits) -> Result<Package, Error> {
    verify_checksums(root, limits)?;
    check_dir(root, limits)
}

/// Metadata, manifests and images of a package directory.
fn check_dir(root: &Path, limits: &Limits) -> Result<Package, Error> {
    let metadata = Metadata::parse(&read_small(
        &root.join("metadata.yaml"),
        "metadata.yaml",
        limits,
    )?)
    .map_err(Error::Metadata)?;
    let mut objects = Vec::new();
    let manifests = root.join("manifests");
    for name in files_in(&manifests)? {
        let rel = format!("manifests/{name}");
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let text = read_small(&manifests.join(&name), &rel, limits)?;
        let docs =
            manifest::parse_documents(&text).map_err(|e| Error::Manifest(e.in_file(&rel)))?;
        for (i, object) in docs.into_iter().enumerate() {
            objects.push(PackageObject {
                source: Source {
                    file: rel.clone(),
                    document: i + 1,
                },
                object,
            });
        }
    }
    if objects.is_empty() {
        return Err(invalid("no objects in manifests/*.yaml"));
    }
    manifest::check_references(objects.iter().map(|o| (&o.source, &o.object)))
        .map_err(Error::Manifest)?;
    let images = files_in(&root.join("images"))?
        .into_iter()
        .filter(|n| n.ends_with(".tar"))
        .map(|n| root.join("images").join(n))
        .collect();
    Ok(Package {
        root: root.to_path_buf(),
        metadata,
        objects,
        images,
        digest: String::new(),
        size: 0,
    })
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub path: PathBuf,
    pub metadata: Metadata,
    /// `sha256:<hex>` of the `.tgz`.
    pub digest: String,
    pub size: u64,
}

/// Walks `dir` (sorted), refusing links and special files. Returns relative
/// directory and file paths.
fn walk(
    dir: &Path,
    rel: &Path,
    dirs: &mut Vec<PathBuf>,
    files: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
        let e = e.map_err(io_err(format!("reading {}", dir.display())))?;
        names.push(e.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let r = rel.join(&name);
        let meta =
            fs::symlink_metadata(&path).map_err(io_err(format!("reading {}", path.display())))?;
        if r.to_str().is_none() {
            return Err(invalid(format!("{} is not a UTF-8 name", r.display())));
        }
        if meta.is_dir() {
            dirs.push(r.clone());
            walk(&path, &r, dirs, files)?;
        } else if meta.is_file() {
            files.push(r);
        } else {
            return Err(invalid(format!(
                "{} is a link or special file; a package holds only files and directories",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Builds a package from the directory `dir` into `output` (a `.tgz`),
/// after checking the directory as [`read`] would check the package (metadata,
/// manifests, no links). Writes `checksums.sha256` covering every file;
/// checksum files already at the top of `dir` are left out. The archive is
/// reproducible: sorted entries, owner 0, mtime 0, modes 0644/0755.
pub fn build(dir: &Path, output: &Path) -> Result<Built, Error> {
    let limits = Limits {
        max_total_bytes: u64::MAX,
        max_entries: u64::MAX,
        ..Limits::default()
    };
    let checked = check_dir(dir, &limits)?;
    let out_dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (Ok(d), Ok(o)) = (dir.canonicalize(), out_dir.canonicalize())
        && o.starts_with(&d)
    {
        return Err(invalid(format!(
            "{} is inside the package directory {}; write the package elsewhere",
            output.display(),
            dir.display()
        )));
    }
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    walk(dir, Path::new(""), &mut dirs, &mut files)?;
    files.retain(|f| {
        let top = f.components().count() == 1;
        let name = f.to_string_lossy();
        !(top && (name == CHECKSUM_FILE || name.ends_with(".md5")))
    });
    let mut sums = String::new();
    for f in &files {
        let sum = hash_file(&dir.join(f), Algo::Sha256)
            .map_err(|m| invalid(format!("{}: {m}", f.display())))?;
        sums.push_str(&format!("{sum}  {}\n", f.display()));
    }
    let tmp = output.with_extension("tgz.part");
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let mut tar =
            tar::Builder::new(GzEncoder::new(BufWriter::new(file), Compression::default()));
        let werr = || io_err(format!("writing {}", tmp.display()));
        let header = |kind: tar::EntryType, size: u64, mode: u32| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h
        };
        let mut h = header(tar::EntryType::Regular, sums.len() as u64, 0o644);
        tar.append_data(&mut h, CHECKSUM_FILE, sums.as_bytes())
            .map_err(werr())?;
        for d in &dirs {
            let mut h = header(tar::EntryType::Directory, 0, 0o755);
            tar.append_data(&mut h, d, io::empty()).map_err(werr())?;
        }
        for f in &files {
            let path = dir.join(f);
            let file = File::open(&path).map_err(io_err(format!("reading {}", path.display())))?;
            let len = file
                .metadata()
                .map_err(io_err(format!("reading {}", path.display())))?
                .len();
            let mut h = header(tar::EntryType::Regular, len, 0o644);
            tar.append_data(&mut h, f, file.take(len)).map_err(werr())?;
        }
        let gz = tar.into_inner().map_err(werr())?;
        let mut w = gz.finish().map_err(werr())?;
        w.flush().map_err(werr())?;
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(werr())?;
        let mut hash = Sha256::new();
        let mut f = File::open(&tmp).map_err(werr())?;
        let size = io::copy(&mut f, &mut HashWriter(&mut hash)).map_err(werr())?;
        fs::rename(&tmp, output).map_err(io_err(format!("writing {}", output.display())))?;
        Ok(Built {
            path: output.to_path_buf(),
            metadata: checked.metadata.clone(),
            digest: format!("sha256:{}", hex(&hash.finalize())),
            size,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

struct HashWriter<'a>(&'a mut Sha256);
impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_lines() {
        let sum = "d41d8cd98f00b204e9800998ecf8427e";
        let got = parse_checksums(&format!("{sum}  a/b\n{sum} *./c\n\n"), Algo::Md5).unwrap();
        assert_eq!(
            got,
            [
                (sum.to_string(), PathBuf::from("a/b")),
                (sum.to_string(), PathBuf::from("c"))
            ]
        );
        assert!(parse_checksums(&format!("{sum}  ../etc/passwd\n"), Algo::Md5).is_err());
        assert!(parse_checksums(&format!("{sum}  /etc/passwd\n"), Algo::Md5).is_err());
        assert!(parse_checksums(&format!("{sum} a\n"), Algo::Md5).is_err());
        assert!(parse_checksums("", Algo::Md5).is_err());
        assert!(parse_checksums(&format!("{sum}  a\n"), Algo::Sha256).is_err());
    }

    #[test]
    fn entry_paths() {
        assert_eq!(
            entry_path(b"./manifests/a.yaml").unwrap(),
            PathBuf::from("manifests/a.yaml")
        );
        assert!(entry_path(b"/etc/passwd").is_err());
        assert!(entry_path(b"a/../../b").is_err());
        assert!(entry_path(b"..").is_err());
        assert!(entry_path(b"\xff").is_err());
    }
}

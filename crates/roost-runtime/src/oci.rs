//! OCI image layouts: checking one (a directory, or a tar of one) before
//! import, and building one from a directory tree.
//!
//! A layout is `oci-layout`, `index.json` and `blobs/sha256/<hex>`. Checking
//! walks every descriptor reachable from `index.json` (nested indexes,
//! manifests, configs, layers) and verifies each blob's size and SHA-256
//! against its descriptor, and that configs list one diff id per layer; a
//! mismatch is refused with the blob named, before anything is written
//! anywhere else. Only `sha256` digests are accepted.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The annotation containerd reads an image's full name from.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation for a reference (a tag, or a full name).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest index, manifest or config accepted.
const MAX_JSON: u64 = 4 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The image config fields Roost reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RunConfig {
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// The host's platform in OCI terms.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    ("linux", arch)
}

/// containerd's chain ids of a layer stack, from the configs's diff ids.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{}", hex(&Sha256::digest(format!("{prev} {d}")))),
        };
        out.push(next);
    }
    out
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The hex part of a `sha256:` digest, or an error naming it.
fn sha256_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) =>
        {
            Ok(h)
        }
        _ => Err(Error::InvalidImage(format!(
            "unsupported or malformed digest {digest:?} (sha256 only)"
        ))),
    }
}

/// What a blob is, which decides the garbage-collection labels it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobKind {
    Index { manifests: Vec<String> },
    Manifest { config: String, layers: Vec<String> },
    Config,
    Layer,
}

/// One checked blob.
#[derive(Debug, Clone)]
pub struct Blob {
    pub descriptor: Descriptor,
    pub path: PathBuf,
    pub kind: BlobKind,
}

/// One platform manifest of an image, parsed.
#[derive(Debug, Clone)]
pub struct ResolvedManifest {
    pub descriptor: Descriptor,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

/// One named image of a layout.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    pub name: String,
    pub target: Descriptor,
    /// The manifest for this host's platform (what gets unpacked).
    pub host_manifest: Option<ResolvedManifest>,
}

/// A layout whose every blob was checked.
#[derive(Debug)]
pub struct VerifiedLayout {
    pub dir: PathBuf,
    pub images: Vec<LayoutImage>,
    /// Each blob once, children before the blobs that reference them.
    pub blobs: Vec<Blob>,
    _scratch: Option<ScratchDir>,
}

/// A directory removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir(pub(crate) PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidImage(msg.into())
}

/// Checks an OCI layout, a directory or a tar of one (unpacked for the check
/// into a directory under `scratch`, removed when the result is dropped).
pub fn verify_layout(path: &Path, scratch: &Path) -> Result<VerifiedLayout> {
    let meta = std::fs::metadata(path).map_err(Error::io(format!("{}", path.display())))?;
    let stem = image_stem(path);
    if meta.is_dir() {
        verify_dir(path, &stem, None)
    } else {
        std::fs::create_dir_all(scratch)
            .map_err(Error::io(format!("create {}", scratch.display())))?;
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = scratch.join(format!("layout-{}-{n:x}", std::process::id()));
        let guard = ScratchDir(dir.clone());
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        unpack_layout_tar(path, &dir)?;
        verify_dir(&dir, &stem, Some(guard))
    }
}

/// A name stem from the archive's file name, for bare tags.
fn image_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = name
        .trim_end_matches(".tar")
        .trim_end_matches(".oci")
        .to_ascii_lowercase();
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() { "image".into() } else { s }
}

/// Unpacks the layout files of a tar: `oci-layout`, `index.json` and
/// `blobs/sha256/<hex>` regular files; other regular files are skipped;
/// links, devices, absolute paths and `..` are refused.
fn unpack_layout_tar(tar_path: &Path, dir: &Path) -> Result<()> {
    let f = File::open(tar_path).map_err(Error::io(format!("open {}", tar_path.display())))?;
    let mut ar = tar::Archive::new(io::BufReader::new(f));
    let entries = ar
        .entries()
        .map_err(|e| invalid(format!("{}: not a tar archive: {e}", tar_path.display())))?;
    std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(Error::io("create blobs"))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| invalid(format!("{}: bad tar entry: {e}", tar_path.display())))?;
        let raw = entry
            .path()
            .map_err(|e| invalid(format!("bad path in archive: {e}")))?
            .into_owned();
        let mut parts = Vec::new();
        for c in raw.components() {
            match c {
                Component::CurDir => {}
                Component::Normal(p) => parts.push(p.to_string_lossy().to_string()),
                _ => {
                    return Err(invalid(format!(
                        "{}: path {} leaves the archive",
                        tar_path.display(),
                        raw.display()
                    )));
                }
            }
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(invalid(format!(
                "{}: {} is not a regular file (links and devices are refused)",
                tar_path.display(),
                raw.display()
            )));
        }
        let rel = parts.join("/");
        let ok = rel == "oci-layout"
            || rel == "index.json"
            || (parts.len() == 3
                && parts[0] == "blobs"
                && parts[1] == "sha256"
                && sha256_hex(&format!("sha256:{}", parts[2])).is_ok());
        if !ok {
            continue;
        }
        let dest = dir.join(&rel);
        let mut out =
            File::create(&dest).map_err(Error::io(format!("create {}", dest.display())))?;
        io::copy(&mut entry, &mut out).map_err(Error::io(format!("unpack {rel}")))?;
    }
    Ok(())
}

fn read_json_blob<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> Result<T> {
    let mut s = Vec::new();
    File::open(path)
        .map_err(Error::io(format!("open {}", path.display())))?
        .take(MAX_JSON + 1)
        .read_to_end(&mut s)
        .map_err(Error::io(format!("read {}", path.display())))?;
    if s.len() as u64 > MAX_JSON {
        return Err(invalid(format!("{what} is larger than {MAX_JSON} bytes")));
    }
    serde_json::from_slice(&s).map_err(|e| invalid(format!("{what}: {e}")))
}

struct Walker<'a> {
    dir: &'a Path,
    checked: HashSet<String>,
    blobs: Vec<Blob>,
}

impl Walker<'_> {
    /// Verifies size and digest of a blob file, once per digest.
    fn check(&mut self, d: &Descriptor) -> Result<PathBuf> {
        let h = sha256_hex(&d.digest)?;
        let path = self.dir.join("blobs/sha256").join(h);
        if self.checked.contains(&d.digest) {
            return Ok(path);
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|_| {
            invalid(format!(
                "blob {} ({}) is missing from the layout",
                d.digest, d.media_type
            ))
        })?;
        if !meta.is_file() {
            return Err(invalid(format!("blob {} is not a regular file", d.digest)));
        }
        if meta.len() as i64 != d.size {
            return Err(invalid(format!(
                "blob {} ({}): size mismatch: descriptor says {} bytes, file has {}",
                d.digest,
                d.media_type,
                d.size,
                meta.len()
            )));
        }
        let mut f = File::open(&path).map_err(Error::io(format!("open {}", path.display())))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(Error::io(format!("read {}", path.display())))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if got != d.digest {
            return Err(invalid(format!(
                "blob {} ({}): digest mismatch: its content hashes to {got}",
                d.digest, d.media_type
            )));
        }
        self.checked.insert(d.digest.clone());
        Ok(path)
    }

    fn push(&mut self, d: &Descriptor, path: PathBuf, kind: BlobKind) {
        if !self.blobs.iter().any(|b| b.descriptor.digest == d.digest) {
            self.blobs.push(Blob {
                descriptor: d.clone(),
                path,
                kind,
            });
        }
    }

    fn manifest(&mut self, d: &Descriptor) -> Result<ResolvedManifest> {
        let path = self.check(d)?;
        let m: Manifest = read_json_blob(&path, &format!("manifest {}", d.digest))?;
        let cpath = self.check(&m.config)?;
        let config: ImageConfig = read_json_blob(&cpath, &format!("config {}", m.config.digest))?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(invalid(format!(
                "manifest {}: {} layers but the config lists {} diff ids",
                d.digest,
                m.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        for id in &config.rootfs.diff_ids {
            sha256_hex(id)?;
        }
        for l in &m.layers {
            if !l.media_type.contains("tar") {
                return Err(invalid(format!(
                    "layer {} has unsupported media type {}",
                    l.digest, l.media_type
                )));
            }
            let lp = self.check(l)?;
            self.push(l, lp, BlobKind::Layer);
        }
        self.push(&m.config, cpath, BlobKind::Config);
        self.push(
            d,
            path,
            BlobKind::Manifest {
                config: m.config.digest.clone(),
                layers: m.layers.iter().map(|l| l.digest.clone()).collect(),
            },
        );
        Ok(ResolvedManifest {
            descriptor: d.clone(),
            manifest: m,
            config,
        })
    }

    /// Walks a manifest or index; returns the manifest for the host platform.
    fn walk(&mut self, d: &Descriptor, depth: u32) -> Result<Option<ResolvedManifest>> {
        match d.media_type.as_str() {
            MEDIA_MANIFEST | DOCKER_MANIFEST => self.manifest(d).map(Some),
            MEDIA_INDEX | DOCKER_LIST => {
                if depth > 4 {
                    return Err(invalid("indexes nested too deeply"));
                }
                let path = self.check(d)?;
                let idx: Index = read_json_blob(&path, &format!("index {}", d.digest))?;
                let (os, arch) = host_platform();
                let mut chosen = None;
                let mut first = None;
                for m in &idx.manifests {
                    let r = self.walk(m, depth + 1)?;
                    let matches = m
                        .platform
                        .as_ref()
                        .map(|p| p.os == os && p.architecture == arch)
                        .unwrap_or(false);
                    if matches && chosen.is_none() {
                        chosen = r;
                    } else if first.is_none() {
                        first = r;
                    }
                }
                self.push(
                    d,
                    path,
                    BlobKind::Index {
                        manifests: idx.manifests.iter().map(|m| m.digest.clone()).collect(),
                    },
                );
                // An index without platforms: its only manifest.
                Ok(chosen.or(if idx.manifests.len() == 1 {
                    first
                } else {
                    None
                }))
            }
            other => Err(invalid(format!(
                "descriptor {} has unsupported media type {other}",
                d.digest
            ))),
        }
    }
}

fn verify_dir(dir: &Path, stem: &str, scratch: Option<ScratchDir>) -> Result<VerifiedLayout> {
    let layout: serde_json::Value = read_json_blob(&dir.join("oci-layout"), "oci-layout")
        .map_err(|e| invalid(format!("not an OCI image layout (oci-layout): {e}")))?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(invalid("oci-layout has no imageLayoutVersion"));
    }
    let index: Index = read_json_blob(&dir.join("index.json"), "index.json")?;
    if index.manifests.is_empty() {
        return Err(invalid("index.json lists no image"));
    }
    let mut w = Walker {
        dir,
        checked: HashSet::new(),
        blobs: Vec::new(),
    };
    let mut images = Vec::new();
    for (i, d) in index.manifests.iter().enumerate() {
        let host_manifest = w.walk(d, 0)?;
        let name = match (
            d.annotations.get(ANNOTATION_IMAGE_NAME),
            d.annotations.get(ANNOTATION_REF_NAME),
        ) {
            (Some(n), _) => n.clone(),
            (None, Some(r)) if r.contains('/') || r.contains(':') || r.contains('@') => r.clone(),
            (None, Some(tag)) => format!("{stem}:{tag}"),
            (None, None) => {
                return Err(invalid(format!(
                    "index.json entry {i} ({}) has no {ANNOTATION_REF_NAME} annotation to name it",
                    d.digest
                )));
            }
        };
        images.push(LayoutImage {
            name,
            target: d.clone(),
            host_manifest,
        });
    }
    Ok(VerifiedLayout {
        dir: dir.to_path_buf(),
        images,
        blobs: w.blobs,
        _scratch: scratch,
    })
}

/// What to put in an image built by [`build_image_from_dir`].
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Full image name, e.g. `roost.local/busybox:1`.
    pub name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
}

/// What [`build_image_from_dir`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub name: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    pub diff_id: String,
}

/// Counts and hashes what passes through.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_blob(dir: &Path, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
    let digest = hex(&Sha256::digest(bytes));
    let path = dir.join("blobs/sha256").join(&digest);
    std::fs::write(&path, bytes).map_err(Error::io(format!("write {}", path.display())))?;
    Ok(Descriptor {
        media_type: media_type.into(),
        digest: format!("sha256:{digest}"),
        size: bytes.len() as i64,
        ..Default::default()
    })
}

/// Builds an OCI image from a directory tree: one gzip layer holding the
/// tree (symlinks kept), a config with entrypoint, cmd, env and working
/// directory, a manifest, and an index naming the image. `out` ending in
/// `.tar` gets a tar of the layout, anything else a layout directory.
pub fn build_image_from_dir(src: &Path, out: &Path, opts: &BuildOptions) -> Result<BuiltImage> {
    if opts.name.is_empty() {
        return Err(Error::Invalid("an image needs a name".into()));
    }
    let as_tar = out.extension().is_some_and(|e| e == "tar");
    let dir = if as_tar {
        out.with_extension("tar.layout")
    } else {
        out.to_path_buf()
    };
    let _guard = as_tar.then(|| ScratchDir(dir.clone()));
    std::fs::create_dir_all(dir.join("blobs/sha256"))
        .map_err(Error::io(format!("create {}", dir.display())))?;

    // The layer: tar -> hash (diff id) -> gzip -> hash (digest) -> file.
    let tmp = dir.join("blobs/layer.tmp");
    let file = File::create(&tmp).map_err(Error::io(format!("create {}", tmp.display())))?;
    let outer = HashWriter {
        inner: file,
        hasher: Sha256::new(),
        len: 0,
    };
    let gz = flate2::write::GzEncoder::new(outer, flate2::Compression::default());
    let inner = HashWriter {
        inner: gz,
        hasher: Sha256::new(),
        len: 0,
    };
    let mut builder = tar::Builder::new(inner);
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", src)
        .map_err(Error::io(format!("archive {}", src.display())))?;
    let inner = builder
        .into_inner()
        .map_err(Error::io("finish layer tar"))?;
    let diff_id = format!("sha256:{}", hex(&inner.hasher.finalize()));
    let outer = inner.inner.finish().map_err(Error::io("finish gzip"))?;
    let layer_digest = hex(&outer.hasher.finalize());
    let layer_size = outer.len;
    outer.inner.sync_all().map_err(Error::io("sync layer"))?;
    std::fs::rename(&tmp, dir.join("blobs/sha256").join(&layer_digest))
        .map_err(Error::io("rename layer"))?;
    let layer = Descriptor {
        media_type: MEDIA_LAYER_GZIP.into(),
        digest: format!("sha256:{layer_digest}"),
        size: layer_size as i64,
        ..Default::default()
    };

    let (os, arch) = host_platform();
    let config = ImageConfig {
        architecture: arch.into(),
        os: os.into(),
        config: RunConfig {
            entrypoint: (!opts.entrypoint.is_empty()).then(|| opts.entrypoint.clone()),
            cmd: (!opts.cmd.is_empty()).then(|| opts.cmd.clone()),
            env: (!opts.env.is_empty()).then(|| opts.env.clone()),
            working_dir: opts.workdir.clone(),
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
    };
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
    let config_desc = write_blob(&dir, &config_bytes, MEDIA_CONFIG)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: config_desc.clone(),
        layers: vec![layer.clone()],
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut manifest_desc = write_blob(&dir, &manifest_bytes, MEDIA_MANIFEST)?;
    let tag = opts
        .name
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t.to_string());
    manifest_desc
        .annotations
        .insert(ANNOTATION_IMAGE_NAME.into(), opts.name.clone());
    manifest_desc.annotations.insert(
        ANNOTATION_REF_NAME.into(),
        tag.unwrap_or_else(|| "latest".into()),
    );
    manifest_desc.platform = Some(Platform {
        architecture: arch.into(),
        os: os.into(),
        variant: None,
    });
    write_layout_files(
        &dir,
        &Index {
            schema_version: 2,
            media_type: Some(MEDIA_INDEX.into()),
            manifests: vec![manifest_desc.clone()],
        },
    )?;
    if as_tar {
        tar_layout_dir(&dir, out)?;
    }
    Ok(BuiltImage {
        name: opts.name.clone(),
        manifest_digest: manifest_desc.digest,
        config_digest: config_desc.digest,
        layer_digest: layer.digest,
        diff_id,
    })
}

pub(crate) fn oci_layout_json() -> Vec<u8> {
    br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()
}

fn write_layout_files(dir: &Path, index: &Index) -> Result<()> {
    std::fs::write(dir.join("oci-layout"), oci_layout_json())
        .map_err(Error::io("write oci-layout"))?;
    let bytes = serde_json::to_vec(index).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(dir.join("index.json"), bytes).map_err(Error::io("write index.json"))
}

/// Tars a layout directory: `oci-layout`, `index.json`, then the blobs.
fn tar_layout_dir(dir: &Path, out: &Path) -> Result<()> {
    let tmp = out.with_extension("tar.part");
    let f = File::create(&tmp).map_err(Error::io(format!("create {}", tmp.display())))?;
    let mut b = tar::Builder::new(io::BufWriter::new(f));
    let mut names = vec!["oci-layout".to_string(), "index.json".to_string()];
    let mut blobs: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .map_err(Error::io("list blobs"))?
        .filter_map(|e| e.ok())
        .map(|e| format!("blobs/sha256/{}", e.file_name().to_string_lossy()))
        .collect();
    blobs.sort();
    names.extend(blobs);
    for n in names {
        b.append_path_with_name(dir.join(&n), &n)
            .map_err(Error::io(format!("archive {n}")))?;
    }
    let w = b.into_inner().map_err(Error::io("finish tar"))?;
    let f = w
        .into_inner()
        .map_err(|e| Error::io("flush tar")(e.into_error()))?;
    f.sync_all().map_err(Error::io("sync tar"))?;
    std::fs::rename(&tmp, out).map_err(Error::io(format!("rename to {}", out.display())))
}

/// Writes tar entries one by one, streaming each body (for export).
pub(crate) struct TarStream {
    file: io::BufWriter<File>,
}

impl TarStream {
    pub(crate) fn create(path: &Path) -> Result<TarStream> {
        let f = File::create(path).map_err(Error::io(format!("create {}", path.display())))?;
        Ok(TarStream {
            file: io::BufWriter::new(f),
        })
    }

    pub(crate) fn begin(&mut self, name: &str, size: u64) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(Error::io(format!("tar path {name}")))?;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.file
            .write_all(h.as_bytes())
            .map_err(Error::io("write tar"))
    }

    pub(crate) fn data(&mut self, b: &[u8]) -> Result<()> {
        self.file.write_all(b).map_err(Error::io("write tar"))
    }

    pub(crate) fn end(&mut self, size: u64) -> Result<()> {
        let pad = (512 - (size % 512) as usize) % 512;
        self.file
            .write_all(&vec![0u8; pad])
            .map_err(Error::io("write tar"))
    }

    pub(crate) fn file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.begin(name, bytes.len() as u64)?;
        self.data(bytes)?;
        self.end(bytes.len() as u64)
    }

    pub(crate) fn finish(mut self) -> Result<()> {
        self.file
            .write_all(&[0u8; 1024])
            .map_err(Error::io("write tar"))?;
        let f = self
            .file
            .into_inner()
            .map_err(|e| Error::io("flush tar")(e.into_error()))?;
        f.sync_all().map_err(Error::io("sync tar"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_with_a_link_or_a_path_leaving_it_is_refused() {
        let tmp = std::env::temp_dir().join(format!("roost-oci-tar-test-{}", std::process::id()));
        let _g = ScratchDir(tmp.clone());
        std::fs::create_dir_all(&tmp).unwrap();
        let link_tar = tmp.join("link.tar");
        let mut b = tar::Builder::new(File::create(&link_tar).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "index.json", "/etc/passwd").unwrap();
        b.finish().unwrap();
        drop(b);
        let err = verify_layout(&link_tar, &tmp.join("scratch"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");

        // A `..` path, written as raw header bytes (the tar crate refuses to build one).
        let dots_tar = tmp.join("dots.tar");
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..12].copy_from_slice(b"../evil.json");
        h.set_size(2);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        bytes.resize(1024 + 1024, 0);
        std::fs::write(&dots_tar, &bytes).unwrap();
        let err = verify_layout(&dots_tar, &tmp.join("scratch"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves the archive"), "{err}");
        assert!(!tmp.join("evil.json").exists());
        // Nothing is left in the scratch directory.
        assert_eq!(std::fs::read_dir(tmp.join("scratch")).unwrap().count(), 0);
    }

    #[test]
    fn chain_ids_follow_containerd() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(
            c[1],
            format!("sha256:{}", hex(&Sha256::digest(format!("{a} {b}"))))
        );
    }

    #[test]
    fn a_built_image_verifies_and_a_changed_blob_is_refused() {
        let tmp = std::env::temp_dir().join(format!("roost-oci-test-{}", std::process::id()));
        let _g = ScratchDir(tmp.clone());
        let src = tmp.join("src");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
        let out = tmp.join("img.tar");
        let built = build_image_from_dir(
            &src,
            &out,
            &BuildOptions {
                name: "roost.local/hello:1".into(),
                cmd: vec!["/bin/hello".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let v = verify_layout(&out, &tmp.join("scratch")).unwrap();
        assert_eq!(v.images.len(), 1);
        assert_eq!(v.images[0].name, "roost.local/hello:1");
        assert_eq!(v.images[0].target.digest, built.manifest_digest);
        assert_eq!(v.blobs.len(), 3);
        let m = v.images[0].host_manifest.as_ref().unwrap();
        assert_eq!(m.config.rootfs.diff_ids, vec![built.diff_id.clone()]);
        drop(v);

        // A layout directory with one layer byte changed is refused, naming the blob.
        let dir = tmp.join("dir");
        build_image_from_dir(
            &src,
            &dir,
            &BuildOptions {
                name: "roost.local/hello:1".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let layer = dir
            .join("blobs/sha256")
            .join(built.layer_digest.trim_start_matches("sha256:"));
        let mut bytes = std::fs::read(&layer).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&layer, &bytes).unwrap();
        let err = verify_layout(&dir, &tmp.join("scratch"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("digest mismatch") && err.contains(&built.layer_digest),
            "{err}"
        );
    }
}

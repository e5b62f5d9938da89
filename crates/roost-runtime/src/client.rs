//! The containerd client: connection, namespace, and thin wrappers over the
//! services the runtime uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncReadExt;

use crate::grpc::{Channel, frame};
use crate::proto as p;
use crate::{Error, NAMESPACE, Result};

/// How to use a containerd; [`Containerd::connect`] takes the defaults.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// runc's state root for Roost's containers; `None` means runc's default
    /// (`/run/containerd/runc/roost`). A private containerd uses its own.
    pub runc_root: Option<PathBuf>,
    /// Where image archives are unpacked for checking and exec output is
    /// collected; default: the system temporary directory.
    pub scratch_dir: Option<PathBuf>,
    /// Force a snapshotter; default: overlayfs, or native where overlayfs
    /// does not work.
    pub snapshotter: Option<String>,
}

/// A connection to one containerd, working in namespace `roost`.
#[derive(Clone)]
pub struct Containerd {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) ch: Channel,
    pub(crate) snapshotter: String,
    pub(crate) runc_root: Option<PathBuf>,
    pub(crate) scratch: PathBuf,
    counter: AtomicU64,
}

/// Version of the containerd daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub revision: String,
}

impl Containerd {
    /// Connects to the containerd listening on `socket`, checks it answers,
    /// creates namespace `roost` if needed and picks the snapshotter.
    pub async fn connect(socket: &Path) -> Result<Containerd> {
        Self::connect_with(socket, ClientOptions::default()).await
    }

    pub async fn connect_with(socket: &Path, opts: ClientOptions) -> Result<Containerd> {
        let inner = |snapshotter: String| Inner {
            ch: Channel::new(socket, NAMESPACE),
            snapshotter,
            runc_root: opts.runc_root.clone(),
            scratch: opts.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
            counter: AtomicU64::new(0),
        };
        let probe = Containerd {
            inner: Arc::new(inner(String::new())),
        };
        probe.version().await?;
        probe.ensure_namespace().await?;
        let snapshotter = match opts.snapshotter.clone() {
            Some(s) => s,
            None => probe.pick_snapshotter().await?,
        };
        Ok(Containerd {
            inner: Arc::new(inner(snapshotter)),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        self.inner.ch.socket()
    }

    /// The snapshotter in use (`overlayfs` or `native`).
    pub fn snapshotter(&self) -> &str {
        &self.inner.snapshotter
    }

    /// A name unique within this process, for leases, refs and exec ids.
    pub(crate) fn unique(&self, prefix: &str) -> String {
        let n = self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
    }

    pub(crate) async fn unary<Q: prost::Message, R: prost::Message + Default>(
        &self,
        path: &str,
        req: &Q,
    ) -> Result<R> {
        self.inner.ch.unary(path, req, None).await
    }

    pub(crate) async fn unary_leased<Q: prost::Message, R: prost::Message + Default>(
        &self,
        path: &str,
        req: &Q,
        lease: &str,
    ) -> Result<R> {
        self.inner.ch.unary(path, req, Some(lease)).await
    }

    /// containerd's version (the first call made on a connection).
    pub async fn version(&self) -> Result<Version> {
        let r: p::VersionResponse = self
            .unary(
                "/containerd.services.version.v1.Version/Version",
                &p::Empty {},
            )
            .await?;
        Ok(Version {
            version: r.version,
            revision: r.revision,
        })
    }

    async fn ensure_namespace(&self) -> Result<()> {
        let got: Result<p::GetNamespaceResponse> = self
            .unary(
                "/containerd.services.namespaces.v1.Namespaces/Get",
                &p::GetNamespaceRequest {
                    name: NAMESPACE.to_string(),
                },
            )
            .await;
        match got {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                let r: Result<p::CreateNamespaceResponse> = self
                    .unary(
                        "/containerd.services.namespaces.v1.Namespaces/Create",
                        &p::CreateNamespaceRequest {
                            namespace: Some(p::Namespace {
                                name: NAMESPACE.to_string(),
                                labels: HashMap::new(),
                            }),
                        },
                    )
                    .await;
                match r {
                    Ok(_) | Err(Error::AlreadyExists(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// overlayfs when its plugin is loaded and a snapshot can be prepared,
    /// otherwise native (slower, copies every layer, but works everywhere).
    async fn pick_snapshotter(&self) -> Result<String> {
        let key = self.unique("roost-probe");
        let r: Result<p::PrepareSnapshotResponse> = self
            .unary(
                "/containerd.services.snapshots.v1.Snapshots/Prepare",
                &p::PrepareSnapshotRequest {
                    snapshotter: "overlayfs".into(),
                    key: key.clone(),
                    parent: String::new(),
                    labels: HashMap::new(),
                },
            )
            .await;
        match r {
            Ok(_) => {
                self.remove_snapshot_in("overlayfs", &key).await?;
                Ok("overlayfs".into())
            }
            Err(e) => {
                tracing::warn!(error = %e, "overlayfs snapshotter unavailable, using native");
                Ok("native".into())
            }
        }
    }

    // ---- content ----

    pub(crate) async fn content_info(&self, digest: &str) -> Result<Option<p::ContentInfo>> {
        let r: Result<p::InfoResponse> = self
            .unary(
                "/containerd.services.content.v1.Content/Info",
                &p::InfoRequest {
                    digest: digest.to_string(),
                },
            )
            .await;
        match r {
            Ok(r) => Ok(r.info),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Digests of every blob in the content store of namespace `roost`.
    pub async fn list_content(&self) -> Result<Vec<String>> {
        let mut s = self
            .inner
            .ch
            .server_stream(
                "/containerd.services.content.v1.Content/List",
                &p::ListContentRequest::default(),
            )
            .await?;
        let mut out = Vec::new();
        while let Some(m) = s.message::<p::ListContentResponse>().await? {
            out.extend(m.info.into_iter().map(|i| i.digest));
        }
        Ok(out)
    }

    /// Reads a whole blob (manifests, configs: small objects).
    pub(crate) async fn read_blob(&self, digest: &str, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_blob_with(digest, |chunk| {
            if out.len() + chunk.len() > limit {
                return Err(Error::InvalidImage(format!(
                    "blob {digest} is larger than {limit} bytes"
                )));
            }
            out.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Streams a blob to `sink` chunk by chunk.
    pub(crate) async fn read_blob_with(
        &self,
        digest: &str,
        mut sink: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut s = self
            .inner
            .ch
            .server_stream(
                "/containerd.services.content.v1.Content/Read",
                &p::ReadContentRequest {
                    digest: digest.to_string(),
                    offset: 0,
                    size: 0,
                },
            )
            .await?;
        while let Some(m) = s.message::<p::ReadContentResponse>().await? {
            sink(&m.data)?;
        }
        Ok(())
    }

    /// Writes a blob from a file into the content store, containerd checking
    /// the size and digest on commit.
    pub(crate) async fn write_blob(
        &self,
        path: &Path,
        digest: &str,
        size: i64,
        labels: HashMap<String, String>,
        lease: &str,
    ) -> Result<()> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(Error::io(format!("open {}", path.display())))?;
        let reference = self.unique("roost-import");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let sender = {
            let reference = reference.clone();
            let digest = digest.to_string();
            async move {
                let mut offset = 0i64;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file.read(&mut buf).await.map_err(Error::io("read blob"))?;
                    let last = n == 0;
                    let req = p::WriteContentRequest {
                        action: if last {
                            p::WRITE_ACTION_COMMIT
                        } else {
                            p::WRITE_ACTION_WRITE
                        },
                        r#ref: reference.clone(),
                        total: size,
                        expected: digest.clone(),
                        offset,
                        data: buf[..n].to_vec(),
                        labels: if last { labels.clone() } else { HashMap::new() },
                    };
                    offset += n as i64;
                    if tx.send(frame(&req)).await.is_err() {
                        // The reply stream ended early; its status says why.
                        return Ok::<(), Error>(());
                    }
                    if last {
                        return Ok(());
                    }
                }
            }
        };
        let receiver = async {
            let mut replies = self
                .inner
                .ch
                .bidi(
                    "/containerd.services.content.v1.Content/Write",
                    Some(lease),
                    rx,
                )
                .await?;
            let mut committed = false;
            while let Some(r) = replies.message::<p::WriteContentResponse>().await? {
                if r.action == p::WRITE_ACTION_COMMIT {
                    committed = true;
                    if r.digest != digest {
                        return Err(Error::InvalidImage(format!(
                            "containerd committed {} for {digest}",
                            r.digest
                        )));
                    }
                }
            }
            Ok(committed)
        };
        let (sent, got) = tokio::join!(sender, receiver);
        let outcome = sent.and(got);
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Protocol(format!(
                "content write of {digest} ended without a commit"
            ))),
            Err(Error::AlreadyExists(_)) => Ok(()),
            Err(e) => {
                let _: Result<p::Empty> = self
                    .unary(
                        "/containerd.services.content.v1.Content/Abort",
                        &p::AbortRequest { r#ref: reference },
                    )
                    .await;
                Err(e)
            }
        }
    }

    // ---- leases ----

    /// A lease that protects what an import writes until the image record
    /// holds it; it expires by itself after an hour should Roost crash.
    pub(crate) async fn create_lease(&self) -> Result<String> {
        let id = self.unique("roost-lease");
        let expire = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let mut labels = HashMap::new();
        labels.insert("containerd.io/gc.expire".to_string(), rfc3339(expire));
        let _: p::CreateLeaseResponse = self
            .unary(
                "/containerd.services.leases.v1.Leases/Create",
                &p::CreateLeaseRequest {
                    id: id.clone(),
                    labels,
                },
            )
            .await?;
        Ok(id)
    }

    pub(crate) async fn delete_lease(&self, id: &str, sync: bool) -> Result<()> {
        let r: Result<p::Empty> = self
            .unary(
                "/containerd.services.leases.v1.Leases/Delete",
                &p::DeleteLeaseRequest {
                    id: id.to_string(),
                    sync,
                },
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn list_leases(&self) -> Result<Vec<String>> {
        let r: p::ListLeasesResponse = self
            .unary(
                "/containerd.services.leases.v1.Leases/List",
                &p::ListLeasesRequest::default(),
            )
            .await?;
        Ok(r.leases.into_iter().map(|l| l.id).collect())
    }

    // ---- snapshots ----

    pub(crate) async fn prepare_snapshot(
        &self,
        key: &str,
        parent: &str,
        lease: Option<&str>,
    ) -> Result<Vec<p::Mount>> {
        let req = p::PrepareSnapshotRequest {
            snapshotter: self.inner.snapshotter.clone(),
            key: key.to_string(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        let path = "/containerd.services.snapshots.v1.Snapshots/Prepare";
        let r: p::PrepareSnapshotResponse = match lease {
            Some(l) => self.unary_leased(path, &req, l).await?,
            None => self.unary(path, &req).await?,
        };
        Ok(r.mounts)
    }

    pub(crate) async fn commit_snapshot(&self, name: &str, key: &str, lease: &str) -> Result<()> {
        let _: p::Empty = self
            .unary_leased(
                "/containerd.services.snapshots.v1.Snapshots/Commit",
                &p::CommitSnapshotRequest {
                    snapshotter: self.inner.snapshotter.clone(),
                    name: name.to_string(),
                    key: key.to_string(),
                    labels: HashMap::new(),
                },
                lease,
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        let r: Result<p::StatSnapshotResponse> = self
            .unary(
                "/containerd.services.snapshots.v1.Snapshots/Stat",
                &p::StatSnapshotRequest {
                    snapshotter: self.inner.snapshotter.clone(),
                    key: key.to_string(),
                },
            )
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a snapshot; a missing one is not an error.
    pub(crate) async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let s = self.inner.snapshotter.clone();
        self.remove_snapshot_in(&s, key).await
    }

    async fn remove_snapshot_in(&self, snapshotter: &str, key: &str) -> Result<()> {
        let r: Result<p::Empty> = self
            .unary(
                "/containerd.services.snapshots.v1.Snapshots/Remove",
                &p::RemoveSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    key: key.to_string(),
                },
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Snapshots of namespace `roost` in the snapshotter in use: (name or key,
    /// parent, active).
    pub async fn list_snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let mut s = self
            .inner
            .ch
            .server_stream(
                "/containerd.services.snapshots.v1.Snapshots/List",
                &p::ListSnapshotsRequest {
                    snapshotter: self.inner.snapshotter.clone(),
                    filters: Vec::new(),
                },
            )
            .await?;
        let mut out = Vec::new();
        while let Some(m) = s.message::<p::ListSnapshotsResponse>().await? {
            out.extend(m.info.into_iter().map(|i| SnapshotEntry {
                name: i.name,
                parent: i.parent,
                active: i.kind == p::SNAPSHOT_KIND_ACTIVE,
            }));
        }
        Ok(out)
    }

    // ---- images ----

    pub(crate) async fn get_image(&self, name: &str) -> Result<p::Image> {
        let r: p::GetImageResponse = self
            .unary(
                "/containerd.services.images.v1.Images/Get",
                &p::GetImageRequest {
                    name: name.to_string(),
                },
            )
            .await?;
        r.image
            .ok_or_else(|| Error::NotFound(format!("image {name}")))
    }

    /// Images recorded in namespace `roost`.
    pub async fn list_images(&self) -> Result<Vec<crate::ImageInfo>> {
        let r: p::ListImagesResponse = self
            .unary(
                "/containerd.services.images.v1.Images/List",
                &p::ListImagesRequest::default(),
            )
            .await?;
        Ok(r.images
            .into_iter()
            .map(|i| {
                let t = i.target.unwrap_or_default();
                crate::ImageInfo {
                    name: i.name,
                    digest: t.digest,
                    media_type: t.media_type,
                }
            })
            .collect())
    }

    /// Removes an image record; its content and snapshots are collected by
    /// containerd once nothing references them.
    pub async fn remove_image(&self, name: &str) -> Result<()> {
        let _: p::Empty = self
            .unary(
                "/containerd.services.images.v1.Images/Delete",
                &p::DeleteImageRequest {
                    name: name.to_string(),
                    sync: true,
                },
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn put_image(&self, image: p::Image, lease: &str) -> Result<()> {
        let r: Result<p::CreateImageResponse> = self
            .unary_leased(
                "/containerd.services.images.v1.Images/Create",
                &p::CreateImageRequest {
                    image: Some(image.clone()),
                },
                lease,
            )
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(Error::AlreadyExists(_)) => {
                let _: p::UpdateImageResponse = self
                    .unary_leased(
                        "/containerd.services.images.v1.Images/Update",
                        &p::UpdateImageRequest { image: Some(image) },
                        lease,
                    )
                    .await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// One snapshot as [`Containerd::list_snapshots`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub name: String,
    pub parent: String,
    pub active: bool,
}

/// RFC 3339 in UTC, seconds precision (for containerd's expiry label).
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }
}

//! Image import and export through the content, images, snapshots and diff
//! services.
//!
//! Import order: the layout is checked completely first (every digest and
//! size, see [`crate::oci`]); then, under a lease, blobs are written children
//! first with containerd's garbage-collection labels (index -> manifests,
//! manifest -> config and layers, config -> the unpacked snapshot), layers
//! are applied into snapshots named by their chain ids, and the image record
//! is created. On any error the lease is deleted synchronously, so
//! containerd collects whatever the import wrote.

use std::collections::HashMap;
use std::path::Path;

use crate::oci::{self, BlobKind, ResolvedManifest};
use crate::proto as p;
use crate::spec::ImageDefaults;
use crate::{Containerd, Error, ImageInfo, Result};

/// Largest manifest, index or config read back from containerd.
const MAX_JSON: usize = 4 << 20;

fn to_proto(d: &oci::Descriptor) -> p::Descriptor {
    p::Descriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        annotations: d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// An image resolved to what a container needs.
pub(crate) struct ResolvedImage {
    pub(crate) top_chain_id: String,
    pub(crate) defaults: ImageDefaults,
}

/// The name an image is kept under by [`Containerd::import_image_pinned`].
pub fn pinned_name(name: &str, digest: &str) -> String {
    format!("{name}@{digest}")
}

impl Containerd {
    /// Imports an OCI image layout (a directory or a tar of one) into the
    /// content and image stores and unpacks it for this host's platform.
    /// Every digest and size is checked before anything is written; a
    /// mismatch is refused with [`Error::InvalidImage`].
    pub async fn import_image(&self, path: &Path) -> Result<Vec<ImageInfo>> {
        self.import(path, false).await
    }

    /// [`Containerd::import_image`], each image recorded as
    /// `<name>@<digest>`: two archives that give one name to different
    /// content (two versions of an application) are both kept, and removing
    /// one leaves the other. The application runner imports this way.
    pub async fn import_image_pinned(&self, path: &Path) -> Result<Vec<ImageInfo>> {
        self.import(path, true).await
    }

    async fn import(&self, path: &Path, pinned: bool) -> Result<Vec<ImageInfo>> {
        let scratch = self.inner.scratch.clone();
        let owned = path.to_path_buf();
        let layout = tokio::task::spawn_blocking(move || oci::verify_layout(&owned, &scratch))
            .await
            .map_err(|e| Error::Protocol(format!("layout check: {e}")))??;
        let lease = self.create_lease().await?;
        match self.import_verified(&layout, &lease, pinned).await {
            Ok(v) => {
                // Synchronously: containerd collects at once, so an image
                // whose references were labelled wrongly would fail here,
                // not at some later start.
                self.delete_lease(&lease, true).await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(e2) = self.delete_lease(&lease, true).await {
                    tracing::warn!(error = %e2, "could not drop the import lease");
                }
                Err(e)
            }
        }
    }

    async fn import_verified(
        &self,
        layout: &oci::VerifiedLayout,
        lease: &str,
        pinned: bool,
    ) -> Result<Vec<ImageInfo>> {
        let snapshotter = self.inner.snapshotter.clone();
        // Which config is unpacked to which top snapshot.
        let mut config_snapshot: HashMap<String, String> = HashMap::new();
        for img in &layout.images {
            if let Some(m) = &img.host_manifest
                && let Some(top) = oci::chain_ids(&m.config.rootfs.diff_ids).last()
            {
                config_snapshot.insert(m.manifest.config.digest.clone(), top.clone());
            }
        }
        for blob in &layout.blobs {
            let d = &blob.descriptor;
            if self.content_info(&d.digest).await?.is_some() {
                continue;
            }
            let mut labels = HashMap::new();
            match &blob.kind {
                BlobKind::Index { manifests } => {
                    for (i, m) in manifests.iter().enumerate() {
                        labels.insert(format!("containerd.io/gc.ref.content.m.{i}"), m.clone());
                    }
                }
                BlobKind::Manifest { config, layers } => {
                    labels.insert("containerd.io/gc.ref.content.config".into(), config.clone());
                    for (i, l) in layers.iter().enumerate() {
                        labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), l.clone());
                    }
                }
                BlobKind::Config => {
                    if let Some(top) = config_snapshot.get(&d.digest) {
                        labels.insert(
                            format!("containerd.io/gc.ref.snapshot.{snapshotter}"),
                            top.clone(),
                        );
                    }
                }
                BlobKind::Layer => {}
            }
            self.write_blob(&blob.path, &d.digest, d.size, labels, lease)
                .await?;
        }
        for img in &layout.images {
            if let Some(m) = &img.host_manifest {
                self.unpack(m, lease).await?;
            }
        }
        let mut out = Vec::new();
        for img in &layout.images {
            let name = if pinned {
                pinned_name(&img.name, &img.target.digest)
            } else {
                img.name.clone()
            };
            self.put_image(
                p::Image {
                    name: name.clone(),
                    labels: HashMap::new(),
                    target: Some(to_proto(&img.target)),
                },
                lease,
            )
            .await?;
            out.push(ImageInfo {
                name,
                digest: img.target.digest.clone(),
                media_type: img.target.media_type.clone(),
            });
        }
        Ok(out)
    }

    /// Applies each layer onto its parent snapshot, checking the applied
    /// (uncompressed) digest against the config's diff id.
    async fn unpack(&self, m: &ResolvedManifest, lease: &str) -> Result<()> {
        let chain = oci::chain_ids(&m.config.rootfs.diff_ids);
        let mut parent = String::new();
        for (i, layer) in m.manifest.layers.iter().enumerate() {
            let id = &chain[i];
            if self.snapshot_exists(id).await? {
                parent = id.clone();
                continue;
            }
            let key = self.unique("roost-extract");
            let r = async {
                let mounts = self.prepare_snapshot(&key, &parent, Some(lease)).await?;
                let applied: p::ApplyResponse = self
                    .unary(
                        "/containerd.services.diff.v1.Diff/Apply",
                        &p::ApplyRequest {
                            diff: Some(to_proto(layer)),
                            mounts,
                        },
                    )
                    .await?;
                let got = applied.applied.map(|a| a.digest).unwrap_or_default();
                if got != m.config.rootfs.diff_ids[i] {
                    return Err(Error::InvalidImage(format!(
                        "layer {}: uncompressed digest {got} differs from the config's diff id {}",
                        layer.digest, m.config.rootfs.diff_ids[i]
                    )));
                }
                self.commit_snapshot(id, &key, lease).await
            }
            .await;
            if let Err(e) = r {
                let _ = self.remove_snapshot(&key).await;
                return Err(e);
            }
            parent = id.clone();
        }
        Ok(())
    }

    /// The platform manifest, config and top snapshot of an image.
    pub(crate) async fn resolve_image(&self, name: &str) -> Result<ResolvedImage> {
        let img = self.get_image(name).await?;
        let mut target = img
            .target
            .ok_or_else(|| Error::InvalidImage(format!("image {name} has no target")))?;
        let (os, arch) = oci::host_platform();
        for _ in 0..4 {
            if !target.media_type.contains("index") && !target.media_type.contains("list") {
                break;
            }
            let idx: oci::Index = self.read_json(&target.digest).await?;
            let pick = idx
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == os && p.architecture == arch)
                })
                .or(if idx.manifests.len() == 1 {
                    idx.manifests.first()
                } else {
                    None
                })
                .ok_or_else(|| {
                    Error::InvalidImage(format!("image {name} has no {os}/{arch} manifest"))
                })?;
            target = to_proto(pick);
        }
        let manifest: oci::Manifest = self.read_json(&target.digest).await?;
        let config: oci::ImageConfig = self.read_json(&manifest.config.digest).await?;
        let top_chain_id = oci::chain_ids(&config.rootfs.diff_ids)
            .pop()
            .ok_or_else(|| Error::InvalidImage(format!("image {name} has no layers")))?;
        Ok(ResolvedImage {
            top_chain_id,
            defaults: ImageDefaults {
                entrypoint: config.config.entrypoint.unwrap_or_default(),
                cmd: config.config.cmd.unwrap_or_default(),
                env: config.config.env.unwrap_or_default(),
                working_dir: config.config.working_dir.unwrap_or_default(),
            },
        })
    }

    async fn read_json<T: for<'de> serde::Deserialize<'de>>(&self, digest: &str) -> Result<T> {
        let bytes = self.read_blob(digest, MAX_JSON).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::InvalidImage(format!("{digest}: {e}")))
    }

    /// Writes image `name` as an OCI image layout tar at `out`: its index
    /// or manifest, configs and layers, with `index.json` naming it.
    pub async fn export_image(&self, name: &str, out: &Path) -> Result<()> {
        let img = self.get_image(name).await?;
        let target = img
            .target
            .ok_or_else(|| Error::InvalidImage(format!("image {name} has no target")))?;
        // Collect every blob reachable from the target.
        let mut blobs: Vec<(String, i64)> = Vec::new();
        let mut queue = vec![(
            target.media_type.clone(),
            target.digest.clone(),
            target.size,
        )];
        while let Some((media, digest, size)) = queue.pop() {
            if blobs.iter().any(|(d, _)| *d == digest) {
                continue;
            }
            if media.contains("index") || media.contains("list") {
                let idx: oci::Index = self.read_json(&digest).await?;
                for m in idx.manifests {
                    if self.content_info(&m.digest).await?.is_some() {
                        queue.push((m.media_type, m.digest, m.size));
                    }
                }
            } else if media.contains("manifest") {
                let m: oci::Manifest = self.read_json(&digest).await?;
                queue.push((m.config.media_type, m.config.digest, m.config.size));
                for l in m.layers {
                    queue.push((l.media_type, l.digest, l.size));
                }
            }
            blobs.push((digest, size));
        }
        let mut top = oci::Descriptor {
            media_type: target.media_type.clone(),
            digest: target.digest.clone(),
            size: target.size,
            ..Default::default()
        };
        top.annotations
            .insert(oci::ANNOTATION_IMAGE_NAME.into(), name.to_string());
        let tag = name
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t.to_string())
            .unwrap_or_else(|| "latest".into());
        top.annotations.insert(oci::ANNOTATION_REF_NAME.into(), tag);
        let index = oci::Index {
            schema_version: 2,
            media_type: Some(oci::MEDIA_INDEX.into()),
            manifests: vec![top],
        };
        let index_bytes = serde_json::to_vec(&index).map_err(|e| Error::Invalid(e.to_string()))?;

        let part = out.with_extension("tar.part");
        let mut tar = oci::TarStream::create(&part)?;
        tar.file("oci-layout", &oci::oci_layout_json())?;
        tar.file("index.json", &index_bytes)?;
        for (digest, size) in &blobs {
            let hex = digest.trim_start_matches("sha256:");
            tar.begin(&format!("blobs/sha256/{hex}"), *size as u64)?;
            let mut written = 0u64;
            self.read_blob_with(digest, |chunk| {
                written += chunk.len() as u64;
                tar.data(chunk)
            })
            .await?;
            if written != *size as u64 {
                let _ = std::fs::remove_file(&part);
                return Err(Error::InvalidImage(format!(
                    "blob {digest}: read {written} bytes, expected {size}"
                )));
            }
            tar.end(*size as u64)?;
        }
        tar.finish()?;
        std::fs::rename(&part, out).map_err(Error::io(format!("rename to {}", out.display())))
    }
}

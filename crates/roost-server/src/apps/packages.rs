//! Application packages in the data directory:
//! `<data>/apps/packages/<name>/<version>-<digest>/`, each the unpacked
//! `.tgz` plus `images.json` (every image reference of its archives with
//! its manifest digest, checked once at upload). Uploads are received into
//! `<data>/apps/incoming/` and unpacked into `<data>/apps/staging/`, then
//! moved into place in one rename, so a refused or interrupted upload
//! leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use roost_api::apps::agent::ImageRef;
use roost_package::{Limits, Package};

use super::spec::PackageSpec;
use crate::Error;

/// The file in a package directory that lists its images.
const IMAGES_FILE: &str = "images.json";

/// A package read, checked and unpacked, not yet in place.
pub struct Unpacked {
    pub staging: PathBuf,
    pub package: Package,
    pub spec: PackageSpec,
}

/// The directories of the application store.
#[derive(Debug, Clone)]
pub struct PackageDirs {
    root: PathBuf,
}

impl PackageDirs {
    /// Makes (mode 0700) and empties the scratch directories: anything
    /// there is left from an upload a stop interrupted.
    pub fn open(root: PathBuf) -> Result<PackageDirs, Error> {
        let d = PackageDirs { root };
        for sub in ["incoming", "staging", "scratch"] {
            let p = d.root.join(sub);
            let _ = std::fs::remove_dir_all(&p);
            make_private_dir(&p)?;
        }
        make_private_dir(&d.root.join("packages"))?;
        Ok(d)
    }

    /// A new file name for an incoming upload.
    pub fn incoming(&self) -> PathBuf {
        self.root
            .join("incoming")
            .join(format!("{}.tgz", uuid::Uuid::new_v4()))
    }

    /// The directory of a package by its key.
    pub fn package(&self, key: &str) -> PathBuf {
        self.root.join("packages").join(key)
    }

    /// Reads `tgz` into a staging directory, checks its images and builds
    /// its specification. Blocking. Nothing remains on error.
    pub fn unpack(&self, tgz: &Path, limits: &Limits) -> Result<Unpacked, Error> {
        let staging = self
            .root
            .join("staging")
            .join(uuid::Uuid::new_v4().to_string());
        let file = std::fs::File::open(tgz)
            .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", tgz.display())))?;
        let package = roost_package::read(std::io::BufReader::new(file), &staging, limits)
            .map_err(package_error)?;
        let checked = (|| {
            let images = self.check_images(&package)?;
            std::fs::write(
                staging.join(IMAGES_FILE),
                serde_json::to_vec_pretty(&images)?,
            )?;
            Ok::<_, Error>(images)
        })();
        match checked {
            Ok(images) => {
                let spec = PackageSpec {
                    objects: package.objects.iter().map(|o| o.object.clone()).collect(),
                    images,
                };
                Ok(Unpacked {
                    staging,
                    package,
                    spec,
                })
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    /// Every image of every archive, each digest checked.
    fn check_images(&self, package: &Package) -> Result<BTreeMap<String, ImageRef>, Error> {
        let mut images: BTreeMap<String, ImageRef> = BTreeMap::new();
        for path in &package.images {
            let rel = path
                .strip_prefix(&package.root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            let layout = roost_runtime::oci::verify_layout(path, &self.root.join("scratch"))
                .map_err(|e| Error::Invalid(format!("Application-upload rejected: {rel}: {e}")))?;
            for img in layout.images {
                if let Some(prev) = images.get(&img.name) {
                    return Err(Error::Invalid(format!(
                        "Application-upload rejected: image {} is in both {} and {rel}",
                        img.name, prev.archive
                    )));
                }
                images.insert(
                    img.name.clone(),
                    ImageRef {
                        name: img.name,
                        digest: img.target.digest,
                        archive: rel.clone(),
                    },
                );
            }
        }
        Ok(images)
    }

    /// Moves a staged package into place under its key.
    pub fn keep(&self, staging: &Path, key: &str) -> Result<PathBuf, Error> {
        let target = self.package(key);
        if let Some(parent) = target.parent() {
            make_private_dir(parent)?;
        }
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(staging, &target)?;
        Ok(target)
    }

    /// The package file (`.tgz`) kept beside a package's directory, which
    /// a system controller serves to its subclouds by digest.
    pub fn tgz(&self, key: &str) -> PathBuf {
        let mut p = self.package(key).into_os_string();
        p.push(".tgz");
        PathBuf::from(p)
    }

    /// Keeps the uploaded file beside the package (a link when it can be,
    /// a copy otherwise).
    pub fn keep_tgz(&self, src: &Path, key: &str) -> Result<(), Error> {
        let target = self.tgz(key);
        let _ = std::fs::remove_file(&target);
        if std::fs::hard_link(src, &target).is_err() {
            std::fs::copy(src, &target)?;
        }
        Ok(())
    }

    /// Reads a kept package's specification again (at start-up).
    pub fn load(&self, key: &str) -> Result<PackageSpec, Error> {
        let dir = self.package(key);
        let limits = Limits {
            require_checksum: false,
            ..Limits::default()
        };
        let package = roost_package::load(&dir, &limits).map_err(package_error)?;
        let images: BTreeMap<String, ImageRef> =
            serde_json::from_slice(&std::fs::read(dir.join(IMAGES_FILE))?)?;
        Ok(PackageSpec {
            objects: package.objects.into_iter().map(|o| o.object).collect(),
            images,
        })
    }

    /// Removes a kept package and, if it was the last, its application's
    /// directory.
    pub fn remove(&self, key: &str) {
        let dir = self.package(key);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an application package");
        }
        let _ = std::fs::remove_file(self.tgz(key));
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The key of a package: `<name>/<version>-<12 hex of its digest>`.
pub fn key(name: &str, version: &str, digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    let short = &hex[..hex.len().min(12)];
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}/{version}-{short}")
}

/// A package refusal as StarlingX words it.
pub fn package_error(e: roost_package::Error) -> Error {
    if e.is_invalid() {
        Error::Invalid(format!("Application-upload rejected: {e}"))
    } else {
        Error::Internal(e.to_string())
    }
}

fn make_private_dir(p: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

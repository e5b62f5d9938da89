//! Software releases on this cloud (USM's `/v1/release`): uploads checked
//! against the trusted signing keys and unpacked under the data directory,
//! listed, shown and deleted; deployed to the hosts by `deploy`.
//!
//! An upload is received into `software/incoming/`, then, off the async
//! runtime, its head is verified (`roost_release::open`) and its payload
//! streamed into `software/staging/<id>.<random>/`, each file checked
//! against its digest. On the request lane the release is checked again
//! (no release with its id, its prerequisites present), the staging
//! directory is renamed to `software/releases/<id>/`, the row committed,
//! and only then is memory updated. Anything refused leaves nothing behind.
//!
//! The release file itself is kept beside the payload
//! (`releases/<id>/release.patch`, with its digest in `release.digest`), so
//! that a system controller can hand it to its subclouds (the `software`
//! sync endpoint names each release by that digest).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use roost_api::software::{PayloadView, ReleaseView, UploadInfo};
use roost_release::{Manifest, ReleaseState, TrustedKeys};
use roost_store::{ReleaseWrite, Store, StoredRelease};
use roost_types::{Clock, Timestamp};

use crate::Error;

pub mod deploy;
pub mod host;
pub mod strategy;

/// What the deploys need of the rest of the server (set once, after the
/// hosts and fault management started).
pub struct Site {
    pub hosts: crate::hosts::HostService,
    pub fm: crate::fm_service::FmService,
}

/// One release as the service holds it.
#[derive(Debug, Clone)]
struct Release {
    manifest: Manifest,
    state: ReleaseState,
    uploaded_at: Timestamp,
    /// The kept release file's digest (`sha256:<hex>`) and size.
    file: Option<(String, u64)>,
}

/// The kept release file, and its digest, in a release's directory.
const RELEASE_FILE: &str = "release.patch";
const RELEASE_DIGEST: &str = "release.digest";

/// Reads `release.digest` (`sha256:<hex> <size>`) of a release directory.
fn read_digest(dir: &Path) -> Option<(String, u64)> {
    let text = fs::read_to_string(dir.join(RELEASE_DIGEST)).ok()?;
    let (d, n) = text.trim().split_once(' ')?;
    Some((d.to_string(), n.parse().ok()?))
}

/// The software releases of this cloud.
#[derive(Clone)]
pub struct SoftwareService {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    store: Arc<Store>,
    trusted: TrustedKeys,
    max_bytes: u64,
    clock: Arc<dyn Clock>,
    lane: tokio::sync::Mutex<()>,
    releases: Mutex<BTreeMap<String, Release>>,
    /// The deploy in progress.
    deploy: Mutex<Option<roost_release::deploy::Deploy>>,
    /// What each host's agent last said it runs.
    running: Mutex<BTreeMap<String, roost_api::software::SoftwareStatus>>,
    site: std::sync::OnceLock<Site>,
    /// How long a host's agent has to report the end of an attempt.
    host_deadline_secs: u64,
    /// The site strategy, changed under `strategy_lane`.
    strategy: Mutex<Option<roost_release::strategy::SiteStrategy>>,
    strategy_lane: tokio::sync::Mutex<()>,
    strategy_wake: tokio::sync::Notify,
    /// Bumped whenever the deploy changes, for agents' order polls.
    deploy_changed: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever a release is added or deleted.
    releases_changed: tokio::sync::watch::Sender<u64>,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let m = format!("{what} {}", path.display());
    move |e| Error::Internal(format!("{m}: {e}"))
}

impl SoftwareService {
    /// Loads the releases under `dir` (the data directory's `software/`)
    /// and clears what interrupted uploads left.
    pub fn start(
        store: Arc<Store>,
        dir: PathBuf,
        trusted: TrustedKeys,
        max_bytes: u64,
        host_deadline_secs: u64,
        clock: Arc<dyn Clock>,
    ) -> Result<SoftwareService, Error> {
        for sub in ["incoming", "staging"] {
            let p = dir.join(sub);
            if p.exists() {
                fs::remove_dir_all(&p).map_err(io("cannot clear", &p))?;
            }
        }
        for sub in ["incoming", "staging", "releases"] {
            let p = dir.join(sub);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&p)
                .map_err(io("cannot create", &p))?;
        }
        let mut releases = BTreeMap::new();
        for row in store.releases()? {
            let manifest: Manifest = match serde_json::from_str(&row.manifest) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(release = %row.release_id, error = %e, "a stored release manifest does not parse; leaving it out");
                    continue;
                }
            };
            let state = ReleaseState::parse(&row.state).unwrap_or(ReleaseState::Available);
            releases.insert(
                row.release_id.clone(),
                Release {
                    file: read_digest(&dir.join("releases").join(&row.release_id)),
                    manifest,
                    state,
                    uploaded_at: row.uploaded_at,
                },
            );
        }
        let deploy = match store.deploy()? {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                Error::Internal(format!("the stored software deploy does not parse: {e}"))
            })?),
            None => None,
        };
        let strategy = match store.site_strategy()? {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                Error::Internal(format!("the stored site strategy does not parse: {e}"))
            })?),
            None => None,
        };
        if trusted.is_empty() {
            tracing::warn!(
                "no release signing key is trusted ([software] trusted_keys): every upload will be refused"
            );
        }
        Ok(SoftwareService {
            inner: Arc::new(Inner {
                dir,
                store,
                trusted,
                max_bytes,
                clock,
                lane: tokio::sync::Mutex::new(()),
                releases: Mutex::new(releases),
                deploy: Mutex::new(deploy),
                running: Mutex::new(BTreeMap::new()),
                site: std::sync::OnceLock::new(),
                host_deadline_secs,
                strategy: Mutex::new(strategy),
                strategy_lane: tokio::sync::Mutex::new(()),
                strategy_wake: tokio::sync::Notify::new(),
                deploy_changed: tokio::sync::watch::Sender::new(0),
                releases_changed: tokio::sync::watch::Sender::new(0),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Release>> {
        self.inner
            .releases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the deploys the hosts and fault management (once).
    pub fn set_site(&self, site: Site) {
        let _ = self.inner.site.set(site);
    }

    /// Told whenever a release is added or deleted.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.releases_changed.subscribe()
    }

    fn releases_changed(&self) {
        self.inner.releases_changed.send_modify(|n| *n += 1);
    }

    /// The releases this cloud can hand to its subclouds: each one's id and
    /// the digest and size of its file.
    pub fn synced(&self) -> roost_api::dcsync::SoftwareConfig {
        roost_api::dcsync::SoftwareConfig {
            releases: self
                .lock()
                .values()
                .filter_map(|r| {
                    let (digest, size) = r.file.clone()?;
                    Some(roost_api::dcsync::SyncedRelease {
                        release_id: r.manifest.release_id.clone(),
                        digest,
                        size,
                    })
                })
                .collect(),
        }
    }

    /// The kept file of the release whose file has `digest`.
    pub fn release_file(&self, digest: &str) -> Option<PathBuf> {
        let st = self.lock();
        let r = st
            .values()
            .find(|r| r.file.as_ref().is_some_and(|(d, _)| d == digest))?;
        Some(
            self.inner
                .dir
                .join("releases")
                .join(&r.manifest.release_id)
                .join(RELEASE_FILE),
        )
    }

    /// The ids of the releases here and their states.
    pub fn states(&self) -> BTreeMap<String, ReleaseState> {
        self.lock()
            .iter()
            .map(|(id, r)| (id.clone(), r.state))
            .collect()
    }

    /// The largest release file accepted, bytes.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// A new private file to receive an upload into (removed by the caller).
    pub fn incoming(&self) -> PathBuf {
        self.inner
            .dir
            .join("incoming")
            .join(format!("{}.patch", crate::identity::random_secret(12)))
    }

    /// Releases, filtered as USM filters: `show` by state (an unknown state
    /// filters nothing), else `release` by `MM.mm`.
    pub fn list(&self, show: Option<&str>, release: Option<&str>) -> Vec<ReleaseView> {
        let st = self.lock();
        let state = show.and_then(ReleaseState::parse);
        st.values()
            .filter(|r| match (state, show, release) {
                (Some(s), _, _) => r.state == s,
                (None, Some(_), _) => true,
                (None, None, Some(rel)) => {
                    r.manifest.sw_release() == rel || r.manifest.version == rel
                }
                (None, None, None) => true,
            })
            .map(view)
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<ReleaseView> {
        self.lock().get(id).map(view)
    }

    /// Whether release `id` is in `state`; `None` for an unknown release.
    pub fn is(&self, id: &str, state: ReleaseState) -> Option<bool> {
        self.lock().get(id).map(|r| r.state == state)
    }

    /// Takes the release file at `file` (which the caller removes).
    pub async fn upload(&self, file: PathBuf) -> Result<UploadInfo, Error> {
        let staging = self
            .inner
            .dir
            .join("staging")
            .join(crate::identity::random_secret(12));
        let trusted = self.inner.trusted.clone();
        let stage = staging.clone();
        let unpacked = tokio::task::spawn_blocking(move || {
            let manifest = unpack(&file, &stage, &trusted)?;
            let file_digest = keep_file(&file, &stage)?;
            Ok::<_, Error>((manifest, file_digest))
        })
        .await
        .map_err(|_| Error::Internal("the release unpacking task stopped".into()))?;
        let result = match unpacked {
            Ok((manifest, file)) => self.admit(manifest, file, &staging).await,
            Err(e) => Err(e),
        };
        if staging.exists() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    /// Checks an unpacked release against the others, moves it into place,
    /// commits it and keeps it.
    async fn admit(
        &self,
        manifest: Manifest,
        file: (String, u64),
        staging: &Path,
    ) -> Result<UploadInfo, Error> {
        let _lane = self.inner.lane.lock().await;
        let id = manifest.release_id.clone();
        // Decide.
        {
            let st = self.lock();
            if st.contains_key(&id) {
                return Err(Error::Conflict(format!("Release {id} already exists")));
            }
            let missing: Vec<&str> = manifest
                .requires
                .iter()
                .filter(|r| !st.contains_key(*r))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Error::Invalid(format!(
                    "Release {id} requires {}, which this cloud does not have: upload it first",
                    missing.join(", ")
                )));
            }
        }
        let now = self.inner.clock.now();
        let row = StoredRelease {
            release_id: id.clone(),
            state: ReleaseState::Available.as_str().into(),
            manifest: serde_json::to_string(&manifest)
                .map_err(|e| Error::Internal(format!("cannot encode a manifest: {e}")))?,
            uploaded_at: now,
        };
        let place = self.inner.dir.join("releases").join(&id);
        if place.exists() {
            fs::remove_dir_all(&place).map_err(io("cannot clear", &place))?;
        }
        fs::rename(staging, &place).map_err(io("cannot move the release to", &place))?;
        // Persist.
        let store = self.inner.store.clone();
        let committed =
            tokio::task::spawn_blocking(move || store.write_releases(&[ReleaseWrite::Insert(row)]))
                .await
                .map_err(|_| Error::Internal("the store task stopped".into()))?;
        if let Err(e) = committed {
            let _ = fs::remove_dir_all(&place);
            return Err(e.into());
        }
        // Apply.
        let info = UploadInfo {
            id: id.clone(),
            sw_release: manifest.version.clone(),
            is_product_release: false,
        };
        tracing::info!(release = %id, signed_by = %manifest.key_id, files = manifest.payload.len(), "release uploaded");
        self.lock().insert(
            id,
            Release {
                manifest,
                state: ReleaseState::Available,
                uploaded_at: now,
                file: Some(file),
            },
        );
        self.releases_changed();
        Ok(info)
    }

    /// Deletes a release that is not in use.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _lane = self.inner.lane.lock().await;
        // Decide.
        {
            let st = self.lock();
            let r = st
                .get(id)
                .ok_or_else(|| Error::NotFound(format!("Release {id} not found")))?;
            if !r.state.deletable() {
                return Err(Error::Conflict(format!(
                    "Release {id} is {}: only available, unavailable or upload-failed releases \
                     can be deleted",
                    r.state
                )));
            }
            if let Some(user) = st
                .values()
                .find(|o| o.manifest.requires.iter().any(|q| q == id))
            {
                return Err(Error::Conflict(format!(
                    "Release {id} is required by {}",
                    user.manifest.release_id
                )));
            }
        }
        // Persist.
        let store = self.inner.store.clone();
        let w = ReleaseWrite::Delete(id.to_string());
        tokio::task::spawn_blocking(move || store.write_releases(&[w]))
            .await
            .map_err(|_| Error::Internal("the store task stopped".into()))??;
        // Apply.
        self.lock().remove(id);
        let place = self.inner.dir.join("releases").join(id);
        if let Err(e) = fs::remove_dir_all(&place) {
            tracing::warn!(release = %id, error = %e, "cannot remove the release's files");
        }
        tracing::info!(release = %id, "release deleted");
        self.releases_changed();
        Ok(())
    }
}

/// Moves the verified release file into the staging directory, with its
/// digest beside it.
fn keep_file(file: &Path, staging: &Path) -> Result<(String, u64), Error> {
    let (digest, size) = roost_pki::file_digest(file)
        .map_err(|e| Error::Internal(format!("cannot read the release file: {e}")))?;
    let kept = staging.join(RELEASE_FILE);
    if fs::rename(file, &kept).is_err() {
        fs::copy(file, &kept).map_err(io("cannot keep the release file as", &kept))?;
    }
    let d = staging.join(RELEASE_DIGEST);
    fs::write(&d, format!("{digest} {size}\n")).map_err(io("cannot write", &d))?;
    Ok((digest, size))
}

/// Verifies the release file at `file` and unpacks its payload into
/// `staging/payload/`, with its manifest as `staging/manifest.json`.
fn unpack(file: &Path, staging: &Path, trusted: &TrustedKeys) -> Result<Manifest, Error> {
    let f = fs::File::open(file).map_err(io("cannot read", file))?;
    let refused = |e: roost_release::Error| Error::Invalid(e.to_string());
    let opened = roost_release::open(BufReader::new(f), trusted).map_err(refused)?;
    let payload = staging.join("payload");
    fs::create_dir_all(&payload).map_err(io("cannot create", &payload))?;
    let manifest = opened
        .payload(|entry| {
            let path = payload.join(&entry.name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| roost_release::Error::Io {
                    context: format!("cannot create {}", parent.display()),
                    source: e,
                })?;
            }
            let out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| roost_release::Error::Io {
                    context: format!("cannot create {}", path.display()),
                    source: e,
                })?;
            Ok(Box::new(BufWriter::new(out)) as Box<dyn Write>)
        })
        .map_err(refused)?;
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("cannot encode a manifest: {e}")))?;
    let m = staging.join("manifest.json");
    fs::write(&m, text).map_err(io("cannot write", &m))?;
    Ok(manifest)
}

fn view(r: &Release) -> ReleaseView {
    let m = &r.manifest;
    ReleaseView {
        release_id: m.release_id.clone(),
        state: r.state.as_str().into(),
        sw_version: m.version.clone(),
        component: None,
        status: "REL".into(),
        unremovable: false,
        summary: m.summary.clone(),
        description: m.description.clone(),
        install_instructions: String::new(),
        warnings: String::new(),
        reboot_required: m.reboot_required,
        prepatched_iso: false,
        requires: m.requires.clone(),
        payload: m
            .payload
            .iter()
            .map(|p| PayloadView {
                name: p.name.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            })
            .collect(),
        signed_by: m.key_id.clone(),
        uploaded_at: r.uploaded_at.to_string(),
    }
}

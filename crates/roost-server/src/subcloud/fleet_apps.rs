//! The applications a system controller wants on this subcloud (the `apps`
//! endpoint): each package this subcloud lacks is fetched once over the
//! mutual-TLS link (kept by digest, resumed, checked), then uploaded and
//! applied through this cloud's own application service, the same path as
//! `/v1/apps`. Applications the system controller no longer wants are
//! removed, only those it put here. The digest reported back covers only
//! the applications really applied, so the system controller sees `in-sync`
//! exactly when the local state matches.
//!
//! Each step is one move from the current state (upload, apply, remove,
//! delete); the system controller pushes again while the digest differs,
//! so the next sync takes the next step. Bringing a package (the fetch,
//! which can take minutes for hundreds of MB, and the upload that unpacks
//! it) runs in a task of its own: the sync loop never waits on it, keeps
//! syncing alarms and other endpoints meanwhile and reports the
//! application `pending`; when the task ends the loop syncs at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use roost_api::dcsync::{AppReport, AppsConfig, DesiredApp};
use roost_store::Store;
use tokio::sync::Notify;

use super::{ControllerLink, DcIdentity};
use crate::apps::AppService;

/// The last `apps` content pushed (JSON).
const SETTING_DESIRED: &str = "dc.apps.desired";
/// Names of the applications the system controller put here (JSON).
const SETTING_MANAGED: &str = "dc.apps.managed";

/// This subcloud's side of the `apps` endpoint.
#[derive(Clone)]
pub struct FleetApps {
    apps: AppService,
    /// Fetched packages, by digest.
    dir: PathBuf,
    /// Why an application could not be fetched or uploaded, by name.
    failures: Arc<Mutex<BTreeMap<String, String>>>,
    /// Applications whose package is being fetched and uploaded, by name.
    bringing: Arc<Mutex<BTreeSet<String>>>,
    /// Told when bringing a package ends (either way).
    brought: Arc<Notify>,
    /// Packages (by digest) an update to was started with: one that did
    /// not take is not tried again at every push.
    updates_tried: Arc<Mutex<BTreeSet<String>>>,
}

fn read<T: serde::de::DeserializeOwned + Default>(store: &Store, key: &str) -> T {
    store
        .setting(key)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default()
}

impl FleetApps {
    /// Packages are kept in `dir`.
    pub fn new(apps: AppService, dir: PathBuf) -> FleetApps {
        FleetApps {
            apps,
            dir,
            failures: Arc::default(),
            bringing: Arc::default(),
            brought: Arc::default(),
            updates_tried: Arc::default(),
        }
    }

    /// Resolves when bringing a package has ended since the last call:
    /// the next step can be taken at once.
    pub async fn brought(&self) {
        self.brought.notified().await
    }

    /// Whether the package of `name` is being brought.
    pub fn is_bringing(&self, name: &str) -> bool {
        self.bringing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    fn fail(&self, name: &str, why: String) {
        tracing::warn!(app = %name, error = %why, "cannot bring an application from the system controller");
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), why);
    }

    fn clear(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The digest of what runs here of the `apps` endpoint: the desired
    /// applications that are applied at their version, plus any the system
    /// controller put here and no longer wants (still present).
    pub fn local_config(&self, store: &Store) -> AppsConfig {
        let desired: AppsConfig = read(store, SETTING_DESIRED);
        let managed: BTreeSet<String> = read(store, SETTING_MANAGED);
        let mut apps: Vec<DesiredApp> = desired
            .apps
            .iter()
            .filter(|a| {
                self.apps
                    .get(&a.name)
                    .is_ok_and(|l| l.status == "applied" && l.app_version == a.version)
            })
            .cloned()
            .collect();
        for name in &managed {
            if desired.apps.iter().any(|a| &a.name == name) {
                continue;
            }
            if let Ok(l) = self.apps.get(name) {
                apps.push(DesiredApp {
                    name: name.clone(),
                    version: l.app_version,
                    digest: String::new(),
                    size: 0,
                    state: l.status,
                });
            }
        }
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        AppsConfig { apps }
    }

    /// Where each desired application stands here.
    pub fn reports(&self, store: &Store) -> Vec<AppReport> {
        let desired: AppsConfig = read(store, SETTING_DESIRED);
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        desired
            .apps
            .iter()
            .map(|a| {
                let local = self.apps.get(&a.name).ok();
                let (state, reason) = match (&local, failures.get(&a.name)) {
                    (Some(l), _) if l.status == "applied" && l.app_version == a.version => {
                        ("applied", String::new())
                    }
                    (Some(l), _)
                        if l.app_version == a.version
                            && matches!(l.status.as_str(), "apply-failed" | "upload-failed") =>
                    {
                        ("failed", l.progress.clone().unwrap_or_default())
                    }
                    (None, _) if self.is_bringing(&a.name) => (
                        "pending",
                        "fetching the package from the system controller".to_string(),
                    ),
                    (_, Some(why)) => ("failed", why.clone()),
                    _ => ("pending", String::new()),
                };
                AppReport {
                    name: a.name.clone(),
                    version: a.version.clone(),
                    state: state.into(),
                    reason,
                }
            })
            .collect()
    }

    /// Takes one step towards `want` for every application.
    pub async fn apply(
        &self,
        store: &Store,
        controller: &Arc<dyn ControllerLink>,
        id: &DcIdentity,
        want: &AppsConfig,
    ) -> crate::Result<()> {
        let mut managed: BTreeSet<String> = read(store, SETTING_MANAGED);
        // The system controller pushes the same content again while an
        // application is moving: written only when it changed.
        let desired = serde_json::to_string(want)?;
        if store.setting(SETTING_DESIRED).ok().flatten().as_deref() != Some(desired.as_str()) {
            store.set_settings(&[(SETTING_DESIRED.into(), desired)])?;
        }
        for a in &want.apps {
            if !managed.contains(&a.name) && self.apps.get(&a.name).is_ok() {
                // This cloud's own application: left alone.
                self.fail(
                    &a.name,
                    format!(
                        "an application named {} was not put here by the system controller; remove it to take this one",
                        a.name
                    ),
                );
                continue;
            }
            if self.apps.get(&a.name).is_err() && managed.insert(a.name.clone()) {
                // Recorded before it is brought: it is ours to remove,
                // whatever comes of bringing it.
                store
                    .set_settings(&[(SETTING_MANAGED.into(), serde_json::to_string(&managed)?)])?;
            }
            self.step(controller, id, a).await;
        }
        // What the system controller put here and no longer wants.
        let mut gone = Vec::new();
        for name in &managed {
            if want.apps.iter().any(|a| &a.name == name) {
                continue;
            }
            match self.apps.get(name) {
                // One being brought is taken away once it is here.
                Err(_) if self.is_bringing(name) => {}
                Err(_) => gone.push(name.clone()),
                Ok(l) => self.take_away(name, &l.status).await,
            }
        }
        if !gone.is_empty() {
            for g in &gone {
                managed.remove(g);
                self.clear(g);
            }
            store.set_settings(&[(SETTING_MANAGED.into(), serde_json::to_string(&managed)?)])?;
        }
        Ok(())
    }

    async fn take_away(&self, name: &str, status: &str) {
        let r = match status {
            "applied" | "apply-failed" => self.apps.remove(name, true).await.map(|_| ()),
            "uploaded" | "upload-failed" | "remove-failed" => self.apps.delete(name).await,
            // Moving: the next sync takes the next step.
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(app = %name, error = %e, "cannot remove an application the system controller no longer wants");
        }
    }

    /// One step for `a`.
    async fn step(&self, controller: &Arc<dyn ControllerLink>, id: &DcIdentity, a: &DesiredApp) {
        match self.apps.get(&a.name) {
            Ok(l) if l.app_version != a.version => {
                if l.status == "applied" && self.update_tried(&a.digest) {
                    // The update to this package did not take: the version
                    // that runs stays until the system controller sends
                    // another package.
                    self.failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(a.name.clone())
                        .or_insert_with(|| {
                            format!(
                                "the update to version {} failed here; version {} runs",
                                a.version, l.app_version
                            )
                        });
                } else if l.status == "applied" {
                    // Another version running: updated in place, as
                    // `application-update` does.
                    self.start_bringing(controller, id, a, Bring::Update);
                } else {
                    // Otherwise taken away first, then brought again.
                    self.take_away(&a.name, &l.status).await;
                }
            }
            Ok(l) => match l.status.as_str() {
                "uploaded" => {
                    if let Err(e) = self.apps.apply(&a.name).await {
                        self.fail(&a.name, e.to_string());
                    }
                }
                "upload-failed" => {
                    // Uploaded again from the kept package at the next push.
                    let _ = self.apps.delete(&a.name).await;
                }
                "applied" => self.clear(&a.name),
                _ => {}
            },
            Err(_) => self.start_bringing(controller, id, a, Bring::Upload),
        }
    }

    /// Starts bringing the package of `a` in a task of its own, unless it
    /// is being brought.
    fn start_bringing(
        &self,
        controller: &Arc<dyn ControllerLink>,
        id: &DcIdentity,
        a: &DesiredApp,
        how: Bring,
    ) {
        if !self
            .bringing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(a.name.clone())
        {
            return;
        }
        let me = self.clone();
        let link = controller.clone();
        let id = id.clone();
        let a = a.clone();
        tokio::spawn(async move {
            me.bring(link.as_ref(), &id, &a, how).await;
            me.bringing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&a.name);
            me.brought.notify_one();
        });
    }

    fn update_tried(&self, digest: &str) -> bool {
        self.updates_tried
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(digest)
    }

    /// Fetches the package of `a` (resumed where an earlier fetch left
    /// it) and uploads it here, or updates the running version to it.
    async fn bring(
        &self,
        controller: &dyn ControllerLink,
        id: &DcIdentity,
        a: &DesiredApp,
        how: Bring,
    ) {
        let fetched = match controller
            .fetch_package(id, &a.digest, a.size, &self.dir)
            .await
        {
            Ok(f) => f,
            Err(e) => return self.fail(&a.name, e.to_string()),
        };
        let (name, version) = (Some(a.name.clone()), Some(a.version.clone()));
        let r = match how {
            Bring::Upload => self.apps.upload(fetched.path, name, version).await,
            Bring::Update => {
                self.updates_tried
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(a.digest.clone());
                self.apps.update(fetched.path, name, version).await
            }
        };
        match r {
            Ok(_) => self.clear(&a.name),
            Err(e) => self.fail(&a.name, e.to_string()),
        }
    }
}

/// How a package is brought: a new application, or a new version of one
/// that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bring {
    Upload,
    Update,
}

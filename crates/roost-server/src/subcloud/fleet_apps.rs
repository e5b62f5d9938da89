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
//! so the next sync takes the next step and the sync loop never waits on
//! an application.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use roost_api::dcsync::{AppReport, AppsConfig, DesiredApp};
use roost_store::Store;

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
        }
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
        controller: &dyn ControllerLink,
        id: &DcIdentity,
        want: &AppsConfig,
    ) -> crate::Result<()> {
        let mut managed: BTreeSet<String> = read(store, SETTING_MANAGED);
        store.set_settings(&[(SETTING_DESIRED.into(), serde_json::to_string(want)?)])?;
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
            if self.step(controller, id, a).await {
                // Recorded before anything else can fail: it is ours to remove.
                managed.insert(a.name.clone());
                store
                    .set_settings(&[(SETTING_MANAGED.into(), serde_json::to_string(&managed)?)])?;
            }
        }
        // What the system controller put here and no longer wants.
        let mut gone = Vec::new();
        for name in &managed {
            if want.apps.iter().any(|a| &a.name == name) {
                continue;
            }
            match self.apps.get(name) {
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

    /// One step for `a`; true when it uploaded the application here.
    async fn step(&self, controller: &dyn ControllerLink, id: &DcIdentity, a: &DesiredApp) -> bool {
        match self.apps.get(&a.name) {
            Ok(l) if l.app_version != a.version => {
                // Another version: taken away first, then brought again.
                self.take_away(&a.name, &l.status).await;
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
            Err(_) => {
                let fetched = match controller
                    .fetch_package(id, &a.digest, a.size, &self.dir)
                    .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        self.fail(&a.name, e.to_string());
                        return false;
                    }
                };
                if let Err(e) = self
                    .apps
                    .upload(fetched.path, Some(a.name.clone()), Some(a.version.clone()))
                    .await
                {
                    self.fail(&a.name, e.to_string());
                    return false;
                }
                self.clear(&a.name);
                return true;
            }
        }
        false
    }
}

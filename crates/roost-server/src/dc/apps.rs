//! Applications across the fleet, on the system controller: which
//! applications each subcloud group is assigned (stored, and desired per
//! group in the fleet under the `apps` endpoint type), where each stands on
//! each subcloud, and which package a digest names for the DC listener.

use std::collections::BTreeMap;

use roost_api::dcmanager::{GroupAppList, SubcloudAppStatus, SubcloudApps};
use roost_api::dcsync::{AppsConfig, DesiredApp};
use roost_dc::Endpoint;
use roost_store::StoredGroupApp;

use super::{DcService, State};
use crate::Error;
use crate::apps::AppService;

/// The content of the `apps` endpoint for a group's subclouds.
pub(super) fn group_config(
    group_apps: &BTreeMap<u64, BTreeMap<String, DesiredApp>>,
    group: u64,
) -> AppsConfig {
    AppsConfig {
        apps: group_apps
            .get(&group)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default(),
    }
}

/// The digest of each group's content (groups with applications only).
pub(super) fn group_digests(
    group_apps: &BTreeMap<u64, BTreeMap<String, DesiredApp>>,
) -> BTreeMap<u64, String> {
    group_apps
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(g, _)| (*g, group_config(group_apps, *g).digest()))
        .collect()
}

impl DcService {
    fn group_of(st: &State, reference: &str) -> Result<(u64, String), Error> {
        st.fleet
            .find_group(reference)
            .map(|g| (g.id, g.name.clone()))
            .ok_or_else(|| Error::NotFound("Subcloud Group not found".into()))
    }

    /// The applications assigned to a group.
    pub fn group_apps(&self, group: &str) -> Result<GroupAppList, Error> {
        let st = self.lock();
        let (id, name) = Self::group_of(&st, group)?;
        Ok(GroupAppList {
            group: name,
            apps: group_config(&st.group_apps, id).apps,
        })
    }

    /// Assigns an application (its package already checked by the caller:
    /// name, version, digest and size of the `.tgz`) to a group; its
    /// subclouds get it at their next sync. Assigning again with another
    /// package replaces it.
    pub async fn assign_app(&self, group: &str, app: DesiredApp) -> Result<GroupAppList, Error> {
        let id = {
            let st = self.lock();
            Self::group_of(&st, group)?.0
        };
        self.put_group_app(id, app).await?;
        self.group_apps(group)
    }

    async fn put_group_app(&self, id: u64, app: DesiredApp) -> Result<(), Error> {
        let _writes = self.inner.writes.lock().await;
        if self.lock().fleet.find_group(&id.to_string()).is_none() {
            return Err(Error::NotFound("Subcloud Group not found".into()));
        }
        let row = StoredGroupApp {
            group_id: id as i64,
            app: app.name.clone(),
            version: app.version.clone(),
            digest: app.digest.clone(),
            size: app.size as i64,
        };
        self.persist(move |store| store.save_group_app(&row))
            .await?;
        let fx = {
            let mut st = self.lock();
            st.group_apps
                .entry(id)
                .or_default()
                .insert(app.name.clone(), app);
            self.desire_apps(&mut st)
        };
        drop(_writes);
        self.carry_out(fx).await;
        Ok(())
    }

    /// Keeps every group's assignment of an application on the package it
    /// runs on this system controller: once an `application-update` here
    /// has applied a new version, the groups' subclouds are given it.
    /// Assignments whose application is moving, failed or gone are left
    /// as they are.
    pub async fn follow_packages(&self, apps: &AppService) {
        let assigned: Vec<(u64, DesiredApp)> = {
            let st = self.lock();
            st.group_apps
                .iter()
                .flat_map(|(g, m)| m.values().map(|a| (*g, a.clone())))
                .collect()
        };
        let mut published = BTreeMap::new();
        for (group, a) in assigned {
            if !published.contains_key(&a.name) {
                let p = apps.published_package(&a.name).await.ok().flatten();
                published.insert(a.name.clone(), p);
            }
            let Some(Some(p)) = published.get(&a.name) else {
                continue;
            };
            if p.status != "applied" || p.digest == a.digest {
                continue;
            }
            let next = DesiredApp {
                version: p.version.clone(),
                digest: p.digest.clone(),
                size: p.size,
                ..a
            };
            tracing::info!(group, app = %next.name, version = %next.version, "the group follows the application's new package");
            if let Err(e) = self.put_group_app(group, next).await {
                tracing::warn!(group, error = %e, "cannot move a group to the application's new package");
            }
        }
    }

    /// Takes an application off a group: its subclouds remove it.
    pub async fn unassign_app(&self, group: &str, app: &str) -> Result<(), Error> {
        let _writes = self.inner.writes.lock().await;
        let id = {
            let st = self.lock();
            let (id, name) = Self::group_of(&st, group)?;
            if !st.group_apps.get(&id).is_some_and(|m| m.contains_key(app)) {
                return Err(Error::NotFound(format!(
                    "application {app} is not assigned to group {name}"
                )));
            }
            id
        };
        let a = app.to_string();
        self.persist(move |store| store.delete_group_app(id as i64, &a))
            .await?;
        let fx = {
            let mut st = self.lock();
            if let Some(m) = st.group_apps.get_mut(&id) {
                m.remove(app);
            }
            self.desire_apps(&mut st)
        };
        drop(_writes);
        self.carry_out(fx).await;
        Ok(())
    }

    /// Hands the groups' contents to the fleet (a new generation when
    /// anything changed).
    pub(super) fn desire_apps(&self, st: &mut State) -> roost_dc::DcEffects {
        let digests = group_digests(&st.group_apps);
        let (_, fx) = st.fleet.set_group_desired(
            Endpoint::Apps,
            digests,
            &AppsConfig::default().digest(),
            self.inner.clock.now(),
        );
        fx
    }

    /// The name of an application assigned to some group with the package
    /// `digest` (what the DC listener serves under that digest).
    pub fn app_of_package(&self, digest: &str) -> Option<String> {
        let st = self.lock();
        st.group_apps
            .values()
            .flat_map(|m| m.values())
            .find(|a| a.digest == digest)
            .map(|a| a.name.clone())
    }

    /// Counts bytes of packages served to a subcloud (one request).
    pub fn record_fetch(&self, subcloud: &str, bytes: u64) {
        let mut st = self.lock();
        let e = st.fetched.entry(subcloud.to_string()).or_default();
        e.0 += 1;
        e.1 += bytes;
    }

    fn subcloud_apps_in(st: &State, name: &str) -> Option<SubcloudApps> {
        let sc = st.fleet.get(name)?;
        let in_sync = sc.endpoint_status(Endpoint::Apps) == roost_dc::SyncStatus::InSync;
        let reports = st.app_reports.get(name);
        let apps = group_config(&st.group_apps, sc.group_id())
            .apps
            .into_iter()
            .map(|a| {
                let r = reports.and_then(|rs| {
                    rs.iter()
                        .find(|r| r.name == a.name && r.version == a.version)
                });
                let (state, reason) = match r {
                    _ if in_sync => ("applied".to_string(), String::new()),
                    Some(r) => (r.state.clone(), r.reason.clone()),
                    None => ("pending".to_string(), String::new()),
                };
                SubcloudAppStatus {
                    app: a.name,
                    version: a.version,
                    digest: a.digest,
                    state,
                    reason,
                }
            })
            .collect();
        let (package_requests, package_bytes) = st.fetched.get(name).copied().unwrap_or_default();
        Some(SubcloudApps {
            subcloud: name.to_string(),
            sync_status: sc.endpoint_status(Endpoint::Apps).as_str().to_string(),
            apps,
            package_requests,
            package_bytes,
        })
    }

    /// Where each application of a subcloud's group stands on it.
    pub fn subcloud_apps(&self, reference: &str) -> Result<SubcloudApps, Error> {
        let st = self.lock();
        let name = Self::name_of(&st, reference)?;
        Self::subcloud_apps_in(&st, &name)
            .ok_or_else(|| Error::NotFound("Subcloud not found".into()))
    }

    /// Every subcloud's applications, by name.
    pub fn all_subcloud_apps(&self) -> Vec<SubcloudApps> {
        let st = self.lock();
        st.fleet
            .iter()
            .filter_map(|s| Self::subcloud_apps_in(&st, s.name()))
            .collect()
    }
}

//! Host attributes that placement reads: labels and CPU functions. Each
//! request follows the service shape: validate, decide the new record under
//! the lock, commit it on the request lane, then apply it to memory.

use roost_api::agent::Inventory;
use roost_api::apps::Label;
use roost_api::sysinv::CpuModify;
use roost_mtce::Admin;
use roost_store::{HostWrite, StoredHost};

use super::HostService;
use super::cpus::{self, CpuFunctions};
use super::labels::{self, StoredLabel};
use super::records::inventory;
use crate::Error;

/// What placement needs to know of a host's attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostAttributes {
    pub labels: Vec<(String, String)>,
    pub cpu_functions: CpuFunctions,
}

impl HostService {
    /// Decides a new record for one host under the lock, commits it, and
    /// applies it. `decide` returns the new record and a result to hand
    /// back.
    async fn update_record<T>(
        &self,
        ident: &str,
        decide: impl FnOnce(&StoredHost, Option<Admin>) -> Result<(StoredHost, T), Error>,
    ) -> Result<T, Error> {
        let _lane = self.lane.lock().await;
        let (current, updated, out) = {
            let st = self.lock();
            let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
            let admin = st.mtce.status(&h.hostname).map(|s| s.admin);
            let (updated, out) = decide(h, admin)?;
            (h.clone(), updated, out)
        };
        if updated != current {
            self.commit(vec![HostWrite::Fields(updated.clone())])
                .await?;
            self.lock().set_fields(&updated);
        }
        Ok(out)
    }

    /// The labels of a host, with the host's uuid.
    pub fn labels(&self, ident: &str) -> Result<(String, Vec<Label>), Error> {
        let st = self.lock();
        let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
        let list = labels::from_json(&h.labels)
            .iter()
            .map(|l| labels::wire(&h.uuid, l))
            .collect();
        Ok((h.uuid.clone(), list))
    }

    /// One label by its uuid.
    pub fn label(&self, uuid: &str) -> Option<Label> {
        let st = self.lock();
        st.hosts.values().find_map(|h| {
            labels::from_json(&h.labels)
                .iter()
                .find(|l| l.uuid == uuid)
                .map(|l| labels::wire(&h.uuid, l))
        })
    }

    /// Assigns labels to a host; returns the labels assigned.
    pub async fn assign_labels(
        &self,
        ident: &str,
        pairs: Vec<(String, String)>,
        overwrite: bool,
    ) -> Result<Vec<Label>, Error> {
        for (k, v) in &pairs {
            labels::validate(k, v)?;
        }
        let now = self.clock.now();
        self.update_record(ident, |h, _| {
            let current = labels::from_json(&h.labels);
            let mut new_uuid = || uuid::Uuid::new_v4().to_string();
            let (all, assigned) =
                labels::assign(&current, &pairs, overwrite, &h.hostname, &mut new_uuid)?;
            let mut u = h.clone();
            u.labels = labels::to_json(&all);
            u.updated_at = Some(now);
            let out = assigned.iter().map(|l| labels::wire(&h.uuid, l)).collect();
            Ok((u, out))
        })
        .await
    }

    /// Removes a label by its uuid.
    pub async fn remove_label(&self, uuid: &str) -> Result<(), Error> {
        let host = {
            let st = self.lock();
            st.hosts
                .values()
                .find(|h| labels::from_json(&h.labels).iter().any(|l| l.uuid == uuid))
                .map(|h| h.uuid.clone())
        }
        .ok_or_else(|| Error::NotFound(format!("Host label not found: {uuid}")))?;
        let now = self.clock.now();
        self.update_record(&host, |h, _| {
            let mut all: Vec<StoredLabel> = labels::from_json(&h.labels);
            let before = all.len();
            all.retain(|l| l.uuid != uuid);
            if all.len() == before {
                return Err(Error::NotFound(format!("Host label not found: {uuid}")));
            }
            let mut u = h.clone();
            u.labels = labels::to_json(&all);
            u.updated_at = Some(now);
            Ok((u, ()))
        })
        .await
    }

    /// The function of every CPU of a host, with its uuid and inventory.
    pub fn cpu_functions(
        &self,
        ident: &str,
    ) -> Result<
        (
            String,
            Inventory,
            std::collections::BTreeMap<u32, cpus::CpuFunction>,
        ),
        Error,
    > {
        let st = self.lock();
        let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
        let inv = inventory(h);
        let f = CpuFunctions::from_json(&h.cpu_functions).resolve(&inv);
        Ok((h.uuid.clone(), inv, f))
    }

    /// Changes the functions of a locked host's CPUs.
    pub async fn modify_cpus(&self, ident: &str, requests: Vec<CpuModify>) -> Result<(), Error> {
        let now = self.clock.now();
        self.update_record(ident, |h, admin| {
            if admin != Some(Admin::Locked) {
                return Err(Error::Invalid(format!(
                    "Host {} must be locked to change its CPU functions.",
                    h.hostname
                )));
            }
            let inv = inventory(h);
            let current = CpuFunctions::from_json(&h.cpu_functions);
            let next = cpus::modify(&inv, &current, &requests)?;
            let mut u = h.clone();
            u.cpu_functions = next.to_json();
            u.updated_at = Some(now);
            Ok((u, ()))
        })
        .await
    }

    /// Labels and CPU functions of every host, by hostname.
    pub fn attributes(&self) -> std::collections::BTreeMap<String, HostAttributes> {
        let st = self.lock();
        st.hosts
            .values()
            .map(|h| {
                let attrs = HostAttributes {
                    labels: labels::from_json(&h.labels)
                        .into_iter()
                        .map(|l| (l.key, l.value))
                        .collect(),
                    cpu_functions: CpuFunctions::from_json(&h.cpu_functions),
                };
                (h.hostname.clone(), attrs)
            })
            .collect()
    }
}

/// Memory the platform keeps on every host, out of reach of applications.
pub const PLATFORM_MEMORY_MIB: u64 = 1024;

impl HostService {
    /// What the application scheduler needs of every host: maintenance's
    /// states, labels, and resources (inventory minus what the platform
    /// keeps: its CPUs and [`PLATFORM_MEMORY_MIB`]), with the CPU pools.
    /// A degraded host still runs applications; a failed one does not.
    pub fn placement_facts(&self) -> Vec<roost_apps::HostFacts> {
        let st = self.lock();
        st.hosts
            .values()
            .map(|h| {
                let inv = inventory(h);
                let f = CpuFunctions::from_json(&h.cpu_functions);
                let application = f.cpus_of(&inv, cpus::CpuFunction::Application);
                let isolated = f.cpus_of(&inv, cpus::CpuFunction::ApplicationIsolated);
                let (admin, oper, avail) = match st.mtce.status(&h.hostname) {
                    Some(s) => (s.admin.to_string(), s.oper.to_string(), s.avail.to_string()),
                    None => (
                        h.administrative.clone(),
                        h.operational.clone(),
                        h.availability.clone(),
                    ),
                };
                let locked = admin == "locked";
                let failed = avail == "failed";
                roost_apps::HostFacts {
                    name: h.hostname.clone(),
                    schedulable: !locked
                        && oper == "enabled"
                        && matches!(avail.as_str(), "available" | "degraded"),
                    failed,
                    locked,
                    labels: labels::from_json(&h.labels)
                        .into_iter()
                        .map(|l| (l.key, l.value))
                        .collect(),
                    allocatable_cpu_millis: (application.len() + isolated.len()) as u64 * 1000,
                    allocatable_memory_bytes: inv
                        .memory
                        .memtotal_mib
                        .saturating_sub(PLATFORM_MEMORY_MIB)
                        * 1024
                        * 1024,
                    platform_cpus: f.cpus_of(&inv, cpus::CpuFunction::Platform),
                    application_cpus: application,
                    isolated_cpus: isolated,
                }
            })
            .collect()
    }
}

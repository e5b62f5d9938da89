//! What the store keeps of applications and plans, as JSON the server owns.
//! Workload specifications are not stored: they are read again from the
//! package directory a record names, so the package stays the one source.

use roost_apps::{App, AppStatus, HostPlan, PlannedContainer, PlannedReplica, RestartPolicy};
use roost_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One sysinv row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRow {
    pub name: String,
    pub app_version: String,
    pub manifest_name: String,
    pub manifest_file: String,
    pub status: String,
    pub progress: Option<String>,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl StoredRow {
    pub fn of(a: &App) -> StoredRow {
        StoredRow {
            name: a.name.clone(),
            app_version: a.app_version.clone(),
            manifest_name: a.manifest_name.clone(),
            manifest_file: a.manifest_file.clone(),
            status: a.status.as_str().to_string(),
            progress: a.progress.clone(),
            active: a.active,
            created_at: a.created_at.micros(),
            updated_at: a.updated_at.map(Timestamp::micros),
        }
    }

    pub fn domain(&self) -> Result<App, Error> {
        let status = AppStatus::parse(&self.status).ok_or_else(|| {
            Error::Internal(format!(
                "stored application {} has an unknown status {:?}",
                self.name, self.status
            ))
        })?;
        Ok(App {
            name: self.name.clone(),
            app_version: self.app_version.clone(),
            manifest_name: self.manifest_name.clone(),
            manifest_file: self.manifest_file.clone(),
            status,
            progress: self.progress.clone(),
            active: self.active,
            created_at: Timestamp(self.created_at),
            updated_at: self.updated_at.map(Timestamp),
        })
    }
}

/// An application's record: its row, the package directory (relative to
/// the packages directory) of its version, and the previous version kept
/// during and after an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApp {
    pub row: StoredRow,
    pub package: Option<String>,
    #[serde(default)]
    pub inactive: Option<StoredRow>,
    #[serde(default)]
    pub inactive_package: Option<String>,
}

/// The last plan a host was sent: enough to take back where each replica
/// runs, as which incarnation, on which CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlan {
    pub host: String,
    pub generation: u64,
    pub replicas: Vec<StoredReplica>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReplica {
    pub id: String,
    pub app: String,
    pub workload: String,
    pub generation: u64,
    pub containers: Vec<StoredContainer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredContainer {
    pub name: String,
    pub cpuset: Option<Vec<u32>>,
    pub exclusive: bool,
}

impl StoredPlan {
    pub fn of(p: &HostPlan) -> StoredPlan {
        StoredPlan {
            host: p.host.clone(),
            generation: p.generation,
            replicas: p
                .replicas
                .iter()
                .map(|r| StoredReplica {
                    id: r.id.clone(),
                    app: r.app.clone(),
                    workload: r.workload.clone(),
                    generation: r.generation,
                    containers: r
                        .containers
                        .iter()
                        .map(|c| StoredContainer {
                            name: c.container.name.clone(),
                            cpuset: c.cpuset.clone(),
                            exclusive: c.exclusive,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The domain plan, with each container's specification taken from
    /// `spec` (the application's workloads as restored). A replica whose
    /// workload or container is gone keeps an empty container (the domain
    /// drops it and plans the host again).
    pub fn domain(&self, spec: impl Fn(&str, &str) -> Option<roost_apps::Workload>) -> HostPlan {
        HostPlan {
            host: self.host.clone(),
            generation: self.generation,
            replicas: self
                .replicas
                .iter()
                .map(|r| {
                    let w = spec(&r.app, &r.workload);
                    PlannedReplica {
                        id: r.id.clone(),
                        app: r.app.clone(),
                        workload: r.workload.clone(),
                        generation: r.generation,
                        restart_policy: w
                            .as_ref()
                            .map(|w| w.template.restart_policy)
                            .unwrap_or(RestartPolicy::Always),
                        host_network: w.as_ref().is_some_and(|w| w.template.host_network),
                        containers: r
                            .containers
                            .iter()
                            .map(|c| PlannedContainer {
                                container: w
                                    .as_ref()
                                    .and_then(|w| {
                                        w.template.containers.iter().find(|x| x.name == c.name)
                                    })
                                    .cloned()
                                    .unwrap_or_else(|| roost_apps::Container {
                                        name: c.name.clone(),
                                        ..Default::default()
                                    }),
                                cpuset: c.cpuset.clone(),
                                exclusive: c.exclusive,
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

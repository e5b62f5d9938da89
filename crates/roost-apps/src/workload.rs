//! Workloads in domain terms: what the scheduler and the reactions need of
//! an application's manifests (the wire manifest lives in `roost-api`; the
//! server converts). Images, commands, environment, ports and mounts are
//! not decided on here: the server joins them from the stored manifests
//! when it turns a plan into the agent protocol.
//!
//! Replica ids are stable: `<app>/<workload>/<index>` for a Deployment
//! (index 0..replicas) and a Pod (index 0), `<app>/<workload>/<host>` for a
//! DaemonSet (one per matching host).

use std::collections::{BTreeMap, BTreeSet};

use crate::lifecycle::Error;

/// The most replicas one Deployment may ask for.
pub const MAX_REPLICAS: u32 = 1000;

/// Everything of an application that runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSpec {
    pub workloads: Vec<Workload>,
}

/// One Deployment, DaemonSet or Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub kind: WorkloadKind,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment { replicas: u32 },
    DaemonSet,
    Pod,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment { .. } => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Pod => "Pod",
        }
    }
}

/// Kubernetes' restart policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Restart after any exit (with back-off).
    #[default]
    Always,
    /// Restart after a failure; a clean exit (code 0) is final.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }

    /// Whether an exit restarts the replica (`failed`: not a clean exit).
    pub fn restarts(self, failed: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        }
    }
}

/// What every replica of a workload runs, and where it may run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodTemplate {
    pub containers: Vec<Container>,
    /// Host labels that must all be present with these values.
    pub node_selector: BTreeMap<String, String>,
    pub restart_policy: RestartPolicy,
    pub host_network: bool,
}

impl PodTemplate {
    /// The sum of the containers' CPU requests, in millicores.
    pub fn cpu_request_millis(&self) -> u64 {
        self.containers
            .iter()
            .map(|c| c.resources.cpu_request_millis)
            .sum()
    }

    /// The sum of the containers' memory requests, in bytes.
    pub fn memory_request_bytes(&self) -> u64 {
        self.containers
            .iter()
            .map(|c| c.resources.memory_request_bytes)
            .sum()
    }

    /// How many exclusive CPUs the replica needs (the sum over containers).
    pub fn exclusive_cpus(&self) -> u32 {
        self.containers
            .iter()
            .filter_map(|c| c.resources.exclusive_cpus())
            .sum()
    }

    /// Whether any container has a readiness probe.
    pub fn has_readiness(&self) -> bool {
        self.containers.iter().any(|c| c.readiness.is_some())
    }

    /// Whether every selector label is on the host with the same value.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub resources: Resources,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

/// Requests and limits: CPU in millicores, memory in bytes. A missing limit
/// is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request_millis: u64,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
}

impl Resources {
    /// Whole CPUs given to this container alone: Kubernetes' static CPU
    /// manager rule, an integer CPU request equal to its limit.
    pub fn exclusive_cpus(&self) -> Option<u32> {
        let r = self.cpu_request_millis;
        (r > 0 && r.is_multiple_of(1000) && self.cpu_limit_millis == Some(r))
            .then_some((r / 1000) as u32)
    }
}

/// A probe, as data: the agent runs it and reports the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay_secs: u32,
    pub period_secs: u32,
    pub timeout_secs: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl Probe {
    /// Kubernetes' defaults around an action.
    pub fn new(action: ProbeAction) -> Probe {
        Probe {
            action,
            initial_delay_secs: 0,
            period_secs: 10,
            timeout_secs: 1,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    Exec(Vec<String>),
    HttpGet { path: String, port: u16 },
    TcpSocket { port: u16 },
}

/// Why a specification is not valid; the caller adds the application.
struct Reason(String);

/// A name Kubernetes accepts for objects and containers (a DNS-1123 label).
fn check_label(what: &str, name: &str) -> Result<(), Reason> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Reason(format!(
            "{what} name {name:?} must be 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit"
        )))
    }
}

impl AppSpec {
    /// Checks what the domain relies on: unique workload and container
    /// names, at least one container, limits not below requests, replica
    /// counts within [`MAX_REPLICAS`], restart policy `Always` for
    /// Deployments and DaemonSets (as Kubernetes).
    pub fn validate(&self, app: &str) -> Result<(), Error> {
        self.check().map_err(|reason| Error::Invalid {
            app: app.to_string(),
            reason: reason.0,
        })
    }

    fn check(&self) -> Result<(), Reason> {
        let mut names = BTreeSet::new();
        for w in &self.workloads {
            check_label(w.kind.as_str(), &w.name)?;
            if !names.insert(w.name.as_str()) {
                return Err(Reason(format!("two workloads are named {}", w.name)));
            }
            let at = format!("{} {}", w.kind.as_str(), w.name);
            if let WorkloadKind::Deployment { replicas } = w.kind
                && replicas > MAX_REPLICAS
            {
                return Err(Reason(format!(
                    "{at}: {replicas} replicas (at most {MAX_REPLICAS})"
                )));
            }
            if !matches!(w.kind, WorkloadKind::Pod)
                && w.template.restart_policy != RestartPolicy::Always
            {
                return Err(Reason(format!(
                    "{at}: restartPolicy {} (only Always is supported for a {})",
                    w.template.restart_policy.as_str(),
                    w.kind.as_str()
                )));
            }
            if w.template.containers.is_empty() {
                return Err(Reason(format!("{at}: no containers")));
            }
            let mut cnames = BTreeSet::new();
            for c in &w.template.containers {
                check_label("container", &c.name).map_err(|e| Reason(format!("{at}: {}", e.0)))?;
                if !cnames.insert(c.name.as_str()) {
                    return Err(Reason(format!("{at}: two containers are named {}", c.name)));
                }
                let r = &c.resources;
                if r.cpu_limit_millis.is_some_and(|l| l < r.cpu_request_millis) {
                    return Err(Reason(format!(
                        "{at}: container {}: cpu limit below its request",
                        c.name
                    )));
                }
                if r.memory_limit_bytes
                    .is_some_and(|l| l < r.memory_request_bytes)
                {
                    return Err(Reason(format!(
                        "{at}: container {}: memory limit below its request",
                        c.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The id of a Deployment's or Pod's replica.
pub fn replica_id(app: &str, workload: &str, index: u32) -> String {
    format!("{app}/{workload}/{index}")
}

/// The id of a DaemonSet's replica on a host.
pub fn daemon_replica_id(app: &str, workload: &str, host: &str) -> String {
    format!("{app}/{workload}/{host}")
}

/// The replicas a workload asks for whatever the hosts: (id, index) for a
/// Deployment or a Pod; none for a DaemonSet (those follow the hosts).
pub(crate) fn fixed_replicas(app: &str, w: &Workload) -> Vec<String> {
    match w.kind {
        WorkloadKind::Deployment { replicas } => {
            (0..replicas).map(|i| replica_id(app, &w.name, i)).collect()
        }
        WorkloadKind::Pod => vec![replica_id(app, &w.name, 0)],
        WorkloadKind::DaemonSet => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, cpu: u64, limit: Option<u64>) -> Container {
        Container {
            name: name.into(),
            image: "busybox".into(),
            resources: Resources {
                cpu_request_millis: cpu,
                cpu_limit_millis: limit,
                memory_request_bytes: 1 << 20,
                memory_limit_bytes: None,
            },
            liveness: None,
            readiness: None,
        }
    }

    fn deployment(name: &str, replicas: u32) -> Workload {
        Workload {
            name: name.into(),
            kind: WorkloadKind::Deployment { replicas },
            template: PodTemplate {
                containers: vec![container("main", 100, None)],
                ..PodTemplate::default()
            },
        }
    }

    #[test]
    fn whole_cpu_requests_equal_to_their_limit_are_exclusive() {
        assert_eq!(
            container("a", 2000, Some(2000)).resources.exclusive_cpus(),
            Some(2)
        );
        assert_eq!(
            container("a", 1000, Some(2000)).resources.exclusive_cpus(),
            None
        );
        assert_eq!(
            container("a", 1500, Some(1500)).resources.exclusive_cpus(),
            None
        );
        assert_eq!(container("a", 1000, None).resources.exclusive_cpus(), None);
        assert_eq!(container("a", 0, Some(0)).resources.exclusive_cpus(), None);
    }

    #[test]
    fn deployments_expand_to_stable_indexed_ids() {
        assert_eq!(
            fixed_replicas("hello", &deployment("web", 3)),
            vec!["hello/web/0", "hello/web/1", "hello/web/2"]
        );
        assert_eq!(
            daemon_replica_id("hello", "agent", "worker-1"),
            "hello/agent/worker-1"
        );
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let ok = AppSpec {
            workloads: vec![deployment("web", 2)],
        };
        ok.validate("hello").unwrap();
        let dup = AppSpec {
            workloads: vec![deployment("web", 1), deployment("web", 2)],
        };
        assert_eq!(
            dup.validate("hello").unwrap_err().to_string(),
            "invalid application hello: two workloads are named web"
        );
        let mut bad = deployment("web", 1);
        bad.template.containers.push(container("main", 10, None));
        let e = AppSpec {
            workloads: vec![bad],
        }
        .validate("hello")
        .unwrap_err();
        assert!(
            e.to_string().contains("two containers are named main"),
            "{e}"
        );
        let mut bad = deployment("web", 1);
        bad.template.containers[0].resources.cpu_limit_millis = Some(50);
        let e = AppSpec {
            workloads: vec![bad],
        }
        .validate("hello")
        .unwrap_err();
        assert!(e.to_string().contains("cpu limit below its request"), "{e}");
        let mut bad = deployment("web", 1);
        bad.template.restart_policy = RestartPolicy::Never;
        let e = AppSpec {
            workloads: vec![bad],
        }
        .validate("hello")
        .unwrap_err();
        assert!(e.to_string().contains("only Always"), "{e}");
        let e = AppSpec {
            workloads: vec![deployment("Web", 1)],
        }
        .validate("hello")
        .unwrap_err();
        assert!(e.to_string().contains("lower-case"), "{e}");
        let e = AppSpec {
            workloads: vec![deployment("web", MAX_REPLICAS + 1)],
        }
        .validate("hello")
        .unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }
}

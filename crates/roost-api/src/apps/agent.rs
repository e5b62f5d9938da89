//! The agent app protocol: the server gives each host a [`HostPlan`] (what it
//! must run, with a generation so an agent refuses a stale plan), and the
//! agent answers with an [`AgentAppsReport`] (what runs and how it is).
//! Everything in a plan is resolved: environment values taken from
//! ConfigMaps and Secrets, quantities in millicores and bytes, probe ports as
//! numbers, so the agent needs no manifest.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything one host must run. Replicas absent from the plan must not run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    /// Grows with every change of this host's plan; an agent ignores a plan
    /// older than the one it has.
    pub generation: u64,
    pub replicas: Vec<ReplicaSpec>,
}

/// One replica of a workload: a pod's worth of containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSpec {
    /// `<app>/<workload>/<index>` (for a DaemonSet the index is the host name).
    pub id: String,
    pub app: String,
    /// Grows when the replica's spec changes (the agent restarts it then).
    pub generation: u64,
    pub containers: Vec<ContainerSpec>,
    /// `Always`, `OnFailure` or `Never`.
    pub restart_policy: String,
    /// The images the containers need, to import before starting.
    #[serde(default)]
    pub images: Vec<ImageRef>,
}

/// An image of an application package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// The reference the containers use (`registry.local/app:1.0`).
    pub name: String,
    /// The manifest digest (`sha256:...`), checked on import.
    pub digest: String,
    /// Where the agent fetches the OCI archive from: the archive's path in
    /// the package (`images/web.tar`), served by the server under the app.
    pub archive: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    /// The image reference.
    pub image: String,
    /// Its manifest digest (`sha256:...`).
    pub image_digest: String,
    /// Replaces the image's entrypoint when not empty.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's command when not empty.
    #[serde(default)]
    pub args: Vec<String>,
    /// Resolved environment, in manifest order.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub host_network: bool,
    /// The CPUs the container is pinned to: its own cores from the
    /// application-isolated pool when `exclusive`, else the host's shared
    /// application pool; `None` when the host has no application pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<Vec<u32>>,
    /// `cpuset` is this container's alone.
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub cpu_millis_request: u64,
    #[serde(default)]
    pub cpu_millis_limit: Option<u64>,
    #[serde(default)]
    pub memory_request_bytes: u64,
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    #[serde(default)]
    pub liveness: Option<ProbeSpec>,
    #[serde(default)]
    pub readiness: Option<ProbeSpec>,
    /// How the container is confined (the manifest's `securityContext`,
    /// checked against the cloud's policy by the server).
    #[serde(default)]
    pub security: SecuritySpec,
}

/// A container's confinement. The default is the most confined: the
/// default capability set, the default seccomp profile, no new privileges,
/// user 0, a writable root file system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SecuritySpec {
    /// Every capability, no seccomp filter, the host's devices.
    #[serde(default)]
    pub privileged: bool,
    /// Capabilities added to the default set (`CAP_` names, or `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_capabilities: Vec<String>,
    /// Capabilities taken from the default set (`CAP_` names, or `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_capabilities: Vec<String>,
    #[serde(default)]
    pub read_only_root_filesystem: bool,
    /// `noNewPrivileges` off: setuid programs may raise privileges.
    #[serde(default)]
    pub allow_privilege_escalation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub container_port: u16,
    #[serde(default)]
    pub host_port: Option<u16>,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// The path inside the container.
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    pub source: MountSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountSource {
    /// A path on the host. `kind` is Kubernetes' hostPath `type`: `""` (no
    /// check), `Directory` or `File` (must exist), `DirectoryOrCreate` or
    /// `FileOrCreate` (made empty when missing).
    HostPath {
        path: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        kind: String,
    },
    /// A directory private to the replica, removed with it (`memory`: tmpfs).
    /// Mounts naming the same `volume` share one directory (a pod's
    /// emptyDir is shared by its containers).
    EmptyDir {
        #[serde(default)]
        memory: bool,
        #[serde(default)]
        volume: String,
    },
    /// Files made from a ConfigMap or Secret: relative path to content
    /// (base64, so binary Secret values survive JSON), with a file mode.
    Files {
        files: BTreeMap<String, String>,
        mode: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub action: ProbeAction,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProbeAction {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        path: String,
        port: u16,
        #[serde(default)]
        https: bool,
    },
    TcpSocket {
        port: u16,
    },
}

/// A replica's state as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    Pending,
    Starting,
    Running,
    Exited,
    Failed,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub id: String,
    /// The replica generation this report is about.
    pub generation: u64,
    pub state: ReplicaState,
    /// All containers pass their readiness probes (or have none) and run.
    pub ready: bool,
    pub restarts: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub message: Option<String>,
    /// The agent stopped it because a liveness probe failed.
    #[serde(default)]
    pub liveness_failed: bool,
    #[serde(default)]
    pub containers: Vec<ContainerReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub name: String,
    pub state: ReplicaState,
    pub ready: bool,
    pub restarts: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The query of the agent's plan long poll
/// (`GET /v1/agent/apps/plan?generation=N&wait=S`): the server answers at
/// once with a plan newer than `generation`, or after `wait` seconds (at
/// most 60) with the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlanQuery {
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub wait: Option<u64>,
}

/// A request for a container's output on the agent's host, handed out by
/// `GET /v1/agent/apps/log-requests?wait=S` (a long poll). The agent
/// answers with `POST /v1/agent/apps/logs/{id}` bodies of raw output: the
/// tail first, then (with `follow`) new output as it comes, until the
/// server answers 410 (the client left). An empty body with
/// `?end=true` ends the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub id: String,
    /// The container's log id (`roost_runtime::runner::Runner::log_id`).
    pub log_id: String,
    #[serde(default)]
    pub tail: Option<u64>,
    #[serde(default)]
    pub follow: bool,
}

/// `GET /v1/agent/apps/log-requests`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogRequests {
    #[serde(default)]
    pub requests: Vec<LogRequest>,
}

/// What an agent reports about its applications.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentAppsReport {
    pub host: String,
    /// The generation of the plan the agent has carried out (everything
    /// the plan dropped is gone).
    pub plan_generation: u64,
    pub replicas: Vec<ReplicaReport>,
    /// Why this host cannot run containers (containerd missing or
    /// unreachable); the server then places nothing there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_report_round_trip() {
        let plan = HostPlan {
            host: "controller-0".into(),
            generation: 7,
            replicas: vec![ReplicaSpec {
                id: "hello/web/0".into(),
                app: "hello".into(),
                generation: 2,
                containers: vec![ContainerSpec {
                    name: "web".into(),
                    image: "registry.local/web:1".into(),
                    image_digest: "sha256:00".into(),
                    command: vec!["/bin/httpd".into()],
                    args: vec!["-f".into()],
                    env: vec![("A".into(), "1".into())],
                    host_network: true,
                    cpuset: Some(vec![3]),
                    exclusive: true,
                    ports: vec![PortSpec {
                        container_port: 8080,
                        host_port: None,
                        protocol: "TCP".into(),
                    }],
                    cpu_millis_request: 1000,
                    cpu_millis_limit: Some(1000),
                    memory_request_bytes: 1 << 20,
                    memory_limit_bytes: None,
                    mounts: vec![MountSpec {
                        target: "/etc/app".into(),
                        read_only: true,
                        source: MountSource::Files {
                            files: [("a.conf".to_string(), "eA==".to_string())].into(),
                            mode: 0o644,
                        },
                    }],
                    liveness: Some(ProbeSpec {
                        action: ProbeAction::HttpGet {
                            path: "/".into(),
                            port: 8080,
                            https: false,
                        },
                        initial_delay_seconds: 0,
                        period_seconds: 10,
                        timeout_seconds: 1,
                        failure_threshold: 3,
                        success_threshold: 1,
                    }),
                    readiness: None,
                    security: SecuritySpec {
                        drop_capabilities: vec!["ALL".into()],
                        read_only_root_filesystem: true,
                        ..Default::default()
                    },
                }],
                restart_policy: "Always".into(),
                images: vec![ImageRef {
                    name: "registry.local/web:1".into(),
                    digest: "sha256:00".into(),
                    archive: "images/web.tar".into(),
                }],
            }],
        };
        let text = serde_json::to_string(&plan).unwrap();
        assert!(text.contains(r#""type":"http_get""#), "{text}");
        assert_eq!(serde_json::from_str::<HostPlan>(&text).unwrap(), plan);
        assert!(text.contains(r#""drop_capabilities":["ALL"]"#), "{text}");
        // A plan written without `security` (an older server) is confined
        // by default.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["replicas"][0]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("security");
        let older: HostPlan = serde_json::from_value(v).unwrap();
        assert_eq!(
            older.replicas[0].containers[0].security,
            SecuritySpec::default()
        );
        let report = AgentAppsReport {
            host: "controller-0".into(),
            plan_generation: 7,
            replicas: vec![ReplicaReport {
                id: "hello/web/0".into(),
                generation: 2,
                state: ReplicaState::Running,
                ready: true,
                restarts: 1,
                exit_code: None,
                message: None,
                liveness_failed: false,
                containers: vec![],
            }],
            unavailable: None,
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["replicas"][0]["state"], "running");
        assert_eq!(
            serde_json::from_value::<AgentAppsReport>(v).unwrap(),
            report
        );
    }
}

//! OCI runtime spec generation from a [`ContainerConfig`].
//!
//! The spec is a wire format (runc reads it as JSON), so it is built from
//! serde structs carrying exactly the fields Roost sets. Resources are given
//! in the spec's own terms (shares, quota/period, memory limit, cpuset);
//! runc applies them to cgroup v1 or converts them for v2, so nothing here
//! depends on the host's cgroup version. Every container's cgroup is
//! `/roost/<id>` (cgroupfs path), so Roost's containers sit under one parent.
//!
//! Networking: with `host_network` the container shares the host's network
//! and UTS namespaces (and sees its `/etc/hosts` and `/etc/resolv.conf`),
//! which is how Roost serves ports (hostNetwork, hostPort). Without it the
//! container gets a private network namespace with no interface configured
//! (no CNI here): only for workloads that need no network at all. PID, IPC
//! and mount namespaces are always the container's own.
//!
//! Confinement ([`crate::confine`]): the capabilities the container's
//! [`Security`] computes to, the default seccomp profile, no new privileges
//! unless privilege escalation is allowed, the root file system read-only
//! when asked (volumes keep their own mode), `/proc` and `/sys` paths
//! masked or read-only. A privileged container gets every capability, no
//! seccomp filter, the host's `/dev` with every device allowed, and a
//! writable `/sys`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ContainerConfig, Mount, Security, confine};

/// What the image's config contributes when the container does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
}

/// The cgroup parent of every Roost container.
pub const CGROUP_PARENT: &str = "/roost";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    pub hostname: String,
    pub mounts: Vec<SpecMount>,
    pub linux: Linux,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SpecMount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    pub cgroups_path: String,
    pub resources: Resources,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// `None` for a privileged container (and in specs written before
    /// Roost set one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
}

/// A seccomp filter as runc reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    pub architectures: Vec<String>,
    pub syscalls: Vec<SeccompRule>,
}

/// One rule: the action for the named calls, when every argument
/// condition holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompRule {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
}

/// A condition on argument `index`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Resources {
    pub devices: Vec<DeviceRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceRule {
    pub allow: bool,
    pub access: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Cpu {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Memory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// Paths of `/proc` and `/sys` hidden from an unprivileged container.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Paths of `/proc` an unprivileged container may read but not write.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> SpecMount {
    SpecMount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

/// Formats CPUs as a cpuset list: `[1, 2, 3, 7]` gives `1-3,7`.
pub fn cpuset_list(cpus: &[u32]) -> String {
    let mut v: Vec<u32> = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Merges environments: later entries replace earlier ones of the same name.
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for e in base.iter().chain(over) {
        let name = e.split('=').next().unwrap_or_default().to_string();
        if !values.contains_key(&name) {
            order.push(name.clone());
        }
        values.insert(name, e.clone());
    }
    order
        .into_iter()
        .filter_map(|n| values.remove(&n))
        .collect()
}

/// The runtime spec for `c`, with the image's defaults filling what `c`
/// leaves empty.
pub fn generate(c: &ContainerConfig, image: &ImageDefaults) -> Spec {
    let args = if !c.args.is_empty() {
        c.args.clone()
    } else if !c.cmd.is_empty() {
        image.entrypoint.iter().chain(&c.cmd).cloned().collect()
    } else {
        image.entrypoint.iter().chain(&image.cmd).cloned().collect()
    };
    let mut base_env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    base_env.extend(image.env.iter().cloned());
    let env = merge_env(&base_env, &c.env);
    let cwd = c
        .cwd
        .clone()
        .or_else(|| (!image.working_dir.is_empty()).then(|| image.working_dir.clone()))
        .unwrap_or_else(|| "/".into());
    let sec: &Security = &c.security;
    let bounding = if sec.privileged {
        confine::current_bounding_set()
    } else {
        None
    };
    let caps = confine::capabilities(sec, bounding);

    let dev = if sec.privileged {
        // The host's devices, as they are.
        mount("/dev", "bind", "/dev", &["rbind", "rprivate", "rw"])
    } else {
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        dev,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[
                "nosuid",
                "noexec",
                "nodev",
                if sec.privileged { "rw" } else { "ro" },
            ],
        ),
        mount(
            "/run",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
    ];
    let mut namespaces = vec!["pid", "ipc", "mount"];
    if c.host_network {
        // The host's network, names and resolver: what a hostNetwork pod sees.
        for f in ["/etc/hosts", "/etc/resolv.conf"] {
            if std::path::Path::new(f).exists() {
                mounts.push(mount(f, "bind", f, &["rbind", "rprivate", "ro"]));
            }
        }
    } else {
        namespaces.push("network");
        namespaces.push("uts");
    }
    for Mount {
        source,
        destination,
        read_only,
    } in &c.mounts
    {
        mounts.push(mount(
            destination,
            "bind",
            &source.display().to_string(),
            &["rbind", "rprivate", if *read_only { "ro" } else { "rw" }],
        ));
    }

    let cpu = Cpu {
        shares: c.cpu.shares,
        quota: c.cpu.quota_period.map(|q| q.0),
        period: c.cpu.quota_period.map(|q| q.1),
        cpus: c.cpu.cpuset.as_deref().map(cpuset_list),
    };
    let resources = Resources {
        devices: vec![DeviceRule {
            // Every device for a privileged container, none otherwise.
            allow: sec.privileged,
            access: "rwm".into(),
        }],
        cpu: (cpu != Cpu::default()).then_some(cpu),
        memory: c.memory_limit.map(|m| Memory {
            limit: Some(m.min(i64::MAX as u64) as i64),
        }),
    };

    Spec {
        oci_version: "1.0.2-dev".into(),
        process: Process {
            terminal: false,
            user: User {
                uid: sec.run_as_user.unwrap_or(0),
                gid: sec.run_as_group.unwrap_or(0),
            },
            args,
            env,
            cwd,
            capabilities: Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps.clone(),
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: !sec.allow_privilege_escalation && !sec.privileged,
        },
        root: Root {
            path: "rootfs".into(),
            readonly: sec.read_only_root,
        },
        hostname: if c.host_network {
            String::new()
        } else {
            c.id.clone()
        },
        mounts,
        linux: Linux {
            namespaces: namespaces
                .into_iter()
                .map(|k| Namespace { kind: k.into() })
                .collect(),
            cgroups_path: format!("{CGROUP_PARENT}/{}", c.id),
            resources,
            seccomp: (!sec.privileged).then(|| confine::seccomp_profile(&caps)),
            masked_paths: if sec.privileged {
                Vec::new()
            } else {
                MASKED.iter().map(|s| s.to_string()).collect()
            },
            readonly_paths: if sec.privileged {
                Vec::new()
            } else {
                READONLY.iter().map(|s| s.to_string()).collect()
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuLimits;

    #[test]
    fn cpusets_are_ranges() {
        assert_eq!(cpuset_list(&[3, 1, 2, 7]), "1-3,7");
        assert_eq!(cpuset_list(&[1]), "1");
    }

    #[test]
    fn resources_and_namespaces_follow_the_config() {
        let c = ContainerConfig {
            id: "web-0".into(),
            image: "x".into(),
            host_network: true,
            cpu: CpuLimits::from_millis(Some(250), Some(500), Some(vec![1])),
            memory_limit: Some(64 << 20),
            env: vec!["A=2".into()],
            ..Default::default()
        };
        let img = ImageDefaults {
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-c".into(), "true".into()],
            env: vec!["A=1".into(), "B=1".into()],
            working_dir: "/srv".into(),
        };
        let s = generate(&c, &img);
        assert_eq!(s.process.args, ["/bin/sh", "-c", "true"]);
        let with_cmd = ContainerConfig {
            cmd: vec!["-c".into(), "exit 3".into()],
            ..c.clone()
        };
        assert_eq!(
            generate(&with_cmd, &img).process.args,
            ["/bin/sh", "-c", "exit 3"]
        );
        assert!(s.process.env.contains(&"A=2".to_string()));
        assert!(s.process.env.contains(&"B=1".to_string()));
        assert_eq!(s.process.cwd, "/srv");
        assert!(!s.linux.namespaces.iter().any(|n| n.kind == "network"));
        assert_eq!(s.linux.cgroups_path, "/roost/web-0");
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["linux"]["resources"]["cpu"]["cpus"], "1");
        assert_eq!(v["linux"]["resources"]["cpu"]["shares"], 256);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["cgroupsPath"], "/roost/web-0");
    }

    #[test]
    fn every_container_is_confined_by_default() {
        let c = ContainerConfig {
            id: "web-0".into(),
            image: "x".into(),
            ..Default::default()
        };
        let s = generate(&c, &ImageDefaults::default());
        assert_eq!(
            s.process.capabilities.bounding.len(),
            confine::DEFAULT.len()
        );
        assert_eq!(
            s.process.capabilities.effective,
            s.process.capabilities.bounding
        );
        assert!(s.process.no_new_privileges);
        assert!(!s.root.readonly);
        assert_eq!((s.process.user.uid, s.process.user.gid), (0, 0));
        let seccomp = s.linux.seccomp.as_ref().expect("a seccomp profile");
        assert_eq!(seccomp.default_action, "SCMP_ACT_ERRNO");
        assert!(!s.linux.masked_paths.is_empty());
        assert!(!s.linux.readonly_paths.is_empty());
        for own in ["pid", "ipc", "mount"] {
            assert!(s.linux.namespaces.iter().any(|n| n.kind == own), "{own}");
        }
        assert!(!s.linux.resources.devices[0].allow);
        // As runc reads it, and back (exec reuses the stored spec).
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["linux"]["seccomp"]["defaultErrnoRet"], 1);
        assert!(v["linux"]["seccomp"]["syscalls"][0]["names"].is_array());
        assert_eq!(serde_json::from_value::<Spec>(v).unwrap(), s);
    }

    #[test]
    fn the_security_context_changes_capabilities_root_and_user() {
        let c = ContainerConfig {
            id: "web-0".into(),
            image: "x".into(),
            security: Security {
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                read_only_root: true,
                allow_privilege_escalation: true,
                run_as_user: Some(1000),
                run_as_group: Some(100),
                ..Default::default()
            },
            mounts: vec![Mount {
                source: "/tmp/data".into(),
                destination: "/data".into(),
                read_only: false,
            }],
            ..Default::default()
        };
        let s = generate(&c, &ImageDefaults::default());
        assert_eq!(s.process.capabilities.bounding, ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(s.process.capabilities.permitted, ["CAP_NET_BIND_SERVICE"]);
        assert!(s.root.readonly);
        assert!(!s.process.no_new_privileges);
        assert_eq!((s.process.user.uid, s.process.user.gid), (1000, 100));
        assert!(s.linux.seccomp.is_some());
        let data = s.mounts.iter().find(|m| m.destination == "/data").unwrap();
        assert!(data.options.contains(&"rw".to_string()));
    }

    #[test]
    fn a_privileged_container_has_every_capability_and_device_and_no_seccomp() {
        let c = ContainerConfig {
            id: "web-0".into(),
            image: "x".into(),
            security: Security {
                privileged: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let s = generate(&c, &ImageDefaults::default());
        // Every capability this process has.
        let mine = confine::current_bounding_set().unwrap();
        assert_eq!(
            s.process.capabilities.bounding.len(),
            mine.count_ones() as usize
        );
        assert!(s.linux.seccomp.is_none());
        assert!(!s.process.no_new_privileges);
        assert!(s.linux.resources.devices[0].allow);
        assert!(s.linux.masked_paths.is_empty());
        let dev = s.mounts.iter().find(|m| m.destination == "/dev").unwrap();
        assert_eq!((dev.kind.as_str(), dev.source.as_str()), ("bind", "/dev"));
        // The namespaces stay the container's own.
        assert!(s.linux.namespaces.iter().any(|n| n.kind == "pid"));
        let v = serde_json::to_value(&s).unwrap();
        assert!(v["linux"].get("seccomp").is_none());
    }
}

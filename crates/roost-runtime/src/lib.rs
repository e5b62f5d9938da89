//! Running containers on one host through containerd's gRPC API.
//!
//! - [`Containerd`] speaks containerd's API v1 over its unix socket: the
//!   messages are written by hand with prost's derive (module `proto`) and
//!   carried by a small gRPC client on hyper's HTTP/2 client (module `grpc`),
//!   so building needs no `protoc` and no build script. Every call carries the
//!   `containerd-namespace: roost` header: Roost's containers, images,
//!   snapshots and leases live in namespace [`NAMESPACE`] only.
//! - [`Supervised`] starts a private containerd (own root, state, socket and
//!   config under a data directory, CRI and network-facing plugins off) as a
//!   child process, restarts it when it dies and stops it on shutdown or drop.
//!   A host without the `containerd` or `runc` binaries gets
//!   [`Error::NotInstalled`] so the caller can run without applications.
//! - [`oci`] reads, checks and writes OCI image layouts: every digest and size
//!   (index, manifests, configs, layers) is verified before anything reaches
//!   containerd, so a mismatch is refused and leaves nothing behind. It also
//!   builds an image from a directory tree ([`oci::build_image_from_dir`]).
//!   [`Containerd::import_image`] writes the checked blobs to the content
//!   store under a lease, unpacks the layers into snapshots through the diff
//!   service (overlayfs, or native where overlay is not available) and
//!   records the image; [`Containerd::export_image`] writes an image back out
//!   as an OCI layout tar.
//! - [`spec`] generates the OCI runtime spec from a [`ContainerConfig`]
//!   (serde structs, independent of cgroup v1 or v2: runc maps the resources),
//!   confined as [`confine`] describes: capabilities, a seccomp allow-list,
//!   no new privileges, private PID and IPC namespaces.
//! - Task life cycle ([`Runtime`]): start, stop (SIGTERM, SIGKILL after the
//!   grace), wait for the exit status, exec with a timeout (for exec probes),
//!   list, remove (task, container and snapshot: nothing left), and
//!   [`Containerd::reconcile`] to remove everything not wanted after a crash.
//! - Logs ([`logs`]): containerd's shim supports `binary://` log URIs; the shim
//!   starts a logger process that receives the container's stdout and stderr
//!   on fds 3 and 4 and signals readiness on fd 5. Roost uses that: the logger
//!   is Roost's own executable (a hidden subcommand calling
//!   [`logs::run_logger`]), which writes lines into bounded files per
//!   container (rotated at `max_bytes`, `files` kept). The logger is a child of
//!   the shim, not of the agent, so logging continues while the agent
//!   restarts, and no byte is lost to a rotation race (the alternative,
//!   `file://` plus rotation by the agent, would have to truncate a file the
//!   shim holds open).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

mod client;
pub mod confine;
mod grpc;
mod image;
pub use image::pinned_name;
pub mod logs;
pub mod oci;
mod proto;
pub mod runner;
pub mod spec;
mod supervise;
mod task;

pub use client::{ClientOptions, Containerd, SnapshotEntry, Version};
pub use supervise::{Supervised, SupervisorOptions, check_installed};

/// The containerd namespace holding everything Roost creates.
pub const NAMESPACE: &str = "roost";

/// What to install when containerd or runc is missing.
pub const INSTALL_HINT: &str = "install the Debian packages containerd and runc";

/// Errors of the runtime, by kind.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary the runtime needs is missing on this host.
    #[error("{what} is not installed: {INSTALL_HINT}")]
    NotInstalled { what: String },
    /// containerd cannot be reached (not running, socket missing, restarting).
    #[error("containerd unavailable: {0}")]
    Unavailable(String),
    /// The container, task, image or snapshot does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// It exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// An image archive or layout is malformed, or a digest or size does not match.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A request that cannot be carried out as given.
    #[error("invalid: {0}")]
    Invalid(String),
    /// containerd answered with another gRPC error.
    #[error("containerd {call}: {message} (gRPC status {code})")]
    Grpc {
        call: String,
        code: i32,
        message: String,
    },
    /// containerd's reply could not be understood.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Waiting took longer than allowed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// What a caller can do about it.
    pub fn kind(&self) -> roost_types::ErrorKind {
        use roost_types::ErrorKind as K;
        match self {
            Error::NotFound(_) => K::NotFound,
            Error::AlreadyExists(_) => K::Conflict,
            Error::InvalidImage(_) | Error::Invalid(_) => K::Invalid,
            Error::Protocol(_) => K::Corrupt,
            Error::NotInstalled { .. }
            | Error::Unavailable(_)
            | Error::Grpc { .. }
            | Error::Timeout(_)
            | Error::Io { .. } => K::Unavailable,
        }
    }
}

impl Error {
    pub(crate) fn from_grpc(call: &str, code: i32, message: String) -> Error {
        match code {
            5 => Error::NotFound(message),
            6 => Error::AlreadyExists(message),
            14 => Error::Unavailable(message),
            _ => Error::Grpc {
                call: call.to_string(),
                code,
                message,
            },
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed future, so [`Runtime`] stays dyn-compatible.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bind mount into the container (hostPath, ConfigMap, Secret and emptyDir
/// volumes are directories the caller prepared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// CPU limits in cgroup terms; see [`CpuLimits::from_millis`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuLimits {
    /// Relative weight (cgroup v1 `cpu.shares`; runc converts for v2).
    pub shares: Option<u64>,
    /// CFS quota and period in microseconds (`cpu.cfs_quota_us` / `cpu.max`).
    pub quota_period: Option<(i64, u64)>,
    /// CPUs the container is pinned to (cpuset), e.g. exclusive isolated cores.
    pub cpuset: Option<Vec<u32>>,
}

impl CpuLimits {
    /// CFS period used for quotas: 100 ms.
    pub const PERIOD_US: u64 = 100_000;

    /// Kubernetes' mapping: request millicores to shares (1024 per CPU, at
    /// least 2), limit millicores to a quota per 100 ms period.
    pub fn from_millis(request: Option<u64>, limit: Option<u64>, cpuset: Option<Vec<u32>>) -> Self {
        CpuLimits {
            shares: request.map(|m| (m * 1024 / 1000).max(2)),
            quota_period: limit.map(|m| {
                (
                    ((m * Self::PERIOD_US / 1000).max(1000)) as i64,
                    Self::PERIOD_US,
                )
            }),
            cpuset,
        }
    }
}

/// Where a container's output goes: files `<dir>/<id>.log`, rotated at
/// `max_bytes` into `<id>.log.1` .. `<id>.log.<files-1>`, written by the
/// logger executable `logger` run as `logger <subcommand> <spec>` (see [`logs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub files: u32,
    /// The executable the shim starts as the logger (Roost's own binary).
    pub logger: PathBuf,
    /// Its hidden subcommand that calls [`logs::run_logger`].
    pub subcommand: String,
}

/// One container to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// containerd container id: letters, digits and `.`, `_`, `-` between them.
    pub id: String,
    /// Image name in containerd (as returned by [`Runtime::import_image`]).
    pub image: String,
    /// Full argv; empty means the image's entrypoint and cmd.
    pub args: Vec<String>,
    /// When `args` is empty and this is not: replaces the image's cmd, after
    /// the image's entrypoint (Kubernetes' `args` without `command`).
    pub cmd: Vec<String>,
    /// `NAME=value` entries, added after the image's environment.
    pub env: Vec<String>,
    /// Working directory; `None` means the image's, or `/`.
    pub cwd: Option<String>,
    pub mounts: Vec<Mount>,
    /// Share the host's network namespace (the only networking Roost offers).
    pub host_network: bool,
    pub cpu: CpuLimits,
    pub memory_limit: Option<u64>,
    pub labels: BTreeMap<String, String>,
    /// `None`: output is discarded.
    pub log: Option<LogConfig>,
    /// How the container is confined; the default is fully confined.
    pub security: Security,
}

/// How a container is confined (see [`confine`]). The default is the most
/// confined: the default capability set, the default seccomp profile, no
/// new privileges, user 0, the root file system writable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// Every capability, no seccomp filter, the host's devices and a
    /// writable `/sys` (allowed only where the cloud allows it).
    pub privileged: bool,
    /// Capabilities added to the default set (`NET_ADMIN` or
    /// `CAP_NET_ADMIN`; `ALL` adds every one).
    pub add_capabilities: Vec<String>,
    /// Capabilities taken from the default set; `ALL` takes every one.
    pub drop_capabilities: Vec<String>,
    /// The image's root file system is mounted read-only; volumes keep
    /// their own mode.
    pub read_only_root: bool,
    /// Let setuid programs and file capabilities raise privileges
    /// (`noNewPrivileges` off).
    pub allow_privilege_escalation: bool,
    /// The process's user and group ids (root when `None`).
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
}

/// An image recorded in containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub name: String,
    /// Digest of the image's target (its manifest or index).
    pub digest: String,
    pub media_type: String,
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; 128 + n for a process killed by signal n.
    pub code: u32,
    pub exited_at: Option<SystemTime>,
}

/// A task's state as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Created,
    Running,
    Stopped,
    Paused,
    Unknown,
}

/// A container in namespace `roost` and its task, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub task: Option<TaskState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub pid: u32,
    pub status: TaskStatus,
    /// Set when the task has stopped.
    pub exit: Option<ExitStatus>,
}

/// The result of [`Runtime::exec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// `None` when the command timed out (it was killed).
    pub exit_code: Option<u32>,
    pub timed_out: bool,
    /// stdout and stderr together, at most [`ExecOutcome::MAX_OUTPUT`] bytes.
    pub output: Vec<u8>,
}

impl ExecOutcome {
    pub const MAX_OUTPUT: usize = 64 * 1024;

    /// True when the command ran to completion with exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The container runtime of one host, as the agent uses it. Implemented by
/// [`Containerd`] and by the agent simulator.
pub trait Runtime: Send + Sync + 'static {
    /// Imports an OCI image layout (a directory or a tar of one), every
    /// digest checked; containerd keeps each image as `<name>@<digest>`
    /// ([`pinned_name`]), so one name given to different content twice
    /// keeps both.
    fn import_image<'a>(
        &'a self,
        oci_tar_or_dir: &'a Path,
    ) -> BoxFuture<'a, Result<Vec<ImageInfo>>>;
    /// Creates the container (snapshot, container, task) and starts it.
    fn start<'a>(&'a self, c: &'a ContainerConfig) -> BoxFuture<'a, Result<()>>;
    /// SIGTERM, then SIGKILL after `grace`; the exit status, or `None` if no task ran.
    fn stop<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<Option<ExitStatus>>>;
    /// Removes task, container and snapshot (killing a running task): nothing left.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Everything in namespace `roost`.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ContainerState>>>;
    /// Runs `argv` in the running container, killed after `timeout`.
    fn exec<'a>(
        &'a self,
        id: &'a str,
        argv: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutcome>>;
    /// Waits until the container's task exits.
    fn wait_exit<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ExitStatus>>;
    /// Removes an image record; its content and snapshots go once nothing
    /// uses them.
    fn remove_image<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
}

impl Runtime for Containerd {
    fn import_image<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, Result<Vec<ImageInfo>>> {
        Box::pin(Containerd::import_image_pinned(self, path))
    }
    fn start<'a>(&'a self, c: &'a ContainerConfig) -> BoxFuture<'a, Result<()>> {
        Box::pin(Containerd::start(self, c))
    }
    fn stop<'a>(
        &'a self,
        id: &'a str,
        grace: Duration,
    ) -> BoxFuture<'a, Result<Option<ExitStatus>>> {
        Box::pin(Containerd::stop(self, id, grace))
    }
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Containerd::remove(self, id))
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<ContainerState>>> {
        Box::pin(Containerd::list(self))
    }
    fn exec<'a>(
        &'a self,
        id: &'a str,
        argv: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecOutcome>> {
        Box::pin(Containerd::exec(self, id, argv, timeout))
    }
    fn wait_exit<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ExitStatus>> {
        Box::pin(Containerd::wait_exit(self, id))
    }
    fn remove_image<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Containerd::remove_image(self, name))
    }
}

/// Checks a containerd container id: `[A-Za-z0-9]+([._-][A-Za-z0-9]+)*`, at most 76 bytes.
pub fn valid_id(id: &str) -> bool {
    if id.is_empty() || id.len() > 76 {
        return false;
    }
    let b = id.as_bytes();
    let sep = |c: u8| matches!(c, b'.' | b'_' | b'-');
    if sep(b[0]) || sep(b[b.len() - 1]) {
        return false;
    }
    b.iter().all(|c| c.is_ascii_alphanumeric() || sep(*c))
        && !b.windows(2).any(|w| sep(w[0]) && sep(w[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millicores_map_to_shares_and_quota() {
        let c = CpuLimits::from_millis(Some(500), Some(1500), None);
        assert_eq!(c.shares, Some(512));
        assert_eq!(c.quota_period, Some((150_000, 100_000)));
        assert_eq!(CpuLimits::from_millis(Some(1), None, None).shares, Some(2));
    }

    #[test]
    fn ids_follow_containerds_rule() {
        assert!(valid_id("web-0"));
        assert!(valid_id("a.b_c-d"));
        assert!(!valid_id("app/web/0"));
        assert!(!valid_id("-x"));
        assert!(!valid_id("a--b"));
        assert!(!valid_id(""));
    }
}

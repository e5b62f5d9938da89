//! A private containerd, started and supervised as a child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::client::ClientOptions;
use crate::{Containerd, Error, Result};

/// Options of a supervised containerd.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// The `containerd` executable; default: found on `PATH`.
    pub containerd: Option<PathBuf>,
    /// How long to wait for the socket to answer after a start.
    pub start_timeout: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            containerd: None,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// A containerd with its own root, state, socket and config under one
/// directory, run as a child process: restarted when it dies, stopped on
/// [`Supervised::shutdown`] or drop. Containers keep running across a restart
/// of containerd (their shims are separate processes).
///
/// Layout under `dir`: `config.toml`, `containerd.sock` (gRPC),
/// `containerd.sock.ttrpc`, `root/`, `state/`, `runc/` (runc's state),
/// `opt/`, `tmp/` (scratch for imports and exec output), `containerd.log`.
pub struct Supervised {
    dir: PathBuf,
    client: Containerd,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// (how many starts, pid of the current containerd).
    starts: watch::Receiver<(u64, Option<u32>)>,
}

/// Finds an executable on `PATH` (and the sbin directories).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// [`Error::NotInstalled`] naming whichever of `containerd` and `runc` a
/// private containerd would need and this host lacks (found as
/// [`Supervised::start`] looks for them); `None` when both are there.
pub fn check_installed() -> Option<Error> {
    let missing: Vec<&str> = ["containerd", "runc"]
        .into_iter()
        .filter(|b| which(b).is_none())
        .collect();
    (!missing.is_empty()).then(|| Error::NotInstalled {
        what: missing.join(" and "),
    })
}

impl Supervised {
    /// Starts containerd under `dir` and connects to it.
    ///
    /// Errors with [`Error::NotInstalled`] when `containerd` or `runc`
    /// is missing, so the caller can run without applications.
    pub async fn start(dir: &Path, opts: SupervisorOptions) -> Result<Supervised> {
        let containerd = match opts.containerd.clone() {
            Some(p) if p.exists() => p,
            Some(p) => {
                return Err(Error::NotInstalled {
                    what: format!("containerd ({})", p.display()),
                });
            }
            None => which("containerd").ok_or_else(|| Error::NotInstalled {
                what: "containerd".into(),
            })?,
        };
        which("runc").ok_or_else(|| Error::NotInstalled {
            what: "runc".into(),
        })?;
        for sub in ["root", "state", "runc", "opt", "tmp"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(Error::io(format!("create {}", d.display())))?;
        }
        let socket = dir.join("containerd.sock");
        if socket.as_os_str().len() > 100 {
            return Err(Error::Invalid(format!(
                "{}: the path is too long for a unix socket",
                socket.display()
            )));
        }
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml(dir))
            .map_err(Error::io(format!("write {}", config.display())))?;

        let mut child = spawn(&containerd, dir)?;
        if let Err(e) = wait_ready(&socket, &mut child, opts.start_timeout).await {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(Error::Unavailable(format!(
                "{e}; last lines of {}:\n{}",
                dir.join("containerd.log").display(),
                log_tail(dir)
            )));
        }
        let client = Containerd::connect_with(
            &socket,
            ClientOptions {
                runc_root: Some(dir.join("runc")),
                scratch_dir: Some(dir.join("tmp")),
                snapshotter: None,
            },
        )
        .await?;
        let (stop, stop_rx) = watch::channel(false);
        let (starts_tx, starts) = watch::channel((1u64, child.id()));
        let task = tokio::spawn(supervise(
            containerd,
            dir.to_path_buf(),
            child,
            stop_rx,
            starts_tx,
            opts.start_timeout,
        ));
        Ok(Supervised {
            dir: dir.to_path_buf(),
            client,
            stop,
            task: Some(task),
            starts,
        })
    }

    /// The client of this containerd.
    pub fn client(&self) -> &Containerd {
        &self.client
    }

    /// The directory holding everything of this containerd.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// How many times containerd was started (1, plus restarts).
    pub fn starts(&self) -> u64 {
        self.starts.borrow().0
    }

    /// Process id of the containerd running now.
    pub fn pid(&self) -> Option<u32> {
        self.starts.borrow().1
    }

    /// Waits until containerd was started more than `n` times.
    pub async fn wait_started_after(&mut self, n: u64, timeout: Duration) -> Result<u64> {
        let wait = self.starts.wait_for(|s| s.0 > n);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) => Ok(s.0),
            Ok(Err(_)) => Err(Error::Unavailable("supervisor stopped".into())),
            Err(_) => Err(Error::Timeout(format!(
                "containerd was not restarted within {timeout:?}"
            ))),
        }
    }

    /// Stops containerd (SIGTERM, SIGKILL after 10 s) and waits for it.
    /// Containers keep running in their shims; remove them first to leave
    /// nothing behind.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // The supervisor task kills the child when it sees the stop signal;
        // if the runtime is gone, kill_on_drop of the child does it.
        let _ = self.stop.send(true);
    }
}

fn spawn(containerd: &Path, dir: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .map_err(Error::io("open containerd.log"))?;
    let log2 = log.try_clone().map_err(Error::io("containerd.log"))?;
    let _ = std::fs::remove_file(dir.join("containerd.sock"));
    // containerd runs with the usual umask 022 whatever the server's own
    // (0077, for its data directory): the directories it makes for
    // snapshots and bundles must stay readable to containers' own users.
    Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(containerd)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .env("TMPDIR", dir.join("tmp"))
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io(format!("start {}", containerd.display())))
}

/// Waits until the socket answers a version call, or the child exits.
async fn wait_ready(socket: &Path, child: &mut Child, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Unavailable(format!(
                "containerd exited at start ({status})"
            )));
        }
        if socket.exists() {
            let ch = crate::grpc::Channel::new(socket, crate::NAMESPACE);
            let r: Result<crate::proto::VersionResponse> = ch
                .unary(
                    "/containerd.services.version.v1.Version/Version",
                    &crate::proto::Empty {},
                    None,
                )
                .await;
            if r.is_ok() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "containerd did not answer on {} within {timeout:?}",
                socket.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn supervise(
    containerd: PathBuf,
    dir: PathBuf,
    mut child: Child,
    mut stop: watch::Receiver<bool>,
    starts: watch::Sender<(u64, Option<u32>)>,
    start_timeout: Duration,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => {
                terminate(&mut child).await;
                return;
            }
            status = child.wait() => {
                tracing::warn!(?status, dir = %dir.display(), "containerd exited; restarting");
            }
        }
        // Restart with a growing pause, unless asked to stop meanwhile.
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
            match spawn(&containerd, &dir) {
                Ok(mut c) => {
                    let socket = dir.join("containerd.sock");
                    match wait_ready(&socket, &mut c, start_timeout).await {
                        Ok(()) => {
                            let pid = c.id();
                            child = c;
                            backoff = Duration::from_millis(200);
                            starts.send_modify(|s| *s = (s.0 + 1, pid));
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "containerd restart failed");
                            terminate(&mut c).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "containerd restart failed"),
            }
        }
    }
}

/// Resolves once a stop was asked for (or the owner is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        let asked = *stop.borrow_and_update();
        if asked || stop.changed().await.is_err() {
            return;
        }
    }
}

/// SIGTERM, then SIGKILL after 10 s.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id()
        && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// containerd's config: everything under `dir`, the CRI plugin and the
/// network-facing or unused plugins disabled, no debug or metrics listener.
fn config_toml(dir: &Path) -> String {
    let d = dir.display().to_string();
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    format!(
        "version = 2\n\
         root = {root}\n\
         state = {state}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.snapshotter.v1.aufs\", \
         \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
         \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.tracing.processor.v1.otlp\", \
         \"io.containerd.internal.v1.tracing\"]\n\
         \n\
         [grpc]\n  address = {sock}\n\
         \n\
         [ttrpc]\n  address = {ttrpc}\n\
         \n\
         [debug]\n  address = \"\"\n  level = \"info\"\n\
         \n\
         [metrics]\n  address = \"\"\n\
         \n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt}\n",
        root = q(&format!("{d}/root")),
        state = q(&format!("{d}/state")),
        sock = q(&format!("{d}/containerd.sock")),
        ttrpc = q(&format!("{d}/containerd.sock.ttrpc")),
        opt = q(&format!("{d}/opt")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_under_the_directory() {
        let c = config_toml(Path::new("/data/ctr"));
        assert!(c.contains("root = \"/data/ctr/root\""));
        assert!(c.contains("address = \"/data/ctr/containerd.sock\""));
        assert!(c.contains("io.containerd.grpc.v1.cri"));
    }
}

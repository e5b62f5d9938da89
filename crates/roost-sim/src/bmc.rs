//! A Redfish BMC simulator that really powers a process off and on.
//!
//! [`Bmc::start`] binds an HTTP listener that serves a minimal but
//! schema-correct subset of DMTF Redfish:
//!
//! | Method | Path | Auth |
//! |---|---|---|
//! | GET | `/redfish` (version object) | no |
//! | GET | `/redfish/v1` (`ServiceRoot`) | no |
//! | GET | `/redfish/v1/Systems` (`ComputerSystemCollection`) | Basic |
//! | GET | `/redfish/v1/Systems/{id}` (`ComputerSystem`) | Basic |
//! | POST | `/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset` | Basic |
//!
//! A trailing slash is accepted on every path. Every other path under
//! `/redfish/v1/` also requires authentication first (401), then answers 404.
//!
//! # The host
//!
//! The simulated machine's operating system is [`BmcConfig::command`]. While
//! the system is powered on that command runs as a child process in its own
//! process group; the whole group is "the host", so signals go to the group
//! and powering off also kills anything the command started.
//!
//! | `ResetType` | Effect | Final `PowerState` |
//! |---|---|---|
//! | `On` | start the host after [`BmcConfig::boot_delay`]; **200** no-op if already On | On |
//! | `ForceOff` | SIGKILL | Off |
//! | `GracefulShutdown` | SIGTERM, wait up to 5 s, then SIGKILL | Off |
//! | `ForceRestart`, `PowerCycle` | SIGKILL, start again after `boot_delay` | On |
//! | `GracefulRestart` | SIGTERM (up to 5 s, then SIGKILL), start again after `boot_delay` | On |
//!
//! Successful actions answer 204 No Content (except the `On` no-op: 200).
//! `ForceOff` and `GracefulShutdown` on a system that is already Off are
//! no-ops (204); the restart types on a system that is Off power it on.
//! Every accepted reset request (2xx) counts in [`Bmc::resets`].
//! A reset answers once the old host is dead; the new host is started in the
//! background when `boot_delay` is non-zero (during the delay `PowerState` is
//! already `On` and [`Bmc::child_pid`] is `None`). A boot still waiting when
//! the system is powered off or reset is dropped and counts in
//! [`Bmc::cancelled_boots`].
//!
//! # When the host exits by itself
//!
//! The machine stays powered on: `PowerState` keeps reporting `On` (the
//! machine is on, its OS crashed or hung) and the BMC does **not** restart
//! the host. Something must reset it, exactly like real hardware — this is
//! what lets tests exercise maintenance recovery (kill the agent with
//! `kill -9`, watch Roost notice and power-cycle the host through Redfish).
//!
//! The one exception is exit code [`REBOOT_EXIT_CODE`] (194) meaning
//! "reboot requested": the BMC then simulates a warm reboot by starting the
//! host again after `boot_delay`. The Roost agent's simulated reboot exits
//! with 194. A reboot is not a reset action and does not count in
//! [`Bmc::resets`]; it does count in [`Bmc::boots`]. When the host process
//! exits for any reason, the rest of its process group is killed.
//!
//! # Other behaviour
//!
//! - HTTP Basic authentication ([`BmcConfig::username`] and
//!   [`BmcConfig::password`]) is required on every `/redfish/v1/*` path except
//!   the service root; failures answer 401 with
//!   `WWW-Authenticate: Basic realm="roost-bmc"`.
//! - [`Bmc::set_refusing`] makes every request (even the service root)
//!   answer 503, to simulate an unreachable or wedged BMC.
//! - Errors use the Redfish error body
//!   `{"error": {"code": "Base.1.0.…", "message": "…", "@Message.ExtendedInfo": […]}}`.
//!   An unknown `ResetType` is 400 `Base.1.0.PropertyValueNotInList`, an
//!   unknown system id is 404.
//! - The host's stdin is `/dev/null`; its stdout and stderr are appended to
//!   [`BmcConfig::log_file`] (or discarded without one). The BMC also appends
//!   a `roost-bmc: …` line there for each start, exit and failed start.

mod cli;
mod http;

pub use cli::{BmcArgs, run_bmc_cli};

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Context as _, Error, Result};

/// Exit code with which the host asks for a reboot: when the host process
/// exits with it while the system is On, the BMC starts it again after
/// [`BmcConfig::boot_delay`]. Any other exit leaves the system On with no
/// host running until a reset.
pub const REBOOT_EXIT_CODE: i32 = 194;

/// How long `GracefulShutdown` and `GracefulRestart` wait after SIGTERM
/// before falling back to SIGKILL.
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(5);

/// Configuration of a simulated BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcConfig {
    /// Address to listen on; port 0 picks a free port (see [`Bmc::addr`]).
    pub listen: SocketAddr,
    /// HTTP Basic user name required on `/redfish/v1/*`.
    pub username: String,
    /// HTTP Basic password required on `/redfish/v1/*`.
    pub password: String,
    /// The single system's id, e.g. `"1"` (`/redfish/v1/Systems/1`).
    pub system_id: String,
    /// The host: program and arguments run while powered on.
    pub command: Vec<String>,
    /// Extra environment for the host (added to the BMC's own environment).
    pub env: Vec<(String, String)>,
    /// The host's stdout and stderr are appended here; discarded if `None`.
    pub log_file: Option<PathBuf>,
    /// Delay between power-on and starting the host (simulated POST).
    pub boot_delay: Duration,
    /// Power the system on (and start the host) when the BMC starts.
    pub power_on_at_start: bool,
}

impl Default for BmcConfig {
    /// Listens on `127.0.0.1:0` as `admin`/`admin`, system id `"1"`, no
    /// command (set one: [`Bmc::start`] refuses an empty command), no boot
    /// delay, powered on at start.
    fn default() -> Self {
        BmcConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            username: "admin".to_owned(),
            password: "admin".to_owned(),
            system_id: "1".to_owned(),
            command: Vec::new(),
            env: Vec::new(),
            log_file: None,
            boot_delay: Duration::ZERO,
            power_on_at_start: true,
        }
    }
}

/// Redfish `PowerState` of the simulated system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PowerState {
    On,
    Off,
}

impl PowerState {
    /// The Redfish spelling, `"On"` or `"Off"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "On",
            PowerState::Off => "Off",
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Redfish `ResetType` values this BMC supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    PowerCycle,
}

impl ResetType {
    /// All supported values, in the order advertised in
    /// `ResetType@Redfish.AllowableValues`.
    pub const ALL: [ResetType; 6] = [
        ResetType::On,
        ResetType::ForceOff,
        ResetType::GracefulShutdown,
        ResetType::GracefulRestart,
        ResetType::ForceRestart,
        ResetType::PowerCycle,
    ];

    /// The Redfish spelling, e.g. `"ForceRestart"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::PowerCycle => "PowerCycle",
        }
    }
}

impl fmt::Display for ResetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResetType {
    type Err = Error;

    /// Parses the exact (case-sensitive) Redfish spelling.
    fn from_str(s: &str) -> Result<Self> {
        ResetType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::Invalid(format!("unsupported ResetType {s:?}")))
    }
}

/// What a reset did, for the HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetOutcome {
    /// The action was performed (204).
    Done,
    /// `On` while already On: nothing to do (200).
    AlreadyOn,
}

/// A running simulated BMC. Dropping it without [`Bmc::shutdown`] stops the
/// listener and kills the host on a best-effort basis.
pub struct Bmc {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl fmt::Debug for Bmc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bmc")
            .field("addr", &self.addr)
            .field("system_id", &self.shared.system_id)
            .field("power_state", &self.power_state())
            .field("child_pid", &self.child_pid())
            .finish_non_exhaustive()
    }
}

impl Bmc {
    /// Binds the listener, powers the system on if
    /// [`BmcConfig::power_on_at_start`], and starts serving Redfish.
    ///
    /// Fails if the command is empty, the system id is unusable, the address
    /// cannot be bound, or (with no boot delay) the host cannot be spawned.
    pub async fn start(cfg: BmcConfig) -> Result<Bmc> {
        if cfg.command.is_empty() || cfg.command[0].is_empty() {
            return Err(Error::Invalid("BMC host command is empty".into()));
        }
        if cfg.system_id.is_empty() || cfg.system_id.contains(['/', '?', '#']) {
            return Err(Error::Invalid(format!(
                "invalid system id {:?}",
                cfg.system_id
            )));
        }
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("binding BMC listener on {}", cfg.listen))?;
        let addr = listener.local_addr().context("BMC listener address")?;

        let shared = Arc::new(Shared {
            system_id: cfg.system_id,
            username: cfg.username,
            password: cfg.password,
            command: cfg.command,
            env: cfg.env,
            log_file: cfg.log_file,
            boot_delay: cfg.boot_delay,
            power: Mutex::new(Power {
                state: PowerState::Off,
                generation: 0,
                host: None,
            }),
            ops: tokio::sync::Mutex::new(()),
            resets: AtomicU32::new(0),
            boots: AtomicU32::new(0),
            cancelled_boots: AtomicU32::new(0),
            refusing: AtomicBool::new(false),
        });
        if cfg.power_on_at_start {
            let generation = {
                let mut power = shared.power();
                power.state = PowerState::On;
                power.generation += 1;
                power.generation
            };
            shared.boot(generation)?;
        }

        let app = http::router(shared.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "BMC HTTP server failed");
            }
        });
        tracing::info!(%addr, "simulated BMC listening");
        Ok(Bmc {
            shared,
            addr,
            stop: Some(stop_tx),
            server: Some(server),
        })
    }

    /// Base URL, `http://IP:PORT` (a wildcard listen address is reported as
    /// the loopback address of the same family).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}")
    }

    /// The bound listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The system id, as in `/redfish/v1/Systems/{id}`.
    pub fn system_id(&self) -> &str {
        &self.shared.system_id
    }

    /// The system's power state.
    pub fn power_state(&self) -> PowerState {
        self.shared.power().state
    }

    /// Pid of the running host process (also its process group id), if any.
    /// `None` while Off, during the boot delay, and after the host exited by
    /// itself.
    pub fn child_pid(&self) -> Option<u32> {
        self.shared.power().host.as_ref().map(|h| h.pid)
    }

    /// Number of reset actions accepted (2xx), over HTTP or [`Bmc::reset`].
    pub fn resets(&self) -> u32 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// Number of times the host process was started (power-ons, restarts and
    /// reboots requested with [`REBOOT_EXIT_CODE`]).
    pub fn boots(&self) -> u32 {
        self.shared.boots.load(Ordering::SeqCst)
    }

    /// Number of boots dropped because the system was powered off or reset
    /// after they were asked for (during the boot delay), counted when the
    /// boot was due.
    pub fn cancelled_boots(&self) -> u32 {
        self.shared.cancelled_boots.load(Ordering::SeqCst)
    }

    /// While `true`, every request answers 503 Service Unavailable.
    pub fn set_refusing(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::SeqCst);
    }

    /// Whether the BMC is refusing requests (see [`Bmc::set_refusing`]).
    pub fn is_refusing(&self) -> bool {
        self.shared.refusing.load(Ordering::SeqCst)
    }

    /// Performs a reset action directly, exactly as the Redfish `Reset`
    /// action does (and counting in [`Bmc::resets`]).
    pub async fn reset(&self, reset_type: ResetType) {
        self.shared.reset(reset_type).await;
    }

    /// Stops serving, then kills the host (SIGKILL to its process group)
    /// and waits for it to be gone.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
        let _ops = self.shared.ops.lock().await;
        let host = {
            let mut power = self.shared.power();
            power.generation += 1;
            power.state = PowerState::Off;
            power.host.take()
        };
        if let Some(host) = host {
            host.stop(false).await;
        }
        tracing::info!(addr = %self.addr, "simulated BMC stopped");
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        let host = {
            let mut power = self.shared.power();
            power.generation += 1;
            power.state = PowerState::Off;
            power.host.take()
        };
        // The reaper kills the group; if the runtime is gone, the child's
        // kill_on_drop still sends SIGKILL.
        if let Some(mut host) = host
            && let Some(kill) = host.kill.take()
        {
            let _ = kill.send(());
        }
    }
}

/// State shared by the HTTP handlers, the reapers and [`Bmc`].
pub(crate) struct Shared {
    pub(crate) system_id: String,
    pub(crate) username: String,
    pub(crate) password: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
    log_file: Option<PathBuf>,
    boot_delay: Duration,
    power: Mutex<Power>,
    /// Serializes reset actions (held across the whole action).
    ops: tokio::sync::Mutex<()>,
    resets: AtomicU32,
    boots: AtomicU32,
    cancelled_boots: AtomicU32,
    pub(crate) refusing: AtomicBool,
}

struct Power {
    state: PowerState,
    /// Bumped by every power transition. A pending boot or a reboot request
    /// only takes effect if the generation it was made in is still current.
    generation: u64,
    host: Option<Host>,
}

/// A running host process, owned by its reaper task.
struct Host {
    pid: u32,
    /// Asks the reaper to SIGKILL the process group.
    kill: Option<oneshot::Sender<()>>,
    /// Finishes once the process has exited and been reaped.
    reaper: JoinHandle<()>,
}

impl Host {
    /// Stops the host: SIGTERM first (and up to [`GRACEFUL_TIMEOUT`]) if
    /// `graceful`, then SIGKILL. Returns once the process is reaped.
    async fn stop(mut self, graceful: bool) {
        if graceful {
            signal_group(self.pid, "TERM").await;
            if tokio::time::timeout(GRACEFUL_TIMEOUT, &mut self.reaper)
                .await
                .is_ok()
            {
                return;
            }
            tracing::info!(pid = self.pid, "host ignored SIGTERM; sending SIGKILL");
        }
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        let _ = self.reaper.await;
    }
}

impl Shared {
    pub(crate) fn power_state(&self) -> PowerState {
        self.power().state
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.power.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Performs a reset action. Serialized with other actions.
    pub(crate) async fn reset(self: &Arc<Self>, reset_type: ResetType) -> ResetOutcome {
        let _ops = self.ops.lock().await;
        self.resets.fetch_add(1, Ordering::SeqCst);
        tracing::info!(system = %self.system_id, %reset_type, "BMC reset action");
        let (generation, host) = {
            let mut power = self.power();
            if reset_type == ResetType::On && power.state == PowerState::On {
                return ResetOutcome::AlreadyOn;
            }
            power.generation += 1;
            (power.generation, power.host.take())
        };
        let graceful = matches!(
            reset_type,
            ResetType::GracefulShutdown | ResetType::GracefulRestart
        );
        if let Some(host) = host {
            host.stop(graceful).await;
        }
        let power_on = !matches!(
            reset_type,
            ResetType::ForceOff | ResetType::GracefulShutdown
        );
        {
            let mut power = self.power();
            if power.generation != generation {
                // Only `Bmc::shutdown`/drop bump the generation outside the
                // ops lock; they win.
                return ResetOutcome::Done;
            }
            power.state = if power_on {
                PowerState::On
            } else {
                PowerState::Off
            };
        }
        if power_on && let Err(e) = self.boot(generation) {
            // The machine is on; its OS failed to start. Logged by `boot`.
            tracing::debug!(error = %e, "host failed to boot");
        }
        ResetOutcome::Done
    }

    /// Starts the host after the boot delay, if `generation` is still
    /// current then. With no delay the host is started before returning.
    fn boot(self: &Arc<Self>, generation: u64) -> Result<()> {
        if self.boot_delay.is_zero() {
            return self.start_host(generation);
        }
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared.boot_delay).await;
            // Errors are logged by start_host.
            let _ = shared.start_host(generation);
        });
        Ok(())
    }

    /// Spawns the host process if the system is On in `generation` and no
    /// host is running. A boot from an older generation is dropped.
    fn start_host(self: &Arc<Self>, generation: u64) -> Result<()> {
        let mut power = self.power();
        if power.state != PowerState::On || power.generation != generation {
            drop(power);
            self.cancelled_boots.fetch_add(1, Ordering::SeqCst);
            self.log("boot cancelled: powered off or reset since it was asked for");
            return Ok(());
        }
        if power.host.is_some() {
            return Ok(());
        }
        let child = match self.spawn_host() {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(error = %e.chain(), "BMC could not start the host");
                self.log(&format!("failed to start host: {}", e.chain()));
                return Err(e);
            }
        };
        let Some(pid) = child.id() else {
            return Err(Error::Invalid("host process has no pid".into()));
        };
        let boot = self.boots.fetch_add(1, Ordering::SeqCst) + 1;
        self.log(&format!("host started, pid {pid}, boot {boot}"));
        tracing::info!(pid, boot, "BMC started the host");
        let (kill_tx, kill_rx) = oneshot::channel();
        let reaper = tokio::spawn(reap(self.clone(), child, pid, generation, kill_rx));
        power.host = Some(Host {
            pid,
            kill: Some(kill_tx),
            reaper,
        });
        Ok(())
    }

    fn spawn_host(&self) -> Result<Child> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| Error::Invalid("BMC host command is empty".into()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        match &self.log_file {
            Some(path) => {
                let out = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening host log {}", path.display()))?;
                let err = out.try_clone().context("duplicating host log handle")?;
                cmd.stdout(out).stderr(err);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        cmd.spawn()
            .with_context(|| format!("spawning host command {:?}", self.command))
    }

    /// Appends a `roost-bmc:` line to the host log, if any (best effort).
    fn log(&self, line: &str) {
        if let Some(path) = &self.log_file
            && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path)
        {
            let _ = writeln!(f, "roost-bmc: {line}");
        }
    }
}

/// Owns a host process: waits for it to exit (or kills it on request),
/// cleans up its process group and applies the exit conventions.
async fn reap(
    shared: Arc<Shared>,
    mut child: Child,
    pid: u32,
    generation: u64,
    mut kill_rx: oneshot::Receiver<()>,
) {
    let (status, killed) = tokio::select! {
        status = child.wait() => (status, false),
        Ok(()) = &mut kill_rx => {
            signal_group(pid, "KILL").await;
            let _ = child.start_kill();
            (child.wait().await, true)
        }
    };
    // Whatever the leader left behind in its process group goes with it.
    signal_group(pid, "KILL").await;

    let code = status.as_ref().ok().and_then(ExitStatus::code);
    let how = match &status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    };
    let reboot = {
        let mut power = shared.power();
        if power.host.as_ref().is_some_and(|h| h.pid == pid) {
            power.host = None;
        }
        !killed
            && code == Some(REBOOT_EXIT_CODE)
            && power.state == PowerState::On
            && power.generation == generation
    };
    if killed {
        shared.log(&format!("host pid {pid} killed ({how})"));
    } else if reboot {
        shared.log(&format!("host pid {pid} requested a reboot ({how})"));
        tracing::info!(pid, "host requested a reboot");
        let _ = shared.boot(generation);
    } else {
        shared.log(&format!(
            "host pid {pid} exited ({how}); staying powered on"
        ));
        tracing::info!(pid, %how, "host exited by itself; system stays On");
    }
}

/// Sends `signal` (a name such as `TERM`) to the process group `pgid` with
/// the `kill` program. Best effort: a vanished group is not an error.
async fn signal_group(pgid: u32, signal: &str) {
    let result = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, pgid, signal, "could not run kill");
    }
}

//! `roost agent`: the per-host agent. It enrolls with the server once (with
//! a join token), then answers the server's heartbeat pulses, reports the
//! host's inventory, resource alarms and monitored processes, and reboots
//! the host when the server asks.
//!
//! Files: `<data-dir>/identity.json` ([`identity::Identity`]) and, with
//! `--process-dir`, one TOML file per monitored process ([`process`]).
#![forbid(unsafe_code)]

pub mod apps;
pub mod attest;
pub mod client;
pub mod error;
pub mod heartbeat;
pub mod identity;
pub mod inventory;
pub mod process;
pub use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roost_api::agent::Inventory;
use roost_api::sysinv::{AgentAlarm, AgentReport, ProcessState, ReportReply};
use roost_inventory::sampling;
use roost_mtce::process::{ProcessAction, ProcessMonitor};
use roost_mtce::{AlarmDecision, MonitorSettings, Resource, ResourceMonitor};
use roost_types::{Severity, Timestamp};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::client::{Client, ClientCert};
use crate::heartbeat::{HealthState, RebootRequest, Responder};
use crate::identity::Identity;
use crate::process::ProcessConfig;
use roost_api::heartbeat::HostKey;

pub use crate::error::{Error, ErrorKind, error_line};
pub use crate::heartbeat::FLAG_REBOOT;

use crate::error::Context;

/// Exit code of a simulated reboot (`--simulated-reboot`), which the BMC
/// simulator treats as a reboot of the host.
pub const SIMULATED_REBOOT_EXIT: i32 = 194;

/// How often the inventory is read to look for changes.
const INVENTORY_CHECK: Duration = Duration::from_secs(5);
/// Least time between two reports of inventory changes.
const INVENTORY_CHANGE_MIN_GAP: Duration = Duration::from_secs(30);
/// How often monitored processes are checked.
const PROCESS_CHECK: Duration = Duration::from_secs(1);
/// How long the agent waits after answering a reboot request before it
/// goes down (so that the answer leaves).
const REBOOT_DELAY: Duration = Duration::from_millis(200);
/// How long start-up waits for the first report before saying it is ready.
const FIRST_REPORT_WAIT: Duration = Duration::from_secs(10);

/// `roost agent` options.
#[derive(clap::Args, Clone)]
pub struct AgentArgs {
    /// The server's URL, e.g. http://192.168.204.2:6385 (remembered after enrollment); ROOST_URL as for the CLI, or ROOST_SERVER
    #[arg(long, env = "ROOST_URL")]
    pub server: Option<String>,
    /// One-time join token from the server (needed only for the first start)
    #[arg(long, env = "ROOST_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Directory holding the agent's identity
    #[arg(
        long,
        env = "ROOST_AGENT_DATA_DIR",
        default_value = "./roost-agent-data"
    )]
    pub data_dir: PathBuf,
    /// UDP address to answer heartbeats on (0.0.0.0:PORT for every address) [default: the management address (--mgmt-ip, else this host's address towards the server) and --heartbeat-port]
    #[arg(long)]
    pub heartbeat_listen: Option<SocketAddr>,
    /// Port of the default heartbeat address (0 picks a free port)
    #[arg(long, default_value_t = 2103)]
    pub heartbeat_port: u16,
    /// Management address the server should send heartbeats to [default: the address enrollment came from]
    #[arg(long)]
    pub mgmt_ip: Option<IpAddr>,
    /// UDP address to answer heartbeats on for the cluster-host network (optional second network)
    #[arg(long, requires = "cluster_ip")]
    pub cluster_heartbeat_listen: Option<SocketAddr>,
    /// This host's address on the cluster-host network
    #[arg(long, requires = "cluster_heartbeat_listen")]
    pub cluster_ip: Option<IpAddr>,
    /// Seconds between reports to the server when nothing changes
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub report_interval_secs: u64,
    /// Seconds between samples of CPU, memory and filesystem use
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub monitor_interval_secs: u64,
    /// Directory of *.toml files, one per monitored process
    #[arg(long)]
    pub process_dir: Option<PathBuf>,
    /// Command (run with sh -c) that reboots this host when the server asks
    #[arg(long, default_value = "systemctl reboot")]
    pub reboot_command: String,
    /// Instead of rebooting, exit with code 194 (for the BMC simulator)
    #[arg(long)]
    pub simulated_reboot: bool,
    /// https server: trust only the CA certificate(s) in this PEM file (the
    /// cloud's <data_dir>/tls/ca-bundle.crt) [default: the system's roots]
    #[arg(long, env = "ROOST_CACERT", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Log filter, e.g. info or info,roost_agent=debug
    #[arg(long, env = "ROOST_LOG", default_value = "info")]
    pub log_level: String,
    /// Log format: text, or json (one object per line), as the server's [log] format
    #[arg(long, env = "ROOST_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// containerd's socket [default: a private containerd under the data directory, started when an application is placed here]
    #[arg(long, env = "ROOST_CONTAINERD_SOCKET")]
    pub containerd_socket: Option<PathBuf>,
    /// Run no applications on this host
    #[arg(long)]
    pub no_apps: bool,
    /// Stop this host's applications after this many milliseconds without a heartbeat (keep it below the server's heartbeat period × failure threshold, 1000 ms by default)
    #[arg(long, default_value_t = 700, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub fence_after_ms: u64,
    /// This host's TPM 2.0, by TCTI (device:/dev/tpmrm0, or swtpm:host=127.0.0.1,port=2321): enroll with an attestation key made in it and prove the host's measurements with quotes [needs the cargo feature "tpm"]
    #[arg(long, env = "ROOST_TPM", value_name = "TCTI")]
    pub tpm: Option<String>,
    /// PCRs quoted at enrollment (later quotes cover those the server asks for)
    #[arg(long, default_value = "0-7", value_parser = attest::parse_pcrs)]
    pub tpm_pcrs: std::vec::Vec<u8>,
    /// After a deploy switched the agent to a new roost binary: how long the
    /// new one has to pass the release's health check and reach the server
    /// before it rolls back to the previous one
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub software_trial_secs: u64,
}

impl fmt::Debug for AgentArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentArgs")
            .field("server", &self.server)
            .field("join_token", &self.join_token.as_ref().map(|_| "<hidden>"))
            .field("data_dir", &self.data_dir)
            .field("heartbeat_listen", &self.heartbeat_listen)
            .field("heartbeat_port", &self.heartbeat_port)
            .field("mgmt_ip", &self.mgmt_ip)
            .field("cluster_heartbeat_listen", &self.cluster_heartbeat_listen)
            .field("cluster_ip", &self.cluster_ip)
            .field("report_interval_secs", &self.report_interval_secs)
            .field("monitor_interval_secs", &self.monitor_interval_secs)
            .field("process_dir", &self.process_dir)
            .field("reboot_command", &self.reboot_command)
            .field("simulated_reboot", &self.simulated_reboot)
            .field("software_trial_secs", &self.software_trial_secs)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("containerd_socket", &self.containerd_socket)
            .field("no_apps", &self.no_apps)
            .field("fence_after_ms", &self.fence_after_ms)
            .field("tpm", &self.tpm)
            .field("tpm_pcrs", &self.tpm_pcrs)
            .finish()
    }
}

/// Everything for a binary's `agent` verb: sets up logging (to stderr) and
/// a runtime, runs the agent, prints a failure as `roost agent: ...` on
/// stderr. Exit code 0 after SIGTERM or SIGINT, 1 on failure, 2 for an
/// invalid log filter (and 194 from a simulated reboot).
pub fn main(args: AgentArgs) -> ExitCode {
    if let Err(e) = init_logging(&args.log_level, args.log_format == "json") {
        eprintln!("roost agent: {}", error_line(&e));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("roost agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost agent: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Installs a stderr log subscriber with this filter (`info`,
/// `info,roost_agent=debug`, ...), in text or JSON lines. Does nothing if
/// one is installed already.
pub fn init_logging(filter: &str, json: bool) -> Result<(), Error> {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let targets: Targets = filter
        .parse()
        .map_err(|e| Error::Invalid(format!("invalid log filter {filter:?}: {e}")))?;
    let registry = tracing_subscriber::registry().with(targets);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    Ok(())
}

/// Runs the agent until SIGTERM or SIGINT (then returns `Ok`). Prints
/// `roost agent ready as <hostname> (heartbeat on <addr>)` on stdout once
/// enrolled, answering heartbeats, and the first report was tried.
pub async fn run(args: AgentArgs) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    tokio::pin!(shutdown);
    let mut tasks = tokio::select! {
        started = start(args) => started?,
        sig = &mut shutdown => {
            tracing::info!("{sig} received during start-up; stopping");
            return Ok(());
        }
    };
    tokio::select! {
        sig = &mut shutdown => {
            tracing::info!("{sig} received; stopping");
            tasks.abort_all();
            Ok(())
        }
        ended = tasks.join_next() => {
            match ended {
                Some(Err(e)) if e.is_panic() => Err(Error::Stopped("an agent task panicked")),
                _ => Err(Error::Stopped("an agent task stopped unexpectedly")),
            }
        }
    }
}

/// State shared by the agent's tasks.
struct Shared {
    data_dir: PathBuf,
    client: Client,
    identity: Mutex<Identity>,
    heartbeat_port: u16,
    /// Address and port answering on the cluster-host network.
    cluster: Option<(IpAddr, u16)>,
    health: Arc<HealthState>,
    /// The latest inventory read.
    inventory: Mutex<Inventory>,
    /// What the next report must carry.
    pending: Mutex<Pending>,
    /// Wakes the reporter when something is pending.
    wake: Notify,
    /// The next heartbeat key, offered to the responders.
    next_key: tokio::sync::watch::Sender<Option<HostKey>>,
    /// Held while the identity file is written (one change at a time).
    identity_saves: tokio::sync::Mutex<()>,
    /// Asks the certificate task to renew the client certificate now.
    renew_certificate: Notify,
    /// The serial the server asked to renew (set before
    /// `renew_certificate` is notified): a request about a certificate
    /// already replaced is dropped, so one request renews once.
    renew_serial: Mutex<Option<String>>,
    /// The host's TPM, with `--tpm`.
    tpm: Option<attest::SharedTpm>,
    /// The releases on this host.
    software: Arc<roost_update::Software>,
    /// Set once a report was taken by the server.
    reported: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Alarm changes, by (alarm id, entity): the latest wins.
    alarms: BTreeMap<(String, String), AgentAlarm>,
    /// Process state changes, by name: the latest wins.
    processes: BTreeMap<String, Option<String>>,
    /// The inventory changed.
    inventory: bool,
    /// The answer to the server's last TPM challenge.
    tpm_quote: Option<roost_api::tpm::TpmQuote>,
}

impl Shared {
    fn hostname(&self) -> String {
        lock(&self.identity).enrollment.hostname.clone()
    }

    fn push_alarms(&self, alarms: Vec<AgentAlarm>) {
        if alarms.is_empty() {
            return;
        }
        let mut p = lock(&self.pending);
        for a in alarms {
            p.alarms
                .insert((a.alarm_id.clone(), a.entity_instance_id.clone()), a);
        }
        drop(p);
        self.wake.notify_one();
    }

    fn push_process(&self, name: &str, failed: Option<Severity>) {
        lock(&self.pending)
            .processes
            .insert(name.to_string(), failed.map(|s| s.as_str().to_string()));
        self.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the heartbeat socket binds: `--heartbeat-listen` when given, else
/// the management address (`--mgmt-ip`, else the address this host uses to
/// reach the server, which is where enrollment comes from) on
/// `--heartbeat-port`. Never every address unless told so.
async fn heartbeat_address(args: &AgentArgs, server: &str) -> Result<SocketAddr, Error> {
    if let Some(a) = args.heartbeat_listen {
        return Ok(a);
    }
    let ip = match args.mgmt_ip {
        Some(ip) => ip,
        None => local_ip_towards(server).await?,
    };
    Ok(SocketAddr::new(ip, args.heartbeat_port))
}

/// The local address the host's routes pick to reach `server` (a URL): a
/// UDP socket connected to it (nothing is sent) reports it.
async fn local_ip_towards(server: &str) -> Result<IpAddr, Error> {
    let url = reqwest::Url::parse(server)
        .map_err(|e| Error::Invalid(format!("the server URL {server} is not valid: {e}")))?;
    let port = url.port_or_known_default().unwrap_or(6385);
    let host = url
        .host_str()
        .ok_or_else(|| Error::Invalid(format!("the server URL {server} has no host")))?;
    let target = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot resolve {host} to choose the heartbeat address; give --mgmt-ip or --heartbeat-listen"
                ))
            })?,
    };
    let any: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = UdpSocket::bind(any).await?;
    probe.connect(target).await.with_context(|| {
        format!("no route to the server at {target} to choose the heartbeat address")
    })?;
    Ok(probe.local_addr()?.ip())
}

/// Enrolls (or loads the identity), starts every task, makes the first
/// report and prints the ready line.
async fn start(args: AgentArgs) -> Result<JoinSet<()>, Error> {
    // What the agent creates is private to its user unless made otherwise
    // on purpose (containerd runs with umask 022; volumes are made 0755).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    identity::make_private_dir(&args.data_dir)?;
    let software_dir = std::path::absolute(args.data_dir.join("software"))
        .unwrap_or_else(|_| args.data_dir.join("software"));
    let software = Arc::new(roost_update::Software::open(
        software_dir,
        args.software_trial_secs,
        &args.reboot_command,
    )?);
    // Goes on only when this binary is the one the host's release runs.
    if let Some(h) = software.at_start()? {
        return Err(replace_process(&software, &h));
    }
    let stored = Identity::load(&args.data_dir)?;
    let server = args
        .server
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::env::var("ROOST_SERVER")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
        .or_else(|| stored.as_ref().map(|i| i.server.clone()))
        .ok_or_else(|| Error::Invalid("no server URL: give --server (or ROOST_URL)".into()))?;
    let ca = match &args.ca_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            Error::Invalid(format!("cannot read the CA file {}: {e}", path.display()))
        })?),
        None => None,
    };
    let client = Client::with_ca(&server, ca.as_deref())?;

    let processes = match &args.process_dir {
        Some(dir) => process::load_dir(dir)?,
        None => Vec::new(),
    };

    let listen = heartbeat_address(&args, &server).await?;
    let socket = UdpSocket::bind(listen)
        .await
        .with_context(|| format!("cannot listen for heartbeats on {listen}"))?;
    let heartbeat_addr = socket.local_addr()?;
    tracing::info!(addr = %heartbeat_addr, "heartbeat socket bound");
    let cluster_socket = match args.cluster_heartbeat_listen {
        Some(addr) => Some(
            UdpSocket::bind(addr)
                .await
                .with_context(|| format!("cannot listen for cluster-host heartbeats on {addr}"))?,
        ),
        None => None,
    };
    let cluster_port = match &cluster_socket {
        Some(s) => Some(s.local_addr()?.port()),
        None => None,
    };

    let inventory = tokio::task::spawn_blocking(inventory::read).await?;
    let tpm = match &args.tpm {
        Some(tcti) => {
            let tcti = tcti.clone();
            let t = tokio::task::spawn_blocking(move || attest::open(&tcti))
                .await
                .map_err(|_| Error::Stopped("the TPM task panicked"))??;
            tracing::info!(tcti = %args.tpm.as_deref().unwrap_or_default(), "using the TPM");
            Some(t)
        }
        None => None,
    };

    let identity = match stored {
        Some(mut id) => {
            if id.server != client.servers() {
                id.server = client.servers();
                id.save(&args.data_dir)?;
            }
            tracing::info!(hostname = %id.enrollment.hostname, host_id = id.enrollment.host_id, server = %id.server, "using the stored identity");
            id
        }
        None => {
            let token = args
                .join_token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::Invalid(
                        "this host is not enrolled yet: give a join token (--join-token or ROOST_JOIN_TOKEN)"
                            .into(),
                    )
                })?;
            let mgmt_ip = args.mgmt_ip.map(|ip| ip.to_string());
            // Over HTTPS the server signs a key made here for the client
            // certificate every later call presents.
            let key = if client.https() {
                Some(new_client_key()?)
            } else {
                None
            };
            let tpm_enrollment = match &tpm {
                Some(t) => Some(
                    attest::enrollment(t, token, &args.tpm_pcrs)
                        .await
                        .map_err(|e| Error::context("cannot quote with the TPM", e))?,
                ),
                None => None,
            };
            let enrollment = client
                .enroll(
                    token,
                    &inventory,
                    heartbeat_addr.port(),
                    mgmt_ip.as_deref(),
                    key.as_ref().map(|k| k.csr_pem.as_str()),
                    tpm_enrollment,
                )
                .await
                .map_err(|e| match e {
                    Error::Unauthorized { message } => Error::Unauthorized {
                        message: format!("enrollment refused: {message}"),
                    },
                    Error::Rejected { message, .. } => {
                        Error::Invalid(format!("enrollment refused: {message}"))
                    }
                    other => Error::context(format!("cannot enroll with {}", client.base()), other),
                })?;
            let id = Identity {
                server: client.servers(),
                enrollment,
                heartbeat_key_next: None,
                client_key_pem: key.map(|k| k.key_pem),
            };
            id.key()?;
            id.save(&args.data_dir)?;
            tracing::info!(hostname = %id.enrollment.hostname, host_id = id.enrollment.host_id, "enrolled");
            id
        }
    };
    let identity = with_client_certificate(&args.data_dir, &client, identity).await?;
    let key = identity.key()?;
    let host_id = identity.enrollment.host_id;
    let (next_key, next_rx) = tokio::sync::watch::channel(identity.next_key());
    let (promoted_tx, promoted_rx) = mpsc::unbounded_channel();
    let keys = heartbeat::Keys {
        next: next_rx,
        promoted: promoted_tx,
    };

    let health = Arc::new(HealthState::new());
    let mut initial = Pending {
        inventory: true,
        ..Pending::default()
    };
    for p in &processes {
        initial.processes.insert(p.spec.name.clone(), None);
    }
    let shared = Arc::new(Shared {
        data_dir: args.data_dir.clone(),
        client,
        identity: Mutex::new(identity),
        heartbeat_port: heartbeat_addr.port(),
        cluster: args.cluster_ip.zip(cluster_port),
        health: health.clone(),
        inventory: Mutex::new(inventory),
        pending: Mutex::new(initial),
        wake: Notify::new(),
        next_key,
        identity_saves: tokio::sync::Mutex::new(()),
        renew_certificate: Notify::new(),
        renew_serial: Mutex::new(None),
        tpm,
        software: software.clone(),
        reported: tokio::sync::watch::Sender::new(false),
    });

    let mut tasks = JoinSet::new();
    let (reboot_tx, reboot_rx) = mpsc::unbounded_channel();
    if let Some(cs) = cluster_socket {
        tasks.spawn(
            Responder::new(
                cs,
                key.clone(),
                host_id,
                health.clone(),
                reboot_tx.clone(),
                keys.clone(),
            )
            .run(),
        );
    }
    tasks.spawn(Responder::new(socket, key, host_id, health.clone(), reboot_tx, keys).run());
    tasks.spawn(key_task(shared.clone(), promoted_rx));
    if shared.client.https() {
        tasks.spawn(certificate_task(shared.clone()));
    }
    tasks.spawn(reboot_task(
        reboot_rx,
        health.clone(),
        args.reboot_command.clone(),
        args.simulated_reboot,
    ));
    let (first_tx, first_rx) = oneshot::channel();
    tasks.spawn(report_task(
        shared.clone(),
        Duration::from_secs(args.report_interval_secs),
        first_tx,
    ));
    tasks.spawn(inventory_task(shared.clone()));
    tasks.spawn(trial_task(shared.clone()));
    tasks.spawn(order_task(shared.clone()));
    if !args.no_apps {
        let token = lock(&shared.identity).enrollment.agent_token.clone();
        tasks.spawn(apps::run(
            shared.client.clone(),
            health.clone(),
            apps::AppsConfig {
                host: shared.hostname(),
                token,
                dir: std::path::absolute(args.data_dir.join("apps"))
                    .unwrap_or_else(|_| args.data_dir.join("apps")),
                containerd_socket: args.containerd_socket.clone(),
                fence_after: Duration::from_millis(args.fence_after_ms),
                stop_grace: Duration::from_secs(10),
            },
        ));
    }
    tasks.spawn(resource_task(
        shared.clone(),
        Duration::from_secs(args.monitor_interval_secs),
        PathBuf::from("/proc"),
    ));
    if !processes.is_empty() {
        tasks.spawn(process_task(
            shared.clone(),
            processes,
            PathBuf::from("/proc"),
        ));
    }

    let _ = tokio::time::timeout(FIRST_REPORT_WAIT, first_rx).await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "roost agent ready as {} (heartbeat on {heartbeat_addr})",
        shared.hostname()
    )?;
    out.flush()?;
    Ok(tasks)
}

/// Sends reports: at start, whenever something is pending, and every
/// `interval` anyway (with the inventory). Failed reports are retried with
/// a growing delay; what they carried stays pending.
async fn report_task(shared: Arc<Shared>, interval: Duration, first: oneshot::Sender<()>) {
    let mut first = Some(first);
    let mut periodic = tokio::time::interval(interval);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::from_secs(1);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut unauthorized_logged = false;
    loop {
        let mut with_inventory = false;
        match retry_at {
            // After a failure, wait for the retry time: news stay pending.
            Some(at) => tokio::select! {
                _ = periodic.tick() => with_inventory = true,
                _ = tokio::time::sleep_until(at) => {}
            },
            None => tokio::select! {
                _ = periodic.tick() => with_inventory = true,
                _ = shared.wake.notified() => {}
            },
        }
        let taken = std::mem::take(&mut *lock(&shared.pending));
        let with_inventory = with_inventory || taken.inventory;
        let report = AgentReport {
            inventory: with_inventory.then(|| lock(&shared.inventory).clone()),
            heartbeat_port: Some(shared.heartbeat_port),
            cluster_ip: shared.cluster.map(|(ip, _)| ip.to_string()),
            cluster_heartbeat_port: shared.cluster.map(|(_, p)| p),
            alarms: taken.alarms.values().cloned().collect(),
            processes: taken
                .processes
                .iter()
                .map(|(name, failed)| ProcessState {
                    name: name.clone(),
                    failed: failed.clone(),
                })
                .collect(),
            heartbeat_key_next: lock(&shared.identity).next_key().map(|k| k.fingerprint()),
            tpm_quote: taken.tpm_quote.clone(),
            software: Some(shared.software.status()),
        };
        let (token, serial) = {
            let id = lock(&shared.identity);
            (id.enrollment.agent_token.clone(), cert_serial(&id))
        };
        let result = shared.client.report(&token, &report).await;
        let retry = match result {
            Ok(reply) => {
                unauthorized_logged = false;
                shared.reported.send_replace(true);
                tracing::debug!(
                    alarms = report.alarms.len(),
                    processes = report.processes.len(),
                    inventory = report.inventory.is_some(),
                    administrative = %reply.administrative,
                    availability = %reply.availability,
                    "reported"
                );
                // Asked to renew the certificate this report presented (not
                // one already replaced meanwhile).
                if reply.renew_certificate
                    && serial.is_some()
                    && cert_serial(&lock(&shared.identity)) == serial
                {
                    *lock(&shared.renew_serial) = serial.clone();
                    shared.renew_certificate.notify_one();
                }
                on_reply(&shared, &reply).await;
                false
            }
            Err(Error::BadReply(e)) => {
                tracing::warn!(error = %e, "the server took the report but its reply is unreadable");
                false
            }
            Err(Error::Rejected { status, message }) => {
                tracing::error!(status, %message, "the server rejected a report; its content is dropped");
                false
            }
            Err(Error::Unauthorized { message }) => {
                if !unauthorized_logged {
                    tracing::error!(
                        %message,
                        "the server refused this agent's credentials: if this host was deleted or revoked, remove {} and enroll again with a new join token",
                        Identity::path_in(&shared.data_dir).display()
                    );
                    unauthorized_logged = true;
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "cannot report to the server");
                true
            }
        };
        if retry {
            // Put back what was not delivered, unless something newer came.
            let mut p = lock(&shared.pending);
            for (k, a) in taken.alarms {
                p.alarms.entry(k).or_insert(a);
            }
            for (k, s) in taken.processes {
                p.processes.entry(k).or_insert(s);
            }
            p.inventory |= with_inventory;
            if p.tpm_quote.is_none() {
                p.tpm_quote = taken.tpm_quote;
            }
            drop(p);
            retry_at = Some(tokio::time::Instant::now() + backoff);
            backoff = (backoff * 2).min(Duration::from_secs(60));
        } else {
            retry_at = None;
            backoff = Duration::from_secs(1);
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
    }
}

/// Changes the identity with `change` (which says whether it changed
/// anything) and keeps it: the file first, written off the lock and one
/// change at a time, then memory, so memory never holds what is not saved.
/// True when a change was saved.
async fn change_identity(
    shared: &Shared,
    what: &str,
    change: impl FnOnce(&mut Identity) -> bool,
) -> bool {
    let _one_at_a_time = shared.identity_saves.lock().await;
    let mut id = lock(&shared.identity).clone();
    if !change(&mut id) {
        return false;
    }
    let (dir, saved) = (shared.data_dir.clone(), id.clone());
    match tokio::task::spawn_blocking(move || saved.save(&dir)).await {
        Ok(Ok(())) => {
            *lock(&shared.identity) = id;
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot save {what}");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot save {what}");
            false
        }
    }
}

/// A new key for the client certificate, and its CSR.
fn new_client_key() -> Result<roost_pki::ClientIdentity, Error> {
    roost_pki::ClientIdentity::generate("roost-agent")
        .map_err(|e| Error::Invalid(format!("cannot make a key for the client certificate: {e}")))
}

/// The serial of the identity's client certificate, if it has one.
fn cert_serial(id: &Identity) -> Option<String> {
    let pem = id.enrollment.client_cert_pem.as_deref()?;
    roost_pki::cert_info(pem).ok().map(|i| i.serial)
}

/// Asks the server for a client certificate for a new key, presenting the
/// current one (if any).
async fn request_certificate(client: &Client, token: &str) -> Result<ClientCert, Error> {
    let key = new_client_key()?;
    let cert_pem = client.certificate(token, &key.csr_pem).await?;
    roost_pki::cert_info(&cert_pem)
        .map_err(|e| Error::BadReply(format!("the issued certificate does not parse: {e}")))?;
    Ok(ClientCert {
        cert_pem,
        key_pem: key.key_pem,
    })
}

/// Over HTTPS, makes the client present the identity's certificate; an
/// agent that enrolled over plain HTTP and has none asks for one first
/// (and keeps it).
async fn with_client_certificate(
    dir: &std::path::Path,
    client: &Client,
    mut identity: Identity,
) -> Result<Identity, Error> {
    if !client.https() {
        return Ok(identity);
    }
    let cert = match identity.client_cert() {
        Some(c) => c,
        None => {
            tracing::info!("this agent has no client certificate yet; asking the server for one");
            let c = request_certificate(client, &identity.enrollment.agent_token)
                .await
                .map_err(|e| Error::context("cannot get a client certificate", e))?;
            identity.enrollment.client_cert_pem = Some(c.cert_pem.clone());
            identity.client_key_pem = Some(c.key_pem.clone());
            identity.save(dir)?;
            c
        }
    };
    client.set_certificate(&cert)?;
    if let Some(serial) = cert_serial(&identity) {
        tracing::info!(%serial, "presenting the client certificate");
    }
    Ok(identity)
}

/// How long until the identity's certificate is due for renewal (two
/// thirds of its life), by this host's clock.
fn until_renewal(id: &Identity) -> Duration {
    let info = id
        .enrollment
        .client_cert_pem
        .as_deref()
        .and_then(|p| roost_pki::cert_info(p).ok());
    let Some(info) = info else {
        return Duration::ZERO;
    };
    let life = info.not_after.saturating_sub(info.not_before).max(0);
    let due = info.not_before.saturating_add(life * 2 / 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(due.saturating_sub(now)).unwrap_or(0))
}

/// Renews the client certificate at two thirds of its life, or at once when
/// the server asks: a new key, signed by the server, kept in the identity
/// file, then presented on every new connection. Until the new one is
/// first used the server accepts the old one too, so calls in flight are
/// not cut.
async fn certificate_task(shared: Arc<Shared>) {
    let mut backoff = Duration::from_secs(5);
    loop {
        let wait = until_renewal(&lock(&shared.identity));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.renew_certificate.notified() => {
                // Asked while a renewal was under way: that one answered it.
                let asked = lock(&shared.renew_serial).take();
                if asked.is_none() || asked != cert_serial(&lock(&shared.identity)) {
                    continue;
                }
            }
        }
        let token = lock(&shared.identity).enrollment.agent_token.clone();
        let cert = match request_certificate(&shared.client, &token).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "cannot renew the client certificate");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(600));
                continue;
            }
        };
        let saved = change_identity(&shared, "the new client certificate", |id| {
            id.enrollment.client_cert_pem = Some(cert.cert_pem.clone());
            id.client_key_pem = Some(cert.key_pem.clone());
            true
        })
        .await;
        if !saved {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(600));
            continue;
        }
        backoff = Duration::from_secs(5);
        match shared.client.set_certificate(&cert) {
            Ok(()) => {
                let serial = cert_serial(&lock(&shared.identity)).unwrap_or_default();
                tracing::info!(%serial, "renewed the client certificate");
            }
            Err(e) => tracing::error!(error = %e, "cannot present the new client certificate"),
        }
    }
}

/// Saves the key a heartbeat key rotation made current (the responders
/// took it at the first pulse under it).
async fn key_task(shared: Arc<Shared>, mut promoted: mpsc::UnboundedReceiver<HostKey>) {
    while let Some(k) = promoted.recv().await {
        change_identity(&shared, "the new heartbeat key", |id| {
            if !id.next_key().is_some_and(|n| n.same_as(&k)) {
                return false;
            }
            id.enrollment.heartbeat_key = k.to_hex();
            id.heartbeat_key_next = None;
            tracing::info!(fingerprint = %k.fingerprint(), "the new heartbeat key is in use");
            true
        })
        .await;
    }
}

/// Follows a rename of the host on the server, and a heartbeat key
/// rotation: the next key is kept (in the identity file) and offered to the
/// responders, and the server is told at once that this agent holds it.
async fn on_reply(shared: &Arc<Shared>, reply: &ReportReply) {
    if let Some(order) = &reply.software {
        deploy(shared, order);
    }
    if let (Some(c), Some(tpm)) = (&reply.tpm_challenge, &shared.tpm) {
        match roost_api::tpm::from_hex(&c.nonce) {
            Some(nonce) => match attest::quote(tpm, nonce, c.pcrs.clone()).await {
                Ok(q) => {
                    lock(&shared.pending).tpm_quote = Some(attest::to_wire(&q));
                    shared.wake.notify_one();
                }
                Err(e) => tracing::error!(error = %e, "cannot quote with the TPM"),
            },
            None => tracing::warn!("the server's TPM challenge is not hex"),
        }
    }
    if let Some(next) = reply.next_key() {
        let taken = change_identity(shared, "the next heartbeat key", |id| {
            let known = id.next_key().is_some_and(|n| n.same_as(&next))
                || id.key().is_ok_and(|k| k.same_as(&next));
            if !known {
                id.heartbeat_key_next = Some(next.to_hex());
            }
            !known
        })
        .await;
        if taken {
            tracing::info!(fingerprint = %next.fingerprint(), "heartbeat key rotation: holding the next key");
            let _ = shared.next_key.send(Some(next));
            shared.wake.notify_one();
        }
    }
    if reply.hostname.is_empty() {
        return;
    }
    change_identity(shared, "the new host name", |id| {
        if id.enrollment.hostname == reply.hostname {
            return false;
        }
        tracing::info!(old = %id.enrollment.hostname, new = %reply.hostname, "the server renamed this host");
        id.enrollment.hostname = reply.hostname.clone();
        true
    })
    .await;
}

/// Carries out a deploy order (from a report's reply or the order poll)
/// unless it is done or under way already.
fn deploy(shared: &Arc<Shared>, order: &roost_api::software::SoftwareOrder) {
    if !shared.software.take(order) {
        return;
    }
    tracing::info!(release = %order.release_id, attempt = order.attempt, rollback = order.rollback, "deploying a release on this host");
    let (shared, order) = (shared.clone(), order.clone());
    tokio::spawn(async move {
        let token = lock(&shared.identity).enrollment.agent_token.clone();
        let fetch = Blobs {
            client: shared.client.clone(),
            token,
        };
        if let Some(h) = shared.software.carry_out(&fetch, &order).await {
            let e = replace_process(&shared.software, &h);
            tracing::error!(error = %error_line(&e), "the deploy failed on this host");
        }
        shared.wake.notify_one();
    });
}

/// Payload files, downloaded from the server by digest.
struct Blobs {
    client: client::Client,
    token: String,
}

impl roost_update::Fetch for Blobs {
    fn fetch<'a>(
        &'a self,
        sha256: &'a str,
        to: &'a std::path::Path,
    ) -> roost_update::FetchFuture<'a> {
        Box::pin(async move {
            self.client
                .software_blob(&self.token, sha256, to)
                .await
                .map_err(|e| roost_update::Error::Deploy(error_line(&e)))
        })
    }
}

/// Replaces this process as `h` says; returns only when that fails (the
/// trial undone).
fn replace_process(software: &roost_update::Software, h: &roost_update::Handover) -> Error {
    use std::os::unix::process::CommandExt;
    let e = h.command().exec();
    Error::from(software.exec_failed(h, e))
}

/// Asks the server for deploy orders with a long poll, so that a deploy
/// reaches this host at once rather than at its next report.
async fn order_task(shared: Arc<Shared>) {
    let mut after = 0u64;
    let mut backoff = Duration::from_secs(1);
    loop {
        let token = lock(&shared.identity).enrollment.agent_token.clone();
        match shared
            .client
            .software_order(&token, after, Duration::from_secs(55))
            .await
        {
            Ok(Some(order)) => {
                backoff = Duration::from_secs(1);
                after = after.max(order.attempt);
                deploy(&shared, &order);
            }
            Ok(None) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::debug!(error = %error_line(&e), "the deploy order poll failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Confirms a switch to a new roost binary once its health check passed
/// and a report was taken, or rolls back (re-executing the previous
/// binary); then idles.
async fn trial_task(shared: Arc<Shared>) {
    let reported = shared.reported.subscribe();
    match shared.software.clone().confirm_trial(reported).await {
        Ok(None) => shared.wake.notify_one(),
        Ok(Some(h)) => {
            let e = replace_process(&shared.software, &h);
            tracing::error!(error = %error_line(&e), "cannot roll back the new roost binary");
        }
        Err(e) => tracing::error!(error = %error_line(&e), "cannot roll back the new roost binary"),
    }
    std::future::pending::<()>().await;
}

/// Reads the inventory every few seconds; a change is reported at once,
/// but at most once per [`INVENTORY_CHANGE_MIN_GAP`] (some virtual machines
/// see their NUMA nodes' memory total move every few seconds).
async fn inventory_task(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(INVENTORY_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_sent: Option<Instant> = None;
    let mut unsent_change = false;
    loop {
        tick.tick().await;
        let Ok(new) = tokio::task::spawn_blocking(inventory::read).await else {
            continue;
        };
        {
            let mut cur = lock(&shared.inventory);
            unsent_change |= inventory::changed(&cur, &new);
            *cur = new;
        }
        if unsent_change && last_sent.is_none_or(|t| t.elapsed() >= INVENTORY_CHANGE_MIN_GAP) {
            tracing::debug!("the inventory changed; reporting it");
            last_sent = Some(Instant::now());
            unsent_change = false;
            lock(&shared.pending).inventory = true;
            shared.wake.notify_one();
        }
    }
}

/// One round of resource samples.
#[derive(Debug, Default)]
struct Samples {
    cpu_times: Option<(u64, u64)>,
    mem_pct: Option<f64>,
    mounts: Vec<String>,
    fs_pct: Vec<(String, f64)>,
}

fn sample(proc_root: &Path) -> Samples {
    let mounts = sampling::disk_mounts(proc_root);
    let fs_pct = mounts
        .iter()
        .filter_map(|m| sampling::filesystem_percent(m).map(|p| (m.clone(), p)))
        .collect();
    Samples {
        cpu_times: sampling::read_cpu_times(proc_root),
        mem_pct: sampling::read_memory_percent(proc_root),
        mounts,
        fs_pct,
    }
}

/// The resource alarms of one host: the threshold monitor, plus a clear
/// for each resource the first time it is seen below its thresholds (an
/// alarm raised before a restart of the agent would otherwise stay).
struct Resources {
    host: String,
    monitor: ResourceMonitor,
    seen: BTreeSet<Resource>,
    levels: BTreeMap<Resource, Severity>,
}

impl Resources {
    fn new(host: String) -> Resources {
        Resources {
            monitor: ResourceMonitor::new(host.clone(), MonitorSettings::default()),
            host,
            seen: BTreeSet::new(),
            levels: BTreeMap::new(),
        }
    }

    fn observe(&mut self, r: Resource, pct: f64) -> Option<AgentAlarm> {
        let first = self.seen.insert(r.clone());
        match self.monitor.observe(r.clone(), pct) {
            Some(d) => {
                match d.severity {
                    Some(s) => self.levels.insert(r, s),
                    None => self.levels.remove(&r),
                };
                Some(to_agent_alarm(d))
            }
            None if first && pct.is_finite() => {
                let (alarm_id, entity, what) = match &r {
                    Resource::Cpu => (
                        roost_mtce::ALARM_CPU,
                        format!("host={}", self.host),
                        "Platform CPU usage".to_string(),
                    ),
                    Resource::Memory => (
                        roost_mtce::ALARM_MEMORY,
                        format!("host={}", self.host),
                        "Platform memory usage".to_string(),
                    ),
                    Resource::Filesystem(m) => (
                        roost_mtce::ALARM_FILESYSTEM,
                        format!("host={}.filesystem={m}", self.host),
                        format!("Filesystem {m} usage"),
                    ),
                };
                Some(AgentAlarm {
                    alarm_id: alarm_id.to_string(),
                    entity_instance_id: entity,
                    severity: None,
                    reason_text: format!("{what} is {pct:.1}%"),
                })
            }
            None => None,
        }
    }

    fn forget_missing(&mut self, mounts: &[String]) -> Vec<AgentAlarm> {
        self.seen
            .retain(|r| !matches!(r, Resource::Filesystem(m) if !mounts.contains(m)));
        self.levels
            .retain(|r, _| !matches!(r, Resource::Filesystem(m) if !mounts.contains(m)));
        self.monitor
            .forget_missing(mounts)
            .into_iter()
            .map(to_agent_alarm)
            .collect()
    }

    fn any_critical(&self) -> bool {
        self.levels.values().any(|s| *s == Severity::Critical)
    }
}

fn to_agent_alarm(d: AlarmDecision) -> AgentAlarm {
    AgentAlarm {
        alarm_id: d.alarm_id.to_string(),
        entity_instance_id: d.entity_instance_id,
        severity: d.severity.map(|s| s.as_str().to_string()),
        reason_text: d.reason_text,
    }
}

/// Samples CPU, memory and filesystems every `interval`; feeds the health
/// summary and reports alarm changes at once.
async fn resource_task(shared: Arc<Shared>, interval: Duration, proc_root: PathBuf) {
    let mut host = shared.hostname();
    let mut resources = Resources::new(host.clone());
    let mut last_cpu: Option<(u64, u64)> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let root = proc_root.clone();
        let Ok(s) = tokio::task::spawn_blocking(move || sample(&root)).await else {
            continue;
        };
        let now_host = shared.hostname();
        if now_host != host {
            host = now_host;
            resources = Resources::new(host.clone());
        }
        let mut alarms = Vec::new();
        if let (Some(before), Some(after)) = (last_cpu, s.cpu_times)
            && let Some(pct) = sampling::cpu_percent(before, after)
        {
            shared.health.set_cpu(sampling::pct_byte(pct));
            alarms.extend(resources.observe(Resource::Cpu, pct));
        }
        if s.cpu_times.is_some() {
            last_cpu = s.cpu_times;
        }
        if let Some(pct) = s.mem_pct {
            shared.health.set_mem(sampling::pct_byte(pct));
            alarms.extend(resources.observe(Resource::Memory, pct));
        }
        let fullest = s.fs_pct.iter().map(|(_, p)| *p).fold(0.0, f64::max);
        shared.health.set_fs(sampling::pct_byte(fullest));
        for (m, pct) in s.fs_pct {
            alarms.extend(resources.observe(Resource::Filesystem(m), pct));
        }
        alarms.extend(resources.forget_missing(&s.mounts));
        shared
            .health
            .set_resource_degraded(resources.any_critical());
        for a in alarms.iter().filter(|a| a.severity.is_some()) {
            tracing::warn!(alarm_id = %a.alarm_id, entity = %a.entity_instance_id, severity = ?a.severity, "{}", a.reason_text);
        }
        shared.push_alarms(alarms);
    }
}

/// Checks the monitored processes every second, restarts them, and
/// reports failures and recoveries at once.
async fn process_task(shared: Arc<Shared>, configs: Vec<ProcessConfig>, proc_root: PathBuf) {
    let start = Instant::now();
    let liveness: Arc<Vec<process::Liveness>> =
        Arc::new(configs.iter().map(|c| c.liveness.clone()).collect());
    let mut monitors: Vec<(ProcessConfig, ProcessMonitor)> = configs
        .into_iter()
        .map(|c| {
            let m = ProcessMonitor::new(c.spec.clone());
            (c, m)
        })
        .collect();
    let mut tick = tokio::time::interval(PROCESS_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let l = liveness.clone();
        let root = proc_root.clone();
        let Ok(alive) = tokio::task::spawn_blocking(move || {
            let needs_table = l.iter().any(|x| matches!(x, process::Liveness::Match(_)));
            let table = if needs_table {
                process::ProcessTable::read(&root)
            } else {
                process::ProcessTable::default()
            };
            l.iter()
                .map(|x| process::is_alive(x, &table, &root))
                .collect::<Vec<bool>>()
        })
        .await
        else {
            continue;
        };
        let now = Timestamp(i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX));
        let mut changed = false;
        for ((config, monitor), alive) in monitors.iter_mut().zip(alive) {
            let name = &config.spec.name;
            match monitor.observe(alive, now) {
                ProcessAction::None => {}
                ProcessAction::Restart => match &config.restart {
                    Some(cmd) => {
                        tracing::warn!(process = %name, restarts = monitor.restarts_done(), "process is not running; restarting it");
                        process::spawn_restart(name, cmd);
                    }
                    None => {
                        tracing::warn!(process = %name, "process is not running (no restart command configured)");
                    }
                },
                ProcessAction::Fail(severity) => {
                    tracing::error!(process = %name, %severity, "process has failed and could not be recovered");
                    shared.push_process(name, Some(severity));
                    changed = true;
                }
                ProcessAction::Recover => {
                    tracing::info!(process = %name, "process has recovered");
                    shared.push_process(name, None);
                    changed = true;
                }
            }
        }
        if changed {
            let failed = |sev: Severity| monitors.iter().any(|(_, m)| m.failure() == Some(sev));
            shared
                .health
                .set_process_failures(failed(Severity::Critical), failed(Severity::Major));
        }
    }
}

/// Carries out the reboot the server asked for.
async fn reboot_task(
    mut requests: mpsc::UnboundedReceiver<RebootRequest>,
    health: Arc<HealthState>,
    command: String,
    simulated: bool,
) {
    while let Some(req) = requests.recv().await {
        tokio::time::sleep(REBOOT_DELAY).await;
        if simulated {
            tracing::warn!(
                seq = req.seq,
                "simulated reboot: exiting with code {SIMULATED_REBOOT_EXIT}"
            );
            std::process::exit(SIMULATED_REBOOT_EXIT);
        }
        tracing::warn!(command = %command, "rebooting this host");
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .status()
            .await;
        match status {
            Ok(s) if s.success() => {
                tracing::info!("the reboot command succeeded; waiting to go down");
            }
            Ok(s) => {
                tracing::error!(status = %s, "the reboot command failed; a later request may try again");
                health.cancel_going_down();
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot run the reboot command; a later request may try again");
                health.cancel_going_down();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    #[test]
    fn the_options_have_their_documented_defaults() {
        let a = Cli::try_parse_from(["agent"]).unwrap().agent;
        assert_eq!(a.data_dir, PathBuf::from("./roost-agent-data"));
        assert_eq!(a.heartbeat_listen, None);
        assert_eq!(a.heartbeat_port, 2103);
        assert_eq!(a.report_interval_secs, 60);
        assert_eq!(a.monitor_interval_secs, 10);
        assert_eq!(a.reboot_command, "systemctl reboot");
        assert!(!a.simulated_reboot);
        assert!(Cli::try_parse_from(["agent", "--report-interval-secs", "0"]).is_err());
    }

    #[test]
    fn the_agent_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let args = Cli::try_parse_from(["agent"]).unwrap().agent;
        assert_send(&run(args));
    }

    #[test]
    fn debug_output_hides_the_join_token() {
        let a = Cli::try_parse_from(["agent", "--join-token", "sekret-join"])
            .unwrap()
            .agent;
        let shown = format!("{a:?}");
        assert!(!shown.contains("sekret-join"), "{shown}");
        assert!(shown.contains("<hidden>"));
    }

    #[test]
    fn resources_seen_below_threshold_are_cleared_once_at_start() {
        let mut r = Resources::new("worker-0".into());
        let a = r.observe(Resource::Cpu, 10.0).unwrap();
        assert_eq!(a.alarm_id, "100.101");
        assert_eq!(a.entity_instance_id, "host=worker-0");
        assert_eq!(a.severity, None);
        assert_eq!(r.observe(Resource::Cpu, 11.0), None);
        let a = r
            .observe(Resource::Filesystem("/var".into()), 95.0)
            .unwrap();
        assert_eq!(a.entity_instance_id, "host=worker-0.filesystem=/var");
        assert_eq!(a.severity.as_deref(), Some("critical"));
        assert!(r.any_critical());
        let gone = r.forget_missing(&[]);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].severity, None);
        assert!(!r.any_critical());
    }
}

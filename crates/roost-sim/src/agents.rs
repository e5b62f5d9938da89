//! Many lightweight simulated hosts in one process, each with its own
//! heartbeat socket and agent identity.
//!
//! A real `roost agent` costs a process per host. To put hundreds of hosts
//! in front of a server (benchmarks, scale tests), [`SimFleet`] plays every
//! host's agent from one process, with the real protocol:
//!
//! 1. `POST /v1/ihosts` `{hostname, personality: "worker"}` with the admin
//!    token gives a join token (when the host already exists, `POST
//!    /v1/ihosts/{name}/join_token` renews it, so a fleet can be restarted
//!    against the same server);
//! 2. a UDP socket is bound on `ip:0`;
//! 3. `POST /v1/agent/enroll` `{join_token, inventory, heartbeat_port,
//!    mgmt_ip}` with a small made-up inventory (4 CPUs, 8 GiB, one disk, one
//!    NIC with a locally administered MAC derived from the hostname) gives
//!    the host id, heartbeat key and agent token;
//! 4. every valid pulse request (authentic, for this host, newer than the
//!    last one: roost-api's [`Answerer`], the agent's own) is answered with a response
//!    carrying a fixed, healthy [`Health`];
//! 5. every host reports (`POST /v1/agent/report` with `X-Agent-Token`,
//!    inventory and heartbeat port) once per report interval; the reports of
//!    the fleet are spread evenly over the interval.
//!
//! Each host is one tokio task that owns its socket and does nothing but
//! wait for datagrams, so a fleet of 200 hosts costs a few MiB and a few
//! percent of a core at a 100 ms heartbeat. All reports come from one more
//! task. Each host holds one file descriptor: fleets beyond about 1,000
//! hosts need a higher `ulimit -n`.
//!
//! [`SimFleet::stop_host`] makes a host stop answering (and reporting): to
//! the server it is a dead host, though no process died.
//! [`SimFleet::resume_host`] brings it back.
//!
//! A pulse with [`FLAG_REBOOT`] is answered with [`Health::REBOOTING`];
//! with [`FleetConfig::reboot_time`] zero (the default) the host then
//! carries on at once, otherwise it goes silent for that long and comes back
//! with its uptime reset, like a host that rebooted.
//!
//! `roost sim agents` ([`run_agents`]) runs a fleet from the command line and
//! prints `roost sim agents ready: N hosts` on stdout once every host is
//! enrolled (and, with `--unlock`, unlocked and available).

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use roost_api::agent::{Cpu, Disk, Inventory, Memory, Nic, NumaNode};
use roost_api::fm::PatchOp;
use roost_api::heartbeat::{Answerer, FLAG_REBOOT, Health, HostKey, MAX_DATAGRAM};
use roost_api::sysinv::{AgentReport, EnrollRequest, EnrollResponse, HostAdd, ReportReply};
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Context as _, Error, Result};

/// Header that carries an agent's token.
const AGENT_TOKEN_HEADER: &str = "X-Agent-Token";

/// Header that carries the admin's Keystone token.
const AUTH_HEADER: &str = "X-Auth-Token";

/// Enrollments (and unlocks) in flight at once.
const DEFAULT_CONCURRENCY: usize = 16;

/// How often [`SimFleet::unlock_all`] and friends poll `GET /v1/ihosts`.
const POLL: Duration = Duration::from_millis(200);

/// The health every simulated host reports: quiet and well.
const HEALTH: Health = Health {
    cpu_pct: 3,
    mem_pct: 25,
    fs_pct: 30,
    flags: 0,
};

/// Arguments of `roost sim agents`.
///
/// Example: `roost sim agents --server http://127.0.0.1:6385 --count 200 --unlock`
/// (the URL and admin token may come from `ROOST_URL` and `ROOST_TOKEN`, as for the client).
#[derive(Args, Clone, PartialEq, Eq)]
pub struct AgentsArgs {
    /// The server's URL (as for the command-line client, ROOST_URL).
    #[arg(long, env = "ROOST_URL")]
    pub server: String,
    /// An admin token (X-Auth-Token), to add and unlock the hosts.
    #[arg(long, env = "ROOST_TOKEN", hide_env_values = true)]
    pub token: String,
    /// How many hosts to simulate.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Hostname prefix: hosts are PREFIX0001, PREFIX0002, ...
    #[arg(long, default_value = "sim-")]
    pub prefix: String,
    /// Address to bind the heartbeat sockets on, reported as the hosts' mgmt_ip.
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: IpAddr,
    /// Unlock every host once it is online, and wait until all are available.
    #[arg(long)]
    pub unlock: bool,
    /// Seconds between two reports of a host (reports are spread over the interval).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub report_interval_secs: u64,
    /// Seconds a host stays silent when the server asks it to reboot (0: it
    /// acknowledges and carries on).
    #[arg(long, default_value_t = 0)]
    pub reboot_secs: u64,
    /// Give up when the fleet is not ready (enrolled, and available with
    /// --unlock) after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub ready_timeout_secs: u64,
}

impl fmt::Debug for AgentsArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentsArgs")
            .field("server", &self.server)
            .field("token", &"<hidden>")
            .field("count", &self.count)
            .field("prefix", &self.prefix)
            .field("ip", &self.ip)
            .field("unlock", &self.unlock)
            .field("report_interval_secs", &self.report_interval_secs)
            .field("reboot_secs", &self.reboot_secs)
            .field("ready_timeout_secs", &self.ready_timeout_secs)
            .finish()
    }
}

/// Runs a fleet until SIGINT or SIGTERM.
///
/// Prints `roost sim agents ready: N hosts` on stdout once every host is
/// enrolled and answering heartbeats (and, with `--unlock`, unlocked and
/// available).
pub async fn run_agents(args: AgentsArgs) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    tokio::pin!(stop);
    let timeout = Duration::from_secs(args.ready_timeout_secs);
    let cfg = FleetConfig {
        report_interval: Duration::from_secs(args.report_interval_secs),
        reboot_time: Duration::from_secs(args.reboot_secs),
        ..FleetConfig::new(
            &args.server,
            &args.token,
            args.count as usize,
            &args.prefix,
            args.ip,
        )
    };
    let started = std::time::Instant::now();
    let fleet = tokio::select! {
        f = tokio::time::timeout(timeout, SimFleet::start_with(cfg)) => {
            f.map_err(|_| Error::Timeout(format!("the fleet was not enrolled after {} s", timeout.as_secs())))??
        }
        sig = &mut stop => {
            tracing::info!("{sig} received during enrollment; stopping");
            return Ok(());
        }
    };
    tracing::info!(
        hosts = fleet.len(),
        secs = started.elapsed().as_secs_f64(),
        "every simulated host is enrolled"
    );
    if args.unlock {
        let left = timeout.saturating_sub(started.elapsed());
        tokio::select! {
            r = fleet.unlock_all(left) => {
                if let Err(e) = r {
                    fleet.shutdown().await;
                    return Err(e);
                }
            }
            sig = &mut stop => {
                tracing::info!("{sig} received while unlocking; stopping");
                fleet.shutdown().await;
                return Ok(());
            }
        }
        tracing::info!(
            secs = started.elapsed().as_secs_f64(),
            "every simulated host is unlocked and available"
        );
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "roost sim agents ready: {} hosts", fleet.len())?;
        out.flush()?;
    }
    let sig = (&mut stop).await;
    let s = fleet.stats();
    tracing::info!(
        pulses_received = s.pulses_received,
        pulses_answered = s.pulses_answered,
        pulses_dropped = s.pulses_dropped,
        reboot_requests = s.reboot_requests,
        reports_sent = s.reports_sent,
        reports_failed = s.reports_failed,
        "{sig} received; stopping"
    );
    fleet.shutdown().await;
    Ok(())
}

/// How a [`SimFleet`] is set up.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// The server's URL (`http://127.0.0.1:6385`).
    pub server: String,
    /// An admin token, to add (and unlock) the hosts.
    pub admin_token: String,
    /// How many hosts.
    pub count: usize,
    /// Hostname prefix: `{prefix}0001`, `{prefix}0002`, ...
    pub prefix: String,
    /// Address the heartbeat sockets are bound on, and the hosts' mgmt_ip.
    pub ip: IpAddr,
    /// Time between two reports of one host.
    pub report_interval: Duration,
    /// How long a host is silent after a reboot request (zero: not at all).
    pub reboot_time: Duration,
    /// Enrollments in flight at once.
    pub concurrency: usize,
}

impl FleetConfig {
    /// A configuration with a 60 s report interval, no reboot silence and
    /// 16 enrollments at a time.
    pub fn new(
        server: &str,
        admin_token: &str,
        count: usize,
        prefix: &str,
        ip: IpAddr,
    ) -> FleetConfig {
        FleetConfig {
            server: server.trim().trim_end_matches('/').to_string(),
            admin_token: admin_token.to_string(),
            count,
            prefix: prefix.to_string(),
            ip,
            report_interval: Duration::from_secs(60),
            reboot_time: Duration::ZERO,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("server", &self.server)
            .field("admin_token", &"<hidden>")
            .field("count", &self.count)
            .field("prefix", &self.prefix)
            .field("ip", &self.ip)
            .field("report_interval", &self.report_interval)
            .field("reboot_time", &self.reboot_time)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// The hostname of host number `n` (from 1) of a fleet.
pub fn hostname(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:04}")
}

/// Counters of a whole fleet, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Datagrams received on the hosts' sockets (stopped hosts included).
    pub pulses_received: u64,
    /// Pulse responses sent.
    pub pulses_answered: u64,
    /// Datagrams rejected: not authentic, not a request, not for this
    /// host, or a replay.
    pub pulses_dropped: u64,
    /// Datagrams ignored because their host was stopped or rebooting.
    pub pulses_ignored: u64,
    /// Requests that carried [`FLAG_REBOOT`].
    pub reboot_requests: u64,
    /// Reports the server accepted.
    pub reports_sent: u64,
    /// Reports that failed.
    pub reports_failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    answered: AtomicU64,
    dropped: AtomicU64,
    ignored: AtomicU64,
    reboots: AtomicU64,
    reports_sent: AtomicU64,
    reports_failed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One simulated host's identity and switches.
#[derive(Debug)]
struct SimHost {
    name: String,
    host_id: u32,
    addr: SocketAddr,
    agent_token: String,
    /// False while stopped by [`SimFleet::stop_host`].
    answering: AtomicBool,
    /// Silent (rebooting) until this many milliseconds after the fleet's
    /// epoch; also the simulated boot time.
    silent_until_ms: AtomicU64,
    /// Uptime at the fleet's epoch, seconds.
    uptime_at_epoch: u64,
    /// The next heartbeat key the server handed over (a rotation), until
    /// the first pulse under it.
    next_key: std::sync::Mutex<Option<HostKey>>,
}

impl SimHost {
    fn live(&self, epoch: Instant) -> bool {
        self.answering.load(Ordering::Relaxed)
            && epoch.elapsed().as_millis() as u64 >= self.silent_until_ms.load(Ordering::Relaxed)
    }

    fn uptime_secs(&self, epoch: Instant) -> u64 {
        let now_ms = epoch.elapsed().as_millis() as u64;
        let boot_ms = self.silent_until_ms.load(Ordering::Relaxed);
        if boot_ms == 0 {
            self.uptime_at_epoch + now_ms / 1000
        } else {
            now_ms.saturating_sub(boot_ms) / 1000
        }
    }
}

/// A fleet of simulated hosts, answering heartbeats and reporting until
/// [`SimFleet::shutdown`] (or until dropped: the tasks are aborted then).
pub struct SimFleet {
    cfg: FleetConfig,
    http: reqwest::Client,
    epoch: Instant,
    hosts: Vec<Arc<SimHost>>,
    by_name: HashMap<String, usize>,
    counters: Arc<Counters>,
    tasks: JoinSet<()>,
}

impl fmt::Debug for SimFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFleet")
            .field("cfg", &self.cfg)
            .field("hosts", &self.hosts.len())
            .finish_non_exhaustive()
    }
}

impl SimFleet {
    /// Adds and enrolls `count` hosts named `{prefix}0001`... on the server
    /// at `server`, with heartbeat sockets on `ip`, and starts answering.
    /// The hosts are left locked (see [`SimFleet::unlock_all`]).
    pub async fn start(
        server: &str,
        admin_token: &str,
        count: usize,
        prefix: &str,
        ip: IpAddr,
    ) -> Result<SimFleet> {
        Self::start_with(FleetConfig::new(server, admin_token, count, prefix, ip)).await
    }

    /// [`SimFleet::start`] with every setting.
    pub async fn start_with(cfg: FleetConfig) -> Result<SimFleet> {
        if !cfg.server.starts_with("http://") && !cfg.server.starts_with("https://") {
            return Err(Error::Invalid(format!(
                "the server URL {:?} must start with http://",
                cfg.server
            )));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("roost-sim-agents/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let epoch = Instant::now();
        let counters = Arc::new(Counters::default());
        let mut tasks = JoinSet::new();
        let mut hosts: Vec<Option<Arc<SimHost>>> = vec![None; cfg.count];
        let mut enrolling = JoinSet::new();
        let mut next = 0usize;
        let mut done = 0usize;
        let concurrency = cfg.concurrency.max(1);
        loop {
            while next < cfg.count && enrolling.len() < concurrency {
                let (http, cfg) = (http.clone(), cfg.clone());
                let i = next;
                enrolling.spawn(async move { (i, enroll_one(&http, &cfg, i + 1).await) });
                next += 1;
            }
            let Some(joined) = enrolling.join_next().await else {
                break;
            };
            let (i, result) = joined.context("an enrollment task failed")?;
            let (host, socket, key) = result?;
            let host = Arc::new(host);
            tasks.spawn(respond(
                host.clone(),
                socket,
                key,
                counters.clone(),
                epoch,
                cfg.reboot_time,
            ));
            hosts[i] = Some(host);
            done += 1;
            if done.is_multiple_of(50) || done == cfg.count {
                tracing::info!(enrolled = done, of = cfg.count, "enrolling simulated hosts");
            }
        }
        let hosts: Vec<Arc<SimHost>> = hosts.into_iter().flatten().collect();
        let by_name = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        if !hosts.is_empty() {
            tasks.spawn(report_loop(
                hosts.clone(),
                http.clone(),
                cfg.server.clone(),
                cfg.report_interval,
                counters.clone(),
                epoch,
            ));
        }
        Ok(SimFleet {
            cfg,
            http,
            epoch,
            hosts,
            by_name,
            counters,
            tasks,
        })
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the fleet has no host.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The hostnames, in order.
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// The server's id of a host.
    pub fn host_id(&self, name: &str) -> Option<u32> {
        self.host(name).map(|h| h.host_id)
    }

    /// The address a host answers heartbeats on.
    pub fn heartbeat_addr(&self, name: &str) -> Option<SocketAddr> {
        self.host(name).map(|h| h.addr)
    }

    fn host(&self, name: &str) -> Option<&Arc<SimHost>> {
        self.by_name.get(name).map(|&i| &self.hosts[i])
    }

    /// Makes a host stop answering heartbeats and reporting, as if it
    /// died. False if the fleet has no such host.
    pub fn stop_host(&self, name: &str) -> bool {
        self.host(name)
            .map(|h| h.answering.store(false, Ordering::Relaxed))
            .is_some()
    }

    /// Makes a stopped host answer (and report) again. False if the fleet
    /// has no such host.
    pub fn resume_host(&self, name: &str) -> bool {
        self.host(name)
            .map(|h| h.answering.store(true, Ordering::Relaxed))
            .is_some()
    }

    /// Whether a host answers (not stopped and not rebooting).
    pub fn is_answering(&self, name: &str) -> Option<bool> {
        self.host(name).map(|h| h.live(self.epoch))
    }

    /// The fleet's counters so far.
    pub fn stats(&self) -> FleetStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FleetStats {
            pulses_received: get(&c.received),
            pulses_answered: get(&c.answered),
            pulses_dropped: get(&c.dropped),
            pulses_ignored: get(&c.ignored),
            reboot_requests: get(&c.reboots),
            reports_sent: get(&c.reports_sent),
            reports_failed: get(&c.reports_failed),
        }
    }

    /// `(administrative, availability)` of every host of the fleet the
    /// server knows, by name.
    pub async fn states(&self) -> Result<HashMap<String, (String, String)>> {
        let r = self
            .http
            .get(format!("{}/v1/ihosts", self.cfg.server))
            .header(AUTH_HEADER, &self.cfg.admin_token)
            .send()
            .await
            .context("listing the hosts")?;
        let body = answer(r).await.context("listing the hosts")?;
        let mut out = HashMap::new();
        for h in body["ihosts"].as_array().into_iter().flatten() {
            let name = h["hostname"].as_str().unwrap_or_default();
            if self.by_name.contains_key(name) {
                out.insert(
                    name.to_string(),
                    (
                        h["administrative"].as_str().unwrap_or_default().to_string(),
                        h["availability"].as_str().unwrap_or_default().to_string(),
                    ),
                );
            }
        }
        Ok(out)
    }

    /// Waits until every host's availability is one of `avail`.
    pub async fn wait_availability(&self, avail: &[&str], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.states().await?;
            let missing = self
                .hosts
                .iter()
                .filter(|h| {
                    states
                        .get(&h.name)
                        .is_none_or(|(_, a)| !avail.contains(&a.as_str()))
                })
                .count();
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "{missing} of {} simulated hosts are not {} after {} s ({})",
                    self.hosts.len(),
                    avail.join(" or "),
                    timeout.as_secs(),
                    tally(&states)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Unlocks every host once it is online, then waits until all are
    /// available.
    pub async fn unlock_all(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.states().await?;
            let to_unlock: Vec<String> = states
                .iter()
                .filter(|(_, (admin, avail))| admin == "locked" && avail == "online")
                .map(|(n, _)| n.clone())
                .collect();
            let ready = self
                .hosts
                .iter()
                .filter(|h| {
                    states
                        .get(&h.name)
                        .is_some_and(|(admin, avail)| admin == "unlocked" && avail == "available")
                })
                .count();
            if ready == self.hosts.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "{} of {} simulated hosts are not unlocked and available after {} s ({})",
                    self.hosts.len() - ready,
                    self.hosts.len(),
                    timeout.as_secs(),
                    tally(&states)
                )));
            }
            let mut unlocking = JoinSet::new();
            for name in to_unlock {
                while unlocking.len() >= self.cfg.concurrency.max(1) {
                    let _ = unlocking.join_next().await;
                }
                let http = self.http.clone();
                let url = format!("{}/v1/ihosts/{name}", self.cfg.server);
                let token = self.cfg.admin_token.clone();
                unlocking.spawn(async move {
                    let r = http
                        .patch(url)
                        .header(AUTH_HEADER, token)
                        .json(&[PatchOp::replace("/action", "unlock")])
                        .send()
                        .await;
                    // A refusal (not online any more, already unlocked) is
                    // looked at again on the next round.
                    match r {
                        Ok(r) => {
                            if let Err(e) = answer(r).await {
                                tracing::debug!(host = %name, error = %e, "unlock refused; will retry");
                            }
                        }
                        Err(e) => tracing::debug!(host = %name, error = %e, "unlock failed; will retry"),
                    }
                });
            }
            while unlocking.join_next().await.is_some() {}
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops every host (they stop answering at once) and waits for the
    /// tasks to end. The hosts stay on the server.
    pub async fn shutdown(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// `3 available, 1 offline` for an error message.
fn tally(states: &HashMap<String, (String, String)>) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for (admin, avail) in states.values() {
        *by.entry(format!("{admin}/{avail}")).or_default() += 1;
    }
    if by.is_empty() {
        return "the server lists none of them".into();
    }
    by.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JSON body of a 2xx answer, else an error with the server's message.
async fn answer(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(Error::Http {
        status: status.as_u16(),
        message,
    })
}

/// A locally administered MAC address derived from the hostname.
fn mac_for(name: &str) -> String {
    let h = fnv1a(name.as_bytes()).to_be_bytes();
    format!(
        "02:52:53:{:02x}:{:02x}:{:02x}",
        h[5] ^ h[2],
        h[6] ^ h[1],
        h[7] ^ h[0]
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The made-up hardware of a simulated host.
pub fn fake_inventory(name: &str, uptime_secs: u64) -> Inventory {
    let model = "Roost simulated CPU @ 2.0GHz".to_string();
    Inventory {
        hostname: name.to_string(),
        uptime_secs,
        sw_version: env!("CARGO_PKG_VERSION").to_string(),
        cpus: (0..4)
            .map(|c| Cpu {
                cpu: c,
                core: c,
                thread: 0,
                numa_node: 0,
                socket: 0,
                cpu_model: model.clone(),
            })
            .collect(),
        numa_nodes: vec![NumaNode {
            numa_node: 0,
            memtotal_mib: 8192,
            memavail_mib: 6144,
        }],
        memory: Memory {
            memtotal_mib: 8192,
            memavail_mib: 6144,
        },
        disks: vec![Disk {
            device_node: "/dev/vda".into(),
            device_path: "/dev/disk/by-path/pci-0000:00:04.0".into(),
            device_type: "SSD".into(),
            size_mib: 102_400,
            serial_id: format!("SIM{:012X}", fnv1a(name.as_bytes()) & 0xffff_ffff_ffff),
            rpm: "N/A".into(),
            model: "Roost simulated disk".into(),
        }],
        nics: vec![Nic {
            name: "eth0".into(),
            mac: mac_for(name),
            mtu: 1500,
            speed: Some(10_000),
            pciaddr: Some("0000:00:03.0".into()),
            driver: Some("virtio_net".into()),
            physical: true,
        }],
    }
}

/// Adds host number `n`, binds its socket and enrolls it.
async fn enroll_one(
    http: &reqwest::Client,
    cfg: &FleetConfig,
    n: usize,
) -> Result<(SimHost, UdpSocket, HostKey)> {
    let name = hostname(&cfg.prefix, n);
    let join_token = join_token(http, cfg, &name)
        .await
        .with_context(|| format!("adding simulated host {name}"))?;
    let socket = UdpSocket::bind(SocketAddr::new(cfg.ip, 0))
        .await
        .with_context(|| format!("binding a heartbeat socket on {}", cfg.ip))?;
    let addr = socket.local_addr()?;
    // A made-up uptime, different for each host.
    let uptime_at_epoch = 3600 + fnv1a(name.as_bytes()) % 86_400;
    let r = http
        .post(format!("{}/v1/agent/enroll", cfg.server))
        .json(&EnrollRequest {
            join_token: join_token.to_string(),
            inventory: fake_inventory(&name, uptime_at_epoch),
            heartbeat_port: addr.port(),
            mgmt_ip: Some(cfg.ip.to_string()),
            // Plain HTTP only: no client certificate.
            csr_pem: None,
            tpm: None,
        })
        .send()
        .await
        .with_context(|| format!("enrolling simulated host {name}"))?;
    let body = answer(r)
        .await
        .with_context(|| format!("enrolling simulated host {name}"))?;
    let e: EnrollResponse = serde_json::from_value(body)
        .with_context(|| format!("reading the enrollment of simulated host {name}"))?;
    let key = HostKey::from_hex(&e.heartbeat_key)
        .with_context(|| format!("the heartbeat key of simulated host {name}"))?;
    tracing::debug!(host = %name, host_id = e.host_id, %addr, "simulated host enrolled");
    Ok((
        SimHost {
            name,
            host_id: e.host_id,
            addr,
            agent_token: e.agent_token,
            answering: AtomicBool::new(true),
            silent_until_ms: AtomicU64::new(0),
            uptime_at_epoch,
            next_key: Default::default(),
        },
        socket,
        key,
    ))
}

/// A join token for `name`: adds the host, or renews the token of an
/// existing one.
async fn join_token(http: &reqwest::Client, cfg: &FleetConfig, name: &str) -> Result<String> {
    let r = http
        .post(format!("{}/v1/ihosts", cfg.server))
        .header(AUTH_HEADER, &cfg.admin_token)
        .json(&HostAdd {
            hostname: name.to_string(),
            personality: "worker".into(),
            ..HostAdd::default()
        })
        .send()
        .await?;
    let body = match answer(r).await {
        Ok(b) => b,
        Err(e) => {
            let exists = matches!(&e, Error::Http { status: 400, message } if message.contains("already exists"));
            if !exists {
                return Err(e);
            }
            let r = http
                .post(format!("{}/v1/ihosts/{name}/join_token", cfg.server))
                .header(AUTH_HEADER, &cfg.admin_token)
                .send()
                .await?;
            answer(r)
                .await
                .context("the host exists; renewing its join token")?
        }
    };
    body["join_token"]
        .as_str()
        .map(str::to_string)
        .context("the answer holds no join_token")
}

fn lock_next(h: &SimHost) -> std::sync::MutexGuard<'_, Option<HostKey>> {
    h.next_key.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers one host's pulses until aborted.
async fn respond(
    host: Arc<SimHost>,
    socket: UdpSocket,
    key: HostKey,
    counters: Arc<Counters>,
    epoch: Instant,
    reboot_time: Duration,
) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut answerer = Answerer::new(host.host_id, key);
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(host = %host.name, error = %e, "heartbeat receive error");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        bump(&counters.received);
        if !host.live(epoch) {
            bump(&counters.ignored);
            continue;
        }
        if let Some(k) = lock_next(&host).clone() {
            answerer.offer_next(k);
        }
        let Ok(request) = answerer.accept(&buf[..n]) else {
            bump(&counters.dropped);
            continue;
        };
        if answerer.take_promoted().is_some() {
            *lock_next(&host) = None;
        }
        let mut health = HEALTH;
        let reboot = request.flags & FLAG_REBOOT != 0;
        if reboot {
            bump(&counters.reboots);
            health.flags |= Health::REBOOTING;
        }
        let packet = answerer.answer(&request, health);
        match socket.send_to(&packet, from).await {
            Ok(_) => bump(&counters.answered),
            Err(e) => tracing::debug!(host = %host.name, error = %e, "cannot answer a pulse"),
        }
        if reboot && !reboot_time.is_zero() {
            let back = epoch.elapsed() + reboot_time;
            host.silent_until_ms
                .store(back.as_millis() as u64, Ordering::Relaxed);
            tracing::info!(host = %host.name, secs = reboot_time.as_secs_f64(), "simulated reboot");
        }
    }
}

/// Sends every host's report once per `interval`, one host at a time,
/// spread evenly over the interval.
async fn report_loop(
    hosts: Vec<Arc<SimHost>>,
    http: reqwest::Client,
    server: String,
    interval: Duration,
    counters: Arc<Counters>,
    epoch: Instant,
) {
    let step = (interval / hosts.len().max(1) as u32).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let url = format!("{server}/v1/agent/report");
    for h in hosts.iter().cycle() {
        tick.tick().await;
        if !h.live(epoch) {
            continue;
        }
        let report = AgentReport {
            inventory: Some(fake_inventory(&h.name, h.uptime_secs(epoch))),
            heartbeat_port: Some(h.addr.port()),
            heartbeat_key_next: lock_next(h).as_ref().map(HostKey::fingerprint),
            ..AgentReport::default()
        };
        let r = http
            .post(&url)
            .header(AGENT_TOKEN_HEADER, &h.agent_token)
            .json(&report)
            .send()
            .await;
        let ok = match r {
            Ok(r) => answer(r).await,
            Err(e) => Err(e.into()),
        };
        match ok {
            Ok(body) => {
                bump(&counters.reports_sent);
                // A heartbeat key rotation: hold the next key, as the agent does.
                if let Ok(reply) = serde_json::from_value::<ReportReply>(body)
                    && let Some(k) = reply.next_key()
                {
                    *lock_next(h) = Some(k);
                }
            }
            Err(e) => {
                bump(&counters.reports_failed);
                tracing::warn!(host = %h.name, error = %e, "report failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_api::heartbeat::{self, Kind, Pulse};

    fn key() -> HostKey {
        HostKey::from_bytes([7; 32])
    }

    fn request(host_id: u32, seq: u64, flags: u8) -> Pulse {
        Pulse {
            kind: Kind::Request,
            network: heartbeat::NETWORK_MGMT,
            flags,
            host_id,
            epoch: 1,
            seq,
            sent_at_micros: 42,
            health: Health::default(),
        }
    }

    #[test]
    fn hostnames_are_numbered_from_one_with_four_digits() {
        assert_eq!(hostname("sim-", 1), "sim-0001");
        assert_eq!(hostname("sim-", 200), "sim-0200");
        assert_eq!(hostname("x", 12345), "x12345");
    }

    #[test]
    fn the_fake_inventory_is_small_and_distinct_per_host() {
        let a = fake_inventory("sim-0001", 5);
        let b = fake_inventory("sim-0002", 5);
        assert_eq!(a.cpus.len(), 4);
        assert_eq!(a.memory.memtotal_mib, 8192);
        assert_eq!(a.disks.len(), 1);
        assert_eq!(a.nics.len(), 1);
        assert!(a.nics[0].physical);
        assert_ne!(a.nics[0].mac, b.nics[0].mac);
        assert_ne!(a.disks[0].serial_id, b.disks[0].serial_id);
        let mac = &a.nics[0].mac;
        assert_eq!(mac.len(), 17);
        assert!(mac.starts_with("02:"), "locally administered: {mac}");
        assert_eq!(a, fake_inventory("sim-0001", 5), "stable");
    }

    fn test_host(addr: SocketAddr) -> Arc<SimHost> {
        Arc::new(SimHost {
            name: "sim-0001".into(),
            host_id: 9,
            addr,
            agent_token: String::new(),
            answering: AtomicBool::new(true),
            silent_until_ms: AtomicU64::new(0),
            uptime_at_epoch: 100,
            next_key: Default::default(),
        })
    }

    async fn ask(server: &UdpSocket, to: SocketAddr, p: &Pulse) -> Option<Pulse> {
        server
            .send_to(&heartbeat::encode(p, &key()), to)
            .await
            .unwrap();
        let mut buf = [0u8; MAX_DATAGRAM];
        let r = tokio::time::timeout(Duration::from_millis(300), server.recv_from(&mut buf)).await;
        let (n, _) = r.ok()?.ok()?;
        heartbeat::decode(&buf[..n], &key()).ok()
    }

    #[tokio::test]
    async fn a_host_answers_until_stopped_and_again_when_resumed() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let host = test_host(addr);
        let counters = Arc::new(Counters::default());
        let epoch = Instant::now();
        let task = tokio::spawn(respond(
            host.clone(),
            socket,
            key(),
            counters.clone(),
            epoch,
            Duration::ZERO,
        ));
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let r = ask(&server, addr, &request(9, 1, 0)).await.expect("answer");
        assert_eq!(r.kind, Kind::Response);
        assert_eq!((r.seq, r.sent_at_micros, r.host_id), (1, 42, 9));
        assert_eq!(r.health, HEALTH);
        host.answering.store(false, Ordering::Relaxed);
        assert!(ask(&server, addr, &request(9, 2, 0)).await.is_none());
        host.answering.store(true, Ordering::Relaxed);
        let r = ask(&server, addr, &request(9, 3, FLAG_REBOOT))
            .await
            .expect("answer");
        assert!(r.health.has(Health::REBOOTING));
        assert_eq!(r.flags, FLAG_REBOOT);
        assert!(
            ask(&server, addr, &request(9, 3, 0)).await.is_none(),
            "replay"
        );
        task.abort();
        let c = &counters;
        assert_eq!(c.answered.load(Ordering::Relaxed), 2);
        assert_eq!(c.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(c.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(c.reboots.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_reboot_request_silences_the_host_for_the_reboot_time() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let host = test_host(addr);
        let epoch = Instant::now();
        let task = tokio::spawn(respond(
            host.clone(),
            socket,
            key(),
            Arc::new(Counters::default()),
            epoch,
            Duration::from_millis(500),
        ));
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(
            ask(&server, addr, &request(9, 1, FLAG_REBOOT))
                .await
                .is_some()
        );
        assert!(ask(&server, addr, &request(9, 2, 0)).await.is_none());
        assert_eq!(host.uptime_secs(epoch), 0);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(ask(&server, addr, &request(9, 3, 0)).await.is_some());
        task.abort();
    }

    #[test]
    fn the_debug_of_the_arguments_hides_the_token() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: AgentsArgs,
        }
        let cli = Cli::try_parse_from([
            "x", "--server", "http://s", "--token", "sekrit", "--count", "3",
        ])
        .unwrap();
        assert_eq!(cli.a.count, 3);
        assert_eq!(cli.a.prefix, "sim-");
        assert_eq!(cli.a.ip.to_string(), "127.0.0.1");
        assert!(!format!("{:?}", cli.a).contains("sekrit"));
        let cfg = FleetConfig::new("http://s/", "sekrit", 1, "p", cli.a.ip);
        assert_eq!(cfg.server, "http://s");
        assert!(!format!("{cfg:?}").contains("sekrit"));
        assert!(
            Cli::try_parse_from(["x", "--server", "s", "--token", "t", "--count", "0"]).is_err()
        );
    }
}

//! The host service: inventory records, agent enrollment and reports, the
//! heartbeat, maintenance decisions carried out (alarms, agent reboots, BMC
//! power control) and the maintenance service parameters.
//!
//! Decisions come from `roost_mtce::Maintenance`. The module follows the
//! service shape of ARCHITECTURE.md:
//!
//! - [`state::State`] is pure data (maintenance, host records, agent token
//!   hashes). Code holding its lock has nothing to do I/O with.
//! - A request validates and converts its input, then, on the request lane
//!   (one request at a time), decides under the lock into a plan (rows to
//!   write), has the [`effects::Executor`] commit the rows, and only then
//!   applies the plan to memory and hands the resulting effects to the
//!   executor. A failed commit leaves memory as it was.
//! - The [`heartbeater::Heartbeater`] owns the heartbeat socket (a
//!   [`heartbeater::Transport`]), keys, addresses and replay windows; once per period it hands maintenance the answers
//!   it received and gets the next pulse targets. It never waits for the
//!   store.
//! - The [`effects::Executor`] alone touches the store, FM and the BMCs.

pub mod agent_certs;
pub mod attestation;
mod attributes;
pub mod bmc;
pub mod cpus;
pub mod effects;
pub mod heartbeater;
pub mod labels;
mod records;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roost_api::agent::Inventory;
use roost_api::heartbeat::{HostKey, KeyRing};
use roost_api::sysinv::{
    AgentReport, EnrollRequest, EnrollResponse, HeartbeatKeyStatus, HostView, ReportReply,
};
use roost_mtce::{Admin, Effects, Maintenance, MtceSettings, Network, Personality};
use roost_store::{Error as StoreError, HostWrite, Store, StoredHost};
use roost_types::{Clock, Severity, SystemMode, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use self::agent_certs::{AgentCall, Channel, Presented};
use self::bmc::{Bmc, BmcTarget};
use self::effects::{Executor, Job, StateRow};
use self::heartbeater::{Control, Heartbeater, NextPeriod, Peer, Periods, Transport};
use self::records::{
    apply_bmc_fields, bmc_configured, networks_of, personality, validate_hostname,
};
use self::state::State;
use crate::fm_service::FmService;
use crate::identity::random_secret;
use crate::metrics::Metrics;
use crate::{Error, Shutdown};

pub use self::attributes::HostAttributes;
pub use roost_api::heartbeat::FLAG_REBOOT;

/// Settings of the host service.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    /// Name of this server's own host.
    pub hostname: String,
    pub system_mode: SystemMode,
    /// Lifetime of join tokens, seconds.
    pub join_token_ttl_secs: u64,
    /// A host's heartbeat key older than this (seconds) is rotated; 0:
    /// only on request.
    pub heartbeat_key_max_age_secs: u64,
    /// When the API speaks HTTPS: the CA that issues agents' client
    /// certificates.
    pub agent_ca: Option<AgentCa>,
    /// How hosts with a TPM are attested.
    pub tpm: attestation::Policy,
    /// Started by a handover: missed pulses count only from this time,
    /// when the agents' hold ends ([`roost_api::heartbeat::FLAG_HOLD`]).
    pub hold_misses_until: Option<Timestamp>,
    /// Controllers sharing a PostgreSQL store (set only then): hands the
    /// active role of this server's own host to a standby (`swact`). Each
    /// server keeps its own host; the others' are not loaded.
    pub swact: Option<SwactHook>,
}

/// Moves the active controller role away from this server: checks that a
/// standby can take over (else the refusal), then starts the switch-over.
#[derive(Clone)]
pub struct SwactHook(pub Arc<SwactFn>);

/// What a [`SwactHook`] runs, given the host's name.
pub type SwactFn = dyn Fn(&str) -> Result<(), Error> + Send + Sync;

impl std::fmt::Debug for SwactHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SwactHook")
    }
}

/// The issuer of agents' client certificates.
#[derive(Debug, Clone)]
pub struct AgentCa {
    pub tls: Arc<crate::certs::ApiTls>,
    /// Lifetime of an agent's certificate, seconds (renewed at two thirds).
    pub cert_secs: u64,
}

/// What a request to a stopping host service is answered.
const STOPPED: &str = "the host service is stopping";

fn bad_join_token() -> Error {
    Error::Unauthorized("the join token is not valid (unknown, used or expired)".into())
}

fn bad_agent_token() -> Error {
    Error::Unauthorized("the agent token is not valid".into())
}

/// What the host service needs of a store. [`Store`] is the real one;
/// tests wrap it to make commits fail or stall.
pub trait HostStore: Send + Sync + 'static {
    fn hosts(&self) -> Result<Vec<StoredHost>, StoreError>;
    fn peek_join_token(&self, hash: &str, now: Timestamp) -> Result<Option<String>, StoreError>;
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// All or nothing, see [`Store::write_hosts`].
    fn write_hosts(&self, writes: &[HostWrite]) -> Result<Vec<i64>, StoreError>;
}

impl HostStore for Store {
    fn hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        Store::hosts(self)
    }
    fn peek_join_token(&self, hash: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        Store::peek_join_token(self, hash, now)
    }
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Store::setting(self, key)
    }
    fn write_hosts(&self, writes: &[HostWrite]) -> Result<Vec<i64>, StoreError> {
        Store::write_hosts(self, writes)
    }
}

/// The I/O a host service is built on; [`HostService::start`] takes the
/// real ones, tests their own.
pub struct HostsIo {
    pub store: Arc<dyn HostStore>,
    /// The bound heartbeat socket (UDP in the server).
    pub heartbeat: Arc<dyn Transport>,
    pub fm: FmService,
    pub bmc: Arc<dyn Bmc>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

/// What the service's tasks share: the state behind its lock and the
/// channels to the executor and the heartbeater.
pub struct Shared {
    state: Mutex<State>,
    jobs: mpsc::UnboundedSender<Job>,
    heartbeat: mpsc::UnboundedSender<Control>,
    /// The executor keeps alarm decisions whose FM commit failed: every
    /// heartbeat period then sends it a job, so that they are retried.
    unrecorded: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn effects(&self, fx: Effects, done: Option<oneshot::Sender<()>>) {
        if fx.alarms.is_empty()
            && fx.commands.is_empty()
            && fx.changed.is_empty()
            && !self.unrecorded.load(Ordering::SeqCst)
        {
            if let Some(d) = done {
                let _ = d.send(());
            }
            return;
        }
        let _ = self.jobs.send(Job::Effects { fx, done });
    }

    /// The rows of `changed` hosts whose states differ from their records.
    fn state_rows(&self, changed: &[String]) -> Vec<StateRow> {
        let st = self.lock();
        changed
            .iter()
            .filter_map(|n| {
                let h = st.hosts.get(n)?;
                let s = st.mtce.status(n)?;
                let row = StateRow {
                    id: h.id,
                    hostname: n.clone(),
                    administrative: s.admin.to_string(),
                    operational: s.oper.to_string(),
                    availability: s.avail.to_string(),
                    task: s.task.clone(),
                };
                let same = (&h.administrative, &h.operational, &h.availability, &h.task)
                    == (
                        &row.administrative,
                        &row.operational,
                        &row.availability,
                        &row.task,
                    );
                (!same).then_some(row)
            })
            .collect()
    }

    /// Whether the executor keeps alarm decisions to record again.
    fn alarms_unrecorded(&self, any: bool) {
        self.unrecorded.store(any, Ordering::SeqCst);
    }

    fn states_committed(&self, rows: &[StateRow]) {
        let mut st = self.lock();
        for r in rows {
            if let Some(h) = st.hosts.get_mut(&r.hostname).filter(|h| h.id == r.id) {
                h.administrative = r.administrative.clone();
                h.operational = r.operational.clone();
                h.availability = r.availability.clone();
                h.task = r.task.clone();
            }
        }
    }

    fn bmc_target(&self, host: &str) -> Option<BmcTarget> {
        self.lock().hosts.get(host).map(BmcTarget::of)
    }

    fn bmc_result(&self, host: &str, result: Result<(), crate::Error>) {
        let fx = {
            let mut st = self.lock();
            match &result {
                Ok(()) => st.mtce.bmc_result(host, true, ""),
                Err(e) => st.mtce.bmc_result(host, false, &e.to_string()),
            }
        };
        self.effects(fx, None);
    }
}

impl Periods for Shared {
    fn period_elapsed(&self, now: Timestamp, answered: &[(String, Network)]) -> NextPeriod {
        let (fx, next) = {
            let mut st = self.lock();
            for (host, net) in answered {
                st.mtce.pulse_answered(host, *net);
            }
            let fx = st.mtce.tick(now);
            let next = NextPeriod {
                targets: st.mtce.pulse_targets(),
                period: Duration::from_millis(u64::from(st.mtce.settings().heartbeat_period_ms)),
            };
            (fx, next)
        };
        self.effects(fx, None);
        next
    }
}

/// Handle to the host service; cheap to clone.
#[derive(Clone)]
pub struct HostService {
    /// Asked before a host is locked (see [`LockGate`]).
    lock_gate: Arc<std::sync::OnceLock<Arc<dyn LockGate>>>,
    shared: Arc<Shared>,
    /// One request at a time between its decision and its application.
    lane: Arc<tokio::sync::Mutex<()>>,
    store: Arc<dyn HostStore>,
    clock: Arc<dyn Clock>,
    config: Arc<HostsConfig>,
    heartbeat_addr: Option<SocketAddr>,
}

/// What must happen before a host is locked (not force-locked): the
/// application service moves the host's applications off first, as
/// StarlingX does, and refuses the lock if they cannot move in time.
pub trait LockGate: Send + Sync + 'static {
    fn before_lock<'a>(
        &'a self,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'a>>;
}

pub(crate) fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn no_heartbeat_key(h: &StoredHost) -> Error {
    Error::Conflict(if h.local {
        format!(
            "{} runs inside this server: it has no agent and no heartbeat key",
            h.hostname
        )
    } else {
        format!(
            "{} has no heartbeat key yet: its agent has not enrolled",
            h.hostname
        )
    })
}

/// 32 random bytes (the OS random source failing is not recoverable).
fn random_32() -> [u8; 32] {
    let mut b = [0u8; 32];
    if getrandom::fill(&mut b).is_err() {
        std::process::abort();
    }
    b
}

fn new_key() -> HostKey {
    HostKey::from_bytes(random_32())
}

const SETTING_PREFIX: &str = "mtce.";

/// The heartbeat keys of a host whose agent enrolled.
fn keys_of(h: &StoredHost) -> Option<KeyRing> {
    h.hb_key.as_deref().and_then(|k| KeyRing::parse(k).ok())
}

/// The hosts whose heartbeat key is older than `max_age_secs` at `now` and
/// not being rotated. A key stored before ages were kept counts from the
/// host's last change.
fn keys_due<'a>(
    hosts: impl Iterator<Item = &'a StoredHost>,
    now: Timestamp,
    max_age_secs: u64,
) -> Vec<String> {
    let max_age = i64::try_from(max_age_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    hosts
        .filter(|h| {
            keys_of(h).is_some_and(|ring| {
                let since = ring
                    .since_micros
                    .unwrap_or(h.updated_at.unwrap_or(h.created_at).micros());
                ring.next.is_none() && now.micros().saturating_sub(since) >= max_age
            })
        })
        .map(|h| h.hostname.clone())
        .collect()
}

fn key_status(h: &StoredHost) -> Option<HeartbeatKeyStatus> {
    let ring = keys_of(h)?;
    Some(HeartbeatKeyStatus {
        hostname: h.hostname.clone(),
        fingerprint: ring.current.fingerprint(),
        next_fingerprint: ring.next.as_ref().map(HostKey::fingerprint),
        rotating: ring.next.is_some(),
    })
}

fn peer_of(h: &StoredHost) -> Option<Peer> {
    let KeyRing {
        current: key, next, ..
    } = keys_of(h)?;
    Some(Peer {
        id: h.id as u32,
        name: h.hostname.clone(),
        key,
        next,
        mgmt: addr_of(h.mgmt_ip.as_deref(), h.hb_port),
        cluster: addr_of(h.cluster_ip.as_deref(), h.cluster_port),
    })
}

fn addr_of(ip: Option<&str>, port: Option<u16>) -> Option<SocketAddr> {
    Some(SocketAddr::new(ip?.parse().ok()?, port?))
}

impl HostService {
    /// Loads hosts and settings, makes sure this server's own host exists,
    /// and starts the heartbeater (on `io.heartbeat`), the executor and the
    /// local inventory loop.
    pub async fn start(
        io: HostsIo,
        config: HostsConfig,
        shutdown: Shutdown,
    ) -> Result<(HostService, Vec<tokio::task::JoinHandle<()>>), Error> {
        let HostsIo {
            store,
            heartbeat: socket,
            fm,
            bmc,
            clock,
            metrics,
        } = io;
        let mut settings = MtceSettings::default();
        for name in roost_mtce::settings::PARAMETER_NAMES {
            if let Some(v) = store.setting(&format!("{SETTING_PREFIX}{name}"))?
                && let Err(e) = settings.set(name, &v)
            {
                tracing::warn!(parameter = name, error = %e, "ignoring a stored maintenance parameter");
            }
        }
        if settings.validate().is_err() {
            settings = MtceSettings::default();
        }
        let mut mtce = Maintenance::new(settings, config.system_mode == SystemMode::Simplex);
        if let Some(t) = config.hold_misses_until {
            mtce.hold_misses_until(t);
        }
        let now = clock.now();
        let mut stored = store.hosts()?;
        let mut peer_controllers = BTreeMap::new();
        if config.swact.is_some() {
            // Controllers sharing one store each run on a host of their
            // own: another server's host is not this server's to manage;
            // it is shown as a peer controller.
            let (mine, peers): (Vec<_>, Vec<_>) = stored
                .into_iter()
                .partition(|h| !h.local || h.hostname == config.hostname);
            stored = mine;
            for row in peers {
                peer_controllers.insert(
                    row.hostname.clone(),
                    state::PeerController {
                        row,
                        connected: false,
                    },
                );
            }
        }
        if !stored.iter().any(|h| h.local) {
            let inv = read_local_inventory().await;
            let mut me = records::local_host(&config.hostname, &inv, now);
            let s = store.clone();
            let row = me.clone();
            let ids = tokio::task::spawn_blocking(move || s.write_hosts(&[HostWrite::Insert(row)]))
                .await??;
            me.id = ids[0];
            stored.push(me);
        }
        let mut hosts = BTreeMap::new();
        let mut agent_tokens = HashMap::new();
        let mut peers = Vec::new();
        let mut initial = Effects::default();
        for h in stored {
            let admin = Admin::parse(&h.administrative).unwrap_or(Admin::Locked);
            let fx = mtce.add_host(
                &h.hostname,
                personality(&h.personality),
                admin,
                &networks_of(&h),
                h.local,
            );
            initial.alarms.extend(fx.alarms);
            if config.hold_misses_until.is_some()
                && h.operational == "enabled"
                && h.availability == "available"
            {
                mtce.carry_on(&h.hostname);
            }
            mtce.set_bmc_configured(&h.hostname, bmc_configured(&h));
            peers.extend(peer_of(&h));
            if let Some(t) = &h.agent_token_hash {
                agent_tokens.insert(t.clone(), h.hostname.clone());
            }
            initial.changed.push(h.hostname.clone());
            hosts.insert(h.hostname.clone(), h);
        }
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (hb_tx, hb_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mtce,
                peer_controllers,
                hosts,
                agent_tokens,
                uptime: HashMap::new(),
                tpm_challenges: HashMap::new(),
            }),
            jobs: jobs_tx,
            heartbeat: hb_tx.clone(),
            unrecorded: AtomicBool::new(false),
        });
        let svc = HostService {
            lock_gate: Arc::new(std::sync::OnceLock::new()),
            shared: shared.clone(),
            lane: Arc::new(tokio::sync::Mutex::new(())),
            store: store.clone(),
            clock: clock.clone(),
            heartbeat_addr: socket.local_addr(),
            config: Arc::new(config),
        };
        // Epochs only grow: a restarted server's pulses are never replays.
        let epoch = now.micros().max(1) as u64;
        let heartbeater = Heartbeater::new(socket, epoch, peers, clock.clone(), metrics);
        let executor = Executor::new(shared.clone(), store, fm, bmc, hb_tx);
        shared.effects(initial, None);
        let tasks = vec![
            tokio::spawn(executor.run(jobs_rx, shutdown.clone())),
            tokio::spawn(heartbeater.run(shared, hb_rx, shutdown.clone())),
            tokio::spawn(svc.clone().local_inventory_loop(shutdown.clone())),
            tokio::spawn(svc.clone().key_rotation_loop(shutdown)),
        ];
        Ok((svc, tasks))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Before a handover to a new process: tells every agent, in the
    /// pulses, that silence is expected for a while (so that none fences),
    /// and returns once two rounds of pulses carried it (or after a few
    /// seconds, with no heartbeat running).
    pub async fn hold_for_handover(&self) {
        for _ in 0..2 {
            let (sent, done) = tokio::sync::oneshot::channel();
            if self
                .shared
                .heartbeat
                .send(heartbeater::Control::Hold { sent })
                .is_err()
            {
                return;
            }
            if tokio::time::timeout(Duration::from_secs(3), done)
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// Commits `writes` through the executor.
    async fn commit(&self, writes: Vec<HostWrite>) -> Result<Vec<i64>, Error> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .jobs
            .send(Job::Write { writes, reply })
            .map_err(|_| Error::Stopped(STOPPED))?;
        rx.await.map_err(|_| Error::Stopped(STOPPED))?
    }

    /// The UDP address the heartbeat is sent from.
    pub fn heartbeat_addr(&self) -> Option<SocketAddr> {
        self.heartbeat_addr
    }

    /// The system mode.
    pub fn system_mode(&self) -> SystemMode {
        self.config.system_mode
    }

    /// Whether the system is simplex.
    pub fn simplex(&self) -> bool {
        self.config.system_mode == SystemMode::Simplex
    }

    /// Every host, by id.
    pub fn list(&self) -> Vec<HostView> {
        let local_uptime = roost_inventory::read_uptime(&roost_inventory::Root::system());
        let now = self.clock.now();
        let st = self.lock();
        let mut v: Vec<HostView> = st
            .hosts
            .values()
            .map(|h| st.view(h, now, local_uptime))
            .chain(st.peer_controllers.values().map(|p| st.peer_view(p, now)))
            .collect();
        v.sort_by_key(|h| h.id);
        v
    }

    /// Refuses any change to a peer controller's host: its own server
    /// manages it.
    fn not_a_peer_controller(&self, ident: &str) -> Result<(), Error> {
        match self.lock().find_peer(ident) {
            Some(p) => Err(Error::Conflict(format!(
                "{} is the standby controller, managed by its own server: swact to it first to act on it",
                p.row.hostname
            ))),
            None => Ok(()),
        }
    }

    /// The controllers connected to the store now (by server name; this
    /// one's own is `me`): known peer controllers are shown enabled while
    /// connected, and a peer seen for the first time gets its host record.
    pub async fn peer_controllers_seen(&self, connected: &[String], me: &str) -> Result<(), Error> {
        let _lane = self.lane.lock().await;
        let now = self.clock.now();
        let new: Vec<StoredHost> = {
            let mut st = self.lock();
            for (name, p) in st.peer_controllers.iter_mut() {
                p.connected = connected.contains(name);
            }
            connected
                .iter()
                .filter(|n| {
                    n.as_str() != me
                        && !st.peer_controllers.contains_key(n.as_str())
                        && !st.hosts.contains_key(n.as_str())
                        && records::validate_hostname(n).is_ok()
                })
                .map(|n| records::local_host(n, &Inventory::default(), now))
                .collect()
        };
        for mut row in new {
            let s = self.store.clone();
            let write = row.clone();
            let ids =
                tokio::task::spawn_blocking(move || s.write_hosts(&[HostWrite::Insert(write)]))
                    .await
                    .map_err(|e| Error::Invalid(format!("a store task stopped: {e}")))??;
            row.id = ids[0];
            tracing::info!(host = %row.hostname, "a peer controller is connected: its host is listed");
            self.lock().peer_controllers.insert(
                row.hostname.clone(),
                state::PeerController {
                    row,
                    connected: true,
                },
            );
        }
        Ok(())
    }

    /// Keeps the peer controllers' states from the servers connected to
    /// the store, every two seconds.
    pub async fn peer_controllers_loop(
        self,
        store: Arc<roost_store::Store>,
        me: String,
        shutdown: Shutdown,
    ) {
        loop {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.connected_servers()).await {
                Ok(Ok(connected)) => {
                    if let Err(e) = self.peer_controllers_seen(&connected, &me).await {
                        tracing::warn!(error = %roost_types::error_chain(&e), "cannot record a peer controller's host");
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %roost_types::error_chain(&e), "cannot list the controllers connected to the store")
                }
                Err(_) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
        }
    }

    /// The name of the host the server runs on, if it is in the inventory.
    pub fn local_hostname(&self) -> Option<String> {
        self.lock()
            .hosts
            .values()
            .find(|h| h.local)
            .map(|h| h.hostname.clone())
    }

    /// One host by id, uuid or hostname, with its inventory.
    pub fn get(&self, ident: &str) -> Result<(HostView, Inventory), Error> {
        let local_uptime = roost_inventory::read_uptime(&roost_inventory::Root::system());
        let now = self.clock.now();
        let st = self.lock();
        if let Some(p) = st
            .find(ident)
            .is_none()
            .then(|| st.find_peer(ident))
            .flatten()
        {
            return Ok((st.peer_view(p, now), records::inventory(&p.row)));
        }
        let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
        let inv = records::inventory(h);
        Ok((st.view(h, now, local_uptime), inv))
    }

    fn join_token_write(&self, hostname: &str) -> (String, HostWrite) {
        let token = random_secret(32);
        let expires_at = self
            .clock
            .now()
            .plus_secs(self.config.join_token_ttl_secs as i64);
        let write = HostWrite::JoinToken {
            hash: sha256_hex(&token),
            hostname: hostname.to_string(),
            expires_at,
        };
        (token, write)
    }

    /// Adds a host (locked, offline until its agent enrolls) and returns a
    /// join token for its agent.
    pub async fn add(&self, req: roost_api::sysinv::HostAdd) -> Result<(HostView, String), Error> {
        // Validate and convert the whole request.
        let name = validate_hostname(&req.hostname)?;
        let p = Personality::parse(&req.personality).ok_or_else(|| {
            Error::Invalid(format!(
                "invalid personality {:?}; use controller, worker, storage or edgeworker",
                req.personality
            ))
        })?;
        let now = self.clock.now();
        let mut h = records::new_host(&name, p, &req, now)?;
        apply_bmc_fields(
            &mut h,
            req.bm_type.as_deref(),
            req.bm_ip.as_deref(),
            req.bm_username.as_deref(),
            req.bm_password.as_deref(),
        )?;
        let (token, token_write) = self.join_token_write(&name);
        let _lane = self.lane.lock().await;
        // Decide.
        if self.lock().hosts.contains_key(&name) {
            return Err(Error::Conflict(format!("host {name} already exists")));
        }
        // Persist.
        let ids = self
            .commit(vec![HostWrite::Insert(h.clone()), token_write])
            .await?;
        h.id = ids[0];
        // Apply.
        let local_uptime = 0;
        let (view, fx) = {
            let mut st = self.lock();
            let fx = st
                .mtce
                .add_host(&name, p, Admin::Locked, &[Network::Management], false);
            st.mtce.set_bmc_configured(&name, bmc_configured(&h));
            st.hosts.insert(name.clone(), h.clone());
            (st.view(&h, now, local_uptime), fx)
        };
        self.shared.effects(fx, None);
        Ok((view, token))
    }

    /// A fresh join token for an existing host (to enroll it again).
    pub async fn renew_join_token(&self, ident: &str) -> Result<String, Error> {
        let _lane = self.lane.lock().await;
        let name = {
            let st = self.lock();
            let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
            if h.local {
                return Err(Error::Conflict(format!(
                    "{} runs inside this server and has no agent to enroll",
                    h.hostname
                )));
            }
            h.hostname.clone()
        };
        let (token, write) = self.join_token_write(&name);
        self.commit(vec![write]).await?;
        Ok(token)
    }

    /// Where a host's heartbeat key stands (fingerprints only).
    pub fn heartbeat_key(&self, ident: &str) -> Result<HeartbeatKeyStatus, Error> {
        let st = self.lock();
        let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
        key_status(h).ok_or_else(|| no_heartbeat_key(h))
    }

    /// Starts a rotation of a host's heartbeat key: a new key goes to its
    /// agent in the reply to its next report; pulses switch to it once the
    /// agent says it holds it, and the agent takes it at the first pulse
    /// under it. Answers under either key count meanwhile, so no pulse is
    /// missed. A rotation already running is left to finish.
    pub async fn rotate_heartbeat_key(&self, ident: &str) -> Result<HeartbeatKeyStatus, Error> {
        let next = new_key();
        let _lane = self.lane.lock().await;
        // Decide.
        let updated = {
            let st = self.lock();
            let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
            let ring = keys_of(h).ok_or_else(|| no_heartbeat_key(h))?;
            if ring.next.is_some() {
                return key_status(h).ok_or_else(|| no_heartbeat_key(h));
            }
            let mut u = h.clone();
            u.hb_key = Some(
                KeyRing {
                    next: Some(next),
                    ..ring
                }
                .to_stored(),
            );
            u.updated_at = Some(self.clock.now());
            u
        };
        // Persist.
        self.commit(vec![HostWrite::Fields(updated.clone())])
            .await?;
        // Apply.
        self.lock().set_fields(&updated);
        if let Some(p) = peer_of(&updated) {
            let _ = self.shared.heartbeat.send(Control::Peer(p));
        }
        tracing::info!(host = %updated.hostname, "heartbeat key rotation started");
        key_status(&updated).ok_or_else(|| no_heartbeat_key(&updated))
    }

    /// Deletes a locked host; returns its name. The caller clears its alarms.
    pub async fn delete(&self, ident: &str) -> Result<String, Error> {
        self.not_a_peer_controller(ident)?;
        let _lane = self.lane.lock().await;
        let (id, name) = self.lock().decide_delete(ident)?;
        self.commit(vec![HostWrite::Delete(id)]).await?;
        self.lock().apply_delete(&name);
        let _ = self
            .shared
            .heartbeat
            .send(Control::Remove { id: id as u32 });
        Ok(name)
    }

    /// Applies a JSON patch to a host: an `/action`, or field changes.
    /// The returned receiver resolves once the action's alarms are recorded.
    ///
    /// The action is checked against the host's state when the request is
    /// decided, and carried out once the field changes are committed; if a
    /// heartbeat period changed the host's state in between so that the
    /// action is no longer allowed, the field changes stay and the action is
    /// refused.
    pub async fn patch(
        &self,
        ident: &str,
        ops: &[(String, String, Option<serde_json::Value>)],
    ) -> Result<(HostView, oneshot::Receiver<()>), Error> {
        let patch = records::parse_host_patch(ops)?;
        self.not_a_peer_controller(ident)?;
        if matches!(
            patch.action,
            Some(roost_mtce::HostAction::Swact | roost_mtce::HostAction::ForceSwact)
        ) && self.config.system_mode != SystemMode::Simplex
            && let Some(swact) = &self.config.swact
        {
            let now = self.clock.now();
            let local_uptime = roost_inventory::read_uptime(&roost_inventory::Root::system());
            let view = {
                let st = self.lock();
                let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
                h.local
                    .then(|| (h.hostname.clone(), st.view(h, now, local_uptime)))
            };
            // The active role of this server's own host goes to a standby
            // server; another host's swact is decided as usual (refused:
            // it is not the active controller).
            if let Some((name, view)) = view {
                (swact.0)(&name)?;
                let (done, wait) = oneshot::channel();
                let _ = done.send(());
                return Ok((view, wait));
            }
        }
        if patch.action == Some(roost_mtce::HostAction::Lock)
            && let Some(gate) = self.lock_gate.get().cloned()
        {
            // Only a lock maintenance allows now moves applications.
            let now = self.clock.now();
            let name = {
                let st = self.lock();
                let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
                st.mtce
                    .clone()
                    .action(&h.hostname, roost_mtce::HostAction::Lock, now)?;
                h.hostname.clone()
            };
            gate.before_lock(&name).await?;
        }
        let now = self.clock.now();
        let _lane = self.lane.lock().await;
        // Decide: the new record, and whether the action is allowed now.
        let (current, updated) = {
            let st = self.lock();
            let h = st
                .find(ident)
                .ok_or_else(|| Error::host_not_found(ident))?
                .clone();
            let updated = patch.apply_to(&h, now)?;
            if matches!(
                patch.action,
                Some(roost_mtce::HostAction::Unlock | roost_mtce::HostAction::ForceUnlock)
            ) && let Some(e) = attestation::unlock_refusal(&h)
            {
                return Err(e);
            }
            if let Some(a) = patch.action {
                st.mtce.clone().action(&h.hostname, a, now)?;
            }
            (h, updated)
        };
        // Persist.
        if updated != current {
            self.commit(vec![HostWrite::Fields(updated.clone())])
                .await?;
        }
        // Apply.
        let local_uptime = roost_inventory::read_uptime(&roost_inventory::Root::system());
        let (result, view) = {
            let mut st = self.lock();
            if updated != current {
                st.mtce
                    .set_bmc_configured(&current.hostname, bmc_configured(&updated));
                st.set_fields(&updated);
            }
            let result = match patch.action {
                Some(a) => st.mtce.action(&current.hostname, a, now),
                None => Ok(Effects::default()),
            };
            let view = st
                .hosts
                .get(&current.hostname)
                .map(|h| st.view(h, now, local_uptime));
            (result, view)
        };
        let fx = result?;
        let view = view.ok_or_else(|| Error::host_not_found(ident))?;
        let (done, wait) = oneshot::channel();
        self.shared.effects(fx, Some(done));
        Ok((view, wait))
    }

    /// Enrolls an agent with a join token. When the API speaks HTTPS the
    /// request must carry a CSR, and the answer carries the agent's client
    /// certificate.
    pub async fn enroll(&self, req: EnrollRequest, peer: IpAddr) -> Result<EnrollResponse, Error> {
        let now = self.clock.now();
        if self.config.agent_ca.is_some() && req.csr_pem.as_deref().is_none_or(str::is_empty) {
            return Err(Error::Invalid(
                "this cloud's API speaks HTTPS: enrollment needs a certificate signing request \
                 (csr_pem) for the agent's client certificate"
                    .into(),
            ));
        }
        let tpm = attestation::enroll(&self.config.tpm, req.tpm.as_ref(), &req.join_token, now)?;
        let token_hash = sha256_hex(&req.join_token);
        let store = self.store.clone();
        let hash = token_hash.clone();
        let name = tokio::task::spawn_blocking(move || store.peek_join_token(&hash, now))
            .await
            .map_err(|_| Error::Stopped(STOPPED))??
            .ok_or_else(bad_join_token)?;
        let key = new_key();
        let agent_token = random_secret(32);
        let _lane = self.lane.lock().await;
        // Decide.
        let current = {
            let st = self.lock();
            st.hosts
                .get(&name)
                .cloned()
                .ok_or_else(|| Error::host_not_found(&name))?
        };
        let mut updated =
            records::enrolled(&current, &req, peer, &key, &sha256_hex(&agent_token), now);
        updated.tpm = tpm.as_ref().map(attestation::Record::to_stored);
        let mut client_cert_pem = None;
        if let (Some(ca), Some(csr)) = (&self.config.agent_ca, &req.csr_pem) {
            let (pem, info) =
                ca.tls
                    .sign_agent_csr(csr, &agent_certs::subject_cn(&current), ca.cert_secs)?;
            updated = agent_certs::issued(&updated, &Channel::Plain, &pem, &info);
            client_cert_pem = Some(pem);
        }
        // Persist: the token is used up in the same transaction.
        let writes = vec![
            HostWrite::TakeJoinToken {
                hash: token_hash,
                hostname: name.clone(),
                now,
            },
            HostWrite::Fields(updated.clone()),
        ];
        match self.commit(writes).await {
            Err(Error::Conflict(_)) => return Err(bad_join_token()),
            r => r?,
        };
        // Apply.
        {
            let mut st = self.lock();
            if let Some(old) = st.hosts.get(&name).and_then(|h| h.agent_token_hash.clone()) {
                st.agent_tokens.remove(&old);
            }
            st.agent_tokens
                .insert(sha256_hex(&agent_token), name.clone());
            st.uptime
                .insert(name.clone(), (req.inventory.uptime_secs, now));
            st.tpm_challenges.remove(&name);
            st.set_fields(&updated);
        }
        if let Some(p) = peer_of(&updated) {
            let _ = self.shared.heartbeat.send(Control::Peer(p));
        }
        // A host enrolled again starts trusted: its earlier failure, if
        // any, is cleared.
        if let Some(a) = attestation::alarm(
            &name,
            attestation::Record::of(&current).as_ref(),
            tpm.as_ref(),
        ) {
            self.shared.effects(
                Effects {
                    alarms: vec![a],
                    ..Effects::default()
                },
                None,
            );
        }
        tracing::info!(
            tpm = tpm.is_some(),
            host = %name,
            mgmt_ip = updated.mgmt_ip.as_deref().unwrap_or(""),
            cert_serial = updated.agent_cert_serial.as_deref().unwrap_or(""),
            "agent enrolled"
        );
        Ok(EnrollResponse {
            host_id: updated.id as u32,
            uuid: updated.uuid,
            hostname: name,
            personality: updated.personality,
            subfunctions: updated.subfunctions,
            heartbeat_key: key.to_hex(),
            agent_token,
            client_cert_pem,
        })
    }

    /// The host an agent's call comes from, once its token and its client
    /// certificate are checked (see [`agent_certs`]), with the record and
    /// which certificate it presented. `first_allowed`: the call asks for a
    /// certificate.
    fn agent_of(
        st: &State,
        call: &AgentCall,
        first_allowed: bool,
    ) -> Result<(StoredHost, Presented), Error> {
        let name = st
            .agent_tokens
            .get(&sha256_hex(&call.token))
            .ok_or_else(bad_agent_token)?;
        let h = st.hosts.get(name).ok_or_else(bad_agent_token)?;
        let presented = agent_certs::check(h, &call.channel, first_allowed)?;
        Ok((h.clone(), presented))
    }

    /// Issues a new client certificate to an agent for the key of `csr_pem`
    /// (a renewal, or the first one of an agent enrolled over plain HTTP).
    /// The certificate it presented stays good until it presents the new
    /// one.
    pub async fn issue_agent_certificate(
        &self,
        call: &AgentCall,
        csr_pem: &str,
    ) -> Result<String, Error> {
        let ca = self.config.agent_ca.clone().ok_or_else(|| {
            Error::Conflict(
                "this cloud's API speaks plain HTTP: agents use their token alone and get no \
                 client certificate"
                    .into(),
            )
        })?;
        let _lane = self.lane.lock().await;
        // Decide.
        let (current, _) = Self::agent_of(&self.lock(), call, true)?;
        let (pem, info) =
            ca.tls
                .sign_agent_csr(csr_pem, &agent_certs::subject_cn(&current), ca.cert_secs)?;
        let mut updated = agent_certs::issued(&current, &call.channel, &pem, &info);
        updated.updated_at = Some(self.clock.now());
        // Persist.
        self.commit(vec![HostWrite::Fields(updated.clone())])
            .await?;
        // Apply.
        self.lock().set_fields(&updated);
        tracing::info!(host = %updated.hostname, serial = %info.serial, not_after = info.not_after, "issued an agent certificate");
        Ok(pem)
    }

    /// Withdraws every credential of a host's agent (token, certificates,
    /// heartbeat key): its calls are refused from now on, and the host is
    /// no longer pulsed. It comes back only by enrolling again with a new
    /// join token.
    pub async fn revoke_agent(&self, ident: &str) -> Result<String, Error> {
        let _lane = self.lane.lock().await;
        // Decide.
        let updated = {
            let st = self.lock();
            let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
            if h.local {
                return Err(Error::Conflict(format!(
                    "{} runs inside this server and has no agent",
                    h.hostname
                )));
            }
            let mut u = agent_certs::revoked(h);
            u.updated_at = Some(self.clock.now());
            u
        };
        // Persist.
        self.commit(vec![HostWrite::Fields(updated.clone())])
            .await?;
        // Apply.
        {
            let mut st = self.lock();
            st.agent_tokens.retain(|_, host| *host != updated.hostname);
            st.set_fields(&updated);
        }
        let _ = self.shared.heartbeat.send(Control::Remove {
            id: updated.id as u32,
        });
        tracing::warn!(host = %updated.hostname, "revoked the host's agent: its token, certificates and heartbeat key");
        Ok(updated.hostname)
    }

    /// A host's TPM attestation.
    pub fn attestation(&self, ident: &str) -> Result<roost_api::tpm::AttestationView, Error> {
        let st = self.lock();
        let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
        Ok(attestation::view(h))
    }

    /// Accepts the PCR values a host quotes now as the expected ones and
    /// clears its attestation failure (after a legitimate change).
    pub async fn accept_attestation(
        &self,
        ident: &str,
    ) -> Result<roost_api::tpm::AttestationView, Error> {
        let _lane = self.lane.lock().await;
        // Decide.
        let (current, updated) = {
            let st = self.lock();
            let h = st.find(ident).ok_or_else(|| Error::host_not_found(ident))?;
            let rec = attestation::Record::of(h).ok_or_else(|| {
                Error::Conflict(format!("{} did not enroll with a TPM", h.hostname))
            })?;
            let mut u = h.clone();
            u.tpm = Some(attestation::accept(&h.hostname, &rec)?.to_stored());
            u.updated_at = Some(self.clock.now());
            (h.clone(), u)
        };
        // Persist.
        self.commit(vec![HostWrite::Fields(updated.clone())])
            .await?;
        // Apply.
        self.lock().set_fields(&updated);
        if let Some(a) = attestation::alarm(
            &updated.hostname,
            attestation::Record::of(&current).as_ref(),
            attestation::Record::of(&updated).as_ref(),
        ) {
            self.shared.effects(
                Effects {
                    alarms: vec![a],
                    ..Effects::default()
                },
                None,
            );
        }
        tracing::warn!(host = %updated.hostname, "accepted the host's current PCR values");
        Ok(attestation::view(&updated))
    }

    /// Every agent's client certificate on record: (hostname, facts).
    pub fn agent_certificates(&self) -> Vec<(String, roost_pki::CertInfo)> {
        let pems: Vec<(String, String)> = self
            .lock()
            .hosts
            .values()
            .filter_map(|h| Some((h.hostname.clone(), h.agent_cert.clone()?)))
            .collect();
        pems.into_iter()
            .filter_map(|(host, pem)| Some((host, roost_pki::cert_info(&pem).ok()?)))
            .collect()
    }

    /// Sets what is asked before a host is locked (once).
    pub fn set_lock_gate(&self, gate: Arc<dyn LockGate>) {
        let _ = self.lock_gate.set(gate);
    }

    /// The host whose agent made `call` (token and client certificate
    /// checked).
    pub fn agent_host(&self, call: &AgentCall) -> Result<String, Error> {
        Ok(Self::agent_of(&self.lock(), call, false)?.0.hostname)
    }

    /// Takes an agent's report.
    pub async fn report(
        &self,
        call: &AgentCall,
        report: AgentReport,
    ) -> Result<ReportReply, Error> {
        let now = self.clock.now();
        let name = self.agent_host(call)?;
        // Validate and convert the whole report.
        let facts = records::check_report(&name, &report)?;
        let _lane = self.lane.lock().await;
        // Decide.
        let (current, mut updated, renew_certificate) = {
            let st = self.lock();
            let (h, presented) = Self::agent_of(&st, call, false)?;
            if h.hostname != name {
                return Err(bad_agent_token());
            }
            let mut updated = records::reported(&h, &report, now);
            if let Some(u) = agent_certs::after_use(&h, presented) {
                updated.agent_cert_prev_serial = u.agent_cert_prev_serial;
            }
            if let (Some(q), Some(rec), Some((nonce, _))) = (
                &report.tpm_quote,
                attestation::Record::of(&h),
                st.tpm_challenges.get(&name),
            ) {
                match attestation::on_quote(&rec, q, nonce, &self.config.tpm, now) {
                    attestation::Outcome::Checked(r) => updated.tpm = Some(r.to_stored()),
                    attestation::Outcome::Ignored(why) => {
                        tracing::debug!(host = %name, %why, "ignored a TPM quote");
                    }
                }
            }
            let renew = match (&call.channel, &self.config.agent_ca) {
                (Channel::Tls(Some(peer)), Some(ca)) => agent_certs::renewal_due(
                    peer,
                    ca.tls.ca_cn().as_deref(),
                    std::time::SystemTime::now(),
                ),
                _ => false,
            };
            (h, updated, renew)
        };
        // A rotation: the agent holds the next key, so pulses switch to
        // it; until then the reply hands it over.
        let mut key_next = None;
        if let Some(KeyRing {
            next: Some(next), ..
        }) = keys_of(&current)
        {
            if report.heartbeat_key_next.as_deref() == Some(next.fingerprint().as_str()) {
                updated.hb_key = Some(KeyRing::of(next, now.micros()).to_stored());
                updated.updated_at = Some(now);
                tracing::info!(host = %name, "the agent holds the new heartbeat key; pulses use it from now on");
            } else {
                key_next = Some(next.to_hex());
            }
        }
        // A fresh challenge when one is due.
        let tpm_challenge = attestation::Record::of(&updated).and_then(|rec| {
            let asked = self.lock().tpm_challenges.get(&name).map(|(_, at)| *at);
            let answered = report.tpm_quote.is_some() && updated.tpm != current.tpm;
            (answered
                || attestation::challenge_due(
                    &rec,
                    asked,
                    now,
                    self.config.tpm.quote_interval_secs,
                ))
            .then(|| random_32().to_vec())
        });
        // Persist.
        if updated != current {
            self.commit(vec![HostWrite::Fields(updated.clone())])
                .await?;
        }
        // Apply.
        let (fx, status) = {
            let mut st = self.lock();
            if let Some(inv) = &report.inventory {
                st.uptime.insert(name.clone(), (inv.uptime_secs, now));
            }
            if report.tpm_quote.is_some() && updated.tpm != current.tpm {
                st.tpm_challenges.remove(&name);
            }
            if let Some(nonce) = &tpm_challenge {
                st.tpm_challenges.insert(name.clone(), (nonce.clone(), now));
            }
            if updated != current {
                st.set_fields(&updated);
            }
            let mut fx = st.mtce.set_networks(&name, &networks_of(&updated));
            for (p, sev) in facts.processes {
                let f = st.mtce.process_failure(&name, &p, sev, now);
                fx.alarms.extend(f.alarms);
                fx.commands.extend(f.commands);
                fx.changed.extend(f.changed);
            }
            fx.alarms.extend(facts.alarms);
            fx.alarms.extend(attestation::alarm(
                &name,
                attestation::Record::of(&current).as_ref(),
                attestation::Record::of(&updated).as_ref(),
            ));
            (fx, st.mtce.status(&name))
        };
        if updated != current
            && let Some(p) = peer_of(&updated)
        {
            let _ = self.shared.heartbeat.send(Control::Peer(p));
        }
        self.shared.effects(fx, None);
        Ok(ReportReply {
            hostname: name,
            administrative: status
                .as_ref()
                .map(|s| s.admin.to_string())
                .unwrap_or_default(),
            availability: status.map(|s| s.avail.to_string()).unwrap_or_default(),
            heartbeat_key_next: key_next,
            renew_certificate,
            tpm_challenge: tpm_challenge.map(|nonce| roost_api::tpm::TpmChallenge {
                nonce: roost_api::tpm::to_hex(&nonce),
                pcrs: self.config.tpm.pcrs.clone(),
            }),
            software: None,
        })
    }

    /// The maintenance parameters: (uuid, name, value).
    pub fn parameters(&self) -> Vec<(String, String, String)> {
        let st = self.lock();
        st.mtce
            .settings()
            .parameters()
            .into_iter()
            .map(|p| (parameter_uuid(p.name), p.name.to_string(), p.value))
            .collect()
    }

    /// Changes a parameter; ops are (path, value) in order, the last wins.
    /// Returns the row. A rename to another parameter's name is allowed
    /// (StarlingX's client sends it), the value then goes to that name.
    /// Applied right away when the whole set is consistent; otherwise kept
    /// and reported by `apply` (as StarlingX checks at apply time).
    pub async fn patch_parameter(
        &self,
        uuid: &str,
        ops: &[(String, Option<String>)],
    ) -> Result<(String, String, String), Error> {
        let _lane = self.lane.lock().await;
        let current = self.lock().mtce.settings().clone();
        let (name, value, settings) = records::parameter_patch(uuid, ops, current)?;
        self.commit(vec![HostWrite::Settings(vec![(
            format!("{SETTING_PREFIX}{name}"),
            value.clone(),
        )])])
        .await?;
        if settings.validate().is_ok() {
            self.lock().mtce.set_settings(settings);
        } else {
            tracing::info!(
                parameter = %name,
                %value,
                "maintenance parameter stored; applied once the whole set is consistent"
            );
        }
        Ok((parameter_uuid(&name), name, value))
    }

    /// Checks that the stored parameters are consistent and applies them.
    pub async fn apply_parameters(&self) -> Result<(), Error> {
        let _lane = self.lane.lock().await;
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || {
            roost_mtce::settings::PARAMETER_NAMES
                .iter()
                .map(|name| Ok((*name, store.setting(&format!("{SETTING_PREFIX}{name}"))?)))
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await
        .map_err(|_| Error::Stopped(STOPPED))??;
        let mut settings = MtceSettings::default();
        for (name, v) in stored {
            if let Some(v) = v {
                settings.set(name, &v)?;
            }
        }
        settings.validate()?;
        self.lock().mtce.set_settings(settings);
        Ok(())
    }

    /// Rotates every heartbeat key older than the configured age, checking
    /// ten times per age (at least every second, at most every hour).
    async fn key_rotation_loop(self, shutdown: Shutdown) {
        let max_age = self.config.heartbeat_key_max_age_secs;
        if max_age == 0 {
            return;
        }
        let every = Duration::from_secs((max_age / 10).clamp(1, 3600));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let due = {
                let st = self.lock();
                keys_due(st.hosts.values(), self.clock.now(), max_age)
            };
            for name in due {
                match self.rotate_heartbeat_key(&name).await {
                    Ok(_) => {
                        tracing::info!(host = %name, max_age_secs = max_age, "heartbeat key is due for rotation")
                    }
                    Err(e) => {
                        tracing::warn!(host = %name, error = %e, "cannot start a due heartbeat key rotation")
                    }
                }
            }
        }
    }

    async fn local_inventory_loop(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let inv = read_local_inventory().await;
            let _lane = self.lane.lock().await;
            let now = self.clock.now();
            let Some(updated) = self.lock().local_inventory_changed(&inv, now) else {
                continue;
            };
            match self.commit(vec![HostWrite::Fields(updated.clone())]).await {
                Ok(_) => self.lock().set_fields(&updated),
                Err(e) => tracing::warn!(error = %e, "cannot store the local inventory"),
            }
        }
    }
}

/// This host's inventory, read from /proc and /sys off the runtime's
/// threads.
async fn read_local_inventory() -> Inventory {
    tokio::task::spawn_blocking(|| {
        roost_inventory::read_inventory(&roost_inventory::Root::system(), env!("CARGO_PKG_VERSION"))
    })
    .await
    .unwrap_or_default()
}

/// The stable uuid of a maintenance service parameter.
pub fn parameter_uuid(name: &str) -> String {
    roost_api::sysinv::child_uuid("service-parameter", "platform.maintenance", name)
}

/// Facts checked out of an agent report before anything is decided.
pub(crate) struct ReportFacts {
    processes: Vec<(String, Option<Severity>)>,
    alarms: Vec<roost_mtce::AlarmOut>,
}

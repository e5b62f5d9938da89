//! The host service: inventory records, agent enrollment and reports, the
//! UDP heartbeat (sender and receiver), maintenance decisions carried out
//! (alarms, agent reboots, BMC power control over Redfish), and the
//! maintenance service parameters.
//!
//! Decisions come from `roost_mtce::Maintenance`; this module owns the I/O
//! around it. One lock guards the maintenance state and the host records;
//! effects (alarms, store writes, BMC calls) are carried out after the lock
//! is released, in order, by one task.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roost_api::agent::Inventory;
use roost_api::heartbeat::{self, DropReason, HostKey, Kind, Pulse, ReplayWindow};
use roost_api::sysinv::{AgentReport, EnrollRequest, EnrollResponse, HostView, ReportReply};
use roost_mtce::{
    ActionError, Admin, Command, Effects, HostAction, Maintenance, MtceSettings, Network,
    Personality,
};
use roost_store::{Store, StoreError, StoredHost};
use roost_types::{Clock, Severity, Timestamp};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::Shutdown;
use crate::fm_service::FmService;
use crate::identity::random_secret;
use crate::metrics::Metrics;

pub use roost_api::heartbeat::FLAG_REBOOT;

/// Settings of the host service.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    /// Name of this server's own host.
    pub hostname: String,
    /// `simplex` or `duplex`.
    pub system_mode: String,
    /// UDP address the heartbeat is sent from and answered to.
    pub heartbeat_listen: SocketAddr,
    /// Lifetime of join tokens, seconds.
    pub join_token_ttl_secs: u64,
}

/// Why a host request failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error("the join token is not valid (unknown, used or expired)")]
    BadJoinToken,
    #[error("the agent token is not valid")]
    BadAgentToken,
    #[error("host store unavailable")]
    Store(#[from] StoreError),
}

impl From<ActionError> for HostError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::UnknownHost(h) => HostError::NotFound(h),
            ActionError::Refused(m) => HostError::Refused(m),
        }
    }
}

struct State {
    mtce: Maintenance,
    hosts: BTreeMap<String, StoredHost>,
    keys: HashMap<u32, (String, HostKey)>,
    agent_tokens: HashMap<String, String>,
    replay: ReplayWindow,
    seq: u64,
    pending_reboot: HashMap<String, Timestamp>,
    uptime: HashMap<String, (u64, Timestamp)>,
}

struct Inner {
    store: Arc<Store>,
    fm: FmService,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: HostsConfig,
    epoch: u64,
    state: Mutex<State>,
    socket: Arc<UdpSocket>,
    effects: mpsc::UnboundedSender<(Effects, Option<tokio::sync::oneshot::Sender<()>>)>,
    redfish: reqwest::Client,
}

/// Handle to the host service; cheap to clone.
#[derive(Clone)]
pub struct HostService {
    inner: Arc<Inner>,
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_key() -> HostKey {
    let mut b = [0u8; 32];
    if getrandom::fill(&mut b).is_err() {
        std::process::abort();
    }
    HostKey::from_bytes(b)
}

fn personality(s: &str) -> Personality {
    Personality::parse(s).unwrap_or(Personality::Worker)
}

fn bmc_configured(h: &StoredHost) -> bool {
    h.bm_type == "redfish" && h.bm_ip.is_some() && h.bm_username.is_some()
}

const SETTING_PREFIX: &str = "mtce.";

impl HostService {
    /// Loads hosts and settings, makes sure this server's own host exists,
    /// binds the heartbeat socket and starts the loops.
    pub async fn start(
        store: Arc<Store>,
        fm: FmService,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        config: HostsConfig,
        shutdown: Shutdown,
    ) -> anyhow::Result<(HostService, Vec<tokio::task::JoinHandle<()>>)> {
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
        let simplex = config.system_mode == "simplex";
        let mut mtce = Maintenance::new(settings, simplex);
        let now = clock.now();
        let mut stored = store.hosts()?;
        if !stored.iter().any(|h| h.local) {
            let inv = roost_inventory::read_inventory(
                &roost_inventory::Root::system(),
                env!("CARGO_PKG_VERSION"),
            );
            let me = StoredHost {
                uuid: uuid::Uuid::new_v4().to_string(),
                hostname: config.hostname.clone(),
                personality: "controller".into(),
                subfunctions: "controller,worker".into(),
                administrative: "unlocked".into(),
                operational: "enabled".into(),
                availability: "available".into(),
                bm_type: "none".into(),
                location: "{}".into(),
                mgmt_ip: Some("127.0.0.1".into()),
                mgmt_mac: inv.nics.iter().find(|n| n.physical).map(|n| n.mac.clone()),
                inventory: serde_json::to_string(&inv).ok(),
                local: true,
                created_at: now,
                ..Default::default()
            };
            let me = store.insert_host(&me)?;
            stored.push(me);
        }
        let mut keys = HashMap::new();
        let mut agent_tokens = HashMap::new();
        let mut hosts = BTreeMap::new();
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
            mtce.set_bmc_configured(&h.hostname, bmc_configured(&h));
            if let Some(k) = h.hb_key.as_deref().and_then(|k| HostKey::from_hex(k).ok()) {
                keys.insert(h.id as u32, (h.hostname.clone(), k));
            }
            if let Some(t) = &h.agent_token_hash {
                agent_tokens.insert(t.clone(), h.hostname.clone());
            }
            initial.changed.push(h.hostname.clone());
            hosts.insert(h.hostname.clone(), h);
        }
        let socket = Arc::new(
            UdpSocket::bind(config.heartbeat_listen)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot bind the heartbeat socket {}: {e}",
                        config.heartbeat_listen
                    )
                })?,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let svc = HostService {
            inner: Arc::new(Inner {
                store,
                fm,
                epoch: now.micros().max(1) as u64,
                clock,
                metrics,
                config,
                state: Mutex::new(State {
                    mtce,
                    hosts,
                    keys,
                    agent_tokens,
                    replay: ReplayWindow::new(),
                    seq: 0,
                    pending_reboot: HashMap::new(),
                    uptime: HashMap::new(),
                }),
                socket,
                effects: tx,
                redfish: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
            }),
        };
        let _ = svc.inner.effects.send((initial, None));
        let tasks = vec![
            tokio::spawn(svc.clone().effects_loop(rx, shutdown.clone())),
            tokio::spawn(svc.clone().pulse_loop(shutdown.clone())),
            tokio::spawn(svc.clone().receive_loop(shutdown.clone())),
            tokio::spawn(svc.clone().local_inventory_loop(shutdown)),
        ];
        Ok((svc, tasks))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The UDP address the heartbeat is sent from.
    pub fn heartbeat_addr(&self) -> Option<SocketAddr> {
        self.inner.socket.local_addr().ok()
    }

    /// Whether the system is simplex.
    pub fn simplex(&self) -> bool {
        self.inner.config.system_mode == "simplex"
    }

    pub fn system_mode(&self) -> &str {
        &self.inner.config.system_mode
    }

    fn view(&self, st: &State, h: &StoredHost) -> HostView {
        let status = st.mtce.status(&h.hostname);
        let now = self.inner.clock.now();
        let uptime = if h.local {
            roost_inventory::read_uptime(&roost_inventory::Root::system())
        } else {
            st.uptime
                .get(&h.hostname)
                .map(|(u, at)| u + ((now.micros() - at.micros()).max(0) / 1_000_000) as u64)
                .unwrap_or(0)
        };
        HostView {
            id: h.id,
            uuid: h.uuid.clone(),
            hostname: h.hostname.clone(),
            personality: h.personality.clone(),
            subfunctions: h.subfunctions.clone(),
            administrative: status
                .as_ref()
                .map(|s| s.admin.to_string())
                .unwrap_or_else(|| h.administrative.clone()),
            operational: status
                .as_ref()
                .map(|s| s.oper.to_string())
                .unwrap_or_else(|| h.operational.clone()),
            availability: status
                .as_ref()
                .map(|s| s.avail.to_string())
                .unwrap_or_else(|| h.availability.clone()),
            task: status.as_ref().map(|s| s.task.clone()).unwrap_or_default(),
            mgmt_ip: h.mgmt_ip.clone(),
            mgmt_mac: h.mgmt_mac.clone(),
            bm_type: h.bm_type.clone(),
            bm_ip: h.bm_ip.clone(),
            bm_username: h.bm_username.clone(),
            location: serde_json::from_str(&h.location).unwrap_or(serde_json::json!({})),
            uptime,
            sw_version: h
                .inventory
                .as_deref()
                .and_then(|i| serde_json::from_str::<Inventory>(i).ok())
                .map(|i| i.sw_version)
                .unwrap_or_default(),
            active_controller: status.as_ref().is_some_and(|s| s.active_controller),
            mnfa_hold: status.as_ref().is_some_and(|s| s.held),
            created_at: h.created_at.to_string(),
            updated_at: h.updated_at.map(|t| t.to_string()),
        }
    }

    /// Every host, by id.
    pub fn list(&self) -> Vec<HostView> {
        let st = self.lock();
        let mut v: Vec<HostView> = st.hosts.values().map(|h| self.view(&st, h)).collect();
        v.sort_by_key(|h| h.id);
        v
    }

    fn find<'a>(st: &'a State, ident: &str) -> Option<&'a StoredHost> {
        if let Ok(id) = ident.parse::<i64>() {
            return st.hosts.values().find(|h| h.id == id);
        }
        st.hosts
            .values()
            .find(|h| h.uuid == ident)
            .or_else(|| st.hosts.get(ident))
    }

    /// One host by id, uuid or hostname, with its inventory.
    pub fn get(&self, ident: &str) -> Result<(HostView, Inventory), HostError> {
        let st = self.lock();
        let h = Self::find(&st, ident).ok_or_else(|| HostError::NotFound(ident.to_string()))?;
        let inv = h
            .inventory
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
        Ok((self.view(&st, h), inv))
    }

    fn join_token(&self, hostname: &str) -> Result<String, HostError> {
        let token = random_secret(32);
        let expires = self
            .inner
            .clock
            .now()
            .plus_secs(self.inner.config.join_token_ttl_secs as i64);
        self.inner
            .store
            .insert_join_token(&sha256_hex(&token), hostname, expires)?;
        Ok(token)
    }

    /// Adds a host (locked, offline until its agent enrolls) and returns a
    /// join token for its agent.
    pub fn add(&self, req: roost_api::sysinv::HostAdd) -> Result<(HostView, String), HostError> {
        let name = req.hostname.trim().to_string();
        if name.is_empty()
            || name.len() > 63
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || name.starts_with('-')
        {
            return Err(HostError::Invalid(format!(
                "invalid hostname {name:?}: use letters, digits and '-' (at most 63)"
            )));
        }
        let p = Personality::parse(&req.personality).ok_or_else(|| {
            HostError::Invalid(format!(
                "invalid personality {:?}; use controller, worker, storage or edgeworker",
                req.personality
            ))
        })?;
        let subfunctions = req.subfunctions.clone().unwrap_or_else(|| p.to_string());
        let location = match &req.location {
            None => "{}".to_string(),
            Some(serde_json::Value::String(s)) => serde_json::json!({ "locn": s }).to_string(),
            Some(v) => v.to_string(),
        };
        let mut h = StoredHost {
            uuid: uuid::Uuid::new_v4().to_string(),
            hostname: name.clone(),
            personality: p.to_string(),
            subfunctions,
            administrative: "locked".into(),
            operational: "disabled".into(),
            availability: "offline".into(),
            mgmt_ip: req.mgmt_ip.clone(),
            mgmt_mac: req.mgmt_mac.clone(),
            bm_type: "none".into(),
            location,
            created_at: self.inner.clock.now(),
            ..Default::default()
        };
        apply_bmc_fields(
            &mut h,
            req.bm_type.as_deref(),
            req.bm_ip.as_deref(),
            req.bm_username.as_deref(),
            req.bm_password.as_deref(),
        )?;
        {
            let st = self.lock();
            if st.hosts.contains_key(&name) {
                return Err(HostError::Invalid(format!("host {name} already exists")));
            }
        }
        let h = self.inner.store.insert_host(&h)?;
        let token = self.join_token(&name)?;
        let view = {
            let mut st = self.lock();
            let fx = st
                .mtce
                .add_host(&name, p, Admin::Locked, &[Network::Management], false);
            st.mtce.set_bmc_configured(&name, bmc_configured(&h));
            st.hosts.insert(name.clone(), h.clone());
            let _ = self.inner.effects.send((fx, None));
            self.view(&st, &h)
        };
        Ok((view, token))
    }

    /// A fresh join token for an existing host (to enroll it again).
    pub fn renew_join_token(&self, ident: &str) -> Result<String, HostError> {
        let name = {
            let st = self.lock();
            let h = Self::find(&st, ident).ok_or_else(|| HostError::NotFound(ident.to_string()))?;
            if h.local {
                return Err(HostError::Refused(format!(
                    "{} runs inside this server and has no agent to enroll",
                    h.hostname
                )));
            }
            h.hostname.clone()
        };
        self.join_token(&name)
    }

    /// Deletes a locked host; returns its name. The caller clears its alarms.
    pub fn delete(&self, ident: &str) -> Result<String, HostError> {
        let (id, name) = {
            let st = self.lock();
            let h = Self::find(&st, ident).ok_or_else(|| HostError::NotFound(ident.to_string()))?;
            if h.local {
                return Err(HostError::Refused(format!(
                    "cannot delete {}: it runs this server",
                    h.hostname
                )));
            }
            let status = st.mtce.status(&h.hostname);
            if status.is_some_and(|s| s.admin != Admin::Locked) {
                return Err(HostError::Refused(format!(
                    "cannot delete {}: lock it first",
                    h.hostname
                )));
            }
            (h.id, h.hostname.clone())
        };
        self.inner.store.delete_host(id)?;
        let mut st = self.lock();
        st.mtce.remove_host(&name);
        if let Some(t) = st.hosts.remove(&name).and_then(|h| h.agent_token_hash) {
            st.agent_tokens.remove(&t);
        }
        st.keys.remove(&(id as u32));
        st.replay.forget_host(id as u32);
        st.pending_reboot.remove(&name);
        Ok(name)
    }

    /// Applies a JSON patch to a host: an `/action`, or field changes.
    /// The returned receiver resolves once the action's alarms are recorded.
    pub fn patch(
        &self,
        ident: &str,
        ops: &[(String, String, Option<serde_json::Value>)],
    ) -> Result<(HostView, tokio::sync::oneshot::Receiver<()>), HostError> {
        let now = self.inner.clock.now();
        let mut st = self.lock();
        let h = Self::find(&st, ident)
            .ok_or_else(|| HostError::NotFound(ident.to_string()))?
            .clone();
        let text = |v: &Option<serde_json::Value>| -> Option<String> {
            match v {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            }
        };
        let mut updated = h.clone();
        let mut bmc: [Option<Option<String>>; 4] = [None, None, None, None];
        let mut action = None;
        for (op, path, value) in ops {
            if op != "replace" && op != "add" {
                return Err(HostError::Invalid(format!(
                    "only replace operations are supported, not {op} {path}"
                )));
            }
            match path.as_str() {
                "/action" => {
                    let a = text(value).unwrap_or_default();
                    action = Some(
                        HostAction::parse(&a)
                            .ok_or_else(|| HostError::Invalid(format!("unknown action {a:?}")))?,
                    );
                }
                "/bm_type" => bmc[0] = Some(text(value)),
                "/bm_ip" => bmc[1] = Some(text(value)),
                "/bm_username" => bmc[2] = Some(text(value)),
                "/bm_password" => bmc[3] = Some(text(value)),
                "/location" => {
                    updated.location = match value {
                        Some(serde_json::Value::Object(_)) => {
                            value.as_ref().map(|v| v.to_string()).unwrap_or_default()
                        }
                        Some(serde_json::Value::String(s)) => {
                            serde_json::json!({ "locn": s }).to_string()
                        }
                        _ => "{}".into(),
                    }
                }
                "/mgmt_mac" => updated.mgmt_mac = text(value),
                "/mgmt_ip" => updated.mgmt_ip = text(value),
                other => {
                    return Err(HostError::Invalid(format!(
                        "cannot change {other} of a host"
                    )));
                }
            }
        }
        if bmc[3].is_some() && bmc[2].is_none() {
            return Err(HostError::Invalid(
                "bm_password must be given together with bm_username".into(),
            ));
        }
        if bmc.iter().any(Option::is_some) {
            let cur = |i: usize, old: &Option<String>| -> Option<String> {
                match &bmc[i] {
                    Some(v) => v.clone(),
                    None => old.clone(),
                }
            };
            let ty = cur(0, &Some(updated.bm_type.clone()));
            let ip = cur(1, &updated.bm_ip);
            let user = cur(2, &updated.bm_username);
            let pw = cur(3, &updated.bm_password);
            apply_bmc_fields(
                &mut updated,
                ty.as_deref(),
                ip.as_deref(),
                user.as_deref(),
                pw.as_deref(),
            )?;
        }
        let mut fx = Effects::default();
        if let Some(a) = action {
            fx = st.mtce.action(&h.hostname, a, now)?;
        }
        if updated != h {
            updated.updated_at = Some(now);
            self.inner.store.update_host(&updated)?;
            st.mtce
                .set_bmc_configured(&h.hostname, bmc_configured(&updated));
            st.hosts.insert(h.hostname.clone(), updated.clone());
        }
        let view = self.view(&st, &updated);
        drop(st);
        let (done, wait) = tokio::sync::oneshot::channel();
        let _ = self.inner.effects.send((fx, Some(done)));
        Ok((view, wait))
    }

    /// Enrolls an agent with a join token.
    pub fn enroll(&self, req: EnrollRequest, peer: IpAddr) -> Result<EnrollResponse, HostError> {
        let now = self.inner.clock.now();
        let name = self
            .inner
            .store
            .take_join_token(&sha256_hex(&req.join_token), now)?
            .ok_or(HostError::BadJoinToken)?;
        let key = new_key();
        let agent_token = random_secret(32);
        let mut st = self.lock();
        let h = st
            .hosts
            .get(&name)
            .cloned()
            .ok_or_else(|| HostError::NotFound(name.clone()))?;
        let mut updated = h.clone();
        updated.hb_key = Some(key.to_hex());
        updated.hb_port = Some(req.heartbeat_port);
        updated.mgmt_ip = Some(req.mgmt_ip.clone().unwrap_or_else(|| peer.to_string()));
        if updated.mgmt_mac.is_none() {
            updated.mgmt_mac = req
                .inventory
                .nics
                .iter()
                .find(|n| n.physical)
                .map(|n| n.mac.clone());
        }
        updated.agent_token_hash = Some(sha256_hex(&agent_token));
        updated.inventory = serde_json::to_string(&req.inventory).ok();
        updated.updated_at = Some(now);
        self.inner.store.update_host(&updated)?;
        if let Some(old) = &h.agent_token_hash {
            st.agent_tokens.remove(old);
        }
        st.agent_tokens
            .insert(sha256_hex(&agent_token), name.clone());
        st.keys
            .insert(updated.id as u32, (name.clone(), key.clone()));
        st.replay.forget_host(updated.id as u32);
        st.uptime
            .insert(name.clone(), (req.inventory.uptime_secs, now));
        st.hosts.insert(name.clone(), updated.clone());
        tracing::info!(host = %name, mgmt_ip = ?updated.mgmt_ip, "agent enrolled");
        Ok(EnrollResponse {
            host_id: updated.id as u32,
            uuid: updated.uuid,
            hostname: name,
            personality: updated.personality,
            subfunctions: updated.subfunctions,
            heartbeat_key: key.to_hex(),
            agent_token,
        })
    }

    /// Takes an agent's report.
    pub fn report(&self, token: &str, report: AgentReport) -> Result<ReportReply, HostError> {
        let now = self.inner.clock.now();
        let mut st = self.lock();
        let name = st
            .agent_tokens
            .get(&sha256_hex(token))
            .cloned()
            .ok_or(HostError::BadAgentToken)?;
        let prefix = format!("host={name}");
        for a in &report.alarms {
            if !roost_types::entity_is_under(&a.entity_instance_id, &prefix) {
                return Err(HostError::Invalid(format!(
                    "an agent may raise alarms only for its own host ({prefix}), not {}",
                    a.entity_instance_id
                )));
            }
            if let Some(s) = &a.severity {
                s.parse::<Severity>()
                    .map_err(|e| HostError::Invalid(e.to_string()))?;
            }
        }
        let mut processes = Vec::new();
        for p in &report.processes {
            let sev = match &p.failed {
                None => None,
                Some(s) => Some(
                    s.parse::<Severity>()
                        .map_err(|e| HostError::Invalid(e.to_string()))?,
                ),
            };
            processes.push((p.name.clone(), sev));
        }
        let mut h = st
            .hosts
            .get(&name)
            .cloned()
            .ok_or(HostError::BadAgentToken)?;
        let mut dirty = false;
        if let Some(inv) = &report.inventory {
            st.uptime.insert(name.clone(), (inv.uptime_secs, now));
            let json = serde_json::to_string(inv).ok();
            if json != h.inventory {
                h.inventory = json;
                dirty = true;
            }
        }
        if let Some(port) = report.heartbeat_port
            && h.hb_port != Some(port)
        {
            h.hb_port = Some(port);
            dirty = true;
        }
        if let Some(ip) = &report.cluster_ip {
            ip.parse::<IpAddr>()
                .map_err(|_| HostError::Invalid(format!("cluster_ip {ip:?} is not an address")))?;
        }
        if (report.cluster_ip.clone(), report.cluster_heartbeat_port)
            != (h.cluster_ip.clone(), h.cluster_port)
        {
            h.cluster_ip = report.cluster_ip.clone();
            h.cluster_port = report.cluster_heartbeat_port;
            dirty = true;
        }
        if dirty {
            h.updated_at = Some(now);
            self.inner.store.update_host(&h)?;
            st.hosts.insert(name.clone(), h.clone());
        }
        let mut fx = st.mtce.set_networks(&name, &networks_of(&h));
        for (p, sev) in processes {
            let f = st.mtce.process_failure(&name, &p, sev, now);
            fx.alarms.extend(f.alarms);
            fx.commands.extend(f.commands);
            fx.changed.extend(f.changed);
        }
        for a in report.alarms {
            fx.alarms.push(roost_mtce::AlarmOut {
                alarm_id: match a.alarm_id.as_str() {
                    roost_mtce::ALARM_CPU => roost_mtce::ALARM_CPU,
                    roost_mtce::ALARM_MEMORY => roost_mtce::ALARM_MEMORY,
                    roost_mtce::ALARM_FILESYSTEM => roost_mtce::ALARM_FILESYSTEM,
                    other => {
                        return Err(HostError::Invalid(format!(
                            "agents report resource alarms (100.101, 100.103, 100.104), not {other}"
                        )));
                    }
                },
                entity_instance_id: a.entity_instance_id,
                severity: a.severity.and_then(|s| s.parse().ok()),
                reason_text: a.reason_text,
            });
        }
        let status = st.mtce.status(&name);
        drop(st);
        let _ = self.inner.effects.send((fx, None));
        Ok(ReportReply {
            hostname: name,
            administrative: status
                .as_ref()
                .map(|s| s.admin.to_string())
                .unwrap_or_default(),
            availability: status.map(|s| s.avail.to_string()).unwrap_or_default(),
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
    pub fn patch_parameter(
        &self,
        uuid: &str,
        ops: &[(String, Option<String>)],
    ) -> Result<(String, String, String), HostError> {
        let mut st = self.lock();
        let mut name = roost_mtce::settings::PARAMETER_NAMES
            .iter()
            .find(|n| parameter_uuid(n) == uuid)
            .map(|n| n.to_string())
            .ok_or_else(|| HostError::NotFound(format!("service parameter {uuid}")))?;
        let mut settings = st.mtce.settings().clone();
        let mut value = None;
        for (path, v) in ops {
            match path.as_str() {
                "/name" => {
                    let n = v.clone().unwrap_or_default();
                    if !roost_mtce::settings::PARAMETER_NAMES.contains(&n.as_str()) {
                        return Err(HostError::Invalid(format!(
                            "unknown maintenance parameter {n:?}"
                        )));
                    }
                    name = n;
                }
                "/value" => value = v.clone(),
                "/personality" | "/resource" => {}
                other => {
                    return Err(HostError::Invalid(format!(
                        "cannot change {other} of a service parameter"
                    )));
                }
            }
            if let Some(v) = &value {
                settings.set(&name, v).map_err(HostError::Invalid)?;
            }
        }
        let Some(value) = value else {
            return Err(HostError::Invalid("the patch holds no /value".into()));
        };
        // Applied right away when the whole set is consistent; otherwise kept
        // and reported by `apply` (as StarlingX checks at apply time).
        self.inner
            .store
            .set_settings(&[(format!("{SETTING_PREFIX}{name}"), value.clone())])?;
        if settings.validate().is_ok() {
            st.mtce.set_settings(settings);
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
    pub fn apply_parameters(&self) -> Result<(), HostError> {
        let mut settings = MtceSettings::default();
        for name in roost_mtce::settings::PARAMETER_NAMES {
            if let Some(v) = self
                .inner
                .store
                .setting(&format!("{SETTING_PREFIX}{name}"))?
            {
                settings.set(name, &v).map_err(HostError::Invalid)?;
            }
        }
        settings.validate().map_err(HostError::Invalid)?;
        self.lock().mtce.set_settings(settings);
        Ok(())
    }

    /// Current heartbeat period.
    fn period(&self) -> Duration {
        Duration::from_millis(u64::from(self.lock().mtce.settings().heartbeat_period_ms))
    }

    async fn pulse_loop(self, shutdown: Shutdown) {
        let mut period = self.period();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.inner.clock.now();
            let fx = {
                let mut st = self.lock();
                let fx = st.mtce.tick(now);
                buf.clear();
                st.pending_reboot
                    .retain(|_, at| now.micros() - at.micros() < 60_000_000);
                for (name, nets) in st.mtce.pulse_targets() {
                    let Some(h) = st.hosts.get(&name) else {
                        continue;
                    };
                    let Some((_, key)) = st.keys.get(&(h.id as u32)) else {
                        continue;
                    };
                    let flags = if st.pending_reboot.contains_key(&name) {
                        FLAG_REBOOT
                    } else {
                        0
                    };
                    let host_id = h.id as u32;
                    let key = key.clone();
                    let mgmt = addr_of(h.mgmt_ip.as_deref(), h.hb_port);
                    let cluster = addr_of(h.cluster_ip.as_deref(), h.cluster_port);
                    for net in nets {
                        let dest = match net {
                            Network::Management => mgmt,
                            Network::Cluster => cluster,
                        };
                        let Some(dest) = dest else {
                            continue;
                        };
                        st.seq += 1;
                        let p = Pulse {
                            kind: Kind::Request,
                            network: net as u8,
                            flags,
                            host_id,
                            epoch: self.inner.epoch,
                            seq: st.seq,
                            sent_at_micros: now.micros() as u64,
                            health: Default::default(),
                        };
                        buf.push((dest, heartbeat::encode(&p, &key)));
                    }
                }
                fx
            };
            for (addr, pkt) in &buf {
                if let Err(e) = self.inner.socket.try_send_to(pkt, *addr) {
                    tracing::debug!(%addr, error = %e, "cannot send a pulse");
                }
            }
            self.inner.metrics.pulses_sent(buf.len() as u64);
            if !fx.alarms.is_empty() || !fx.commands.is_empty() || !fx.changed.is_empty() {
                let _ = self.inner.effects.send((fx, None));
            }
            let p = self.period();
            if p != period {
                period = p;
                tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
        }
    }

    async fn receive_loop(self, shutdown: Shutdown) {
        let mut buf = vec![0u8; heartbeat::MAX_DATAGRAM];
        loop {
            let (n, _from) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.inner.socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat receive failed");
                        continue;
                    }
                },
            };
            if let Err(reason) = self.accept(&buf[..n]) {
                self.inner.metrics.heartbeat_dropped(reason.as_str());
            }
        }
    }

    fn accept(&self, pkt: &[u8]) -> Result<(), DropReason> {
        if pkt.len() >= heartbeat::MAX_DATAGRAM || pkt.len() > heartbeat::PACKET_LEN {
            return Err(DropReason::Oversized);
        }
        if pkt.len() < heartbeat::PACKET_LEN {
            return Err(DropReason::Truncated);
        }
        let host_id = heartbeat::peek_host_id(pkt).ok_or(DropReason::BadMagic)?;
        let mut st = self.lock();
        let (name, key) = st
            .keys
            .get(&host_id)
            .cloned()
            .ok_or(DropReason::UnknownHost)?;
        let p = heartbeat::decode(pkt, &key).map_err(DropReason::from)?;
        if p.kind != Kind::Response {
            return Err(DropReason::Malformed);
        }
        if p.epoch != self.inner.epoch {
            return Err(DropReason::Stale);
        }
        st.replay.check(&p)?;
        let net = Network::from_index(p.network).ok_or(DropReason::Malformed)?;
        st.mtce.pulse_answered(&name, net);
        if p.health.has(heartbeat::Health::REBOOTING) {
            st.pending_reboot.remove(&name);
        }
        drop(st);
        let rtt = (self.inner.clock.now().micros() as u64).saturating_sub(p.sent_at_micros);
        self.inner.metrics.pulse_answered(rtt as f64 / 1e6);
        Ok(())
    }

    async fn local_inventory_loop(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let inv = tokio::task::spawn_blocking(|| {
                roost_inventory::read_inventory(
                    &roost_inventory::Root::system(),
                    env!("CARGO_PKG_VERSION"),
                )
            })
            .await
            .unwrap_or_default();
            let mut st = self.lock();
            let Some(mut h) = st.hosts.values().find(|h| h.local).cloned() else {
                continue;
            };
            let mut stable = inv.clone();
            stable.uptime_secs = 0;
            stable.memory.memavail_mib = 0;
            for n in &mut stable.numa_nodes {
                n.memavail_mib = 0;
            }
            let json = serde_json::to_string(&stable).ok();
            if json != h.inventory {
                h.inventory = json;
                h.updated_at = Some(self.inner.clock.now());
                if let Err(e) = self.inner.store.update_host(&h) {
                    tracing::warn!(error = %e, "cannot store the local inventory");
                }
                st.hosts.insert(h.hostname.clone(), h);
            }
        }
    }

    async fn effects_loop(
        self,
        mut rx: mpsc::UnboundedReceiver<(Effects, Option<tokio::sync::oneshot::Sender<()>>)>,
        shutdown: Shutdown,
    ) {
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some((fx, done)) => {
                        self.carry_out(fx).await;
                        if let Some(d) = done {
                            let _ = d.send(());
                        }
                    }
                    None => return,
                },
                _ = shutdown.cancelled() => {
                    // Carry out what is already decided, then stop.
                    while let Ok((fx, done)) = rx.try_recv() {
                        self.carry_out(fx).await;
                        if let Some(d) = done {
                            let _ = d.send(());
                        }
                    }
                    return;
                }
            }
        }
    }

    async fn carry_out(&self, fx: Effects) {
        // Persist changed states first, so a restart sees them.
        let changed: Vec<StoredHost> = {
            let st = self.lock();
            fx.changed
                .iter()
                .filter_map(|n| {
                    let h = st.hosts.get(n)?;
                    let s = st.mtce.status(n)?;
                    let mut u = h.clone();
                    u.administrative = s.admin.to_string();
                    u.operational = s.oper.to_string();
                    u.availability = s.avail.to_string();
                    u.task = s.task.clone();
                    (u != *h).then_some(u)
                })
                .collect()
        };
        if !changed.is_empty() {
            let store = self.inner.store.clone();
            let rows = changed.clone();
            let res = tokio::task::spawn_blocking(move || {
                for h in &rows {
                    store.update_host(h)?;
                }
                Ok::<(), StoreError>(())
            })
            .await;
            match res {
                Ok(Ok(())) => {
                    let mut st = self.lock();
                    for h in changed {
                        if let Some(cur) = st.hosts.get_mut(&h.hostname) {
                            cur.administrative = h.administrative;
                            cur.operational = h.operational;
                            cur.availability = h.availability;
                            cur.task = h.task;
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot store host states"),
                Err(e) => tracing::warn!(error = %e, "cannot store host states"),
            }
            for name in &fx.changed {
                let st = self.lock();
                if let Some(s) = st.mtce.status(name) {
                    tracing::info!(host = %name, administrative = %s.admin, operational = %s.oper, availability = %s.avail, "host state");
                }
            }
        }
        for a in fx.alarms {
            let cmd = crate::fm_service::raise_or_clear(
                a.alarm_id,
                a.entity_instance_id,
                a.severity,
                a.reason_text,
            );
            if let Err(e) = self.inner.fm.submit(cmd).await {
                tracing::warn!(error = %e, "cannot record a maintenance alarm");
            }
        }
        for c in fx.commands {
            self.command(c);
        }
    }

    fn command(&self, c: Command) {
        match c {
            Command::AgentReboot { host } => {
                tracing::info!(%host, "asking the agent to reboot");
                self.lock()
                    .pending_reboot
                    .insert(host, self.inner.clock.now());
            }
            Command::BmcReset { host, attempt } => {
                tracing::info!(%host, attempt, "resetting the host through its BMC");
                self.spawn_bmc(host, "ForceRestart");
            }
            Command::BmcPowerOn { host } => self.spawn_bmc(host, "On"),
            Command::BmcPowerOff { host } => self.spawn_bmc(host, "ForceOff"),
            Command::Swact { from, to } => {
                tracing::info!(%from, %to, "active controller role handed over");
            }
        }
    }

    /// One Redfish reset action, in the background (a BMC may take seconds
    /// to answer); its outcome feeds maintenance (200.010).
    fn spawn_bmc(&self, host: String, reset_type: &'static str) {
        let svc = self.clone();
        tokio::spawn(async move {
            let target = svc.lock().hosts.get(&host).cloned();
            let Some(h) = target else { return };
            let result = redfish_reset(&svc.inner.redfish, &h, reset_type).await;
            let fx = {
                let mut st = svc.lock();
                match &result {
                    Ok(()) => st.mtce.bmc_result(&host, true, ""),
                    Err(e) => {
                        tracing::warn!(%host, error = %e, "BMC action failed");
                        st.mtce.bmc_result(&host, false, e)
                    }
                }
            };
            let _ = svc.inner.effects.send((fx, None));
        });
    }
}

/// The heartbeat networks of a host: management, plus cluster-host when
/// its agent answers on one.
fn networks_of(h: &StoredHost) -> Vec<Network> {
    if h.cluster_ip.is_some() && h.cluster_port.is_some() {
        vec![Network::Management, Network::Cluster]
    } else {
        vec![Network::Management]
    }
}

fn addr_of(ip: Option<&str>, port: Option<u16>) -> Option<SocketAddr> {
    Some(SocketAddr::new(ip?.parse().ok()?, port?))
}

/// The stable uuid of a maintenance service parameter.
pub fn parameter_uuid(name: &str) -> String {
    roost_api::sysinv::child_uuid("service-parameter", "platform.maintenance", name)
}

fn apply_bmc_fields(
    h: &mut StoredHost,
    bm_type: Option<&str>,
    bm_ip: Option<&str>,
    bm_username: Option<&str>,
    bm_password: Option<&str>,
) -> Result<(), HostError> {
    if let Some(t) = bm_type {
        if !matches!(t, "none" | "dynamic" | "ipmi" | "redfish") {
            return Err(HostError::Invalid(format!(
                "bm_type must be none, dynamic, ipmi or redfish, not {t:?}"
            )));
        }
        h.bm_type = t.to_string();
    }
    if let Some(u) = bm_username
        && (u.len() > 16 || u.chars().any(char::is_whitespace))
    {
        return Err(HostError::Invalid(
            "bm_username must be at most 16 characters without spaces".into(),
        ));
    }
    if let Some(p) = bm_password
        && p.chars().any(char::is_whitespace)
    {
        return Err(HostError::Invalid(
            "bm_password must not contain spaces".into(),
        ));
    }
    if bm_password.is_some() && bm_username.is_none() && h.bm_username.is_none() {
        return Err(HostError::Invalid(
            "bm_password must be given together with bm_username".into(),
        ));
    }
    h.bm_ip = bm_ip.map(str::to_string).filter(|s| !s.is_empty());
    h.bm_username = bm_username.map(str::to_string).filter(|s| !s.is_empty());
    if bm_password.is_some() {
        h.bm_password = bm_password.map(str::to_string).filter(|s| !s.is_empty());
    }
    if h.bm_type == "none" {
        h.bm_ip = None;
        h.bm_username = None;
        h.bm_password = None;
    }
    Ok(())
}

/// Power action through Redfish: find the system, post a reset.
async fn redfish_reset(
    client: &reqwest::Client,
    h: &StoredHost,
    reset_type: &str,
) -> Result<(), String> {
    if h.bm_type != "redfish" {
        return Err(format!(
            "BMC type {} is not supported (only redfish)",
            h.bm_type
        ));
    }
    let ip = h.bm_ip.as_deref().ok_or("no bm_ip")?;
    let base = if ip.starts_with("http://") || ip.starts_with("https://") {
        ip.trim_end_matches('/').to_string()
    } else {
        format!("http://{ip}")
    };
    if base.starts_with("https://") {
        return Err("HTTPS BMCs are not supported yet".into());
    }
    let user = h.bm_username.clone().unwrap_or_default();
    let pass = h.bm_password.clone();
    let systems: serde_json::Value = client
        .get(format!("{base}/redfish/v1/Systems"))
        .basic_auth(&user, pass.as_deref())
        .send()
        .await
        .map_err(|e| format!("cannot reach {base}: {e}"))?
        .error_for_status()
        .map_err(|e| format!("{base} refused: {e}"))?
        .json()
        .await
        .map_err(|e| format!("unexpected answer from {base}: {e}"))?;
    let system = systems["Members"][0]["@odata.id"]
        .as_str()
        .ok_or_else(|| format!("{base} lists no system"))?
        .to_string();
    client
        .post(format!("{base}{system}/Actions/ComputerSystem.Reset"))
        .basic_auth(&user, pass.as_deref())
        .json(&serde_json::json!({ "ResetType": reset_type }))
        .send()
        .await
        .map_err(|e| format!("cannot reach {base}: {e}"))?
        .error_for_status()
        .map_err(|e| format!("{base} refused the reset: {e}"))?;
    Ok(())
}

//! The system controller's Distributed Cloud service: subclouds and groups
//! (records in the store, states in `roost_dc::Fleet`), enrollment tokens,
//! the sync protocol's server side (alarm streams, configuration pushes),
//! and the desired configuration it keeps for its subclouds.
//!
//! One lock guards the fleet and the records; alarms and store writes
//! happen after it is released.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roost_api::dcmanager::{GroupView, SubcloudView, dc_time};
use roost_api::dcsync::{
    self, AppReport, AppsConfig, DesiredApp, EndpointConfig, Push, SyncReply, SyncRequest,
};
use roost_dc::{
    ActiveAlarm, AlarmChange, ApplyType, DcEffects, DcSettings, Desired, Endpoint, Epoch, Fleet,
    Generation, Group, GroupPatch, GroupSpec, Management, SubcloudRecord,
};
use roost_fm::FmCommand;
use roost_store::{Error as StoreError, Store, StoredGroup, StoredSubcloud};
use roost_types::audit::{AuditRecord, Chain, record_hash};
use roost_types::{Clock, Severity, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fm_service::FmService;
use crate::{Error, Shutdown};

/// Settings of the system controller role.
#[derive(Debug, Clone)]
pub struct DcConfig {
    pub settings: DcSettings,
    /// Seconds between a subcloud's syncs (its heartbeat).
    pub sync_interval_secs: u64,
    /// Lifetime of enrollment tokens, seconds.
    pub enroll_ttl_secs: u64,
    /// Days a subcloud certificate is valid.
    pub cert_days: u32,
}

/// What a request to a stopping DC service is answered.
const STOPPED: &str = "the service is shutting down";

fn bad_token() -> Error {
    Error::Unauthorized("the enrollment token is not valid (unknown, used or expired)".into())
}

/// A certificate the system controller issued: its serial (lowercase hex)
/// and PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub serial: String,
    pub cert_pem: String,
}

/// The facts of a client certificate the DC listener verified.
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub cn: String,
    pub serial: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
}

/// The CA's clock skew allowance: certificates start this long before they
/// are issued.
const CERT_BACKDATE_SECS: i64 = 5 * 60;

struct State {
    fleet: Fleet,
    /// The stored rows, exactly as committed: changed only after a commit.
    records: BTreeMap<String, StoredSubcloud>,
    /// Content of the desired configuration, by endpoint.
    content: BTreeMap<String, EndpointConfig>,
    /// Subclouds whose derived state (deploy status, software version)
    /// failed to commit; written again at the next tick.
    dirty: BTreeSet<String>,
    /// Alarm decisions (280.001, 280.002) whose commit failed, by alarm and
    /// entity; recorded again at the next tick unless a newer decision
    /// about the same alarm came first.
    unrecorded: BTreeMap<(&'static str, String), roost_dc::AlarmOut>,
    /// Applications assigned to each group (by group id, then name).
    group_apps: BTreeMap<u64, BTreeMap<String, DesiredApp>>,
    /// What each subcloud last reported of its applications.
    app_reports: BTreeMap<String, Vec<AppReport>>,
    /// Packages each subcloud fetched: (requests, bytes).
    fetched: BTreeMap<String, (u64, u64)>,
    /// The last forwarded audit record held of each subcloud (committed).
    audit_heads: BTreeMap<String, Chain>,
    /// The deploy order each subcloud is to run (a fleet rollout's).
    orders: BTreeMap<String, dcsync::DeployOrder>,
    /// What each subcloud last reported of its deploy order.
    order_reports: BTreeMap<String, dcsync::DeployOrderReport>,
}

struct Inner {
    store: Arc<Store>,
    fm: FmService,
    clock: Arc<dyn Clock>,
    config: DcConfig,
    state: Mutex<State>,
    /// Serialises the requests that write records (add, update, delete,
    /// enrollment, renewal, groups, desired configuration), so that what
    /// one decided under the state lock still holds when it applies its
    /// commit. Syncs and ticks do not take it.
    writes: tokio::sync::Mutex<()>,
}

/// A subcloud as a fleet rollout sees it.
#[derive(Debug, Clone)]
pub struct RolloutFacts {
    pub name: String,
    pub id: u64,
    pub group_id: u64,
    pub online: bool,
    pub managed: bool,
    /// The raised alarms the caller asked for, described.
    pub unhealthy: Vec<String>,
}

/// Handle to the Distributed Cloud service; cheap to clone.
#[derive(Clone)]
pub struct DcService {
    inner: Arc<Inner>,
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn group_view(g: &Group, created: Timestamp) -> GroupView {
    GroupView {
        id: g.id as i64,
        name: g.name.clone(),
        description: g.description.clone(),
        update_apply_type: g.update_apply_type.as_str().to_string(),
        max_parallel_subclouds: g.max_parallel_subclouds,
        created_at: dc_time(created),
        updated_at: None,
    }
}

fn stored_group(g: &Group, now: Timestamp) -> StoredGroup {
    StoredGroup {
        id: g.id as i64,
        name: g.name.clone(),
        description: g.description.clone(),
        update_apply_type: g.update_apply_type.as_str().to_string(),
        max_parallel_subclouds: i64::from(g.max_parallel_subclouds),
        created_at: now,
        updated_at: Some(now),
    }
}

const DESIRED_PREFIX: &str = "dc.desired.";

/// One row of the alarm summary: region name, counts (critical, major,
/// minor, warnings) or `None` when unreachable, and the cloud status.
pub type SummaryRow = (String, Option<(usize, usize, usize, usize)>, String);

/// A JSON scalar as text (`5` and `"5"` both give `5`).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How the desired configuration of an endpoint type is kept in the settings.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredDesired {
    generation: u64,
    content: Value,
}

/// A sync request converted and checked whole, before anything is decided.
struct CheckedSync {
    software_version: Option<String>,
    snapshot: Option<(u64, Vec<ActiveAlarm>)>,
    changes: Vec<AlarmChange>,
    applied: Vec<(Endpoint, Generation, String)>,
    apps: Vec<AppReport>,
    audit: Vec<AuditRecord>,
    order: Option<dcsync::DeployOrderReport>,
}

fn severity(text: &str, what: impl std::fmt::Display) -> Result<Severity, Error> {
    text.parse::<Severity>()
        .map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

fn check_sync(req: SyncRequest) -> Result<CheckedSync, Error> {
    let snapshot = match req.snapshot {
        None => None,
        Some(snap) => {
            let mut alarms = Vec::with_capacity(snap.alarms.len());
            for a in snap.alarms {
                alarms.push(ActiveAlarm {
                    severity: severity(&a.severity, format_args!("snapshot alarm {}", a.alarm_id))?,
                    alarm_id: a.alarm_id,
                    entity_instance_id: a.entity_instance_id,
                    reason_text: a.reason_text,
                    timestamp: Timestamp(a.timestamp),
                });
            }
            Some((snap.seq, alarms))
        }
    };
    let mut changes = Vec::with_capacity(req.changes.len());
    for c in req.changes {
        let severity = match &c.severity {
            None => None,
            Some(s) => Some(severity(s, format_args!("alarm change {}", c.seq))?),
        };
        changes.push(AlarmChange {
            seq: c.seq,
            alarm_id: c.alarm_id,
            entity_instance_id: c.entity_instance_id,
            severity,
            reason_text: c.reason_text,
            timestamp: Timestamp(c.timestamp),
        });
    }
    let mut applied = Vec::with_capacity(req.applied.len());
    for a in req.applied {
        let Some(ep) = Endpoint::parse(&a.endpoint) else {
            return Err(Error::Invalid(format!(
                "unknown endpoint type {:?}",
                a.endpoint
            )));
        };
        applied.push((ep, Generation(a.generation), a.digest));
    }
    if req.audit.len() > roost_api::dcsync::MAX_AUDIT_PER_SYNC {
        return Err(Error::Invalid(format!(
            "a sync carries at most {} audit records, not {}",
            roost_api::dcsync::MAX_AUDIT_PER_SYNC,
            req.audit.len()
        )));
    }
    let mut audit = Vec::with_capacity(req.audit.len());
    for r in &req.audit {
        let rec = r.to_record().ok_or_else(|| {
            Error::Invalid(format!(
                "audit record {}: a hash is not 64 hex digits",
                r.seq
            ))
        })?;
        if audit.last().is_some_and(|p: &AuditRecord| p.seq >= rec.seq) {
            return Err(Error::Invalid(format!(
                "audit record {} is out of order",
                rec.seq
            )));
        }
        audit.push(rec);
    }
    Ok(CheckedSync {
        audit,
        software_version: req.software_version,
        snapshot,
        changes,
        applied,
        apps: req.apps,
        order: req.order,
    })
}

/// The forwarded audit records a sync keeps.
struct AuditPlan {
    name: String,
    held: Chain,
    keep: Vec<AuditRecord>,
}

fn random_secret() -> String {
    let mut b = [0u8; 24];
    if getrandom::fill(&mut b).is_err() {
        std::process::abort();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl DcService {
    /// Loads groups, subclouds and the desired configuration, carries out
    /// what the restore decided, and starts the loop that declares silent
    /// subclouds offline.
    pub async fn start(
        store: Arc<Store>,
        fm: FmService,
        clock: Arc<dyn Clock>,
        config: DcConfig,
        shutdown: Shutdown,
    ) -> Result<(DcService, tokio::task::JoinHandle<()>), Error> {
        let now = clock.now();
        let mut fleet = Fleet::new(config.settings, Epoch(now.micros().max(1) as u64));
        for g in store.groups()? {
            let group = Group {
                id: g.id as u64,
                name: g.name,
                description: g.description,
                update_apply_type: ApplyType::parse(&g.update_apply_type)
                    .unwrap_or(ApplyType::Parallel),
                max_parallel_subclouds: g.max_parallel_subclouds.clamp(1, 5000) as u32,
            };
            if let Err(e) = fleet.restore_group(group) {
                tracing::warn!(error = %e, "skipping a stored subcloud group");
            }
        }
        let audit_heads: BTreeMap<String, Chain> =
            store.subcloud_audit_heads()?.into_iter().collect();
        let mut content = BTreeMap::new();
        for ep in Endpoint::SYNCED {
            if let Some(text) = store.setting(&format!("{DESIRED_PREFIX}{}", ep.as_str()))?
                && let Ok(d) = serde_json::from_str::<StoredDesired>(&text)
                && let Some(Ok(config)) = EndpointConfig::from_content(ep, d.content)
            {
                fleet.restore_desired(
                    ep,
                    Desired {
                        generation: Generation(d.generation),
                        digest: config.digest(),
                    },
                    now,
                );
                content.insert(ep.as_str().to_string(), config);
            }
        }
        let mut group_apps: BTreeMap<u64, BTreeMap<String, DesiredApp>> = BTreeMap::new();
        for a in store.group_apps()? {
            group_apps.entry(a.group_id as u64).or_default().insert(
                a.app.clone(),
                DesiredApp {
                    name: a.app,
                    version: a.version,
                    digest: a.digest,
                    size: a.size.max(0) as u64,
                    state: "applied".into(),
                },
            );
        }
        if !group_apps.is_empty() {
            // A new epoch: the numbering may start again.
            fleet.restore_group_desired(
                Endpoint::Apps,
                Generation(1),
                apps::group_digests(&group_apps),
                &AppsConfig::default().digest(),
                now,
            );
        }
        let mut records = BTreeMap::new();
        let mut initial = DcEffects::default();
        for s in store.subclouds()? {
            let rec = SubcloudRecord {
                name: s.name.clone(),
                id: s.id as u64,
                group_id: s.group_id as u64,
                management: Management::parse(&s.management_state).unwrap_or(Management::Unmanaged),
                availability: roost_dc::Availability::Offline,
                deploy_status: roost_dc::DeployStatus::parse(&s.deploy_status)
                    .unwrap_or(roost_dc::DeployStatus::NotDeployed),
                last_seen: None,
                software_version: s.software_version.clone(),
                created_at: s.created_at,
            };
            match fleet.restore(rec, now) {
                Ok(fx) => initial.merge(fx),
                Err(e) => {
                    tracing::warn!(subcloud = %s.name, error = %e, "skipping a stored subcloud")
                }
            }
            records.insert(s.name.clone(), s);
        }
        let svc = DcService {
            inner: Arc::new(Inner {
                store,
                fm,
                clock,
                config,
                state: Mutex::new(State {
                    fleet,
                    records,
                    content,
                    dirty: BTreeSet::new(),
                    unrecorded: BTreeMap::new(),
                    group_apps,
                    app_reports: BTreeMap::new(),
                    orders: BTreeMap::new(),
                    order_reports: BTreeMap::new(),
                    fetched: BTreeMap::new(),
                    audit_heads,
                }),
                writes: tokio::sync::Mutex::new(()),
            }),
        };
        // 280.002 alarms from before a restart are raised again if still true.
        let _ = svc
            .inner
            .fm
            .submit(FmCommand::ClearPrefix {
                entity_prefix: "subcloud=".into(),
                alarm_id: Some(roost_dc::ALARM_SUBCLOUD_OUT_OF_SYNC.into()),
            })
            .await;
        svc.carry_out(initial).await;
        let task = tokio::spawn(svc.clone().tick_loop(shutdown));
        Ok((svc, task))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs store writes on a blocking thread, never under the state lock.
    async fn persist<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            // The fleet decided before the write: a refusal by the store is
            // this service's failure, not the client's.
            Ok(r) => r.map_err(Error::Store),
            Err(_) => Err(Error::Stopped(STOPPED)),
        }
    }

    /// One pass of the offline and out-of-sync timers (and a retry of
    /// derived state that failed to commit). The loop calls it every 500 ms.
    pub async fn tick(&self) {
        let fx = {
            let mut st = self.lock();
            let mut fx = st.fleet.tick(self.inner.clock.now());
            let dirty = std::mem::take(&mut st.dirty);
            fx.merge(DcEffects {
                changed: dirty.into_iter().collect(),
                ..DcEffects::default()
            });
            // Older than what this tick decided: carried out first.
            let unrecorded = std::mem::take(&mut st.unrecorded);
            fx.alarms.splice(0..0, unrecorded.into_values());
            fx
        };
        if !fx.is_empty() {
            self.carry_out(fx).await;
        }
    }

    async fn tick_loop(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.tick().await;
        }
    }

    /// Carries out what the fleet decided: persists the derived state of
    /// changed subclouds (records change only once that commits; a failed
    /// commit is retried at the next tick), logs drift, raises and clears
    /// alarms. Callers hold no lock.
    async fn carry_out(&self, fx: DcEffects) {
        if !fx.changed.is_empty() {
            let _writes = self.inner.writes.lock().await;
            let rows: Vec<StoredSubcloud> = {
                let st = self.lock();
                let now = self.inner.clock.now();
                let mut rows = Vec::new();
                for name in &fx.changed {
                    let (Some(sc), Some(r)) =
                        (st.fleet.get(name).map(|s| s.record()), st.records.get(name))
                    else {
                        continue;
                    };
                    let mut row = r.clone();
                    row.management_state = sc.management.as_str().to_string();
                    row.deploy_status = sc.deploy_status.as_str().to_string();
                    row.software_version = sc.software_version.clone();
                    row.group_id = sc.group_id as i64;
                    if row != *r {
                        row.updated_at = Some(now);
                        rows.push(row);
                    }
                }
                rows
            };
            if !rows.is_empty() {
                let written = rows.clone();
                let res = self
                    .persist(move |store| {
                        for r in &written {
                            store.update_subcloud(r)?;
                        }
                        Ok(())
                    })
                    .await;
                let mut st = self.lock();
                match res {
                    Ok(()) => {
                        for r in rows {
                            st.records.insert(r.name.clone(), r);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot store subcloud states; will retry");
                        st.dirty.extend(rows.into_iter().map(|r| r.name));
                    }
                }
            }
        }
        for d in &fx.drift {
            tracing::info!(subcloud = %d.subcloud, endpoint = d.endpoint.as_str(), "configuration drift found; it will be overwritten while managed");
        }
        for a in fx.alarms {
            let key = (a.alarm_id, a.entity_instance_id.clone());
            // A newer decision about this alarm replaces one still to record.
            self.lock().unrecorded.remove(&key);
            let cmd = crate::fm_service::raise_or_clear(
                a.alarm_id,
                a.entity_instance_id.clone(),
                a.severity,
                a.reason_text.clone(),
            );
            match self.inner.fm.submit(cmd).await {
                Ok(_) => {}
                Err(e) if e.kind() == crate::ErrorKind::Unavailable => {
                    tracing::warn!(error = %e, "cannot record a subcloud alarm; will retry");
                    self.lock().unrecorded.insert(key, a);
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a subcloud alarm"),
            }
        }
    }

    fn view(st: &State, name: &str) -> Option<SubcloudView> {
        let sc = st.fleet.get(name)?;
        let r = st.records.get(name)?;
        Some(SubcloudView {
            id: sc.id() as i64,
            name: sc.name().to_string(),
            description: r.description.clone(),
            location: r.location.clone(),
            software_version: sc.software_version().map(str::to_string),
            management_state: sc.management().as_str().to_string(),
            availability_status: sc.availability().as_str().to_string(),
            deploy_status: sc.deploy_status().as_str().to_string(),
            error_description: String::new(),
            group_id: sc.group_id() as i64,
            region_name: r.region_name.clone(),
            sync_status: sc.sync_status().as_str().to_string(),
            endpoint_sync_status: Endpoint::ALL
                .iter()
                .map(|e| {
                    (
                        e.as_str().to_string(),
                        sc.endpoint_status(*e).as_str().to_string(),
                    )
                })
                .collect(),
            created_at: dc_time(r.created_at),
            updated_at: r.updated_at.map(dc_time),
        })
    }

    fn name_of(st: &State, reference: &str) -> Result<String, Error> {
        st.fleet
            .find(reference)
            .map(|s| s.name().to_string())
            .ok_or_else(|| Error::NotFound("Subcloud not found".into()))
    }

    /// Every subcloud, by id.
    pub fn list(&self) -> Vec<SubcloudView> {
        let st = self.lock();
        let mut v: Vec<SubcloudView> = st
            .fleet
            .iter()
            .filter_map(|s| Self::view(&st, s.name()))
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Every subcloud's (availability, sync status), for the metrics.
    pub fn status_counts(&self) -> Vec<(String, String)> {
        let st = self.lock();
        st.fleet
            .iter()
            .filter_map(|s| Self::view(&st, s.name()))
            .map(|v| (v.availability_status, v.sync_status))
            .collect()
    }

    /// One subcloud by id or name.
    pub fn get(&self, reference: &str) -> Result<SubcloudView, Error> {
        let st = self.lock();
        let name = Self::name_of(&st, reference)?;
        Self::view(&st, &name).ok_or_else(|| Error::NotFound("Subcloud not found".into()))
    }

    fn group_ref(st: &State, v: Option<&Value>, name: Option<&str>) -> Result<u64, Error> {
        let reference = match (v, name) {
            (Some(Value::Number(n)), _) => n.to_string(),
            (Some(Value::String(s)), _) => s.clone(),
            (_, Some(n)) => n.to_string(),
            _ => return Ok(roost_dc::DEFAULT_GROUP_ID),
        };
        st.fleet
            .find_group(&reference)
            .map(|g| g.id)
            .ok_or_else(|| Error::NotFound(format!("Subcloud Group not found: {reference}")))
    }

    /// Creates a subcloud (unmanaged, offline, `not-deployed`) and its
    /// one-time enrollment token.
    pub async fn create(
        &self,
        name: &str,
        description: Option<String>,
        location: Option<String>,
        group: Option<&Value>,
        group_name: Option<&str>,
        ca_fingerprint: &str,
    ) -> Result<(SubcloudView, String), Error> {
        for (what, v) in [("description", &description), ("location", &location)] {
            if v.as_ref().is_some_and(|s| s.len() > 255) {
                return Err(Error::Invalid(format!(
                    "{what} is longer than 255 characters"
                )));
            }
        }
        let secret = random_secret();
        let token = dcsync::make_enroll_token(ca_fingerprint, &secret);
        let _writes = self.inner.writes.lock().await;
        let now = self.inner.clock.now();
        // Decide.
        let (row, group_id) = {
            let st = self.lock();
            let group_id = Self::group_ref(&st, group, group_name)?;
            let id = st.fleet.check_add(name, group_id)?;
            let row = StoredSubcloud {
                id: id as i64,
                name: name.to_string(),
                description,
                location,
                group_id: group_id as i64,
                management_state: Management::Unmanaged.as_str().into(),
                deploy_status: roost_dc::DeployStatus::NotDeployed.as_str().into(),
                software_version: None,
                region_name: uuid::Uuid::new_v4().simple().to_string(),
                enroll_token_hash: Some(sha256_hex(&secret)),
                enroll_expires_at: Some(now.plus_secs(self.inner.config.enroll_ttl_secs as i64)),
                created_at: now,
                updated_at: None,
                cert_serial: None,
                prev_cert_serial: None,
            };
            (row, group_id)
        };
        // Persist.
        let stored = row.clone();
        self.persist(move |store| store.insert_subcloud(&stored))
            .await?;
        // Apply.
        let (fx, view) = {
            let mut st = self.lock();
            let fx = st.fleet.add(name, group_id, now)?;
            st.records.insert(name.to_string(), row);
            (fx, Self::view(&st, name).expect("just added"))
        };
        drop(_writes);
        self.carry_out(fx).await;
        Ok((view, token))
    }

    /// Changes management state, description, location or group.
    pub async fn update(
        &self,
        reference: &str,
        management: Option<&str>,
        description: Option<String>,
        location: Option<String>,
        group: Option<&Value>,
    ) -> Result<SubcloudView, Error> {
        let management = match management {
            None => None,
            Some(m) => Some(Management::parse(m).ok_or_else(|| {
                Error::Invalid(format!(
                    "Invalid management-state {m:?}: use managed or unmanaged"
                ))
            })?),
        };
        let _writes = self.inner.writes.lock().await;
        let now = self.inner.clock.now();
        // Decide.
        let (name, row, group_id) = {
            let st = self.lock();
            let name = Self::name_of(&st, reference)?;
            let group_id = match group {
                None => None,
                Some(g) => Some(Self::group_ref(&st, Some(g), None)?),
            };
            let mut row = st
                .records
                .get(&name)
                .cloned()
                .ok_or_else(|| Error::NotFound("Subcloud not found".into()))?;
            if description.is_some() {
                row.description = description;
            }
            if location.is_some() {
                row.location = location;
            }
            if let Some(m) = management {
                row.management_state = m.as_str().into();
            }
            if let Some(g) = group_id {
                row.group_id = g as i64;
            }
            row.updated_at = Some(now);
            (name, row, group_id)
        };
        // Persist.
        let stored = row.clone();
        self.persist(move |store| store.update_subcloud(&stored))
            .await?;
        // Apply.
        let (fx, view) = {
            let mut st = self.lock();
            let mut fx = DcEffects::default();
            if let Some(g) = group_id {
                fx.merge(st.fleet.set_group(&name, g, now)?);
            }
            if let Some(m) = management {
                fx.merge(st.fleet.set_management(&name, m, now)?);
            }
            st.records.insert(name.clone(), row);
            (fx, Self::view(&st, &name).expect("found"))
        };
        drop(_writes);
        self.carry_out(fx).await;
        Ok(view)
    }

    /// Deletes an unmanaged, offline subcloud and clears its alarms. Its
    /// certificate goes with its record: it is refused from then on.
    pub async fn delete(&self, reference: &str) -> Result<String, Error> {
        let _writes = self.inner.writes.lock().await;
        let (id, name) = {
            let st = self.lock();
            let name = Self::name_of(&st, reference)?;
            st.fleet.check_remove(&name)?;
            let id = st.records.get(&name).map(|r| r.id).unwrap_or(0);
            (id, name)
        };
        self.persist(move |store| store.delete_subcloud(id)).await?;
        {
            let mut st = self.lock();
            // Decided above; it may have been heard from since, but its
            // record is gone and its certificate with it.
            st.fleet.forget(&name);
            st.records.remove(&name);
            st.audit_heads.remove(&name);
            st.orders.remove(&name);
            st.order_reports.remove(&name);
        }
        drop(_writes);
        let _ = self
            .inner
            .fm
            .submit(FmCommand::ClearPrefix {
                entity_prefix: roost_dc::subcloud_entity(&name),
                alarm_id: None,
            })
            .await;
        Ok(name)
    }

    /// Uses an enrollment token: `sign` issues the certificate for the
    /// subcloud's name; its serial is stored on the record and becomes the
    /// subcloud's identity. Returns the name and the certificate.
    pub async fn enroll(
        &self,
        secret: &str,
        sign: impl FnOnce(&str) -> Result<IssuedCert, Error>,
    ) -> Result<(String, IssuedCert), Error> {
        let hash = sha256_hex(secret);
        let _writes = self.inner.writes.lock().await;
        let now = self.inner.clock.now();
        // Decide.
        let (mut row, expired) = {
            let st = self.lock();
            let mut row = st
                .records
                .values()
                .find(|r| r.enroll_token_hash.as_deref() == Some(hash.as_str()))
                .cloned()
                .ok_or_else(bad_token)?;
            let expired = row.enroll_expires_at.is_none_or(|t| t < now);
            row.enroll_token_hash = None;
            row.enroll_expires_at = None;
            (row, expired)
        };
        if expired {
            let stored = row.clone();
            self.persist(move |store| store.update_subcloud(&stored))
                .await?;
            self.lock().records.insert(row.name.clone(), row);
            return Err(bad_token());
        }
        let cert = sign(&row.name)?;
        row.deploy_status = roost_dc::DeployStatus::Enrolling.as_str().into();
        row.updated_at = Some(now);
        row.cert_serial = Some(cert.serial.clone());
        row.prev_cert_serial = None;
        // Persist.
        let stored = row.clone();
        self.persist(move |store| store.update_subcloud(&stored))
            .await?;
        // Apply.
        let name = row.name.clone();
        let fx = {
            let mut st = self.lock();
            let fx = st.fleet.enrolled(&name, now)?;
            st.records.insert(name.clone(), row);
            fx
        };
        drop(_writes);
        self.carry_out(fx).await;
        Ok((name, cert))
    }

    fn authenticate_in(st: &State, peer: &PeerCert) -> Result<String, Error> {
        let refused = || {
            Error::Unauthorized(format!(
                "this certificate is not the one issued to subcloud {} (deleted, added again or replaced)",
                peer.cn
            ))
        };
        let r = st.records.get(&peer.cn).ok_or_else(refused)?;
        let ok = match &r.cert_serial {
            Some(serial) => {
                *serial == peer.serial || r.prev_cert_serial.as_deref() == Some(&peer.serial)
            }
            // Enrolled before serials were recorded: only a certificate
            // issued after this record was created can be its own.
            None => {
                r.enroll_token_hash.is_none()
                    && (peer.not_before + CERT_BACKDATE_SECS).saturating_mul(1_000_000)
                        >= r.created_at.micros()
            }
        };
        if ok {
            Ok(r.name.clone())
        } else {
            Err(refused())
        }
    }

    /// The subcloud a verified client certificate belongs to: its subject
    /// names a subcloud whose record holds this certificate's serial.
    pub fn authenticate(&self, peer: &PeerCert) -> Result<String, Error> {
        Self::authenticate_in(&self.lock(), peer)
    }

    /// Issues a new certificate to an authenticated subcloud; the one it
    /// used stays valid until the next renewal (the answer may be lost).
    pub async fn renew(
        &self,
        peer: &PeerCert,
        sign: impl FnOnce(&str) -> Result<IssuedCert, Error>,
    ) -> Result<(String, IssuedCert), Error> {
        let _writes = self.inner.writes.lock().await;
        let now = self.inner.clock.now();
        let mut row = {
            let st = self.lock();
            let name = Self::authenticate_in(&st, peer)?;
            st.records
                .get(&name)
                .cloned()
                .ok_or(Error::Stopped(STOPPED))?
        };
        let cert = sign(&row.name)?;
        row.prev_cert_serial = Some(peer.serial.clone());
        row.cert_serial = Some(cert.serial.clone());
        row.updated_at = Some(now);
        let stored = row.clone();
        self.persist(move |store| store.update_subcloud(&stored))
            .await?;
        let name = row.name.clone();
        self.lock().records.insert(name.clone(), row);
        Ok((name, cert))
    }

    /// One sync from a subcloud (its heartbeat). The request is checked
    /// whole first; the heartbeat counts even when its alarm stream is
    /// refused, and what it caused is carried out either way.
    pub async fn sync(&self, peer: &PeerCert, req: SyncRequest) -> Result<SyncReply, Error> {
        let mut checked = check_sync(req)?;
        let now = self.inner.clock.now();
        let forwarded = std::mem::take(&mut checked.audit);
        let (result, fx, audit_plan) = {
            let mut st = self.lock();
            let name = Self::authenticate_in(&st, peer)?;
            let audit_plan = Self::plan_audit(&st, &name, forwarded);
            let mut fx = st.fleet.heard_from(&name, now)?;
            let result = Self::decide_sync(
                &mut st,
                &name,
                checked,
                now,
                self.inner.config.sync_interval_secs,
                &mut fx,
            );
            (result, fx, audit_plan)
        };
        if !fx.is_empty() {
            self.carry_out(fx).await;
        }
        let mut reply = result?;
        reply.audit_acked = Some(self.keep_audit(audit_plan).await);
        Ok(reply)
    }

    /// Which forwarded audit records to keep: those after the last one
    /// held. A record that does not chain onto the one before it is kept
    /// all the same (it is the evidence) and logged.
    fn plan_audit(st: &State, name: &str, records: Vec<AuditRecord>) -> AuditPlan {
        let held = st.audit_heads.get(name).copied().unwrap_or_default();
        let mut prev = held;
        let mut keep = Vec::new();
        for r in records.into_iter().filter(|r| r.seq > held.last_seq) {
            let linked =
                prev.last_seq == 0 || r.seq != prev.last_seq + 1 || r.prev_hash == prev.last_hash;
            if !linked || record_hash(r.seq, &r.entry, &r.prev_hash) != r.hash {
                tracing::warn!(
                    subcloud = name,
                    seq = r.seq,
                    "a forwarded audit record does not verify"
                );
            }
            prev = Chain::resume(r.seq, r.hash);
            keep.push(r);
        }
        AuditPlan {
            name: name.to_string(),
            held,
            keep,
        }
    }

    /// Commits the planned audit records; returns the last number held.
    async fn keep_audit(&self, plan: AuditPlan) -> u64 {
        let Some(last) = plan.keep.last() else {
            return plan.held.last_seq;
        };
        let head = Chain::resume(last.seq, last.hash);
        let name = plan.name.clone();
        let records = plan.keep;
        match self
            .persist(move |store| store.put_subcloud_audit(&name, &records))
            .await
        {
            Ok(()) => {
                let mut st = self.lock();
                // Kept only while the subcloud is still known.
                if st.records.contains_key(&plan.name) {
                    let e = st.audit_heads.entry(plan.name).or_default();
                    if head.last_seq > e.last_seq {
                        *e = head;
                    }
                    e.last_seq
                } else {
                    plan.held.last_seq
                }
            }
            Err(e) => {
                tracing::warn!(subcloud = %plan.name, error = %crate::error::error_chain(&e), "cannot store forwarded audit records; the subcloud sends them again");
                plan.held.last_seq
            }
        }
    }

    /// A subcloud's forwarded audit records, the newest `limit`, oldest first.
    pub async fn subcloud_audit(
        &self,
        reference: &str,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, Error> {
        let name = Self::name_of(&self.lock(), reference)?;
        self.persist(move |store| store.subcloud_audit(&name, limit))
            .await
    }

    fn decide_sync(
        st: &mut State,
        name: &str,
        req: CheckedSync,
        now: Timestamp,
        interval_secs: u64,
        fx: &mut DcEffects,
    ) -> Result<SyncReply, Error> {
        if let Some(v) = &req.software_version {
            fx.merge(st.fleet.set_software_version(name, v)?);
        }
        let mut want_snapshot = false;
        if let Some((seq, alarms)) = &req.snapshot {
            st.fleet
                .alarm_snapshot(name, *seq, alarms)
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        if !req.changes.is_empty() {
            match st.fleet.alarm_changes(name, &req.changes) {
                Ok(_) => {}
                // A gap: keep what came before it and ask for a snapshot.
                Err(roost_dc::Error::Gap { .. }) => want_snapshot = true,
                Err(e) => return Err(Error::Invalid(e.to_string())),
            }
        }
        if let Some(r) = &req.order {
            st.order_reports.insert(name.to_string(), r.clone());
        }
        if !req.apps.is_empty() || st.app_reports.contains_key(name) {
            st.app_reports.insert(name.to_string(), req.apps.clone());
        }
        for (ep, generation, digest) in &req.applied {
            fx.merge(
                st.fleet
                    .report_applied(name, *ep, *generation, digest, now)?,
            );
        }
        let sc = st
            .fleet
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("subcloud {name} is not known here")))?;
        let acked = sc.alarm_seq();
        let management = sc.management();
        let epoch = st.fleet.epoch().0;
        let push: Vec<Push> = st
            .fleet
            .to_send(name)
            .into_iter()
            .filter_map(|ep| {
                let d = st.fleet.desired(ep);
                let config = if ep == Endpoint::Apps {
                    EndpointConfig::Apps(apps::group_config(&st.group_apps, sc.group_id()))
                } else {
                    st.content.get(ep.as_str())?.clone()
                };
                Some(Push {
                    epoch,
                    generation: d.generation.0,
                    config,
                })
            })
            .collect();
        Ok(SyncReply {
            epoch,
            acked_seq: acked,
            want_snapshot,
            management: management.as_str().to_string(),
            push,
            interval_secs,
            audit_acked: None,
            order: st.orders.get(name).cloned(),
        })
    }

    /// Sets the deploy order of every subcloud (those left out have none).
    pub fn set_orders(&self, orders: BTreeMap<String, dcsync::DeployOrder>) {
        self.lock().orders = orders;
    }

    /// What the subclouds last reported of their deploy orders.
    pub fn order_reports(&self) -> BTreeMap<String, dcsync::DeployOrderReport> {
        self.lock().order_reports.clone()
    }

    /// What a fleet rollout needs to know of each subcloud: whether it is
    /// online and managed, its group, and its raised alarms that
    /// `unhealthy(alarm id, severity)` picks, described (`<id> on <entity>`).
    /// Only those are copied: this runs every second over the whole fleet.
    pub fn rollout_facts(&self, unhealthy: impl Fn(&str, Severity) -> bool) -> Vec<RolloutFacts> {
        let st = self.lock();
        st.fleet
            .iter()
            .map(|sc| RolloutFacts {
                name: sc.name().to_string(),
                id: sc.id(),
                group_id: sc.group_id(),
                online: sc.is_online(),
                managed: sc.is_managed(),
                unhealthy: sc
                    .alarms()
                    .iter()
                    .filter(|a| unhealthy(&a.alarm_id, a.severity))
                    .map(|a| format!("{} on {}", a.alarm_id, a.entity_instance_id))
                    .collect(),
            })
            .collect()
    }

    /// Sets the desired configuration of an endpoint type; subclouds get it
    /// at their next sync. Returns the new generation.
    pub async fn set_desired(&self, config: EndpointConfig) -> Result<u64, Error> {
        let endpoint = config.endpoint();
        let d = config.digest();
        let _writes = self.inner.writes.lock().await;
        let generation = match self.lock().fleet.plan_desired(endpoint, &d) {
            Some(g) => g,
            None => return Ok(self.lock().fleet.desired(endpoint).generation.0),
        };
        let record = serde_json::to_string(&StoredDesired {
            generation: generation.0,
            content: config.content(),
        })
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let key = format!("{DESIRED_PREFIX}{}", endpoint.as_str());
        self.persist(move |store| store.set_settings(&[(key, record)]))
            .await?;
        let fx = {
            let mut st = self.lock();
            let (g, fx) = st.fleet.set_desired(endpoint, &d, self.inner.clock.now());
            debug_assert_eq!(g, generation);
            st.content.insert(endpoint.as_str().to_string(), config);
            fx
        };
        drop(_writes);
        self.carry_out(fx).await;
        Ok(generation.0)
    }

    /// The desired configuration of an endpoint type and its generation.
    pub fn desired(&self, endpoint: Endpoint) -> (u64, Option<EndpointConfig>) {
        let st = self.lock();
        (
            st.fleet.desired(endpoint).generation.0,
            st.content.get(endpoint.as_str()).cloned(),
        )
    }

    /// `GET /v1.0/alarms` rows: (region name, counts or None if unreachable, cloud status).
    pub fn alarm_summaries(&self) -> Vec<SummaryRow> {
        let st = self.lock();
        st.fleet
            .iter()
            .map(|s| {
                let sum = s.alarm_summary();
                let counts = (sum.critical_alarms >= 0).then_some((
                    sum.critical_alarms as usize,
                    sum.major_alarms as usize,
                    sum.minor_alarms as usize,
                    sum.warnings as usize,
                ));
                (
                    s.name().to_string(),
                    counts,
                    sum.cloud_status.as_str().to_string(),
                )
            })
            .collect()
    }

    /// The alarms a subcloud reported, as the system controller holds them.
    pub fn subcloud_alarms(&self, reference: &str) -> Result<Vec<ActiveAlarm>, Error> {
        let st = self.lock();
        let name = Self::name_of(&st, reference)?;
        let sc = st
            .fleet
            .get(&name)
            .ok_or_else(|| Error::NotFound("Subcloud not found".into()))?;
        Ok(sc.alarms().iter().cloned().collect())
    }

    // ----- groups -----

    /// Every group, by id.
    pub fn groups(&self) -> Vec<GroupView> {
        let st = self.lock();
        let now = self.inner.clock.now();
        st.fleet.groups().map(|g| group_view(g, now)).collect()
    }

    /// One group by id or name.
    pub fn group(&self, reference: &str) -> Result<GroupView, Error> {
        let st = self.lock();
        st.fleet
            .find_group(reference)
            .map(|g| group_view(g, self.inner.clock.now()))
            .ok_or_else(|| Error::NotFound("Subcloud Group not found".into()))
    }

    /// Subclouds of a group.
    pub fn group_subclouds(&self, reference: &str) -> Result<Vec<SubcloudView>, Error> {
        let st = self.lock();
        let g = st
            .fleet
            .find_group(reference)
            .ok_or_else(|| Error::NotFound("Subcloud Group not found".into()))?
            .id;
        Ok(st
            .fleet
            .subclouds_in_group(g)
            .filter_map(|s| Self::view(&st, s.name()))
            .collect())
    }

    fn group_id_of(st: &State, reference: &str) -> Result<u64, Error> {
        st.fleet
            .find_group(reference)
            .map(|g| g.id)
            .ok_or_else(|| Error::NotFound("Subcloud Group not found".into()))
    }

    /// Adds a group.
    pub async fn add_group(
        &self,
        name: String,
        description: Option<String>,
        apply: Option<String>,
        max_parallel: Option<&Value>,
    ) -> Result<GroupView, Error> {
        let spec = GroupSpec {
            name,
            description: description.unwrap_or_else(|| "No description provided".into()),
            update_apply_type: match apply {
                None => ApplyType::Parallel,
                Some(a) => roost_dc::parse_apply_type(&a)?,
            },
            max_parallel_subclouds: match max_parallel {
                None => 2,
                Some(v) => roost_dc::parse_max_parallel(&value_text(v))?,
            },
        };
        let _writes = self.inner.writes.lock().await;
        let now = self.inner.clock.now();
        let g = self.lock().fleet.plan_add_group(spec)?;
        let row = stored_group(&g, now);
        self.persist(move |store| store.save_group(&row)).await?;
        self.lock().fleet.restore_group(g.clone())?;
        Ok(group_view(&g, now))
    }

    /// Changes a group.
    pub async fn update_group(
        &self,
        reference: &str,
        name: Option<String>,
        description: Option<String>,
        apply: Option<String>,
        max_parallel: Option<&Value>,
    ) -> Result<GroupView, Error> {
        let patch = GroupPatch {
            name,
            description,
            update_apply_type: apply.map(|a| roost_dc::parse_apply_type(&a)).transpose()?,
            max_parallel_subclouds: max_parallel
                .map(|v| roost_dc::parse_max_parallel(&value_text(v)))
                .transpose()?,
        };
        let _writes = self.inner.writes.lock().await;
        let now = self.inner.clock.now();
        let g = {
            let st = self.lock();
            let id = Self::group_id_of(&st, reference)?;
            st.fleet.plan_update_group(id, patch)?
        };
        let row = stored_group(&g, now);
        self.persist(move |store| store.save_group(&row)).await?;
        self.lock().fleet.replace_group(g.clone())?;
        Ok(group_view(&g, now))
    }

    /// Deletes a group without subclouds (never `Default`).
    pub async fn delete_group(&self, reference: &str) -> Result<(), Error> {
        let _writes = self.inner.writes.lock().await;
        let id = {
            let st = self.lock();
            let id = Self::group_id_of(&st, reference)?;
            st.fleet.check_delete_group(id)?;
            id
        };
        self.persist(move |store| store.delete_group(id as i64))
            .await?;
        let fx = {
            let mut st = self.lock();
            st.fleet.delete_group(id)?;
            // Its assignments went with it (the store cascades).
            if st.group_apps.remove(&id).is_some() {
                self.desire_apps(&mut st)
            } else {
                DcEffects::default()
            }
        };
        self.carry_out(fx).await;
        Ok(())
    }
}

mod apps;

pub mod rollout;

#[cfg(test)]
mod tests;

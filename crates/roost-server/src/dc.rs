//! The system controller's Distributed Cloud service: subclouds and groups
//! (records in the store, states in `roost_dc::Fleet`), enrollment tokens,
//! the sync protocol's server side (alarm streams, configuration pushes),
//! and the desired configuration it keeps for its subclouds.
//!
//! One lock guards the fleet and the records; alarms and store writes
//! happen after it is released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roost_api::dcmanager::{GroupView, SubcloudView, dc_time};
use roost_api::dcsync::{self, Push, SyncReply, SyncRequest};
use roost_dc::{
    ActiveAlarm, AlarmChange, ApplyType, DcEffects, DcError, DcSettings, Desired, Endpoint, Epoch,
    Fleet, Generation, Group, GroupError, GroupPatch, GroupSpec, Management, StreamError,
    SubcloudRecord,
};
use roost_fm::FmCommand;
use roost_store::{Store, StoreError, StoredGroup, StoredSubcloud};
use roost_types::{Clock, Severity, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Shutdown;
use crate::fm_service::FmService;

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

/// Why a Distributed Cloud request failed.
#[derive(Debug, thiserror::Error)]
pub enum DcServiceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the enrollment token is not valid (unknown, used or expired)")]
    BadToken,
    #[error("{0}")]
    Stream(String),
    #[error("store unavailable")]
    Store(#[from] StoreError),
}

impl From<DcError> for DcServiceError {
    fn from(e: DcError) -> Self {
        match e {
            DcError::UnknownSubcloud(_) | DcError::UnknownGroup(_) => {
                DcServiceError::NotFound(e.to_string())
            }
            other => DcServiceError::Invalid(other.to_string()),
        }
    }
}

impl From<GroupError> for DcServiceError {
    fn from(e: GroupError) -> Self {
        let m = e.to_string();
        if m.to_ascii_lowercase().contains("not found") {
            DcServiceError::NotFound(m)
        } else {
            DcServiceError::Invalid(m)
        }
    }
}

struct State {
    fleet: Fleet,
    records: BTreeMap<String, StoredSubcloud>,
    /// Content of the desired configuration, by endpoint.
    content: BTreeMap<String, Value>,
}

struct Inner {
    store: Arc<Store>,
    fm: FmService,
    clock: Arc<dyn Clock>,
    config: DcConfig,
    state: Mutex<State>,
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

/// The digest of a configuration: SHA-256 of its canonical JSON (keys sorted).
pub fn digest(v: &Value) -> String {
    sha256_hex(&v.to_string())
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

impl DcService {
    /// Loads groups, subclouds and the desired configuration, and starts
    /// the loop that declares silent subclouds offline.
    pub fn start(
        store: Arc<Store>,
        fm: FmService,
        clock: Arc<dyn Clock>,
        config: DcConfig,
        shutdown: Shutdown,
    ) -> anyhow::Result<(DcService, tokio::task::JoinHandle<()>)> {
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
        let mut content = BTreeMap::new();
        for ep in Endpoint::SYNCED {
            if let Some(text) = store.setting(&format!("{DESIRED_PREFIX}{}", ep.as_str()))?
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                let generation = v["generation"].as_u64().unwrap_or(0);
                let c = v["content"].clone();
                fleet.restore_desired(
                    ep,
                    Desired {
                        generation: Generation(generation),
                        digest: digest(&c),
                    },
                    now,
                );
                content.insert(ep.as_str().to_string(), c);
            }
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
                }),
            }),
        };
        // 280.002 alarms from before a restart are raised again if still true.
        let clear_stale = svc.clone();
        let task = tokio::spawn(async move {
            let _ = clear_stale
                .inner
                .fm
                .submit(FmCommand::ClearPrefix {
                    entity_prefix: "subcloud=".into(),
                    alarm_id: Some(roost_dc::ALARM_SUBCLOUD_OUT_OF_SYNC.into()),
                })
                .await;
            clear_stale.carry_out(initial).await;
            clear_stale.tick_loop(shutdown).await;
        });
        Ok((svc, task))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn tick_loop(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let fx = self.lock().fleet.tick(self.inner.clock.now());
            if !fx.is_empty() {
                self.carry_out(fx).await;
            }
        }
    }

    /// Raises and clears alarms, persists changed subclouds.
    async fn carry_out(&self, fx: DcEffects) {
        let rows: Vec<StoredSubcloud> = {
            let mut st = self.lock();
            let now = self.inner.clock.now();
            let mut rows = Vec::new();
            for name in &fx.changed {
                let Some(sc) = st.fleet.get(name).map(|s| s.record()) else {
                    continue;
                };
                if let Some(r) = st.records.get_mut(name) {
                    let before = r.clone();
                    r.management_state = sc.management.as_str().to_string();
                    r.deploy_status = sc.deploy_status.as_str().to_string();
                    r.software_version = sc.software_version.clone();
                    r.group_id = sc.group_id as i64;
                    if *r != before {
                        r.updated_at = Some(now);
                        rows.push(r.clone());
                    }
                }
            }
            rows
        };
        if !rows.is_empty() {
            let store = self.inner.store.clone();
            let res = tokio::task::spawn_blocking(move || {
                for r in &rows {
                    store.update_subcloud(r)?;
                }
                Ok::<(), StoreError>(())
            })
            .await;
            if !matches!(res, Ok(Ok(()))) {
                tracing::warn!("cannot store subcloud states");
            }
        }
        for d in &fx.drift {
            tracing::info!(subcloud = %d.subcloud, endpoint = d.endpoint.as_str(), "configuration drift found; it will be overwritten while managed");
        }
        for a in fx.alarms {
            let cmd = crate::fm_service::raise_or_clear(
                a.alarm_id,
                a.entity_instance_id,
                a.severity,
                a.reason_text,
            );
            if let Err(e) = self.inner.fm.submit(cmd).await {
                tracing::warn!(error = %e, "cannot record a subcloud alarm");
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

    fn name_of(st: &State, reference: &str) -> Result<String, DcServiceError> {
        st.fleet
            .find(reference)
            .map(|s| s.name().to_string())
            .ok_or_else(|| DcServiceError::NotFound("Subcloud not found".into()))
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

    /// One subcloud by id or name.
    pub fn get(&self, reference: &str) -> Result<SubcloudView, DcServiceError> {
        let st = self.lock();
        let name = Self::name_of(&st, reference)?;
        Self::view(&st, &name).ok_or_else(|| DcServiceError::NotFound("Subcloud not found".into()))
    }

    fn group_ref(st: &State, v: Option<&Value>, name: Option<&str>) -> Result<u64, DcServiceError> {
        let reference = match (v, name) {
            (Some(Value::Number(n)), _) => n.to_string(),
            (Some(Value::String(s)), _) => s.clone(),
            (_, Some(n)) => n.to_string(),
            _ => return Ok(roost_dc::DEFAULT_GROUP_ID),
        };
        st.fleet
            .find_group(&reference)
            .map(|g| g.id)
            .ok_or_else(|| {
                DcServiceError::NotFound(format!("Subcloud Group not found: {reference}"))
            })
    }

    /// Creates a subcloud (unmanaged, offline, `not-deployed`) and its
    /// one-time enrollment token.
    pub fn create(
        &self,
        name: &str,
        description: Option<String>,
        location: Option<String>,
        group: Option<&Value>,
        group_name: Option<&str>,
        ca_fingerprint: &str,
    ) -> Result<(SubcloudView, String), DcServiceError> {
        let now = self.inner.clock.now();
        let secret: String = {
            let mut b = [0u8; 24];
            if getrandom::fill(&mut b).is_err() {
                std::process::abort();
            }
            b.iter().map(|x| format!("{x:02x}")).collect()
        };
        let token = dcsync::make_enroll_token(ca_fingerprint, &secret);
        for (what, v) in [("description", &description), ("location", &location)] {
            if v.as_ref().is_some_and(|s| s.len() > 255) {
                return Err(DcServiceError::Invalid(format!(
                    "{what} is longer than 255 characters"
                )));
            }
        }
        let mut st = self.lock();
        let group_id = Self::group_ref(&st, group, group_name)?;
        let fx = st.fleet.add(name, group_id, now)?;
        let rec = st.fleet.get(name).map(|s| s.record()).expect("just added");
        let row = StoredSubcloud {
            id: rec.id as i64,
            name: name.to_string(),
            description,
            location,
            group_id: group_id as i64,
            management_state: rec.management.as_str().into(),
            deploy_status: rec.deploy_status.as_str().into(),
            software_version: None,
            region_name: uuid::Uuid::new_v4().simple().to_string(),
            enroll_token_hash: Some(sha256_hex(&secret)),
            enroll_expires_at: Some(now.plus_secs(self.inner.config.enroll_ttl_secs as i64)),
            created_at: now,
            updated_at: None,
        };
        if let Err(e) = self.inner.store.insert_subcloud(&row) {
            let _ = st.fleet.remove(name);
            return Err(e.into());
        }
        st.records.insert(name.to_string(), row);
        let view = Self::view(&st, name).expect("just added");
        drop(st);
        if !fx.is_empty() {
            let svc = self.clone();
            tokio::spawn(async move { svc.carry_out(fx).await });
        }
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
    ) -> Result<SubcloudView, DcServiceError> {
        let now = self.inner.clock.now();
        let (fx, row, view) = {
            let mut st = self.lock();
            let name = Self::name_of(&st, reference)?;
            let mut fx = DcEffects::default();
            let management = match management {
                None => None,
                Some(m) => Some(Management::parse(m).ok_or_else(|| {
                    DcServiceError::Invalid(format!(
                        "Invalid management-state {m:?}: use managed or unmanaged"
                    ))
                })?),
            };
            let group_id = match group {
                None => None,
                Some(g) => Some(Self::group_ref(&st, Some(g), None)?),
            };
            if let Some(g) = group_id {
                fx.merge(st.fleet.set_group(&name, g)?);
            }
            if let Some(m) = management {
                fx.merge(st.fleet.set_management(&name, m, now)?);
            }
            let rec = st.fleet.get(&name).map(|s| s.record()).expect("found");
            let r = st.records.get_mut(&name).expect("found");
            if description.is_some() {
                r.description = description;
            }
            if location.is_some() {
                r.location = location;
            }
            r.management_state = rec.management.as_str().into();
            r.group_id = rec.group_id as i64;
            r.updated_at = Some(now);
            let row = r.clone();
            (fx, row, Self::view(&st, &name).expect("found"))
        };
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.update_subcloud(&row))
            .await
            .map_err(|e| DcServiceError::Invalid(e.to_string()))??;
        self.carry_out(fx).await;
        Ok(view)
    }

    /// Deletes an unmanaged, offline subcloud and clears its alarms.
    pub async fn delete(&self, reference: &str) -> Result<(), DcServiceError> {
        let (id, name) = {
            let mut st = self.lock();
            let name = Self::name_of(&st, reference)?;
            st.fleet.remove(&name)?;
            let r = st.records.remove(&name);
            (r.map(|r| r.id).unwrap_or(0), name)
        };
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.delete_subcloud(id))
            .await
            .map_err(|e| DcServiceError::Invalid(e.to_string()))??;
        let _ = self
            .inner
            .fm
            .submit(FmCommand::ClearPrefix {
                entity_prefix: roost_dc::subcloud_entity(&name),
                alarm_id: None,
            })
            .await;
        Ok(())
    }

    /// Uses an enrollment token: returns the subcloud's name. The caller signs its CSR.
    pub fn take_enroll_token(&self, secret: &str) -> Result<String, DcServiceError> {
        let now = self.inner.clock.now();
        let hash = sha256_hex(secret);
        let (row, fx) = {
            let mut st = self.lock();
            let name = st
                .records
                .values()
                .find(|r| r.enroll_token_hash.as_deref() == Some(hash.as_str()))
                .map(|r| r.name.clone())
                .ok_or(DcServiceError::BadToken)?;
            let r = st.records.get_mut(&name).expect("found");
            let expired = r.enroll_expires_at.is_none_or(|t| t < now);
            r.enroll_token_hash = None;
            r.enroll_expires_at = None;
            if expired {
                let row = r.clone();
                drop(st);
                self.inner.store.update_subcloud(&row)?;
                return Err(DcServiceError::BadToken);
            }
            let fx = st.fleet.enrolled(&name, now)?;
            let r = st.records.get_mut(&name).expect("found");
            r.deploy_status = roost_dc::DeployStatus::Enrolling.as_str().into();
            r.updated_at = Some(now);
            (r.clone(), fx)
        };
        self.inner.store.update_subcloud(&row)?;
        let svc = self.clone();
        tokio::spawn(async move { svc.carry_out(fx).await });
        Ok(row.name)
    }

    /// One sync from a subcloud (its heartbeat).
    pub async fn sync(&self, name: &str, req: SyncRequest) -> Result<SyncReply, DcServiceError> {
        let now = self.inner.clock.now();
        let (reply, fx) = {
            let mut st = self.lock();
            if st.fleet.get(name).is_none() {
                return Err(DcServiceError::NotFound(format!(
                    "subcloud {name} is not known here"
                )));
            }
            let mut fx = st.fleet.heard_from(name, now)?;
            if let Some(v) = &req.software_version {
                fx.merge(st.fleet.set_software_version(name, v)?);
            }
            let mut want_snapshot = false;
            if let Some(snap) = &req.snapshot {
                let alarms: Vec<ActiveAlarm> = snap
                    .alarms
                    .iter()
                    .filter_map(|a| {
                        Some(ActiveAlarm {
                            alarm_id: a.alarm_id.clone(),
                            entity_instance_id: a.entity_instance_id.clone(),
                            severity: a.severity.parse::<Severity>().ok()?,
                            reason_text: a.reason_text.clone(),
                            timestamp: Timestamp(a.timestamp),
                        })
                    })
                    .collect();
                st.fleet
                    .alarm_snapshot(name, snap.seq, &alarms)
                    .map_err(|e| DcServiceError::Stream(e.to_string()))?;
            }
            if !req.changes.is_empty() {
                let mut changes = Vec::with_capacity(req.changes.len());
                for c in &req.changes {
                    let severity = match &c.severity {
                        None => None,
                        Some(s) => Some(s.parse::<Severity>().map_err(|e| {
                            DcServiceError::Stream(format!("alarm change {}: {e}", c.seq))
                        })?),
                    };
                    changes.push(AlarmChange {
                        seq: c.seq,
                        alarm_id: c.alarm_id.clone(),
                        entity_instance_id: c.entity_instance_id.clone(),
                        severity,
                        reason_text: c.reason_text.clone(),
                        timestamp: Timestamp(c.timestamp),
                    });
                }
                match st.fleet.alarm_changes(name, &changes) {
                    Ok(_) => {}
                    // A gap: keep what came before it and ask for a snapshot.
                    Err(StreamError::Gap { .. }) => want_snapshot = true,
                    Err(e) => return Err(DcServiceError::Stream(e.to_string())),
                }
            }
            for a in &req.applied {
                let Some(ep) = Endpoint::parse(&a.endpoint) else {
                    return Err(DcServiceError::Invalid(format!(
                        "unknown endpoint type {:?}",
                        a.endpoint
                    )));
                };
                fx.merge(st.fleet.report_applied(
                    name,
                    ep,
                    Generation(a.generation),
                    &a.digest,
                    now,
                )?);
            }
            let sc = st.fleet.get(name).expect("found");
            let acked = sc.alarm_seq();
            let management = sc.management();
            let epoch = st.fleet.epoch().0;
            let push: Vec<Push> = st
                .fleet
                .to_send(name)
                .into_iter()
                .filter_map(|ep| {
                    let d = st.fleet.desired(ep);
                    let content = st.content.get(ep.as_str())?.clone();
                    Some(Push {
                        endpoint: ep.as_str().to_string(),
                        epoch,
                        generation: d.generation.0,
                        content,
                    })
                })
                .collect();
            (
                SyncReply {
                    epoch,
                    acked_seq: acked,
                    want_snapshot,
                    management: management.as_str().to_string(),
                    push,
                    interval_secs: self.inner.config.sync_interval_secs,
                },
                fx,
            )
        };
        if !fx.is_empty() {
            self.carry_out(fx).await;
        }
        Ok(reply)
    }

    /// Sets the desired configuration of an endpoint type; subclouds get it
    /// at their next sync. Returns the new generation.
    pub async fn set_desired(
        &self,
        endpoint: Endpoint,
        content: Value,
    ) -> Result<u64, DcServiceError> {
        let now = self.inner.clock.now();
        let (generation, fx) = {
            let mut st = self.lock();
            let (g, fx) = st.fleet.set_desired(endpoint, &digest(&content), now);
            st.content
                .insert(endpoint.as_str().to_string(), content.clone());
            (g, fx)
        };
        let record =
            serde_json::json!({"generation": generation.0, "content": content}).to_string();
        self.inner
            .store
            .set_settings(&[(format!("{DESIRED_PREFIX}{}", endpoint.as_str()), record)])?;
        self.carry_out(fx).await;
        Ok(generation.0)
    }

    /// The desired configuration of an endpoint type and its generation.
    pub fn desired(&self, endpoint: Endpoint) -> (u64, Option<Value>) {
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
    pub fn subcloud_alarms(&self, reference: &str) -> Result<Vec<ActiveAlarm>, DcServiceError> {
        let st = self.lock();
        let name = Self::name_of(&st, reference)?;
        let sc = st.fleet.get(&name).expect("found");
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
    pub fn group(&self, reference: &str) -> Result<GroupView, DcServiceError> {
        let st = self.lock();
        st.fleet
            .find_group(reference)
            .map(|g| group_view(g, self.inner.clock.now()))
            .ok_or_else(|| DcServiceError::NotFound("Subcloud Group not found".into()))
    }

    /// Subclouds of a group.
    pub fn group_subclouds(&self, reference: &str) -> Result<Vec<SubcloudView>, DcServiceError> {
        let st = self.lock();
        let g = st
            .fleet
            .find_group(reference)
            .ok_or_else(|| DcServiceError::NotFound("Subcloud Group not found".into()))?
            .id;
        Ok(st
            .fleet
            .subclouds_in_group(g)
            .filter_map(|s| Self::view(&st, s.name()))
            .collect())
    }

    /// Adds a group.
    pub fn add_group(
        &self,
        name: String,
        description: Option<String>,
        apply: Option<String>,
        max_parallel: Option<&Value>,
    ) -> Result<GroupView, DcServiceError> {
        let now = self.inner.clock.now();
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
        let mut st = self.lock();
        let g = st.fleet.add_group(spec)?.clone();
        if let Err(e) = self.inner.store.save_group(&stored_group(&g, now)) {
            let _ = st.fleet.delete_group(g.id);
            return Err(e.into());
        }
        Ok(group_view(&g, now))
    }

    /// Changes a group.
    pub fn update_group(
        &self,
        reference: &str,
        name: Option<String>,
        description: Option<String>,
        apply: Option<String>,
        max_parallel: Option<&Value>,
    ) -> Result<GroupView, DcServiceError> {
        let now = self.inner.clock.now();
        let mut st = self.lock();
        let id = st
            .fleet
            .find_group(reference)
            .ok_or_else(|| DcServiceError::NotFound("Subcloud Group not found".into()))?
            .id;
        let patch = GroupPatch {
            name,
            description,
            update_apply_type: apply.map(|a| roost_dc::parse_apply_type(&a)).transpose()?,
            max_parallel_subclouds: max_parallel
                .map(|v| roost_dc::parse_max_parallel(&value_text(v)))
                .transpose()?,
        };
        let g = st.fleet.update_group(id, patch)?.clone();
        self.inner.store.save_group(&stored_group(&g, now))?;
        Ok(group_view(&g, now))
    }

    /// Deletes a group without subclouds (never `Default`).
    pub fn delete_group(&self, reference: &str) -> Result<(), DcServiceError> {
        let mut st = self.lock();
        let id = st
            .fleet
            .find_group(reference)
            .ok_or_else(|| DcServiceError::NotFound("Subcloud Group not found".into()))?
            .id;
        st.fleet.delete_group(id)?;
        self.inner.store.delete_group(id as i64)?;
        Ok(())
    }
}

//! The System Controller's view of its subclouds.
//!
//! [`Fleet`] is fed inputs (a subcloud was heard from, reported what it
//! applied, sent alarm changes; an operator managed it; time passed) with
//! the current time, and returns [`DcEffects`]: alarms 280.001/280.002 to
//! raise or clear, the subclouds whose state changed, and drift newly seen.
//! It never sleeps and never does I/O.
//!
//! Rules (StarlingX's unless said otherwise):
//! - A subcloud not heard from for `offline_after_secs` becomes offline.
//!   Alarm 280.001 (critical, `subcloud=<name>`) is active exactly while a
//!   subcloud is managed and offline.
//! - Sync status of an endpoint type: `unknown` while offline, and while
//!   unmanaged except for `dc-cert` (StarlingX keeps auditing it); `in-sync`
//!   when the System Controller desires nothing for it (generation 0);
//!   `unknown` until the subcloud reports it; then `in-sync` when the applied
//!   generation and the local digest both match, `out-of-sync` otherwise.
//!   A matching generation with a different digest is drift (someone changed
//!   the subcloud behind the controller's back).
//! - Roost's `apps` endpoint is per group ([`Endpoint::is_per_group`]): the
//!   desired content is the list of applications assigned to the subcloud's
//!   group, one digest per group under one generation for the endpoint type
//!   (every change bumps it, so a subcloud moved between groups never sees
//!   an older generation). A group with nothing assigned desires the empty
//!   list. The digest alone decides `in-sync` (what runs is what matters;
//!   the generation only orders pushes), so a change to one group re-pushes
//!   nothing to the others.
//! - Alarm 280.002 (major, `subcloud=<name>.resource=<endpoint>`) is raised
//!   when an endpoint of a managed subcloud has been out-of-sync for
//!   `out_of_sync_alarm_after_secs` (counted from when it went out of sync,
//!   or from when the subcloud was managed), and cleared as soon as it is not
//!   out-of-sync any more (in sync, offline, or unmanaged).
//! - `deploy-status` (Roost's flow): `not-deployed` when created,
//!   `enrolling` when the enrollment token is used, `complete` once the
//!   enrolling subcloud has reported every synchronised endpoint type (its
//!   first full configuration exchange).
//!
//! Cost: [`Fleet::tick`] keeps a lower bound of the next deadline (offline
//! or 280.002) and returns at once, without allocating, until it is due;
//! a due tick walks every subcloud once. Alarm summaries are O(1) to read.

use std::collections::BTreeMap;

use roost_types::{Severity, Timestamp};

use crate::Error;
use crate::alarms::{ActiveAlarm, AlarmChange, AlarmCounts, AlarmStream, AlarmSummary, AlarmTable};
use crate::group::{
    DEFAULT_GROUP_ID, Group, GroupPatch, GroupSpec, check_description, check_group_name,
    check_max_parallel, check_subcloud_name,
};
use crate::settings::DcSettings;
use crate::sync::{Desired, Report};
use crate::words::{
    Availability, DeployStatus, ENDPOINT_COUNT, Endpoint, Epoch, Generation, Management, SyncStatus,
};

/// Alarm: subcloud offline (critical, `subcloud=<name>`).
pub const ALARM_SUBCLOUD_OFFLINE: &str = "280.001";
/// Alarm: subcloud resource out of sync (major, `subcloud=<name>.resource=<endpoint>`).
pub const ALARM_SUBCLOUD_OUT_OF_SYNC: &str = "280.002";
/// Names no subcloud may take (compared ignoring case).
pub const RESERVED_SUBCLOUD_NAMES: [&str; 2] = ["SystemController", "RegionOne"];

const NEVER: Timestamp = Timestamp(i64::MAX);

fn later(t: Timestamp, micros: i64) -> Timestamp {
    Timestamp(t.0.saturating_add(micros))
}

/// The entity instance id of a subcloud's alarms.
pub fn subcloud_entity(name: &str) -> String {
    format!("subcloud={name}")
}

/// The entity instance id of a subcloud's endpoint (alarm 280.002).
pub fn resource_entity(name: &str, endpoint: Endpoint) -> String {
    format!("subcloud={name}.resource={endpoint}")
}

/// An alarm to raise (with a severity) or clear (without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmOut {
    pub alarm_id: &'static str,
    pub entity_instance_id: String,
    pub severity: Option<Severity>,
    pub reason_text: String,
}

/// A subcloud whose local configuration of an endpoint type differs from
/// what it applied at the desired generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub subcloud: String,
    pub endpoint: Endpoint,
}

/// What an input caused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DcEffects {
    pub alarms: Vec<AlarmOut>,
    /// Subclouds whose state changed (to persist and publish). `last_seen`
    /// alone does not count: it moves on every heartbeat.
    pub changed: Vec<String>,
    /// Drift seen for the first time.
    pub drift: Vec<Drift>,
}

impl DcEffects {
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty() && self.changed.is_empty() && self.drift.is_empty()
    }

    /// Appends `other`, keeping `changed` free of repeats.
    pub fn merge(&mut self, other: DcEffects) {
        self.alarms.extend(other.alarms);
        for n in other.changed {
            if !self.changed.contains(&n) {
                self.changed.push(n);
            }
        }
        self.drift.extend(other.drift);
    }

    // Each input handles a subcloud at a time, so a repeat can only follow
    // its first mention directly.
    fn touch(&mut self, name: &str) {
        if self.changed.last().map(String::as_str) != Some(name) {
            self.changed.push(name.to_string());
        }
    }

    fn raise_offline(&mut self, name: &str) {
        self.alarms.push(AlarmOut {
            alarm_id: ALARM_SUBCLOUD_OFFLINE,
            entity_instance_id: subcloud_entity(name),
            severity: Some(Severity::Critical),
            reason_text: format!("{name} is offline"),
        });
    }

    fn clear_offline(&mut self, name: &str) {
        self.alarms.push(AlarmOut {
            alarm_id: ALARM_SUBCLOUD_OFFLINE,
            entity_instance_id: subcloud_entity(name),
            severity: None,
            reason_text: String::new(),
        });
    }

    fn raise_sync(&mut self, name: &str, ep: Endpoint) {
        self.alarms.push(AlarmOut {
            alarm_id: ALARM_SUBCLOUD_OUT_OF_SYNC,
            entity_instance_id: resource_entity(name, ep),
            severity: Some(Severity::Major),
            reason_text: format!("{name} {ep} sync_status is out-of-sync"),
        });
    }

    fn clear_sync(&mut self, name: &str, ep: Endpoint) {
        self.alarms.push(AlarmOut {
            alarm_id: ALARM_SUBCLOUD_OUT_OF_SYNC,
            entity_instance_id: resource_entity(name, ep),
            severity: None,
            reason_text: String::new(),
        });
    }
}

/// What to persist of a subcloud, and what [`Fleet::restore`] takes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubcloudRecord {
    pub name: String,
    pub id: u64,
    pub group_id: u64,
    pub management: Management,
    pub availability: Availability,
    pub deploy_status: DeployStatus,
    pub last_seen: Option<Timestamp>,
    pub software_version: Option<String>,
    pub created_at: Timestamp,
}

/// Sync status of one endpoint type of one subcloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSync {
    pub endpoint: Endpoint,
    pub status: SyncStatus,
    /// The generation the subcloud last reported, if it did.
    pub applied: Option<Generation>,
    /// The generation matches the desired one but the content does not.
    pub drift: bool,
}

#[derive(Debug, Clone)]
struct EndpointState {
    status: SyncStatus,
    report: Option<Report>,
    /// When the status last became out-of-sync (or the subcloud was managed).
    since: Option<Timestamp>,
    alarmed: bool,
    drift: bool,
}

impl EndpointState {
    fn new() -> EndpointState {
        EndpointState {
            status: SyncStatus::Unknown,
            report: None,
            since: None,
            alarmed: false,
            drift: false,
        }
    }
}

/// One subcloud as the System Controller sees it.
#[derive(Debug, Clone)]
pub struct SubcloudState {
    name: String,
    id: u64,
    group_id: u64,
    management: Management,
    availability: Availability,
    deploy_status: DeployStatus,
    last_seen: Option<Timestamp>,
    software_version: Option<String>,
    created_at: Timestamp,
    endpoints: [EndpointState; ENDPOINT_COUNT],
    offline_alarm: bool,
    alarms: AlarmStream,
}

impl SubcloudState {
    fn from_record(r: SubcloudRecord) -> SubcloudState {
        SubcloudState {
            name: r.name,
            id: r.id,
            group_id: r.group_id,
            management: r.management,
            availability: r.availability,
            deploy_status: r.deploy_status,
            last_seen: r.last_seen,
            software_version: r.software_version,
            created_at: r.created_at,
            endpoints: std::array::from_fn(|_| EndpointState::new()),
            offline_alarm: false,
            alarms: AlarmStream::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn group_id(&self) -> u64 {
        self.group_id
    }

    pub fn management(&self) -> Management {
        self.management
    }

    pub fn availability(&self) -> Availability {
        self.availability
    }

    pub fn is_managed(&self) -> bool {
        self.management == Management::Managed
    }

    pub fn is_online(&self) -> bool {
        self.availability == Availability::Online
    }

    pub fn deploy_status(&self) -> DeployStatus {
        self.deploy_status
    }

    /// When the System Controller last heard from the subcloud.
    pub fn last_seen(&self) -> Option<Timestamp> {
        self.last_seen
    }

    pub fn software_version(&self) -> Option<&str> {
        self.software_version.as_deref()
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// Sync status of one endpoint type.
    pub fn endpoint_status(&self, endpoint: Endpoint) -> SyncStatus {
        self.endpoints[endpoint.index()].status
    }

    /// Every endpoint type, in StarlingX's listing order.
    pub fn endpoint_sync(&self) -> impl Iterator<Item = EndpointSync> + '_ {
        Endpoint::ALL.iter().map(|&endpoint| {
            let e = &self.endpoints[endpoint.index()];
            EndpointSync {
                endpoint,
                status: e.status,
                applied: e.report.as_ref().map(|r| r.generation),
                drift: e.drift,
            }
        })
    }

    /// Overall: `out-of-sync` if any endpoint is, else `in-sync` if all are,
    /// else `unknown`.
    pub fn sync_status(&self) -> SyncStatus {
        let mut all_in = true;
        for e in &self.endpoints {
            match e.status {
                SyncStatus::OutOfSync => return SyncStatus::OutOfSync,
                SyncStatus::Unknown => all_in = false,
                SyncStatus::InSync => {}
            }
        }
        if all_in {
            SyncStatus::InSync
        } else {
            SyncStatus::Unknown
        }
    }

    /// Endpoint types whose last report shows drift.
    pub fn drifted(&self) -> Vec<Endpoint> {
        Endpoint::ALL
            .into_iter()
            .filter(|e| self.endpoints[e.index()].drift)
            .collect()
    }

    /// The row of `/v1.0/alarms`: counts, or -1 and `disabled` while offline.
    pub fn alarm_summary(&self) -> AlarmSummary {
        if self.is_online() {
            AlarmSummary::from_counts(self.alarms.table().counts())
        } else {
            AlarmSummary::DISABLED
        }
    }

    /// Counts of the last known alarm table (kept while offline).
    pub fn alarm_counts(&self) -> AlarmCounts {
        self.alarms.table().counts()
    }

    /// The subcloud's active alarms, as last reported.
    pub fn alarms(&self) -> &AlarmTable {
        self.alarms.table()
    }

    /// The last alarm change applied: where the subcloud resumes its stream.
    pub fn alarm_seq(&self) -> u64 {
        self.alarms.acked()
    }

    /// What to persist.
    pub fn record(&self) -> SubcloudRecord {
        SubcloudRecord {
            name: self.name.clone(),
            id: self.id,
            group_id: self.group_id,
            management: self.management,
            availability: self.availability,
            deploy_status: self.deploy_status,
            last_seen: self.last_seen,
            software_version: self.software_version.clone(),
            created_at: self.created_at,
        }
    }
}

/// What the System Controller desires, by endpoint type, and by group for
/// the per-group types.
#[derive(Debug, Clone)]
struct Desireds {
    all: [Desired; ENDPOINT_COUNT],
    /// Digest of each group's content of the per-group endpoint type (only
    /// `apps` today), under `all[apps].generation`.
    groups: BTreeMap<u64, String>,
    /// The digest of a group with nothing assigned.
    empty: String,
}

impl Desireds {
    /// What a subcloud of group `group` should run of `ep`.
    fn of(&self, group: u64, ep: Endpoint) -> Desired {
        let d = &self.all[ep.index()];
        if !ep.is_per_group() || d.generation.0 == 0 {
            return d.clone();
        }
        Desired {
            generation: d.generation,
            digest: self.groups.get(&group).unwrap_or(&self.empty).clone(),
        }
    }
}

/// Whether a report shows what is desired.
fn matches_desired(ep: Endpoint, r: &Report, d: &Desired) -> bool {
    r.digest == d.digest && (ep.is_per_group() || r.generation == d.generation)
}

/// Sync status and drift of one endpoint type, from the rules in the module docs.
fn compute(sc: &SubcloudState, ep: Endpoint, d: &Desired) -> (SyncStatus, bool) {
    let report = sc.endpoints[ep.index()].report.as_ref();
    let drift = d.generation.0 > 0
        && !ep.is_per_group()
        && report.is_some_and(|r| r.generation == d.generation && r.digest != d.digest);
    let status = if sc.availability == Availability::Offline
        || (sc.management == Management::Unmanaged && ep != Endpoint::DcCert)
    {
        SyncStatus::Unknown
    } else if d.generation.0 == 0 {
        SyncStatus::InSync
    } else {
        match report {
            None => SyncStatus::Unknown,
            Some(r) if matches_desired(ep, r, d) => SyncStatus::InSync,
            Some(_) => SyncStatus::OutOfSync,
        }
    };
    (status, drift)
}

/// Re-derives the sync statuses of a subcloud, clears 280.002 where it no
/// longer holds, and returns whether anything visible changed and the
/// earliest 280.002 deadline still pending.
fn refresh(
    sc: &mut SubcloudState,
    desired: &Desireds,
    settings: &DcSettings,
    now: Timestamp,
    fx: &mut DcEffects,
) -> (bool, Option<Timestamp>) {
    let mut changed = false;
    let mut due: Option<Timestamp> = None;
    let managed = sc.management == Management::Managed;
    for ep in Endpoint::ALL {
        let (status, drift) = compute(sc, ep, &desired.of(sc.group_id, ep));
        let e = &mut sc.endpoints[ep.index()];
        if drift != e.drift {
            e.drift = drift;
            changed = true;
            if drift {
                fx.drift.push(Drift {
                    subcloud: sc.name.clone(),
                    endpoint: ep,
                });
            }
        }
        if status != e.status {
            e.status = status;
            changed = true;
            e.since = (status == SyncStatus::OutOfSync).then_some(now);
        }
        let alarmable = managed && status == SyncStatus::OutOfSync;
        if e.alarmed && !alarmable {
            e.alarmed = false;
            fx.clear_sync(&sc.name, ep);
        }
        if alarmable && !e.alarmed {
            let at = later(e.since.unwrap_or(now), settings.out_of_sync_after_micros());
            due = Some(due.map_or(at, |d| d.min(at)));
        }
    }
    (changed, due)
}

/// The System Controller's view of all its subclouds, their groups and the
/// configuration it wants them to run.
#[derive(Debug, Clone)]
pub struct Fleet {
    settings: DcSettings,
    epoch: Epoch,
    subclouds: BTreeMap<String, SubcloudState>,
    ids: BTreeMap<u64, String>,
    next_id: u64,
    groups: BTreeMap<u64, Group>,
    next_group_id: u64,
    desired: Desireds,
    /// No deadline falls before this; `tick` does nothing until then.
    next_due: Timestamp,
}

impl Fleet {
    /// An empty fleet with the `Default` group. `epoch` is this System
    /// Controller's incarnation (larger than any before it).
    pub fn new(settings: DcSettings, epoch: Epoch) -> Fleet {
        let mut groups = BTreeMap::new();
        groups.insert(DEFAULT_GROUP_ID, Group::default_group());
        Fleet {
            settings,
            epoch,
            subclouds: BTreeMap::new(),
            ids: BTreeMap::new(),
            next_id: 1,
            groups,
            next_group_id: DEFAULT_GROUP_ID + 1,
            desired: Desireds {
                all: std::array::from_fn(|_| Desired::default()),
                groups: BTreeMap::new(),
                empty: String::new(),
            },
            next_due: NEVER,
        }
    }

    pub fn settings(&self) -> &DcSettings {
        &self.settings
    }

    /// Replaces the settings; the next tick re-examines every subcloud.
    pub fn set_settings(&mut self, settings: DcSettings) {
        self.settings = settings;
        self.next_due = Timestamp(i64::MIN);
    }

    /// This System Controller's epoch, carried by every push.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn arm(&mut self, due: Option<Timestamp>) {
        if let Some(d) = due {
            self.next_due = self.next_due.min(d);
        }
    }

    fn refresh_one(&mut self, name: &str, now: Timestamp, fx: &mut DcEffects) -> bool {
        let Some(sc) = self.subclouds.get_mut(name) else {
            return false;
        };
        let (changed, due) = refresh(sc, &self.desired, &self.settings, now, fx);
        self.arm(due);
        changed
    }

    fn refresh_all(&mut self, now: Timestamp, fx: &mut DcEffects) {
        let mut next = self.next_due;
        for (name, sc) in self.subclouds.iter_mut() {
            let (changed, due) = refresh(sc, &self.desired, &self.settings, now, fx);
            if let Some(d) = due {
                next = next.min(d);
            }
            if changed {
                fx.touch(name);
            }
        }
        self.next_due = next;
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut SubcloudState, Error> {
        self.subclouds
            .get_mut(name)
            .ok_or_else(|| Error::UnknownSubcloud(name.to_string()))
    }

    // ----- subclouds -------------------------------------------------------

    /// Creates a subcloud: unmanaged, offline, `not-deployed`.
    pub fn add(&mut self, name: &str, group_id: u64, now: Timestamp) -> Result<DcEffects, Error> {
        let id = self.check_add(name, group_id)?;
        let rec = SubcloudRecord {
            name: name.to_string(),
            id,
            group_id,
            management: Management::Unmanaged,
            availability: Availability::Offline,
            deploy_status: DeployStatus::NotDeployed,
            last_seen: None,
            software_version: None,
            created_at: now,
        };
        self.insert(rec, now)
    }

    /// Whether [`Fleet::add`] would accept this subcloud; the id it would
    /// get. Changes nothing.
    pub fn check_add(&self, name: &str, group_id: u64) -> Result<u64, Error> {
        check_subcloud_name(name)?;
        if self.subclouds.contains_key(name) {
            return Err(Error::Exists(name.to_string()));
        }
        if !self.groups.contains_key(&group_id) {
            return Err(Error::UnknownGroup(group_id.to_string()));
        }
        Ok(self.next_id)
    }

    /// Takes back a persisted subcloud (at start-up). One restored online
    /// gets a full `offline_after_secs` to be heard from again. 280.001 is
    /// raised again (idempotently) for a managed offline one. Sync statuses
    /// start `unknown` until the subcloud reports again, and 280.002 alarms
    /// from before the restart are not known here: the caller clears them
    /// on start-up; they are raised again if still true.
    pub fn restore(&mut self, record: SubcloudRecord, now: Timestamp) -> Result<DcEffects, Error> {
        check_subcloud_name(&record.name)?;
        if self.subclouds.contains_key(&record.name) {
            return Err(Error::Exists(record.name));
        }
        if self.ids.contains_key(&record.id) {
            return Err(Error::DuplicateId(record.id));
        }
        if !self.groups.contains_key(&record.group_id) {
            return Err(Error::UnknownGroup(record.group_id.to_string()));
        }
        self.insert(record, now)
    }

    fn insert(&mut self, record: SubcloudRecord, now: Timestamp) -> Result<DcEffects, Error> {
        let mut fx = DcEffects::default();
        let name = record.name.clone();
        let id = record.id;
        let mut sc = SubcloudState::from_record(record);
        if sc.is_online() {
            sc.last_seen = Some(now);
            self.arm(Some(later(now, self.settings.offline_after_micros())));
        } else if sc.is_managed() {
            sc.offline_alarm = true;
            fx.raise_offline(&name);
        }
        self.next_id = self.next_id.max(id + 1);
        self.ids.insert(id, name.clone());
        self.subclouds.insert(name.clone(), sc);
        self.refresh_one(&name, now, &mut fx);
        fx.touch(&name);
        Ok(fx)
    }

    /// Deletes a subcloud. Refused unless it is unmanaged and offline.
    pub fn remove(&mut self, name: &str) -> Result<DcEffects, Error> {
        self.check_remove(name)?;
        Ok(self.forget(name))
    }

    /// Whether [`Fleet::remove`] would delete this subcloud. Changes nothing.
    pub fn check_remove(&self, name: &str) -> Result<(), Error> {
        let sc = self
            .subclouds
            .get(name)
            .ok_or_else(|| Error::UnknownSubcloud(name.to_string()))?;
        if sc.is_managed() {
            return Err(Error::NotUnmanaged(name.to_string()));
        }
        if sc.is_online() {
            return Err(Error::NotOffline(name.to_string()));
        }
        Ok(())
    }

    /// Drops a subcloud whatever its state (its deletion was already decided
    /// by [`Fleet::check_remove`] and committed), clearing its alarms.
    pub fn forget(&mut self, name: &str) -> DcEffects {
        let mut fx = DcEffects::default();
        if let Some(sc) = self.subclouds.remove(name) {
            self.ids.remove(&sc.id);
            // Unmanaged subclouds hold neither alarm; be thorough anyway.
            if sc.offline_alarm {
                fx.clear_offline(name);
            }
            for ep in Endpoint::ALL {
                if sc.endpoints[ep.index()].alarmed {
                    fx.clear_sync(name, ep);
                }
            }
        }
        fx.touch(name);
        fx
    }

    /// Manages or unmanages a subcloud. Managing starts syncing it (and the
    /// 280.002 timers from now); unmanaging stops syncing, makes every
    /// endpoint but `dc-cert` `unknown`, and clears its 280.001 and 280.002.
    pub fn set_management(
        &mut self,
        name: &str,
        management: Management,
        now: Timestamp,
    ) -> Result<DcEffects, Error> {
        let sc = self.get_mut(name)?;
        let mut fx = DcEffects::default();
        if sc.management == management {
            return Ok(fx);
        }
        sc.management = management;
        match management {
            Management::Managed => {
                for e in sc.endpoints.iter_mut() {
                    if e.status == SyncStatus::OutOfSync {
                        e.since = Some(now);
                    }
                }
                if !sc.is_online() && !sc.offline_alarm {
                    sc.offline_alarm = true;
                    fx.raise_offline(name);
                }
            }
            Management::Unmanaged => {
                if sc.offline_alarm {
                    sc.offline_alarm = false;
                    fx.clear_offline(name);
                }
            }
        }
        self.refresh_one(name, now, &mut fx);
        fx.touch(name);
        Ok(fx)
    }

    /// Moves a subcloud to another group (its per-group configuration
    /// follows: its sync status is derived again).
    pub fn set_group(
        &mut self,
        name: &str,
        group_id: u64,
        now: Timestamp,
    ) -> Result<DcEffects, Error> {
        if !self.groups.contains_key(&group_id) {
            return Err(Error::UnknownGroup(group_id.to_string()));
        }
        let sc = self.get_mut(name)?;
        let mut fx = DcEffects::default();
        if sc.group_id != group_id {
            sc.group_id = group_id;
            self.refresh_one(name, now, &mut fx);
            fx.touch(name);
        }
        Ok(fx)
    }

    /// Records the software version a subcloud runs.
    pub fn set_software_version(&mut self, name: &str, version: &str) -> Result<DcEffects, Error> {
        let sc = self.get_mut(name)?;
        let mut fx = DcEffects::default();
        if sc.software_version.as_deref() != Some(version) {
            sc.software_version = Some(version.to_string());
            fx.touch(name);
        }
        Ok(fx)
    }

    /// The subcloud used its enrollment token: `enrolling`. It is a fresh
    /// install, so what it reported before and its alarm stream are
    /// forgotten (it starts numbering afresh). It also counts as contact.
    pub fn enrolled(&mut self, name: &str, now: Timestamp) -> Result<DcEffects, Error> {
        let sc = self.get_mut(name)?;
        sc.deploy_status = DeployStatus::Enrolling;
        for e in sc.endpoints.iter_mut() {
            e.report = None;
        }
        sc.alarms.reset();
        let mut fx = self.heard_from(name, now)?;
        self.refresh_one(name, now, &mut fx);
        fx.touch(name);
        Ok(fx)
    }

    /// The subcloud was heard from (any frame of its connection): online.
    /// Raises nothing; clears 280.001 if it was raised.
    pub fn heard_from(&mut self, name: &str, now: Timestamp) -> Result<DcEffects, Error> {
        let offline_after = self.settings.offline_after_micros();
        let sc = self.get_mut(name)?;
        let seen = sc.last_seen.map_or(now, |t| t.max(now));
        sc.last_seen = Some(seen);
        let mut fx = DcEffects::default();
        if sc.availability == Availability::Offline {
            sc.availability = Availability::Online;
            if sc.offline_alarm {
                sc.offline_alarm = false;
                fx.clear_offline(name);
            }
            self.refresh_one(name, now, &mut fx);
            self.arm(Some(later(seen, offline_after)));
            fx.touch(name);
        }
        Ok(fx)
    }

    /// Time passed: subclouds silent for `offline_after_secs` go offline
    /// (280.001 when managed), and endpoints of managed online subclouds
    /// out-of-sync for `out_of_sync_alarm_after_secs` raise 280.002.
    pub fn tick(&mut self, now: Timestamp) -> DcEffects {
        let mut fx = DcEffects::default();
        if now < self.next_due {
            return fx;
        }
        let offline_after = self.settings.offline_after_micros();
        let oos_after = self.settings.out_of_sync_after_micros();
        let mut next = NEVER;
        for (name, sc) in self.subclouds.iter_mut() {
            let mut changed = false;
            if sc.availability == Availability::Online {
                let due = later(sc.last_seen.unwrap_or(now), offline_after);
                if now >= due {
                    sc.availability = Availability::Offline;
                    changed = true;
                    if sc.management == Management::Managed && !sc.offline_alarm {
                        sc.offline_alarm = true;
                        fx.raise_offline(name);
                    }
                    let (_, d) = refresh(sc, &self.desired, &self.settings, now, &mut fx);
                    if let Some(d) = d {
                        next = next.min(d);
                    }
                } else {
                    next = next.min(due);
                }
            }
            if sc.management == Management::Managed && sc.availability == Availability::Online {
                for ep in Endpoint::ALL {
                    let e = &mut sc.endpoints[ep.index()];
                    if e.status == SyncStatus::OutOfSync && !e.alarmed {
                        let due = later(e.since.unwrap_or(now), oos_after);
                        if now >= due {
                            e.alarmed = true;
                            fx.raise_sync(name, ep);
                        } else {
                            next = next.min(due);
                        }
                    }
                }
            }
            if changed {
                fx.touch(name);
            }
        }
        self.next_due = next;
        fx
    }

    // ----- configuration sync ----------------------------------------------

    /// Sets the desired configuration of an endpoint type and returns its
    /// generation: bumped when the digest changed, unchanged otherwise.
    /// Sync statuses of every subcloud follow.
    pub fn set_desired(
        &mut self,
        endpoint: Endpoint,
        digest: &str,
        now: Timestamp,
    ) -> (Generation, DcEffects) {
        let mut fx = DcEffects::default();
        let d = &mut self.desired.all[endpoint.index()];
        if d.generation.0 > 0 && d.digest == digest {
            return (d.generation, fx);
        }
        d.generation = Generation(d.generation.0 + 1);
        d.digest = digest.to_string();
        let generation = d.generation;
        self.refresh_all(now, &mut fx);
        (generation, fx)
    }

    /// The generation [`Fleet::set_desired`] would give this digest; `None`
    /// when it is what is desired already. Changes nothing.
    pub fn plan_desired(&self, endpoint: Endpoint, digest: &str) -> Option<Generation> {
        let d = &self.desired.all[endpoint.index()];
        (d.generation.0 == 0 || d.digest != digest).then_some(Generation(d.generation.0 + 1))
    }

    /// Sets what the subclouds of every group should run of a per-group
    /// endpoint type: `groups` gives each group's digest (a group missing
    /// from it gets `empty`). The generation is bumped when anything
    /// changed, and is returned. A type that is not per group is left
    /// alone. Sync statuses of every subcloud follow.
    pub fn set_group_desired(
        &mut self,
        endpoint: Endpoint,
        groups: BTreeMap<u64, String>,
        empty: &str,
        now: Timestamp,
    ) -> (Generation, DcEffects) {
        let mut fx = DcEffects::default();
        let d = &mut self.desired.all[endpoint.index()];
        let same =
            d.generation.0 > 0 && self.desired.groups == groups && self.desired.empty == empty;
        // Not a per-group type: nothing to set here (see `set_desired`).
        if same || !endpoint.is_per_group() {
            return (d.generation, fx);
        }
        d.generation = Generation(d.generation.0 + 1);
        let generation = d.generation;
        self.desired.groups = groups;
        self.desired.empty = empty.to_string();
        self.refresh_all(now, &mut fx);
        (generation, fx)
    }

    /// Takes back a per-group desired configuration (at start-up).
    pub fn restore_group_desired(
        &mut self,
        endpoint: Endpoint,
        generation: Generation,
        groups: BTreeMap<u64, String>,
        empty: &str,
        now: Timestamp,
    ) -> DcEffects {
        let mut fx = DcEffects::default();
        if endpoint.is_per_group() {
            self.desired.all[endpoint.index()].generation = generation;
            self.desired.groups = groups;
            self.desired.empty = empty.to_string();
            self.refresh_all(now, &mut fx);
        }
        fx
    }

    /// What the subcloud `name` should run of `endpoint` (its group's for a
    /// per-group endpoint type); `None` for an unknown subcloud.
    pub fn desired_for(&self, name: &str, endpoint: Endpoint) -> Option<Desired> {
        let sc = self.subclouds.get(name)?;
        Some(self.desired.of(sc.group_id, endpoint))
    }

    /// Takes back a persisted desired configuration (at start-up).
    pub fn restore_desired(
        &mut self,
        endpoint: Endpoint,
        desired: Desired,
        now: Timestamp,
    ) -> DcEffects {
        let mut fx = DcEffects::default();
        self.desired.all[endpoint.index()] = desired;
        self.refresh_all(now, &mut fx);
        fx
    }

    /// The desired configuration of an endpoint type (for a per-group
    /// type: its generation; the digests are per group, see
    /// [`Fleet::desired_for`]).
    pub fn desired(&self, endpoint: Endpoint) -> &Desired {
        &self.desired.all[endpoint.index()]
    }

    /// A subcloud reported the generation it applied for an endpoint type
    /// and the digest of what it runs now.
    pub fn report_applied(
        &mut self,
        name: &str,
        endpoint: Endpoint,
        applied_generation: Generation,
        local_digest: &str,
        now: Timestamp,
    ) -> Result<DcEffects, Error> {
        let sc = self.get_mut(name)?;
        let slot = &mut sc.endpoints[endpoint.index()].report;
        match slot {
            Some(r) => {
                r.generation = applied_generation;
                if r.digest != local_digest {
                    r.digest = local_digest.to_string();
                }
            }
            None => {
                *slot = Some(Report {
                    generation: applied_generation,
                    digest: local_digest.to_string(),
                })
            }
        }
        let mut completed = false;
        if sc.deploy_status == DeployStatus::Enrolling
            && Endpoint::SYNCED
                .iter()
                .all(|e| sc.endpoints[e.index()].report.is_some())
        {
            sc.deploy_status = DeployStatus::Complete;
            completed = true;
        }
        let mut fx = DcEffects::default();
        if self.refresh_one(name, now, &mut fx) || completed {
            fx.touch(name);
        }
        Ok(fx)
    }

    /// The endpoint types to push to a subcloud now: for a managed online
    /// subcloud, those the System Controller has configuration for and whose
    /// report is missing, at another generation, or drifted. Nothing for an
    /// unmanaged or offline subcloud (or an unknown name).
    pub fn to_send(&self, name: &str) -> Vec<Endpoint> {
        let Some(sc) = self.subclouds.get(name) else {
            return Vec::new();
        };
        if !sc.is_managed() || !sc.is_online() {
            return Vec::new();
        }
        Endpoint::ALL
            .into_iter()
            .filter(|ep| {
                let d = self.desired.of(sc.group_id, *ep);
                d.generation.0 > 0
                    && !matches!(&sc.endpoints[ep.index()].report,
                        Some(r) if matches_desired(*ep, r, &d))
            })
            .collect()
    }

    /// Endpoint types of a subcloud whose last report shows drift.
    pub fn drifted(&self, name: &str) -> Vec<Endpoint> {
        self.subclouds
            .get(name)
            .map(SubcloudState::drifted)
            .unwrap_or_default()
    }

    // ----- alarm aggregation -----------------------------------------------

    /// Applies a batch of a subcloud's alarm changes (see
    /// [`AlarmStream::receive`]) and returns the number to acknowledge.
    pub fn alarm_changes(&mut self, name: &str, changes: &[AlarmChange]) -> Result<u64, Error> {
        let sc = self
            .subclouds
            .get_mut(name)
            .ok_or_else(|| Error::UnknownSubcloud(name.to_string()))?;
        sc.alarms.receive(changes)
    }

    /// Replaces a subcloud's alarm table with a full snapshot taken at change
    /// `seq` and returns the number to acknowledge (`seq`).
    pub fn alarm_snapshot(
        &mut self,
        name: &str,
        seq: u64,
        alarms: &[ActiveAlarm],
    ) -> Result<u64, Error> {
        let sc = self
            .subclouds
            .get_mut(name)
            .ok_or_else(|| Error::UnknownSubcloud(name.to_string()))?;
        Ok(sc.alarms.snapshot(seq, alarms))
    }

    /// The alarm summary of a subcloud.
    pub fn summary(&self, name: &str) -> Option<AlarmSummary> {
        self.subclouds.get(name).map(SubcloudState::alarm_summary)
    }

    /// Every subcloud's alarm summary, by name.
    pub fn alarm_summaries(&self) -> impl Iterator<Item = (&str, AlarmSummary)> + '_ {
        self.subclouds
            .values()
            .map(|sc| (sc.name.as_str(), sc.alarm_summary()))
    }

    // ----- queries -----------------------------------------------------------

    pub fn get(&self, name: &str) -> Option<&SubcloudState> {
        self.subclouds.get(name)
    }

    pub fn get_by_id(&self, id: u64) -> Option<&SubcloudState> {
        self.ids.get(&id).and_then(|n| self.subclouds.get(n))
    }

    /// A subcloud by id (when `reference` is a number) or name.
    pub fn find(&self, reference: &str) -> Option<&SubcloudState> {
        reference
            .parse::<u64>()
            .ok()
            .and_then(|id| self.get_by_id(id))
            .or_else(|| self.get(reference))
    }

    /// Every subcloud, by name.
    pub fn iter(&self) -> impl Iterator<Item = &SubcloudState> + '_ {
        self.subclouds.values()
    }

    pub fn len(&self) -> usize {
        self.subclouds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subclouds.is_empty()
    }

    // ----- groups ------------------------------------------------------------

    /// Every group, by id.
    pub fn groups(&self) -> impl Iterator<Item = &Group> + '_ {
        self.groups.values()
    }

    pub fn group(&self, id: u64) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// A group by id (when `reference` is a number) or name.
    pub fn find_group(&self, reference: &str) -> Option<&Group> {
        match reference.parse::<u64>() {
            Ok(id) => self.groups.get(&id),
            Err(_) => self.groups.values().find(|g| g.name == reference),
        }
    }

    /// The subclouds of a group, by name.
    pub fn subclouds_in_group(&self, id: u64) -> impl Iterator<Item = &SubcloudState> + '_ {
        self.subclouds.values().filter(move |sc| sc.group_id == id)
    }

    fn name_taken(&self, name: &str, except: Option<u64>) -> bool {
        self.groups
            .values()
            .any(|g| Some(g.id) != except && g.name == name)
    }

    /// Creates a group.
    pub fn add_group(&mut self, spec: GroupSpec) -> Result<&Group, Error> {
        let g = self.plan_add_group(spec)?;
        let id = g.id;
        self.next_group_id = self.next_group_id.max(id + 1);
        Ok(self.groups.entry(id).or_insert(g))
    }

    /// The group [`Fleet::add_group`] would create (with its id). Changes
    /// nothing; [`Fleet::restore_group`] takes it in once it is stored.
    pub fn plan_add_group(&self, spec: GroupSpec) -> Result<Group, Error> {
        check_group_name(&spec.name)?;
        check_description(&spec.description)?;
        check_max_parallel(spec.max_parallel_subclouds)?;
        if self.name_taken(&spec.name, None) {
            return Err(Error::GroupExists(spec.name));
        }
        Ok(Group {
            id: self.next_group_id,
            name: spec.name,
            description: spec.description,
            update_apply_type: spec.update_apply_type,
            max_parallel_subclouds: spec.max_parallel_subclouds,
        })
    }

    /// Takes back a persisted group (at start-up); id 1 replaces the
    /// settings of the `Default` group, whose name stays.
    pub fn restore_group(&mut self, group: Group) -> Result<(), Error> {
        check_description(&group.description)?;
        check_max_parallel(group.max_parallel_subclouds)?;
        if group.id == DEFAULT_GROUP_ID {
            let d = self
                .groups
                .entry(DEFAULT_GROUP_ID)
                .or_insert_with(Group::default_group);
            d.description = group.description;
            d.update_apply_type = group.update_apply_type;
            d.max_parallel_subclouds = group.max_parallel_subclouds;
            return Ok(());
        }
        check_group_name(&group.name)?;
        if self.groups.contains_key(&group.id) {
            return Err(Error::DuplicateGroupId(group.id));
        }
        if self.name_taken(&group.name, None) {
            return Err(Error::GroupExists(group.name));
        }
        self.next_group_id = self.next_group_id.max(group.id + 1);
        self.groups.insert(group.id, group);
        Ok(())
    }

    /// Changes a group. The `Default` group's name cannot change.
    pub fn update_group(&mut self, id: u64, patch: GroupPatch) -> Result<&Group, Error> {
        let g = self.plan_update_group(id, patch)?;
        let slot = self
            .groups
            .get_mut(&id)
            .ok_or_else(|| Error::UnknownGroup(id.to_string()))?;
        *slot = g;
        Ok(slot)
    }

    /// The group as [`Fleet::update_group`] would leave it. Changes nothing;
    /// [`Fleet::replace_group`] takes it in once it is stored.
    pub fn plan_update_group(&self, id: u64, patch: GroupPatch) -> Result<Group, Error> {
        if !self.groups.contains_key(&id) {
            return Err(Error::UnknownGroup(id.to_string()));
        }
        if patch == GroupPatch::default() {
            return Err(Error::NothingToUpdate);
        }
        if let Some(name) = &patch.name {
            check_group_name(name)?;
            if id == DEFAULT_GROUP_ID {
                return Err(Error::DefaultGroupNameFixed);
            }
            if self.name_taken(name, Some(id)) {
                return Err(Error::GroupExists(name.clone()));
            }
        }
        if let Some(d) = &patch.description {
            check_description(d)?;
        }
        if let Some(m) = patch.max_parallel_subclouds {
            check_max_parallel(m)?;
        }
        let mut g = self
            .groups
            .get(&id)
            .ok_or_else(|| Error::UnknownGroup(id.to_string()))?
            .clone();
        if let Some(name) = patch.name {
            g.name = name;
        }
        if let Some(d) = patch.description {
            g.description = d;
        }
        if let Some(t) = patch.update_apply_type {
            g.update_apply_type = t;
        }
        if let Some(m) = patch.max_parallel_subclouds {
            g.max_parallel_subclouds = m;
        }
        Ok(g)
    }

    /// Puts back a group planned by [`Fleet::plan_update_group`].
    pub fn replace_group(&mut self, g: Group) -> Result<(), Error> {
        let slot = self
            .groups
            .get_mut(&g.id)
            .ok_or_else(|| Error::UnknownGroup(g.id.to_string()))?;
        *slot = g;
        Ok(())
    }

    /// Deletes a group. The `Default` group and groups holding subclouds
    /// cannot be deleted.
    pub fn delete_group(&mut self, id: u64) -> Result<Group, Error> {
        self.check_delete_group(id)?;
        self.groups
            .remove(&id)
            .ok_or_else(|| Error::UnknownGroup(id.to_string()))
    }

    /// Whether [`Fleet::delete_group`] would delete this group. Changes nothing.
    pub fn check_delete_group(&self, id: u64) -> Result<(), Error> {
        let g = self
            .groups
            .get(&id)
            .ok_or_else(|| Error::UnknownGroup(id.to_string()))?;
        if id == DEFAULT_GROUP_ID {
            return Err(Error::DefaultGroupNotDeletable);
        }
        let members = self.subclouds_in_group(id).count();
        if members > 0 {
            return Err(Error::GroupNotEmpty(g.name.clone(), members));
        }
        Ok(())
    }

    /// Test hook: forget the deadline bound so the next tick walks everything.
    #[cfg(test)]
    pub(crate) fn force_full_tick(&mut self) {
        self.next_due = Timestamp(i64::MIN);
    }
}

#[cfg(test)]
mod tests;

//! The fleet rollout of a system controller: strategy-config
//! (`/v1.0/sw-update-options`) and dcmanager's `sw-deploy` orchestration
//! strategy (`/v1.0/sw-update-strategy`), one at a time.
//!
//! `roost_release::rollout` decides: which subcloud runs which deploy order
//! and every step's state. This service feeds it, once a second, what the
//! DC service knows of each subcloud (online, raised alarms, the last
//! report of its order), commits the strategy when it changed, and hands
//! each subcloud's order to the DC service, which puts it in the
//! subcloud's next sync reply. Each subcloud runs its own site strategy
//! (`/v1/deploy/strategy`) for the order and reports back on the same sync.
//!
//! Strategy and options are rows of the store (the strategy as one JSON
//! document); nothing is changed in memory before its commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use roost_api::dcmanager::dc_time;
use roost_api::dcsync::DeployOrder;
use roost_api::orchestration::{
    DEFAULT_OPTIONS_NAME, RolloutStage, StateCount, StrategyStep, StrategyStepList,
    SwUpdateOptions, SwUpdateOptionsList, SwUpdateOptionsWrite, SwUpdateStrategy,
    SwUpdateStrategyCreate,
};
use roost_release::rollout::{CloudFacts, OrderAction, Phase, Report, Rollout, Spec, StagePlan};
use roost_store::{ReleaseWrite, Store};
use roost_types::{Clock, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DcService;
use crate::Error;
use crate::fm_service::FmService;
use crate::software::SoftwareService;

/// The name of the defaults in strategy-config paths.
pub const SYSTEM_CONTROLLER: &str = "SystemController";
/// The only strategy type Roost orchestrates.
pub const SW_DEPLOY: &str = "sw-deploy";
/// The strategy types StarlingX's dcmanager knows.
const KNOWN_TYPES: [&str; 6] = [
    "sw-deploy",
    "firmware",
    "kubernetes",
    "kube-rootca-update",
    "prestage",
    "patch",
];
const SETTING_LAST_ID: &str = "dc.strategy.last_id";
/// Offline subclouds are waited for this long by default (seconds).
pub const DEFAULT_DEFER_SECS: u64 = 24 * 3600;
/// The most subclouds updated at once.
const MAX_PARALLEL_SUBCLOUDS: u64 = 5000;
/// The longest soak and deferral accepted (seconds).
const MAX_WAIT_SECS: u64 = 30 * 24 * 3600;

/// One cloud's strategy-config as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Options {
    storage_apply_type: String,
    worker_apply_type: String,
    max_parallel_workers: u32,
    alarm_restriction_type: String,
    default_instance_action: String,
    created_at: i64,
    updated_at: Option<i64>,
}

impl Options {
    /// StarlingX's constants, used while no default is stored.
    fn constants() -> Options {
        Options {
            storage_apply_type: "parallel".into(),
            worker_apply_type: "parallel".into(),
            max_parallel_workers: 10,
            alarm_restriction_type: "relaxed".into(),
            default_instance_action: "migrate".into(),
            created_at: 0,
            updated_at: None,
        }
    }
}

/// The strategy as stored: the rollout and what the view shows of the
/// request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    id: i64,
    subcloud_apply_type: Option<String>,
    max_parallel_subclouds: Option<u32>,
    extra_args: serde_json::Map<String, Value>,
    rollout: Rollout,
}

/// Handle to the fleet rollout; cheap to clone.
#[derive(Clone)]
pub struct RolloutService {
    inner: Arc<Inner>,
}

struct Inner {
    dc: DcService,
    software: SoftwareService,
    store: Arc<Store>,
    fm: FmService,
    clock: Arc<dyn Clock>,
    strategy: Mutex<Option<Stored>>,
    options: Mutex<BTreeMap<String, Options>>,
    /// Serialises the changes of the strategy and the options (requests and
    /// ticks), so what one decided still holds when it commits.
    lane: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    /// The id of the last strategy created (committed), read at start.
    last_id: AtomicI64,
}

fn bad(m: impl Into<String>) -> Error {
    Error::Invalid(m.into())
}

/// A flag sent as a JSON boolean or as the string "true"/"false".
fn flag(v: &Option<Value>, name: &str) -> Result<bool, Error> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(bad(format!(
            "Invalid value for {name}: {other} (expected true or false)"
        ))),
    }
}

/// A whole number sent as a JSON integer or a numeric string, within
/// `min..=max`.
fn number(v: &Option<Value>, name: &str, min: u64, max: u64) -> Result<Option<u64>, Error> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(bad(format!(
            "Invalid value for {name}: {} (expected a whole number from {min} to {max})",
            v.as_ref().map(Value::to_string).unwrap_or_default()
        ))),
    }
}

fn one_of(v: &str, name: &str, allowed: &[&str]) -> Result<String, Error> {
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(bad(format!(
            "Invalid value for {name}: {v:?} (expected {})",
            allowed.join(" or ")
        )))
    }
}

fn when(t: Option<i64>) -> Option<String> {
    t.map(|t| dc_time(Timestamp(t)))
}

/// The strategy object of `s`, in state `state` (its own unless given).
fn view(s: &Stored, state: Option<&str>) -> SwUpdateStrategy {
    let r = &s.rollout;
    let stages = r
        .stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
            for step in r.steps.iter().filter(|x| x.stage == i + 1) {
                *counts.entry(step.state.as_str()).or_default() += 1;
            }
            RolloutStage {
                stage: i + 1,
                name: st.name.clone(),
                max_parallel: st.max_parallel,
                subclouds: st.subclouds.len(),
                states: counts
                    .into_iter()
                    .map(|(state, count)| StateCount {
                        state: state.to_string(),
                        count,
                    })
                    .collect(),
            }
        })
        .collect();
    SwUpdateStrategy {
        id: s.id,
        strategy_type: SW_DEPLOY.into(),
        subcloud_apply_type: s.subcloud_apply_type.clone(),
        max_parallel_subclouds: s.max_parallel_subclouds,
        stop_on_failure: r.spec.stop_on_failure,
        state: state.unwrap_or(r.state.as_str()).to_string(),
        created_at: dc_time(Timestamp(r.created_at)),
        updated_at: Some(dc_time(Timestamp(r.updated_at))),
        extra_args: s.extra_args.clone(),
        reason: r.reason.clone(),
        stages,
    }
}

fn step_view(i: usize, step: &roost_release::rollout::Step) -> StrategyStep {
    StrategyStep {
        id: i as i64 + 1,
        cloud: step.cloud.clone(),
        stage: step.stage,
        state: step.state.as_str().to_string(),
        details: step.details.clone(),
        started_at: when(step.started_at),
        finished_at: when(step.finished_at),
        created_at: dc_time(Timestamp(step.created_at)),
        updated_at: Some(dc_time(Timestamp(step.updated_at))),
    }
}

fn options_view(
    name: &str,
    subcloud_id: Option<i64>,
    o: &Options,
    stored: bool,
) -> SwUpdateOptions {
    SwUpdateOptions {
        id: stored.then_some(subcloud_id.unwrap_or(0) + 1),
        name: name.to_string(),
        subcloud_id,
        storage_apply_type: o.storage_apply_type.clone(),
        worker_apply_type: o.worker_apply_type.clone(),
        max_parallel_workers: o.max_parallel_workers,
        alarm_restriction_type: o.alarm_restriction_type.clone(),
        default_instance_action: o.default_instance_action.clone(),
        created_at: stored.then(|| dc_time(Timestamp(o.created_at))),
        updated_at: when(o.updated_at),
    }
}

/// Why a request names an unknown strategy type, or none.
fn check_type(t: Option<&str>) -> Result<(), Error> {
    match t {
        None | Some(SW_DEPLOY) => Ok(()),
        Some(other) if KNOWN_TYPES.contains(&other) => Err(Error::NotFound(format!(
            "Strategy of type '{other}' not found"
        ))),
        Some(other) => Err(bad(format!("type invalid: {other}"))),
    }
}

impl RolloutService {
    /// Loads the strategy and the options, and starts the task that moves
    /// the strategy on.
    pub fn start(
        dc: DcService,
        software: SoftwareService,
        store: Arc<Store>,
        fm: FmService,
        clock: Arc<dyn Clock>,
        shutdown: crate::Shutdown,
    ) -> Result<(RolloutService, tokio::task::JoinHandle<()>), Error> {
        let strategy = match store.fleet_strategy()? {
            None => None,
            Some(text) => Some(serde_json::from_str::<Stored>(&text).map_err(|e| {
                Error::Internal(format!("the stored fleet strategy does not parse: {e}"))
            })?),
        };
        let last_id = store
            .setting(SETTING_LAST_ID)?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let mut options = BTreeMap::new();
        let mut orphans = Vec::new();
        for (cloud, body) in store.sw_update_options()? {
            // Options of a subcloud deleted while they could not be
            // removed: removed now.
            if cloud != SYSTEM_CONTROLLER && dc.get(&cloud).is_err() {
                orphans.push(ReleaseWrite::Options { cloud, body: None });
                continue;
            }
            match serde_json::from_str::<Options>(&body) {
                Ok(o) => {
                    options.insert(cloud, o);
                }
                Err(e) => {
                    tracing::error!(%cloud, error = %e, "stored strategy options do not parse; leaving them out")
                }
            }
        }
        if !orphans.is_empty() {
            tracing::info!(
                count = orphans.len(),
                "removing the strategy options of deleted subclouds"
            );
            store.write_releases(&orphans)?;
        }
        let svc = RolloutService {
            inner: Arc::new(Inner {
                dc,
                software,
                store,
                fm,
                clock,
                strategy: Mutex::new(strategy),
                options: Mutex::new(options),
                lane: tokio::sync::Mutex::new(()),
                wake: tokio::sync::Notify::new(),
                last_id: AtomicI64::new(last_id),
            }),
        };
        let me = svc.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = me.tick().await {
                    tracing::warn!(error = %e, "the fleet strategy could not move on");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    () = me.inner.wake.notified() => {}
                }
            }
        });
        Ok((svc, task))
    }

    fn strategy(&self) -> MutexGuard<'_, Option<Stored>> {
        self.inner
            .strategy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn options(&self) -> MutexGuard<'_, BTreeMap<String, Options>> {
        self.inner.options.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn commit(&self, writes: Vec<ReleaseWrite>) -> Result<(), Error> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.write_releases(&writes))
            .await
            .map_err(|_| Error::Internal("the store task stopped".into()))??;
        Ok(())
    }

    /// Commits the strategy (`None`: removed), then keeps it.
    async fn keep(&self, s: Option<Stored>) -> Result<(), Error> {
        let body = s
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("cannot encode the fleet strategy: {e}")))?;
        self.commit(vec![ReleaseWrite::FleetStrategy(body)]).await?;
        *self.strategy() = s;
        Ok(())
    }

    // ----- strategy-config -----

    /// The subcloud `reference` (name or id): (name, id).
    fn subcloud(&self, reference: &str) -> Result<(String, u64), Error> {
        let v = self.inner.dc.get(reference)?;
        Ok((v.name, v.id as u64))
    }

    /// The defaults in force (stored or StarlingX's constants).
    fn defaults(&self) -> (Options, bool) {
        match self.options().get(SYSTEM_CONTROLLER) {
            Some(o) => (o.clone(), true),
            None => (Options::constants(), false),
        }
    }

    /// `GET /v1.0/sw-update-options`: the defaults, then each subcloud
    /// that has its own.
    pub fn options_list(&self) -> SwUpdateOptionsList {
        let (d, stored) = self.defaults();
        let mut items = vec![options_view(DEFAULT_OPTIONS_NAME, None, &d, stored)];
        let own = self.options().clone();
        for sc in self.inner.dc.list() {
            if let Some(o) = own.get(&sc.name) {
                items.push(options_view(&sc.name, Some(sc.id), o, true));
            }
        }
        SwUpdateOptionsList {
            sw_update_options: items,
        }
    }

    /// `GET /v1.0/sw-update-options/{cloud}`.
    pub fn options_get(&self, cloud: &str) -> Result<SwUpdateOptions, Error> {
        if cloud == SYSTEM_CONTROLLER || cloud == "RegionOne" {
            let (d, stored) = self.defaults();
            return Ok(options_view(DEFAULT_OPTIONS_NAME, None, &d, stored));
        }
        let (name, id) = self.subcloud(cloud)?;
        let own = self.options().get(&name).cloned();
        match own {
            Some(o) => Ok(options_view(&name, Some(id as i64), &o, true)),
            None => Err(Error::NotFound(format!(
                "No options found for Subcloud with id {id}, defaults will be used."
            ))),
        }
    }

    /// `POST /v1.0/sw-update-options/{cloud}`: creates or replaces.
    pub async fn options_set(
        &self,
        cloud: &str,
        w: &SwUpdateOptionsWrite,
    ) -> Result<SwUpdateOptions, Error> {
        let types = ["serial", "parallel"];
        let workers = number(
            &Some(w.max_parallel_workers.clone()),
            "max-parallel-workers",
            1,
            100,
        )?
        .unwrap_or(1) as u32;
        let storage = one_of(&w.storage_apply_type, "storage-apply-type", &types)?;
        let worker = one_of(&w.worker_apply_type, "worker-apply-type", &types)?;
        let alarms = one_of(
            &w.alarm_restriction_type,
            "alarm-restriction-type",
            &["strict", "relaxed"],
        )?;
        let action = one_of(
            &w.default_instance_action,
            "default-instance-action",
            &["stop-start", "migrate"],
        )?;
        let _lane = self.inner.lane.lock().await;
        let (key, name, id) = if cloud == SYSTEM_CONTROLLER || cloud == "RegionOne" {
            (
                SYSTEM_CONTROLLER.to_string(),
                DEFAULT_OPTIONS_NAME.to_string(),
                None,
            )
        } else {
            let (name, id) = self.subcloud(cloud)?;
            (name.clone(), name, Some(id as i64))
        };
        let now = self.inner.clock.now().micros();
        let created_at = self.options().get(&key).map_or(now, |o| o.created_at);
        let o = Options {
            storage_apply_type: storage,
            worker_apply_type: worker,
            max_parallel_workers: workers,
            alarm_restriction_type: alarms,
            default_instance_action: action,
            created_at,
            updated_at: (created_at != now).then_some(now),
        };
        let body = serde_json::to_string(&o)
            .map_err(|e| Error::Internal(format!("cannot encode options: {e}")))?;
        self.commit(vec![ReleaseWrite::Options {
            cloud: key.clone(),
            body: Some(body),
        }])
        .await?;
        self.options().insert(key, o.clone());
        Ok(options_view(&name, id, &o, true))
    }

    /// `DELETE /v1.0/sw-update-options/{cloud}`: the defaults go back to
    /// StarlingX's constants; a subcloud goes back to the defaults.
    pub async fn options_delete(&self, cloud: &str) -> Result<(), Error> {
        let _lane = self.inner.lane.lock().await;
        let key = if cloud == SYSTEM_CONTROLLER || cloud == "RegionOne" {
            SYSTEM_CONTROLLER.to_string()
        } else {
            let (name, _) = self.subcloud(cloud)?;
            if !self.options().contains_key(&name) {
                return Err(Error::NotFound("Subcloud patch options not found".into()));
            }
            name
        };
        self.commit(vec![ReleaseWrite::Options {
            cloud: key.clone(),
            body: None,
        }])
        .await?;
        self.options().remove(&key);
        Ok(())
    }

    /// A subcloud was deleted: its options, if any, are removed (a failure
    /// is logged; the row is dropped again at the next start).
    pub async fn forget_subcloud(&self, name: &str) {
        let _lane = self.inner.lane.lock().await;
        if !self.options().contains_key(name) {
            return;
        }
        let write = ReleaseWrite::Options {
            cloud: name.to_string(),
            body: None,
        };
        match self.commit(vec![write]).await {
            Ok(()) => {
                self.options().remove(name);
            }
            Err(e) => {
                tracing::warn!(subcloud = %name, error = %e, "cannot remove a deleted subcloud's strategy options")
            }
        }
    }

    /// The options a subcloud's site strategy runs with.
    fn options_for(&self, cloud: &str) -> Options {
        let own = self.options().get(cloud).cloned();
        own.unwrap_or_else(|| self.defaults().0)
    }

    // ----- the strategy -----

    /// `GET /v1.0/sw-update-strategy[?type=T]`.
    pub fn show(&self, strategy_type: Option<&str>) -> Result<SwUpdateStrategy, Error> {
        check_type(strategy_type)?;
        self.strategy()
            .as_ref()
            .map(|s| view(s, None))
            .ok_or_else(|| not_found(strategy_type))
    }

    /// `GET /v1.0/sw-update-strategy/steps`.
    pub fn steps(&self) -> StrategyStepList {
        StrategyStepList {
            strategy_steps: self
                .strategy()
                .as_ref()
                .map(|s| {
                    s.rollout
                        .steps
                        .iter()
                        .enumerate()
                        .map(|(i, st)| step_view(i, st))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// `GET /v1.0/sw-update-strategy/steps/{cloud}`.
    pub fn step(&self, cloud: &str) -> Result<StrategyStep, Error> {
        self.strategy()
            .as_ref()
            .and_then(|s| {
                s.rollout
                    .steps
                    .iter()
                    .enumerate()
                    .find(|(_, st)| st.cloud == cloud)
                    .map(|(i, st)| step_view(i, st))
            })
            .ok_or_else(|| Error::NotFound("Strategy step not found".into()))
    }

    /// `POST /v1.0/sw-update-strategy`: checks the request whole, plans the
    /// stages over the managed subclouds, commits.
    pub async fn create(&self, req: &SwUpdateStrategyCreate) -> Result<SwUpdateStrategy, Error> {
        // Validate and convert.
        match req.strategy_type.as_deref() {
            None => return Err(bad("type required")),
            Some(SW_DEPLOY) => {}
            Some(t) if KNOWN_TYPES.contains(&t) => {
                return Err(bad(format!(
                    "Strategy type '{t}' is not supported here: Roost orchestrates sw-deploy"
                )));
            }
            Some(t) => return Err(bad(format!("type invalid: {t}"))),
        }
        let stop_on_failure = match &req.stop_on_failure {
            None => false,
            Some(Value::String(s)) if s == "true" => true,
            Some(Value::String(s)) if s == "false" => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad(format!(
                    "stop-on-failure invalid: {other} (expected \"true\" or \"false\")"
                )));
            }
        };
        let rollback = flag(&req.rollback, "rollback")?;
        let cleanup = flag(&req.cleanup, "cleanup")? || flag(&req.delete_only, "delete_only")?;
        let delete = flag(&req.delete, "delete")? || flag(&req.with_delete, "with_delete")?;
        let snapshot = flag(&req.snapshot, "snapshot")?;
        let with_prestage = flag(&req.with_prestage, "with_prestage")?;
        if req.sysadmin_password.is_some() && !with_prestage {
            return Err(bad(
                "Option sysadmin_password can only be used with with_prestage",
            ));
        }
        for (set, what) in [
            (with_prestage, "with_prestage"),
            (snapshot, "snapshot"),
            (cleanup, "cleanup"),
        ] {
            if set {
                return Err(bad(format!(
                    "Option {what} is not supported by Roost's sw-deploy orchestration"
                )));
            }
        }
        if req.kube_upgrade.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "Option kube_upgrade is not supported by Roost's sw-deploy orchestration",
            ));
        }
        let release_id = req.release_id.clone().unwrap_or_default();
        if release_id.is_empty() && !rollback {
            return Err(bad("Release ID is required for strategy type: sw-deploy."));
        }
        if rollback && !release_id.is_empty() {
            return Err(bad("A rollback strategy takes no release id"));
        }
        let apply_type = match req.subcloud_apply_type.as_deref() {
            None => None,
            Some(t) => Some(one_of(t, "subcloud-apply-type", &["serial", "parallel"])?),
        };
        let max_parallel = number(
            &req.max_parallel_subclouds,
            "max-parallel-subclouds",
            1,
            MAX_PARALLEL_SUBCLOUDS,
        )?
        .map(|n| n as u32);
        if req.subcloud_group.is_some()
            && (req.cloud_name.is_some() || apply_type.is_some() || max_parallel.is_some())
        {
            return Err(bad(
                "subcloud_group cannot go with cloud_name, subcloud-apply-type or max-parallel-subclouds",
            ));
        }
        let canary = number(&req.canary, "canary", 1, MAX_PARALLEL_SUBCLOUDS)?;
        if canary.is_some() && req.canary_group.is_some() {
            return Err(bad("canary and canary_group cannot go together"));
        }
        let approval = flag(&req.approval, "approval")?;
        let soak_secs = number(&req.soak_secs, "soak_secs", 0, MAX_WAIT_SECS)?.unwrap_or(0);
        let auto_rollback = flag(&req.auto_rollback, "auto_rollback")?;
        let defer_secs =
            number(&req.defer_secs, "defer_secs", 0, MAX_WAIT_SECS)?.unwrap_or(DEFAULT_DEFER_SECS);
        let has_canary = canary.is_some() || req.canary_group.is_some();
        if approval && !has_canary {
            return Err(bad(
                "approval needs a canary stage (canary or canary_group)",
            ));
        }
        if rollback && (has_canary || auto_rollback) {
            return Err(bad(
                "a rollback strategy takes no canary stage and no auto_rollback",
            ));
        }
        if !rollback && self.inner.software.get(&release_id).is_none() {
            return Err(bad(format!(
                "Release ID: {release_id} not found or not deployed in the SystemController \
                 (upload it here first: the subclouds fetch it from this system controller)"
            )));
        }

        // Decide.
        let _lane = self.inner.lane.lock().await;
        if self.strategy().is_some() {
            return Err(Error::Unprocessable(format!(
                "Strategy of type: '{SW_DEPLOY}' already exists"
            )));
        }
        let facts = self.inner.dc.rollout_facts(|_, _| false);
        let groups = self.inner.dc.groups();
        let group_of = |name: &str| -> Result<&roost_api::dcmanager::GroupView, Error> {
            groups
                .iter()
                .find(|g| g.name == name || g.id.to_string() == name)
                .ok_or_else(|| {
                    Error::Unprocessable(format!("Subcloud group {name} does not exist"))
                })
        };
        let mut targets: Vec<&super::RolloutFacts> = match &req.cloud_name {
            Some(name) => {
                let f = facts.iter().find(|f| &f.name == name).ok_or_else(|| {
                    Error::Unprocessable(format!("Subcloud {name} does not exist"))
                })?;
                if !f.managed {
                    return Err(Error::Unprocessable(format!(
                        "Subcloud {name} is not managed"
                    )));
                }
                vec![f]
            }
            None => {
                let only = match &req.subcloud_group {
                    Some(g) => Some(group_of(g)?.id as u64),
                    None => None,
                };
                facts
                    .iter()
                    .filter(|f| f.managed && only.is_none_or(|g| f.group_id == g))
                    .collect()
            }
        };
        targets.sort_by_key(|f| (f.group_id, f.id));
        let mut stages = Vec::new();
        let mut rest: Vec<&super::RolloutFacts> = targets.clone();
        if let Some(k) = canary {
            let take = (k as usize).min(rest.len());
            let canaries: Vec<String> = rest.drain(..take).map(|f| f.name.clone()).collect();
            stages.push(StagePlan {
                name: "canary".into(),
                max_parallel: max_parallel.unwrap_or(canaries.len().max(1) as u32),
                subclouds: canaries,
            });
        } else if let Some(g) = &req.canary_group {
            let gid = group_of(g)?.id as u64;
            let canaries: Vec<String> = rest
                .iter()
                .filter(|f| f.group_id == gid)
                .map(|f| f.name.clone())
                .collect();
            rest.retain(|f| f.group_id != gid);
            stages.push(StagePlan {
                name: format!("canary (group {g})"),
                max_parallel: max_parallel.unwrap_or(canaries.len().max(1) as u32),
                subclouds: canaries,
            });
        }
        if apply_type.is_some() || max_parallel.is_some() || req.cloud_name.is_some() {
            let n = match apply_type.as_deref() {
                Some("serial") => 1,
                _ => max_parallel.unwrap_or(10),
            };
            stages.push(StagePlan {
                name: "all".into(),
                max_parallel: n,
                subclouds: rest.iter().map(|f| f.name.clone()).collect(),
            });
        } else {
            for g in &groups {
                let members: Vec<String> = rest
                    .iter()
                    .filter(|f| f.group_id == g.id as u64)
                    .map(|f| f.name.clone())
                    .collect();
                if members.is_empty() {
                    continue;
                }
                stages.push(StagePlan {
                    name: format!("group {}", g.name),
                    max_parallel: if g.update_apply_type == "serial" {
                        1
                    } else {
                        g.max_parallel_subclouds.max(1)
                    },
                    subclouds: members,
                });
            }
        }
        let spec = Spec {
            release_id: release_id.clone(),
            rollback,
            stop_on_failure,
            canary: has_canary,
            approval,
            soak_secs,
            auto_rollback,
            defer_secs,
        };
        let now = self.inner.clock.now().micros();
        let rollout = Rollout::create(spec, stages, now.max(1) as u64, now)
            .map_err(|e| Error::Unprocessable(e.to_string()))?;
        let id = self.inner.last_id.load(Ordering::Relaxed) + 1;
        let mut extra = serde_json::Map::new();
        for (k, v) in [
            ("release_id", Value::from(release_id.clone())),
            ("rollback", Value::from(rollback)),
            ("snapshot", Value::from(false)),
            ("delete", Value::from(delete)),
            ("cleanup", Value::from(false)),
            ("with_prestage", Value::from(false)),
            ("kube_upgrade", Value::Null),
            ("canary", canary.map_or(Value::Null, Value::from)),
            (
                "canary_group",
                req.canary_group.clone().map_or(Value::Null, Value::from),
            ),
            ("approval", Value::from(approval)),
            ("soak_secs", Value::from(soak_secs)),
            ("auto_rollback", Value::from(auto_rollback)),
            ("defer_secs", Value::from(defer_secs)),
        ] {
            extra.insert(k.into(), v);
        }
        let stored = Stored {
            id,
            subcloud_apply_type: apply_type,
            max_parallel_subclouds: max_parallel,
            extra_args: extra,
            rollout,
        };
        // Persist.
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            store.set_settings(&[(SETTING_LAST_ID.into(), id.to_string())])
        })
        .await
        .map_err(|_| Error::Internal("the store task stopped".into()))??;
        self.inner.last_id.store(id, Ordering::Relaxed);
        self.keep(Some(stored.clone())).await?;
        tracing::info!(
            strategy = id,
            release = %release_id,
            subclouds = stored.rollout.steps.len(),
            stages = stored.rollout.stages.len(),
            "fleet strategy created"
        );
        Ok(view(&stored, None))
    }

    /// `POST /v1.0/sw-update-strategy/actions`: `apply` (also the approval
    /// a canary stage waits for) or `abort`.
    pub async fn action(
        &self,
        strategy_type: Option<&str>,
        action: &str,
    ) -> Result<SwUpdateStrategy, Error> {
        check_type(strategy_type)?;
        let _lane = self.inner.lane.lock().await;
        let mut s = self
            .strategy()
            .clone()
            .ok_or_else(|| not_found(strategy_type))?;
        let now = self.inner.clock.now().micros();
        let refused = |op: &str, e: roost_release::Error| {
            Error::Unprocessable(format!(
                "Unable to {op} strategy of type '{SW_DEPLOY}': Bad strategy request: {e}"
            ))
        };
        match action {
            "apply" => s.rollout.apply(now).map_err(|e| refused("apply", e))?,
            "abort" => s.rollout.abort(now).map_err(|e| refused("abort", e))?,
            other => return Err(bad(format!("action invalid: {other:?} (apply or abort)"))),
        }
        self.keep(Some(s.clone())).await?;
        tracing::info!(strategy = s.id, %action, state = s.rollout.state.as_str(), "fleet strategy");
        self.inner.wake.notify_one();
        Ok(view(&s, None))
    }

    /// `DELETE /v1.0/sw-update-strategy`: answers the strategy as
    /// `deleting`, and it is gone.
    pub async fn delete(&self, strategy_type: Option<&str>) -> Result<SwUpdateStrategy, Error> {
        check_type(strategy_type)?;
        let _lane = self.inner.lane.lock().await;
        let s = self
            .strategy()
            .clone()
            .ok_or_else(|| not_found(strategy_type))?;
        s.rollout.deletable().map_err(|e| {
            Error::Unprocessable(format!(
                "Unable to delete strategy of type '{SW_DEPLOY}': Bad strategy request: {e}"
            ))
        })?;
        self.keep(None).await?;
        self.inner.dc.set_orders(BTreeMap::new());
        tracing::info!(strategy = s.id, "fleet strategy deleted");
        Ok(view(&s, Some("deleting")))
    }

    /// What the rollout is told of each subcloud now.
    fn facts(&self) -> BTreeMap<String, CloudFacts> {
        let reports = self.inner.dc.order_reports();
        let catalogue = self.inner.fm.catalogue();
        // The deploy's own alarms (900.*) say it is under way.
        let unhealthy =
            |id: &str, severity| !id.starts_with("900.") && catalogue.mgmt_affecting(id, severity);
        self.inner
            .dc
            .rollout_facts(unhealthy)
            .into_iter()
            .map(|f| {
                let report = reports.get(&f.name).and_then(|r| {
                    Some(Report {
                        order: r.order,
                        phase: Phase::parse(&r.phase)?,
                        details: r.details.clone(),
                    })
                });
                (
                    f.name.clone(),
                    CloudFacts {
                        online: f.online,
                        unhealthy: f.unhealthy,
                        report,
                    },
                )
            })
            .collect()
    }

    /// One move of the strategy: facts in, commit if it changed, orders out.
    async fn tick(&self) -> Result<(), Error> {
        let _lane = self.inner.lane.lock().await;
        let Some(mut s) = self.strategy().clone() else {
            self.inner.dc.set_orders(BTreeMap::new());
            return Ok(());
        };
        let before = s.rollout.state;
        let facts = self.facts();
        let now = self.inner.clock.now().micros();
        if s.rollout.tick(&facts, now) {
            self.keep(Some(s.clone())).await?;
            if s.rollout.state != before {
                tracing::info!(
                    strategy = s.id,
                    state = s.rollout.state.as_str(),
                    reason = %s.rollout.reason,
                    "fleet strategy"
                );
            }
        }
        let orders = s
            .rollout
            .steps
            .iter()
            .filter_map(|step| {
                let o = s.rollout.order_of(step)?;
                let opts = self.options_for(&step.cloud);
                Some((
                    step.cloud.clone(),
                    DeployOrder {
                        id: o.id,
                        release_id: o.release_id,
                        action: match o.action {
                            OrderAction::Deploy => "deploy",
                            OrderAction::Complete => "complete",
                            OrderAction::Rollback => "rollback",
                        }
                        .into(),
                        worker_apply_type: opts.worker_apply_type,
                        max_parallel_workers: opts.max_parallel_workers,
                        alarm_restriction: opts.alarm_restriction_type,
                    },
                ))
            })
            .collect();
        self.inner.dc.set_orders(orders);
        Ok(())
    }
}

fn not_found(strategy_type: Option<&str>) -> Error {
    match strategy_type {
        Some(t) => Error::NotFound(format!("Strategy of type '{t}' not found")),
        None => Error::NotFound("Strategy not found".into()),
    }
}

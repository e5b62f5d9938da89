//! This subcloud's side of software: the releases a system controller
//! keeps here (the `software` endpoint) and the deploy orders of its fleet
//! rollouts.
//!
//! Releases: each one this cloud lacks is fetched once over the
//! mutual-TLS link (by the digest of its file, resumed, checked), then
//! uploaded through this cloud's own software service, the path of
//! `software upload`: it is verified against this cloud's trusted keys. The
//! digest reported back covers the desired releases present here, so the
//! system controller sees `in-sync` exactly when every one arrived.
//!
//! Orders: the system controller repeats the order at every sync until it
//! changes; each sync takes one step of it through this cloud's deploy
//! service and site strategy, as an operator would with `software deploy
//! strategy`, and the next request reports the phase reached:
//!
//! - `deploy`: once the release is here, a site strategy held before
//!   `deploy complete` is created and applied; `activated` when it is done.
//! - `complete`: `deploy complete`, then the deploy and strategy are
//!   deleted; `complete`.
//! - `rollback`: the strategy is aborted, the deploy aborted (and its
//!   activation rolled back), each host rolled back, the deploy deleted;
//!   `rolled-back`.
//!
//! The last report is kept in the store, so a final answer survives a
//! restart and an order is never taken twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use roost_api::dcsync::{DeployOrder, DeployOrderReport, OrderSlot, SoftwareConfig, SyncedRelease};
use roost_api::software::StrategyRequest;
use roost_release::ReleaseState;
use roost_release::rollout::Phase;
use roost_store::Store;
use tokio::sync::Notify;

use super::{ControllerLink, DcIdentity};
use crate::software::SoftwareService;

/// The last `software` content pushed (JSON).
const SETTING_DESIRED: &str = "dc.software.desired";
/// The last report of a deploy order, with its action (JSON).
const SETTING_ORDER: &str = "dc.software.order";

/// This subcloud's side of the `software` endpoint and of deploy orders.
#[derive(Clone)]
pub struct FleetSoftware {
    software: SoftwareService,
    /// Fetched release files, by digest.
    dir: PathBuf,
    /// Why a release could not be fetched or uploaded, by id, and whether
    /// that is for good (it was refused here) or worth another try (the
    /// fetch failed).
    failures: Arc<Mutex<BTreeMap<String, (String, bool)>>>,
    /// Releases being fetched and uploaded, by id.
    bringing: Arc<Mutex<BTreeSet<String>>>,
    /// Told when bringing a release ends (either way).
    brought: Arc<Notify>,
}

fn read<T: serde::de::DeserializeOwned>(store: &Store, key: &str) -> Option<T> {
    store
        .setting(key)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_str(&v).ok())
}

impl FleetSoftware {
    /// Release files are kept in `dir` until uploaded.
    pub fn new(software: SoftwareService, dir: PathBuf) -> FleetSoftware {
        FleetSoftware {
            software,
            dir,
            failures: Arc::default(),
            bringing: Arc::default(),
            brought: Arc::default(),
        }
    }

    /// Resolves when bringing a release has ended since the last call.
    pub async fn brought(&self) {
        self.brought.notified().await
    }

    fn failure(&self, id: &str) -> Option<(String, bool)> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// What runs here of the `software` endpoint: the desired releases that
    /// are present.
    pub fn local_config(&self, store: &Store) -> SoftwareConfig {
        let desired: SoftwareConfig = read(store, SETTING_DESIRED).unwrap_or_default();
        let here = self.software.states();
        SoftwareConfig {
            releases: desired
                .releases
                .into_iter()
                .filter(|r| here.contains_key(&r.release_id))
                .collect(),
        }
    }

    /// Takes a push: remembers it, and starts bringing each release that
    /// is not here yet. Releases the system controller no longer lists are
    /// left alone (one may be deployed here).
    pub fn apply(
        &self,
        store: &Store,
        controller: &Arc<dyn ControllerLink>,
        id: &DcIdentity,
        want: &SoftwareConfig,
    ) -> crate::Result<()> {
        let text = serde_json::to_string(want)
            .map_err(|e| crate::Error::Internal(format!("cannot encode releases: {e}")))?;
        store.set_settings(&[(SETTING_DESIRED.into(), text)])?;
        let here = self.software.states();
        for r in &want.releases {
            if !here.contains_key(&r.release_id) {
                self.start_bringing(controller, id, r);
            }
        }
        Ok(())
    }

    fn start_bringing(
        &self,
        controller: &Arc<dyn ControllerLink>,
        id: &DcIdentity,
        r: &SyncedRelease,
    ) {
        if !self
            .bringing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.release_id.clone())
        {
            return;
        }
        let me = self.clone();
        let link = controller.clone();
        let id = id.clone();
        let r = r.clone();
        tokio::spawn(async move {
            let outcome = match link.fetch_package(&id, &r.digest, r.size, &me.dir).await {
                Ok(f) => {
                    let path = f.path.clone();
                    let up = me.software.upload(f.path).await;
                    let _ = std::fs::remove_file(&path);
                    up.map(|_| ()).map_err(|e| (e, true))
                }
                Err(e) => Err((e, false)),
            };
            {
                let mut failures = me.failures.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Ok(()) => {
                        failures.remove(&r.release_id);
                        tracing::info!(release = %r.release_id, "release brought from the system controller");
                    }
                    Err((e, refused)) => {
                        tracing::warn!(release = %r.release_id, error = %e, "cannot bring a release from the system controller");
                        failures.insert(r.release_id.clone(), (e.to_string(), refused));
                    }
                }
            }
            me.bringing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&r.release_id);
            me.brought.notify_one();
        });
    }

    /// The report for the next sync request.
    pub fn report(&self, store: &Store) -> Option<DeployOrderReport> {
        read::<OrderSlot>(store, SETTING_ORDER).and_then(|k| k.report)
    }

    /// Takes one step of `order` (none: nothing to do) and keeps the
    /// report; true when the report changed (to be sent soon).
    pub async fn take_order(&self, store: &Store, order: Option<&DeployOrder>) -> bool {
        let Some(o) = order else { return false };
        let mut slot: OrderSlot = read(store, SETTING_ORDER).unwrap_or_default();
        if !slot.needs_step(o) {
            return false;
        }
        let (phase, details) = match o.action.as_str() {
            "deploy" => self.deploy_step(o).await,
            "complete" => self.complete_step(o).await,
            "rollback" => self.rollback_step().await,
            other => (Phase::Failed, format!("unknown order action {other:?}")),
        };
        if slot.answer(o, phase.as_str(), details.clone()) {
            tracing::info!(
                order = o.id,
                action = %o.action,
                release = %o.release_id,
                phase = phase.as_str(),
                %details,
                "deploy order"
            );
            match serde_json::to_string(&slot) {
                Ok(text) => {
                    if let Err(e) = store.set_settings(&[(SETTING_ORDER.into(), text)]) {
                        tracing::warn!(error = %e, "cannot keep the deploy order's report");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode the deploy order's report"),
            }
            return true;
        }
        false
    }

    /// The deploy in progress here: (to release, state).
    fn deploy(&self) -> Option<(String, String)> {
        self.software
            .deploy_show()
            .into_iter()
            .next()
            .map(|d| (d.to_release_id, d.state))
    }

    /// Deletes a site strategy that is not applying.
    async fn clear_strategy(&self) {
        if let Some(s) = self.software.strategy_show()
            && s.state != "applying"
            && let Err(e) = self.software.strategy_delete().await
        {
            tracing::warn!(error = %e, "cannot delete the site strategy");
        }
    }

    async fn deploy_step(&self, o: &DeployOrder) -> (Phase, String) {
        let id = &o.release_id;
        let Some(rel) = self.software.get(id) else {
            return match self.failure(id) {
                Some((why, true)) => (
                    Phase::Failed,
                    format!("release {id} is refused here: {why}"),
                ),
                Some((why, false)) => (
                    Phase::PreCheck,
                    format!(
                        "waiting for release {id} from the system controller (the last fetch failed: {why})"
                    ),
                ),
                None => (
                    Phase::PreCheck,
                    format!("waiting for release {id} from the system controller"),
                ),
            };
        };
        let deploy = self.deploy();
        let deployed = matches!(
            ReleaseState::parse(&rel.state),
            Some(ReleaseState::Deployed | ReleaseState::Committed)
        );
        if deployed && deploy.is_none() {
            return (Phase::Complete, format!("release {id} is deployed here"));
        }
        match self.software.strategy_show() {
            Some(s) if &s.release_id == id => match s.state.as_str() {
                "initial" => match self.software.strategy_action("apply").await {
                    Ok(_) => (Phase::ApplyStrategy, "applying".into()),
                    Err(e) => (Phase::Failed, e.to_string()),
                },
                "applying" => {
                    let now = s
                        .stages
                        .iter()
                        .find(|st| st.state == "in-progress")
                        .map_or_else(|| "starting".to_string(), |st| st.name.clone());
                    (
                        Phase::ApplyStrategy,
                        format!("stage {} of {}: {now}", s.stages_done + 1, s.stages.len()),
                    )
                }
                "applied" => (
                    Phase::Activated,
                    format!("release {id} deployed to every host and activated"),
                ),
                _ => (Phase::Failed, s.reason),
            },
            Some(s) if s.state == "applying" => (
                Phase::Failed,
                format!("a site strategy for {} is applying here", s.release_id),
            ),
            other => {
                if other.is_some() {
                    self.clear_strategy().await;
                }
                match deploy {
                    Some((to, state)) if &to == id && state == "activate-done" => (
                        Phase::Activated,
                        format!("release {id} deployed to every host and activated"),
                    ),
                    Some((to, state)) => (
                        Phase::Failed,
                        format!("a deploy of {to} is in progress here ({state})"),
                    ),
                    None => {
                        let req = StrategyRequest {
                            release_id: id.clone(),
                            worker_apply_type: Some(o.worker_apply_type.clone()),
                            max_parallel_workers: Some(o.max_parallel_workers),
                            alarm_restriction: Some(o.alarm_restriction.clone()),
                        };
                        match self.software.strategy_create(&req, true).await {
                            Ok(v) => (
                                Phase::CreateStrategy,
                                format!("site strategy created: {} stages", v.stages.len()),
                            ),
                            Err(e) => (Phase::Failed, e.to_string()),
                        }
                    }
                }
            }
        }
    }

    async fn complete_step(&self, o: &DeployOrder) -> (Phase, String) {
        let id = &o.release_id;
        match self.deploy() {
            Some((to, state)) if &to == id => {
                if state == "activate-done"
                    && let Err(e) = self.software.deploy_complete().await
                {
                    return (Phase::Failed, e.to_string());
                }
                if matches!(state.as_str(), "activate-done" | "completed") {
                    if let Err(e) = self.software.deploy_delete().await {
                        return (Phase::Failed, e.to_string());
                    }
                    self.clear_strategy().await;
                    return (Phase::Complete, format!("release {id} deployed"));
                }
                (Phase::Failed, format!("the deploy of {id} is {state}"))
            }
            Some((to, state)) => (
                Phase::Failed,
                format!("a deploy of {to} is in progress here ({state})"),
            ),
            None if self.software.is(id, ReleaseState::Deployed) == Some(true) => {
                self.clear_strategy().await;
                (Phase::Complete, format!("release {id} deployed"))
            }
            None => (Phase::Failed, format!("release {id} is not deployed here")),
        }
    }

    async fn rollback_step(&self) -> (Phase, String) {
        if self
            .software
            .strategy_show()
            .is_some_and(|s| s.state == "applying")
            && let Err(e) = self.software.strategy_action("abort").await
        {
            return (Phase::RollbackFailed, e.to_string());
        }
        let Some((to, state)) = self.deploy() else {
            self.clear_strategy().await;
            return (Phase::RolledBack, "no deploy in progress here".into());
        };
        let r = match state.as_str() {
            "start-done" | "host" | "host-done" | "host-failed" | "activate-done"
            | "activate-failed" | "completed" => self.software.deploy_abort().await,
            "activate-rollback-pending" | "activate-rollback-failed" => {
                self.software.deploy_activate_rollback().await
            }
            "host-rollback" | "activate-rollback-done" | "host-rollback-failed" => {
                for h in self.software.deploy_hosts() {
                    match h.host_state.as_deref() {
                        Some("rollback-pending") => {
                            if let Err(e) = self.software.deploy_host(&h.hostname, true, true).await
                            {
                                return (Phase::RollbackFailed, e.to_string());
                            }
                        }
                        Some("rollback-failed") => {
                            return (
                                Phase::RollbackFailed,
                                format!("host {} failed to roll back: {}", h.hostname, h.message),
                            );
                        }
                        _ => {}
                    }
                }
                Ok(String::new())
            }
            "host-rollback-done" | "start-failed" => match self.software.deploy_delete().await {
                Ok(_) => {
                    self.clear_strategy().await;
                    return (
                        Phase::RolledBack,
                        format!("every host runs {}", roost_api::software::release_name(&to)),
                    );
                }
                Err(e) => Err(e),
            },
            _ => Ok(String::new()),
        };
        match r {
            Ok(_) => (Phase::RollingBack, format!("deploy {state}")),
            Err(e) => (Phase::RollbackFailed, e.to_string()),
        }
    }
}

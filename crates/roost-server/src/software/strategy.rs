//! The site strategy (`/v1/deploy/strategy`): `roost_release::strategy`
//! decides the deploy steps; a task takes them through the deploy service,
//! as an operator would, once a second while the strategy is applying, and
//! deletes the deploy once it completed.

use roost_api::software::{StageView, StrategyRequest, StrategyView};
use roost_release::ReleaseState;
use roost_release::strategy::{
    Action, AlarmRestriction, ApplyType, DeployFacts, Options, SiteStrategy, Target,
};
use roost_store::ReleaseWrite;
use roost_types::Timestamp;

use super::SoftwareService;
use crate::Error;

fn refused(e: roost_release::Error) -> Error {
    Error::Conflict(e.to_string())
}

fn options_of(req: &StrategyRequest) -> Result<Options, Error> {
    let mut o = Options::default();
    match req.worker_apply_type.as_deref() {
        None | Some("serial") => {}
        Some("parallel") => o.worker_apply_type = ApplyType::Parallel,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "worker_apply_type {other:?} is not serial or parallel"
            )));
        }
    }
    if let Some(n) = req.max_parallel_workers {
        o.max_parallel_workers = n;
    }
    match req.alarm_restriction.as_deref() {
        None | Some("strict") => {}
        Some("relaxed") => o.alarm_restriction = AlarmRestriction::Relaxed,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "alarm_restriction {other:?} is not strict or relaxed"
            )));
        }
    }
    o.check().map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(o)
}

fn when(t: Option<i64>) -> Option<String> {
    t.map(|t| Timestamp(t).to_string())
}

fn enum_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn view(s: &SiteStrategy) -> StrategyView {
    StrategyView {
        release_id: s.release_id.clone(),
        state: s.state_name().into(),
        worker_apply_type: enum_name(&s.options.worker_apply_type),
        max_parallel_workers: s.options.max_parallel_workers,
        alarm_restriction: enum_name(&s.options.alarm_restriction),
        reason: s.reason.clone(),
        created_at: Timestamp(s.created_at).to_string(),
        stages_done: s
            .stages
            .iter()
            .filter(|st| st.state == roost_release::strategy::StageState::Done)
            .count(),
        stages: s
            .stages
            .iter()
            .map(|st| StageView {
                name: st.name(),
                hosts: st.hosts.clone(),
                state: enum_name(&st.state),
                reason: st.reason.clone(),
                started_at: when(st.started_at),
                finished_at: when(st.finished_at),
            })
            .collect(),
    }
}

impl SoftwareService {
    fn strategy_lock(&self) -> std::sync::MutexGuard<'_, Option<SiteStrategy>> {
        self.inner
            .strategy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Commits the strategy (`None`: removed), then keeps it.
    async fn keep_strategy(&self, s: Option<SiteStrategy>) -> Result<(), Error> {
        let body = s
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("cannot encode the strategy: {e}")))?;
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.write_releases(&[ReleaseWrite::Strategy(body)]))
            .await
            .map_err(|_| Error::Internal("the store task stopped".into()))??;
        *self.strategy_lock() = s;
        Ok(())
    }

    pub fn strategy_show(&self) -> Option<StrategyView> {
        self.strategy_lock().as_ref().map(view)
    }

    /// Creates the strategy for a release that is available;
    /// `hold_complete`: it stops once the deploy is activated.
    pub async fn strategy_create(
        &self,
        req: &StrategyRequest,
        hold_complete: bool,
    ) -> Result<StrategyView, Error> {
        let mut options = options_of(req)?;
        options.hold_complete = hold_complete;
        let _lane = self.inner.strategy_lane.lock().await;
        if let Some(s) = self.strategy_lock().as_ref() {
            return Err(Error::Conflict(format!(
                "a strategy for {} exists already ({}): delete it first",
                s.release_id,
                s.state_name()
            )));
        }
        let id = &req.release_id;
        let reboot_required = match self.lock().get(id) {
            None => return Err(Error::NotFound(format!("Release {id} not found"))),
            Some(r) if r.state != ReleaseState::Available => {
                return Err(Error::Conflict(format!(
                    "release {id} is {}: only an available release can be deployed",
                    r.state
                )));
            }
            Some(r) => r.manifest.reboot_required,
        };
        let site = self.site()?;
        let targets: Vec<Target> = site
            .hosts
            .list()
            .into_iter()
            .filter(|h| self.deployable(site, &h.hostname, reboot_required))
            .map(|h| Target {
                hostname: h.hostname,
                personality: h.personality,
            })
            .collect();
        let now = self.inner.clock.now().micros();
        let s =
            SiteStrategy::create(id, options, reboot_required, &targets, now).map_err(refused)?;
        let v = view(&s);
        self.keep_strategy(Some(s)).await?;
        tracing::info!(release = %id, stages = v.stages.len(), "site strategy created");
        Ok(v)
    }

    /// `apply` or `abort`.
    pub async fn strategy_action(&self, action: &str) -> Result<StrategyView, Error> {
        let _lane = self.inner.strategy_lane.lock().await;
        let mut s = self
            .strategy_lock()
            .clone()
            .ok_or_else(|| Error::NotFound("No strategy".into()))?;
        let now = self.inner.clock.now().micros();
        match action {
            "apply" => s.apply().map_err(refused)?,
            "abort" => s.abort(now).map_err(refused)?,
            other => {
                return Err(Error::Invalid(format!(
                    "action {other:?} is not apply or abort"
                )));
            }
        }
        let v = view(&s);
        self.keep_strategy(Some(s)).await?;
        tracing::info!(release = %v.release_id, %action, "site strategy");
        self.inner.strategy_wake.notify_one();
        Ok(v)
    }

    pub async fn strategy_delete(&self) -> Result<(), Error> {
        let _lane = self.inner.strategy_lane.lock().await;
        let s = self
            .strategy_lock()
            .clone()
            .ok_or_else(|| Error::NotFound("No strategy".into()))?;
        s.deletable().map_err(refused)?;
        self.keep_strategy(None).await
    }

    /// Locks or unlocks a host, as `system host-lock|unlock` does.
    async fn host_action(&self, host: &str, action: &str) -> Result<String, Error> {
        let ops = [(
            "replace".to_string(),
            "/action".to_string(),
            Some(serde_json::Value::String(action.into())),
        )];
        self.site()?.hosts.patch(host, &ops).await?;
        tracing::info!(%host, %action, "site strategy");
        Ok(String::new())
    }

    /// What the deploy looks like, for the strategy.
    fn deploy_facts(&self, release: &str) -> DeployFacts {
        let release_deployed = self
            .lock()
            .get(release)
            .is_some_and(|r| r.state == ReleaseState::Deployed);
        let host_states = self
            .inner
            .site
            .get()
            .map(|site| {
                site.hosts
                    .list()
                    .into_iter()
                    .map(|h| (h.hostname, (h.administrative, h.availability)))
                    .collect()
            })
            .unwrap_or_default();
        let d = self.deploy_lock();
        match d.as_ref() {
            None => DeployFacts {
                release_deployed,
                host_states,
                ..DeployFacts::default()
            },
            Some(d) => DeployFacts {
                release_deployed,
                host_states,
                deploy: Some((d.to_release_id.clone(), d.state)),
                hosts: d
                    .hosts
                    .iter()
                    .map(|(h, hd)| (h.clone(), (hd.state, hd.message.clone())))
                    .collect(),
            },
        }
    }

    /// Takes the strategy's steps while it is applying: once a second, and
    /// at once after it is applied.
    pub async fn strategy_loop(self, shutdown: crate::Shutdown) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = self.inner.strategy_wake.notified() => {}
            }
            if let Err(e) = self.strategy_tick().await {
                tracing::warn!(error = %e, "the site strategy could not move on");
            }
        }
    }

    async fn strategy_tick(&self) -> Result<(), Error> {
        let _lane = self.inner.strategy_lane.lock().await;
        let Some(mut s) = self.strategy_lock().clone() else {
            return Ok(());
        };
        if s.state != roost_release::strategy::StrategyState::Applying {
            return Ok(());
        }
        let before = s.clone();
        let (_, alarms) = self.facts(false)?;
        let now = self.inner.clock.now().micros();
        let actions = s.next(&self.deploy_facts(&s.release_id.clone()), &alarms, now);
        if s != before {
            self.keep_strategy(Some(s.clone())).await?;
            if s.state != before.state {
                tracing::info!(release = %s.release_id, state = s.state_name(), reason = %s.reason, "site strategy");
            }
        }
        for a in actions {
            let done = match &a {
                Action::Start => {
                    let req = roost_api::software::DeployRequest {
                        releases: vec![s.release_id.clone()],
                        force: Some(serde_json::Value::Bool(true)),
                        ..Default::default()
                    };
                    self.deploy_start(&req).await
                }
                Action::DeployHost(h) => self.deploy_host(h, false, false).await,
                Action::LockHost(h) => self.host_action(h, "lock").await,
                Action::UnlockHost(h) => self.host_action(h, "unlock").await,
                Action::Activate => self.deploy_activate().await,
                // The strategy leaves nothing behind: the completed deploy
                // is deleted, the release is deployed.
                Action::Complete => match self.deploy_complete().await {
                    Ok(_) => self.deploy_delete().await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = done {
                let mut s = self.strategy_lock().clone().unwrap_or(s.clone());
                s.step_failed(e.to_string(), self.inner.clock.now().micros());
                tracing::warn!(release = %s.release_id, reason = %s.reason, "site strategy failed");
                self.keep_strategy(Some(s)).await?;
                return Ok(());
            }
        }
        Ok(())
    }
}

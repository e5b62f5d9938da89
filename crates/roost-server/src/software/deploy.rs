//! Deploying a release to this cloud's hosts (USM's `/v1/deploy` and
//! `/v1/deploy_host`). The decisions are `roost_release::deploy`'s; this
//! module feeds it the hosts and alarms, commits the deploy with the
//! release states it changes, then keeps it in memory and raises or clears
//! the 900-range alarms.
//!
//! Agents learn what to run from their report's reply ([`SoftwareOrder`])
//! and say how it went in their next reports ([`SoftwareStatus`]); payload
//! files are fetched by digest from `GET /v1/agent/software/blobs/{sha256}`.

use std::path::PathBuf;

use roost_api::software::{
    DeployHostView, DeployRequest, DeployView, PayloadView, PrecheckReply, SoftwareOrder,
    SoftwareStatus,
};
use roost_release::ReleaseState;
use roost_release::deploy::{
    AlarmFact, Candidate, Change, Deploy, HostFacts, Outcome, Precheck, precheck,
};
use roost_store::ReleaseWrite;
use roost_types::Severity;

use super::SoftwareService;
use crate::Error;
use crate::fm_service::raise_or_clear;

/// Raised while a deploy is in progress.
pub const ALARM_IN_PROGRESS: &str = "900.001";
/// Raised on a host whose deploy (or rollback) failed.
pub const ALARM_HOST_FAILED: &str = "900.002";
/// Raised while an aborted deploy is rolled back.
pub const ALARM_ROLLBACK: &str = "900.004";

const CONTROLLER: &str = "host=controller";

fn refused(e: roost_release::Error) -> Error {
    Error::Conflict(e.to_string())
}

fn host_facts(v: &roost_api::sysinv::HostView) -> HostFacts {
    HostFacts {
        hostname: v.hostname.clone(),
        administrative: v.administrative.clone(),
        operational: v.operational.clone(),
        availability: v.availability.clone(),
    }
}

impl SoftwareService {
    pub(super) fn deploy_lock(&self) -> std::sync::MutexGuard<'_, Option<Deploy>> {
        self.inner.deploy.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn site(&self) -> Result<&super::Site, Error> {
        self.inner
            .site
            .get()
            .ok_or_else(|| Error::Internal("the software service has no hosts yet".into()))
    }

    /// The hosts a deploy covers (of a release that reboots hosts or not)
    /// and the raised alarms, as the precheck sees them.
    pub(super) fn facts(
        &self,
        reboot_required: bool,
    ) -> Result<(Vec<HostFacts>, Vec<AlarmFact>), Error> {
        let site = self.site()?;
        let hosts = site
            .hosts
            .list()
            .iter()
            .filter(|h| self.deployable(site, &h.hostname, reboot_required))
            .map(host_facts)
            .collect();
        let fm = site.fm.read();
        let cat = site.fm.catalogue();
        let alarms = fm
            .alarms()
            .map(|a| AlarmFact {
                alarm_id: a.alarm_id.clone(),
                entity_instance_id: a.entity_instance_id.clone(),
                severity: a.severity.to_string(),
                mgmt_affecting: cat.mgmt_affecting(&a.alarm_id, a.severity)
                    // The deploy's own alarms do not stop the next one.
                    && !a.alarm_id.starts_with("900."),
            })
            .collect();
        Ok((hosts, alarms))
    }

    /// Whether a deploy covers `host`: every host, except the server's own
    /// for a release that reboots hosts (the server cannot lock, reboot and
    /// unlock the host it runs on; the operator reboots it).
    pub(super) fn deployable(&self, site: &super::Site, host: &str, reboot_required: bool) -> bool {
        !reboot_required || site.hosts.local_hostname().as_deref() != Some(host)
    }

    /// The releases deployed or committed, and the one the hosts run (the
    /// newest deployed; empty for the installed software) with its version.
    fn deployed(&self) -> (Vec<String>, String, String) {
        let st = self.lock();
        let deployed: Vec<String> = st
            .values()
            .filter(|r| matches!(r.state, ReleaseState::Deployed | ReleaseState::Committed))
            .map(|r| r.manifest.release_id.clone())
            .collect();
        let newest = st
            .values()
            .filter(|r| matches!(r.state, ReleaseState::Deployed | ReleaseState::Committed))
            .max_by_key(|r| version_key(&r.manifest.version));
        let (id, version) = match newest {
            Some(r) => (r.manifest.release_id.clone(), r.manifest.version.clone()),
            None => (String::new(), env!("CARGO_PKG_VERSION").to_string()),
        };
        (deployed, id, version)
    }

    /// The one release a deploy request names.
    fn requested(req: &DeployRequest) -> Result<String, Error> {
        match req.releases.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::Invalid(
                "name the release to deploy (software deploy precheck|start RELEASE)".into(),
            )),
            _ => Err(Error::Invalid(
                "Roost deploys one release at a time: name one release".into(),
            )),
        }
    }

    fn check(&self, req: &DeployRequest) -> Result<(Precheck, roost_release::Manifest), Error> {
        let id = Self::requested(req)?;
        let (deployed, _, _) = self.deployed();
        let (manifest, state) = {
            let st = self.lock();
            let r = st
                .get(&id)
                .ok_or_else(|| Error::NotFound(format!("Release {id} not found")))?;
            (r.manifest.clone(), r.state)
        };
        let (hosts, alarms) = self.facts(manifest.reboot_required)?;
        let current = self.deploy_lock().clone();
        let check = precheck(
            Candidate {
                manifest: &manifest,
                state,
                deployed: &deployed,
            },
            current.as_ref(),
            &hosts,
            &alarms,
            req.forced(),
        );
        Ok((check, manifest))
    }

    /// `deploy precheck`: the report, and whether the cloud may deploy.
    pub fn precheck(&self, req: &DeployRequest) -> Result<PrecheckReply, Error> {
        let (check, _) = self.check(req)?;
        let mut reply = PrecheckReply {
            system_healthy: check.healthy(),
            ..Default::default()
        };
        if check.healthy() {
            reply.envelope.info = check.report();
        } else {
            reply.envelope.error = check.report();
        }
        Ok(reply)
    }

    /// `deploy start`.
    pub async fn deploy_start(&self, req: &DeployRequest) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        let (check, manifest) = self.check(req)?;
        let (hosts, _) = self.facts(manifest.reboot_required)?;
        let (_, from_id, from_version) = self.deployed();
        let now = self.inner.clock.now().micros();
        let deploy = Deploy::start(&check, &manifest, (&from_id, &from_version), &hosts, now)
            .map_err(refused)?;
        let id = manifest.release_id.clone();
        self.persist(
            vec![ReleaseWrite::SetState {
                release_id: id.clone(),
                state: ReleaseState::Deploying.as_str().into(),
            }],
            Some(&deploy),
        )
        .await?;
        self.set_release_state(&id, ReleaseState::Deploying);
        *self.deploy_lock() = Some(deploy);
        self.deploy_changed();
        tracing::info!(release = %id, hosts = hosts.len(), "deploy started");
        self.alarm(
            ALARM_IN_PROGRESS,
            CONTROLLER.into(),
            Some(Severity::Minor),
            format!("Software deploy of {id} in progress"),
        );
        Ok(format!(
            "Deployment for {id} started. Deploy each host with 'software deploy host HOST'"
        ))
    }

    /// Commits `writes` and the deploy (`None`: removed) in one transaction.
    async fn persist(
        &self,
        mut writes: Vec<ReleaseWrite>,
        deploy: Option<&Deploy>,
    ) -> Result<(), Error> {
        let body = deploy
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::Internal(format!("cannot encode the deploy: {e}")))?;
        writes.push(ReleaseWrite::Deploy(body));
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.write_releases(&writes))
            .await
            .map_err(|_| Error::Internal("the store task stopped".into()))??;
        Ok(())
    }

    fn set_release_state(&self, id: &str, state: ReleaseState) {
        if let Some(r) = self.lock().get_mut(id) {
            r.state = state;
        }
    }

    /// Raises or clears an alarm once the change is committed (off the
    /// request: the deploy is committed already).
    fn alarm(&self, id: &'static str, entity: String, sev: Option<Severity>, reason: String) {
        let Some(site) = self.inner.site.get() else {
            return;
        };
        let fm = site.fm.clone();
        let cmd = raise_or_clear(id, entity, sev, reason);
        tokio::spawn(async move {
            if sev.is_some() {
                if let Err(e) = fm.submit(cmd).await {
                    tracing::warn!(alarm = id, error = %e, "cannot raise a software alarm");
                }
            } else {
                fm.clear_until_done(cmd).await;
            }
        });
    }

    /// A step on the deploy in progress: `f` changes a copy, which is
    /// committed, then kept. Returns what `f` returned.
    async fn step<T>(
        &self,
        f: impl FnOnce(&mut Deploy) -> Result<T, Error>,
    ) -> Result<(T, Deploy, Deploy), Error> {
        let mut d = self
            .deploy_lock()
            .clone()
            .ok_or_else(|| Error::NotFound("No deploy in progress".into()))?;
        let before = d.clone();
        let out = f(&mut d)?;
        if d != before {
            self.persist(Vec::new(), Some(&d)).await?;
            *self.deploy_lock() = Some(d.clone());
            self.deploy_changed();
        }
        Ok((out, before, d))
    }

    /// `deploy host H` (`rollback`: `deploy host-rollback H`).
    pub async fn deploy_host(
        &self,
        host: &str,
        force: bool,
        rollback: bool,
    ) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        let view = self
            .site()?
            .hosts
            .list()
            .into_iter()
            .find(|h| h.hostname == host)
            .ok_or_else(|| Error::host_not_found(host))?;
        let facts = host_facts(&view);
        let now = self.inner.clock.now().micros();
        let (_, _, d) = self
            .step(|d| {
                if rollback {
                    d.host_rollback(host, now).map_err(refused)
                } else {
                    d.host(&facts, force, now).map_err(refused)
                }
            })
            .await?;
        let what = if rollback { "rollback" } else { "deployment" };
        tracing::info!(%host, release = %d.to_release_id, what, "host deploy started");
        Ok(format!(
            "Host {host} {what} to {} started; follow it with 'software deploy host-list'",
            roost_api::software::release_name(&d.to_release_id)
        ))
    }

    /// `deploy activate`.
    pub async fn deploy_activate(&self) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        let (_, _, d) = self.step(|d| d.activate().map_err(refused)).await?;
        Ok(format!("Deploy activate for {} done", d.to_release_id))
    }

    /// `deploy activate-rollback`.
    pub async fn deploy_activate_rollback(&self) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        self.step(|d| d.activate_rollback().map_err(refused))
            .await?;
        Ok(
            "Deploy activate-rollback done; roll each host back with 'software deploy \
            host-rollback HOST'"
                .into(),
        )
    }

    /// `deploy complete`.
    pub async fn deploy_complete(&self) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        let (_, _, d) = self.step(|d| d.complete().map_err(refused)).await?;
        Ok(format!(
            "Deployment of {} completed; remove it with 'software deploy delete'",
            d.to_release_id
        ))
    }

    /// `deploy abort`.
    pub async fn deploy_abort(&self) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        let now = self.inner.clock.now().micros();
        let (_, before, _) = self.step(|d| d.abort(now).map_err(refused)).await?;
        self.alarm(
            ALARM_ROLLBACK,
            CONTROLLER.into(),
            Some(Severity::Minor),
            format!(
                "Software deploy of {} is being rolled back",
                before.to_release_id
            ),
        );
        Ok(format!(
            "Deployment of {} aborted; roll each host back with 'software deploy host-rollback \
             HOST'",
            before.to_release_id
        ))
    }

    /// `deploy delete`: the deploy is removed and the releases take their
    /// final states.
    pub async fn deploy_delete(&self) -> Result<String, Error> {
        let _lane = self.inner.lane.lock().await;
        let d = self
            .deploy_lock()
            .clone()
            .ok_or_else(|| Error::NotFound("No deploy in progress".into()))?;
        d.delete().map_err(refused)?;
        // The release the deploy brought: deployed once completed,
        // available again otherwise.
        let (target, state) = if d.aborted() {
            (d.from_release_id.clone(), ReleaseState::Available)
        } else if d.state == roost_release::DeployState::Completed {
            (d.to_release_id.clone(), ReleaseState::Deployed)
        } else {
            (d.to_release_id.clone(), ReleaseState::Available)
        };
        self.persist(
            vec![ReleaseWrite::SetState {
                release_id: target.clone(),
                state: state.as_str().into(),
            }],
            None,
        )
        .await?;
        self.set_release_state(&target, state);
        *self.deploy_lock() = None;
        self.deploy_changed();
        for id in [ALARM_IN_PROGRESS, ALARM_ROLLBACK] {
            self.alarm(id, CONTROLLER.into(), None, String::new());
        }
        tracing::info!(release = %target, state = %state, "deploy deleted");
        Ok(format!("Deploy deleted; {target} is {state}"))
    }

    /// `deploy show`: the deploy in progress, if any.
    pub fn deploy_show(&self) -> Vec<DeployView> {
        self.deploy_lock()
            .iter()
            .map(|d| DeployView {
                from_release: d.from_version.clone(),
                to_release: d.to_version.clone(),
                from_release_id: d.from_release_id.clone(),
                to_release_id: d.to_release_id.clone(),
                reboot_required: d.reboot_required,
                pre_upgrade_deploy: false,
                state: d.state.as_str().into(),
                feed_repo: None,
                commit_id: None,
                options: Default::default(),
                major_release: false,
                prepatched_iso: false,
                started_at: roost_types::Timestamp(d.started_at).to_string(),
            })
            .collect()
    }

    /// `deploy host-list`: every host of the deploy (none without one).
    pub fn deploy_hosts(&self) -> Vec<DeployHostView> {
        let Some(d) = self.deploy_lock().clone() else {
            return Vec::new();
        };
        let running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        d.hosts
            .iter()
            .map(|(name, h)| {
                let version = running
                    .get(name)
                    .map(|s| self.version_of(&s.release_id, &s.version))
                    .unwrap_or_default();
                DeployHostView {
                    hostname: name.clone(),
                    software_release: version,
                    target_release: Some(d.to_version.clone()),
                    reboot_required: Some(d.reboot_required),
                    pre_upgrade_deploy: false,
                    host_state: Some(h.state.as_str().into()),
                    message: h.message.clone(),
                }
            })
            .collect()
    }

    /// The version of release `id` (`binary` for the installed software).
    fn version_of(&self, id: &str, binary: &str) -> String {
        if id.is_empty() {
            return binary.to_string();
        }
        self.lock()
            .get(id)
            .map(|r| r.manifest.version.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Takes what `host`'s agent reports about its software and answers
    /// what it should run. Cheap when nothing changes: the deploy is only
    /// committed when the report ends an attempt.
    pub async fn agent_report(
        &self,
        host: &str,
        status: Option<&SoftwareStatus>,
    ) -> Result<Option<SoftwareOrder>, Error> {
        if let Some(s) = status {
            self.inner
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(host.to_string(), s.clone());
        }
        let ends = {
            let d = self.deploy_lock();
            let Some(d) = d.as_ref() else {
                return Ok(None);
            };
            match (d.order(host), status.and_then(|s| s.last.as_ref())) {
                (Some(o), Some(last)) => {
                    last.attempt == o.attempt && last.release_id == o.release_id
                }
                _ => false,
            }
        };
        if ends && let Some(last) = status.and_then(|s| s.last.clone()) {
            let _lane = self.inner.lane.lock().await;
            let now = self.inner.clock.now().micros();
            let outcome = Outcome {
                attempt: last.attempt,
                ok: last.ok,
                message: last.message.clone(),
            };
            let (changes, _, _) = self.step(|d| Ok(d.outcome(host, &outcome, now))).await?;
            self.report_changes(&changes);
        }
        Ok(self.order_for(host))
    }

    fn deploy_changed(&self) {
        self.inner.deploy_changed.send_modify(|g| *g += 1);
    }

    /// `host`'s order with an attempt after `after`: at once if there is
    /// one, else when the deploy changes so that there is, or `None` after
    /// `wait`. Agents poll this so that a deploy reaches them at once.
    pub async fn wait_order(
        &self,
        host: &str,
        after: u64,
        wait: std::time::Duration,
    ) -> Option<SoftwareOrder> {
        let mut changed = self.inner.deploy_changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            changed.borrow_and_update();
            if let Some(o) = self.order_for(host).filter(|o| o.attempt > after) {
                return Some(o);
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .map_or(true, |r| r.is_err())
            {
                return None;
            }
        }
    }

    /// What `host`'s agent should run now, with the release's payload.
    fn order_for(&self, host: &str) -> Option<SoftwareOrder> {
        let (o, reboot_required) = {
            let d = self.deploy_lock();
            let d = d.as_ref()?;
            (d.order(host)?, d.reboot_required)
        };
        let mut order = SoftwareOrder {
            release_id: o.release_id.clone(),
            attempt: o.attempt,
            rollback: o.rollback,
            reboot_required,
            payload: Vec::new(),
            pre_install: None,
            post_install: None,
            health_check: None,
        };
        if !o.release_id.is_empty() {
            let st = self.lock();
            let m = &st.get(&o.release_id)?.manifest;
            order.payload = m
                .payload
                .iter()
                .map(|p| PayloadView {
                    name: p.name.clone(),
                    size: p.size,
                    sha256: p.sha256.clone(),
                })
                .collect();
            order.pre_install = m.hooks.pre_install.clone();
            order.post_install = m.hooks.post_install.clone();
            order.health_check = m.hooks.health_check.clone();
        }
        Some(order)
    }

    /// Logs the hosts that finished and raises or clears their alarm.
    fn report_changes(&self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::HostDeployed { host } | Change::HostRolledBack { host } => {
                    tracing::info!(%host, "host deploy done");
                    self.alarm(
                        ALARM_HOST_FAILED,
                        format!("host={host}"),
                        None,
                        String::new(),
                    );
                }
                Change::HostFailed { host, message }
                | Change::HostRollbackFailed { host, message } => {
                    tracing::warn!(%host, %message, "host deploy failed");
                    self.alarm(
                        ALARM_HOST_FAILED,
                        format!("host={host}"),
                        Some(Severity::Major),
                        format!("Software deploy failed on host {host}: {message}"),
                    );
                }
            }
        }
    }

    /// Fails the hosts whose agents did not report within the deadline,
    /// checking every few seconds.
    pub async fn deadline_loop(self, shutdown: crate::Shutdown) {
        let deadline = i64::try_from(self.inner.host_deadline_secs.saturating_mul(1_000_000))
            .unwrap_or(i64::MAX);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            }
            let now = self.inner.clock.now().micros();
            let late = self
                .deploy_lock()
                .as_ref()
                .is_some_and(|d| !d.late(now, deadline).is_empty());
            if !late {
                continue;
            }
            let _lane = self.inner.lane.lock().await;
            match self.step(|d| Ok(d.overdue(now, deadline))).await {
                Ok((changes, _, _)) => self.report_changes(&changes),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record a host deploy past its deadline")
                }
            }
        }
    }

    /// The payload file with digest `sha256`, from any release.
    pub fn blob(&self, sha256: &str) -> Option<PathBuf> {
        let st = self.lock();
        st.values().find_map(|r| {
            let f = r.manifest.payload.iter().find(|p| p.sha256 == sha256)?;
            Some(
                self.inner
                    .dir
                    .join("releases")
                    .join(&r.manifest.release_id)
                    .join("payload")
                    .join(&f.name),
            )
        })
    }
}

/// `MM.mm.pp` as numbers, for ordering.
fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

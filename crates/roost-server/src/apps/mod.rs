//! The application service: StarlingX's `/v1/apps` life cycle on
//! `roost_apps::Apps`, application packages kept in the data directory,
//! a plan for every host's agent and the agents' reports.
//!
//! The service has the shape of every service (ARCHITECTURE.md):
//!
//! - [`Work`] is pure data: the domain's `Apps`, which package directory
//!   each application version uses, and the packages' specifications.
//! - Every input (a request, an agent's report, new host facts, a tick)
//!   goes through [`AppService::run`] on the request lane, one at a time: the
//!   input is decided on a copy of the work (no I/O), the records and plans
//!   the decisions changed are committed in one transaction, and only then
//!   does the copy replace the work, the new plans become visible to the
//!   agents, and the alarms and events go to FM. A failed commit changes
//!   nothing.
//! - A background loop feeds the domain the hosts' facts (maintenance
//!   states, labels, CPU functions) as they change and the time.

pub mod local;
pub mod packages;
pub mod records;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roost_api::apps::agent::{self as wire, AgentAppsReport};
use roost_api::apps::{App as WireApp, AppReplica, AppReplicaList};
use roost_apps::{
    AgentReport, AppRecord, AppSettings, Apps, Decisions, HostFacts, ReplicaState, ReplicaStatus,
    UploadRequest,
};
use roost_fm::{EventInput, EventState, FmCommand};
use roost_package::Limits;
use roost_store::{AppWrite, Store};
use roost_types::{Clock, Severity, Timestamp};
use tokio::sync::watch;

use self::packages::{PackageDirs, Unpacked};
use self::records::{StoredApp, StoredPlan, StoredRow};
use self::spec::PackageSpec;
use crate::fm_service::{FmService, raise_or_clear};
use crate::hosts::HostService;
use crate::{Error, Shutdown};

/// The event log id of application life-cycle events (Roost's own).
pub const APP_EVENT_LOG_ID: &str = "750.200";

/// Settings of the application service.
#[derive(Debug, Clone)]
pub struct AppsConfig {
    /// `<data>/apps`.
    pub dir: PathBuf,
    /// The largest package accepted (decoded), bytes.
    pub max_package_bytes: u64,
    pub settings: AppSettings,
    /// How often host facts and timers are looked at.
    pub tick: Duration,
    /// This server's own host.
    pub local_host: String,
    /// Applications may run privileged containers (`[apps]
    /// allow_privileged`).
    pub allow_privileged: bool,
}

/// Which package directory each version of an application uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AppPackages {
    active: Option<String>,
    inactive: Option<String>,
}

/// Everything decisions are made on.
#[derive(Clone, Default)]
pub struct Work {
    pub apps: Apps,
    packages_of: BTreeMap<String, AppPackages>,
    /// Specifications of the packages in use, by package key.
    specs: BTreeMap<String, Arc<PackageSpec>>,
}

impl Work {
    /// The specification of an application's active package.
    fn spec_of(&self, app: &str) -> Option<&PackageSpec> {
        let key = self.packages_of.get(app)?.active.as_ref()?;
        self.specs.get(key).map(|s| s.as_ref())
    }

    fn record(&self, name: &str) -> Option<StoredApp> {
        let rec = self.apps.record(name)?;
        let pk = self.packages_of.get(name).cloned().unwrap_or_default();
        Some(StoredApp {
            row: StoredRow::of(&rec.row),
            package: pk.active,
            inactive: rec.inactive.as_ref().map(StoredRow::of),
            inactive_package: rec.inactive.as_ref().and(pk.inactive),
        })
    }

    fn keys_in_use(&self) -> BTreeSet<String> {
        self.packages_of
            .values()
            .flat_map(|p| p.active.iter().chain(p.inactive.iter()))
            .cloned()
            .collect()
    }
}

struct State {
    work: Work,
    /// The plan each host's agent is given, rendered for the wire.
    rendered: BTreeMap<String, Arc<wire::HostPlan>>,
    /// The facts of each host the domain was last given.
    facts: BTreeMap<String, HostFacts>,
}

struct Inner {
    state: Mutex<State>,
    lane: tokio::sync::Mutex<()>,
    store: Arc<Store>,
    fm: FmService,
    clock: Arc<dyn Clock>,
    hosts: HostService,
    dirs: PackageDirs,
    config: AppsConfig,
    /// Bumped whenever a host's plan changes.
    plans: watch::Sender<u64>,
    /// Bumped after every input the domain took (reports included).
    reports: watch::Sender<u64>,
    /// This server's own host.
    local_host: String,
    /// Hosts that cannot run containers, with why (this host's runtime,
    /// see [`local`], or an agent's report).
    runtime_missing: Mutex<BTreeMap<String, String>>,
    /// Where this host's container logs are, once its runtime runs.
    local_logs: std::sync::OnceLock<PathBuf>,
    /// Hosts whose agent runs applications: it asked for its plan (or the
    /// host had a plan when the server started). A host whose agent never
    /// does (a simulated agent, `--no-apps`) takes no replica.
    capable: Mutex<BTreeSet<String>>,
    /// Log requests waiting for each host's agent.
    log_requests: Mutex<BTreeMap<String, Vec<wire::LogRequest>>>,
    log_wake: watch::Sender<u64>,
    /// Where each log request's answer goes, with the host that must send it.
    log_pipes: Mutex<BTreeMap<String, (String, tokio::sync::mpsc::Sender<bytes::Bytes>)>>,
    /// FM commands that failed, retried on the next tick, in order.
    pending_fm: Mutex<Vec<FmCommand>>,
    /// SHA-256 and size of each kept `.tgz` already read, by package key.
    tgz_digests: Mutex<BTreeMap<String, (String, u64)>>,
}

/// The package an application runs now, as a system controller hands it
/// to its subclouds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPackage {
    pub version: String,
    /// The application's state (`applied`, `updating`, ...).
    pub status: String,
    /// `sha256:<hex>` of the `.tgz`.
    pub digest: String,
    pub size: u64,
    pub path: PathBuf,
}

/// Handle to the application service; cheap to clone.
#[derive(Clone)]
pub struct AppService {
    inner: Arc<Inner>,
}

fn domain(e: roost_apps::Error) -> Error {
    Error::Invalid(e.to_string())
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("application not found: {name}"))
}

impl AppService {
    /// Takes back the stored applications and plans and starts the loop.
    pub async fn start(
        store: Arc<Store>,
        fm: FmService,
        clock: Arc<dyn Clock>,
        hosts: HostService,
        config: AppsConfig,
        shutdown: Shutdown,
    ) -> Result<(AppService, tokio::task::JoinHandle<()>), Error> {
        let dirs = PackageDirs::open(config.dir.clone())?;
        let s = AppService {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    work: Work {
                        apps: Apps::new(config.settings.clone()),
                        ..Work::default()
                    },
                    rendered: BTreeMap::new(),
                    facts: BTreeMap::new(),
                }),
                lane: tokio::sync::Mutex::new(()),
                store,
                fm,
                clock,
                hosts,
                dirs,
                local_host: config.local_host.clone(),
                config,
                plans: watch::channel(0).0,
                reports: watch::channel(0).0,
                runtime_missing: Mutex::new(BTreeMap::new()),
                capable: Mutex::new(BTreeSet::new()),
                log_requests: Mutex::new(BTreeMap::new()),
                log_wake: watch::channel(0).0,
                log_pipes: Mutex::new(BTreeMap::new()),
                local_logs: std::sync::OnceLock::new(),
                pending_fm: Mutex::new(Vec::new()),
                tgz_digests: Mutex::default(),
            }),
        };
        s.restore().await?;
        let me = s.clone();
        let task = tokio::spawn(async move { me.run_loop(shutdown).await });
        Ok((s, task))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the work from the store, the package directories and FM.
    async fn restore(&self) -> Result<(), Error> {
        let store = self.inner.store.clone();
        let (apps, plans) = tokio::task::spawn_blocking(move || {
            Ok::<_, roost_store::Error>((store.apps()?, store.app_plans()?))
        })
        .await??;
        let now = self.inner.clock.now();
        let dirs = self.inner.dirs.clone();
        let mut work = Work {
            apps: Apps::new(self.inner.config.settings.clone()),
            ..Work::default()
        };
        let mut stale_plans = Vec::new();
        {
            let load = |key: &Option<String>, work: &mut Work| -> Option<roost_apps::AppSpec> {
                let key = key.as_ref()?;
                let name = key.split('/').next().unwrap_or_default();
                let spec = match dirs.load(key) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(package = %key, error = %e, "cannot read an application package; its workloads are not run");
                        return None;
                    }
                };
                let domain_spec = match spec::app_spec(name, &spec, self.policy()) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(package = %key, error = %e, "an application package is no longer valid; its workloads are not run");
                        return None;
                    }
                };
                work.specs.insert(key.clone(), Arc::new(spec));
                Some(domain_spec)
            };
            for (name, json) in apps {
                let stored: StoredApp = match serde_json::from_str(&json) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(app = %name, error = %e, "unreadable application record");
                        continue;
                    }
                };
                let spec = load(&stored.package, &mut work);
                let inactive_spec = load(&stored.inactive_package, &mut work);
                let record = AppRecord {
                    row: stored.row.domain()?,
                    spec,
                    inactive: stored.inactive.as_ref().map(|r| r.domain()).transpose()?,
                    inactive_spec,
                };
                work.apps.restore_app(record, now).map_err(domain)?;
                work.packages_of.insert(
                    name,
                    AppPackages {
                        active: stored.package,
                        inactive: stored.inactive_package,
                    },
                );
            }
        }
        let facts: BTreeMap<String, HostFacts> = self
            .inner
            .hosts
            .placement_facts()
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        for (host, json) in plans {
            let plan: StoredPlan = match serde_json::from_str(&json) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(%host, error = %e, "unreadable host plan");
                    stale_plans.push(host);
                    continue;
                }
            };
            let Some(f) = facts.get(&host) else {
                stale_plans.push(host);
                continue;
            };
            self.capable().insert(host.clone());
            let domain_plan = plan.domain(|app, workload| {
                work.apps
                    .spec(app)?
                    .workloads
                    .iter()
                    .find(|w| w.name == workload)
                    .cloned()
            });
            work.apps
                .restore_host(f.clone(), domain_plan)
                .map_err(domain)?;
        }
        for f in facts.values() {
            if work.apps.host(&f.name).is_none() {
                // Known from now on; placed on by the first tick.
                let _ = work.apps.host_changed(f.clone(), now);
            }
        }
        let restored_alarms: Vec<(String, String)> = self
            .inner
            .fm
            .read()
            .alarms()
            .filter(|a| a.alarm_id.starts_with("750."))
            .map(|a| (a.alarm_id.clone(), a.entity_instance_id.clone()))
            .collect();
        let mut clears = Vec::new();
        for (id, entity) in restored_alarms {
            if !work.apps.restore_alarm(&id, &entity) {
                clears.push(raise_or_clear(&id, entity, None, String::new()));
            }
        }
        // Every host's plan as the agents get it, before anything new.
        let mut rendered = BTreeMap::new();
        for f in facts.values() {
            if let Some(p) = work.apps.plan(&f.name) {
                rendered.insert(f.name.clone(), Arc::new(self.render(&work, &p)));
            }
        }
        {
            let mut st = self.lock();
            st.work = work;
            st.rendered = rendered;
            st.facts = facts;
        }
        if !stale_plans.is_empty() {
            let writes: Vec<AppWrite> = stale_plans
                .into_iter()
                .map(|host| AppWrite::DeletePlan { host })
                .collect();
            let store = self.inner.store.clone();
            tokio::task::spawn_blocking(move || store.write_apps(&writes)).await??;
        }
        self.submit_fm(clears).await;
        self.run(|w, now| Ok((w.apps.restored(now), ()))).await?;
        Ok(())
    }

    fn render(&self, work: &Work, plan: &roost_apps::HostPlan) -> wire::HostPlan {
        let (rendered, left_out) = spec::render(plan, |app: &str| work.spec_of(app));
        if !left_out.is_empty() {
            tracing::warn!(host = %plan.host, replicas = ?left_out, "replicas without a specification are left out of the plan");
        }
        rendered
    }

    /// Decides `op` on a copy of the work, commits what it changed, then
    /// makes the copy current and carries out the effects.
    async fn run<T>(
        &self,
        op: impl FnOnce(&mut Work, Timestamp) -> Result<(Decisions, T), Error>,
    ) -> Result<T, Error> {
        let _lane = self.inner.lane.lock().await;
        let now = self.inner.clock.now();
        let mut work = self.lock().work.clone();
        let before = work.keys_in_use();
        let (d, out) = op(&mut work, now)?;
        // Packages no version uses any more.
        for name in &d.app_changes {
            match work.apps.record(name) {
                None => {
                    work.packages_of.remove(name);
                }
                Some(rec) if rec.inactive.is_none() => {
                    if let Some(p) = work.packages_of.get_mut(name) {
                        p.inactive = None;
                    }
                }
                Some(_) => {}
            }
        }
        let after = work.keys_in_use();
        let dropped: Vec<String> = before.difference(&after).cloned().collect();
        for k in &dropped {
            work.specs.remove(k);
        }
        let mut writes = Vec::new();
        for name in &d.app_changes {
            match work.record(name) {
                Some(rec) => writes.push(AppWrite::PutApp {
                    name: name.clone(),
                    record: serde_json::to_string(&rec)?,
                }),
                None => writes.push(AppWrite::DeleteApp { name: name.clone() }),
            }
        }
        for p in &d.plans {
            writes.push(AppWrite::PutPlan {
                host: p.host.clone(),
                plan: serde_json::to_string(&StoredPlan::of(p))?,
            });
        }
        if !writes.is_empty() {
            let store = self.inner.store.clone();
            tokio::task::spawn_blocking(move || store.write_apps(&writes))
                .await?
                .map_err(Error::Store)?;
        }
        let rendered: Vec<(String, wire::HostPlan)> = d
            .plans
            .iter()
            .map(|p| (p.host.clone(), self.render(&work, p)))
            .collect();
        {
            let mut st = self.lock();
            st.work = work;
            for (h, p) in rendered {
                st.rendered.insert(h, Arc::new(p));
            }
        }
        if !d.plans.is_empty() {
            self.inner.plans.send_modify(|g| *g += 1);
        }
        self.inner.reports.send_modify(|g| *g += 1);
        for k in dropped {
            self.inner.dirs.remove(&k);
        }
        let mut cmds: Vec<FmCommand> = d
            .alarms
            .iter()
            .map(|a| {
                raise_or_clear(
                    a.alarm_id,
                    a.entity_instance_id.clone(),
                    a.severity,
                    a.reason_text.clone(),
                )
            })
            .collect();
        for e in &d.events {
            tracing::info!(entity = %e.entity_instance_id, "{}", e.reason_text);
            cmds.push(FmCommand::Log(EventInput {
                event_log_id: APP_EVENT_LOG_ID.into(),
                state: EventState::Log,
                entity_instance_id: e.entity_instance_id.clone(),
                entity_type_id: None,
                severity: Severity::NotApplicable,
                reason_text: Some(e.reason_text.clone()),
                event_log_type: None,
                probable_cause: None,
                proposed_repair_action: None,
                service_affecting: None,
                suppression: None,
                timestamp: None,
            }));
        }
        self.submit_fm(cmds).await;
        Ok(out)
    }

    /// Sends commands to FM in order; those that fail wait for the next
    /// tick, with any already waiting.
    async fn submit_fm(&self, cmds: Vec<FmCommand>) {
        let mut queue = std::mem::take(
            &mut *self
                .inner
                .pending_fm
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        queue.extend(cmds);
        let mut left = Vec::new();
        let mut it = queue.into_iter();
        for c in it.by_ref() {
            if let Err(e) = self.inner.fm.submit(c.clone()).await {
                if e.kind() == crate::ErrorKind::Invalid {
                    tracing::warn!(error = %e, "FM refused an application alarm or event");
                    continue;
                }
                tracing::warn!(error = %e, "cannot record an application alarm or event; retrying");
                left.push(c);
                break;
            }
        }
        left.extend(it);
        if !left.is_empty() {
            let mut p = self
                .inner
                .pending_fm
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            left.append(&mut p);
            *p = left;
        }
    }

    async fn run_loop(&self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.inner.config.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "application service step failed; retrying");
            }
        }
    }

    /// One period: new host facts, then the timers.
    pub async fn step(&self) -> Result<(), Error> {
        let facts = self.host_facts();
        let (changed, removed) = {
            let st = self.lock();
            let changed: Vec<HostFacts> = facts
                .values()
                .filter(|f| st.facts.get(&f.name) != Some(f))
                .cloned()
                .collect();
            let removed: Vec<String> = st
                .facts
                .keys()
                .filter(|h| !facts.contains_key(*h))
                .cloned()
                .collect();
            (changed, removed)
        };
        if !changed.is_empty() || !removed.is_empty() {
            self.run(|w, now| {
                let mut d = Decisions::default();
                for f in changed {
                    d.merge(w.apps.host_changed(f, now));
                }
                for h in &removed {
                    d.merge(w.apps.host_removed(h, now));
                }
                Ok((d, ()))
            })
            .await?;
            let mut st = self.lock();
            for h in removed {
                st.rendered.remove(&h);
            }
            st.facts = facts;
        }
        self.run(|w, now| Ok((w.apps.tick(now), ()))).await?;
        self.submit_fm(Vec::new()).await;
        Ok(())
    }

    /// The hosts' facts; a host that cannot run containers is not
    /// schedulable.
    fn host_facts(&self) -> BTreeMap<String, HostFacts> {
        let missing = self.missing().clone();
        let capable = self.capable().clone();
        self.inner
            .hosts
            .placement_facts()
            .into_iter()
            .map(|mut f| {
                if missing.contains_key(&f.name) || !capable.contains(&f.name) {
                    f.schedulable = false;
                }
                (f.name.clone(), f)
            })
            .collect()
    }

    fn capable(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.inner.capable.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn missing(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.inner
            .runtime_missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records why `host` cannot run containers (`None`: it can).
    pub fn set_runtime_missing(&self, host: &str, why: Option<String>) {
        let mut m = self.missing();
        match why {
            Some(w) => {
                if m.get(host) != Some(&w) {
                    tracing::warn!(%host, reason = %w, "this host cannot run application containers");
                }
                m.insert(host.to_string(), w);
            }
            None => {
                m.remove(host);
            }
        }
    }

    // ----- reads -------------------------------------------------------------

    /// Every row (an application and, during an update, its previous
    /// version), as sysinv lists them.
    pub fn list(&self) -> Vec<WireApp> {
        let st = self.lock();
        let mut rows: Vec<WireApp> = st.work.apps.rows().into_iter().map(wire_app).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    pub fn get(&self, name: &str) -> Result<WireApp, Error> {
        let st = self.lock();
        st.work
            .apps
            .get(name)
            .map(wire_app)
            .ok_or_else(|| not_found(name))
    }

    /// Every replica of an application.
    pub fn replicas(&self, name: &str) -> Result<AppReplicaList, Error> {
        let st = self.lock();
        let apps = &st.work.apps;
        let row = apps.get(name).ok_or_else(|| not_found(name))?;
        let kind = |w: &str| {
            apps.spec(name)
                .and_then(|s| s.workloads.iter().find(|x| x.name == w))
                .map(|x| x.kind.as_str())
                .unwrap_or("")
                .to_string()
        };
        let replicas = apps
            .replicas_of(name)
            .map(|r| AppReplica {
                id: r.id.clone(),
                workload: r.workload.clone(),
                kind: kind(&r.workload),
                host: r.host.clone(),
                state: r.state.as_str().to_string(),
                ready: r.ready,
                restarts: r.restarts,
                exit_code: r.exit_code,
                message: r.pending_reason.clone().or_else(|| r.message.clone()),
                exclusive_cpus: r
                    .cpus
                    .iter()
                    .flat_map(|c| match c {
                        roost_apps::CpuAssignment::Exclusive(v) => v.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
                alarmed: r.is_alarmed(),
            })
            .collect();
        Ok(AppReplicaList {
            app: name.to_string(),
            status: row.status.as_str().to_string(),
            replicas,
        })
    }

    /// Where a replica runs and its incarnation, for logs.
    pub fn replica_place(&self, id: &str) -> Option<(Option<String>, u64)> {
        let st = self.lock();
        st.work
            .apps
            .replica(id)
            .map(|r| (r.host.clone(), r.generation))
    }

    /// The ids of an application's replicas.
    pub fn replica_ids(&self, name: &str) -> Vec<String> {
        let st = self.lock();
        st.work
            .apps
            .replicas_of(name)
            .map(|r| r.id.clone())
            .collect()
    }

    /// The package archive of an image, by its manifest digest.
    pub fn image_archive(&self, digest: &str) -> Option<PathBuf> {
        let st = self.lock();
        for (key, spec) in &st.work.specs {
            if let Some(i) = spec.images.values().find(|i| i.digest == digest) {
                return Some(self.inner.dirs.package(key).join(&i.archive));
            }
        }
        None
    }

    /// The plan of `host`: at once when it is newer than `generation`,
    /// else when it changes or after `wait`.
    pub async fn plan(&self, host: &str, generation: u64, wait: Duration) -> wire::HostPlan {
        self.capable().insert(host.to_string());
        let mut rx = self.inner.plans.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let current = self.lock().rendered.get(host).cloned();
            if let Some(p) = &current
                && p.generation > generation
            {
                return p.as_ref().clone();
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.lock()
            .rendered
            .get(host)
            .map(|p| p.as_ref().clone())
            .unwrap_or_else(|| wire::HostPlan {
                host: host.to_string(),
                generation: 0,
                replicas: Vec::new(),
            })
    }

    /// A watch that changes whenever any host's plan does.
    pub fn plan_changes(&self) -> watch::Receiver<u64> {
        self.inner.plans.subscribe()
    }

    /// A watch that changes after anything the service decided (an
    /// upload, apply, update or removal, a replica report).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.reports.subscribe()
    }

    // ----- agents --------------------------------------------------------------

    /// An agent's report of what it runs.
    pub async fn report(&self, host: &str, report: AgentAppsReport) -> Result<(), Error> {
        if report.host != host {
            return Err(Error::Invalid(format!(
                "a report about {} from the agent of {host}",
                report.host
            )));
        }
        self.set_runtime_missing(host, report.unavailable.clone());
        if report.replicas.len() > 10_000 {
            return Err(Error::Invalid("too many replicas in one report".into()));
        }
        let domain_report = AgentReport {
            host: report.host,
            plan_generation: report.plan_generation,
            replicas: report
                .replicas
                .into_iter()
                .map(|r| ReplicaStatus {
                    id: r.id,
                    generation: r.generation,
                    state: match r.state {
                        wire::ReplicaState::Pending => ReplicaState::Pending,
                        wire::ReplicaState::Starting => ReplicaState::Starting,
                        wire::ReplicaState::Running => ReplicaState::Running,
                        wire::ReplicaState::Exited => ReplicaState::Exited,
                        wire::ReplicaState::Failed => ReplicaState::Failed,
                        wire::ReplicaState::Stopped => ReplicaState::Stopped,
                    },
                    ready: r.ready,
                    exit_code: r.exit_code,
                    message: r.message,
                    liveness_failed: r.liveness_failed,
                })
                .collect(),
        };
        self.run(|w, now| Ok((w.apps.agent_reported(domain_report, now), ())))
            .await
    }

    // ----- requests -------------------------------------------------------------

    /// The directory uploads are received in.
    pub fn incoming(&self) -> PathBuf {
        self.inner.dirs.incoming()
    }

    /// What this cloud lets application containers do.
    fn policy(&self) -> spec::Policy {
        spec::Policy {
            allow_privileged: self.inner.config.allow_privileged,
        }
    }

    pub fn max_package_bytes(&self) -> u64 {
        self.inner.config.max_package_bytes
    }

    fn limits(&self) -> Limits {
        Limits {
            max_total_bytes: self.inner.config.max_package_bytes,
            ..Limits::default()
        }
    }

    /// Reads and checks a package file (blocking work on a worker thread).
    async fn unpack(&self, tgz: PathBuf) -> Result<Unpacked, Error> {
        let dirs = self.inner.dirs.clone();
        let limits = self.limits();
        tokio::task::spawn_blocking(move || dirs.unpack(&tgz, &limits)).await?
    }

    /// `POST /v1/apps`: the package is at `tgz` (received from the body, or
    /// a path on this server). The application is answered `uploading`; the
    /// upload completes right after.
    pub async fn upload(
        &self,
        tgz: PathBuf,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<WireApp, Error> {
        let unpacked = self.unpack(tgz.clone()).await?;
        let result = self.upload_unpacked(&unpacked, name, version).await;
        let result = match result {
            Ok((app, key, spec)) => {
                // Kept for a system controller to serve; an upload that
                // cannot keep it still stands.
                let dirs = self.inner.dirs.clone();
                let k = key.clone();
                let kept = tokio::task::spawn_blocking(move || dirs.keep_tgz(&tgz, &k)).await;
                if !matches!(kept, Ok(Ok(()))) {
                    tracing::warn!(app = %app.name, "cannot keep the uploaded package file");
                }
                Ok((app, key, spec))
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&unpacked.staging);
        }
        let (app, key, domain_spec) = result?;
        let me = self.clone();
        let name = app.name.clone();
        tokio::spawn(async move {
            let r = me
                .run(|w, now| {
                    let d = w
                        .apps
                        .upload_succeeded(&name, domain_spec, now)
                        .map_err(domain)?;
                    Ok((d, ()))
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(app = %name, package = %key, error = %e, "cannot complete an upload");
            }
        });
        Ok(app)
    }

    async fn upload_unpacked(
        &self,
        unpacked: &Unpacked,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<(WireApp, String, roost_apps::AppSpec), Error> {
        // metadata.yaml wins over the request's name and version.
        let meta = &unpacked.package.metadata;
        let name = if meta.app_name.is_empty() {
            name.unwrap_or_default()
        } else {
            meta.app_name.clone()
        };
        let version = if meta.app_version.is_empty() {
            version.unwrap_or_default()
        } else {
            meta.app_version.clone()
        };
        let req = UploadRequest {
            manifest_name: format!("{name}-manifests"),
            manifest_file: "manifests".into(),
            name: name.clone(),
            app_version: version.clone(),
        };
        self.lock().work.apps.check_upload(&req).map_err(domain)?;
        let domain_spec = spec::app_spec(&name, &unpacked.spec, self.policy())
            .map_err(|e| Error::Invalid(format!("Application-upload rejected: {e}")))?;
        let key = packages::key(&name, &version, &unpacked.package.digest);
        let dirs = self.inner.dirs.clone();
        let staging = unpacked.staging.clone();
        let k = key.clone();
        tokio::task::spawn_blocking(move || dirs.keep(&staging, &k)).await??;
        let spec = Arc::new(unpacked.spec.clone());
        let k = key.clone();
        let r = self
            .run(move |w, now| {
                let d = w.apps.upload(req, now).map_err(domain)?;
                w.packages_of.insert(
                    name.clone(),
                    AppPackages {
                        active: Some(k.clone()),
                        inactive: None,
                    },
                );
                w.specs.insert(k, spec);
                let app = w
                    .apps
                    .get(&name)
                    .map(wire_app)
                    .ok_or_else(|| not_found(&name))?;
                Ok((d, app))
            })
            .await;
        match r {
            Ok(app) => Ok((app, key, domain_spec)),
            Err(e) => {
                self.inner.dirs.remove(&key);
                Err(e)
            }
        }
    }

    /// The active package of an application, with the `.tgz` kept beside
    /// it (`None` when it was not kept). The file is read once per package
    /// for its digest.
    pub async fn published_package(&self, name: &str) -> Result<Option<PublishedPackage>, Error> {
        let (key, version, status) = {
            let st = self.lock();
            let app = st.work.apps.get(name).ok_or_else(|| not_found(name))?;
            let Some(key) = st.work.packages_of.get(name).and_then(|p| p.active.clone()) else {
                return Ok(None);
            };
            (key, app.app_version.clone(), app.status.to_string())
        };
        let path = self.inner.dirs.tgz(&key);
        if !path.is_file() {
            return Ok(None);
        }
        let known = self
            .inner
            .tgz_digests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let (digest, size) = match known {
            Some(d) => d,
            None => {
                let p = path.clone();
                let d = tokio::task::spawn_blocking(move || roost_pki::file_digest(&p))
                    .await?
                    .map_err(|e| Error::Internal(e.to_string()))?;
                self.inner
                    .tgz_digests
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, d.clone());
                d
            }
        };
        Ok(Some(PublishedPackage {
            version,
            status,
            digest,
            size,
            path,
        }))
    }

    /// `PATCH /v1/apps/{name}?directive=apply`. With no host able to run
    /// containers the apply is refused with the reason.
    pub async fn apply(&self, name: &str) -> Result<WireApp, Error> {
        {
            let st = self.lock();
            st.work.apps.check_apply(name).map_err(domain)?;
            if !st.facts.is_empty() && !st.facts.values().any(|f| f.is_up()) {
                let missing: Vec<String> = self
                    .missing()
                    .iter()
                    .map(|(h, w)| format!("{h}: {w}"))
                    .collect();
                let why = if missing.is_empty() {
                    "no unlocked, available host runs the Roost agent's applications".to_string()
                } else {
                    missing.join("; ")
                };
                return Err(Error::Invalid(format!(
                    "Application-apply rejected: no host can run containers ({why})."
                )));
            }
        }
        self.act(name, |w, now| w.apps.apply(name, now)).await
    }

    /// Where this host's container logs are.
    pub fn set_local_logs(&self, dir: PathBuf) {
        let _ = self.inner.local_logs.set(dir);
    }

    /// Where a container's output is: the replica (its id, or the id's last
    /// part; the first replica by default) and container (the first by
    /// default).
    pub fn logs(
        &self,
        app: &str,
        replica: Option<&str>,
        container: Option<&str>,
    ) -> Result<LogSource, Error> {
        let st = self.lock();
        let apps = &st.work.apps;
        apps.get(app).ok_or_else(|| not_found(app))?;
        let r = match replica {
            Some(want) => apps
                .replicas_of(app)
                .find(|r| r.id == want || r.id.rsplit('/').next() == Some(want))
                .ok_or_else(|| {
                    Error::NotFound(format!("application {app} has no replica {want}"))
                })?,
            None => apps
                .replicas_of(app)
                .next()
                .ok_or_else(|| Error::NotFound(format!("application {app} has no replicas")))?,
        };
        let c = match container {
            Some(c) => r
                .template
                .containers
                .iter()
                .find(|x| x.name == c)
                .ok_or_else(|| Error::NotFound(format!("replica {} has no container {c}", r.id)))?,
            None => r
                .template
                .containers
                .first()
                .ok_or_else(|| Error::NotFound(format!("replica {} has no containers", r.id)))?,
        };
        let host = r
            .host
            .clone()
            .ok_or_else(|| Error::Conflict(format!("replica {} is not placed on a host", r.id)))?;
        let log_id = roost_runtime::runner::Runner::log_id(&r.id, &c.name, r.generation);
        if host != self.inner.local_host {
            return Ok(LogSource::Remote { host, log_id });
        }
        let dir = self.inner.local_logs.get().cloned().ok_or_else(|| {
            Error::Conflict(format!(
                "{} runs no containers{}",
                self.inner.local_host,
                self.missing()
                    .get(&self.inner.local_host)
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            ))
        })?;
        Ok(LogSource::Local { dir, log_id })
    }

    /// Asks the agent of `host` for a container's output; the answer's
    /// chunks come on the receiver (closed when the agent ends it).
    pub fn request_logs(
        &self,
        host: &str,
        log_id: String,
        tail: Option<u64>,
        follow: bool,
    ) -> (String, tokio::sync::mpsc::Receiver<bytes::Bytes>) {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        self.pipes().insert(id.clone(), (host.to_string(), tx));
        self.inner
            .log_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host.to_string())
            .or_default()
            .push(wire::LogRequest {
                id: id.clone(),
                log_id,
                tail,
                follow,
            });
        self.inner.log_wake.send_modify(|g| *g += 1);
        (id, rx)
    }

    /// Forgets a log request (the client left or the agent never answered).
    pub fn drop_log_request(&self, id: &str) {
        self.pipes().remove(id);
        for q in self
            .inner
            .log_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            q.retain(|r| r.id != id);
        }
    }

    fn pipes(
        &self,
    ) -> MutexGuard<'_, BTreeMap<String, (String, tokio::sync::mpsc::Sender<bytes::Bytes>)>> {
        self.inner
            .log_pipes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The log requests for `host`'s agent, waiting up to `wait` for one.
    pub async fn log_requests(&self, host: &str, wait: Duration) -> Vec<wire::LogRequest> {
        let mut rx = self.inner.log_wake.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let taken = self
                .inner
                .log_requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(host)
                .unwrap_or_default();
            if !taken.is_empty() {
                return taken;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Vec::new() },
                _ = tokio::time::sleep_until(deadline) => return Vec::new(),
            }
        }
    }

    /// A piece of the answer to log request `id` from `host`'s agent;
    /// `end` closes it. NotFound when nobody waits for it any more.
    pub async fn log_chunk(
        &self,
        host: &str,
        id: &str,
        data: bytes::Bytes,
        end: bool,
    ) -> Result<(), Error> {
        let gone = || Error::NotFound(format!("no client waits for log request {id}"));
        let tx = match self.pipes().get(id) {
            Some((h, tx)) if h == host => tx.clone(),
            _ => return Err(gone()),
        };
        if !data.is_empty() && tx.send(data).await.is_err() {
            self.pipes().remove(id);
            return Err(gone());
        }
        if end {
            self.pipes().remove(id);
        }
        Ok(())
    }

    /// `PATCH /v1/apps/{name}?directive=remove[&force=True]`.
    pub async fn remove(&self, name: &str, force: bool) -> Result<WireApp, Error> {
        self.act(name, |w, now| w.apps.remove(name, force, now))
            .await
    }

    /// `PATCH /v1/apps/{name}?directive=abort`.
    pub async fn abort(&self, name: &str) -> Result<WireApp, Error> {
        self.act(name, |w, now| w.apps.abort(name, now)).await
    }

    async fn act(
        &self,
        name: &str,
        op: impl FnOnce(&mut Work, Timestamp) -> Result<Decisions, roost_apps::Error>,
    ) -> Result<WireApp, Error> {
        self.run(|w, now| {
            let d = op(w, now).map_err(domain)?;
            let app = w
                .apps
                .get(name)
                .map(wire_app)
                .ok_or_else(|| not_found(name))?;
            Ok((d, app))
        })
        .await
    }

    /// `DELETE /v1/apps/{name}`.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        self.run(|w, now| Ok((w.apps.delete(name, now).map_err(domain)?, ())))
            .await
    }

    /// `POST /v1/apps/update`: the new version's package is at `tgz`.
    pub async fn update(
        &self,
        tgz: PathBuf,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<WireApp, Error> {
        let unpacked = self.unpack(tgz.clone()).await?;
        // The package's key, as `update_unpacked` names it.
        let meta = &unpacked.package.metadata;
        let pick = |m: &str, r: &Option<String>| {
            if m.is_empty() {
                r.clone().unwrap_or_default()
            } else {
                m.to_string()
            }
        };
        let key = packages::key(
            &pick(&meta.app_name, &name),
            &pick(&meta.app_version, &version),
            &unpacked.package.digest,
        );
        let result = self.update_unpacked(&unpacked, name, version).await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&unpacked.staging);
        } else {
            // Kept for a system controller to serve, as at upload.
            let dirs = self.inner.dirs.clone();
            let kept = tokio::task::spawn_blocking(move || dirs.keep_tgz(&tgz, &key)).await;
            if !matches!(kept, Ok(Ok(()))) {
                tracing::warn!("cannot keep the updated package file");
            }
        }
        result
    }

    async fn update_unpacked(
        &self,
        unpacked: &Unpacked,
        name: Option<String>,
        version: Option<String>,
    ) -> Result<WireApp, Error> {
        let meta = &unpacked.package.metadata;
        let name = Some(meta.app_name.clone())
            .filter(|n| !n.is_empty())
            .or(name)
            .unwrap_or_default();
        let version = Some(meta.app_version.clone())
            .filter(|v| !v.is_empty())
            .or(version)
            .unwrap_or_default();
        let req = UploadRequest {
            manifest_name: format!("{name}-manifests"),
            manifest_file: "manifests".into(),
            name: name.clone(),
            app_version: version.clone(),
        };
        let domain_spec = spec::app_spec(&name, &unpacked.spec, self.policy())
            .map_err(|e| Error::Invalid(format!("Application-update rejected: {e}")))?;
        self.lock()
            .work
            .apps
            .check_update(&req, &domain_spec)
            .map_err(domain)?;
        let key = packages::key(&name, &version, &unpacked.package.digest);
        let dirs = self.inner.dirs.clone();
        let staging = unpacked.staging.clone();
        let k = key.clone();
        tokio::task::spawn_blocking(move || dirs.keep(&staging, &k)).await??;
        let spec = Arc::new(unpacked.spec.clone());
        let k = key.clone();
        let r = self
            .run(move |w, now| {
                let d = w.apps.update(req, domain_spec, now).map_err(domain)?;
                let pk = w.packages_of.entry(name.clone()).or_default();
                pk.inactive = pk.active.take();
                pk.active = Some(k.clone());
                w.specs.insert(k, spec);
                let app = w
                    .apps
                    .get(&name)
                    .map(wire_app)
                    .ok_or_else(|| not_found(&name))?;
                Ok((d, app))
            })
            .await;
        if r.is_err() {
            self.inner.dirs.remove(&key);
        }
        r
    }
}

/// How long a lock waits for the host's applications to move off.
pub const LOCK_DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

impl AppService {
    /// Moves a host's replicas elsewhere and waits until its agent has
    /// stopped them (or the host is failed): what a lock waits for. On
    /// timeout the host takes replicas again and the lock is refused.
    pub async fn drain_for_lock(&self, host: &str, timeout: Duration) -> Result<(), Error> {
        let now = self.inner.clock.now();
        match self.lock().work.apps.plan_lock(host, now) {
            None => return Ok(()),
            Some(p) if p.ready => return Ok(()),
            Some(_) => {}
        }
        let mut changes = self.inner.reports.subscribe();
        self.run(|w, now| Ok((w.apps.drain(host, now), ()))).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = self.inner.clock.now();
            let plan = self.lock().work.apps.plan_lock(host, now);
            match plan {
                None => return Ok(()),
                Some(p) if p.ready => {
                    tracing::info!(%host, "applications moved off for the lock");
                    return Ok(());
                }
                Some(p) => {
                    tokio::select! {
                        r = changes.changed() => { if r.is_err() { return Err(Error::Stopped("the application service is stopping")); } }
                        _ = tokio::time::sleep_until(deadline) => {
                            let _ = self.run(|w, now| Ok((w.apps.cancel_drain(host, now), ()))).await;
                            let left: Vec<String> = p.moves.iter().map(|(id, _)| id.clone()).chain(p.stops.iter().cloned()).collect();
                            return Err(Error::Conflict(format!(
                                "cannot lock {host}: its applications did not stop there within {} s{}; force-lock to lock anyway",
                                timeout.as_secs(),
                                if left.is_empty() { String::new() } else { format!(" ({})", left.join(", ")) }
                            )));
                        }
                    }
                }
            }
        }
    }
}

impl AppService {
    /// The gate the host service asks before a lock. It holds the service
    /// weakly: the host service must not keep it (and FM) alive at shutdown.
    pub fn lock_gate(&self) -> Arc<dyn crate::hosts::LockGate> {
        Arc::new(Gate(Arc::downgrade(&self.inner)))
    }
}

struct Gate(std::sync::Weak<Inner>);

impl crate::hosts::LockGate for Gate {
    fn before_lock<'a>(
        &'a self,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move {
            match self.0.upgrade() {
                Some(inner) => {
                    AppService { inner }
                        .drain_for_lock(host, LOCK_DRAIN_TIMEOUT)
                        .await
                }
                None => Ok(()),
            }
        })
    }
}

/// Where a container's output is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// On this host, in `dir`.
    Local { dir: PathBuf, log_id: String },
    /// On another host: ask its agent.
    Remote { host: String, log_id: String },
}

fn wire_app(a: &roost_apps::App) -> WireApp {
    WireApp {
        name: a.name.clone(),
        app_version: a.app_version.clone(),
        manifest_name: a.manifest_name.clone(),
        manifest_file: a.manifest_file.clone(),
        status: a.status.as_str().to_string(),
        progress: a.progress.clone(),
        active: a.active,
        created_at: Some(a.created_at.to_string()),
        updated_at: a.updated_at.map(|t| t.to_string()),
    }
}

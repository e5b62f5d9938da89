//! All applications of a site, their replicas, placements and per-host
//! plans.
//!
//! [`Apps`] is fed operations (upload, apply, remove, abort, delete,
//! update), facts about hosts ([`Apps::host_changed`]), what agents report
//! ([`Apps::agent_reported`]) and the passing of time ([`Apps::tick`]),
//! each with the current time, and returns [`Decisions`]: the host plans
//! that changed, alarms to raise or clear, events for the event log, and
//! the applications whose record changed. It never sleeps and never does
//! I/O. Refusals come from the `check_` forms, which change nothing; `Apps`
//! is `Clone`, so a service can also decide on a copy, commit, and then
//! keep the copy.
//!
//! Rules beyond the life cycle (see [`crate::lifecycle`]):
//! - Replicas of an application exist while it is `applying`, `applied`,
//!   `apply-failed` or `updating`; each is placed on at most one host at any
//!   time (the plan of one host only), or pending with a reason.
//! - Every change to the replicas of a host's plan (one placed, taken away,
//!   or restarted as a new incarnation) bumps the plan's generation once
//!   per decision. A replica's `generation` is its incarnation, unique
//!   across the site and across restarts of the server (never below the
//!   time in microseconds when it was decided); a report about another
//!   incarnation, or from a host that does not hold the replica, is stale
//!   and ignored.
//! - Failover: a host that fails, is locked, stops being schedulable or is
//!   drained loses its replicas in the decision that learns it; they are
//!   placed elsewhere in the same decision (DaemonSet replicas are simply
//!   dropped). Its plan becomes empty under a new generation.
//! - Fencing, in three parts. (1) A host that stops being up is fenced: it
//!   is given no replica until its agent has reported a plan generation at
//!   least that of its latest plan (the emptied one), i.e. until it has
//!   stopped everything it no longer owns, including replicas taken from
//!   it by a remove it never acknowledged. (2) Its agent stops its replicas
//!   on its own when it has not reached the server for a deadline shorter
//!   than maintenance's failure threshold (the agent's part, not decided
//!   here), so by the time a replica is started elsewhere its old copy is
//!   already stopped. (3) No replica is moved back to a returning host:
//!   only pending replicas (running nowhere) are placed on it.
//! - A drain (before a lock) is make-before-break: the replicas start on
//!   their new hosts while the drained host's agent stops the old copies,
//!   as a rolling move would; the lock waits until the drained host
//!   acknowledged its empty plan ([`Apps::plan_lock`]).
//! - Restarts: the agent runs an incarnation at most once; to restart a
//!   replica the plan carries a new incarnation. An exit the restart policy
//!   restarts waits `backoff_initial_ms` doubled for each consecutive exit,
//!   at most `backoff_max_secs`. After `failing_alarm_after` consecutive
//!   exits, alarm 750.101 is raised for the replica; running for
//!   `stable_after_secs` resets the count and clears the alarm. A liveness
//!   failure is an exit that failed.
//! - Apply completes when every replica of the application runs (and is
//!   ready, when a container has a readiness probe; a replica that finished
//!   cleanly under `OnFailure`/`Never` counts); after `apply_timeout_secs` it
//!   fails (750.002). Remove completes when every host that held a replica
//!   acknowledged the plan without it (or is down, hence fenced); after
//!   `remove_timeout_secs` it fails (750.003), or ends in `uploaded` when
//!   forced.
//! - A restart of the server moves and restarts nothing: the plans last
//!   sent are the placements ([`Apps::restore_host`]); what a replica was
//!   doing (exits, back-off) is learnt again from the agents' reports.

use std::collections::{BTreeMap, BTreeSet};

use roost_types::{Severity, Timestamp};

use crate::lifecycle::{
    ALARM_APPLY_FAILED, ALARM_APPLY_IN_PROGRESS, ALARM_REMOVE_FAILED, ALARM_REPLICA_FAILING,
    ALARM_UPDATE_IN_PROGRESS, ALARM_UPLOAD_FAILED, AlarmDecision, AppStatus, Error, Op,
    PROGRESS_ABORTED_BY_USER, PROGRESS_APPLY_MANIFEST, PROGRESS_COMPLETED,
    PROGRESS_DELETE_MANIFEST, PROGRESS_EXTRACT, PROGRESS_IMAGES, app_entity, check_transition,
    failed_progress, failure_alarm, replica_entity,
};
use crate::scheduler::{CpuAssignment, HostFacts, Misfit, Usage, assign_cpus, fit, pending_reason};
use crate::workload::{
    AppSpec, Container, PodTemplate, RestartPolicy, WorkloadKind, daemon_replica_id, fixed_replicas,
};

/// Where containers without exclusive CPUs run: the application pool; on
/// a host whose every non-platform CPU is isolated, the platform CPUs (an
/// isolated CPU is only ever its owner's); `None` (no pinning) on a host
/// with no CPU functions at all.
fn shared_pool(f: &HostFacts) -> Option<Vec<u32>> {
    if !f.application_cpus.is_empty() {
        Some(f.application_cpus.clone())
    } else if !f.isolated_cpus.is_empty() && !f.platform_cpus.is_empty() {
        Some(f.platform_cpus.clone())
    } else {
        None
    }
}

/// Timers of the application runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    pub apply_timeout_secs: i64,
    pub remove_timeout_secs: i64,
    pub backoff_initial_ms: i64,
    pub backoff_max_secs: i64,
    /// Consecutive exits after which 750.101 is raised.
    pub failing_alarm_after: u32,
    /// Running this long resets the exit count (and clears 750.101).
    pub stable_after_secs: i64,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            apply_timeout_secs: 300,
            remove_timeout_secs: 120,
            backoff_initial_ms: 1000,
            backoff_max_secs: 300,
            failing_alarm_after: 5,
            stable_after_secs: 10,
        }
    }
}

impl AppSettings {
    /// The wait before the restart that follows the `n`th consecutive exit
    /// (n >= 1), in microseconds.
    pub fn backoff_micros(&self, n: u32) -> i64 {
        let max = self.backoff_max_secs.saturating_mul(1_000_000);
        let first = self.backoff_initial_ms.saturating_mul(1000);
        let shift = n.saturating_sub(1).min(40);
        first.saturating_mul(1i64 << shift).min(max)
    }
}

/// One application row, as sysinv shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub app_version: String,
    pub manifest_name: String,
    pub manifest_file: String,
    pub status: AppStatus,
    pub progress: Option<String>,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// What an upload or an update names (the package is read by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub name: String,
    pub app_version: String,
    pub manifest_name: String,
    pub manifest_file: String,
}

/// A replica's state, as agents report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    Pending,
    Starting,
    Running,
    Exited,
    Failed,
    Stopped,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Pending => "pending",
            ReplicaState::Starting => "starting",
            ReplicaState::Running => "running",
            ReplicaState::Exited => "exited",
            ReplicaState::Failed => "failed",
            ReplicaState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<ReplicaState> {
        [
            ReplicaState::Pending,
            ReplicaState::Starting,
            ReplicaState::Running,
            ReplicaState::Exited,
            ReplicaState::Failed,
            ReplicaState::Stopped,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    fn ended(self) -> bool {
        matches!(
            self,
            ReplicaState::Exited | ReplicaState::Failed | ReplicaState::Stopped
        )
    }
}

/// One replica as an agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub id: String,
    /// The incarnation the agent runs.
    pub generation: u64,
    pub state: ReplicaState,
    pub ready: bool,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// The agent stopped it because its liveness probe failed.
    pub liveness_failed: bool,
}

impl ReplicaStatus {
    pub fn new(id: &str, generation: u64, state: ReplicaState) -> ReplicaStatus {
        ReplicaStatus {
            id: id.to_string(),
            generation,
            state,
            ready: false,
            exit_code: None,
            message: None,
            liveness_failed: false,
        }
    }
}

/// An agent's report: the plan generation it runs and its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReport {
    pub host: String,
    pub plan_generation: u64,
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica: where it is placed, which incarnation, how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub app: String,
    pub workload: String,
    pub template: PodTemplate,
    /// A DaemonSet's replica belongs to this host.
    pub daemon_host: Option<String>,
    pub host: Option<String>,
    /// The incarnation; 0 while never placed.
    pub generation: u64,
    /// Per container, in template order.
    pub cpus: Vec<CpuAssignment>,
    pub state: ReplicaState,
    pub ready: bool,
    /// Restarts decided so far.
    pub restarts: u32,
    /// Consecutive exits (reset by running `stable_after_secs`).
    pub exits: u32,
    /// When the next incarnation is due (backing off).
    pub restart_at: Option<Timestamp>,
    pub running_since: Option<Timestamp>,
    pub pending_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// Ended for good (restart policy): cleanly when `succeeded`.
    pub finished: bool,
    pub succeeded: bool,
    alarmed: bool,
}

impl Replica {
    fn new(id: String, app: &str, workload: &str, template: PodTemplate) -> Replica {
        Replica {
            id,
            app: app.to_string(),
            workload: workload.to_string(),
            template,
            daemon_host: None,
            host: None,
            generation: 0,
            cpus: Vec::new(),
            state: ReplicaState::Pending,
            ready: false,
            restarts: 0,
            exits: 0,
            restart_at: None,
            running_since: None,
            pending_reason: None,
            exit_code: None,
            message: None,
            finished: false,
            succeeded: false,
            alarmed: false,
        }
    }

    /// Running (and ready if it has a readiness probe), or finished cleanly.
    pub fn is_up(&self) -> bool {
        (self.state == ReplicaState::Running && (self.ready || !self.template.has_readiness()))
            || (self.finished && self.succeeded)
    }

    /// 750.101 is raised for it.
    pub fn is_alarmed(&self) -> bool {
        self.alarmed
    }
}

/// One container of a planned replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedContainer {
    pub container: Container,
    /// `None`: no pinning (the host has no application pool configured).
    pub cpuset: Option<Vec<u32>>,
    /// The cpuset is this container's alone.
    pub exclusive: bool,
}

/// One replica of a host's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReplica {
    pub id: String,
    pub app: String,
    pub workload: String,
    pub generation: u64,
    pub restart_policy: RestartPolicy,
    pub host_network: bool,
    pub containers: Vec<PlannedContainer>,
}

/// What a host's agent must run, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    pub host: String,
    pub generation: u64,
    pub replicas: Vec<PlannedReplica>,
}

/// A line for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub entity_instance_id: String,
    pub reason_text: String,
}

/// What an input caused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Plans that changed, by host name.
    pub plans: Vec<HostPlan>,
    pub alarms: Vec<AlarmDecision>,
    pub events: Vec<AppEvent>,
    /// Applications whose record changed (to persist and publish).
    pub app_changes: Vec<String>,
}

impl Decisions {
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
            && self.alarms.is_empty()
            && self.events.is_empty()
            && self.app_changes.is_empty()
    }

    /// Appends `other`; a later plan of a host replaces an earlier one.
    pub fn merge(&mut self, other: Decisions) {
        for p in other.plans {
            self.plans.retain(|q| q.host != p.host);
            self.plans.push(p);
        }
        self.alarms.extend(other.alarms);
        self.events.extend(other.events);
        for a in other.app_changes {
            if !self.app_changes.contains(&a) {
                self.app_changes.push(a);
            }
        }
    }

    /// The plan of `host` in these decisions.
    pub fn plan(&self, host: &str) -> Option<&HostPlan> {
        self.plans.iter().find(|p| p.host == host)
    }
}

/// What to persist of an application, and what [`Apps::restore_app`]
/// takes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub row: App,
    pub spec: Option<AppSpec>,
    pub inactive: Option<App>,
    pub inactive_spec: Option<AppSpec>,
}

/// Whether a host can be locked now, or what must move first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPlan {
    pub host: String,
    /// Nothing runs there any more (its agent acknowledged the empty plan,
    /// or it is failed): lock now.
    pub ready: bool,
    /// Replicas to move first, with the host each would go to (`None`:
    /// nowhere, it would stay pending).
    pub moves: Vec<(String, Option<String>)>,
    /// DaemonSet replicas that simply stop.
    pub stops: Vec<String>,
}

#[derive(Debug, Clone)]
struct HostEntry {
    facts: HostFacts,
    generation: u64,
    acked: u64,
    /// Takes no replica until `acked >= fence`.
    fence: u64,
    draining: bool,
    replicas: BTreeSet<String>,
    /// What `replicas` use, kept as they come and go.
    usage: Usage,
    /// How many replicas of each (application, workload) it holds.
    counts: BTreeMap<(String, String), usize>,
}

impl HostEntry {
    fn new(facts: HostFacts, generation: u64) -> HostEntry {
        HostEntry {
            facts,
            generation,
            acked: 0,
            fence: 0,
            draining: false,
            replicas: BTreeSet::new(),
            usage: Usage::default(),
            counts: BTreeMap::new(),
        }
    }

    fn hold(&mut self, r: &Replica) {
        self.replicas.insert(r.id.clone());
        self.usage.add(&r.template, &r.cpus);
        *self
            .counts
            .entry((r.app.clone(), r.workload.clone()))
            .or_default() += 1;
    }

    fn release(&mut self, r: &Replica) {
        if !self.replicas.remove(&r.id) {
            return;
        }
        self.usage.sub(&r.template, &r.cpus);
        let key = (r.app.clone(), r.workload.clone());
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }

    fn count(&self, app: &str, workload: &str) -> usize {
        self.counts
            .get(&(app.to_string(), workload.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn eligible(&self) -> bool {
        self.facts.is_up() && !self.draining && self.acked >= self.fence
    }
}

#[derive(Debug, Clone)]
struct AppEntry {
    row: App,
    spec: Option<AppSpec>,
    /// The previous version during (and after a failed) update.
    inactive: Option<App>,
    inactive_spec: Option<AppSpec>,
    deadline: Option<Timestamp>,
    force: bool,
    /// Remove: hosts and the plan generation each must acknowledge.
    releasing: BTreeMap<String, u64>,
}

/// Work in progress of one input.
#[derive(Default)]
struct Ctx {
    dirty: BTreeSet<String>,
    d: Decisions,
}

impl Ctx {
    fn event(&mut self, entity: String, text: String) {
        self.d.events.push(AppEvent {
            entity_instance_id: entity,
            reason_text: text,
        });
    }

    fn changed(&mut self, app: &str) {
        if !self.d.app_changes.iter().any(|a| a == app) {
            self.d.app_changes.push(app.to_string());
        }
    }
}

/// Every application of a site, with its replicas and the hosts' plans.
#[derive(Debug, Clone, Default)]
pub struct Apps {
    settings: AppSettings,
    apps: BTreeMap<String, AppEntry>,
    hosts: BTreeMap<String, HostEntry>,
    replicas: BTreeMap<String, Replica>,
    next_generation: u64,
    alarms: BTreeSet<(&'static str, String)>,
    stale_reports: u64,
    /// Hosts whose restored plan lost replicas (sent again by `restored`).
    restored_dirty: BTreeSet<String>,
}

impl Apps {
    pub fn new(settings: AppSettings) -> Apps {
        Apps {
            settings,
            ..Apps::default()
        }
    }

    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    // ----- queries ---------------------------------------------------------

    /// An application's current row.
    pub fn get(&self, name: &str) -> Option<&App> {
        self.apps.get(name).map(|e| &e.row)
    }

    /// Every row (current and inactive), by name.
    pub fn rows(&self) -> Vec<&App> {
        let mut v = Vec::new();
        for e in self.apps.values() {
            v.push(&e.row);
            if let Some(i) = &e.inactive {
                v.push(i);
            }
        }
        v
    }

    /// The inactive previous version of an application, if any.
    pub fn inactive(&self, name: &str) -> Option<&App> {
        self.apps.get(name).and_then(|e| e.inactive.as_ref())
    }

    /// An application's workloads (once uploaded).
    pub fn spec(&self, name: &str) -> Option<&AppSpec> {
        self.apps.get(name).and_then(|e| e.spec.as_ref())
    }

    pub fn replica(&self, id: &str) -> Option<&Replica> {
        self.replicas.get(id)
    }

    /// An application's replicas, by id.
    pub fn replicas_of<'a>(&'a self, app: &'a str) -> impl Iterator<Item = &'a Replica> + 'a {
        self.replicas.values().filter(move |r| r.app == app)
    }

    /// Every replica, by id.
    pub fn replicas(&self) -> impl Iterator<Item = &Replica> + '_ {
        self.replicas.values()
    }

    /// The host's facts, as last given.
    pub fn host(&self, name: &str) -> Option<&HostFacts> {
        self.hosts.get(name).map(|h| &h.facts)
    }

    /// Whether a host is fenced: it must acknowledge its emptied plan
    /// before it is given replicas.
    pub fn is_fenced(&self, name: &str) -> bool {
        self.hosts.get(name).is_some_and(|h| h.acked < h.fence)
    }

    /// What a host's agent must run now.
    pub fn plan(&self, host: &str) -> Option<HostPlan> {
        self.hosts.get(host).map(|h| self.build_plan(h))
    }

    /// What the replicas placed on a host use.
    pub fn usage(&self, host: &str) -> Usage {
        self.hosts
            .get(host)
            .map(|h| h.usage.clone())
            .unwrap_or_default()
    }

    /// Reports ignored because they were about another incarnation or came
    /// from a host that does not hold the replica.
    pub fn stale_reports(&self) -> u64 {
        self.stale_reports
    }

    fn build_plan(&self, h: &HostEntry) -> HostPlan {
        let replicas = h
            .replicas
            .iter()
            .filter_map(|id| self.replicas.get(id))
            .map(|r| PlannedReplica {
                id: r.id.clone(),
                app: r.app.clone(),
                workload: r.workload.clone(),
                generation: r.generation,
                restart_policy: r.template.restart_policy,
                host_network: r.template.host_network,
                containers: r
                    .template
                    .containers
                    .iter()
                    .zip(r.cpus.iter())
                    .map(|(c, a)| {
                        let (cpuset, exclusive) = match a {
                            CpuAssignment::Exclusive(v) => (Some(v.clone()), true),
                            CpuAssignment::Shared => (shared_pool(&h.facts), false),
                        };
                        PlannedContainer {
                            container: c.clone(),
                            cpuset,
                            exclusive,
                        }
                    })
                    .collect(),
            })
            .collect();
        HostPlan {
            host: h.facts.name.clone(),
            generation: h.generation,
            replicas,
        }
    }

    // ----- bookkeeping -----------------------------------------------------

    fn finish(&mut self, mut ctx: Ctx) -> Decisions {
        for name in std::mem::take(&mut ctx.dirty) {
            if let Some(h) = self.hosts.get(&name) {
                let p = self.build_plan(h);
                ctx.d.plans.push(p);
            }
        }
        ctx.d
    }

    /// A new incarnation number: larger than any given before, and than the
    /// time in microseconds, so that numbers given before a restart of the
    /// server (even of replicas no plan holds any more) are not given again.
    fn new_generation(&mut self, now: Timestamp) -> u64 {
        self.next_generation = (self.next_generation + 1).max(now.0.max(0) as u64);
        self.next_generation
    }

    /// Marks a host's plan changed: its generation moves once per decision.
    fn touch_host(&mut self, host: &str, ctx: &mut Ctx) {
        if ctx.dirty.insert(host.to_string())
            && let Some(h) = self.hosts.get_mut(host)
        {
            h.generation += 1;
        }
    }

    fn raise(
        &mut self,
        id: &'static str,
        entity: String,
        sev: Severity,
        reason: String,
        ctx: &mut Ctx,
    ) {
        self.alarms.insert((id, entity.clone()));
        ctx.d.alarms.push(AlarmDecision {
            alarm_id: id,
            entity_instance_id: entity,
            severity: Some(sev),
            reason_text: reason,
        });
    }

    fn clear(&mut self, id: &'static str, entity: String, ctx: &mut Ctx) {
        if self.alarms.remove(&(id, entity.clone())) {
            ctx.d.alarms.push(AlarmDecision {
                alarm_id: id,
                entity_instance_id: entity,
                severity: None,
                reason_text: String::new(),
            });
        }
    }

    /// Clears 750.001/002/003 of an application (an operation starts anew).
    fn clear_app_alarms(&mut self, app: &str, ctx: &mut Ctx) {
        for id in [
            ALARM_UPLOAD_FAILED,
            ALARM_APPLY_FAILED,
            ALARM_REMOVE_FAILED,
            ALARM_APPLY_IN_PROGRESS,
            ALARM_UPDATE_IN_PROGRESS,
        ] {
            self.clear(id, app_entity(app), ctx);
        }
    }

    /// 750.004 while applying, 750.005 while updating.
    fn raise_in_progress(&mut self, app: &str, update: bool, ctx: &mut Ctx) {
        let (id, what) = if update {
            (ALARM_UPDATE_IN_PROGRESS, "Update")
        } else {
            (ALARM_APPLY_IN_PROGRESS, "Apply")
        };
        self.raise(
            id,
            app_entity(app),
            Severity::Warning,
            format!("Application {what} In Progress: {app}"),
            ctx,
        );
    }

    fn clear_in_progress(&mut self, app: &str, ctx: &mut Ctx) {
        self.clear(ALARM_APPLY_IN_PROGRESS, app_entity(app), ctx);
        self.clear(ALARM_UPDATE_IN_PROGRESS, app_entity(app), ctx);
    }

    fn set_status(
        &mut self,
        app: &str,
        status: AppStatus,
        progress: Option<String>,
        now: Timestamp,
        ctx: &mut Ctx,
    ) {
        if let Some(e) = self.apps.get_mut(app) {
            e.row.status = status;
            e.row.progress = progress;
            e.row.updated_at = Some(now);
            ctx.changed(app);
        }
    }

    fn fail(
        &mut self,
        app: &str,
        op: Op,
        error: &str,
        progress: String,
        now: Timestamp,
        ctx: &mut Ctx,
    ) {
        let status = match op {
            Op::Upload => AppStatus::UploadFailed,
            Op::Remove => AppStatus::RemoveFailed,
            _ => AppStatus::ApplyFailed,
        };
        self.set_status(app, status, Some(progress), now, ctx);
        if let Some(e) = self.apps.get_mut(app) {
            e.deadline = None;
        }
        self.clear_in_progress(app, ctx);
        let (id, sev, reason) = failure_alarm(op, app, error);
        self.raise(id, app_entity(app), sev, reason.clone(), ctx);
        ctx.event(app_entity(app), reason);
    }

    // ----- upload ----------------------------------------------------------

    /// Whether [`Apps::upload`] would accept this name. Changes nothing.
    pub fn check_upload(&self, req: &UploadRequest) -> Result<(), Error> {
        if req.name.is_empty() || req.app_version.is_empty() {
            return Err(Error::rejected(
                Op::Upload,
                "application name and version must not be empty.",
            ));
        }
        if self.apps.contains_key(&req.name) {
            return Err(Error::rejected(
                Op::Upload,
                format!("application {} already exists.", req.name),
            ));
        }
        // Replica ids and alarm entities are built from the name.
        if req
            .name
            .chars()
            .any(|c| c == '/' || c == '=' || c == '.' || c.is_whitespace() || c.is_control())
        {
            return Err(Error::rejected(
                Op::Upload,
                format!(
                    "application name {:?} may not contain '/', '=', '.' or white space.",
                    req.name
                ),
            ));
        }
        Ok(())
    }

    /// A package arrived: the application is `uploading` while its tarball
    /// is read.
    pub fn upload(&mut self, req: UploadRequest, now: Timestamp) -> Result<Decisions, Error> {
        self.check_upload(&req)?;
        let mut ctx = Ctx::default();
        let name = req.name.clone();
        self.apps.insert(
            name.clone(),
            AppEntry {
                row: App {
                    name: req.name,
                    app_version: req.app_version,
                    manifest_name: req.manifest_name,
                    manifest_file: req.manifest_file,
                    status: AppStatus::Uploading,
                    progress: Some(PROGRESS_EXTRACT.to_string()),
                    active: false,
                    created_at: now,
                    updated_at: None,
                },
                spec: None,
                inactive: None,
                inactive_spec: None,
                deadline: None,
                force: false,
                releasing: BTreeMap::new(),
            },
        );
        ctx.changed(&name);
        ctx.event(
            app_entity(&name),
            format!("Application {name} upload started"),
        );
        Ok(self.finish(ctx))
    }

    fn check_uploading(&self, name: &str) -> Result<(), Error> {
        let e = self.apps.get(name).ok_or(Error::not_found(Op::Upload))?;
        if e.row.status != AppStatus::Uploading {
            return Err(Error::not_allowed(Op::Upload, e.row.status));
        }
        Ok(())
    }

    /// A step of reading the package (e.g. [`crate::PROGRESS_VALIDATE`]),
    /// shown as the progress of the `uploading` application.
    pub fn upload_progress(
        &mut self,
        name: &str,
        progress: &str,
        now: Timestamp,
    ) -> Result<Decisions, Error> {
        self.check_uploading(name)?;
        let mut ctx = Ctx::default();
        self.set_status(
            name,
            AppStatus::Uploading,
            Some(progress.into()),
            now,
            &mut ctx,
        );
        Ok(self.finish(ctx))
    }

    /// The package was read: `uploaded` with its workloads, or
    /// `upload-failed` (750.001) when they cannot run.
    pub fn upload_succeeded(
        &mut self,
        name: &str,
        spec: AppSpec,
        now: Timestamp,
    ) -> Result<Decisions, Error> {
        self.check_uploading(name)?;
        if let Err(e) = spec.validate(name) {
            return self.upload_failed(name, &e.to_string(), now);
        }
        let mut ctx = Ctx::default();
        if let Some(e) = self.apps.get_mut(name) {
            e.spec = Some(spec);
        }
        self.set_status(
            name,
            AppStatus::Uploaded,
            Some(PROGRESS_COMPLETED.into()),
            now,
            &mut ctx,
        );
        ctx.event(app_entity(name), format!("Application {name} uploaded"));
        Ok(self.finish(ctx))
    }

    /// Reading the package failed: `upload-failed`, 750.001.
    pub fn upload_failed(
        &mut self,
        name: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<Decisions, Error> {
        self.check_uploading(name)?;
        let mut ctx = Ctx::default();
        self.fail(
            name,
            Op::Upload,
            error,
            failed_progress(error),
            now,
            &mut ctx,
        );
        Ok(self.finish(ctx))
    }

    // ----- apply -----------------------------------------------------------

    fn entry(&self, op: Op, name: &str) -> Result<&AppEntry, Error> {
        self.apps.get(name).ok_or(Error::not_found(op))
    }

    /// Whether [`Apps::apply`] would start. Changes nothing.
    pub fn check_apply(&self, name: &str) -> Result<(), Error> {
        check_transition(Op::Apply, self.entry(Op::Apply, name)?.row.status)
    }

    /// `applying`: the replicas are made and placed; the application is
    /// `applied` once all of them run.
    pub fn apply(&mut self, name: &str, now: Timestamp) -> Result<Decisions, Error> {
        self.check_apply(name)?;
        let mut ctx = Ctx::default();
        self.clear_app_alarms(name, &mut ctx);
        self.raise_in_progress(name, false, &mut ctx);
        self.set_status(
            name,
            AppStatus::Applying,
            Some(PROGRESS_IMAGES.into()),
            now,
            &mut ctx,
        );
        let deadline = now.plus_secs(self.settings.apply_timeout_secs);
        if let Some(e) = self.apps.get_mut(name) {
            e.deadline = Some(deadline);
        }
        self.create_fixed_replicas(name);
        ctx.event(
            app_entity(name),
            format!("Application {name} apply started"),
        );
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        Ok(self.finish(ctx))
    }

    /// Makes the Deployment and Pod replicas of an application that do not
    /// exist yet (unplaced).
    fn create_fixed_replicas(&mut self, name: &str) {
        let Some(spec) = self.apps.get(name).and_then(|e| e.spec.clone()) else {
            return;
        };
        for w in &spec.workloads {
            for id in fixed_replicas(name, w) {
                self.replicas
                    .entry(id.clone())
                    .or_insert_with(|| Replica::new(id, name, &w.name, w.template.clone()));
            }
        }
    }

    /// Drops every replica of an application, remembering which hosts must
    /// acknowledge their new plans.
    fn drop_replicas(&mut self, app: &str, ctx: &mut Ctx) -> BTreeMap<String, u64> {
        let ids: Vec<String> = self.replicas_of(app).map(|r| r.id.clone()).collect();
        let mut hosts = BTreeSet::new();
        for id in ids {
            if let Some(h) = self.delete_replica(&id, ctx) {
                hosts.insert(h);
            }
        }
        hosts
            .into_iter()
            .filter_map(|h| self.hosts.get(&h).map(|e| (h, e.generation)))
            .collect()
    }

    /// Removes a replica from its host and from the site; clears its alarm.
    /// Returns the host it was on.
    fn delete_replica(&mut self, id: &str, ctx: &mut Ctx) -> Option<String> {
        let host = self.unplace(id, ctx);
        if let Some(r) = self.replicas.remove(id)
            && r.alarmed
        {
            self.clear(ALARM_REPLICA_FAILING, replica_entity(&r.app, &r.id), ctx);
        }
        host
    }

    /// Takes a replica off its host (it becomes pending). Returns the host.
    fn unplace(&mut self, id: &str, ctx: &mut Ctx) -> Option<String> {
        let r = self.replicas.get_mut(id)?;
        let host = r.host.clone()?;
        if let Some(h) = self.hosts.get_mut(&host) {
            h.release(r);
        }
        r.host = None;
        r.cpus.clear();
        r.state = ReplicaState::Pending;
        r.ready = false;
        r.running_since = None;
        r.restart_at = None;
        self.touch_host(&host, ctx);
        Some(host)
    }

    /// Places a pending replica if some host can take it; otherwise records
    /// why not. Returns whether it is placed.
    fn place(&mut self, id: &str, now: Timestamp, ctx: &mut Ctx) -> bool {
        let Some(r) = self.replicas.get(id) else {
            return false;
        };
        if r.host.is_some() {
            return true;
        }
        if r.finished {
            return false;
        }
        let template = r.template.clone();
        let daemon_host = r.daemon_host.clone();
        let (app, workload) = (r.app.clone(), r.workload.clone());
        let mut misfits = Vec::new();
        let mut best: Option<((usize, u64, u64), &str)> = None;
        let mut seen = 0;
        for (name, h) in &self.hosts {
            if daemon_host.as_ref().is_some_and(|d| d != name) {
                continue;
            }
            seen += 1;
            if !h.eligible() {
                misfits.push(Misfit::Unavailable);
                continue;
            }
            let u = &h.usage;
            if let Err(m) = fit(&template, &h.facts, u) {
                misfits.push(m);
                continue;
            }
            // Smaller is better: fewest of this workload, then most free.
            let key = (
                h.count(&app, &workload),
                u64::MAX - u.free_cpu_millis(&h.facts),
                u64::MAX - u.free_memory_bytes(&h.facts),
            );
            if best.is_none_or(|(k, _)| key < k) {
                best = Some((key, name.as_str()));
            }
        }
        let best = best.map(|(_, h)| h.to_string());
        let Some(host) = best else {
            let reason = pending_reason(seen, &misfits);
            let r = self.replicas.get_mut(id).expect("replica exists");
            if r.pending_reason.as_deref() != Some(reason.as_str()) {
                ctx.event(
                    replica_entity(&app, id),
                    format!("Replica {id} is pending: {reason}"),
                );
                r.pending_reason = Some(reason);
            }
            return false;
        };
        let h = &self.hosts[&host];
        let cpus = assign_cpus(&template, &h.facts, &h.usage);
        let generation = self.new_generation(now);
        let r = self.replicas.get_mut(id).expect("replica exists");
        r.host = Some(host.clone());
        r.generation = generation;
        r.cpus = cpus;
        r.state = ReplicaState::Pending;
        r.ready = false;
        r.pending_reason = None;
        r.restart_at = None;
        r.running_since = None;
        if let Some(h) = self.hosts.get_mut(&host) {
            h.hold(r);
        }
        self.touch_host(&host, ctx);
        ctx.event(
            replica_entity(&app, id),
            format!("Replica {id} placed on {host}"),
        );
        true
    }

    /// Brings replicas in line with the hosts: DaemonSet replicas exist on
    /// exactly the eligible matching hosts, and pending replicas are placed
    /// where they fit.
    fn reconcile(&mut self, now: Timestamp, ctx: &mut Ctx) {
        // DaemonSet replicas whose host no longer qualifies.
        let gone: Vec<String> = self
            .replicas
            .values()
            .filter(|r| {
                r.daemon_host.as_ref().is_some_and(|h| {
                    self.hosts
                        .get(h)
                        .is_none_or(|e| !e.eligible() || !r.template.selects(&e.facts.labels))
                })
            })
            .map(|r| r.id.clone())
            .collect();
        for id in gone {
            self.delete_replica(&id, ctx);
        }
        // DaemonSet replicas wanted on eligible matching hosts.
        let mut wanted = Vec::new();
        for (name, e) in &self.apps {
            if !e.row.status.wants_workloads() {
                continue;
            }
            let Some(spec) = &e.spec else { continue };
            for w in &spec.workloads {
                if w.kind != WorkloadKind::DaemonSet {
                    continue;
                }
                for (hn, h) in &self.hosts {
                    if h.eligible() && w.template.selects(&h.facts.labels) {
                        let id = daemon_replica_id(name, &w.name, hn);
                        if !self.replicas.contains_key(&id) {
                            wanted.push((
                                id,
                                name.clone(),
                                w.name.clone(),
                                w.template.clone(),
                                hn.clone(),
                            ));
                        }
                    }
                }
            }
        }
        for (id, app, workload, template, host) in wanted {
            let mut r = Replica::new(id.clone(), &app, &workload, template);
            r.daemon_host = Some(host);
            self.replicas.insert(id, r);
        }
        let pending: Vec<String> = self
            .replicas
            .values()
            .filter(|r| r.host.is_none() && !r.finished)
            .map(|r| r.id.clone())
            .collect();
        for id in pending {
            self.place(&id, now, ctx);
        }
    }

    /// Completes or fails operations in progress; keeps apply progress.
    fn evaluate(&mut self, now: Timestamp, ctx: &mut Ctx) {
        let names: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, e)| e.row.status.in_progress())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let e = &self.apps[&name];
            match e.row.status {
                AppStatus::Applying | AppStatus::Updating => self.evaluate_apply(&name, now, ctx),
                AppStatus::Removing => self.evaluate_remove(&name, now, ctx),
                _ => {}
            }
        }
    }

    fn evaluate_apply(&mut self, name: &str, now: Timestamp, ctx: &mut Ctx) {
        let (total, up, reported, first_pending) = {
            let mut total = 0;
            let mut up = 0;
            let mut reported = false;
            let mut first_pending = None;
            for r in self.replicas_of(name) {
                total += 1;
                if r.is_up() {
                    up += 1;
                }
                if r.state != ReplicaState::Pending || r.finished {
                    reported = true;
                }
                if first_pending.is_none()
                    && let Some(p) = &r.pending_reason
                    && r.host.is_none()
                {
                    first_pending = Some(format!("{}: {p}", r.id));
                }
            }
            (total, up, reported, first_pending)
        };
        let e = &self.apps[name];
        let updating = e.row.status == AppStatus::Updating;
        if up == total {
            let progress = match (&e.inactive, updating) {
                (Some(old), true) => format!(
                    "Application update from version {} to version {} completed.",
                    old.app_version, e.row.app_version
                ),
                _ => PROGRESS_COMPLETED.to_string(),
            };
            self.set_status(name, AppStatus::Applied, Some(progress), now, ctx);
            if let Some(e) = self.apps.get_mut(name) {
                e.row.active = true;
                e.deadline = None;
                if updating {
                    e.inactive = None;
                    e.inactive_spec = None;
                }
            }
            self.clear(ALARM_APPLY_FAILED, app_entity(name), ctx);
            self.clear_in_progress(name, ctx);
            ctx.event(
                app_entity(name),
                format!("Application {name} applied ({total} replicas running)"),
            );
            return;
        }
        if e.deadline.is_some_and(|d| now >= d) {
            let mut error = format!("timed out with {up} of {total} replicas running");
            if let Some(p) = first_pending {
                error.push_str(&format!("; {p}"));
            }
            let op = if updating { Op::Update } else { Op::Apply };
            self.fail(name, op, &error, failed_progress(&error), now, ctx);
            return;
        }
        let progress = if reported {
            PROGRESS_APPLY_MANIFEST
        } else {
            PROGRESS_IMAGES
        };
        if e.row.progress.as_deref() != Some(progress) {
            self.set_status(name, e.row.status, Some(progress.into()), now, ctx);
        }
    }

    fn evaluate_remove(&mut self, name: &str, now: Timestamp, ctx: &mut Ctx) {
        let e = &self.apps[name];
        let done = e.releasing.iter().all(|(h, g)| {
            self.hosts
                .get(h)
                .is_none_or(|h| h.acked >= *g || !h.facts.is_up())
        });
        if done {
            self.set_status(
                name,
                AppStatus::Uploaded,
                Some(PROGRESS_COMPLETED.into()),
                now,
                ctx,
            );
            if let Some(e) = self.apps.get_mut(name) {
                e.row.active = false;
                e.deadline = None;
                e.releasing.clear();
            }
            ctx.event(app_entity(name), format!("Application {name} removed"));
            return;
        }
        if e.deadline.is_some_and(|d| now >= d) {
            let waiting: Vec<String> = e
                .releasing
                .iter()
                .filter(|(h, g)| {
                    self.hosts
                        .get(*h)
                        .is_some_and(|h| h.acked < **g && h.facts.is_up())
                })
                .map(|(h, _)| h.clone())
                .collect();
            let error = format!(
                "timed out waiting for hosts to stop it: {}",
                waiting.join(", ")
            );
            if e.force {
                self.set_status(
                    name,
                    AppStatus::Uploaded,
                    Some(PROGRESS_COMPLETED.into()),
                    now,
                    ctx,
                );
                if let Some(e) = self.apps.get_mut(name) {
                    e.row.active = false;
                    e.deadline = None;
                    e.releasing.clear();
                }
                ctx.event(
                    app_entity(name),
                    format!("Application {name} removed by force ({error})"),
                );
            } else {
                self.fail(name, Op::Remove, &error, failed_progress(&error), now, ctx);
            }
        }
    }

    // ----- remove, abort, delete, update ------------------------------------

    /// Whether [`Apps::remove`] would start. Changes nothing.
    pub fn check_remove(&self, name: &str) -> Result<(), Error> {
        check_transition(Op::Remove, self.entry(Op::Remove, name)?.row.status)
    }

    /// `removing`: every replica leaves its host's plan; the application is
    /// `uploaded` once those hosts acknowledged. `force`: a timeout ends in
    /// `uploaded` rather than `remove-failed`.
    pub fn remove(&mut self, name: &str, force: bool, now: Timestamp) -> Result<Decisions, Error> {
        self.check_remove(name)?;
        let mut ctx = Ctx::default();
        self.clear_app_alarms(name, &mut ctx);
        self.set_status(
            name,
            AppStatus::Removing,
            Some(PROGRESS_DELETE_MANIFEST.into()),
            now,
            &mut ctx,
        );
        let releasing = self.drop_replicas(name, &mut ctx);
        let deadline = now.plus_secs(self.settings.remove_timeout_secs);
        if let Some(e) = self.apps.get_mut(name) {
            e.releasing = releasing;
            e.deadline = Some(deadline);
            e.force = force;
        }
        ctx.event(
            app_entity(name),
            format!("Application {name} remove started"),
        );
        // Freed capacity may let pending replicas of other applications run.
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        Ok(self.finish(ctx))
    }

    /// Whether [`Apps::abort`] would be accepted. Changes nothing.
    pub fn check_abort(&self, name: &str) -> Result<(), Error> {
        check_transition(Op::Abort, self.entry(Op::Abort, name)?.row.status)
    }

    /// Stops waiting: `applying`/`updating` -> `apply-failed` (750.002),
    /// `removing` -> `remove-failed` (750.003), progress `operation aborted
    /// by user`. Replicas already placed stay (as StarlingX leaves what it
    /// deployed); a new apply or remove takes it from there.
    pub fn abort(&mut self, name: &str, now: Timestamp) -> Result<Decisions, Error> {
        self.check_abort(name)?;
        let mut ctx = Ctx::default();
        let op = match self.apps[name].row.status {
            AppStatus::Removing => Op::Remove,
            AppStatus::Updating => Op::Update,
            _ => Op::Apply,
        };
        self.fail(
            name,
            op,
            PROGRESS_ABORTED_BY_USER,
            PROGRESS_ABORTED_BY_USER.to_string(),
            now,
            &mut ctx,
        );
        if let Some(e) = self.apps.get_mut(name) {
            e.releasing.clear();
        }
        Ok(self.finish(ctx))
    }

    /// Whether [`Apps::delete`] would delete it. Changes nothing.
    pub fn check_delete(&self, name: &str) -> Result<(), Error> {
        check_transition(Op::Delete, self.entry(Op::Delete, name)?.row.status)
    }

    /// Forgets an application (and its inactive version), clearing its alarms.
    pub fn delete(&mut self, name: &str, _now: Timestamp) -> Result<Decisions, Error> {
        self.check_delete(name)?;
        let mut ctx = Ctx::default();
        self.clear_app_alarms(name, &mut ctx);
        self.drop_replicas(name, &mut ctx);
        self.apps.remove(name);
        ctx.changed(name);
        ctx.event(app_entity(name), format!("Application {name} deleted"));
        Ok(self.finish(ctx))
    }

    /// Whether [`Apps::update`] would start. Changes nothing.
    pub fn check_update(&self, req: &UploadRequest, spec: &AppSpec) -> Result<(), Error> {
        let e = self.entry(Op::Update, &req.name)?;
        check_transition(Op::Update, e.row.status)?;
        if e.row.app_version == req.app_version {
            return Err(Error::rejected(
                Op::Update,
                format!("the version {} is already applied.", req.app_version),
            ));
        }
        spec.validate(&req.name)
    }

    /// Moves an applied application to another version: the old row becomes
    /// `inactive`, the new one `updating`; the old replicas are replaced by
    /// the new version's, and the update completes like an apply.
    pub fn update(
        &mut self,
        req: UploadRequest,
        spec: AppSpec,
        now: Timestamp,
    ) -> Result<Decisions, Error> {
        self.check_update(&req, &spec)?;
        let mut ctx = Ctx::default();
        let name = req.name.clone();
        self.clear_app_alarms(&name, &mut ctx);
        self.raise_in_progress(&name, true, &mut ctx);
        self.drop_replicas(&name, &mut ctx);
        let deadline = now.plus_secs(self.settings.apply_timeout_secs);
        let e = self.apps.get_mut(&name).expect("checked");
        let mut old = e.row.clone();
        let from = old.app_version.clone();
        old.status = AppStatus::Inactive;
        old.active = false;
        old.updated_at = Some(now);
        e.inactive = Some(old);
        e.inactive_spec = e.spec.replace(spec);
        e.row = App {
            name: req.name,
            app_version: req.app_version,
            manifest_name: req.manifest_name,
            manifest_file: req.manifest_file,
            status: AppStatus::Updating,
            progress: Some(PROGRESS_IMAGES.into()),
            active: false,
            created_at: now,
            updated_at: None,
        };
        e.deadline = Some(deadline);
        let to = e.row.app_version.clone();
        ctx.changed(&name);
        ctx.event(
            app_entity(&name),
            format!("Application {name} update from version {from} to version {to} started"),
        );
        self.create_fixed_replicas(&name);
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        Ok(self.finish(ctx))
    }

    // ----- persistence -----------------------------------------------------

    /// What to persist of an application (its rows and workloads). Host
    /// plans are persisted as they are decided ([`Decisions::plans`]).
    pub fn record(&self, name: &str) -> Option<AppRecord> {
        self.apps.get(name).map(|e| AppRecord {
            row: e.row.clone(),
            spec: e.spec.clone(),
            inactive: e.inactive.clone(),
            inactive_spec: e.inactive_spec.clone(),
        })
    }

    /// Takes back a persisted application (at start-up, before the plans).
    /// An operation that was in progress gets a whole timeout from `now`.
    pub fn restore_app(&mut self, record: AppRecord, now: Timestamp) -> Result<(), Error> {
        let name = record.row.name.clone();
        if self.apps.contains_key(&name) {
            return Err(Error::rejected(
                Op::Upload,
                format!("application {name} already exists."),
            ));
        }
        if let Some(spec) = &record.spec {
            spec.validate(&name)?;
        }
        let timeout = match record.row.status {
            AppStatus::Applying | AppStatus::Updating => Some(self.settings.apply_timeout_secs),
            AppStatus::Removing => Some(self.settings.remove_timeout_secs),
            _ => None,
        };
        self.apps.insert(
            name.clone(),
            AppEntry {
                row: record.row,
                spec: record.spec,
                inactive: record.inactive,
                inactive_spec: record.inactive_spec,
                deadline: timeout.map(|t| now.plus_secs(t)),
                force: false,
                releasing: BTreeMap::new(),
            },
        );
        self.create_fixed_replicas_if_wanted(&name);
        Ok(())
    }

    fn create_fixed_replicas_if_wanted(&mut self, name: &str) {
        if self
            .apps
            .get(name)
            .is_some_and(|e| e.row.status.wants_workloads())
        {
            self.create_fixed_replicas(name);
        }
    }

    /// Takes back a host with the plan it was last sent (at start-up, after
    /// the applications): its replicas stay where they are, as the same
    /// incarnations, so a restart of the server restarts no container.
    /// Planned replicas no application wants any more are left out, which
    /// [`Apps::restored`] sends as a new plan. A `plan` of another host, or
    /// a host already known, is refused.
    pub fn restore_host(&mut self, facts: HostFacts, plan: HostPlan) -> Result<(), Error> {
        let invalid = |reason: String| Error::Invalid {
            app: String::new(),
            reason,
        };
        if plan.host != facts.name {
            return Err(invalid(format!(
                "the plan of {} restored for host {}",
                plan.host, facts.name
            )));
        }
        if self.hosts.contains_key(&facts.name) {
            return Err(invalid(format!("host {} restored twice", facts.name)));
        }
        let host = facts.name.clone();
        let mut entry = HostEntry::new(facts, plan.generation);
        let mut dropped = false;
        for p in plan.replicas {
            self.next_generation = self.next_generation.max(p.generation);
            let wanted = self.apps.get(&p.app).and_then(|e| {
                if !e.row.status.wants_workloads() {
                    return None;
                }
                e.spec
                    .as_ref()?
                    .workloads
                    .iter()
                    .find(|w| w.name == p.workload)
            });
            let Some(w) = wanted else {
                dropped = true;
                continue;
            };
            let (template, kind) = (w.template.clone(), w.kind);
            if kind == WorkloadKind::DaemonSet {
                let id = daemon_replica_id(&p.app, &p.workload, &host);
                if id != p.id {
                    dropped = true;
                    continue;
                }
                let mut r = Replica::new(id.clone(), &p.app, &p.workload, template);
                r.daemon_host = Some(host.clone());
                self.replicas.insert(id, r);
            }
            let Some(r) = self.replicas.get_mut(&p.id) else {
                dropped = true;
                continue;
            };
            if r.host.is_some() || p.containers.len() != r.template.containers.len() {
                dropped = true;
                continue;
            }
            r.host = Some(host.clone());
            r.generation = p.generation;
            r.cpus = p
                .containers
                .iter()
                .map(|c| match (&c.cpuset, c.exclusive) {
                    (Some(v), true) => CpuAssignment::Exclusive(v.clone()),
                    _ => CpuAssignment::Shared,
                })
                .collect();
            entry.hold(r);
        }
        if dropped {
            // Sent again (without them) by `restored`.
            self.restored_dirty.insert(host.clone());
        }
        self.hosts.insert(host, entry);
        Ok(())
    }

    /// Takes back an alarm FM holds from before a restart, so that it is
    /// cleared when its cause goes away. Returns false for an alarm this
    /// domain does not know the cause of any more (the caller clears it).
    pub fn restore_alarm(&mut self, alarm_id: &str, entity: &str) -> bool {
        let id = match alarm_id {
            ALARM_UPLOAD_FAILED => ALARM_UPLOAD_FAILED,
            ALARM_APPLY_FAILED => ALARM_APPLY_FAILED,
            ALARM_REMOVE_FAILED => ALARM_REMOVE_FAILED,
            ALARM_APPLY_IN_PROGRESS => ALARM_APPLY_IN_PROGRESS,
            ALARM_UPDATE_IN_PROGRESS => ALARM_UPDATE_IN_PROGRESS,
            ALARM_REPLICA_FAILING => ALARM_REPLICA_FAILING,
            _ => return false,
        };
        if id == ALARM_REPLICA_FAILING {
            let after = self.settings.failing_alarm_after;
            let Some(r) = self
                .replicas
                .values_mut()
                .find(|r| replica_entity(&r.app, &r.id) == entity)
            else {
                return false;
            };
            r.alarmed = true;
            r.exits = r.exits.max(after);
        } else if !self.apps.keys().any(|a| app_entity(a) == entity) {
            return false;
        }
        self.alarms.insert((id, entity.to_string()));
        true
    }

    /// Start-up is over: plans that lost replicas no application wants,
    /// uploads the restart interrupted (`upload-failed`, 750.001), and
    /// whatever the hosts' facts call for now (pending replicas placed,
    /// hosts that are down emptied).
    pub fn restored(&mut self, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        for h in std::mem::take(&mut self.restored_dirty) {
            self.touch_host(&h, &mut ctx);
        }
        let down: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| !h.facts.is_up())
            .map(|(n, _)| n.clone())
            .collect();
        for h in down {
            if let Some(e) = self.hosts.get_mut(&h) {
                e.fence = e.fence.max(e.generation);
            }
            self.evacuate(&h, "down at start-up", &mut ctx);
        }
        // An upload was being read when the server stopped: its package
        // must be uploaded again.
        let interrupted: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, e)| e.row.status == AppStatus::Uploading)
            .map(|(n, _)| n.clone())
            .collect();
        for name in interrupted {
            let error = "upload interrupted by a restart";
            self.fail(
                &name,
                Op::Upload,
                error,
                failed_progress(error),
                now,
                &mut ctx,
            );
        }
        // Which hosts a remove in progress waited for is not persisted: it
        // waits for every host to acknowledge its current plan.
        let all: BTreeMap<String, u64> = self
            .hosts
            .iter()
            .map(|(n, h)| (n.clone(), h.generation))
            .collect();
        for e in self.apps.values_mut() {
            if e.row.status == AppStatus::Removing && e.releasing.is_empty() {
                e.releasing = all.clone();
            }
        }
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }

    // ----- hosts -----------------------------------------------------------

    /// New facts about a host (maintenance states, labels, resources, CPU
    /// functions). A host that is no longer up loses its replicas, which
    /// are placed elsewhere at once, and is fenced; a host that is up again
    /// takes pending replicas once it acknowledged its emptied plan.
    pub fn host_changed(&mut self, facts: HostFacts, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        let name = facts.name.clone();
        let e = self
            .hosts
            .entry(name.clone())
            .or_insert_with(|| HostEntry::new(facts.clone(), 0));
        let was_locked = e.facts.locked;
        let cpus_changed = e.facts.application_cpus != facts.application_cpus
            || e.facts.isolated_cpus != facts.isolated_cpus;
        e.facts = facts;
        if was_locked && !e.facts.locked {
            e.draining = false;
        }
        if !e.facts.is_up() {
            // Whatever it was last sent, it may not have applied: when it is
            // back it must acknowledge its latest plan before it gets more.
            e.fence = e.fence.max(e.generation);
        }
        if !e.facts.is_up() && !e.replicas.is_empty() {
            let why = if e.facts.failed {
                "failed"
            } else if e.facts.locked {
                "locked"
            } else {
                "not schedulable"
            };
            self.evacuate(&name, why, &mut ctx);
        } else if cpus_changed && !e.replicas.is_empty() {
            // Shared cpusets follow the pool; exclusive ones must still be in
            // the isolated pool, or the replica is placed anew.
            self.touch_host(&name, &mut ctx);
            self.replace_lost_exclusive(&name, &mut ctx);
        }
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }

    fn replace_lost_exclusive(&mut self, host: &str, ctx: &mut Ctx) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        let pool: BTreeSet<u32> = h.facts.isolated_cpus.iter().copied().collect();
        let lost: Vec<String> = h
            .replicas
            .iter()
            .filter_map(|id| self.replicas.get(id))
            .filter(|r| {
                r.cpus.iter().any(|c| match c {
                    CpuAssignment::Exclusive(v) => v.iter().any(|c| !pool.contains(c)),
                    CpuAssignment::Shared => false,
                })
            })
            .map(|r| r.id.clone())
            .collect();
        for id in lost {
            self.unplace(&id, ctx);
        }
    }

    /// A host is gone for good: its replicas move and its plan is forgotten.
    pub fn host_removed(&mut self, name: &str, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        if self.hosts.contains_key(name) {
            self.evacuate(name, "removed", &mut ctx);
            self.hosts.remove(name);
            ctx.dirty.remove(name);
        }
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }

    /// Takes every replica off a host and fences it; the caller reconciles
    /// (placing them elsewhere in the same decision).
    fn evacuate(&mut self, host: &str, why: &str, ctx: &mut Ctx) {
        let ids: Vec<String> = self
            .hosts
            .get(host)
            .map(|h| h.replicas.iter().cloned().collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            let daemon = self
                .replicas
                .get(id)
                .is_some_and(|r| r.daemon_host.is_some());
            if daemon {
                self.delete_replica(id, ctx);
            } else {
                self.unplace(id, ctx);
            }
        }
        if let Some(h) = self.hosts.get_mut(host) {
            h.fence = h.generation;
        }
        ctx.event(
            format!("host={host}"),
            format!(
                "Host {host} {why}: {} application replica(s) taken off it; it runs nothing until its agent acknowledges plan generation {}",
                ids.len(),
                self.hosts.get(host).map_or(0, |h| h.generation)
            ),
        );
    }

    /// Whether a host can be locked now, or which replicas must move first
    /// and where they would go. Changes nothing.
    pub fn plan_lock(&self, host: &str, now: Timestamp) -> Option<LockPlan> {
        let h = self.hosts.get(host)?;
        let ready = h.replicas.is_empty() && (h.acked >= h.generation || h.facts.failed);
        let mut sim = self.clone();
        sim.drain(host, now);
        let mut moves = Vec::new();
        let mut stops = Vec::new();
        for id in &h.replicas {
            match self.replicas.get(id) {
                Some(r) if r.daemon_host.is_some() => stops.push(id.clone()),
                Some(_) => moves.push((
                    id.clone(),
                    sim.replicas.get(id).and_then(|r| r.host.clone()),
                )),
                None => {}
            }
        }
        Some(LockPlan {
            host: host.to_string(),
            ready,
            moves,
            stops,
        })
    }

    /// Starts a lock: the host takes no new replica and its replicas move
    /// elsewhere now (StarlingX moves applications before a lock). Lock it
    /// once [`Apps::plan_lock`] says `ready`.
    pub fn drain(&mut self, host: &str, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        if let Some(h) = self.hosts.get_mut(host) {
            h.draining = true;
            self.evacuate(host, "is being locked", &mut ctx);
        }
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }

    /// The lock did not happen: the host may take replicas again.
    pub fn cancel_drain(&mut self, host: &str, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        if let Some(h) = self.hosts.get_mut(host) {
            h.draining = false;
        }
        self.reconcile(now, &mut ctx);
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }

    // ----- reports and time ------------------------------------------------

    /// An agent's report: the plan generation it runs (which ends its
    /// fencing once it reaches the emptied plan) and its replicas.
    pub fn agent_reported(&mut self, report: AgentReport, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        let Some(h) = self.hosts.get_mut(&report.host) else {
            self.stale_reports += 1;
            return ctx.d;
        };
        if report.plan_generation > h.generation {
            // This server never made such a plan (its state was lost, or
            // the agent served another server): the host's plans go on
            // above that number, or its agent would refuse them as older,
            // and what it reports is not trusted.
            h.generation = report.plan_generation;
            self.stale_reports += 1;
            let host = report.host.clone();
            self.touch_host(&host, &mut ctx);
            return self.finish(ctx);
        }
        let was_fenced = h.acked < h.fence;
        h.acked = h.acked.max(report.plan_generation);
        let unfenced = was_fenced && h.acked >= h.fence;
        if unfenced {
            ctx.event(
                format!("host={}", report.host),
                format!(
                    "Host {} stopped what it no longer owns (plan generation {})",
                    report.host, h.acked
                ),
            );
        }
        for st in report.replicas {
            self.status(&report.host, st, now, &mut ctx);
        }
        // Reports arrive all the time; only a host that stopped being
        // fenced can take what waits.
        if unfenced {
            self.reconcile(now, &mut ctx);
        }
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }

    /// One replica's status from the agent of `host`.
    pub fn replica_reported(
        &mut self,
        host: &str,
        status: ReplicaStatus,
        now: Timestamp,
    ) -> Decisions {
        let mut ctx = Ctx::default();
        if self.status(host, status, now, &mut ctx) {
            self.evaluate(now, &mut ctx);
        }
        self.finish(ctx)
    }

    /// Applies one status; false when it was stale.
    fn status(&mut self, host: &str, st: ReplicaStatus, now: Timestamp, ctx: &mut Ctx) -> bool {
        let settings = self.settings.clone();
        let Some(r) = self.replicas.get_mut(&st.id) else {
            self.stale_reports += 1;
            return false;
        };
        if r.host.as_deref() != Some(host) || r.generation != st.generation {
            self.stale_reports += 1;
            return false;
        }
        if r.restart_at.is_some() || r.finished {
            // This incarnation has ended; its next is decided.
            return true;
        }
        let entity = replica_entity(&r.app, &r.id);
        match st.state {
            ReplicaState::Pending | ReplicaState::Starting => {
                r.state = st.state;
                r.ready = false;
            }
            ReplicaState::Running => {
                if r.state != ReplicaState::Running {
                    r.running_since = Some(now);
                }
                r.state = ReplicaState::Running;
                r.ready = st.ready;
            }
            ended => {
                debug_assert!(ended.ended());
                let failed =
                    ended != ReplicaState::Exited || st.exit_code != Some(0) || st.liveness_failed;
                r.state = ended;
                r.ready = false;
                r.running_since = None;
                r.exit_code = st.exit_code;
                r.message = st.message.clone();
                let how = match (st.liveness_failed, st.exit_code) {
                    (true, _) => "failed its liveness probe".to_string(),
                    (false, Some(c)) => format!("exited with code {c}"),
                    (false, None) => ended.as_str().to_string(),
                };
                if r.template.restart_policy.restarts(failed) {
                    r.exits += 1;
                    let wait = settings.backoff_micros(r.exits);
                    r.restart_at = Some(Timestamp(now.0.saturating_add(wait)));
                    let id = r.id.clone();
                    let (exits, app) = (r.exits, r.app.clone());
                    ctx.event(
                        entity.clone(),
                        format!(
                            "Replica {id} {how}; restarting in {} ms (exit {exits} in a row)",
                            wait / 1000
                        ),
                    );
                    if exits >= settings.failing_alarm_after && !r.alarmed {
                        r.alarmed = true;
                        let reason = format!(
                            "Application {app} replica {id} keeps failing ({exits} exits in a row, last: {how}); restarting with back-off"
                        );
                        self.raise(ALARM_REPLICA_FAILING, entity, Severity::Major, reason, ctx);
                    }
                } else {
                    r.finished = true;
                    r.succeeded = !failed;
                    let id = r.id.clone();
                    ctx.event(
                        entity,
                        format!(
                            "Replica {id} {how}; not restarted ({} policy)",
                            r.template.restart_policy.as_str()
                        ),
                    );
                }
            }
        }
        true
    }

    /// Time passed: restarts whose back-off ended, replicas running long
    /// enough to count as recovered, operations completing or timing out.
    pub fn tick(&mut self, now: Timestamp) -> Decisions {
        let mut ctx = Ctx::default();
        let stable = self.settings.stable_after_secs;
        let due: Vec<String> = self
            .replicas
            .values()
            .filter(|r| r.restart_at.is_some_and(|t| t <= now))
            .map(|r| r.id.clone())
            .collect();
        for id in due {
            let generation = self.new_generation(now);
            let r = self.replicas.get_mut(&id).expect("listed");
            r.restart_at = None;
            let Some(host) = r.host.clone() else { continue };
            r.generation = generation;
            r.restarts += 1;
            r.state = ReplicaState::Pending;
            r.ready = false;
            let entity = replica_entity(&r.app, &id);
            let n = r.restarts;
            self.touch_host(&host, &mut ctx);
            ctx.event(
                entity,
                format!("Replica {id} restarted on {host} (restart {n})"),
            );
        }
        let recovered: Vec<String> = self
            .replicas
            .values()
            .filter(|r| {
                (r.exits > 0 || r.alarmed)
                    && r.state == ReplicaState::Running
                    && r.running_since.is_some_and(|t| now >= t.plus_secs(stable))
            })
            .map(|r| r.id.clone())
            .collect();
        for id in recovered {
            let r = self.replicas.get_mut(&id).expect("listed");
            r.exits = 0;
            if r.alarmed {
                r.alarmed = false;
                let entity = replica_entity(&r.app, &id);
                self.clear(ALARM_REPLICA_FAILING, entity.clone(), &mut ctx);
                ctx.event(entity, format!("Replica {id} runs again"));
            }
        }
        self.evaluate(now, &mut ctx);
        self.finish(ctx)
    }
}

#[cfg(test)]
mod tests;

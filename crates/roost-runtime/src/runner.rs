//! The plan executor: runs a host's [`HostPlan`] on a [`Runtime`] and
//! reports what runs as [`AgentAppsReport`]s. The agent uses it, and so does
//! the server's in-process runner on an All-in-One host.
//!
//! ```text
//! let (runner, task) = Runner::start(runtime, images, config).await?;
//! runner.apply(plan);                  // desired state; older generations are ignored
//! let mut reports = runner.reports();  // watch channel, updated on every change
//! runner.fence();                      // self-fencing: stop and remove everything now
//! runner.shutdown().await;             // the loop ends; containers keep running
//! ```
//!
//! - **Desired state is the plan.** Every replica generation of the plan
//!   runs; anything else (a replica no longer in the plan, or an older
//!   generation of one) is stopped (SIGTERM, SIGKILL after `stop_grace`) and
//!   removed (task, container, snapshot, and its volume directory). A new
//!   generation of a replica starts only once the old one is gone, so both
//!   never hold the same host port.
//! - **Starting a replica**: each image is fetched through [`ImageSource`]
//!   and imported once per digest (its digest must be the plan's, else the
//!   replica fails with both digests in the message); volumes are prepared
//!   under `<dir>/replicas/<replica>.<generation>/` (hostPath: bound as is;
//!   emptyDir: a directory, also for `memory: true`, one per container and
//!   mount as a `MountSpec` names no volume, so containers cannot share one;
//!   ConfigMap/Secret files: written with their mode and bound read-only;
//!   a file path leaving its directory fails the replica); then the containers start
//!   in order. Kubernetes' rules for `command` (replaces the entrypoint) and
//!   `args` (replaces the cmd) hold. Every container shares the host's
//!   network (there is no CNI; `host_network: false` is not honoured, and a
//!   `hostPort` other than the `containerPort` fails the replica), gets its
//!   cpuset and CPU/memory limits, and carries the labels `roost.replica`,
//!   `roost.container`, `roost.generation` and `roost.app`. Its containerd id is
//!   [`Runner::log_id`]: `<app>.<workload>.<index>.<container>.<generation>`,
//!   or a hashed form when that is not a valid id; its logs are
//!   `logs::read_log(log.dir, id)`.
//! - **A replica is one unit**: when any container exits, or a liveness
//!   probe fails `failure_threshold` times in a row, the other containers
//!   are stopped and the replica is reported `exited` (code 0), `failed`
//!   (with the exit code) or `failed` with `liveness_failed`. The runner
//!   never restarts anything (`restart_policy` is the server's to apply):
//!   the server counts restarts, backs off, and sends a new generation. The stopped containers stay until the plan
//!   drops that generation.
//! - **Logs** stay while their replica is in the plan: the current
//!   generation's and the newest removed one's; a replica that leaves the
//!   plan leaves no log files.
//! - **Probes** (exec in the container; HTTP GET or TCP connect to
//!   127.0.0.1, as containers use the host's network): readiness sets the
//!   container's and the replica's `ready`; HTTPS probes are not supported
//!   and fail with a message saying so.
//! - **Restarting the runner does not restart applications.** [`shutdown`]
//!   leaves containers running. Until the first plan arrives a new runner
//!   touches nothing; with it, containers in namespace `roost` whose labels
//!   name a replica generation of that plan are adopted (watched and probed
//!   again, not restarted); everything else in the namespace, and every
//!   volume directory not adopted, is removed.
//! - **Fencing**: [`Runner::fence`] stops and removes every replica at once
//!   and reports them `stopped` under the same plan generation; only a plan
//!   with a higher generation runs them again.
//!
//! One task owns all state: [`Runner`] sends it commands, each replica
//! generation is a task of its own that reports back (so a slow image
//! import or stop never holds up another replica or a fence).
//!
//! [`shutdown`]: Runner::shutdown

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roost_api::apps::agent::{
    AgentAppsReport, HostPlan, ImageRef, ReplicaReport, ReplicaSpec, ReplicaState,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::{BoxFuture, ContainerState, Error, LogConfig, Result, Runtime};

mod naming;
mod probe;
mod replica;
mod volumes;

pub use naming::{LABEL_APP, LABEL_CONTAINER, LABEL_GENERATION, LABEL_REPLICA};

use replica::{Ctx, Event, Remains};

/// Where the runner gets image archives from.
pub trait ImageSource: Send + Sync + 'static {
    /// A local OCI image layout (a tar or a directory) holding `image` of
    /// application `app`, fetched first if needed.
    fn fetch<'a>(&'a self, app: &'a str, image: &'a ImageRef) -> BoxFuture<'a, Result<PathBuf>>;
}

/// How a runner works.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The host whose plans this runner carries out (plans for another host
    /// are ignored).
    pub host: String,
    /// Volume directories (emptyDir, ConfigMap and Secret files) live under
    /// `<dir>/replicas`.
    pub dir: PathBuf,
    /// Where container output goes (`None`: discarded).
    pub log: Option<LogConfig>,
    /// Between SIGTERM and SIGKILL when stopping a container.
    pub stop_grace: Duration,
}

enum Command {
    Apply(HostPlan),
    Fence,
    Shutdown(oneshot::Sender<()>),
}

/// A handle on a running plan executor; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    commands: mpsc::UnboundedSender<Command>,
    reports: watch::Receiver<AgentAppsReport>,
}

impl Runner {
    /// Starts the runner's loop. It touches nothing until the first plan.
    pub async fn start(
        runtime: Arc<dyn Runtime>,
        images: Arc<dyn ImageSource>,
        config: RunnerConfig,
    ) -> Result<(Runner, JoinHandle<()>)> {
        let replicas = config.dir.join("replicas");
        tokio::fs::create_dir_all(&replicas)
            .await
            .map_err(Error::io(format!("create {}", replicas.display())))?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (reports_tx, reports) = watch::channel(AgentAppsReport {
            host: config.host.clone(),
            plan_generation: 0,
            replicas: Vec::new(),
            unavailable: None,
        });
        let state = Loop {
            ctx: Arc::new(Ctx::new(runtime, images, config)),
            plan: None,
            settled: 0,
            fenced: false,
            reconciled: false,
            slots: BTreeMap::new(),
            next_serial: 0,
            previous_logs: HashMap::new(),
            events_tx,
            reports: reports_tx,
        };
        let task = tokio::spawn(state.run(rx, events));
        Ok((Runner { commands, reports }, task))
    }

    /// Makes `plan` the desired state, unless its generation is lower than
    /// the current plan's (or, after [`Runner::fence`], not higher).
    pub fn apply(&self, plan: HostPlan) {
        let _ = self.commands.send(Command::Apply(plan));
    }

    /// The current report, updated on every change.
    pub fn reports(&self) -> watch::Receiver<AgentAppsReport> {
        self.reports.clone()
    }

    /// Self-fencing: stops and removes every replica now; the next plan with
    /// a higher generation runs them again.
    pub fn fence(&self) {
        let _ = self.commands.send(Command::Fence);
    }

    /// The containerd id of a container, which also names its log files
    /// (`logs::read_log(log.dir, id)`).
    pub fn log_id(replica_id: &str, container: &str, generation: u64) -> String {
        naming::container_id(replica_id, container, generation)
    }

    /// Ends the loop and waits for it. Containers keep running: a restarted
    /// agent adopts them.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Wanted, waiting for an older generation of the same replica to go.
    Deferred,
    Active,
    Removing,
}

/// One replica generation the loop knows about.
struct Slot {
    id: String,
    generation: u64,
    state: SlotState,
    spec: Option<ReplicaSpec>,
    adopt: Vec<ContainerState>,
    report: Option<ReplicaReport>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

struct Loop {
    ctx: Arc<Ctx>,
    plan: Option<HostPlan>,
    /// The newest plan generation whose dropped replicas are all gone.
    settled: u64,
    fenced: bool,
    /// The runtime's leftovers were sorted out (at the first plan or fence).
    reconciled: bool,
    slots: BTreeMap<u64, Slot>,
    next_serial: u64,
    /// Per replica: the log ids of its newest removed generation.
    previous_logs: HashMap<String, Vec<String>>,
    events_tx: mpsc::UnboundedSender<Event>,
    reports: watch::Sender<AgentAppsReport>,
}

impl Loop {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Apply(plan)) => self.apply(plan).await,
                    Some(Command::Fence) => self.fence().await,
                    Some(Command::Shutdown(done)) => {
                        self.detach().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.detach().await;
                        return;
                    }
                },
                Some(ev) = events.recv() => self.event(ev),
            }
        }
    }

    async fn apply(&mut self, plan: HostPlan) {
        if !plan.host.is_empty() && plan.host != self.ctx.config.host {
            tracing::warn!(plan = %plan.host, host = %self.ctx.config.host, "ignoring a plan for another host");
            return;
        }
        if let Some(cur) = &self.plan
            && (plan.generation < cur.generation
                || (self.fenced && plan.generation <= cur.generation))
        {
            tracing::debug!(
                generation = plan.generation,
                current = cur.generation,
                "ignoring an older plan"
            );
            return;
        }
        if !self.reconciled {
            self.reconcile(Some(&plan)).await;
        }
        self.fenced = false;
        self.plan = Some(plan);
        self.converge();
        self.publish();
    }

    async fn fence(&mut self) {
        tracing::warn!("fencing: stopping every replica");
        if !self.reconciled {
            self.reconcile(None).await;
        }
        self.fenced = true;
        self.converge();
        self.publish();
    }

    /// Sorts out what the runtime holds when the first plan (or a fence)
    /// arrives: containers of a replica generation in `plan` are kept for
    /// adoption, everything else is removed, as are volume directories that
    /// belong to no adopted replica.
    async fn reconcile(&mut self, plan: Option<&HostPlan>) {
        let mut listed = None;
        let mut delay = Duration::from_millis(200);
        for _ in 0..30 {
            match self.ctx.rt.list().await {
                Ok(l) => {
                    listed = Some(l);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing containers to reconcile; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let Some(listed) = listed else {
            tracing::error!("could not list the runtime's containers: leftovers stay");
            self.reconciled = true;
            return;
        };
        self.reconciled = true;
        let wanted = |id: &str, generation: u64| {
            plan.is_some_and(|p| {
                p.replicas
                    .iter()
                    .any(|r| r.id == id && r.generation == generation)
            })
        };
        let mut adopt: BTreeMap<(String, u64), Vec<ContainerState>> = BTreeMap::new();
        let mut stale: BTreeMap<(String, u64), Vec<String>> = BTreeMap::new();
        for c in listed {
            let replica = c.labels.get(LABEL_REPLICA).cloned();
            let generation = c
                .labels
                .get(LABEL_GENERATION)
                .and_then(|g| g.parse::<u64>().ok());
            match (replica, generation) {
                (Some(r), Some(g)) if wanted(&r, g) => adopt.entry((r, g)).or_default().push(c),
                (Some(r), Some(g)) => stale.entry((r, g)).or_default().push(c.id),
                _ => stale
                    .entry((format!("?{}", c.id), 0))
                    .or_default()
                    .push(c.id),
            }
        }
        // Directories of no adopted replica go now; stale replicas' ones
        // again with their containers.
        let keep: Vec<String> = adopt
            .keys()
            .map(|(id, g)| naming::replica_dir_name(id, *g))
            .collect();
        let replicas = self.ctx.config.dir.join("replicas");
        let swept = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for e in std::fs::read_dir(&replicas)? {
                let e = e?;
                if !keep.iter().any(|k| e.file_name() == k.as_str()) {
                    volumes::remove(&e.path()).map_err(std::io::Error::other)?;
                }
            }
            Ok(())
        })
        .await;
        if !matches!(swept, Ok(Ok(()))) {
            tracing::warn!(outcome = ?swept, "removing old replica directories");
        }
        for ((id, generation), ids) in stale {
            tracing::info!(replica = %id, generation, containers = ?ids, "removing what no plan holds");
            let dir = (!id.starts_with('?')).then(|| self.ctx.replica_dir(&id, generation));
            let serial = self.serial();
            let task = tokio::spawn(replica::remove_remains(
                self.ctx.clone(),
                serial,
                Remains { ids, dir },
                self.events_tx.clone(),
            ));
            self.slots.insert(
                serial,
                Slot {
                    id,
                    generation,
                    state: SlotState::Removing,
                    spec: None,
                    adopt: Vec::new(),
                    report: None,
                    stop: None,
                    task: Some(task),
                },
            );
        }
        if let Some(p) = plan {
            for r in &p.replicas {
                if let Some(containers) = adopt.remove(&(r.id.clone(), r.generation)) {
                    let serial = self.serial();
                    self.slots.insert(
                        serial,
                        Slot {
                            id: r.id.clone(),
                            generation: r.generation,
                            state: SlotState::Deferred,
                            spec: Some(r.clone()),
                            adopt: containers,
                            report: None,
                            stop: None,
                            task: None,
                        },
                    );
                }
            }
        }
    }

    fn serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    /// Brings the slots in line with the plan: unwanted generations are
    /// asked to go, wanted ones are added, and a wanted one starts when no
    /// other generation of its replica is still there.
    fn converge(&mut self) {
        let wanted: Vec<ReplicaSpec> = match (&self.plan, self.fenced) {
            (Some(p), false) => p.replicas.clone(),
            _ => Vec::new(),
        };
        let is_wanted = |id: &str, g: u64| wanted.iter().any(|r| r.id == id && r.generation == g);
        let mut dropped = Vec::new();
        for (serial, s) in self.slots.iter_mut() {
            if s.state == SlotState::Removing || is_wanted(&s.id, s.generation) {
                continue;
            }
            match s.state {
                SlotState::Deferred => dropped.push(*serial),
                _ => {
                    if let Some(stop) = &s.stop {
                        let _ = stop.send(true);
                    }
                    s.state = SlotState::Removing;
                }
            }
        }
        for serial in dropped {
            self.slots.remove(&serial);
        }
        for r in wanted {
            let present = self.slots.values().any(|s| {
                s.state != SlotState::Removing && s.id == r.id && s.generation == r.generation
            });
            if !present {
                let serial = self.serial();
                self.slots.insert(
                    serial,
                    Slot {
                        id: r.id.clone(),
                        generation: r.generation,
                        state: SlotState::Deferred,
                        spec: Some(r),
                        adopt: Vec::new(),
                        report: None,
                        stop: None,
                        task: None,
                    },
                );
            }
        }
        let ready: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.state == SlotState::Deferred)
            .filter(|(serial, s)| {
                // Adopted containers run already: watch them at once.
                !s.adopt.is_empty()
                    || !self.slots.iter().any(|(other, o)| {
                        other != *serial && o.id == s.id && o.state != SlotState::Deferred
                    })
            })
            .map(|(serial, _)| *serial)
            .collect();
        for serial in ready {
            let Some(s) = self.slots.get_mut(&serial) else {
                continue;
            };
            let Some(spec) = s.spec.clone() else { continue };
            let (stop_tx, stop_rx) = watch::channel(false);
            s.task = Some(tokio::spawn(replica::run(
                self.ctx.clone(),
                serial,
                spec,
                std::mem::take(&mut s.adopt),
                stop_rx,
                self.events_tx.clone(),
            )));
            s.stop = Some(stop_tx);
            s.state = SlotState::Active;
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Report(serial, report) => {
                if let Some(s) = self.slots.get_mut(&serial)
                    && s.state == SlotState::Active
                {
                    s.report = Some(report);
                }
            }
            Event::Removed(serial, ids) => {
                if let Some(s) = self.slots.remove(&serial) {
                    self.forget_logs(&s.id, ids);
                }
                self.converge();
                self.collect_images();
            }
        }
        self.publish();
    }

    /// Images neither the plan nor a replica still here uses are removed.
    fn collect_images(&self) {
        let mut keep = std::collections::BTreeSet::new();
        let specs = self
            .plan
            .iter()
            .flat_map(|p| p.replicas.iter())
            .chain(self.slots.values().filter_map(|s| s.spec.as_ref()));
        for r in specs {
            keep.extend(r.images.iter().map(|i| i.digest.clone()));
        }
        self.ctx.forget_images(&keep);
    }

    /// Log retention: a removed replica generation's logs stay while the
    /// replica is in the plan (its newest removed generation only, like
    /// `kubectl logs --previous`); a replica gone from the plan leaves none.
    fn forget_logs(&mut self, replica_id: &str, ids: Vec<String>) {
        let Some(log) = &self.ctx.config.log else {
            return;
        };
        let in_plan = self
            .plan
            .as_ref()
            .is_some_and(|p| p.replicas.iter().any(|r| r.id == replica_id));
        let doomed = if in_plan {
            self.previous_logs
                .insert(replica_id.to_string(), ids)
                .unwrap_or_default()
        } else {
            let mut all = self.previous_logs.remove(replica_id).unwrap_or_default();
            all.extend(ids);
            all
        };
        if doomed.is_empty() {
            return;
        }
        let dir = log.dir.clone();
        tokio::task::spawn_blocking(move || {
            for id in doomed {
                if let Err(e) = crate::logs::remove_log(&dir, &id) {
                    tracing::warn!(id, error = %e, "removing a container's logs");
                }
            }
        });
    }

    fn publish(&mut self) {
        let Some(plan) = &self.plan else {
            return;
        };
        // A plan counts as carried out (what the server waits for before it
        // calls a remove done, or lets a fenced host take replicas again)
        // only once everything it no longer holds is gone.
        if !self.slots.values().any(|s| s.state == SlotState::Removing) {
            self.settled = plan.generation;
        }
        let replicas = plan
            .replicas
            .iter()
            .map(|r| {
                let base = ReplicaReport {
                    id: r.id.clone(),
                    generation: r.generation,
                    state: ReplicaState::Pending,
                    ready: false,
                    restarts: 0,
                    exit_code: None,
                    message: None,
                    liveness_failed: false,
                    containers: Vec::new(),
                };
                if self.fenced {
                    return ReplicaReport {
                        state: ReplicaState::Stopped,
                        message: Some("stopped: this host fenced itself".into()),
                        ..base
                    };
                }
                self.slots
                    .values()
                    .find(|s| {
                        s.state == SlotState::Active && s.id == r.id && s.generation == r.generation
                    })
                    .and_then(|s| s.report.clone())
                    .unwrap_or(base)
            })
            .collect();
        let next = AgentAppsReport {
            host: self.ctx.config.host.clone(),
            plan_generation: self.settled,
            replicas,
            unavailable: None,
        };
        self.reports.send_if_modified(|cur| {
            if *cur == next {
                false
            } else {
                *cur = next;
                true
            }
        });
    }

    /// Stops every replica task without touching its containers.
    async fn detach(&mut self) {
        for s in self.slots.values_mut() {
            if let Some(t) = s.task.take() {
                t.abort();
                let _ = t.await;
            }
        }
        self.slots.clear();
    }
}

//! One replica generation's task: import its images, prepare its volumes,
//! start its containers (or adopt running ones), watch exits and probes,
//! and on removal stop and remove everything it made.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roost_api::apps::agent::{
    ContainerReport, ContainerSpec, ImageRef, ProbeSpec, ReplicaReport, ReplicaSpec, ReplicaState,
    SecuritySpec,
};
use tokio::sync::{OnceCell, mpsc, watch};
use tokio::task::JoinSet;

use super::naming::{self, LABEL_APP, LABEL_CONTAINER, LABEL_GENERATION, LABEL_REPLICA};
use super::probe::{self, Kind, Timing};
use super::volumes;
use super::{ImageSource, RunnerConfig};
use crate::{
    ContainerConfig, ContainerState, CpuLimits, Error, ExitStatus, ImageInfo, Mount, Result,
    Runtime, Security, TaskStatus,
};

/// What the replica tasks share: the runtime, the image source, the
/// configuration and the images imported so far (once per digest).
pub(crate) struct Ctx {
    pub(crate) rt: Arc<dyn Runtime>,
    pub(crate) images: Arc<dyn ImageSource>,
    pub(crate) config: RunnerConfig,
    imported: std::sync::Mutex<HashMap<String, Arc<OnceCell<String>>>>,
    /// Imports hold it shared, image removal alone: an image is never
    /// removed while it is being imported again.
    images_gate: tokio::sync::RwLock<()>,
}

impl Ctx {
    pub(crate) fn new(
        rt: Arc<dyn Runtime>,
        images: Arc<dyn ImageSource>,
        config: RunnerConfig,
    ) -> Ctx {
        Ctx {
            rt,
            images,
            config,
            imported: Default::default(),
            images_gate: tokio::sync::RwLock::new(()),
        }
    }

    /// Removes the imported images whose digests are not in `keep` (from
    /// containerd too: their content and snapshots go with them).
    pub(crate) fn forget_images(self: &Arc<Self>, keep: &std::collections::BTreeSet<String>) {
        let gone: Vec<String> = {
            let mut m = self.imported.lock().unwrap_or_else(|e| e.into_inner());
            let drop: Vec<String> = m
                .iter()
                .filter(|(d, cell)| !keep.contains(*d) && cell.initialized())
                .map(|(d, _)| d.clone())
                .collect();
            drop.into_iter()
                .filter_map(|d| m.remove(&d).and_then(|c| c.get().cloned()))
                .collect()
        };
        if gone.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let _gate = me.images_gate.write().await;
            for name in gone {
                match me.rt.remove_image(&name).await {
                    Ok(()) => tracing::debug!(image = %name, "removed an image no replica uses"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(image = %name, error = %e, "cannot remove an unused image")
                    }
                }
            }
        });
    }

    pub(crate) fn replica_dir(&self, replica_id: &str, generation: u64) -> PathBuf {
        self.config
            .dir
            .join("replicas")
            .join(naming::replica_dir_name(replica_id, generation))
    }

    /// The containerd name of `image`, imported on first use. Concurrent
    /// users of one digest wait for the one import; a failed import is
    /// tried again by the next user.
    async fn image(&self, app: &str, image: &ImageRef) -> Result<String> {
        let cell = {
            let mut m = self.imported.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(image.digest.clone()).or_default().clone()
        };
        let _gate = self.images_gate.read().await;
        cell.get_or_try_init(|| async {
            let path = self.images.fetch(app, image).await?;
            let infos = self.rt.import_image(&path).await?;
            pick_image(&infos, image)
        })
        .await
        .cloned()
    }
}

/// The imported image that is `image`: by name with the expected digest, or
/// any image of the archive with that digest.
fn pick_image(infos: &[ImageInfo], image: &ImageRef) -> Result<String> {
    // Kept as `<name>@<digest>` by containerd (see `pinned_name`).
    let named = |i: &&ImageInfo| {
        i.name == image.name || i.name == crate::pinned_name(&image.name, &i.digest)
    };
    if let Some(i) = infos.iter().find(named) {
        if i.digest == image.digest {
            return Ok(i.name.clone());
        }
        return Err(Error::InvalidImage(format!(
            "image {}: the archive {} holds digest {}, the plan expects {}",
            image.name, image.archive, i.digest, image.digest
        )));
    }
    if let Some(i) = infos.iter().find(|i| i.digest == image.digest) {
        return Ok(i.name.clone());
    }
    let held: Vec<String> = infos
        .iter()
        .map(|i| format!("{}@{}", i.name, i.digest))
        .collect();
    Err(Error::InvalidImage(format!(
        "image {}: the archive {} holds [{}], not digest {}",
        image.name,
        image.archive,
        held.join(", "),
        image.digest
    )))
}

/// From a replica task to the runner's loop.
pub(crate) enum Event {
    /// The replica's current report.
    Report(u64, ReplicaReport),
    /// Everything of the replica is stopped and removed; these were its
    /// containers (and so its log ids).
    Removed(u64, Vec<String>),
}

/// Waits until the loop asks for removal. A loop that went away (shutdown)
/// never asks: the containers keep running.
async fn removal(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why something failed, in words for the replica's report.
struct Why(String);

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a container's watchers report to its replica task.
enum Observed {
    Exited(usize, Result<ExitStatus, Why>),
    Probe(usize, Kind, Result<(), Why>),
}

/// A replica generation the runner wants gone that is not (or no longer)
/// described by the plan: only its container ids and directory are known.
pub(crate) struct Remains {
    pub(crate) ids: Vec<String>,
    pub(crate) dir: Option<PathBuf>,
}

/// Removes containers and a directory left from earlier, then reports
/// [`Event::Removed`].
pub(crate) async fn remove_remains(
    ctx: Arc<Ctx>,
    serial: u64,
    remains: Remains,
    events: mpsc::UnboundedSender<Event>,
) {
    stop_and_remove(&ctx, &remains.ids).await;
    if let Some(dir) = remains.dir {
        remove_dir(&dir).await;
    }
    let _ = events.send(Event::Removed(serial, remains.ids));
}

async fn remove_dir(dir: &std::path::Path) {
    let owned = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || volumes::remove(&owned)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "removing a replica directory"),
        Err(e) => tracing::warn!(error = %e, "removing a replica directory"),
    }
}

/// SIGTERM (SIGKILL after the grace) to every container at once, then
/// removes each; retried while containerd fails, so nothing is left.
async fn stop_and_remove(ctx: &Arc<Ctx>, ids: &[String]) {
    let grace = ctx.config.stop_grace;
    let mut set = JoinSet::new();
    for id in ids {
        let rt = ctx.rt.clone();
        let id = id.clone();
        set.spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                let stopped = rt.stop(&id, grace).await;
                if let Err(e) = &stopped {
                    tracing::debug!(id, error = %e, "stop before removal");
                }
                match rt.remove(&id).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(id, error = %e, "removing a container; trying again");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Runs replica `spec` until the loop asks for its removal, then removes it.
/// `adopt`: containers of this replica generation found running when the
/// runner started.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    serial: u64,
    spec: ReplicaSpec,
    adopt: Vec<ContainerState>,
    mut stop: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<Event>,
) {
    let ids = spec
        .containers
        .iter()
        .map(|c| naming::container_id(&spec.id, &c.name, spec.generation))
        .collect();
    let mut r = Replica {
        dir: ctx.replica_dir(&spec.id, spec.generation),
        report: ReplicaReport {
            id: spec.id.clone(),
            generation: spec.generation,
            state: ReplicaState::Starting,
            ready: false,
            restarts: 0,
            exit_code: None,
            message: None,
            liveness_failed: false,
            containers: spec
                .containers
                .iter()
                .map(|c| ContainerReport {
                    name: c.name.clone(),
                    state: ReplicaState::Pending,
                    ready: false,
                    restarts: 0,
                    exit_code: None,
                    message: None,
                })
                .collect(),
        },
        ctx,
        serial,
        spec,
        ids,
        events,
    };
    r.publish();
    match r.bring_up(adopt, &mut stop).await {
        Up::Removed => {}
        Up::Failed(msg) => {
            r.report.state = ReplicaState::Failed;
            r.report.message = Some(msg);
            r.publish();
            // Nothing half-started keeps running.
            stop_and_remove(&r.ctx, &r.ids).await;
            removal(&mut stop).await;
        }
        Up::Running => r.watch(&mut stop).await,
    }
    stop_and_remove(&r.ctx, &r.ids).await;
    remove_dir(&r.dir).await;
    let _ = r.events.send(Event::Removed(r.serial, r.ids));
}

/// A replica ready for its containers to start: each one's image (its
/// containerd name) and mounts, in container order.
struct Prepared {
    images: Vec<String>,
    mounts: Vec<Vec<Mount>>,
}

/// How bringing a replica up ended.
enum Up {
    Running,
    /// It could not start, and why.
    Failed(String),
    /// The loop asked for its removal meanwhile.
    Removed,
}

struct Replica {
    ctx: Arc<Ctx>,
    serial: u64,
    spec: ReplicaSpec,
    /// containerd ids in container order.
    ids: Vec<String>,
    dir: PathBuf,
    report: ReplicaReport,
    events: mpsc::UnboundedSender<Event>,
}

impl Replica {
    fn publish(&self) {
        let _ = self
            .events
            .send(Event::Report(self.serial, self.report.clone()));
    }

    fn update_ready(&mut self) {
        self.report.ready = self.report.state == ReplicaState::Running
            && self.report.containers.iter().all(|c| c.ready);
    }

    /// Adopts the replica's running containers when all are there, else
    /// starts it afresh. A removal asked for meanwhile interrupts an image
    /// import, or takes effect between two container starts (a start is
    /// never cut in the middle, so it cannot leave a container behind).
    async fn bring_up(
        &mut self,
        adopt: Vec<ContainerState>,
        stop: &mut watch::Receiver<bool>,
    ) -> Up {
        let removed = |stop: &watch::Receiver<bool>| *stop.borrow();
        let up = tokio::select! {
            up = self.bring_up_until_start(adopt) => up,
            _ = removal(stop) => return Up::Removed,
        };
        let images = match up {
            Ok(Some(images)) => images,
            Ok(None) => return Up::Running,
            Err(why) => return Up::Failed(why.0),
        };
        let Prepared { images, mounts } = images;
        for i in 0..self.spec.containers.len() {
            if removed(stop) {
                return Up::Removed;
            }
            let config = self.container_config(i, &images[i], &mounts[i]);
            self.report.containers[i].state = ReplicaState::Starting;
            let mut started = self.ctx.rt.start(&config).await;
            if let Err(Error::AlreadyExists(what)) = &started {
                // Left by a start that a crash interrupted (a snapshot without
                // its container): this generation does not run, so it goes.
                tracing::info!(id = %config.id, what, "removing leftovers of an interrupted start");
                started = match self.ctx.rt.remove(&config.id).await {
                    Ok(()) => self.ctx.rt.start(&config).await,
                    Err(e) => Err(e),
                };
            }
            match started {
                Ok(()) => {
                    let c = &mut self.report.containers[i];
                    c.state = ReplicaState::Running;
                    c.ready = self.spec.containers[i].readiness.is_none();
                    self.publish();
                }
                Err(e) => {
                    let msg = format!("container {}: start: {e}", self.spec.containers[i].name);
                    let c = &mut self.report.containers[i];
                    c.state = ReplicaState::Failed;
                    c.message = Some(msg.clone());
                    return Up::Failed(msg);
                }
            }
        }
        self.report.state = ReplicaState::Running;
        self.update_ready();
        self.publish();
        Up::Running
    }

    /// Everything before the first container start: adoption (`None`: all
    /// adopted), or volumes and images (their containerd names).
    async fn bring_up_until_start(
        &mut self,
        adopt: Vec<ContainerState>,
    ) -> Result<Option<Prepared>, Why> {
        if self.spec.containers.is_empty() {
            return Err(Why("the replica has no containers".into()));
        }
        for c in &self.spec.containers {
            for p in &c.ports {
                if let Some(h) = p.host_port
                    && h != p.container_port
                {
                    return Err(Why(format!(
                        "container {}: hostPort {h} differs from containerPort {}: containers use \
                         the host's network, so a container's port is the host's",
                        c.name, p.container_port
                    )));
                }
            }
        }
        if !adopt.is_empty() {
            if let Some(ids) = self.adoptable(&adopt) {
                self.ids = ids;
                for (i, c) in self.report.containers.iter_mut().enumerate() {
                    c.state = ReplicaState::Running;
                    c.ready = self.spec.containers[i].readiness.is_none();
                }
                self.report.state = ReplicaState::Running;
                self.update_ready();
                tracing::info!(replica = %self.spec.id, generation = self.spec.generation, "adopted running containers");
                self.publish();
                return Ok(None);
            }
            let ids: Vec<String> = adopt.iter().map(|a| a.id.clone()).collect();
            stop_and_remove(&self.ctx, &ids).await;
        }
        let mounts = {
            let dir = self.dir.clone();
            let spec = self.spec.clone();
            tokio::task::spawn_blocking(move || volumes::prepare(&dir, &spec))
                .await
                .map_err(|e| Why(format!("preparing volumes: {e}")))?
                .map_err(|e| Why(format!("preparing volumes: {e}")))?
        };
        // Images first, so a bad image starts nothing.
        let mut images = Vec::new();
        for c in &self.spec.containers {
            let image = self.image_of(c)?;
            let name = self
                .ctx
                .image(&self.spec.app, image)
                .await
                .map_err(|e| Why(format!("container {}: {e}", c.name)))?;
            images.push(name);
        }
        Ok(Some(Prepared { images, mounts }))
    }

    /// The adopted containers' ids in container order, when every container
    /// of the replica is there with a task that runs or has ended.
    fn adoptable(&self, adopt: &[ContainerState]) -> Option<Vec<String>> {
        if adopt.len() != self.spec.containers.len() {
            return None;
        }
        self.spec
            .containers
            .iter()
            .map(|c| {
                adopt
                    .iter()
                    .find(|a| a.labels.get(LABEL_CONTAINER) == Some(&c.name))
                    .filter(|a| {
                        a.task.as_ref().is_some_and(|t| {
                            matches!(t.status, TaskStatus::Running | TaskStatus::Stopped)
                        })
                    })
                    .map(|a| a.id.clone())
            })
            .collect()
    }

    fn image_of(&self, c: &ContainerSpec) -> Result<&ImageRef, Why> {
        self.spec
            .images
            .iter()
            .find(|i| i.digest == c.image_digest)
            .or_else(|| {
                self.spec
                    .images
                    .iter()
                    .find(|i| c.image_digest.is_empty() && i.name == c.image)
            })
            .ok_or_else(|| {
                Why(format!(
                    "container {}: image {} ({}) is not among the replica's images",
                    c.name, c.image, c.image_digest
                ))
            })
    }

    fn container_config(&self, i: usize, image: &str, mounts: &[Mount]) -> ContainerConfig {
        let c = &self.spec.containers[i];
        // Kubernetes: `command` replaces the entrypoint (and then the image's
        // cmd is not used), `args` replaces the cmd.
        let (args, cmd) = if c.command.is_empty() {
            (Vec::new(), c.args.clone())
        } else {
            (
                c.command.iter().chain(&c.args).cloned().collect(),
                Vec::new(),
            )
        };
        let labels = [
            (LABEL_REPLICA, self.spec.id.clone()),
            (LABEL_CONTAINER, c.name.clone()),
            (LABEL_GENERATION, self.spec.generation.to_string()),
            (LABEL_APP, self.spec.app.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ContainerConfig {
            id: self.ids[i].clone(),
            image: image.to_string(),
            args,
            cmd,
            env: c.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: None,
            mounts: mounts.to_vec(),
            // No CNI: the host's network is the only one a container can serve on.
            host_network: true,
            cpu: CpuLimits::from_millis(
                (c.cpu_millis_request > 0).then_some(c.cpu_millis_request),
                c.cpu_millis_limit,
                c.cpuset.clone(),
            ),
            memory_limit: c.memory_limit_bytes,
            labels,
            log: self.ctx.config.log.clone(),
            security: security(&c.security),
        }
    }

    /// Watches exits and probes until the loop asks for the replica's
    /// removal; when the replica ends before, it stays as it ended.
    async fn watch(&mut self, stop: &mut watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut set = JoinSet::new();
        for (i, id) in self.ids.iter().enumerate() {
            set.spawn(watch_exit(self.ctx.rt.clone(), id.clone(), i, tx.clone()));
            let c = &self.spec.containers[i];
            for (kind, p) in [
                (Kind::Liveness, &c.liveness),
                (Kind::Readiness, &c.readiness),
            ] {
                if let Some(p) = p {
                    set.spawn(probe_loop(
                        self.ctx.rt.clone(),
                        id.clone(),
                        i,
                        kind,
                        p.clone(),
                        tx.clone(),
                    ));
                }
            }
        }
        drop(tx);
        // Per container and probe kind: consecutive successes and failures.
        let mut counts: HashMap<(usize, Kind), (u32, u32)> = HashMap::new();
        let ended = loop {
            let ev = tokio::select! {
                _ = removal(stop) => break false,
                ev = rx.recv() => ev,
            };
            let Some(ev) = ev else {
                // Every watcher ended without a word (the exit watchers only
                // end by reporting, so there were none): wait for removal.
                removal(stop).await;
                break false;
            };
            match ev {
                Observed::Exited(i, status) => {
                    set.abort_all();
                    self.container_ended(i, status).await;
                    break true;
                }
                Observed::Probe(i, kind, outcome) => {
                    let p = match kind {
                        Kind::Liveness => self.spec.containers[i].liveness.as_ref(),
                        Kind::Readiness => self.spec.containers[i].readiness.as_ref(),
                    };
                    let Some(t) = p.map(Timing::of) else { continue };
                    let (ok, bad) = counts.entry((i, kind)).or_default();
                    match &outcome {
                        Ok(()) => {
                            *ok += 1;
                            *bad = 0;
                        }
                        Err(_) => {
                            *ok = 0;
                            *bad += 1;
                        }
                    }
                    let (ok, bad) = (*ok, *bad);
                    match (kind, outcome) {
                        (Kind::Liveness, Err(why)) if bad >= t.failure_threshold => {
                            set.abort_all();
                            self.liveness_failed(i, bad, why).await;
                            break true;
                        }
                        (Kind::Readiness, Ok(())) if ok >= t.success_threshold => {
                            let c = &mut self.report.containers[i];
                            if !c.ready {
                                c.ready = true;
                                c.message = None;
                                self.update_ready();
                                self.publish();
                            }
                        }
                        (Kind::Readiness, Err(why)) if bad == t.failure_threshold => {
                            let c = &mut self.report.containers[i];
                            c.ready = false;
                            c.message = Some(format!("{} probe failed: {why}", kind.name()));
                            self.update_ready();
                            self.publish();
                        }
                        _ => {}
                    }
                }
            }
        };
        set.abort_all();
        while set.join_next().await.is_some() {}
        if ended {
            removal(stop).await;
        }
    }

    /// A container ended by itself: the replica has ended. The others are
    /// stopped; the server decides whether it runs again.
    async fn container_ended(&mut self, i: usize, status: Result<ExitStatus, Why>) {
        let name = self.spec.containers[i].name.clone();
        let (state, code, msg) = match status {
            Ok(s) if s.code == 0 => (
                ReplicaState::Exited,
                Some(0),
                format!("container {name} exited"),
            ),
            Ok(s) => (
                ReplicaState::Failed,
                Some(s.code as i32),
                format!("container {name} exited with code {}", s.code),
            ),
            Err(why) => (
                ReplicaState::Failed,
                None,
                format!("container {name}: {why}"),
            ),
        };
        {
            let c = &mut self.report.containers[i];
            c.state = state;
            c.ready = false;
            c.exit_code = code;
            c.message = Some(msg.clone());
        }
        self.stop_others(Some(i)).await;
        self.report.state = state;
        self.report.exit_code = code;
        self.report.message = Some(msg);
        self.update_ready();
        self.publish();
    }

    async fn liveness_failed(&mut self, i: usize, failures: u32, why: Why) {
        let name = self.spec.containers[i].name.clone();
        let msg = format!("liveness probe of container {name} failed {failures} times: {why}");
        tracing::info!(replica = %self.spec.id, "{msg}");
        self.stop_others(None).await;
        let c = &mut self.report.containers[i];
        c.state = ReplicaState::Failed;
        c.message = Some(msg.clone());
        self.report.state = ReplicaState::Failed;
        self.report.liveness_failed = true;
        self.report.message = Some(msg);
        self.update_ready();
        self.publish();
    }

    /// Stops every container but `except` (SIGTERM, SIGKILL after the
    /// grace), all at once, and records their exit codes.
    async fn stop_others(&mut self, except: Option<usize>) {
        let grace = self.ctx.config.stop_grace;
        let mut set = JoinSet::new();
        for (i, id) in self.ids.iter().enumerate() {
            if Some(i) == except {
                continue;
            }
            let rt = self.ctx.rt.clone();
            let id = id.clone();
            set.spawn(async move { (i, rt.stop(&id, grace).await) });
        }
        while let Some(done) = set.join_next().await {
            let Ok((i, stopped)) = done else { continue };
            let c = &mut self.report.containers[i];
            c.state = ReplicaState::Stopped;
            c.ready = false;
            match stopped {
                Ok(s) => c.exit_code = s.map(|s| s.code as i32),
                Err(e) => c.message = Some(format!("stop: {e}")),
            }
        }
    }
}

async fn watch_exit(
    rt: Arc<dyn Runtime>,
    id: String,
    i: usize,
    tx: mpsc::UnboundedSender<Observed>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match rt.wait_exit(&id).await {
            Ok(s) => {
                let _ = tx.send(Observed::Exited(i, Ok(s)));
                return;
            }
            Err(e) if e.is_not_found() => {
                let _ = tx.send(Observed::Exited(i, Err(Why(format!("disappeared: {e}")))));
                return;
            }
            Err(e) => {
                // containerd restarting: its shims keep the tasks.
                tracing::debug!(id, error = %e, "waiting for the exit; trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn probe_loop(
    rt: Arc<dyn Runtime>,
    id: String,
    i: usize,
    kind: Kind,
    spec: ProbeSpec,
    tx: mpsc::UnboundedSender<Observed>,
) {
    let t = Timing::of(&spec);
    tokio::time::sleep(t.initial_delay).await;
    loop {
        let outcome = match probe::attempt(&rt, &id, &spec.action, t.timeout).await {
            probe::Outcome::Passed => Ok(()),
            probe::Outcome::Failed(why) => Err(Why(why)),
            probe::Outcome::Unknown(why) => {
                // The runtime could not run the probe (containerd
                // restarting): says nothing about the application.
                tracing::debug!(id, probe = kind.name(), why, "probe result unknown");
                tokio::time::sleep(t.period).await;
                continue;
            }
        };
        if tx.send(Observed::Probe(i, kind, outcome)).is_err() {
            return;
        }
        tokio::time::sleep(t.period).await;
    }
}

/// The runtime's confinement of a plan's container.
fn security(s: &SecuritySpec) -> Security {
    Security {
        privileged: s.privileged,
        add_capabilities: s.add_capabilities.clone(),
        drop_capabilities: s.drop_capabilities.clone(),
        read_only_root: s.read_only_root_filesystem,
        allow_privilege_escalation: s.allow_privilege_escalation,
        run_as_user: s.run_as_user,
        run_as_group: s.run_as_group,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_picked_by_name_and_digest() {
        let infos = vec![ImageInfo {
            name: "r/web:1".into(),
            digest: "sha256:aa".into(),
            media_type: "m".into(),
        }];
        let mut want = ImageRef {
            name: "r/web:1".into(),
            digest: "sha256:aa".into(),
            archive: "images/web.tar".into(),
        };
        assert_eq!(pick_image(&infos, &want).unwrap(), "r/web:1");
        want.digest = "sha256:bb".into();
        let err = pick_image(&infos, &want).unwrap_err().to_string();
        assert!(
            err.contains("sha256:aa") && err.contains("sha256:bb") && err.contains("web.tar"),
            "{err}"
        );
        want.name = "r/other:1".into();
        want.digest = "sha256:aa".into();
        assert_eq!(pick_image(&infos, &want).unwrap(), "r/web:1");
    }

    #[test]
    fn a_pinned_image_is_picked_under_its_pinned_name() {
        let infos = vec![ImageInfo {
            name: "r/web:1@sha256:aa".into(),
            digest: "sha256:aa".into(),
            media_type: "m".into(),
        }];
        let mut want = ImageRef {
            name: "r/web:1".into(),
            digest: "sha256:aa".into(),
            archive: "images/web.tar".into(),
        };
        assert_eq!(pick_image(&infos, &want).unwrap(), "r/web:1@sha256:aa");
        want.digest = "sha256:bb".into();
        assert!(pick_image(&infos, &want).is_err());
    }
}

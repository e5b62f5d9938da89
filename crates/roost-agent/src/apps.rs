//! Applications on the agent's host: the server's plan for this host, run
//! by `roost_runtime::runner::Runner` on containerd (a configured socket,
//! or a private containerd under the data directory, started when the plan
//! first holds a replica), with replica reports sent back as they change.
//!
//! Fencing: when no heartbeat pulse has arrived for `fence_after` (set
//! below the server's failure time, heartbeat period × failure threshold),
//! the agent stops every replica itself. The server starts replacements
//! elsewhere once it declares this host failed; by then nothing runs here,
//! so a partitioned host never runs a replica twice. The replicas come back
//! only with a newer plan. A host that cannot run containers says so in its
//! reports, and the server places nothing there.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roost_api::apps::agent::{AgentAppsReport, HostPlan, ImageRef};
use roost_runtime::runner::{ImageSource, Runner, RunnerConfig};
use roost_runtime::{BoxFuture, Containerd, LogConfig, Runtime, Supervised, SupervisorOptions};

use crate::client::Client;
use crate::heartbeat::HealthState;

/// How the agent runs applications.
#[derive(Debug, Clone)]
pub struct AppsConfig {
    pub host: String,
    pub token: String,
    /// `<data-dir>/apps`.
    pub dir: PathBuf,
    pub containerd_socket: Option<PathBuf>,
    /// Stop everything after this long without a heartbeat pulse.
    pub fence_after: Duration,
    pub stop_grace: Duration,
}

/// The hidden subcommand of `roost` that writes container output to files.
pub const LOGGER_SUBCOMMAND: &str = "container-logger";

/// Image archives fetched from the server by digest, kept under
/// `<dir>/images/` (a fetch cut short resumes where it stopped).
struct ServerImages {
    client: Client,
    token: String,
    dir: PathBuf,
}

impl ImageSource for ServerImages {
    fn fetch<'a>(
        &'a self,
        _app: &'a str,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, roost_runtime::Result<PathBuf>> {
        Box::pin(async move {
            let hex = image.digest.trim_start_matches("sha256:");
            if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(roost_runtime::Error::InvalidImage(format!(
                    "image {} has an invalid digest {:?}",
                    image.name, image.digest
                )));
            }
            let done = self.dir.join(format!("{hex}.tar"));
            if done.exists() {
                return Ok(done);
            }
            let part = self.dir.join(format!("{hex}.part"));
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|source| roost_runtime::Error::Io {
                    context: format!("create {}", self.dir.display()),
                    source,
                })?;
            self.client
                .app_image(&self.token, &image.digest, &part)
                .await
                .map_err(|e| {
                    roost_runtime::Error::InvalidImage(format!(
                        "cannot fetch image {} from the server: {e}",
                        image.name
                    ))
                })?;
            tokio::fs::rename(&part, &done)
                .await
                .map_err(|source| roost_runtime::Error::Io {
                    context: format!("rename {}", part.display()),
                    source,
                })?;
            Ok(done)
        })
    }
}

/// Runs this host's applications until the task is dropped.
pub async fn run(client: Client, health: Arc<HealthState>, config: AppsConfig) {
    if config.containerd_socket.is_none()
        && let Some(e) = roost_runtime::check_installed()
    {
        let why = e.to_string();
        tracing::warn!("{why}; this host runs no applications");
        report_unavailable(&client, &config, why).await;
        return;
    }
    // Wait for a plan with something to run before starting containerd.
    let mut generation = 0;
    let mut first: Option<HostPlan> = None;
    if config.containerd_socket.is_none() {
        loop {
            match client
                .app_plan(&config.token, generation, Duration::from_secs(30))
                .await
            {
                Ok(p) => {
                    generation = p.generation;
                    if !p.replicas.is_empty() {
                        first = Some(p);
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot get this host's application plan; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
    let (runtime, _supervised): (Arc<dyn Runtime>, Option<Supervised>) = match &config
        .containerd_socket
    {
        Some(sock) => match Containerd::connect(sock).await {
            Ok(c) => (Arc::new(c), None),
            Err(e) => {
                let why = format!("cannot reach containerd at {}: {e}", sock.display());
                tracing::warn!("{why}; this host runs no applications");
                report_unavailable(&client, &config, why).await;
                return;
            }
        },
        None => {
            match Supervised::start(&config.dir.join("containerd"), SupervisorOptions::default())
                .await
            {
                Ok(s) => (Arc::new(s.client().clone()), Some(s)),
                Err(e) => {
                    let why = e.to_string();
                    tracing::warn!(error = %why, "this host runs no applications");
                    report_unavailable(&client, &config, why).await;
                    return;
                }
            }
        }
    };
    let log = std::env::current_exe().ok().map(|logger| LogConfig {
        dir: config.dir.join("logs"),
        max_bytes: 10 << 20,
        files: 3,
        logger,
        subcommand: LOGGER_SUBCOMMAND.into(),
    });
    let images = Arc::new(ServerImages {
        client: client.clone(),
        token: config.token.clone(),
        dir: config.dir.join("images"),
    });
    let (runner, _runner_task) = match Runner::start(
        runtime,
        images,
        RunnerConfig {
            host: config.host.clone(),
            dir: config.dir.join("runtime"),
            log,
            stop_grace: config.stop_grace,
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let why = format!("cannot start the container runner: {e}");
            tracing::warn!("{why}; this host runs no applications");
            report_unavailable(&client, &config, why).await;
            return;
        }
    };
    tracing::info!("this host runs applications");
    let reports = tokio::spawn(send_reports(client.clone(), runner.clone(), config.clone()));
    let logs = tokio::spawn(answer_log_requests(client.clone(), config.clone()));
    let alive = config.dir.join("alive");
    let socket = config
        .containerd_socket
        .clone()
        .unwrap_or_else(|| config.dir.join("containerd").join("containerd.sock"));
    let _watchdog = spawn_watchdog(&alive, config.fence_after, &socket);
    let fencing = tokio::spawn(fence_when_cut_off(
        runner.clone(),
        health,
        config.fence_after,
        alive,
    ));
    let _guard = AbortOnDrop(vec![reports, fencing, logs]);
    if let Some(p) = first {
        runner.apply(p);
    } else {
        generation = 0;
    }
    loop {
        match client
            .app_plan(&config.token, generation, Duration::from_secs(30))
            .await
        {
            Ok(p) => {
                if p.generation > generation {
                    generation = p.generation;
                    runner.apply(p);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot get this host's application plan; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Says (until the server has it) that this host runs no containers.
async fn report_unavailable(client: &Client, config: &AppsConfig, why: String) {
    let report = AgentAppsReport {
        host: config.host.clone(),
        plan_generation: 0,
        replicas: Vec::new(),
        unavailable: Some(why),
    };
    while let Err(e) = client.app_report(&config.token, &report).await {
        tracing::debug!(error = %e, "cannot report that this host runs no applications; retrying");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Sends each new report; a failed send is retried with the newest one.
async fn send_reports(client: Client, runner: Runner, config: AppsConfig) {
    let mut rx = runner.reports();
    loop {
        let report = rx.borrow_and_update().clone();
        if report.plan_generation > 0 || !report.replicas.is_empty() {
            let mut delay = Duration::from_millis(200);
            loop {
                let latest = rx.borrow_and_update().clone();
                match client.app_report(&config.token, &latest).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot send the application report; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
            let _ = report;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Largest piece of output sent at once.
const LOG_CHUNK: usize = 256 * 1024;

/// Answers the server's requests for container output.
async fn answer_log_requests(client: Client, config: AppsConfig) {
    loop {
        match client
            .app_log_requests(&config.token, Duration::from_secs(30))
            .await
        {
            Ok(r) => {
                for req in r.requests {
                    tokio::spawn(send_log(client.clone(), config.clone(), req));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot get log requests; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends one container's output (and, when asked, what follows).
async fn send_log(client: Client, config: AppsConfig, req: roost_api::apps::agent::LogRequest) {
    let dir = config.dir.join("logs");
    let read = |dir: PathBuf, id: String| async move {
        tokio::task::spawn_blocking(move || {
            roost_runtime::logs::read_log(&dir, &id).unwrap_or_default()
        })
        .await
        .unwrap_or_default()
    };
    if !roost_runtime::valid_id(&req.log_id) {
        let _ = client
            .app_log_chunk(&config.token, &req.id, Vec::new(), true)
            .await;
        return;
    }
    let first = read(dir.clone(), req.log_id.clone()).await;
    let start = roost_runtime::logs::tail_lines(&first, req.tail).to_vec();
    let send = |data: Vec<u8>, end: bool| {
        let (client, token, id) = (client.clone(), config.token.clone(), req.id.clone());
        async move { client.app_log_chunk(&token, &id, data, end).await }
    };
    for piece in start.chunks(LOG_CHUNK) {
        if !matches!(send(piece.to_vec(), false).await, Ok(true)) {
            return;
        }
    }
    if !req.follow {
        let _ = send(Vec::new(), true).await;
        return;
    }
    let mut seen = first.len();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read(dir.clone(), req.log_id.clone()).await;
        let new = if now.len() >= seen {
            now[seen..].to_vec()
        } else {
            now.clone()
        };
        seen = now.len();
        // An empty piece tells whether the client is still there.
        for piece in new
            .chunks(LOG_CHUNK)
            .chain(new.is_empty().then_some(&[][..]))
        {
            if !matches!(send(piece.to_vec(), false).await, Ok(true)) {
                return;
            }
        }
    }
}

/// Starts the fence watchdog (`roost fence-watch`), killed with the agent
/// when the agent stops normally.
fn spawn_watchdog(
    alive: &std::path::Path,
    after: Duration,
    socket: &std::path::Path,
) -> Option<tokio::process::Child> {
    touch(alive);
    let exe = std::env::current_exe().ok()?;
    match tokio::process::Command::new(exe)
        .arg("fence-watch")
        .arg("--file")
        .arg(alive)
        .arg("--after-ms")
        .arg(after.as_millis().to_string())
        .arg("--containerd-socket")
        .arg(socket)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the fence watchdog; a frozen agent would not stop its containers");
            None
        }
    }
}

/// Sets the file's time to now (creating it).
fn touch(path: &std::path::Path) {
    let r = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Err(e) = r {
        tracing::debug!(path = %path.display(), error = %e, "cannot touch the fence file");
    }
}

/// The fence watchdog, a process of its own so that it goes on when the
/// agent is frozen or killed: the agent touches `file` while it hears the
/// server; when the file is older than `after`, every container in
/// namespace `roost` is killed. Once the agent is gone for good (this
/// process is orphaned) and the containers are killed, it exits.
pub async fn fence_watch(
    file: PathBuf,
    after: Duration,
    socket: PathBuf,
) -> Result<(), crate::Error> {
    let mut fenced = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let age = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let stale = age.is_some_and(|a| a > after);
        if stale && !fenced {
            tracing::warn!(
                after_ms = after.as_millis() as u64,
                "the agent is silent: killing this host's application containers (fencing)"
            );
            match Containerd::connect(&socket).await {
                Ok(c) => {
                    for s in c.list().await.unwrap_or_default() {
                        let running = s
                            .task
                            .as_ref()
                            .is_some_and(|t| t.status == roost_runtime::TaskStatus::Running);
                        if running && let Err(e) = c.stop(&s.id, Duration::ZERO).await {
                            tracing::warn!(id = %s.id, error = %e, "cannot kill a container");
                        }
                    }
                    fenced = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach containerd to fence; retrying");
                }
            }
        } else if !stale {
            fenced = false;
        }
        if fenced && rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
            return Ok(());
        }
    }
}

/// Stops every replica when the server has been silent for `after`, and
/// keeps the watchdog's file fresh while it is not.
async fn fence_when_cut_off(
    runner: Runner,
    health: Arc<HealthState>,
    after: Duration,
    alive: PathBuf,
) {
    let mut fenced = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let silent = health.silent_for(after);
        if !silent {
            touch(&alive);
        }
        if silent && !fenced {
            tracing::warn!(
                after_ms = after.as_millis() as u64,
                "no heartbeat from the server: stopping this host's applications (fencing)"
            );
            runner.fence();
            fenced = true;
        } else if !silent && fenced {
            tracing::info!("heartbeat back: applications run again with the next plan");
            fenced = false;
        }
    }
}

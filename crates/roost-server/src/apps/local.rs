//! The server's own host runs applications too (an All-in-One host has no
//! separate agent): the same [`Runner`] an agent uses, fed by the same plan
//! long poll and reporting through the same path, on containerd (the
//! configured socket, or a private containerd under the data directory).
//! Without containerd the server still runs; the host is then not
//! schedulable and an apply says what to install.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use roost_api::apps::agent::ImageRef;
use roost_runtime::runner::{ImageSource, Runner, RunnerConfig};
use roost_runtime::{BoxFuture, Containerd, LogConfig, Runtime, Supervised, SupervisorOptions};

use super::AppService;
use crate::{Error, Shutdown};

/// The hidden subcommand of `roost` that writes container output to files.
pub const LOGGER_SUBCOMMAND: &str = "container-logger";

/// Where the local runtime keeps its files.
#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    pub host: String,
    /// `<data>/apps`: `containerd/`, `runtime/`, `logs/` go under it.
    pub dir: PathBuf,
    pub containerd_socket: Option<PathBuf>,
    pub stop_grace: Duration,
    pub log_max_bytes: u64,
    pub log_files: u32,
}

/// Image archives straight from the package directories.
struct LocalImages(AppService);

impl ImageSource for LocalImages {
    fn fetch<'a>(
        &'a self,
        _app: &'a str,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, roost_runtime::Result<PathBuf>> {
        Box::pin(async move {
            self.0.image_archive(&image.digest).ok_or_else(|| {
                roost_runtime::Error::InvalidImage(format!(
                    "no package holds image {} ({})",
                    image.name, image.digest
                ))
            })
        })
    }
}

/// Starts this host's runtime: at once when containerd's socket is
/// configured, else (a private containerd) only once this host's plan
/// first holds a replica, so a server that runs no application starts no
/// containerd. Without the binaries the host is marked unable to run
/// containers at once.
pub fn start(
    apps: AppService,
    config: LocalRuntimeConfig,
    shutdown: Shutdown,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) {
    apps.set_local_logs(config.dir.join("logs"));
    if config.containerd_socket.is_none()
        && let Some(e) = roost_runtime::check_installed()
    {
        let why = e.to_string();
        tracing::warn!("{why}; this host runs no applications");
        apps.set_local_runtime_missing(why);
        return;
    }
    tasks.push(tokio::spawn(async move {
        let lazy = config.containerd_socket.is_none();
        let mut generation = 0;
        let mut first = None;
        if lazy {
            // Wait for a plan with something to run.
            loop {
                let plan = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    p = apps.plan(&config.host, generation, Duration::from_secs(30)) => p,
                };
                generation = plan.generation;
                if !plan.replicas.is_empty() {
                    first = Some(plan);
                    break;
                }
            }
        }
        let Some((runner, runner_task, supervised)) = run_runtime(&apps, &config).await else {
            return;
        };
        feed_reports(
            apps.clone(),
            runner.clone(),
            config.host.clone(),
            shutdown.clone(),
        );
        if let Some(p) = first {
            runner.apply(p);
        } else {
            generation = 0;
        }
        loop {
            let plan = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = apps.plan(&config.host, generation, Duration::from_secs(30)) => p,
            };
            if plan.generation > generation {
                generation = plan.generation;
                runner.apply(plan);
            }
        }
        runner.shutdown().await;
        let _ = runner_task.await;
        if let Some(s) = supervised {
            // Containers keep running (their shims are separate
            // processes); the next start takes them back.
            s.shutdown().await;
        }
    }));
}

/// containerd (the configured one or a private one) and the runner on it.
async fn run_runtime(
    apps: &AppService,
    config: &LocalRuntimeConfig,
) -> Option<(Runner, tokio::task::JoinHandle<()>, Option<Supervised>)> {
    let (runtime, supervised): (Arc<dyn Runtime>, Option<Supervised>) = match &config
        .containerd_socket
    {
        Some(sock) => match Containerd::connect(sock).await {
            Ok(c) => (Arc::new(c), None),
            Err(e) => {
                let why = format!("cannot reach containerd at {}: {e}", sock.display());
                tracing::warn!("{why}; this host runs no applications");
                apps.set_local_runtime_missing(why);
                return None;
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
                    apps.set_local_runtime_missing(why);
                    return None;
                }
            }
        }
    };
    let log = match std::env::current_exe() {
        Ok(logger) => Some(LogConfig {
            dir: config.dir.join("logs"),
            max_bytes: config.log_max_bytes,
            files: config.log_files,
            logger,
            subcommand: LOGGER_SUBCOMMAND.into(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot find the roost executable; container output is not kept");
            None
        }
    };
    match Runner::start(
        runtime,
        Arc::new(LocalImages(apps.clone())),
        RunnerConfig {
            host: config.host.clone(),
            dir: config.dir.join("runtime"),
            log,
            stop_grace: config.stop_grace,
        },
    )
    .await
    {
        Ok((runner, task)) => {
            tracing::info!(host = %config.host, "this host runs applications");
            Some((runner, task, supervised))
        }
        Err(e) => {
            let why = format!("cannot start the container runner: {e}");
            tracing::warn!("{why}; this host runs no applications");
            apps.set_local_runtime_missing(why);
            if let Some(s) = supervised {
                s.shutdown().await;
            }
            None
        }
    }
}

/// Sends the runner's reports to the service as they change.
fn feed_reports(apps: AppService, runner: Runner, host: String, shutdown: Shutdown) {
    let mut reports = runner.reports();
    tokio::spawn(async move {
        loop {
            let report = reports.borrow_and_update().clone();
            if report.plan_generation > 0 || !report.replicas.is_empty() {
                while let Err(e) = apps.report(&host, report.clone()).await {
                    tracing::debug!(error = %e, "cannot take this host's application report; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = reports.changed() => if r.is_err() { return },
            }
        }
    });
}

impl AppService {
    /// Records why this host cannot run containers: it is then not
    /// schedulable, and an apply with nowhere to run says why.
    pub fn set_local_runtime_missing(&self, why: String) {
        let host = self.inner.local_host.clone();
        self.set_runtime_missing(&host, Some(why));
    }
}

impl From<roost_runtime::Error> for Error {
    fn from(e: roost_runtime::Error) -> Self {
        match e.kind() {
            roost_types::ErrorKind::Invalid => Error::Invalid(e.to_string()),
            roost_types::ErrorKind::NotFound => Error::NotFound(e.to_string()),
            roost_types::ErrorKind::Conflict => Error::Conflict(e.to_string()),
            _ => Error::Internal(e.to_string()),
        }
    }
}

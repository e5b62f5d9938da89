//! `roost server`: one process that is a whole All-in-One Simplex cloud.
//!
//! This crate wires the domains (`roost-fm`, `roost-mtce`) to the store
//! (`roost-store`) and to HTTP (axum, with wire types from `roost-api`),
//! and runs the background loops (resource monitoring, token expiry).
//! It owns authentication, the data directory and configuration.
#![forbid(unsafe_code)]

pub mod config;
pub mod datadir;
pub mod dc;
pub mod fm_service;
pub mod hosts;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod monitor;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use roost_fm::Catalogue;
use roost_store::{Store, StoreConfig};
use roost_types::{Clock, SystemClock};
use tokio::sync::watch;

pub use config::Config;

/// A signal that tells background loops to stop.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Loads Roost's catalogue and, if configured, a StarlingX `events.yaml` on top.
pub fn load_catalogue(config: &Config) -> anyhow::Result<Catalogue> {
    let mut cat = Catalogue::builtin();
    if let Some(path) = &config.alarm_catalogue {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read alarm catalogue {}", path.display()))?;
        let extra = Catalogue::from_events_yaml(&text)
            .with_context(|| format!("alarm catalogue {} is not valid", path.display()))?;
        tracing::info!(path = %path.display(), entries = extra.len(), "loaded alarm catalogue");
        cat.merge(extra);
    }
    Ok(cat)
}

/// Runs the server until SIGINT or SIGTERM. `admin_password` is used only
/// when the admin user is first created.
pub async fn run(config: Config, admin_password: Option<String>) -> anyhow::Result<()> {
    config.validate()?;
    let catalogue = Arc::new(load_catalogue(&config)?);
    let data = datadir::DataDir::open(&config.data_dir)?;
    let store = Arc::new(
        Store::open(StoreConfig {
            path: data.database(),
            durability: config.durability()?,
            event_log_cap: config.fm.event_log_cap,
        })
        .with_context(|| format!("cannot open the store in {}", data.path().display()))?,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let (fm, writer) = fm_service::FmService::start(store.clone(), catalogue, clock.clone())
        .context("cannot start fault management")?;
    let identity = Arc::new(
        identity::Identity::new(store.clone(), clock.clone(), config.token_ttl_secs)
            .context("cannot load identity")?,
    );
    if identity.ensure_admin(&data, admin_password)? {
        if data.admin_credentials().exists() {
            tracing::info!(
                path = %data.admin_credentials().display(),
                "created user admin; its password is in this file"
            );
        } else {
            tracing::info!("created user admin with the password from ROOST_ADMIN_PASSWORD");
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = Shutdown(stop_rx);
    let mut tasks = Vec::new();
    if config.monitor.enabled {
        tasks.push(tokio::spawn(monitor::run(
            fm.clone(),
            config.hostname.clone(),
            config.monitor.clone(),
            monitor::ProcRoot::default(),
            shutdown.clone(),
        )));
    }
    {
        let identity = identity.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let id = identity.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || id.purge_expired()).await {
                    tracing::warn!(error = %e, "cannot purge expired tokens");
                }
            }
        }));
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let (hosts, host_tasks) = hosts::HostService::start(
        store.clone(),
        fm.clone(),
        clock.clone(),
        metrics.clone(),
        hosts::HostsConfig {
            hostname: config.hostname.clone(),
            system_mode: config.system_mode.clone(),
            heartbeat_listen: config.heartbeat_listen,
            join_token_ttl_secs: config.join_token_ttl_secs,
        },
        shutdown.clone(),
    )
    .await
    .context("cannot start the host service")?;
    tasks.extend(host_tasks);
    let state = http::AppState {
        fm: fm.clone(),
        hosts: hosts.clone(),
        dc: None,
        dc_ca_fingerprint: None,
        system: roost_api::sysinv::SystemView {
            uuid: system_uuid(&store)?,
            name: "roost".into(),
            system_mode: config.system_mode.clone(),
            system_type: if config.system_mode == "simplex" {
                "All-in-one".into()
            } else {
                "Standard".into()
            },
            software_version: env!("CARGO_PKG_VERSION").into(),
            distributed_cloud_role: None,
            location: String::new(),
            description: String::new(),
            created_at: clock.now().to_string(),
        },
        identity,
        metrics,
        public_url: config.public_url.clone(),
    };
    let app = http::router(state, config.max_body_bytes);
    tracing::info!(%addr, data_dir = %data.path().display(), durability = store.durability().as_str(), "roost server ready");
    println!("roost server ready on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    })
    .await
    .context("the HTTP server failed")?;
    for t in tasks {
        let _ = t.await;
    }
    drop(hosts);
    drop(fm);
    // The writer ends once every handle is gone; wait so the last batch is committed.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    drop(data);
    tracing::info!("stopped");
    Ok(())
}

/// The system's uuid, made once and kept in the store.
fn system_uuid(store: &Store) -> anyhow::Result<String> {
    if let Some(u) = store.setting("system.uuid")? {
        return Ok(u);
    }
    let u = uuid::Uuid::new_v4().to_string();
    store.set_settings(&[("system.uuid".into(), u.clone())])?;
    Ok(u)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

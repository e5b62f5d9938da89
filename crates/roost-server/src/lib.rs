//! `roost server`: one process that is a whole All-in-One Simplex cloud.
//!
//! This crate wires the domains (`roost-fm`, `roost-mtce`) to the store
//! (`roost-store`) and to HTTP (axum, with wire types from `roost-api`),
//! and runs the background loops (resource monitoring, token expiry).
//! It owns authentication, the data directory and configuration.
#![forbid(unsafe_code)]

pub mod apps;
pub mod audit;
pub mod certs;
pub mod config;
pub mod datadir;
pub mod dc;
pub mod duplex;
pub mod error;
pub mod fm_service;
pub mod ha;
pub mod handover;
pub mod hosts;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod platform;
pub mod software;
pub mod subcloud;
pub mod witness;

use std::sync::Arc;
use std::time::Duration;

use roost_api::dcsync::{CertConfig, EndpointConfig};
use roost_dc::Endpoint;
use roost_fm::Catalogue;
use roost_store::{Store, StoreConfig};
use roost_types::{Clock, Role, SystemClock};
use tokio::sync::watch;

pub use config::Config;
pub use error::{Error, ErrorKind, Result};

use error::Context;

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
pub fn load_catalogue(config: &Config) -> Result<Catalogue> {
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
/// The system's name, as `/v1/isystems` and notifications give it.
pub const SYSTEM_NAME: &str = "roost";

pub async fn run(config: Config, admin_password: Option<String>) -> Result<()> {
    run_with(config, admin_password, None).await
}

/// Moves a stopped cloud's store (the embedded SQLite store in
/// `config.data_dir`) into the empty PostgreSQL database at `to`, then
/// checks that every table holds the same rows in both. The data directory
/// stays as it was: its key, certificates and store file are kept.
pub fn migrate_store(config: &Config, to: &str) -> Result<roost_store::CopyReport> {
    let dest = roost_store::Location::parse(to)?;
    if !matches!(dest, roost_store::Location::Postgres(_)) {
        return Err(Error::Invalid(format!(
            "--to {} is not a postgres:// URL",
            roost_store::redact_url(to)
        )));
    }
    let database = config.data_dir.join(roost_store::DATABASE_FILE);
    if !database.exists() {
        return Err(Error::Invalid(format!(
            "no store at {}: --from names the data directory of a cloud",
            database.display()
        )));
    }
    // The lock: the cloud must be stopped.
    let data = datadir::DataDir::open(&config.data_dir)?;
    let key = data.key_source(config.tpm.seal_device().as_deref());
    let open = |location| {
        Store::open(StoreConfig {
            key: key.clone(),
            location,
            durability: roost_store::Durability::Process,
            event_log_cap: config.fm.event_log_cap,
        })
    };
    let from = open(roost_store::Location::Sqlite(database))?;
    let to = open(dest)?;
    Ok(to.copy_from(&from)?)
}

/// Like [`run`]; `enroll_token` enrolls a subcloud on its first start.
pub async fn run_with(
    config: Config,
    admin_password: Option<String>,
    enroll_token: Option<String>,
) -> Result<()> {
    config.validate()?;
    // Everything the server creates is private to its user unless made
    // otherwise on purpose (SQLite's -wal and -shm, logs, packages).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let open_files = raise_open_file_limit();
    let catalogue = Arc::new(load_catalogue(&config)?);
    // Sockets handed over by the previous process of this server, if any.
    let mut inherited = handover::Inherited::take();
    // Listen first: a start that cannot (a port in use) must leave nothing
    // on disk, no data directory and no admin credentials.
    let listener = handover::tcp_listener(inherited.http.take(), config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let role = roost_types::Role::parse(&config.role)
        .ok_or_else(|| Error::Invalid(format!("unknown role {:?}", config.role)))?;
    let heartbeat_addr = config.heartbeat_addr();
    let heartbeat_socket = handover::udp_socket(inherited.heartbeat.take(), heartbeat_addr)
        .await
        .with_context(|| format!("cannot bind the heartbeat socket {heartbeat_addr}"))?;
    tracing::info!(addr = %heartbeat_socket.local_addr()?, "heartbeat socket bound");
    let mut dc_listener = if role == Role::SystemController {
        let dc_addr = config.dc_listen_addr();
        Some(
            handover::tcp_listener(inherited.dc.take(), dc_addr)
                .await
                .with_context(|| format!("cannot listen on {dc_addr} (DC)"))?,
        )
    } else {
        None
    };
    // Kept for a handover to another roost binary.
    let sockets = Arc::new(
        handover::Sockets::of(&listener, &heartbeat_socket, dc_listener.as_ref())
            .context("cannot keep the listening sockets")?,
    );
    let data = datadir::DataDir::open(&config.data_dir)?;
    // The software of this server's own host: a switch on trial that this
    // process was not started for is rolled back; a release with another
    // roost binary is handed over to at once.
    let own_software = {
        let dir = std::path::absolute(data.path().join("host-software"))
            .context("cannot resolve the data directory")?;
        // Releases that reboot hosts do not cover the server's host, so
        // this host never runs a reboot command.
        Arc::new(
            roost_update::Software::open(dir, config.software.trial_secs, "false")
                .context("cannot open this host's software directory")?,
        )
    };
    if let Some(h) = own_software
        .at_start()
        .context("cannot check this host's software")?
    {
        drop(data);
        let hold = inherited.hold_until.unwrap_or(roost_types::Timestamp(0));
        let e = handover::exec(&h, &sockets, hold);
        return Err(Error::context(
            format!("cannot execute {}", h.exe.display()),
            e,
        ));
    }
    let https = certs::TlsMode::parse(&config.http.tls)
        .ok_or_else(|| Error::Invalid(format!("unknown http.tls {:?}", config.http.tls)))?
        .https(addr.ip(), config.http.plain_http)?;
    if !https && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving the API over plain HTTP on an address that is not loopback (--plain-http): tokens and passwords cross the network in clear");
    }
    let api_tls = if https {
        let names = certs::api_names(
            &config.http.names,
            config.public_url.as_deref(),
            addr.ip(),
            &config.hostname,
        );
        Some(
            certs::ApiTls::load_or_create(&data.path().join("tls"), names)
                .context("cannot set up the API's TLS")?,
        )
    } else {
        None
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let limits = http::serve::Limits {
        header_read_timeout: Duration::from_secs(config.http.header_read_timeout_secs),
        body_read_timeout: Duration::from_secs(config.http.body_read_timeout_secs),
        idle_timeout: Duration::from_secs(config.http.idle_timeout_secs),
        max_connections: connection_cap(config.http.max_connections, open_files),
    };
    let tls_config = match &api_tls {
        Some(t) => Some(t.server_config()?),
        None => None,
    };
    let scheme = if https { "https" } else { "http" };
    // On a PostgreSQL store other servers may share: hold the controller
    // lease before anything else (a standby until then), and write only
    // under it.
    // Duplex: this controller's own database, a standby's replica until
    // it may be the primary.
    let duplex_cfg = match config.store.as_deref() {
        Some(config::DUPLEX) => Some(config.duplex()?),
        _ => None,
    };
    let location = match &duplex_cfg {
        Some(d) => roost_store::Location::Postgres(d.cluster.url()),
        None => config.store_location()?,
    };
    let ha_me = matches!(location, roost_store::Location::Postgres(_)).then(|| ha::Identity {
        name: config
            .ha
            .name
            .clone()
            .unwrap_or_else(|| config.hostname.clone()),
        url: config
            .ha
            .url
            .clone()
            .or_else(|| config.public_url.clone())
            .unwrap_or_else(|| format!("{scheme}://{addr}")),
        ttl: i64::try_from(config.ha.lease_ms.saturating_mul(1000)).unwrap_or(i64::MAX),
    });
    let (cluster, witness_hold) = match (&duplex_cfg, &ha_me) {
        (Some(d), Some(me)) => {
            let p = duplex::prepare(d, me, &listener, limits, tls_config.clone()).await?;
            (Some(p.pg), p.witness_hold)
        }
        _ => (None, None),
    };
    let open_store = || {
        Store::open(StoreConfig {
            key: data.key_source(config.tpm.seal_device().as_deref()),
            location: location.clone(),
            durability: config.durability()?,
            event_log_cap: config.fm.event_log_cap,
        })
        .with_context(|| format!("cannot open the store {}", location.describe()))
    };
    let store = loop {
        match open_store() {
            Ok(s) => break Arc::new(s),
            // A controller that stepped down (it may have lost the
            // database) waits for it as a standby would, rather than exit.
            Err(e) if ha::restarted_as_standby() && ha_me.is_some() => {
                tracing::warn!(error = %roost_types::error_chain(&e), "cannot reach the store; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let sealing = store.seal_report();
    if sealing.key_created {
        tracing::info!(
            path = %data.key_source(config.tpm.seal_device().as_deref()).describe(),
            "created the data-encryption key that seals the store's secrets; back it up with the data directory"
        );
    }
    if sealing.sealed_in_place > 0 {
        tracing::info!(
            values = sealing.sealed_in_place,
            "sealed secrets that were stored in clear"
        );
    }
    let acquired = match &ha_me {
        Some(me) => {
            store.set_name(&me.name);
            let a = ha::acquire(store.clone(), me, &listener, limits, tls_config.clone()).await?;
            store.fence(&me.name, a.epoch);
            Some(a)
        }
        None => None,
    };
    // After a take-over from another controller, hosts ride through: the
    // pulses that went unanswered meanwhile are not counted.
    let hold_misses_until = inherited.hold_until.or_else(|| {
        acquired
            .as_ref()
            .filter(|a| a.took_over)
            .map(|_| handover::hold_until(clock.now()))
    });
    let alarm_log = (role == Role::Subcloud)
        .then(|| Arc::new(std::sync::Mutex::new(roost_dc::AlarmLog::new())));
    let observer: Option<fm_service::ChangeObserver> = alarm_log.clone().map(|log| {
        let clock = clock.clone();
        Arc::new(move |changes: &[roost_fm::AlarmChange]| {
            subcloud::record_changes(&log, changes, clock.now());
        }) as fm_service::ChangeObserver
    });
    let metrics = Arc::new(metrics::Metrics::new());
    let (fm, writer) = fm_service::FmService::start(
        store.clone(),
        catalogue,
        clock.clone(),
        observer,
        metrics.clone(),
    )
    .context("cannot start fault management")?;
    let notify = notify::NotifyService::start(
        store.clone(),
        metrics.clone(),
        clock.clone(),
        SYSTEM_NAME.to_string(),
        config.hostname.clone(),
    )
    .context("cannot start notifications")?;
    {
        let n = notify.clone();
        fm.on_events(Arc::new(move |events, table| n.publish(events, table)));
    }
    let identity = Arc::new(
        identity::Identity::new(
            store.clone(),
            clock.clone(),
            config.token_ttl_secs,
            config.identity.policy(),
        )
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

    let (stop_tx, stop_rx) = watch::channel(false);
    // A swact of this server's own host: drain, give the lease up, come
    // back as a standby.
    let (swact_tx, mut swact_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let to_standby = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The lease keeper runs until the writers have committed their last.
    let (keeper_tx, keeper_rx) = std::sync::mpsc::channel::<bool>();
    let mut keeper = None;
    let shutdown = Shutdown(stop_rx);
    let mut tasks = Vec::new();
    if let (Some(me), Some(acquired)) = (ha_me.clone(), acquired.clone()) {
        let sockets = sockets.clone();
        let ttl = me.ttl;
        let step_down: ha::StepDown = Box::new(move |reason| {
            let e = ha::restart_as_standby(&reason, &sockets, ttl);
            tracing::error!(error = %roost_types::error_chain(&e), "cannot start again as a standby; exiting");
            std::process::exit(1);
        });
        if let (Some(pg), Some(d)) = (&cluster, &duplex_cfg) {
            tasks.push(tokio::spawn(duplex::sync_loop(
                pg.clone(),
                d.clone(),
                me.clone(),
                witness_hold,
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(ha::redundancy_loop(
            store.clone(),
            fm.clone(),
            me.name.clone(),
            roost_types::SystemMode::parse(&config.system_mode)
                != Some(roost_types::SystemMode::Simplex),
            acquired.previous.clone(),
            shutdown.clone(),
        )));
        keeper = Some(
            ha::keep(store.clone(), me, acquired, step_down, keeper_rx)
                .context("cannot start the lease keeper")?,
        );
    }
    let (audit, audit_writer) = audit::AuditLog::start(
        store.clone(),
        clock.clone(),
        metrics.clone(),
        audit::Retention {
            days: config.audit.retention_days,
            max_records: config.audit.max_records,
        },
    )
    .context("cannot start the audit log")?;
    if config.monitor.enabled {
        tasks.push(tokio::spawn(monitor::run(
            fm.clone(),
            metrics.clone(),
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
    let system_mode = roost_types::SystemMode::parse(&config.system_mode)
        .ok_or_else(|| Error::Invalid(format!("unknown system mode {:?}", config.system_mode)))?;
    let (hosts, host_tasks) = hosts::HostService::start(
        hosts::HostsIo {
            store: store.clone(),
            heartbeat: Arc::new(heartbeat_socket),
            fm: fm.clone(),
            bmc: Arc::new(
                hosts::bmc::Redfish::new(Duration::from_secs(10))
                    .context("cannot make the Redfish client")?,
            ),
            clock: clock.clone(),
            metrics: metrics.clone(),
        },
        hosts::HostsConfig {
            hostname: config.hostname.clone(),
            system_mode,
            join_token_ttl_secs: config.join_token_ttl_secs,
            heartbeat_key_max_age_secs: config.heartbeat_key_max_age_secs,
            agent_ca: api_tls.clone().map(|tls| hosts::AgentCa {
                tls,
                cert_secs: config.agent_cert_secs,
            }),
            tpm: config.tpm.policy(),
            hold_misses_until,
            swact: ha_me.as_ref().map(|me| {
                let (store, me, tx) = (store.clone(), me.name.clone(), swact_tx.clone());
                hosts::SwactHook(Arc::new(move |host: &str| {
                    let connected = store.connected_servers()?;
                    if !connected.iter().any(|c| *c != me) {
                        return Err(Error::Conflict(format!(
                            "cannot swact {host}: no peer controller is connected as a standby to take over"
                        )));
                    }
                    tx.send(()).map_err(|_| {
                        Error::Conflict(format!("cannot swact {host}: the server is stopping"))
                    })
                }))
            }),
        },
        shutdown.clone(),
    )
    .await
    .context("cannot start the host service")?;
    tasks.extend(host_tasks);

    if let Some(me) = &ha_me {
        tasks.push(tokio::spawn(hosts.clone().peer_controllers_loop(
            store.clone(),
            me.name.clone(),
            shutdown.clone(),
        )));
    }
    // containerd is handed absolute paths only (its shims run elsewhere).
    let apps_dir = std::path::absolute(data.path().join("apps"))
        .context("cannot resolve the data directory")?;
    if config.apps.allow_privileged {
        tracing::warn!(
            "applications may run privileged containers ([apps] allow_privileged = true)"
        );
    }
    let (apps, apps_task) = apps::AppService::start(
        store.clone(),
        fm.clone(),
        clock.clone(),
        hosts.clone(),
        apps::AppsConfig {
            dir: apps_dir.clone(),
            max_package_bytes: config.apps.max_package_bytes,
            settings: roost_apps::AppSettings::default(),
            tick: Duration::from_millis(250),
            local_host: config.hostname.clone(),
            allow_privileged: config.apps.allow_privileged,
        },
        shutdown.clone(),
    )
    .await
    .context("cannot start the application service")?;
    tasks.push(apps_task);
    hosts.set_lock_gate(apps.lock_gate());
    if config.apps.local_runtime {
        apps::local::start(
            apps.clone(),
            apps::local::LocalRuntimeConfig {
                host: config.hostname.clone(),
                dir: apps_dir.clone(),
                containerd_socket: config.apps.containerd_socket.clone(),
                stop_grace: Duration::from_secs(10),
                log_max_bytes: 10 << 20,
                log_files: 3,
            },
            shutdown.clone(),
            &mut tasks,
        );
    } else {
        apps.set_local_runtime_missing("apps.local_runtime is off".into());
    }

    let platform = platform::PlatformService::load(store.clone())
        .context("cannot load the platform configuration")?;

    let trusted =
        roost_release::TrustedKeys::parse(config.software.trusted_keys.iter().map(String::as_str))
            .map_err(|e| Error::Setting(format!("software.trusted_keys: {e}")))?;
    let software = software::SoftwareService::start(
        store.clone(),
        data.path().join("software"),
        trusted,
        config.software.max_release_bytes,
        config.software.host_deploy_timeout_secs,
        clock.clone(),
    )
    .context("cannot start the software service")?;
    software.set_site(software::Site {
        hosts: hosts.clone(),
        fm: fm.clone(),
    });
    tasks.push(tokio::spawn(
        software.clone().deadline_loop(shutdown.clone()),
    ));
    tasks.push(tokio::spawn(
        software.clone().strategy_loop(shutdown.clone()),
    ));
    let (serving_tx, serving_rx) = watch::channel(false);
    let (handover_tx, mut handover_rx) = tokio::sync::mpsc::channel(1);
    tasks.push(tokio::spawn(software.clone().own_host_loop(
        own_software.clone(),
        config.hostname.clone(),
        serving_rx,
        handover_tx,
        shutdown.clone(),
    )));

    // Distributed Cloud: what each role adds.
    let core = Core {
        config: &config,
        data: &data,
        store: &store,
        fm: &fm,
        clock: &clock,
        identity: &identity,
        platform: &platform,
        apps: &apps,
        software: &software,
        metrics: &metrics,
        shutdown: &shutdown,
    };
    let mut dc_parts = None;
    match role {
        Role::SystemController => {
            let listener = dc_listener
                .take()
                .ok_or_else(|| Error::Internal("the DC listener was not bound".into()))?;
            dc_parts = Some(start_system_controller(&core, listener, &mut tasks).await?);
        }
        Role::Subcloud => {
            start_subcloud(
                &core,
                enroll_token.as_deref(),
                alarm_log.as_ref(),
                &mut tasks,
            )
            .await?
        }
        Role::Standalone => {}
    }
    let mut inventory = certs::Inventory::new(api_tls.clone());
    inventory.hosts = Some(hosts.clone());
    if role == Role::Subcloud {
        inventory.dc_identity = Some(subcloud::identity_path(data.path()));
    }
    let (dc_service, rollout, dc_fingerprint, dc_port) = match dc_parts {
        Some(p) => {
            inventory.dc_ca = Some(p.ca);
            inventory.dc_server = std::sync::Mutex::new(Some(p.server_cert));
            inventory.subclouds = p.subcloud_certs;
            (
                Some(p.service),
                Some(p.rollout),
                Some(p.fingerprint),
                Some(p.port),
            )
        }
        None => (None, None, None, None),
    };
    let inventory = Arc::new(inventory);
    tasks.push(tokio::spawn(inventory.clone().run(
        fm.clone(),
        clock.clone(),
        shutdown.clone(),
    )));
    let state = http::AppState {
        fm: fm.clone(),
        hosts: hosts.clone(),
        apps: apps.clone(),
        platform: platform.clone(),
        dc: dc_service,
        rollout,
        dc_ca_fingerprint: dc_fingerprint,
        dc_port,
        system: roost_api::sysinv::SystemView {
            uuid: system_uuid(&store)?,
            name: SYSTEM_NAME.into(),
            system_mode: system_mode.to_string(),
            system_type: system_mode.system_type().into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            distributed_cloud_role: (role != Role::Standalone).then(|| role.to_string()),
            location: String::new(),
            description: String::new(),
            created_at: clock.now().to_string(),
        },
        identity,
        metrics,
        audit,
        public_url: config.public_url.clone(),
        tls: api_tls.clone(),
        certs: inventory,
        software,
        notify,
        shutdown: shutdown.clone(),
    };
    let app = http::router(state, config.max_body_bytes);
    tracing::info!(%addr, data_dir = %data.path().display(), store = store.location().backend(), durability = store.durability().as_str(), max_connections = limits.max_connections, "roost server ready");
    println!("roost server ready on {scheme}://{addr}");
    let replace_with = Arc::new(std::sync::OnceLock::new());
    let stopping = {
        let (hosts, replace_with, to_standby) =
            (hosts.clone(), replace_with.clone(), to_standby.clone());
        async move {
            let grace = tokio::select! {
                () = wait_for_signal() => {
                    tracing::info!("shutting down");
                    http::serve::SHUTDOWN_GRACE
                }
                Some(()) = swact_rx.recv() => {
                    tracing::info!("swact: handing the active controller role to a standby; draining");
                    to_standby.store(true, std::sync::atomic::Ordering::SeqCst);
                    HANDOVER_GRACE
                }
                Some(h) = handover_rx.recv() => {
                    tracing::info!(exe = %h.exe.display(), "handing over to another roost binary: telling the agents, then draining");
                    hosts.hold_for_handover().await;
                    let _ = replace_with.set(h);
                    HANDOVER_GRACE
                }
            };
            let _ = stop_tx.send(true);
            grace
        }
    };
    let _ = serving_tx.send(true);
    http::serve::serve(listener, app, limits, tls_config, stopping).await;
    for t in tasks {
        let _ = t.await;
    }
    drop(apps);
    drop(hosts);
    drop(fm);
    // The writer ends once every handle is gone; wait so the last batch is committed.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    // The audit writer ends with the last handle (the router's), after
    // committing what was queued; a connection still held past the grace
    // period must not hold the exit, so it is waited for a while only.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || audit_writer.join()),
    )
    .await;
    // Gives the controller lease up, so that a standby takes over at once;
    // a handover to another binary keeps it.
    let _ = keeper_tx.send(replace_with.get().is_none());
    if let Some(k) = keeper {
        let _ = tokio::task::spawn_blocking(move || k.join()).await;
    }
    // A duplex active that stops (not one handing over to another binary,
    // which goes on with the database as it is) leaves its database
    // following the peer's, which takes over without fencing.
    if let (Some(pg), Some(d)) = (cluster, &duplex_cfg)
        && replace_with.get().is_none()
        && !to_standby.load(std::sync::atomic::Ordering::SeqCst)
    {
        let dd = d.clone();
        let _ = tokio::task::spawn_blocking(move || duplex::stop_as_active(&pg, &dd)).await;
        if let Some(me) = &ha_me {
            duplex::release_witness(d, &me.name).await;
        }
    }
    drop(data);
    if to_standby.load(std::sync::atomic::Ordering::SeqCst) {
        let ttl = ha_me.as_ref().map_or(0, |me| me.ttl);
        return Err(ha::restart_as_standby("swact", &sockets, ttl));
    }
    if let Some(h) = replace_with.get() {
        let hold = handover::hold_until(clock.now());
        let e = handover::exec(h, &sockets, hold);
        let failed = own_software.exec_failed(h, e);
        tracing::error!(error = %roost_types::error_chain(&failed), "the handover failed; starting this binary again");
        let me = std::env::current_exe().context("cannot find this binary")?;
        let e = handover::exec(&roost_update::Handover::rollback(me), &sockets, hold);
        return Err(Error::context("cannot execute this binary again", e));
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long a handover lets requests in progress finish (long polls answer
/// at once; their clients poll again and reach the new process).
const HANDOVER_GRACE: Duration = Duration::from_secs(2);

/// File descriptors kept free for everything but API connections (the
/// store, the heartbeat and DC sockets, BMC and subcloud clients, logs).
const RESERVED_FDS: u64 = 256;

/// Raises the soft limit of open files to the hard limit (systemd's
/// default soft limit, 1024, is too low for a server) and returns the
/// limit now in force (`None`: unlimited).
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::debug!(from = ?lim.current, to = ?lim.maximum, "raised the open file limit");
                return lim.maximum;
            }
            Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
        }
    }
    lim.current
}

/// The configured connection cap, lowered so that the connections, those
/// waiting for room and the reserve fit under the open-file limit.
fn connection_cap(configured: u64, open_files: Option<u64>) -> usize {
    let fit = open_files.map_or(u64::MAX, |n| {
        n.saturating_sub(RESERVED_FDS + http::serve::HEADROOM as u64)
    });
    let cap = configured.min(fit).max(config::MIN_CONNECTIONS);
    if cap < configured {
        tracing::warn!(
            configured,
            cap,
            open_files = ?open_files,
            "http.max_connections lowered to fit the open file limit"
        );
    }
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// The system's uuid, made once and kept in the store.
fn system_uuid(store: &Store) -> Result<String> {
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

/// What every role of a server is built on, for the role's start function.
struct Core<'a> {
    config: &'a Config,
    data: &'a datadir::DataDir,
    store: &'a Arc<Store>,
    fm: &'a fm_service::FmService,
    clock: &'a Arc<dyn Clock>,
    identity: &'a Arc<identity::Identity>,
    platform: &'a platform::PlatformService,
    apps: &'a apps::AppService,
    software: &'a software::SoftwareService,
    metrics: &'a Arc<metrics::Metrics>,
    shutdown: &'a Shutdown,
}

/// What a system controller adds to the API.
struct DcParts {
    service: dc::DcService,
    rollout: dc::rollout::RolloutService,
    fingerprint: String,
    port: u16,
    ca: Arc<roost_pki::DcCa>,
    server_cert: roost_pki::CertInfo,
    subcloud_certs: Arc<std::sync::Mutex<std::collections::BTreeMap<String, roost_pki::CertInfo>>>,
}

type Tasks = Vec<tokio::task::JoinHandle<()>>;

/// The system controller role: the DC service, its mutual-TLS listener, and
/// the desired configuration kept equal to this cloud's own.
async fn start_system_controller(
    core: &Core<'_>,
    dc_listener: tokio::net::TcpListener,
    tasks: &mut Tasks,
) -> Result<DcParts> {
    let Core {
        config,
        data,
        store,
        fm,
        clock,
        identity,
        platform,
        apps,
        software,
        metrics,
        shutdown,
    } = *core;
    let ca = Arc::new(
        roost_pki::DcCa::load_or_create(&data.path().join("dc-ca"), "Roost DC root CA")
            .context("cannot load or create the DC root CA")?,
    );
    let (dc, dc_task) = dc::DcService::start(
        store.clone(),
        fm.clone(),
        clock.clone(),
        dc::DcConfig {
            settings: roost_dc::DcSettings {
                offline_after_secs: config.dc.offline_after_secs.min(u64::from(u32::MAX)) as u32,
                out_of_sync_alarm_after_secs: config
                    .dc
                    .out_of_sync_alarm_after_secs
                    .min(u64::from(u32::MAX)) as u32,
            },
            sync_interval_secs: config.dc.sync_interval_secs,
            enroll_ttl_secs: config.dc.enroll_token_ttl_secs,
            cert_days: config.dc.subcloud_cert_days,
        },
        shutdown.clone(),
    )
    .await?;
    tasks.push(dc_task);
    // Groups follow their applications' updates here.
    {
        let (dc, apps, shutdown) = (dc.clone(), apps.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            let mut changes = apps.changes();
            loop {
                dc.follow_packages(&apps).await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = changes.changed() => if r.is_err() { return },
                }
            }
        }));
    }
    let dc_addr = dc_listener.local_addr()?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !dc_addr.ip().is_unspecified() {
        names.push(dc_addr.ip().to_string());
    }
    names.extend(config.dc.names.iter().cloned());
    names.sort();
    names.dedup();
    let (chain, key) = ca.issue_server_cert(&names, 365)?;
    let tls = roost_pki::server_config(&chain, &key, ca.ca_pem(), false)?;
    let server_cert = roost_pki::cert_info(&chain)?;
    let subcloud_certs = Arc::default();
    let app = http::dclink::router(
        http::dclink::DcLinkState {
            dc: dc.clone(),
            ca: ca.clone(),
            cert_days: config.dc.subcloud_cert_days,
            apps: apps.clone(),
            software: software.clone(),
            subcloud_certs: Arc::clone(&subcloud_certs),
            metrics: metrics.clone(),
        },
        config.max_body_bytes.max(4 * 1024 * 1024),
    );
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) =
            roost_pki::serve_tls(dc_listener, tls, app, async move { stop.cancelled().await }).await
        {
            tracing::error!(error = %e, "the DC listener failed");
        }
    }));
    // Keep the desired configuration equal to this cloud's own: each
    // owner tells when its part changed (platform servers, alarm
    // suppressions, users and passwords); a failed update is retried.
    {
        let dc = dc.clone();
        let store = store.clone();
        let fm = fm.clone();
        let platform = platform.clone();
        let mut servers_changed = platform.subscribe();
        let mut suppressions_changed = fm.suppressions();
        let mut users_changed = identity.subscribe();
        let software = software.clone();
        let mut releases_changed = software.subscribe();
        let ca_pem = ca.ca_pem().to_string();
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let mut due = [
                Endpoint::Platform,
                Endpoint::DcCert,
                Endpoint::Identity,
                Endpoint::Software,
            ]
            .to_vec();
            loop {
                let mut failed = Vec::new();
                for ep in due.drain(..) {
                    let config = match ep {
                        Endpoint::Platform => {
                            EndpointConfig::Platform(subcloud::platform_content(&platform, &fm))
                        }
                        Endpoint::DcCert => EndpointConfig::DcCert(CertConfig {
                            ca_bundle: ca_pem.clone(),
                        }),
                        Endpoint::Software => EndpointConfig::Software(software.synced()),
                        _ => EndpointConfig::Identity(subcloud::identity_content(&store, None)),
                    };
                    if dc.desired(config.endpoint()).1.as_ref() != Some(&config)
                        && let Err(e) = dc.set_desired(config).await
                    {
                        tracing::warn!(error = %e, "cannot update the desired configuration");
                        failed.push(ep);
                    }
                }
                let retry = async {
                    if failed.is_empty() {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    r = servers_changed.changed() => {
                        if r.is_err() { return; }
                        due.push(Endpoint::Platform);
                    }
                    r = suppressions_changed.changed() => {
                        if r.is_err() { return; }
                        due.push(Endpoint::Platform);
                    }
                    r = users_changed.changed() => {
                        if r.is_err() { return; }
                        due.push(Endpoint::Identity);
                    }
                    r = releases_changed.changed() => {
                        if r.is_err() { return; }
                        due.push(Endpoint::Software);
                    }
                    _ = retry => {}
                }
                due.extend(failed);
                due.sort_by_key(|e| e.as_str());
                due.dedup();
            }
        }));
    }
    let (rollout, rollout_task) = dc::rollout::RolloutService::start(
        dc.clone(),
        software.clone(),
        store.clone(),
        fm.clone(),
        clock.clone(),
        shutdown.clone(),
    )?;
    tasks.push(rollout_task);
    println!("roost dc ready on https://{dc_addr}");
    tracing::info!(%dc_addr, fingerprint = %ca.fingerprint(), "system controller: DC listener ready");
    Ok(DcParts {
        fingerprint: ca.fingerprint(),
        port: dc_addr.port(),
        service: dc,
        rollout,
        ca,
        server_cert,
        subcloud_certs,
    })
}

/// The subcloud role: join the system controller (once), then the sync loop.
async fn start_subcloud(
    core: &Core<'_>,
    enroll_token: Option<&str>,
    alarm_log: Option<&Arc<std::sync::Mutex<roost_dc::AlarmLog>>>,
    tasks: &mut Tasks,
) -> Result<()> {
    let Core {
        config,
        data,
        store,
        fm,
        clock,
        platform,
        apps,
        software,
        shutdown,
        ..
    } = *core;
    let sc_url = config.dc.system_controller.clone().unwrap_or_default();
    let id = subcloud::enroll_or_load(
        data.path(),
        &sc_url,
        enroll_token,
        &subcloud::Https::new(&sc_url),
    )
    .await
    .context("cannot join the system controller")?;
    if let Some(log) = alarm_log {
        let alarms: Vec<roost_fm::Alarm> = fm.read().alarms().cloned().collect();
        let changes: Vec<roost_fm::AlarmChange> = alarms
            .into_iter()
            .map(|a| roost_fm::AlarmChange::Upsert {
                before: None,
                after: a,
            })
            .collect();
        subcloud::record_changes(log, &changes, clock.now());
        let controller = Arc::new(subcloud::Https::new(&id.system_controller));
        let sync = subcloud::SyncLoop::new(
            data.path().to_path_buf(),
            id,
            subcloud::Local {
                store: store.clone(),
                platform: platform.clone(),
                fm: fm.clone(),
                clock: clock.clone(),
                apps: Some(subcloud::FleetApps::new(
                    apps.clone(),
                    data.path().join("dc-packages"),
                )),
                software: Some(subcloud::FleetSoftware::new(
                    software.clone(),
                    data.path().join("dc-releases"),
                )),
            },
            log.clone(),
            controller,
        );
        tasks.push(tokio::spawn(sync.run(shutdown.clone())));
    }
    Ok(())
}

//! The subcloud's sync loop alone: a real subcloud (store, FM, platform
//! service) linked in-process to a real system controller's `DcService`
//! (its own store, FM and CA), with one manual clock. The link can be cut
//! or lose replies after the system controller handled the request.

use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::BTreeMap;

use roost_api::dcsync::{
    DesiredApp, EnrollRequest, EnrollResponse, RenewRequest, SyncReply, SyncRequest,
};
use roost_pki::DcCa;
use roost_store::StoreConfig;
use roost_types::{ManualClock, Severity, SystemClock};

use super::*;
use crate::dc::{DcConfig, DcService, IssuedCert, PeerCert};
use crate::fm_service::raise_or_clear;
use crate::{Error, ErrorKind};

/// A link that calls the system controller's service directly, as the DC
/// listener's handlers do.
struct Direct {
    dc: DcService,
    ca: DcCa,
    /// The next this many calls do not reach the system controller.
    unreachable: AtomicUsize,
    /// The replies to the next this many syncs are lost on the way back,
    /// after the system controller handled them.
    lose_replies: AtomicUsize,
    enroll_calls: AtomicUsize,
    syncs_handled: AtomicUsize,
    /// The packages this system controller serves, by digest; a fetch
    /// waits for a permit of `fetch_gate` first.
    packages: Mutex<BTreeMap<String, PathBuf>>,
    fetch_gate: tokio::sync::Semaphore,
    fetches: AtomicUsize,
}

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// What the DC listener answers for a service error: unavailable (503,
/// retried) or a refusal (final).
fn link_error(e: Error) -> Error {
    match e.kind() {
        ErrorKind::Unavailable => link_unavailable(e.to_string()),
        _ => link_refused(e.to_string()),
    }
}

impl Direct {
    fn reach(&self) -> Result<(), Error> {
        if take_one(&self.unreachable) {
            return Err(Error::Unreachable("connection refused".into()));
        }
        Ok(())
    }

    fn peer(id: &DcIdentity) -> PeerCert {
        let info = roost_pki::cert_info(&id.cert_pem).unwrap();
        PeerCert {
            cn: info.cn.unwrap_or_default(),
            serial: info.serial,
            not_before: info.not_before,
        }
    }

    fn signer<'a>(
        &'a self,
        csr_pem: &'a str,
    ) -> impl FnOnce(&str) -> Result<IssuedCert, Error> + 'a {
        move |name: &str| {
            let cert_pem = self
                .ca
                .sign_client_csr(csr_pem, name, CERT_DAYS)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            let serial = roost_pki::cert_info(&cert_pem).unwrap().serial;
            Ok(IssuedCert { serial, cert_pem })
        }
    }
}

impl ControllerLink for Direct {
    fn enroll<'a>(&'a self, req: &'a EnrollRequest) -> LinkFuture<'a, EnrollResponse> {
        Box::pin(async move {
            self.enroll_calls.fetch_add(1, Ordering::SeqCst);
            self.reach()?;
            let (fp, secret) = parse_enroll_token(&req.token)
                .ok_or_else(|| link_refused("malformed token".into()))?;
            if !fp.eq_ignore_ascii_case(&self.ca.fingerprint()) {
                return Err(link_refused("another system controller".into()));
            }
            let (name, cert) = self
                .dc
                .enroll(secret, self.signer(&req.csr_pem))
                .await
                .map_err(link_error)?;
            Ok(EnrollResponse {
                name,
                cert_pem: cert.cert_pem,
                ca_pem: self.ca.ca_pem().to_string(),
            })
        })
    }

    fn sync<'a>(&'a self, id: &'a DcIdentity, req: &'a SyncRequest) -> LinkFuture<'a, SyncReply> {
        Box::pin(async move {
            self.reach()?;
            let reply = self
                .dc
                .sync(&Self::peer(id), req.clone())
                .await
                .map_err(link_error)?;
            self.syncs_handled.fetch_add(1, Ordering::SeqCst);
            if take_one(&self.lose_replies) {
                return Err(Error::Unreachable("connection reset".into()));
            }
            Ok(reply)
        })
    }

    fn renew<'a>(
        &'a self,
        id: &'a DcIdentity,
        req: &'a RenewRequest,
    ) -> LinkFuture<'a, EnrollResponse> {
        Box::pin(async move {
            self.reach()?;
            let (name, cert) = self
                .dc
                .renew(&Self::peer(id), self.signer(&req.csr_pem))
                .await
                .map_err(link_error)?;
            Ok(EnrollResponse {
                name,
                cert_pem: cert.cert_pem,
                ca_pem: self.ca.ca_pem().to_string(),
            })
        })
    }

    fn fetch_package<'a>(
        &'a self,
        _id: &'a DcIdentity,
        digest: &'a str,
        _size: u64,
        dir: &'a Path,
    ) -> LinkFuture<'a, roost_pki::Fetched> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let permit = self.fetch_gate.acquire().await;
            drop(permit);
            let from = self
                .packages
                .lock()
                .unwrap()
                .get(digest)
                .cloned()
                .ok_or_else(|| link_refused(format!("no package {digest}")))?;
            std::fs::create_dir_all(dir)?;
            let path = roost_pki::fetched_path(dir, digest)?;
            let received = std::fs::copy(&from, &path)?;
            Ok(roost_pki::Fetched { path, received })
        })
    }
}

const CERT_DAYS: u32 = 30;
const SC_URL: &str = "https://system-controller.invalid:8119";

fn open_store(dir: &Path) -> Arc<Store> {
    Arc::new(
        Store::open(StoreConfig {
            key: roost_store::KeySource::beside(&dir.join("roost.db")),
            location: roost_store::Location::Sqlite(dir.join("roost.db")),
            durability: Default::default(),
            event_log_cap: 1000,
        })
        .unwrap(),
    )
}

/// A system controller and one subcloud of it, not yet enrolled.
struct Rig {
    clock: Arc<ManualClock>,
    controller: Arc<Direct>,
    /// The subcloud's data directory and services.
    dir: tempfile::TempDir,
    store: Arc<Store>,
    fm: FmService,
    platform: PlatformService,
    log: Arc<Mutex<AlarmLog>>,
    _sc_dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn rig() -> Rig {
    let clock = Arc::new(ManualClock::new(SystemClock::new().now()));
    // The system controller.
    let sc_dir = tempfile::tempdir().unwrap();
    let sc_store = open_store(sc_dir.path());
    let (dc_fm, _) = FmService::start(
        sc_store.clone(),
        Arc::new(roost_fm::Catalogue::builtin()),
        clock.clone(),
        None,
        Arc::new(crate::metrics::Metrics::new()),
    )
    .unwrap();
    // The DC tick loop stops at once: nothing here waits for it.
    let (stop, stop_rx) = tokio::sync::watch::channel(true);
    let (dc, _) = DcService::start(
        sc_store,
        dc_fm.clone(),
        clock.clone(),
        DcConfig {
            settings: roost_dc::DcSettings {
                offline_after_secs: 20,
                out_of_sync_alarm_after_secs: 60,
            },
            sync_interval_secs: 5,
            enroll_ttl_secs: 600,
            cert_days: CERT_DAYS,
        },
        Shutdown(stop_rx),
    )
    .await
    .unwrap();
    let ca = DcCa::load_or_create(&sc_dir.path().join("dc-ca"), "test CA").unwrap();
    let controller = Arc::new(Direct {
        dc,
        ca,
        unreachable: AtomicUsize::new(0),
        lose_replies: AtomicUsize::new(0),
        enroll_calls: AtomicUsize::new(0),
        syncs_handled: AtomicUsize::new(0),
        packages: Mutex::default(),
        fetch_gate: tokio::sync::Semaphore::new(0),
        fetches: AtomicUsize::new(0),
    });
    // The subcloud, its FM feeding the numbered alarm log as in the server.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let log = Arc::new(Mutex::new(AlarmLog::new()));
    let observer: crate::fm_service::ChangeObserver = {
        let log = log.clone();
        let clock = clock.clone();
        Arc::new(move |changes: &[roost_fm::AlarmChange]| {
            record_changes(&log, changes, clock.now());
        })
    };
    let (fm, _) = FmService::start(
        store.clone(),
        Arc::new(roost_fm::Catalogue::builtin()),
        clock.clone(),
        Some(observer),
        Arc::new(crate::metrics::Metrics::new()),
    )
    .unwrap();
    let platform = PlatformService::load(store.clone()).unwrap();
    Rig {
        clock,
        controller,
        dir,
        store,
        fm,
        platform,
        log,
        _sc_dir: sc_dir,
        _stop: stop,
    }
}

impl Rig {
    fn dc(&self) -> &DcService {
        &self.controller.dc
    }

    /// Adds `edge-1` to the system controller; returns its enrollment token.
    async fn add_subcloud(&self) -> String {
        let fp = self.controller.ca.fingerprint();
        self.dc()
            .create("edge-1", None, None, None, None, &fp)
            .await
            .unwrap()
            .1
    }

    /// Enrolls `edge-1`, manages it, and starts its sync loop (not yet
    /// synced).
    async fn enrolled(&self) -> SyncLoop {
        self.enrolled_with(None).await
    }

    /// [`Rig::enrolled`], taking the applications the system controller
    /// wants with `apps`.
    async fn enrolled_with(&self, apps: Option<FleetApps>) -> SyncLoop {
        let token = self.add_subcloud().await;
        let id = enroll_or_load(
            self.dir.path(),
            SC_URL,
            Some(&token),
            self.controller.as_ref(),
        )
        .await
        .unwrap();
        self.dc()
            .update("edge-1", Some("managed"), None, None, None)
            .await
            .unwrap();
        SyncLoop::new(
            self.dir.path().to_path_buf(),
            id,
            Local {
                store: self.store.clone(),
                platform: self.platform.clone(),
                fm: self.fm.clone(),
                clock: self.clock.clone(),
                apps,
                software: None,
            },
            self.log.clone(),
            self.controller.clone(),
        )
    }

    /// This subcloud's application service (no host runs containers) and
    /// its side of the `apps` endpoint.
    async fn fleet_apps(&self) -> (crate::apps::AppService, FleetApps) {
        use crate::hosts::{HostService, HostsConfig, HostsIo, heartbeater::memory};
        let net = memory::Network::default();
        let (hosts, _) = HostService::start(
            HostsIo {
                store: self.store.clone(),
                heartbeat: Arc::new(net.bind("127.0.0.1:2122".parse().unwrap())),
                fm: self.fm.clone(),
                bmc: Arc::new(
                    crate::hosts::bmc::Redfish::new(std::time::Duration::from_secs(1)).unwrap(),
                ),
                clock: self.clock.clone(),
                metrics: Arc::new(crate::metrics::Metrics::new()),
            },
            HostsConfig {
                hostname: "controller-0".into(),
                system_mode: roost_types::SystemMode::Simplex,
                join_token_ttl_secs: 600,
                heartbeat_key_max_age_secs: 0,
                agent_ca: None,
                tpm: Default::default(),
                hold_misses_until: None,
                swact: None,
            },
            self.shutdown(),
        )
        .await
        .unwrap();
        let (apps, _) = crate::apps::AppService::start(
            self.store.clone(),
            self.fm.clone(),
            self.clock.clone(),
            hosts,
            crate::apps::AppsConfig {
                dir: self.dir.path().join("apps"),
                max_package_bytes: 1 << 30,
                settings: roost_apps::AppSettings::default(),
                tick: std::time::Duration::from_secs(3600),
                local_host: "controller-0".into(),
                allow_privileged: false,
            },
            self.shutdown(),
        )
        .await
        .unwrap();
        let fleet = FleetApps::new(apps.clone(), self.dir.path().join("dc-packages"));
        (apps, fleet)
    }

    fn shutdown(&self) -> Shutdown {
        Shutdown(self._stop.subscribe())
    }

    async fn raise(&self, entity: &str) {
        self.fm
            .submit(raise_or_clear(
                "100.104",
                format!("host=controller-0.filesystem={entity}"),
                Some(Severity::Major),
                "filesystem nearly full".into(),
            ))
            .await
            .unwrap();
    }

    /// The alarms the system controller holds for `edge-1`.
    fn controller_alarms(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .dc()
            .subcloud_alarms("edge-1")
            .unwrap()
            .into_iter()
            .map(|a| format!("{} {}", a.alarm_id, a.entity_instance_id))
            .collect();
        v.sort();
        v
    }

    fn endpoint_status(&self, endpoint: &str) -> String {
        self.dc()
            .get("edge-1")
            .unwrap()
            .endpoint_sync_status
            .into_iter()
            .find(|(ep, _)| ep == endpoint)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_sync_whose_reply_is_lost_is_retried_and_not_applied_twice() {
    let r = rig().await;
    let mut sync = r.enrolled().await;
    r.raise("/var").await;
    sync.sync_once().await;
    assert_eq!(r.dc().get("edge-1").unwrap().availability_status, "online");
    assert_eq!(r.controller_alarms().len(), 1);

    // A new alarm and new platform configuration; the reply that
    // acknowledges the one and carries the other is lost.
    r.raise("/scratch").await;
    r.dc()
        .set_desired(EndpointConfig::Platform(PlatformConfig {
            dns_servers: vec!["192.0.2.53".into()],
            ntp_servers: vec![],
            suppressed_alarm_ids: vec![],
        }))
        .await
        .unwrap();
    r.controller.lose_replies.store(1, Ordering::SeqCst);
    let handled = r.controller.syncs_handled.load(Ordering::SeqCst);
    sync.sync_once().await;
    assert_eq!(
        r.controller.syncs_handled.load(Ordering::SeqCst),
        handled + 1,
        "the system controller handled the sync"
    );
    assert_eq!(r.controller_alarms().len(), 2, "and took the new alarm");
    assert!(
        r.platform.current().dns_servers.is_empty(),
        "the push never arrived"
    );

    // The retry sends the change again: taken once, not twice.
    sync.sync_once().await;
    assert_eq!(
        r.controller_alarms(),
        [
            "100.104 host=controller-0.filesystem=/scratch",
            "100.104 host=controller-0.filesystem=/var",
        ]
    );
    let (_, counts, _) = r
        .dc()
        .alarm_summaries()
        .into_iter()
        .find(|(name, _, _)| name == "edge-1")
        .unwrap();
    assert_eq!(counts, Some((0, 2, 0, 0)));
    // The push came again with the retry's reply and was applied.
    assert_eq!(r.platform.current().dns_servers, ["192.0.2.53"]);
    // The next sync reports it; the system controller then sends it no more.
    sync.sync_once().await;
    assert_eq!(r.endpoint_status("platform"), "in-sync");
    let log = r.log.lock().unwrap();
    assert!(
        log.pending_after(sync.link.acked()).is_empty(),
        "all acknowledged"
    );
    assert_eq!(sync.link.acked(), log.last_seq());
}

#[tokio::test]
async fn an_unreachable_system_controller_at_first_start_is_retried_with_backoff() {
    let r = rig().await;
    let token = r.add_subcloud().await;
    r.controller.unreachable.store(2, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let id = enroll_or_load(r.dir.path(), SC_URL, Some(&token), r.controller.as_ref())
        .await
        .expect("enrolls once the system controller answers");
    assert_eq!(id.name, "edge-1");
    assert_eq!(r.controller.enroll_calls.load(Ordering::SeqCst), 3);
    // Waits of 1 and then 2 seconds between the three attempts.
    assert!(started.elapsed() >= Duration::from_secs(3));
    // The identity is kept: the next start loads it without a token.
    let again = enroll_or_load(r.dir.path(), SC_URL, None, r.controller.as_ref())
        .await
        .unwrap();
    assert_eq!(again.cert_pem, id.cert_pem);
    assert_eq!(r.controller.enroll_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_enrollment_is_final() {
    let r = rig().await;
    let token = r.add_subcloud().await;
    let (fp, _) = parse_enroll_token(&token).unwrap();
    let wrong = format!("rsc1.{fp}.{}", "x".repeat(43));
    let e = enroll_or_load(r.dir.path(), SC_URL, Some(&wrong), r.controller.as_ref())
        .await
        .unwrap_err();
    let text = crate::error::error_chain(&e);
    assert!(text.contains("not valid"), "{text}");
    assert_eq!(r.controller.enroll_calls.load(Ordering::SeqCst), 1);
    assert!(!identity_path(r.dir.path()).exists());
}

#[tokio::test]
async fn an_applied_push_is_reported_at_once() {
    let r = rig().await;
    let mut sync = r.enrolled().await;
    let first = sync.sync_once().await;
    let interval = first.micros() - r.clock.now().micros();
    r.dc()
        .set_desired(EndpointConfig::Platform(PlatformConfig {
            dns_servers: vec!["192.0.2.53".into()],
            ntp_servers: vec!["192.0.2.123".into()],
            suppressed_alarm_ids: vec!["100.104".into()],
        }))
        .await
        .unwrap();
    assert_eq!(r.endpoint_status("platform"), "out-of-sync");
    let next = sync.sync_once().await;
    // Applied here: servers and suppressions.
    let servers = r.platform.current();
    assert_eq!(servers.dns_servers, ["192.0.2.53"]);
    assert_eq!(servers.ntp_servers, ["192.0.2.123"]);
    assert!(r.fm.read().suppressed_ids().contains("100.104"));
    // And reported well before the regular sync is due.
    assert!(
        next.micros() - r.clock.now().micros() < interval / 2,
        "the report is due soon: in {} µs, the interval is {interval} µs",
        next.micros() - r.clock.now().micros()
    );
    sync.sync_once().await;
    assert_eq!(r.endpoint_status("platform"), "in-sync");
    // Remembered across a restart of the subcloud: the same push is not
    // taken again.
    drop(sync);
    let mut restarted = SyncLoop::new(
        r.dir.path().to_path_buf(),
        enroll_or_load(r.dir.path(), SC_URL, None, r.controller.as_ref())
            .await
            .unwrap(),
        Local {
            store: r.store.clone(),
            platform: r.platform.clone(),
            fm: r.fm.clone(),
            clock: r.clock.clone(),
            apps: None,
            software: None,
        },
        r.log.clone(),
        r.controller.clone(),
    );
    restarted.sync_once().await;
    assert_eq!(r.endpoint_status("platform"), "in-sync");
}

#[tokio::test]
async fn a_certificate_due_for_renewal_is_renewed_through_the_link() {
    let r = rig().await;
    let mut sync = r.enrolled().await;
    sync.sync_once().await;
    let before = sync.id.cert_pem.clone();
    // Most of the certificate's life later.
    r.clock.advance_secs(i64::from(CERT_DAYS) * 86_400 * 3 / 4);
    sync.sync_once().await;
    assert_ne!(sync.id.cert_pem, before, "renewed");
    let stored = enroll_or_load(r.dir.path(), SC_URL, None, r.controller.as_ref())
        .await
        .unwrap();
    assert_eq!(stored.cert_pem, sync.id.cert_pem, "and kept on disk");
    // The system controller knows the subcloud by the new certificate.
    let handled = r.controller.syncs_handled.load(Ordering::SeqCst);
    sync.sync_once().await;
    assert_eq!(
        r.controller.syncs_handled.load(Ordering::SeqCst),
        handled + 1
    );
}

/// A package of one ConfigMap (nothing to run), built in `dir`.
fn config_package(dir: &Path, name: &str, version: &str) -> PathBuf {
    let src = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(src.join("manifests")).unwrap();
    std::fs::create_dir_all(src.join("images")).unwrap();
    std::fs::write(
        src.join("metadata.yaml"),
        format!("app_name: {name}\napp_version: {version}\n"),
    )
    .unwrap();
    std::fs::write(
        src.join("manifests/config.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{greeting: hello}}\n"),
    )
    .unwrap();
    let out = dir.join(format!("{name}-{version}.tgz"));
    roost_package::build(&src, &out).unwrap();
    out
}

#[tokio::test]
async fn a_package_being_fetched_does_not_hold_up_the_sync_loop() {
    let r = rig().await;
    let (apps, fleet) = r.fleet_apps().await;
    let mut sync = r.enrolled_with(Some(fleet.clone())).await;
    sync.sync_once().await;

    let tgz = config_package(r.dir.path(), "greeter", "1.0");
    let (digest, size) = roost_pki::file_digest(&tgz).unwrap();
    r.controller
        .packages
        .lock()
        .unwrap()
        .insert(digest.clone(), tgz);
    r.dc()
        .assign_app(
            "Default",
            DesiredApp {
                name: "greeter".into(),
                version: "1.0".into(),
                digest,
                size,
                state: "applied".into(),
            },
        )
        .await
        .unwrap();

    // The push starts the fetch, which is held: the sync returns, and the
    // application is reported pending.
    sync.sync_once().await;
    assert!(fleet.is_bringing("greeter"));
    // The fetch task runs on this test's thread once it yields.
    for _ in 0..100 {
        if r.controller.fetches.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(r.controller.fetches.load(Ordering::SeqCst), 1);
    let reports = fleet.reports(&r.store);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, "pending", "{reports:?}");
    assert!(reports[0].reason.contains("fetching"), "{reports:?}");
    assert!(apps.get("greeter").is_err());

    // The loop goes on meanwhile: an alarm reaches the system controller,
    // and the next push does not start a second fetch.
    r.raise("/var").await;
    sync.sync_once().await;
    sync.sync_once().await;
    assert_eq!(r.controller_alarms().len(), 1);
    assert_eq!(r.controller.fetches.load(Ordering::SeqCst), 1);

    // Let through, the package is uploaded here, and the loop is told.
    r.controller.fetch_gate.add_permits(1);
    tokio::time::timeout(std::time::Duration::from_secs(30), fleet.brought())
        .await
        .expect("the package is brought");
    assert!(!fleet.is_bringing("greeter"));
    let app = apps.get("greeter").expect("uploaded");
    assert_eq!(app.app_version, "1.0");
    assert!(
        matches!(app.status.as_str(), "uploading" | "uploaded"),
        "{app:?}"
    );
}

//! The subcloud role: enrollment into a system controller, then the sync
//! loop over mutual TLS that carries the heartbeat, the alarm stream
//! (replayed from the last acknowledged sequence number after a
//! partition) and the configuration pushes, which are applied locally.
//!
//! A subcloud keeps working on its own when the link is down: the loop
//! only retries; nothing local depends on the system controller.
//!
//! The calls to the system controller (enroll, sync, renew) go through a
//! [`ControllerLink`]: HTTPS ([`Https`]) in the server; unit tests call a
//! system controller's `DcService` in the same process.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use roost_api::audit::WireAuditRecord;
use roost_api::dcsync::{
    CertConfig, EndpointConfig, EnrollRequest, EnrollResponse, IdentityConfig, PlatformConfig,
    RenewRequest, SyncReply, SyncRequest, SyncedUser, empty_digest, parse_enroll_token,
    push_applied, sync_request, take_reply,
};
use roost_dc::{
    AlarmChange, AlarmLog, Endpoint, Epoch, Generation, LinkEvent, SubcloudLink, SyncResult,
};
use roost_fm::FmCommand;
use roost_store::Store;
use roost_types::{Clock, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Context, error_chain};
use crate::fm_service::FmService;
use crate::platform::{PlatformKey, PlatformService};
use crate::{Error, Shutdown};

/// Feeds committed alarm changes into the subcloud's numbered log.
pub fn record_changes(log: &Mutex<AlarmLog>, changes: &[roost_fm::AlarmChange], now: Timestamp) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    for c in changes {
        let change = match c {
            roost_fm::AlarmChange::Upsert { after, .. } => AlarmChange {
                seq: 0,
                alarm_id: after.alarm_id.clone(),
                entity_instance_id: after.entity_instance_id.clone(),
                severity: Some(after.severity),
                reason_text: after.reason_text.clone(),
                timestamp: after.timestamp,
            },
            roost_fm::AlarmChange::Remove(a) => AlarmChange {
                seq: 0,
                alarm_id: a.alarm_id.clone(),
                entity_instance_id: a.entity_instance_id.clone(),
                severity: None,
                reason_text: String::new(),
                timestamp: now,
            },
            roost_fm::AlarmChange::Suppression { .. } => continue,
        };
        log.append(change);
    }
}

/// What a subcloud keeps of its enrollment (mode 0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct DcIdentity {
    pub name: String,
    pub system_controller: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for DcIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcIdentity")
            .field("name", &self.name)
            .field("system_controller", &self.system_controller)
            .finish_non_exhaustive()
    }
}

/// Where a subcloud keeps its [`DcIdentity`].
pub fn identity_path(dir: &Path) -> PathBuf {
    dir.join("dc-identity.json")
}

fn save_identity(dir: &Path, id: &DcIdentity) -> crate::Result<()> {
    let path = identity_path(dir);
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(id)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Enrolls with a one-time token (first start) or loads the stored identity.
/// `controller` is the link to the system controller at `system_controller`.
pub async fn enroll_or_load(
    data_dir: &Path,
    system_controller: &str,
    token: Option<&str>,
    controller: &dyn ControllerLink,
) -> crate::Result<DcIdentity> {
    let path = identity_path(data_dir);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut id: DcIdentity = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid subcloud identity", path.display()))?;
        if !system_controller.is_empty() && id.system_controller != system_controller {
            id.system_controller = system_controller.to_string();
            save_identity(data_dir, &id)?;
        }
        return Ok(id);
    }
    let token = token.ok_or_else(|| {
        Error::Invalid(
            "this cloud is not enrolled yet: give the enrollment token from `roost subcloud add` (--enroll-token)"
                .into(),
        )
    })?;
    let (fingerprint, _) = parse_enroll_token(token).ok_or_else(|| {
        Error::Invalid(
            "the enrollment token is malformed (expected rsc1.<fingerprint>.<secret>)".into(),
        )
    })?;
    let client_id = roost_pki::ClientIdentity::generate("subcloud")?;
    let req = EnrollRequest {
        token: token.to_string(),
        csr_pem: client_id.csr_pem.clone(),
    };
    // The system controller may not be up yet (or the link is down): retry
    // with backoff. A refusal or a CA that does not match the token is final.
    let mut backoff = Duration::from_secs(1);
    let e = loop {
        match controller.enroll(&req).await {
            Ok(e) => break e,
            Err(e) if link_final(&e) => {
                return Err(Error::context(
                    format!("cannot enroll into the system controller at {system_controller}"),
                    e,
                ));
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_in_secs = backoff.as_secs(),
                    "cannot enroll yet; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ENROLL_BACKOFF);
            }
        }
    };
    roost_pki::check_ca_fingerprint(&e.ca_pem, fingerprint)
        .context("the system controller's CA does not match the token")?;
    let id = DcIdentity {
        name: e.name,
        system_controller: system_controller.to_string(),
        ca_pem: e.ca_pem,
        cert_pem: e.cert_pem,
        key_pem: client_id.key_pem,
    };
    save_identity(data_dir, &id)?;
    tracing::info!(subcloud = %id.name, "enrolled into the system controller");
    Ok(id)
}

/// The longest wait between two enrollment attempts.
const MAX_ENROLL_BACKOFF: Duration = Duration::from_secs(30);

/// A call to the system controller that failed. Link failures are crate
/// errors of three kinds: `Unreachable` (the request never reached a system
/// controller), `Refused` with a 5xx status (it cannot answer now: worth
/// trying again), and any other `Refused` (a refusal, an unexpected answer,
/// or not the system controller the credentials name: final).
fn link_unavailable(message: String) -> Error {
    Error::Refused {
        status: Some(503),
        message,
    }
}

fn link_refused(message: String) -> Error {
    Error::Refused {
        status: None,
        message,
    }
}

/// Whether a link failure is final (a refusal), not worth retrying.
pub fn link_final(e: &Error) -> bool {
    matches!(e, Error::Refused { status, .. } if !matches!(status, Some(500..=599)))
}

/// A call to the system controller in progress.
pub type LinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// The calls a subcloud makes to its system controller, with the wire
/// types both ends use. [`Https`] is the real link; unit tests call a
/// system controller's service in the same process.
pub trait ControllerLink: Send + Sync + 'static {
    /// Enrolls with a one-time token (no client certificate yet).
    fn enroll<'a>(&'a self, req: &'a EnrollRequest) -> LinkFuture<'a, EnrollResponse>;
    /// One sync, as the subcloud `id` (by its certificate).
    fn sync<'a>(&'a self, id: &'a DcIdentity, req: &'a SyncRequest) -> LinkFuture<'a, SyncReply>;
    /// A new certificate for the subcloud `id`.
    fn renew<'a>(
        &'a self,
        id: &'a DcIdentity,
        req: &'a RenewRequest,
    ) -> LinkFuture<'a, EnrollResponse>;
    /// Fetches the package `digest` (`size` bytes) into `dir` unless it is
    /// there (see [`roost_pki::fetch_content`]).
    fn fetch_package<'a>(
        &'a self,
        id: &'a DcIdentity,
        digest: &'a str,
        size: u64,
        dir: &'a Path,
    ) -> LinkFuture<'a, roost_pki::Fetched> {
        let _ = (id, size, dir);
        Box::pin(async move {
            Err(link_refused(format!(
                "this link cannot fetch package {digest}"
            )))
        })
    }
}

/// The link over HTTPS: enrollment pinned to the CA fingerprint in the
/// token, syncs and renewals with mutual TLS.
pub struct Https {
    url: String,
    /// The mutual-TLS client, and the certificate it presents.
    client: Mutex<Option<(String, reqwest::Client)>>,
}

impl Https {
    /// A link to the system controller at `system_controller` (its DC
    /// listener's URL).
    pub fn new(system_controller: &str) -> Https {
        Https {
            url: system_controller.trim_end_matches('/').to_string(),
            client: Mutex::new(None),
        }
    }

    /// The mutual-TLS client presenting `id`'s certificate (made again when
    /// the certificate changed).
    fn client(&self, id: &DcIdentity) -> Result<reqwest::Client, Error> {
        let mut cached = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cert, client)) = cached.as_ref()
            && *cert == id.cert_pem
        {
            return Ok(client.clone());
        }
        let client = client_for(id).map_err(|e| link_refused(error_chain(&e)))?;
        *cached = Some((id.cert_pem.clone(), client.clone()));
        Ok(client)
    }

    /// Posts `body` to `path`; `what` names the call in errors. A request
    /// that failed for another reason than reaching the system controller
    /// (a certificate check) is `Refused` when `strict`, otherwise
    /// `Unreachable`.
    async fn post<Req: Serialize + Sync, Resp: DeserializeOwned>(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Req,
        what: &str,
        strict: bool,
    ) -> Result<Resp, Error> {
        let resp = client
            .post(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(30))
            .json(body)
            .send()
            .await
            .map_err(|e| {
                let retry = !strict || unreachable(&e);
                let text = error_chain(&Error::context(
                    format!("cannot reach the system controller at {}", self.url),
                    e,
                ));
                if retry {
                    Error::Unreachable(text)
                } else {
                    link_refused(text)
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let text = format!(
                "{what} refused ({status}): {}",
                body.chars().take(300).collect::<String>()
            );
            return Err(if status.is_server_error() {
                link_unavailable(text)
            } else {
                link_refused(text)
            });
        }
        resp.json()
            .await
            .map_err(|e| link_refused(format!("unexpected {what} answer: {e}")))
    }
}

impl ControllerLink for Https {
    fn enroll<'a>(&'a self, req: &'a EnrollRequest) -> LinkFuture<'a, EnrollResponse> {
        Box::pin(async move {
            let (fingerprint, _) = parse_enroll_token(&req.token)
                .ok_or_else(|| link_refused("the enrollment token is malformed".into()))?;
            let client = roost_pki::pinned_client_config(fingerprint)
                .and_then(roost_pki::https_client)
                .map_err(|e| link_refused(error_chain(&e)))?;
            self.post(&client, "/dc/v1/enroll", req, "enrollment", true)
                .await
        })
    }

    fn sync<'a>(&'a self, id: &'a DcIdentity, req: &'a SyncRequest) -> LinkFuture<'a, SyncReply> {
        Box::pin(async move {
            let client = self.client(id)?;
            self.post(&client, "/dc/v1/sync", req, "sync", false).await
        })
    }

    fn renew<'a>(
        &'a self,
        id: &'a DcIdentity,
        req: &'a RenewRequest,
    ) -> LinkFuture<'a, EnrollResponse> {
        Box::pin(async move {
            let client = self.client(id)?;
            self.post(&client, "/dc/v1/renew", req, "renewal", false)
                .await
        })
    }

    fn fetch_package<'a>(
        &'a self,
        id: &'a DcIdentity,
        digest: &'a str,
        size: u64,
        dir: &'a Path,
    ) -> LinkFuture<'a, roost_pki::Fetched> {
        Box::pin(async move {
            let client = self.client(id)?;
            let url = format!("{}{}{digest}", self.url, roost_api::dcsync::PACKAGES_PATH);
            roost_pki::fetch_content(&client, &url, dir, digest, size)
                .await
                .map_err(|e| match &e {
                    roost_pki::Error::Http(h) if unreachable(h) => {
                        Error::Unreachable(error_chain(&e))
                    }
                    _ => link_refused(error_chain(&e)),
                })
        })
    }
}

/// Whether a failed request never reached a system controller (refused,
/// reset, timed out, unreachable) rather than being refused by one or
/// failing its certificate check.
fn unreachable(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        // An `io::Error` wrapping another hides it from `source()`.
        let mut io = err.downcast_ref::<std::io::Error>();
        while let Some(e) = io {
            if io_unreachable(e.kind()) {
                return true;
            }
            io = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        source = err.source();
    }
    e.is_timeout()
}

fn io_unreachable(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | AddrNotAvailable
            | UnexpectedEof
            | BrokenPipe
    )
}

const SETTING_DC_CA: &str = "dc-cert.ca_bundle";
const SETTING_APPLIED: &str = "dc.applied.";
/// The file holding the admin password made at the first start.
const ADMIN_CREDENTIALS: &str = "admin-credentials";
/// Names of the users the system controller last synced (only those are compared).
const SETTING_SYNCED_USERS: &str = "dc.identity.users";

/// This cloud's platform configuration as a system controller syncs it:
/// DNS and NTP servers and the suppressed alarm ids.
pub fn platform_content(platform: &PlatformService, fm: &FmService) -> PlatformConfig {
    let servers = platform.current();
    PlatformConfig {
        dns_servers: servers.dns_servers,
        ntp_servers: servers.ntp_servers,
        suppressed_alarm_ids: fm.read().suppressed_ids().iter().cloned().collect(),
    }
}

/// Users, password hashes and roles as a system controller syncs them.
/// `only` limits the list to these names.
pub fn identity_content(store: &Store, only: Option<&BTreeSet<String>>) -> IdentityConfig {
    IdentityConfig {
        users: store
            .synced_users()
            .unwrap_or_default()
            .into_iter()
            .filter(|u| only.is_none_or(|names| names.contains(&u.name)))
            .map(|u| SyncedUser {
                name: u.name,
                password_hash: u.password_hash,
                roles: u.roles,
            })
            .collect(),
    }
}

/// What this subcloud runs of a synced endpoint type (`None`: the type
/// carries no configuration).
fn local_config(
    store: &Store,
    platform: &PlatformService,
    fm: &FmService,
    ep: Endpoint,
) -> Option<EndpointConfig> {
    Some(match ep {
        Endpoint::Platform => EndpointConfig::Platform(platform_content(platform, fm)),
        Endpoint::Identity => {
            let names: Option<BTreeSet<String>> = store
                .setting(SETTING_SYNCED_USERS)
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_str(&v).ok());
            EndpointConfig::Identity(identity_content(store, names.as_ref()))
        }
        Endpoint::DcCert => EndpointConfig::DcCert(CertConfig {
            ca_bundle: store
                .setting(SETTING_DC_CA)
                .ok()
                .flatten()
                .unwrap_or_default(),
        }),
        _ => return None,
    })
}

/// The digest of what this subcloud runs of `ep`, as the system
/// controller compares it.
fn local_digest(
    store: &Store,
    platform: &PlatformService,
    fm: &FmService,
    apps: Option<&FleetApps>,
    ep: Endpoint,
) -> String {
    if ep == Endpoint::Apps {
        return apps
            .map(|a| a.local_config(store))
            .unwrap_or_default()
            .digest();
    }
    local_config(store, platform, fm, ep).map_or_else(empty_digest, |c| c.digest())
}

async fn apply(
    store: &Arc<Store>,
    platform: &PlatformService,
    fm: &FmService,
    clock: &dyn Clock,
    data_dir: &Path,
    config: &EndpointConfig,
) -> crate::Result<()> {
    match config {
        EndpointConfig::Platform(p) => {
            platform
                .set(vec![
                    (PlatformKey::DnsServers, p.dns_servers.clone()),
                    (PlatformKey::NtpServers, p.ntp_servers.clone()),
                ])
                .await?;
            let want: BTreeSet<String> = p.suppressed_alarm_ids.iter().cloned().collect();
            let have = fm.read().suppressed_ids().clone();
            for id in want.difference(&have) {
                if let Err(e) = fm
                    .submit(FmCommand::Suppress {
                        alarm_id: id.clone(),
                        suppressed: true,
                    })
                    .await
                {
                    tracing::warn!(alarm_id = %id, error = %e, "cannot apply a synced suppression");
                }
            }
            for id in have.difference(&want) {
                let _ = fm
                    .submit(FmCommand::Suppress {
                        alarm_id: id.clone(),
                        suppressed: false,
                    })
                    .await;
            }
        }
        EndpointConfig::DcCert(c) => {
            store.set_settings(&[(SETTING_DC_CA.into(), c.ca_bundle.clone())])?;
        }
        EndpointConfig::Identity(identity) => {
            let users: Vec<roost_store::SyncedUser> = identity
                .users
                .iter()
                .map(|u| {
                    let mut roles = u.roles.clone();
                    roles.sort();
                    roost_store::SyncedUser {
                        name: u.name.clone(),
                        password_hash: u.password_hash.clone(),
                        roles,
                    }
                })
                .collect();
            let names: BTreeSet<String> = users.iter().map(|u| u.name.clone()).collect();
            store.apply_synced_users(
                &users,
                &mut || uuid::Uuid::new_v4().simple().to_string(),
                clock.now(),
            )?;
            store.set_settings(&[(SETTING_SYNCED_USERS.into(), serde_json::to_string(&names)?)])?;
            forget_local_admin_password(data_dir, &users);
        }
        // Applied by `FleetApps` and `FleetSoftware`, which need the link.
        EndpointConfig::Apps(_) => {
            return Err(Error::Invalid(
                "this cloud has no application service".into(),
            ));
        }
        EndpointConfig::Software(_) => {
            return Err(Error::Invalid(
                "this cloud takes no releases from a system controller".into(),
            ));
        }
    }
    Ok(())
}

/// Once the system controller's admin user is synced, the password in this
/// cloud's `admin-credentials` file (written at its first start) no longer
/// works: the file is removed rather than left to mislead.
fn forget_local_admin_password(data_dir: &Path, users: &[roost_store::SyncedUser]) {
    if !users.iter().any(|u| u.name == "admin") {
        return;
    }
    let path = data_dir.join(ADMIN_CREDENTIALS);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(
            path = %path.display(),
            "the admin password is now the system controller's; removed the local admin credentials file"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the stale admin credentials file")
        }
    }
}

fn system_time(t: Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(t.micros().max(0) as u64)
}

/// The services of this cloud a subcloud's sync loop reads and applies.
pub struct Local {
    pub store: Arc<Store>,
    pub platform: PlatformService,
    pub fm: FmService,
    pub clock: Arc<dyn Clock>,
    /// The applications a system controller wants here (`None`: this cloud
    /// refuses the `apps` endpoint).
    pub apps: Option<FleetApps>,
    /// The releases a system controller keeps here and its deploy orders
    /// (`None`: this cloud refuses the `software` endpoint).
    pub software: Option<FleetSoftware>,
}

/// The sync loop's state: the link state machine, this subcloud's identity
/// and what it reads and applies. [`SyncLoop::run`] is the task;
/// [`SyncLoop::sync_once`] is one round of it.
pub struct SyncLoop {
    data_dir: PathBuf,
    id: DcIdentity,
    local: Local,
    log: Arc<Mutex<AlarmLog>>,
    controller: Arc<dyn ControllerLink>,
    link: SubcloudLink,
    /// The last audit record number the system controller holds (`None`
    /// until its first answer says).
    audit_acked: Option<u64>,
}

impl SyncLoop {
    /// A sync loop for the enrolled subcloud `id`, remembering the pushes
    /// it applied before a restart.
    pub fn new(
        data_dir: PathBuf,
        id: DcIdentity,
        local: Local,
        log: Arc<Mutex<AlarmLog>>,
        controller: Arc<dyn ControllerLink>,
    ) -> SyncLoop {
        let mut link = SubcloudLink::new(local.clock.now(), seed(&id.name));
        for ep in Endpoint::SYNCED {
            if let Ok(Some(v)) = local
                .store
                .setting(&format!("{SETTING_APPLIED}{}", ep.as_str()))
                && let Some((e, g)) = v.split_once(':')
                && let (Ok(e), Ok(g)) = (e.parse::<u64>(), g.parse::<u64>())
            {
                link.restore_applied(ep, Epoch(e), Generation(g));
            }
        }
        SyncLoop {
            data_dir,
            id,
            local,
            log,
            controller,
            link,
            audit_acked: None,
        }
    }

    /// Syncs until shutdown.
    pub async fn run(mut self, shutdown: Shutdown) {
        loop {
            let next = self.sync_once().await;
            let now = self.local.clock.now();
            let wait = Duration::from_micros((next.micros() - now.micros()).max(0) as u64);
            let brought = async {
                match &self.local.apps {
                    Some(a) => a.brought().await,
                    None => std::future::pending().await,
                }
            };
            let released = async {
                match &self.local.software {
                    Some(s) => s.brought().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                // A package is here: its next step without waiting.
                _ = brought => {}
                _ = released => {}
            }
        }
    }

    /// One sync: the request, the reply taken into the link and its pushes
    /// applied, then a certificate renewal if one is due. Returns when the
    /// next sync is due.
    pub async fn sync_once(&mut self) -> Timestamp {
        let Local {
            store,
            platform,
            fm,
            clock,
            apps,
            software,
        } = &self.local;
        let mut req = {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            sync_request(&self.link, &log, env!("CARGO_PKG_VERSION"), |ep| {
                if ep == Endpoint::Software {
                    return software
                        .as_ref()
                        .map(|s| s.local_config(store).digest())
                        .unwrap_or_else(empty_digest);
                }
                local_digest(store, platform, fm, apps.as_ref(), ep)
            })
        };
        if let Some(a) = apps {
            req.apps = a.reports(store);
        }
        if let Some(s) = software {
            req.order = s.report(store);
        }
        // Audit records after what the system controller holds, bounded;
        // none before it said what it holds.
        if let Some(after) = self.audit_acked {
            match store.audit_after(after, roost_api::dcsync::MAX_AUDIT_PER_SYNC as u64) {
                Ok(rs) => req.audit = rs.iter().map(WireAuditRecord::from).collect(),
                Err(e) => tracing::warn!(error = %e, "cannot read the audit log to forward"),
            }
        }
        let sent_snapshot = req.snapshot.is_some();
        let reply = match self.controller.sync(&self.id, &req).await {
            Ok(reply) => Some(reply),
            Err(Error::Unreachable(e)) => {
                if self.link.finished(sent_snapshot, SyncResult::Unreachable)
                    == Some(LinkEvent::Lost)
                {
                    tracing::warn!(error = %e, "lost the system controller; carrying on alone");
                }
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "the system controller refused a sync");
                // A refused stream (gap, restart of either side): start over with a snapshot.
                self.link.finished(sent_snapshot, SyncResult::Refused);
                None
            }
        };
        if let Some(reply) = reply {
            if reply.audit_acked.is_some() {
                self.audit_acked = reply.audit_acked;
            }
            let order = reply.order.clone();
            let taken = take_reply(&mut self.link, sent_snapshot, reply);
            if taken.event == Some(LinkEvent::Connected) {
                tracing::info!(subcloud = %self.id.name, "connected to the system controller");
            }
            self.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ack(self.link.acked());
            for stale in &taken.stale {
                tracing::warn!(endpoint = stale.endpoint.as_str(), error = %stale, "refusing a stale configuration push");
            }
            for p in &taken.pushes {
                let ep = p.config.endpoint();
                let applied = match (&p.config, apps, software) {
                    (EndpointConfig::Apps(want), Some(a), _) => {
                        a.apply(store, &self.controller, &self.id, want).await
                    }
                    (EndpointConfig::Software(want), _, Some(s)) => {
                        s.apply(store, &self.controller, &self.id, want)
                    }
                    _ => {
                        apply(
                            store,
                            platform,
                            fm,
                            clock.as_ref(),
                            &self.data_dir,
                            &p.config,
                        )
                        .await
                    }
                };
                match applied {
                    Ok(()) => {
                        push_applied(&mut self.link, p);
                        let key = format!("{SETTING_APPLIED}{}", ep.as_str());
                        let value = format!("{}:{}", p.epoch, p.generation);
                        // A push repeated while applications move is
                        // not written again.
                        if store.setting(&key).ok().flatten().as_deref() != Some(value.as_str()) {
                            let _ = store.set_settings(&[(key, value)]);
                            tracing::info!(
                                endpoint = ep.as_str(),
                                generation = p.generation,
                                "applied configuration from the system controller"
                            );
                        } else {
                            tracing::debug!(
                                endpoint = ep.as_str(),
                                generation = p.generation,
                                "applied a repeated configuration push"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = ep.as_str(), error = %e, "cannot apply configuration")
                    }
                }
            }
            if let Some(s) = software
                && s.take_order(store, order.as_ref()).await
            {
                self.link.report_soon();
            }
        }
        // Certificate renewal before expiry.
        if let Ok(info) = roost_pki::cert_info(&self.id.cert_pem)
            && roost_pki::needs_renewal(&info, system_time(clock.now()))
        {
            match renew(self.controller.as_ref(), &self.id).await {
                Ok(new_id) => {
                    if let Err(e) = save_identity(&self.data_dir, &new_id) {
                        tracing::warn!(error = %e, "cannot store the renewed certificate");
                    } else {
                        self.id = new_id;
                        tracing::info!("subcloud certificate renewed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed; will retry"),
            }
        }
        let now = clock.now();
        self.link.next_sync(now)
    }
}

/// A stable number from a name, to spread subclouds' sync times.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn client_for(id: &DcIdentity) -> crate::Result<reqwest::Client> {
    let cfg = roost_pki::client_config(&id.ca_pem, Some((&id.cert_pem, &id.key_pem)))?;
    Ok(roost_pki::https_client(cfg)?)
}

async fn renew(controller: &dyn ControllerLink, id: &DcIdentity) -> crate::Result<DcIdentity> {
    let fresh = roost_pki::ClientIdentity::generate(&id.name)?;
    let e = controller
        .renew(
            id,
            &RenewRequest {
                csr_pem: fresh.csr_pem.clone(),
            },
        )
        .await?;
    // Checked before it is kept: a certificate this subcloud cannot use
    // would cut it off at the next sync.
    client_for(&DcIdentity {
        cert_pem: e.cert_pem.clone(),
        key_pem: fresh.key_pem.clone(),
        ..id.clone()
    })?;
    Ok(DcIdentity {
        name: id.name.clone(),
        system_controller: id.system_controller.clone(),
        ca_pem: id.ca_pem.clone(),
        cert_pem: e.cert_pem,
        key_pem: fresh.key_pem,
    })
}

mod fleet_apps;
mod fleet_software;
pub use fleet_apps::FleetApps;
pub use fleet_software::FleetSoftware;

#[cfg(test)]
mod tests;

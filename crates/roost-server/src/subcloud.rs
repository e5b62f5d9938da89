//! The subcloud role: enrollment into a system controller, then the sync
//! loop over mutual TLS that carries the heartbeat, the alarm stream
//! (replayed from the last acknowledged sequence number after a
//! partition) and the configuration pushes, which are applied locally.
//!
//! A subcloud keeps working on its own when the link is down: the loop
//! only retries; nothing local depends on the system controller.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use roost_api::dcsync::{
    CertConfig, EndpointConfig, EnrollRequest, EnrollResponse, IdentityConfig, PlatformConfig,
    RenewRequest, SyncReply, SyncedUser, empty_digest, parse_enroll_token, push_applied,
    sync_request, take_reply,
};
use roost_dc::{
    AlarmChange, AlarmLog, Endpoint, Epoch, Generation, LinkEvent, SubcloudLink, SyncResult,
};
use roost_fm::FmCommand;
use roost_store::Store;
use roost_types::{Clock, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Shutdown;
use crate::error::{Context, Error, error_chain};
use crate::fm_service::FmService;
use crate::platform::{PlatformKey, PlatformService};

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

fn identity_path(dir: &Path) -> PathBuf {
    dir.join("dc-identity.json")
}

fn save_identity(dir: &Path, id: &DcIdentity) -> Result<(), Error> {
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
pub async fn enroll_or_load(
    data_dir: &Path,
    system_controller: &str,
    token: Option<&str>,
) -> Result<DcIdentity, Error> {
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
            "this cloud is not enrolled yet: give the enrollment token from `roost subcloud add` (--enroll-token)".into(),
        )
    })?;
    let (fingerprint, _) = parse_enroll_token(token).ok_or_else(|| {
        Error::Invalid(
            "the enrollment token is malformed (expected rsc1.<fingerprint>.<secret>)".into(),
        )
    })?;
    let client_id = roost_pki::ClientIdentity::generate("subcloud")?;
    let http = roost_pki::https_client(roost_pki::pinned_client_config(fingerprint)?)?;
    // The system controller may not be up yet (or the link is down): retry
    // with backoff. A refusal or a CA that does not match the token is final.
    let mut backoff = Duration::from_secs(1);
    let e = loop {
        match enroll_once(&http, system_controller, token, &client_id.csr_pem).await {
            Ok(e) => break e,
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Retry(e)) => {
                tracing::warn!(
                    error = %error_chain(&e),
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

/// Why an enrollment attempt failed.
enum Attempt {
    /// Unreachable, or answered "try later": try again.
    Retry(Error),
    /// Refused, or not the system controller the token names.
    Final(Error),
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

async fn enroll_once(
    http: &reqwest::Client,
    system_controller: &str,
    token: &str,
    csr_pem: &str,
) -> Result<EnrollResponse, Attempt> {
    let resp = http
        .post(format!(
            "{}/dc/v1/enroll",
            system_controller.trim_end_matches('/')
        ))
        .timeout(Duration::from_secs(30))
        .json(&EnrollRequest {
            token: token.to_string(),
            csr_pem: csr_pem.to_string(),
        })
        .send()
        .await
        .map_err(|e| {
            let retry = unreachable(&e);
            let e = Error::context(
                format!("cannot reach the system controller at {system_controller}"),
                e,
            );
            if retry {
                Attempt::Retry(e)
            } else {
                Attempt::Final(e)
            }
        })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        let e = Error::Refused {
            status: Some(status.as_u16()),
            message: format!(
                "enrollment refused ({status}): {}",
                body.chars().take(300).collect::<String>()
            ),
        };
        return Err(if status.is_server_error() {
            Attempt::Retry(e)
        } else {
            Attempt::Final(e)
        });
    }
    resp.json()
        .await
        .context("unexpected enrollment answer")
        .map_err(Attempt::Final)
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
fn local_digest(store: &Store, platform: &PlatformService, fm: &FmService, ep: Endpoint) -> String {
    local_config(store, platform, fm, ep).map_or_else(empty_digest, |c| c.digest())
}

async fn apply(
    store: &Arc<Store>,
    platform: &PlatformService,
    fm: &FmService,
    clock: &dyn Clock,
    data_dir: &Path,
    config: &EndpointConfig,
) -> Result<(), Error> {
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
}

/// The sync loop; runs until shutdown.
pub async fn run(
    data_dir: PathBuf,
    mut id: DcIdentity,
    local: Local,
    log: Arc<Mutex<AlarmLog>>,
    shutdown: Shutdown,
) {
    let Local {
        store,
        platform,
        fm,
        clock,
    } = local;
    let mut link = SubcloudLink::new(clock.now(), seed(&id.name));
    for ep in Endpoint::SYNCED {
        if let Ok(Some(v)) = store.setting(&format!("{SETTING_APPLIED}{}", ep.as_str()))
            && let Some((e, g)) = v.split_once(':')
            && let (Ok(e), Ok(g)) = (e.parse::<u64>(), g.parse::<u64>())
        {
            link.restore_applied(ep, Epoch(e), Generation(g));
        }
    }
    let mut client = match client_for(&id) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the system controller client");
            return;
        }
    };
    loop {
        // One sync.
        let req = {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            sync_request(&link, &log, env!("CARGO_PKG_VERSION"), |ep| {
                local_digest(&store, &platform, &fm, ep)
            })
        };
        let sent_snapshot = req.snapshot.is_some();
        let url = format!("{}/dc/v1/sync", id.system_controller.trim_end_matches('/'));
        let reply = match client.post(&url).json(&req).send().await {
            Ok(resp) if resp.status().is_success() => match resp.json::<SyncReply>().await {
                Ok(reply) => Some(reply),
                Err(e) => {
                    tracing::warn!(error = %e, "unexpected answer from the system controller");
                    link.finished(sent_snapshot, SyncResult::Refused);
                    None
                }
            },
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                tracing::warn!(%status, body = %body.chars().take(200).collect::<String>(), "the system controller refused a sync");
                // A refused stream (gap, restart of either side): start over with a snapshot.
                link.finished(sent_snapshot, SyncResult::Refused);
                None
            }
            Err(e) => {
                if link.finished(sent_snapshot, SyncResult::Unreachable) == Some(LinkEvent::Lost) {
                    tracing::warn!(error = %e, "lost the system controller; carrying on alone");
                }
                None
            }
        };
        if let Some(reply) = reply {
            let taken = take_reply(&mut link, sent_snapshot, reply);
            if taken.event == Some(LinkEvent::Connected) {
                tracing::info!(subcloud = %id.name, "connected to the system controller");
            }
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .ack(link.acked());
            for stale in &taken.stale {
                tracing::warn!(endpoint = stale.endpoint.as_str(), error = %stale, "refusing a stale configuration push");
            }
            for p in &taken.pushes {
                let ep = p.config.endpoint();
                match apply(&store, &platform, &fm, clock.as_ref(), &data_dir, &p.config).await {
                    Ok(()) => {
                        push_applied(&mut link, p);
                        let _ = store.set_settings(&[(
                            format!("{SETTING_APPLIED}{}", ep.as_str()),
                            format!("{}:{}", p.epoch, p.generation),
                        )]);
                        tracing::info!(
                            endpoint = ep.as_str(),
                            generation = p.generation,
                            "applied configuration from the system controller"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = ep.as_str(), error = %e, "cannot apply configuration")
                    }
                }
            }
        }
        // Certificate renewal before expiry.
        if let Ok(info) = roost_pki::cert_info(&id.cert_pem)
            && roost_pki::needs_renewal(&info, system_time(clock.now()))
        {
            match renew(&client, &id).await {
                Ok(new_id) => {
                    if let Err(e) = save_identity(&data_dir, &new_id) {
                        tracing::warn!(error = %e, "cannot store the renewed certificate");
                    } else if let Ok(c) = client_for(&new_id) {
                        id = new_id;
                        client = c;
                        tracing::info!("subcloud certificate renewed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed; will retry"),
            }
        }
        let now = clock.now();
        let next = link.next_sync(now);
        let wait = Duration::from_micros((next.micros() - now.micros()).max(0) as u64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A stable number from a name, to spread subclouds' sync times.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn client_for(id: &DcIdentity) -> Result<reqwest::Client, Error> {
    let cfg = roost_pki::client_config(&id.ca_pem, Some((&id.cert_pem, &id.key_pem)))?;
    Ok(roost_pki::https_client(cfg)?)
}

async fn renew(client: &reqwest::Client, id: &DcIdentity) -> Result<DcIdentity, Error> {
    let fresh = roost_pki::ClientIdentity::generate(&id.name)?;
    let resp = client
        .post(format!(
            "{}/dc/v1/renew",
            id.system_controller.trim_end_matches('/')
        ))
        .json(&RenewRequest {
            csr_pem: fresh.csr_pem.clone(),
        })
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(Error::Refused {
            status: Some(resp.status().as_u16()),
            message: format!("renewal refused ({})", resp.status()),
        });
    }
    let e: EnrollResponse = resp.json().await?;
    Ok(DcIdentity {
        name: id.name.clone(),
        system_controller: id.system_controller.clone(),
        ca_pem: id.ca_pem.clone(),
        cert_pem: e.cert_pem,
        key_pem: fresh.key_pem,
    })
}

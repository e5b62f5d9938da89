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

use anyhow::Context;
use roost_api::dcsync::{
    AppliedEndpoint, EnrollRequest, EnrollResponse, RenewRequest, SyncReply, SyncRequest,
    parse_enroll_token,
};
use roost_dc::{AlarmChange, AlarmLog, Applied, Endpoint, Epoch, Generation};
use roost_fm::FmCommand;
use roost_store::Store;
use roost_types::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Shutdown;
use crate::dc::digest;
use crate::fm_service::FmService;

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

fn save_identity(dir: &Path, id: &DcIdentity) -> anyhow::Result<()> {
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
) -> anyhow::Result<DcIdentity> {
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
    let token = token.context(
        "this cloud is not enrolled yet: give the enrollment token from `roost subcloud add` (--enroll-token)",
    )?;
    let (fingerprint, _) = parse_enroll_token(token)
        .context("the enrollment token is malformed (expected rsc1.<fingerprint>.<secret>)")?;
    let client_id = roost_pki::ClientIdentity::generate("subcloud")?;
    let http = roost_pki::https_client(roost_pki::pinned_client_config(fingerprint)?)?;
    let resp = http
        .post(format!(
            "{}/dc/v1/enroll",
            system_controller.trim_end_matches('/')
        ))
        .json(&EnrollRequest {
            token: token.to_string(),
            csr_pem: client_id.csr_pem.clone(),
        })
        .send()
        .await
        .with_context(|| format!("cannot reach the system controller at {system_controller}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!(
            "enrollment refused ({status}): {}",
            body.chars().take(300).collect::<String>()
        );
    }
    let e: EnrollResponse = resp.json().await.context("unexpected enrollment answer")?;
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

const SETTING_DNS: &str = "platform.dns_servers";
const SETTING_NTP: &str = "platform.ntp_servers";
const SETTING_DC_CA: &str = "dc-cert.ca_bundle";
const SETTING_APPLIED: &str = "dc.applied.";
/// Names of the users the system controller last synced (only those are compared).
const SETTING_SYNCED_USERS: &str = "dc.identity.users";

fn servers(store: &Store, key: &str) -> Vec<String> {
    store
        .setting(key)
        .ok()
        .flatten()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// This cloud's platform configuration as a system controller syncs it:
/// DNS and NTP servers and the suppressed alarm ids.
pub fn platform_content(store: &Store, fm: &FmService) -> Value {
    let suppressed: Vec<String> = fm.read().suppressed_ids().iter().cloned().collect();
    json!({
        "dns_servers": servers(store, SETTING_DNS),
        "ntp_servers": servers(store, SETTING_NTP),
        "suppressed_alarm_ids": suppressed,
    })
}

/// Users, password hashes and roles as a system controller syncs them.
/// `only` limits the list to these names.
pub fn identity_content(store: &Store, only: Option<&BTreeSet<String>>) -> Value {
    let users: Vec<Value> = store
        .synced_users()
        .unwrap_or_default()
        .into_iter()
        .filter(|u| only.is_none_or(|names| names.contains(&u.name)))
        .map(|u| json!({"name": u.name, "password_hash": u.password_hash, "roles": u.roles}))
        .collect();
    json!({ "users": users })
}

fn local_content(store: &Store, fm: &FmService, ep: Endpoint) -> Value {
    match ep {
        Endpoint::Platform => platform_content(store, fm),
        Endpoint::Identity => {
            let names: Option<BTreeSet<String>> = store
                .setting(SETTING_SYNCED_USERS)
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_str(&v).ok());
            identity_content(store, names.as_ref())
        }
        Endpoint::DcCert => json!({
            "ca_bundle": store.setting(SETTING_DC_CA).ok().flatten().unwrap_or_default(),
        }),
        _ => Value::Null,
    }
}

async fn apply(
    store: &Arc<Store>,
    fm: &FmService,
    ep: Endpoint,
    content: &Value,
) -> anyhow::Result<()> {
    match ep {
        Endpoint::Platform => {
            let list = |k: &str| -> String {
                content[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            };
            store.set_settings(&[
                (SETTING_DNS.into(), list("dns_servers")),
                (SETTING_NTP.into(), list("ntp_servers")),
            ])?;
            let want: BTreeSet<String> = content["suppressed_alarm_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
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
        Endpoint::DcCert => {
            let bundle = content["ca_bundle"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            store.set_settings(&[(SETTING_DC_CA.into(), bundle)])?;
        }
        Endpoint::Identity => {
            let mut users = Vec::new();
            for u in content["users"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let (Some(name), Some(hash)) = (u["name"].as_str(), u["password_hash"].as_str())
                else {
                    anyhow::bail!("an identity push holds a user without name or password hash");
                };
                let mut roles: Vec<String> = u["roles"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                roles.sort();
                users.push(roost_store::SyncedUser {
                    name: name.to_string(),
                    password_hash: hash.to_string(),
                    roles,
                });
            }
            let names: BTreeSet<String> = users.iter().map(|u| u.name.clone()).collect();
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            store.apply_synced_users(
                &users,
                &mut || uuid::Uuid::new_v4().simple().to_string(),
                Timestamp(now),
            )?;
            store.set_settings(&[(SETTING_SYNCED_USERS.into(), serde_json::to_string(&names)?)])?;
        }
        _ => {}
    }
    Ok(())
}

/// The sync loop; runs until shutdown.
pub async fn run(
    data_dir: PathBuf,
    mut id: DcIdentity,
    store: Arc<Store>,
    fm: FmService,
    log: Arc<Mutex<AlarmLog>>,
    shutdown: Shutdown,
) {
    let mut applied = Applied::new();
    for ep in Endpoint::SYNCED {
        if let Ok(Some(v)) = store.setting(&format!("{SETTING_APPLIED}{}", ep.as_str()))
            && let Some((e, g)) = v.split_once(':')
            && let (Ok(e), Ok(g)) = (e.parse::<u64>(), g.parse::<u64>())
        {
            applied.restore(ep, Epoch(e), Generation(g));
        }
    }
    let mut client = match client_for(&id) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the system controller client");
            return;
        }
    };
    let mut acked: u64 = 0;
    let mut need_snapshot = true;
    let mut interval = Duration::from_secs(2);
    let mut online = false;
    // Quick re-syncs after applying pushes, bounded so that a push that
    // never converges cannot make the subcloud hammer its controller.
    let mut quick_left = 3u32;
    loop {
        let mut again_soon = false;
        // One sync.
        let req = {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            let (snapshot, changes) =
                roost_api::dcsync::alarm_payload(&log, acked, need_snapshot, 2000);
            SyncRequest {
                software_version: Some(env!("CARGO_PKG_VERSION").to_string()),
                snapshot,
                changes,
                applied: Endpoint::SYNCED
                    .iter()
                    .map(|ep| AppliedEndpoint {
                        endpoint: ep.as_str().to_string(),
                        generation: applied.generation(*ep).0,
                        digest: digest(&local_content(&store, &fm, *ep)),
                    })
                    .collect(),
            }
        };
        let sent_snapshot = req.snapshot.is_some();
        let url = format!("{}/dc/v1/sync", id.system_controller.trim_end_matches('/'));
        match client.post(&url).json(&req).send().await {
            Ok(resp) if resp.status().is_success() => match resp.json::<SyncReply>().await {
                Ok(reply) => {
                    if !online {
                        tracing::info!(subcloud = %id.name, "connected to the system controller");
                        online = true;
                    }
                    if sent_snapshot {
                        need_snapshot = false;
                    }
                    acked = reply.acked_seq;
                    if reply.want_snapshot {
                        need_snapshot = true;
                    }
                    log.lock().unwrap_or_else(|e| e.into_inner()).ack(acked);
                    interval = Duration::from_secs(reply.interval_secs.clamp(1, 60));
                    for p in reply.push {
                        let Some(ep) = Endpoint::parse(&p.endpoint) else {
                            continue;
                        };
                        if let Err(stale) =
                            applied.accept_push(ep, Epoch(p.epoch), Generation(p.generation))
                        {
                            tracing::warn!(endpoint = %p.endpoint, error = %stale, "refusing a stale configuration push");
                            continue;
                        }
                        match apply(&store, &fm, ep, &p.content).await {
                            Ok(()) => {
                                let _ = store.set_settings(&[(
                                    format!("{SETTING_APPLIED}{}", ep.as_str()),
                                    format!("{}:{}", p.epoch, p.generation),
                                )]);
                                tracing::info!(endpoint = %p.endpoint, generation = p.generation, "applied configuration from the system controller");
                                // Report it at once rather than a period later.
                                again_soon = true;
                            }
                            Err(e) => {
                                tracing::warn!(endpoint = %p.endpoint, error = %e, "cannot apply configuration")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unexpected answer from the system controller")
                }
            },
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                tracing::warn!(%status, body = %body.chars().take(200).collect::<String>(), "the system controller refused a sync");
                // A refused stream (gap, restart of either side): start over with a snapshot.
                need_snapshot = true;
            }
            Err(e) => {
                if online {
                    tracing::warn!(error = %e, "lost the system controller; carrying on alone");
                    online = false;
                }
                need_snapshot = need_snapshot || acked == 0;
            }
        }
        // Certificate renewal before expiry.
        if let Ok(info) = roost_pki::cert_info(&id.cert_pem)
            && roost_pki::needs_renewal(&info, SystemTime::now())
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
        let wait = if again_soon && quick_left > 0 {
            quick_left -= 1;
            Duration::from_millis(50)
        } else {
            quick_left = 3;
            interval
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn client_for(id: &DcIdentity) -> anyhow::Result<reqwest::Client> {
    let cfg = roost_pki::client_config(&id.ca_pem, Some((&id.cert_pem, &id.key_pem)))?;
    Ok(roost_pki::https_client(cfg)?)
}

async fn renew(client: &reqwest::Client, id: &DcIdentity) -> anyhow::Result<DcIdentity> {
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
        anyhow::bail!("renewal refused ({})", resp.status());
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

//! Host records: validating requests and building the rows they write.
//! Pure functions of their inputs.

use std::net::IpAddr;

use roost_api::agent::Inventory;
use roost_api::heartbeat::HostKey;
use roost_api::sysinv::{AgentReport, EnrollRequest, HostAdd};
use roost_mtce::{HostAction, MtceSettings, Network, Personality};
use roost_store::StoredHost;
use roost_types::{Severity, Timestamp};
use serde_json::Value;

use super::{Error, ReportFacts, parameter_uuid};

pub fn personality(s: &str) -> Personality {
    Personality::parse(s).unwrap_or(Personality::Worker)
}

pub fn bmc_configured(h: &StoredHost) -> bool {
    h.bm_type == "redfish" && h.bm_ip.is_some() && h.bm_username.is_some()
}

/// The heartbeat networks of a host: management, plus cluster-host when
/// its agent answers on one.
pub fn networks_of(h: &StoredHost) -> Vec<Network> {
    if h.cluster_ip.is_some() && h.cluster_port.is_some() {
        vec![Network::Management, Network::Cluster]
    } else {
        vec![Network::Management]
    }
}

pub fn validate_hostname(raw: &str) -> Result<String, Error> {
    let name = raw.trim().to_string();
    if name.is_empty()
        || name.len() > 63
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || name.starts_with('-')
    {
        return Err(Error::Invalid(format!(
            "invalid hostname {name:?}: use letters, digits and '-' (at most 63)"
        )));
    }
    Ok(name)
}

fn location_json(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => {
            let mut m = serde_json::Map::new();
            m.insert("locn".into(), Value::String(s.clone()));
            Value::Object(m).to_string()
        }
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(_) => "{}".to_string(),
    }
}

/// A host's last reported inventory (empty before its agent reports).
pub fn inventory(h: &StoredHost) -> Inventory {
    h.inventory
        .as_deref()
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default()
}

/// The record of this server's own host, made at its first start.
pub fn local_host(hostname: &str, inv: &Inventory, now: Timestamp) -> StoredHost {
    StoredHost {
        uuid: uuid::Uuid::new_v4().to_string(),
        hostname: hostname.to_string(),
        personality: "controller".into(),
        subfunctions: "controller,worker".into(),
        administrative: "unlocked".into(),
        operational: "enabled".into(),
        availability: "available".into(),
        bm_type: "none".into(),
        location: "{}".into(),
        mgmt_ip: Some("127.0.0.1".into()),
        mgmt_mac: inv.nics.iter().find(|n| n.physical).map(|n| n.mac.clone()),
        inventory: serde_json::to_string(inv).ok(),
        local: true,
        labels: "[]".into(),
        cpu_functions: "{}".into(),
        created_at: now,
        ..Default::default()
    }
}

/// The record of a host added through the API (locked, offline).
pub fn new_host(
    name: &str,
    p: Personality,
    req: &HostAdd,
    now: Timestamp,
) -> Result<StoredHost, Error> {
    let location = match &req.location {
        Some(v @ Value::String(_)) | Some(v @ Value::Object(_)) => location_json(Some(v)),
        Some(other) => other.to_string(),
        None => "{}".to_string(),
    };
    Ok(StoredHost {
        uuid: uuid::Uuid::new_v4().to_string(),
        hostname: name.to_string(),
        personality: p.to_string(),
        subfunctions: req.subfunctions.clone().unwrap_or_else(|| p.to_string()),
        administrative: "locked".into(),
        operational: "disabled".into(),
        availability: "offline".into(),
        mgmt_ip: req.mgmt_ip.clone(),
        mgmt_mac: req.mgmt_mac.clone(),
        bm_type: "none".into(),
        location,
        labels: "[]".into(),
        cpu_functions: "{}".into(),
        created_at: now,
        ..Default::default()
    })
}

pub fn apply_bmc_fields(
    h: &mut StoredHost,
    bm_type: Option<&str>,
    bm_ip: Option<&str>,
    bm_username: Option<&str>,
    bm_password: Option<&str>,
) -> Result<(), Error> {
    if let Some(t) = bm_type {
        if !matches!(t, "none" | "dynamic" | "ipmi" | "redfish") {
            return Err(Error::Invalid(format!(
                "bm_type must be none, dynamic, ipmi or redfish, not {t:?}"
            )));
        }
        h.bm_type = t.to_string();
    }
    if let Some(u) = bm_username
        && (u.len() > 16 || u.chars().any(char::is_whitespace))
    {
        return Err(Error::Invalid(
            "bm_username must be at most 16 characters without spaces".into(),
        ));
    }
    if let Some(p) = bm_password
        && p.chars().any(char::is_whitespace)
    {
        return Err(Error::Invalid("bm_password must not contain spaces".into()));
    }
    if bm_password.is_some() && bm_username.is_none() && h.bm_username.is_none() {
        return Err(Error::Invalid(
            "bm_password must be given together with bm_username".into(),
        ));
    }
    h.bm_ip = bm_ip.map(str::to_string).filter(|s| !s.is_empty());
    h.bm_username = bm_username.map(str::to_string).filter(|s| !s.is_empty());
    if bm_password.is_some() {
        h.bm_password = bm_password.map(str::to_string).filter(|s| !s.is_empty());
    }
    if h.bm_type == "none" {
        h.bm_ip = None;
        h.bm_username = None;
        h.bm_password = None;
    }
    Ok(())
}

/// A host patch, validated: an action and field changes.
#[derive(Debug, Default)]
pub struct HostPatch {
    pub action: Option<HostAction>,
    /// bm_type, bm_ip, bm_username, bm_password: `Some` when the patch
    /// names the field (`Some(None)` clears it).
    bmc: [Option<Option<String>>; 4],
    location: Option<String>,
    mgmt_mac: Option<Option<String>>,
    mgmt_ip: Option<Option<String>>,
}

fn text(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}

/// Validates a JSON patch of a host: (op, path, value) triples.
pub fn parse_host_patch(ops: &[(String, String, Option<Value>)]) -> Result<HostPatch, Error> {
    let mut p = HostPatch::default();
    for (op, path, value) in ops {
        if op != "replace" && op != "add" {
            return Err(Error::Invalid(format!(
                "only replace operations are supported, not {op} {path}"
            )));
        }
        match path.as_str() {
            "/action" => {
                let a = text(value).unwrap_or_default();
                p.action = Some(
                    HostAction::parse(&a)
                        .ok_or_else(|| Error::Invalid(format!("unknown action {a:?}")))?,
                );
            }
            "/bm_type" => p.bmc[0] = Some(text(value)),
            "/bm_ip" => p.bmc[1] = Some(text(value)),
            "/bm_username" => p.bmc[2] = Some(text(value)),
            "/bm_password" => p.bmc[3] = Some(text(value)),
            "/location" => {
                p.location = Some(match value {
                    Some(Value::Object(_)) | Some(Value::String(_)) => {
                        location_json(value.as_ref())
                    }
                    _ => "{}".into(),
                })
            }
            "/mgmt_mac" => p.mgmt_mac = Some(text(value)),
            "/mgmt_ip" => p.mgmt_ip = Some(text(value)),
            other => {
                return Err(Error::Invalid(format!("cannot change {other} of a host")));
            }
        }
    }
    if p.bmc[3].is_some() && p.bmc[2].is_none() {
        return Err(Error::Invalid(
            "bm_password must be given together with bm_username".into(),
        ));
    }
    Ok(p)
}

impl HostPatch {
    /// The record `h` with this patch's field changes (unchanged if none).
    pub fn apply_to(&self, h: &StoredHost, now: Timestamp) -> Result<StoredHost, Error> {
        let mut u = h.clone();
        if let Some(l) = &self.location {
            u.location = l.clone();
        }
        if let Some(m) = &self.mgmt_mac {
            u.mgmt_mac = m.clone();
        }
        if let Some(ip) = &self.mgmt_ip {
            u.mgmt_ip = ip.clone();
        }
        if self.bmc.iter().any(Option::is_some) {
            let cur = |i: usize, old: &Option<String>| -> Option<String> {
                match &self.bmc[i] {
                    Some(v) => v.clone(),
                    None => old.clone(),
                }
            };
            let ty = cur(0, &Some(u.bm_type.clone()));
            let ip = cur(1, &u.bm_ip);
            let user = cur(2, &u.bm_username);
            let pw = cur(3, &u.bm_password);
            apply_bmc_fields(
                &mut u,
                ty.as_deref(),
                ip.as_deref(),
                user.as_deref(),
                pw.as_deref(),
            )?;
        }
        if u != *h {
            u.updated_at = Some(now);
        }
        Ok(u)
    }
}

/// The record of a host once its agent enrolled.
pub fn enrolled(
    h: &StoredHost,
    req: &EnrollRequest,
    peer: IpAddr,
    key: &HostKey,
    agent_token_hash: &str,
    now: Timestamp,
) -> StoredHost {
    let mut u = h.clone();
    u.hb_key = Some(roost_api::heartbeat::KeyRing::of(key.clone(), now.micros()).to_stored());
    u.hb_port = Some(req.heartbeat_port);
    u.mgmt_ip = Some(req.mgmt_ip.clone().unwrap_or_else(|| peer.to_string()));
    if u.mgmt_mac.is_none() {
        u.mgmt_mac = req
            .inventory
            .nics
            .iter()
            .find(|n| n.physical)
            .map(|n| n.mac.clone());
    }
    u.agent_token_hash = Some(agent_token_hash.to_string());
    u.inventory = serde_json::to_string(&req.inventory).ok();
    u.updated_at = Some(now);
    u
}

/// Checks an agent report of host `name`: its alarms are its own resource
/// alarms, its severities parse, its addresses are addresses.
pub fn check_report(name: &str, report: &AgentReport) -> Result<ReportFacts, Error> {
    let prefix = format!("host={name}");
    let mut alarms = Vec::new();
    for a in &report.alarms {
        if !roost_types::entity_is_under(&a.entity_instance_id, &prefix) {
            return Err(Error::Invalid(format!(
                "an agent may raise alarms only for its own host ({prefix}), not {}",
                a.entity_instance_id
            )));
        }
        let severity = match &a.severity {
            None => None,
            Some(s) => Some(
                s.parse::<Severity>()
                    .map_err(|e| Error::Invalid(e.to_string()))?,
            ),
        };
        let alarm_id = match a.alarm_id.as_str() {
            roost_mtce::ALARM_CPU => roost_mtce::ALARM_CPU,
            roost_mtce::ALARM_MEMORY => roost_mtce::ALARM_MEMORY,
            roost_mtce::ALARM_FILESYSTEM => roost_mtce::ALARM_FILESYSTEM,
            other => {
                return Err(Error::Invalid(format!(
                    "agents report resource alarms (100.101, 100.103, 100.104), not {other}"
                )));
            }
        };
        alarms.push(roost_mtce::AlarmOut {
            alarm_id,
            entity_instance_id: a.entity_instance_id.clone(),
            severity,
            reason_text: a.reason_text.clone(),
        });
    }
    let mut processes = Vec::new();
    for p in &report.processes {
        let sev = match &p.failed {
            None => None,
            Some(s) => Some(
                s.parse::<Severity>()
                    .map_err(|e| Error::Invalid(e.to_string()))?,
            ),
        };
        processes.push((p.name.clone(), sev));
    }
    if let Some(ip) = &report.cluster_ip {
        ip.parse::<IpAddr>()
            .map_err(|_| Error::Invalid(format!("cluster_ip {ip:?} is not an address")))?;
    }
    Ok(ReportFacts { processes, alarms })
}

/// The record of a host after a report (unchanged if nothing changed).
pub fn reported(h: &StoredHost, report: &AgentReport, now: Timestamp) -> StoredHost {
    let mut u = h.clone();
    if let Some(inv) = &report.inventory {
        u.inventory = serde_json::to_string(inv).ok();
    }
    if let Some(port) = report.heartbeat_port {
        u.hb_port = Some(port);
    }
    u.cluster_ip = report.cluster_ip.clone();
    u.cluster_port = report.cluster_heartbeat_port;
    if u != *h {
        u.updated_at = Some(now);
    }
    u
}

/// Validates a maintenance parameter patch against `settings`: the name,
/// the value and the settings with the change.
pub fn parameter_patch(
    uuid: &str,
    ops: &[(String, Option<String>)],
    mut settings: MtceSettings,
) -> Result<(String, String, MtceSettings), Error> {
    let mut name = roost_mtce::settings::PARAMETER_NAMES
        .iter()
        .find(|n| parameter_uuid(n) == uuid)
        .map(|n| n.to_string())
        .ok_or_else(|| Error::NotFound(format!("service parameter {uuid} not found")))?;
    let mut value = None;
    for (path, v) in ops {
        match path.as_str() {
            "/name" => {
                let n = v.clone().unwrap_or_default();
                if !roost_mtce::settings::PARAMETER_NAMES.contains(&n.as_str()) {
                    return Err(Error::Invalid(format!(
                        "unknown maintenance parameter {n:?}"
                    )));
                }
                name = n;
            }
            "/value" => value = v.clone(),
            "/personality" | "/resource" => {}
            other => {
                return Err(Error::Invalid(format!(
                    "cannot change {other} of a service parameter"
                )));
            }
        }
        if let Some(v) = &value {
            settings.set(&name, v)?;
        }
    }
    let Some(value) = value else {
        return Err(Error::Invalid("the patch holds no /value".into()));
    };
    Ok((name, value, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_an_unchanged_record_unchanged() {
        let h = StoredHost {
            hostname: "w1".into(),
            hb_port: Some(5),
            ..Default::default()
        };
        let r = AgentReport {
            heartbeat_port: Some(5),
            ..AgentReport::default()
        };
        assert_eq!(reported(&h, &r, Timestamp(9)), h);
        let r2 = AgentReport {
            heartbeat_port: Some(6),
            ..AgentReport::default()
        };
        let u = reported(&h, &r2, Timestamp(9));
        assert_eq!((u.hb_port, u.updated_at), (Some(6), Some(Timestamp(9))));
    }

    #[test]
    fn a_patch_with_a_password_but_no_user_is_refused_before_anything_is_decided() {
        let ops = vec![(
            "replace".to_string(),
            "/bm_password".to_string(),
            Some(Value::String("pw".into())),
        )];
        assert!(matches!(parse_host_patch(&ops), Err(Error::Invalid(_))));
    }
}

//! Inventory JSON in sysinv's shapes (`/v1/isystems`, `/v1/ihosts` and the
//! host sub-collections), as StarlingX's `system` client reads them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Link;
use crate::agent::{Inventory, Nic};

/// What the server knows of a host, for rendering.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub id: i64,
    pub uuid: String,
    pub hostname: String,
    pub personality: String,
    pub subfunctions: String,
    pub administrative: String,
    pub operational: String,
    pub availability: String,
    pub task: String,
    pub mgmt_ip: Option<String>,
    pub mgmt_mac: Option<String>,
    pub bm_type: String,
    pub bm_ip: Option<String>,
    pub bm_username: Option<String>,
    pub location: Value,
    pub uptime: u64,
    pub sw_version: String,
    pub active_controller: bool,
    pub mnfa_hold: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

fn links(base: &str, kind: &str, uuid: &str) -> Value {
    json!([
        {"href": format!("{base}/v1/{kind}/{uuid}"), "rel": "self"},
        {"href": format!("{base}/{kind}/{uuid}"), "rel": "bookmark"},
    ])
}

/// A host object. Every key StarlingX's `system host-show` reads is present,
/// so list items can be shown without another request.
pub fn host_json(h: &HostView, base: &str) -> Value {
    let controller = h.subfunctions.contains("controller");
    let mut capabilities = json!({});
    if h.personality == "controller" {
        capabilities["Personality"] = json!(if h.active_controller {
            "Controller-Active"
        } else {
            "Controller-Standby"
        });
    }
    json!({
        "id": h.id,
        "uuid": h.uuid,
        "hostname": h.hostname,
        "personality": h.personality,
        "subfunctions": h.subfunctions,
        "subfunction_oper": if controller { json!(h.operational) } else { Value::Null },
        "subfunction_avail": if controller { json!(h.availability) } else { Value::Null },
        "administrative": h.administrative,
        "operational": h.operational,
        "availability": h.availability,
        "action": "none",
        "task": h.task,
        "mgmt_ip": h.mgmt_ip,
        "mgmt_mac": h.mgmt_mac,
        "bm_type": h.bm_type,
        "bm_ip": h.bm_ip,
        "bm_username": h.bm_username,
        "uptime": h.uptime,
        "location": h.location,
        "capabilities": capabilities,
        "serialid": null,
        "sw_version": h.sw_version,
        "software_load": h.sw_version,
        "reboot_needed": false,
        "config_status": null,
        "config_applied": null,
        "config_target": null,
        "invprovision": "provisioned",
        "inv_state": "inventoried",
        "peers": null,
        "install_state": null,
        "install_state_info": null,
        "install_output": "text",
        "vim_progress_status": null,
        "boot_device": "/dev/sda",
        "rootfs_device": "/dev/sda",
        "hw_settle": "0",
        "console": "",
        "tboot": "",
        "vsc_controllers": null,
        "ttys_dcd": null,
        "clock_synchronization": "ntp",
        "device_image_update": null,
        "max_cpu_mhz_configured": null,
        "min_cpu_mhz_allowed": null,
        "max_cpu_mhz_allowed": null,
        "cstates_available": null,
        "apparmor": "disabled",
        "iscsi_initiator_name": null,
        "nvme_host_id": null,
        "nvme_host_nqn": null,
        "reserved": "False",
        "mnfa_hold": h.mnfa_hold,
        "links": links(base, "ihosts", &h.uuid),
        "created_at": h.created_at,
        "updated_at": h.updated_at,
    })
}

/// What a system is.
#[derive(Debug, Clone)]
pub struct SystemView {
    pub uuid: String,
    pub name: String,
    pub system_mode: String,
    pub system_type: String,
    pub software_version: String,
    pub distributed_cloud_role: Option<String>,
    pub location: String,
    pub description: String,
    pub created_at: String,
}

/// `GET /v1/isystems` body.
pub fn systems_json(s: &SystemView, base: &str) -> Value {
    json!({"isystems": [{
        "uuid": s.uuid,
        "name": s.name,
        "system_type": s.system_type,
        "system_mode": s.system_mode,
        "description": s.description,
        "location": s.location,
        "latitude": null,
        "longitude": null,
        "contact": "",
        "timezone": "UTC",
        "software_version": s.software_version,
        "region_name": "RegionOne",
        "service_project_name": "services",
        "security_feature": "spectre_meltdown_v1",
        "distributed_cloud_role": s.distributed_cloud_role,
        "capabilities": {"sdn_enabled": false, "https_enabled": false, "vswitch_type": "none", "shared_services": "[]"},
        "links": links(base, "isystems", &s.uuid),
        "created_at": s.created_at,
        "updated_at": null,
    }]})
}

/// A stable uuid for a sub-resource of a host.
pub fn child_uuid(host_uuid: &str, kind: &str, key: &str) -> String {
    // FNV-1a over the three parts, spread into 16 bytes: stable and unique
    // enough for display, and never confused with a real host uuid.
    let mut h1: u64 = 0xcbf29ce484222325;
    let mut h2: u64 = 0x84222325cbf29ce4;
    for b in host_uuid
        .bytes()
        .chain([0])
        .chain(kind.bytes())
        .chain([0])
        .chain(key.bytes())
    {
        h1 = (h1 ^ u64::from(b)).wrapping_mul(0x100000001b3);
        h2 = (h2 ^ u64::from(b)).wrapping_mul(0x1000193);
    }
    let x = format!("{h1:016x}{h2:016x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}

/// `GET /v1/ihosts/{id}/icpus` (and the reply of `host_cpus_modify`);
/// `function` gives each logical CPU's `allocated_function`.
pub fn cpus_json(
    host_uuid: &str,
    inv: &Inventory,
    function: &dyn Fn(u32) -> &'static str,
) -> Value {
    let items: Vec<Value> = inv
        .cpus
        .iter()
        .map(|c| {
            let function = function(c.cpu);
            json!({
                "uuid": child_uuid(host_uuid, "cpu", &c.cpu.to_string()),
                "cpu": c.cpu,
                "core": c.core,
                "thread": c.thread,
                "numa_node": c.numa_node,
                "cpu_model": c.cpu_model,
                "cpu_family": null,
                "capabilities": {},
                "function": function,
                "allocated_function": function,
                "ihost_uuid": host_uuid,
                "inode_uuid": child_uuid(host_uuid, "node", &c.numa_node.to_string()),
            })
        })
        .collect();
    json!({ "icpus": items })
}

/// One item of `PUT /v1/ihosts/{uuid}/state/host_cpus_modify`'s body (a
/// JSON list of them): a function and either the number of cores per
/// processor (`[{"0": 2}]`, numbers or strings) or a CPU list (`"2-3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuModify {
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sockets: Option<Vec<std::collections::BTreeMap<String, Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpulist: Option<String>,
}

/// `GET /v1/ihosts/{id}/inodes`.
pub fn nodes_json(host_uuid: &str, inv: &Inventory) -> Value {
    let mut nodes: Vec<u32> = inv.numa_nodes.iter().map(|n| n.numa_node).collect();
    if nodes.is_empty() {
        nodes.push(0);
    }
    let items: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "uuid": child_uuid(host_uuid, "node", &n.to_string()),
                "numa_node": n,
                "capabilities": {},
                "ihost_uuid": host_uuid,
            })
        })
        .collect();
    json!({ "inodes": items })
}

/// `GET /v1/ihosts/{id}/imemorys`: one item per NUMA node with all the
/// columns `system host-memory-list` prints.
pub fn memorys_json(host_uuid: &str, inv: &Inventory) -> Value {
    let nodes: Vec<(u32, u64, u64)> = if inv.numa_nodes.is_empty() {
        vec![(0, inv.memory.memtotal_mib, inv.memory.memavail_mib)]
    } else {
        inv.numa_nodes
            .iter()
            .map(|n| (n.numa_node, n.memtotal_mib, n.memavail_mib))
            .collect()
    };
    let items: Vec<Value> = nodes
        .iter()
        .map(|(n, total, avail)| {
            json!({
                "uuid": child_uuid(host_uuid, "memory", &n.to_string()),
                "inode_uuid": child_uuid(host_uuid, "node", &n.to_string()),
                "numa_node": n,
                "memtotal_mib": total,
                "platform_reserved_mib": 0,
                "memavail_mib": avail,
                "hugepages_configured": "False",
                "vswitch_hugepages_size_mib": null,
                "vswitch_hugepages_nr": 0,
                "vswitch_hugepages_avail": 0,
                "vswitch_hugepages_reqd": null,
                "vm_hugepages_nr_4K": 0,
                "vm_pending_as_percentage": "False",
                "vm_hugepages_nr_2M": 0,
                "vm_hugepages_avail_2M": 0,
                "vm_hugepages_nr_2M_pending": null,
                "vm_hugepages_nr_1G": 0,
                "vm_hugepages_avail_1G": 0,
                "vm_hugepages_nr_1G_pending": null,
                "vm_hugepages_use_1G": "False",
                "ihost_uuid": host_uuid,
            })
        })
        .collect();
    json!({ "imemorys": items })
}

/// `GET /v1/ihosts/{id}/idisks`.
pub fn disks_json(host_uuid: &str, inv: &Inventory) -> Value {
    let items: Vec<Value> = inv
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({
                "uuid": child_uuid(host_uuid, "disk", &d.device_node),
                "device_node": d.device_node,
                "device_num": 2048 + i * 16,
                "device_type": d.device_type,
                "device_path": d.device_path,
                "size_mib": d.size_mib,
                "available_mib": d.size_mib,
                "rpm": d.rpm,
                "serial_id": d.serial_id,
                "capabilities": {"model_num": d.model},
                "ihost_uuid": host_uuid,
            })
        })
        .collect();
    json!({ "idisks": items })
}

fn port_json(host_uuid: &str, n: &Nic, numa: u32) -> Value {
    json!({
        "uuid": child_uuid(host_uuid, "port", &n.name),
        "name": n.name,
        "namedisplay": n.name,
        "mac": n.mac,
        "mtu": n.mtu,
        "speed": n.speed,
        "link_mode": "0",
        "pciaddr": n.pciaddr,
        "pdevice": n.driver.clone().unwrap_or_default(),
        "driver": n.driver,
        "dev_id": 0,
        "numa_node": numa,
        "type": "ethernet",
        "dpdksupport": false,
        "bootp": null,
        "capabilities": {},
        "host_uuid": host_uuid,
        "ihost_uuid": host_uuid,
    })
}

/// `GET /v1/ihosts/{id}/ethernet_ports`.
pub fn ethernet_ports_json(host_uuid: &str, inv: &Inventory) -> Value {
    json!({ "ethernet_ports": inv.nics.iter().map(|n| port_json(host_uuid, n, 0)).collect::<Vec<_>>() })
}

/// `GET /v1/ihosts/{id}/ports`.
pub fn ports_json(host_uuid: &str, inv: &Inventory) -> Value {
    json!({ "ports": inv.nics.iter().map(|n| port_json(host_uuid, n, 0)).collect::<Vec<_>>() })
}

/// `POST /v1/ihosts` body (every value may come as a string, as `system host-add` sends).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostAdd {
    pub hostname: String,
    pub personality: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subfunctions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bm_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Value>,
    // Accepted from `system host-add` and ignored: Roost does not install hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_device: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_device: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hw_settle: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsc_controllers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttys_dcd: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_synchronization: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<Value>,
}

/// `POST /v1/service_parameter/apply` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterApply {
    /// Only `platform` has parameters to apply.
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

/// `GET /v1/ihosts` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostList {
    /// Each as [`host_json`] renders it.
    pub ihosts: Vec<Value>,
}

/// `POST /v1/ihosts` answer: the host as [`host_json`] renders it, with the
/// token its agent enrolls with (shown once) among its keys.
pub fn host_created_json(h: &HostView, base: &str, join_token: &str) -> Value {
    let mut j = host_json(h, base);
    j["join_token"] = json!(join_token);
    j
}

/// `POST /v1/ihosts/{host}/join_token` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinTokenReply {
    pub hostname: String,
    pub join_token: String,
}

/// A maintenance service parameter row. Fields are in the order the rows
/// have always had on the wire (sorted by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceParameter {
    pub links: Vec<Link>,
    pub name: String,
    /// Always null: maintenance parameters apply to every personality.
    pub personality: Option<String>,
    /// Always null.
    pub resource: Option<String>,
    pub section: String,
    pub service: String,
    pub uuid: String,
    pub value: String,
}

impl ServiceParameter {
    /// The `platform`/`maintenance` parameter `name`.
    pub fn maintenance(uuid: &str, name: &str, value: &str, base: &str) -> Self {
        ServiceParameter {
            links: Link::self_and_bookmark(base, "service_parameter", uuid),
            name: name.to_string(),
            personality: None,
            resource: None,
            section: "maintenance".into(),
            service: "platform".into(),
            uuid: uuid.to_string(),
            value: value.to_string(),
        }
    }

    /// A string field by its wire name, for filtering; `None` for a field
    /// that is null or not a string.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "name" => Some(&self.name),
            "personality" => self.personality.as_deref(),
            "resource" => self.resource.as_deref(),
            "section" => Some(&self.section),
            "service" => Some(&self.service),
            "uuid" => Some(&self.uuid),
            "value" => Some(&self.value),
            _ => None,
        }
    }
}

/// `GET /v1/service_parameter` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterList {
    pub parameters: Vec<ServiceParameter>,
}

/// `POST /v1/service_parameter/apply` answer: what was applied (`section`
/// is null when the request named none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterApplied {
    pub section: Option<String>,
    pub service: String,
}

/// The system's DNS (`idns`) or NTP (`intp`) servers. Exactly one of
/// `nameservers` and `ntpservers` is present. Fields are in the order the
/// object has always had on the wire (sorted by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformServers {
    pub created_at: String,
    pub isystem_uuid: String,
    pub links: Vec<Link>,
    /// Comma-separated DNS servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameservers: Option<String>,
    /// Comma-separated NTP servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntpservers: Option<String>,
    /// Always null: changes are not tracked.
    pub updated_at: Option<String>,
    pub uuid: String,
}

/// `GET /v1/idns` and `GET /v1/intp` bodies: exactly one of the two
/// collections is present, holding the one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformServersList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idnss: Option<Vec<PlatformServers>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intps: Option<Vec<PlatformServers>>,
}

/// Enrollment of an agent: sent by the agent and the simulated agents,
/// read by the server.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub join_token: String,
    pub inventory: Inventory,
    /// UDP port the agent answers heartbeats on.
    pub heartbeat_port: u16,
    /// Address the server should pulse; by default the address the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_ip: Option<String>,
    /// A certificate signing request (PEM) for the agent's client
    /// certificate. Required when the API speaks HTTPS: every later agent
    /// call presents the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr_pem: Option<String>,
    /// A host with a TPM: its attestation key and a quote for
    /// [`crate::tpm::enrollment_nonce`] of the join token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<crate::tpm::TpmEnrollment>,
}

/// What the server answers an enrolled agent. The agent keeps it (mode
/// 0600): it is the host's identity and its secrets.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct EnrollResponse {
    pub host_id: u32,
    pub uuid: String,
    pub hostname: String,
    pub personality: String,
    pub subfunctions: String,
    /// Hex of the 32-byte key that signs heartbeats.
    pub heartbeat_key: String,
    /// Secret sent as `X-Agent-Token` on every later agent call.
    pub agent_token: String,
    /// The agent's client certificate (PEM), issued by the cloud CA for the
    /// enrollment's CSR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
}

/// `POST /v1/agent/certificate`: a new client certificate for the agent's
/// new key (renewal, or a first certificate for an agent enrolled without
/// one).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentCertRequest {
    /// PKCS#10 certificate signing request, PEM. Its subject is ignored:
    /// the certificate names the host's uuid.
    pub csr_pem: String,
}

/// The certificate issued for an [`AgentCertRequest`].
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct AgentCertResponse {
    /// The client certificate, PEM.
    pub cert_pem: String,
}

/// What the server answers a report. `Debug` hides the key.
#[derive(Clone, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct ReportReply {
    pub hostname: String,
    pub administrative: String,
    pub availability: String,
    /// During a heartbeat key rotation: hex of the next key, which the agent
    /// accepts besides its key and says it holds in its next report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_key_next: Option<String>,
    /// The agent should ask for a new client certificate now (its own is
    /// due, or from a cloud CA that has been rotated out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renew_certificate: bool,
    /// A host with a TPM: quote these PCRs for this nonce and send the quote
    /// in the next report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_challenge: Option<crate::tpm::TpmChallenge>,
    /// A release to run (a deploy or its rollback reached this host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<crate::software::SoftwareOrder>,
}

impl ReportReply {
    /// The next heartbeat key handed over in a rotation (`None` when there
    /// is none or it is not 64 hexadecimal digits).
    pub fn next_key(&self) -> Option<crate::heartbeat::HostKey> {
        self.heartbeat_key_next
            .as_deref()
            .and_then(|k| crate::heartbeat::HostKey::from_hex(k).ok())
    }
}

impl std::fmt::Debug for ReportReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportReply")
            .field("hostname", &self.hostname)
            .field("administrative", &self.administrative)
            .field("availability", &self.availability)
            .field(
                "heartbeat_key_next",
                &self.heartbeat_key_next.as_ref().map(|_| "<hidden>"),
            )
            .field("renew_certificate", &self.renew_certificate)
            .field("tpm_challenge", &self.tpm_challenge)
            .field("software", &self.software)
            .finish()
    }
}

/// A host's heartbeat key, by fingerprint (never the key):
/// `GET|POST /v1/ihosts/{host}/heartbeat_key`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct HeartbeatKeyStatus {
    pub hostname: String,
    /// Fingerprint of the key in use.
    pub fingerprint: String,
    /// Fingerprint of the key replacing it, while a rotation runs.
    pub next_fingerprint: Option<String>,
    /// True from the start of a rotation until the server uses the new key.
    pub rotating: bool,
}

/// A resource or process alarm an agent reports for its own host.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentAlarm {
    pub alarm_id: String,
    pub entity_instance_id: String,
    /// `None` clears.
    pub severity: Option<String>,
    #[serde(default)]
    pub reason_text: String,
}

/// A process the agent monitors and its state.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessState {
    pub name: String,
    /// `None` when healthy; else the severity of its failure.
    pub failed: Option<String>,
}

/// What an enrolled agent reports.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    #[serde(default)]
    pub inventory: Option<Inventory>,
    #[serde(default)]
    pub heartbeat_port: Option<u16>,
    /// Address and UDP port answering heartbeats on the cluster-host
    /// network, when the host has one.
    #[serde(default)]
    pub cluster_ip: Option<String>,
    #[serde(default)]
    pub cluster_heartbeat_port: Option<u16>,
    #[serde(default)]
    pub alarms: Vec<AgentAlarm>,
    #[serde(default)]
    pub processes: Vec<ProcessState>,
    /// Fingerprint of the next heartbeat key the agent holds (during a
    /// rotation): the server switches to it once the agent has it.
    #[serde(default)]
    pub heartbeat_key_next: Option<String>,
    /// The answer to the last TPM challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_quote: Option<crate::tpm::TpmQuote>,
    /// The release the host runs and how its last deploy attempt ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<crate::software::SoftwareStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_objects_carry_every_key_system_reads_directly() {
        let h = HostView {
            id: 1,
            hostname: "controller-0".into(),
            personality: "controller".into(),
            subfunctions: "controller,worker".into(),
            ..Default::default()
        };
        let j = host_json(&h, "http://x");
        for key in [
            "id",
            "hostname",
            "personality",
            "administrative",
            "operational",
            "availability",
            "subfunctions",
            "peers",
            "install_state",
            "install_state_info",
            "vsc_controllers",
            "ttys_dcd",
            "capabilities",
            "location",
        ] {
            assert!(j.get(key).is_some(), "{key}");
        }
        assert!(j["id"].is_i64());
        assert!(j["subfunctions"].is_string());
    }

    #[test]
    fn child_uuids_are_stable_and_distinct() {
        let a = child_uuid("h", "cpu", "0");
        assert_eq!(a, child_uuid("h", "cpu", "0"));
        assert_ne!(a, child_uuid("h", "cpu", "1"));
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn memory_rows_join_their_nodes() {
        let inv = Inventory {
            numa_nodes: vec![crate::agent::NumaNode {
                numa_node: 0,
                memtotal_mib: 100,
                memavail_mib: 50,
            }],
            ..Default::default()
        };
        let m = memorys_json("h", &inv);
        let n = nodes_json("h", &inv);
        assert_eq!(m["imemorys"][0]["inode_uuid"], n["inodes"][0]["uuid"]);
    }

    #[test]
    fn host_answers_keep_their_json_form() {
        let h = HostView {
            id: 3,
            uuid: "u".into(),
            hostname: "worker-0".into(),
            personality: "worker".into(),
            ..Default::default()
        };
        let created = host_created_json(&h, "http://x", "tok");
        let mut expected = host_json(&h, "http://x");
        expected["join_token"] = Value::from("tok");
        assert_eq!(created, expected);
        let list = HostList {
            ihosts: vec![host_json(&h, "http://x")],
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"ihosts": [host_json(&h, "http://x")]})
        );
        let t = JoinTokenReply {
            hostname: "worker-0".into(),
            join_token: "tok".into(),
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"hostname":"worker-0","join_token":"tok"}"#
        );
    }

    #[test]
    fn service_parameters_keep_their_json_form() {
        let p = ServiceParameter::maintenance("u", "heartbeat_period", "100", "http://x");
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"links":[{"href":"http://x/v1/service_parameter/u","rel":"self"},"#,
                r#"{"href":"http://x/service_parameter/u","rel":"bookmark"}],"#,
                r#""name":"heartbeat_period","personality":null,"resource":null,"#,
                r#""section":"maintenance","service":"platform","uuid":"u","value":"100"}"#
            )
        );
        assert_eq!(serde_json::from_str::<ServiceParameter>(&text).unwrap(), p);
        assert_eq!(p.field("section"), Some("maintenance"));
        assert_eq!(p.field("personality"), None);
        let list = ParameterList {
            parameters: vec![p],
        };
        assert!(
            serde_json::to_string(&list)
                .unwrap()
                .starts_with(r#"{"parameters":[{"links":"#)
        );
        let applied = |section: Option<&str>| {
            serde_json::to_string(&ParameterApplied {
                section: section.map(str::to_string),
                service: "platform".into(),
            })
            .unwrap()
        };
        assert_eq!(
            applied(Some("maintenance")),
            r#"{"section":"maintenance","service":"platform"}"#
        );
        assert_eq!(applied(None), r#"{"section":null,"service":"platform"}"#);
    }

    #[test]
    fn dns_and_ntp_servers_keep_their_json_form() {
        let dns = PlatformServers {
            created_at: "t".into(),
            isystem_uuid: "s".into(),
            links: vec![Link {
                href: "http://x/v1/idns/u".into(),
                rel: "self".into(),
            }],
            nameservers: Some("10.0.0.53".into()),
            ntpservers: None,
            updated_at: None,
            uuid: "u".into(),
        };
        let list = PlatformServersList {
            idnss: Some(vec![dns]),
            intps: None,
        };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            concat!(
                r#"{"idnss":[{"created_at":"t","isystem_uuid":"s","#,
                r#""links":[{"href":"http://x/v1/idns/u","rel":"self"}],"#,
                r#""nameservers":"10.0.0.53","updated_at":null,"uuid":"u"}]}"#
            )
        );
    }
}

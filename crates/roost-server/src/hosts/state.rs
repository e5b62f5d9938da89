//! The host service's state: pure data behind one lock. Nothing here can
//! reach the store, a socket or a file; code holding the lock decides and
//! applies, and leaves I/O to the executor and the heartbeater.

use std::collections::{BTreeMap, HashMap};

use roost_api::agent::Inventory;
use roost_api::sysinv::HostView;
use roost_mtce::{Admin, Maintenance};
use roost_store::StoredHost;
use roost_types::Timestamp;

use super::Error;

/// Another controller sharing the store (several servers, or duplex): its
/// own server manages its host; this one shows it, enabled and available
/// while that server is connected to the store as a standby.
#[derive(Debug, Clone)]
pub(crate) struct PeerController {
    pub row: StoredHost,
    pub connected: bool,
}

pub(crate) struct State {
    pub mtce: Maintenance,
    /// The other controllers sharing the store, by name.
    pub peer_controllers: BTreeMap<String, PeerController>,
    /// Host records by hostname, as committed.
    pub hosts: BTreeMap<String, StoredHost>,
    /// Agent token hash to hostname.
    pub agent_tokens: HashMap<String, String>,
    /// Last reported uptime of each agent's host and when it was reported.
    pub uptime: HashMap<String, (u64, Timestamp)>,
    /// The TPM challenge each host was last given: nonce, when.
    pub tpm_challenges: HashMap<String, (Vec<u8>, Timestamp)>,
}

impl State {
    /// A host by id, uuid or hostname.
    pub fn find(&self, ident: &str) -> Option<&StoredHost> {
        if let Ok(id) = ident.parse::<i64>() {
            return self.hosts.values().find(|h| h.id == id);
        }
        self.hosts
            .values()
            .find(|h| h.uuid == ident)
            .or_else(|| self.hosts.get(ident))
    }

    /// A peer controller by id, uuid or name.
    pub fn find_peer(&self, ident: &str) -> Option<&PeerController> {
        let id = ident.parse::<i64>().ok();
        self.peer_controllers
            .values()
            .find(|p| Some(p.row.id) == id || p.row.uuid == ident || p.row.hostname == ident)
    }

    /// The API view of a peer controller: unlocked, and enabled and
    /// available while its server is connected.
    pub fn peer_view(&self, p: &PeerController, now: Timestamp) -> HostView {
        let mut row = p.row.clone();
        row.local = false;
        row.administrative = "unlocked".into();
        (row.operational, row.availability) = if p.connected {
            ("enabled".into(), "available".into())
        } else {
            ("disabled".into(), "offline".into())
        };
        self.view(&row, now, 0)
    }

    /// The API view of a host; `local_uptime` is this server's own uptime,
    /// read before the lock was taken.
    pub fn view(&self, h: &StoredHost, now: Timestamp, local_uptime: u64) -> HostView {
        let status = self.mtce.status(&h.hostname);
        let uptime = if h.local {
            local_uptime
        } else {
            self.uptime
                .get(&h.hostname)
                .map(|(u, at)| u + ((now.micros() - at.micros()).max(0) / 1_000_000) as u64)
                .unwrap_or(0)
        };
        HostView {
            id: h.id,
            uuid: h.uuid.clone(),
            hostname: h.hostname.clone(),
            personality: h.personality.clone(),
            subfunctions: h.subfunctions.clone(),
            administrative: status
                .as_ref()
                .map(|s| s.admin.to_string())
                .unwrap_or_else(|| h.administrative.clone()),
            operational: status
                .as_ref()
                .map(|s| s.oper.to_string())
                .unwrap_or_else(|| h.operational.clone()),
            availability: status
                .as_ref()
                .map(|s| s.avail.to_string())
                .unwrap_or_else(|| h.availability.clone()),
            task: status.as_ref().map(|s| s.task.clone()).unwrap_or_default(),
            mgmt_ip: h.mgmt_ip.clone(),
            mgmt_mac: h.mgmt_mac.clone(),
            bm_type: h.bm_type.clone(),
            bm_ip: h.bm_ip.clone(),
            bm_username: h.bm_username.clone(),
            location: serde_json::from_str(&h.location)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
            uptime,
            sw_version: h
                .inventory
                .as_deref()
                .and_then(|i| serde_json::from_str::<Inventory>(i).ok())
                .map(|i| i.sw_version)
                .unwrap_or_default(),
            active_controller: status.as_ref().is_some_and(|s| s.active_controller),
            mnfa_hold: status.as_ref().is_some_and(|s| s.held),
            created_at: h.created_at.to_string(),
            updated_at: h.updated_at.map(|t| t.to_string()),
        }
    }

    /// Whether a host may be deleted: (id, hostname).
    pub fn decide_delete(&self, ident: &str) -> Result<(i64, String), Error> {
        let h = self
            .find(ident)
            .ok_or_else(|| Error::host_not_found(ident))?;
        if h.local {
            return Err(Error::Conflict(format!(
                "cannot delete {}: it runs this server",
                h.hostname
            )));
        }
        if self
            .mtce
            .status(&h.hostname)
            .is_some_and(|s| s.admin != Admin::Locked)
        {
            return Err(Error::Conflict(format!(
                "cannot delete {}: lock it first",
                h.hostname
            )));
        }
        Ok((h.id, h.hostname.clone()))
    }

    /// Forgets a deleted host.
    pub fn apply_delete(&mut self, name: &str) {
        self.mtce.remove_host(name);
        if let Some(t) = self.hosts.remove(name).and_then(|h| h.agent_token_hash) {
            self.agent_tokens.remove(&t);
        }
        self.uptime.remove(name);
    }

    /// Takes a committed record's fields, keeping the states (which the
    /// executor owns).
    pub fn set_fields(&mut self, updated: &StoredHost) {
        if let Some(h) = self.hosts.get_mut(&updated.hostname) {
            let states = (
                std::mem::take(&mut h.administrative),
                std::mem::take(&mut h.operational),
                std::mem::take(&mut h.availability),
                std::mem::take(&mut h.task),
            );
            *h = updated.clone();
            (h.administrative, h.operational, h.availability, h.task) = states;
        }
    }

    /// This server's own host with a new inventory, if its stable part
    /// changed.
    pub fn local_inventory_changed(&self, inv: &Inventory, now: Timestamp) -> Option<StoredHost> {
        let h = self.hosts.values().find(|h| h.local)?;
        let mut stable = inv.clone();
        stable.uptime_secs = 0;
        stable.memory.memavail_mib = 0;
        for n in &mut stable.numa_nodes {
            n.memavail_mib = 0;
        }
        let json = serde_json::to_string(&stable).ok();
        if json == h.inventory {
            return None;
        }
        let mut u = h.clone();
        u.inventory = json;
        u.updated_at = Some(now);
        Some(u)
    }
}

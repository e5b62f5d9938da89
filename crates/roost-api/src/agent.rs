//! What agents and the server say to each other over HTTP: enrollment and
//! inventory reports. (The heartbeat is UDP; see [`crate::heartbeat`].)

use serde::{Deserialize, Serialize};

/// A host's hardware and software as its agent sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Inventory {
    pub hostname: String,
    pub uptime_secs: u64,
    pub sw_version: String,
    pub cpus: Vec<Cpu>,
    pub numa_nodes: Vec<NumaNode>,
    pub memory: Memory,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
}

/// One logical CPU.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    /// Logical CPU number (`/sys/devices/system/cpu/cpuN`).
    pub cpu: u32,
    /// Physical core id.
    pub core: u32,
    /// Hyper-thread index within the core (0 for the first sibling).
    pub thread: u32,
    pub numa_node: u32,
    /// Physical package (socket).
    pub socket: u32,
    pub cpu_model: String,
}

/// Memory of one NUMA node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NumaNode {
    pub numa_node: u32,
    pub memtotal_mib: u64,
    pub memavail_mib: u64,
}

/// Memory of the whole host.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    pub memtotal_mib: u64,
    pub memavail_mib: u64,
}

/// One block device that is a disk (not a partition, loop or ram device).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// `/dev/vda`
    pub device_node: String,
    /// `/dev/disk/by-path/...` when known, else the device node.
    pub device_path: String,
    /// `HDD`, `SSD` or `NVME`.
    pub device_type: String,
    pub size_mib: u64,
    pub serial_id: String,
    /// Rotation speed, or `Undetermined` / `N/A`.
    pub rpm: String,
    pub model: String,
}

/// One network interface with a MAC address (loopback excluded).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Nic {
    pub name: String,
    pub mac: String,
    pub mtu: u32,
    /// Link speed in Mb/s, when the link reports one.
    pub speed: Option<u32>,
    /// PCI address, for physical devices.
    pub pciaddr: Option<String>,
    pub driver: Option<String>,
    /// True for a physical device (it has a `device` link in sysfs).
    pub physical: bool,
}

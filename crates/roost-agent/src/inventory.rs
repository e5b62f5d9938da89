//! Inventory change detection.

use roost_api::agent::Inventory;

/// The inventory with its ever-changing fields (uptime, available memory)
/// zeroed, for comparison.
fn stable(inv: &Inventory) -> Inventory {
    let mut s = inv.clone();
    s.uptime_secs = 0;
    s.memory.memavail_mib = 0;
    for n in &mut s.numa_nodes {
        n.memavail_mib = 0;
    }
    s
}

/// Whether two inventories differ in anything but uptime and available
/// memory.
pub fn changed(old: &Inventory, new: &Inventory) -> bool {
    stable(old) != stable(new)
}

/// Reads this host's inventory.
pub fn read() -> Inventory {
    roost_inventory::read_inventory(&roost_inventory::Root::system(), env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_api::agent::{Memory, Nic, NumaNode};

    fn inv() -> Inventory {
        Inventory {
            hostname: "worker-0".into(),
            uptime_secs: 100,
            sw_version: "0.1.0".into(),
            numa_nodes: vec![NumaNode {
                numa_node: 0,
                memtotal_mib: 4096,
                memavail_mib: 2000,
            }],
            memory: Memory {
                memtotal_mib: 4096,
                memavail_mib: 2000,
            },
            nics: vec![Nic {
                name: "eth0".into(),
                mac: "52:54:00:00:00:01".into(),
                mtu: 1500,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn uptime_and_available_memory_do_not_count_as_changes() {
        let mut later = inv();
        later.uptime_secs = 9999;
        later.memory.memavail_mib = 10;
        later.numa_nodes[0].memavail_mib = 10;
        assert!(!changed(&inv(), &later));
    }

    #[test]
    fn hardware_and_name_changes_count() {
        let mut c = inv();
        c.nics[0].mtu = 9000;
        assert!(changed(&inv(), &c));
        let mut c = inv();
        c.hostname = "worker-1".into();
        assert!(changed(&inv(), &c));
        let mut c = inv();
        c.memory.memtotal_mib = 8192;
        assert!(changed(&inv(), &c));
        let mut c = inv();
        c.numa_nodes.push(NumaNode::default());
        assert!(changed(&inv(), &c));
    }

    #[test]
    fn this_host_has_an_inventory() {
        let i = read();
        assert_eq!(i.sw_version, env!("CARGO_PKG_VERSION"));
    }
}

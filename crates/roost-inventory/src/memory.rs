//! Memory: `proc/meminfo` and `sys/devices/system/node/nodeN/meminfo`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use roost_api::agent::{Memory, NumaNode};

use crate::{Root, numbered_entries, parse};

/// The host's memory from `proc/meminfo`: `MemTotal` and `MemAvailable`
/// (falling back to `MemFree` on kernels without it), kB -> MiB rounded
/// down. Zero when unreadable.
pub fn read_memory(root: &Root) -> Memory {
    let info = read_meminfo(&root.join("proc/meminfo")).unwrap_or_default();
    let (memtotal_mib, memavail_mib) = total_and_available(&info);
    Memory {
        memtotal_mib,
        memavail_mib,
    }
}

/// Memory per NUMA node from `sys/devices/system/node/nodeN/meminfo`, sorted
/// by node. Node files have no `MemAvailable`, so available is `MemFree`
/// there (conservative: page cache is not counted). Without node
/// directories (a kernel built without NUMA) the host is one node 0 read
/// from `proc/meminfo`; with neither, the list is empty.
pub fn read_numa_nodes(root: &Root) -> Vec<NumaNode> {
    let nodes = numbered_entries(&root.join("sys/devices/system/node"), "node");
    if nodes.is_empty() {
        return read_meminfo(&root.join("proc/meminfo"))
            .map(|info| {
                let (memtotal_mib, memavail_mib) = total_and_available(&info);
                vec![NumaNode {
                    numa_node: 0,
                    memtotal_mib,
                    memavail_mib,
                }]
            })
            .unwrap_or_default();
    }
    nodes
        .into_iter()
        .map(|(numa_node, dir)| {
            let info = read_meminfo(&dir.join("meminfo")).unwrap_or_default();
            let (memtotal_mib, memavail_mib) = total_and_available(&info);
            NumaNode {
                numa_node,
                memtotal_mib,
                memavail_mib,
            }
        })
        .collect()
}

fn read_meminfo(path: &Path) -> Option<BTreeMap<String, u64>> {
    fs::read_to_string(path).ok().map(|s| parse::meminfo(&s))
}

/// (total, available) in MiB from a parsed meminfo in kB.
fn total_and_available(info: &BTreeMap<String, u64>) -> (u64, u64) {
    let kib = |k: &str| info.get(k).copied();
    let total = kib("MemTotal").unwrap_or(0);
    let avail = kib("MemAvailable").or_else(|| kib("MemFree")).unwrap_or(0);
    (total / 1024, avail / 1024)
}

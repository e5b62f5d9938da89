//! Logical CPUs: `sys/devices/system/cpu`, `sys/devices/system/node` and
//! `proc/cpuinfo`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use roost_api::agent::Cpu;

use crate::{Root, numbered_entries, parse, read_trimmed};

/// Every online logical CPU, sorted by number.
///
/// Topology comes from `sys/devices/system/cpu/cpuN/topology/`
/// (`core_id`, `physical_package_id`, `thread_siblings_list`); `thread` is
/// the CPU's index within its sorted sibling list. The NUMA node is the
/// `sys/devices/system/node/nodeN` holding a `cpuN` link or listing the CPU
/// in `cpulist` (0 when the kernel has no node directories). The model is
/// `proc/cpuinfo`'s `model name`, or `unknown`. CPUs whose `online` file
/// says `0` are skipped, as the kernel lists them without a usable topology;
/// negative ids (some architectures report `-1`) read as 0.
pub fn read_cpus(root: &Root) -> Vec<Cpu> {
    let nodes = cpu_nodes(root);
    let (models, first_model) = fs::read_to_string(root.join("proc/cpuinfo"))
        .map(|s| parse::cpu_models(&s))
        .unwrap_or_default();

    numbered_entries(&root.join("sys/devices/system/cpu"), "cpu")
        .into_iter()
        .filter(|(_, dir)| read_trimmed(&dir.join("online")).as_deref() != Some("0"))
        .map(|(cpu, dir)| {
            let topo = dir.join("topology");
            let siblings = read_trimmed(&topo.join("thread_siblings_list"))
                .map(|s| parse::cpulist(&s))
                .unwrap_or_default();
            let thread = siblings.iter().position(|&c| c == cpu).unwrap_or(0);
            Cpu {
                cpu,
                core: read_id(&topo.join("core_id")),
                thread: u32::try_from(thread).unwrap_or(0),
                numa_node: nodes.get(&cpu).copied().unwrap_or(0),
                socket: read_id(&topo.join("physical_package_id")),
                cpu_model: models
                    .get(&cpu)
                    .or(first_model.as_ref())
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_string()),
            }
        })
        .collect()
}

/// CPU number -> NUMA node, from each node directory's `cpuN` entries and
/// its `cpulist`.
fn cpu_nodes(root: &Root) -> BTreeMap<u32, u32> {
    let mut out = BTreeMap::new();
    for (node, dir) in numbered_entries(&root.join("sys/devices/system/node"), "node") {
        for (cpu, _) in numbered_entries(&dir, "cpu") {
            out.entry(cpu).or_insert(node);
        }
        if let Some(list) = read_trimmed(&dir.join("cpulist")) {
            for cpu in parse::cpulist(&list) {
                out.entry(cpu).or_insert(node);
            }
        }
    }
    out
}

/// A topology id; 0 when absent, unparsable or negative.
fn read_id(path: &Path) -> u32 {
    read_trimmed(path)
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

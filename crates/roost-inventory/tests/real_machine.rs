//! The readers against the machine the tests run on. Assertions are only
//! what every Linux host satisfies; the rest is printed for the record
//! (`cargo test -p roost-inventory -- --nocapture`).

use roost_inventory::{Root, read_inventory};

#[test]
fn the_real_machine_reports_its_cpus_memory_and_uptime_without_panicking() {
    let inv = read_inventory(&Root::system(), "test");

    eprintln!(
        "hostname: {:?}, uptime: {} s",
        inv.hostname, inv.uptime_secs
    );
    eprintln!("cpus ({}):", inv.cpus.len());
    for c in &inv.cpus {
        eprintln!("  {c:?}");
    }
    eprintln!("numa nodes: {:?}", inv.numa_nodes);
    eprintln!("memory: {:?}", inv.memory);
    eprintln!("disks ({}):", inv.disks.len());
    for d in &inv.disks {
        eprintln!("  {d:?}");
    }
    eprintln!("nics ({}):", inv.nics.len());
    for n in &inv.nics {
        eprintln!("  {n:?}");
    }

    assert!(!inv.cpus.is_empty(), "at least one CPU");
    assert!(inv.memory.memtotal_mib > 0, "memtotal > 0");
    assert!(inv.memory.memavail_mib <= inv.memory.memtotal_mib);
    assert!(inv.uptime_secs > 0, "uptime > 0");
    assert!(!inv.numa_nodes.is_empty(), "at least one NUMA node");
    assert!(inv.nics.iter().all(|n| n.name != "lo"));

    let parallelism = std::thread::available_parallelism().map_or(0, usize::from);
    let proc_count = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert!(
        inv.cpus.len() == parallelism || inv.cpus.len() == proc_count,
        "{} CPUs read; available_parallelism {parallelism}, /proc/cpuinfo {proc_count}",
        inv.cpus.len()
    );
}

//! The readers against a hand-built `/proc` + `/sys` tree: a two-socket,
//! two-NUMA-node host with hyper-threading, three disks and four NICs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use roost_inventory::{
    Cpu, Disk, Inventory, Memory, Nic, NumaNode, Root, read_cpus, read_disks, read_hostname,
    read_inventory, read_memory, read_nics, read_numa_nodes, read_uptime,
};
use tempfile::TempDir;

/// A fixture root being built: files and symlinks relative to it, parents
/// created as needed.
struct Tree(TempDir);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().expect("tempdir"))
    }

    fn root(&self) -> Root {
        Root::new(self.0.path())
    }

    fn dir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.0.path().join(rel)).expect("mkdir");
        self
    }

    fn file(&self, rel: &str, contents: &str) -> &Self {
        let p = self.0.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, contents).expect("write");
        self
    }

    /// A symlink at `rel` whose text is `target` (usually relative, as in
    /// sysfs).
    fn link(&self, rel: &str, target: impl AsRef<Path>) -> &Self {
        let p = self.0.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        symlink(target, p).expect("symlink");
        self
    }
}

const MODEL: &str = "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz";

/// cpu0/cpu2 are the two threads of core 0 on socket 0 (node 0); cpu1/cpu3
/// of core 0 on socket 1 (node 1). cpu4 is present but offline.
fn build_cpus(t: &Tree) {
    let mut cpuinfo = String::new();
    for n in 0..4 {
        cpuinfo.push_str(&format!(
            "processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: {MODEL}\nflags\t\t: fpu vme\n\n"
        ));
    }
    t.file("proc/cpuinfo", &cpuinfo);
    let sys = "sys/devices/system/cpu";
    t.dir(&format!("{sys}/cpufreq"))
        .dir(&format!("{sys}/cpuidle"));
    t.file(&format!("{sys}/online"), "0-3\n");
    for (cpu, socket, siblings) in [(0, 0, "0,2"), (1, 1, "1,3"), (2, 0, "0,2"), (3, 1, "1,3")] {
        let topo = format!("{sys}/cpu{cpu}/topology");
        t.file(&format!("{topo}/core_id"), "0\n")
            .file(
                &format!("{topo}/physical_package_id"),
                &format!("{socket}\n"),
            )
            .file(
                &format!("{topo}/thread_siblings_list"),
                &format!("{siblings}\n"),
            );
        if cpu != 0 {
            t.file(&format!("{sys}/cpu{cpu}/online"), "1\n");
        }
    }
    t.file(&format!("{sys}/cpu4/online"), "0\n");

    // Node 0 names its CPUs by links, node 1 only by cpulist.
    let node = "sys/devices/system/node";
    t.link(&format!("{node}/node0/cpu0"), "../../cpu/cpu0")
        .link(&format!("{node}/node0/cpu2"), "../../cpu/cpu2")
        .file(&format!("{node}/node0/cpulist"), "0,2\n")
        .file(&format!("{node}/node1/cpulist"), "1,3\n")
        .file(&format!("{node}/online"), "0-1\n")
        .file(&format!("{node}/possible"), "0-1\n");
}

fn build_memory(t: &Tree) {
    t.file(
        "proc/meminfo",
        "MemTotal:       16777216 kB\nMemFree:         4194304 kB\nMemAvailable:   12582912 kB\nBuffers:          102400 kB\n",
    );
    t.file(
        "sys/devices/system/node/node0/meminfo",
        "Node 0 MemTotal:        8388608 kB\nNode 0 MemFree:         2097152 kB\nNode 0 MemUsed:         6291456 kB\nNode 0 FilePages:       4194304 kB\n",
    );
    t.file(
        "sys/devices/system/node/node1/meminfo",
        "Node 1 MemTotal:        8388608 kB\nNode 1 MemFree:         3145728 kB\nNode 1 MemUsed:         5242880 kB\n",
    );
}

/// sda: a rotational SATA disk with a (padded) serial and a by-path link.
/// nvme0n1: an NVMe namespace reached, as in sysfs, through a symlink into
/// `sys/devices`, with its controller's serial. sdb: an SSD known only by
/// WWID. loop0: excluded.
fn build_disks(t: &Tree) {
    t.file("sys/block/sda/size", "1953525168\n")
        .file("sys/block/sda/queue/rotational", "1\n")
        .file("sys/block/sda/device/serial", "  WD-WCC4N1234567 \n")
        .file("sys/block/sda/device/model", "WDC WD1003FZEX-0\n")
        .dir("sys/block/sda/sda1");

    let ns = "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/nvme/nvme0/nvme0n1";
    t.file(&format!("{ns}/size"), "1000215216\n")
        .file(&format!("{ns}/queue/rotational"), "0\n")
        .file(&format!("{ns}/wwid"), "eui.0025385b71b0a1b2\n")
        .link(&format!("{ns}/device"), "../../nvme0")
        .file(
            "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/nvme/nvme0/serial",
            "S4EWNX0N123456      \n",
        )
        .file(
            "sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/nvme/nvme0/model",
            "Samsung SSD 970 EVO Plus 500GB          \n",
        )
        .link(
            "sys/block/nvme0n1",
            "../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/nvme/nvme0/nvme0n1",
        );

    t.file("sys/block/sdb/size", "468862128\n")
        .file("sys/block/sdb/queue/rotational", "0\n")
        .file("sys/block/sdb/device/wwid", "naa.5002538e40a1b2c3\n");

    t.file("sys/block/loop0/size", "2048\n")
        .file("sys/block/loop0/queue/rotational", "1\n");

    // udev's links point at /dev nodes the fixture does not have: resolved
    // lexically. The partition's link must not be taken for the disk.
    t.link(
        "dev/disk/by-path/pci-0000:00:17.0-ata-1-part1",
        "../../sda1",
    )
    .link("dev/disk/by-path/pci-0000:00:17.0-ata-1", "../../sda")
    .link("dev/disk/by-path/pci-0000:3b:00.0-nvme-1", "../../nvme0n1");
}

/// eth0: physical Intel NIC at 0000:3b:00.1 (ixgbe, 10 Gb/s).
/// eth1: virtio NIC (speed -1) on PCI function 0000:00:03.0.
/// br0: virtual bridge, no speed file. ifb0: virtual, speed read errors.
/// lo and tunl0 (all-zero MAC): excluded.
fn build_nics(t: &Tree) {
    let pci = "sys/devices/pci0000:3a/0000:3a:00.0";
    t.dir("sys/bus/pci/drivers/ixgbe")
        .dir("sys/bus/virtio/drivers/virtio_net");

    let eth0 = format!("{pci}/0000:3b:00.1/net/eth0");
    t.file(&format!("{eth0}/address"), "3C:FD:FE:AA:BB:CC\n")
        .file(&format!("{eth0}/mtu"), "9000\n")
        .file(&format!("{eth0}/speed"), "10000\n")
        .link(&format!("{eth0}/device"), "../../../0000:3b:00.1")
        .link(
            &format!("{pci}/0000:3b:00.1/driver"),
            "../../../../bus/pci/drivers/ixgbe",
        )
        .link(
            "sys/class/net/eth0",
            "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1/net/eth0",
        );

    let eth1 = "sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth1";
    t.file(&format!("{eth1}/address"), "52:54:00:12:34:56\n")
        .file(&format!("{eth1}/mtu"), "1500\n")
        .file(&format!("{eth1}/speed"), "-1\n")
        .link(&format!("{eth1}/device"), "../../../virtio2")
        .link(
            "sys/devices/pci0000:00/0000:00:03.0/virtio2/driver",
            "../../../../bus/virtio/drivers/virtio_net",
        )
        .link(
            "sys/class/net/eth1",
            "../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth1",
        );

    t.file("sys/devices/virtual/net/br0/address", "de:ad:be:ef:00:01\n")
        .file("sys/devices/virtual/net/br0/mtu", "1500\n")
        .link("sys/class/net/br0", "../../devices/virtual/net/br0");

    // A directory where a file is expected: reading it fails (EISDIR), as
    // the kernel's EINVAL does for a down link.
    t.file(
        "sys/devices/virtual/net/ifb0/address",
        "de:ad:be:ef:00:02\n",
    )
    .file("sys/devices/virtual/net/ifb0/mtu", "1400\n")
    .dir("sys/devices/virtual/net/ifb0/speed")
    .link("sys/class/net/ifb0", "../../devices/virtual/net/ifb0");

    t.file("sys/devices/virtual/net/lo/address", "00:00:00:00:00:00\n")
        .file("sys/devices/virtual/net/lo/mtu", "65536\n")
        .link("sys/class/net/lo", "../../devices/virtual/net/lo");
    t.file("sys/devices/virtual/net/tunl0/address", "00:00:00:00\n")
        .file("sys/devices/virtual/net/tunl0/mtu", "1480\n")
        .link("sys/class/net/tunl0", "../../devices/virtual/net/tunl0");
}

fn host() -> Tree {
    let t = Tree::new();
    build_cpus(&t);
    build_memory(&t);
    build_disks(&t);
    build_nics(&t);
    t.file("proc/uptime", "12345.67 45678.90\n")
        .file("proc/sys/kernel/hostname", "controller-0\n");
    t
}

fn cpu(cpu: u32, thread: u32, numa_node: u32, socket: u32) -> Cpu {
    Cpu {
        cpu,
        core: 0,
        thread,
        numa_node,
        socket,
        cpu_model: MODEL.to_string(),
    }
}

fn expected_cpus() -> Vec<Cpu> {
    vec![
        cpu(0, 0, 0, 0),
        cpu(1, 0, 1, 1),
        cpu(2, 1, 0, 0),
        cpu(3, 1, 1, 1),
    ]
}

fn expected_numa_nodes() -> Vec<NumaNode> {
    vec![
        NumaNode {
            numa_node: 0,
            memtotal_mib: 8192,
            memavail_mib: 2048,
        },
        NumaNode {
            numa_node: 1,
            memtotal_mib: 8192,
            memavail_mib: 3072,
        },
    ]
}

fn expected_memory() -> Memory {
    Memory {
        memtotal_mib: 16384,
        memavail_mib: 12288,
    }
}

fn expected_disks() -> Vec<Disk> {
    vec![
        Disk {
            device_node: "/dev/nvme0n1".into(),
            device_path: "/dev/disk/by-path/pci-0000:3b:00.0-nvme-1".into(),
            device_type: "NVME".into(),
            size_mib: 488386,
            serial_id: "S4EWNX0N123456".into(),
            rpm: "N/A".into(),
            model: "Samsung SSD 970 EVO Plus 500GB".into(),
        },
        Disk {
            device_node: "/dev/sda".into(),
            device_path: "/dev/disk/by-path/pci-0000:00:17.0-ata-1".into(),
            device_type: "HDD".into(),
            size_mib: 953869,
            serial_id: "WD-WCC4N1234567".into(),
            rpm: "Undetermined".into(),
            model: "WDC WD1003FZEX-0".into(),
        },
        Disk {
            device_node: "/dev/sdb".into(),
            device_path: "/dev/sdb".into(),
            device_type: "SSD".into(),
            size_mib: 228936,
            serial_id: "naa.5002538e40a1b2c3".into(),
            rpm: "N/A".into(),
            model: String::new(),
        },
    ]
}

fn expected_nics() -> Vec<Nic> {
    vec![
        Nic {
            name: "br0".into(),
            mac: "de:ad:be:ef:00:01".into(),
            mtu: 1500,
            speed: None,
            pciaddr: None,
            driver: None,
            physical: false,
        },
        Nic {
            name: "eth0".into(),
            mac: "3c:fd:fe:aa:bb:cc".into(),
            mtu: 9000,
            speed: Some(10000),
            pciaddr: Some("0000:3b:00.1".into()),
            driver: Some("ixgbe".into()),
            physical: true,
        },
        Nic {
            name: "eth1".into(),
            mac: "52:54:00:12:34:56".into(),
            mtu: 1500,
            speed: None,
            pciaddr: Some("0000:00:03.0".into()),
            driver: Some("virtio_net".into()),
            physical: true,
        },
        Nic {
            name: "ifb0".into(),
            mac: "de:ad:be:ef:00:02".into(),
            mtu: 1400,
            speed: None,
            pciaddr: None,
            driver: None,
            physical: false,
        },
    ]
}

#[test]
fn cpus_carry_core_socket_numa_node_and_hyperthread_index_sorted_by_number() {
    assert_eq!(read_cpus(&host().root()), expected_cpus());
}

#[test]
fn an_offline_cpu_is_left_out() {
    assert!(read_cpus(&host().root()).iter().all(|c| c.cpu != 4));
}

#[test]
fn cpus_without_a_model_name_in_cpuinfo_are_unknown() {
    let t = host();
    t.file("proc/cpuinfo", "processor\t: 0\nCPU part\t: 0xd0c\n");
    assert!(
        read_cpus(&t.root())
            .iter()
            .all(|c| c.cpu_model == "unknown")
    );
}

#[test]
fn cpus_are_on_node_zero_when_the_kernel_has_no_numa_nodes() {
    let t = host();
    fs::remove_dir_all(t.0.path().join("sys/devices/system/node")).unwrap();
    assert!(read_cpus(&t.root()).iter().all(|c| c.numa_node == 0));
}

#[test]
fn numa_nodes_report_their_total_and_free_memory_in_mib() {
    assert_eq!(read_numa_nodes(&host().root()), expected_numa_nodes());
}

#[test]
fn without_node_directories_the_host_is_one_node_read_from_proc_meminfo() {
    let t = host();
    fs::remove_dir_all(t.0.path().join("sys/devices/system/node")).unwrap();
    assert_eq!(
        read_numa_nodes(&t.root()),
        vec![NumaNode {
            numa_node: 0,
            memtotal_mib: 16384,
            memavail_mib: 12288,
        }]
    );
}

#[test]
fn host_memory_is_memtotal_and_memavailable_in_mib() {
    assert_eq!(read_memory(&host().root()), expected_memory());
}

#[test]
fn memory_available_falls_back_to_memfree_on_old_kernels() {
    let t = host();
    t.file("proc/meminfo", "MemTotal: 2048 kB\nMemFree: 1024 kB\n");
    assert_eq!(
        read_memory(&t.root()),
        Memory {
            memtotal_mib: 2,
            memavail_mib: 1,
        }
    );
}

#[test]
fn disks_are_typed_sized_and_identified_and_loop_devices_are_left_out() {
    assert_eq!(read_disks(&host().root()), expected_disks());
}

#[test]
fn ram_zram_dm_md_optical_floppy_and_hidden_devices_are_not_disks() {
    let t = Tree::new();
    for name in ["ram0", "zram0", "dm-0", "md127", "sr0", "fd0", "nvme0c0n1"] {
        t.file(&format!("sys/block/{name}/size"), "2048\n");
    }
    t.file("sys/block/nvme0c0n1/hidden", "1\n");
    t.file("sys/block/vda/size", "2048\n")
        .file("sys/block/vda/serial", "overlayblk0\n");
    let disks = read_disks(&t.root());
    assert_eq!(
        disks
            .iter()
            .map(|d| d.device_node.as_str())
            .collect::<Vec<_>>(),
        vec!["/dev/vda"]
    );
    assert_eq!(disks[0].serial_id, "overlayblk0", "virtio-blk serial");
    assert_eq!(
        disks[0].device_type, "HDD",
        "no rotational file reads as HDD"
    );
    assert_eq!(disks[0].size_mib, 1);
}

#[test]
fn nics_report_mac_mtu_speed_pci_address_and_driver_sorted_by_name() {
    assert_eq!(read_nics(&host().root()), expected_nics());
}

#[test]
fn a_nic_whose_device_link_leads_nowhere_is_physical_without_pci_address_or_driver() {
    let t = Tree::new();
    t.file("sys/class/net/eth9/address", "02:00:00:00:00:09\n")
        .file("sys/class/net/eth9/mtu", "1500\n")
        .file("sys/class/net/eth9/speed", "not a number\n")
        .link("sys/class/net/eth9/device", "/nonexistent/roost/virtio9");
    assert_eq!(
        read_nics(&t.root()),
        vec![Nic {
            name: "eth9".into(),
            mac: "02:00:00:00:00:09".into(),
            mtu: 1500,
            speed: None,
            pciaddr: None,
            driver: None,
            physical: true,
        }]
    );
}

#[test]
fn a_dangling_device_link_still_yields_the_pci_address_from_its_text() {
    let t = Tree::new();
    t.file("sys/class/net/eth8/address", "02:00:00:00:00:08\n")
        .link(
            "sys/class/net/eth8/device",
            "../../../devices/pci0000:00/0000:00:1f.6",
        );
    let nics = read_nics(&t.root());
    assert_eq!(nics[0].pciaddr.as_deref(), Some("0000:00:1f.6"));
    assert!(nics[0].physical);
}

#[test]
fn uptime_and_hostname_are_read_from_proc() {
    let t = host();
    let root = t.root();
    assert_eq!(read_uptime(&root), 12345);
    assert_eq!(read_hostname(&root), "controller-0");
}

#[test]
fn the_whole_inventory_is_every_reader_together_with_the_given_software_version() {
    assert_eq!(
        read_inventory(&host().root(), "25.09"),
        Inventory {
            hostname: "controller-0".into(),
            uptime_secs: 12345,
            sw_version: "25.09".into(),
            cpus: expected_cpus(),
            numa_nodes: expected_numa_nodes(),
            memory: expected_memory(),
            disks: expected_disks(),
            nics: expected_nics(),
        }
    );
}

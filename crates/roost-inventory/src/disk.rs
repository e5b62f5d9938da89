//! Disks: `sys/block` and `dev/disk/by-path`.

use std::fs;
use std::path::Path;

use roost_api::agent::Disk;

use crate::{Root, entry_names, link_file_name, read_trimmed};

/// Block devices that are never disks: loop, ram, zram, device-mapper,
/// software RAID, optical and floppy.
const NOT_DISKS: &[&str] = &["loop", "ram", "zram", "dm-", "md", "sr", "fd"];

/// Every disk under `sys/block`, sorted by name.
///
/// Excluded: the prefixes in `NOT_DISKS`, and devices the kernel marks
/// `hidden` (the per-path nodes of multipath NVMe). Partitions are not in
/// `sys/block`, so they never appear. `device_type` is `NVME` for `nvme*`,
/// else `SSD` when `queue/rotational` is 0, else `HDD`; `rpm` is
/// `Undetermined` for HDDs and `N/A` otherwise. The serial is the first
/// non-empty of `device/serial`, `device/wwid` and the block device's own
/// `serial` (virtio-blk keeps it there), else empty. `device_path` is the
/// first (by name) `dev/disk/by-path` link to the device, as the absolute
/// `/dev/disk/by-path/...` path, else the device node.
pub fn read_disks(root: &Root) -> Vec<Disk> {
    let by_path = root.join("dev/disk/by-path");
    let by_path_links = entry_names(&by_path);
    entry_names(&root.join("sys/block"))
        .into_iter()
        .filter(|name| !NOT_DISKS.iter().any(|p| name.starts_with(p)))
        .filter_map(|name| {
            let dir = root.join("sys/block").join(&name);
            if read_trimmed(&dir.join("hidden")).as_deref() == Some("1") {
                return None;
            }
            let device_type = if name.starts_with("nvme") {
                "NVME"
            } else if read_trimmed(&dir.join("queue/rotational")).as_deref() == Some("0") {
                "SSD"
            } else {
                "HDD"
            };
            let device_node = format!("/dev/{name}");
            let device_path = by_path_links
                .iter()
                .find(|link| link_file_name(&by_path.join(link)).as_deref() == Some(name.as_str()))
                .map(|link| format!("/dev/disk/by-path/{link}"))
                .unwrap_or_else(|| device_node.clone());
            Some(Disk {
                device_node,
                device_path,
                device_type: device_type.to_string(),
                size_mib: size_mib(&dir.join("size")),
                serial_id: first_non_empty(&[
                    &dir.join("device/serial"),
                    &dir.join("device/wwid"),
                    &dir.join("serial"),
                ]),
                rpm: if device_type == "HDD" {
                    "Undetermined"
                } else {
                    "N/A"
                }
                .to_string(),
                model: read_trimmed(&dir.join("device/model")).unwrap_or_default(),
            })
        })
        .collect()
}

/// `size` is in 512-byte sectors whatever the device's block size; 2048 of
/// them make a MiB.
fn size_mib(path: &Path) -> u64 {
    read_trimmed(path)
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |sectors| sectors / 2048)
}

fn first_non_empty(paths: &[&Path]) -> String {
    paths
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

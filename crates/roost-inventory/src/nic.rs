//! Network interfaces: `sys/class/net`.

use std::fs;

use roost_api::agent::Nic;

use crate::{Root, entry_names, link_file_name, parse, read_trimmed, resolve_link};

/// Every interface under `sys/class/net` that has a MAC address, sorted by
/// name. `lo` and interfaces whose `address` is empty or all zeros (tunnels,
/// WireGuard, ...) are left out.
///
/// `speed` is `None` when the file is absent, errors (the kernel answers
/// `EINVAL` while a link is down) or is negative (`-1`: unknown). An
/// interface is `physical` when it has a `device` link. `pciaddr` is the
/// name of the device the link resolves to when that is a PCI address; for
/// a virtio device (`.../0000:00:03.0/virtio2`) it is its parent's. `driver`
/// is the name of the `device/driver` link's target.
pub fn read_nics(root: &Root) -> Vec<Nic> {
    let class = root.join("sys/class/net");
    entry_names(&class)
        .into_iter()
        .filter(|name| name != "lo")
        .filter_map(|name| {
            let dir = class.join(&name);
            let mac = read_trimmed(&dir.join("address"))?.to_ascii_lowercase();
            if !parse::is_real_mac(&mac) {
                return None;
            }
            let device = dir.join("device");
            let physical = fs::symlink_metadata(&device).is_ok();
            let (pciaddr, driver) = if physical {
                (pci_address(&device), link_file_name(&device.join("driver")))
            } else {
                (None, None)
            };
            Some(Nic {
                mtu: read_trimmed(&dir.join("mtu"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                speed: read_trimmed(&dir.join("speed"))
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|v| u32::try_from(v).ok()),
                name,
                mac,
                pciaddr,
                driver,
                physical,
            })
        })
        .collect()
}

/// The PCI address of the device behind the `device` link, if it is (or, for
/// virtio, sits directly on) a PCI function.
fn pci_address(device: &std::path::Path) -> Option<String> {
    let target = resolve_link(device)?;
    let name = target.file_name()?.to_str()?;
    if parse::is_pci_address(name) {
        return Some(name.to_string());
    }
    if name.starts_with("virtio") {
        let parent = target.parent()?.file_name()?.to_str()?;
        if parse::is_pci_address(parent) {
            return Some(parent.to_string());
        }
    }
    None
}

//! Reads a host's real hardware inventory from `/proc` and `/sys` into
//! roost-api's [`Inventory`] (CPUs, NUMA nodes, memory, disks, NICs, uptime,
//! hostname): what StarlingX's sysinv agent reports as `icpus`, `imemorys`,
//! `idisks` and `ethernet_ports`.
//!
//! This crate owns only the reading. It does no network I/O, has no async and
//! keeps no state. Every reader takes a [`Root`], which is `/` in production
//! and a fixture directory in tests: paths are `root.join("proc/cpuinfo")` and
//! so on, and symbolic links are only ever resolved through the file system,
//! with a lexical fallback when the target does not exist.
//!
//! Readers never panic and never fail: a missing or unreadable file yields an
//! empty or zero part of the inventory, so one odd device cannot hide the rest.
#![forbid(unsafe_code)]

pub mod sampling;

mod cpu;
mod disk;
mod memory;
mod nic;
mod parse;

use std::fs;
use std::path::{Path, PathBuf};

pub use roost_api::agent::{Cpu, Disk, Inventory, Memory, Nic, NumaNode};

pub use cpu::read_cpus;
pub use disk::read_disks;
pub use memory::{read_memory, read_numa_nodes};
pub use nic::read_nics;

/// The directory that stands for `/`: the real root in production, a fixture
/// tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    /// The running system's root, `/`.
    pub fn system() -> Root {
        Root(PathBuf::from("/"))
    }

    /// A root at `p`, e.g. a fixture directory holding `proc/` and `sys/`.
    pub fn new(p: impl Into<PathBuf>) -> Root {
        Root(p.into())
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `rel` (relative, like `"proc/meminfo"`) under this root.
    pub(crate) fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }
}

/// Reads the whole inventory. Never panics; missing files give empty or zero
/// parts.
pub fn read_inventory(root: &Root, sw_version: &str) -> Inventory {
    Inventory {
        hostname: read_hostname(root),
        uptime_secs: read_uptime(root),
        sw_version: sw_version.to_string(),
        cpus: read_cpus(root),
        numa_nodes: read_numa_nodes(root),
        memory: read_memory(root),
        disks: read_disks(root),
        nics: read_nics(root),
    }
}

/// Seconds since boot: the first field of `proc/uptime`, truncated; 0 when
/// unreadable.
pub fn read_uptime(root: &Root) -> u64 {
    read_trimmed(&root.join("proc/uptime"))
        .and_then(|s| {
            let first = s.split_whitespace().next()?;
            let whole = first.split('.').next()?;
            whole.parse().ok()
        })
        .unwrap_or(0)
}

/// The kernel's hostname (`proc/sys/kernel/hostname`), trimmed; empty when
/// unreadable.
pub fn read_hostname(root: &Root) -> String {
    read_trimmed(&root.join("proc/sys/kernel/hostname")).unwrap_or_default()
}

/// A file's contents with surrounding whitespace removed, or `None` when it
/// cannot be read (absent, permission denied, or a sysfs attribute that
/// returns an error such as `EINVAL`).
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The entries of `dir` whose name is `prefix` followed by a decimal number,
/// as `(number, path)`, sorted by number. Empty when `dir` is unreadable.
pub(crate) fn numbered_entries(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = parse::numbered(name.to_str()?, prefix)?;
            Some((n, e.path()))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}

/// The names of the entries of `dir`, sorted. Empty when `dir` is unreadable
/// or a name is not UTF-8 (kernel device names always are).
pub(crate) fn entry_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// Where the symbolic link at `link` points, fully resolved when its target
/// exists, otherwise resolved lexically from the link's own text (so a
/// fixture with a dangling or out-of-tree link still yields names, and the
/// read never fails because of it).
pub(crate) fn resolve_link(link: &Path) -> Option<PathBuf> {
    if let Ok(p) = fs::canonicalize(link) {
        return Some(p);
    }
    let target = fs::read_link(link).ok()?;
    let base = link.parent().unwrap_or(Path::new(""));
    Some(parse::normalize_lexically(&base.join(target)))
}

/// The last component of the target of the link at `link`.
pub(crate) fn link_file_name(link: &Path) -> Option<String> {
    let target = resolve_link(link)?;
    Some(target.file_name()?.to_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_the_whole_seconds_of_the_first_field() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proc")).unwrap();
        fs::write(dir.path().join("proc/uptime"), "1100.96 1147.98\n").unwrap();
        assert_eq!(read_uptime(&Root::new(dir.path())), 1100);
    }

    #[test]
    fn an_empty_root_gives_an_empty_inventory_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let inv = read_inventory(&Root::new(dir.path()), "25.09");
        assert_eq!(
            inv,
            Inventory {
                sw_version: "25.09".into(),
                ..Inventory::default()
            }
        );
    }

    #[test]
    fn a_root_that_does_not_exist_is_read_as_empty() {
        let inv = read_inventory(&Root::new("/nonexistent/roost/fixture"), "x");
        assert!(inv.cpus.is_empty() && inv.disks.is_empty() && inv.nics.is_empty());
        assert_eq!(inv.hostname, "");
        assert_eq!(inv.uptime_secs, 0);
    }
}

//! Pure parsers for the text formats of procfs and sysfs.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Most CPUs a single cpulist range may expand to; guards against a corrupt
/// or hostile file such as `0-4294967295`.
const MAX_RANGE: u32 = 1 << 16;

/// `name` as `prefix` + decimal number, e.g. `numbered("cpu12", "cpu") == Some(12)`.
/// `cpufreq` or `cpu` alone give `None`.
pub(crate) fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A kernel cpulist (`0-3,8,10-11`) as sorted, de-duplicated numbers.
/// Malformed parts are skipped.
pub(crate) fn cpulist(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) else {
                    continue;
                };
                if a <= b && b - a < MAX_RANGE {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = part.parse() {
                    out.push(n);
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A `meminfo` file (`/proc/meminfo` or a node's, whose lines start with
/// `Node N`) as key -> value in the file's unit (kB for memory sizes).
pub(crate) fn meminfo(s: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in s.lines() {
        let mut tokens = line.split_whitespace().peekable();
        if tokens.peek() == Some(&"Node") {
            tokens.next();
            tokens.next();
        }
        let (Some(key), Some(value)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        let Some(key) = key.strip_suffix(':') else {
            continue;
        };
        if let Ok(v) = value.parse() {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// `/proc/cpuinfo` as the `model name` of each `processor`, plus the first
/// model seen (for processors listed without one).
pub(crate) fn cpu_models(s: &str) -> (BTreeMap<u32, String>, Option<String>) {
    let mut models = BTreeMap::new();
    let mut first = None;
    let mut processor: Option<u32> = None;
    for line in s.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => processor = value.parse().ok(),
            "model name" if !value.is_empty() => {
                if first.is_none() {
                    first = Some(value.to_string());
                }
                if let Some(p) = processor {
                    models.insert(p, value.to_string());
                }
            }
            _ => {}
        }
    }
    (models, first)
}

/// Whether `s` is a PCI address in the kernel's `dddd:bb:dd.f` form (hex
/// domain, bus and device, function 0-7), e.g. `0000:3b:00.1`.
pub(crate) fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && hex(0..4)
        && b[4] == b':'
        && hex(5..7)
        && b[7] == b':'
        && hex(8..10)
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
}

/// Whether a link-layer address is present and not all zeros.
pub(crate) fn is_real_mac(mac: &str) -> bool {
    mac.bytes().any(|b| b.is_ascii_hexdigit() && b != b'0')
}

/// `p` with `.` and `..` removed without touching the file system.
pub(crate) fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_need_the_prefix_and_only_digits() {
        assert_eq!(numbered("cpu12", "cpu"), Some(12));
        assert_eq!(numbered("node0", "node"), Some(0));
        assert_eq!(numbered("cpufreq", "cpu"), None);
        assert_eq!(numbered("cpu", "cpu"), None);
        assert_eq!(numbered("cpu-1", "cpu"), None);
    }

    #[test]
    fn cpulists_expand_ranges_and_skip_garbage() {
        assert_eq!(cpulist("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(cpulist("2,0"), vec![0, 2]);
        assert_eq!(cpulist(""), Vec::<u32>::new());
        assert_eq!(cpulist("x,3-1,5,0-4294967295"), vec![5]);
    }

    #[test]
    fn meminfo_reads_both_the_global_and_the_per_node_format() {
        let global = meminfo(
            "MemTotal:       24684096 kB\nMemAvailable:   23963908 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(global["MemTotal"], 24684096);
        assert_eq!(global["MemAvailable"], 23963908);
        assert_eq!(global["HugePages_Total"], 0);
        let node =
            meminfo("Node 1 MemTotal:        7956696 kB\nNode 1 MemFree:         3454224 kB\n");
        assert_eq!(node["MemTotal"], 7956696);
        assert_eq!(node["MemFree"], 3454224);
    }

    #[test]
    fn cpu_models_are_keyed_by_processor() {
        let (m, first) = cpu_models(
            "processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: Other\n",
        );
        assert_eq!(m[&0], "AMD EPYC");
        assert_eq!(m[&1], "Other");
        assert_eq!(first.as_deref(), Some("AMD EPYC"));
    }

    #[test]
    fn pci_addresses_are_recognised_strictly() {
        assert!(is_pci_address("0000:3b:00.1"));
        assert!(is_pci_address("10de:AF:1f.7"));
        assert!(!is_pci_address("virtio2"));
        assert!(!is_pci_address("0000:3b:00.8"));
        assert!(!is_pci_address("0000:3b:00.1x"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("０000:3b:00.1"));
    }

    #[test]
    fn all_zero_or_empty_macs_are_not_real() {
        assert!(is_real_mac("02:fc:00:00:00:01"));
        assert!(!is_real_mac("00:00:00:00:00:00"));
        assert!(!is_real_mac(""));
    }

    #[test]
    fn lexical_normalisation_resolves_dot_dot() {
        assert_eq!(
            normalize_lexically(Path::new(
                "/r/sys/class/net/eth0/../../../devices/./pci/0000:00:03.0"
            )),
            PathBuf::from("/r/sys/devices/pci/0000:00:03.0")
        );
    }
}

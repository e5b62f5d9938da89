//! Resource sampling from `/proc` and `statvfs`: CPU use (between two
//! readings of `/proc/stat`), memory use (`MemAvailable`) and the use of
//! local disk filesystems.

use std::path::Path;

/// CPU time of all CPUs, in jiffies: (busy, total).
pub fn read_cpu_times(proc_root: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    parse_cpu_times(&text)
}

fn parse_cpu_times(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Percent of CPU busy between two readings of [`read_cpu_times`].
pub fn cpu_percent(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1)?;
    if total == 0 {
        return None;
    }
    let busy = after.0.saturating_sub(before.0).min(total);
    Some(busy as f64 / total as f64 * 100.0)
}

/// Percent of memory in use: (MemTotal - MemAvailable) / MemTotal.
pub fn read_memory_percent(proc_root: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let field = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    (total > 0.0).then(|| ((total - avail) / total * 100.0).clamp(0.0, 100.0))
}

/// File system types that live on local disks.
const DISK_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "f2fs", "zfs",
];

/// Mount points of local disk filesystems, from `/proc/mounts`, sorted.
pub fn disk_mounts(proc_root: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(proc_root.join("mounts")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _dev = f.next()?;
            let mount = f.next()?;
            let fstype = f.next()?;
            DISK_FILESYSTEMS
                .contains(&fstype)
                .then(|| unescape_mount(mount))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Undoes the octal escapes of `/proc/mounts` (`\040` for a space, ...).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent of a filesystem's blocks in use, as `df` computes it.
pub fn filesystem_percent(mount: &str) -> Option<f64> {
    let s = rustix::fs::statvfs(mount).ok()?;
    let free = s.f_bfree as f64;
    let avail = s.f_bavail as f64;
    let used = s.f_blocks as f64 - free;
    let denom = used + avail;
    (denom > 0.0).then(|| (used / denom * 100.0).clamp(0.0, 100.0))
}

/// A percentage as a health byte: rounded, clamped to 0..=100.
pub fn pct_byte(p: f64) -> u8 {
    if p.is_finite() {
        p.round().clamp(0.0, 100.0) as u8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_from_an_injected_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("mounts"),
            "/dev/vda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n\
             /dev/vdb /data\\040x xfs rw 0 0\n/dev/vda1 / ext4 rw 0 0\n",
        )
        .unwrap();
        assert_eq!(read_cpu_times(dir.path()), Some((200, 1000)));
        assert_eq!(read_memory_percent(dir.path()), Some(75.0));
        assert_eq!(disk_mounts(dir.path()), ["/", "/data x"]);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_cpu_times(empty.path()), None);
        assert_eq!(read_memory_percent(empty.path()), None);
        assert!(disk_mounts(empty.path()).is_empty());
    }

    #[test]
    fn cpu_use_is_the_busy_share_between_two_readings() {
        assert_eq!(cpu_percent((200, 1000), (300, 1200)), Some(50.0));
        assert_eq!(cpu_percent((200, 1000), (200, 1000)), None);
        // A counter that went backwards gives nothing rather than nonsense.
        assert_eq!(cpu_percent((200, 1000), (100, 900)), None);
    }

    #[test]
    fn the_real_proc_gives_plausible_numbers() {
        let proc_root = Path::new("/proc");
        let (busy, total) = read_cpu_times(proc_root).unwrap();
        assert!(busy <= total);
        let m = read_memory_percent(proc_root).unwrap();
        assert!((0.0..=100.0).contains(&m));
        let p = filesystem_percent("/").unwrap();
        assert!((0.0..=100.0).contains(&p));
        assert!(filesystem_percent("/no/such/mount").is_none());
    }

    #[test]
    fn percentages_become_clamped_bytes() {
        assert_eq!(pct_byte(49.6), 50);
        assert_eq!(pct_byte(-3.0), 0);
        assert_eq!(pct_byte(250.0), 100);
        assert_eq!(pct_byte(f64::NAN), 0);
    }

    #[test]
    fn mount_escapes_are_undone() {
        assert_eq!(unescape_mount("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape_mount("/trailing\\04"), "/trailing\\04");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }
}

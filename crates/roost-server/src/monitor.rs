//! Resource monitoring of the server's own host: CPU, memory and
//! filesystems sampled from /proc and statvfs, fed to the threshold
//! monitor of `roost-mtce`, and turned into alarms 100.101/103/104.

use std::path::{Path, PathBuf};
use std::time::Duration;

use roost_fm::{AlarmInput, FmCommand};
use roost_mtce::{AlarmDecision, Resource, ResourceMonitor};

use crate::config::MonitorConfig;
use crate::fm_service::FmService;

/// Where /proc is (injectable for tests).
#[derive(Debug, Clone)]
pub struct ProcRoot(pub PathBuf);

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot(PathBuf::from("/proc"))
    }
}

/// Jiffies of all CPUs: (busy, total).
pub fn read_cpu_times(proc_root: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
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
    (total > 0.0).then(|| (total - avail) / total * 100.0)
}

const DISK_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "f2fs", "zfs", "jfs", "reiserfs",
];

/// Mount points of local disk filesystems, from /proc/mounts.
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
                .then(|| mount.replace("\\040", " "))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Percent of a filesystem's blocks in use, as `df` computes it.
pub fn filesystem_percent(mount: &str) -> Option<f64> {
    let s = rustix::fs::statvfs(mount).ok()?;
    let total = s.f_blocks as f64;
    let free = s.f_bfree as f64;
    let avail = s.f_bavail as f64;
    let used = total - free;
    let denom = used + avail;
    (denom > 0.0).then(|| used / denom * 100.0)
}

/// Samples the host every interval and raises or clears resource alarms.
pub async fn run(
    fm: FmService,
    hostname: String,
    cfg: MonitorConfig,
    proc_root: ProcRoot,
    stop: crate::Shutdown,
) {
    let mut monitor = ResourceMonitor::new(hostname.clone(), cfg.thresholds.clone());
    // Start from the alarms already raised, so that a restart clears them when due.
    {
        let table = fm.read();
        for a in table.alarms() {
            let resource = match a.alarm_id.as_str() {
                roost_mtce::ALARM_CPU if a.entity_instance_id == format!("host={hostname}") => {
                    Some(Resource::Cpu)
                }
                roost_mtce::ALARM_MEMORY if a.entity_instance_id == format!("host={hostname}") => {
                    Some(Resource::Memory)
                }
                roost_mtce::ALARM_FILESYSTEM => a
                    .entity_instance_id
                    .strip_prefix(&format!("host={hostname}.filesystem="))
                    .map(|m| Resource::Filesystem(m.to_string())),
                _ => None,
            };
            if let Some(r) = resource {
                monitor.assume(r, Some(a.severity));
            }
        }
    }
    let mut last_cpu = read_cpu_times(&proc_root.0);
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut decisions: Vec<AlarmDecision> = Vec::new();
        let now_cpu = read_cpu_times(&proc_root.0);
        if let (Some((b0, t0)), Some((b1, t1))) = (last_cpu, now_cpu)
            && t1 > t0
        {
            let pct = (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64 * 100.0;
            decisions.extend(monitor.observe(Resource::Cpu, pct));
        }
        last_cpu = now_cpu;
        if let Some(pct) = read_memory_percent(&proc_root.0) {
            decisions.extend(monitor.observe(Resource::Memory, pct));
        }
        let mounts = if cfg.filesystems.is_empty() {
            disk_mounts(&proc_root.0)
        } else {
            cfg.filesystems.clone()
        };
        let probed = {
            let mounts = mounts.clone();
            tokio::task::spawn_blocking(move || {
                mounts
                    .into_iter()
                    .filter_map(|m| filesystem_percent(&m).map(|p| (m, p)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default()
        };
        for (m, pct) in probed {
            decisions.extend(monitor.observe(Resource::Filesystem(m), pct));
        }
        decisions.extend(monitor.forget_missing(&mounts));
        for d in decisions {
            let cmd = match d.severity {
                Some(sev) => FmCommand::Set(AlarmInput {
                    alarm_id: d.alarm_id.to_string(),
                    entity_instance_id: d.entity_instance_id.clone(),
                    entity_type_id: None,
                    severity: sev,
                    reason_text: Some(d.reason_text.clone()),
                    alarm_type: None,
                    probable_cause: None,
                    proposed_repair_action: None,
                    service_affecting: None,
                    suppression: None,
                    timestamp: None,
                }),
                None => FmCommand::ClearPair {
                    alarm_id: d.alarm_id.to_string(),
                    entity_instance_id: d.entity_instance_id.clone(),
                },
            };
            match fm.submit(cmd).await {
                Ok(_) => {
                    tracing::info!(alarm_id = d.alarm_id, entity = %d.entity_instance_id, severity = ?d.severity, "{}", d.reason_text)
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a resource alarm"),
            }
        }
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
            "/dev/vda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/vdb /data\\040x xfs rw 0 0\n",
        )
        .unwrap();
        assert_eq!(read_cpu_times(dir.path()), Some((200, 1000)));
        assert_eq!(read_memory_percent(dir.path()), Some(75.0));
        assert_eq!(disk_mounts(dir.path()), ["/", "/data x"]);
    }

    #[test]
    fn the_real_root_filesystem_has_a_usage() {
        let p = filesystem_percent("/").unwrap();
        assert!((0.0..=100.0).contains(&p));
        assert!(filesystem_percent("/no/such/mount").is_none());
    }
}

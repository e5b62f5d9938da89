//! Resource monitoring of the server's own host: CPU, memory and
//! filesystems sampled from /proc and statvfs, fed to the threshold
//! monitor of `roost-mtce`, and turned into alarms 100.101/103/104.

use std::path::PathBuf;
use std::time::Duration;

use roost_inventory::sampling::{
    cpu_percent, disk_mounts, filesystem_percent, read_cpu_times, read_memory_percent,
};
use roost_mtce::{AlarmDecision, Resource, ResourceMonitor};

use crate::config::MonitorConfig;
use crate::fm_service::FmService;
use crate::metrics::Metrics;

/// Where /proc is (injectable for tests).
#[derive(Debug, Clone)]
pub struct ProcRoot(pub PathBuf);

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot(PathBuf::from("/proc"))
    }
}

/// Samples the host every interval and raises or clears resource alarms.
pub async fn run(
    fm: FmService,
    metrics: std::sync::Arc<Metrics>,
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
        if let (Some(before), Some(after)) = (last_cpu, now_cpu)
            && let Some(pct) = cpu_percent(before, after)
        {
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
            let cmd = crate::fm_service::raise_or_clear(
                d.alarm_id,
                d.entity_instance_id.clone(),
                d.severity,
                d.reason_text.clone(),
            );
            match fm.submit(cmd).await {
                Ok(_) => {
                    tracing::info!(alarm_id = d.alarm_id, entity = %d.entity_instance_id, severity = ?d.severity, "{}", d.reason_text)
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a resource alarm"),
            }
        }
        metrics.monitor_period();
    }
}

//! What Linux's `/proc` tells about a process and about this machine.

use std::process::Command;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 when unknown).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU time of process `pid` (`"self"` for this one), in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so utime (field 14) is f[11] and stime (15) f[12].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...) in MiB.
pub fn status_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(&format!("{key}:")))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The thread count of `pid`.
pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// CPU use between two readings of [`cpu_ticks`], as % of one core.
pub fn cpu_percent(ticks_before: Option<u64>, ticks_after: Option<u64>, secs: f64) -> Option<f64> {
    let (a, b) = (ticks_before?, ticks_after?);
    (secs > 0.0).then(|| b.saturating_sub(a) as f64 / clock_ticks() / secs * 100.0)
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// One line about this machine: CPUs, model, memory, kernel and date.
pub fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown RAM".into());
    let kernel = command_line("uname", &["-r"]).unwrap_or_else(|| "unknown".into());
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown date".into());
    format!("{cpus} CPUs (nproc) · {model} · {mem} · Linux {kernel} · {date}")
}

/// `roost --version` and the workspace's git commit, when known.
pub fn roost_version(bin: &std::path::Path, root: &std::path::Path) -> String {
    let version = command_line(&bin.to_string_lossy(), &["--version"]).unwrap_or_else(|| "roost".into());
    let root = root.to_string_lossy();
    match command_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = command_line("git", &["-C", &root, "status", "--porcelain"]).is_some();
            format!("{version} (git {commit}{})", if dirty { ", modified tree" } else { "" })
        }
        None => version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(cpu_ticks("self").is_some());
        let pid = std::process::id();
        assert!(status_mib(pid, "VmRSS").is_some_and(|v| v > 0.0));
        assert!(threads(pid).is_some_and(|n| n >= 1));
        assert!(cpu_percent(Some(0), Some(100), 1.0).is_some());
        assert!(!machine_line().is_empty());
    }
}

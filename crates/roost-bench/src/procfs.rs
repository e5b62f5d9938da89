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

/// Busy CPU ticks of the whole machine, all cores (`/proc/stat`: everything but idle and iowait).
pub fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Some(busy)
}

/// Waits, up to `limit`, until the whole machine is quiet: under `pct` %
/// of one core busy over one second. Returns whether it got quiet.
pub fn wait_quiet(limit: std::time::Duration, pct: f64) -> bool {
    if limit.is_zero() {
        return true;
    }
    let deadline = std::time::Instant::now() + limit;
    let mut told = false;
    loop {
        let (a, t) = (machine_busy_ticks(), std::time::Instant::now());
        std::thread::sleep(std::time::Duration::from_secs(1));
        let busy = cpu_percent(a, machine_busy_ticks(), t.elapsed().as_secs_f64());
        match busy {
            Some(b) if b < pct => return true,
            None => return true,
            Some(b) if std::time::Instant::now() >= deadline => {
                eprintln!("  machine still busy ({b:.0} % of a core); measuring anyway");
                return false;
            }
            Some(b) => {
                if !told {
                    eprintln!("  waiting for a quiet machine (now {b:.0} % of a core busy)");
                    told = true;
                }
            }
        }
    }
}

/// Measures, from its start, the CPU of the whole machine minus that of a
/// server and of this process: what other processes used.
pub struct OtherCpu {
    server: String,
    start: std::time::Instant,
    ticks: (Option<u64>, Option<u64>, Option<u64>),
}

impl OtherCpu {
    fn ticks(server: &str) -> (Option<u64>, Option<u64>, Option<u64>) {
        (machine_busy_ticks(), cpu_ticks(server), cpu_ticks("self"))
    }

    /// Starts measuring.
    pub fn start(server_pid: u32) -> OtherCpu {
        let server = server_pid.to_string();
        OtherCpu {
            ticks: Self::ticks(&server),
            server,
            start: std::time::Instant::now(),
        }
    }

    /// % of one core used since the start by (the server, this process, everything else).
    pub fn read(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let now = Self::ticks(&self.server);
        let secs = self.start.elapsed().as_secs_f64();
        let server = cpu_percent(self.ticks.1, now.1, secs);
        let me = cpu_percent(self.ticks.2, now.2, secs);
        let other = cpu_percent(self.ticks.0, now.0, secs)
            .map(|all| (all - server.unwrap_or(0.0) - me.unwrap_or(0.0)).max(0.0));
        (server, me, other)
    }
}

/// Whether a PostgreSQL process, by its title (`/proc/<pid>/cmdline` as
/// PostgreSQL sets it), works for database `db`: a backend serving it
/// (`postgres: <user> <db> <client> <activity>`), an autovacuum worker on
/// it, or one of the cluster's shared processes (postmaster, WAL writer,
/// checkpointer, background writer, launchers). Backends and autovacuum
/// workers of other databases are not.
pub fn postgres_works_for(title: &str, db: &str) -> bool {
    let w: Vec<&str> = title
        .split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|w| !w.is_empty())
        .collect();
    match w.as_slice() {
        ["postgres:", "autovacuum", "worker", on, ..] => *on == db,
        ["postgres:", _user, on, client, ..] if client.contains('(') || *client == "[local]" => {
            *on == db
        }
        ["postgres:", ..] => true,
        [exe, ..] => exe.ends_with("/postgres") || *exe == "postgres",
        [] => false,
    }
}

/// CPU ticks of each PostgreSQL process working for database `db`
/// ([`postgres_works_for`]).
pub fn postgres_backend_ticks(db: &str) -> std::collections::HashMap<u32, u64> {
    let mut ticks = std::collections::HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim() != "postgres" {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if postgres_works_for(&String::from_utf8_lossy(&cmdline), db)
            && let Some(t) = cpu_ticks(&pid.to_string())
        {
            ticks.insert(pid, t);
        }
    }
    ticks
}

/// Measures, from its start, the CPU of the PostgreSQL processes working
/// for one database ([`postgres_works_for`]; those that start meanwhile
/// too).
pub struct PostgresCpu {
    db: String,
    start: std::time::Instant,
    ticks: std::collections::HashMap<u32, u64>,
}

impl PostgresCpu {
    /// Starts measuring.
    pub fn start(db: &str) -> PostgresCpu {
        PostgresCpu {
            db: db.to_string(),
            start: std::time::Instant::now(),
            ticks: postgres_backend_ticks(db),
        }
    }

    /// % of one core used since the start by the database's processes.
    pub fn read(&self) -> Option<f64> {
        let now = postgres_backend_ticks(&self.db);
        let secs = self.start.elapsed().as_secs_f64();
        let used: u64 = now
            .iter()
            .map(|(pid, t)| t.saturating_sub(self.ticks.get(pid).copied().unwrap_or(0)))
            .sum();
        (secs > 0.0).then(|| used as f64 / clock_ticks() / secs * 100.0)
    }
}

/// Microseconds some task spent waiting for IO, since boot (Linux PSI,
/// `/proc/pressure/io`, line `some`).
pub fn io_stall_micros() -> Option<u64> {
    let psi = std::fs::read_to_string("/proc/pressure/io").ok()?;
    psi.lines()
        .find(|l| l.starts_with("some "))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// The share of the time from `before` (a reading of [`io_stall_micros`])
/// to now, over `secs`, in which some task waited for IO, in %.
pub fn io_pressure_since(before: Option<u64>, secs: f64) -> Option<f64> {
    let (a, b) = (before?, io_stall_micros()?);
    (secs > 0.0).then(|| b.saturating_sub(a) as f64 / 1e6 / secs * 100.0)
}

/// The share of the last 60 s in which some task waited for IO (Linux
/// PSI, `/proc/pressure/io`, `some avg60`), %.
pub fn io_pressure_avg60() -> Option<f64> {
    let psi = std::fs::read_to_string("/proc/pressure/io").ok()?;
    psi.lines()
        .find(|l| l.starts_with("some "))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg60="))?
        .parse()
        .ok()
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU ticks of each thread of `pid`, summed by thread name (`comm`).
pub fn thread_ticks(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let path = format!("{pid}/task/{tid}");
        let name = std::fs::read_to_string(format!("/proc/{path}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        if let Some(t) = cpu_ticks(&path) {
            *by_name.entry(name).or_insert(0) += t;
        }
    }
    by_name
}

/// Per-thread-name CPU between two readings of [`thread_ticks`], as % of
/// one core, busiest first; names below 1 % are left out.
pub fn thread_percent(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    secs: f64,
) -> Vec<(String, f64)> {
    let hz = clock_ticks();
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(name, t)| {
            let d = t.saturating_sub(before.get(name).copied().unwrap_or(0));
            (name.clone(), d as f64 / hz / secs.max(1e-9) * 100.0)
        })
        .filter(|(_, pct)| *pct >= 1.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// The filesystem type and source device holding `path` (`ext4 on /dev/vda`).
pub fn filesystem_of(path: &std::path::Path) -> String {
    let p = path.to_string_lossy();
    command_line("findmnt", &["-n", "-o", "FSTYPE,SOURCE", "-T", &p])
        .map(|s| {
            let mut it = s.split_whitespace();
            match (it.next(), it.next()) {
                (Some(t), Some(src)) => format!("{t} on {src}"),
                _ => s.clone(),
            }
        })
        .unwrap_or_else(|| "unknown filesystem".into())
}

/// Median time of a 4 KiB write plus `fdatasync` in `dir` (what a
/// power-durable commit waits for at least), over `n` tries.
pub fn fdatasync_p50(dir: &std::path::Path, n: usize) -> Option<std::time::Duration> {
    use std::io::Write;
    let tmp = tempfile::tempdir_in(dir).ok()?;
    let mut f = std::fs::File::create(tmp.path().join("probe")).ok()?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = std::time::Instant::now();
        f.write_all(&block).ok()?;
        f.sync_data().ok()?;
        samples.push(t.elapsed());
    }
    Some(crate::stats::Dist::new(samples).pct(50.0))
}

/// The CPU time `pid` has used, seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_ticks(&pid.to_string()).map(|t| t as f64 / clock_ticks())
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
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        .unwrap_or_else(|| "unknown date".into());
    format!("{cpus} CPUs (nproc) · {model} · {mem} · Linux {kernel} · {date}")
}

/// `roost --version` and the workspace's git commit, when known.
pub fn roost_version(bin: &std::path::Path, root: &std::path::Path) -> String {
    let version =
        command_line(&bin.to_string_lossy(), &["--version"]).unwrap_or_else(|| "roost".into());
    let root = root.to_string_lossy();
    match command_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = command_line("git", &["-C", &root, "status", "--porcelain"]).is_some();
            format!(
                "{version} (git {commit}{})",
                if dirty { ", modified tree" } else { "" }
            )
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
        assert!(!thread_ticks(pid).is_empty());
        assert!(machine_busy_ticks().is_some());
        assert!(load_average().is_some());
        assert!(!machine_line().is_empty());
    }

    #[test]
    fn tells_which_postgres_processes_work_for_a_database() {
        let db = "roost_bench_1_0";
        for (title, works) in [
            ("postgres: roost roost_bench_1_0 127.0.0.1(4242) idle", true),
            ("postgres: roost roost_bench_1_0 [local] COMMIT", true),
            ("postgres: roost roost_test_9_0 127.0.0.1(4242) idle", false),
            ("postgres: autovacuum worker roost_bench_1_0", true),
            ("postgres: autovacuum worker roost_test_9_0", false),
            ("postgres: walwriter ", true),
            ("postgres: background writer ", true),
            ("/usr/lib/postgresql/15/bin/postgres\0-D\0/data\0", true),
        ] {
            assert_eq!(postgres_works_for(title, db), works, "{title}");
        }
    }
}

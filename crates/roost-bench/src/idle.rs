//! Benchmark 4: memory and CPU of an idle server with monitoring on.

use std::time::{Duration, Instant};

use roost_test_support::ServerOptions;

use crate::Plan;
use crate::procfs;
use crate::table::Table;

/// What an idle server costs.
pub struct Results {
    pub window: Duration,
    pub rss_mib: Option<f64>,
    pub hwm_mib: Option<f64>,
    /// % of one core over the window.
    pub cpu: Option<f64>,
    pub threads: Option<u64>,
}

/// Starts a server with monitoring on and watches it idle.
pub fn run(plan: &Plan) -> anyhow::Result<Results> {
    eprintln!(
        "idle: watching an idle server for {} s",
        plan.idle.as_secs()
    );
    plan.settle();
    let server = crate::start_server(
        plan,
        ServerOptions {
            monitor: true,
            ..ServerOptions::default()
        },
    )?;
    let pid = server.pid();
    let (t0, ticks0) = (Instant::now(), procfs::cpu_ticks(&pid.to_string()));
    std::thread::sleep(plan.idle);
    let ticks1 = procfs::cpu_ticks(&pid.to_string());
    let window = t0.elapsed();
    let r = Results {
        window,
        rss_mib: procfs::status_mib(pid, "VmRSS"),
        hwm_mib: procfs::status_mib(pid, "VmHWM"),
        cpu: procfs::cpu_percent(ticks0, ticks1, window.as_secs_f64()),
        threads: procfs::threads(pid),
    };
    eprintln!(
        "  RSS {:.1} MiB, CPU {:.2} %",
        r.rss_mib.unwrap_or(0.0),
        r.cpu.unwrap_or(0.0)
    );
    Ok(r)
}

fn mib(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}"))
}

/// The section as markdown.
pub fn render(r: &Results, after_list: Option<(usize, Option<f64>, Option<f64>)>) -> String {
    let mut out = String::from("### 4. Idle footprint\n\n");
    out.push_str(&format!(
        "A fresh server with resource monitoring on (the default), left idle {:.0} s right after it \
         became ready; memory from `/proc/<pid>/status` at the end, CPU from `/proc/<pid>/stat` \
         (utime + stime) over the window.\n\n",
        r.window.as_secs_f64()
    ));
    let mut t = Table::new(&[
        "server",
        ">VmRSS MiB",
        ">VmHWM MiB",
        ">CPU % of one core",
        ">threads",
        "StarlingX (documented)",
    ]);
    t.row(vec![
        "idle, monitoring on".into(),
        mib(r.rss_mib),
        mib(r.hwm_mib),
        r.cpu.map_or("—".into(), |c| format!("{c:.2}")),
        r.threads.map_or("—".into(), |n| n.to_string()),
        "316 MiB API + 109 MiB PostgreSQL".into(),
    ]);
    if let Some((alarms, rss, hwm)) = after_list {
        t.row(vec![
            format!(
                "after the list benchmark ({} alarms, monitoring off)",
                crate::stats::group(alarms as u64)
            ),
            mib(rss),
            mib(hwm),
            "—".into(),
            "—".into(),
            "—".into(),
        ]);
    }
    out.push_str(&t.render());
    out
}

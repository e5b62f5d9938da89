//! Benchmark 3: time from spawning `roost server` on an empty data
//! directory to its first answered `GET /healthz`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Plan;
use crate::stats::{Dist, ms};
use crate::table::Table;

/// Longest a trial may take before it counts as a failure.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls.
const POLL_EVERY: Duration = Duration::from_millis(2);

/// Kills and reaps the child when dropped, so no trial outlives the benchmark.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when `GET /healthz` on `addr` answers 200; a refused connection is "not yet".
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nodelay(true);
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// One trial on a fresh data directory.
fn trial(plan: &Plan) -> anyhow::Result<Duration> {
    let tmp = tempfile::tempdir()?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    let child = Command::new(&plan.bin)
        .arg("server")
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--no-monitor")
        .env("ROOST_ADMIN_PASSWORD", "x")
        .env_remove("ROOST_CONFIG")
        .env_remove("ROOST_DATA_DIR")
        .env_remove("ROOST_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", plan.bin.display()))?;
    let mut child = Reaper(child);
    loop {
        if healthy(addr) {
            return Ok(started.elapsed());
        }
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("roost server exited with {status} before answering");
        }
        anyhow::ensure!(
            started.elapsed() < TRIAL_TIMEOUT,
            "roost server did not answer GET /healthz within {} s",
            TRIAL_TIMEOUT.as_secs()
        );
        std::thread::sleep(POLL_EVERY);
    }
}

/// Runs every trial; a failed trial (e.g. the port was taken meanwhile) is retried once.
pub fn run(plan: &Plan) -> anyhow::Result<Dist> {
    eprintln!("startup: {} trials", plan.startup_trials);
    let mut samples = Vec::with_capacity(plan.startup_trials);
    plan.settle();
    for i in 0..plan.startup_trials {
        let d = match trial(plan) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("  trial {i} failed ({e:#}); retrying once");
                trial(plan)?
            }
        };
        samples.push(d);
    }
    let dist = Dist::new(samples);
    eprintln!("  p50 {} ms", ms(dist.pct(50.0)));
    Ok(dist)
}

/// The section as markdown.
pub fn render(d: &Dist) -> String {
    let mut out = String::from("### 3. Start-up\n\n");
    out.push_str(&format!(
        "Time from spawning `roost server --no-monitor` on an empty data directory (a new one each trial: \
         it creates the store and the admin user) to the first `200` from `GET /healthz`, polled every \
         {} ms over a new connection; {} trials, in ms.\n\n",
        POLL_EVERY.as_millis(),
        d.len()
    ));
    let mut t = Table::new(&[
        ">trials",
        ">min",
        ">p50",
        ">p90",
        ">max",
        ">StarlingX (documented)",
    ]);
    t.row(vec![
        d.len().to_string(),
        ms(d.min()),
        ms(d.pct(50.0)),
        ms(d.pct(90.0)),
        ms(d.max()),
        "3,400".into(),
    ]);
    out.push_str(&t.render());
    out
}

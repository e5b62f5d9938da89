//! `roost-bench deploy`: deploying a release to one site's hosts.
//!
//! A server and three real agents (127.0.0.2-4), unlocked and available,
//! heartbeat at the default 100 ms. Each trial uploads a new release, then
//! `deploy start`, `deploy host` on every host at once, and polls
//! `deploy host-list` every 20 ms until every host is `deployed`; then
//! activate, complete and delete. Two kinds of release, alternating:
//! - in-service, no binary (a file and a health check): the baseline;
//! - a new `roost` binary (this binary, stripped of debug sections, with a
//!   trailer that makes each trial's file different), so that every agent
//!   fetches it, re-executes itself and confirms, and the server hands its
//!   own process over to it.
//!
//! Measured per trial: the time from `deploy start` to every host
//! `deployed` (the server's own host too), the heartbeat pulses the server
//! sent and did not get answered in that time (from `/metrics`: with one
//! pulse per host every 100 ms, the unanswered pulses of a host times
//! 100 ms bound its longest gap; after a handover the counters start again
//! in the new process, so the figure covers the old process until the
//! trial began and the new one from its start), the longest pause of the
//! API (a client asks `GET /healthz` every 10 ms: the longest time between
//! two answers), and heartbeat alarms set (200.005 degraded, 200.004
//! failed; the target is none).

use std::path::Path;
use std::time::{Duration, Instant};

use roost_test_support::{ServerOptions, release};
use serde_json::json;

use crate::mtce::probe::{self, Http};
use crate::stats::{Dist, ms};
use crate::table::Table;
use crate::{Plan, emit};

const HOSTS: usize = 3;
const HEALTH: &str = "#!/bin/sh\nexit 0\n";

/// One kind of release's trials.
struct Kind {
    label: &'static str,
    binary: bool,
    times: Vec<Duration>,
    unanswered: Vec<u64>,
    sent: Vec<u64>,
    degraded: usize,
    failed: usize,
    bytes: u64,
    pauses: Vec<Duration>,
}

impl Kind {
    fn new(label: &'static str, binary: bool) -> Kind {
        Kind {
            label,
            binary,
            times: Vec::new(),
            unanswered: Vec::new(),
            sent: Vec::new(),
            degraded: 0,
            failed: 0,
            bytes: 0,
            pauses: Vec::new(),
        }
    }
}

/// Uploads a release file as the stock client does.
fn upload(http: &Http, file: &Path) -> anyhow::Result<()> {
    let (status, v) = release::upload_release(&http.url, &http.token, &[file]);
    anyhow::ensure!(
        status == 200 && v["error"] == "",
        "upload {}: {v}",
        file.display()
    );
    Ok(())
}

fn act(http: &Http, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let v = http.post(path, &body)?;
    anyhow::ensure!(v["error"] == "", "{path}: {v}");
    Ok(())
}

/// This roost binary without debug sections.
fn shipped_binary(bin: &Path, dir: &Path) -> anyhow::Result<Vec<u8>> {
    let out = dir.join("roost-stripped");
    let stripped = std::process::Command::new("strip")
        .args(["-g", "-o"])
        .arg(&out)
        .arg(bin)
        .status()
        .is_ok_and(|s| s.success());
    Ok(std::fs::read(if stripped { out.as_path() } else { bin })?)
}

/// Asks `GET /healthz` every 10 ms until stopped; the longest time
/// between two answers.
struct PauseProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl PauseProbe {
    fn start(url: &str) -> PauseProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, url) = (stop.clone(), format!("{url}/healthz"));
        let thread = std::thread::spawn(move || {
            let c = roost_test_support::http();
            let mut last = Instant::now();
            let mut longest = Duration::ZERO;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if c.get(&url).send().is_ok_and(|r| r.status().is_success()) {
                    longest = longest.max(last.elapsed());
                    last = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            longest
        });
        PauseProbe { stop, thread }
    }

    fn stop(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// What one trial measured.
struct Measured {
    took: Duration,
    unanswered: u64,
    sent: u64,
    degraded: usize,
    failed: usize,
    pause: Duration,
}

/// One deploy of `id` to every host: the time to all deployed, the
/// heartbeat deltas and the API's longest pause over it.
fn trial(http: &Http, id: &str, hosts: &[String]) -> anyhow::Result<Measured> {
    let probe = PauseProbe::start(&http.url);
    let r = deploy_all(http, id, hosts);
    let pause = probe.stop();
    let (took, unanswered, sent, degraded, failed) = r?;
    Ok(Measured {
        took,
        unanswered,
        sent,
        degraded,
        failed,
        pause,
    })
}

fn deploy_all(
    http: &Http,
    id: &str,
    hosts: &[String],
) -> anyhow::Result<(Duration, u64, u64, usize, usize)> {
    let m0 = http.heartbeat_metrics()?;
    let w0 = probe::now_micros();
    let t0 = Instant::now();
    act(
        http,
        "/v1/deploy/start",
        json!({"releases": [id], "force": "true"}),
    )?;
    for h in hosts {
        act(http, &format!("/v1/deploy_host/{h}"), json!({}))?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done_at = std::collections::BTreeMap::new();
    loop {
        // A poll cut by the server's handover is sent again.
        let list = match http.get("/v1/deploy_host") {
            Ok(l) => l,
            Err(e) => {
                anyhow::ensure!(Instant::now() < deadline, "cannot poll the deploy: {e:#}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let states: Vec<&str> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| h["host_state"].as_str().unwrap_or(""))
            .collect();
        for h in list.as_array().into_iter().flatten() {
            if h["host_state"] == "deployed"
                && let Some(name) = h["hostname"].as_str()
            {
                done_at
                    .entry(name.to_string())
                    .or_insert_with(|| t0.elapsed());
            }
        }
        if states.contains(&"failed") {
            anyhow::bail!("a host failed: {list}");
        }
        if states.len() == hosts.len() && states.iter().all(|s| *s == "deployed") {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the deploy did not finish: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    let each: Vec<String> = done_at
        .iter()
        .map(|(h, t)| format!("{h} {} ms", t.as_millis()))
        .collect();
    eprintln!("    deployed: {}", each.join(", "));
    let m1 = http.heartbeat_metrics()?;
    // A handover started the counters again.
    let hb = if m1.sent < m0.sent { m1 } else { m1.since(&m0) };
    act(http, "/v1/deploy/activate", json!({}))?;
    act(http, "/v1/deploy/complete", json!({}))?;
    http.delete("/v1/deploy")?;
    let events = http.heartbeat_events("deploy-", w0)?;
    let (degraded, failed, _) = probe::tally(&events);
    Ok((
        took,
        hb.sent.saturating_sub(hb.answered),
        hb.sent,
        degraded,
        failed,
    ))
}

/// Runs the benchmark and prints its table; returns the failures.
pub fn run(plan: &Plan) -> anyhow::Result<u64> {
    let trials = if plan.quick { 1 } else { 5 };
    eprintln!("deploy: {trials} trials of each kind to {HOSTS} agents");
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("release.key");
    let public = release::keygen(&plan.bin, &key).map_err(anyhow::Error::msg)?;
    let config = dir.path().join("roost.toml");
    std::fs::write(
        &config,
        format!("[software]\ntrusted_keys = [\"{public}\"]\n"),
    )?;
    plan.settle();
    let server = crate::start_server(
        plan,
        ServerOptions {
            args: vec!["--config".into(), config.display().to_string()],
            ..ServerOptions::default()
        },
    )?;
    let http = Http::new(&server.url, &server.token())?;
    let mut agents = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..HOSTS {
        let name = format!("deploy-{i}");
        agents.push(probe::available_agent(
            &plan.bin,
            &http,
            dir.path(),
            &name,
            &format!("127.0.0.{}", i + 2),
        )?);
        hosts.push(name);
    }
    // The server's own host is deployed too, last: its handover must not
    // cut the other hosts' `deploy host` requests.
    hosts.push("controller-0".to_string());
    let binary = shipped_binary(&plan.bin, dir.path())?;
    let mut kinds = [
        Kind::new("in-service, no binary (baseline)", false),
        Kind::new("new roost binary (agents and server re-execute)", true),
    ];
    let mut failures = 0;
    let mut n = 0;
    for _ in 0..trials {
        for k in kinds.iter_mut() {
            n += 1;
            let id = format!("roost-1.0.{n}");
            let motd = format!("release {id}\n");
            let mut files: Vec<(&str, &[u8])> = vec![
                ("etc/motd", motd.as_bytes()),
                ("hooks/health", HEALTH.as_bytes()),
            ];
            // A distinct binary each trial (bytes after the ELF image are
            // ignored), so that every agent fetches it anew.
            let own = k.binary.then(|| {
                let mut b = binary.clone();
                b.extend_from_slice(format!("\nroost-bench trial {id}\n").as_bytes());
                b
            });
            if let Some(b) = &own {
                files.push(("bin/roost", b));
            }
            let spec = release::ReleaseSpec {
                id: &id,
                files: &files,
                health_check: Some("hooks/health"),
                ..Default::default()
            };
            let file = release::build_release(&plan.bin, dir.path(), &key, &spec)
                .map_err(anyhow::Error::msg)?;
            std::fs::remove_dir_all(dir.path().join(&id))?;
            k.bytes = std::fs::metadata(&file)?.len();
            upload(&http, &file)?;
            plan.settle();
            match trial(&http, &id, &hosts) {
                Ok(m) => {
                    eprintln!(
                        "  {id} ({}): {} ms, {} pulses unanswered, API paused {} ms at most",
                        k.label,
                        m.took.as_millis(),
                        m.unanswered,
                        m.pause.as_millis()
                    );
                    k.times.push(m.took);
                    k.unanswered.push(m.unanswered);
                    k.sent.push(m.sent);
                    k.degraded += m.degraded;
                    k.failed += m.failed;
                    k.pauses.push(m.pause);
                }
                Err(e) => {
                    eprintln!("  {id} ({}) failed: {e:#}", k.label);
                    failures += 1;
                    return Ok(failures);
                }
            }
        }
    }
    emit(&render(&kinds, trials));
    Ok(failures)
}

fn render(kinds: &[Kind], trials: usize) -> String {
    let mut out = String::from("### Software deploy on one site\n\n");
    out.push_str(&format!(
        "One server and {HOSTS} real agents on this machine, heartbeat every 100 ms (degraded \
         after 6 missed pulses, failed after 10). Each trial: `deploy start`, `deploy host` on \
         every host at once (the server's own host too), until `deploy host-list` shows every \
         host `deployed` (polled every 20 ms); {trials} trials of each kind, alternating. \
         \"Unanswered\" is the heartbeat pulses the server sent during the trial that were not \
         answered (all hosts together; a host's longest gap is at most its unanswered pulses × \
         100 ms; after a handover, counted by the new process from its start). \"API pause\" is \
         the longest time between two answers to `GET /healthz`, asked every 10 ms.\n\n"
    ));
    let base = kinds.first().map(|k| Dist::new(k.times.clone()).pct(50.0));
    let mut t = Table::new(&[
        "release",
        ">release file",
        ">p50 to all deployed",
        ">min",
        ">max",
        ">× baseline",
        ">pulses sent",
        ">unanswered (max per trial)",
        ">API pause (max)",
        ">200.005 sets",
        ">200.004 sets",
    ]);
    for k in kinds {
        let d = Dist::new(k.times.clone());
        let ratio = match base {
            Some(b) if !b.is_zero() => {
                format!("{:.2}", d.pct(50.0).as_secs_f64() / b.as_secs_f64())
            }
            _ => "-".into(),
        };
        t.row(vec![
            k.label.to_string(),
            format!("{:.1} MB", k.bytes as f64 / 1e6),
            ms(d.pct(50.0)),
            ms(d.pct(0.0)),
            ms(d.max()),
            ratio,
            k.sent.iter().sum::<u64>().to_string(),
            k.unanswered.iter().max().copied().unwrap_or(0).to_string(),
            ms(k.pauses.iter().max().copied().unwrap_or_default()),
            k.degraded.to_string(),
            k.failed.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

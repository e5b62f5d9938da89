//! Benchmark `mtce`: host maintenance with real agents and real UDP
//! heartbeats.
//!
//! 1. **Failure detection**: `kill -9` of a real `roost agent` to the API
//!    reporting its host `failed` (polled every 2 ms), at a 100 ms and a
//!    20 ms heartbeat period, against the floor period × threshold.
//! 2. **False failures under load**: three real agents, every CPU kept busy
//!    (`stress-ng --cpu N`); heartbeat alarms raised (target 0), pulses lost,
//!    round-trip times, against an unloaded window of the same run.
//! 3. **Agent footprint**: RSS and CPU of one idle, heartbeating agent.
//! 4. **Server with 200 simulated hosts** (`roost sim agents`, a separate
//!    process) heartbeating at 100 ms, against the same server idle with no
//!    host.
//! 5. **Heartbeats under a write burst** with `--durability power`: pulse
//!    round-trip times with writer threads patching hosts and writing
//!    alarms, against a quiet window of the same server.
//!
//! It is not part of `all`: a full run takes about 20 minutes, `--quick`
//! about 2. `ROOST_BENCH_MTCE=2,5` runs only some of the five parts. Unlike
//! the other benchmarks it does not measure a disturbed window again; each
//! part reports the CPU other processes used during it.

mod burst;
pub(crate) mod probe;

use std::time::{Duration, Instant};

use roost_test_support::ServerOptions;

use crate::procfs;
use crate::stats::{Dist, group, ms};
use crate::table::Table;
use crate::{Plan, emit};
use probe::{CpuHog, Event, HbMetrics, Http, SimAgents, ms_f, now_micros, tally};

/// Longest a detection trial may take.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Time between two availability polls.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// Longest wait for an agent to come back.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Agent footprint targets: VmRSS in MB (10^6 bytes), CPU in % of a core.
const AGENT_RSS_TARGET_MB: f64 = 10.0;
const AGENT_CPU_TARGET: f64 = 0.5;

/// How long and how much to measure.
struct Spec {
    trials: usize,
    periods: [u32; 2],
    load_baseline: Duration,
    load_window: Duration,
    agent_idle: Duration,
    fleet_hosts: usize,
    fleet_window: Duration,
    burst_window: Duration,
}

impl Spec {
    fn new(quick: bool) -> Spec {
        Spec {
            trials: if quick { 5 } else { 50 },
            periods: [100, 20],
            load_baseline: Duration::from_secs(if quick { 10 } else { 60 }),
            load_window: Duration::from_secs(if quick { 30 } else { 600 }),
            agent_idle: Duration::from_secs(if quick { 10 } else { 60 }),
            fleet_hosts: 200,
            fleet_window: Duration::from_secs(if quick { 10 } else { 60 }),
            burst_window: Duration::from_secs(if quick { 10 } else { 60 }),
        }
    }
}

/// Failure detection at one heartbeat period.
struct Detection {
    period_ms: u32,
    degrade_threshold: u32,
    failure_threshold: u32,
    /// Kill to `failed` in the API, bench clock.
    failed: Dist,
    /// Kill to `degraded` in the API (when a poll saw it).
    degraded: Dist,
    /// Kill to the 200.004 record in the event log (server clock).
    failed_logged: Dist,
    /// Restart of the agent to `available` again.
    recovery: Dist,
    errors: Vec<String>,
}

/// One window of the false-failure benchmark.
struct LoadWindow {
    secs: f64,
    /// Whole machine, % of all CPUs.
    machine_busy: Option<f64>,
    server_cpu: Option<f64>,
    hb: HbMetrics,
    events: Vec<Event>,
    /// Availability polls (one per host per second) that were not `available`.
    not_available_polls: u64,
    polls: u64,
}

struct LoadResults {
    agents: usize,
    cpus: usize,
    how: String,
    idle: LoadWindow,
    loaded: LoadWindow,
}

/// Memory and CPU of one process over a window.
#[derive(Default)]
struct Footprint {
    secs: f64,
    rss_mib: Option<f64>,
    hwm_mib: Option<f64>,
    cpu: Option<f64>,
    threads: Option<u64>,
    /// The whole machine over the window, % of one core.
    machine_cpu: Option<f64>,
}

struct AgentResults {
    agent: Footprint,
    server_cpu: Option<f64>,
}

struct FleetResults {
    hosts: usize,
    setup: Duration,
    idle: Footprint,
    busy: Footprint,
    sim: Footprint,
    hb: HbMetrics,
    events: Vec<Event>,
}

/// Everything `mtce` measured.
#[derive(Default)]
struct Results {
    detection: Vec<Detection>,
    load: Option<LoadResults>,
    agent: Option<AgentResults>,
    fleet: Option<FleetResults>,
    burst: Option<burst::BurstResults>,
    /// Benchmarks that could not run, with why.
    errors: Vec<String>,
}

/// Runs the four benchmarks, printing each section as it completes;
/// returns the number of failed trials and benchmarks.
pub fn run(plan: &Plan) -> anyhow::Result<u64> {
    let spec = Spec::new(plan.quick);
    let parts = parts_wanted(std::env::var("ROOST_BENCH_MTCE").ok().as_deref())?;
    let mut r = Results::default();
    if parts[0] {
        match detection(plan, &spec) {
            Ok(d) => {
                emit(&render_detection(&d));
                r.detection = d;
            }
            Err(e) => fail(&mut r, "failure detection", e),
        }
    }
    if parts[1] {
        match false_failures(plan, &spec) {
            Ok(l) => {
                emit(&render_load(&l));
                r.load = Some(l);
            }
            Err(e) => fail(&mut r, "false failures under load", e),
        }
    }
    if parts[2] {
        match agent_footprint(plan, &spec) {
            Ok(a) => {
                emit(&render_agent(&a));
                r.agent = Some(a);
            }
            Err(e) => fail(&mut r, "agent footprint", e),
        }
    }
    if parts[3] {
        match fleet(plan, &spec) {
            Ok(f) => {
                emit(&render_fleet(&f));
                r.fleet = Some(f);
            }
            Err(e) => fail(&mut r, "server with simulated hosts", e),
        }
    }
    if parts[4] {
        match burst::run(plan, spec.burst_window) {
            Ok(b) => {
                emit(&burst::render(&b));
                r.burst = Some(b);
            }
            Err(e) => fail(&mut r, "heartbeats under a write burst", e),
        }
    }
    emit(&summary(&r));
    let trial_errors: usize = r.detection.iter().map(|d| d.errors.len()).sum();
    Ok((trial_errors + r.errors.len()) as u64)
}

/// Which of the five parts to run: all, or those listed (`1,3`).
fn parts_wanted(list: Option<&str>) -> anyhow::Result<[bool; 5]> {
    let Some(list) = list.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok([true; 5]);
    };
    let mut parts = [false; 5];
    for p in list.split(',') {
        match p.trim().parse::<usize>() {
            Ok(n @ 1..=5) => parts[n - 1] = true,
            _ => anyhow::bail!("ROOST_BENCH_MTCE lists parts 1 to 5 (like 2,5), not {p:?}"),
        }
    }
    Ok(parts)
}

fn fail(r: &mut Results, what: &str, e: anyhow::Error) {
    eprintln!("mtce: {what} failed: {e:#}");
    r.errors.push(format!("{what}: {e:#}"));
}

/// A service parameter's value as a number.
fn parameter(http: &Http, name: &str) -> anyhow::Result<u32> {
    let list = http.get("/v1/service_parameter")?;
    list["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no numeric service parameter {name}"))
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}

// ---------------------------------------------------------------- 1

/// One kill: (to failed, to degraded, to the 200.004 record, recovery).
struct Trial {
    failed: Duration,
    degraded: Option<Duration>,
    failed_logged: Option<Duration>,
    recovery: Duration,
}

fn detection(plan: &Plan, spec: &Spec) -> anyhow::Result<Vec<Detection>> {
    eprintln!(
        "mtce 1: failure detection, {} kill -9 trials at each of {:?} ms",
        spec.trials, spec.periods
    );
    plan.settle();
    let server = crate::start_server(plan, ServerOptions::default())?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let name = "detect-0";
    let mut agent = probe::available_agent(&plan.bin, &http, dir.path(), name, "127.0.0.2")?;
    let mut out = Vec::new();
    for &period in &spec.periods {
        http.set_parameter("heartbeat_period", &period.to_string())?;
        // The pulse loop picks the new period up at its next tick.
        std::thread::sleep(Duration::from_millis(500));
        http.wait_avail(name, "available", RECOVERY_TIMEOUT)?;
        let mut d = Detection {
            period_ms: period,
            degrade_threshold: parameter(&http, "heartbeat_degrade_threshold")?,
            failure_threshold: parameter(&http, "heartbeat_failure_threshold")?,
            failed: Dist::default(),
            degraded: Dist::default(),
            failed_logged: Dist::default(),
            recovery: Dist::default(),
            errors: Vec::new(),
        };
        let (mut failed, mut degraded, mut logged, mut recovery) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..spec.trials {
            match trial(&http, &mut agent, name, period) {
                Ok(t) => {
                    failed.push(t.failed);
                    degraded.extend(t.degraded);
                    logged.extend(t.failed_logged);
                    recovery.push(t.recovery);
                }
                Err(e) => {
                    eprintln!("  trial {i} at {period} ms failed: {e:#}");
                    d.errors.push(format!("{e:#}"));
                    // Start over from a running, available agent.
                    agent.restart().map_err(anyhow::Error::msg)?;
                    http.wait_avail(name, "available", RECOVERY_TIMEOUT)?;
                }
            }
        }
        d.failed = Dist::new(failed);
        d.degraded = Dist::new(degraded);
        d.failed_logged = Dist::new(logged);
        d.recovery = Dist::new(recovery);
        eprintln!(
            "  {period} ms: p50 {} ms to failed ({} trials, {} errors)",
            ms(d.failed.pct(50.0)),
            d.failed.len(),
            d.errors.len()
        );
        out.push(d);
    }
    Ok(out)
}

/// Kills the agent at a random phase of the heartbeat and polls until the
/// host is failed; then restarts the agent and waits until it is available.
fn trial(
    http: &Http,
    agent: &mut roost_test_support::Agent,
    name: &str,
    period_ms: u32,
) -> anyhow::Result<Trial> {
    http.wait_avail(name, "available", RECOVERY_TIMEOUT)?;
    std::thread::sleep(Duration::from_millis(
        200 + probe::random_u64() % u64::from(period_ms.max(1)),
    ));
    let wall0 = now_micros();
    let t0 = Instant::now();
    agent.kill9();
    let mut degraded = None;
    let mut next = Instant::now();
    let failed = loop {
        let avail = http.availability(name)?;
        let t = t0.elapsed();
        if avail == "degraded" && degraded.is_none() {
            degraded = Some(t);
        }
        if avail == "failed" {
            break t;
        }
        if t > TRIAL_TIMEOUT {
            anyhow::bail!(
                "{name} is {avail}, not failed, {} s after kill -9",
                TRIAL_TIMEOUT.as_secs()
            );
        }
        next += POLL_EVERY;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    };
    // The record is stamped before it is committed: look again for a while.
    let mut failed_logged = None;
    let looked = Instant::now();
    while failed_logged.is_none() && looked.elapsed() < Duration::from_secs(2) {
        failed_logged = http
            .heartbeat_events(name, wall0)?
            .iter()
            .find(|e| e.id == "200.004")
            .map(|e| micros(e.at - wall0));
        if failed_logged.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let back = Instant::now();
    agent.restart().map_err(anyhow::Error::msg)?;
    http.wait_avail(name, "available", RECOVERY_TIMEOUT)?;
    Ok(Trial {
        failed,
        degraded,
        failed_logged,
        recovery: back.elapsed(),
    })
}

fn render_detection(ds: &[Detection]) -> String {
    let mut out = String::from("### Maintenance 1. Heartbeat failure detection\n\n");
    out.push_str(
        "One real agent (127.0.0.2), unlocked and available, is killed with `kill -9` at a random \
         phase of the heartbeat; the benchmark polls `GET /v1/ihosts/{name}` every 2 ms (one kept-alive \
         connection) and times kill → first answer saying `degraded`, then `failed`. \"Event log\" is \
         kill → the timestamp of the 200.004 record (server clock, same machine: no polling delay; \
         it is stamped as the server records the failure, right after the state change). \
         After each trial the agent is restarted with its identity and the next trial waits until the \
         host is `available` again (\"recovery\": restart → available). The floor is period × \
         threshold: the time the server must wait by design.\n\n",
    );
    let mut t = Table::new(&[
        "heartbeat → state",
        ">trials",
        ">floor",
        ">p50",
        ">p90",
        ">p99",
        ">max",
        ">p50 / floor",
        ">p50, event log",
        ">p99, event log",
    ]);
    for d in ds {
        let period = Duration::from_millis(u64::from(d.period_ms));
        for (state, thr, dist, logged) in [
            ("degraded", d.degrade_threshold, &d.degraded, None),
            (
                "failed",
                d.failure_threshold,
                &d.failed,
                Some(&d.failed_logged),
            ),
        ] {
            let floor = period * thr;
            let cell = |p: f64| {
                if dist.len() == 0 {
                    "—".to_string()
                } else {
                    format!("{} ms", ms(dist.pct(p)))
                }
            };
            t.row(vec![
                format!("{} ms × {thr} → {state}", d.period_ms),
                dist.len().to_string(),
                format!("{} ms", ms(floor)),
                cell(50.0),
                cell(90.0),
                cell(99.0),
                if dist.len() == 0 {
                    "—".into()
                } else {
                    format!("{} ms", ms(dist.max()))
                },
                if dist.len() == 0 {
                    "—".into()
                } else {
                    format!(
                        "{:.2}",
                        dist.pct(50.0).as_secs_f64() / floor.as_secs_f64().max(1e-9)
                    )
                },
                match logged {
                    Some(l) if l.len() > 0 => format!("{} ms", ms(l.pct(50.0))),
                    _ => "—".into(),
                },
                match logged {
                    Some(l) if l.len() > 0 => format!("{} ms", ms(l.pct(99.0))),
                    _ => "—".into(),
                },
            ]);
        }
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut r = Table::new(&[
        "heartbeat",
        ">recovery p50",
        ">recovery max",
        ">failed trials",
    ]);
    for d in ds {
        r.row(vec![
            format!("{} ms", d.period_ms),
            format!("{} ms", ms(d.recovery.pct(50.0))),
            format!("{} ms", ms(d.recovery.max())),
            d.errors.len().to_string(),
        ]);
    }
    out.push_str(&r.render());
    for d in ds {
        if let Some(e) = d.errors.first() {
            out.push_str(&format!(
                "\nFirst failed trial at {} ms: {e}\n",
                d.period_ms
            ));
        }
    }
    out
}

// ---------------------------------------------------------------- 2

fn false_failures(plan: &Plan, spec: &Spec) -> anyhow::Result<LoadResults> {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!(
        "mtce 2: false failures: 3 agents, {} s unloaded, then {} s with {cpus} CPUs busy",
        spec.load_baseline.as_secs(),
        spec.load_window.as_secs()
    );
    plan.settle();
    let server = crate::start_server(plan, ServerOptions::default())?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let mut agents = Vec::new();
    let names: Vec<String> = (0..3).map(|i| format!("load-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let ip = format!("127.0.0.{}", i + 2);
        agents.push(probe::available_agent(
            &plan.bin,
            &http,
            dir.path(),
            name,
            &ip,
        )?);
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle = load_window(&http, server.pid(), &names, spec.load_baseline)?;
    eprintln!("  unloaded: {} heartbeat alarms", idle.events.len());
    let hog = CpuHog::start(cpus, spec.load_window.as_secs() + 30);
    let how = hog.how.clone();
    let loaded = load_window(&http, server.pid(), &names, spec.load_window);
    hog.stop();
    let loaded = loaded?;
    eprintln!(
        "  loaded: {} heartbeat alarms, machine {:.0} % busy",
        loaded.events.len(),
        loaded.machine_busy.unwrap_or(0.0)
    );
    drop(agents);
    Ok(LoadResults {
        agents: names.len(),
        cpus,
        how,
        idle,
        loaded,
    })
}

fn load_window(
    http: &Http,
    server_pid: u32,
    names: &[String],
    window: Duration,
) -> anyhow::Result<LoadWindow> {
    let m0 = http.heartbeat_metrics()?;
    let w0 = now_micros();
    let busy0 = procfs::machine_busy_ticks();
    let server0 = procfs::cpu_ticks(&server_pid.to_string());
    let t0 = Instant::now();
    let (mut polls, mut bad) = (0u64, 0u64);
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
        for n in names {
            polls += 1;
            if http.availability(n)? != "available" {
                bad += 1;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let machine_busy =
        procfs::cpu_percent(busy0, procfs::machine_busy_ticks(), secs).map(|p| p / cpus);
    let server_cpu = procfs::cpu_percent(server0, procfs::cpu_ticks(&server_pid.to_string()), secs);
    let hb = http.heartbeat_metrics()?.since(&m0);
    let prefix = names
        .first()
        .map(|n| n.trim_end_matches(|c: char| c.is_ascii_digit()))
        .unwrap_or("");
    let events = http.heartbeat_events(prefix, w0)?;
    Ok(LoadWindow {
        secs,
        machine_busy,
        server_cpu,
        hb,
        events,
        not_available_polls: bad,
        polls,
    })
}

fn render_load(l: &LoadResults) -> String {
    let mut out = String::from("### Maintenance 2. False failures under CPU load\n\n");
    out.push_str(&format!(
        "{} real agents (127.0.0.2-{}) unlocked and available, default settings (100 ms × 6 to \
         degrade, × 10 to fail). First an unloaded window (the baseline), then every CPU ({}) kept \
         busy by {} for the whole window, competing with the server and the agents at the same \
         priority. \"Alarms\" are heartbeat alarm sets in the event log during the window (200.005: \
         heartbeat degraded or lost; 200.004: host failed); \"not available\" counts once-a-second \
         polls of each host that did not say `available`. Pulses and round-trip times are deltas of \
         the server's `/metrics` over the window (RTT percentiles are histogram bucket bounds).\n\n",
        l.agents,
        l.agents + 1,
        l.cpus,
        l.how
    ));
    let mut t = Table::new(&[
        "window",
        ">secs",
        ">machine busy",
        ">server CPU",
        ">pulses sent",
        ">unanswered",
        ">RTT mean",
        ">RTT p50",
        ">RTT p99",
        ">200.005 sets",
        ">200.004 sets",
        ">not available",
    ]);
    for (label, w) in [
        ("unloaded (baseline)", &l.idle),
        ("all CPUs busy", &l.loaded),
    ] {
        let (deg, failed, _) = tally(&w.events);
        t.row(vec![
            label.into(),
            format!("{:.0}", w.secs),
            w.machine_busy.map_or("—".into(), |b| format!("{b:.0} %")),
            w.server_cpu.map_or("—".into(), |c| format!("{c:.2} %")),
            group(w.hb.sent),
            group(w.hb.sent.saturating_sub(w.hb.answered)),
            w.hb.rtt_mean().map_or("—".into(), ms_f),
            w.hb.rtt_quantile_text(0.5),
            w.hb.rtt_quantile_text(0.99),
            deg.to_string(),
            failed.to_string(),
            format!("{} / {}", w.not_available_polls, w.polls),
        ]);
    }
    out.push_str(&t.render());
    if let (Some(a), Some(b)) = (l.idle.hb.rtt_mean(), l.loaded.hb.rtt_mean()) {
        out.push_str(&format!(
            "\nMean RTT under load: {:.1} × the unloaded baseline.\n",
            b / a.max(1e-12)
        ));
    }
    let all: Vec<&Event> = l.idle.events.iter().chain(&l.loaded.events).collect();
    if !all.is_empty() {
        out.push_str("\nHeartbeat alarms raised:\n\n");
        for e in all.iter().take(20) {
            out.push_str(&format!(
                "- {} {} {} at {}\n",
                e.host, e.id, e.severity, e.at
            ));
        }
    }
    out
}

// ---------------------------------------------------------------- 3

fn agent_footprint(plan: &Plan, spec: &Spec) -> anyhow::Result<AgentResults> {
    eprintln!(
        "mtce 3: footprint of one idle agent over {} s",
        spec.agent_idle.as_secs()
    );
    plan.settle();
    let server = crate::start_server(plan, ServerOptions::default())?;
    let http = Http::new(&server.url, &server.token())?;
    let dir = tempfile::tempdir()?;
    let agent = probe::available_agent(&plan.bin, &http, dir.path(), "idle-0", "127.0.0.5")?;
    // Past start-up: the first report and the first resource sample.
    std::thread::sleep(Duration::from_secs(2));
    let pid = agent.pid();
    let server0 = procfs::cpu_ticks(&server.pid().to_string());
    let mut f = watch(pid, spec.agent_idle);
    let server_cpu = procfs::cpu_percent(
        server0,
        procfs::cpu_ticks(&server.pid().to_string()),
        f.secs,
    );
    f.threads = procfs::threads(pid);
    eprintln!(
        "  agent RSS {:.1} MiB, CPU {:.3} %",
        f.rss_mib.unwrap_or(0.0),
        f.cpu.unwrap_or(0.0)
    );
    Ok(AgentResults {
        agent: f,
        server_cpu,
    })
}

/// Watches `pid` for `window`: CPU over it, memory at its end.
fn watch(pid: u32, window: Duration) -> Footprint {
    let ticks0 = procfs::cpu_ticks(&pid.to_string());
    let machine0 = procfs::machine_busy_ticks();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let secs = t0.elapsed().as_secs_f64();
    Footprint {
        secs,
        rss_mib: procfs::status_mib(pid, "VmRSS"),
        hwm_mib: procfs::status_mib(pid, "VmHWM"),
        cpu: procfs::cpu_percent(ticks0, procfs::cpu_ticks(&pid.to_string()), secs),
        threads: procfs::threads(pid),
        machine_cpu: procfs::cpu_percent(machine0, procfs::machine_busy_ticks(), secs),
    }
}

/// CPU of everything but `ours` during a window, % of one core.
fn others(machine: Option<f64>, ours: &[Option<f64>]) -> String {
    machine.map_or("—".into(), |m| {
        let o = (m - ours.iter().flatten().sum::<f64>()).max(0.0);
        format!("{o:.1} %")
    })
}

fn mib(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}"))
}

fn mb(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{:.1}", v * 1.048_576))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

fn render_agent(a: &AgentResults) -> String {
    let f = &a.agent;
    let mut out = String::from("### Maintenance 3. Agent footprint\n\n");
    out.push_str(&format!(
        "One real `roost agent`, enrolled, unlocked and available (answering a pulse every 100 ms, \
         reporting every 60 s, sampling resources every 10 s), watched for {:.0} s after start-up: \
         CPU from `/proc/<pid>/stat` (utime + stime) over the window, memory from \
         `/proc/<pid>/status` at its end. The server used {} % of a core meanwhile, all other \
         processes (this benchmark included) {} of a core.\n\n",
        f.secs,
        pct(a.server_cpu),
        others(f.machine_cpu, &[f.cpu, a.server_cpu])
    ));
    let mut t = Table::new(&[
        "process",
        ">VmRSS MiB",
        ">VmRSS MB",
        ">VmHWM MiB",
        ">CPU % of a core",
        ">threads",
        "target",
    ]);
    t.row(vec![
        "roost agent, idle".into(),
        mib(f.rss_mib),
        mb(f.rss_mib),
        mib(f.hwm_mib),
        f.cpu.map_or("—".into(), |c| format!("{c:.3}")),
        f.threads.map_or("—".into(), |n| n.to_string()),
        format!("< {AGENT_RSS_TARGET_MB:.0} MB, < {AGENT_CPU_TARGET} %"),
    ]);
    out.push_str(&t.render());
    out
}

// ---------------------------------------------------------------- 4

fn fleet(plan: &Plan, spec: &Spec) -> anyhow::Result<FleetResults> {
    eprintln!(
        "mtce 4: server idle, then with {} simulated hosts, {} s each",
        spec.fleet_hosts,
        spec.fleet_window.as_secs()
    );
    plan.settle();
    let server = crate::start_server(plan, ServerOptions::default())?;
    let http = Http::new(&server.url, &server.token())?;
    let pid = server.pid();
    std::thread::sleep(Duration::from_secs(2));
    let idle = watch(pid, spec.fleet_window);
    let t0 = Instant::now();
    let mut sim = SimAgents::start(&plan.bin, &http, spec.fleet_hosts, Duration::from_secs(300))?;
    let setup = t0.elapsed();
    eprintln!(
        "  {} hosts enrolled, unlocked and available in {:.1} s",
        spec.fleet_hosts,
        setup.as_secs_f64()
    );
    // Let the first reports and the allocator settle.
    std::thread::sleep(Duration::from_secs(5));
    let m0 = http.heartbeat_metrics()?;
    let w0 = now_micros();
    let sim_ticks0 = procfs::cpu_ticks(&sim.pid().to_string());
    let busy = watch(pid, spec.fleet_window);
    let sim_fp = Footprint {
        secs: busy.secs,
        rss_mib: procfs::status_mib(sim.pid(), "VmRSS"),
        hwm_mib: procfs::status_mib(sim.pid(), "VmHWM"),
        cpu: procfs::cpu_percent(
            sim_ticks0,
            procfs::cpu_ticks(&sim.pid().to_string()),
            busy.secs,
        ),
        threads: procfs::threads(sim.pid()),
        machine_cpu: None,
    };
    let hb = http.heartbeat_metrics()?.since(&m0);
    let events = http.heartbeat_events("sim-", w0)?;
    sim.stop();
    eprintln!(
        "  server RSS {:.1} → {:.1} MiB, CPU {:.2} → {:.2} %",
        idle.rss_mib.unwrap_or(0.0),
        busy.rss_mib.unwrap_or(0.0),
        idle.cpu.unwrap_or(0.0),
        busy.cpu.unwrap_or(0.0)
    );
    Ok(FleetResults {
        hosts: spec.fleet_hosts,
        setup,
        idle,
        busy,
        sim: sim_fp,
        hb,
        events,
    })
}

fn render_fleet(f: &FleetResults) -> String {
    let mut out = format!(
        "### Maintenance 4. Server with {} simulated hosts\n\n",
        f.hosts
    );
    out.push_str(&format!(
        "One server (resource monitoring off), first idle with no host but its own controller-0 \
         (the baseline), then with {} hosts simulated by `roost sim agents` in a separate process \
         (one UDP socket and one task per host, real enrollment, HMAC-signed answers, a report per \
         host per minute), all unlocked and available, heartbeating at 100 ms. Adding, enrolling \
         and unlocking them took {:.1} s. Each window is {:.0} s; CPU over the window, memory at \
         its end. \"Others' CPU\" is what every other process (this benchmark included) used \
         meanwhile, % of one core: a disturbed window shows there.\n\n",
        f.hosts,
        f.setup.as_secs_f64(),
        f.busy.secs
    ));
    let rate = |n: u64| {
        format!(
            "{}/s",
            group((n as f64 / f.busy.secs.max(1e-9)).round() as u64)
        )
    };
    let mut t = Table::new(&[
        "process",
        ">VmRSS MiB",
        ">VmHWM MiB",
        ">CPU % of a core",
        ">threads",
        ">pulses sent",
        ">answered",
        ">RTT mean",
        ">RTT p50",
        ">RTT p99",
        ">others' CPU",
    ]);
    t.row(vec![
        "server, idle, 0 hosts (baseline)".into(),
        mib(f.idle.rss_mib),
        mib(f.idle.hwm_mib),
        pct(f.idle.cpu),
        f.idle.threads.map_or("—".into(), |n| n.to_string()),
        "0/s".into(),
        "0/s".into(),
        "—".into(),
        "—".into(),
        "—".into(),
        others(f.idle.machine_cpu, &[f.idle.cpu]),
    ]);
    t.row(vec![
        format!("server, {} hosts at 100 ms", f.hosts),
        mib(f.busy.rss_mib),
        mib(f.busy.hwm_mib),
        pct(f.busy.cpu),
        f.busy.threads.map_or("—".into(), |n| n.to_string()),
        rate(f.hb.sent),
        rate(f.hb.answered),
        f.hb.rtt_mean().map_or("—".into(), ms_f),
        f.hb.rtt_quantile_text(0.5),
        f.hb.rtt_quantile_text(0.99),
        others(f.busy.machine_cpu, &[f.busy.cpu, f.sim.cpu]),
    ]);
    let d_rss = f.busy.rss_mib.zip(f.idle.rss_mib).map(|(b, i)| b - i);
    let d_cpu = f.busy.cpu.zip(f.idle.cpu).map(|(b, i)| b - i);
    t.row(vec![
        "server: difference (per host)".into(),
        d_rss.map_or("—".into(), |d| {
            format!("+{d:.1} ({:.0} KiB)", d * 1024.0 / f.hosts as f64)
        }),
        "".into(),
        d_cpu.map_or("—".into(), |d| {
            format!("+{d:.2} ({:.4})", d / f.hosts as f64)
        }),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);
    t.row(vec![
        "server: ratio to baseline".into(),
        f.busy
            .rss_mib
            .zip(f.idle.rss_mib)
            .map_or("—".into(), |(b, i)| format!("{:.2} ×", b / i.max(1e-9))),
        "".into(),
        f.busy.cpu.zip(f.idle.cpu).map_or("—".into(), |(b, i)| {
            if i > 0.0 {
                format!("{:.0} ×", b / i)
            } else {
                "— (idle 0)".into()
            }
        }),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);
    t.row(vec![
        format!("`roost sim agents`, {} hosts", f.hosts),
        mib(f.sim.rss_mib),
        mib(f.sim.hwm_mib),
        pct(f.sim.cpu),
        f.sim.threads.map_or("—".into(), |n| n.to_string()),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
        "".into(),
    ]);
    out.push_str(&t.render());
    let (deg, failed, hosts) = tally(&f.events);
    out.push_str(&format!(
        "\nPulses unanswered in the window: {} of {}; heartbeat alarms raised: {deg} × 200.005, \
         {failed} × 200.004 ({hosts} hosts).\n",
        group(f.hb.sent.saturating_sub(f.hb.answered)),
        group(f.hb.sent)
    ));
    out
}

// ---------------------------------------------------------------- summary

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**MISSED**" }
}

fn summary(r: &Results) -> String {
    let mut t = Table::new(&["metric", ">Roost", "target", "status"]);
    for d in &r.detection {
        if d.failed.len() == 0 {
            continue;
        }
        let floor = Duration::from_millis(u64::from(d.period_ms)) * d.failure_threshold;
        t.row(vec![
            format!(
                "failure detection p50, {} ms × {}",
                d.period_ms, d.failure_threshold
            ),
            format!(
                "{} ms ({:.2} × floor)",
                ms(d.failed.pct(50.0)),
                d.failed.pct(50.0).as_secs_f64() / floor.as_secs_f64()
            ),
            format!("floor {} ms", ms(floor)),
            "—".into(),
        ]);
        t.row(vec![
            format!(
                "failure detection p99, {} ms × {}",
                d.period_ms, d.failure_threshold
            ),
            if d.failed_logged.len() > 0 {
                format!(
                    "{} ms (event log: {} ms)",
                    ms(d.failed.pct(99.0)),
                    ms(d.failed_logged.pct(99.0))
                )
            } else {
                format!("{} ms", ms(d.failed.pct(99.0)))
            },
            format!(
                "by design ≤ floor + 1 period = {} ms (event log)",
                ms(floor + floor / d.failure_threshold)
            ),
            if d.failed_logged.len() == 0 {
                "—".into()
            } else if d.failed_logged.pct(99.0) <= floor + floor / d.failure_threshold {
                "within".into()
            } else {
                "**beyond**".into()
            },
        ]);
    }
    if let Some(l) = &r.load {
        let (deg, failed, hosts) = tally(&l.loaded.events);
        t.row(vec![
            format!(
                "false degrades/failures, {} agents, all CPUs busy {:.0} s",
                l.agents, l.loaded.secs
            ),
            format!("{deg} × 200.005, {failed} × 200.004 ({hosts} hosts)"),
            "0".into(),
            met(deg + failed == 0).into(),
        ]);
    }
    if let Some(a) = &r.agent {
        if let Some(rss) = a.agent.rss_mib {
            t.row(vec![
                "agent RSS, idle".into(),
                format!("{:.1} MB ({rss:.1} MiB)", rss * 1.048_576),
                format!("< {AGENT_RSS_TARGET_MB:.0} MB"),
                met(rss * 1.048_576 < AGENT_RSS_TARGET_MB).into(),
            ]);
        }
        if let Some(cpu) = a.agent.cpu {
            t.row(vec![
                "agent CPU, idle".into(),
                format!("{cpu:.3} % of a core"),
                format!("< {AGENT_CPU_TARGET} %"),
                met(cpu < AGENT_CPU_TARGET).into(),
            ]);
        }
    }
    if let Some(b) = &r.burst {
        let (q, w) = (b.quiet.hb.rtt_quantile(0.99), b.burst.hb.rtt_quantile(0.99));
        t.row(vec![
            "heartbeat RTT p99, power durability, write burst".into(),
            format!(
                "{} (quiet: {})",
                b.burst.hb.rtt_quantile_text(0.99),
                b.quiet.hb.rtt_quantile_text(0.99)
            ),
            "no worse than quiet".into(),
            match (q, w) {
                (Some(q), Some(w)) => met(w <= q).into(),
                _ => "—".into(),
            },
        ]);
    }
    if let Some(f) = &r.fleet {
        t.row(vec![
            format!(
                "server RSS, {} hosts (idle: {} MiB)",
                f.hosts,
                mib(f.idle.rss_mib)
            ),
            format!("{} MiB", mib(f.busy.rss_mib)),
            "—".into(),
            "—".into(),
        ]);
        t.row(vec![
            format!(
                "server CPU, {} hosts (idle: {} %)",
                f.hosts,
                pct(f.idle.cpu)
            ),
            format!("{} % of a core", pct(f.busy.cpu)),
            "—".into(),
            "—".into(),
        ]);
        let (deg, failed, _) = tally(&f.events);
        t.row(vec![
            format!("false degrades/failures, {} simulated hosts", f.hosts),
            format!("{}", deg + failed),
            "0".into(),
            met(deg + failed == 0).into(),
        ]);
    }
    let mut out = String::from("### Maintenance summary\n\n");
    out.push_str(&t.render());
    for e in &r.errors {
        out.push_str(&format!("\n**Not measured:** {e}\n"));
    }
    out
}

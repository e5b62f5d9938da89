//! Benchmark `dc`: one system controller (the release `roost server --role
//! systemcontroller`, default DC timers: sync every 2 s, offline after
//! 10 s) holding N subclouds simulated by `roost sim subclouds` in a
//! separate process (real enrollment with a CSR per subcloud, real sync
//! protocol over mutual TLS, one connection per subcloud), for each N of
//! `--sizes` (default 1000, 5000, 10000; `--quick`: 100 and 500):
//!
//! - a) the system controller's RSS and CPU while it holds N online,
//!   managed, in-sync subclouds (30 s window; quick 10 s), with the syncs a
//!   second it answers and their round trip as the subclouds see it;
//! - c) an alarm raised on a subcloud to its row of `GET /v1.0/alarms/`
//!   (50 alarms, 10 at a time, summary polled every 100 ms); the subcloud
//!   sends it at its next sync, as a real one does;
//! - d) one platform setting change on the system controller (100.101
//!   suppressed) to every subcloud in-sync: per subcloud, when the system
//!   controller answered the sync reporting the new generation (the
//!   simulator records it), then confirmed in `GET /v1.0/subclouds/`;
//! - e) 20 % of the subclouds partitioned (5 min; quick 20 s) while they
//!   raise and clear alarms and the setting changes again; after the
//!   partition, time to every subcloud in-sync, and every partitioned
//!   subcloud's alarm counts on the system controller against the
//!   simulator's own (nothing lost, nothing counted twice);
//! - b) 20 subclouds killed at once, to `offline` in
//!   `GET /v1.0/subclouds/{name}` (each polled every 100 ms).
//!
//! (b comes last because the dead subclouds stay dead.) Sizes above what
//! the file descriptor limit allows are reported, not run.
//! `ROOST_BENCH_DC_PARTITION_SECS` overrides the partition's length.
//!
//! The system controller's store is its embedded SQLite (durability
//! `process`, the default), or with `--postgres` a new PostgreSQL database
//! for each size, made and dropped as `throughput` does (`pg.rs`); then the
//! CPU of the PostgreSQL processes working for it is measured beside the
//! system controller's. Every table names the store.

pub mod apps;
pub mod rollout;
mod sim;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use roost_test_support::ServerOptions;

use crate::procfs;
use crate::stats::{Dist, group, ms, ratio};
use crate::table::Table;
use crate::{Plan, emit, start_server};
use sim::{Api, SimSubclouds, num, pairs, unix_micros};

/// StarlingX's documented figures (not measured here).
const STARLINGX_OFFLINE_SECS: f64 = 60.0;
const STARLINGX_RESYNC_SECS: f64 = 600.0;
const STARLINGX_SUBCLOUDS: usize = 5000;

/// Targets.
const DEATH_TARGET: Duration = Duration::from_secs(10);
const ALARM_P99_TARGET: Duration = Duration::from_secs(5);
const CONVERGE_TARGET: Duration = Duration::from_secs(60);

/// The system controller's DC timers in this benchmark (its defaults).
const SYNC_INTERVAL_SECS: u64 = 2;
const OFFLINE_AFTER_SECS: u64 = 10;

/// Poll period of the death and alarm measurements.
const POLL: Duration = Duration::from_millis(100);

/// The alarm id of the benchmark's alarms, and the one whose suppression is
/// the platform setting changed.
const ALARM_ID: &str = "100.104";
const SUPPRESSED_ID: &str = "100.101";

/// How long and how much to measure.
struct Spec {
    sizes: Vec<usize>,
    steady: Duration,
    partition: Duration,
    deaths: usize,
    alarms: usize,
    batch: usize,
}

impl Spec {
    fn new(quick: bool, sizes: &[usize]) -> anyhow::Result<Spec> {
        let partition = match std::env::var("ROOST_BENCH_DC_PARTITION_SECS") {
            Ok(v) => Duration::from_secs(v.trim().parse().map_err(|_| {
                anyhow::anyhow!("ROOST_BENCH_DC_PARTITION_SECS must be seconds, not {v:?}")
            })?),
            Err(_) => Duration::from_secs(if quick { 20 } else { 300 }),
        };
        if partition < Duration::from_secs(OFFLINE_AFTER_SECS + 4) {
            anyhow::bail!(
                "the partition must last at least {} s",
                OFFLINE_AFTER_SECS + 4
            );
        }
        let sizes = if sizes.is_empty() {
            if quick {
                vec![100, 500]
            } else {
                vec![1000, 5000, 10_000]
            }
        } else {
            sizes.to_vec()
        };
        if let Some(n) = sizes.iter().find(|n| **n < 100) {
            anyhow::bail!("--sizes: at least 100 subclouds, not {n}");
        }
        Ok(Spec {
            sizes,
            steady: Duration::from_secs(if quick { 10 } else { 30 }),
            partition,
            deaths: 20,
            alarms: 50,
            batch: 10,
        })
    }
}

/// The system controller's store.
struct Store {
    /// The PostgreSQL server (`--postgres`), or none: the embedded SQLite store.
    postgres: Option<String>,
    /// How tables name it.
    label: String,
    /// Its settings, for the header.
    details: String,
}

impl Store {
    fn of(plan: &Plan) -> anyhow::Result<Store> {
        if !plan.dc_postgres {
            return Ok(Store {
                postgres: None,
                label: "SQLite".into(),
                details: "the embedded SQLite store in the data directory, durability `process` \
                          (the default)"
                    .into(),
            });
        }
        let server = plan
            .postgres
            .clone()
            .map_err(|why| anyhow::anyhow!("dc --postgres needs PostgreSQL: {why}"))?;
        let (label, details) = match crate::pg::info(&server) {
            Ok(i) => (
                // "15.18 (Debian 15.18-0+deb12u1)": the number is enough.
                format!(
                    "PostgreSQL {}",
                    i.version.split_whitespace().next().unwrap_or_default()
                ),
                format!(
                    "PostgreSQL {} (a new database per size on the local test server, over TCP \
                     loopback; `synchronous_commit` {}, `fsync` {}{})",
                    i.version,
                    i.synchronous_commit,
                    i.fsync,
                    i.filesystem
                        .map_or(String::new(), |f| format!(", data on {f}"))
                ),
            ),
            Err(e) => {
                eprintln!("dc: cannot read the PostgreSQL settings: {e:#}");
                (
                    "PostgreSQL".into(),
                    "PostgreSQL (a new database per size; settings unknown)".into(),
                )
            }
        };
        Ok(Store {
            postgres: Some(server),
            label,
            details,
        })
    }
}

/// CPU over a window, % of one core.
#[derive(Default, Clone, Copy)]
struct Cpu {
    secs: f64,
    sc: Option<f64>,
    /// PostgreSQL's processes working for the system controller's database
    /// (its backends and the cluster's shared processes); none on SQLite.
    db: Option<f64>,
    sim: Option<f64>,
    machine: Option<f64>,
    /// Everything but the system controller, its PostgreSQL, the simulator
    /// and this process.
    other: Option<f64>,
}

/// Percentiles of one latency measurement, and how many samples never came.
#[derive(Default)]
struct Latency {
    dist: Dist,
    missing: usize,
}

/// A convergence: per subcloud, time from the change (or the end of the
/// partition) to the system controller acknowledging the new generation.
#[derive(Default, Clone)]
struct Conv {
    of: usize,
    reached: usize,
    p50: Option<Duration>,
    p99: Option<Duration>,
    /// The last one: every subcloud in-sync.
    all: Option<Duration>,
    /// When `GET /v1.0/subclouds/` first showed every live subcloud in-sync.
    api_all: Option<Duration>,
}

#[derive(Default)]
struct PartitionResult {
    subclouds: usize,
    secs: u64,
    /// Partitioned subclouds the system controller showed offline before the end.
    offline: usize,
    /// The setting change during the partition, for the others.
    others: Conv,
    /// After the partition, for the partitioned ones.
    resync: Conv,
    alarms_checked: usize,
    /// Summary rows that differ from the simulator's own counts.
    count_mismatches: usize,
    /// Simulator counts that differ from what the benchmark raised and cleared.
    unexpected_counts: usize,
    /// Subclouds whose last change was not acknowledged.
    unacked: usize,
    /// Per-subcloud alarm lists compared exactly, and how many differed.
    lists_checked: usize,
    list_mismatches: usize,
    /// Time from the end of the partition to the counts matching.
    counts_matched: Option<Duration>,
}

#[derive(Default)]
struct SizeResult {
    n: usize,
    /// The store's label ([`Store::label`]).
    store: String,
    setup: Option<Duration>,
    ready: Option<Duration>,
    sc_idle_rss: Option<f64>,
    sc_rss: Option<f64>,
    sc_hwm: Option<f64>,
    sc_threads: Option<u64>,
    sc_fds: Option<usize>,
    sim_rss: Option<f64>,
    cpu: Cpu,
    syncs_per_sec: Option<f64>,
    rtt: Option<(String, String, String)>,
    sync_errors: u64,
    list: Option<(Dist, usize)>,
    summary: Option<(Dist, usize)>,
    alarm: Option<Latency>,
    converge: Option<Conv>,
    partition: Option<PartitionResult>,
    death: Option<Latency>,
    /// The system controller's log: ERROR and WARN lines, and the first of each.
    log_errors: (usize, Option<String>),
    log_warnings: (usize, Option<String>),
    errors: Vec<String>,
}

/// Runs the benchmark for every size, printing each as it completes;
/// returns the number of sizes that failed.
pub fn run(plan: &Plan, sizes: &[usize]) -> anyhow::Result<u64> {
    let spec = Spec::new(plan.quick, sizes)?;
    let store = Store::of(plan)?;
    let limit = open_files_limit();
    emit(&format!(
        "## Distributed Cloud: one system controller, many subclouds ({})\n\n\
         Store of the system controller: {}.  \n\
         System controller: `roost server --role systemcontroller`, `[dc] listen = \"127.0.0.1:0\"`, \
         default timers: sync every {SYNC_INTERVAL_SECS} s, offline after {OFFLINE_AFTER_SECS} s, \
         280.002 after 30 s out of sync. Subclouds: `roost sim subclouds --manage` in a separate \
         process (one enrollment CSR, one client certificate, one TLS connection and one tokio task \
         per subcloud; the real sync protocol). Sizes: {}; steady window {} s; partition {} s of 20 %; \
         polls every {} ms for deaths and alarms. Open files limit: {}.\n",
        store.label,
        store.details,
        spec.sizes
            .iter()
            .map(|n| group(*n as u64))
            .collect::<Vec<_>>()
            .join(", "),
        spec.steady.as_secs(),
        spec.partition.as_secs(),
        POLL.as_millis(),
        limit.map_or("unknown".into(), |l| l.to_string()),
    ));
    let mut results = Vec::new();
    for &n in &spec.sizes {
        let mut r = SizeResult {
            n,
            store: store.label.clone(),
            ..SizeResult::default()
        };
        if let Some(l) = limit
            && (n as u64) + 200 > l
        {
            r.errors.push(format!(
                "not run: {n} subclouds need {n} connections on each side, over the open files \
                 limit of {l} (raise `ulimit -n`)"
            ));
        } else {
            eprintln!("dc: {n} subclouds");
            if let Err(e) = one_size(plan, &spec, &store, &mut r) {
                r.errors.push(format!("{e:#}"));
            }
        }
        emit(&render_size(&r, &spec));
        results.push(r);
    }
    emit(&render_knee(&results, &store));
    emit(&render_summary(&results, &store));
    Ok(results.iter().filter(|r| !r.errors.is_empty()).count() as u64)
}

/// The soft limit of open files of this process (children inherit it).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The simulator's name of subcloud `n` (`sim-00001`).
fn name(n: usize) -> String {
    format!("sim-{n:05}")
}

/// Names `k * step + first` (1-based) for k = 0.., at most `count`.
fn spread(n: usize, first: usize, step: usize, count: usize) -> Vec<String> {
    (0..)
        .map(|k| k * step + first)
        .take_while(|i| *i <= n)
        .take(count)
        .map(name)
        .collect()
}

fn one_size(plan: &Plan, spec: &Spec, store: &Store, r: &mut SizeResult) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("dc.toml");
    std::fs::write(&config, "[dc]\nlisten = \"127.0.0.1:0\"\n")?;
    // A new database on PostgreSQL, dropped after the server (declared
    // before it); on SQLite the embedded store even under ROOST_TEST_STORE.
    let db = match &store.postgres {
        Some(server) => Some(crate::pg::Database::create(server)?),
        None => None,
    };
    let store_arg = match &db {
        Some(db) => {
            eprintln!("  system controller on PostgreSQL ({})", db.url);
            db.url.clone()
        }
        None => roost_test_support::EMBEDDED_STORE.to_string(),
    };
    let server = start_server(
        plan,
        ServerOptions {
            args: vec![
                "--role".into(),
                "systemcontroller".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            store: Some(store_arg),
            ..ServerOptions::default()
        },
    )?;
    let result = measure_size(plan, spec, &server, db.as_ref().map(|d| d.name.as_str()), r);
    let log = server.log();
    r.log_errors = log_lines(&log, " ERROR ");
    r.log_warnings = log_lines(&log, " WARN ");
    if r.log_errors.0 + r.log_warnings.0 > 0 {
        eprintln!(
            "  the system controller logged {} ERROR and {} WARN lines (up to {} shown):",
            r.log_errors.0, r.log_warnings.0, LOG_LINES_SHOWN
        );
        for l in log
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .take(LOG_LINES_SHOWN)
        {
            eprintln!("    {l}");
        }
    }
    result
}

/// How many of the system controller's ERROR and WARN lines go to stderr.
const LOG_LINES_SHOWN: usize = 20;

/// How many lines of `log` contain `level`, and the first.
fn log_lines(log: &str, level: &str) -> (usize, Option<String>) {
    let mut hits = log.lines().filter(|l| l.contains(level));
    let first = hits.next().map(str::to_string);
    (first.as_ref().map_or(0, |_| 1 + hits.count()), first)
}

fn measure_size(
    plan: &Plan,
    spec: &Spec,
    server: &roost_test_support::Server,
    db: Option<&str>,
    r: &mut SizeResult,
) -> anyhow::Result<()> {
    let n = r.n;
    let sc_pid = server.pid();
    let api = Api::new(&server.url, &server.token())?;
    std::thread::sleep(Duration::from_secs(2));
    r.sc_idle_rss = procfs::status_mib(sc_pid, "VmRSS");

    // Enrollment.
    let t = Instant::now();
    let timeout = Duration::from_secs(120) + Duration::from_millis(60 * n as u64);
    let mut sim = SimSubclouds::start(&plan.bin, &api.url, &api.token, n, "sim-", timeout)?;
    r.setup = Some(t.elapsed());
    eprintln!("  enrolled in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let ready_timeout = Duration::from_secs(120) + Duration::from_millis(20 * n as u64);
    wait_in_sync(
        &api,
        n,
        &HashSet::new(),
        ready_timeout,
        Duration::from_secs(1),
    )
    .map_err(|e| anyhow::anyhow!("{e}; the simulator's log:\n{}", sim.log()))?;
    r.ready = Some(t.elapsed());
    eprintln!(
        "  all online, managed, in-sync after {:.1} s more",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));

    // a) Holding N subclouds.
    eprintln!("  a) steady state, {} s", spec.steady.as_secs());
    sim.cmd("rtt-reset")?;
    let s0 = sim.kv("stats")?;
    r.cpu = window(sc_pid, db, sim.pid(), spec.steady);
    let s1 = sim.kv("stats")?;
    r.sc_rss = procfs::status_mib(sc_pid, "VmRSS");
    r.sc_hwm = procfs::status_mib(sc_pid, "VmHWM");
    r.sc_threads = procfs::threads(sc_pid);
    r.sc_fds = fds(sc_pid);
    r.sim_rss = procfs::status_mib(sim.pid(), "VmRSS");
    r.syncs_per_sec = Some((num(&s1, "syncs_ok") - num(&s0, "syncs_ok")) / r.cpu.secs.max(1e-9));
    r.sync_errors = (num(&s1, "syncs_failed") + num(&s1, "syncs_refused")
        - num(&s0, "syncs_failed")
        - num(&s0, "syncs_refused")) as u64;
    let get = |k: &str| s1.get(k).cloned().unwrap_or_else(|| "-".into());
    r.rtt = Some((get("rtt_p50_ms"), get("rtt_p99_ms"), get("rtt_max_ms")));
    let samples = if plan.quick { 3 } else { 5 };
    let (mut list, mut list_bytes) = (Vec::new(), 0);
    let (mut summary, mut summary_bytes) = (Vec::new(), 0);
    for _ in 0..samples {
        let (_, a) = api.subclouds()?;
        list.push(a.took);
        list_bytes = a.bytes;
        let (_, a) = api.summary()?;
        summary.push(a.took);
        summary_bytes = a.bytes;
    }
    r.list = Some((Dist::new(list), list_bytes));
    r.summary = Some((Dist::new(summary), summary_bytes));

    // The subclouds each part uses: partitioned n ≡ 0 (mod 5), alarms
    // n ≡ 1, deaths n ≡ 2, so the parts do not disturb each other.
    let step = ((n / spec.deaths) / 5 * 5).max(5);
    let dead = spread(n, 2, step, spec.deaths);
    let alarmed = spread(n, 1, 5, usize::MAX);
    let partitioned = spread(n, 5, 5, usize::MAX);

    // c) Alarm to summary.
    eprintln!("  c) {} alarms to the summary", spec.alarms);
    r.alarm = Some(alarms(&api, &mut sim, spec, &alarmed)?);

    // d) A platform setting change to every subcloud in-sync.
    eprintln!("  d) a setting change to {n} subclouds");
    let g = sim.cmd("generation platform")?.parse::<u64>()? + 1;
    let t0u = unix_micros();
    let t0 = Instant::now();
    api.set_suppressed(SUPPRESSED_ID, true)?;
    let mut c = converge(&mut sim, g, t0u, None, n, convergence_timeout(n))?;
    c.api_all = wait_in_sync(
        &api,
        n,
        &HashSet::new(),
        Duration::from_secs(120),
        Duration::from_secs(1),
    )
    .ok()
    .map(|_| t0.elapsed());
    r.converge = Some(c);

    // e) 20 % partitioned.
    eprintln!(
        "  e) {} subclouds partitioned for {} s",
        partitioned.len(),
        spec.partition.as_secs()
    );
    r.partition = Some(partition(&api, &mut sim, spec, n, &partitioned, g + 1)?);

    // b) Deaths.
    eprintln!("  b) {} subclouds killed", dead.len());
    r.death = Some(deaths(&api, &mut sim, &dead)?);
    let st = sim.kv("stats")?;
    r.sync_errors += num(&st, "syncs_refused") as u64;
    sim.stop();
    Ok(())
}

fn convergence_timeout(n: usize) -> Duration {
    Duration::from_secs(180) + Duration::from_millis(30 * n as u64)
}

/// CPU of the system controller, its PostgreSQL database's processes (`db`),
/// the simulator, the machine and the rest.
fn window(sc: u32, db: Option<&str>, sim: u32, d: Duration) -> Cpu {
    let (sc, sim) = (sc.to_string(), sim.to_string());
    let t = Instant::now();
    let pg = db.map(procfs::PostgresCpu::start);
    let m0 = procfs::machine_busy_ticks();
    let (a0, b0, c0) = (
        procfs::cpu_ticks(&sc),
        procfs::cpu_ticks(&sim),
        procfs::cpu_ticks("self"),
    );
    std::thread::sleep(d);
    let secs = t.elapsed().as_secs_f64();
    let m = procfs::cpu_percent(m0, procfs::machine_busy_ticks(), secs);
    let a = procfs::cpu_percent(a0, procfs::cpu_ticks(&sc), secs);
    let b = procfs::cpu_percent(b0, procfs::cpu_ticks(&sim), secs);
    let c = procfs::cpu_percent(c0, procfs::cpu_ticks("self"), secs);
    let p = pg.and_then(|p| p.read());
    let known = [a, p, b, c].iter().map(|v| v.unwrap_or(0.0)).sum::<f64>();
    Cpu {
        secs,
        sc: a,
        db: p,
        sim: b,
        machine: m,
        other: m.map(|m| (m - known).max(0.0)),
    }
}

/// Waits until every subcloud but `dead` is online, managed and in-sync.
pub(crate) fn wait_in_sync(
    api: &Api,
    n: usize,
    dead: &HashSet<String>,
    timeout: Duration,
    every: Duration,
) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let round = Instant::now();
        let (rows, _) = api.subclouds()?;
        let mut tally: HashMap<String, usize> = HashMap::new();
        let mut good = 0;
        for (name, s) in &rows {
            if dead.contains(name) {
                continue;
            }
            let key = format!(
                "{}/{}/{}",
                s["availability-status"].as_str().unwrap_or("?"),
                s["management-state"].as_str().unwrap_or("?"),
                s["sync_status"].as_str().unwrap_or("?")
            );
            if key == "online/managed/in-sync" {
                good += 1;
            }
            *tally.entry(key).or_default() += 1;
        }
        let want = n - dead.len();
        if good >= want {
            return Ok(());
        }
        if t.elapsed() > timeout {
            anyhow::bail!(
                "{good} of {want} subclouds online, managed and in-sync after {} s ({tally:?})",
                timeout.as_secs()
            );
        }
        std::thread::sleep(every.saturating_sub(round.elapsed()));
    }
}

/// Waits until the system controller acknowledged platform generation `g`
/// from `expect` subclouds (of `names`, or all).
fn converge(
    sim: &mut SimSubclouds,
    g: u64,
    since_unix: i64,
    names: Option<&str>,
    expect: usize,
    timeout: Duration,
) -> anyhow::Result<Conv> {
    let t = Instant::now();
    let cmd = format!(
        "insync platform {g} {since_unix}{}",
        names.map(|n| format!(" {n}")).unwrap_or_default()
    );
    loop {
        let m = sim.kv(&cmd)?;
        let reached = num(&m, "reached") as usize;
        let d = |k: &str| {
            m.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| Duration::from_secs_f64(v.max(0.0) / 1000.0))
        };
        let c = Conv {
            of: num(&m, "of") as usize,
            reached,
            p50: d("p50_ms"),
            p99: d("p99_ms"),
            all: (reached >= expect).then(|| d("max_ms")).flatten(),
            api_all: None,
        };
        if reached >= expect || t.elapsed() > timeout {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// c) Alarms raised one by one, 10 at a time, to their summary rows.
fn alarms(
    api: &Api,
    sim: &mut SimSubclouds,
    spec: &Spec,
    names: &[String],
) -> anyhow::Result<Latency> {
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut samples = Vec::new();
    let mut missing = 0;
    let mut raised = Vec::new();
    let mut k = 0usize;
    for _ in 0..spec.alarms.div_ceil(spec.batch) {
        let mut pending: Vec<(String, Instant)> = Vec::new();
        for _ in 0..spec.batch {
            let name = names[k % names.len()].clone();
            let entity = format!("host=controller-0.filesystem=/bench{k}");
            k += 1;
            let t0 = Instant::now();
            sim.cmd(&format!("raise {name} {ALARM_ID} {entity} major"))?;
            *expected.entry(name.clone()).or_default() += 1;
            raised.push((name.clone(), entity));
            pending.push((name, t0));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pending.is_empty() && Instant::now() < deadline {
            let round = Instant::now();
            let (rows, _) = api.summary()?;
            pending.retain(|(name, t0)| {
                let seen = rows
                    .get(name)
                    .and_then(|r| r["major_alarms"].as_i64())
                    .unwrap_or(0);
                if seen >= expected[name] {
                    samples.push(t0.elapsed());
                    false
                } else {
                    true
                }
            });
            std::thread::sleep(POLL.saturating_sub(round.elapsed()));
        }
        missing += pending.len();
    }
    for (name, entity) in raised {
        sim.cmd(&format!("clear {name} {ALARM_ID} {entity}"))?;
    }
    // Let the clears reach the system controller.
    std::thread::sleep(Duration::from_secs(2 * SYNC_INTERVAL_SECS + 1));
    Ok(Latency {
        dist: Dist::new(samples),
        missing,
    })
}

/// e) A partition of `names`, with alarms and a setting change during it.
fn partition(
    api: &Api,
    sim: &mut SimSubclouds,
    spec: &Spec,
    n: usize,
    names: &[String],
    g: u64,
) -> anyhow::Result<PartitionResult> {
    let list = names.join(",");
    let entity = |s: &str| format!("host=controller-0.filesystem=/part-{s}");
    let mut p = PartitionResult {
        subclouds: names.len(),
        secs: spec.partition.as_secs(),
        ..PartitionResult::default()
    };
    let t_p = Instant::now();
    sim.cmd(&format!("partition on {list}"))?;
    sim.cmd(&format!("raise {list} {ALARM_ID} {} major", entity("a")))?;
    sim.cmd(&format!("raise {list} {ALARM_ID} {} minor", entity("b")))?;
    std::thread::sleep((spec.partition / 2).saturating_sub(t_p.elapsed()));
    sim.cmd(&format!("raise {list} {ALARM_ID} {} warning", entity("c")))?;
    sim.cmd(&format!("clear {list} {ALARM_ID} {}", entity("b")))?;
    // The setting changes back while they are away.
    let t_c = unix_micros();
    api.set_suppressed(SUPPRESSED_ID, false)?;
    p.others = converge(sim, g, t_c, None, n - names.len(), convergence_timeout(n))?;
    std::thread::sleep(
        spec.partition
            .saturating_sub(Duration::from_secs(2))
            .saturating_sub(t_p.elapsed()),
    );
    let (rows, _) = api.subclouds()?;
    p.offline = names
        .iter()
        .filter(|nm| {
            rows.get(*nm)
                .is_some_and(|s| s["availability-status"] == "offline")
        })
        .count();
    std::thread::sleep(spec.partition.saturating_sub(t_p.elapsed()));

    // The partition ends.
    let t_r = Instant::now();
    let t_ru = unix_micros();
    sim.cmd(&format!("partition off {list}"))?;
    p.resync = converge(
        sim,
        g,
        t_ru,
        Some(&list),
        names.len(),
        convergence_timeout(n),
    )?;
    p.resync.api_all = wait_in_sync(
        api,
        n,
        &HashSet::new(),
        Duration::from_secs(120),
        Duration::from_secs(1),
    )
    .ok()
    .map(|_| t_r.elapsed());

    // Alarms: the system controller's counts against the simulator's.
    let deadline = t_r + Duration::from_secs(60);
    loop {
        let counts = sim.cmd(&format!("counts {list}"))?;
        let (rows, _) = api.summary()?;
        let (mut mismatched, mut unexpected, mut unacked) = (0, 0, 0);
        for (nm, v) in pairs(&counts) {
            let f: Vec<i64> = v.split('/').filter_map(|x| x.parse().ok()).collect();
            if f.len() != 6 {
                anyhow::bail!("counts: cannot read {nm}={v}");
            }
            // Raised a (major), b (minor), c (warning); cleared b.
            if f[..4] != [0, 1, 0, 1] {
                unexpected += 1;
            }
            if f[4] != f[5] {
                unacked += 1;
            }
            let row = rows.get(&nm);
            let got: Vec<i64> = [
                "critical_alarms",
                "major_alarms",
                "minor_alarms",
                "warnings",
            ]
            .iter()
            .map(|k| row.and_then(|r| r[*k].as_i64()).unwrap_or(-2))
            .collect();
            if got != f[..4] {
                mismatched += 1;
            }
        }
        p.alarms_checked = names.len();
        p.count_mismatches = mismatched;
        p.unexpected_counts = unexpected;
        p.unacked = unacked;
        if mismatched + unacked == 0 {
            p.counts_matched = Some(t_r.elapsed());
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // A sample compared alarm by alarm.
    let want: HashSet<(String, String, String)> = [("a", "major"), ("c", "warning")]
        .iter()
        .map(|(e, s)| (ALARM_ID.to_string(), entity(e), s.to_string()))
        .collect();
    for nm in names.iter().take(20) {
        let a = api.get(&format!("/v1.0/subclouds/{nm}/alarms"))?;
        let got: HashSet<(String, String, String)> = a.body["alarms"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| {
                let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
                (s("alarm_id"), s("entity_instance_id"), s("severity"))
            })
            .collect();
        let n_listed = a.body["alarms"].as_array().map_or(0, Vec::len);
        p.lists_checked += 1;
        if got != want || n_listed != want.len() {
            p.list_mismatches += 1;
        }
    }
    Ok(p)
}

/// b) Subclouds killed at once, each to `offline`.
fn deaths(api: &Api, sim: &mut SimSubclouds, names: &[String]) -> anyhow::Result<Latency> {
    sim.cmd(&format!("kill {}", names.join(",")))?;
    let t0 = Instant::now();
    let mut pending: Vec<&String> = names.iter().collect();
    let mut samples = Vec::new();
    let deadline = t0 + Duration::from_secs(OFFLINE_AFTER_SECS * 6);
    while !pending.is_empty() && Instant::now() < deadline {
        let round = Instant::now();
        let mut left = Vec::new();
        for nm in pending {
            let a = api.get(&format!("/v1.0/subclouds/{nm}"))?;
            if a.body["availability-status"] == "offline" {
                samples.push(t0.elapsed());
            } else {
                left.push(nm);
            }
        }
        pending = left;
        std::thread::sleep(POLL.saturating_sub(round.elapsed()));
    }
    Ok(Latency {
        dist: Dist::new(samples),
        missing: pending.len(),
    })
}

// ----- rendering -------------------------------------------------------------

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or("—".into(), secs)
}

fn mib(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1} MiB"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1} %"))
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**MISSED**" }
}

fn lat(l: &Latency) -> String {
    if l.dist.len() == 0 {
        return format!("none of {} arrived", l.missing);
    }
    format!(
        "p50 {} · p99 {} · max {} ({} samples{})",
        secs(l.dist.pct(50.0)),
        secs(l.dist.pct(99.0)),
        secs(l.dist.max()),
        l.dist.len(),
        if l.missing > 0 {
            format!(", **{} never**", l.missing)
        } else {
            String::new()
        }
    )
}

fn conv(c: &Conv) -> String {
    format!(
        "all {} ({} of {}) · per subcloud p50 {} · p99 {}{}",
        opt_secs(c.all),
        group(c.reached as u64),
        group(c.of as u64),
        opt_secs(c.p50),
        opt_secs(c.p99),
        c.api_all.map_or(String::new(), |d| format!(
            "; the list shows all in-sync at {}",
            secs(d)
        ))
    )
}

fn rss_per_subcloud(r: &SizeResult) -> Option<f64> {
    Some((r.sc_rss? - r.sc_idle_rss?) * 1024.0 / r.n as f64)
}

fn us_per_sync(r: &SizeResult) -> Option<f64> {
    let (s, cpu) = (r.syncs_per_sec?, r.cpu.sc?);
    (s > 0.0).then(|| cpu / 100.0 * 1e6 / s)
}

fn render_size(r: &SizeResult, spec: &Spec) -> String {
    let mut out = format!(
        "### {} subclouds, system controller on {}\n\n",
        group(r.n as u64),
        r.store
    );
    let mut t = Table::new(&["measurement", "result", "notes"]);
    let n = r.n;
    if let Some(s) = r.setup {
        t.row(vec![
            "enrollment: add, CSR + certificate, first sync, manage".into(),
            format!(
                "{} ({:.0} subclouds/s)",
                secs(s),
                n as f64 / s.as_secs_f64().max(1e-9)
            ),
            "16 in flight".into(),
        ]);
    }
    if let Some(s) = r.ready {
        t.row(vec![
            "then all online, managed, in-sync".into(),
            secs(s),
            "polled every 1 s".into(),
        ]);
    }
    if r.sc_rss.is_some() {
        t.row(vec![
            "a) SC RSS holding N (VmRSS · VmHWM)".into(),
            format!("{} · {}", mib(r.sc_rss), mib(r.sc_hwm)),
            format!(
                "idle before the subclouds: {}; {} per subcloud",
                mib(r.sc_idle_rss),
                rss_per_subcloud(r).map_or("—".into(), |k| format!("{k:.0} KiB"))
            ),
        ]);
        t.row(vec![
            format!("a) SC CPU holding N ({:.0} s)", r.cpu.secs),
            match r.cpu.db {
                Some(_) => format!("{} of a core + PostgreSQL {}", pct(r.cpu.sc), pct(r.cpu.db)),
                None => format!("{} of a core", pct(r.cpu.sc)),
            },
            format!(
                "{} syncs/s answered ({} µs of SC CPU each); {} threads, {} open files",
                r.syncs_per_sec.map_or("—".into(), |s| format!("{s:.0}")),
                us_per_sync(r).map_or("—".into(), |u| format!("{u:.0}")),
                r.sc_threads.map_or("—".into(), |v| v.to_string()),
                r.sc_fds.map_or("—".into(), |v| v.to_string()),
            ),
        ]);
        if let Some((p50, p99, max)) = &r.rtt {
            t.row(vec![
                "a) sync round trip seen by the subclouds".into(),
                format!("p50 {p50} ms · p99 {p99} ms · max {max} ms"),
                format!("failed or refused syncs over the run: {}", r.sync_errors),
            ]);
        }
        t.row(vec![
            "a) `roost sim subclouds` (the N subclouds)".into(),
            format!("{} · {} of a core", mib(r.sim_rss), pct(r.cpu.sim)),
            format!(
                "machine {} busy; other processes {}",
                pct(r.cpu.machine),
                pct(r.cpu.other)
            ),
        ]);
    }
    for (what, v) in [("/v1.0/subclouds/", &r.list), ("/v1.0/alarms/", &r.summary)] {
        if let Some((d, bytes)) = v {
            t.row(vec![
                format!("`GET {what}`"),
                format!("p50 {} ms · max {} ms", ms(d.pct(50.0)), ms(d.max())),
                format!("{} per answer", crate::stats::bytes(*bytes)),
            ]);
        }
    }
    if let Some(a) = &r.death {
        t.row(vec![
            format!("b) death → offline ({} killed at once)", spec.deaths),
            lat(a),
            format!(
                "target < {} s ({}); StarlingX ~{STARLINGX_OFFLINE_SECS:.0} s",
                DEATH_TARGET.as_secs(),
                met(a.missing == 0 && a.dist.max() < DEATH_TARGET)
            ),
        ]);
    }
    if let Some(a) = &r.alarm {
        t.row(vec![
            "c) alarm raised → `GET /v1.0/alarms/` row".into(),
            lat(a),
            format!(
                "target p99 < {} s ({}); sent at the subcloud's next sync",
                ALARM_P99_TARGET.as_secs(),
                met(a.missing == 0 && a.dist.pct(99.0) < ALARM_P99_TARGET)
            ),
        ]);
    }
    if let Some(c) = &r.converge {
        t.row(vec![
            "d) setting change on the SC → every subcloud in-sync".into(),
            conv(c),
            format!(
                "target ≤ {} s ({}); from the PATCH (so with the SC's 1 s desired-configuration \
                 tick); the list polled every 1 s",
                CONVERGE_TARGET.as_secs(),
                met(c.all.is_some_and(|a| a <= CONVERGE_TARGET))
            ),
        ]);
    }
    if let Some(p) = &r.partition {
        t.row(vec![
            format!(
                "e) {} subclouds partitioned {} s: offline on the SC",
                group(p.subclouds as u64),
                p.secs
            ),
            format!(
                "{} of {}",
                group(p.offline as u64),
                group(p.subclouds as u64)
            ),
            "checked 2 s before the end".into(),
        ]);
        t.row(vec![
            "e) setting changed mid-partition → the others in-sync".into(),
            conv(&p.others),
            "the partitioned ones are offline meanwhile".into(),
        ]);
        t.row(vec![
            "e) end of partition → every subcloud in-sync".into(),
            conv(&p.resync),
            format!(
                "target ≤ {} s ({})",
                CONVERGE_TARGET.as_secs(),
                met(p.resync.all.is_some_and(|a| a <= CONVERGE_TARGET))
            ),
        ]);
        t.row(vec![
            "e) alarms raised/cleared during the partition".into(),
            format!(
                "{} of {} summary rows differ from the subclouds' own counts{}; {} subclouds with \
                 unacknowledged changes; {} unexpected counts; {} of {} alarm lists differ",
                p.count_mismatches,
                group(p.alarms_checked as u64),
                p.counts_matched.map_or(String::new(), |d| format!(
                    " (all matched {} after the end)",
                    secs(d)
                )),
                p.unacked,
                p.unexpected_counts,
                p.list_mismatches,
                p.lists_checked
            ),
            format!(
                "nothing lost or counted twice: {}",
                met(p.count_mismatches + p.unacked + p.unexpected_counts + p.list_mismatches == 0)
            ),
        ]);
    }
    if r.log_errors.0 + r.log_warnings.0 > 0 {
        t.row(vec![
            "system controller log".into(),
            format!(
                "{} ERROR · {} WARN lines",
                group(r.log_errors.0 as u64),
                group(r.log_warnings.0 as u64)
            ),
            r.log_errors
                .1
                .as_ref()
                .or(r.log_warnings.1.as_ref())
                .map_or(String::new(), |l| {
                    format!("first: `{}`", l.chars().take(200).collect::<String>())
                }),
        ]);
    }
    out.push_str(&t.render());
    for e in &r.errors {
        out.push_str(&format!("\n**Error:** {e}\n"));
    }
    out
}

fn render_knee(rs: &[SizeResult], store: &Store) -> String {
    let mut t = Table::new(&[
        "store",
        ">subclouds",
        ">SC RSS",
        ">KiB/subcloud",
        ">SC CPU",
        ">PostgreSQL CPU",
        ">syncs/s",
        ">µs CPU/sync",
        ">sync RTT p50/p99",
        ">list GET",
        ">death p50/p99",
        ">alarm p50/p99",
        ">all in-sync",
        ">after partition",
        ">sim RSS",
        ">sim CPU",
    ]);
    for r in rs {
        let p = |l: &Option<Latency>| {
            l.as_ref()
                .filter(|l| l.dist.len() > 0)
                .map_or("—".into(), |l| {
                    format!(
                        "{:.1} / {:.1} s",
                        l.dist.pct(50.0).as_secs_f64(),
                        l.dist.pct(99.0).as_secs_f64()
                    )
                })
        };
        t.row(vec![
            r.store.clone(),
            group(r.n as u64),
            mib(r.sc_rss),
            rss_per_subcloud(r).map_or("—".into(), |k| format!("{k:.0}")),
            pct(r.cpu.sc),
            pct(r.cpu.db),
            r.syncs_per_sec.map_or("—".into(), |s| format!("{s:.0}")),
            us_per_sync(r).map_or("—".into(), |u| format!("{u:.0}")),
            r.rtt
                .as_ref()
                .map_or("—".into(), |(a, b, _)| format!("{a} / {b} ms")),
            r.list
                .as_ref()
                .map_or("—".into(), |(d, _)| format!("{} ms", ms(d.pct(50.0)))),
            p(&r.death),
            p(&r.alarm),
            r.converge.as_ref().map_or("—".into(), |c| opt_secs(c.all)),
            r.partition
                .as_ref()
                .map_or("—".into(), |p| opt_secs(p.resync.all)),
            mib(r.sim_rss),
            pct(r.cpu.sim),
        ]);
    }
    format!(
        "### Growth with the number of subclouds (system controller on {})\n\n{}\nSC CPU and RSS \
         are the system controller process alone, over the steady window; the subclouds run in their \
         own process (sim). µs CPU/sync is SC CPU divided by the syncs it answered. PostgreSQL CPU \
         (with `--postgres` only; SQLite runs inside the system controller) is that of the backends \
         serving its database and of the cluster's shared processes.{}\n",
        store.label,
        t.render(),
        growth(rs)
    )
}

/// How the smallest and the largest measured sizes compare.
fn growth(rs: &[SizeResult]) -> String {
    let measured: Vec<&SizeResult> = rs.iter().filter(|r| r.sc_rss.is_some()).collect();
    let (Some(a), Some(b)) = (measured.first(), measured.last()) else {
        return String::new();
    };
    if a.n == b.n {
        return String::new();
    }
    let times = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if x > 0.0 => format!("× {:.1}", y / x),
        _ => "—".into(),
    };
    let rtt99 = |r: &SizeResult| {
        r.rtt
            .as_ref()
            .and_then(|(_, p99, _)| p99.parse::<f64>().ok())
    };
    let list = |r: &SizeResult| r.list.as_ref().map(|(d, _)| d.pct(50.0).as_secs_f64());
    let alarm = |r: &SizeResult| r.alarm.as_ref().map(|l| l.dist.pct(99.0).as_secs_f64());
    let conv = |r: &SizeResult| {
        r.converge
            .as_ref()
            .and_then(|c| c.all)
            .map(|d| d.as_secs_f64())
    };
    format!(
        "\n\nFrom {} to {} subclouds (× {:.0}): SC CPU {}, SC RSS {}, sync round trip p99 {}, \
         `GET /v1.0/subclouds/` p50 {}, alarm → summary p99 {}, setting change → all in-sync {}.",
        group(a.n as u64),
        group(b.n as u64),
        b.n as f64 / a.n as f64,
        times(a.cpu.sc, b.cpu.sc),
        times(a.sc_rss, b.sc_rss),
        times(rtt99(a), rtt99(b)),
        times(list(a), list(b)),
        times(alarm(a), alarm(b)),
        times(conv(a), conv(b)),
    )
}

fn render_summary(rs: &[SizeResult], store: &Store) -> String {
    let mut t = Table::new(&[
        "metric",
        ">Roost",
        "target",
        ">StarlingX (reference)",
        ">ratio",
    ]);
    let held = rs
        .iter()
        .filter(|r| r.errors.is_empty() && r.sc_rss.is_some())
        .map(|r| r.n)
        .max();
    if let Some(h) = held {
        t.row(vec![
            format!(
                "subclouds held by one SC on {} (2 cores; every part passed)",
                store.label
            ),
            group(h as u64),
            "10,000".into(),
            group(STARLINGX_SUBCLOUDS as u64),
            format!("{:.2} ×", h as f64 / STARLINGX_SUBCLOUDS as f64),
        ]);
    }
    for r in rs {
        let n = group(r.n as u64);
        if let Some(d) = &r.death
            && d.dist.len() > 0
        {
            t.row(vec![
                format!("death → offline p50, {n} subclouds"),
                secs(d.dist.pct(50.0)),
                format!(
                    "< 10 s ({})",
                    met(d.dist.max() < DEATH_TARGET && d.missing == 0)
                ),
                format!("~{STARLINGX_OFFLINE_SECS:.0} s"),
                ratio(
                    d.dist.pct(50.0).as_secs_f64(),
                    STARLINGX_OFFLINE_SECS,
                    false,
                ),
            ]);
        }
        if let Some(a) = &r.alarm
            && a.dist.len() > 0
        {
            t.row(vec![
                format!("alarm → summary p99, {n} subclouds"),
                secs(a.dist.pct(99.0)),
                format!(
                    "< 5 s ({})",
                    met(a.dist.pct(99.0) < ALARM_P99_TARGET && a.missing == 0)
                ),
                "—".into(),
                "—".into(),
            ]);
        }
        if let Some(c) = &r.converge {
            t.row(vec![
                format!("setting change → all in-sync, {n} subclouds"),
                opt_secs(c.all),
                format!(
                    "≤ 60 s ({})",
                    met(c.all.is_some_and(|a| a <= CONVERGE_TARGET))
                ),
                format!("resync every {:.0} min", STARLINGX_RESYNC_SECS / 60.0),
                c.all.map_or("—".into(), |a| {
                    ratio(a.as_secs_f64(), STARLINGX_RESYNC_SECS, false)
                }),
            ]);
        }
        if let Some(p) = &r.partition {
            t.row(vec![
                format!(
                    "after a {} s partition of 20 %: all in-sync, {n} subclouds",
                    p.secs
                ),
                opt_secs(p.resync.all),
                format!(
                    "≤ 60 s ({})",
                    met(p.resync.all.is_some_and(|a| a <= CONVERGE_TARGET))
                ),
                format!("resync every {:.0} min", STARLINGX_RESYNC_SECS / 60.0),
                p.resync.all.map_or("—".into(), |a| {
                    ratio(a.as_secs_f64(), STARLINGX_RESYNC_SECS, false)
                }),
            ]);
            let bad = p.count_mismatches + p.unacked + p.unexpected_counts + p.list_mismatches;
            t.row(vec![
                format!("alarm counts lost/duplicated by the partition, {n} subclouds"),
                bad.to_string(),
                format!("0 ({})", met(bad == 0)),
                "—".into(),
                "—".into(),
            ]);
        }
        if !r.errors.is_empty() {
            t.row(vec![
                format!("{n} subclouds"),
                "**failed** (see above)".into(),
                "—".into(),
                "—".into(),
                "—".into(),
            ]);
        }
    }
    format!(
        "### Distributed Cloud summary (system controller on {})\n\n{}\nStarlingX figures are its documented behaviour \
         (offline after 2 missed 30 s audits; sync audit every 10 minutes; 5,000 subclouds per \
         system controller), not measured in this run. The system controller, the simulated \
         subclouds and this benchmark share one machine{}.\n",
        store.label,
        t.render(),
        if store.postgres.is_some() {
            ", with PostgreSQL"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_use_disjoint_subclouds() {
        for n in [100, 500, 1000, 5000, 10_000] {
            let step = ((n / 20) / 5 * 5).max(5);
            let dead: HashSet<String> = spread(n, 2, step, 20).into_iter().collect();
            let alarmed: HashSet<String> = spread(n, 1, 5, usize::MAX).into_iter().collect();
            let part: HashSet<String> = spread(n, 5, 5, usize::MAX).into_iter().collect();
            assert_eq!(dead.len(), 20, "{n}");
            assert_eq!(part.len(), n / 5, "{n}");
            assert!(dead.is_disjoint(&alarmed) && dead.is_disjoint(&part));
            assert!(alarmed.is_disjoint(&part));
            assert!(dead.contains(&name(2)) && !dead.contains(&name(n + 2)));
        }
    }

    #[test]
    fn specs_follow_quick_and_sizes() {
        let s = Spec::new(true, &[]).unwrap();
        assert_eq!(s.sizes, vec![100, 500]);
        let s = Spec::new(false, &[]).unwrap();
        assert_eq!(s.sizes, vec![1000, 5000, 10_000]);
        assert!(Spec::new(false, &[50]).is_err());
    }
}

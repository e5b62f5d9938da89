//! `roost-bench`: benchmarks the real `roost server` binary and prints
//! markdown tables ready to paste into `docs/benchmarks.md`.
//!
//! # Running
//!
//! ```text
//! cargo build --release -p roost
//! cargo run --release -p roost-bench -- [all|throughput|list|startup|idle|mtce|dc|apps|dc-apps|dc-rollout|login|tls|access-log|notify|console|deploy|failover] [--bin PATH] [--quick]
//!     [--wait-quiet SECS] [--trials N] [--duplex] [--postgres]
//! ```
//!
//! * `throughput`: alarm set/clear over HTTP at 1, 8 and 64 concurrent
//!   clients, on the embedded SQLite store (durability `process` and
//!   `power`) and on PostgreSQL, against a `GET /healthz` floor and SQLite
//!   `process` measured in the same run. PostgreSQL is the server named by
//!   `ROOST_TEST_POSTGRES`; when that is not set, `scripts/test-postgres`
//!   starts the local one and gives its URL (without either, the PostgreSQL
//!   rows are left out); the benchmark makes a database of its own there
//!   and drops it at the end (see `pg.rs`).
//! * `list`: 10,000 active alarms, then `GET /v1/alarms?limit=2000` (plain
//!   and expanded), the summary and the full listing.
//! * `startup`: spawn to first answered `GET /healthz`, empty data directory.
//! * `idle`: RSS and CPU of an idle server with monitoring on.
//! * `mtce`: heartbeat failure detection, false failures under CPU load,
//!   agent footprint, a server with 200 simulated hosts (not part of `all`:
//!   about 20 minutes, 3 with `--quick`; see `mtce.rs`).
//! * `dc`: a system controller holding 1,000, 5,000 and 10,000 simulated
//!   subclouds (`--sizes`; `--quick`: 100 and 500): footprint, death
//!   detection, alarm aggregation, configuration convergence, a partition
//!   (not part of `all`: about 8 minutes a size, 2 with `--quick`; see `dc.rs`).
//!   With `--postgres` the system controller runs on PostgreSQL (a new
//!   database per size, on the server `throughput` uses) instead of its
//!   embedded SQLite store.
//! * `apps`: applications on real containerd: upload to running, failover
//!   between two agents, 100 containers on one host, `cyclictest` jitter on
//!   an isolated core (not part of `all`: needs root, containerd and runc;
//!   about 15 minutes, 5 with `--quick`; see `apps.rs`).
//! * `login`: logins per second and their latency (argon2id), and a
//!   reader's p99 alone and while 512 clients send wrong passwords, with
//!   Roost's delays on and off (not part of `all`; about a minute; see
//!   `login.rs`).
//! * `dc-apps`: one application to 1,000 simulated subclouds (`--sizes N`):
//!   time until all applied, bytes per subcloud, system controller CPU (not
//!   part of `all`; about 2 minutes; see `dc/apps.rs`).
//! * `dc-rollout`: one release to 5,000 simulated subclouds (`--sizes N`),
//!   a canary of 10 then waves of 50, 200 and 1,000: time to finish,
//!   system controller CPU and RSS, release bytes per subcloud (not part of
//!   `all`; about 10 minutes, 1 with `--quick`; see `dc/rollout.rs`).
//!
//! * `notify`: time from an alarm's `POST` to its webhook call at a
//!   receiver and to its trap printed by Net-SNMP's `snmptrapd`, against
//!   the API's answer in the same run (not part of `all`; about 30 s; see
//!   `notify.rs`).
//! * `console`: the web console in headless Chromium (Debian's `chromium`
//!   and `chromium-driver`): page weight and first contentful paint of the
//!   alarms page with 10 and 500 alarms, against the login page in the same
//!   run (not part of `all`; under a minute; see `console.rs`).
//! * `access-log`: server CPU per request with the access log on and off
//!   (`GET /healthz` and alarm set/clear at 8 clients, alternating rounds;
//!   see `access.rs`).
//! * `tls`: the API over HTTPS (`[http] tls = "on"`) against plain HTTP:
//!   the cost of a new connection (TCP + TLS handshake + `GET /healthz`),
//!   median and p99 over N connections, and alarm set/clear throughput at
//!   8 and 64 clients over kept-alive connections, with the ratio (not
//!   part of `all`; about a minute).
//! * `failover`: two controllers on one PostgreSQL database under a
//!   writing client; the active is killed (`kill -9`) or stopped
//!   (SIGTERM), N times each (`--trials`, default 20, 5 with `--quick`):
//!   time from the signal to the first write acknowledged by the other,
//!   and the writes that failed meanwhile (not part of `all`: it needs
//!   PostgreSQL, as `throughput` finds it, and takes about two minutes;
//!   see `failover.rs`). With `--duplex`: two duplex controllers (mode 3),
//!   each running its own PostgreSQL (the standby's a synchronous streaming
//!   replica), each on a simulated BMC that the other fences through
//!   (about five minutes; needs Debian's PostgreSQL binaries, and root so
//!   that PostgreSQL runs as `postgres`).
//!
//!   `throughput --duplex` adds a fourth server: the active of such a pair,
//!   each commit waiting for the replica's flush.
//!
//! `--quick` runs the same benchmarks with short windows and few samples
//! (under a minute); a full `all` takes about three minutes. The binary
//! defaults to `target/release/roost` in the workspace (or under
//! `$CARGO_TARGET_DIR`). Tables go to stdout, progress to stderr. The exit
//! status is 1 when any request failed. Every server runs on a free port
//! with its own temporary data directory (under `$TMPDIR`: point it at the
//! disk you want to measure `power` durability on) and is killed when its
//! benchmark ends.
//!
//! The load generator runs on the same machine as the server. Each table
//! reports the CPU used by other processes during the window; on a shared
//! machine, `--wait-quiet 300` waits before each measurement until they are
//! idle and measures again (up to three times) when they woke up meanwhile;
//! the summary warns when a kept measurement was disturbed anyway.
#![forbid(unsafe_code)]

mod access;
mod apps;
mod console;
mod dc;
mod deploy;
mod failover;
mod idle;
mod list;
mod load;
mod login;
mod mtce;
mod notify;
mod pg;
mod procfs;
mod startup;
mod stats;
mod table;
mod throughput;
mod tls;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use roost_test_support::{Server, ServerOptions};

use stats::{group, ms, ratio};
use table::Table;

#[derive(Parser, Debug)]
#[command(
    name = "roost-bench",
    about = "Benchmark the real `roost server` binary; prints markdown tables"
)]
struct Cli {
    /// Which benchmark to run
    #[arg(value_enum, default_value_t = Which::All)]
    which: Which,
    /// The roost binary [default: target/release/roost in the workspace]
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Short windows and few samples: a smoke run of about a minute
    #[arg(long)]
    quick: bool,
    /// Before each measurement, wait up to this many seconds for the machine
    /// to be quiet (other processes under 10 % of a core); 0: do not wait
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait_quiet: u64,
    /// `dc`: numbers of subclouds, e.g. 1000,5000,10000
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    sizes: Vec<usize>,
    /// `failover`: switch-overs of each kind [default: 20, 5 with --quick]
    #[arg(long, value_name = "N")]
    trials: Option<usize>,
    /// `failover`, `throughput`: duplex controllers (mode 3), each with its
    /// own PostgreSQL (needs Debian's PostgreSQL binaries; run as root)
    #[arg(long)]
    duplex: bool,
    /// `dc`: the system controller on PostgreSQL (a new database on the
    /// server `throughput` uses) instead of the embedded SQLite store
    #[arg(long)]
    postgres: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    All,
    Throughput,
    List,
    Startup,
    Idle,
    Mtce,
    Dc,
    Apps,
    /// One application to N simulated subclouds
    DcApps,
    /// One release rolled out to N simulated subclouds (canary, then waves)
    DcRollout,
    /// Login cost, and a reader's latency under a flood of wrong passwords
    Login,
    /// TLS on the API: handshake cost per new connection, set/clear over HTTPS vs HTTP
    Tls,
    /// The access log's cost: server CPU per request with it on and off
    AccessLog,
    /// Software deploy on one site: time to every host on the release, heartbeat gaps during agents' self-update
    Deploy,
    /// Two controllers on PostgreSQL: time from killing (or stopping) the active to the next acknowledged write
    Failover,
    /// Alarm to webhook delivery and to SNMP trap at snmptrapd (p50/p99), against the API's answer
    Notify,
    /// The web console in headless Chromium: page weight and time to first render
    Console,
}

/// How long and how much to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub bin: PathBuf,
    pub quick: bool,
    /// Throughput: unmeasured time before each window.
    pub warmup: Duration,
    /// Throughput: the measured window.
    pub measure: Duration,
    /// Throughput: client counts.
    pub concurrency: Vec<usize>,
    /// List: active alarms.
    pub list_alarms: usize,
    /// List: measured requests per endpoint.
    pub list_requests: usize,
    /// List: unmeasured requests before them.
    pub list_warmup: usize,
    /// Start-up: trials.
    pub startup_trials: usize,
    /// Idle: how long to watch.
    pub idle: Duration,
    /// Longest wait for a quiet machine before each measurement.
    pub wait_quiet: Duration,
    /// The PostgreSQL server for the benchmarks on that store (a URL), or
    /// why there is none.
    pub postgres: Result<String, String>,
    /// `--duplex`: `failover` in duplex (mode 3) instead of on one shared
    /// database; `throughput` with a duplex pair's active as well.
    pub duplex: bool,
    /// `--postgres`: `dc`'s system controller on a new database of
    /// [`Plan::postgres`] instead of the embedded SQLite store.
    pub dc_postgres: bool,
}

impl Plan {
    /// Waits (up to `wait_quiet`) for other processes to leave the CPU alone.
    pub fn settle(&self) {
        procfs::wait_quiet(self.wait_quiet, QUIET_PCT);
    }

    /// True when other processes' CPU makes a measurement worth repeating
    /// (only with `--wait-quiet`; otherwise it is reported and kept).
    pub fn disturbed(&self, other_cpu: Option<f64>) -> bool {
        !self.wait_quiet.is_zero() && other_cpu.is_some_and(|c| c > DISTURBED_PCT)
    }
}

impl Plan {
    fn new(bin: PathBuf, quick: bool, wait_quiet: u64) -> Plan {
        Plan {
            bin,
            quick,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(if quick { 2 } else { 10 }),
            concurrency: vec![1, 8, 64],
            list_alarms: 10_000,
            list_requests: if quick { 50 } else { 200 },
            list_warmup: if quick { 5 } else { 20 },
            startup_trials: if quick { 5 } else { 20 },
            idle: Duration::from_secs(if quick { 10 } else { 60 }),
            wait_quiet: Duration::from_secs(wait_quiet),
            postgres: Err("not looked up".into()),
            duplex: false,
            dc_postgres: false,
        }
    }
}

/// Starts a server with its own temporary data directory.
pub fn start_server(plan: &Plan, opts: ServerOptions) -> anyhow::Result<Server> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    Server::start_in(&plan.bin, &data, opts, Some(tmp)).map_err(anyhow::Error::msg)
}

/// The workspace root, from this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The roost binary to benchmark: `--bin`, else `target/release/roost`.
fn find_binary(cli_bin: Option<PathBuf>, root: &Path) -> Result<PathBuf, String> {
    let bin = cli_bin.unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root.join(t) })
            .unwrap_or_else(|| root.join("target"));
        target.join("release").join("roost")
    });
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "roost-bench: no roost binary at {}\nBuild it first:  cargo build --release -p roost\n\
             (or pass --bin PATH)",
            bin.display()
        ))
    }
}

/// Prints a section to stdout at once, so progress and tables interleave sanely.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Everything measured in this run.
#[derive(Default)]
struct Results {
    throughput: Option<throughput::Results>,
    list: Option<list::Results>,
    startup: Option<stats::Dist>,
    idle: Option<idle::Results>,
}

fn clients(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

/// Most measurements of one point when other processes disturb them (`--wait-quiet`).
pub const ATTEMPTS: usize = 3;

/// Machine CPU (% of one core) under which it counts as quiet for `--wait-quiet`.
const QUIET_PCT: f64 = 10.0;

/// Other processes' CPU (% of one core) above which a run is reported as disturbed.
const DISTURBED_PCT: f64 = 15.0;

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**MISSED**" }
}

/// The closing table: metric | Roost | target | StarlingX | ratio.
fn summary(r: &Results) -> String {
    let mut t = Table::new(&[
        "metric",
        ">Roost",
        "target",
        ">StarlingX (reference)",
        ">ratio",
    ]);
    if let Some(tp) = &r.throughput {
        for (d, o) in &tp.fm {
            let target = if o.clients == 64 {
                format!("≥ 5,000/s ({})", met(o.rate() >= 5000.0))
            } else {
                "—".into()
            };
            let (sx, rat) = match throughput::starlingx_rate(o.clients) {
                Some((v, _)) => (format!("{v:.0}/s"), ratio(o.rate(), v, true)),
                None => ("—".into(), "—".into()),
            };
            t.row(vec![
                format!("set/clear ops/s, {}, {}", clients(o.clients), tp.label(d)),
                format!("{}/s", group(o.rate().round() as u64)),
                target,
                sx,
                rat,
            ]);
        }
        if let Some(floor) = &tp.floor {
            for d in throughput::VARIANTS {
                if let Some(o) = tp.get(d, floor.clients) {
                    t.row(vec![
                        format!(
                            "set/clear as % of `GET /healthz` floor, {} clients, {}",
                            o.clients,
                            tp.label(d)
                        ),
                        format!("{:.0} %", o.rate() / floor.rate().max(1e-9) * 100.0),
                        "—".into(),
                        "—".into(),
                        "—".into(),
                    ]);
                }
            }
        }
    }
    if let Some(l) = &r.list {
        let path = "/v1/alarms?limit=2000";
        if let Some(row) = l.get(path) {
            let p50 = row.latency.pct(50.0);
            let p99 = row.latency.pct(99.0);
            t.row(vec![
                format!("`GET {path}` p50, 10,000 alarms"),
                format!("{} ms", ms(p50)),
                "—".into(),
                "558 ms".into(),
                ratio(p50.as_secs_f64() * 1000.0, 558.0, false),
            ]);
            t.row(vec![
                format!("`GET {path}` p99, 10,000 alarms"),
                format!("{} ms", ms(p99)),
                format!("< 20 ms ({})", met(p99 < Duration::from_millis(20))),
                "—".into(),
                "—".into(),
            ]);
        }
        if let Some(row) = l.get("/v1/alarms/summary") {
            let p50 = row.latency.pct(50.0);
            t.row(vec![
                "`GET /v1/alarms/summary` p50, 10,000 alarms".into(),
                format!("{} ms", ms(p50)),
                "—".into(),
                "789 ms".into(),
                ratio(p50.as_secs_f64() * 1000.0, 789.0, false),
            ]);
        }
    }
    if let Some(d) = &r.startup {
        let p50 = d.pct(50.0);
        t.row(vec![
            "start-up to first answer, p50".into(),
            format!("{} ms", ms(p50)),
            format!("< 1 s ({})", met(d.max() < Duration::from_secs(1))),
            "3,400 ms".into(),
            ratio(p50.as_secs_f64() * 1000.0, 3400.0, false),
        ]);
    }
    if let Some(i) = &r.idle {
        if let Some(rss) = i.rss_mib {
            t.row(vec![
                "idle RSS, monitoring on".into(),
                format!("{rss:.1} MiB"),
                format!("< 30 MB ({})", met(rss * 1.048_576 < 30.0)),
                "316 MiB + 109 MiB PostgreSQL".into(),
                ratio(rss, 316.0 + 109.0, false),
            ]);
        }
        if let Some(cpu) = i.cpu {
            t.row(vec![
                "idle CPU, monitoring on".into(),
                format!("{cpu:.2} % of a core"),
                "—".into(),
                "—".into(),
                "—".into(),
            ]);
        }
    }
    let failures = failures(r);
    t.row(vec![
        "failed requests (non-2xx + errors), all benchmarks".into(),
        failures.to_string(),
        format!("0 ({})", met(failures == 0)),
        "47 % HTTP 500 at 8 clients".into(),
        "—".into(),
    ]);
    let mut out = String::from("### Summary\n\n");
    out.push_str(&t.render());
    let other = r
        .throughput
        .iter()
        .flat_map(|t| t.fm.iter().map(|(_, o)| o).chain(t.floor.iter()))
        .filter_map(|o| o.other_cpu)
        .chain(r.list.as_ref().and_then(|l| l.other_cpu))
        .fold(0.0_f64, f64::max);
    if other > DISTURBED_PCT {
        out.push_str(&format!(
            "\n**Warning:** other processes used up to {other:.0} % of a core during a measurement; \
             these numbers are disturbed. Rerun on a quiet machine before publishing.\n"
        ));
    }
    out.push_str(
        "\nStarlingX figures are its documented measurements on a 2-vCPU machine, not measured in this \
         run. The start-up target is checked against the slowest trial; the idle RSS target of 30 MB \
         (10^6 bytes) against VmRSS.\n",
    );
    out
}

fn failures(r: &Results) -> u64 {
    r.throughput
        .as_ref()
        .map_or(0, throughput::Results::failures)
        + r.list.as_ref().map_or(0, list::Results::failures)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let bin = match find_binary(cli.bin, &root) {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let mut plan = Plan::new(bin, cli.quick, cli.wait_quiet);
    plan.duplex = cli.duplex;
    plan.dc_postgres = cli.postgres;
    if cli.postgres && cli.which != Which::Dc {
        eprintln!("roost-bench: --postgres is for `dc` only");
        return ExitCode::from(2);
    }
    let shared_failover = cli.which == Which::Failover && !cli.duplex;
    let needs_postgres = shared_failover || cli.postgres;
    if matches!(cli.which, Which::All | Which::Throughput) || needs_postgres {
        plan.postgres = pg::server(&root);
        if let Err(why) = &plan.postgres {
            if needs_postgres {
                let what = if cli.postgres {
                    "dc --postgres"
                } else {
                    "failover"
                };
                eprintln!("roost-bench: {what} needs PostgreSQL: {why}");
                return ExitCode::from(2);
            }
            eprintln!("roost-bench: no PostgreSQL ({why}); its throughput rows are left out");
        }
    }
    let trials = cli.trials.unwrap_or(if cli.quick { 5 } else { 20 });
    match run(cli.which, plan, &root, &cli.sizes, trials) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            eprintln!("roost-bench: {n} requests failed (see the tables)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("roost-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen benchmarks, printing each section as it completes;
/// returns the number of failed requests.
fn run(
    which: Which,
    plan: Plan,
    root: &Path,
    sizes: &[usize],
    trials: usize,
) -> anyhow::Result<u64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mode = if plan.quick {
        "**quick** (smoke run: short windows, few samples; not for publishing)"
    } else {
        "full"
    };
    plan.settle();
    let data_fs = procfs::filesystem_of(&std::env::temp_dir());
    emit(&format!(
        "## Benchmark run\n\n\
         Machine: {}  \n\
         Binary: {}  \n\
         Data directories: temporary, under {} ({data_fs}; 4 KiB write + fdatasync there: p50 {} ms)  \n\
         Load average (1 min) at start: {}; IO pressure (PSI `some`, last 60 s): {}  \n\
         Mode: {mode}; `roost-bench {}{}{}{}{}`. Server and load generator share the machine{}.\n",
        procfs::machine_line(),
        procfs::roost_version(&plan.bin, root),
        std::env::temp_dir().display(),
        procfs::fdatasync_p50(&std::env::temp_dir(), 200).map_or("unknown".into(), ms),
        procfs::load_average().map_or("unknown".into(), |l| format!("{l:.2}")),
        procfs::io_pressure_avg60().map_or("unknown".into(), |p| format!("{p:.0} %")),
        format!("{which:?}").to_lowercase(),
        if plan.quick { " --quick" } else { "" },
        if plan.duplex { " --duplex" } else { "" },
        if plan.dc_postgres { " --postgres" } else { "" },
        if plan.wait_quiet.is_zero() {
            String::new()
        } else {
            format!(" --wait-quiet {}", plan.wait_quiet.as_secs())
        },
        if plan.wait_quiet.is_zero() {
            String::new()
        } else {
            format!(
                "; before each measurement it waited (up to {} s) for other processes to use under \
                 {QUIET_PCT:.0} % of a core, and measured again (up to {ATTEMPTS} times in all, keeping \
                 the least disturbed) when they used over {DISTURBED_PCT:.0} % during it",
                plan.wait_quiet.as_secs()
            )
        },
    ));
    if which == Which::Mtce {
        return mtce::run(&plan);
    }
    if which == Which::Dc {
        return dc::run(&plan, sizes);
    }
    if which == Which::Apps {
        return apps::run(&plan);
    }
    if which == Which::DcApps {
        return dc::apps::run(&plan, sizes);
    }
    if which == Which::DcRollout {
        return dc::rollout::run(&plan, sizes);
    }
    if which == Which::Login {
        return login::run(&plan, &rt);
    }
    if which == Which::Deploy {
        return deploy::run(&plan);
    }
    if which == Which::Failover {
        let mode = if plan.duplex {
            failover::Mode::Duplex
        } else {
            failover::Mode::Shared
        };
        return failover::run(&plan, trials, mode);
    }
    if which == Which::Tls {
        let r = tls::run(&plan, &rt)?;
        emit(&tls::render(&r, &plan));
        return Ok(r.failures());
    }
    if which == Which::Console {
        let r = console::run(&plan)?;
        emit(&console::render(&r));
        return Ok(0);
    }
    if which == Which::Notify {
        let r = notify::run(&plan)?;
        emit(&notify::render(&r));
        return Ok(r.failures());
    }
    if which == Which::AccessLog {
        let r = access::run(&plan, &rt)?;
        emit(&access::render(&r, &plan));
        return Ok(r.failures());
    }
    let all = which == Which::All;
    let mut r = Results::default();
    if all || which == Which::Throughput {
        let t = throughput::run(&plan, &rt)?;
        emit(&throughput::render(&t, &plan));
        r.throughput = Some(t);
    }
    if all || which == Which::List {
        let l = list::run(&plan, &rt)?;
        emit(&list::render(&l, &plan));
        r.list = Some(l);
    }
    if all || which == Which::Startup {
        let d = startup::run(&plan)?;
        emit(&startup::render(&d));
        r.startup = Some(d);
    }
    if all || which == Which::Idle {
        let i = idle::run(&plan)?;
        let after_list = r.list.as_ref().map(|l| (l.alarms, l.memory.0, l.memory.1));
        emit(&idle::render(&i, after_list));
        r.idle = Some(i);
    }
    emit(&summary(&r));
    Ok(failures(&r))
}

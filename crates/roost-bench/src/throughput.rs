//! Benchmark 1: alarm set/clear over HTTP at 1, 8 and 64 concurrent
//! clients, for three servers: the embedded SQLite store at both
//! durabilities (`process`, `power`) and a PostgreSQL store (a new
//! database on the local test server, `ROOST_TEST_POSTGRES`, with the
//! server's own settings), against the `GET /healthz` floor and, for
//! PostgreSQL, against SQLite `process` measured in the same run. With
//! `--duplex`, a fourth: the active of two duplex controllers (mode 3,
//! `failover::Pair`), whose own PostgreSQL commits wait for the standby's
//! streaming replica, against SQLite `process` and the local PostgreSQL.

use roost_test_support::{Server, ServerOptions};
use tokio::runtime::Runtime;

use crate::Plan;
use crate::load::{self, Outcome, Workload};
use crate::stats::{group, ms};
use crate::table::Table;

/// StarlingX's documented set+clear rate (its FM API, 2 vCPUs) for a client count.
pub fn starlingx_rate(clients: usize) -> Option<(f64, &'static str)> {
    match clients {
        1 => Some((42.0, "42/s")),
        8 => Some((92.0, "92/s, p99 214 ms, 47 % HTTP 500")),
        _ => None,
    }
}

/// The servers measured, in order: SQLite at each durability, then
/// PostgreSQL, then (with `--duplex` only) a duplex pair's active.
pub const VARIANTS: [&str; 4] = ["process", "power", "postgres", "duplex"];

/// Every run of this benchmark.
pub struct Results {
    /// (variant, outcome) for each variant ([`VARIANTS`]) and client count.
    pub fm: Vec<(&'static str, Outcome)>,
    /// `GET /healthz` at the highest concurrency, same run.
    pub floor: Option<Outcome>,
    /// The PostgreSQL server's settings, or why the `postgres` variant did not run.
    pub postgres: Result<crate::pg::Info, String>,
    /// The duplex active's PostgreSQL settings, or why the `duplex` variant
    /// did not run.
    pub duplex: Result<crate::pg::Info, String>,
    /// The duplex active's replicas (`pg_stat_replication`) after each of
    /// its windows.
    pub duplex_replicas: Vec<(usize, Vec<String>)>,
    /// Per client count: leases taken and step-downs, as both duplex
    /// controllers logged them during its windows (every attempt).
    pub duplex_lease_changes: Vec<(usize, usize, usize)>,
}

impl Results {
    /// How tables name a variant: its store, and its durability.
    pub fn label(&self, variant: &str) -> String {
        match variant {
            "process" | "power" => format!("SQLite `{variant}`"),
            "postgres" => match &self.postgres {
                Ok(i) => format!(
                    "PostgreSQL local, `synchronous_commit` {}",
                    i.synchronous_commit
                ),
                Err(_) => "PostgreSQL".into(),
            },
            "duplex" => "PostgreSQL duplex, synchronous replica".into(),
            other => format!("`{other}`"),
        }
    }

    /// The set/clear outcome for this durability and client count.
    pub fn get(&self, durability: &str, clients: usize) -> Option<&Outcome> {
        self.fm
            .iter()
            .find(|(d, o)| *d == durability && o.clients == clients)
            .map(|(_, o)| o)
    }

    /// Failed requests in every run.
    pub fn failures(&self) -> u64 {
        self.fm.iter().map(|(_, o)| o.failures()).sum::<u64>()
            + self.floor.as_ref().map_or(0, Outcome::failures)
    }
}

/// The server under load: its process, a token, its PostgreSQL database if any.
struct Target<'a> {
    server: &'a Server,
    token: &'a str,
    postgres_db: Option<&'a str>,
}

fn measure(
    rt: &Runtime,
    http: &reqwest::Client,
    plan: &Plan,
    target: &Target<'_>,
    workload: Workload,
    clients: usize,
) -> Outcome {
    let spec = load::Spec {
        url: target.server.url.clone(),
        token: target.token.to_string(),
        workload,
        clients,
        warmup: plan.warmup,
        measure: plan.measure,
        server_pid: target.server.pid(),
        postgres_db: target.postgres_db.map(str::to_string),
    };
    let mut best: Option<Outcome> = None;
    // Failures of every attempt are reported, not only the kept one's.
    let (mut non_2xx, mut errors) = (0, 0);
    for attempt in 1..=crate::ATTEMPTS {
        plan.settle();
        let o = rt.block_on(load::run(http, &spec));
        eprintln!(
            "  {workload:?} x{clients}: {:.0}/s, p99 {} ms, {} failed, other CPU {:.0} %{}, IO pressure {}",
            o.rate(),
            ms(o.latency.pct(99.0)),
            o.failures(),
            o.other_cpu.unwrap_or(0.0),
            o.db_cpu
                .map_or(String::new(), |c| format!(", PostgreSQL CPU {c:.0} %")),
            cpu(o.io_pressure)
        );
        if let Some(f) = &o.first_failure {
            eprintln!("    first failure: {f}");
        }
        let disturbed = plan.disturbed(o.other_cpu);
        non_2xx += o.non_2xx;
        errors += o.errors;
        if best
            .as_ref()
            .is_none_or(|b| o.other_cpu.unwrap_or(0.0) < b.other_cpu.unwrap_or(0.0))
        {
            best = Some(o);
        }
        if !disturbed {
            break;
        }
        if attempt < crate::ATTEMPTS {
            eprintln!("    disturbed by other processes; measuring again");
        }
    }
    let mut best = best.expect("at least one attempt");
    best.non_2xx = non_2xx;
    best.errors = errors;
    best
}

/// A server's log, shortened: its first error line, how many error lines
/// there were, and its last 30 other lines (the errors of failed requests
/// would hide everything else).
fn log_digest(log: &str) -> String {
    let (errors, other): (Vec<&str>, Vec<&str>) = log.lines().partition(|l| l.contains(" ERROR "));
    let mut out: Vec<String> = other[other.len().saturating_sub(30)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    if let Some(first) = errors.first() {
        out.push(format!("{} ERROR lines, the first: {first}", errors.len()));
    }
    out.join("\n")
}

/// The `duplex` variant: a new pair of duplex controllers; the load goes
/// to the active (controller-0) while its replica streams synchronously.
fn duplex(
    plan: &Plan,
    rt: &Runtime,
    http: &reqwest::Client,
    results: &mut Results,
) -> anyhow::Result<()> {
    eprintln!("throughput: starting two duplex controllers");
    let pair = match crate::failover::Pair::start(plan, crate::failover::Mode::Duplex) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("throughput: no duplex pair ({e:#}); leaving it out");
            results.duplex = Err(format!("{e:#}"));
            return Ok(());
        }
    };
    let url = pair.db_url(0).unwrap_or_default();
    results.duplex = crate::pg::info(&url).map_err(|e| format!("{e:#}"));
    if let Err(why) = &results.duplex {
        eprintln!("throughput: cannot read the duplex database's settings: {why}");
    }
    let server = pair.server(0)?;
    let target = Target {
        server,
        token: &pair.token,
        // The role's and database's name in both clusters: their backends,
        // the WAL sender and receiver, and both clusters' shared processes.
        postgres_db: Some(roost_store::cluster::DATABASE),
    };
    let changes = || {
        let (a, b) = (pair.lease_changes(0), pair.lease_changes(1));
        (a.0 + b.0, a.1 + b.1)
    };
    for &clients in &plan.concurrency {
        let before = changes();
        let o = measure(rt, http, plan, &target, Workload::SetClear, clients);
        let after = changes();
        results
            .duplex_lease_changes
            .push((clients, after.0 - before.0, after.1 - before.1));
        if after != before {
            eprintln!(
                "    during the window(s): {} leases taken, {} step-downs",
                after.0 - before.0,
                after.1 - before.1
            );
        }
        let replicas = pair
            .replication(0)
            .unwrap_or_else(|e| vec![format!("{e:#}")]);
        eprintln!("    controller-0's replicas after the window: {replicas:?}");
        results.duplex_replicas.push((clients, replicas));
        let failed = o.failures() > 0;
        results.fm.push(("duplex", o));
        if failed {
            eprintln!(
                "throughput: requests failed; controller-0's (the active's) log:\n{}\n\
                 controller-1's (the standby's) log:\n{}",
                log_digest(&pair.log(0)),
                log_digest(&pair.log(1))
            );
        }
    }
    Ok(())
}

/// Runs the benchmark: a fresh server per variant.
pub fn run(plan: &Plan, rt: &Runtime) -> anyhow::Result<Results> {
    let http = load::client()?;
    let mut results = Results {
        fm: Vec::new(),
        floor: None,
        postgres: Err("not run".into()),
        duplex: Err("not run (no `--duplex`)".into()),
        duplex_replicas: Vec::new(),
        duplex_lease_changes: Vec::new(),
    };
    for variant in VARIANTS {
        if variant == "duplex" {
            if plan.duplex {
                duplex(plan, rt, &http, &mut results)?;
            }
            continue;
        }
        // Dropped after the server (declared before it).
        let mut db = None;
        let opts = if variant == "postgres" {
            let made = plan.postgres.clone().and_then(|server| {
                crate::pg::Database::create(&server).map_err(|e| format!("{e:#}"))
            });
            let made = match made {
                Ok(made) => made,
                Err(why) => {
                    eprintln!("throughput: no PostgreSQL database ({why}); leaving it out");
                    results.postgres = Err(why);
                    continue;
                }
            };
            results.postgres = crate::pg::info(&made.url).map_err(|e| format!("{e:#}"));
            if let Err(why) = &results.postgres {
                eprintln!("throughput: cannot read the PostgreSQL settings: {why}");
            }
            eprintln!("throughput: starting a server on PostgreSQL ({})", made.url);
            let url = made.url.clone();
            db = Some(made);
            ServerOptions {
                store: Some(url),
                ..ServerOptions::default()
            }
        } else {
            eprintln!("throughput: starting a server with --durability {variant}");
            ServerOptions {
                args: vec!["--durability".into(), variant.into()],
                ..ServerOptions::default()
            }
        };
        let server = crate::start_server(plan, opts)?;
        let token = server.token();
        let target = Target {
            server: &server,
            token: &token,
            postgres_db: db.as_ref().map(|d| d.name.as_str()),
        };
        for &clients in &plan.concurrency {
            let o = measure(rt, &http, plan, &target, Workload::SetClear, clients);
            results.fm.push((variant, o));
        }
        if variant == "process" {
            let top = plan.concurrency.iter().copied().max().unwrap_or(64);
            results.floor = Some(measure(rt, &http, plan, &target, Workload::Healthz, top));
        }
        if results
            .fm
            .iter()
            .any(|(d, o)| *d == variant && o.failures() > 0)
        {
            eprintln!(
                "throughput: requests failed; the server's log:\n{}",
                log_digest(&server.log())
            );
        }
    }
    Ok(results)
}

/// The duplex active against SQLite `process` and the local PostgreSQL,
/// same run, and what its PostgreSQL was.
fn duplex_section(r: &Results, out: &mut String) {
    match &r.duplex {
        Ok(i) => out.push_str(&format!(
            "\nDuplex: two PostgreSQL {} clusters on this machine and disk, one per controller, \
             run by the controllers; the active's `synchronous_commit` {}, `fsync` {}, data \
             directories on {}; replicas of the active's database after each window \
             (`application_name state sync_state`): {}; leases taken and step-downs (\"the \
             controller lease could not be renewed in time\") in both controllers' logs \
             during the windows, every attempt: {}.\n",
            i.version,
            i.synchronous_commit,
            i.fsync,
            i.filesystem.as_deref().unwrap_or("an unknown filesystem"),
            r.duplex_replicas
                .iter()
                .map(|(c, rows)| format!("{c} clients: {}", rows.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
            r.duplex_lease_changes
                .iter()
                .map(|(c, took, down)| format!("{c} clients: {took} / {down}"))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Err(why) if r.fm.iter().all(|(d, _)| *d != "duplex") => {
            if !why.starts_with("not run") {
                out.push_str(&format!("\nDuplex not measured: {why}.\n"));
            }
            return;
        }
        Err(why) => out.push_str(&format!(
            "\nDuplex: its PostgreSQL settings could not be read ({why}).\n"
        )),
    }
    let rows: Vec<(&Outcome, Option<&Outcome>, Option<&Outcome>)> =
        r.fm.iter()
            .filter(|(d, _)| *d == "duplex")
            .map(|(_, dx)| {
                (
                    dx,
                    r.get("process", dx.clients),
                    r.get("postgres", dx.clients),
                )
            })
            .collect();
    out.push_str(
        "\n**Duplex (synchronous replication) against SQLite `process` and the single local \
         PostgreSQL**, same run (ops/s and latency from the table above; \"CPU µs/op\" is the \
         server's CPU per op plus PostgreSQL's: for duplex both clusters' processes):\n\n",
    );
    let mut t = Table::new(&[
        ">clients",
        ">SQLite ops/s",
        ">PostgreSQL ops/s",
        ">duplex ops/s",
        ">duplex / SQLite",
        ">duplex / PostgreSQL",
        ">p50 SQLite",
        ">p50 PostgreSQL",
        ">p50 duplex",
        ">p99 SQLite",
        ">p99 PostgreSQL",
        ">p99 duplex",
        ">CPU µs/op PostgreSQL",
        ">CPU µs/op duplex",
    ]);
    let rate = |o: Option<&Outcome>| o.map_or("—".into(), |o| group(o.rate().round() as u64));
    let ratio = |dx: &Outcome, o: Option<&Outcome>| match o {
        Some(o) if o.rate() > 0.0 => format!("{:.2}", dx.rate() / o.rate()),
        _ => "—".into(),
    };
    let pct = |o: Option<&Outcome>, p: f64| o.map_or("—".into(), |o| ms(o.latency.pct(p)));
    for (dx, sq, pg) in rows {
        t.row(vec![
            dx.clients.to_string(),
            rate(sq),
            rate(pg),
            rate(Some(dx)),
            ratio(dx, sq),
            ratio(dx, pg),
            pct(sq, 50.0),
            pct(pg, 50.0),
            pct(Some(dx), 50.0),
            pct(sq, 99.0),
            pct(pg, 99.0),
            pct(Some(dx), 99.0),
            pg.map_or("—".into(), cpu_per_op),
            cpu_per_op(dx),
        ]);
    }
    out.push_str(&t.render());
}

fn cpu(v: Option<f64>) -> String {
    v.map_or("—".into(), |c| format!("{c:.0} %"))
}

fn latency_cells(o: &Outcome) -> Vec<String> {
    vec![
        ms(o.latency.pct(50.0)),
        ms(o.latency.pct(90.0)),
        ms(o.latency.pct(99.0)),
        ms(o.latency.max()),
    ]
}

/// Server CPU per acknowledged op, µs: the server's own, plus its
/// PostgreSQL backends' when it has some.
fn cpu_per_op(o: &Outcome) -> String {
    match o.server_cpu {
        Some(c) if o.rate() > 0.0 => {
            let pct = c + o.db_cpu.unwrap_or(0.0);
            format!("{:.0}", pct / 100.0 / o.rate() * 1e6)
        }
        _ => "—".into(),
    }
}

/// The section as markdown.
pub fn render(r: &Results, plan: &Plan) -> String {
    let duplex = r.fm.iter().any(|(d, _)| *d == "duplex");
    let mut out = String::from("### 1. Alarm set/clear throughput\n\n");
    out.push_str(&format!(
        "Each client is a task sending `POST /v1/alarms` one after another, alternating a set and a clear \
         of its own entity (`100.104`, `host=bench-<client>.filesystem=/n<i>`), over one shared HTTP/1.1 \
         connection pool, for {} s after a {} s warm-up. One op = one POST. Latency is per request, \
         in ms. The load generator runs on the same machine and competes with the server for CPU. \
         {} servers, each new: the embedded SQLite store at durability `process` and `power`, and \
         a PostgreSQL store (a new database on the local test server){}.\n\n",
        plan.measure.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        if duplex { "Four" } else { "Three" },
        if duplex {
            "; and the active of two duplex controllers (mode 3) on this machine, \
             each with its own PostgreSQL, the standby's a streaming replica that every commit \
             waits for (synchronous replication)"
        } else {
            ""
        }
    ));
    let mut t = Table::new(&[
        "store",
        ">clients",
        ">ops/s",
        ">p50",
        ">p90",
        ">p99",
        ">max",
        ">non-2xx",
        ">errors",
        ">server CPU",
        ">PostgreSQL CPU",
        ">bench CPU",
        ">other CPU",
        "StarlingX (documented)",
    ]);
    for (d, o) in &r.fm {
        let mut row = vec![
            r.label(d),
            o.clients.to_string(),
            group(o.rate().round() as u64),
        ];
        row.extend(latency_cells(o));
        row.extend([
            o.non_2xx.to_string(),
            o.errors.to_string(),
            cpu(o.server_cpu),
            cpu(o.db_cpu),
            cpu(o.bench_cpu),
            cpu(o.other_cpu),
            starlingx_rate(o.clients).map_or("—".into(), |(_, s)| s.to_string()),
        ]);
        t.row(row);
    }
    out.push_str(&t.render());
    out.push_str(
        "\nCPU columns are % of one core over the measured window: the server process, PostgreSQL \
         (store on PostgreSQL only: the backends serving its database, and the cluster's shared \
         processes such as its WAL writer, checkpointer and autovacuum), this benchmark's own process, and everything else on the \
         machine (should be near 0; more means the run was disturbed). StarlingX's figures are documented \
         measurements of its FM API on a 2-vCPU machine, not measured here; it commits to PostgreSQL, \
         whose defaults (`fsync`, `synchronous_commit` on) make every commit power-durable, so the \
         `power` and PostgreSQL rows are the like-for-like comparison.\n",
    );
    match &r.postgres {
        Ok(i) => out.push_str(&format!(
            "\nPostgreSQL: server {} on this machine (reached over TCP loopback), `synchronous_commit` \
             {}, `fsync` {}, data directory on {}.\n",
            i.version,
            i.synchronous_commit,
            i.fsync,
            i.filesystem.as_deref().unwrap_or("an unknown filesystem")
        )),
        Err(why) if r.fm.iter().all(|(d, _)| *d != "postgres") => out.push_str(&format!(
            "\nPostgreSQL store not measured: {why} (set `{}` to a server URL, or run \
             `scripts/test-postgres`).\n",
            crate::pg::SERVER_ENV
        )),
        Err(why) => out.push_str(&format!(
            "\nPostgreSQL: its settings could not be read ({why}).\n"
        )),
    }
    let pairs: Vec<(&Outcome, &Outcome)> =
        r.fm.iter()
            .filter(|(d, _)| *d == "postgres")
            .filter_map(|(_, pg)| r.get("process", pg.clients).map(|sq| (sq, pg)))
            .collect();
    if !pairs.is_empty() {
        out.push_str(&format!(
            "\n**PostgreSQL against SQLite `process`**, same run (ops/s and latency from the table \
             above; \"CPU µs/op\" is the server's CPU per op, plus PostgreSQL's for {}):\n\n",
            r.label("postgres")
        ));
        let mut t = Table::new(&[
            ">clients",
            ">SQLite ops/s",
            ">PostgreSQL ops/s",
            ">PostgreSQL / SQLite",
            ">p50 SQLite",
            ">p50 PostgreSQL",
            ">p99 SQLite",
            ">p99 PostgreSQL",
            ">CPU µs/op SQLite",
            ">CPU µs/op PostgreSQL",
        ]);
        for (sq, pg) in pairs {
            t.row(vec![
                pg.clients.to_string(),
                group(sq.rate().round() as u64),
                group(pg.rate().round() as u64),
                if sq.rate() > 0.0 {
                    format!("{:.2}", pg.rate() / sq.rate())
                } else {
                    "—".into()
                },
                ms(sq.latency.pct(50.0)),
                ms(pg.latency.pct(50.0)),
                ms(sq.latency.pct(99.0)),
                ms(pg.latency.pct(99.0)),
                cpu_per_op(sq),
                cpu_per_op(pg),
            ]);
        }
        out.push_str(&t.render());
    }
    duplex_section(r, &mut out);
    if let Some(floor) = &r.floor {
        out.push_str(&format!(
            "\n**HTTP floor.** The same server (SQLite `process`) and client at {} clients, \
             `GET /healthz` (no authentication, no store write):\n\n",
            floor.clients
        ));
        let mut t = Table::new(&[
            "request",
            ">clients",
            ">req/s",
            ">p50",
            ">p90",
            ">p99",
            ">max",
            ">failed",
            ">% of floor",
        ]);
        let mut push = |name: String, o: &Outcome| {
            let mut row = vec![name, o.clients.to_string(), group(o.rate().round() as u64)];
            row.extend(latency_cells(o));
            row.push(o.failures().to_string());
            row.push(if floor.rate() > 0.0 {
                format!("{:.0} %", o.rate() / floor.rate() * 100.0)
            } else {
                "—".into()
            });
            t.row(row);
        };
        push("`GET /healthz`".into(), floor);
        for d in VARIANTS {
            if let Some(o) = r.get(d, floor.clients) {
                push(format!("set/clear, {}", r.label(d)), o);
            }
        }
        out.push_str(&t.render());
    }
    out.push_str(
        "\n**Where the server's CPU goes** (% of one core over each window, by thread name as in \
         `/proc/<pid>/task/*/comm`; threads under 1 % left out; \"IO pressure\" is the share of the \
         window in which some task on the machine waited for the disk, from Linux PSI: fsync-bound \
         rows suffer when it is high; the machine has ",
    );
    out.push_str(&format!(
        "{} cores):\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    let mut t = Table::new(&[
        "run",
        ">clients",
        ">server",
        ">PostgreSQL",
        ">bench",
        ">other",
        ">IO pressure",
        "server threads",
    ]);
    let runs =
        r.fm.iter()
            .map(|(d, o)| (format!("set/clear, {}", r.label(d)), o))
            .chain(r.floor.iter().map(|o| ("`GET /healthz`".to_string(), o)));
    for (name, o) in runs {
        let threads: Vec<String> = o
            .server_threads
            .iter()
            .map(|(n, pct)| format!("`{n}` {pct:.0} %"))
            .collect();
        t.row(vec![
            name,
            o.clients.to_string(),
            cpu(o.server_cpu),
            cpu(o.db_cpu),
            cpu(o.bench_cpu),
            cpu(o.other_cpu),
            cpu(o.io_pressure),
            threads.join(", "),
        ]);
    }
    out.push_str(&t.render());
    out
}

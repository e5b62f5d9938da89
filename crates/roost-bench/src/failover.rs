//! `roost-bench failover`: two controllers on one PostgreSQL store; how
//! long writes stop when the active one dies or is stopped.
//!
//! Two `roost server`s on a new database (dropped at the end) of the
//! PostgreSQL server the benchmarks use (`pg.rs`: `ROOST_TEST_POSTGRES`,
//! else `scripts/test-postgres`), each on its own fixed loopback port, data
//! directory and configuration (`hostname = "controller-N"`, `[ha]
//! lease_ms`), the second with a copy of the first one's `secret.key`:
//! controller-0 takes the controller lease and is active, controller-1 is
//! a standby that redirects every request to it.
//!
//! One client raises and clears alarms (`POST /v1/alarms`, one after
//! another, following redirects) against one of the two addresses; when a
//! request is not acknowledged (no answer, or an answer other than 200) it
//! waits [`RETRY_PAUSE`] and sends the same write to the other address.
//!
//! Each trial kills the active (`kill -9`) or stops it (SIGTERM: it drains,
//! gives the lease up and exits), and measures the time from the signal to
//! the first write acknowledged by the other controller, and the writes
//! that failed meanwhile. Then the stopped controller is started again on
//! its data directory and store: it comes up as a standby, and the next
//! trial begins after [`STEADY`] of writes (so the roles alternate). The
//! two kinds alternate too, `--trials` of each. Before each signal and
//! each restart the benchmark pauses a random time of up to [`PHASE`]:
//! otherwise its own rhythm would fix when the signal falls between two
//! renewals of the lease, and when the standby looks at it, and every
//! trial would sample the same point of those cycles.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roost_test_support::{Server, ServerOptions, wait_for};

use crate::stats::{Dist, ms};
use crate::table::Table;
use crate::{Plan, emit};

/// The lease length the controllers are given (`[ha] lease_ms`, its default).
pub const LEASE_MS: u64 = 1000;
/// The switch-over target.
const TARGET: Duration = Duration::from_secs(2);
/// The client's pause after a write that was not acknowledged.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Writes before each trial, and the window the write rate is read over.
const STEADY: Duration = Duration::from_secs(1);
/// Longest wait for a switch-over before the trial counts as failed.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The period of the active's renewals and of the standby's looks
/// (a quarter of the lease): the range of the random pauses that keep the
/// trials from sampling always the same phase of them.
const PHASE: Duration = Duration::from_millis(LEASE_MS / 4);

/// Pseudo-random pauses (xorshift, seeded from the clock).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Jitter(seed | 1)
    }

    /// A pause uniformly in [0, `max`).
    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.0 % micros)
    }
}

/// What a controller logs when it becomes the active one.
const TOOK_LEASE: &str = "took the controller lease";
/// The client's timeout per request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kill9,
    Term,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Kill9 => "`kill -9` of the active",
            Kind::Term => "SIGTERM of the active",
        }
    }
}

/// One controller: where it lives and, while it runs, its process.
struct Controller {
    name: String,
    data: PathBuf,
    config: PathBuf,
    listen: String,
    url: String,
    server: Option<Server>,
}

impl Controller {
    fn new(dir: &Path, name: &str) -> anyhow::Result<Controller> {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("hostname = \"{name}\"\n[ha]\nlease_ms = {LEASE_MS}\n"),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        Ok(Controller {
            name: name.to_string(),
            data: dir.join(name),
            config,
            url: format!("http://{listen}"),
            listen,
            server: None,
        })
    }

    /// Starts the server (again) on its data directory, store and port.
    fn start(&mut self, plan: &Plan, store: &str) -> anyhow::Result<&Server> {
        let s = Server::start_in(
            &plan.bin,
            &self.data,
            ServerOptions {
                args: vec!["--config".into(), self.config.display().to_string()],
                store: Some(store.to_string()),
                listen: Some(self.listen.clone()),
                ..ServerOptions::default()
            },
            None,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", self.name))?;
        anyhow::ensure!(
            s.url == self.url,
            "{} serves on {}, not {}",
            self.name,
            s.url,
            self.url
        );
        Ok(self.server.insert(s))
    }

    fn log(&self) -> String {
        self.server.as_ref().map(Server::log).unwrap_or_default()
    }
}

/// What one write got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// HTTP 200, from the controller at this index (after redirects).
    Acked(Option<usize>),
    /// Another status.
    Refused(u16),
    /// No answer: refused connection, reset, timeout.
    Unreached,
}

/// One write: when it was sent and answered, and what it got.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    sent: Instant,
    done: Instant,
    answer: Answer,
}

/// The writing client, on a thread of its own; every attempt is kept.
struct Client {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Client {
    fn start(urls: [String; 2], token: String) -> anyhow::Result<Client> {
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let (flag, attempts) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let alarms = urls.clone().map(|u| format!("{u}/v1/alarms"));
            let prefixes = urls.map(|u| format!("{u}/"));
            let (mut at, mut i) = (0usize, 0u64);
            while !flag.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let r = http
                    .post(&alarms[at])
                    .header("X-Auth-Token", &token)
                    .header("Content-Type", "application/json")
                    .body(crate::load::set_clear_body(0, i))
                    .send();
                let answer = match r {
                    Ok(resp) if resp.status().as_u16() == 200 => {
                        let by = prefixes
                            .iter()
                            .position(|p| resp.url().as_str().starts_with(p.as_str()));
                        let _ = resp.bytes();
                        Answer::Acked(by)
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes();
                        Answer::Refused(status)
                    }
                    Err(_) => Answer::Unreached,
                };
                let done = Instant::now();
                if let Ok(mut l) = attempts.lock() {
                    l.push(Attempt { sent, done, answer });
                }
                if matches!(answer, Answer::Acked(_)) {
                    i += 1;
                } else {
                    at = 1 - at;
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        });
        Ok(Client { stop, log, thread })
    }

    fn len(&self) -> usize {
        self.log.lock().map_or(0, |l| l.len())
    }

    /// The attempts from index `from` on.
    fn since(&self, from: usize) -> Vec<Attempt> {
        self.log
            .lock()
            .map(|l| l.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    /// Waits for `d` of writes, up to 30 s for at least one acknowledged.
    fn steady(&self, d: Duration) -> anyhow::Result<()> {
        let from = self.len();
        std::thread::sleep(d);
        wait_for(30, || {
            self.since(from)
                .iter()
                .any(|a| matches!(a.answer, Answer::Acked(_)))
                .then_some(())
        })
        .ok_or_else(|| anyhow::anyhow!("no write acknowledged for 30 s"))
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// What one switch-over measured.
struct Switch {
    /// Signal to the first write acknowledged by the other controller.
    took: Duration,
    /// Signal to the other controller logging that it took the lease (as
    /// this benchmark saw the line, polling every 5 ms).
    lease: Option<Duration>,
    /// Signal to the old process's exit (SIGTERM only).
    exited: Option<Duration>,
    /// Writes answered, over that time, with no answer / another status.
    unreached: usize,
    refused: usize,
    /// Writes sent after the signal and acknowledged by the stopping controller.
    acked_by_old: usize,
    /// Acknowledged writes per second over [`STEADY`] before the signal.
    rate: f64,
    /// Share of the switch-over in which some task waited for IO (PSI), %.
    io_pressure: Option<f64>,
}

/// The trials of one kind.
struct Trials {
    kind: Kind,
    switches: Vec<Switch>,
}

/// Kills or stops controller `active` and waits for the other to
/// acknowledge a write.
fn switch_over(
    ctl: &mut [Controller; 2],
    active: usize,
    kind: Kind,
    client: &Client,
) -> anyhow::Result<Switch> {
    let new = 1 - active;
    let before = client.len();
    let mut victim = ctl[active]
        .server
        .take()
        .ok_or_else(|| anyhow::anyhow!("{} is not running", ctl[active].name))?;
    // A process that stepped down and came back logs it again.
    let taken = |c: &Controller| c.log().matches(TOOK_LEASE).count();
    let taken_before = taken(&ctl[new]);
    let io0 = crate::procfs::io_stall_micros();
    let t0 = Instant::now();
    let stopper = match kind {
        Kind::Kill9 => {
            victim.kill9();
            None
        }
        Kind::Term => Some(std::thread::spawn(move || {
            victim.terminate();
            Instant::now()
        })),
    };
    let mut lease = None;
    let acked = loop {
        if lease.is_none() && taken(&ctl[new]) > taken_before {
            lease = Some(t0.elapsed());
        }
        let seen = client.since(before);
        if let Some(a) = seen
            .iter()
            .find(|a| a.done > t0 && a.answer == Answer::Acked(Some(new)))
        {
            break *a;
        }
        anyhow::ensure!(
            t0.elapsed() < SWITCH_TIMEOUT,
            "no write acknowledged by {} {} s after the signal; its log ends:\n{}",
            ctl[new].name,
            SWITCH_TIMEOUT.as_secs(),
            tail(&ctl[new].log(), 30)
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let io_pressure = crate::procfs::io_pressure_since(io0, t0.elapsed().as_secs_f64());
    let exited = match stopper {
        Some(h) => h.join().ok().map(|at| at.saturating_duration_since(t0)),
        None => None,
    };
    if lease.is_none() && taken(&ctl[new]) > taken_before {
        lease = Some(t0.elapsed());
    }
    let all = client.since(0);
    let rate = all
        .iter()
        .filter(|a| matches!(a.answer, Answer::Acked(_)) && a.done < t0 && a.done + STEADY >= t0)
        .count() as f64
        / STEADY.as_secs_f64();
    let during: Vec<&Attempt> = all[before.min(all.len())..]
        .iter()
        .filter(|a| a.done > t0 && a.done <= acked.done)
        .collect();
    Ok(Switch {
        took: acked.done - t0,
        lease,
        exited,
        unreached: during
            .iter()
            .filter(|a| a.answer == Answer::Unreached)
            .count(),
        refused: during
            .iter()
            .filter(|a| matches!(a.answer, Answer::Refused(_)))
            .count(),
        acked_by_old: during
            .iter()
            .filter(|a| a.sent >= t0 && a.answer == Answer::Acked(Some(active)))
            .count(),
        rate,
        io_pressure,
    })
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until the controller at `url` redirects API requests (307): a standby.
fn wait_standby(url: &str) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(2))
        .build()?;
    wait_for(30, || {
        let r = http.get(format!("{url}/v1/alarms")).send().ok()?;
        (r.status().as_u16() == 307).then_some(())
    })
    .ok_or_else(|| anyhow::anyhow!("{url} does not redirect: not a standby"))
}

/// Waits (up to 30 s) until one of the controllers answers API requests
/// itself (any status but 307 or 503, which a standby gives): the active.
fn find_active(ctl: &[Controller; 2]) -> anyhow::Result<usize> {
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(2))
        .build()?;
    let active = |url: &str| {
        http.get(format!("{url}/v1/alarms"))
            .send()
            .is_ok_and(|r| !matches!(r.status().as_u16(), 307 | 503))
    };
    wait_for(30, || (0..2).find(|&i| active(&ctl[i].url)))
        .ok_or_else(|| anyhow::anyhow!("neither controller is active"))
}

/// Runs the benchmark and prints its table; returns the trials that
/// failed (the writes that failed during switch-overs are expected and
/// only reported).
pub fn run(plan: &Plan, trials: usize) -> anyhow::Result<u64> {
    let server = plan
        .postgres
        .clone()
        .map_err(|why| anyhow::anyhow!("failover needs PostgreSQL: {why}"))?;
    // Dropped last, after the controllers.
    let db = crate::pg::Database::create(&server)?;
    let store = db.url.clone();
    eprintln!(
        "failover: {trials} trials of each kind, two controllers on {store}, [ha] lease_ms = {LEASE_MS}"
    );
    let dir = tempfile::tempdir()?;
    let mut ctl = [
        Controller::new(dir.path(), "controller-0")?,
        Controller::new(dir.path(), "controller-1")?,
    ];
    plan.settle();
    let c0 = ctl[0].start(plan, &store)?;
    anyhow::ensure!(
        c0.log().contains("this server is the active controller"),
        "controller-0 is not active:\n{}",
        c0.log()
    );
    let token = c0.token();
    // The second controller seals with the same data key.
    std::fs::create_dir_all(&ctl[1].data)?;
    std::fs::copy(
        ctl[0].data.join("secret.key"),
        ctl[1].data.join("secret.key"),
    )?;
    ctl[1].start(plan, &store)?;
    wait_standby(&ctl[1].url)?;
    let client = Client::start([ctl[0].url.clone(), ctl[1].url.clone()], token)?;
    let mut kinds = [
        Trials {
            kind: Kind::Kill9,
            switches: Vec::new(),
        },
        Trials {
            kind: Kind::Term,
            switches: Vec::new(),
        },
    ];
    let mut active = 0;
    let mut failures = 0;
    let mut unasked = 0;
    let mut jitter = Jitter::new();
    'trials: for n in 0..trials {
        for k in kinds.iter_mut() {
            if let Err(e) = client.steady(STEADY) {
                eprintln!("  failover: {e:#}");
                failures += 1;
                break 'trials;
            }
            // An active that cannot renew its lease in time steps down by itself.
            match find_active(&ctl) {
                Ok(a) if a == active => {}
                Ok(a) => {
                    eprintln!(
                        "  the roles changed between trials: {} is active now (a switch-over \
                         nobody asked for; its log: {:?})",
                        ctl[a].name,
                        ctl[active]
                            .log()
                            .lines()
                            .filter(|l| l.contains("stepping down"))
                            .collect::<Vec<_>>()
                    );
                    unasked += 1;
                    active = a;
                    client.steady(STEADY).ok();
                }
                Err(e) => {
                    eprintln!("  failover: {e:#}");
                    failures += 1;
                    break 'trials;
                }
            }
            // The trials' own rhythm must not fix the phase of the signal
            // against the active's renewals.
            std::thread::sleep(jitter.next(PHASE));
            match switch_over(&mut ctl, active, k.kind, &client) {
                Ok(s) => {
                    eprintln!(
                        "  trial {} ({}, {} -> {}): {} ms to the first acknowledged write, lease taken \
                         at {} ms, {} writes unanswered, {} refused, {} acknowledged by the old one{}, \
                         IO pressure {}",
                        n + 1,
                        k.kind.label(),
                        ctl[active].name,
                        ctl[1 - active].name,
                        ms(s.took),
                        s.lease.map_or("?".into(), ms),
                        s.unreached,
                        s.refused,
                        s.acked_by_old,
                        s.exited
                            .map_or(String::new(), |e| format!(", it exited at {} ms", ms(e))),
                        s.io_pressure.map_or("?".into(), |p| format!("{p:.0} %"))
                    );
                    k.switches.push(s);
                }
                Err(e) => {
                    eprintln!("  trial {} ({}) failed: {e:#}", n + 1, k.kind.label());
                    failures += 1;
                    break 'trials;
                }
            }
            // The stopped controller comes back, as a standby; nor may it fix
            // the phase of its looks at the lease against the renewals.
            std::thread::sleep(jitter.next(PHASE));
            let old = active;
            active = 1 - active;
            let restarted = ctl[old].start(plan, &store).map(|_| ()).and_then(|()| {
                wait_standby(&ctl[old].url)?;
                anyhow::ensure!(
                    ctl[old]
                        .log()
                        .contains("standby: another controller is active"),
                    "{} did not come back as a standby:\n{}",
                    ctl[old].name,
                    tail(&ctl[old].log(), 30)
                );
                Ok(())
            });
            if let Err(e) = restarted {
                eprintln!(
                    "  failover: {e:#}\n  {}'s log ends:\n{}\n  {}'s log ends:\n{}",
                    ctl[old].name,
                    tail(&ctl[old].log(), 30),
                    ctl[active].name,
                    tail(&ctl[active].log(), 30)
                );
                failures += 1;
                break 'trials;
            }
        }
    }
    client.finish();
    emit(&render(&kinds, trials, unasked));
    Ok(failures)
}

/// "p50 % (max %)" of some percentages, "—" when there are none.
fn pct_p50_max(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    match (v.get(v.len().saturating_sub(1) / 2), v.last()) {
        (Some(m), Some(x)) => format!("{m:.0} % ({x:.0} %)"),
        _ => "—".into(),
    }
}

fn render(kinds: &[Trials], trials: usize, unasked: usize) -> String {
    let mut out = String::from("### Controller switch-over on PostgreSQL\n\n");
    out.push_str(&format!(
        "Two controllers on one new database of the local PostgreSQL server, `[ha] lease_ms = \
         {LEASE_MS}` (the default: the active renews the lease every {} ms, the standby looks at it \
         every {} ms). One client writes alarms one after another (a set, then a clear, of a new \
         entity each pair) through either controller's address, following redirects; after a write \
         that is not acknowledged it waits {} ms and sends it to the other address. Each trial \
         kills (`kill -9`) or stops (SIGTERM) the active controller after {} s of writes and a \
         random pause of up to {} ms (so that the signal falls at any point of the active's \
         renewals; the stopped controller is started again after another such pause, so that \
         its looks at the lease fall at any point too), and \
         measures from the signal to the first write acknowledged (HTTP 200) by the other \
         controller; then the stopped one is started again and comes up as a standby, so the \
         roles alternate. {trials} {} of each kind, alternating. Times in ms; the target is \
         checked against the slowest trial.\n\n",
        LEASE_MS / 4,
        LEASE_MS / 4,
        RETRY_PAUSE.as_millis(),
        STEADY.as_secs_f64(),
        PHASE.as_millis(),
        if trials == 1 { "trial" } else { "trials" },
    ));
    let mut t = Table::new(&[
        "switch-over",
        ">trials",
        ">p50",
        ">p99",
        ">min",
        ">max",
        "target < 2 s",
        ">lease taken, p50",
        ">old process exited, p50",
        ">failed writes per switch-over, p50 (max)",
        ">unanswered / refused, all trials",
        ">acked by the stopping one",
        ">IO pressure, p50 (max)",
    ]);
    // The median of some samples, "—" when there are none.
    let p50 = |v: Vec<Duration>| {
        if v.is_empty() {
            "—".to_string()
        } else {
            ms(Dist::new(v).pct(50.0))
        }
    };
    for k in kinds {
        let d = Dist::new(k.switches.iter().map(|s| s.took).collect());
        let failed: Vec<usize> = k.switches.iter().map(|s| s.unreached + s.refused).collect();
        let mut sorted = failed.clone();
        sorted.sort_unstable();
        let median = sorted.get(sorted.len().saturating_sub(1) / 2).copied();
        t.row(vec![
            k.kind.label().to_string(),
            k.switches.len().to_string(),
            ms(d.pct(50.0)),
            ms(d.pct(99.0)),
            ms(d.min()),
            ms(d.max()),
            if k.switches.is_empty() {
                "—".into()
            } else {
                crate::met(d.max() < TARGET).to_string()
            },
            p50(k.switches.iter().filter_map(|s| s.lease).collect()),
            p50(k.switches.iter().filter_map(|s| s.exited).collect()),
            median.map_or("—".into(), |m| {
                format!("{m} ({})", sorted.last().copied().unwrap_or(0))
            }),
            format!(
                "{} / {}",
                k.switches.iter().map(|s| s.unreached).sum::<usize>(),
                k.switches.iter().map(|s| s.refused).sum::<usize>()
            ),
            k.switches
                .iter()
                .map(|s| s.acked_by_old)
                .sum::<usize>()
                .to_string(),
            pct_p50_max(k.switches.iter().filter_map(|s| s.io_pressure).collect()),
        ]);
    }
    out.push_str(&t.render());
    let mut rates: Vec<f64> = kinds
        .iter()
        .flat_map(|k| k.switches.iter())
        .map(|s| s.rate)
        .collect();
    rates.sort_by(f64::total_cmp);
    let rate = rates
        .get(rates.len().saturating_sub(1) / 2)
        .map_or("—".into(), |r| format!("{r:.0}/s"));
    out.push_str(&format!(
        "\nLease length: {LEASE_MS} ms. Writes acknowledged per second in the {} s before each \
         signal: p50 {rate}. \"Lease taken\" is when the other controller's log said it took \
         the lease, as this benchmark saw the line (polled every 5 ms). \"Failed writes\" are the \
         client's writes that were not acknowledged between the signal and the first \
         acknowledged one, the one in flight at the signal included: no answer (refused or reset \
         connection, or a redirect to the dead controller) or an answer other than 200; the \
         client sends each again, so none is lost, and their number depends on its {} ms pause. \
         \"Acked by the stopping one\" counts writes sent after the signal that the stopping \
         controller still acknowledged. \"IO pressure\" is the share of each switch-over in \
         which some task on the machine waited for the disk (Linux PSI): taking the lease \
         commits to PostgreSQL, which waits for its WAL to reach the disk. The SIGTERM is sent by `kill(1)`, started at the measured signal time.\n",
        STEADY.as_secs_f64(),
        RETRY_PAUSE.as_millis(),
    ));
    out.push_str(&format!(
        "\nSwitch-overs nobody asked for (before a trial, the other controller was the active \
         one: the active had stepped down by itself, its lease not renewed in time): {unasked}. \
         StarlingX publishes no switch-over (swact) time; its maintenance gives up on a swact \
         after 120 s.\n"
    ));
    out
}

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

/// Duplex: how long the active's commits go on waiting for a replica
/// that stopped streaming (`[ha] sync_grace_ms`).
const SYNC_GRACE_MS: u64 = 5000;

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

/// Where the two controllers keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mode 2: one database of the benchmarks' PostgreSQL server, shared.
    Shared,
    /// Mode 3, duplex: each controller runs its own PostgreSQL (`store =
    /// "duplex"`), the active's the primary, the standby's a streaming
    /// replica with synchronous commits; a standby that finds the active
    /// lost fences it through its BMC before promoting its replica.
    Duplex,
}

/// What a duplex controller logs when its BMC request powered the peer off.
const FENCED: &str = "fenced the peer controller";
/// What a duplex controller logs when its replica became the primary.
const PROMOTED: &str = "promoted this controller's replica";
/// The simulated BMCs' user and password (`[ha] peer_bmc_username`, `_password_file`).
const BMC_USER: &str = "admin";
const BMC_PASSWORD: &str = "roost-bench-bmc-password";

/// The process group of process `pid` (`/proc/<pid>/stat`), if it runs.
fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(2)?.parse().ok()
}

/// `kill -9` of whole process groups (never this benchmark's own).
fn kill_groups(groups: &[u32]) {
    let own = pgid_of(std::process::id());
    let args: Vec<String> = groups
        .iter()
        .filter(|&&g| g > 1 && Some(g) != own)
        .map(|g| format!("-{g}"))
        .collect();
    if !args.is_empty() {
        let _ = std::process::Command::new("kill")
            .args(["-9", "--"])
            .args(&args)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A simulated Redfish BMC (`roost sim bmc`) whose host is `sleep
/// infinity`: the machine a duplex controller runs on, as its peer sees it.
/// Its peer powers it off to fence it; the benchmark kills the controller's
/// processes itself, and powers the machine on again before starting the
/// controller again.
struct BmcSim {
    child: std::process::Child,
    url: String,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl BmcSim {
    fn start(bin: &Path, password_file: &Path) -> anyhow::Result<BmcSim> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin)
            .args([
                "sim",
                "bmc",
                "--listen",
                "127.0.0.1:0",
                "--username",
                BMC_USER,
            ])
            .arg("--password-file")
            .arg(password_file)
            .args(["--", "sleep", "infinity"])
            .env_remove("ROOST_BMC_PASSWORD")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let mut out = std::io::BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
        );
        let mut line = String::new();
        out.read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("roost sim bmc ready on ") else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("roost sim bmc did not start: {line:?}");
        };
        Ok(BmcSim {
            url: url.to_string(),
            child,
            _stdout: out,
        })
    }

    /// Powers the machine on (a no-op when it is on).
    fn power_on(&self) -> anyhow::Result<()> {
        let r = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?
            .post(format!(
                "{}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                self.url
            ))
            .basic_auth(BMC_USER, Some(BMC_PASSWORD))
            .json(&serde_json::json!({"ResetType": "On"}))
            .send()?;
        anyhow::ensure!(
            r.status().is_success(),
            "BMC {}: power on: {}",
            self.url,
            r.status()
        );
        Ok(())
    }
}

impl Drop for BmcSim {
    fn drop(&mut self) {
        // SIGTERM: the BMC kills its host on the way out.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One controller: where it lives and, while it runs, its process.
struct Controller {
    name: String,
    data: PathBuf,
    config: PathBuf,
    listen: String,
    url: String,
    /// Duplex: its PostgreSQL's address (`[ha] db_listen`).
    db: Option<String>,
    /// Duplex: the BMC of the machine it runs on.
    bmc: Option<BmcSim>,
    server: Option<Server>,
}

/// A free port on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Controller {
    fn new(dir: &Path, name: &str, mode: Mode) -> anyhow::Result<Controller> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        Ok(Controller {
            name: name.to_string(),
            data: dir.join(name),
            config: dir.join(format!("{name}.toml")),
            url: format!("http://{listen}"),
            listen,
            db: match mode {
                Mode::Shared => None,
                Mode::Duplex => Some(format!("127.0.0.1:{}", free_port()?)),
            },
            bmc: None,
            server: None,
        })
    }

    /// Starts the server (again) on its data directory, store and port,
    /// with `bin` (duplex: a wrapper that makes it a process group leader).
    fn start(&mut self, bin: &Path, store: &str) -> anyhow::Result<&Server> {
        let s = Server::start_in(
            bin,
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
        if self.db.is_some() {
            let pid = s.pid();
            anyhow::ensure!(
                pgid_of(pid) == Some(pid),
                "{} (pid {pid}) is not the leader of a process group of its own",
                self.name
            );
        }
        Ok(self.server.insert(s))
    }

    fn log(&self) -> String {
        self.server.as_ref().map(Server::log).unwrap_or_default()
    }

    /// Duplex: the process groups of everything this controller's machine
    /// runs: the server's (it leads one, its PostgreSQL started in it), and
    /// that of the postmaster running on its data directory, which an
    /// earlier, stopped server process started.
    fn host_groups(&self) -> Vec<u32> {
        if self.db.is_none() {
            return Vec::new();
        }
        let mut groups: Vec<u32> = self.server.iter().map(Server::pid).collect();
        let data = self.data.join("pgsql/data");
        let postmaster = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
        if let Some(pid) = postmaster {
            // The file outlives a killed postmaster: the pid must still be
            // a postgres on this data directory.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("postgres")
                && cmdline.contains(&*data.to_string_lossy())
                && let Some(g) = pgid_of(pid)
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
        groups
    }

    /// The last `n` lines of its PostgreSQL log (duplex), for reports.
    fn db_log(&self, n: usize) -> String {
        let text =
            std::fs::read_to_string(self.data.join("pgsql/postgresql.log")).unwrap_or_default();
        tail(&text, n)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        // Duplex: its PostgreSQL too, wherever it runs.
        kill_groups(&self.host_groups());
        if let Some(mut s) = self.server.take() {
            s.kill9();
        }
    }
}

/// Two controllers on one store, controller-0 active and controller-1 its
/// standby (duplex: its replica streaming synchronously) once started.
pub struct Pair {
    /// Dropped first: the servers, and in duplex their PostgreSQL and BMCs.
    ctl: [Controller; 2],
    pub mode: Mode,
    /// What the servers are started with: the roost binary (duplex: a
    /// wrapper that starts it as a process group leader).
    bin: PathBuf,
    /// `--store`: the shared database's URL, or none in duplex.
    store: String,
    /// Duplex: the password of the controllers' databases.
    db_password: String,
    /// An admin token, good on both.
    pub token: String,
    /// Mode 2: the shared database, dropped after the controllers.
    _db: Option<crate::pg::Database>,
    _dir: tempfile::TempDir,
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

impl Pair {
    /// Starts controller-0 (it becomes active; duplex: it creates its
    /// database), then controller-1 with a copy of its `secret.key` (it
    /// becomes the standby; duplex: it copies controller-0's database and
    /// streams from it), and waits until controller-1 is a ready standby.
    pub fn start(plan: &Plan, mode: Mode) -> anyhow::Result<Pair> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let mut ctl = [
            Controller::new(dir.path(), "controller-0", mode)?,
            Controller::new(dir.path(), "controller-1", mode)?,
        ];
        let mut db = None;
        let mut db_password = String::new();
        let (bin, store) = match mode {
            Mode::Shared => {
                let server = plan
                    .postgres
                    .clone()
                    .map_err(|why| anyhow::anyhow!("failover needs PostgreSQL: {why}"))?;
                let made = crate::pg::Database::create(&server)?;
                let store = made.url.clone();
                db = Some(made);
                for c in &ctl {
                    std::fs::write(
                        &c.config,
                        format!("hostname = \"{}\"\n[ha]\nlease_ms = {LEASE_MS}\n", c.name),
                    )?;
                }
                (plan.bin.clone(), store)
            }
            Mode::Duplex => {
                // PostgreSQL runs as `postgres` when this runs as root: it
                // must get through to the data directories.
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
                let seed = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                db_password = format!("{:032x}", seed ^ (u128::from(std::process::id()) << 64));
                let db_password_file = dir.path().join("db-password");
                write_private(&db_password_file, &db_password)?;
                let bmc_password_file = dir.path().join("bmc-password");
                write_private(&bmc_password_file, BMC_PASSWORD)?;
                for c in ctl.iter_mut() {
                    c.bmc = Some(BmcSim::start(&plan.bin, &bmc_password_file)?);
                }
                for i in 0..2 {
                    let (me, peer) = (&ctl[i], &ctl[1 - i]);
                    let peer_bmc = peer.bmc.as_ref().map(|b| b.url.clone()).unwrap_or_default();
                    std::fs::write(
                        &me.config,
                        format!(
                            "hostname = \"{name}\"\nsystem_mode = \"duplex\"\nstore = \"duplex\"\n\
                             data_dir = \"{data}\"\nlisten = \"{listen}\"\n\
                             [ha]\nname = \"{name}\"\nurl = \"{url}\"\nlease_ms = {LEASE_MS}\n\
                             peer = \"{peer}\"\ndb_listen = \"{db}\"\npeer_db = \"{peer_db}\"\n\
                             db_password_file = \"{dbpw}\"\npeer_bmc = \"{peer_bmc}\"\n\
                             peer_bmc_username = \"{BMC_USER}\"\n\
                             peer_bmc_password_file = \"{bmcpw}\"\nbootstrap = {bootstrap}\n\
                             sync_grace_ms = {SYNC_GRACE_MS}\n[apps]\nlocal_runtime = false\n",
                            name = me.name,
                            data = me.data.display(),
                            listen = me.listen,
                            url = me.url,
                            peer = peer.name,
                            db = me.db.as_deref().unwrap_or_default(),
                            peer_db = peer.db.as_deref().unwrap_or_default(),
                            dbpw = db_password_file.display(),
                            bmcpw = bmc_password_file.display(),
                            bootstrap = i == 0,
                        ),
                    )?;
                }
                // The server leads a process group of its own, which its
                // PostgreSQL joins: killing the group is losing the machine.
                let wrapper = dir.path().join("roost-setsid");
                std::fs::write(
                    &wrapper,
                    format!("#!/bin/sh\nexec setsid '{}' \"$@\"\n", plan.bin.display()),
                )?;
                std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
                (wrapper, roost_test_support::EMBEDDED_STORE.to_string())
            }
        };
        let mut pair = Pair {
            ctl,
            mode,
            bin,
            store,
            db_password,
            token: String::new(),
            _db: db,
            _dir: dir,
        };
        plan.settle();
        pair.ctl[0].start(&pair.bin, &pair.store)?;
        anyhow::ensure!(
            find_active(&pair.ctl)? == 0,
            "controller-0 is not active:\n{}",
            tail(&pair.ctl[0].log(), 30)
        );
        pair.token = pair.ctl[0]
            .server
            .as_ref()
            .map(Server::token)
            .unwrap_or_default();
        // The second controller seals with the same data key.
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&pair.ctl[1].data)?;
        }
        let key = pair.ctl[1].data.join("secret.key");
        std::fs::copy(pair.ctl[0].data.join("secret.key"), &key)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        pair.restart(1, 0)?;
        Ok(pair)
    }

    /// The running server of controller `i`.
    pub fn server(&self, i: usize) -> anyhow::Result<&Server> {
        self.ctl[i]
            .server
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{} is not running", self.ctl[i].name))
    }

    /// Controller `i`'s log (this process of it).
    pub fn log(&self, i: usize) -> String {
        self.ctl[i].log()
    }

    /// How many times controller `i`'s log says it took the lease, and
    /// that it stepped down (its lease not renewed in time).
    pub fn lease_changes(&self, i: usize) -> (usize, usize) {
        let log = self.ctl[i].log();
        (
            log.matches(TOOK_LEASE).count(),
            log.matches("stepping down").count(),
        )
    }

    /// Duplex: `postgres://` URL of controller `i`'s database.
    pub fn db_url(&self, i: usize) -> Option<String> {
        self.ctl[i].db.as_ref().map(|db| {
            format!(
                "postgres://roost:{}@{db}/roost?sslmode=disable&connect_timeout=3",
                self.db_password
            )
        })
    }

    /// Duplex: the replicas controller `i`'s database streams to, as
    /// `application_name state sync_state` (`pg_stat_replication`).
    pub fn replication(&self, i: usize) -> anyhow::Result<Vec<String>> {
        let db = self.ctl[i]
            .db
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("not duplex"))?;
        let seen =
            roost_store::cluster::inspect(db.parse()?, &self.db_password, Duration::from_secs(5))?;
        Ok(seen
            .replicas
            .into_iter()
            .map(|r| format!("{} {} {}", r.name, r.state, r.sync_state))
            .collect())
    }

    /// Starts controller `i` (again) and waits until it is the standby of
    /// controller `active`: it redirects to it, and (mode 2) it logged so,
    /// or (duplex) `active`'s database streams to its replica synchronously.
    fn restart(&mut self, i: usize, active: usize) -> anyhow::Result<()> {
        let ctl = &mut self.ctl[i];
        if let Some(bmc) = &ctl.bmc {
            // The machine the peer fenced is powered on again.
            bmc.power_on()?;
        }
        ctl.start(&self.bin, &self.store)?;
        wait_standby(&ctl.url)?;
        match self.mode {
            Mode::Shared => anyhow::ensure!(
                ctl.log().contains("standby: another controller is active"),
                "{} did not come back as a standby:\n{}",
                ctl.name,
                tail(&ctl.log(), 30)
            ),
            Mode::Duplex => {
                let mut seen = Vec::new();
                wait_for(60, || {
                    seen = self.replication(active).unwrap_or_default();
                    seen.iter()
                        .any(|r| r.ends_with(" streaming sync"))
                        .then_some(())
                })
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}'s database does not stream to {} synchronously within 60 s \
                         (pg_stat_replication: {seen:?}); {}'s PostgreSQL log ends:\n{}",
                        self.ctl[active].name,
                        self.ctl[i].name,
                        self.ctl[i].name,
                        self.ctl[i].db_log(20)
                    )
                })?;
            }
        }
        Ok(())
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
    /// Duplex: signal to the other controller logging that its BMC request
    /// powered the old one off, and that its replica was promoted.
    fenced: Option<Duration>,
    promoted: Option<Duration>,
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
    // Duplex: the machine's death is its processes' (the server and its
    // PostgreSQL); its BMC, which the other one fences through, stays up.
    let host = ctl[active].host_groups();
    let mut victim = ctl[active]
        .server
        .take()
        .ok_or_else(|| anyhow::anyhow!("{} is not running", ctl[active].name))?;
    // A process that stepped down and came back logs it again.
    let count = |c: &Controller, line: &str| c.log().matches(line).count();
    let taken = |c: &Controller| count(c, TOOK_LEASE);
    let taken_before = taken(&ctl[new]);
    let fenced_before = count(&ctl[new], FENCED);
    let promoted_before = count(&ctl[new], PROMOTED);
    let (mut fenced, mut promoted) = (None, None);
    let io0 = crate::procfs::io_stall_micros();
    let t0 = Instant::now();
    let stopper = match kind {
        Kind::Kill9 => {
            kill_groups(&host);
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
        if fenced.is_none() && count(&ctl[new], FENCED) > fenced_before {
            fenced = Some(t0.elapsed());
        }
        if promoted.is_none() && count(&ctl[new], PROMOTED) > promoted_before {
            promoted = Some(t0.elapsed());
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
    if fenced.is_none() && count(&ctl[new], FENCED) > fenced_before {
        fenced = Some(t0.elapsed());
    }
    if promoted.is_none() && count(&ctl[new], PROMOTED) > promoted_before {
        promoted = Some(t0.elapsed());
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
        fenced,
        promoted,
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
pub fn run(plan: &Plan, trials: usize, mode: Mode) -> anyhow::Result<u64> {
    eprintln!(
        "failover: {trials} trials of each kind, two controllers {}, [ha] lease_ms = {LEASE_MS}",
        match mode {
            Mode::Shared => "on one PostgreSQL database",
            Mode::Duplex => "in duplex, each with its own PostgreSQL",
        }
    );
    let mut pair = Pair::start(plan, mode)?;
    let client = Client::start(
        [pair.ctl[0].url.clone(), pair.ctl[1].url.clone()],
        pair.token.clone(),
    )?;
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
            match find_active(&pair.ctl) {
                Ok(a) if a == active => {}
                Ok(a) => {
                    eprintln!(
                        "  the roles changed between trials: {} is active now (a switch-over \
                         nobody asked for; its log: {:?})",
                        pair.ctl[a].name,
                        pair.ctl[active]
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
            match switch_over(&mut pair.ctl, active, k.kind, &client) {
                Ok(s) => {
                    eprintln!(
                        "  trial {} ({}, {} -> {}): {} ms to the first acknowledged write, lease taken \
                         at {} ms, {} writes unanswered, {} refused, {} acknowledged by the old one{}, \
                         IO pressure {}{}",
                        n + 1,
                        k.kind.label(),
                        pair.ctl[active].name,
                        pair.ctl[1 - active].name,
                        ms(s.took),
                        s.lease.map_or("?".into(), ms),
                        s.unreached,
                        s.refused,
                        s.acked_by_old,
                        s.exited
                            .map_or(String::new(), |e| format!(", it exited at {} ms", ms(e))),
                        s.io_pressure.map_or("?".into(), |p| format!("{p:.0} %")),
                        match mode {
                            Mode::Shared => String::new(),
                            Mode::Duplex => format!(
                                ", fenced at {} ms, promoted at {} ms",
                                s.fenced.map_or("-".into(), ms),
                                s.promoted.map_or("-".into(), ms)
                            ),
                        }
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
            let restarted = pair.restart(old, active);
            if let Err(e) = restarted {
                eprintln!(
                    "  failover: {e:#}\n  {}'s log ends:\n{}\n  {}'s log ends:\n{}",
                    pair.ctl[old].name,
                    tail(&pair.ctl[old].log(), 30),
                    pair.ctl[active].name,
                    tail(&pair.ctl[active].log(), 30)
                );
                failures += 1;
                break 'trials;
            }
        }
    }
    client.finish();
    drop(pair);
    emit(&render(&kinds, trials, unasked, mode));
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

fn render(kinds: &[Trials], trials: usize, unasked: usize, mode: Mode) -> String {
    let mut out = String::from(match mode {
        Mode::Shared => "### Controller switch-over on PostgreSQL\n\n",
        Mode::Duplex => "### Controller switch-over in duplex (mode 3)\n\n",
    });
    if mode == Mode::Duplex {
        out.push_str(&format!(
            "Two duplex controllers (`store = \"duplex\"`), each running its own PostgreSQL under \
             its data directory: the active's is the primary, the standby's a streaming replica, \
             and each commit waits for the replica's flush while it streams \
             (`[ha] sync_grace_ms = {SYNC_GRACE_MS}`). Each controller's machine is a simulated \
             Redfish BMC (`roost sim bmc`, its host a placeholder process) that the other \
             controller fences through (`[ha] peer_bmc`). A `kill -9` trial kills the \
             active's server and its PostgreSQL (their process groups) at once, as the \
             machine's death: the standby waits one lease length, powers the machine off \
             through its BMC, promotes its replica and takes the lease. A SIGTERM trial stops the \
             active server: it gives the lease up and turns its database into a replica of the \
             peer's, which promotes without fencing. Before each restart the killed \
             controller's machine is powered on again through its BMC; it copies the new \
             active's database again (`pg_basebackup`) when it was killed, and the next trial \
             waits until the new active's database streams to it synchronously \
             (`pg_stat_replication.sync_state = sync`).\n\n"
        ));
    }
    out.push_str(&format!(
        "{}, `[ha] lease_ms = {LEASE_MS}` (the default: the active renews the lease every {} ms, the standby looks at it \
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
        match mode {
            Mode::Shared => "Two controllers on one new database of the local PostgreSQL server",
            Mode::Duplex => "The two controllers",
        },
        LEASE_MS / 4,
        LEASE_MS / 4,
        RETRY_PAUSE.as_millis(),
        STEADY.as_secs_f64(),
        PHASE.as_millis(),
        if trials == 1 { "trial" } else { "trials" },
    ));
    let mut columns = vec![
        "switch-over",
        ">trials",
        ">p50",
        ">p99",
        ">min",
        ">max",
        "target < 2 s",
    ];
    if mode == Mode::Duplex {
        columns.extend([">peer fenced, p50", ">replica promoted, p50"]);
    }
    columns.extend([
        ">lease taken, p50",
        ">old process exited, p50",
        ">failed writes per switch-over, p50 (max)",
        ">unanswered / refused, all trials",
        ">acked by the stopping one",
        ">IO pressure, p50 (max)",
    ]);
    let mut t = Table::new(&columns);
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
        let mut row = vec![
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
        ];
        if mode == Mode::Duplex {
            row.extend([
                p50(k.switches.iter().filter_map(|s| s.fenced).collect()),
                p50(k.switches.iter().filter_map(|s| s.promoted).collect()),
            ]);
        }
        row.extend([
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
        t.row(row);
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
    if mode == Mode::Duplex {
        out.push_str(
            "\n\"Peer fenced\" and \"replica promoted\" are when the other controller's log said \
             its BMC request powered the old one's machine off, and that its replica became the \
             primary (same polling). The `kill -9` is sent by `kill(1)` to the process groups \
             of the server and of its PostgreSQL at once.\n",
        );
    }
    out.push_str(&format!(
        "\nSwitch-overs nobody asked for (before a trial, the other controller was the active \
         one: the active had stepped down by itself, its lease not renewed in time): {unasked}. \
         StarlingX publishes no switch-over (swact) time; its maintenance gives up on a swact \
         after 120 s.\n"
    ));
    out
}

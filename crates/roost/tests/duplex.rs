//! Duplex controllers without an external database, end to end: two
//! controllers, each on a simulated machine behind its own Redfish BMC
//! (`roost_sim::Bmc`, whose host is the controller's `roost server`), each
//! running its own PostgreSQL (the active's the primary, the standby's a
//! streaming replica). The active's machine is lost (its process group
//! killed with `kill -9`, or stopped with SIGSTOP) under a write load: the
//! standby powers it off through its BMC, then promotes its replica and
//! becomes active; every acknowledged write is there. Without a reachable
//! BMC the standby does not promote and says why. A fenced controller that
//! is powered on again comes back as the standby.
//!
//! Without BMCs in the controllers' settings, a witness (`roost witness`,
//! a real process) fences instead: the standby takes the controllers'
//! lease there once the lost active's has expired; with the witness gone
//! the standby does not promote, and says why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use roost_sim::{Bmc, BmcConfig, PowerState, ResetType};
use roost_test_support::{
    AlarmLoad, Api, Netns, PASSWORD, admin_api, ip, missing_alarms, require_or_skip, wait_for,
};
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// Debian's PostgreSQL, which duplex controllers run themselves.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The BMCs' password (both BMCs take the same one).
const BMC_PASSWORD: &str = "bmc-test-password";

/// How long any one wait of these tests lasts at most.
const WAIT: u64 = 60;

/// PostgreSQL's binaries are there; a strict run fails without them.
fn postgres_binaries() -> bool {
    let there = ["postgres", "initdb", "pg_ctl", "pg_basebackup", "psql"]
        .iter()
        .all(|b| Path::new(PG_BIN).join(b).exists());
    require_or_skip(
        there,
        "Debian's PostgreSQL 15 binaries in /usr/lib/postgresql/15/bin (package postgresql-15)",
    )
}

/// `n` distinct free ports on 127.0.0.1.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Writes `content` to `path`, readable by its owner only.
fn write_secret(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// One controller: its data directory, configuration, the log of its
/// machine (the host's stdout and stderr, and the BMC's own lines), its
/// API and database addresses, and the BMC it runs behind.
struct Controller {
    name: &'static str,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    url: String,
    db: String,
    bmc: Option<Bmc>,
    /// The network namespace its machine runs in, if not the root one.
    netns: Option<String>,
}

impl Controller {
    fn bmc(&self) -> &Bmc {
        self.bmc.as_ref().expect("the controller's BMC")
    }

    /// The host's command: `roost server` on this controller's data
    /// directory, configuration and port, with the settings test-support
    /// gives the servers it starts (no resource monitor, info logs, the
    /// test admin password, none of the caller's `ROOST_*` settings).
    fn command(&self) -> Vec<String> {
        let listen = self.url.trim_start_matches("http://").to_string();
        let netns: Vec<String> = match &self.netns {
            Some(ns) => ["ip", "netns", "exec", ns.as_str()]
                .map(str::to_string)
                .to_vec(),
            None => Vec::new(),
        };
        let mut c: Vec<String> = netns;
        c.extend(
            ["env", "-u", "ROOST_STORE", "-u", "ROOST_CONFIG", "-u"]
                .into_iter()
                .chain(["ROOST_LISTEN", "-u", "ROOST_DATA_DIR"])
                .map(str::to_string),
        );
        c.push(bin().display().to_string());
        c.extend(
            [
                "server",
                "--data-dir",
                &self.data.display().to_string(),
                "--listen",
                &listen,
                "--config",
                &self.config.display().to_string(),
                "--no-monitor",
            ]
            .map(str::to_string),
        );
        // Tests speak plain HTTP, also on the namespace's address.
        if self.netns.is_some() {
            c.push("--plain-http".into());
        }
        c
    }

    fn bmc_config(&self, power_on_at_start: bool) -> BmcConfig {
        BmcConfig {
            password: BMC_PASSWORD.into(),
            command: self.command(),
            env: vec![
                ("ROOST_LOG".into(), "info".into()),
                ("ROOST_ADMIN_PASSWORD".into(), PASSWORD.into()),
            ],
            log_file: Some(self.log.clone()),
            power_on_at_start,
            ..Default::default()
        }
    }

    /// The last `n` lines of the machine's log, and of PostgreSQL's logs
    /// under the data directory.
    fn logs(&self, n: usize) -> String {
        let tail = |p: &Path| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let mut out = format!(
            "===== {} ({}), machine log {}:\n{}\n",
            self.name,
            self.url,
            self.log.display(),
            tail(&self.log)
        );
        for f in files_under(&self.data.join("pgsql"), 4) {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".log") || f.parent().is_some_and(|d| d.ends_with("log")) {
                out.push_str(&format!(
                    "----- {} PostgreSQL log {}:\n{}\n",
                    self.name,
                    f.display(),
                    tail(&f)
                ));
            }
        }
        out
    }
}

/// Regular files under `dir`, `depth` levels deep at most.
fn files_under(dir: &Path, depth: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() && depth > 0 => out.extend(files_under(&p, depth - 1)),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
    out
}

/// Two duplex controllers, each behind its own simulated BMC.
/// A `roost witness` process, as on a third host.
struct Witness {
    child: Option<std::process::Child>,
    port: u16,
    key_file: PathBuf,
    log: PathBuf,
}

/// The longest lease the test witness grants (four controller leases),
/// and how long it grants nothing after each start.
const WITNESS_MAX_LEASE_MS: u64 = 4000;

impl Witness {
    fn start(dir: &Path) -> Witness {
        let key_file = dir.join("witness.key");
        write_secret(&key_file, &format!("{:064x}", std::process::id()));
        let mut w = Witness {
            child: None,
            port: free_ports(1)[0],
            key_file,
            log: dir.join("witness.log"),
        };
        w.spawn();
        w
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again), waiting until it listens.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(bin())
            .args([
                "witness",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--key-file",
                &self.key_file.display().to_string(),
                "--max-lease-ms",
                &WITNESS_MAX_LEASE_MS.to_string(),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("roost witness starts");
        self.child = Some(child);
        let up = wait_for(WAIT, || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .is_ok()
                .then_some(())
        });
        assert!(up.is_some(), "the witness listens:\n{}", self.logs());
    }

    /// Kills the process (`kill -9`).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Pair {
    c: [Controller; 2],
    /// The witness's log, when the controllers fence through one.
    witness_log: Option<PathBuf>,
    db_password: String,
    token: String,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// What a controller answers now, unauthenticated and without following
/// redirects.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// No answer (refused, timed out).
    Down(String),
    /// It serves the API itself.
    Active,
    /// 307 to this location.
    Redirect(String),
    /// 503: no controller is active; the body says why.
    Unavailable(String),
}

fn look(url: &str) -> Seen {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    match client.get(format!("{url}/v1/alarms")).send() {
        Err(e) => Seen::Down(e.to_string()),
        Ok(r) => match r.status().as_u16() {
            307 => Seen::Redirect(
                r.headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
            ),
            503 => {
                let retry = r.headers().get("retry-after").is_some();
                let body = r.text().unwrap_or_default();
                Seen::Unavailable(format!("{body} (Retry-After: {retry})"))
            }
            _ => Seen::Active,
        },
    }
}

/// What controller database `db` (`host:port`) reports, through the
/// store's own inspection (bounded: a paused server never answers).
fn inspect(db: &str, password: &str) -> Option<roost_store::cluster::Inspection> {
    roost_store::cluster::inspect(db.parse().ok()?, password, Duration::from_secs(10)).ok()
}

/// A row of the primary's `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq)]
struct Streaming {
    application_name: String,
    state: String,
    sync_state: String,
}

impl Pair {
    /// controller-0 (bootstrap) started and active, then controller-1
    /// started and streaming as the primary's synchronous standby.
    fn start() -> Pair {
        Pair::start_in(None, None)
    }

    /// Like [`Pair::start`], with controller-0's machine in network
    /// namespace `ns` (its API and database on the namespace's side of the
    /// link, controller-1's database on the other side); the BMCs stay
    /// reachable out of band. With `witness`, the controllers fence
    /// through it and know nothing of each other's BMC.
    fn start_in(ns: Option<&Netns>, witness: Option<&Witness>) -> Pair {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL runs as `postgres` when the tests run as root: it must
        // get through to the data directories.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let ports = free_ports(4);
        let db_password_file = dir.path().join("db-password");
        let db_password = format!(
            "{:032x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                ^ (u128::from(std::process::id()) << 64)
        );
        write_secret(&db_password_file, &db_password);
        let bmc_password_file = dir.path().join("bmc-password");
        write_secret(&bmc_password_file, BMC_PASSWORD);
        let controller = |i: usize| {
            let name = ["controller-0", "controller-1"][i];
            // Across the link: controller-0 on the namespace's side,
            // controller-1's database on the root side.
            let (api_ip, db_ip) = match (ns, i) {
                (Some(ns), 0) => (ns.addr(0, 2), ns.addr(0, 2)),
                (Some(ns), _) => ("127.0.0.1".to_string(), ns.addr(0, 1)),
                (None, _) => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
            };
            Controller {
                name,
                data: dir.path().join(name).join("data"),
                config: dir.path().join(format!("{name}.toml")),
                log: dir.path().join(format!("{name}.log")),
                url: format!("http://{api_ip}:{}", ports[i]),
                db: format!("{db_ip}:{}", ports[2 + i]),
                bmc: None,
                netns: ns.filter(|_| i == 0).map(|n| n.name.clone()),
            }
        };
        let mut c = [controller(0), controller(1)];
        for x in &c {
            std::fs::create_dir_all(x.data.parent().unwrap()).unwrap();
        }
        let config = |me: &Controller, peer: &Controller, peer_bmc: &str| {
            let bootstrap = me.name == "controller-0";
            let fencing = match witness {
                Some(w) => format!(
                    "witness = \"{}\"\nwitness_key_file = \"{}\"\n",
                    w.url(),
                    w.key_file.display()
                ),
                None => format!(
                    "peer_bmc = \"{peer_bmc}\"\npeer_bmc_username = \"admin\"\n\
                     peer_bmc_password_file = \"{}\"\n",
                    bmc_password_file.display()
                ),
            };
            format!(
                "hostname = \"{name}\"\nsystem_mode = \"duplex\"\nstore = \"duplex\"\n\
                 [ha]\nname = \"{name}\"\nurl = \"{url}\"\nlease_ms = 1000\npeer = \"{peer}\"\n\
                 db_listen = \"{db}\"\npeer_db = \"{peer_db}\"\ndb_password_file = \"{dbpw}\"\n\
                 {fencing}bootstrap = {bootstrap}\n\
                 sync_grace_ms = 5000\n[apps]\nlocal_runtime = false\n",
                name = me.name,
                url = me.url,
                peer = peer.name,
                db = me.db,
                peer_db = peer.db,
                dbpw = db_password_file.display(),
            )
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // controller-1's machine stays off until controller-0 is active;
        // controller-0's configuration names its BMC.
        let bmc1 = rt
            .block_on(Bmc::start(c[1].bmc_config(false)))
            .expect("controller-1's BMC starts");
        std::fs::write(&c[0].config, config(&c[0], &c[1], &bmc1.url())).unwrap();
        c[1].bmc = Some(bmc1);
        let bmc0 = rt
            .block_on(Bmc::start(c[0].bmc_config(true)))
            .expect("controller-0's BMC starts and powers it on");
        std::fs::write(&c[1].config, config(&c[1], &c[0], &bmc0.url())).unwrap();
        c[0].bmc = Some(bmc0);
        let mut p = Pair {
            c,
            witness_log: witness.map(|w| w.log.clone()),
            db_password,
            token: String::new(),
            rt,
            _dir: dir,
        };

        p.wait(WAIT, "controller-0 bootstraps and becomes active", || {
            (look(&p.c[0].url) == Seen::Active).then_some(())
        });
        p.token = admin_api(&p.c[0].url)
            .unwrap_or_else(|e| p.fail(&format!("the admin logs in at controller-0: {e}")))
            .token;
        let held = p.lease(0);
        assert_eq!(
            held.as_ref().map(|l| l.0.as_str()),
            Some("controller-0"),
            "{held:?}"
        );
        assert_eq!(
            p.in_recovery(0),
            Some(false),
            "controller-0's database is the primary"
        );

        // The second controller seals with the same data key.
        std::fs::create_dir_all(&p.c[1].data).unwrap();
        std::fs::copy(
            p.c[0].data.join("secret.key"),
            p.c[1].data.join("secret.key"),
        )
        .unwrap_or_else(|e| p.fail(&format!("copy controller-0's secret.key: {e}")));
        p.rt.block_on(p.c[1].bmc().reset(ResetType::On));
        p.wait(
            WAIT,
            "controller-1 becomes the standby, redirecting to controller-0",
            || {
                matches!(look(&p.c[1].url), Seen::Redirect(l) if l.starts_with(&p.c[0].url))
                    .then_some(())
            },
        );
        p.wait(
            WAIT,
            "controller-0's primary streams synchronously to controller-1",
            || {
                p.replication(0)
                    .iter()
                    .any(|r| {
                        r.application_name == "roost:controller-1#replica"
                            && r.state == "streaming"
                            && r.sync_state == "sync"
                    })
                    .then_some(())
            },
        );
        // controller-1 itself has seen that it is in synchronous standing
        // (it takes over only then).
        p.wait(
            WAIT,
            "controller-1 sees itself as the synchronous standby",
            || {
                std::fs::read_to_string(&p.c[1].log)
                    .unwrap_or_default()
                    .contains("this replica is the primary's synchronous standby")
                    .then_some(())
            },
        );
        assert_eq!(
            p.in_recovery(1),
            Some(true),
            "controller-1's database is a replica"
        );
        p
    }

    /// Panics with `what`, what both controllers see now and their logs.
    fn fail(&self, what: &str) -> ! {
        let state: Vec<String> = (0..2)
            .map(|i| {
                let c = &self.c[i];
                format!(
                    "{}: answers {:?}; its own BMC: power {}, resets {}; its database: in recovery {:?}, lease {:?}, replicas {:?}",
                    c.name,
                    look(&c.url),
                    c.bmc().power_state(),
                    c.bmc().resets(),
                    self.in_recovery(i),
                    self.lease(i),
                    self.replication(i),
                )
            })
            .collect();
        let witness = self
            .witness_log
            .as_ref()
            .map(|l| {
                format!(
                    "===== the witness, log {}:\n{}",
                    l.display(),
                    std::fs::read_to_string(l).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        panic!(
            "{what}\n{}\n\n{}\n{}\n{witness}",
            state.join("\n"),
            self.c[0].logs(200),
            self.c[1].logs(200)
        );
    }

    /// Polls `f` up to `secs`; fails with `what` and the logs if it never
    /// returns `Some`.
    fn wait<T>(&self, secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> T {
        wait_for(secs, f).unwrap_or_else(|| self.fail(&format!("within {secs} s: {what}")))
    }

    /// `pg_is_in_recovery()` of controller `i`'s database; `None` when it
    /// does not answer.
    fn in_recovery(&self, i: usize) -> Option<bool> {
        inspect(&self.c[i].db, &self.db_password).map(|d| d.in_recovery)
    }

    /// The lease as controller `i`'s database holds it: (holder, epoch).
    fn lease(&self, i: usize) -> Option<(String, i64)> {
        let l = inspect(&self.c[i].db, &self.db_password)?.lease?;
        Some((l.holder, l.epoch))
    }

    /// The replicas controller `i`'s database streams to.
    fn replication(&self, i: usize) -> Vec<Streaming> {
        inspect(&self.c[i].db, &self.db_password)
            .map(|d| d.replicas)
            .unwrap_or_default()
            .into_iter()
            .map(|r| Streaming {
                application_name: r.name,
                state: r.state,
                sync_state: r.sync_state,
            })
            .collect()
    }

    /// An API client of controller `i` (the token is good on both).
    fn api(&self, i: usize) -> Api {
        Api {
            url: self.c[i].url.clone(),
            token: self.token.clone(),
        }
    }

    /// Sends `sig` to the whole of controller `i`'s host (its process
    /// group: the server and its PostgreSQL), behind its BMC's back.
    fn signal_host(&self, i: usize, sig: &str) {
        let pgid = self.c[i]
            .bmc()
            .child_pid()
            .unwrap_or_else(|| self.fail(&format!("{} has a running host", self.c[i].name)));
        let ok = Command::new("kill")
            .args(["-s", sig, "--", &format!("-{pgid}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {sig} -- -{pgid}");
    }

    /// Powers controller `i`'s machine on through its BMC's Redfish API.
    fn redfish_on(&self, i: usize) {
        let bmc = self.c[i].bmc();
        let r = roost_test_support::http()
            .post(format!(
                "{}/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset",
                bmc.url(),
                bmc.system_id()
            ))
            .basic_auth("admin", Some(BMC_PASSWORD))
            .json(&json!({"ResetType": "On"}))
            .send()
            .expect("the BMC answers");
        let status = r.status().as_u16();
        assert!(
            status == 204 || status == 200,
            "Redfish On: {status} {:?}",
            r.text()
        );
    }

    /// Waits until controller `i` is active: it serves the API, its
    /// database is the primary and its lease is in it.
    fn wait_active(&self, i: usize) -> (String, i64) {
        let name = self.c[i].name;
        self.wait(WAIT, &format!("{name}'s database is promoted"), || {
            (self.in_recovery(i) == Some(false)).then_some(())
        });
        self.wait(
            WAIT,
            &format!("{name} serves the API as the active"),
            || (look(&self.c[i].url) == Seen::Active).then_some(()),
        );
        let lease = self.wait(
            WAIT,
            &format!("{name} holds the lease in its database"),
            || self.lease(i).filter(|l| l.0 == name),
        );
        eprintln!("{name} is active: lease {lease:?}");
        lease
    }

    /// Waits until controller `i`, powered on again, is the standby of the
    /// other: it redirects there, its database is a replica, and the
    /// other's primary streams to it.
    fn wait_rejoined(&self, i: usize) {
        let (me, other) = (&self.c[i], &self.c[1 - i]);
        let replica = format!("roost:{}#replica", me.name);
        self.wait(
            2 * WAIT,
            &format!("{} comes back as the standby", me.name),
            || {
                matches!(look(&me.url), Seen::Redirect(l) if l.starts_with(&other.url))
                    .then_some(())
            },
        );
        self.wait(
            WAIT,
            &format!("{}'s database is a replica", me.name),
            || (self.in_recovery(i) == Some(true)).then_some(()),
        );
        let r = self.wait(
            WAIT,
            &format!("{} streams to {}", other.name, me.name),
            || {
                self.replication(1 - i)
                    .into_iter()
                    .find(|r| r.application_name == replica && r.state == "streaming")
            },
        );
        eprintln!("{} streams to {}: {r:?}", other.name, me.name);
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for c in &mut self.c {
            if let Some(bmc) = c.bmc.take() {
                // Powers the machine off: SIGKILL to its process group (a
                // stopped one too).
                let _ = self.rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(20), bmc.shutdown()).await
                });
            }
            // A postmaster that escaped the host's process group would be
            // left behind: end it, by its own pid file.
            for f in files_under(&c.data.join("pgsql"), 3) {
                if f.file_name().is_some_and(|n| n == "postmaster.pid")
                    && let Some(pid) = std::fs::read_to_string(&f)
                        .ok()
                        .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
                    && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                        String::from_utf8_lossy(&cmd).contains(&*c.data.to_string_lossy())
                    })
                {
                    eprintln!(
                        "{}: its PostgreSQL (pid {pid}) outlived its machine",
                        c.name
                    );
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
    }
}

impl Pair {
    /// Waits until controller `i`'s host list shows controller `peer`
    /// enabled and available (its replica streams from `i`'s database).
    fn peer_listed_available(&self, i: usize, peer: &str) {
        self.wait(
            WAIT,
            &format!("{}'s host list shows {peer} available", self.c[i].name),
            || {
                let r = self.api(i).try_get("/v1/ihosts").ok()?;
                r.body["ihosts"]
                    .as_array()?
                    .iter()
                    .any(|h| {
                        h["hostname"] == peer
                            && h["operational"] == "enabled"
                            && h["availability"] == "available"
                    })
                    .then_some(())
            },
        );
    }

    /// A write load through both controllers once controller-0 is active:
    /// the load (100 writes acknowledged already), the epoch of
    /// controller-0's lease and its BMC's resets so far.
    fn under_writes(&self) -> (AlarmLoad, i64, u32) {
        let (_, epoch) = self
            .lease(0)
            .unwrap_or_else(|| self.fail("controller-0's lease"));
        let w = AlarmLoad::start(&[self.c[0].url.clone(), self.c[1].url.clone()], &self.token);
        self.more_writes(&w, 100);
        (w, epoch, self.c[0].bmc().resets())
    }

    /// Waits until `n` more writes of `w` are acknowledged.
    fn more_writes(&self, w: &AlarmLoad, n: usize) {
        if !w.wait_for_more(n, WAIT) {
            self.fail(&format!(
                "{n} more writes acknowledged (from {})",
                w.count()
            ));
        }
    }

    /// Every acknowledged alarm is listed by controller `i`.
    fn all_there(&self, i: usize, acked: &[String]) {
        match missing_alarms(&self.api(i), acked) {
            Ok(lost) if lost.is_empty() => {}
            Ok(lost) => self.fail(&format!(
                "{} of {} acknowledged alarms lost: {lost:?}",
                lost.len(),
                acked.len()
            )),
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// controller-0 was lost and fenced (one more BMC reset than
    /// `resets`, its power off): controller-1 takes the lease past `epoch`
    /// and serves writes, and nothing acknowledged was lost. The
    /// acknowledged writes.
    fn took_over(&self, epoch: i64, resets: u32, w: AlarmLoad) -> Vec<String> {
        let (holder, new_epoch) = self.wait_active(1);
        assert_eq!(holder, "controller-1");
        assert!(
            new_epoch > epoch,
            "the new epoch {new_epoch} is past {epoch}"
        );
        assert_eq!(
            self.c[0].bmc().resets(),
            resets + 1,
            "one fence, a ForceOff"
        );
        assert_eq!(self.c[0].bmc().power_state(), PowerState::Off);
        self.more_writes(&w, 50);
        let acked = w.finish();
        self.all_there(1, &acked);
        acked
    }
}

/// controller-0 runs in a network namespace and its link is cut under
/// writes: controller-1 no longer reaches its database, fences it through
/// its BMC (out of band) and promotes; nothing acknowledged is lost. With
/// the link back and the machine powered on, controller-0 copies the new
/// primary and rejoins as the standby.
#[test]
fn a_network_cut_isolating_the_active_controller_fences_it_and_it_rejoins() {
    if !postgres_binaries() {
        return;
    }
    let tag = std::process::id() % 10_000 + 40_000;
    let Some(ns) = Netns::require(tag, 1) else {
        return;
    };
    let p = Pair::start_in(Some(&ns), None);
    let (w, epoch, resets) = p.under_writes();
    assert!(
        ip(&["link", "set", &ns.host_ifs[0], "down"]),
        "cut the link"
    );
    p.wait(
        WAIT,
        "controller-1 fences the cut-off controller-0 through its BMC",
        || (p.c[0].bmc().resets() > resets).then_some(()),
    );
    let acked = p.took_over(epoch, resets, w);

    assert!(
        ip(&["link", "set", &ns.host_ifs[0], "up"]),
        "restore the link"
    );
    p.redfish_on(0);
    p.wait_rejoined(0);
    p.all_there(0, &acked);
}

/// Controller-0's machine dies with `sig` (KILL: crashed; STOP: hung) under
/// writes; returns the pair, the load, the epoch controller-0 held and its
/// BMC's resets before.
fn lose_the_active(sig: &str) -> (Pair, AlarmLoad, i64, u32) {
    let p = Pair::start();
    let (w, epoch, resets) = p.under_writes();
    p.signal_host(0, sig);
    (p, w, epoch, resets)
}

#[test]
fn kill_9_of_the_active_controller_fences_then_promotes_the_standby() {
    if !postgres_binaries() {
        return;
    }
    let (p, w, epoch, resets) = lose_the_active("KILL");
    // Its database died with it (the postmaster is in the host's group).
    p.wait(
        WAIT,
        "controller-0's PostgreSQL is gone with its machine",
        || {
            std::net::TcpStream::connect_timeout(
                &p.c[0].db.parse().unwrap(),
                Duration::from_secs(1),
            )
            .is_err()
            .then_some(())
        },
    );
    // The machine is still on (its OS crashed): controller-1 powers it off.
    p.wait(
        WAIT,
        "controller-1 fences controller-0 through its BMC",
        || (p.c[0].bmc().resets() > resets).then_some(()),
    );
    // Writes go on through the new active; nothing acknowledged was lost.
    let acked = p.took_over(epoch, resets, w);

    // Powered on again, controller-0 copies the new primary and follows it.
    p.redfish_on(0);
    p.wait_rejoined(0);
    // Both addresses serve everything acknowledged.
    p.all_there(0, &acked);
}

#[test]
fn sigstop_of_the_active_controller_is_fenced_before_promotion() {
    if !postgres_binaries() {
        return;
    }
    let (p, w, epoch, resets) = lose_the_active("STOP");
    // Poll the promotion first, then the fence, in one loop: a promotion
    // seen means the fence (if it came first) is seen in the same round.
    let mut fence_seen: Option<Instant> = None;
    let promoted_at = p.wait(
        WAIT,
        "controller-1 fences controller-0, then promotes",
        || {
            let promoted = p.in_recovery(1) == Some(false);
            let now = Instant::now();
            if fence_seen.is_none() && p.c[0].bmc().resets() > resets {
                fence_seen = Some(now);
            }
            promoted.then_some(now)
        },
    );
    let Some(fenced_at) = fence_seen else {
        p.fail("controller-1's database was promoted before controller-0 was fenced")
    };
    assert!(fenced_at <= promoted_at);
    eprintln!(
        "the fence was seen {} ms before the promotion",
        promoted_at.duration_since(fenced_at).as_millis()
    );
    // The stopped machine was powered off: its processes are gone.
    assert_eq!(p.c[0].bmc().power_state(), PowerState::Off);
    assert_eq!(p.c[0].bmc().child_pid(), None);
    p.took_over(epoch, resets, w);
}

#[test]
fn without_a_reachable_bmc_the_standby_does_not_promote() {
    if !postgres_binaries() {
        return;
    }
    let p = Pair::start();
    let (w, epoch, resets) = p.under_writes();
    p.c[0].bmc().set_refusing(true);
    p.signal_host(0, "KILL");

    // controller-1 refuses to take over, and says so.
    let body = p.wait(
        WAIT,
        "controller-1 answers 503 saying it will not take over without fencing",
        || match look(&p.c[1].url) {
            Seen::Unavailable(body) => {
                let b = body.to_lowercase();
                (b.contains("not taking over") || b.contains("bmc") || b.contains("fenc"))
                    .then_some(body)
            }
            _ => None,
        },
    );
    eprintln!("controller-1 while controller-0's BMC refuses: {body}");
    assert!(body.contains("Retry-After: true"), "{body}");
    assert_eq!(
        p.in_recovery(1),
        Some(true),
        "controller-1's database is still a replica"
    );
    assert_eq!(p.c[0].bmc().resets(), resets, "no reset got through");

    // The BMC answers again: controller-1 fences, then promotes.
    p.c[0].bmc().set_refusing(false);
    p.wait(
        WAIT,
        "controller-1 fences controller-0 once its BMC answers",
        || (p.c[0].bmc().resets() > resets).then_some(()),
    );
    p.took_over(epoch, resets, w);
}

/// `system host-swact controller-0` as StarlingX's client sends it
/// (CLIENTS.md fact 22: the host resolved through the list, then a PATCH of
/// its numeric id, answered with the full host) under writes: activity
/// moves to controller-1 without fencing (its database is promoted once
/// controller-0's follows it), and controller-0 comes back as the standby,
/// its database a replica of the new primary. Nothing acknowledged is lost.
#[test]
fn swact_moves_the_primary_without_fencing_and_loses_nothing() {
    if !postgres_binaries() {
        return;
    }
    let p = Pair::start();
    p.peer_listed_available(0, "controller-1");
    let (w, epoch, _) = p.under_writes();
    let resets = p.c[0].bmc().resets() + p.c[1].bmc().resets();
    let r = p.api(0).stock_host_action("controller-0", "swact");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["hostname"], "controller-0", "{:?}", r.body);
    let (holder, new_epoch) = p.wait_active(1);
    assert_eq!(holder, "controller-1");
    assert!(
        new_epoch > epoch,
        "the new epoch {new_epoch} is past {epoch}"
    );
    p.wait_rejoined(0);
    p.peer_listed_available(1, "controller-0");
    p.more_writes(&w, 50);
    let acked = w.finish();
    p.all_there(1, &acked);
    assert_eq!(
        p.c[0].bmc().resets() + p.c[1].bmc().resets(),
        resets,
        "a swact fences nobody"
    );
    assert_eq!(p.c[0].bmc().power_state(), PowerState::On);
}

/// Without BMCs, a witness fences: controller-0's machine is stopped
/// (SIGSTOP) under writes; controller-1 takes the controllers' lease at the
/// witness once controller-0's has expired there, promotes its replica and
/// serves writes; nothing acknowledged is lost and no BMC is used. Resumed,
/// controller-0 finds the lease gone, stops acting and rejoins as the
/// standby.
#[test]
fn a_witness_fences_a_hung_active_without_a_bmc_and_it_rejoins() {
    if !postgres_binaries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start(dir.path());
    let p = Pair::start_in(None, Some(&witness));
    let (w, epoch, _) = p.under_writes();
    let resets = p.c[0].bmc().resets() + p.c[1].bmc().resets();
    p.signal_host(0, "STOP");
    let (holder, new_epoch) = p.wait_active(1);
    assert_eq!(holder, "controller-1");
    assert!(
        new_epoch > epoch,
        "the new epoch {new_epoch} is past {epoch}"
    );
    let log = witness.logs();
    assert!(
        log.lines()
            .any(|l| l.contains("granted the pair's lease") && l.contains("holder=controller-1")),
        "the witness granted controller-1 the lease:\n{log}"
    );
    p.more_writes(&w, 50);
    let acked = w.finish();
    p.all_there(1, &acked);

    // Resumed, controller-0 stops acting and follows the new primary.
    p.signal_host(0, "CONT");
    p.wait_rejoined(0);
    p.all_there(0, &acked);
    assert_eq!(
        p.c[0].bmc().resets() + p.c[1].bmc().resets(),
        resets,
        "no BMC was used"
    );
}

/// With the witness gone, a lost active cannot be fenced: the standby
/// answers 503 saying why and its database stays a replica. Once the
/// witness is back and the lost controller restarts, that controller is
/// active again (the standby cannot prove the lost one never committed
/// alone) and the standby follows it; nothing acknowledged is lost.
#[test]
fn without_a_reachable_witness_the_standby_does_not_promote() {
    if !postgres_binaries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut witness = Witness::start(dir.path());
    let p = Pair::start_in(None, Some(&witness));
    let (w, _, _) = p.under_writes();
    witness.kill();
    // The active goes on while its replica streams: it needs no witness
    // for synchronous commits.
    p.more_writes(&w, 50);
    p.signal_host(0, "KILL");
    let body = p.wait(
        WAIT,
        "controller-1 answers 503 saying it cannot fence through the witness",
        || match look(&p.c[1].url) {
            Seen::Unavailable(body) if body.contains("witness") => Some(body),
            _ => None,
        },
    );
    eprintln!("controller-1 while the witness is gone: {body}");
    assert!(body.contains("not taking over"), "{body}");
    assert_eq!(
        p.in_recovery(1),
        Some(true),
        "controller-1's database is still a replica"
    );
    let acked = w.finish();

    witness.spawn();
    p.rt.block_on(p.c[0].bmc().reset(ResetType::ForceRestart));
    p.wait_active(0);
    p.wait_rejoined(1);
    p.all_there(0, &acked);
    p.all_there(1, &acked);
}

/// An active that loses its standby and the witness together cannot know
/// that the standby did not take over: once it would commit alone (the
/// replica gone for the synchronous grace) it halts its database and
/// steps down, saying why. With the witness back, it is active again and
/// serves writes alone.
#[test]
fn an_active_that_loses_its_standby_and_the_witness_stops_acting() {
    if !postgres_binaries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut witness = Witness::start(dir.path());
    let p = Pair::start_in(None, Some(&witness));
    witness.kill();
    p.rt.block_on(p.c[1].bmc().reset(ResetType::ForceOff));
    let body = p.wait(
        WAIT,
        "controller-0 stops acting and says why",
        || match look(&p.c[0].url) {
            Seen::Unavailable(body) if body.contains("witness") => Some(body),
            _ => None,
        },
    );
    eprintln!("controller-0 without its standby and the witness: {body}");
    let log = std::fs::read_to_string(&p.c[0].log).unwrap_or_default();
    assert!(
        log.contains("must not commit alone") && log.contains("halting this controller's database"),
        "controller-0 halted its database because it would commit alone"
    );

    witness.spawn();
    p.wait_active(0);
    let w = AlarmLoad::start(std::slice::from_ref(&p.c[0].url), &p.token);
    p.more_writes(&w, 20);
    let acked = w.finish();
    p.all_there(0, &acked);
}

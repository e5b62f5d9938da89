//! The PostgreSQL a duplex controller runs itself: created, started,
//! copied from the peer, promoted and stopped by Roost, under the data
//! directory (`pgsql/`), with Debian's PostgreSQL binaries.
//!
//! The active controller's database is the primary; the standby's is a
//! streaming replica of it. `roost_types::duplex` decides what to do; this
//! module does it and reports what it sees ([`LocalPg::status`],
//! [`probe_peer`]).
//!
//! The postmaster runs as a child of the server, in its process group:
//! powering the host off (or killing the group) stops both. When the
//! server runs as root, PostgreSQL (which refuses root) runs as the
//! configured system user, owning `pgsql/`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;
use crate::lease::LeaseRow;
use crate::sql::{Db, PgConn, params};

/// The database Roost's data lives in.
pub const DATABASE: &str = "roost";
/// The database role Roost connects and replicates as.
pub const ROLE: &str = "roost";

/// Where and how the local PostgreSQL runs.
#[derive(Clone)]
pub struct ClusterConfig {
    /// Debian's `/usr/lib/postgresql/N/bin`.
    pub bin: PathBuf,
    /// `pgsql/` in the data directory.
    pub dir: PathBuf,
    /// Where it listens, for the server and for the peer's replica.
    pub listen: SocketAddr,
    /// The `roost` role's password, the same on both controllers.
    pub password: String,
    /// The system user it runs as when the server runs as root.
    pub os_user: String,
    /// This controller's name (the replica's `application_name`).
    pub name: String,
    /// How long a replication connection may be silent before it is
    /// dropped (both sides).
    pub timeout: Duration,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("bin", &self.bin)
            .field("dir", &self.dir)
            .field("listen", &self.listen)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ClusterConfig {
    /// The URL the server's store connects to.
    pub fn url(&self) -> String {
        format!(
            "postgres://{ROLE}:{}@{}/{DATABASE}",
            self.password, self.listen
        )
    }
}

/// The newest PostgreSQL installed the Debian way, if any.
pub fn find_postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// What the local database is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisk {
    Missing,
    Primary,
    Replica,
}

/// What the running local database reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalStatus {
    /// It answers.
    pub running: bool,
    pub in_recovery: bool,
    /// WAL received (a replica) or written (a primary), bytes.
    pub lsn: u64,
    /// A replica's WAL receiver is streaming from the primary.
    pub streaming: bool,
    /// A replica's lease row, as last replicated.
    pub lease: Option<LeaseRow>,
}

/// The peer's database, as seen from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerStatus {
    Unreachable(String),
    Primary {
        lease: Option<LeaseRow>,
        /// The peer database's clock, microseconds.
        now: i64,
        /// It reports this controller's replica as its synchronous standby.
        we_are_sync: bool,
    },
    Replica {
        lsn: u64,
    },
}

/// A replication client as the primary sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub name: String,
    pub state: String,
    pub sync_state: String,
}

/// The local PostgreSQL of a duplex controller.
pub struct LocalPg {
    config: ClusterConfig,
    /// The postmaster this process started, if it did.
    child: Mutex<Option<std::process::Child>>,
    run_as: Option<(u32, u32)>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |e| Error::Invalid(format!("{context}: {e}"))
}

/// The effective user id of this process.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A system user's uid and gid, from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn lsn_sql(expr: &str) -> String {
    format!("COALESCE(CAST(pg_wal_lsn_diff({expr}, '0/0') AS BIGINT), 0)")
}

impl LocalPg {
    pub fn new(config: ClusterConfig) -> Result<LocalPg, Error> {
        if !config.bin.join("postgres").exists() {
            return Err(Error::Invalid(format!(
                "no PostgreSQL server at {}; install Debian's postgresql package or set [ha] postgres_bin",
                config.bin.display()
            )));
        }
        let run_as = if euid() == Some(0) {
            Some(user_ids(&config.os_user).ok_or_else(|| {
                Error::Invalid(format!(
                    "PostgreSQL does not run as root and there is no system user {:?} to run it as",
                    config.os_user
                ))
            })?)
        } else {
            None
        };
        std::fs::create_dir_all(&config.dir)
            .map_err(io(format!("cannot create {}", config.dir.display())))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&config.dir, std::fs::Permissions::from_mode(0o700)).map_err(
            io(format!("cannot set the mode of {}", config.dir.display())),
        )?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&config.dir, Some(uid), Some(gid)).map_err(io(format!(
                "cannot give {} to {}",
                config.dir.display(),
                config.os_user
            )))?;
            // The database user must be able to reach its directory.
            if let Some(parent) = config.dir.parent() {
                let meta = std::fs::metadata(parent)
                    .map_err(io(format!("cannot read {}", parent.display())))?;
                if meta.permissions().mode() & 0o001 == 0 {
                    let mode = meta.permissions().mode() | 0o011;
                    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode))
                        .map_err(io(format!(
                            "cannot let {} into {}",
                            config.os_user,
                            parent.display()
                        )))?;
                }
            }
        }
        Ok(LocalPg {
            config,
            child: Mutex::new(None),
            run_as,
        })
    }

    fn data(&self) -> PathBuf {
        self.config.dir.join("data")
    }

    fn sockets(&self) -> PathBuf {
        self.config.dir.join("run")
    }

    /// What is on disk.
    pub fn on_disk(&self) -> OnDisk {
        let data = self.data();
        if !data.join("PG_VERSION").exists() {
            OnDisk::Missing
        } else if data.join("standby.signal").exists() {
            OnDisk::Replica
        } else {
            OnDisk::Primary
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.config.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt as _;
            c.uid(uid).gid(gid);
        }
        c.env("PGPASSWORD", &self.config.password)
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), Error> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(io(format!("cannot run {program}")))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(Error::Invalid(format!(
                "{program} failed ({}): {}",
                out.status,
                err.trim().replace(&self.config.password, "***")
            )))
        }
    }

    /// As the database's user, a file only it reads.
    fn write_private(&self, path: &Path, text: &str) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io(format!("cannot write {}", path.display())))?;
        f.write_all(text.as_bytes())
            .map_err(io(format!("cannot write {}", path.display())))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(io(format!("cannot give {} away", path.display())))?;
        }
        Ok(())
    }

    fn make_private_dir(&self, path: &Path) -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(path).map_err(io(format!("cannot create {}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("cannot set the mode of {}", path.display())))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(io(format!("cannot give {} away", path.display())))?;
        }
        Ok(())
    }

    /// Who may connect: the server over the socket directory (private to
    /// the database's user), and `roost` with its password over TCP, for
    /// data and replication.
    fn write_hba(&self) -> Result<(), Error> {
        self.write_private(
            &self.data().join("pg_hba.conf"),
            "# Written by Roost.\n\
             local all all trust\n\
             host all roost 0.0.0.0/0 scram-sha-256\n\
             host all roost ::/0 scram-sha-256\n\
             host replication roost 0.0.0.0/0 scram-sha-256\n\
             host replication roost ::/0 scram-sha-256\n",
        )
    }

    /// Creates a new, empty primary (the bootstrap controller's).
    pub fn create(&self) -> Result<(), Error> {
        let data = self.data();
        let pwfile = self.config.dir.join("initdb-password");
        self.write_private(&pwfile, &self.config.password)?;
        let _ = std::fs::remove_dir_all(&data);
        let made = self.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                ROLE,
                "--pwfile",
                &pwfile.to_string_lossy(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        let _ = std::fs::remove_file(&pwfile);
        made?;
        self.write_hba()?;
        self.start()?;
        let mut c = self.local_conn("postgres")?;
        Db::pg(&mut c).batch(&format!("CREATE DATABASE {DATABASE}"))?;
        Ok(())
    }

    /// Replaces the local database with a copy of the peer's primary at
    /// `peer`, as a replica following it.
    pub fn copy_from(&self, peer: SocketAddr) -> Result<(), Error> {
        self.stop()?;
        let data = self.data();
        let _ = std::fs::remove_dir_all(&data);
        self.make_private_dir(&data)?;
        self.run(
            "pg_basebackup",
            &[
                "-h",
                &peer.ip().to_string(),
                "-p",
                &peer.port().to_string(),
                "-U",
                ROLE,
                "-D",
                &data.to_string_lossy(),
                "-X",
                "stream",
                "--checkpoint=fast",
                "-w",
            ],
        )?;
        self.write_hba()?;
        self.follow(peer)
    }

    /// Makes the (stopped) local database a replica of `peer`.
    pub fn follow(&self, peer: SocketAddr) -> Result<(), Error> {
        let data = self.data();
        let auto = data.join("postgresql.auto.conf");
        let kept: String = std::fs::read_to_string(&auto)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("primary_conninfo"))
            .map(|l| format!("{l}\n"))
            .collect();
        let conninfo = format!(
            "host={} port={} user={ROLE} password={} application_name={} connect_timeout=2",
            peer.ip(),
            peer.port(),
            self.config.password,
            replica_name(&self.config.name)
        );
        self.write_private(
            &auto,
            &format!(
                "{kept}primary_conninfo = '{}'\n",
                conninfo.replace('\'', "''")
            ),
        )?;
        self.write_private(&data.join("standby.signal"), "")
    }

    /// Starts the local database (as whatever it is on disk) unless it is
    /// already running, and waits until it accepts connections.
    pub fn start(&self) -> Result<(), Error> {
        if self.local_conn("postgres").is_ok() {
            return Ok(());
        }
        self.make_private_dir(&self.sockets())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.dir.join("postgresql.log"))
            .map_err(io("cannot open the database log"))?;
        let log2 = log
            .try_clone()
            .map_err(io("cannot open the database log"))?;
        let timeout = format!("{}ms", self.config.timeout.as_millis().max(1000));
        let settings = [
            format!("listen_addresses={}", self.config.listen.ip()),
            format!("port={}", self.config.listen.port()),
            format!("unix_socket_directories={}", self.sockets().display()),
            "wal_level=replica".into(),
            "hot_standby=on".into(),
            "max_wal_senders=4".into(),
            "wal_keep_size=512MB".into(),
            "synchronous_commit=on".into(),
            format!("wal_sender_timeout={timeout}"),
            format!("wal_receiver_timeout={timeout}"),
            "wal_receiver_status_interval=1s".into(),
            "wal_retrieve_retry_interval=500ms".into(),
            "max_connections=100".into(),
            "logging_collector=off".into(),
        ];
        let mut c = self.command("postgres");
        c.arg("-D").arg(self.data());
        for s in &settings {
            c.arg("-c").arg(s);
        }
        let child = c
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io("cannot start PostgreSQL"))?;
        if let Ok(mut slot) = self.child.lock() {
            *slot = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.local_conn("postgres") {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::Invalid(format!(
                        "PostgreSQL did not start in 60 s (see {}): {}",
                        self.config.dir.join("postgresql.log").display(),
                        roost_types::error_chain(&e)
                    )));
                }
                Err(_) => {}
            }
            if let Ok(mut slot) = self.child.lock()
                && let Some(child) = slot.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                *slot = None;
                return Err(Error::Invalid(format!(
                    "PostgreSQL exited at start ({status}); see {}",
                    self.config.dir.join("postgresql.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the local database (fast: clients are disconnected, a primary
    /// sends its replica everything first).
    pub fn stop(&self) -> Result<(), Error> {
        if self.data().join("postmaster.pid").exists() {
            let data = self.data();
            let _ = self.run(
                "pg_ctl",
                &[
                    "stop",
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                ],
            );
        }
        if let Ok(mut slot) = self.child.lock()
            && let Some(mut child) = slot.take()
        {
            let _ = child.wait();
        }
        Ok(())
    }

    /// Stops the local database at once (`immediate`: no checkpoint, no
    /// last WAL sent): a controller that must not commit another write.
    pub fn halt(&self) -> Result<(), Error> {
        let mut stopped = Ok(());
        if self.data().join("postmaster.pid").exists() {
            let data = self.data();
            stopped = self.run(
                "pg_ctl",
                &[
                    "stop",
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                ],
            );
        }
        if let Ok(mut slot) = self.child.lock()
            && let Some(mut child) = slot.take()
        {
            // pg_ctl failed: the postmaster this server started is killed.
            if stopped.is_err() && child.kill().is_ok() {
                stopped = Ok(());
            }
            let _ = child.wait();
        }
        stopped
    }

    /// Promotes the running replica, waiting until it is a primary.
    pub fn promote(&self) -> Result<(), Error> {
        let mut c = self.local_conn("postgres")?;
        let done: bool =
            Db::pg(&mut c).query_row("SELECT pg_promote(true, 60)", (), |r| r.get(0))?;
        if done {
            Ok(())
        } else {
            Err(Error::Invalid(
                "PostgreSQL did not finish its promotion in 60 s".into(),
            ))
        }
    }

    /// What the running local database reports (`running` false if it
    /// does not answer).
    pub fn status(&self) -> LocalStatus {
        let Ok(mut c) = self
            .local_conn(DATABASE)
            .or_else(|_| self.local_conn("postgres"))
        else {
            return LocalStatus::default();
        };
        let sql = format!(
            "SELECT pg_is_in_recovery(),
                    CASE WHEN pg_is_in_recovery() THEN GREATEST({}, {}) ELSE {} END,
                    EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
            lsn_sql("pg_last_wal_receive_lsn()"),
            lsn_sql("pg_last_wal_replay_lsn()"),
            lsn_sql("pg_current_wal_lsn()")
        );
        let mut db = Db::pg(&mut c);
        let Ok((in_recovery, lsn, streaming)) = db.query_row(&sql, (), |r| {
            Ok((r.get::<bool>(0)?, r.get::<i64>(1)?, r.get::<bool>(2)?))
        }) else {
            return LocalStatus::default();
        };
        // Before the database exists (a new primary) there is no lease.
        let lease = if in_recovery {
            crate::lease::read_row(&mut db, false)
                .ok()
                .and_then(|(row, _)| row)
        } else {
            None
        };
        LocalStatus {
            running: true,
            in_recovery,
            lsn: u64::try_from(lsn).unwrap_or(0),
            streaming,
            lease,
        }
    }

    /// The replicas streaming from this primary.
    pub fn replicas(&self) -> Result<Vec<Replica>, Error> {
        let mut c = self.local_conn("postgres")?;
        replicas_of(&mut Db::pg(&mut c))
    }

    /// Commits wait for a replica's flush (`true`) or not.
    pub fn set_synchronous(&self, on: bool) -> Result<(), Error> {
        let mut c = self.local_conn("postgres")?;
        let mut db = Db::pg(&mut c);
        db.batch(if on {
            "ALTER SYSTEM SET synchronous_standby_names = '*'"
        } else {
            "ALTER SYSTEM SET synchronous_standby_names = ''"
        })?;
        db.batch("SELECT pg_reload_conf()")
    }

    /// A connection over the private socket directory.
    fn local_conn(&self, dbname: &str) -> Result<PgConn, Error> {
        let mut config = postgres::Config::new();
        config
            .host_path(self.sockets())
            .port(self.config.listen.port())
            .user(ROLE)
            .dbname(dbname)
            .application_name("roost-cluster")
            .connect_timeout(Duration::from_secs(2));
        PgConn::connect(&config)
    }
}

/// The replica's `application_name` at the primary.
pub fn replica_name(name: &str) -> String {
    format!("roost:{name}#replica")
}

fn remote_config(at: SocketAddr, password: &str, app: &str, timeout: Duration) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host(&at.ip().to_string())
        .port(at.port())
        .user(ROLE)
        .password(password)
        .dbname(DATABASE)
        .application_name(app)
        .connect_timeout(timeout)
        .options(&format!(
            "-c statement_timeout={}",
            timeout.as_millis().max(100)
        ));
    config
}

/// A controller's database as seen over the network, for tools and
/// tests: whether it is a replica, its lease, and the replicas streaming
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub in_recovery: bool,
    pub lease: Option<LeaseRow>,
    pub replicas: Vec<Replica>,
}

/// Inspects the database at `at`, giving up after `timeout` of wall-clock
/// time (a paused server accepts connections it never answers).
pub fn inspect(at: SocketAddr, password: &str, timeout: Duration) -> Result<Inspection, Error> {
    let password = password.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("db-inspect".into())
        .spawn(move || {
            let seen = (|| -> Result<Inspection, Error> {
                let mut c =
                    PgConn::connect(&remote_config(at, &password, "roost-inspect", timeout))?;
                let mut db = Db::pg(&mut c);
                let in_recovery: bool =
                    db.query_row("SELECT pg_is_in_recovery()", (), |r| r.get(0))?;
                let (lease, _) = crate::lease::read_row(&mut db, false)?;
                let replicas = replicas_of(&mut db)?;
                Ok(Inspection {
                    in_recovery,
                    lease,
                    replicas,
                })
            })();
            let _ = tx.send(seen);
        })
        .map_err(io("cannot start a thread"))?;
    rx.recv_timeout(timeout).map_err(|_| {
        Error::Invalid(format!(
            "the database at {at} did not answer in {timeout:?}"
        ))
    })?
}

fn replicas_of(db: &mut Db<'_>) -> Result<Vec<Replica>, Error> {
    db.query_map(
        "SELECT application_name::text, state::text, sync_state::text FROM pg_stat_replication",
        (),
        |r| {
            Ok(Replica {
                name: r.get(0)?,
                state: r.get(1)?,
                sync_state: r.get(2)?,
            })
        },
    )
}

/// Looks at the peer's database at `peer`. The connection times out after
/// `timeout`, but a paused peer may accept it and never answer: callers
/// bound the wait themselves.
pub fn probe_peer(peer: SocketAddr, password: &str, me: &str, timeout: Duration) -> PeerStatus {
    let config = remote_config(peer, password, &format!("roost-probe:{me}"), timeout);
    let mut c = match PgConn::connect(&config) {
        Ok(c) => c,
        Err(e) => return PeerStatus::Unreachable(roost_types::error_chain(&e)),
    };
    let mut db = Db::pg(&mut c);
    let seen = (|| -> Result<PeerStatus, Error> {
        let in_recovery: bool = db.query_row("SELECT pg_is_in_recovery()", (), |r| r.get(0))?;
        if in_recovery {
            let lsn: i64 = db.query_row(
                &format!(
                    "SELECT GREATEST({}, {})",
                    lsn_sql("pg_last_wal_receive_lsn()"),
                    lsn_sql("pg_last_wal_replay_lsn()")
                ),
                (),
                |r| r.get(0),
            )?;
            return Ok(PeerStatus::Replica {
                lsn: u64::try_from(lsn).unwrap_or(0),
            });
        }
        let (lease, now) = crate::lease::read_row(&mut db, false)?;
        let we_are_sync = db
            .query_opt(
                "SELECT 1 FROM pg_stat_replication WHERE application_name = ?1
                   AND state = 'streaming' AND sync_state = 'sync'",
                params![replica_name(me)],
                |_| Ok(()),
            )?
            .is_some();
        Ok(PeerStatus::Primary {
            lease,
            now,
            we_are_sync,
        })
    })();
    seen.unwrap_or_else(|e| PeerStatus::Unreachable(roost_types::error_chain(&e)))
}

//! Roost's persistent store: an embedded SQLite database in WAL mode.
//!
//! The store owns the schema, its migrations, and the SQL that reads and
//! writes domain records. It does not decide anything: fault management
//! rules live in `roost-fm`, and the server decides when to write.
//!
//! Writes go through one [`Writer`] (one connection, used by one thread;
//! the audit log has a second one, [`Store::audit_writer`]),
//! which groups many commands into one transaction ([`Batch`]) with a
//! savepoint per command, so one bad command never spoils its neighbours.
//! Reads use a small pool of read-only connections and never block writes.
//!
//! Durability: in [`Durability::Process`] (the default) a committed
//! transaction is in the WAL file before the commit returns, so it survives
//! `kill -9` of the server; in [`Durability::Power`] SQLite also fsyncs at
//! every commit, so it survives power loss.
#![forbid(unsafe_code)]

mod apps;
mod audit;
mod dc;
mod fm;
mod hosts;
mod identity;
mod releases;
mod seal;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use roost_types::ErrorKind;
use rusqlite::{Connection, OpenFlags};

pub use apps::AppWrite;
#[cfg(feature = "fault-injection")]
pub use audit::tamper as audit_tamper;
pub use audit::{AuditQuery, verify_audit_file};
pub use dc::{StoredGroup, StoredGroupApp, StoredSubcloud};
pub use fm::{EventQuery, EventSort};
pub use hosts::{HostWrite, StoredHost};
pub use identity::{ROLES, StoredAssignment, StoredToken, StoredUser, SyncedUser, UserAccount};
pub use releases::{ReleaseWrite, StoredRelease};
pub use seal::{KeySource, KeyWrap, SECRET_KEY_FILE, SealReport, Sealer};

/// The store's file name in a server's data directory.
pub const DATABASE_FILE: &str = "roost.db";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database at {path} is newer than this Roost (schema {found}, known {known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    /// The write depends on something that changed meanwhile (a join token
    /// used or expired since it was read); nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// A commit failed on purpose (the `fault-injection` feature).
    #[error("injected commit failure")]
    Injected,
    /// The data-encryption key is missing, unreadable or not the one the
    /// store's secrets were sealed with.
    #[error("{0}")]
    Sealing(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Sqlite(_) | Error::TooNew { .. } | Error::Injected => ErrorKind::Unavailable,
            Error::Corrupt(_) | Error::Sealing(_) => ErrorKind::Corrupt,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Conflict(_) => ErrorKind::Conflict,
        }
    }
}

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Commits survive a crash of the process (`kill -9`), not a power loss.
    #[default]
    Process,
    /// Commits are fsynced: they survive power loss.
    Power,
}

impl Durability {
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "process" => Some(Durability::Process),
            "power" => Some(Durability::Power),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::Power => "power",
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub durability: Durability,
    /// Most event log records kept; the oldest go first.
    pub event_log_cap: u64,
    /// Where the key that seals the store's secrets is kept.
    pub key: KeySource,
}

impl StoreConfig {
    /// The database at `path`, its key file beside it, default durability.
    pub fn at(path: PathBuf, event_log_cap: u64) -> StoreConfig {
        StoreConfig {
            key: KeySource::beside(&path),
            path,
            durability: Durability::default(),
            event_log_cap,
        }
    }
}

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, include_str!("../migrations/sqlite/0002_hosts.sql")),
    (
        3,
        include_str!("../migrations/sqlite/0003_cluster_network.sql"),
    ),
    (
        4,
        include_str!("../migrations/sqlite/0004_distributed_cloud.sql"),
    ),
    (
        5,
        include_str!("../migrations/sqlite/0005_subcloud_certificates.sql"),
    ),
    (
        6,
        include_str!("../migrations/sqlite/0006_host_labels_cpus.sql"),
    ),
    (7, include_str!("../migrations/sqlite/0007_apps.sql")),
    (8, include_str!("../migrations/sqlite/0008_group_apps.sql")),
    (9, include_str!("../migrations/sqlite/0009_audit.sql")),
    (
        10,
        include_str!("../migrations/sqlite/0010_user_lockout.sql"),
    ),
    (
        11,
        include_str!("../migrations/sqlite/0011_sealed_secrets.sql"),
    ),
    (
        12,
        include_str!("../migrations/sqlite/0012_agent_certificates.sql"),
    ),
    (13, include_str!("../migrations/sqlite/0013_releases.sql")),
    (14, include_str!("../migrations/sqlite/0014_deploy.sql")),
    (
        15,
        include_str!("../migrations/sqlite/0015_site_strategy.sql"),
    ),
    (
        16,
        include_str!("../migrations/sqlite/0016_fleet_rollout.sql"),
    ),
];

/// The opened store.
pub struct Store {
    path: PathBuf,
    config: StoreConfig,
    readers: Mutex<Vec<Connection>>,
    event_log_len: AtomicU64,
    faults: faults::Faults,
    /// Seals and opens the secret columns.
    sealer: Sealer,
    seal_report: SealReport,
    /// Commits still to fail (fault injection in tests).
    #[cfg(any(test, feature = "fault-injection"))]
    fail_commits: std::sync::atomic::AtomicU32,
}

fn configure(conn: &Connection, durability: Durability) -> Result<(), Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Freed space is zeroed: a secret overwritten or deleted leaves no
    // copy in the file.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        },
    )?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(config: StoreConfig) -> Result<Store, Error> {
        let conn = Connection::open(&config.path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        configure(&conn, config.durability)?;
        migrate(&conn, &config.path)?;
        let (sealer, seal_report) = seal::seal_store(&conn, &config.key)?;
        conn.execute(
            "DELETE FROM event_log WHERE seq <= (SELECT MAX(seq) FROM event_log) - ?1",
            [config.event_log_cap as i64],
        )?;
        let len: i64 = conn.query_row("SELECT COUNT(*) FROM event_log", [], |r| r.get(0))?;
        let store = Store {
            path: config.path.clone(),
            config,
            readers: Mutex::new(Vec::new()),
            event_log_len: AtomicU64::new(len as u64),
            faults: faults::Faults::from_env(),
            sealer,
            seal_report,
            #[cfg(any(test, feature = "fault-injection"))]
            fail_commits: std::sync::atomic::AtomicU32::new(0),
        };
        Ok(store)
    }

    /// What opening the store did to its secrets (a new key, clear values
    /// sealed in place), for the server to log.
    pub fn seal_report(&self) -> SealReport {
        self.seal_report
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability mode in force.
    pub fn durability(&self) -> Durability {
        self.config.durability
    }

    /// Makes every `every`th commit after the next `after` fail with
    /// [`Error::Injected`] (`every` 0 turns it off). For tests.
    #[cfg(feature = "fault-injection")]
    pub fn fail_commits(&self, every: u64, after: u64) {
        self.faults.configure(every, after);
    }

    /// Number of records in the event log.
    pub fn event_log_len(&self) -> u64 {
        self.event_log_len.load(Ordering::Relaxed)
    }

    /// The most event log records kept.
    pub fn event_log_cap(&self) -> u64 {
        self.config.event_log_cap
    }

    /// Makes the next `n` commits (of [`Store::write_once`] and of writer
    /// batches) fail after their statements ran, as a full disk would: the
    /// transaction is rolled back and the caller gets an error.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_next_commits(&self, n: u32) {
        self.fail_commits.store(n, Ordering::SeqCst);
    }

    /// Whether this commit must fail (fault injection); always false in
    /// normal builds.
    fn injected_failure(&self) -> Result<(), Error> {
        #[cfg(any(test, feature = "fault-injection"))]
        if self
            .fail_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("injected commit failure".into()),
            )));
        }
        self.faults.before_commit()
    }

    /// Opens the single write connection. Call once and keep it on one thread.
    pub fn writer(&self) -> Result<Writer<'_>, Error> {
        let conn = Connection::open(&self.path)?;
        configure(&conn, self.config.durability)?;
        Ok(Writer {
            conn,
            store: self,
            faults: true,
        })
    }

    /// A second write connection for the audit log's writer. Its commits
    /// take no part in commit fault injection: they run beside every
    /// request, at moments of their own, and would make the injected
    /// failures of the services' commits fall at random.
    pub fn audit_writer(&self) -> Result<Writer<'_>, Error> {
        let mut w = self.writer()?;
        w.faults = false;
        Ok(w)
    }

    /// Runs `f` on a read-only connection from the pool.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        let conn = match self.readers.lock().map(|mut v| v.pop()) {
            Ok(Some(c)) => c,
            _ => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < 4
        {
            pool.push(conn);
        }
        out
    }

    /// Runs `f` in its own short write transaction on a fresh connection.
    /// For rare writes (identity, settings) that need not go through the
    /// batching writer; SQLite serialises them with the writer.
    pub fn write_once<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = Connection::open(&self.path)?;
        configure(&conn, self.config.durability)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        self.injected_failure()?;
        tx.commit()?;
        Ok(out)
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), Error> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > known {
        return Err(Error::TooNew {
            path: path.to_path_buf(),
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let res = conn.execute_batch(sql).and_then(|_| {
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                (version, now),
            )
        });
        match res {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// The single write connection.
pub struct Writer<'s> {
    conn: Connection,
    store: &'s Store,
    /// Whether its commits may be failed on purpose (tests).
    faults: bool,
}

impl<'s> Writer<'s> {
    /// Starts a batch: one transaction holding many commands.
    pub fn begin(&mut self) -> Result<Batch<'_>, Error> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Batch {
            tx,
            store: self.store,
            events_added: 0,
            faults: self.faults,
        })
    }
}

/// One transaction of the writer. Dropped without [`Batch::commit`], it rolls back.
pub struct Batch<'w> {
    tx: rusqlite::Transaction<'w>,
    store: &'w Store,
    events_added: u64,
    faults: bool,
}

impl Batch<'_> {
    /// Runs `f` inside a savepoint: if it fails, what it wrote is undone and
    /// the rest of the batch goes on.
    pub fn step<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Savepoint<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let sp = self.tx.savepoint()?;
        let out = f(&sp)?;
        sp.commit()?;
        Ok(out)
    }

    /// Persists what one fault management command did, in its own savepoint.
    pub fn persist_fm(&mut self, outcome: &roost_fm::Outcome) -> Result<(), Error> {
        let sp = self.tx.savepoint()?;
        fm::persist(&sp, outcome)?;
        sp.commit()?;
        self.events_added += outcome.events.len() as u64;
        Ok(())
    }

    /// Prunes the event log to its cap and commits. On return the batch is durable
    /// to the configured [`Durability`].
    pub fn commit(self) -> Result<(), Error> {
        let cap = self.store.config.event_log_cap as i64;
        let pruned = if self.events_added > 0 {
            self.tx.execute(
                "DELETE FROM event_log WHERE seq <= (SELECT MAX(seq) FROM event_log) - ?1",
                [cap],
            )? as u64
        } else {
            0
        };
        if self.faults {
            self.store.injected_failure()?;
        }
        self.tx.commit()?;
        let len = &self.store.event_log_len;
        let now = len.load(Ordering::Relaxed) + self.events_added - pruned;
        len.store(now, Ordering::Relaxed);
        Ok(())
    }
}

mod faults;
#[cfg(test)]
mod tests;

//! Roost's persistent store: an embedded SQLite database in WAL mode, or
//! a PostgreSQL database (chosen by a `postgres://` URL). Both run the same
//! SQL through [`sql::Db`] and hold the same schema.
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
pub mod cluster;
mod copy;
mod dc;
mod fm;
mod hosts;
mod identity;
mod lease;
mod notify;
mod releases;
mod seal;
mod sql;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use roost_types::ErrorKind;
use rusqlite::{Connection, OpenFlags};
use sql::{Db, Dialect};

pub use apps::AppWrite;
#[cfg(feature = "fault-injection")]
pub use audit::tamper as audit_tamper;
pub use audit::{AuditQuery, verify_audit_file};
pub use copy::{CopyReport, TableDigest};
pub use dc::{StoredGroup, StoredGroupApp, StoredSubcloud};
pub use fm::{EventQuery, EventSort};
pub use hosts::{HostWrite, StoredHost};
pub use identity::{
    ROLES, StoredAppCredential, StoredAssignment, StoredToken, StoredUser, SyncedUser, UserAccount,
};
pub use lease::LeaseRow;
pub use notify::{MAX_DEAD_LETTERS, StoredDeadLetter, StoredDestination};
pub use releases::{ReleaseWrite, StoredRelease};
pub use seal::{KeySource, KeyWrap, SECRET_KEY_FILE, SealReport, Sealer};

/// The store's file name in a server's data directory.
pub const DATABASE_FILE: &str = "roost.db";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error")]
    Postgres(#[from] postgres::Error),
    #[error("the database at {location} is newer than this Roost (schema {found}, known {known})")]
    TooNew {
        location: String,
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
    /// This server no longer holds the controller lease its writes are
    /// fenced with: another server is active. Nothing was written.
    #[error("{0}")]
    Fenced(String),
    /// The data-encryption key is missing, unreadable or not the one the
    /// store's secrets were sealed with.
    #[error("{0}")]
    Sealing(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Sqlite(_)
            | Error::Postgres(_)
            | Error::TooNew { .. }
            | Error::Injected
            | Error::Fenced(_) => ErrorKind::Unavailable,
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

/// Where the store's database is.
#[derive(Clone)]
pub enum Location {
    /// An embedded SQLite database in this file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its URL (`postgres://user:pass@host/db`).
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL database;
    /// anything else is the path of a SQLite file.
    pub fn parse(s: &str) -> Result<Location, Error> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            s.parse::<postgres::Config>().map_err(|e| {
                Error::Invalid(format!("{} is not a PostgreSQL URL: {e}", redact_url(s)))
            })?;
            Ok(Location::Postgres(s.to_string()))
        } else if s.contains("://") {
            Err(Error::Invalid(format!(
                "{} is neither a postgres:// URL nor a file path",
                redact_url(s)
            )))
        } else {
            Ok(Location::Sqlite(PathBuf::from(s)))
        }
    }

    /// For messages and logs: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact_url(url),
        }
    }

    /// "sqlite" or "postgres".
    pub fn backend(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `url` with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rfind('@') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
        None => url.to_string(),
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub location: Location,
    /// For SQLite; PostgreSQL's durability is its server's
    /// (`synchronous_commit`, `fsync`).
    pub durability: Durability,
    /// Most event log records kept; the oldest go first.
    pub event_log_cap: u64,
    /// Where the key that seals the store's secrets is kept.
    pub key: KeySource,
}

impl StoreConfig {
    /// The SQLite database at `path`, its key file beside it, default durability.
    pub fn at(path: PathBuf, event_log_cap: u64) -> StoreConfig {
        StoreConfig {
            key: KeySource::beside(&path),
            location: Location::Sqlite(path),
            durability: Durability::default(),
            event_log_cap,
        }
    }
}

/// Schema versions, and the migration that brings each, per backend. Both
/// lists end at the same version: the schemas are the same.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
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
    (17, include_str!("../migrations/sqlite/0017_lease.sql")),
    (
        18,
        include_str!("../migrations/sqlite/0018_notifications.sql"),
    ),
    (
        19,
        include_str!("../migrations/sqlite/0019_application_credentials.sql"),
    ),
];

/// PostgreSQL support came at schema 16: its first migration is the whole
/// schema of that version.
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (16, include_str!("../migrations/postgres/0016_schema.sql")),
    (17, include_str!("../migrations/postgres/0017_lease.sql")),
    (
        18,
        include_str!("../migrations/postgres/0018_notifications.sql"),
    ),
    (
        19,
        include_str!("../migrations/postgres/0019_application_credentials.sql"),
    ),
];

/// The advisory lock (PostgreSQL) that serialises schema migrations
/// between servers starting together.
const MIGRATION_LOCK: i64 = 0x526f_6f73_7401;

/// One connection to either backend.
pub(crate) enum RawConn {
    Sqlite(Connection),
    Pg(Box<sql::PgConn>),
}

impl RawConn {
    pub(crate) fn db(&mut self) -> Db<'_> {
        match self {
            RawConn::Sqlite(c) => Db::sqlite(c),
            RawConn::Pg(c) => Db::pg(c),
        }
    }

    fn usable(&self) -> bool {
        match self {
            RawConn::Sqlite(_) => true,
            RawConn::Pg(c) => !c.is_closed(),
        }
    }
}

/// The opened store.
pub struct Store {
    config: StoreConfig,
    /// The parsed PostgreSQL connection settings, for a PostgreSQL store.
    pg: Option<Mutex<postgres::Config>>,
    readers: Mutex<Vec<RawConn>>,
    /// This process's `application_name` on PostgreSQL ([`Store::set_name`]).
    app_name: Mutex<String>,
    /// The lease holder and epoch every write is checked against
    /// ([`Store::fence`]).
    fence: Mutex<Option<(String, i64)>>,
    /// Idle connections for [`Store::write_once`] (PostgreSQL only; SQLite
    /// opens one per call).
    writers: Mutex<Vec<RawConn>>,
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
    conn.set_prepared_statement_cache_capacity(128);
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

fn pg_config(url: &str) -> Result<postgres::Config, Error> {
    let mut config = url
        .parse::<postgres::Config>()
        .map_err(|e| Error::Invalid(format!("{} is not a PostgreSQL URL: {e}", redact_url(url))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("roost");
    }
    // A statement that hangs (a lock never released) fails instead of
    // holding its caller for ever.
    config.options("-c statement_timeout=60000 -c idle_in_transaction_session_timeout=60000");
    Ok(config)
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(config: StoreConfig) -> Result<Store, Error> {
        let (mut conn, pg) = match &config.location {
            Location::Sqlite(path) => {
                let conn = Connection::open(path)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                configure(&conn, config.durability)?;
                (RawConn::Sqlite(conn), None)
            }
            Location::Postgres(url) => {
                let pg = pg_config(url)?;
                (RawConn::Pg(Box::new(sql::PgConn::connect(&pg)?)), Some(pg))
            }
        };
        let mut db = conn.db();
        migrate(&mut db, &config.location)?;
        let (sealer, seal_report) = seal::seal_store(&mut db, &config.key)?;
        db.execute(
            "DELETE FROM event_log WHERE seq <= (SELECT MAX(seq) FROM event_log) - ?1",
            [config.event_log_cap as i64],
        )?;
        let len: i64 = db.query_row("SELECT COUNT(*) FROM event_log", (), |r| r.get(0))?;
        let readers = match conn {
            RawConn::Pg(_) => vec![conn],
            RawConn::Sqlite(_) => Vec::new(),
        };
        let store = Store {
            config,
            pg: pg.map(Mutex::new),
            readers: Mutex::new(readers),
            writers: Mutex::new(Vec::new()),
            fence: Mutex::new(None),
            app_name: Mutex::new("roost".into()),
            event_log_len: AtomicU64::new(len as u64),
            faults: faults::Faults::from_env(),
            sealer,
            seal_report,
            #[cfg(any(test, feature = "fault-injection"))]
            fail_commits: std::sync::atomic::AtomicU32::new(0),
        };
        Ok(store)
    }

    /// This process's `application_name` on PostgreSQL.
    pub(crate) fn own_application_name(&self) -> String {
        self.app_name
            .lock()
            .map_or_else(|_| "roost".into(), |n| n.clone())
    }

    /// Names this server's connections (PostgreSQL's `application_name`,
    /// `roost:NAME#INSTANCE`) so that a server taking the lease over can end
    /// them, and so that the servers connected can be listed.
    /// Call before making writers; pooled connections are dropped.
    pub fn set_name(&self, name: &str) {
        if let Some(pg) = &self.pg
            && let Ok(mut config) = pg.lock()
        {
            let instance = std::process::id()
                ^ (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos()));
            let app = lease::application_name(name, instance);
            config.application_name(&app);
            if let Ok(mut own) = self.app_name.lock() {
                *own = app;
            }
            for pool in [&self.readers, &self.writers] {
                if let Ok(mut p) = pool.lock() {
                    p.clear();
                }
            }
        }
    }

    /// What opening the store did to its secrets (a new key, clear values
    /// sealed in place), for the server to log.
    pub fn seal_report(&self) -> SealReport {
        self.seal_report
    }

    /// Where the database lives.
    pub fn location(&self) -> &Location {
        &self.config.location
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

    /// A new connection that may write.
    fn connect(&self) -> Result<RawConn, Error> {
        match (&self.config.location, &self.pg) {
            (_, Some(pg)) => {
                let config = pg
                    .lock()
                    .map_err(|_| Error::Invalid("the PostgreSQL settings are poisoned".into()))?
                    .clone();
                Ok(RawConn::Pg(Box::new(sql::PgConn::connect(&config)?)))
            }
            (Location::Sqlite(path), None) => {
                let conn = Connection::open(path)?;
                configure(&conn, self.config.durability)?;
                Ok(RawConn::Sqlite(conn))
            }
            (Location::Postgres(_), None) => Err(Error::Invalid(
                "the store lost its PostgreSQL settings".into(),
            )),
        }
    }

    /// A connection from `pool`, or a new one.
    fn pooled(
        &self,
        pool: &Mutex<Vec<RawConn>>,
        open: impl FnOnce() -> Result<RawConn, Error>,
    ) -> Result<RawConn, Error> {
        while let Some(c) = pool.lock().ok().and_then(|mut v| v.pop()) {
            if c.usable() {
                return Ok(c);
            }
        }
        open()
    }

    fn give_back(pool: &Mutex<Vec<RawConn>>, conn: RawConn) {
        if conn.usable()
            && let Ok(mut pool) = pool.lock()
            && pool.len() < 4
        {
            pool.push(conn);
        }
    }

    /// Starts a write transaction on `conn`; a PostgreSQL connection found
    /// closed on the way (the server restarted, or a new lease holder ended
    /// it) is replaced once. Nothing was sent yet, so nothing is repeated.
    fn begin_on(&self, conn: &mut RawConn) -> Result<(), Error> {
        match conn.db().begin_write() {
            Err(Error::Postgres(_)) if !conn.usable() => {
                *conn = self.connect()?;
                conn.db().begin_write()
            }
            other => other,
        }
    }

    /// Opens the single write connection. Call once and keep it on one thread.
    pub fn writer(&self) -> Result<Writer<'_>, Error> {
        Ok(Writer {
            conn: self.connect()?,
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
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = self.pooled(&self.readers, || match (&self.config.location, &self.pg) {
            (Location::Sqlite(path), _) => {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(128);
                Ok(RawConn::Sqlite(c))
            }
            _ => self.connect(),
        })?;
        let out = f(&mut conn.db());
        Self::give_back(&self.readers, conn);
        out
    }

    /// Runs `f` in its own short write transaction. For rare writes
    /// (identity, settings) that need not go through the batching writer;
    /// they are serialised with the writer.
    pub(crate) fn write_once<T>(
        &self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let fence = self.fencing();
        self.write_with(fence, f)
    }

    /// One statement's worth of writing outside the write lock and the
    /// lease check: on PostgreSQL a statement in its own transaction, on
    /// SQLite a short write transaction. For the lease row only.
    pub(crate) fn autocommit<T>(
        &self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.pg.is_none() {
            return self.write_unfenced(f);
        }
        let mut conn = self.pooled(&self.writers, || self.connect())?;
        let out = f(&mut conn.db());
        Self::give_back(&self.writers, conn);
        out
    }

    /// [`Store::write_once`] without the lease check (taking the lease).
    pub(crate) fn write_unfenced<T>(
        &self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.write_with(None, f)
    }

    fn write_with<T>(
        &self,
        fence: Option<(String, i64)>,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conn = match &self.pg {
            Some(_) => self.pooled(&self.writers, || self.connect())?,
            None => self.connect()?,
        };
        self.begin_on(&mut conn)?;
        let out = {
            let mut db = conn.db();
            let out = fence
                .map_or(Ok(()), |(holder, epoch)| {
                    lease::check(&mut db, &holder, epoch)
                })
                .and_then(|()| f(&mut db))
                .and_then(|out| {
                    self.injected_failure()?;
                    db.batch("COMMIT")?;
                    Ok(out)
                });
            if out.is_err() {
                let _ = db.batch("ROLLBACK");
            }
            out
        };
        if self.pg.is_some() {
            Self::give_back(&self.writers, conn);
        }
        out
    }
}

fn migrate(db: &mut Db<'_>, location: &Location) -> Result<(), Error> {
    let migrations = match db.dialect() {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::Postgres => POSTGRES_MIGRATIONS,
    };
    match db.dialect() {
        Dialect::Sqlite => db.batch("BEGIN IMMEDIATE")?,
        Dialect::Postgres => {
            db.batch("BEGIN")?;
            // Servers starting together on one database migrate one at a time.
            db.execute("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK])?;
        }
    }
    let res = (|| {
        db.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY NOT NULL, applied_at BIGINT NOT NULL)",
        )?;
        let current: i64 = db.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            (),
            |r| r.get(0),
        )?;
        let known = migrations.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(Error::TooNew {
                location: location.describe(),
                found: current,
                known,
            });
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
            db.batch(sql)?;
            db.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                [*version, now],
            )?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => db.batch("COMMIT"),
        Err(e) => {
            let _ = db.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The single write connection.
pub struct Writer<'s> {
    conn: RawConn,
    store: &'s Store,
    /// Whether its commits may be failed on purpose (tests).
    faults: bool,
}

impl<'s> Writer<'s> {
    /// Starts a batch: one transaction holding many commands. A PostgreSQL
    /// connection that was lost is opened again first.
    pub fn begin(&mut self) -> Result<Batch<'_>, Error> {
        if !self.conn.usable() {
            self.conn = self.store.connect()?;
        }
        self.store.begin_on(&mut self.conn)?;
        let mut db = self.conn.db();
        if let Some((holder, epoch)) = self.store.fencing()
            && let Err(e) = lease::check(&mut db, &holder, epoch)
        {
            let _ = db.batch("ROLLBACK");
            return Err(e);
        }
        Ok(Batch {
            conn: &mut self.conn,
            store: self.store,
            events_added: 0,
            faults: self.faults,
            open: true,
        })
    }
}

/// One transaction of the writer. Dropped without [`Batch::commit`], it rolls back.
pub struct Batch<'w> {
    conn: &'w mut RawConn,
    store: &'w Store,
    events_added: u64,
    faults: bool,
    /// The transaction is still open (not committed).
    open: bool,
}

impl Batch<'_> {
    /// Runs `f` inside a savepoint: if it fails, what it wrote is undone and
    /// the rest of the batch goes on.
    pub(crate) fn step<T>(
        &mut self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut db = self.conn.db();
        db.batch("SAVEPOINT step")?;
        match f(&mut db) {
            Ok(out) => {
                db.batch("RELEASE SAVEPOINT step")?;
                Ok(out)
            }
            Err(e) => {
                db.batch("ROLLBACK TO SAVEPOINT step; RELEASE SAVEPOINT step")?;
                Err(e)
            }
        }
    }

    /// Persists what one fault management command did, in its own savepoint.
    pub fn persist_fm(&mut self, outcome: &roost_fm::Outcome) -> Result<(), Error> {
        self.step(|db| fm::persist(db, outcome))?;
        self.events_added += outcome.events.len() as u64;
        Ok(())
    }

    /// Prunes the event log to its cap and commits. On return the batch is durable
    /// to the configured [`Durability`].
    pub fn commit(mut self) -> Result<(), Error> {
        let cap = self.store.config.event_log_cap as i64;
        let mut db = self.conn.db();
        let pruned = if self.events_added > 0 {
            db.execute(
                "DELETE FROM event_log WHERE seq <= (SELECT MAX(seq) FROM event_log) - ?1",
                [cap],
            )? as u64
        } else {
            0
        };
        if self.faults {
            self.store.injected_failure()?;
        }
        db.batch("COMMIT")?;
        self.open = false;
        let len = &self.store.event_log_len;
        let now = (len.load(Ordering::Relaxed) + self.events_added).saturating_sub(pruned);
        len.store(now, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.db().batch("ROLLBACK");
        }
    }
}

mod faults;
#[cfg(any(test, feature = "fault-injection"))]
pub mod testdb;
#[cfg(test)]
mod tests;

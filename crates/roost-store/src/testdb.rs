//! Fresh databases of each backend for the store's tests: the conformance
//! suite runs every test on SQLite and on PostgreSQL.
//!
//! PostgreSQL is the server named by `ROOST_TEST_POSTGRES` (a URL to a
//! database the user may create databases from); each test gets a database
//! of its own, dropped at the end. The test command starts one. Without it,
//! under `ROOST_TEST_STRICT=1` the tests fail; otherwise they run on SQLite
//! only and say so.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Durability, KeySource, Location, Store, StoreConfig};

/// The variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "ROOST_TEST_POSTGRES";

/// One empty database; dropped (PostgreSQL) or deleted (SQLite) with it.
pub struct TestDb {
    pub location: Location,
    pub dir: tempfile::TempDir,
    /// The server URL and database name to drop at the end.
    drop_db: Option<(String, String)>,
}

impl TestDb {
    pub fn config(&self, event_log_cap: u64) -> StoreConfig {
        StoreConfig {
            key: KeySource::File(self.dir.path().join("secret.key")),
            location: self.location.clone(),
            durability: Durability::Process,
            event_log_cap,
        }
    }

    pub fn open(&self, event_log_cap: u64) -> Store {
        Store::open(self.config(event_log_cap)).unwrap_or_else(|e| {
            panic!("open {:?}: {}", self.location, roost_types::error_chain(&e))
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.location, Location::Postgres(_))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((url, name)) = self.drop_db.take()
            && let Ok(mut c) = postgres::Client::connect(&url, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// The PostgreSQL server for tests, if there is one; under strict mode its
/// absence fails the test.
pub fn postgres_server() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ROOST_TEST_STRICT").as_deref() != Ok("1"),
                "{POSTGRES_ENV} is not set: the store's PostgreSQL tests need a server (./scripts/test starts one)"
            );
            eprintln!("{POSTGRES_ENV} is not set: testing the SQLite store only");
            None
        }
    }
}

/// A new, empty database on the test PostgreSQL server.
pub fn postgres_db(server: &str) -> TestDb {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "roost_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = postgres::Client::connect(server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_ENV}: {e}"));
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        c.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", roost_types::error_chain(&e)));
    }
    TestDb {
        location: Location::Postgres(url_with_db(server, &name)),
        dir: tempfile::tempdir().unwrap(),
        drop_db: Some((server.to_string(), name)),
    }
}

/// `server` (a postgres:// URL) naming database `name` instead.
fn url_with_db(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    let host_end = rest.find('/').map(|i| base.len() - rest.len() + i);
    let root = match host_end {
        Some(i) => &base[..i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A SQLite database in a new directory.
pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    TestDb {
        location: Location::Sqlite(dir.path().join("roost.db")),
        dir,
        drop_db: None,
    }
}

/// One empty database of each backend under test.
pub fn each_backend() -> Vec<TestDb> {
    let mut v = vec![sqlite_db()];
    if let Some(server) = postgres_server() {
        v.push(postgres_db(&server));
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_url_names_another_database() {
        assert_eq!(
            super::url_with_db("postgres://u@localhost:5432/postgres", "t1"),
            "postgres://u@localhost:5432/t1"
        );
        assert_eq!(
            super::url_with_db("postgres://u@%2Ftmp%2Fpg/postgres?port=5433", "t1"),
            "postgres://u@%2Ftmp%2Fpg/t1?port=5433"
        );
        assert_eq!(
            super::url_with_db("postgres://u@localhost", "t1"),
            "postgres://u@localhost/t1"
        );
    }
}

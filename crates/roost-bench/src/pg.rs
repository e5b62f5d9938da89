//! The PostgreSQL server the benchmarks on that store use, and databases
//! of their own on it (through `psql`).
//!
//! The server is the one the tests use: `ROOST_TEST_POSTGRES`, else the
//! local one `scripts/test-postgres` starts and names. Each benchmark makes
//! a new database, `roost_bench_<pid>_<n>`, and drops it when done. Not
//! `roost_test_…` as [`roost_test_support::postgres_store`] names them: the
//! test command drops every `roost_test_` database when it starts, and a
//! benchmark on a shared machine may be running then.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the PostgreSQL server for tests.
pub const SERVER_ENV: &str = "ROOST_TEST_POSTGRES";

/// The PostgreSQL server's URL: `ROOST_TEST_POSTGRES`, else what
/// `scripts/test-postgres` prints (it starts the local test server if
/// needed); or why there is none.
pub fn server(root: &Path) -> Result<String, String> {
    if let Ok(url) = std::env::var(SERVER_ENV)
        && !url.is_empty()
    {
        return Ok(url);
    }
    let script = root.join("scripts/test-postgres");
    eprintln!(
        "roost-bench: {SERVER_ENV} is not set; asking {}",
        script.display()
    );
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || url.is_empty() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    eprintln!("roost-bench: PostgreSQL at {url}");
    Ok(url)
}

/// `psql`: the newest of Debian's PostgreSQL packages, else on the `PATH`.
fn psql() -> PathBuf {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|d| {
            let version = d.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = d.path().join("bin/psql");
            bin.is_file().then_some((version, bin))
        })
        .collect();
    debian.sort();
    debian.pop().map_or_else(|| "psql".into(), |(_, p)| p)
}

/// Runs one SQL command on the database at `url`; its rows, fields
/// separated by `|`.
pub fn query(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new(psql())
        .args(["-AtX", "-v", "ON_ERROR_STOP=1", "-F", "|", "-c", sql, url])
        .stdin(Stdio::null())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {sql}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `server` (a `postgres://` URL) naming database `name` instead.
fn url_with_db(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The PostgreSQL server as it reports itself.
pub struct Info {
    pub version: String,
    pub synchronous_commit: String,
    pub fsync: String,
    /// The filesystem holding its data directory, when it could be read.
    pub filesystem: Option<String>,
}

/// Asks the PostgreSQL server at `url` for its version and commit settings.
pub fn info(url: &str) -> anyhow::Result<Info> {
    let text = query(
        url,
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'), \
         current_setting('fsync'), current_setting('data_directory')",
    )?;
    let f: Vec<&str> = text.split('|').collect();
    let [version, synchronous_commit, fsync, data] = f[..] else {
        anyhow::bail!("psql answered {text:?}");
    };
    Ok(Info {
        version: version.to_string(),
        synchronous_commit: synchronous_commit.to_string(),
        fsync: fsync.to_string(),
        filesystem: (!data.is_empty()).then(|| crate::procfs::filesystem_of(Path::new(data))),
    })
}

/// A new, empty database, dropped (with its connections ended) when this is.
pub struct Database {
    server: String,
    pub name: String,
    /// Its URL, for `roost server --store`.
    pub url: String,
}

impl Database {
    /// Makes a new database on `server`.
    pub fn create(server: &str) -> anyhow::Result<Database> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "roost_bench_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        query(
            server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        query(server, &format!("CREATE DATABASE {name}"))?;
        Ok(Database {
            server: server.to_string(),
            url: url_with_db(server, &name),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = query(&self.server, &sql) {
            eprintln!("roost-bench: cannot drop database {}: {e:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_another_database_on_the_same_server() {
        assert_eq!(
            url_with_db("postgres://roost@127.0.0.1:54329/postgres", "b_1"),
            "postgres://roost@127.0.0.1:54329/b_1"
        );
        assert_eq!(
            url_with_db("postgres://u:p@h/db?sslmode=disable", "b_1"),
            "postgres://u:p@h/b_1?sslmode=disable"
        );
        assert_eq!(url_with_db("postgres://u@h", "b_1"), "postgres://u@h/b_1");
    }
}

//! The controller lease: one row saying which of the servers sharing a
//! store is active, under which epoch, until when. Times are the
//! database's own clock (microseconds), so servers with skewed clocks
//! agree on when a lease has expired.
//!
//! The store only reads and writes the row; `roost_ha` decides. Once a
//! server holds a lease it fences the store ([`Store::fence`]): from then
//! on every write transaction first checks, under the write lock, that
//! the lease is still this server's, under the same epoch, and unexpired.
//! A server that was paused or cut off and lost its lease can therefore
//! never write again under its old epoch.

use crate::sql::{Db, Dialect, params};
use crate::{Error, Store};

pub use roost_types::lease::LeaseRow;

/// The database clock, in microseconds since the epoch, as SQL.
fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000000 AS INTEGER)",
        Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
    }
}

/// The row and the database's time now.
pub(crate) fn read_row(db: &mut Db<'_>, lock: bool) -> Result<(Option<LeaseRow>, i64), Error> {
    let now = now_sql(db.dialect());
    let lock = if lock && db.dialect() == Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = db.query_opt(
        &format!("SELECT holder, epoch, expires_at, url FROM lease WHERE id = 1{lock}"),
        (),
        |r| {
            Ok(LeaseRow {
                holder: r.get(0)?,
                epoch: r.get(1)?,
                expires_at: r.get(2)?,
                url: r.get(3)?,
            })
        },
    )?;
    let now: i64 = db.query_row(&format!("SELECT {now}"), (), |r| r.get(0))?;
    Ok((row, now))
}

/// Fails with [`Error::Fenced`] unless the lease is `holder`'s under
/// `epoch` and unexpired now.
pub(crate) fn check(db: &mut Db<'_>, holder: &str, epoch: i64) -> Result<(), Error> {
    let now = now_sql(db.dialect());
    let ok = db
        .query_opt(
            &format!(
                "SELECT 1 FROM lease WHERE id = 1 AND holder = ?1 AND epoch = ?2
                 AND expires_at > {now}"
            ),
            params![holder, epoch],
            |_| Ok(()),
        )?
        .is_some();
    if ok {
        Ok(())
    } else {
        Err(Error::Fenced(format!(
            "this server ({holder}) no longer holds the controller lease of epoch {epoch}: another server is active"
        )))
    }
}

impl Store {
    /// The lease row (none before any server took one) and the database's
    /// time now.
    pub fn lease(&self) -> Result<(Option<LeaseRow>, i64), Error> {
        self.read(|c| read_row(c, false))
    }

    /// Takes the lease for `holder` (reachable at `url`) for `ttl_micros`,
    /// with the next epoch, if the row is still `seen` (what the decision
    /// to take it was based on; `None`: no row). Returns the new epoch, or
    /// `None` if the row changed meanwhile.
    ///
    /// On PostgreSQL the connections of the previous holder (another
    /// server) are ended first: a paused holder cannot keep the write lock,
    /// and whatever it had not committed is rolled back, never acknowledged.
    pub fn take_lease(
        &self,
        holder: &str,
        url: &str,
        seen: Option<&LeaseRow>,
        ttl_micros: i64,
    ) -> Result<Option<i64>, Error> {
        if let Some(old) = seen
            && self.pg.is_some()
        {
            // Every process of the previous holder but this one (a paused
            // earlier process of this very server included).
            let mine = self.own_application_name();
            self.read(|c| {
                c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database()
                       AND split_part(application_name, '#', 1) = ?1
                       AND application_name != ?2 AND pid != pg_backend_pid()",
                    params![server_tag(&old.holder), mine],
                )
            })?;
        }
        self.write_unfenced(|db| {
            let (row, now) = read_row(db, true)?;
            if row.as_ref() != seen {
                return Ok(None);
            }
            let epoch = row.as_ref().map_or(0, |r| r.epoch) + 1;
            db.execute(
                "INSERT INTO lease (id, holder, epoch, expires_at, url) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch,
                    expires_at = excluded.expires_at, url = excluded.url",
                params![holder, epoch, now.saturating_add(ttl_micros), url],
            )?;
            Ok(Some(epoch))
        })
    }

    /// Extends `holder`'s lease of `epoch` by `ttl_micros` from now; false
    /// if it is no longer theirs (another server took it).
    pub fn renew_lease(&self, holder: &str, epoch: i64, ttl_micros: i64) -> Result<bool, Error> {
        self.autocommit(|c| {
            let now = now_sql(c.dialect());
            // A renewal waits for no flush, neither a duplex replica's nor
            // the local disk's: a lost replica or a disk busy with a
            // checkpoint must not make the active lose its lease. It is
            // visible to the standbys at once all the same; a database crash
            // may forget it, which ends every connection, and the epoch
            // check refuses the old holder's writes.
            let local = match c.dialect() {
                Dialect::Postgres => {
                    " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
                }
                Dialect::Sqlite => "",
            };
            let n = c.execute(
                &format!(
                    "UPDATE lease SET expires_at = {now} + ?3
                     WHERE id = 1 AND holder = ?1 AND epoch = ?2{local}"
                ),
                params![holder, epoch, ttl_micros],
            )?;
            Ok(n == 1)
        })
    }

    /// Gives the lease up at once (a stop or a switch-over): the next
    /// server may take it without waiting for it to expire.
    pub fn release_lease(&self, holder: &str, epoch: i64) -> Result<bool, Error> {
        self.autocommit(|c| {
            Ok(c.execute(
                "UPDATE lease SET expires_at = 0 WHERE id = 1 AND holder = ?1 AND epoch = ?2",
                params![holder, epoch],
            )? == 1)
        })
    }

    /// From now on, every write transaction checks that `holder` still
    /// holds the lease of `epoch` ([`Error::Fenced`] otherwise).
    pub fn fence(&self, holder: &str, epoch: i64) {
        if let Ok(mut f) = self.fence.lock() {
            *f = Some((holder.to_string(), epoch));
        }
    }

    /// The holder and epoch writes are checked against, if fenced.
    pub(crate) fn fencing(&self) -> Option<(String, i64)> {
        self.fence.lock().ok().and_then(|f| f.clone())
    }
}

impl Store {
    /// The servers connected to this store now, by name (each server's
    /// connections carry it, [`Store::set_name`], and so does a duplex
    /// standby's replication connection); none on SQLite, which one server
    /// alone uses.
    pub fn connected_servers(&self) -> Result<Vec<String>, Error> {
        if self.pg.is_none() {
            return Ok(Vec::new());
        }
        self.read(|c| {
            let names: Vec<String> = c.query_map(
                "SELECT DISTINCT split_part(application_name, '#', 1)::text FROM pg_stat_activity
                 WHERE (datname = current_database() OR backend_type = 'walsender')
                   AND application_name LIKE 'roost:%'
                 ORDER BY 1",
                (),
                |r| r.get(0),
            )?;
            Ok(names
                .into_iter()
                .filter_map(|n| n.strip_prefix("roost:").map(str::to_string))
                .collect())
        })
    }
}

impl Store {
    /// Whether another process than this one runs under server name `name`
    /// (has connections to the store): an earlier process of this server
    /// that is still alive (paused), or a server given the same name.
    pub fn other_process_named(&self, name: &str) -> Result<bool, Error> {
        if self.pg.is_none() {
            return Ok(false);
        }
        let mine = self.own_application_name();
        self.read(|c| {
            Ok(c.query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                       AND split_part(application_name, '#', 1) = ?1 AND application_name != ?2",
                params![server_tag(name), mine],
                |_| Ok(()),
            )?
            .is_some())
        })
    }
}

/// What a server's connections' `application_name` starts with.
fn server_tag(name: &str) -> String {
    format!("roost:{name}")
}

/// The PostgreSQL `application_name` of this process's connections:
/// `roost:NAME#INSTANCE`, the instance telling processes of one name apart.
pub(crate) fn application_name(name: &str, instance: u32) -> String {
    format!("{}#{instance:08x}", server_tag(name))
}

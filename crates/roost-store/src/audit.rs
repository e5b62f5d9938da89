//! SQL for the audit log (`audit_log`, `audit_anchor`) and a system
//! controller's copy of its subclouds' records (`dc_subcloud_audit`).
//!
//! The store only keeps rows: numbering and hashing are
//! `roost_types::audit`'s, done by the server's one audit writer.

use std::path::Path;

use roost_types::Timestamp;
use roost_types::audit::{AuditEntry, AuditRecord, Chain, ChainHash, Verdict, Verifier};
use rusqlite::{Connection, OpenFlags};

use crate::sql::{Db, Params, Row, ToValue, Value, params};

use crate::{Batch, Error, Store};

/// Separates roles in the `roles` column (a character no role name has).
const ROLE_SEP: char = '\u{1f}';

const COLUMNS: &str = "seq, time, \"user\", roles, source, method, path, status, prev_hash, hash";

fn join_roles(roles: &[String]) -> String {
    roles.join(&ROLE_SEP.to_string())
}

fn split_roles(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(ROLE_SEP).map(str::to_string).collect()
    }
}

/// A hash column; one that is not 64 hex digits reads as zeros, which
/// never verifies (the verifier reports the record), rather than stopping
/// the scan.
fn hash_col(s: &str) -> ChainHash {
    ChainHash::from_hex(s).unwrap_or(ChainHash([0xff; 32]))
}

fn row(r: &Row) -> Result<AuditRecord, Error> {
    let status: i64 = r.get(7)?;
    Ok(AuditRecord {
        seq: r.get::<i64>(0)? as u64,
        entry: AuditEntry {
            time: Timestamp(r.get(1)?),
            user: r.get(2)?,
            roles: split_roles(&r.get::<String>(3)?),
            source: r.get(4)?,
            method: r.get(5)?,
            path: r.get(6)?,
            status: u16::try_from(status).unwrap_or(u16::MAX),
        },
        prev_hash: hash_col(&r.get::<String>(8)?),
        hash: hash_col(&r.get::<String>(9)?),
    })
}

/// A record's values in [`COLUMNS`] order.
fn record_values(r: &AuditRecord) -> Vec<Value> {
    params![
        r.seq as i64,
        r.entry.time.micros(),
        r.entry.user,
        join_roles(&r.entry.roles),
        r.entry.source,
        r.entry.method,
        r.entry.path,
        r.entry.status,
        r.prev_hash.to_hex(),
        r.hash.to_hex()
    ]
    .values()
}

/// Filters of an audit listing; the newest `limit` matching records, oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub limit: u64,
}

fn anchor(c: &mut Db<'_>) -> Result<Option<Chain>, Error> {
    let a: Option<(i64, String)> =
        c.query_opt("SELECT seq, hash FROM audit_anchor WHERE id = 1", (), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    match a {
        None => Ok(None),
        Some((seq, h)) => match ChainHash::from_hex(&h) {
            Some(h) => Ok(Some(Chain::resume(seq as u64, h))),
            None => Err(Error::Corrupt(format!("audit anchor hash {h:?}"))),
        },
    }
}

/// Every record in stored order, fed to a verifier from the anchor.
fn verify_on(c: &mut Db<'_>, head: Option<u64>) -> Result<Verdict, Error> {
    // One read transaction: the anchor and the rows of the same moment,
    // even while the writer prunes.
    c.snapshot(|c| {
        let mut v = Verifier::new(anchor(c)?);
        // Stored order is seq order: a record whose number was changed
        // shows up where it now sits.
        c.query_each(
            &format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"),
            (),
            |r| Ok(v.feed(&row(r)?)),
        )?;
        Ok(v.finish(head))
    })
}

/// Verifies the audit chain of the store file at `path`, opened read-only
/// (for a stopped server: `roost audit verify --data-dir`).
pub fn verify_audit_file(path: &Path) -> Result<Verdict, Error> {
    if !path.exists() {
        return Err(Error::Invalid(format!("no store at {}", path.display())));
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    let has: i64 = c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'",
        (),
        |r| r.get(0),
    )?;
    if has == 0 {
        return Err(Error::Invalid(format!(
            "the store at {} has no audit log (written by an older Roost)",
            path.display()
        )));
    }
    verify_on(&mut Db::sqlite(&c), None)
}

impl Store {
    /// The chain's head: the last record, else the anchor, else empty; and
    /// how many records are kept.
    pub fn audit_head(&self) -> Result<(Chain, u64), Error> {
        self.read(|c| {
            c.snapshot(|c| {
                let last: Option<(i64, String)> = c.query_opt(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                    (),
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let n: i64 = c.query_row("SELECT COUNT(*) FROM audit_log", (), |r| r.get(0))?;
                let head = match last {
                    Some((seq, h)) => Chain::resume(seq as u64, hash_col(&h)),
                    None => anchor(c)?.unwrap_or_default(),
                };
                Ok((head, n as u64))
            })
        })
    }

    /// Records matching `q`: the newest `q.limit`, oldest first.
    pub fn audit_list(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        self.read(|c| {
            let mut out = c.query_map(
                &format!(
                    "SELECT {COLUMNS} FROM audit_log
                 WHERE (CAST(?1 AS TEXT) IS NULL OR \"user\" = ?1)
                   AND (CAST(?2 AS BIGINT) IS NULL OR time >= ?2)
                   AND (CAST(?3 AS BIGINT) IS NULL OR time <= ?3)
                   AND (CAST(?4 AS TEXT) IS NULL OR method = ?4)
                   AND (CAST(?5 AS BIGINT) IS NULL OR status = ?5)
                 ORDER BY seq DESC LIMIT ?6"
                ),
                params![
                    q.user,
                    q.since.map(|t| t.micros()),
                    q.until.map(|t| t.micros()),
                    q.method,
                    q.status,
                    q.limit as i64
                ],
                row,
            )?;
            out.reverse();
            Ok(out)
        })
    }

    /// Records after `after`, oldest first, at most `limit` (what a
    /// subcloud forwards).
    pub fn audit_after(&self, after: u64, limit: u64) -> Result<Vec<AuditRecord>, Error> {
        self.read(|c| {
            c.query_map(
                &format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after as i64, limit as i64],
                row,
            )
        })
    }

    /// Verifies the whole kept chain from its anchor; `head` is the last
    /// number the writer wrote, if known (a shorter chain lost its tail).
    pub fn audit_verify(&self, head: Option<u64>) -> Result<Verdict, Error> {
        self.read(|c| verify_on(c, head))
    }

    /// Stores records a subcloud forwarded; those already held are skipped.
    pub fn put_subcloud_audit(&self, subcloud: &str, records: &[AuditRecord]) -> Result<(), Error> {
        self.write_once(|tx| {
            let sql = format!(
                "INSERT INTO dc_subcloud_audit (subcloud, {COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (subcloud, seq) DO NOTHING"
            );
            for r in records {
                let mut values = vec![subcloud.to_value()];
                values.extend(record_values(r));
                tx.execute(&sql, values)?;
            }
            Ok(())
        })
    }

    /// The last record number held for each subcloud, with its hash.
    pub fn subcloud_audit_heads(&self) -> Result<Vec<(String, Chain)>, Error> {
        self.read(|c| {
            c.query_map(
                "SELECT a.subcloud, a.seq, a.hash FROM dc_subcloud_audit a
                 JOIN (SELECT subcloud, MAX(seq) AS seq FROM dc_subcloud_audit GROUP BY subcloud) m
                   ON a.subcloud = m.subcloud AND a.seq = m.seq",
                (),
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        Chain::resume(r.get::<i64>(1)? as u64, hash_col(&r.get::<String>(2)?)),
                    ))
                },
            )
        })
    }

    /// A subcloud's forwarded records: the newest `limit`, oldest first.
    pub fn subcloud_audit(&self, subcloud: &str, limit: u64) -> Result<Vec<AuditRecord>, Error> {
        self.read(|c| {
            let mut out = c.query_map(
                &format!(
                    "SELECT {COLUMNS} FROM dc_subcloud_audit WHERE subcloud = ?1
                     ORDER BY seq DESC LIMIT ?2"
                ),
                params![subcloud, limit as i64],
                row,
            )?;
            out.reverse();
            Ok(out)
        })
    }
}

impl Batch<'_> {
    /// Appends chained records, in one savepoint.
    pub fn append_audit(&mut self, records: &[AuditRecord]) -> Result<(), Error> {
        self.step(|sp| {
            let sql = format!(
                "INSERT INTO audit_log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            );
            for r in records {
                sp.execute(&sql, record_values(r))?;
            }
            Ok(())
        })
    }

    /// Prunes records older than `before` and beyond the newest
    /// `max_records`, oldest first, keeping the last pruned record's number
    /// and hash as the anchor. Returns how many went.
    pub fn prune_audit(&mut self, before: Timestamp, max_records: u64) -> Result<u64, Error> {
        self.step(|sp| {
            let by_time: Option<i64> = sp.query_row(
                "SELECT MAX(seq) FROM audit_log WHERE time < ?1",
                [before.micros()],
                |r| r.get(0),
            )?;
            let by_count: Option<i64> = sp.query_row(
                "SELECT MAX(seq) - ?1 FROM audit_log",
                [max_records as i64],
                |r| r.get(0),
            )?;
            let upto = by_time.unwrap_or(0).max(by_count.unwrap_or(0));
            if upto <= 0 {
                return Ok(0);
            }
            let last: Option<(i64, String)> = sp.query_opt(
                "SELECT seq, hash FROM audit_log WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1",
                [upto],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let Some((seq, hash)) = last else {
                return Ok(0);
            };
            let n = sp.execute("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
            sp.execute(
                "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                params![seq, hash],
            )?;
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;
    use crate::testdb::each_backend;

    fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            time: Timestamp(1_000_000 * i),
            user: "admin".into(),
            roles: vec!["admin".into(), "member".into()],
            source: "127.0.0.1:1".into(),
            method: "POST".into(),
            path: "/v1/alarms".into(),
            status: 200,
        }
    }

    #[test]
    fn appended_records_read_back_verify_and_prune_to_an_anchor() {
        for db in each_backend() {
            let store = db.open(100);
            let (head, n) = store.audit_head().unwrap();
            assert_eq!((head, n), (Chain::default(), 0));
            let mut chain = head;
            let recs: Vec<_> = (1..=10).map(|i| chain.append(entry(i))).collect();
            {
                let mut w = store.writer().unwrap();
                let mut b = w.begin().unwrap();
                b.append_audit(&recs).unwrap();
                b.commit().unwrap();
            }
            let listed = store
                .audit_list(&AuditQuery {
                    limit: 3,
                    ..AuditQuery::default()
                })
                .unwrap();
            assert_eq!(listed, recs[7..].to_vec());
            assert!(store.audit_verify(Some(10)).unwrap().ok());
            assert!(!store.audit_verify(Some(11)).unwrap().ok(), "a lost tail");
            {
                let mut w = store.writer().unwrap();
                let mut b = w.begin().unwrap();
                // Older than t=3s, and no more than 5 kept: 1..=5 go.
                assert_eq!(b.prune_audit(Timestamp(3_000_000), 5).unwrap(), 5);
                b.commit().unwrap();
            }
            let (head, n) = store.audit_head().unwrap();
            assert_eq!((head.last_seq, n), (10, 5));
            let v = store.audit_verify(Some(10)).unwrap();
            assert!(v.ok(), "{v:?}");
            // The offline check reads a SQLite file; on PostgreSQL the
            // store's own `audit_verify` above is the check.
            if let Location::Sqlite(path) = &db.location {
                assert!(verify_audit_file(path).unwrap().ok());
            }
            assert_eq!(store.audit_after(8, 10).unwrap(), recs[8..].to_vec());
        }
    }
}

/// Tampering with a stopped server's audit log, for the end-to-end tests
/// that check `roost audit verify` finds it (built only with the
/// `fault-injection` feature, like the other test-only faults; the SQL
/// stays in this crate).
#[cfg(feature = "fault-injection")]
pub mod tamper {
    use std::path::Path;

    use rusqlite::Connection;

    use crate::Error;

    fn open(path: &Path) -> Result<Connection, Error> {
        Ok(Connection::open(path)?)
    }

    /// Changes the user of record `seq`, leaving its hashes.
    pub fn change_user(path: &Path, seq: u64, user: &str) -> Result<(), Error> {
        open(path)?.execute(
            "UPDATE audit_log SET \"user\" = ?1 WHERE seq = ?2",
            rusqlite::params![user, seq as i64],
        )?;
        Ok(())
    }

    /// Removes record `seq`.
    pub fn delete(path: &Path, seq: u64) -> Result<(), Error> {
        open(path)?.execute("DELETE FROM audit_log WHERE seq = ?1", [seq as i64])?;
        Ok(())
    }

    /// Swaps the contents of records `a` and `b` (each keeps its number):
    /// the two records change places in the log.
    pub fn swap(path: &Path, a: u64, b: u64) -> Result<(), Error> {
        let mut c = open(path)?;
        let tx = c.transaction()?;
        tx.execute("UPDATE audit_log SET seq = -1 WHERE seq = ?1", [a as i64])?;
        tx.execute(
            "UPDATE audit_log SET seq = ?1 WHERE seq = ?2",
            [a as i64, b as i64],
        )?;
        tx.execute("UPDATE audit_log SET seq = ?1 WHERE seq = -1", [b as i64])?;
        tx.commit()?;
        Ok(())
    }
}

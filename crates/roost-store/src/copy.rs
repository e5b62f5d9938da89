//! Moving a store to another backend: every row of every table, in one
//! transaction, then a check that both hold the same rows.

use aws_lc_rs::digest::{Context, SHA256};

use crate::sql::{Db, Dialect, Value};
use crate::{Error, Store};

/// Every table of the schema, parents before the tables that refer to
/// them. A test holds it to the schema.
pub(crate) const TABLES: &[&str] = &[
    "settings",
    "users",
    "projects",
    "role_assignments",
    "tokens",
    "application_credentials",
    "hosts",
    "join_tokens",
    "subcloud_groups",
    "subclouds",
    "dc_group_apps",
    "dc_subcloud_audit",
    "alarms",
    "suppressed_alarm_ids",
    "event_log",
    "apps",
    "app_plans",
    "audit_log",
    "audit_anchor",
    "sealing",
    "releases",
    "deploy",
    "site_strategy",
    "fleet_strategy",
    "sw_update_options",
    "lease",
    "notify_destinations",
    "notify_dead_letters",
    "notify_engine",
];

/// Tables whose rows number themselves, and the numbering column.
const NUMBERED: &[(&str, &str)] = &[
    ("hosts", "id"),
    ("subcloud_groups", "id"),
    ("subclouds", "id"),
    ("event_log", "seq"),
];

/// Tables that hold data only a running cloud writes: a destination with
/// rows in any of them is not empty.
const DATA_TABLES: &[&str] = &[
    "users",
    "hosts",
    "subclouds",
    "alarms",
    "event_log",
    "audit_log",
    "apps",
    "releases",
];

/// One table's content: how many rows, and a digest of them that does not
/// depend on their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub table: &'static str,
    pub rows: u64,
    pub digest: [u8; 32],
}

/// What a copy moved, table by table (the same in both stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<TableDigest>,
}

impl CopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

fn columns(db: &mut Db<'_>, table: &str) -> Result<Vec<String>, Error> {
    let cols = match db.dialect() {
        Dialect::Sqlite => {
            db.query_map(&format!("PRAGMA table_info({table})"), (), |r| r.get(1))?
        }
        Dialect::Postgres => db.query_map(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1
             ORDER BY ordinal_position",
            [table],
            |r| r.get(0),
        )?,
    };
    if cols.is_empty() {
        return Err(Error::Corrupt(format!("the store has no table {table}")));
    }
    Ok(cols)
}

fn quoted(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_digest(values: &[Value]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    for v in values {
        match v {
            Value::Null => ctx.update(b"n"),
            Value::Int(i) => {
                ctx.update(b"i");
                ctx.update(&i.to_be_bytes());
            }
            Value::Real(f) => {
                ctx.update(b"r");
                ctx.update(&f.to_bits().to_be_bytes());
            }
            Value::Text(s) => {
                ctx.update(b"t");
                ctx.update(&(s.len() as u64).to_be_bytes());
                ctx.update(s.as_bytes());
            }
            Value::Blob(b) => {
                ctx.update(b"b");
                ctx.update(&(b.len() as u64).to_be_bytes());
                ctx.update(b);
            }
        }
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Store {
    /// Every table's rows and order-free digest, columns taken by name in
    /// this store's order so that two backends compare equal.
    pub fn table_digests(&self) -> Result<Vec<TableDigest>, Error> {
        self.read(|c| {
            c.snapshot(|c| {
                let mut out = Vec::new();
                for table in TABLES {
                    let mut cols = columns(c, table)?;
                    cols.sort();
                    let mut rows: Vec<[u8; 32]> = Vec::new();
                    c.query_each(&format!("SELECT {} FROM {table}", quoted(&cols)), (), |r| {
                        rows.push(row_digest(r.values()));
                        Ok(true)
                    })?;
                    rows.sort_unstable();
                    let mut ctx = Context::new(&SHA256);
                    for d in &rows {
                        ctx.update(d);
                    }
                    let mut digest = [0; 32];
                    digest.copy_from_slice(ctx.finish().as_ref());
                    out.push(TableDigest {
                        table,
                        rows: rows.len() as u64,
                        digest,
                    });
                }
                Ok(out)
            })
        })
    }

    /// Copies every row of `from` into this store, which must hold no data
    /// yet, in one transaction; then checks that both stores hold the same
    /// rows, table by table. Sealed secrets are copied as they are: this
    /// store must have been opened with `from`'s key.
    pub fn copy_from(&self, from: &Store) -> Result<CopyReport, Error> {
        let mut conn = self.connect()?;
        let mut db = conn.db();
        db.begin_write()?;
        let res = (|| {
            for table in DATA_TABLES {
                let n: i64 =
                    db.query_row(&format!("SELECT COUNT(*) FROM {table}"), (), |r| r.get(0))?;
                if n > 0 {
                    return Err(Error::Invalid(format!(
                        "the destination store is not empty (table {table} has {n} rows); move into a new, empty database"
                    )));
                }
            }
            // What opening this store wrote (the default group, the key
            // check) is replaced by the source's rows.
            for table in TABLES.iter().rev() {
                db.execute(&format!("DELETE FROM {table}"), ())?;
            }
            for table in TABLES {
                let cols = from.read(|c| columns(c, table))?;
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let insert = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    quoted(&cols),
                    marks.join(", ")
                );
                let select = format!("SELECT {} FROM {table}", quoted(&cols));
                from.read(|c| {
                    c.query_each(&select, (), |r| {
                        db.execute(&insert, r.values().to_vec())?;
                        Ok(true)
                    })
                })?;
            }
            for (table, column) in NUMBERED {
                db.numbers_follow(table, column)?;
            }
            db.batch("COMMIT")
        })();
        if res.is_err() {
            let _ = db.batch("ROLLBACK");
        }
        res?;
        let (ours, theirs) = (self.table_digests()?, from.table_digests()?);
        for (a, b) in ours.iter().zip(&theirs) {
            if a != b {
                return Err(Error::Corrupt(format!(
                    "after the copy, table {} differs: {} rows in the source, {} in the destination",
                    a.table, b.rows, a.rows
                )));
            }
        }
        Ok(CopyReport { tables: ours })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb::{each_backend, sqlite_db};

    #[test]
    fn the_table_list_is_the_whole_schema() {
        for db in each_backend() {
            let store = db.open(10);
            let mut found: Vec<String> = store
                .read(|c| match c.dialect() {
                    Dialect::Sqlite => c.query_map(
                        "SELECT name FROM sqlite_master WHERE type = 'table'
                         AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations'",
                        (),
                        |r| r.get(0),
                    ),
                    Dialect::Postgres => c.query_map(
                        "SELECT table_name::text FROM information_schema.tables
                         WHERE table_schema = current_schema() AND table_name != 'schema_migrations'",
                        (),
                        |r| r.get(0),
                    ),
                })
                .unwrap();
            found.sort();
            let mut want: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
            want.sort();
            assert_eq!(found, want, "{:?}", db.location);
        }
    }

    #[test]
    fn both_schemas_have_the_same_columns() {
        let all = each_backend();
        let schemas: Vec<Vec<Vec<String>>> = all
            .iter()
            .map(|db| {
                let store = db.open(10);
                TABLES
                    .iter()
                    .map(|t| store.read(|c| columns(c, t)).unwrap())
                    .collect()
            })
            .collect();
        for s in &schemas[1..] {
            assert_eq!(s, &schemas[0]);
        }
    }

    #[test]
    fn a_copy_moves_every_row_and_refuses_a_store_with_data() {
        let source_db = sqlite_db();
        let source = source_db.open(100);
        crate::tests::fill(&source);
        for dest_db in each_backend() {
            // The destination seals with the source's key.
            std::fs::copy(
                source_db.dir.path().join("secret.key"),
                dest_db.dir.path().join("secret.key"),
            )
            .unwrap();
            let dest = dest_db.open(100);
            let report = dest.copy_from(&source).unwrap();
            assert!(report.rows() > 20, "{report:?}");
            assert_eq!(
                dest.table_digests().unwrap(),
                source.table_digests().unwrap()
            );
            assert_eq!(dest.hosts().unwrap(), source.hosts().unwrap());
            assert_eq!(dest.load_fm().unwrap(), source.load_fm().unwrap());
            // Numbering goes on after the copied rows.
            let next = dest.insert_host(&crate::tests::host("worker-9")).unwrap();
            assert!(source.hosts().unwrap().iter().all(|h| h.id < next.id));
            let e = dest.copy_from(&source).unwrap_err();
            assert!(e.to_string().contains("not empty"), "{e}");
        }
    }
}

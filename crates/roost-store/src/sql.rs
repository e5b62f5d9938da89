//! One SQL interface over the store's two backends, SQLite and PostgreSQL.
//!
//! The store's modules write their SQL once, in the subset both databases
//! understand, with `?N` placeholders; [`Db`] runs it on either backend.
//! The one function the two spell differently, SQLite's `group_concat`, is
//! renamed to PostgreSQL's `string_agg` on the way.
//! Values cross the boundary as [`Value`]s: integers (also booleans and
//! timestamps), reals, text and blobs. On PostgreSQL a parameter takes the
//! type the server inferred for it, so an integer bound where PostgreSQL
//! expects a `boolean` or an `int4` still works.

use std::collections::HashMap;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql as PgToSql, Type};

use crate::Error;

/// The advisory lock (PostgreSQL) that serialises write transactions
/// between connections and servers.
const WRITE_LOCK: i64 = 0x526f_6f73_7402;

/// Which database a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// One value of a column or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something that can be bound as a parameter.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, u16, u8);

impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// Something a column can be read as.
pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Option<$t> {
                i64::from_value(v).and_then(|i| <$t>::try_from(i).ok())
            }
        }
    )*};
}
int_from_value!(i32, u32, u64, u16, u8, usize);

impl FromValue for bool {
    fn from_value(v: &Value) -> Option<bool> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Option<f64> {
        match v {
            Value::Real(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<String> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Vec<u8>> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            Value::Text(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Option<T>> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Option<Value> {
        Some(v.clone())
    }
}

/// One row of a query's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `idx` as a `T`; a missing column or one of another type is a
    /// corrupt record.
    pub fn get<T: FromValue>(&self, idx: usize) -> Result<T, Error> {
        let v = self.values.get(idx).ok_or_else(|| {
            Error::Corrupt(format!("a query asked for column {idx} that it lacks"))
        })?;
        T::from_value(v).ok_or_else(|| {
            Error::Corrupt(format!(
                "column {idx} holds {}, not a {}",
                describe(v),
                std::any::type_name::<T>()
            ))
        })
    }

    /// Every column, in order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

/// The parameters of a statement.
pub(crate) trait Params {
    fn values(&self) -> Vec<Value>;
}

impl Params for () {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}

impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl Params for Vec<Value> {
    fn values(&self) -> Vec<Value> {
        self.clone()
    }
}

/// Parameters of mixed types: `params![a, b, c]`.
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        &[$(&$x as &dyn $crate::sql::ToValue),*] as &[&dyn $crate::sql::ToValue]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl PgToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Runs `f`, which blocks on the PostgreSQL client's own runtime, away from
/// any async runtime the caller is in (the client cannot block inside one).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// A PostgreSQL connection and the statements it prepared.
pub(crate) struct PgConn {
    /// Always `Some` until dropped.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

impl PgConn {
    pub fn connect(config: &postgres::Config) -> Result<PgConn, Error> {
        let client = off_runtime(|| config.connect(postgres::NoTls))?;
        Ok(PgConn {
            client: Some(client),
            statements: HashMap::new(),
        })
    }

    /// Whether the connection was lost (the server restarted or went away).
    pub fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(|c| c.is_closed())
    }

    fn client(&mut self) -> Result<&mut postgres::Client, Error> {
        self.client
            .as_mut()
            .ok_or_else(|| Error::Invalid("the PostgreSQL connection was closed".into()))
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, Error> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let text = placeholders(sql).replace("group_concat(", "string_agg(");
        let client = self.client()?;
        let st = off_runtime(|| client.prepare(&text))?;
        if self.statements.len() >= 512 {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), st.clone());
        Ok(st)
    }

    fn batch(&mut self, sql: &str) -> Result<(), Error> {
        let client = self.client()?;
        Ok(off_runtime(|| client.batch_execute(sql))?)
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Error> {
        let st = self.statement(sql)?;
        let client = self.client()?;
        Ok(off_runtime(|| {
            let refs: Vec<&(dyn PgToSql + Sync)> =
                values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
            client.execute(&st, &refs)
        })?)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Error> {
        let st = self.statement(sql)?;
        let client = self.client()?;
        off_runtime(|| {
            let refs: Vec<&(dyn PgToSql + Sync)> =
                values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
            client.query(&st, &refs)?.iter().map(pg_row).collect()
        })
    }
}

/// `?N` (and bare `?`) placeholders as PostgreSQL's `$N`, leaving quoted
/// text alone.
pub(crate) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    let mut next = 1;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '?' || quoted {
            out.push(c);
            continue;
        }
        out.push('$');
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        if digits.is_empty() {
            digits = next.to_string();
            next += 1;
        }
        out.push_str(&digits);
    }
    out
}

fn pg_row(row: &postgres::Row) -> Result<Row, Error> {
    let mut values = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            ref t => {
                return Err(Error::Corrupt(format!(
                    "column {} is of type {t}, which the store does not read",
                    col.name()
                )));
            }
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row { values })
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> Result<Row, Error> {
    use rusqlite::types::ValueRef;
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(
                std::str::from_utf8(t)
                    .map_err(|_| Error::Corrupt(format!("column {i} is not UTF-8 text")))?
                    .to_owned(),
            ),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        });
    }
    Ok(Row { values })
}

enum Conn<'c> {
    Sqlite(&'c rusqlite::Connection),
    Pg(&'c mut PgConn),
}

/// A connection (or a transaction on one) that runs the store's SQL.
pub(crate) struct Db<'c> {
    conn: Conn<'c>,
}

impl<'c> Db<'c> {
    pub fn sqlite(conn: &'c rusqlite::Connection) -> Db<'c> {
        Db {
            conn: Conn::Sqlite(conn),
        }
    }

    pub fn pg(conn: &'c mut PgConn) -> Db<'c> {
        Db {
            conn: Conn::Pg(conn),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Pg(_) => Dialect::Postgres,
        }
    }

    /// Runs one or more statements without parameters.
    pub fn batch(&mut self, sql: &str) -> Result<(), Error> {
        match &mut self.conn {
            Conn::Sqlite(c) => c.execute_batch(sql)?,
            Conn::Pg(c) => c.batch(sql)?,
        }
        Ok(())
    }

    /// Starts a write transaction. On PostgreSQL every write transaction
    /// takes one advisory lock first, so writes are serialised as SQLite
    /// serialises them.
    pub fn begin_write(&mut self) -> Result<(), Error> {
        match self.dialect() {
            Dialect::Sqlite => self.batch("BEGIN IMMEDIATE"),
            Dialect::Postgres => {
                self.batch("BEGIN")?;
                let locked = self
                    .execute("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK])
                    .map(|_| ());
                if locked.is_err() {
                    let _ = self.batch("ROLLBACK");
                }
                locked
            }
        }
    }

    /// Runs `f` in one read transaction: what it reads is of one moment,
    /// even while writers commit.
    pub fn snapshot<T>(
        &mut self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        let out = f(self);
        let end = self.batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out?;
        end?;
        Ok(out)
    }

    /// After rows were inserted into `table` with numbers of their own in
    /// `column` (an identity column): the numbers PostgreSQL hands out next
    /// come after them (SQLite does this itself).
    pub fn numbers_follow(&mut self, table: &str, column: &str) -> Result<(), Error> {
        if self.dialect() == Dialect::Postgres {
            self.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                        GREATEST((SELECT MAX({column}) FROM {table}), 1))"
                ),
                (),
            )?;
        }
        Ok(())
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: impl Params) -> Result<usize, Error> {
        let values = params.values();
        match &mut self.conn {
            Conn::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values.iter()))?),
            Conn::Pg(c) => Ok(c.execute(sql, &values)? as usize),
        }
    }

    /// Runs a query and hands each row to `f` until it returns false. On
    /// SQLite rows are read as they come, so stopping early reads no more.
    pub fn query_each(
        &mut self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let values = params.values();
        match &mut self.conn {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let columns = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(r) = rows.next()? {
                    if !f(&sqlite_row(r, columns)?)? {
                        break;
                    }
                }
            }
            Conn::Pg(c) => {
                // Read whole: the client cannot stream across the runtime
                // boundary. Queries that stop early are bounded ones.
                for r in c.query(sql, &values)? {
                    if !f(&r)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs a query and maps each row with `f`.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        self.query_each(sql, params, |r| {
            out.push(f(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The first row of a query mapped with `f`, if there is one.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let mut first = None;
        self.query_each(sql, params, |r| {
            first = Some(r.clone());
            Ok(false)
        })?;
        first.map(|r| f(&r)).transpose()
    }

    /// The first row of a query that always returns one (an aggregate).
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| Error::Corrupt("a query that returns a row returned none".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3'"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3'"
        );
        assert_eq!(placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
    }

    #[test]
    fn values_convert_both_ways() {
        let v = params![1_i64, "a", Some(2_u32), None::<String>, true].values();
        assert_eq!(
            v,
            vec![
                Value::Int(1),
                Value::Text("a".into()),
                Value::Int(2),
                Value::Null,
                Value::Int(1)
            ]
        );
        let row = Row { values: v };
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert_eq!(row.get::<String>(1).unwrap(), "a");
        assert_eq!(row.get::<Option<u32>>(2).unwrap(), Some(2));
        assert_eq!(row.get::<Option<String>>(3).unwrap(), None);
        assert!(row.get::<bool>(4).unwrap());
        assert!(matches!(row.get::<String>(0), Err(Error::Corrupt(_))));
        assert!(matches!(row.get::<i64>(9), Err(Error::Corrupt(_))));
    }
}

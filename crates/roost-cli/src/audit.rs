//! `roost audit …`: the audit log (`/v1/audit`, `/v1/audit/verify`), and
//! the offline check of a stopped server's store.

use std::path::PathBuf;

use roost_api::audit::{AuditList, AuditVerify};
use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{Column, OutputArgs, field, print_data, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Audit log verbs.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// List audit records (mutating calls and logins), oldest first
    List(AuditListArgs),
    /// Verify the audit log's hash chain; exits non-zero when it is broken
    Verify(AuditVerifyArgs),
}

/// Flags of `roost audit list`.
#[derive(clap::Args, Debug)]
pub struct AuditListArgs {
    /// Only calls by this user (`host:<name>` for an agent)
    #[arg(long)]
    pub user: Option<String>,
    /// Only calls at or after this UTC time (2026-01-31T12:00:00)
    #[arg(long)]
    pub since: Option<String>,
    /// Only calls at or before this UTC time
    #[arg(long)]
    pub until: Option<String>,
    /// Only calls with this HTTP method
    #[arg(long)]
    pub method: Option<String>,
    /// Only calls answered with this HTTP status
    #[arg(long)]
    pub status: Option<u16>,
    /// The newest N records [default: 100]
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost audit verify`.
#[derive(clap::Args, Debug)]
pub struct AuditVerifyArgs {
    /// Check the store in this (stopped) server's data directory instead
    /// of asking the server
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Runs one audit verb.
pub(crate) fn run(cmd: AuditCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        AuditCommand::List(args) => list(&args, env, io),
        AuditCommand::Verify(args) => verify(&args, env, io),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::failure(format!("unexpected {what}: {e}")))
}

fn list(args: &AuditListArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let status = args.status.map(|s| s.to_string());
    let limit = args.limit.map(|n| n.to_string());
    let q = Query::new()
        .param("user", args.user.as_deref())
        .param("since", args.since.as_deref())
        .param("until", args.until.as_deref())
        .param("method", args.method.as_deref())
        .param("status", status.as_deref())
        .param("limit", limit.as_deref());
    let reply = api.get("/v1/audit", &q)?;
    print_records(reply, &args.output, "No audit records", io)
}

/// Prints an [`AuditList`] reply as a table, values, or JSON or YAML
/// (the whole reply; with `-c` the records' picked keys) (`roost audit
/// list` and `roost subcloud audit`).
pub(crate) fn print_records(
    reply: Value,
    output: &OutputArgs,
    empty: &str,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if output.output.is_data() && output.columns.is_empty() {
        return print_data(io, output, &reply);
    }
    let list: AuditList = parse(reply, "audit listing")?;
    let records = list
        .records
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| Error::failure(format!("cannot print the audit records: {e}")))?;
    render_list(io, output, &record_columns(), &records, empty)
}

/// The columns of audit records: Seq, Time, User, Roles, Source, Method,
/// Path, Status; wide adds the record's hash and the previous one.
pub fn record_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Seq", "seq"),
        Column::key("Time", "time"),
        Column::key("User", "user"),
        Column::with("Roles", Some("roles"), |r| {
            r.get("roles")
                .and_then(Value::as_array)
                .map(|roles| {
                    roles
                        .iter()
                        .map(|role| crate::output::cell(Some(role)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| field(r, "roles"))
        }),
        Column::key("Source", "source"),
        Column::key("Method", "method"),
        Column::key("Path", "path"),
        Column::key("Status", "status"),
        Column::key("Hash", "hash").wide(),
        Column::key("Previous hash", "prev_hash").wide(),
    ]
}

fn verify(args: &AuditVerifyArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let v: AuditVerify = match &args.data_dir {
        Some(dir) => {
            let path = dir.join(roost_store::DATABASE_FILE);
            let verdict = roost_store::verify_audit_file(&path).map_err(|e| {
                Error::failure(format!(
                    "cannot read {}: {}",
                    path.display(),
                    roost_types::error_chain(&e)
                ))
            })?;
            AuditVerify::from(&verdict)
        }
        None => parse(
            connect(env)?.get("/v1/audit/verify", &Query::new())?,
            "answer",
        )?,
    };
    if args.output.output.is_data() {
        let text = serde_json::to_value(&v).map_err(|e| Error::failure(e.to_string()))?;
        print_data(io, &args.output, &text)?;
    } else if v.ok {
        writeln!(io.out, "audit log verified: {} records", v.records)?;
    }
    match (v.ok, v.first_bad_seq) {
        (true, _) => Ok(()),
        (false, seq) => Err(Error::failure(format!(
            "the audit log is broken at record {}: {}",
            seq.map_or_else(|| "?".into(), |s| s.to_string()),
            v.reason.as_deref().unwrap_or("unknown")
        ))),
    }
}

//! `roost audit …`: the audit log (`/v1/audit`, `/v1/audit/verify`), and
//! the offline check of a stopped server's store.

use std::path::PathBuf;

use comfy_table::Table;
use roost_api::audit::{AuditList, AuditRecordView, AuditVerify};
use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{OutputArgs, OutputFormat, new_table, print_json, print_table};
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
    print_records(reply, &args.output, "No audit records.", io)
}

/// Prints an [`AuditList`] reply as a table or JSON (`roost audit list`
/// and `roost subcloud audit`).
pub(crate) fn print_records(
    reply: Value,
    output: &OutputArgs,
    empty: &str,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    if output.output == OutputFormat::Json {
        return print_json(io.out, &reply);
    }
    let list: AuditList = parse(reply, "audit listing")?;
    if list.records.is_empty() {
        writeln!(io.out, "{empty}")?;
        return Ok(());
    }
    print_table(io.out, &record_table(&list.records))
}

/// The table of audit records: Seq, Time, User, Roles, Source, Method,
/// Path, Status.
pub fn record_table(records: &[AuditRecordView]) -> Table {
    let mut t = new_table(&[
        "Seq", "Time", "User", "Roles", "Source", "Method", "Path", "Status",
    ]);
    for r in records {
        t.add_row(vec![
            r.seq.to_string(),
            r.time.clone(),
            r.user.clone(),
            r.roles.join(","),
            r.source.clone(),
            r.method.clone(),
            r.path.clone(),
            r.status.to_string(),
        ]);
    }
    t
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
    if args.output.output == OutputFormat::Json {
        let text = serde_json::to_value(&v).map_err(|e| Error::failure(e.to_string()))?;
        print_json(io.out, &text)?;
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

//! `roost host label …` and `roost host cpu-modify`: the host attributes
//! that application placement reads, through sysinv's label and CPU APIs.

use std::collections::BTreeMap;

use roost_api::sysinv::CpuModify;
use serde_json::Value;

use crate::client::path_segment;
use crate::credentials::Env;
use crate::error::Error;
use crate::host::{cpu_columns, host_path};
use crate::output::{Column, OutputArgs, field, list_items, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Label verbs.
#[derive(clap::Subcommand, Debug)]
pub enum LabelCommand {
    /// List a host's labels
    List(LabelListArgs),
    /// Assign labels (KEY=VALUE) to a host
    Assign(LabelAssignArgs),
    /// Remove labels (by key) from a host
    Remove(LabelRemoveArgs),
}

/// Flags of `roost host label list`.
#[derive(clap::Args, Debug)]
pub struct LabelListArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost host label assign`.
#[derive(clap::Args, Debug)]
pub struct LabelAssignArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Labels, KEY=VALUE
    #[arg(value_name = "KEY=VALUE", required = true)]
    pub labels: Vec<String>,
    /// Change the value of a label the host already has
    #[arg(long)]
    pub overwrite: bool,
}

/// Flags of `roost host label remove`.
#[derive(clap::Args, Debug)]
pub struct LabelRemoveArgs {
    /// Hostname, ID or UUID of the host
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Label keys
    #[arg(value_name = "KEY", required = true)]
    pub keys: Vec<String>,
}

/// Flags of `roost host cpu-modify`. Its `-c` is the CPU list (as in
/// StarlingX's `system host-cpu-modify`); the output's `--column` has no
/// short form here.
#[derive(clap::Args, Debug)]
#[command(mut_arg("columns", |a| a.short(None)))]
pub struct CpuModifyArgs {
    /// Hostname, ID or UUID of the host (it must be locked)
    #[arg(value_name = "HOST")]
    pub host: String,
    /// The function to give
    #[arg(short = 'f', long, value_parser = ["platform", "application-isolated"])]
    pub function: String,
    /// Cores of a processor for the function, PROCESSOR=CORES (repeatable)
    #[arg(short = 'p', long = "processor", value_name = "PROCESSOR=CORES")]
    pub processors: Vec<String>,
    /// The CPUs of the function, e.g. 2-3,5 (instead of --processor)
    #[arg(short = 'c', long, conflicts_with = "processors")]
    pub cpulist: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

fn key_value(s: &str) -> Result<(String, String), Error> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::usage(format!("expected KEY=VALUE, not {s:?}"))),
    }
}

/// The host's uuid (label paths take it).
fn host_uuid(api: &crate::client::Api, host: &str) -> Result<String, Error> {
    let h = api
        .get(&host_path(host)?, &Query::new())
        .map_err(crate::host::not_found(host))?;
    Ok(field(&h, "uuid"))
}

fn labels_of(api: &crate::client::Api, uuid: &str) -> Result<Vec<Value>, Error> {
    let reply = api.get(
        &format!("/v1/ihosts/{}/labels", path_segment("host", uuid)?),
        &Query::new(),
    )?;
    let mut items = list_items(&reply, "labels")?;
    items.sort_by_key(|l| field(l, "label_key"));
    Ok(items)
}

/// Runs one label verb.
pub(crate) fn label(cmd: LabelCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    match cmd {
        LabelCommand::List(args) => {
            let uuid = host_uuid(api, &args.host)?;
            let items = labels_of(api, &uuid)?;
            let empty = format!("{} has no labels.", args.host);
            render_list(io, &args.output, &label_columns(), &items, &empty)
        }
        LabelCommand::Assign(args) => {
            let mut body = BTreeMap::new();
            for l in &args.labels {
                let (k, v) = key_value(l)?;
                body.insert(k, v);
            }
            let uuid = host_uuid(api, &args.host)?;
            let q = Query::new().flag("overwrite", args.overwrite);
            let reply = api
                .send(
                    reqwest::Method::POST,
                    &format!("/v1/labels/{}", path_segment("host", &uuid)?),
                    &q,
                    Some(&body),
                )?
                .body;
            for l in list_items(&reply, "labels")? {
                writeln!(
                    io.out,
                    "{}: {}={}",
                    args.host,
                    field(&l, "label_key"),
                    field(&l, "label_value")
                )?;
            }
            Ok(())
        }
        LabelCommand::Remove(args) => {
            let uuid = host_uuid(api, &args.host)?;
            let items = labels_of(api, &uuid)?;
            // Check every key first, so that nothing is removed when one is wrong.
            let mut found = Vec::new();
            for k in &args.keys {
                let l = items
                    .iter()
                    .find(|l| field(l, "label_key") == *k)
                    .ok_or_else(|| {
                        Error::failure(format!(
                            "host {} has no label {k} (`roost host label list {}` lists its labels)",
                            args.host,
                            args.host
                        ))
                    })?;
                found.push((k, field(l, "uuid")));
            }
            for (k, label_uuid) in found {
                api.delete(&format!(
                    "/v1/labels/{}",
                    path_segment("label", &label_uuid)?
                ))?;
                writeln!(io.out, "Deleted host label {k} for host {}", args.host)?;
            }
            Ok(())
        }
    }
}

/// The request body of `roost host cpu-modify`.
pub fn cpu_modify_body(args: &CpuModifyArgs) -> Result<Vec<CpuModify>, Error> {
    if args.processors.is_empty() && args.cpulist.is_none() {
        return Err(Error::usage(
            "give --processor PROCESSOR=CORES or --cpulist LIST",
        ));
    }
    let mut sockets = Vec::new();
    for p in &args.processors {
        let (socket, n) = key_value(p)?;
        let n: u64 = n
            .parse()
            .map_err(|_| Error::usage(format!("expected PROCESSOR=CORES, not {p:?}")))?;
        sockets.push(BTreeMap::from([(socket, Value::from(n))]));
    }
    Ok(vec![CpuModify {
        function: args.function.clone(),
        sockets: (!sockets.is_empty()).then_some(sockets),
        cpulist: args.cpulist.clone(),
    }])
}

/// Runs `roost host cpu-modify`.
pub(crate) fn cpu_modify(args: &CpuModifyArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = cpu_modify_body(args)?;
    let api = &connect(env)?;
    let uuid = host_uuid(api, &args.host)?;
    let reply = api
        .send(
            reqwest::Method::PUT,
            &format!(
                "/v1/ihosts/{}/state/host_cpus_modify",
                path_segment("host", &uuid)?
            ),
            &Query::new(),
            Some(&body),
        )?
        .body;
    let mut items = list_items(&reply, "icpus")?;
    items.sort_by_key(|c| c["cpu"].as_u64().unwrap_or(u64::MAX));
    render_list(io, &args.output, &cpu_columns(), &items, "")
}

/// The columns of `roost host label list` (wide adds the UUID).
pub fn label_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Key", "label_key"),
        Column::key("Value", "label_value"),
        Column::key("UUID", "uuid").wide(),
    ]
}

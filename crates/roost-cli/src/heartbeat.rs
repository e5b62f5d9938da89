//! `roost heartbeat …`: the heartbeat and recovery settings of maintenance,
//! which the server keeps as StarlingX service parameters (service
//! `platform`, section `maintenance`, every value a string).

use std::collections::BTreeSet;

use roost_api::fm::PatchOp;
use roost_api::sysinv::ParameterApply;
use serde_json::{Map, Value};

use crate::client::path_segment;
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{Column, OutputArgs, field, list_items, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Service and section of the maintenance parameters.
pub const SERVICE: &str = "platform";
/// See [`SERVICE`].
pub const SECTION: &str = "maintenance";

/// The settings `roost heartbeat set` accepts, in display order.
pub const HEARTBEAT_SETTINGS: &[&str] = &[
    "heartbeat_period",
    "heartbeat_degrade_threshold",
    "heartbeat_failure_threshold",
    "heartbeat_failure_action",
    "mnfa_threshold",
    "mnfa_timeout",
    "bmc_reset_delay",
    "bmc_reset_retries",
    "bmc_retry_interval",
    "worker_boot_timeout",
    "controller_boot_timeout",
];

/// Heartbeat verbs.
#[derive(clap::Subcommand, Debug)]
pub enum HeartbeatCommand {
    /// Show the heartbeat and recovery settings
    Show(HeartbeatShowArgs),
    /// Change settings and apply them, e.g. heartbeat_period=200
    ///
    /// Settings: heartbeat_period (ms, 10-1000), heartbeat_degrade_threshold,
    /// heartbeat_failure_threshold (missed pulses; degrade below failure),
    /// heartbeat_failure_action (fail, degrade, alarm or none),
    /// mnfa_threshold, mnfa_timeout, bmc_reset_delay, bmc_reset_retries,
    /// bmc_retry_interval, worker_boot_timeout, controller_boot_timeout.
    Set(HeartbeatSetArgs),
}

/// Flags of `roost heartbeat show`.
#[derive(clap::Args, Debug)]
pub struct HeartbeatShowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost heartbeat set`.
#[derive(clap::Args, Debug)]
pub struct HeartbeatSetArgs {
    /// Settings to change, each NAME=VALUE
    #[arg(required = true, value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub settings: Vec<(String, String)>,
}

/// Splits `NAME=VALUE` at the first `=`.
fn parse_assignment(raw: &str) -> Result<(String, String), Error> {
    match raw.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(Error::usage(format!("{raw:?} is not NAME=VALUE"))),
    }
}

/// Runs one heartbeat verb.
pub(crate) fn run(cmd: HeartbeatCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        HeartbeatCommand::Show(args) => show(&args.output, env, io),
        HeartbeatCommand::Set(args) => set(&args.settings, env, io),
    }
}

/// Where a setting goes in the display order: known names in
/// [`HEARTBEAT_SETTINGS`] order, then any others alphabetically.
fn display_key(row: &Value) -> (usize, String) {
    let name = field(row, "name");
    let rank = HEARTBEAT_SETTINGS
        .iter()
        .position(|n| *n == name)
        .unwrap_or(HEARTBEAT_SETTINGS.len());
    (rank, name)
}

/// The maintenance rows of `GET /v1/service_parameter`, in display order.
fn maintenance_rows(api: &crate::client::Api) -> Result<Vec<Value>, Error> {
    let reply = api.get("/v1/service_parameter", &Query::new())?;
    let mut rows: Vec<Value> = list_items(&reply, "parameters")?
        .into_iter()
        .filter(|row| field(row, "service") == SERVICE && field(row, "section") == SECTION)
        .collect();
    rows.sort_by_key(display_key);
    Ok(rows)
}

/// The columns of the settings: Name, Value; wide adds the UUID.
pub fn settings_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Name", "name"),
        Column::key("Value", "value"),
        Column::key("UUID", "uuid").wide(),
    ]
}

fn show(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let rows = maintenance_rows(api)?;
    render_list(
        io,
        output,
        &settings_columns(),
        &rows,
        "The server has no heartbeat settings.",
    )
}

/// Checks the requested settings before anything is sent: every name must
/// be a known setting, and given once.
pub fn check_settings(settings: &[(String, String)]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for (name, _) in settings {
        if !HEARTBEAT_SETTINGS.contains(&name.as_str()) {
            return Err(Error::usage(format!(
                "unknown heartbeat setting {name}; known: {}",
                HEARTBEAT_SETTINGS.join(", ")
            )));
        }
        if !seen.insert(name.as_str()) {
            return Err(Error::usage(format!("{name} is given more than once")));
        }
    }
    Ok(())
}

/// Maps each requested setting to its row's uuid; a setting the server
/// does not list fails the whole request before any change.
pub fn plan_settings<'a>(
    rows: &[Value],
    settings: &'a [(String, String)],
) -> Result<Vec<(&'a str, &'a str, String)>, Error> {
    settings
        .iter()
        .map(|(name, value)| {
            rows.iter()
                .find(|row| field(row, "name") == *name)
                .and_then(|row| row.get("uuid").and_then(Value::as_str))
                .map(|uuid| (name.as_str(), value.as_str(), uuid.to_string()))
                .ok_or_else(|| {
                    Error::failure(format!("the server has no heartbeat setting {name}"))
                })
        })
        .collect()
}

/// The JSON-patch body that sets a parameter's value.
pub fn value_patch(value: &str) -> Vec<PatchOp> {
    vec![PatchOp::replace("/value", value)]
}

/// The body of `POST /v1/service_parameter/apply`.
pub fn apply_body() -> ParameterApply {
    ParameterApply {
        service: SERVICE.into(),
        section: Some(SECTION.into()),
    }
}

/// The value a row shows now.
fn current_value(rows: &[Value], name: &str) -> Option<String> {
    rows.iter()
        .find(|row| field(row, "name") == name)
        .and_then(|row| row.get("value").and_then(Value::as_str))
        .map(str::to_string)
}

fn set(settings: &[(String, String)], env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    check_settings(settings)?;
    let api = &connect(env)?;
    let rows = maintenance_rows(api)?;
    let plan = plan_settings(&rows, settings)?;
    // The server keeps each value it is sent and checks the whole set when
    // it is applied. A set it refuses is put back as it was, so that a
    // refused value is neither kept (it would block every later apply) nor
    // shown later as if it had been accepted.
    let mut changed: Vec<Value> = Vec::with_capacity(plan.len());
    let mut undo: Vec<(String, String)> = Vec::with_capacity(plan.len());
    let mut failure = None;
    for (name, value, uuid) in plan {
        let path = format!(
            "/v1/service_parameter/{}",
            path_segment("service parameter uuid", &uuid)?
        );
        match api.patch(&path, &value_patch(value)) {
            Ok(row) => {
                let shown = match row.get("value") {
                    Some(Value::String(v)) => v.clone(),
                    _ => value.to_string(),
                };
                if let Some(old) = current_value(&rows, name) {
                    undo.push((path, old));
                }
                let mut row = Map::new();
                row.insert("name".into(), name.into());
                row.insert("value".into(), shown.into());
                changed.push(Value::Object(row));
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = match failure {
        Some(e) => Some(e),
        None => api.post("/v1/service_parameter/apply", &apply_body()).err(),
    };
    let Some(e) = failure else {
        return render_list(
            io,
            &OutputArgs::default(),
            &settings_columns(),
            &changed,
            "",
        );
    };
    let mut not_restored = Vec::new();
    for (path, old) in undo.iter().rev() {
        if api.patch(path, &value_patch(old)).is_err() {
            not_restored.push(path.clone());
        }
    }
    if not_restored.is_empty() {
        writeln!(io.err, "(refused as a whole; nothing changed)")?;
    } else {
        writeln!(
            io.err,
            "(refused; these stay saved but not applied: {}; make the set consistent with `roost heartbeat set`)",
            assignments(&changed)
        )?;
    }
    Err(e)
}

/// `a=1, b=2` of changed rows.
fn assignments(rows: &[Value]) -> String {
    rows.iter()
        .map(|row| format!("{}={}", field(row, "name"), field(row, "value")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: HeartbeatCommand,
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn assignments_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_assignment("heartbeat_period=200"),
            Ok(("heartbeat_period".into(), "200".into()))
        );
        assert_eq!(parse_assignment("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_assignment("heartbeat_period").is_err());
        assert!(parse_assignment("heartbeat_period=").is_err());
        assert!(parse_assignment("=200").is_err());
        assert!(Cli::try_parse_from(["heartbeat", "set"]).is_err());
        assert!(Cli::try_parse_from(["heartbeat", "set", "x"]).is_err());
    }

    #[test]
    fn unknown_and_repeated_settings_are_usage_errors_naming_the_known_ones() {
        let err =
            check_settings(&pairs(&[("heartbeat_period", "200"), ("period", "1")])).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(
            err.message()
                .starts_with("unknown heartbeat setting period; known: heartbeat_period, "),
            "{}",
            err.message()
        );
        assert!(err.message().ends_with("controller_boot_timeout"));
        let err =
            check_settings(&pairs(&[("mnfa_timeout", "0"), ("mnfa_timeout", "100")])).unwrap_err();
        assert_eq!(err.message(), "mnfa_timeout is given more than once");
    }

    #[test]
    fn settings_missing_on_the_server_fail_the_plan() {
        let rows = vec![json!({"uuid": "u-1", "name": "heartbeat_period", "value": "100"})];
        let wanted = pairs(&[("heartbeat_period", "200")]);
        assert_eq!(
            plan_settings(&rows, &wanted).unwrap(),
            vec![("heartbeat_period", "200", "u-1".to_string())]
        );
        let wanted = pairs(&[("heartbeat_period", "200"), ("mnfa_timeout", "0")]);
        assert_eq!(
            plan_settings(&rows, &wanted).unwrap_err().message(),
            "the server has no heartbeat setting mnfa_timeout"
        );
    }

    #[test]
    fn settings_show_in_the_documented_order_with_unknown_ones_last() {
        let mut rows = [
            json!({"name": "zzz_extra"}),
            json!({"name": "controller_boot_timeout"}),
            json!({"name": "heartbeat_period"}),
            json!({"name": "heartbeat_failure_action"}),
        ];
        rows.sort_by_key(display_key);
        let names: Vec<_> = rows.iter().map(|r| field(r, "name")).collect();
        assert_eq!(
            names,
            [
                "heartbeat_period",
                "heartbeat_failure_action",
                "controller_boot_timeout",
                "zzz_extra"
            ]
        );
    }
}

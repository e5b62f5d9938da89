//! `roost dc …`: Distributed Cloud status across all subclouds
//! (dcmanager's `/v1.0/alarms`).

use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{Column, OutputArgs, cell, list_items, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Distributed Cloud verbs.
#[derive(clap::Subcommand, Debug)]
pub enum DcCommand {
    /// Count each subcloud's active alarms by severity ("-" for a subcloud
    /// that cannot be reached)
    Alarms(DcAlarmsArgs),
}

/// Flags of `roost dc alarms`.
#[derive(clap::Args, Debug)]
pub struct DcAlarmsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Runs one DC verb.
pub(crate) fn run(cmd: DcCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        DcCommand::Alarms(args) => alarms(&args.output, env, io),
    }
}

fn alarms(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get("/v1.0/alarms/", &Query::new())?;
    let rows = list_items(&reply, "alarm_summary")?;
    render_list(io, output, &alarm_summary_columns(), &rows, "No subclouds")
}

/// A count as shown: `-` when negative (StarlingX sends -1 for a subcloud
/// that cannot be reached), else the value as it is.
pub fn count(value: Option<&Value>) -> String {
    let negative = match value {
        Some(Value::Number(n)) => n.as_f64().is_some_and(|v| v < 0.0),
        Some(Value::String(s)) => s.trim().parse::<f64>().is_ok_and(|v| v < 0.0),
        _ => false,
    };
    if negative {
        "-".to_string()
    } else {
        cell(value)
    }
}

/// The columns of `roost dc alarms`: Subcloud, Critical, Major, Minor,
/// Warnings, Status.
pub fn alarm_summary_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Subcloud", "region_name"),
        Column::with("Critical", Some("critical_alarms"), |r| {
            count(r.get("critical_alarms"))
        }),
        Column::with("Major", Some("major_alarms"), |r| {
            count(r.get("major_alarms"))
        }),
        Column::with("Minor", Some("minor_alarms"), |r| {
            count(r.get("minor_alarms"))
        }),
        Column::with("Warnings", Some("warnings"), |r| count(r.get("warnings"))),
        Column::key("Status", "cloud_status"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negative_counts_print_as_a_dash() {
        assert_eq!(count(Some(&json!(-1))), "-");
        assert_eq!(count(Some(&json!("-1"))), "-");
        assert_eq!(count(Some(&json!(0))), "0");
        assert_eq!(count(Some(&json!("7"))), "7");
        assert_eq!(count(None), "");
    }
}

//! `roost dc …`: Distributed Cloud status across all subclouds
//! (dcmanager's `/v1.0/alarms`).

use comfy_table::Table;
use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{
    OutputArgs, OutputFormat, cell, field, list_items, new_table, print_json, print_table,
};
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
        DcCommand::Alarms(args) => alarms(args.output.output, env, io),
    }
}

fn alarms(format: OutputFormat, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get("/v1.0/alarms/", &Query::new())?;
    let rows = list_items(&reply, "alarm_summary")?;
    match format {
        OutputFormat::Json => print_json(io.out, &Value::Array(rows)),
        OutputFormat::Table if rows.is_empty() => {
            writeln!(io.out, "No subclouds.")?;
            Ok(())
        }
        OutputFormat::Table => print_table(io.out, &alarm_summary_table(&rows)),
    }
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

/// The table of `roost dc alarms`: Subcloud, Critical, Major, Minor,
/// Warnings, Status.
pub fn alarm_summary_table(rows: &[Value]) -> Table {
    let mut table = new_table(&[
        "Subcloud", "Critical", "Major", "Minor", "Warnings", "Status",
    ]);
    for row in rows {
        table.add_row(vec![
            field(row, "region_name"),
            count(row.get("critical_alarms")),
            count(row.get("major_alarms")),
            count(row.get("minor_alarms")),
            count(row.get("warnings")),
            field(row, "cloud_status"),
        ]);
    }
    table
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

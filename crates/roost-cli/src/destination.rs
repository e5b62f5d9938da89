//! `roost destination …`: where alarms and logs are sent
//! (`/v1/notifications/destinations`): webhooks, SNMP managers and syslog
//! collectors, their delivery counters, test sends and dead letters.

use roost_api::notify::{
    DeadLetterList, DestinationCreate, DestinationList, DestinationUpdate, DestinationView, Target,
};
use serde_json::Value;

use crate::client::{Api, path_segment};
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{Column, OutputArgs, field, render_detail, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Notification destination verbs.
#[derive(clap::Subcommand, Debug)]
pub enum DestinationCommand {
    /// List destinations with their delivery counters
    List(DestinationListArgs),
    /// Show one destination
    Show(DestinationShowArgs),
    /// Send alarms and logs to a webhook (JSON, signed with HMAC-SHA-256)
    #[command(
        after_help = "Example:\n  roost destination add-webhook ops --url https://hooks.example.com/roost --secret-file ./hook.key"
    )]
    AddWebhook(AddWebhookArgs),
    /// Send alarms and logs as SNMP traps (ROOST-ALARM-MIB)
    #[command(
        after_help = "Examples:\n  roost destination add-snmp nms --host 10.0.0.9 --community public\n  roost destination add-snmp nms3 --host 10.0.0.9 --snmp-version 3 --user roost \\\n      --auth-password-file ./auth.key --priv-password-file ./priv.key"
    )]
    AddSnmp(AddSnmpArgs),
    /// Send alarms and logs to a syslog collector (RFC 5424)
    #[command(
        after_help = "Example:\n  roost destination add-syslog siem --url tcp://10.0.0.5:601 --facility local3"
    )]
    AddSyslog(AddSyslogArgs),
    /// Enable or disable a destination, or change its filters
    Update(DestinationUpdateArgs),
    /// Delete a destination and its dead letters
    Delete(DestinationArg),
    /// Send a test record to a destination, whatever its filters
    Test(DestinationArg),
    /// List a webhook destination's deliveries that ran out of tries
    DeadLetters(DestinationShowArgs),
    /// Send a dead letter's record again, and remove the letter
    Retry(DeadLetterArgs),
    /// Discard a dead letter
    Discard(DeadLetterArgs),
}

/// A destination by name or id.
#[derive(clap::Args, Debug)]
pub struct DestinationArg {
    /// Destination name or id
    pub destination: String,
}

#[derive(clap::Args, Debug)]
pub struct DestinationListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct DestinationShowArgs {
    /// Destination name or id
    pub destination: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct DeadLetterArgs {
    /// Destination name or id
    pub destination: String,
    /// The dead letter's id (`roost destination dead-letters` shows them)
    pub letter: String,
}

/// What every destination takes.
#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    /// Lowest severity sent: critical, major, minor, warning or all
    #[arg(long, value_name = "SEVERITY")]
    pub min_severity: Option<String>,
    /// Send alarm sets and clears only, not customer logs
    #[arg(long)]
    pub no_logs: bool,
}

#[derive(clap::Args, Debug)]
pub struct AddWebhookArgs {
    /// The new destination's name
    pub name: String,
    /// The receiver's http:// or https:// URL
    #[arg(long)]
    pub url: String,
    /// A file holding the signing key (16+ characters)
    #[arg(long, value_name = "FILE")]
    pub secret_file: String,
    /// Tries before a delivery is kept as a dead letter (default 8)
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Wait before the first retry, doubled each time (default 1000)
    #[arg(long, value_name = "MS")]
    pub retry_base_ms: Option<u64>,
    /// Time allowed for one call (default 10000)
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,
}

#[derive(clap::Args, Debug)]
pub struct AddSnmpArgs {
    /// The new destination's name
    pub name: String,
    /// The SNMP manager: HOST or HOST:PORT (port 162 by default)
    #[arg(long)]
    pub host: String,
    /// 2c (default) or 3
    #[arg(long, value_name = "VERSION")]
    pub snmp_version: Option<String>,
    /// SNMPv2c community
    #[arg(long)]
    pub community: Option<String>,
    /// SNMPv3 user
    #[arg(long)]
    pub user: Option<String>,
    /// SNMPv3 authentication: SHA (default) or SHA-256
    #[arg(long)]
    pub auth_protocol: Option<String>,
    /// A file holding the SNMPv3 authentication passphrase (8+ characters)
    #[arg(long, value_name = "FILE")]
    pub auth_password_file: Option<String>,
    /// SNMPv3 privacy: AES (default)
    #[arg(long)]
    pub priv_protocol: Option<String>,
    /// A file holding the SNMPv3 privacy passphrase (8+ characters)
    #[arg(long, value_name = "FILE")]
    pub priv_password_file: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,
}

#[derive(clap::Args, Debug)]
pub struct AddSyslogArgs {
    /// The new destination's name
    pub name: String,
    /// udp://HOST[:PORT] (port 514) or tcp://HOST[:PORT] (port 601)
    #[arg(long)]
    pub url: String,
    /// local0 (default) to local7, user or daemon
    #[arg(long)]
    pub facility: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,
}

#[derive(clap::Args, Debug)]
pub struct DestinationUpdateArgs {
    /// Destination name or id
    pub destination: String,
    /// Start sending again
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Stop sending (records meanwhile are not sent later)
    #[arg(long)]
    pub disable: bool,
    /// Lowest severity sent: critical, major, minor, warning or all
    #[arg(long, value_name = "SEVERITY")]
    pub min_severity: Option<String>,
    /// Send customer logs too
    #[arg(long, conflicts_with = "no_logs")]
    pub logs: bool,
    /// Send alarm sets and clears only
    #[arg(long)]
    pub no_logs: bool,
}

const BASE: &str = "/v1/notifications/destinations";

/// Reads a secret from a file (trailing newline ignored).
fn secret_file(path: &str, what: &str) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read the {what} from {path}: {e}")))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn dest_path(d: &str) -> Result<String, Error> {
    Ok(format!("{BASE}/{}", path_segment("destination", d)?))
}

/// Runs one destination verb.
pub(crate) fn run(cmd: DestinationCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    match cmd {
        DestinationCommand::List(a) => {
            let reply = api.get(BASE, &Query::new())?;
            // Checked against the wire type, then printed from the JSON.
            let _: DestinationList = parse(reply.clone())?;
            let items = reply["destinations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            render_list(
                io,
                &a.output,
                &destination_columns(),
                &items,
                "No notification destinations (`roost destination add-webhook`, `add-snmp` or `add-syslog` adds one)",
            )
        }
        DestinationCommand::Show(a) => {
            let reply = api.get(&dest_path(&a.destination)?, &Query::new())?;
            let d: DestinationView = parse(reply.clone())?;
            render_detail(io, &a.output, &reply, &detail_rows(&d))
        }
        DestinationCommand::AddWebhook(a) => {
            let body = DestinationCreate {
                name: a.name.clone(),
                min_severity: a.filter.min_severity.clone(),
                include_logs: a.filter.no_logs.then_some(false),
                target: Target::Webhook {
                    url: a.url.clone(),
                    secret: Some(secret_file(&a.secret_file, "webhook secret")?),
                    max_attempts: a.max_attempts,
                    retry_base_ms: a.retry_base_ms,
                    timeout_ms: a.timeout_ms,
                },
            };
            added(api, io, &body)
        }
        DestinationCommand::AddSnmp(a) => {
            let body = DestinationCreate {
                name: a.name.clone(),
                min_severity: a.filter.min_severity.clone(),
                include_logs: a.filter.no_logs.then_some(false),
                target: Target::Snmp {
                    host: a.host.clone(),
                    version: a.snmp_version.clone(),
                    community: a.community.clone(),
                    user: a.user.clone(),
                    auth_protocol: a.auth_protocol.clone(),
                    auth_password: a
                        .auth_password_file
                        .as_deref()
                        .map(|f| secret_file(f, "authentication passphrase"))
                        .transpose()?,
                    priv_protocol: a.priv_protocol.clone(),
                    priv_password: a
                        .priv_password_file
                        .as_deref()
                        .map(|f| secret_file(f, "privacy passphrase"))
                        .transpose()?,
                },
            };
            added(api, io, &body)
        }
        DestinationCommand::AddSyslog(a) => {
            let body = DestinationCreate {
                name: a.name.clone(),
                min_severity: a.filter.min_severity.clone(),
                include_logs: a.filter.no_logs.then_some(false),
                target: Target::Syslog {
                    url: a.url.clone(),
                    facility: a.facility.clone(),
                },
            };
            added(api, io, &body)
        }
        DestinationCommand::Update(a) => {
            let body = DestinationUpdate {
                enabled: if a.enable {
                    Some(true)
                } else if a.disable {
                    Some(false)
                } else {
                    None
                },
                min_severity: a.min_severity.clone(),
                include_logs: if a.logs {
                    Some(true)
                } else if a.no_logs {
                    Some(false)
                } else {
                    None
                },
            };
            if body.enabled.is_none() && body.min_severity.is_none() && body.include_logs.is_none()
            {
                return Err(Error::usage(
                    "nothing to update: give --enable, --disable, --min-severity, --logs or --no-logs",
                ));
            }
            let d: DestinationView = parse(api.patch(&dest_path(&a.destination)?, &body)?)?;
            writeln!(io.out, "Updated destination {}", d.name)?;
            Ok(())
        }
        DestinationCommand::Delete(a) => {
            api.delete(&dest_path(&a.destination)?)?;
            writeln!(io.out, "Deleted destination {}", a.destination)?;
            Ok(())
        }
        DestinationCommand::Test(a) => {
            api.post(
                &format!("{}/test", dest_path(&a.destination)?),
                &Value::Null,
            )?;
            writeln!(
                io.out,
                "Queued a test record for destination {}; `roost destination show {}` shows whether it was delivered",
                a.destination, a.destination
            )?;
            Ok(())
        }
        DestinationCommand::DeadLetters(a) => {
            let reply = api.get(
                &format!("{}/dead-letters", dest_path(&a.destination)?),
                &Query::new(),
            )?;
            let _: DeadLetterList = parse(reply.clone())?;
            let items = reply["dead_letters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            render_list(
                io,
                &a.output,
                &dead_letter_columns(),
                &items,
                &format!("No dead letters for destination {}", a.destination),
            )
        }
        DestinationCommand::Retry(a) => {
            api.post(
                &format!(
                    "{}/dead-letters/{}/retry",
                    dest_path(&a.destination)?,
                    path_segment("dead letter", &a.letter)?
                ),
                &Value::Null,
            )?;
            writeln!(
                io.out,
                "Queued dead letter {} again for destination {}",
                a.letter, a.destination
            )?;
            Ok(())
        }
        DestinationCommand::Discard(a) => {
            api.delete(&format!(
                "{}/dead-letters/{}",
                dest_path(&a.destination)?,
                path_segment("dead letter", &a.letter)?
            ))?;
            writeln!(
                io.out,
                "Discarded dead letter {} of destination {}",
                a.letter, a.destination
            )?;
            Ok(())
        }
    }
}

fn added(api: &Api, io: &mut Io<'_>, body: &DestinationCreate) -> Result<(), Error> {
    let d: DestinationView = parse(api.post(BASE, body)?)?;
    writeln!(
        io.out,
        "Added destination {} ({} to {})",
        d.name, d.kind, d.address
    )?;
    if let Some(engine) = &d.engine_id {
        writeln!(
            io.out,
            "This cloud's SNMP engine id is 0x{engine}: the manager's user must be created for it (Net-SNMP: createUser -e 0x{engine} ...)"
        )?;
    }
    writeln!(
        io.out,
        "Next: `roost destination test {}` sends a test record",
        d.name
    )?;
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v)
        .map_err(|e| Error::failure(format!("unexpected destination listing: {e}")))
}

/// The columns of `roost destination list`.
pub fn destination_columns() -> Vec<Column<'static>> {
    let stat = |key: &'static str| move |d: &Value| field(&d["stats"], key);
    vec![
        Column::key("Name", "name"),
        Column::key("Type", "type"),
        Column::key("Address", "address"),
        Column::with("Enabled", Some("enabled"), |d| {
            field(d, "enabled").to_lowercase()
        }),
        Column::key("Min severity", "min_severity"),
        Column::with("Delivered", None, stat("delivered")),
        Column::with("Failed", None, stat("failed_attempts")),
        Column::with("Pending", None, stat("pending")),
        Column::with("Dead letters", None, stat("dead_lettered")),
        Column::key("Id", "id").wide(),
        Column::with("Last error", None, stat("last_error"))
            .long()
            .wide(),
    ]
}

/// The columns of `roost destination dead-letters`.
pub fn dead_letter_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Id", "id"),
        Column::key("Sequence", "sequence"),
        Column::key("Entity", "entity_instance_id"),
        Column::with("Event", None, |l| {
            format!(
                "{} {}",
                field(&l["body"]["event"], "event_log_id"),
                field(&l["body"]["event"], "state")
            )
        }),
        Column::key("Attempts", "attempts"),
        Column::key("Last error", "last_error").long(),
        Column::with("At", Some("created_at"), |l| {
            crate::output::short_time(&field(l, "created_at"))
        }),
    ]
}

fn detail_rows(d: &DestinationView) -> Vec<(String, String)> {
    let settings: Vec<String> = d
        .settings
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::output::cell(Some(v))))
        .collect();
    let rows: Vec<(&str, String)> = vec![
        ("name", d.name.clone()),
        ("id", d.id.clone()),
        ("type", d.kind.clone()),
        ("address", d.address.clone()),
        ("enabled", d.enabled.to_string()),
        ("min_severity", d.min_severity.clone()),
        ("include_logs", d.include_logs.to_string()),
        ("settings", settings.join(", ")),
        (
            "engine_id",
            d.engine_id
                .clone()
                .map(|e| format!("0x{e}"))
                .unwrap_or_default(),
        ),
        ("delivered", d.stats.delivered.to_string()),
        ("failed_attempts", d.stats.failed_attempts.to_string()),
        ("pending", d.stats.pending.to_string()),
        ("dead_lettered", d.stats.dead_lettered.to_string()),
        ("dropped", d.stats.dropped.to_string()),
        ("last_error", d.stats.last_error.clone().unwrap_or_default()),
        (
            "last_delivered_at",
            d.stats.last_delivered_at.clone().unwrap_or_default(),
        ),
        ("created_at", d.created_at.clone()),
    ];
    rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

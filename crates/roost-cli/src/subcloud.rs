//! `roost subcloud …`: the subclouds of a system controller (dcmanager's
//! `/v1.0/subclouds`), their management state, alarms and the enrollment
//! token a new subcloud joins with.
//!
//! A SUBCLOUD argument is sent as typed: the server resolves a name or an
//! integer ID in `/v1.0/subclouds/{x}`. Errors come back as HTML pages; the
//! `client` module prints their detail line.

use roost_api::dcmanager::{SubcloudCreate, SubcloudUpdate};
use serde_json::Value;

use crate::client::{Api, path_segment};
use crate::credentials::Env;
use crate::error::Error;
use crate::host::{is_loopback_url, shell_word};
use crate::output::{
    Column, OutputArgs, field, list_items, new_table, print_data, print_table, render_detail,
    render_list, short_text, short_time,
};
use crate::query::Query;
use crate::wait::{Look, Verdict, WaitArgs, WatchArgs};
use crate::{Io, connect};

/// The collection path; lists and creates use the trailing slash, as
/// StarlingX's `dcmanager` client does.
pub const SUBCLOUDS_PATH: &str = "/v1.0/subclouds/";

/// The default port of the system controller's DC listener (`roost server
/// --dc-listen`), which subclouds dial; not the API port.
pub const DC_PORT: u16 = 6386;

/// The fields `roost subcloud show` prints, in this order; each endpoint's
/// sync status follows as `<endpoint>_sync_status`.
pub const SUBCLOUD_SHOW_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "location",
    "software-version",
    "management-state",
    "availability-status",
    "deploy-status",
    "sync_status",
    "error-description",
    "group_id",
    "region-name",
    "created-at",
    "updated-at",
];

/// Subcloud verbs.
#[derive(clap::Subcommand, Debug)]
pub enum SubcloudCommand {
    /// List subclouds, by ID
    List(SubcloudListArgs),
    /// Show one subcloud, with the sync status of each endpoint
    Show(SubcloudOutputArgs),
    /// Add a subcloud (unmanaged, offline until it enrolls) and print the
    /// enrollment token and the command that joins it to this system
    /// controller
    Add(SubcloudAddArgs),
    /// Manage a subcloud: keep it in sync with the system controller
    /// (--wait: until it is managed, online and in sync)
    Manage(SubcloudWaitArgs),
    /// Unmanage a subcloud: stop syncing it (--wait: until it is unmanaged)
    Unmanage(SubcloudWaitArgs),
    /// Change a subcloud's description, location or group
    Update(SubcloudUpdateArgs),
    /// Delete a subcloud (it must be unmanaged and offline)
    Delete(SubcloudArg),
    /// List the active alarms a subcloud reported
    Alarms(SubcloudOutputArgs),
    /// List the audit records a subcloud forwarded (the newest 100)
    Audit(SubcloudOutputArgs),
    /// Where the applications of each subcloud's group stand: applied,
    /// failed (with the reason) or pending
    AppStatus(SubcloudAppStatusArgs),
}

/// Flags of `roost subcloud app-status`.
#[derive(clap::Args, Debug)]
pub struct SubcloudAppStatusArgs {
    /// Name or ID of the subcloud (every subcloud when left out)
    #[arg(value_name = "SUBCLOUD")]
    pub subcloud: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost subcloud list`.
#[derive(clap::Args, Debug)]
pub struct SubcloudListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub watch: WatchArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// One subcloud.
#[derive(clap::Args, Debug)]
pub struct SubcloudArg {
    /// Name or ID of the subcloud
    #[arg(value_name = "SUBCLOUD")]
    pub subcloud: String,
}

/// One subcloud and `--wait`.
#[derive(clap::Args, Debug)]
pub struct SubcloudWaitArgs {
    /// Name or ID of the subcloud
    #[arg(value_name = "SUBCLOUD")]
    pub subcloud: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub wait: WaitArgs,
}

/// One subcloud and the output format.
#[derive(clap::Args, Debug)]
pub struct SubcloudOutputArgs {
    /// Name or ID of the subcloud
    #[arg(value_name = "SUBCLOUD")]
    pub subcloud: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost subcloud add`.
#[derive(clap::Args, Debug)]
pub struct SubcloudAddArgs {
    /// Name of the new subcloud, e.g. edge-1
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Subcloud group, by name or ID [default: the Default group]
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Free-text description
    #[arg(long)]
    pub description: Option<String>,
    /// Free-text location
    #[arg(long)]
    pub location: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost subcloud update`.
#[derive(clap::Args, Debug)]
pub struct SubcloudUpdateArgs {
    /// Name or ID of the subcloud
    #[arg(value_name = "SUBCLOUD")]
    pub subcloud: String,
    /// New description
    #[arg(long)]
    pub description: Option<String>,
    /// New location
    #[arg(long)]
    pub location: Option<String>,
    /// New subcloud group, by name or ID
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

/// Runs one subcloud verb.
pub(crate) fn run(cmd: SubcloudCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let named = match &cmd {
        SubcloudCommand::Show(a) | SubcloudCommand::Alarms(a) | SubcloudCommand::Audit(a) => {
            Some(a.subcloud.clone())
        }
        SubcloudCommand::Manage(a) | SubcloudCommand::Unmanage(a) => Some(a.subcloud.clone()),
        SubcloudCommand::Update(a) => Some(a.subcloud.clone()),
        SubcloudCommand::Delete(a) => Some(a.subcloud.clone()),
        SubcloudCommand::AppStatus(a) => a.subcloud.clone(),
        SubcloudCommand::List(_) | SubcloudCommand::Add(_) => None,
    };
    let result = run_verb(cmd, env, io);
    match named {
        Some(name) => result.map_err(crate::style::not_found(
            "subcloud",
            "name or ID",
            &name,
            "`roost subcloud list` lists the subclouds",
        )),
        None => result,
    }
}

fn run_verb(cmd: SubcloudCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        SubcloudCommand::List(args) => {
            crate::wait::watch(io, &args.watch, |io| list(&args.output, env, io))
        }
        SubcloudCommand::Show(args) => show(&args, env, io),
        SubcloudCommand::Add(args) => add(&args, env, io),
        SubcloudCommand::Manage(args) => set_management(&args, "managed", env, io),
        SubcloudCommand::Unmanage(args) => set_management(&args, "unmanaged", env, io),
        SubcloudCommand::Update(args) => update(&args, env, io),
        SubcloudCommand::Delete(args) => delete(&args.subcloud, env, io),
        SubcloudCommand::Alarms(args) => alarms(&args, env, io),
        SubcloudCommand::Audit(args) => {
            let path = format!("{}/audit", subcloud_path(&args.subcloud)?);
            let reply = connect(env)?.get(&path, &Query::new())?;
            let empty = format!("No audit records from {}", args.subcloud);
            crate::audit::print_records(reply, &args.output, &empty, io)
        }
        SubcloudCommand::AppStatus(args) => app_status(&args, env, io),
    }
}

/// The path of one subcloud, `/v1.0/subclouds/{subcloud}`.
pub fn subcloud_path(subcloud: &str) -> Result<String, Error> {
    Ok(format!(
        "{SUBCLOUDS_PATH}{}",
        path_segment("subcloud", subcloud)?
    ))
}

/// A group reference as JSON: an integer ID as a number, a name as a string.
pub fn group_ref(group: &str) -> Value {
    let group = group.trim();
    match group.parse::<i64>() {
        Ok(id) => Value::from(id),
        Err(_) => Value::from(group),
    }
}

/// The integer `id` of an item (a number or a numeric string), for sorting.
fn id_of(item: &Value) -> Option<i64> {
    match item.get("id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Sorts items by their integer `id`, then name; items without one go last.
pub fn sort_by_id(items: &mut [Value]) {
    items.sort_by_key(|item| (id_of(item).unwrap_or(i64::MAX), field(item, "name")));
}

fn list(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get(SUBCLOUDS_PATH, &Query::new())?;
    print_subclouds(io, output, list_items(&reply, "subclouds")?, "No subclouds")
}

/// Prints a list of subclouds sorted by ID, or `empty` when there is none.
pub(crate) fn print_subclouds(
    io: &mut Io<'_>,
    output: &OutputArgs,
    mut subclouds: Vec<Value>,
    empty: &str,
) -> Result<(), Error> {
    sort_by_id(&mut subclouds);
    render_list(io, output, &subcloud_columns(), &subclouds, empty)
}

/// The columns of `roost subcloud list`: ID, Name, Management,
/// Availability, Deploy status, Sync; wide adds the group, the location
/// and the description.
pub fn subcloud_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("ID", "id"),
        Column::key("Name", "name"),
        Column::key("Management", "management-state"),
        Column::key("Availability", "availability-status"),
        Column::key("Deploy status", "deploy-status"),
        Column::key("Sync", "sync_status"),
        Column::key("Group", "group_id").wide(),
        Column::key("Location", "location").wide(),
        Column::key("Description", "description").long().wide(),
    ]
}

/// The Field/Value rows of one subcloud: [`SUBCLOUD_SHOW_FIELDS`], then
/// `<endpoint>_sync_status` for each entry of `endpoint_sync_status`.
pub fn subcloud_rows(subcloud: &Value) -> Vec<(String, String)> {
    let mut table: Vec<(String, String)> = SUBCLOUD_SHOW_FIELDS
        .iter()
        .map(|key| ((*key).to_string(), field(subcloud, key)))
        .collect();
    if let Some(Value::Array(endpoints)) = subcloud.get("endpoint_sync_status") {
        for endpoint in endpoints {
            let name = field(endpoint, "endpoint_type");
            if !name.is_empty() {
                table.push((
                    format!("{name}_sync_status"),
                    field(endpoint, "sync_status"),
                ));
            }
        }
    }
    table
}

fn get_subcloud(api: &Api, subcloud: &str) -> Result<Value, Error> {
    api.get(&subcloud_path(subcloud)?, &Query::new())
}

fn show(args: &SubcloudOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let subcloud = get_subcloud(api, &args.subcloud)?;
    render_detail(io, &args.output, &subcloud, &subcloud_rows(&subcloud))
}

/// The `POST /v1.0/subclouds/` body of `roost subcloud add`: the name and
/// the given fields only.
pub fn add_body(args: &SubcloudAddArgs) -> Result<SubcloudCreate, Error> {
    let name = args.name.trim();
    if name.is_empty() {
        return Err(Error::usage("the subcloud name is empty"));
    }
    Ok(SubcloudCreate {
        name: Some(name.to_string()),
        description: args.description.clone(),
        location: args.location.clone(),
        group_id: args.group.as_deref().map(group_ref),
        group: None,
    })
}

fn add(args: &SubcloudAddArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = add_body(args)?;
    let api = &connect(env)?;
    let subcloud = api.post(SUBCLOUDS_PATH, &body)?;
    let token = subcloud
        .get("enroll_token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::failure("the server sent no enrollment token"))?;
    match args.output.output {
        format if format.is_data() => print_data(io, &args.output, &subcloud),
        _ => {
            render_detail(io, &args.output, &subcloud, &subcloud_rows(&subcloud))?;
            writeln!(io.out)?;
            let name = match subcloud.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => name.to_string(),
                _ => args.name.trim().to_string(),
            };
            let advertised = subcloud
                .get("system_controller_dc_url")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty());
            print_enrollment(io, api.base(), advertised, &name, &token)
        }
    }
}

/// The system controller's DC URL as seen from the API base URL: the same
/// host, `https`, port [`DC_PORT`].
pub fn dc_url(base: &str) -> String {
    let host = reqwest::Url::parse(base)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_else(|| "<system-controller>".to_string());
    format!("https://{host}:{DC_PORT}")
}

/// The command that joins a subcloud to the system controller at `dc_url`.
pub fn subcloud_command(dc_url: &str, token: &str) -> String {
    // A token may start with '-'; the `=` form keeps it from reading as a flag.
    let token_arg = if token.starts_with('-') {
        format!("--enroll-token={}", shell_word(token))
    } else {
        format!("--enroll-token {}", shell_word(token))
    };
    format!(
        "roost server --role subcloud --system-controller {} {token_arg}",
        shell_word(dc_url)
    )
}

/// Prints the enrollment token and the command to run on the subcloud (the
/// one secret this verb prints: it is what the user asked for).
fn print_enrollment(
    io: &mut Io<'_>,
    base: &str,
    advertised: Option<&str>,
    name: &str,
    token: &str,
) -> Result<(), Error> {
    // The system controller says where its DC listener is; older ones do not.
    let dc = advertised
        .map(str::to_string)
        .unwrap_or_else(|| dc_url(base));
    writeln!(
        io.out,
        "Enrollment token for {name} (single use; it expires):"
    )?;
    writeln!(io.out, "    {token}")?;
    writeln!(io.out)?;
    writeln!(
        io.out,
        "To join {name} to this system controller, run on it:"
    )?;
    writeln!(io.out, "    {}", subcloud_command(&dc, token))?;
    if advertised.is_none() {
        writeln!(
            io.out,
            "({dc} is the system controller's DC address, port {DC_PORT} by default; if it runs with another --dc-listen, use that port)"
        )?;
    }
    if is_loopback_url(base) {
        writeln!(
            io.err,
            "(note: {base} is a loopback address; if {name} is another machine, give it an address of the system controller it can reach)"
        )?;
    }
    Ok(())
}

/// A subcloud's states on one line, management/availability/deploy/sync:
/// `edge-1: managed/online/complete/in-sync`.
pub fn state_line(subcloud: &Value) -> String {
    format!(
        "{}: {}/{}/{}/{}",
        field(subcloud, "name"),
        field(subcloud, "management-state"),
        field(subcloud, "availability-status"),
        field(subcloud, "deploy-status"),
        field(subcloud, "sync_status")
    )
}

/// A subcloud's states without its name:
/// `managed/online/complete/in-sync`.
pub fn state_of(subcloud: &Value) -> String {
    format!(
        "{}/{}/{}/{}",
        field(subcloud, "management-state"),
        field(subcloud, "availability-status"),
        field(subcloud, "deploy-status"),
        field(subcloud, "sync_status")
    )
}

/// Where `manage --wait` (`state` managed) or `unmanage --wait` stands:
/// managed needs the subcloud online and in sync as well; a deploy
/// status ending in `failed` is a failure.
pub fn management_verdict(subcloud: &Value, state: &str) -> Verdict {
    let deploy = field(subcloud, "deploy-status");
    if deploy.ends_with("failed") {
        return Verdict::Failed(format!(
            "subcloud {} is {deploy} ({}); `roost subcloud show {}` and `roost subcloud alarms {}` say why",
            field(subcloud, "name"),
            state_of(subcloud),
            field(subcloud, "name"),
            field(subcloud, "name")
        ));
    }
    let done = field(subcloud, "management-state") == state
        && (state != "managed"
            || (field(subcloud, "availability-status") == "online"
                && field(subcloud, "sync_status") == "in-sync"));
    if done {
        Verdict::Done
    } else {
        Verdict::Running
    }
}

fn set_management(
    args: &SubcloudWaitArgs,
    state: &str,
    env: &Env,
    io: &mut Io<'_>,
) -> Result<(), Error> {
    let path = subcloud_path(&args.subcloud)?;
    let api = &connect(env)?;
    let body = SubcloudUpdate {
        management_state: Some(state.to_string()),
        ..SubcloudUpdate::default()
    };
    let reply = api.patch(&path, &body)?;
    let last = if args.wait.wait {
        crate::wait::wait_for(
            io,
            &args.wait,
            reply,
            || get_subcloud(api, &args.subcloud),
            |subcloud| {
                Ok(Look {
                    subject: field(subcloud, "name"),
                    state: state_of(subcloud),
                    verdict: management_verdict(subcloud, state),
                })
            },
            |_, look, waited| {
                let goal = if state == "managed" {
                    "managed, online and in-sync"
                } else {
                    "unmanaged"
                };
                Error::failure(crate::wait::timeout_message(
                    waited,
                    &format!("subcloud {} to be {goal}", look.subject),
                    look,
                    &format!(
                        "`roost subcloud show {}` shows each endpoint's sync status",
                        args.subcloud
                    ),
                ))
            },
        )?
    } else {
        reply
    };
    writeln!(io.out, "{}", state_line(&last))?;
    Ok(())
}

/// The `PATCH` body of `roost subcloud update`: the given fields only; a
/// usage error when none is given.
pub fn update_body(args: &SubcloudUpdateArgs) -> Result<SubcloudUpdate, Error> {
    let body = SubcloudUpdate {
        description: args.description.clone(),
        location: args.location.clone(),
        group_id: args.group.as_deref().map(group_ref),
        ..SubcloudUpdate::default()
    };
    if body == SubcloudUpdate::default() {
        return Err(Error::usage(
            "nothing to update: give --description, --location or --group",
        ));
    }
    Ok(body)
}

fn update(args: &SubcloudUpdateArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = update_body(args)?;
    let path = subcloud_path(&args.subcloud)?;
    let api = &connect(env)?;
    let subcloud = api.patch(&path, &body)?;
    render_detail(
        io,
        &OutputArgs::default(),
        &subcloud,
        &subcloud_rows(&subcloud),
    )
}

fn delete(subcloud: &str, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = subcloud_path(subcloud)?;
    let api = &connect(env)?;
    api.delete(&path)?;
    writeln!(io.out, "Deleted subcloud {subcloud}")?;
    Ok(())
}

fn alarms(args: &SubcloudOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("{}/alarms", subcloud_path(&args.subcloud)?);
    let api = &connect(env)?;
    let reply = api.get(&path, &Query::new())?;
    let alarms = list_items(&reply, "alarms")?;
    let empty = format!("No active alarms on {}", args.subcloud);
    render_list(io, &args.output, &subcloud_alarm_columns(), &alarms, &empty)
}

fn app_status(args: &SubcloudAppStatusArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let subclouds: Vec<Value> = match &args.subcloud {
        Some(sc) => vec![api.get(&format!("{}/apps", subcloud_path(sc)?), &Query::new())?],
        None => list_items(&api.get("/v1.0/subcloud-apps", &Query::new())?, "subclouds")?,
    };
    if args.output.output.is_data() {
        return print_data(io, &args.output, &Value::Array(subclouds));
    }
    let mut table = new_table(&["Subcloud", "Application", "Version", "State", "Reason"]);
    for sc in &subclouds {
        let apps = sc["apps"].as_array().map(Vec::as_slice).unwrap_or_default();
        if apps.is_empty() {
            table.add_row(vec![
                field(sc, "subcloud"),
                "-".into(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for a in apps {
            table.add_row(vec![
                field(sc, "subcloud"),
                field(a, "app"),
                field(a, "version"),
                field(a, "state"),
                short_text(&field(a, "reason")),
            ]);
        }
    }
    print_table(io, &args.output, &table)
}

/// The columns of `roost subcloud alarms`: Alarm ID, Severity, Entity,
/// Reason, Time; wide adds the UUID.
pub fn subcloud_alarm_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Alarm ID", "alarm_id"),
        Column::key("Severity", "severity"),
        Column::key("Entity", "entity_instance_id"),
        Column::key("Reason", "reason_text").long(),
        Column::with("Time (UTC)", Some("timestamp"), |a| {
            short_time(&field(a, "timestamp"))
        }),
        Column::key("UUID", "uuid").wide(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: SubcloudCommand,
    }

    fn parse(args: &[&str]) -> Result<SubcloudCommand, clap::Error> {
        let mut argv = vec!["subcloud"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.cmd)
    }

    #[test]
    fn group_references_are_numbers_for_ids_and_strings_for_names() {
        assert_eq!(group_ref("3"), json!(3));
        assert_eq!(group_ref(" Default "), json!("Default"));
        assert_eq!(group_ref("edge-sites"), json!("edge-sites"));
    }

    #[test]
    fn add_sends_the_name_and_only_the_given_fields() {
        let SubcloudCommand::Add(args) = parse(&["add", "edge-1"]).unwrap() else {
            panic!("not add")
        };
        assert_eq!(
            serde_json::to_value(add_body(&args).unwrap()).unwrap(),
            json!({"name": "edge-1"})
        );
        let SubcloudCommand::Add(args) = parse(&[
            "add",
            "edge-2",
            "--group",
            "2",
            "--description",
            "store 42",
            "--location",
            "Ottawa",
        ])
        .unwrap() else {
            panic!("not add")
        };
        assert_eq!(
            serde_json::to_value(add_body(&args).unwrap()).unwrap(),
            json!({"name": "edge-2", "description": "store 42", "location": "Ottawa", "group_id": 2})
        );
        let SubcloudCommand::Add(args) = parse(&["add", "  "]).unwrap() else {
            panic!("not add")
        };
        assert_eq!(add_body(&args).unwrap_err().code(), 2);
    }

    #[test]
    fn update_sends_the_given_fields_and_refuses_nothing() {
        let SubcloudCommand::Update(args) =
            parse(&["update", "edge-1", "--group", "edge-sites"]).unwrap()
        else {
            panic!("not update")
        };
        assert_eq!(
            serde_json::to_value(update_body(&args).unwrap()).unwrap(),
            json!({"group_id": "edge-sites"})
        );
        let SubcloudCommand::Update(args) = parse(&["update", "edge-1"]).unwrap() else {
            panic!("not update")
        };
        let err = update_body(&args).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.message().starts_with("nothing to update"), "{err}");
    }

    #[test]
    fn the_dc_url_takes_the_host_of_the_api_url_and_port_6386() {
        assert_eq!(dc_url("http://10.0.0.1:6385"), "https://10.0.0.1:6386");
        assert_eq!(
            dc_url("http://sc.example:80/api"),
            "https://sc.example:6386"
        );
        assert_eq!(dc_url("http://[fd00::1]:6385"), "https://[fd00::1]:6386");
    }

    #[test]
    fn the_subcloud_command_quotes_only_what_needs_quoting() {
        assert_eq!(
            subcloud_command("https://10.0.0.1:6386", "abc.DEF_1"),
            "roost server --role subcloud --system-controller https://10.0.0.1:6386 --enroll-token abc.DEF_1"
        );
        assert_eq!(
            subcloud_command("https://h:6386", "-x"),
            "roost server --role subcloud --system-controller https://h:6386 --enroll-token=-x"
        );
        assert_eq!(
            subcloud_command("https://h:6386", "a b"),
            "roost server --role subcloud --system-controller https://h:6386 --enroll-token 'a b'"
        );
    }

    #[test]
    fn the_state_line_is_management_availability_deploy_sync() {
        let subcloud = json!({"name": "edge-1", "management-state": "managed",
            "availability-status": "online", "deploy-status": "complete", "sync_status": "in-sync"});
        assert_eq!(
            state_line(&subcloud),
            "edge-1: managed/online/complete/in-sync"
        );
    }

    #[test]
    fn the_show_table_adds_one_row_per_endpoint() {
        let subcloud = json!({"id": 1, "name": "edge-1", "endpoint_sync_status": [
            {"endpoint_type": "platform", "sync_status": "in-sync"},
            {"endpoint_type": "fm", "sync_status": "out-of-sync"}
        ]});
        let text = crate::output::rows_table(&subcloud_rows(&subcloud))
            .force_no_tty()
            .to_string();
        assert!(text.contains("platform_sync_status"), "{text}");
        assert!(text.contains("fm_sync_status"), "{text}");
        assert!(text.contains("out-of-sync"), "{text}");
        assert!(!text.contains("endpoint_sync_status"), "{text}");
    }

    #[test]
    fn subclouds_sort_by_numeric_id() {
        let mut items = vec![
            json!({"id": 10, "name": "b"}),
            json!({"name": "z"}),
            json!({"id": "2", "name": "a"}),
        ];
        sort_by_id(&mut items);
        let names: Vec<_> = items.iter().map(|s| field(s, "name")).collect();
        assert_eq!(names, ["a", "b", "z"]);
    }

    #[test]
    fn every_subcloud_verb_parses_with_its_flags() {
        for argv in [
            &["list", "-o", "json"][..],
            &["show", "edge-1", "-o", "table"],
            &["add", "edge-1", "--group", "Default", "-o", "json"],
            &["manage", "edge-1"],
            &["unmanage", "3"],
            &["update", "edge-1", "--description", "d", "--location", "l"],
            &["delete", "edge-1"],
            &["alarms", "edge-1", "-o", "json"],
        ] {
            parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
        assert!(parse(&["manage", "edge-1", "-o", "json"]).is_err());
        assert!(parse(&["add"]).is_err());
    }
}

//! `roost subcloud-group …`: subcloud groups (dcmanager's
//! `/v1.0/subcloud-groups`), which set how updates roll out to their
//! members.
//!
//! A GROUP argument is sent as typed: the server resolves a name or an
//! integer ID.

use roost_api::dcmanager::GroupWrite;
use serde_json::Value;

use crate::client::path_segment;
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{
    Column, OutputArgs, field, list_items, new_table, print_data, print_table, render_detail,
    render_list,
};
use crate::query::Query;
use crate::subcloud::{print_subclouds, sort_by_id};
use crate::{Io, connect};

/// The collection path, with the trailing slash StarlingX's client uses.
pub const GROUPS_PATH: &str = "/v1.0/subcloud-groups/";

/// The fields `roost subcloud-group show` prints, in this order.
pub const GROUP_SHOW_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "update_apply_type",
    "max_parallel_subclouds",
    "created-at",
    "updated-at",
];

/// Subcloud group verbs.
#[derive(clap::Subcommand, Debug)]
pub enum SubcloudGroupCommand {
    /// List subcloud groups, by ID
    List(GroupListArgs),
    /// Show one subcloud group
    Show(GroupOutputArgs),
    /// Add a subcloud group
    Add(GroupAddArgs),
    /// Change a subcloud group's name, description or update settings
    Update(GroupUpdateArgs),
    /// Delete a subcloud group (the Default group cannot be deleted)
    Delete(GroupArg),
    /// List the subclouds of a group
    Subclouds(GroupOutputArgs),
    /// List the applications assigned to a group
    Apps(GroupOutputArgs),
    /// Assign an application uploaded on the system controller to a group:
    /// every subcloud of the group fetches and applies it
    AppAssign(GroupAppArgs),
    /// Take an application off a group: its subclouds remove it
    AppUnassign(GroupAppArgs),
}

/// A group and an application.
#[derive(clap::Args, Debug)]
pub struct GroupAppArgs {
    /// Name or ID of the subcloud group
    #[arg(value_name = "GROUP")]
    pub group: String,
    /// Name of the application
    #[arg(value_name = "APP")]
    pub app: String,
}

/// Flags of `roost subcloud-group list`.
#[derive(clap::Args, Debug)]
pub struct GroupListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// One group.
#[derive(clap::Args, Debug)]
pub struct GroupArg {
    /// Name or ID of the subcloud group
    #[arg(value_name = "GROUP")]
    pub group: String,
}

/// One group and the output format.
#[derive(clap::Args, Debug)]
pub struct GroupOutputArgs {
    /// Name or ID of the subcloud group
    #[arg(value_name = "GROUP")]
    pub group: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// The settings a group has besides its name.
#[derive(clap::Args, Debug, Default)]
pub struct GroupSettings {
    /// Free-text description
    #[arg(long)]
    pub description: Option<String>,
    /// How updates reach the group's subclouds
    #[arg(long, alias = "update_apply_type", value_parser = ["serial", "parallel"])]
    pub update_apply_type: Option<String>,
    /// Most subclouds of the group updated at once
    #[arg(long, alias = "max_parallel_subclouds", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel_subclouds: Option<u32>,
}

/// Flags of `roost subcloud-group add`.
#[derive(clap::Args, Debug)]
pub struct GroupAddArgs {
    /// Name of the new group
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub settings: GroupSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost subcloud-group update`.
#[derive(clap::Args, Debug)]
pub struct GroupUpdateArgs {
    /// Name or ID of the subcloud group
    #[arg(value_name = "GROUP")]
    pub group: String,
    /// New name
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub settings: GroupSettings,
}

/// Runs one subcloud group verb.
pub(crate) fn run(cmd: SubcloudGroupCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        SubcloudGroupCommand::List(args) => list(&args.output, env, io),
        SubcloudGroupCommand::Show(args) => show(&args, env, io),
        SubcloudGroupCommand::Add(args) => add(&args, env, io),
        SubcloudGroupCommand::Update(args) => update(&args, env, io),
        SubcloudGroupCommand::Delete(args) => delete(&args.group, env, io),
        SubcloudGroupCommand::Subclouds(args) => subclouds(&args, env, io),
        SubcloudGroupCommand::Apps(args) => {
            let path = format!("{}/apps", group_path(&args.group)?);
            let reply = connect(env)?.get(&path, &Query::new())?;
            print_group_apps(io, &args.output, &reply)
        }
        SubcloudGroupCommand::AppAssign(args) => {
            let path = format!("{}/apps", group_path(&args.group)?);
            let body = roost_api::dcmanager::GroupAppAssign { app: args.app };
            let reply = connect(env)?.post(&path, &body)?;
            print_group_apps(io, &OutputArgs::default(), &reply)
        }
        SubcloudGroupCommand::AppUnassign(args) => {
            let path = format!(
                "{}/apps/{}",
                group_path(&args.group)?,
                path_segment("application", &args.app)?
            );
            connect(env)?.delete(&path)?;
            writeln!(
                io.out,
                "Took {} off subcloud group {}",
                args.app, args.group
            )?;
            Ok(())
        }
    }
}

/// The path of one group, `/v1.0/subcloud-groups/{group}`.
pub fn group_path(group: &str) -> Result<String, Error> {
    Ok(format!(
        "{GROUPS_PATH}{}",
        path_segment("subcloud group", group)?
    ))
}

fn list(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    let reply = api.get(GROUPS_PATH, &Query::new())?;
    let mut groups = list_items(&reply, "subcloud_groups")?;
    sort_by_id(&mut groups);
    render_list(io, output, &group_columns(), &groups, "No subcloud groups")
}

/// The columns of `roost subcloud-group list`: ID, Name, Description,
/// Apply type, Max parallel (wide shows the whole description).
pub fn group_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("ID", "id"),
        Column::key("Name", "name"),
        Column::key("Description", "description").long(),
        Column::key("Apply type", "update_apply_type"),
        Column::key("Max parallel", "max_parallel_subclouds"),
    ]
}

/// The Field/Value rows of [`GROUP_SHOW_FIELDS`].
pub fn group_rows(group: &Value) -> Vec<(String, String)> {
    GROUP_SHOW_FIELDS
        .iter()
        .map(|key| ((*key).to_string(), field(group, key)))
        .collect()
}

fn print_group(io: &mut Io<'_>, output: &OutputArgs, group: &Value) -> Result<(), Error> {
    render_detail(io, output, group, &group_rows(group))
}

fn show(args: &GroupOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = group_path(&args.group)?;
    let api = &connect(env)?;
    let group = api.get(&path, &Query::new())?;
    print_group(io, &args.output, &group)
}

/// A request body with `name` and the given settings.
fn group_write(name: Option<String>, settings: &GroupSettings) -> GroupWrite {
    GroupWrite {
        name,
        description: settings.description.clone(),
        update_apply_type: settings.update_apply_type.clone(),
        max_parallel_subclouds: settings.max_parallel_subclouds.map(Value::from),
    }
}

/// The `POST /v1.0/subcloud-groups/` body: the name and the given settings.
pub fn add_body(args: &GroupAddArgs) -> Result<GroupWrite, Error> {
    let name = args.name.trim();
    if name.is_empty() {
        return Err(Error::usage("the group name is empty"));
    }
    Ok(group_write(Some(name.to_string()), &args.settings))
}

fn add(args: &GroupAddArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = add_body(args)?;
    let api = &connect(env)?;
    let group = api.post(GROUPS_PATH, &body)?;
    print_group(io, &args.output, &group)
}

/// The `PATCH` body of `roost subcloud-group update`: the given fields
/// only; a usage error when none is given.
pub fn update_body(args: &GroupUpdateArgs) -> Result<GroupWrite, Error> {
    let name = match &args.name {
        Some(name) if name.trim().is_empty() => {
            return Err(Error::usage("the group name is empty"));
        }
        Some(name) => Some(name.trim().to_string()),
        None => None,
    };
    let body = group_write(name, &args.settings);
    if body == GroupWrite::default() {
        return Err(Error::usage(
            "nothing to update: give --name, --description, --update-apply-type or --max-parallel-subclouds",
        ));
    }
    Ok(body)
}

fn update(args: &GroupUpdateArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = update_body(args)?;
    let path = group_path(&args.group)?;
    let api = &connect(env)?;
    let group = api.patch(&path, &body)?;
    print_group(io, &OutputArgs::default(), &group)
}

fn delete(group: &str, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = group_path(group)?;
    let api = &connect(env)?;
    api.delete(&path)?;
    writeln!(io.out, "Deleted subcloud group {group}")?;
    Ok(())
}

fn subclouds(args: &GroupOutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = format!("{}/subclouds", group_path(&args.group)?);
    let api = &connect(env)?;
    let reply = api.get(&path, &Query::new())?;
    print_subclouds(
        io,
        &args.output,
        list_items(&reply, "subclouds")?,
        &format!("No subclouds in group {}.", args.group),
    )
}

fn print_group_apps(io: &mut Io<'_>, output: &OutputArgs, reply: &Value) -> Result<(), Error> {
    if output.output.is_data() {
        return print_data(io, output, reply);
    }
    let mut table = new_table(&["Application", "Version", "Digest", "Size"]);
    for a in reply["apps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        table.add_row(vec![
            field(a, "name"),
            field(a, "version"),
            field(a, "digest"),
            field(a, "size"),
        ]);
    }
    print_table(io, output, &table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: SubcloudGroupCommand,
    }

    fn parse(args: &[&str]) -> Result<SubcloudGroupCommand, clap::Error> {
        let mut argv = vec!["subcloud-group"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.cmd)
    }

    #[test]
    fn add_sends_the_name_and_the_given_settings_with_an_integer_maximum() {
        let SubcloudGroupCommand::Add(args) = parse(&[
            "add",
            "--name",
            "edge-sites",
            "--update-apply-type",
            "serial",
            "--max-parallel-subclouds",
            "5",
        ])
        .unwrap() else {
            panic!("not add")
        };
        assert_eq!(
            serde_json::to_value(add_body(&args).unwrap()).unwrap(),
            json!({"name": "edge-sites", "update_apply_type": "serial", "max_parallel_subclouds": 5})
        );
        assert!(parse(&["add"]).is_err(), "--name is required");
        assert!(parse(&["add", "--name", "g", "--update-apply-type", "random"]).is_err());
        assert!(parse(&["add", "--name", "g", "--max-parallel-subclouds", "0"]).is_err());
    }

    #[test]
    fn the_starlingx_underscore_spellings_are_accepted() {
        let SubcloudGroupCommand::Add(args) = parse(&[
            "add",
            "--name",
            "g",
            "--update_apply_type",
            "parallel",
            "--max_parallel_subclouds",
            "3",
        ])
        .unwrap() else {
            panic!("not add")
        };
        assert_eq!(args.settings.update_apply_type.as_deref(), Some("parallel"));
        assert_eq!(args.settings.max_parallel_subclouds, Some(3));
    }

    #[test]
    fn update_sends_the_given_fields_and_refuses_nothing() {
        let SubcloudGroupCommand::Update(args) =
            parse(&["update", "2", "--name", "renamed", "--description", "d"]).unwrap()
        else {
            panic!("not update")
        };
        assert_eq!(
            serde_json::to_value(update_body(&args).unwrap()).unwrap(),
            json!({"name": "renamed", "description": "d"})
        );
        let SubcloudGroupCommand::Update(args) = parse(&["update", "2"]).unwrap() else {
            panic!("not update")
        };
        let err = update_body(&args).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.message().starts_with("nothing to update"), "{err}");
    }

    #[test]
    fn every_group_verb_parses_with_its_flags() {
        for argv in [
            &["list", "-o", "json"][..],
            &["show", "Default"],
            &["add", "--name", "g", "--description", "d", "-o", "json"],
            &["update", "g", "--max-parallel-subclouds", "4"],
            &["delete", "g"],
            &["subclouds", "1", "-o", "json"],
        ] {
            parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }
}

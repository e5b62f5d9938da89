//! `roost user …`: users and their roles through Keystone's v3 paths
//! (`/v3/users`, `/v3/projects/{p}/users/{u}/roles/{r}`), as the stock
//! `openstack user|role` commands use them. Roles are `admin`, `member`
//! (StarlingX's operator) and `reader`, on project `admin`.

use reqwest::Method;
use roost_api::identity::{
    User, UserCreate, UserCreateRequest, UserList, UserUpdate, UserUpdateRequest,
};
use serde_json::Value;

use crate::client::{Api, path_segment};
use crate::credentials::Env;
use crate::error::Error;
use crate::login::read_password;
use crate::output::{Column, OutputArgs, field, new_table, print_data, print_table, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// User verbs.
#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// List users with their roles and lockout state
    List(UserListArgs),
    /// Show one user
    Show(UserShowArgs),
    /// Create a user (the password is read from a prompt or standard input)
    Create(UserCreateArgs),
    /// Delete a user; its tokens are revoked at once
    Delete(UserArg),
    /// Set a user's password (its tokens are revoked)
    Passwd(UserPasswdArgs),
    /// Clear a user's lockout and enable it
    Unlock(UserArg),
    /// Disable a user; its tokens are revoked
    Disable(UserArg),
    /// Grant or revoke roles
    #[command(subcommand)]
    Role(UserRoleCommand),
}

/// `roost user role …`.
#[derive(clap::Subcommand, Debug)]
pub enum UserRoleCommand {
    /// Grant a role (admin, member or reader) on project admin
    Add(UserRoleArgs),
    /// Revoke a role
    Remove(UserRoleArgs),
}

/// A user by name or id.
#[derive(clap::Args, Debug)]
pub struct UserArg {
    /// User name or id
    pub user: String,
}

#[derive(clap::Args, Debug)]
pub struct UserListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct UserShowArgs {
    /// User name or id
    pub user: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct UserCreateArgs {
    /// The new user's name
    pub name: String,
    /// A role on project admin (repeatable): admin, member or reader
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// Read the password from standard input instead of a prompt
    #[arg(long)]
    pub password_stdin: bool,
    /// Create the user disabled
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct UserPasswdArgs {
    /// User name or id
    pub user: String,
    /// Read the new password from standard input instead of a prompt
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(clap::Args, Debug)]
pub struct UserRoleArgs {
    /// User name or id
    pub user: String,
    /// admin, member or reader
    pub role: String,
}

/// Runs one user verb.
pub(crate) fn run(cmd: UserCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = &connect(env)?;
    match cmd {
        UserCommand::List(a) => {
            let reply = api.get("/v3/users", &Query::new())?;
            if a.output.output.is_data() && a.output.columns.is_empty() {
                return print_data(io, &a.output, &reply);
            }
            let list: UserList = parse(reply)?;
            let users = list
                .users
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|e| Error::failure(format!("cannot print the users: {e}")))?;
            render_list(io, &a.output, &user_columns(), &users, "")
        }
        UserCommand::Show(a) => {
            let reply = api.get(&user_path(&a.user)?, &Query::new())?;
            if a.output.output.is_data() {
                return print_data(io, &a.output, &reply);
            }
            let user: User = parse(reply["user"].clone())?;
            print_table(io, &a.output, &user_table(&[user]))
        }
        UserCommand::Create(a) => {
            let password = read_password(a.password_stdin, io)?;
            let body = UserCreateRequest {
                user: UserCreate {
                    name: a.name.clone(),
                    password: Some(password),
                    enabled: Some(!a.disabled),
                    domain_id: None,
                    default_project_id: None,
                    roles: a.roles.clone(),
                },
            };
            let reply = api.post("/v3/users", &body)?;
            if a.output.output.is_data() {
                return print_data(io, &a.output, &reply);
            }
            let user: User = parse(reply["user"].clone())?;
            print_table(io, &a.output, &user_table(&[user]))
        }
        UserCommand::Delete(a) => {
            api.delete(&user_path(&a.user)?)?;
            writeln!(io.out, "Deleted user {}", a.user)?;
            Ok(())
        }
        UserCommand::Passwd(a) => {
            let password = read_password(a.password_stdin, io)?;
            update(
                api,
                &a.user,
                UserUpdate {
                    password: Some(password),
                    ..Default::default()
                },
            )?;
            writeln!(
                io.out,
                "Password of {} changed; its tokens are revoked",
                a.user
            )?;
            Ok(())
        }
        UserCommand::Unlock(a) => {
            update(
                api,
                &a.user,
                UserUpdate {
                    enabled: Some(true),
                    ..Default::default()
                },
            )?;
            writeln!(io.out, "User {} is enabled and unlocked", a.user)?;
            Ok(())
        }
        UserCommand::Disable(a) => {
            update(
                api,
                &a.user,
                UserUpdate {
                    enabled: Some(false),
                    ..Default::default()
                },
            )?;
            writeln!(
                io.out,
                "User {} is disabled; its tokens are revoked",
                a.user
            )?;
            Ok(())
        }
        UserCommand::Role(UserRoleCommand::Add(a)) => {
            set_role(api, &a, Method::PUT)?;
            writeln!(io.out, "Granted {} to {} on project admin", a.role, a.user)?;
            Ok(())
        }
        UserCommand::Role(UserRoleCommand::Remove(a)) => {
            set_role(api, &a, Method::DELETE)?;
            writeln!(
                io.out,
                "Revoked {} from {} on project admin",
                a.role, a.user
            )?;
            Ok(())
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::failure(format!("unexpected user listing: {e}")))
}

fn user_path(user: &str) -> Result<String, Error> {
    Ok(format!("/v3/users/{}", path_segment("user", user)?))
}

fn update(api: &Api, user: &str, u: UserUpdate) -> Result<(), Error> {
    api.patch(&user_path(user)?, &UserUpdateRequest { user: u })?;
    Ok(())
}

fn set_role(api: &Api, a: &UserRoleArgs, method: Method) -> Result<(), Error> {
    let path = format!(
        "/v3/projects/admin/users/{}/roles/{}",
        path_segment("user", &a.user)?,
        path_segment("role", &a.role)?
    );
    api.send(method, &path, &Query::new(), None::<&Value>)?;
    Ok(())
}

/// The columns of `roost user list`: Name, Id, Roles, Enabled, Failed
/// logins, Locked until; wide adds the domain and the password's expiry.
pub fn user_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Name", "name"),
        Column::key("Id", "id"),
        Column::with("Roles", Some("roles"), |u| {
            u.get("roles")
                .and_then(Value::as_array)
                .map(|roles| {
                    roles
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        }),
        Column::with("Enabled", Some("enabled"), |u| {
            field(u, "enabled").to_lowercase()
        }),
        Column::key("Failed logins", "failed_logins"),
        Column::with("Locked until", Some("locked_until"), |u| {
            match field(u, "locked_until") {
                t if t.is_empty() => "-".to_string(),
                t => t,
            }
        }),
        Column::key("Domain", "domain_id").wide(),
        Column::key("Password expires", "password_expires_at").wide(),
    ]
}

fn user_table(users: &[User]) -> comfy_table::Table {
    let mut t = new_table(&[
        "Name",
        "Id",
        "Roles",
        "Enabled",
        "Failed logins",
        "Locked until",
    ]);
    for u in users {
        t.add_row(vec![
            u.name.clone(),
            u.id.clone(),
            u.roles.join(","),
            u.enabled.to_string(),
            u.failed_logins.to_string(),
            u.locked_until.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t
}

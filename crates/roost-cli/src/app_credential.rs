//! `roost app-credential …`: Keystone application credentials of the
//! logged-in user (`/v3/users/{user_id}/application_credentials`), as
//! `openstack application credential` manages them. A credential gets
//! tokens without the password (Prometheus, scripts); its secret is shown
//! once, when it is created.

use roost_api::identity::{AppCredentialCreate, AppCredentialCreateRequest, NamedRef};
use serde_json::Value;

use crate::client::{Api, path_segment};
use crate::credentials::Env;
use crate::error::Error;
use crate::output::{Column, OutputArgs, print_data, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Application-credential verbs.
#[derive(clap::Subcommand, Debug)]
pub enum AppCredentialCommand {
    /// Create an application credential for yourself; its secret is printed once
    Create(AppCredentialCreateArgs),
    /// List your application credentials (never their secrets)
    List(AppCredentialListArgs),
    /// Delete an application credential (by name or id); the tokens it made are revoked
    Delete(AppCredentialArg),
}

#[derive(clap::Args, Debug)]
pub struct AppCredentialCreateArgs {
    /// Its name (unique among your credentials)
    pub name: String,
    /// What it is for
    #[arg(long)]
    pub description: Option<String>,
    /// When it stops working, ISO 8601 UTC (e.g. 2030-01-31T00:00:00Z); default: never
    #[arg(long, value_name = "TIME")]
    pub expires: Option<String>,
    /// A role it grants (repeatable; default: every role of your token), e.g. reader for Prometheus
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct AppCredentialListArgs {
    /// Another user's credentials (name or id; needs an admin token)
    #[arg(long)]
    pub user: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct AppCredentialArg {
    /// The credential's name or id
    pub credential: String,
    /// Another user's credential (name or id; needs an admin token)
    #[arg(long)]
    pub user: Option<String>,
}

/// The id of the token's user, from the token's validation.
fn my_user_id(api: &Api) -> Result<String, Error> {
    api.own_token()?
        .pointer("/token/user/id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::failure("the server did not say who the token's user is"))
}

/// The user whose credentials a verb manages: `--user`, else the
/// context's user, else the token's.
fn owner(api: &Api, env: &Env, user: Option<&str>) -> Result<String, Error> {
    if let Some(u) = user {
        return Ok(u.to_string());
    }
    if let Some(path) = env.contexts_path()
        && env.roost_token.is_none()
        && let Some(ctx) = crate::context::selected(env, &crate::context::load(&path)?)?
        && let Some(id) = &ctx.user_id
    {
        return Ok(id.clone());
    }
    my_user_id(api)
}

fn columns() -> Vec<Column<'static>> {
    vec![
        Column::key("ID", "id"),
        Column::key("NAME", "name"),
        Column::with("ROLES", None, |v| {
            v["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["name"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        }),
        Column::with("EXPIRES", Some("expires_at"), |v| {
            v["expires_at"].as_str().unwrap_or("never").to_string()
        }),
        Column::key("DESCRIPTION", "description").long(),
    ]
}

/// Runs `roost app-credential …`.
pub(crate) fn run(cmd: AppCredentialCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let api = connect(env)?;
    match cmd {
        AppCredentialCommand::Create(a) => {
            let user = owner(&api, env, None)?;
            let body = AppCredentialCreateRequest {
                application_credential: AppCredentialCreate {
                    name: a.name.clone(),
                    description: a.description.clone(),
                    expires_at: a.expires.clone(),
                    secret: None,
                    roles: (!a.roles.is_empty()).then(|| {
                        a.roles
                            .iter()
                            .map(|r| NamedRef {
                                id: None,
                                name: Some(r.clone()),
                            })
                            .collect()
                    }),
                    unrestricted: None,
                },
            };
            let reply = api
                .post(
                    &format!(
                        "/v3/users/{}/application_credentials",
                        path_segment("user", &user)?
                    ),
                    &body,
                )
                .map_err(|e| {
                    e.on_status(409, || {
                        format!(
                            "you already have an application credential named {}",
                            a.name
                        )
                    })
                })?;
            let cred = &reply["application_credential"];
            if a.output.output.is_data() {
                return print_data(io, &a.output, cred);
            }
            let roles: Vec<&str> = cred["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["name"].as_str())
                .collect();
            writeln!(
                io.out,
                "id:      {}",
                cred["id"].as_str().unwrap_or_default()
            )?;
            writeln!(
                io.out,
                "name:    {}",
                cred["name"].as_str().unwrap_or_default()
            )?;
            writeln!(io.out, "roles:   {}", roles.join(","))?;
            writeln!(
                io.out,
                "expires: {}",
                cred["expires_at"].as_str().unwrap_or("never")
            )?;
            writeln!(
                io.out,
                "secret:  {}",
                cred["secret"].as_str().unwrap_or_default()
            )?;
            writeln!(
                io.err,
                "Keep the secret now: it is not shown again. Get a token with POST /v3/auth/tokens, method application_credential (id and secret)."
            )?;
            Ok(())
        }
        AppCredentialCommand::List(a) => {
            let user = owner(&api, env, a.user.as_deref())?;
            let reply = api.get(
                &format!(
                    "/v3/users/{}/application_credentials",
                    path_segment("user", &user)?
                ),
                &Query::new(),
            )?;
            let items = crate::output::list_items(&reply, "application_credentials")?;
            render_list(
                io,
                &a.output,
                &columns(),
                &items,
                "no application credentials",
            )
        }
        AppCredentialCommand::Delete(a) => {
            let user = owner(&api, env, a.user.as_deref())?;
            let base = format!(
                "/v3/users/{}/application_credentials",
                path_segment("user", &user)?
            );
            // By name first (names are what people type), else as an id.
            let listed = api.get(&base, &Query::new().param("name", Some(&a.credential)))?;
            let id = listed["application_credentials"]
                .as_array()
                .and_then(|l| l.first())
                .and_then(|c| c["id"].as_str())
                .map(str::to_string)
                .unwrap_or_else(|| a.credential.clone());
            api.delete(&format!(
                "{base}/{}",
                path_segment("application credential", &id)?
            ))
            .map_err(|e| {
                e.on_status(404, || {
                    format!("application credential {} not found", a.credential)
                })
            })?;
            writeln!(io.out, "Application credential {} deleted", a.credential)?;
            Ok(())
        }
    }
}

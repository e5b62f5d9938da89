//! Contexts, as kubeconfig has them: one file (`contexts.json`, mode 0600,
//! next to where `credentials.json` used to be) holds every server the user
//! logged in to, each under a name, and which one is current.
//!
//! A context keeps the server URL, the user, the current token and its
//! expiry, and, when `roost login` made one, an application credential
//! (id and secret) with which the client gets a new token without the
//! password when the old one expired or was refused.
//!
//! The old single `credentials.json` is imported as a context the first
//! time the contexts file is read and does not exist yet; the old file is
//! then removed.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use reqwest::Method;
use roost_api::identity::AuthRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Io;
use crate::client::Api;
use crate::credentials::{CREDENTIALS_FILE, Env, read_credentials, write_private};
use crate::error::Error;
use crate::output::{Column, OutputArgs, render_list};
use crate::query::Query;

/// Name of the contexts file inside the configuration directory.
pub const CONTEXTS_FILE: &str = "contexts.json";

/// The application credential a context gets new tokens with. No `Debug`
/// with the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAppCredential {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub secret: String,
}

impl fmt::Debug for SavedAppCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SavedAppCredential")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One server and who the user is there.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub name: String,
    /// Server base URL, without a trailing slash.
    pub url: String,
    /// The CA certificate file trusted for this server, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The token from `X-Subject-Token`; `None` after `roost logout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token's `expires_at`, as the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_credential: Option<SavedAppCredential>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .field("app_credential", &self.app_credential)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Whether the token's expiry has passed at `now` (an unknown or
    /// unreadable expiry counts as not passed: the server decides).
    pub fn expired(&self, now: roost_types::Timestamp) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|e| e.parse::<roost_types::Timestamp>().ok())
            .is_some_and(|e| e <= now)
    }
}

/// The contexts file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contexts {
    /// The context used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

impl Contexts {
    pub fn get(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Context> {
        self.contexts.iter_mut().find(|c| c.name == name)
    }

    /// Adds `ctx` or replaces the context of the same name.
    pub fn upsert(&mut self, ctx: Context) {
        match self.get_mut(&ctx.name) {
            Some(old) => *old = ctx,
            None => self.contexts.push(ctx),
        }
    }
}

/// The default name of a context for `url`: its host and port, such as
/// `127.0.0.1-6385` or `cloud.example.com-443`.
pub fn default_name(url: &str) -> String {
    let parsed = reqwest::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "server".into());
    let port = parsed
        .as_ref()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(443);
    let host: String = host
        .trim_matches(|c| c == '[' || c == ']')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{host}-{port}")
}

/// Checks a context name: 1 to 64 characters of letters, digits, `.`, `-`
/// and `_`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "{name:?} is not a context name: use 1 to 64 letters, digits, '.', '-' and '_'"
        )))
    }
}

impl Env {
    /// The configuration directory: where the contexts file, the old
    /// credentials file and pinned CAs live.
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.credentials_path()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    }

    /// Where the contexts file lives.
    pub fn contexts_path(&self) -> Option<PathBuf> {
        self.config_dir().map(|d| d.join(CONTEXTS_FILE))
    }

    /// The contexts path, or the usage error saying it cannot be known.
    pub fn require_contexts_path(&self) -> Result<PathBuf, Error> {
        self.contexts_path().ok_or_else(|| {
            Error::usage(
                "cannot tell where to keep credentials: set ROOST_CONFIG_DIR, XDG_CONFIG_HOME or HOME",
            )
        })
    }
}

/// Writes the contexts file (0600, in a 0700 directory, atomically).
pub fn save(path: &Path, contexts: &Contexts) -> Result<(), Error> {
    let mut json = serde_json::to_vec_pretty(contexts)
        .map_err(|e| Error::failure(format!("cannot encode the contexts: {e}")))?;
    json.push(b'\n');
    write_private(path, &json)
        .map_err(|e| Error::usage(format!("cannot save contexts to {}: {e}", path.display())))
}

/// Reads the contexts file at `path`. When it does not exist and the old
/// `credentials.json` beside it does, that one is imported as a context
/// (named after its server, and made current), saved, and removed.
pub fn load(path: &Path) -> Result<Contexts, Error> {
    match fs::read_to_string(path) {
        Ok(text) => {
            return serde_json::from_str(&text).map_err(|e| {
                Error::usage(format!(
                    "{} is damaged ({e}); fix or remove it and run `roost login` again",
                    path.display()
                ))
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::usage(format!("cannot read {}: {e}", path.display())));
        }
    }
    let old = path.with_file_name(CREDENTIALS_FILE);
    let Some(creds) = read_credentials(&old)? else {
        return Ok(Contexts::default());
    };
    let name = default_name(&creds.url);
    let contexts = Contexts {
        current: Some(name.clone()),
        contexts: vec![Context {
            name,
            url: creds.url,
            ca_file: None,
            username: None,
            user_id: None,
            token: Some(creds.token),
            expires_at: creds.expires_at,
            app_credential: None,
        }],
    };
    save(path, &contexts)?;
    // The token now lives in the contexts file only.
    let _ = fs::remove_file(&old);
    Ok(contexts)
}

/// The context a command uses: the one named by `--context` or
/// `ROOST_CONTEXT`, else the current one. `Ok(None)` when there is none
/// and none was named.
pub fn selected<'a>(env: &Env, contexts: &'a Contexts) -> Result<Option<&'a Context>, Error> {
    match env.context.as_deref() {
        Some(name) => contexts.get(name).map(Some).ok_or_else(|| {
            Error::usage(format!(
                "there is no context named {name}; `roost context list` shows them, `roost login --context {name}` makes it"
            ))
        }),
        None => Ok(contexts
            .current
            .as_deref()
            .and_then(|name| contexts.get(name))),
    }
}

/// A token made with an application credential: the token and its expiry.
pub fn token_with_app_credential(
    url: &str,
    ca_pem: Option<&str>,
    cred: &SavedAppCredential,
) -> Result<(String, Option<String>), Error> {
    let api = Api::with_ca(url, None, ca_pem)?;
    let body = AuthRequest::app_credential(&cred.id, &cred.secret);
    let reply = api.send(Method::POST, "/v3/auth/tokens", &Query::new(), Some(&body))?;
    let token = reply
        .headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::failure("the server sent no token (the X-Subject-Token header is missing)")
        })?;
    let expires_at = reply
        .body
        .pointer("/token/expires_at")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((token.to_string(), expires_at))
}

/// How to log in again to context `name`.
pub fn login_hint(name: &str) -> String {
    format!("run `roost login --context {name}` to log in again")
}

/// Gets a new token for context `name` with its application credential,
/// saves it in the contexts file at `path`, and returns it.
pub fn refresh(env: &Env, path: &Path, name: &str) -> Result<String, Error> {
    let contexts = load(path)?;
    let ctx = contexts
        .get(name)
        .ok_or_else(|| Error::usage(format!("there is no context named {name}")))?;
    let Some(cred) = ctx.app_credential.clone() else {
        return Err(Error::http(
            401,
            format!(
                "the server {} refused the token of context {name} (expired or revoked) and the context has no application credential to get another; {}",
                ctx.url,
                login_hint(name)
            ),
        ));
    };
    let url = ctx.url.clone();
    let ca = ca_for(env, ctx)?;
    let (token, expires_at) = token_with_app_credential(&url, ca.as_deref(), &cred).map_err(
        |e| match e.http_status() {
            Some(401) => Error::http(
                401,
                format!(
                    "the server {url} refused the token of context {name} and its application credential {} (deleted, expired, or the user disabled); {}",
                    cred.id,
                    login_hint(name)
                ),
            ),
            _ => e,
        },
    )?;
    // Read again: another command may have changed the file meanwhile.
    let mut contexts = load(path)?;
    if let Some(c) = contexts.get_mut(name) {
        c.token = Some(token.clone());
        c.expires_at = expires_at;
    }
    save(path, &contexts)?;
    Ok(token)
}

/// The CA certificate(s) to trust for a context: its CA file, else the
/// environment's or the pinned one.
pub fn ca_for(env: &Env, ctx: &Context) -> Result<Option<String>, Error> {
    if !ctx.url.starts_with("https://") {
        return Ok(None);
    }
    if let Some(file) = &ctx.ca_file
        && env.vars.get("ROOST_CACERT").is_none()
        && env.vars.get("OS_CACERT").is_none()
    {
        match fs::read_to_string(file) {
            Ok(pem) => return Ok(Some(pem)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::usage(format!(
                    "cannot read the CA file {}: {e}",
                    file.display()
                )));
            }
        }
    }
    crate::credentials::trusted_ca(env, &ctx.url)
}

// ----- the verbs ---------------------------------------------------------

/// `roost context …`.
#[derive(clap::Subcommand, Debug)]
pub enum ContextCommand {
    /// List the contexts (servers logged in to); * marks the current one
    List(ContextListArgs),
    /// Make a context the current one
    Use(ContextNameArg),
    /// Forget a context (its token and secrets); see `roost logout` to delete its application credential on the server first
    Delete(ContextNameArg),
    /// Rename a context
    Rename(ContextRenameArgs),
}

#[derive(clap::Args, Debug)]
pub struct ContextListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

#[derive(clap::Args, Debug)]
pub struct ContextNameArg {
    /// The context's name
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct ContextRenameArgs {
    /// The context's name
    pub old: String,
    /// Its new name
    pub new: String,
}

/// Runs `roost context …`.
pub(crate) fn run(cmd: ContextCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = env.require_contexts_path()?;
    let mut contexts = load(&path)?;
    let missing = |name: &str| {
        Error::usage(format!(
            "there is no context named {name}; `roost context list` shows them"
        ))
    };
    match cmd {
        ContextCommand::List(a) => {
            let now = roost_types::Timestamp(now_micros());
            let items: Vec<Value> = contexts
                .contexts
                .iter()
                .map(|c| list_item(c, contexts.current.as_deref() == Some(&c.name), now))
                .collect();
            let columns = [
                Column::with("CURRENT", Some("current"), |v| {
                    if v["current"].as_bool() == Some(true) {
                        "*".into()
                    } else {
                        String::new()
                    }
                }),
                Column::key("NAME", "name"),
                Column::key("SERVER", "server"),
                Column::key("USER", "user"),
                Column::key("TOKEN EXPIRES", "token_expires"),
                Column::key("REFRESH", "refresh"),
            ];
            render_list(
                io,
                &a.output,
                &columns,
                &items,
                "no contexts; run `roost login` to make one",
            )
        }
        ContextCommand::Use(a) => {
            if contexts.get(&a.name).is_none() {
                return Err(missing(&a.name));
            }
            contexts.current = Some(a.name.clone());
            save(&path, &contexts)?;
            writeln!(io.out, "Current context is now {}", a.name)?;
            Ok(())
        }
        ContextCommand::Delete(a) => {
            let Some(at) = contexts.contexts.iter().position(|c| c.name == a.name) else {
                return Err(missing(&a.name));
            };
            let gone = contexts.contexts.remove(at);
            if contexts.current.as_deref() == Some(&a.name) {
                contexts.current = None;
            }
            save(&path, &contexts)?;
            writeln!(io.out, "Context {} deleted", a.name)?;
            if let Some(cred) = &gone.app_credential {
                writeln!(
                    io.err,
                    "Its application credential {} stays on {}; delete it there with `roost app-credential delete {}` if it is no longer used",
                    cred.id, gone.url, cred.id
                )?;
            }
            Ok(())
        }
        ContextCommand::Rename(a) => {
            check_name(&a.new)?;
            if contexts.get(&a.old).is_none() {
                return Err(missing(&a.old));
            }
            if contexts.get(&a.new).is_some() {
                return Err(Error::usage(format!("a context named {} exists", a.new)));
            }
            if let Some(c) = contexts.get_mut(&a.old) {
                c.name = a.new.clone();
            }
            if contexts.current.as_deref() == Some(&a.old) {
                contexts.current = Some(a.new.clone());
            }
            save(&path, &contexts)?;
            writeln!(io.out, "Context {} renamed to {}", a.old, a.new)?;
            Ok(())
        }
    }
}

/// A context as `roost context list` shows it: never its token or secret.
fn list_item(c: &Context, current: bool, now: roost_types::Timestamp) -> Value {
    let expires = match (&c.token, &c.expires_at) {
        (None, _) => "logged out".to_string(),
        (Some(_), Some(e)) if c.expired(now) => format!("{e} (expired)"),
        (Some(_), Some(e)) => e.clone(),
        (Some(_), None) => "unknown".to_string(),
    };
    let mut item = serde_json::Map::new();
    item.insert("current".into(), Value::Bool(current));
    item.insert("name".into(), Value::String(c.name.clone()));
    item.insert("server".into(), Value::String(c.url.clone()));
    item.insert(
        "user".into(),
        Value::String(c.username.clone().unwrap_or_default()),
    );
    item.insert("token_expires".into(), Value::String(expires));
    item.insert(
        "refresh".into(),
        Value::String(
            c.app_credential
                .as_ref()
                .map_or("no".to_string(), |a| format!("app credential {}", a.id)),
        ),
    );
    Value::Object(item)
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `roost token`.
#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// Print the token's expiry too, on a second line
    #[arg(long)]
    pub expires: bool,
    /// Print {"token", "expires_at", "context", "url"} as JSON
    #[arg(short = 'o', long = "output", value_name = "FORMAT", value_parser = ["text", "json"], default_value = "text")]
    pub output: String,
}

/// Runs `roost token`: the token of the selected context (first renewed
/// with its application credential when it expired) alone on standard
/// output; `ROOST_TOKEN` when set.
pub(crate) fn token(args: &TokenArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let (token, expires_at, context, url) = match (&env.roost_token, env.context.as_deref()) {
        (Some(t), None) => (t.clone(), None, None, env.roost_url.clone()),
        _ => {
            let path = env.require_contexts_path()?;
            let contexts = load(&path)?;
            let Some(ctx) = selected(env, &contexts)?.cloned() else {
                return Err(Error::usage(crate::credentials::NOT_LOGGED_IN));
            };
            let now = roost_types::Timestamp(now_micros());
            let stale = ctx.token.is_none() || ctx.expired(now);
            let (token, expires_at) = if stale {
                if ctx.app_credential.is_none() {
                    return Err(Error::usage(format!(
                        "the token of context {} has expired (or was forgotten by `roost logout`) and the context has no application credential; {}",
                        ctx.name,
                        login_hint(&ctx.name)
                    )));
                }
                let token = refresh(env, &path, &ctx.name)?;
                let after = load(&path)?;
                let expires = after.get(&ctx.name).and_then(|c| c.expires_at.clone());
                (token, expires)
            } else {
                (
                    ctx.token.clone().unwrap_or_default(),
                    ctx.expires_at.clone(),
                )
            };
            (token, expires_at, Some(ctx.name), Some(ctx.url))
        }
    };
    if args.output == "json" {
        let mut doc = serde_json::Map::new();
        doc.insert("token".into(), Value::String(token));
        doc.insert(
            "expires_at".into(),
            expires_at.map_or(Value::Null, Value::String),
        );
        doc.insert("context".into(), context.map_or(Value::Null, Value::String));
        doc.insert("url".into(), url.map_or(Value::Null, Value::String));
        return crate::output::print_json(io.out, &Value::Object(doc));
    }
    writeln!(io.out, "{token}")?;
    if args.expires {
        writeln!(io.out, "{}", expires_at.as_deref().unwrap_or("unknown"))?;
    }
    Ok(())
}

/// `roost logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {}

/// Runs `roost logout`: deletes the context's application credential on
/// the server (when it can be reached), revokes its token, and forgets
/// both. The context stays, with its server and user, for the next
/// `roost login --context NAME`.
pub(crate) fn logout(_args: &LogoutArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = env.require_contexts_path()?;
    let mut contexts = load(&path)?;
    let Some(ctx) = selected(env, &contexts)?.cloned() else {
        return Err(Error::usage(crate::credentials::NOT_LOGGED_IN));
    };
    let ca = ca_for(env, &ctx)?;
    // A token to act with: the stored one, else one from the credential.
    let now = roost_types::Timestamp(now_micros());
    let mut token = ctx.token.clone().filter(|_| !ctx.expired(now));
    if token.is_none()
        && let Some(cred) = &ctx.app_credential
    {
        token = token_with_app_credential(&ctx.url, ca.as_deref(), cred)
            .ok()
            .map(|(t, _)| t);
    }
    if let (Some(cred), Some(user_id)) = (&ctx.app_credential, &ctx.user_id) {
        let result = token
            .as_deref()
            .ok_or_else(|| Error::failure("no valid token"))
            .and_then(|t| Api::with_ca(&ctx.url, Some(t), ca.as_deref()))
            .and_then(|api| {
                api.delete(&format!(
                    "/v3/users/{}/application_credentials/{}",
                    crate::client::path_segment("user id", user_id)?,
                    crate::client::path_segment("application credential id", &cred.id)?
                ))
            });
        match result {
            Ok(_) => {}
            Err(e) if e.http_status() == Some(404) => {}
            Err(e) => writeln!(
                io.err,
                "could not delete the application credential {} on {}: {}; delete it there later with `roost app-credential delete {}`",
                cred.id,
                ctx.url,
                e.message(),
                cred.id
            )?,
        }
    }
    if let Some(t) = &token
        && let Ok(api) = Api::with_ca(&ctx.url, Some(t), ca.as_deref())
    {
        let header = [("X-Subject-Token", t.as_str())];
        let _ = api.delete_with_headers("/v3/auth/tokens", &header);
    }
    if let Some(c) = contexts.get_mut(&ctx.name) {
        c.token = None;
        c.expires_at = None;
        c.app_credential = None;
    }
    save(&path, &contexts)?;
    writeln!(io.out, "Logged out of {} (context {})", ctx.url, ctx.name)?;
    Ok(())
}

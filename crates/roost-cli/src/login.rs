//! `roost login`: asks for the server, user and password, gets a token with
//! Keystone v3's password method and stores it in the credentials file.

use reqwest::Method;
use roost_api::identity::{
    Auth, AuthRequest, Identity, NamedRef, PasswordMethod, ProjectRef, Scope, UserRef,
};
use serde_json::Value;

use crate::Io;
use crate::client::{Api, normalize_url};
use crate::credentials::{Credentials, Env, write_credentials};
use crate::error::Error;
use crate::query::Query;

/// URL offered when the user just presses Enter.
pub const DEFAULT_URL: &str = "http://127.0.0.1:6385";
/// User name offered when the user just presses Enter.
pub const DEFAULT_USERNAME: &str = "admin";

/// Flags of `roost login`. Whatever is not given is asked for; when standard
/// input is not a terminal the answers are read from it, one per line
/// (URL, user name, password), without prompts.
#[derive(clap::Args, Debug, Default)]
pub struct LoginArgs {
    /// Server URL [default when asked: http://127.0.0.1:6385]
    #[arg(long)]
    pub url: Option<String>,
    /// User name [default when asked: admin]
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password from the first line of standard input and ask
    /// nothing else (a missing --url or --username takes its default)
    #[arg(long)]
    pub password_stdin: bool,
}

/// Runs `roost login`.
pub(crate) fn login(args: &LoginArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None if args.password_stdin => DEFAULT_URL.to_string(),
        None => ask(io, "Server URL", DEFAULT_URL)?,
    };
    let url = normalize_url(&url)?;
    let username = match &args.username {
        Some(name) => name.trim().to_string(),
        None if args.password_stdin => DEFAULT_USERNAME.to_string(),
        None => ask(io, "User name", DEFAULT_USERNAME)?,
    };
    if username.is_empty() {
        return Err(Error::usage("the user name is empty"));
    }
    let password = read_password(args.password_stdin, io)?;
    let path = env.credentials_path().ok_or_else(|| {
        Error::usage(
            "cannot tell where to keep credentials: set ROOST_CONFIG_DIR, XDG_CONFIG_HOME or HOME",
        )
    })?;

    let creds = request_token(&url, &username, &password)?;
    write_credentials(&path, &creds).map_err(|e| {
        Error::usage(format!(
            "cannot save credentials to {}: {e}",
            path.display()
        ))
    })?;
    let expires = creds.expires_at.as_deref().unwrap_or("at an unknown time");
    writeln!(
        io.out,
        "Logged in to {url} as {username} (token expires {expires})"
    )?;
    Ok(())
}

/// The Keystone v3 password-method body for `username` in domain Default,
/// scoped to project `admin`.
pub fn token_request_body(username: &str, password: &str) -> AuthRequest {
    let default_domain = || NamedRef {
        id: None,
        name: Some("Default".into()),
    };
    AuthRequest {
        auth: Auth {
            identity: Identity {
                methods: vec!["password".into()],
                password: Some(PasswordMethod {
                    user: UserRef {
                        id: None,
                        name: Some(username.into()),
                        password: password.into(),
                        domain: Some(default_domain()),
                    },
                }),
                token: None,
            },
            scope: Some(Scope {
                project: Some(ProjectRef {
                    id: None,
                    name: Some("admin".into()),
                    domain: Some(default_domain()),
                }),
            }),
        },
    }
}

/// `POST {url}/v3/auth/tokens`; the token comes back in `X-Subject-Token`
/// and its expiry in `token.expires_at`.
fn request_token(url: &str, username: &str, password: &str) -> Result<Credentials, Error> {
    let api = Api::new(url, None)?;
    let body = token_request_body(username, password);
    let reply = api
        .send(Method::POST, "/v3/auth/tokens", &Query::new(), Some(&body))
        .map_err(|e| {
            if e.http_status() == Some(401) {
                Error::http(401, format!("login as {username} refused: {}", e.message()))
            } else {
                e
            }
        })?;
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
    Ok(Credentials {
        url: url.to_string(),
        token: token.to_string(),
        expires_at,
    })
}

/// One line of input without its line ending; `None` at end of input.
pub(crate) fn read_line(io: &mut Io<'_>) -> Result<Option<String>, Error> {
    let mut line = String::new();
    let n = io
        .input
        .read_line(&mut line)
        .map_err(|e| Error::usage(format!("cannot read standard input: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(Some(line))
}

/// Asks one question (prompting on stderr only when interactive); an empty
/// answer or the end of input picks `default`.
fn ask(io: &mut Io<'_>, question: &str, default: &str) -> Result<String, Error> {
    if io.interactive {
        write!(io.err, "{question} [{default}]: ")?;
        io.err.flush()?;
    }
    let answer = read_line(io)?.map(|a| a.trim().to_string());
    Ok(match answer {
        Some(a) if !a.is_empty() => a,
        _ => default.to_string(),
    })
}

/// The password: one line of standard input with `--password-stdin` or when
/// standard input is not a terminal, else a prompt without echo.
pub(crate) fn read_password(from_stdin: bool, io: &mut Io<'_>) -> Result<String, Error> {
    let password = if from_stdin || !io.interactive {
        read_line(io)?.ok_or_else(|| Error::usage("no password on standard input"))?
    } else {
        rpassword::prompt_password("Password: ")
            .map_err(|e| Error::usage(format!("cannot read the password: {e}")))?
    };
    if password.is_empty() {
        return Err(Error::usage("the password is empty"));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_request_is_keystone_v3_password_scoped_to_project_admin() {
        let body = serde_json::to_value(token_request_body("alice", "pw")).unwrap();
        assert_eq!(body["auth"]["identity"]["methods"], json!(["password"]));
        assert_eq!(
            body["auth"]["identity"]["password"]["user"],
            json!({"name": "alice", "domain": {"name": "Default"}, "password": "pw"})
        );
        assert_eq!(
            body["auth"]["scope"],
            json!({"project": {"name": "admin", "domain": {"name": "Default"}}})
        );
    }
}

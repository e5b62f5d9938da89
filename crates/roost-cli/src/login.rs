//! `roost login`: asks for the server, user and password, gets a token with
//! Keystone v3's password method and stores it as a context (made
//! current) in the contexts file. Unless `--no-remember`, it also creates
//! an application credential with which the client later gets new tokens
//! without the password.

use reqwest::Method;
use roost_api::identity::AuthRequest;
use serde_json::Value;

use crate::Io;
use crate::client::{Api, normalize_url};
use crate::context::{self, Context, SavedAppCredential};
use crate::credentials::{Credentials, Env, ca_pin_path, trusted_ca, write_private};
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
    /// https: trust the CA certificate(s) in this PEM file (pinned for
    /// this server from now on)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// https: trust the CA the server presents if its SHA-256 fingerprint
    /// is this one (SHA256:AB:CD:… or hex), and pin it
    #[arg(long, value_name = "SHA256:...")]
    pub trust_fingerprint: Option<String>,
    /// Do not create an application credential: when the token expires,
    /// log in again with the password
    #[arg(long)]
    pub no_remember: bool,
}

/// Runs `roost login`.
pub(crate) fn login(args: &LoginArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let path = env.require_contexts_path()?;
    let mut contexts = context::load(&path)?;
    // `--context NAME` of a known context: log in again to its server,
    // as its user, without asking.
    let known = env
        .context
        .as_deref()
        .and_then(|name| contexts.get(name))
        .cloned();
    let url = match (&args.url, &known) {
        (Some(url), _) => url.clone(),
        (None, Some(k)) => k.url.clone(),
        (None, None) if args.password_stdin => DEFAULT_URL.to_string(),
        (None, None) => ask(io, "Server URL", DEFAULT_URL)?,
    };
    let url = normalize_url(&url)?;
    let name = match &env.context {
        Some(name) => name.clone(),
        None => context::default_name(&url),
    };
    context::check_name(&name)?;
    let username = match (
        &args.username,
        known.as_ref().and_then(|k| k.username.clone()),
    ) {
        (Some(name), _) => name.trim().to_string(),
        (None, Some(known)) => known,
        (None, None) if args.password_stdin => DEFAULT_USERNAME.to_string(),
        (None, None) => ask(io, "User name", DEFAULT_USERNAME)?,
    };
    if username.is_empty() {
        return Err(Error::usage("the user name is empty"));
    }
    // As ssh: the server is trusted (or not) before a password is typed.
    let ca = if url.starts_with("https://") {
        Some(choose_ca(args, env, &url, io)?)
    } else {
        None
    };
    let password = read_password(args.password_stdin, io)?;
    let ca_pem = ca.as_ref().map(|c| c.pem.as_str());
    let (creds, user_id) = request_token(&url, &username, &password, ca_pem)?;
    let mut ca_file = known.as_ref().and_then(|k| k.ca_file.clone());
    if let Some(ca) = &ca
        && ca.pin
    {
        let pin = ca_pin_path(&path, &url);
        write_private(&pin, ca.pem.as_bytes())
            .map_err(|e| Error::usage(format!("cannot save the CA to {}: {e}", pin.display())))?;
        ca_file = Some(pin);
    }
    // The credential this context had is replaced by a new one.
    let old = contexts.get(&name).and_then(|c| {
        c.app_credential
            .clone()
            .filter(|_| c.url == url && c.user_id == user_id)
    });
    let api = Api::with_ca(&url, Some(&creds.token), ca_pem)?;
    if let (Some(old), Some(uid)) = (&old, &user_id) {
        let _ = api.delete(&app_credential_path(uid, &old.id)?);
    }
    let app_credential = match (&user_id, args.no_remember) {
        (Some(uid), false) => match remember(&api, uid, &name) {
            Ok(saved) => Some(saved),
            Err(e) => {
                writeln!(
                    io.err,
                    "roost: could not create an application credential ({}); when the token expires, log in again",
                    e.message()
                )?;
                None
            }
        },
        _ => None,
    };
    contexts.upsert(Context {
        name: name.clone(),
        url: url.clone(),
        ca_file,
        username: Some(username.clone()),
        user_id,
        token: Some(creds.token.clone()),
        expires_at: creds.expires_at.clone(),
        app_credential,
    });
    contexts.current = Some(name.clone());
    context::save(&path, &contexts)?;
    let expires = creds.expires_at.as_deref().unwrap_or("at an unknown time");
    writeln!(
        io.out,
        "Logged in to {url} as {username} (context {name}; token expires {expires})"
    )?;
    Ok(())
}

/// `/v3/users/{user}/application_credentials/{id}`.
fn app_credential_path(user_id: &str, id: &str) -> Result<String, Error> {
    Ok(format!(
        "/v3/users/{}/application_credentials/{}",
        crate::client::path_segment("user id", user_id)?,
        crate::client::path_segment("application credential id", id)?
    ))
}

/// The name of the application credential `roost login` makes for a
/// context: `roost-cli-<context>-<this host>`.
pub fn remember_name(context: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("roost-cli-{context}-{host}")
}

/// Creates the application credential of a login; one of the same name
/// left by an earlier login (from another copy of the contexts file) is
/// replaced.
fn remember(api: &Api, user_id: &str, context: &str) -> Result<SavedAppCredential, Error> {
    use roost_api::identity::{AppCredentialCreate, AppCredentialCreateRequest};
    let name = remember_name(context);
    let body = AppCredentialCreateRequest {
        application_credential: AppCredentialCreate {
            name: name.clone(),
            description: Some(format!(
                "made by `roost login` for context {context}; deleted by `roost logout`"
            )),
            expires_at: None,
            secret: None,
            roles: None,
            unrestricted: None,
        },
    };
    let list_path = format!(
        "/v3/users/{}/application_credentials",
        crate::client::path_segment("user id", user_id)?
    );
    let reply = match api.post(&list_path, &body) {
        Err(e) if e.http_status() == Some(409) => {
            let q = Query::new().param("name", Some(&name));
            let listed = api.get(&list_path, &q)?;
            for c in listed["application_credentials"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(id) = c["id"].as_str() {
                    api.delete(&app_credential_path(user_id, id)?)?;
                }
            }
            api.post(&list_path, &body)?
        }
        other => other?,
    };
    let cred = &reply["application_credential"];
    match (cred["id"].as_str(), cred["secret"].as_str()) {
        (Some(id), Some(secret)) => Ok(SavedAppCredential {
            id: id.to_string(),
            name,
            secret: secret.to_string(),
        }),
        _ => Err(Error::failure(
            "the server's answer has no application credential id or secret",
        )),
    }
}

/// The CA an https login trusts, and whether to pin it (store it for
/// this server).
struct ChosenCa {
    pem: String,
    pin: bool,
}

/// The CA to trust for `url`: the `--ca-file`; or the CA the server
/// presents, if its fingerprint is `--trust-fingerprint` or the user says
/// yes to it; or the one pinned by an earlier login; or `ROOST_CACERT` /
/// `OS_CACERT`. A server that presents another CA than the pinned one is
/// refused by the client itself ([`roost_pki::pinned_roots_client_config`]).
fn choose_ca(args: &LoginArgs, env: &Env, url: &str, io: &mut Io<'_>) -> Result<ChosenCa, Error> {
    if let Some(file) = &args.ca_file {
        let pem = std::fs::read_to_string(file)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", file.display())))?;
        roost_pki::cert_info(&pem)
            .map_err(|e| Error::usage(format!("{} holds no certificate: {e}", file.display())))?;
        return Ok(ChosenCa { pem, pin: true });
    }
    let known = if args.trust_fingerprint.is_some() {
        None
    } else {
        trusted_ca(env, url)?
    };
    if let Some(pem) = known {
        return Ok(ChosenCa { pem, pin: false });
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::usage(e.to_string()))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let chain = roost_pki::presented_chain(&host, port, std::time::Duration::from_secs(10))
        .map_err(|e| Error::failure(format!("cannot reach {url}: {e}")))?;
    let Some(ca) = roost_pki::chain_ca(&chain) else {
        return Err(Error::failure(format!("{url} presented no certificate")));
    };
    let fingerprint = roost_pki::fingerprint_der(ca.as_ref());
    let shown = roost_pki::display_fingerprint(&fingerprint);
    let name = roost_pki::cert_info_der(ca.as_ref())
        .ok()
        .and_then(|i| i.cn)
        .unwrap_or_else(|| "(no name)".into());
    let pem = roost_pki::der_to_pem(ca.as_ref());
    if let Some(want) = &args.trust_fingerprint {
        let want = roost_pki::normalize_fingerprint(want.trim().trim_start_matches("SHA256:"))
            .map_err(|e| Error::usage(format!("--trust-fingerprint: {e}")))?;
        if want != fingerprint {
            return Err(Error::failure(format!(
                "the server's CA {name:?} has fingerprint {shown}, not the one given with                  --trust-fingerprint ({}); refusing to log in",
                roost_pki::display_fingerprint(&want)
            )));
        }
        return Ok(ChosenCa { pem, pin: true });
    }
    writeln!(
        io.err,
        "The authenticity of {url} can't be established.\nIts CA is {name:?}, fingerprint {shown}."
    )?;
    if !io.interactive {
        return Err(Error::usage(format!(
            "the server's CA is not known; check its fingerprint ({shown}) against              `roost certificate list` on the server (or <data_dir>/tls/ca/ca.crt) and run              again with --trust-fingerprint {shown} or --ca-file FILE"
        )));
    }
    write!(io.err, "Trust this CA for {url} (yes/no)? ")?;
    io.err.flush()?;
    match read_line(io)?.map(|a| a.trim().to_ascii_lowercase()) {
        Some(a) if a == "yes" || a == "y" => Ok(ChosenCa { pem, pin: true }),
        _ => Err(Error::usage(
            "the server's CA was not trusted; not logged in",
        )),
    }
}

/// The Keystone v3 password-method body for `username` in domain Default,
/// scoped to project `admin`.
pub fn token_request_body(username: &str, password: &str) -> AuthRequest {
    AuthRequest::password_scoped(username, password)
}

/// `POST {url}/v3/auth/tokens`; the token comes back in `X-Subject-Token`
/// and its expiry in `token.expires_at`.
fn request_token(
    url: &str,
    username: &str,
    password: &str,
    ca_pem: Option<&str>,
) -> Result<(Credentials, Option<String>), Error> {
    let api = Api::with_ca(url, None, ca_pem)?;
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
    let user_id = reply
        .body
        .pointer("/token/user/id")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((
        Credentials {
            url: url.to_string(),
            token: token.to_string(),
            expires_at,
        },
        user_id,
    ))
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

//! Where the client finds its server URL and token: the environment
//! (`ROOST_URL`, `ROOST_TOKEN`) first, then the context chosen with
//! `--context` or `ROOST_CONTEXT`, else the current one, of the contexts
//! file written by `roost login` (see the `context` module). The old
//! single credentials file (`credentials.json`) is read only to import it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Name of the credentials file inside the configuration directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// What `roost login` remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Server base URL, without a trailing slash.
    pub url: String,
    /// The token from `X-Subject-Token`.
    pub token: String,
    /// The token's `expires_at`, as the server sent it.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The environment variables the client reads, captured once so that the
/// logic below stays pure and testable. Empty values count as unset.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `ROOST_URL`: overrides the stored URL.
    pub roost_url: Option<String>,
    /// `ROOST_TOKEN`: overrides the stored token.
    pub roost_token: Option<String>,
    /// `ROOST_CONFIG_DIR`: directory holding `credentials.json`.
    pub roost_config_dir: Option<OsString>,
    /// `XDG_CONFIG_HOME`: `roost/credentials.json` below it.
    pub xdg_config_home: Option<OsString>,
    /// `HOME`: `.config/roost/credentials.json` below it.
    pub home: Option<OsString>,
    /// The context to use: `--context`, else `ROOST_CONTEXT`.
    pub context: Option<String>,
    /// Every variable, for verbs that are given a variable's name
    /// (`roost host bmc --password-env VAR`).
    pub vars: Vars,
}

/// Environment variables by name. Values may be secrets, so `Debug` shows
/// the names only.
#[derive(Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    /// The value of `name`; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// These variables plus `name=value` (for tests).
    #[cfg(test)]
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_string(), value.to_string());
        self
    }
}

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env {
    /// Reads the variables from the process environment.
    pub fn from_process() -> Self {
        let text = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let path = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            roost_url: text("ROOST_URL"),
            roost_token: text("ROOST_TOKEN"),
            roost_config_dir: path("ROOST_CONFIG_DIR"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            home: path("HOME"),
            context: text("ROOST_CONTEXT"),
            vars: Vars(
                std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .collect(),
            ),
        }
    }

    /// Where the credentials file lives for this environment.
    pub fn credentials_path(&self) -> Option<PathBuf> {
        credentials_path(
            self.roost_config_dir.as_deref(),
            self.xdg_config_home.as_deref(),
            self.home.as_deref(),
        )
    }
}

/// The credentials file path: `$ROOST_CONFIG_DIR/credentials.json`, else
/// `$XDG_CONFIG_HOME/roost/credentials.json`, else
/// `$HOME/.config/roost/credentials.json`. Empty values are ignored; `None`
/// when none of the three is set.
pub fn credentials_path(
    roost_config_dir: Option<&std::ffi::OsStr>,
    xdg_config_home: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    let set = |v: Option<&std::ffi::OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(roost_config_dir) {
        Some(dir.join(CREDENTIALS_FILE))
    } else if let Some(dir) = set(xdg_config_home) {
        Some(dir.join("roost").join(CREDENTIALS_FILE))
    } else {
        set(home).map(|home| home.join(".config").join("roost").join(CREDENTIALS_FILE))
    }
}

/// Writes the credentials to `path` (the file before contexts; tests make
/// one to import). Missing directories are created with
/// mode 0700; the file is created with mode 0600 under a temporary name and
/// renamed into place, so it is never readable by others, not even briefly,
/// and a crash never leaves a half-written file.
#[cfg(test)]
pub fn write_credentials(path: &Path, creds: &Credentials) -> io::Result<()> {
    let mut json = serde_json::to_vec_pretty(creds)?;
    json.push(b'\n');
    write_private(path, &json)
}

/// Where the CA pinned for the server at `url` is kept: next to the
/// credentials file, `ca-<host>-<port>.pem`.
pub fn ca_pin_path(credentials: &Path, url: &str) -> PathBuf {
    let (host, port) = reqwest::Url::parse(url)
        .ok()
        .map(|u| {
            (
                u.host_str().unwrap_or("server").to_string(),
                u.port_or_known_default().unwrap_or(443),
            )
        })
        .unwrap_or_else(|| ("server".into(), 443));
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    credentials
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("ca-{host}-{port}.pem"))
}

/// The CA certificate(s) to trust for `url`: the file named by
/// `ROOST_CACERT` or `OS_CACERT`, else the one pinned by `roost login`.
pub fn trusted_ca(env: &Env, url: &str) -> Result<Option<String>, Error> {
    if !url.starts_with("https://") {
        return Ok(None);
    }
    if let Some(file) = env.vars.get("ROOST_CACERT").or(env.vars.get("OS_CACERT")) {
        return fs::read_to_string(file)
            .map(Some)
            .map_err(|e| Error::usage(format!("cannot read the CA file {file}: {e}")));
    }
    let Some(creds) = env.credentials_path() else {
        return Ok(None);
    };
    match fs::read_to_string(ca_pin_path(&creds, url)) {
        Ok(pem) => Ok(Some(pem)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::usage(format!("cannot read the pinned CA: {e}"))),
    }
}

/// Writes `contents` to `path` with mode 0600 (see [`write_credentials`]).
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| CREDENTIALS_FILE.to_string());
    let tmp = dir.join(format!(".{file_name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode above is filtered by the umask; make it exactly 0600.
        file.set_permissions(Permissions::from_mode(0o600))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads the credentials file; `Ok(None)` when it does not exist.
pub fn read_credentials(path: &Path) -> Result<Option<Credentials>, Error> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::usage(format!("cannot read {}: {e}", path.display())));
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::usage(format!(
            "{} is damaged ({e}); run `roost login` again",
            path.display()
        ))
    })
}

/// The server to talk to and the token to present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Server base URL.
    pub url: String,
    /// Token for `X-Auth-Token`.
    pub token: String,
    /// The context the token is of (`None`: it came from `ROOST_TOKEN`).
    pub context: Option<String>,
    /// Whether the context can get a new token with an application
    /// credential.
    pub renewable: bool,
}

/// Combines the environment with the stored credentials: `ROOST_URL` and
/// `ROOST_TOKEN` each override their stored counterpart. `None` when either
/// half is missing.
pub fn merge_target(
    env_url: Option<&str>,
    env_token: Option<&str>,
    stored: Option<&Credentials>,
) -> Option<Target> {
    let url = env_url.or(stored.map(|c| c.url.as_str()))?;
    let token = env_token.or(stored.map(|c| c.token.as_str()))?;
    Some(Target {
        url: url.to_string(),
        token: token.to_string(),
        context: None,
        renewable: false,
    })
}

/// The message (exit code 2) when there is no URL or no token.
pub const NOT_LOGGED_IN: &str = "not logged in; run `roost login` or set ROOST_URL and ROOST_TOKEN";

/// Finds the target for an API verb, reading the contexts file only when
/// the environment does not already provide both URL and token (or a
/// context is named). A context's token that has expired is first
/// renewed with its application credential, if it has one.
pub fn resolve_target(env: &Env) -> Result<Target, Error> {
    if let (Some(url), Some(token), None) = (&env.roost_url, &env.roost_token, &env.context) {
        return Ok(Target {
            url: url.clone(),
            token: token.clone(),
            context: None,
            renewable: false,
        });
    }
    let Some(path) = env.contexts_path() else {
        return merge_target(env.roost_url.as_deref(), env.roost_token.as_deref(), None)
            .ok_or_else(|| Error::usage(NOT_LOGGED_IN));
    };
    let contexts = crate::context::load(&path)?;
    let Some(ctx) = crate::context::selected(env, &contexts)? else {
        return merge_target(env.roost_url.as_deref(), env.roost_token.as_deref(), None)
            .ok_or_else(|| Error::usage(NOT_LOGGED_IN));
    };
    let url = env.roost_url.clone().unwrap_or_else(|| ctx.url.clone());
    if let Some(token) = &env.roost_token {
        return Ok(Target {
            url,
            token: token.clone(),
            context: None,
            renewable: false,
        });
    }
    let renewable = ctx.app_credential.is_some();
    let now = roost_types::Timestamp(crate::context::now_micros());
    let token = match &ctx.token {
        Some(t) if !ctx.expired(now) => t.clone(),
        _ if renewable => crate::context::refresh(env, &path, &ctx.name)?,
        Some(_) => {
            return Err(Error::usage(format!(
                "the token of context {} ({}) has expired; {}",
                ctx.name,
                ctx.url,
                crate::context::login_hint(&ctx.name)
            )));
        }
        None => {
            return Err(Error::usage(format!(
                "context {} ({}) is logged out; {}",
                ctx.name,
                ctx.url,
                crate::context::login_hint(&ctx.name)
            )));
        }
    };
    Ok(Target {
        url,
        token,
        context: Some(ctx.name.clone()),
        renewable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn roost_config_dir_wins_over_xdg_and_home() {
        assert_eq!(
            credentials_path(os("/cfg"), os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/cfg/credentials.json"))
        );
    }

    #[test]
    fn xdg_config_home_is_used_when_roost_config_dir_is_unset_or_empty() {
        let expected = Some(PathBuf::from("/xdg/roost/credentials.json"));
        assert_eq!(credentials_path(None, os("/xdg"), os("/home/u")), expected);
        assert_eq!(
            credentials_path(os(""), os("/xdg"), os("/home/u")),
            expected
        );
    }

    #[test]
    fn home_dot_config_is_the_last_resort() {
        assert_eq!(
            credentials_path(None, os(""), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/roost/credentials.json"))
        );
        assert_eq!(credentials_path(None, None, None), None);
    }

    fn sample() -> Credentials {
        Credentials {
            url: "http://127.0.0.1:6385".into(),
            token: "gAAAA-secret".into(),
            expires_at: Some("2026-11-27T18:16:12.000000Z".into()),
        }
    }

    #[test]
    fn the_written_file_is_0600_in_a_new_0700_directory_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a").join("b").join(CREDENTIALS_FILE);
        write_credentials(&path, &sample()).unwrap();
        let file_mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(file_mode, 0o600);
        for dir in [path.parent().unwrap(), &tmp.path().join("a")] {
            let dir_mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(dir_mode, 0o700, "{}", dir.display());
        }
        assert_eq!(read_credentials(&path).unwrap(), Some(sample()));
    }

    #[test]
    fn rewriting_a_world_readable_file_leaves_it_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(CREDENTIALS_FILE);
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_credentials(&path, &sample()).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_credentials(&path).unwrap(), Some(sample()));
        let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_missing_file_reads_as_none_and_a_damaged_one_is_a_usage_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(CREDENTIALS_FILE);
        assert_eq!(read_credentials(&path).unwrap(), None);
        fs::write(&path, "not json").unwrap();
        assert_eq!(read_credentials(&path).unwrap_err().code(), 2);
    }

    #[test]
    fn environment_values_override_their_stored_counterparts_one_by_one() {
        let stored = sample();
        let only_url = merge_target(Some("http://other:1"), None, Some(&stored)).unwrap();
        assert_eq!(only_url.url, "http://other:1");
        assert_eq!(only_url.token, "gAAAA-secret");
        let only_token = merge_target(None, Some("t2"), Some(&stored)).unwrap();
        assert_eq!(only_token.url, "http://127.0.0.1:6385");
        assert_eq!(only_token.token, "t2");
    }

    #[test]
    fn a_url_without_a_token_is_not_logged_in() {
        assert_eq!(merge_target(Some("http://h:1"), None, None), None);
        let dir = tempfile::tempdir().unwrap();
        let env = Env {
            roost_url: Some("http://h:1".into()),
            roost_config_dir: Some(dir.path().into()),
            ..Env::default()
        };
        let err = resolve_target(&env).unwrap_err();
        assert_eq!(err.code(), 2);
        assert_eq!(err.message(), NOT_LOGGED_IN);
    }

    #[test]
    fn both_environment_values_need_no_credentials_file() {
        let env = Env {
            roost_url: Some("http://h:1".into()),
            roost_token: Some("tok".into()),
            roost_config_dir: Some("/nonexistent/roost-test".into()),
            ..Env::default()
        };
        assert_eq!(
            resolve_target(&env).unwrap(),
            Target {
                url: "http://h:1".into(),
                token: "tok".into(),
                context: None,
                renewable: false,
            }
        );
    }
}

//! A release's manifest and its rules.

use serde::{Deserialize, Serialize};

use crate::Error;

/// What a release is and carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `<name>-<MM>.<mm>.<pp>`, such as `roost-0.2.0` (StarlingX names
    /// releases `starlingx-25.09.1`).
    pub release_id: String,
    /// `MM.mm.pp`: the release id's version part.
    pub version: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    /// Hosts are locked, updated, rebooted and unlocked.
    #[serde(default)]
    pub reboot_required: bool,
    /// Releases that must be deployed first.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The payload files, in the order they follow the signature.
    #[serde(default)]
    pub payload: Vec<PayloadFile>,
    #[serde(default)]
    pub hooks: Hooks,
    /// The id of the key that signed the release (set when it is written).
    #[serde(default)]
    pub key_id: String,
}

/// One payload file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadFile {
    /// A relative path such as `bin/roost`.
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
}

/// Payload files run at points of a host's deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_install: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<String>,
    /// Must exit 0 once the host runs the release, or the host rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
}

/// Most payload files in a release.
pub const MAX_FILES: usize = 1000;
/// Largest payload file, bytes.
pub const MAX_FILE_SIZE: u64 = 16 << 30;

/// Splits a release id into its name and its `MM.mm.pp` version, checking
/// both.
pub fn split_release_id(id: &str) -> Result<(&str, &str), Error> {
    let (name, version) = id.rsplit_once('-').ok_or_else(|| {
        Error::Manifest(format!("release id {id:?} is not <name>-<MM>.<mm>.<pp>"))
    })?;
    let name_ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(Error::Manifest(format!(
            "release id {id:?}: the name must be lowercase letters, digits and '-', starting \
             with a letter"
        )));
    }
    if !version_ok(version) {
        return Err(Error::Manifest(format!(
            "release id {id:?}: version {version:?} is not MM.mm.pp"
        )));
    }
    Ok((name, version))
}

fn version_ok(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if ok {
        Ok(())
    } else {
        Err(Error::Manifest(format!(
            "payload file name {name:?} must be a relative path of letters, digits, '.', '_' \
             and '-' (no '..', no leading '/')"
        )))
    }
}

/// The message of a manifest error, without its prefix.
fn bare(e: &Error) -> String {
    match e {
        Error::Manifest(m) => m.clone(),
        other => other.to_string(),
    }
}

impl Manifest {
    /// `MM.mm` of the version (what the stock client's `--release` filters
    /// on).
    pub fn sw_release(&self) -> String {
        let mut parts = self.version.split('.');
        match (parts.next(), parts.next()) {
            (Some(a), Some(b)) => format!("{a}.{b}"),
            _ => self.version.clone(),
        }
    }

    /// Every rule a manifest must follow; the message names the first one
    /// broken.
    pub fn check(&self) -> Result<(), Error> {
        self.rules()
    }

    fn rules(&self) -> Result<(), Error> {
        let (_, version) = split_release_id(&self.release_id)?;
        if self.version != version {
            return Err(Error::Manifest(format!(
                "version {:?} is not the release id's ({version})",
                self.version
            )));
        }
        if self.summary.chars().count() > 200 {
            return Err(Error::Manifest(
                "the summary is longer than 200 characters".into(),
            ));
        }
        if self.description.chars().count() > 8192 {
            return Err(Error::Manifest(
                "the description is longer than 8192 characters".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.requires {
            split_release_id(r).map_err(|e| Error::Manifest(format!("requires: {}", bare(&e))))?;
            if *r == self.release_id {
                return Err(Error::Manifest("a release cannot require itself".into()));
            }
            if !seen.insert(r.as_str()) {
                return Err(Error::Manifest(format!("requires lists {r} twice")));
            }
        }
        if self.payload.len() > MAX_FILES {
            return Err(Error::Manifest(format!(
                "more than {MAX_FILES} payload files"
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &self.payload {
            check_name(&f.name)?;
            if !names.insert(f.name.as_str()) {
                return Err(Error::Manifest(format!(
                    "payload file {} is listed twice",
                    f.name
                )));
            }
            if f.size > MAX_FILE_SIZE {
                return Err(Error::Manifest(format!(
                    "payload file {} is larger than 16 GiB",
                    f.name
                )));
            }
            let hex_ok = f.sha256.len() == 64
                && f.sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
            if !hex_ok {
                return Err(Error::Manifest(format!(
                    "payload file {}'s sha256 is not 64 lowercase hex digits",
                    f.name
                )));
            }
        }
        for (hook, file) in [
            ("pre_install", &self.hooks.pre_install),
            ("post_install", &self.hooks.post_install),
            ("health_check", &self.hooks.health_check),
        ] {
            if let Some(file) = file
                && !names.contains(file.as_str())
            {
                return Err(Error::Manifest(format!(
                    "hook {hook} names {file}, which is not a payload file"
                )));
            }
        }
        let id_ok = self.key_id.len() == 16 && self.key_id.chars().all(|c| c.is_ascii_hexdigit());
        if !id_ok {
            return Err(Error::Manifest(
                "key_id is not the 16 hex digits of a signing key's id".into(),
            ));
        }
        Ok(())
    }
}

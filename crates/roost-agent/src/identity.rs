//! The agent's identity: what the server answered at enrollment, plus the
//! server's URL, kept in `<data-dir>/identity.json` (mode 0600, in a 0700
//! directory) because it holds the host's heartbeat key and agent token.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use roost_api::heartbeat::HostKey;
use roost_api::sysinv::EnrollResponse;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error};

/// The file name of the identity in the data directory.
pub const IDENTITY_FILE: &str = "identity.json";

/// An enrolled agent's identity. `Debug` hides the key and the token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The server's base URL, e.g. `http://10.0.0.2:6385`.
    pub server: String,
    #[serde(flatten)]
    pub enrollment: EnrollResponse,
    /// During a heartbeat key rotation: hex of the next key, accepted
    /// besides `heartbeat_key` until the first pulse under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_key_next: Option<String>,
    /// The private key (PEM) of the client certificate
    /// `enrollment.client_cert_pem`, when the server speaks HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.enrollment;
        f.debug_struct("Identity")
            .field("server", &self.server)
            .field("host_id", &e.host_id)
            .field("uuid", &e.uuid)
            .field("hostname", &e.hostname)
            .field("personality", &e.personality)
            .field("subfunctions", &e.subfunctions)
            .field("heartbeat_key", &"<hidden>")
            .field(
                "heartbeat_key_next",
                &self.heartbeat_key_next.as_ref().map(|_| "<hidden>"),
            )
            .field("agent_token", &"<hidden>")
            .field(
                "client_cert",
                &e.client_cert_pem
                    .as_deref()
                    .and_then(|p| roost_pki::cert_info(p).ok())
                    .map(|i| i.serial),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl Identity {
    /// The heartbeat key.
    pub fn key(&self) -> Result<HostKey, Error> {
        HostKey::from_hex(&self.enrollment.heartbeat_key).map_err(|e| {
            Error::context(
                "the stored heartbeat key is not 64 hexadecimal digits",
                Error::Invalid(e.to_string()),
            )
        })
    }

    /// The next heartbeat key, during a rotation (`None` when there is
    /// none or it does not parse).
    pub fn next_key(&self) -> Option<HostKey> {
        self.heartbeat_key_next
            .as_deref()
            .and_then(|k| HostKey::from_hex(k).ok())
    }

    /// The client certificate and its key, when the agent has one.
    pub fn client_cert(&self) -> Option<crate::client::ClientCert> {
        Some(crate::client::ClientCert {
            cert_pem: self.enrollment.client_cert_pem.clone()?,
            key_pem: self.client_key_pem.clone()?,
        })
    }

    /// `<dir>/identity.json`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(IDENTITY_FILE)
    }

    /// Reads the identity in `dir`; `Ok(None)` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<Identity>, Error> {
        let path = Identity::path_in(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let id: Identity = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid identity file", path.display()))?;
        id.key()
            .with_context(|| format!("{} is not a valid identity file", path.display()))?;
        // Tighten a file someone loosened: it holds secrets.
        if let Ok(meta) = fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "identity file was readable by others; setting mode 0600");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
        Ok(Some(id))
    }

    /// Writes the identity to `dir` atomically: a temporary file created
    /// with mode 0600 before any byte is written, synced, then renamed.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        create_private_dir(dir)?;
        let path = Identity::path_in(dir);
        let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", tmp.display())),
        }
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // Make the rename durable.
            fs::File::open(dir)?.sync_all()
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Creates `dir` (and its parents) if missing; a directory it creates gets
/// mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    // The umask may have taken bits away, never added any; make sure anyway.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
}

/// Directories of the data directory tightened themselves but not walked:
/// containerd's root and state and the containers' files are under `apps/`;
/// the releases' files (executables among them, 0700) under `software/`.
const NOT_WALKED: &[&str] = &["apps", "software"];

/// Creates `dir` if missing and makes it private whatever it was before:
/// the directory and every directory Roost keeps in it 0700, every file
/// 0600 (symbolic links left alone; below `apps/` only that directory).
/// Logs once when a mode had to change.
pub fn make_private_dir(dir: &Path) -> Result<(), Error> {
    create_private_dir(dir)?;
    let changed = tighten(dir, true)
        .with_context(|| format!("cannot make the data directory {} private", dir.display()))?;
    if changed > 0 {
        tracing::info!(
            path = %dir.display(),
            entries = changed,
            "made the data directory private (0700 directories, 0600 files)"
        );
    }
    Ok(())
}

fn tighten(dir: &Path, top: bool) -> std::io::Result<usize> {
    let mut changed = set_mode(dir, 0o700)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let p = entry.path();
        if kind.is_dir() {
            changed += if top && NOT_WALKED.iter().any(|n| entry.file_name() == *n) {
                set_mode(&p, 0o700)?
            } else {
                tighten(&p, false)?
            };
        } else if kind.is_file() {
            changed += set_mode(&p, 0o600)?;
        }
    }
    Ok(changed)
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<usize> {
    if fs::symlink_metadata(p)?.permissions().mode() & 0o7777 == mode {
        return Ok(0);
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            server: "http://127.0.0.1:6385".into(),
            enrollment: EnrollResponse {
                host_id: 7,
                uuid: "1d8f0bb5-7e4c-4f5e-9b3e-111111111111".into(),
                hostname: "worker-0".into(),
                personality: "worker".into(),
                subfunctions: "worker".into(),
                heartbeat_key: "ab".repeat(32),
                agent_token: "secret-agent-token".into(),
                client_cert_pem: None,
            },
            heartbeat_key_next: None,
            client_key_pem: Some("-----BEGIN PRIVATE KEY-----secret".into()),
        }
    }

    #[test]
    fn an_existing_data_directory_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        fs::create_dir_all(dir.join("apps/containerd")).unwrap();
        for d in [&dir, &dir.join("apps"), &dir.join("apps/containerd")] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(dir.join("stray"), "x").unwrap();
        fs::set_permissions(dir.join("stray"), fs::Permissions::from_mode(0o644)).unwrap();
        make_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("stray")), 0o600);
        assert_eq!(mode(&dir.join("apps")), 0o700);
        assert_eq!(mode(&dir.join("apps/containerd")), 0o755);
    }

    #[test]
    fn an_identity_survives_a_round_trip_through_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        assert_eq!(Identity::load(&dir).unwrap(), None);
        identity().save(&dir).unwrap();
        assert_eq!(Identity::load(&dir).unwrap(), Some(identity()));
        // Saving again replaces it.
        let mut changed = identity();
        changed.server = "http://10.0.0.1:6385".into();
        changed.save(&dir).unwrap();
        assert_eq!(Identity::load(&dir).unwrap(), Some(changed));
        assert!(!dir.join("identity.json.tmp").exists());
    }

    #[test]
    fn the_identity_file_is_0600_in_a_0700_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        identity().save(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&Identity::path_in(&dir)), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_loosened_identity_file_is_tightened_on_load() {
        let tmp = tempfile::tempdir().unwrap();
        identity().save(tmp.path()).unwrap();
        let path = Identity::path_in(tmp.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Identity::load(tmp.path()).unwrap().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn the_file_holds_the_enroll_response_fields_and_the_server() {
        let tmp = tempfile::tempdir().unwrap();
        identity().save(tmp.path()).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(Identity::path_in(tmp.path())).unwrap())
                .unwrap();
        for key in [
            "server",
            "host_id",
            "uuid",
            "hostname",
            "personality",
            "subfunctions",
            "heartbeat_key",
            "agent_token",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn a_corrupt_identity_file_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(Identity::path_in(tmp.path()), "{not json").unwrap();
        let e = format!("{:#}", Identity::load(tmp.path()).unwrap_err());
        assert!(e.contains("identity.json"), "{e}");
        let mut bad_key = identity();
        bad_key.enrollment.heartbeat_key = "xyz".into();
        fs::write(
            Identity::path_in(tmp.path()),
            serde_json::to_string(&bad_key).unwrap(),
        )
        .unwrap();
        assert!(Identity::load(tmp.path()).is_err());
    }

    #[test]
    fn debug_output_hides_the_secrets() {
        let shown = format!("{:?}", identity());
        assert!(!shown.contains("secret-agent-token"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains("worker-0"));
    }
}

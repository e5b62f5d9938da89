//! The data directory: created private, locked against a second server, and
//! home of the generated admin credentials and of the data-encryption key.
//!
//! Opening it makes it private whatever it was before: the directory and
//! every directory Roost keeps in it 0700, every file 0600. Under `apps/`
//! only the directory itself is tightened: below it containerd keeps its
//! root and state, and container filesystems their own modes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// An open, locked data directory. The lock is released when dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        Error::context(
            format!("cannot use data directory {}", path.display()),
            source,
        )
    }
}

impl DataDir {
    /// Creates the directory (mode 0700) if needed, takes its lock and
    /// makes what is in it private (see the module's documentation).
    pub fn open(path: &Path) -> Result<DataDir, Error> {
        if !path.exists() {
            std::fs::create_dir_all(path).map_err(io(path))?;
        }
        let lock_path = path.join("roost.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::DataDirLocked(path.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let tightened = tighten(path, true).map_err(io(path))?;
        // Record who holds the lock, for the operator's benefit.
        let mut l = &lock;
        let _ = l.set_len(0);
        let _ = writeln!(l, "{}", std::process::id());
        if tightened > 0 {
            tracing::info!(
                path = %path.display(),
                entries = tightened,
                "made the data directory private (0700 directories, 0600 files)"
            );
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the key that seals the store's secrets is kept: a 0600 file,
    /// or with a TPM (`tcti`), that file sealed by the TPM.
    pub fn key_source(&self, tcti: Option<&str>) -> roost_store::KeySource {
        let plain = self.path.join(roost_store::SECRET_KEY_FILE);
        match tcti {
            None => roost_store::KeySource::File(plain),
            Some(tcti) => roost_store::KeySource::Wrapped {
                path: self.path.join(SEALED_KEY_FILE),
                legacy: plain,
                wrap: std::sync::Arc::new(TpmWrap {
                    tcti: tcti.to_string(),
                }),
            },
        }
    }

    /// Path of the generated admin credentials.
    pub fn admin_credentials(&self) -> PathBuf {
        self.path.join("admin-credentials")
    }

    /// Writes a file holding a secret: created with mode 0600 before any
    /// byte is written, replaced atomically.
    pub fn write_secret(&self, path: &Path, contents: &str) -> Result<(), Error> {
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(contents.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        Ok(())
    }
}

/// Directories under the data directory that are tightened themselves but
/// not walked: containerd's root and state and the containers' files are
/// under `apps/`, with modes of their own; the releases this host runs,
/// with their executables (hooks, `roost`), under `host-software/`.
const NOT_WALKED: &[&str] = &["apps", "host-software"];

/// Sets `dir` to 0700 and, below it, directories to 0700 and files to 0600;
/// symbolic links are left alone. Returns how many modes changed.
fn tighten(dir: &Path, top: bool) -> std::io::Result<usize> {
    let mut changed = set_mode(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let p = entry.path();
        if kind.is_dir() {
            let walk = !(top && NOT_WALKED.iter().any(|n| entry.file_name() == *n));
            changed += if walk {
                tighten(&p, false)?
            } else {
                set_mode(&p, 0o700)?
            };
        } else if kind.is_file() {
            changed += set_mode(&p, 0o600)?;
        }
    }
    Ok(changed)
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<usize> {
    let meta = std::fs::symlink_metadata(p)?;
    if meta.permissions().mode() & 0o7777 == mode {
        return Ok(0);
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(1)
}

/// The data-encryption key sealed by the server's TPM.
pub const SEALED_KEY_FILE: &str = "secret.key.tpm";

/// Seals the data-encryption key with the server's TPM (`[tpm] device`).
struct TpmWrap {
    tcti: String,
}

impl roost_store::KeyWrap for TpmWrap {
    fn describe(&self) -> String {
        format!("the TPM at {}", self.tcti)
    }

    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, roost_store::Error> {
        roost_tpm::seal(&self.tcti, key)
            .map_err(|e| roost_store::Error::Sealing(format!("{}: {e}", self.describe())))
    }

    fn unwrap(&self, blob: &[u8]) -> Result<Vec<u8>, roost_store::Error> {
        roost_tpm::unseal(&self.tcti, blob)
            .map_err(|e| roost_store::Error::Sealing(format!("{}: {e}", self.describe())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        let first = DataDir::open(&p).unwrap();
        let err = DataDir::open(&p).unwrap_err();
        assert!(matches!(err, Error::DataDirLocked(_)));
        assert!(err.to_string().contains("in use"));
        drop(first);
        DataDir::open(&p).unwrap();
    }

    #[test]
    fn an_existing_directory_and_its_files_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        std::fs::create_dir_all(p.join("dc-ca")).unwrap();
        std::fs::create_dir_all(p.join("apps/containerd/root")).unwrap();
        for d in [
            &p,
            &p.join("dc-ca"),
            &p.join("apps"),
            &p.join("apps/containerd/root"),
        ] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for f in [p.join("roost.db"), p.join("dc-ca/ca.key")] {
            std::fs::write(&f, "x").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let _d = DataDir::open(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        assert_eq!(mode(&p.join("dc-ca")), 0o700);
        assert_eq!(mode(&p.join("roost.db")), 0o600);
        assert_eq!(mode(&p.join("dc-ca/ca.key")), 0o600);
        assert_eq!(mode(&p.join("roost.lock")), 0o600);
        assert_eq!(mode(&p.join("apps")), 0o700);
        // containerd's own directories keep their modes.
        assert_eq!(mode(&p.join("apps/containerd/root")), 0o755);
    }

    #[test]
    fn the_executables_of_the_hosts_releases_stay_executable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        let bin = p.join("host-software/releases/roost-0.2.0/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("roost"), "x").unwrap();
        std::fs::set_permissions(bin.join("roost"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let _d = DataDir::open(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p.join("host-software")), 0o700);
        assert_eq!(mode(&bin.join("roost")), 0o700);
    }

    #[test]
    fn secrets_are_written_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        let p = d.admin_credentials();
        d.write_secret(&p, "username=admin\npassword=x\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

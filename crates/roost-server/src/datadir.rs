//! The data directory: created private, locked against a second server, and
//! home of the generated admin credentials.

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
    /// Creates the directory (mode 0700) if needed and takes its lock.
    pub fn open(path: &Path) -> Result<DataDir, Error> {
        if !path.exists() {
            std::fs::create_dir_all(path).map_err(io(path))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .map_err(io(path))?;
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
        // Record who holds the lock, for the operator's benefit.
        let mut l = &lock;
        let _ = l.set_len(0);
        let _ = writeln!(l, "{}", std::process::id());
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of the SQLite database.
    pub fn database(&self) -> PathBuf {
        self.path.join(roost_store::DATABASE_FILE)
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
    fn secrets_are_written_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        let p = d.admin_credentials();
        d.write_secret(&p, "username=admin\npassword=x\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

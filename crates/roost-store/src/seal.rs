//! Secrets at rest: the values of secret columns are sealed (AES-256-GCM)
//! with a data-encryption key kept outside the database.
//!
//! A sealed value is the text `enc1:` followed by the base64 of a random
//! 96-bit nonce and the ciphertext with its tag. The associated data is the
//! column's name and the row's key, so a sealed value copied to another
//! row or column does not open.
//!
//! The key comes from a [`KeySource`]: a file of 32 random bytes (mode
//! 0600) beside the database, or the same 32 bytes wrapped by a
//! [`KeyWrap`] (the server's TPM seals them to the machine), so that a copy
//! of the data directory opens nothing elsewhere.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::sql::{Db, Dialect, params};

use crate::Error;

/// The key file's name in a server's data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// Length of the data-encryption key, bytes.
pub const KEY_LEN: usize = 32;

/// The prefix of a sealed value.
pub const SEALED_PREFIX: &str = "enc1:";

/// Wraps the data-encryption key so that only it can unwrap it again (a
/// TPM's seal and unseal).
pub trait KeyWrap: Send + Sync {
    /// What wraps, for messages (`the TPM at device:/dev/tpmrm0`).
    fn describe(&self) -> String;
    fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, Error>;
    fn unwrap(&self, blob: &[u8]) -> Result<Vec<u8>, Error>;
}

/// Where the data-encryption key is kept.
#[derive(Clone)]
pub enum KeySource {
    /// A file holding the 32 bytes, mode 0600.
    File(PathBuf),
    /// A file holding the 32 bytes as `wrap` wrapped them (mode 0600). A
    /// plain key file `legacy` found at first use is wrapped, and removed
    /// once the wrapped copy is written and opens.
    Wrapped {
        path: PathBuf,
        legacy: PathBuf,
        wrap: std::sync::Arc<dyn KeyWrap>,
    },
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// The key file beside the database at `db`.
    pub fn beside(db: &Path) -> KeySource {
        KeySource::File(
            db.parent()
                .unwrap_or_else(|| Path::new("."))
                .join(SECRET_KEY_FILE),
        )
    }

    /// Where the key is, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Wrapped { path, wrap, .. } => {
                format!("{} (sealed by {})", path.display(), wrap.describe())
            }
        }
    }

    /// The key, or `None` when there is none yet.
    pub(crate) fn load(&self) -> Result<Option<Sealer>, Error> {
        match self {
            KeySource::Wrapped { path, legacy, wrap } => {
                let Some(blob) = read_private(path)? else {
                    // A plain key kept before: wrap it, check, then drop it.
                    let Some(key) = read_private(legacy)? else {
                        return Ok(None);
                    };
                    let sealer = Sealer::new(&key)?;
                    let blob = wrap.wrap(&key)?;
                    write_new_private(path, &blob)?;
                    if wrap.unwrap(&blob).ok().as_deref() != Some(key.as_slice()) {
                        let _ = std::fs::remove_file(path);
                        return Err(Error::Sealing(format!(
                            "{} does not give the key back; {} is kept",
                            wrap.describe(),
                            legacy.display()
                        )));
                    }
                    std::fs::remove_file(legacy)
                        .map_err(|e| key_error(legacy, "cannot remove", e))?;
                    return Ok(Some(sealer));
                };
                let key = wrap.unwrap(&blob).map_err(|e| {
                    Error::Sealing(format!(
                        "{} cannot unseal the data-encryption key {}: {e} (is this the machine \
                         the data directory belongs to?)",
                        wrap.describe(),
                        path.display()
                    ))
                })?;
                if key.len() != KEY_LEN {
                    return Err(Error::Sealing(format!(
                        "the sealed data-encryption key {} is not {KEY_LEN} bytes long",
                        path.display()
                    )));
                }
                Ok(Some(Sealer::new(&key)?))
            }
            KeySource::File(path) => {
                let Some(bytes) = read_private(path)? else {
                    return Ok(None);
                };
                if bytes.len() != KEY_LEN {
                    return Err(Error::Sealing(format!(
                        "the data-encryption key {} is not {KEY_LEN} bytes long; restore it \
                         from the backup of this data directory",
                        path.display()
                    )));
                }
                Ok(Some(Sealer::new(&bytes)?))
            }
        }
    }

    /// Makes a new random key and keeps it; fails if one exists already.
    pub(crate) fn create(&self) -> Result<Sealer, Error> {
        match self {
            KeySource::Wrapped { path, wrap, .. } => {
                let mut bytes = [0u8; KEY_LEN];
                aws_lc_rs::rand::fill(&mut bytes)
                    .map_err(|_| Error::Sealing("cannot make a random key".into()))?;
                write_new_private(path, &wrap.wrap(&bytes)?)?;
                Sealer::new(&bytes)
            }
            KeySource::File(path) => {
                let mut bytes = [0u8; KEY_LEN];
                aws_lc_rs::rand::fill(&mut bytes)
                    .map_err(|_| Error::Sealing("cannot make a random key".into()))?;
                write_new_private(path, &bytes)?;
                Sealer::new(&bytes)
            }
        }
    }
}

/// The bytes of a private file (its mode tightened to 0600); `None` when
/// it does not exist.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_error(path, "cannot read", e)),
    };
    let meta = f
        .metadata()
        .map_err(|e| key_error(path, "cannot read", e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| key_error(path, "cannot set the mode of", e))?;
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| key_error(path, "cannot read", e))?;
    Ok(Some(bytes))
}

/// Writes `bytes` to a new private file (0600) at `path`, durably; never
/// replaces one that exists.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        std::fs::remove_file(&tmp)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| key_error(path, "cannot write", e))
}

fn key_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Sealing(format!(
        "{what} the data-encryption key {}: {e}",
        path.display()
    ))
}

/// Seals and opens secret column values with the data-encryption key.
/// `Debug` never shows the key.
pub struct Sealer {
    key: LessSafeKey,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<key hidden>)")
    }
}

fn aad(column: &str, row: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(column.len() + row.len() + 1);
    a.extend_from_slice(column.as_bytes());
    a.push(0);
    a.extend_from_slice(row.as_bytes());
    a
}

impl Sealer {
    /// A sealer with the given 32-byte key.
    pub fn new(key: &[u8]) -> Result<Sealer, Error> {
        let k = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| Error::Sealing("the data-encryption key is not 32 bytes".into()))?;
        Ok(Sealer {
            key: LessSafeKey::new(k),
        })
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// Seals `clear` for `column` of the row keyed `row`.
    pub fn seal(&self, column: &str, row: &str, clear: &str) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| Error::Sealing("cannot make a random nonce".into()))?;
        let mut buf = clear.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(column, row)),
                &mut buf,
            )
            .map_err(|_| Error::Sealing(format!("cannot seal {column}")))?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    /// Opens a value sealed by [`Sealer::seal`] for the same column and row.
    pub fn unseal(&self, column: &str, row: &str, stored: &str) -> Result<String, Error> {
        let wrong = || {
            Error::Sealing(format!(
                "the sealed {column} of {row} does not open with this data-encryption key"
            ))
        };
        let b64 = stored.strip_prefix(SEALED_PREFIX).ok_or_else(wrong)?;
        let mut bytes = B64.decode(b64).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).map_err(|_| wrong())?;
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(aad(column, row)), &mut bytes[NONCE_LEN..])
            .map_err(|_| wrong())?;
        String::from_utf8(clear.to_vec()).map_err(|_| wrong())
    }

    /// Seals `Some` values; `None` stays `None`.
    pub(crate) fn seal_opt(
        &self,
        column: &str,
        row: &str,
        clear: Option<&str>,
    ) -> Result<Option<String>, Error> {
        clear.map(|c| self.seal(column, row, c)).transpose()
    }

    /// Opens a stored value; a clear one (a store not yet sealed) passes
    /// through.
    pub(crate) fn unseal_opt(
        &self,
        column: &str,
        row: &str,
        stored: Option<String>,
    ) -> Result<Option<String>, Error> {
        match stored {
            Some(s) if Sealer::is_sealed(&s) => self.unseal(column, row, &s).map(Some),
            other => Ok(other),
        }
    }
}

/// The sealed column of hosts holding the BMC password.
pub(crate) const HOST_BM_PASSWORD: &str = "hosts.bm_password";
/// The sealed column of hosts holding the heartbeat key.
pub(crate) const HOST_HB_KEY: &str = "hosts.hb_key";

const CHECK_COLUMN: &str = "sealing.check_value";
const CHECK_ROW: &str = "1";
const CHECK_TEXT: &str = "roost data-encryption key check";

/// What opening the store did to its secrets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    /// A new data-encryption key was made (a store without sealed secrets).
    pub key_created: bool,
    /// Clear secrets found and sealed in place (a store from before sealing).
    pub sealed_in_place: usize,
}

fn missing_key(source: &KeySource) -> Error {
    Error::Sealing(format!(
        "the store holds secrets sealed with a data-encryption key, but the key {} is \
         missing; restore that file from the backup of this data directory (nothing was \
         changed)",
        source.describe()
    ))
}

fn wrong_key(source: &KeySource) -> Error {
    Error::Sealing(format!(
        "the data-encryption key {} is not the key this store's secrets were sealed with; \
         restore the right file from the backup of this data directory (nothing was changed)",
        source.describe()
    ))
}

/// Loads (or, for a store without sealed secrets, creates) the key, checks
/// it against the store, and seals in place, in one transaction, any secret
/// still in clear. A missing or wrong key with sealed secrets present fails
/// and changes nothing.
pub(crate) fn seal_store(
    conn: &mut Db<'_>,
    source: &KeySource,
) -> Result<(Sealer, SealReport), Error> {
    let mut report = SealReport::default();
    let check: Option<String> =
        conn.query_opt("SELECT check_value FROM sealing WHERE id = 1", (), |r| {
            r.get(0)
        })?;
    let sealed: i64 = conn.query_row(
        "SELECT COUNT(*) FROM hosts WHERE bm_password LIKE 'enc1:%' OR hb_key LIKE 'enc1:%'",
        (),
        |r| r.get(0),
    )?;
    let sealer = match source.load()? {
        Some(s) => s,
        None if check.is_some() || sealed > 0 => return Err(missing_key(source)),
        None => {
            report.key_created = true;
            source.create()?
        }
    };
    if let Some(c) = &check {
        match sealer.unseal(CHECK_COLUMN, CHECK_ROW, c) {
            Ok(t) if t == CHECK_TEXT => {}
            _ => return Err(wrong_key(source)),
        }
    }
    conn.begin_write()?;
    let res = seal_rows(conn, &sealer, source, check.is_none(), &mut report);
    match res {
        Ok(()) => conn.batch("COMMIT")?,
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            return Err(e);
        }
    }
    if report.sealed_in_place > 0 && conn.dialect() == Dialect::Sqlite {
        // The clear values' old pages leave the WAL now, not at some later
        // checkpoint.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(()))?;
    }
    Ok((sealer, report))
}

fn seal_rows(
    conn: &mut Db<'_>,
    sealer: &Sealer,
    source: &KeySource,
    write_check: bool,
    report: &mut SealReport,
) -> Result<(), Error> {
    if write_check {
        conn.execute(
            "INSERT INTO sealing (id, check_value) VALUES (1, ?1)",
            [sealer.seal(CHECK_COLUMN, CHECK_ROW, CHECK_TEXT)?],
        )?;
    }
    type Row = (i64, String, Option<String>, Option<String>);
    let rows: Vec<Row> =
        conn.query_map("SELECT id, uuid, bm_password, hb_key FROM hosts", (), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    for (id, uuid, bm_password, hb_key) in rows {
        for (column, sql, value) in [
            (
                HOST_BM_PASSWORD,
                "UPDATE hosts SET bm_password = ?2 WHERE id = ?1",
                bm_password,
            ),
            (
                HOST_HB_KEY,
                "UPDATE hosts SET hb_key = ?2 WHERE id = ?1",
                hb_key,
            ),
        ] {
            let Some(v) = value else { continue };
            if Sealer::is_sealed(&v) {
                sealer
                    .unseal(column, &uuid, &v)
                    .map_err(|_| wrong_key(source))?;
            } else {
                conn.execute(sql, params![id, sealer.seal(column, &uuid, &v)?])?;
                report.sealed_in_place += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&[7u8; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_column_and_row() {
        let s = sealer();
        let v = s.seal("hosts.bm_password", "u1", "hunter2").unwrap();
        assert!(v.starts_with(SEALED_PREFIX));
        assert!(!v.contains("hunter2"));
        assert_eq!(s.unseal("hosts.bm_password", "u1", &v).unwrap(), "hunter2");
        assert!(s.unseal("hosts.bm_password", "u2", &v).is_err());
        assert!(s.unseal("hosts.hb_key", "u1", &v).is_err());
        let other = Sealer::new(&[8u8; KEY_LEN]).unwrap();
        let err = other.unseal("hosts.bm_password", "u1", &v).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
    }

    /// A wrapper in software: XOR with its byte, tagged with it.
    struct Xor(u8);

    impl KeyWrap for Xor {
        fn describe(&self) -> String {
            format!("xor {}", self.0)
        }
        fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
            let mut v = vec![self.0];
            v.extend(key.iter().map(|b| b ^ self.0));
            Ok(v)
        }
        fn unwrap(&self, blob: &[u8]) -> Result<Vec<u8>, Error> {
            match blob.split_first() {
                Some((&tag, rest)) if tag == self.0 => {
                    Ok(rest.iter().map(|b| b ^ self.0).collect())
                }
                _ => Err(Error::Sealing("not mine".into())),
            }
        }
    }

    fn wrapped(dir: &Path, by: u8) -> KeySource {
        KeySource::Wrapped {
            path: dir.join("secret.key.sealed"),
            legacy: dir.join(SECRET_KEY_FILE),
            wrap: std::sync::Arc::new(Xor(by)),
        }
    }

    #[test]
    fn a_wrapped_key_is_kept_wrapped_and_opens_only_with_its_wrapper() {
        let dir = tempfile::tempdir().unwrap();
        let src = wrapped(dir.path(), 5);
        assert!(src.load().unwrap().is_none());
        let s = src.create().unwrap();
        let v = s.seal("c", "r", "secret").unwrap();
        assert!(!dir.path().join(SECRET_KEY_FILE).exists());
        let mode = std::fs::metadata(dir.path().join("secret.key.sealed"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = src.load().unwrap().unwrap();
        assert_eq!(again.unseal("c", "r", &v).unwrap(), "secret");
        let e = wrapped(dir.path(), 6).load().unwrap_err();
        assert!(e.to_string().contains("cannot unseal"), "{e}");
    }

    #[test]
    fn a_plain_key_file_is_wrapped_and_removed_at_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let plain = KeySource::File(dir.path().join(SECRET_KEY_FILE));
        let v = plain.create().unwrap().seal("c", "r", "kept").unwrap();
        let src = wrapped(dir.path(), 9);
        let s = src.load().unwrap().unwrap();
        assert_eq!(s.unseal("c", "r", &v).unwrap(), "kept");
        assert!(!dir.path().join(SECRET_KEY_FILE).exists());
        assert_eq!(
            src.load().unwrap().unwrap().unseal("c", "r", &v).unwrap(),
            "kept"
        );
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let s = sealer();
        let a = s.seal("c", "r", "x").unwrap();
        let b = s.seal("c", "r", "x").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let s = sealer();
        let v = s.seal("c", "r", "secret").unwrap();
        let mut bytes = B64.decode(&v[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let t = format!("{SEALED_PREFIX}{}", B64.encode(bytes));
        assert!(s.unseal("c", "r", &t).is_err());
        assert!(s.unseal("c", "r", "enc1:!!").is_err());
    }

    #[test]
    fn the_key_file_is_created_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = KeySource::File(dir.path().join(SECRET_KEY_FILE));
        assert!(src.load().unwrap().is_none());
        let a = src.create().unwrap();
        let mode = std::fs::metadata(dir.path().join(SECRET_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(src.create().is_err(), "an existing key is never replaced");
        let b = src.load().unwrap().unwrap();
        let v = a.seal("c", "r", "x").unwrap();
        assert_eq!(b.unseal("c", "r", &v).unwrap(), "x");
        std::fs::write(dir.path().join(SECRET_KEY_FILE), b"short").unwrap();
        assert!(src.load().unwrap_err().to_string().contains("32 bytes"));
    }
}

//! SQL for hosts, join tokens and settings.

use crate::sql::{Db, Row, params};
use roost_types::Timestamp;

use crate::seal::{HOST_BM_PASSWORD, HOST_HB_KEY};
use crate::{Error, Sealer, Store};

/// A host as stored. Secrets (`bm_password`, `hb_key`) are in clear here,
/// for the server to use (the API never returns them); in the database
/// they are sealed (see `seal.rs`), with the host's uuid as the row key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredHost {
    pub id: i64,
    pub uuid: String,
    pub hostname: String,
    pub personality: String,
    pub subfunctions: String,
    pub administrative: String,
    pub operational: String,
    pub availability: String,
    pub task: String,
    pub mgmt_ip: Option<String>,
    pub mgmt_mac: Option<String>,
    pub bm_type: String,
    pub bm_ip: Option<String>,
    pub bm_username: Option<String>,
    pub bm_password: Option<String>,
    /// JSON object.
    pub location: String,
    /// Hex of the per-host heartbeat key.
    pub hb_key: Option<String>,
    pub hb_port: Option<u16>,
    /// Address and port on the cluster-host network, if the host has one.
    pub cluster_ip: Option<String>,
    pub cluster_port: Option<u16>,
    pub agent_token_hash: Option<String>,
    /// JSON of the last inventory report.
    pub inventory: Option<String>,
    pub local: bool,
    /// JSON array of the host's labels (`uuid`, `label_key`, `label_value`).
    pub labels: String,
    /// JSON object: CPU function name to the logical CPUs that have it;
    /// CPUs not listed have the default function.
    pub cpu_functions: String,
    /// The agent's client certificate (PEM), issued by the cloud CA.
    pub agent_cert: Option<String>,
    /// Serial (lowercase hex) of `agent_cert`.
    pub agent_cert_serial: Option<String>,
    /// Serial of the certificate `agent_cert` replaced, accepted until the
    /// agent first presents the new one.
    pub agent_cert_prev_serial: Option<String>,
    /// TPM attestation (JSON), for a host whose agent enrolled with a TPM.
    pub tpm: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, uuid, hostname, personality, subfunctions, administrative, operational,
    availability, task, mgmt_ip, mgmt_mac, bm_type, bm_ip, bm_username, bm_password, location,
    hb_key, hb_port, agent_token_hash, inventory, local, created_at, updated_at, cluster_ip,
    cluster_port, labels, cpu_functions, agent_cert, agent_cert_serial, agent_cert_prev_serial, tpm";

fn host_from_row(r: &Row) -> Result<StoredHost, Error> {
    Ok(StoredHost {
        id: r.get(0)?,
        uuid: r.get(1)?,
        hostname: r.get(2)?,
        personality: r.get(3)?,
        subfunctions: r.get(4)?,
        administrative: r.get(5)?,
        operational: r.get(6)?,
        availability: r.get(7)?,
        task: r.get(8)?,
        mgmt_ip: r.get(9)?,
        mgmt_mac: r.get(10)?,
        bm_type: r.get(11)?,
        bm_ip: r.get(12)?,
        bm_username: r.get(13)?,
        bm_password: r.get(14)?,
        location: r.get(15)?,
        hb_key: r.get(16)?,
        hb_port: r
            .get::<Option<i64>>(17)?
            .and_then(|p| u16::try_from(p).ok()),
        agent_token_hash: r.get(18)?,
        inventory: r.get(19)?,
        local: r.get(20)?,
        created_at: Timestamp(r.get(21)?),
        updated_at: r.get::<Option<i64>>(22)?.map(Timestamp),
        cluster_ip: r.get(23)?,
        cluster_port: r
            .get::<Option<i64>>(24)?
            .and_then(|p| u16::try_from(p).ok()),
        labels: r.get(25)?,
        cpu_functions: r.get(26)?,
        agent_cert: r.get(27)?,
        agent_cert_serial: r.get(28)?,
        agent_cert_prev_serial: r.get(29)?,
        tpm: r.get(30)?,
    })
}

/// One change to the host tables. [`Store::write_hosts`] applies a list of
/// them in one transaction: all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostWrite {
    /// Inserts a host; its new id is returned. A duplicate hostname fails the
    /// whole write with [`Error::Invalid`].
    Insert(StoredHost),
    /// Writes every field of an existing host.
    Update(StoredHost),
    /// Writes every field of an existing host except its states
    /// (administrative, operational, availability, task), which maintenance
    /// owns.
    Fields(StoredHost),
    /// Writes the states of a host.
    States {
        id: i64,
        administrative: String,
        operational: String,
        availability: String,
        task: String,
    },
    /// Deletes a host by id.
    Delete(i64),
    /// Stores a join token (by hash) for a hostname.
    JoinToken {
        hash: String,
        hostname: String,
        expires_at: Timestamp,
    },
    /// Uses up a join token that must still be valid at `now` for
    /// `hostname`; otherwise the whole write fails with
    /// [`Error::Conflict`].
    TakeJoinToken {
        hash: String,
        hostname: String,
        now: Timestamp,
    },
    /// Stores settings.
    Settings(Vec<(String, String)>),
}

/// The host's secrets sealed for the row keyed `uuid`.
fn sealed_secrets(
    sealer: &Sealer,
    uuid: &str,
    h: &StoredHost,
) -> Result<(Option<String>, Option<String>), Error> {
    Ok((
        sealer.seal_opt(HOST_BM_PASSWORD, uuid, h.bm_password.as_deref())?,
        sealer.seal_opt(HOST_HB_KEY, uuid, h.hb_key.as_deref())?,
    ))
}

fn insert_host_tx(tx: &mut Db<'_>, sealer: &Sealer, h: &StoredHost) -> Result<i64, Error> {
    let exists: Option<i64> = tx.query_opt(
        "SELECT id FROM hosts WHERE hostname = ?1",
        [&h.hostname],
        |r| r.get(0),
    )?;
    if exists.is_some() {
        return Err(Error::Invalid(format!(
            "host {} already exists",
            h.hostname
        )));
    }
    let (bm_password, hb_key) = sealed_secrets(sealer, &h.uuid, h)?;
    tx.query_row(
        "INSERT INTO hosts (uuid, hostname, personality, subfunctions, administrative,
            operational, availability, task, mgmt_ip, mgmt_mac, bm_type, bm_ip, bm_username,
            bm_password, location, hb_key, hb_port, agent_token_hash, inventory, local,
            created_at, updated_at, cluster_ip, cluster_port, labels, cpu_functions,
            agent_cert, agent_cert_serial, agent_cert_prev_serial, tpm)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)
         RETURNING id",
        params![
            h.uuid,
            h.hostname,
            h.personality,
            h.subfunctions,
            h.administrative,
            h.operational,
            h.availability,
            h.task,
            h.mgmt_ip,
            h.mgmt_mac,
            h.bm_type,
            h.bm_ip,
            h.bm_username,
            bm_password,
            h.location,
            hb_key,
            h.hb_port.map(i64::from),
            h.agent_token_hash,
            h.inventory,
            h.local,
            h.created_at.micros(),
            h.updated_at.map(|t| t.micros()),
            h.cluster_ip,
            h.cluster_port.map(i64::from),
            h.labels,
            h.cpu_functions,
            h.agent_cert,
            h.agent_cert_serial,
            h.agent_cert_prev_serial,
            h.tpm,
        ],
        |r| r.get(0),
    )
}

fn update_host_tx(tx: &mut Db<'_>, sealer: &Sealer, h: &StoredHost) -> Result<(), Error> {
    // The row's own uuid keys its sealed values (an update never changes it).
    let uuid: Option<String> =
        tx.query_opt("SELECT uuid FROM hosts WHERE id = ?1", [h.id], |r| r.get(0))?;
    let Some(uuid) = uuid else {
        return Err(Error::Invalid(format!("host {} not found", h.id)));
    };
    let (bm_password, hb_key) = sealed_secrets(sealer, &uuid, h)?;
    let n = tx.execute(
        "UPDATE hosts SET hostname = ?2, personality = ?3, subfunctions = ?4,
            administrative = ?5, operational = ?6, availability = ?7, task = ?8,
            mgmt_ip = ?9, mgmt_mac = ?10, bm_type = ?11, bm_ip = ?12, bm_username = ?13,
            bm_password = ?14, location = ?15, hb_key = ?16, hb_port = ?17,
            agent_token_hash = ?18, inventory = ?19, local = ?20, updated_at = ?21,
            cluster_ip = ?22, cluster_port = ?23, labels = ?24, cpu_functions = ?25,
            agent_cert = ?26, agent_cert_serial = ?27, agent_cert_prev_serial = ?28, tpm = ?29
         WHERE id = ?1",
        params![
            h.id,
            h.hostname,
            h.personality,
            h.subfunctions,
            h.administrative,
            h.operational,
            h.availability,
            h.task,
            h.mgmt_ip,
            h.mgmt_mac,
            h.bm_type,
            h.bm_ip,
            h.bm_username,
            bm_password,
            h.location,
            hb_key,
            h.hb_port.map(i64::from),
            h.agent_token_hash,
            h.inventory,
            h.local,
            h.updated_at.map(|t| t.micros()),
            h.cluster_ip,
            h.cluster_port.map(i64::from),
            h.labels,
            h.cpu_functions,
            h.agent_cert,
            h.agent_cert_serial,
            h.agent_cert_prev_serial,
            h.tpm,
        ],
    )?;
    if n == 0 {
        return Err(Error::Invalid(format!("host {} not found", h.id)));
    }
    Ok(())
}

fn join_token_host(tx: &mut Db<'_>, hash: &str, now: Timestamp) -> Result<Option<String>, Error> {
    let found: Option<(String, i64)> = tx.query_opt(
        "SELECT hostname, expires_at FROM join_tokens WHERE hash = ?1",
        [hash],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(found.and_then(|(h, exp)| (exp >= now.micros()).then_some(h)))
}

impl Store {
    /// Applies `writes` in order in one transaction; for each write the id
    /// of the host it inserted (0 for other writes). On any error nothing is
    /// written.
    pub fn write_hosts(&self, writes: &[HostWrite]) -> Result<Vec<i64>, Error> {
        self.write_once(|tx| {
            let mut ids = Vec::with_capacity(writes.len());
            for w in writes {
                let mut id = 0;
                match w {
                    HostWrite::Insert(h) => id = insert_host_tx(tx, &self.sealer, h)?,
                    HostWrite::Update(h) => update_host_tx(tx, &self.sealer, h)?,
                    HostWrite::Fields(h) => {
                        let mut row = h.clone();
                        let cur: Option<(String, String, String, String)> = tx
                            .query_opt(
                                "SELECT administrative, operational, availability, task
                                 FROM hosts WHERE id = ?1",
                                [h.id],
                                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                            )?;
                        let Some((a, o, v, t)) = cur else {
                            return Err(Error::Invalid(format!("host {} not found", h.id)));
                        };
                        (row.administrative, row.operational, row.availability, row.task) =
                            (a, o, v, t);
                        update_host_tx(tx, &self.sealer, &row)?;
                    }
                    HostWrite::States {
                        id,
                        administrative,
                        operational,
                        availability,
                        task,
                    } => {
                        tx.execute(
                            "UPDATE hosts SET administrative = ?2, operational = ?3,
                                availability = ?4, task = ?5 WHERE id = ?1",
                            params![id, administrative, operational, availability, task],
                        )?;
                    }
                    HostWrite::Delete(id) => {
                        tx.execute("DELETE FROM hosts WHERE id = ?1", [id])?;
                    }
                    HostWrite::JoinToken {
                        hash,
                        hostname,
                        expires_at,
                    } => {
                        tx.execute(
                            "INSERT INTO join_tokens (hash, hostname, expires_at) VALUES (?1, ?2, ?3)",
                            params![hash, hostname, expires_at.micros()],
                        )?;
                    }
                    HostWrite::TakeJoinToken {
                        hash,
                        hostname,
                        now,
                    } => {
                        let valid = join_token_host(tx, hash, *now)?;
                        if valid.as_deref() != Some(hostname.as_str()) {
                            return Err(Error::Conflict(
                                "the join token was used or expired meanwhile".into(),
                            ));
                        }
                        tx.execute("DELETE FROM join_tokens WHERE hash = ?1", [hash])?;
                        tx.execute(
                            "DELETE FROM join_tokens WHERE expires_at < ?1",
                            [now.micros()],
                        )?;
                    }
                    HostWrite::Settings(pairs) => {
                        for (k, v) in pairs {
                            tx.execute(
                                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                params![k, v],
                            )?;
                        }
                    }
                }
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// The hostname a join token is for, if it is valid at `now`; reads
    /// only (the token is used up by [`HostWrite::TakeJoinToken`]).
    pub fn peek_join_token(&self, hash: &str, now: Timestamp) -> Result<Option<String>, Error> {
        self.read(|c| join_token_host(c, hash, now))
    }

    /// Every host, by id.
    pub fn hosts(&self) -> Result<Vec<StoredHost>, Error> {
        self.read(|c| {
            let mut v = c.query_map(
                &format!("SELECT {COLUMNS} FROM hosts ORDER BY id"),
                (),
                host_from_row,
            )?;
            for h in &mut v {
                h.bm_password =
                    self.sealer
                        .unseal_opt(HOST_BM_PASSWORD, &h.uuid, h.bm_password.take())?;
                h.hb_key = self
                    .sealer
                    .unseal_opt(HOST_HB_KEY, &h.uuid, h.hb_key.take())?;
            }
            Ok(v)
        })
    }

    /// Inserts a host; returns it with its new id. A duplicate hostname is
    /// refused with [`Error::Invalid`].
    pub fn insert_host(&self, h: &StoredHost) -> Result<StoredHost, Error> {
        self.write_once(|tx| {
            let mut out = h.clone();
            out.id = insert_host_tx(tx, &self.sealer, h)?;
            Ok(out)
        })
    }

    /// Writes every field of an existing host.
    pub fn update_host(&self, h: &StoredHost) -> Result<(), Error> {
        self.write_once(|tx| update_host_tx(tx, &self.sealer, h))
    }

    /// Deletes a host; true if it existed.
    pub fn delete_host(&self, id: i64) -> Result<bool, Error> {
        self.write_once(|tx| Ok(tx.execute("DELETE FROM hosts WHERE id = ?1", [id])? > 0))
    }

    /// Stores a join token (by hash) for `hostname`.
    pub fn insert_join_token(
        &self,
        hash: &str,
        hostname: &str,
        expires_at: Timestamp,
    ) -> Result<(), Error> {
        self.write_once(|tx| {
            tx.execute(
                "INSERT INTO join_tokens (hash, hostname, expires_at) VALUES (?1, ?2, ?3)",
                params![hash, hostname, expires_at.micros()],
            )?;
            Ok(())
        })
    }

    /// Uses up a join token: deletes it and returns its hostname if it was
    /// valid at `now`. A used, expired or unknown token gives `None`.
    pub fn take_join_token(&self, hash: &str, now: Timestamp) -> Result<Option<String>, Error> {
        self.write_once(|tx| {
            let found = join_token_host(tx, hash, now)?;
            tx.execute("DELETE FROM join_tokens WHERE hash = ?1", [hash])?;
            tx.execute(
                "DELETE FROM join_tokens WHERE expires_at < ?1",
                [now.micros()],
            )?;
            Ok(found)
        })
    }

    /// A stored setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, Error> {
        self.read(|c| {
            c.query_opt("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
        })
    }

    /// Stores settings in one transaction.
    pub fn set_settings(&self, pairs: &[(String, String)]) -> Result<(), Error> {
        self.write_once(|tx| {
            for (k, v) in pairs {
                tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![k, v],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Location;
    use crate::testdb::{TestDb, each_backend};

    fn host(name: &str) -> StoredHost {
        StoredHost {
            uuid: format!("uuid-{name}"),
            hostname: name.into(),
            personality: "worker".into(),
            subfunctions: "worker".into(),
            administrative: "locked".into(),
            operational: "disabled".into(),
            availability: "offline".into(),
            bm_type: "none".into(),
            location: "{}".into(),
            created_at: Timestamp(1),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_get_increasing_ids_and_unique_names() {
        for db in each_backend() {
            let s = db.open(10);
            let a = s.insert_host(&host("worker-0")).unwrap();
            let b = s.insert_host(&host("worker-1")).unwrap();
            assert!(b.id > a.id);
            assert!(matches!(
                s.insert_host(&host("worker-0")),
                Err(Error::Invalid(_))
            ));
            let mut a2 = a.clone();
            a2.administrative = "unlocked".into();
            a2.bm_password = Some("pw".into());
            a2.agent_cert = Some("-----BEGIN CERTIFICATE-----".into());
            a2.agent_cert_serial = Some("0a".into());
            a2.agent_cert_prev_serial = Some("09".into());
            a2.tpm = Some("{}".into());
            s.update_host(&a2).unwrap();
            assert_eq!(s.hosts().unwrap()[0], a2);
            assert!(s.delete_host(a.id).unwrap());
            assert_eq!(s.hosts().unwrap().len(), 1);
        }
    }

    const PASSWORD: &str = "Bmc-Secret-Pw-7731";
    const HB_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    /// A SQLite database file and its WAL, as bytes; `None` for PostgreSQL,
    /// which has no file of its own to read.
    fn files(db: &TestDb) -> Option<Vec<u8>> {
        let Location::Sqlite(path) = &db.location else {
            return None;
        };
        let mut all = std::fs::read(path).unwrap();
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        if let Ok(w) = std::fs::read(wal) {
            all.extend(w);
        }
        Some(all)
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// The stored `bm_password` and `hb_key` of the only host, as they are
    /// in the database.
    fn raw_secrets(s: &Store) -> (String, String) {
        s.read(|c| {
            c.query_row("SELECT bm_password, hb_key FROM hosts", (), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .unwrap()
    }

    fn with_secrets(name: &str) -> StoredHost {
        let mut h = host(name);
        h.bm_password = Some(PASSWORD.into());
        h.hb_key = Some(HB_KEY.into());
        h
    }

    #[test]
    fn secrets_are_sealed_in_the_file_and_clear_in_the_store() {
        for db in each_backend() {
            let s = db.open(10);
            let a = s.insert_host(&with_secrets("worker-0")).unwrap();
            assert_eq!(s.hosts().unwrap()[0], a);
            let mut b = a.clone();
            b.administrative = "unlocked".into();
            s.write_hosts(&[HostWrite::Fields(b.clone())]).unwrap();
            assert_eq!(s.hosts().unwrap()[0].bm_password.as_deref(), Some(PASSWORD));
            let raw = raw_secrets(&s);
            assert!(
                raw.0.starts_with("enc1:") && raw.1.starts_with("enc1:"),
                "{raw:?}"
            );
            drop(s);
            // SQLite: not in the file's bytes either (PostgreSQL has no
            // file of the store's; the columns above are what it keeps).
            if let Some(bytes) = files(&db) {
                assert!(!contains(&bytes, PASSWORD));
                assert!(!contains(&bytes, HB_KEY));
            }
            // Reopened with the same key, the secrets read back.
            assert_eq!(
                db.open(10).hosts().unwrap()[0].hb_key.as_deref(),
                Some(HB_KEY)
            );
        }
    }

    #[test]
    fn clear_secrets_of_an_older_store_are_sealed_in_place_at_open() {
        for db in each_backend() {
            {
                let s = db.open(10);
                s.insert_host(&host("worker-0")).unwrap();
                // As an older Roost wrote them: in clear.
                s.write_once(|tx| {
                    tx.execute(
                        "UPDATE hosts SET bm_password = ?1, hb_key = ?2",
                        params![PASSWORD, HB_KEY],
                    )?;
                    Ok(())
                })
                .unwrap();
                assert_eq!(raw_secrets(&s), (PASSWORD.into(), HB_KEY.into()));
            }
            if let Some(bytes) = files(&db) {
                assert!(contains(&bytes, PASSWORD));
            }
            let s = db.open(10);
            assert_eq!(s.seal_report().sealed_in_place, 2);
            let h = &s.hosts().unwrap()[0];
            assert_eq!(h.bm_password.as_deref(), Some(PASSWORD));
            assert_eq!(h.hb_key.as_deref(), Some(HB_KEY));
            let raw = raw_secrets(&s);
            assert!(
                raw.0.starts_with("enc1:") && raw.1.starts_with("enc1:"),
                "{raw:?}"
            );
            drop(s);
            if let Some(bytes) = files(&db) {
                assert!(
                    !contains(&bytes, PASSWORD),
                    "a clear password is left in the file"
                );
                assert!(!contains(&bytes, HB_KEY), "a clear key is left in the file");
            }
            assert_eq!(db.open(10).seal_report().sealed_in_place, 0);
        }
    }

    #[test]
    fn a_missing_or_wrong_key_fails_the_open_and_loses_nothing() {
        for db in each_backend() {
            db.open(10).insert_host(&with_secrets("worker-0")).unwrap();
            let key = db.dir.path().join(crate::SECRET_KEY_FILE);
            let saved = std::fs::read(&key).unwrap();
            let open = || Store::open(db.config(10));
            std::fs::remove_file(&key).unwrap();
            let err = open().err().expect("a missing key fails").to_string();
            assert!(err.contains("missing") && err.contains("restore"), "{err}");
            assert!(!key.exists(), "no new key replaces the lost one");
            std::fs::write(&key, [9u8; 32]).unwrap();
            let err = open().err().expect("a wrong key fails").to_string();
            assert!(
                err.contains("not the key") && err.contains("restore"),
                "{err}"
            );
            std::fs::write(&key, &saved).unwrap();
            let h = &open().unwrap().hosts().unwrap()[0];
            assert_eq!(h.bm_password.as_deref(), Some(PASSWORD));
        }
    }

    #[test]
    fn a_join_token_works_once_and_only_before_it_expires() {
        for db in each_backend() {
            let s = db.open(10);
            s.insert_join_token("h1", "worker-0", Timestamp(100))
                .unwrap();
            s.insert_join_token("h2", "worker-1", Timestamp(100))
                .unwrap();
            assert_eq!(
                s.take_join_token("h1", Timestamp(50)).unwrap().as_deref(),
                Some("worker-0")
            );
            assert_eq!(
                s.take_join_token("h1", Timestamp(50)).unwrap(),
                None,
                "single use"
            );
            assert_eq!(
                s.take_join_token("h2", Timestamp(200)).unwrap(),
                None,
                "expired"
            );
            assert_eq!(s.take_join_token("nope", Timestamp(1)).unwrap(), None);
        }
    }

    #[test]
    fn settings_upsert() {
        for db in each_backend() {
            let s = db.open(10);
            s.set_settings(&[("a".into(), "1".into())]).unwrap();
            s.set_settings(&[("a".into(), "2".into())]).unwrap();
            assert_eq!(s.setting("a").unwrap().as_deref(), Some("2"));
            assert_eq!(s.setting("b").unwrap(), None);
        }
    }
}

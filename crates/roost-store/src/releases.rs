//! Software releases: one row per uploaded release.

use crate::sql::{Db, params};
use roost_types::Timestamp;

use crate::{Error, Store};

/// A release as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRelease {
    pub release_id: String,
    /// USM's state (`available`, `deploying`, `deployed`, ...).
    pub state: String,
    /// The signed manifest, JSON.
    pub manifest: String,
    pub uploaded_at: Timestamp,
}

/// One change to the releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseWrite {
    /// Adds a release; one with the same id fails the whole write with
    /// [`Error::Conflict`].
    Insert(StoredRelease),
    SetState {
        release_id: String,
        state: String,
    },
    Delete(String),
    /// Sets the deploy in progress (JSON), or removes it.
    Deploy(Option<String>),
    /// Sets the site strategy (JSON), or removes it.
    Strategy(Option<String>),
    /// Sets the fleet rollout strategy (JSON), or removes it.
    FleetStrategy(Option<String>),
    /// Sets the strategy-config of `cloud` (`SystemController` for the
    /// defaults) as JSON, or removes it.
    Options {
        cloud: String,
        body: Option<String>,
    },
}

impl Store {
    /// Every release, by id.
    pub fn releases(&self) -> Result<Vec<StoredRelease>, Error> {
        self.read(|c| {
            let v = c.query_map(
                "SELECT release_id, state, manifest, uploaded_at FROM releases ORDER BY release_id",
                (),
                |r| {
                    Ok(StoredRelease {
                        release_id: r.get(0)?,
                        state: r.get(1)?,
                        manifest: r.get(2)?,
                        uploaded_at: Timestamp(r.get(3)?),
                    })
                },
            )?;
            Ok(v)
        })
    }

    /// The deploy in progress (JSON), if any.
    pub fn deploy(&self) -> Result<Option<String>, Error> {
        self.single_body("SELECT body FROM deploy WHERE id = 1")
    }

    /// The site strategy (JSON), if any.
    pub fn site_strategy(&self) -> Result<Option<String>, Error> {
        self.single_body("SELECT body FROM site_strategy WHERE id = 1")
    }

    /// The fleet rollout strategy (JSON), if any.
    pub fn fleet_strategy(&self) -> Result<Option<String>, Error> {
        self.single_body("SELECT body FROM fleet_strategy WHERE id = 1")
    }

    /// Every stored strategy-config, as (cloud, JSON), by cloud.
    pub fn sw_update_options(&self) -> Result<Vec<(String, String)>, Error> {
        self.read(|c| {
            let v = c.query_map(
                "SELECT cloud, body FROM sw_update_options ORDER BY cloud",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(v)
        })
    }

    /// The body of a one-row table, if the row exists.
    fn single_body(&self, sql: &'static str) -> Result<Option<String>, Error> {
        self.read(|c| c.query_opt(sql, (), |r| r.get::<String>(0)))
    }

    /// Applies `writes` in one transaction: all or nothing.
    pub fn write_releases(&self, writes: &[ReleaseWrite]) -> Result<(), Error> {
        self.write_once(|tx| {
            for w in writes {
                match w {
                    ReleaseWrite::Insert(r) => {
                        let n = tx.execute(
                            "INSERT INTO releases (release_id, state, manifest, uploaded_at)
                             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (release_id) DO NOTHING",
                            params![r.release_id, r.state, r.manifest, r.uploaded_at.micros()],
                        )?;
                        if n == 0 {
                            return Err(Error::Conflict(format!(
                                "release {} exists already",
                                r.release_id
                            )));
                        }
                    }
                    ReleaseWrite::SetState { release_id, state } => {
                        tx.execute(
                            "UPDATE releases SET state = ?2 WHERE release_id = ?1",
                            params![release_id, state],
                        )?;
                    }
                    ReleaseWrite::Delete(id) => {
                        tx.execute("DELETE FROM releases WHERE release_id = ?1", [id])?;
                    }
                    ReleaseWrite::Deploy(body) => {
                        set_single(tx, "deploy", body.as_deref())?;
                    }
                    ReleaseWrite::Strategy(body) => {
                        set_single(tx, "site_strategy", body.as_deref())?;
                    }
                    ReleaseWrite::FleetStrategy(body) => {
                        set_single(tx, "fleet_strategy", body.as_deref())?;
                    }
                    ReleaseWrite::Options { cloud, body } => match body {
                        Some(b) => {
                            tx.execute(
                                "INSERT INTO sw_update_options (cloud, body) VALUES (?1, ?2)
                                 ON CONFLICT (cloud) DO UPDATE SET body = excluded.body",
                                params![cloud, b],
                            )?;
                        }
                        None => {
                            tx.execute("DELETE FROM sw_update_options WHERE cloud = ?1", [cloud])?;
                        }
                    },
                }
            }
            Ok(())
        })
    }
}

/// Sets (or with `None` removes) the row of a one-row table (`deploy`,
/// `site_strategy`).
fn set_single(tx: &mut Db<'_>, table: &str, body: Option<&str>) -> Result<(), Error> {
    match body {
        Some(b) => tx.execute(
            &format!(
                "INSERT INTO {table} (id, body) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body"
            ),
            [b],
        )?,
        None => tx.execute(&format!("DELETE FROM {table}"), ())?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb::each_backend;

    fn row(id: &str) -> StoredRelease {
        StoredRelease {
            release_id: id.into(),
            state: "available".into(),
            manifest: "{}".into(),
            uploaded_at: Timestamp(7),
        }
    }

    #[test]
    fn releases_are_added_once_changed_and_deleted() {
        for db in each_backend() {
            let s = db.open(100);
            s.write_releases(&[ReleaseWrite::Insert(row("roost-0.2.0"))])
                .unwrap();
            // A second insert of the id fails the whole write.
            let e = s
                .write_releases(&[
                    ReleaseWrite::Insert(row("roost-0.3.0")),
                    ReleaseWrite::Insert(row("roost-0.2.0")),
                ])
                .unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            assert_eq!(s.releases().unwrap(), vec![row("roost-0.2.0")]);
            s.write_releases(&[ReleaseWrite::SetState {
                release_id: "roost-0.2.0".into(),
                state: "deploying".into(),
            }])
            .unwrap();
            assert_eq!(s.releases().unwrap()[0].state, "deploying");
            s.write_releases(&[ReleaseWrite::Delete("roost-0.2.0".into())])
                .unwrap();
            assert!(s.releases().unwrap().is_empty());
        }
    }

    #[test]
    fn the_deploy_is_set_replaced_and_removed_with_release_states() {
        for db in each_backend() {
            let s = db.open(100);
            assert_eq!(s.deploy().unwrap(), None);
            s.write_releases(&[
                ReleaseWrite::Insert(row("roost-0.2.0")),
                ReleaseWrite::Deploy(Some("{\"a\":1}".into())),
            ])
            .unwrap();
            s.write_releases(&[ReleaseWrite::Deploy(Some("{\"a\":2}".into()))])
                .unwrap();
            assert_eq!(s.deploy().unwrap().as_deref(), Some("{\"a\":2}"));
            // All or nothing: a failing insert keeps the deploy as it was.
            s.write_releases(&[
                ReleaseWrite::Deploy(None),
                ReleaseWrite::Insert(row("roost-0.2.0")),
            ])
            .unwrap_err();
            assert_eq!(s.deploy().unwrap().as_deref(), Some("{\"a\":2}"));
            s.write_releases(&[ReleaseWrite::Deploy(None)]).unwrap();
            assert_eq!(s.deploy().unwrap(), None);
            s.write_releases(&[ReleaseWrite::Strategy(Some("{}".into()))])
                .unwrap();
            assert_eq!(s.site_strategy().unwrap().as_deref(), Some("{}"));
            s.write_releases(&[ReleaseWrite::Strategy(None)]).unwrap();
            assert_eq!(s.site_strategy().unwrap(), None);
            s.write_releases(&[
                ReleaseWrite::FleetStrategy(Some("{\"f\":1}".into())),
                ReleaseWrite::Options {
                    cloud: "SystemController".into(),
                    body: Some("{}".into()),
                },
                ReleaseWrite::Options {
                    cloud: "edge-1".into(),
                    body: Some("{\"a\":1}".into()),
                },
            ])
            .unwrap();
            assert_eq!(s.fleet_strategy().unwrap().as_deref(), Some("{\"f\":1}"));
            s.write_releases(&[ReleaseWrite::Options {
                cloud: "edge-1".into(),
                body: Some("{\"a\":2}".into()),
            }])
            .unwrap();
            assert_eq!(
                s.sw_update_options().unwrap(),
                vec![
                    ("SystemController".to_string(), "{}".to_string()),
                    ("edge-1".to_string(), "{\"a\":2}".to_string()),
                ]
            );
            s.write_releases(&[
                ReleaseWrite::FleetStrategy(None),
                ReleaseWrite::Options {
                    cloud: "edge-1".into(),
                    body: None,
                },
            ])
            .unwrap();
            assert_eq!(s.fleet_strategy().unwrap(), None);
            assert_eq!(s.sw_update_options().unwrap().len(), 1);
        }
    }
}

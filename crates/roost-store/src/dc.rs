//! SQL for Distributed Cloud: subclouds and subcloud groups.

use crate::sql::{Params, Row, params};
use roost_types::Timestamp;

use crate::{Error, Store};

/// A subcloud as the system controller stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredSubcloud {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub group_id: i64,
    pub management_state: String,
    pub deploy_status: String,
    pub software_version: Option<String>,
    pub region_name: String,
    /// Hash of the one-time enrollment token, until it is used.
    pub enroll_token_hash: Option<String>,
    pub enroll_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    /// Serial (lowercase hex) of the certificate issued to the subcloud.
    pub cert_serial: Option<String>,
    /// The serial before the last renewal, accepted until the new one is used.
    pub prev_cert_serial: Option<String>,
}

/// A subcloud group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredGroup {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub update_apply_type: String,
    pub max_parallel_subclouds: i64,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

/// An application assigned to a subcloud group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredGroupApp {
    pub group_id: i64,
    pub app: String,
    pub version: String,
    pub digest: String,
    pub size: i64,
}

const SUBCLOUD_COLUMNS: &str = "id, name, description, location, group_id, management_state,
    deploy_status, software_version, region_name, enroll_token_hash, enroll_expires_at,
    created_at, updated_at, cert_serial, prev_cert_serial";

fn subcloud_from_row(r: &Row) -> Result<StoredSubcloud, Error> {
    Ok(StoredSubcloud {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        location: r.get(3)?,
        group_id: r.get(4)?,
        management_state: r.get(5)?,
        deploy_status: r.get(6)?,
        software_version: r.get(7)?,
        region_name: r.get(8)?,
        enroll_token_hash: r.get(9)?,
        enroll_expires_at: r.get::<Option<i64>>(10)?.map(Timestamp),
        created_at: Timestamp(r.get(11)?),
        updated_at: r.get::<Option<i64>>(12)?.map(Timestamp),
        cert_serial: r.get(13)?,
        prev_cert_serial: r.get(14)?,
    })
}

fn group_from_row(r: &Row) -> Result<StoredGroup, Error> {
    Ok(StoredGroup {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        update_apply_type: r.get(3)?,
        max_parallel_subclouds: r.get(4)?,
        created_at: Timestamp(r.get(5)?),
        updated_at: r.get::<Option<i64>>(6)?.map(Timestamp),
    })
}

impl Store {
    /// Every subcloud, by id.
    pub fn subclouds(&self) -> Result<Vec<StoredSubcloud>, Error> {
        self.read(|c| {
            c.query_map(
                &format!("SELECT {SUBCLOUD_COLUMNS} FROM subclouds ORDER BY id"),
                (),
                subcloud_from_row,
            )
        })
    }

    /// Inserts a subcloud (with its id when not 0); a duplicate name is
    /// [`Error::Invalid`].
    pub fn insert_subcloud(&self, s: &StoredSubcloud) -> Result<StoredSubcloud, Error> {
        self.write_once(|tx| {
            let dup: Option<i64> =
                tx.query_opt("SELECT id FROM subclouds WHERE name = ?1", [&s.name], |r| {
                    r.get(0)
                })?;
            if dup.is_some() {
                return Err(Error::Invalid(format!(
                    "subcloud {} already exists",
                    s.name
                )));
            }
            // With an id of its own, or 0: a new one.
            let (id_column, id_mark) = if s.id > 0 {
                (", id", ", ?15")
            } else {
                ("", "")
            };
            let sql = format!(
                "INSERT INTO subclouds (name, description, location, group_id, management_state,
                    deploy_status, software_version, region_name, enroll_token_hash,
                    enroll_expires_at, created_at, updated_at, cert_serial,
                    prev_cert_serial{id_column})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14{id_mark})
                 RETURNING id"
            );
            let mut values = params![
                s.name,
                s.description,
                s.location,
                s.group_id,
                s.management_state,
                s.deploy_status,
                s.software_version,
                s.region_name,
                s.enroll_token_hash,
                s.enroll_expires_at.map(|t| t.micros()),
                s.created_at.micros(),
                s.updated_at.map(|t| t.micros()),
                s.cert_serial,
                s.prev_cert_serial,
            ]
            .values();
            if s.id > 0 {
                values.push(crate::sql::Value::Int(s.id));
            }
            let mut out = s.clone();
            out.id = tx.query_row(&sql, values, |r| r.get(0))?;
            if s.id > 0 {
                tx.numbers_follow("subclouds", "id")?;
            }
            Ok(out)
        })
    }

    /// Writes every field of a subcloud.
    pub fn update_subcloud(&self, s: &StoredSubcloud) -> Result<(), Error> {
        self.write_once(|tx| {
            let n = tx.execute(
                "UPDATE subclouds SET name = ?2, description = ?3, location = ?4, group_id = ?5,
                    management_state = ?6, deploy_status = ?7, software_version = ?8,
                    region_name = ?9, enroll_token_hash = ?10, enroll_expires_at = ?11,
                    updated_at = ?12, cert_serial = ?13, prev_cert_serial = ?14
                 WHERE id = ?1",
                params![
                    s.id,
                    s.name,
                    s.description,
                    s.location,
                    s.group_id,
                    s.management_state,
                    s.deploy_status,
                    s.software_version,
                    s.region_name,
                    s.enroll_token_hash,
                    s.enroll_expires_at.map(|t| t.micros()),
                    s.updated_at.map(|t| t.micros()),
                    s.cert_serial,
                    s.prev_cert_serial,
                ],
            )?;
            if n == 0 {
                return Err(Error::Invalid(format!("subcloud {} not found", s.id)));
            }
            Ok(())
        })
    }

    /// Deletes a subcloud; true if it existed.
    pub fn delete_subcloud(&self, id: i64) -> Result<bool, Error> {
        self.write_once(|tx| Ok(tx.execute("DELETE FROM subclouds WHERE id = ?1", [id])? > 0))
    }

    /// Every group, by id.
    pub fn groups(&self) -> Result<Vec<StoredGroup>, Error> {
        self.read(|c| {
            c.query_map(
                "SELECT id, name, description, update_apply_type, max_parallel_subclouds,
                    created_at, updated_at FROM subcloud_groups ORDER BY id",
                (),
                group_from_row,
            )
        })
    }

    /// Inserts or updates a group by id (id 0 inserts with a new id). A
    /// duplicate name is [`Error::Invalid`].
    pub fn save_group(&self, g: &StoredGroup) -> Result<StoredGroup, Error> {
        self.write_once(|tx| {
            let dup: Option<i64> = tx.query_opt(
                "SELECT id FROM subcloud_groups WHERE name = ?1 AND id != ?2",
                params![g.name, g.id],
                |r| r.get(0),
            )?;
            if dup.is_some() {
                return Err(Error::Invalid(format!(
                    "subcloud group {} already exists",
                    g.name
                )));
            }
            let mut out = g.clone();
            let values = params![
                g.name,
                g.description,
                g.update_apply_type,
                g.max_parallel_subclouds,
                g.created_at.micros(),
                g.updated_at.map(|t| t.micros()),
                g.id,
            ];
            if g.id == 0 {
                out.id = tx.query_row(
                    "INSERT INTO subcloud_groups (name, description, update_apply_type,
                        max_parallel_subclouds, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     RETURNING id",
                    values[..6].to_vec().as_slice(),
                    |r| r.get(0),
                )?;
            } else {
                tx.execute(
                    "INSERT INTO subcloud_groups (name, description, update_apply_type,
                        max_parallel_subclouds, created_at, updated_at, id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                        description = excluded.description,
                        update_apply_type = excluded.update_apply_type,
                        max_parallel_subclouds = excluded.max_parallel_subclouds,
                        updated_at = excluded.updated_at",
                    values,
                )?;
                tx.numbers_follow("subcloud_groups", "id")?;
            }
            Ok(out)
        })
    }

    /// Deletes a group; true if it existed.
    pub fn delete_group(&self, id: i64) -> Result<bool, Error> {
        self.write_once(|tx| Ok(tx.execute("DELETE FROM subcloud_groups WHERE id = ?1", [id])? > 0))
    }

    /// Every application assigned to a group, by group and name.
    pub fn group_apps(&self) -> Result<Vec<StoredGroupApp>, Error> {
        self.read(|c| {
            c.query_map(
                "SELECT group_id, app, version, digest, size FROM dc_group_apps
                 ORDER BY group_id, app",
                (),
                |r| {
                    Ok(StoredGroupApp {
                        group_id: r.get(0)?,
                        app: r.get(1)?,
                        version: r.get(2)?,
                        digest: r.get(3)?,
                        size: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Assigns (or re-assigns, with another package) an application to a group.
    pub fn save_group_app(&self, a: &StoredGroupApp) -> Result<(), Error> {
        self.write_once(|tx| {
            tx.execute(
                "INSERT INTO dc_group_apps (group_id, app, version, digest, size)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (group_id, app) DO UPDATE SET version = excluded.version,
                    digest = excluded.digest, size = excluded.size",
                params![a.group_id, a.app, a.version, a.digest, a.size],
            )?;
            Ok(())
        })
    }

    /// Takes an application off a group; true if it was assigned.
    pub fn delete_group_app(&self, group_id: i64, app: &str) -> Result<bool, Error> {
        self.write_once(|tx| {
            Ok(tx.execute(
                "DELETE FROM dc_group_apps WHERE group_id = ?1 AND app = ?2",
                params![group_id, app],
            )? > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb::each_backend;

    #[test]
    fn group_apps_round_trip() {
        for db in each_backend() {
            let store = db.open(10);
            let a = StoredGroupApp {
                group_id: 1,
                app: "hello".into(),
                version: "1.0".into(),
                digest: format!("sha256:{}", "a".repeat(64)),
                size: 10,
            };
            store.save_group_app(&a).unwrap();
            let b = StoredGroupApp {
                version: "1.1".into(),
                ..a.clone()
            };
            store.save_group_app(&b).unwrap();
            assert_eq!(store.group_apps().unwrap(), vec![b]);
            assert!(store.delete_group_app(1, "hello").unwrap());
            assert!(!store.delete_group_app(1, "hello").unwrap());
            assert!(store.group_apps().unwrap().is_empty());
        }
    }

    #[test]
    fn subclouds_and_groups_round_trip() {
        for db in each_backend() {
            let s = db.open(10);
            let groups = s.groups().unwrap();
            assert_eq!(groups[0].name, "Default");
            let g = s
                .save_group(&StoredGroup {
                    name: "west".into(),
                    description: "d".into(),
                    update_apply_type: "serial".into(),
                    max_parallel_subclouds: 5,
                    ..Default::default()
                })
                .unwrap();
            assert!(g.id > 1);
            let sc = s
                .insert_subcloud(&StoredSubcloud {
                    name: "edge-1".into(),
                    group_id: g.id,
                    management_state: "unmanaged".into(),
                    deploy_status: "not-deployed".into(),
                    region_name: "r1".into(),
                    ..Default::default()
                })
                .unwrap();
            assert!(matches!(s.insert_subcloud(&sc), Err(Error::Invalid(_))));
            let mut sc2 = sc.clone();
            sc2.management_state = "managed".into();
            sc2.cert_serial = Some("0a1b".into());
            s.update_subcloud(&sc2).unwrap();
            assert_eq!(s.subclouds().unwrap(), vec![sc2]);
            assert!(s.delete_subcloud(sc.id).unwrap());
            assert!(s.delete_group(g.id).unwrap());
        }
    }

    #[test]
    fn an_injected_commit_failure_writes_nothing() {
        for db in each_backend() {
            let s = db.open(10);
            s.fail_next_commits(1);
            let row = StoredSubcloud {
                name: "edge-1".into(),
                group_id: 1,
                management_state: "unmanaged".into(),
                deploy_status: "not-deployed".into(),
                region_name: "r1".into(),
                ..Default::default()
            };
            assert!(s.insert_subcloud(&row).is_err());
            assert!(s.subclouds().unwrap().is_empty());
            s.insert_subcloud(&row).unwrap();
            assert_eq!(s.subclouds().unwrap().len(), 1);
        }
    }
}

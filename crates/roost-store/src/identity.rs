//! SQL for identity: users, projects, role assignments and tokens.

use crate::sql::{Db, Row, params};
use roost_types::Timestamp;

use crate::{Error, Store};

/// A user as stored (the password only as its argon2id hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub id: String,
    pub name: String,
    pub password_hash: String,
}

/// An issued token, keyed by the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub hash: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub methods: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// The application credential the token was issued with, if any.
    pub app_cred_id: Option<String>,
}

/// A Keystone application credential as stored: the secret only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAppCredential {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub secret_hash: String,
    /// The roles it grants (at most the user's roles on the project).
    pub roles: Vec<String>,
    /// `None`: it never expires.
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

const APP_CRED_SELECT: &str = "SELECT id, user_id, project_id, name, description, secret_hash, roles, expires_at, created_at FROM application_credentials";

fn app_credential(r: &Row) -> Result<StoredAppCredential, Error> {
    let roles: String = r.get(6)?;
    Ok(StoredAppCredential {
        id: r.get(0)?,
        user_id: r.get(1)?,
        project_id: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        secret_hash: r.get(5)?,
        roles: roles
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        expires_at: r.get::<Option<i64>>(7)?.map(Timestamp),
        created_at: Timestamp(r.get(8)?),
    })
}

impl Store {
    /// Stores a new application credential; false if its user already has
    /// one of that name.
    pub fn insert_app_credential(&self, c: &StoredAppCredential) -> Result<bool, Error> {
        self.write_once(|tx| {
            let taken: Option<String> = tx.query_opt(
                "SELECT id FROM application_credentials WHERE user_id = ?1 AND name = ?2",
                params![c.user_id, c.name],
                |r| r.get(0),
            )?;
            if taken.is_some() {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO application_credentials (id, user_id, project_id, name, description, secret_hash, roles, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    c.id,
                    c.user_id,
                    c.project_id,
                    c.name,
                    c.description,
                    c.secret_hash,
                    c.roles.join(","),
                    c.expires_at.map(Timestamp::micros),
                    c.created_at.micros()
                ],
            )?;
            Ok(true)
        })
    }

    /// A user's application credentials, by name.
    pub fn app_credentials(&self, user_id: &str) -> Result<Vec<StoredAppCredential>, Error> {
        self.read(|c| {
            let v = c.query_map(
                &format!("{APP_CRED_SELECT} WHERE user_id = ?1 ORDER BY name"),
                [user_id],
                app_credential,
            )?;
            Ok(v)
        })
    }

    /// The application credential with this id.
    pub fn app_credential(&self, id: &str) -> Result<Option<StoredAppCredential>, Error> {
        self.read(|c| {
            c.query_opt(
                &format!("{APP_CRED_SELECT} WHERE id = ?1"),
                [id],
                app_credential,
            )
        })
    }

    /// A user's application credential by name.
    pub fn app_credential_by_name(
        &self,
        user_id: &str,
        name: &str,
    ) -> Result<Option<StoredAppCredential>, Error> {
        self.read(|c| {
            c.query_opt(
                &format!("{APP_CRED_SELECT} WHERE user_id = ?1 AND name = ?2"),
                [user_id, name],
                app_credential,
            )
        })
    }

    /// Deletes an application credential of a user with the tokens issued
    /// with it; returns those tokens' hashes, `None` if there was no such
    /// credential.
    pub fn delete_app_credential(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        self.write_once(|tx| {
            let n = tx.execute(
                "DELETE FROM application_credentials WHERE id = ?1 AND user_id = ?2",
                [id, user_id],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let hashes = tx.query_map(
                "SELECT hash FROM tokens WHERE application_credential_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            tx.execute(
                "DELETE FROM tokens WHERE application_credential_id = ?1",
                [id],
            )?;
            Ok(Some(hashes))
        })
    }

    /// The user with this name.
    pub fn user_by_name(&self, name: &str) -> Result<Option<StoredUser>, Error> {
        self.read(|c| {
            c.query_opt(
                "SELECT id, name, password_hash FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(StoredUser {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        password_hash: r.get(2)?,
                    })
                },
            )
        })
    }

    /// The user with this id.
    pub fn user_by_id(&self, id: &str) -> Result<Option<StoredUser>, Error> {
        self.read(|c| {
            c.query_opt(
                "SELECT id, name, password_hash FROM users WHERE id = ?1",
                [id],
                |r| {
                    Ok(StoredUser {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        password_hash: r.get(2)?,
                    })
                },
            )
        })
    }

    /// Creates a user, a project of the same role scope, and grants `roles`
    /// on the project, all in one transaction. Does nothing if the user exists.
    pub fn ensure_user(
        &self,
        user: &StoredUser,
        project: (&str, &str),
        roles: &[&str],
        now: Timestamp,
    ) -> Result<bool, Error> {
        self.write_once(|tx| {
            tx.execute(
                "INSERT INTO projects (id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![project.0, project.1],
            )?;
            insert_user(tx, user, true, Some(project.0), roles, now)
        })
    }

    /// The project with this name or id: (id, name).
    pub fn project(&self, name_or_id: &str) -> Result<Option<(String, String)>, Error> {
        self.read(|c| {
            c.query_opt(
                "SELECT id, name FROM projects WHERE id = ?1 OR name = ?1",
                [name_or_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    /// The roles a user holds on a project.
    pub fn roles(&self, user_id: &str, project_id: &str) -> Result<Vec<String>, Error> {
        self.read(|c| {
                        let v = c.query_map("SELECT role FROM role_assignments WHERE user_id = ?1 AND project_id = ?2 ORDER BY role", [user_id, project_id], |r| r.get(0))?;
            Ok(v)
        })
    }

    /// Stores a newly issued token.
    pub fn insert_token(&self, t: &StoredToken) -> Result<(), Error> {
        self.write_once(|tx| {
            tx.execute(
                "INSERT INTO tokens (hash, user_id, project_id, methods, issued_at, expires_at, application_credential_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.hash,
                    t.user_id,
                    t.project_id,
                    t.methods,
                    t.issued_at.micros(),
                    t.expires_at.micros(),
                    t.app_cred_id
                ],
            )?;
            Ok(())
        })
    }

    /// Deletes a token; true if it existed.
    pub fn delete_token(&self, hash: &str) -> Result<bool, Error> {
        self.write_once(|tx| Ok(tx.execute("DELETE FROM tokens WHERE hash = ?1", [hash])? > 0))
    }

    /// Deletes tokens that expired before `now`; returns how many.
    pub fn purge_expired_tokens(&self, now: Timestamp) -> Result<usize, Error> {
        self.write_once(|tx| tx.execute("DELETE FROM tokens WHERE expires_at < ?1", [now.micros()]))
    }

    /// Every token that has not expired at `now`.
    pub fn live_tokens(&self, now: Timestamp) -> Result<Vec<StoredToken>, Error> {
        self.read(|c| {
                        let v = c.query_map("SELECT hash, user_id, project_id, methods, issued_at, expires_at, application_credential_id FROM tokens WHERE expires_at >= ?1", [now.micros()], |r| {
                    Ok(StoredToken {
                        hash: r.get(0)?,
                        user_id: r.get(1)?,
                        project_id: r.get(2)?,
                        methods: r.get(3)?,
                        issued_at: Timestamp(r.get(4)?),
                        expires_at: Timestamp(r.get(5)?),
                        app_cred_id: r.get(6)?,
                    })
                })?;
            Ok(v)
        })
    }
}

/// A user as Distributed Cloud synchronises it: name, password hash and its
/// roles on the `admin` project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedUser {
    pub name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
}

impl Store {
    /// Every user with its hash and roles on the `admin` project, by name.
    pub fn synced_users(&self) -> Result<Vec<SyncedUser>, Error> {
        self.read(|c| {
                        let v = c.query_map("SELECT u.name, u.password_hash,
                        COALESCE((SELECT group_concat(r.role, ',') FROM
                            (SELECT ra.role FROM role_assignments ra JOIN projects p ON p.id = ra.project_id
                             WHERE ra.user_id = u.id AND p.name = 'admin' ORDER BY ra.role) r), '')
                 FROM users u ORDER BY u.name", (), |r| {
                    let roles: String = r.get(2)?;
                    // group_concat does not promise an order: sort here.
                    let mut roles: Vec<String> = roles
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    roles.sort();
                    Ok(SyncedUser {
                        name: r.get(0)?,
                        password_hash: r.get(1)?,
                        roles,
                    })
                })?;
            Ok(v)
        })
    }

    /// Makes the users match `users` (create, update hash and roles on the
    /// `admin` project); users not listed are left alone. `new_id` makes ids
    /// for created users.
    pub fn apply_synced_users(
        &self,
        users: &[SyncedUser],
        new_id: &mut dyn FnMut() -> String,
        now: Timestamp,
    ) -> Result<(), Error> {
        let ids: Vec<String> = users.iter().map(|_| new_id()).collect();
        let project_id = new_id();
        self.write_once(|tx| {
            tx.execute(
                "INSERT INTO projects (id, name) VALUES (?1, 'admin') ON CONFLICT DO NOTHING",
                [&project_id],
            )?;
            let admin: String =
                tx.query_row("SELECT id FROM projects WHERE name = 'admin'", (), |r| r.get(0))?;
            for (u, fresh) in users.iter().zip(ids) {
                let existing: Option<String> = tx
                    .query_opt("SELECT id FROM users WHERE name = ?1", [&u.name], |r| r.get(0))?;
                let id = match existing {
                    Some(id) => {
                        tx.execute(
                            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                            params![id, u.password_hash],
                        )?;
                        id
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO users (id, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                            params![fresh, u.name, u.password_hash, now.micros()],
                        )?;
                        fresh
                    }
                };
                tx.execute(
                    "DELETE FROM role_assignments WHERE user_id = ?1 AND project_id = ?2",
                    params![id, admin],
                )?;
                for role in &u.roles {
                    tx.execute(
                        "INSERT INTO role_assignments (user_id, project_id, role) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        params![id, admin, role],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// Sets a user's password hash; false if there is no such user.
    pub fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<bool, Error> {
        self.write_once(|tx| {
            Ok(tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![user_id, hash],
            )? > 0)
        })
    }
}

/// The roles Roost knows, highest first: `admin` implies `member`
/// (StarlingX's operator), which implies `reader`.
pub const ROLES: &[&str] = &["admin", "member", "reader"];

/// Inserts `user` with `roles` on `project` (none: no roles) unless its
/// name is taken; true when inserted.
fn insert_user(
    tx: &mut Db<'_>,
    user: &StoredUser,
    enabled: bool,
    project: Option<&str>,
    roles: &[impl AsRef<str>],
    now: Timestamp,
) -> Result<bool, Error> {
    let taken: Option<String> =
        tx.query_opt("SELECT id FROM users WHERE name = ?1", [&user.name], |r| {
            r.get(0)
        })?;
    if taken.is_some() {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO users (id, name, password_hash, created_at, enabled) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user.id, user.name, user.password_hash, now.micros(), i64::from(enabled)],
    )?;
    if let Some(project) = project {
        for role in roles {
            tx.execute(
                "INSERT INTO role_assignments (user_id, project_id, role) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![user.id, project, role.as_ref()],
            )?;
        }
    }
    Ok(true)
}

/// A role a user holds on a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAssignment {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    pub role: String,
}

/// A user with its account state and its roles on the `admin` project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Wrong passwords in a row since the last good one.
    pub failed_logins: u32,
    /// Locked until this time (microseconds; 0: not locked).
    pub locked_until: Timestamp,
    pub roles: Vec<String>,
}

const ACCOUNT_SELECT: &str = "SELECT u.id, u.name, u.enabled, u.failed_logins, u.locked_until,
        COALESCE((SELECT group_concat(ra.role, ',') FROM role_assignments ra
                  JOIN projects p ON p.id = ra.project_id
                  WHERE ra.user_id = u.id AND p.name = 'admin'), '')
     FROM users u";

fn account(r: &Row) -> Result<UserAccount, Error> {
    let roles: String = r.get(5)?;
    let mut roles: Vec<String> = roles
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    roles.sort();
    Ok(UserAccount {
        id: r.get(0)?,
        name: r.get(1)?,
        enabled: r.get::<i64>(2)? != 0,
        failed_logins: u32::try_from(r.get::<i64>(3)?).unwrap_or(u32::MAX),
        locked_until: Timestamp(r.get(4)?),
        roles,
    })
}

impl Store {
    /// Every user, by name.
    pub fn accounts(&self) -> Result<Vec<UserAccount>, Error> {
        self.read(|c| {
            let v = c.query_map(&format!("{ACCOUNT_SELECT} ORDER BY u.name"), (), account)?;
            Ok(v)
        })
    }

    /// One user by id or, failing that, by name.
    pub fn account(&self, id_or_name: &str) -> Result<Option<UserAccount>, Error> {
        self.read(|c| {
            c.query_opt(&format!(
                "{ACCOUNT_SELECT} WHERE u.id = ?1 OR u.name = ?1 ORDER BY u.id = ?1 DESC LIMIT 1"
            ), [id_or_name], account)
        })
    }

    /// Creates a user with `roles` on the `admin` project; false if the
    /// name is taken.
    pub fn create_user(
        &self,
        user: &StoredUser,
        enabled: bool,
        roles: &[String],
        now: Timestamp,
    ) -> Result<bool, Error> {
        self.write_once(|tx| {
            let admin: Option<String> =
                tx.query_opt("SELECT id FROM projects WHERE name = 'admin'", (), |r| {
                    r.get(0)
                })?;
            insert_user(tx, user, enabled, admin.as_deref(), roles, now)
        })
    }

    /// Deletes a user with its role assignments and tokens; false if there
    /// was no such user.
    pub fn delete_user(&self, user_id: &str) -> Result<bool, Error> {
        self.write_once(|tx| {
            tx.execute("DELETE FROM tokens WHERE user_id = ?1", [user_id])?;
            tx.execute(
                "DELETE FROM application_credentials WHERE user_id = ?1",
                [user_id],
            )?;
            tx.execute("DELETE FROM role_assignments WHERE user_id = ?1", [user_id])?;
            Ok(tx.execute("DELETE FROM users WHERE id = ?1", [user_id])? > 0)
        })
    }

    /// Renames a user and sets whether it is enabled; enabling also clears
    /// a lockout. False if there is no such user.
    pub fn update_user(
        &self,
        user_id: &str,
        name: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<bool, Error> {
        self.write_once(|tx| {
            let mut changed = tx.query_row("SELECT COUNT(*) FROM users WHERE id = ?1", [user_id], |r| r.get::<i64>(0))? > 0;
            if let Some(n) = name {
                changed &= tx.execute("UPDATE users SET name = ?2 WHERE id = ?1", params![user_id, n])? > 0;
            }
            if let Some(e) = enabled {
                let sql = if e {
                    "UPDATE users SET enabled = 1, failed_logins = 0, locked_until = 0 WHERE id = ?1"
                } else {
                    "UPDATE users SET enabled = 0 WHERE id = ?1"
                };
                tx.execute(sql, [user_id])?;
            }
            Ok(changed)
        })
    }

    /// Grants (`grant`) or revokes a role on a project; true if it changed
    /// anything.
    pub fn set_role(
        &self,
        user_id: &str,
        project_id: &str,
        role: &str,
        grant: bool,
    ) -> Result<bool, Error> {
        self.write_once(|tx| {
            let n = if grant {
                tx.execute(
                    "INSERT INTO role_assignments (user_id, project_id, role) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![user_id, project_id, role],
                )?
            } else {
                tx.execute(
                    "DELETE FROM role_assignments WHERE user_id = ?1 AND project_id = ?2 AND role = ?3",
                    params![user_id, project_id, role],
                )?
            };
            Ok(n > 0)
        })
    }

    /// Every role assignment, by user name.
    pub fn role_assignments(&self) -> Result<Vec<StoredAssignment>, Error> {
        self.read(|c| {
            let v = c.query_map(
                "SELECT u.id, u.name, p.id, p.name, ra.role FROM role_assignments ra
                 JOIN users u ON u.id = ra.user_id JOIN projects p ON p.id = ra.project_id
                 ORDER BY u.name, p.name, ra.role",
                (),
                |r| {
                    Ok(StoredAssignment {
                        user_id: r.get(0)?,
                        user_name: r.get(1)?,
                        project_id: r.get(2)?,
                        project_name: r.get(3)?,
                        role: r.get(4)?,
                    })
                },
            )?;
            Ok(v)
        })
    }

    /// Every project: (id, name).
    pub fn projects(&self) -> Result<Vec<(String, String)>, Error> {
        self.read(|c| {
            let v = c.query_map("SELECT id, name FROM projects ORDER BY name", (), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            Ok(v)
        })
    }

    /// Deletes every token of a user; returns their hashes.
    pub fn delete_user_tokens(&self, user_id: &str) -> Result<Vec<String>, Error> {
        self.write_once(|tx| {
            let hashes = {
                tx.query_map(
                    "SELECT hash FROM tokens WHERE user_id = ?1",
                    [user_id],
                    |r| r.get(0),
                )?
            };
            tx.execute("DELETE FROM tokens WHERE user_id = ?1", [user_id])?;
            Ok(hashes)
        })
    }

    /// Records a wrong password: after `max` in a row (0: never) the account
    /// locks until `now + lock_secs` and the count starts again. Returns
    /// the time it is locked until (0: not locked).
    pub fn record_failed_login(
        &self,
        user_id: &str,
        max: u32,
        lock_secs: i64,
        now: Timestamp,
    ) -> Result<Timestamp, Error> {
        self.write_once(|tx| {
            let count: i64 = tx
                .query_opt(
                    "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?1 RETURNING failed_logins",
                    [user_id],
                    |r| r.get(0),
                )?
                .unwrap_or(0);
            if max > 0 && count >= i64::from(max) {
                let until = now.plus_secs(lock_secs);
                tx.execute(
                    "UPDATE users SET failed_logins = 0, locked_until = ?2 WHERE id = ?1",
                    params![user_id, until.micros()],
                )?;
                return Ok(until);
            }
            Ok(Timestamp(0))
        })
    }

    /// Records a good password: the count of wrong ones starts again.
    pub fn record_good_login(&self, user_id: &str) -> Result<(), Error> {
        self.write_once(|tx| {
            tx.execute(
                "UPDATE users SET failed_logins = 0 WHERE id = ?1 AND failed_logins != 0",
                [user_id],
            )?;
            Ok(())
        })
    }
}

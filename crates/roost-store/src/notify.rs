//! Notification destinations, the webhook deliveries given up on, and this
//! cloud's SNMP engine (its id and boot count).

use roost_types::Timestamp;

use crate::sql::{Row, params};
use crate::{Error, Store};

/// The sealed column holding a destination's secrets.
pub(crate) const NOTIFY_SECRET: &str = "notify_destinations.secret";

/// The most dead letters kept per destination; older ones are pruned.
pub const MAX_DEAD_LETTERS: u64 = 1_000;

/// A destination as stored. `settings` is the type's JSON without secrets;
/// `secret` is the JSON of its secrets, in clear here (sealed at rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDestination {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub min_severity: String,
    pub include_logs: bool,
    pub settings: String,
    pub secret: Option<String>,
    pub created_at: Timestamp,
}

/// A webhook delivery given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    pub id: String,
    pub destination_id: String,
    pub sequence: i64,
    pub entity: String,
    pub attempts: i64,
    pub last_error: String,
    pub body: String,
    pub created_at: Timestamp,
}

const DEST_COLUMNS: &str =
    "id, name, kind, enabled, min_severity, include_logs, settings, secret, created_at";

fn destination(r: &Row) -> Result<StoredDestination, Error> {
    Ok(StoredDestination {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        enabled: r.get::<i64>(3)? != 0,
        min_severity: r.get(4)?,
        include_logs: r.get::<i64>(5)? != 0,
        settings: r.get(6)?,
        secret: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
    })
}

fn dead_letter(r: &Row) -> Result<StoredDeadLetter, Error> {
    Ok(StoredDeadLetter {
        id: r.get(0)?,
        destination_id: r.get(1)?,
        sequence: r.get(2)?,
        entity: r.get(3)?,
        attempts: r.get(4)?,
        last_error: r.get(5)?,
        body: r.get(6)?,
        created_at: Timestamp(r.get(7)?),
    })
}

impl Store {
    /// Every destination, by name, secrets opened.
    pub fn destinations(&self) -> Result<Vec<StoredDestination>, Error> {
        let rows = self.read(|c| {
            c.query_map(
                &format!("SELECT {DEST_COLUMNS} FROM notify_destinations ORDER BY name"),
                (),
                destination,
            )
        })?;
        rows.into_iter()
            .map(|mut d| {
                d.secret = self
                    .sealer
                    .unseal_opt(NOTIFY_SECRET, &d.id, d.secret.take())?;
                Ok(d)
            })
            .collect()
    }

    /// Adds a destination; false if its name is taken.
    pub fn insert_destination(&self, d: &StoredDestination) -> Result<bool, Error> {
        let secret = self
            .sealer
            .seal_opt(NOTIFY_SECRET, &d.id, d.secret.as_deref())?;
        self.write_once(|tx| {
            let taken = tx.query_row(
                "SELECT COUNT(*) FROM notify_destinations WHERE name = ?1",
                [d.name.as_str()],
                |r| r.get::<i64>(0),
            )? > 0;
            if taken {
                return Ok(false);
            }
            tx.execute(
                &format!(
                    "INSERT INTO notify_destinations ({DEST_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    d.id,
                    d.name,
                    d.kind,
                    i64::from(d.enabled),
                    d.min_severity,
                    i64::from(d.include_logs),
                    d.settings,
                    secret,
                    d.created_at.0
                ],
            )?;
            Ok(true)
        })
    }

    /// Sets what may change of a destination; false if there is none.
    pub fn update_destination(
        &self,
        id: &str,
        enabled: bool,
        min_severity: &str,
        include_logs: bool,
    ) -> Result<bool, Error> {
        self.write_once(|tx| {
            Ok(tx.execute(
                "UPDATE notify_destinations SET enabled = ?2, min_severity = ?3, include_logs = ?4 WHERE id = ?1",
                params![id, i64::from(enabled), min_severity, i64::from(include_logs)],
            )? > 0)
        })
    }

    /// Deletes a destination and its dead letters; false if there was none.
    pub fn delete_destination(&self, id: &str) -> Result<bool, Error> {
        self.write_once(|tx| {
            tx.execute(
                "DELETE FROM notify_dead_letters WHERE destination_id = ?1",
                [id],
            )?;
            Ok(tx.execute("DELETE FROM notify_destinations WHERE id = ?1", [id])? > 0)
        })
    }

    /// Keeps a dead letter, pruning the destination's oldest beyond
    /// [`MAX_DEAD_LETTERS`].
    pub fn insert_dead_letter(&self, l: &StoredDeadLetter) -> Result<(), Error> {
        self.write_once(|tx| {
            tx.execute(
                "INSERT INTO notify_dead_letters (id, destination_id, sequence, entity, attempts, last_error, body, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    l.id,
                    l.destination_id,
                    l.sequence,
                    l.entity,
                    l.attempts,
                    l.last_error,
                    l.body,
                    l.created_at.0
                ],
            )?;
            tx.execute(
                "DELETE FROM notify_dead_letters WHERE destination_id = ?1 AND id NOT IN \
                 (SELECT id FROM notify_dead_letters WHERE destination_id = ?1 \
                  ORDER BY created_at DESC, sequence DESC LIMIT ?2)",
                params![l.destination_id, MAX_DEAD_LETTERS as i64],
            )?;
            Ok(())
        })
    }

    /// A destination's dead letters, oldest first.
    pub fn dead_letters(&self, destination_id: &str) -> Result<Vec<StoredDeadLetter>, Error> {
        self.read(|c| {
            c.query_map(
                "SELECT id, destination_id, sequence, entity, attempts, last_error, body, created_at \
                 FROM notify_dead_letters WHERE destination_id = ?1 ORDER BY created_at, sequence",
                [destination_id],
                dead_letter,
            )
        })
    }

    /// How many dead letters each destination has: (destination id, count).
    pub fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, Error> {
        self.read(|c| {
            c.query_map(
                "SELECT destination_id, COUNT(*) FROM notify_dead_letters GROUP BY destination_id",
                (),
                |r| Ok((r.get(0)?, u64::try_from(r.get::<i64>(1)?).unwrap_or(0))),
            )
        })
    }

    /// Removes a dead letter (discarded, or queued again); false if there
    /// was none.
    pub fn delete_dead_letter(&self, destination_id: &str, id: &str) -> Result<bool, Error> {
        self.write_once(|tx| {
            Ok(tx.execute(
                "DELETE FROM notify_dead_letters WHERE destination_id = ?1 AND id = ?2",
                params![destination_id, id],
            )? > 0)
        })
    }

    /// This cloud's SNMP engine for this start: the stored engine id (or
    /// `fresh_id`, stored, on the first start) and the boot count, raised
    /// by one.
    pub fn start_snmp_engine(&self, fresh_id: &str) -> Result<(String, i64), Error> {
        self.write_once(|tx| {
            let row: Option<(String, i64)> = tx.query_opt(
                "SELECT engine_id, boots FROM notify_engine WHERE id = 1",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            match row {
                Some((engine_id, boots)) => {
                    let boots = (boots + 1).min(i64::from(i32::MAX));
                    tx.execute("UPDATE notify_engine SET boots = ?1 WHERE id = 1", [boots])?;
                    Ok((engine_id, boots))
                }
                None => {
                    tx.execute(
                        "INSERT INTO notify_engine (id, engine_id, boots) VALUES (1, ?1, 1)",
                        [fresh_id],
                    )?;
                    Ok((fresh_id.to_string(), 1))
                }
            }
        })
    }
}

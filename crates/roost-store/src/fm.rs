//! SQL for fault management: alarms, the event log, suppression.

use std::collections::BTreeSet;

use crate::sql::{Db, Row, params};
use roost_fm::{Alarm, AlarmChange, Event, EventState, Filter, Outcome, matches_all};
use roost_types::{Severity, Timestamp};

use crate::{Error, Store};

pub(crate) fn persist(conn: &mut Db<'_>, outcome: &Outcome) -> Result<(), Error> {
    for change in &outcome.changes {
        match change {
            AlarmChange::Upsert { after: a, .. } => {
                conn.execute(
                    "INSERT INTO alarms (uuid, alarm_id, entity_instance_id, entity_type_id, severity,
                        reason_text, alarm_type, probable_cause, proposed_repair_action,
                        service_affecting, suppression, timestamp, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                     ON CONFLICT (uuid) DO UPDATE SET severity = excluded.severity,
                        entity_type_id = excluded.entity_type_id,
                        reason_text = excluded.reason_text, alarm_type = excluded.alarm_type,
                        probable_cause = excluded.probable_cause,
                        proposed_repair_action = excluded.proposed_repair_action,
                        service_affecting = excluded.service_affecting,
                        suppression = excluded.suppression, timestamp = excluded.timestamp,
                        updated_at = excluded.updated_at",
                    params![
                    a.uuid,
                    a.alarm_id,
                    a.entity_instance_id,
                    a.entity_type_id,
                    a.severity.as_str(),
                    a.reason_text,
                    a.alarm_type,
                    a.probable_cause,
                    a.proposed_repair_action,
                    a.service_affecting,
                    a.suppression,
                    a.timestamp.micros(),
                    a.created_at.micros(),
                    a.updated_at.map(|t| t.micros()),
                    ],
                )?;
            }
            AlarmChange::Remove(a) => {
                conn.execute("DELETE FROM alarms WHERE uuid = ?1", [&a.uuid])?;
            }
            AlarmChange::Suppression {
                alarm_id, after, ..
            } => {
                if *after {
                    conn.execute(
                        "INSERT INTO suppressed_alarm_ids (alarm_id) VALUES (?1)
                         ON CONFLICT (alarm_id) DO NOTHING",
                        [alarm_id],
                    )?;
                } else {
                    conn.execute(
                        "DELETE FROM suppressed_alarm_ids WHERE alarm_id = ?1",
                        [alarm_id],
                    )?;
                }
            }
        }
    }
    for e in &outcome.events {
        conn.execute(
            "INSERT INTO event_log (uuid, event_log_id, state, entity_instance_id, entity_type_id,
                severity, reason_text, event_log_type, probable_cause, proposed_repair_action,
                service_affecting, suppression, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                e.uuid,
                e.event_log_id,
                e.state.as_str(),
                e.entity_instance_id,
                e.entity_type_id,
                e.severity.as_str(),
                e.reason_text,
                e.event_log_type,
                e.probable_cause,
                e.proposed_repair_action,
                e.service_affecting,
                e.suppression,
                e.timestamp.micros(),
            ],
        )?;
    }
    Ok(())
}

fn severity(row: &Row, idx: usize) -> Result<Severity, Error> {
    let s: String = row.get(idx)?;
    s.parse::<Severity>()
        .map_err(|e| Error::Corrupt(format!("column {idx}: {e}")))
}

fn alarm_from_row(r: &Row) -> Result<Alarm, Error> {
    Ok(Alarm {
        uuid: r.get(0)?,
        alarm_id: r.get(1)?,
        entity_instance_id: r.get(2)?,
        entity_type_id: r.get(3)?,
        severity: severity(r, 4)?,
        reason_text: r.get(5)?,
        alarm_type: r.get(6)?,
        probable_cause: r.get(7)?,
        proposed_repair_action: r.get(8)?,
        service_affecting: r.get(9)?,
        suppression: r.get(10)?,
        timestamp: Timestamp(r.get(11)?),
        created_at: Timestamp(r.get(12)?),
        updated_at: r.get::<Option<i64>>(13)?.map(Timestamp),
    })
}

const EVENT_COLUMNS: &str =
    "uuid, event_log_id, state, entity_instance_id, entity_type_id, severity,
    reason_text, event_log_type, probable_cause, proposed_repair_action, service_affecting,
    suppression, timestamp, seq";

fn event_from_row(r: &Row) -> Result<(Event, i64), Error> {
    let state: String = r.get(2)?;
    let state = EventState::parse(&state)
        .ok_or_else(|| Error::Corrupt(format!("unknown event state {state:?}")))?;
    Ok((
        Event {
            uuid: r.get(0)?,
            event_log_id: r.get(1)?,
            state,
            entity_instance_id: r.get(3)?,
            entity_type_id: r.get(4)?,
            severity: severity(r, 5)?,
            reason_text: r.get(6)?,
            event_log_type: r.get(7)?,
            probable_cause: r.get(8)?,
            proposed_repair_action: r.get(9)?,
            service_affecting: r.get(10)?,
            suppression: r.get(11)?,
            timestamp: Timestamp(r.get(12)?),
        },
        r.get(13)?,
    ))
}

/// Order of an event log listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventSort {
    /// Newest first (StarlingX's order).
    #[default]
    NewestFirst,
    OldestFirst,
}

/// An event log query.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub filters: Vec<Filter>,
    /// Only records at or after this instant.
    pub start: Option<Timestamp>,
    /// Only records at or before this instant.
    pub end: Option<Timestamp>,
    /// Only alarm records (set and clear).
    pub alarms_only: bool,
    /// Only log records.
    pub logs_only: bool,
    pub include_suppress: bool,
    pub sort: EventSort,
    /// Continue after the record with this uuid.
    pub marker: Option<String>,
    pub limit: Option<usize>,
}

impl Store {
    /// Every stored alarm and the suppressed alarm ids, to rebuild the
    /// in-memory table at start.
    pub fn load_fm(&self) -> Result<(Vec<Alarm>, Vec<String>), Error> {
        self.read(|c| {
            let alarms = c.query_map(
                "SELECT uuid, alarm_id, entity_instance_id, entity_type_id, severity, reason_text,
                    alarm_type, probable_cause, proposed_repair_action, service_affecting,
                    suppression, timestamp, created_at, updated_at FROM alarms",
                (),
                alarm_from_row,
            )?;
            let ids = c.query_map("SELECT alarm_id FROM suppressed_alarm_ids", (), |r| {
                r.get::<String>(0)
            })?;
            Ok((alarms, ids))
        })
    }

    /// One event log record.
    pub fn event(&self, uuid: &str) -> Result<Option<Event>, Error> {
        self.read(|c| {
            Ok(c.query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM event_log WHERE uuid = ?1"),
                [uuid],
                event_from_row,
            )?
            .map(|(e, _)| e))
        })
    }

    /// Lists event log records. Returns the page and whether more follow.
    /// `suppressed` holds the suppressed alarm ids (hidden unless the query
    /// includes them).
    pub fn events(
        &self,
        q: &EventQuery,
        suppressed: &BTreeSet<String>,
    ) -> Result<(Vec<Event>, bool), Error> {
        self.read(|c| {
            let (cmp, order) = match q.sort {
                EventSort::NewestFirst => ("<", "DESC"),
                EventSort::OldestFirst => (">", "ASC"),
            };
            let marker = match &q.marker {
                None => None,
                Some(m) => {
                    let found = c.query_opt(
                        "SELECT timestamp, seq FROM event_log WHERE uuid = ?1",
                        [m],
                        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
                    )?;
                    match found {
                        Some(f) => Some(f),
                        None => {
                            return Err(Error::Invalid(format!(
                                "marker {m} is not a record of the event log"
                            )));
                        }
                    }
                }
            };
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM event_log
                 WHERE timestamp >= ?1 AND timestamp <= ?2
                   AND (CAST(?3 AS BIGINT) IS NULL OR timestamp {cmp} ?3 OR (timestamp = ?3 AND seq {cmp} ?4))
                 ORDER BY timestamp {order}, seq {order}"
            );
            let limit = q.limit.unwrap_or(usize::MAX);
            let mut out = Vec::new();
            let mut more = false;
            c.query_each(
                &sql,
                params![
                    q.start.map(|t| t.micros()).unwrap_or(i64::MIN),
                    q.end.map(|t| t.micros()).unwrap_or(i64::MAX),
                    marker.map(|m| m.0),
                    marker.map(|m| m.1).unwrap_or(0),
                ],
                |row| {
                    let (e, _) = event_from_row(row)?;
                    if (q.alarms_only && !e.state.is_alarm())
                        || (q.logs_only && e.state.is_alarm())
                        || (!q.include_suppress && suppressed.contains(&e.event_log_id))
                        || !matches_all(&q.filters, &e)
                    {
                        return Ok(true);
                    }
                    if out.len() == limit {
                        more = true;
                        return Ok(false);
                    }
                    out.push(e);
                    Ok(true)
                },
            )?;
            Ok((out, more))
        })
    }
}

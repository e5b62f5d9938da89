//! The active alarm table and the rules that change it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use roost_types::{Severity, Timestamp, entity_is_under, entity_type_of};

use crate::Error;
use crate::catalogue::Catalogue;
use crate::model::{Alarm, AlarmInput, Event, EventInput, EventState};
use crate::query::{Filter, SortDir, matches_all};

/// Longest alarm or event id accepted.
pub const MAX_ID_LEN: usize = 32;
/// Longest entity instance id accepted.
pub const MAX_ENTITY_LEN: usize = 255;
/// Longest free text (reason, repair action) accepted.
pub const MAX_TEXT_LEN: usize = 4096;

/// A change request to fault management.
#[derive(Debug, Clone, PartialEq)]
pub enum FmCommand {
    /// Raise an alarm, or update it if (alarm_id, entity_instance_id) is active.
    Set(AlarmInput),
    /// Clear the alarm with this uuid (a manual clear).
    ClearUuid(String),
    /// Clear the alarm identified by the pair. Clearing an alarm that is not
    /// active succeeds and clears nothing, so raisers may clear blindly.
    ClearPair {
        alarm_id: String,
        entity_instance_id: String,
    },
    /// Clear every alarm whose entity is `entity_prefix` or lies beneath it,
    /// optionally only those with one alarm id.
    ClearPrefix {
        entity_prefix: String,
        alarm_id: Option<String>,
    },
    /// Write a customer log or message to the event log only.
    Log(EventInput),
    /// Suppress or unsuppress an alarm id.
    Suppress { alarm_id: String, suppressed: bool },
}

/// One change to the alarm table, with what it replaced, so that it can be
/// persisted and, if persisting fails, undone.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmChange {
    Upsert {
        before: Option<Box<Alarm>>,
        after: Alarm,
    },
    Remove(Alarm),
    Suppression {
        alarm_id: String,
        before: bool,
        after: bool,
    },
}

/// What a command answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The uuid of the alarm set, or of the event logged.
    Uuid(String),
    /// The uuids of the alarms cleared (possibly none).
    Cleared(Vec<String>),
    /// The suppression status now in force.
    Suppression { alarm_id: String, suppressed: bool },
}

/// Everything a command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub changes: Vec<AlarmChange>,
    pub events: Vec<Event>,
    pub reply: Reply,
}

/// Counts of active alarms by severity, and the overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub critical: usize,
    pub major: usize,
    pub minor: usize,
    pub warnings: usize,
}

impl Summary {
    /// `critical` if any critical alarm, else `degraded` if any major or
    /// minor, else `OK`. Warnings never degrade.
    pub fn status(&self) -> &'static str {
        if self.critical > 0 {
            "critical"
        } else if self.major + self.minor > 0 {
            "degraded"
        } else {
            "OK"
        }
    }

    pub fn total(&self) -> usize {
        self.critical + self.major + self.minor + self.warnings
    }
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<'a> {
    pub items: Vec<&'a Alarm>,
    /// True when more items follow the last one returned.
    pub more: bool,
}

/// Options of an alarm listing.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub filters: Vec<Filter>,
    pub include_suppress: bool,
    /// `severity` (the default order: severity, then entity), `timestamp`,
    /// `alarm_id`, `entity_instance_id`, `uuid`, `id` or `created_at`.
    pub sort_key: Option<String>,
    pub sort_dir: SortDir,
    /// Return the items after the alarm with this uuid.
    pub marker: Option<String>,
    pub limit: Option<usize>,
}

/// Sort keys an alarm listing accepts.
pub const ALARM_SORT_KEYS: &[&str] = &[
    "severity",
    "timestamp",
    "alarm_id",
    "entity_instance_id",
    "uuid",
    "id",
    "created_at",
];

/// The active alarms and suppression settings of one cloud.
#[derive(Debug, Clone, Default)]
pub struct FmState {
    alarms: HashMap<String, Alarm>,
    /// (entity_instance_id, alarm_id) -> uuid, ordered so that an entity
    /// prefix is a contiguous range.
    by_key: BTreeMap<(String, String), String>,
    suppressed: BTreeSet<String>,
}

fn check_id(what: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::Invalid(format!("{what} must not be empty")));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::Invalid(format!(
            "{what} is longer than {MAX_ID_LEN} characters"
        )));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!(
            "{what} must not contain whitespace"
        )));
    }
    Ok(())
}

fn check_entity(entity: &str) -> Result<(), Error> {
    if entity.is_empty() {
        return Err(Error::Invalid(
            "entity_instance_id must not be empty".into(),
        ));
    }
    if entity.len() > MAX_ENTITY_LEN {
        return Err(Error::Invalid(format!(
            "entity_instance_id is longer than {MAX_ENTITY_LEN} characters"
        )));
    }
    if entity.chars().any(|c| c.is_control()) {
        return Err(Error::Invalid(
            "entity_instance_id must not contain control characters".into(),
        ));
    }
    Ok(())
}

fn check_text(what: &str, text: &Option<String>) -> Result<(), Error> {
    match text {
        Some(t) if t.len() > MAX_TEXT_LEN => Err(Error::Invalid(format!(
            "{what} is longer than {MAX_TEXT_LEN} characters"
        ))),
        _ => Ok(()),
    }
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn default_entity_type(entity: &str, given: Option<String>) -> String {
    match given {
        Some(t) if !t.is_empty() => t,
        _ => entity_type_of(entity),
    }
}

impl FmState {
    /// An empty table with nothing suppressed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the state from stored alarms and suppressed ids.
    pub fn from_parts(
        alarms: impl IntoIterator<Item = Alarm>,
        suppressed: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut s = Self::new();
        for a in alarms {
            s.insert(a);
        }
        s.suppressed = suppressed.into_iter().collect();
        s
    }

    fn insert(&mut self, a: Alarm) {
        self.by_key.insert(
            (a.entity_instance_id.clone(), a.alarm_id.clone()),
            a.uuid.clone(),
        );
        self.alarms.insert(a.uuid.clone(), a);
    }

    fn remove(&mut self, uuid: &str) -> Option<Alarm> {
        let a = self.alarms.remove(uuid)?;
        self.by_key
            .remove(&(a.entity_instance_id.clone(), a.alarm_id.clone()));
        Some(a)
    }

    /// Number of active alarms (suppressed ones included).
    pub fn len(&self) -> usize {
        self.alarms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
    }

    /// The alarm with this uuid.
    pub fn get(&self, uuid: &str) -> Option<&Alarm> {
        self.alarms.get(uuid)
    }

    /// The active alarm for the pair.
    pub fn get_pair(&self, alarm_id: &str, entity_instance_id: &str) -> Option<&Alarm> {
        let uuid = self
            .by_key
            .get(&(entity_instance_id.to_string(), alarm_id.to_string()))?;
        self.alarms.get(uuid)
    }

    /// Whether alarms with this id are suppressed.
    pub fn is_suppressed(&self, alarm_id: &str) -> bool {
        self.suppressed.contains(alarm_id)
    }

    /// The suppressed alarm ids.
    pub fn suppressed_ids(&self) -> &BTreeSet<String> {
        &self.suppressed
    }

    /// Applies a command. On success the state has changed and the outcome
    /// says how; on error nothing changed.
    pub fn apply(
        &mut self,
        cmd: FmCommand,
        now: Timestamp,
        catalogue: &Catalogue,
    ) -> Result<Outcome, Error> {
        match cmd {
            FmCommand::Set(input) => self.set(input, now, catalogue),
            FmCommand::ClearUuid(uuid) => {
                let a = self
                    .alarms
                    .get(&uuid)
                    .cloned()
                    .ok_or(Error::AlarmNotFound(uuid))?;
                Ok(self.clear(vec![a], now))
            }
            FmCommand::ClearPair {
                alarm_id,
                entity_instance_id,
            } => {
                check_id("alarm_id", &alarm_id)?;
                check_entity(&entity_instance_id)?;
                let found: Vec<Alarm> = self
                    .get_pair(&alarm_id, &entity_instance_id)
                    .cloned()
                    .into_iter()
                    .collect();
                Ok(self.clear(found, now))
            }
            FmCommand::ClearPrefix {
                entity_prefix,
                alarm_id,
            } => {
                check_entity(&entity_prefix)?;
                if let Some(id) = &alarm_id {
                    check_id("alarm_id", id)?;
                }
                let found: Vec<Alarm> = self
                    .by_key
                    .range((entity_prefix.clone(), String::new())..)
                    .take_while(|((e, _), _)| e.starts_with(entity_prefix.as_str()))
                    .filter(|((e, id), _)| {
                        entity_is_under(e, &entity_prefix)
                            && alarm_id.as_deref().is_none_or(|want| want == id)
                    })
                    .filter_map(|(_, uuid)| self.alarms.get(uuid).cloned())
                    .collect();
                Ok(self.clear(found, now))
            }
            FmCommand::Log(input) => self.log(input, now, catalogue),
            FmCommand::Suppress {
                alarm_id,
                suppressed,
            } => {
                check_id("alarm_id", &alarm_id)?;
                match catalogue.get(&alarm_id) {
                    Some(e) if e.kind == crate::EventKind::Alarm => {}
                    _ => return Err(Error::UnknownAlarmId(alarm_id)),
                }
                if suppressed && !catalogue.suppressible(&alarm_id) {
                    return Err(Error::NotSuppressible(alarm_id));
                }
                let before = self.suppressed.contains(&alarm_id);
                if suppressed {
                    self.suppressed.insert(alarm_id.clone());
                } else {
                    self.suppressed.remove(&alarm_id);
                }
                Ok(Outcome {
                    changes: vec![AlarmChange::Suppression {
                        alarm_id: alarm_id.clone(),
                        before,
                        after: suppressed,
                    }],
                    events: vec![],
                    reply: Reply::Suppression {
                        alarm_id,
                        suppressed,
                    },
                })
            }
        }
    }

    fn set(
        &mut self,
        input: AlarmInput,
        now: Timestamp,
        catalogue: &Catalogue,
    ) -> Result<Outcome, Error> {
        check_id("alarm_id", &input.alarm_id)?;
        check_entity(&input.entity_instance_id)?;
        check_text("reason_text", &input.reason_text)?;
        check_text("proposed_repair_action", &input.proposed_repair_action)?;
        for (what, v) in [
            ("alarm_type", &input.alarm_type),
            ("probable_cause", &input.probable_cause),
            ("entity_type_id", &input.entity_type_id),
        ] {
            if v.as_ref().is_some_and(|s| s.len() > MAX_ENTITY_LEN) {
                return Err(Error::Invalid(format!(
                    "{what} is longer than {MAX_ENTITY_LEN} characters"
                )));
            }
        }
        if input.severity == Severity::NotApplicable {
            return Err(Error::Invalid(
                "an alarm's severity must be critical, major, minor or warning".into(),
            ));
        }
        let entry = catalogue.get(&input.alarm_id);
        let before = self
            .get_pair(&input.alarm_id, &input.entity_instance_id)
            .cloned();
        let pick = |given: Option<String>, from_entry: Option<&str>, fallback: &str| -> String {
            match given {
                Some(g) if !g.is_empty() => g,
                _ => match from_entry {
                    Some(e) if !e.is_empty() => e.to_string(),
                    _ => fallback.to_string(),
                },
            }
        };
        let (uuid, created_at) = match &before {
            Some(b) => (b.uuid.clone(), b.created_at),
            None => (new_uuid(), now),
        };
        let alarm = Alarm {
            uuid: uuid.clone(),
            entity_type_id: default_entity_type(&input.entity_instance_id, input.entity_type_id),
            reason_text: pick(input.reason_text, entry.map(|e| e.description.as_str()), ""),
            alarm_type: pick(
                input.alarm_type,
                entry.map(|e| e.alarm_type.as_str()),
                "other",
            ),
            probable_cause: pick(
                input.probable_cause,
                entry.map(|e| e.probable_cause.as_str()),
                "unspecified-reason",
            ),
            proposed_repair_action: pick(
                input.proposed_repair_action,
                entry.map(|e| e.proposed_repair_action.as_str()),
                "",
            ),
            service_affecting: input
                .service_affecting
                .unwrap_or_else(|| entry.is_some_and(|e| e.service_affecting)),
            suppression: input
                .suppression
                .unwrap_or_else(|| entry.is_some_and(|e| e.suppressible)),
            timestamp: input.timestamp.unwrap_or(now),
            created_at,
            updated_at: before.as_ref().map(|_| now),
            alarm_id: input.alarm_id,
            entity_instance_id: input.entity_instance_id,
            severity: input.severity,
        };
        let event = Event {
            // The first "set" record shares the alarm's uuid; updates get their own.
            uuid: if before.is_some() {
                new_uuid()
            } else {
                uuid.clone()
            },
            event_log_id: alarm.alarm_id.clone(),
            state: EventState::Set,
            entity_instance_id: alarm.entity_instance_id.clone(),
            entity_type_id: alarm.entity_type_id.clone(),
            severity: alarm.severity,
            reason_text: alarm.reason_text.clone(),
            event_log_type: alarm.alarm_type.clone(),
            probable_cause: alarm.probable_cause.clone(),
            proposed_repair_action: alarm.proposed_repair_action.clone(),
            service_affecting: alarm.service_affecting,
            suppression: alarm.suppression,
            timestamp: alarm.timestamp,
        };
        self.insert(alarm.clone());
        Ok(Outcome {
            changes: vec![AlarmChange::Upsert {
                before: before.map(Box::new),
                after: alarm,
            }],
            events: vec![event],
            reply: Reply::Uuid(uuid),
        })
    }

    fn clear(&mut self, alarms: Vec<Alarm>, now: Timestamp) -> Outcome {
        let mut changes = Vec::with_capacity(alarms.len());
        let mut events = Vec::with_capacity(alarms.len());
        let mut uuids = Vec::with_capacity(alarms.len());
        for a in alarms {
            self.remove(&a.uuid);
            events.push(Event {
                uuid: new_uuid(),
                event_log_id: a.alarm_id.clone(),
                state: EventState::Clear,
                entity_instance_id: a.entity_instance_id.clone(),
                entity_type_id: a.entity_type_id.clone(),
                severity: a.severity,
                reason_text: a.reason_text.clone(),
                event_log_type: a.alarm_type.clone(),
                probable_cause: a.probable_cause.clone(),
                proposed_repair_action: a.proposed_repair_action.clone(),
                service_affecting: a.service_affecting,
                suppression: a.suppression,
                timestamp: now,
            });
            uuids.push(a.uuid.clone());
            changes.push(AlarmChange::Remove(a));
        }
        Outcome {
            changes,
            events,
            reply: Reply::Cleared(uuids),
        }
    }

    fn log(
        &mut self,
        input: EventInput,
        now: Timestamp,
        catalogue: &Catalogue,
    ) -> Result<Outcome, Error> {
        check_id("event_log_id", &input.event_log_id)?;
        check_entity(&input.entity_instance_id)?;
        check_text("reason_text", &input.reason_text)?;
        check_text("proposed_repair_action", &input.proposed_repair_action)?;
        if input.state.is_alarm() {
            return Err(Error::Invalid("a log's state must be log or msg".into()));
        }
        let entry = catalogue.get(&input.event_log_id);
        let or_entry = |given: Option<String>, e: Option<&str>, fallback: &str| match given {
            Some(g) if !g.is_empty() => g,
            _ => e.filter(|s| !s.is_empty()).unwrap_or(fallback).to_string(),
        };
        let uuid = new_uuid();
        let event = Event {
            uuid: uuid.clone(),
            entity_type_id: default_entity_type(&input.entity_instance_id, input.entity_type_id),
            reason_text: or_entry(input.reason_text, entry.map(|e| e.description.as_str()), ""),
            event_log_type: or_entry(
                input.event_log_type,
                entry.map(|e| e.alarm_type.as_str()),
                "other",
            ),
            probable_cause: or_entry(
                input.probable_cause,
                entry.map(|e| e.probable_cause.as_str()),
                "unspecified-reason",
            ),
            proposed_repair_action: or_entry(
                input.proposed_repair_action,
                entry.map(|e| e.proposed_repair_action.as_str()),
                "",
            ),
            service_affecting: input
                .service_affecting
                .unwrap_or_else(|| entry.is_some_and(|e| e.service_affecting)),
            suppression: input.suppression.unwrap_or(false),
            timestamp: input.timestamp.unwrap_or(now),
            event_log_id: input.event_log_id,
            state: input.state,
            entity_instance_id: input.entity_instance_id,
            severity: input.severity,
        };
        Ok(Outcome {
            changes: vec![],
            events: vec![event],
            reply: Reply::Uuid(uuid),
        })
    }

    /// Reverts changes returned by [`FmState::apply`], newest first, when
    /// they could not be persisted.
    pub fn undo(&mut self, changes: &[AlarmChange]) {
        for c in changes.iter().rev() {
            match c {
                AlarmChange::Upsert { before, after } => {
                    self.remove(&after.uuid);
                    if let Some(b) = before {
                        self.insert((**b).clone());
                    }
                }
                AlarmChange::Remove(a) => self.insert(a.clone()),
                AlarmChange::Suppression {
                    alarm_id, before, ..
                } => {
                    if *before {
                        self.suppressed.insert(alarm_id.clone());
                    } else {
                        self.suppressed.remove(alarm_id);
                    }
                }
            }
        }
    }

    /// Counts of alarms by severity; suppressed ids are left out unless
    /// `include_suppress`.
    pub fn summary(&self, include_suppress: bool) -> Summary {
        let mut s = Summary::default();
        for a in self.alarms.values() {
            if !include_suppress && self.suppressed.contains(&a.alarm_id) {
                continue;
            }
            match a.severity {
                Severity::Critical => s.critical += 1,
                Severity::Major => s.major += 1,
                Severity::Minor => s.minor += 1,
                Severity::Warning => s.warnings += 1,
                Severity::NotApplicable => {}
            }
        }
        s
    }

    /// Lists alarms: filtered, ordered (default: severity, then entity, then
    /// alarm id), and paged after `marker`.
    pub fn list(&self, opts: &ListOptions) -> Result<Page<'_>, Error> {
        let key = opts.sort_key.as_deref().unwrap_or("severity");
        if !ALARM_SORT_KEYS.contains(&key) {
            return Err(Error::Invalid(format!(
                "invalid sort_key {key:?}; use one of {}",
                ALARM_SORT_KEYS.join(", ")
            )));
        }
        let mut items: Vec<&Alarm> = self
            .alarms
            .values()
            .filter(|a| opts.include_suppress || !self.suppressed.contains(&a.alarm_id))
            .filter(|a| matches_all(&opts.filters, *a))
            .collect();
        let default_order = |a: &Alarm, b: &Alarm| -> Ordering {
            a.severity
                .rank()
                .cmp(&b.severity.rank())
                .then_with(|| a.entity_instance_id.cmp(&b.entity_instance_id))
                .then_with(|| a.alarm_id.cmp(&b.alarm_id))
        };
        items.sort_unstable_by(|a, b| {
            let primary = match key {
                "timestamp" => a.timestamp.cmp(&b.timestamp),
                "alarm_id" => a.alarm_id.cmp(&b.alarm_id),
                "entity_instance_id" => a.entity_instance_id.cmp(&b.entity_instance_id),
                "uuid" => a.uuid.cmp(&b.uuid),
                "id" | "created_at" => a.created_at.cmp(&b.created_at),
                _ => Ordering::Equal,
            };
            let ord = primary
                .then_with(|| default_order(a, b))
                .then_with(|| a.uuid.cmp(&b.uuid));
            match opts.sort_dir {
                SortDir::Asc => ord,
                SortDir::Desc => ord.reverse(),
            }
        });
        let start = match &opts.marker {
            None => 0,
            Some(m) => match items.iter().position(|a| &a.uuid == m) {
                Some(i) => i + 1,
                None => {
                    return Err(Error::Invalid(format!(
                        "marker {m} is not an alarm in this listing"
                    )));
                }
            },
        };
        let end = match opts.limit {
            Some(l) => start.saturating_add(l).min(items.len()),
            None => items.len(),
        };
        let more = end < items.len();
        let items = items[start..end].to_vec();
        Ok(Page { items, more })
    }

    /// Every active alarm, in no particular order.
    pub fn alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values()
    }
}

#[cfg(test)]
mod tests;

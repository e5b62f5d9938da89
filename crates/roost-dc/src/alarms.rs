//! Alarm aggregation: the numbered stream of alarm changes a subcloud sends
//! to its System Controller, both ends of it, and the summary StarlingX's
//! `/v1.0/alarms` shows.
//!
//! The subcloud numbers its alarm changes 1, 2, 3... in an [`AlarmLog`] and
//! sends what the System Controller has not acknowledged. The System
//! Controller's [`AlarmStream`] applies them strictly in order: a change it
//! has already acknowledged is skipped (so replaying after a partition
//! counts nothing twice) and a gap is refused (the subcloud resends from the
//! acknowledged number). When the log no longer holds what the System
//! Controller needs (pruned, or the subcloud restarted), the subcloud sends
//! a snapshot of its whole table instead.

use std::collections::BTreeMap;

use roost_types::{Severity, Timestamp};

use crate::Error;
use crate::words::CloudStatus;

/// One change of a subcloud's alarms: raised or updated (with a severity)
/// or cleared (without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    /// Position in the subcloud's stream, from 1.
    pub seq: u64,
    pub alarm_id: String,
    pub entity_instance_id: String,
    /// `None` clears the alarm.
    pub severity: Option<Severity>,
    pub reason_text: String,
    pub timestamp: Timestamp,
}

/// An active alarm of a subcloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveAlarm {
    pub alarm_id: String,
    pub entity_instance_id: String,
    pub severity: Severity,
    pub reason_text: String,
    pub timestamp: Timestamp,
}

/// Counts of active alarms by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlarmCounts {
    pub critical: u32,
    pub major: u32,
    pub minor: u32,
    pub warnings: u32,
}

impl AlarmCounts {
    /// StarlingX's rule: `critical` with any critical alarm, else `degraded`
    /// with any major or minor one, else `OK`. Warnings never degrade.
    pub fn cloud_status(&self) -> CloudStatus {
        if self.critical > 0 {
            CloudStatus::Critical
        } else if self.major + self.minor > 0 {
            CloudStatus::Degraded
        } else {
            CloudStatus::Ok
        }
    }

    pub fn total(&self) -> u32 {
        self.critical + self.major + self.minor + self.warnings
    }
}

/// One row of StarlingX's DC alarm summary. The counts are -1 and the status
/// `disabled` while the subcloud is offline (the client prints `-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmSummary {
    pub critical_alarms: i64,
    pub major_alarms: i64,
    pub minor_alarms: i64,
    pub warnings: i64,
    pub cloud_status: CloudStatus,
}

impl AlarmSummary {
    /// The row of an unreachable subcloud.
    pub const DISABLED: AlarmSummary = AlarmSummary {
        critical_alarms: -1,
        major_alarms: -1,
        minor_alarms: -1,
        warnings: -1,
        cloud_status: CloudStatus::Disabled,
    };

    /// The row of a reachable subcloud with these counts.
    pub fn from_counts(c: AlarmCounts) -> AlarmSummary {
        AlarmSummary {
            critical_alarms: i64::from(c.critical),
            major_alarms: i64::from(c.major),
            minor_alarms: i64::from(c.minor),
            warnings: i64::from(c.warnings),
            cloud_status: c.cloud_status(),
        }
    }
}

fn bucket(s: Severity) -> Option<usize> {
    match s {
        Severity::Critical => Some(0),
        Severity::Major => Some(1),
        Severity::Minor => Some(2),
        Severity::Warning => Some(3),
        Severity::NotApplicable => None,
    }
}

/// A table of active alarms keyed by (alarm id, entity instance id), with
/// counts kept up to date on every change so that reading them is O(1).
/// An alarm whose severity is `not-applicable` is kept but not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmTable {
    alarms: BTreeMap<(String, String), ActiveAlarm>,
    counts: [u32; 4],
}

impl AlarmTable {
    pub fn new() -> AlarmTable {
        AlarmTable::default()
    }

    fn count(&mut self, s: Severity, up: bool) {
        if let Some(i) = bucket(s) {
            if up {
                self.counts[i] += 1;
            } else {
                self.counts[i] -= 1;
            }
        }
    }

    fn insert(&mut self, a: ActiveAlarm) {
        self.count(a.severity, true);
        let key = (a.alarm_id.clone(), a.entity_instance_id.clone());
        if let Some(old) = self.alarms.insert(key, a) {
            self.count(old.severity, false);
        }
    }

    /// Applies one change: raise or update with a severity, clear without.
    /// Clearing an alarm that is not active does nothing.
    pub fn apply(&mut self, c: &AlarmChange) {
        match c.severity {
            Some(severity) => self.insert(ActiveAlarm {
                alarm_id: c.alarm_id.clone(),
                entity_instance_id: c.entity_instance_id.clone(),
                severity,
                reason_text: c.reason_text.clone(),
                timestamp: c.timestamp,
            }),
            None => {
                let key = (c.alarm_id.clone(), c.entity_instance_id.clone());
                if let Some(old) = self.alarms.remove(&key) {
                    self.count(old.severity, false);
                }
            }
        }
    }

    /// Replaces the whole table (when an alarm appears twice, the later wins).
    pub fn replace(&mut self, alarms: &[ActiveAlarm]) {
        self.alarms.clear();
        self.counts = [0; 4];
        for a in alarms {
            self.insert(a.clone());
        }
    }

    /// Counts by severity, O(1).
    pub fn counts(&self) -> AlarmCounts {
        AlarmCounts {
            critical: self.counts[0],
            major: self.counts[1],
            minor: self.counts[2],
            warnings: self.counts[3],
        }
    }

    pub fn get(&self, alarm_id: &str, entity_instance_id: &str) -> Option<&ActiveAlarm> {
        self.alarms
            .get(&(alarm_id.to_string(), entity_instance_id.to_string()))
    }

    /// Active alarms ordered by alarm id, then entity.
    pub fn iter(&self) -> impl Iterator<Item = &ActiveAlarm> + '_ {
        self.alarms.values()
    }

    pub fn to_vec(&self) -> Vec<ActiveAlarm> {
        self.alarms.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.alarms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
    }
}

/// The System Controller's end of one subcloud's alarm stream: the
/// subcloud's active alarms and the last change number applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmStream {
    table: AlarmTable,
    acked: u64,
}

impl AlarmStream {
    pub fn new() -> AlarmStream {
        AlarmStream::default()
    }

    /// The last change applied: what to acknowledge, and where the subcloud
    /// resumes after a reconnection.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    pub fn table(&self) -> &AlarmTable {
        &self.table
    }

    /// Applies a batch in order. Changes at or below [`acked`](Self::acked)
    /// are duplicates and skipped; a gap stops the batch there
    /// ([`Error::Gap`], the changes before it stay applied); a batch
    /// not in strictly increasing order is refused whole. Returns the new
    /// acknowledged number.
    pub fn receive(&mut self, changes: &[AlarmChange]) -> Result<u64, Error> {
        if let Some(w) = changes.windows(2).find(|w| w[1].seq <= w[0].seq) {
            return Err(Error::OutOfOrder {
                after: w[0].seq,
                got: w[1].seq,
            });
        }
        for c in changes {
            if c.seq <= self.acked {
                continue;
            }
            if c.seq != self.acked + 1 {
                return Err(Error::Gap {
                    expected: self.acked + 1,
                    got: c.seq,
                });
            }
            self.table.apply(c);
            self.acked = c.seq;
        }
        Ok(self.acked)
    }

    /// Replaces the table with a full snapshot taken at change `seq`, and
    /// acknowledges `seq`. The snapshot is authoritative even when `seq` is
    /// lower than what was acknowledged: the subcloud restarted its numbering.
    pub fn snapshot(&mut self, seq: u64, alarms: &[ActiveAlarm]) -> u64 {
        self.table.replace(alarms);
        self.acked = seq;
        self.acked
    }

    /// Forgets everything (a subcloud enrolled again starts a new stream).
    pub fn reset(&mut self) {
        self.table = AlarmTable::default();
        self.acked = 0;
    }
}

/// Default bound of an [`AlarmLog`].
pub const DEFAULT_LOG_CAPACITY: usize = 100_000;

/// The subcloud's end of the alarm stream: an append-only, numbered log of
/// its alarm changes, bounded, pruned by acknowledgements, plus its current
/// active table (for snapshots).
#[derive(Debug, Clone)]
pub struct AlarmLog {
    /// `entries[head..]` are retained, in order, ending at `last_seq`.
    entries: Vec<AlarmChange>,
    head: usize,
    last_seq: u64,
    capacity: usize,
    active: AlarmTable,
}

impl Default for AlarmLog {
    fn default() -> Self {
        AlarmLog::new()
    }
}

impl AlarmLog {
    /// An empty log bounded at [`DEFAULT_LOG_CAPACITY`] changes.
    pub fn new() -> AlarmLog {
        AlarmLog::with_capacity(DEFAULT_LOG_CAPACITY)
    }

    /// An empty log that keeps at most `capacity` (at least 1) unacknowledged changes.
    pub fn with_capacity(capacity: usize) -> AlarmLog {
        AlarmLog {
            entries: Vec::new(),
            head: 0,
            last_seq: 0,
            capacity: capacity.max(1),
            active: AlarmTable::default(),
        }
    }

    fn live(&self) -> usize {
        self.entries.len() - self.head
    }

    /// Number of the oldest retained change (`last_seq + 1` when none is).
    fn first_seq(&self) -> u64 {
        self.last_seq + 1 - self.live() as u64
    }

    fn compact(&mut self) {
        if self.head > 0 && self.head * 2 >= self.entries.len() {
            self.entries.drain(..self.head);
            self.head = 0;
        }
    }

    /// Records a change and returns its number (the `seq` given is
    /// overwritten). When the log is full the oldest change is dropped.
    pub fn append(&mut self, mut change: AlarmChange) -> u64 {
        self.last_seq += 1;
        change.seq = self.last_seq;
        self.active.apply(&change);
        self.entries.push(change);
        if self.live() > self.capacity {
            self.head += 1;
            self.compact();
        }
        self.last_seq
    }

    /// The retained changes after `acked`: what to send. When
    /// [`needs_snapshot`](Self::needs_snapshot) is true these are not enough.
    pub fn pending_after(&self, acked: u64) -> &[AlarmChange] {
        if acked >= self.last_seq {
            return &[];
        }
        let skip = (acked + 1).saturating_sub(self.first_seq()) as usize;
        &self.entries[self.head + skip..]
    }

    /// The System Controller acknowledged everything up to `seq`: prune it.
    pub fn ack(&mut self, seq: u64) {
        let seq = seq.min(self.last_seq);
        let first = self.first_seq();
        if seq >= first {
            self.head += (seq - first + 1) as usize;
            self.compact();
        }
    }

    /// True when the log cannot bring a System Controller that acknowledged
    /// `acked` up to date: changes after it were pruned, or it acknowledged
    /// more than this log ever numbered (the subcloud restarted). Send
    /// [`snapshot`](Self::snapshot) then.
    pub fn needs_snapshot(&self, acked: u64) -> bool {
        acked > self.last_seq || acked + 1 < self.first_seq()
    }

    /// The whole active table, as of change [`last_seq`](Self::last_seq).
    pub fn snapshot(&self) -> (u64, Vec<ActiveAlarm>) {
        (self.last_seq, self.active.to_vec())
    }

    /// Number of the latest change.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The subcloud's active alarms.
    pub fn active(&self) -> &AlarmTable {
        &self.active
    }

    /// Retained (unacknowledged) changes.
    pub fn len(&self) -> usize {
        self.live()
    }

    pub fn is_empty(&self) -> bool {
        self.live() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests;

//! The subcloud's side of its link to the system controller, without I/O:
//! what the next sync must carry (alarms after the last acknowledged
//! number, or a snapshot), the (epoch, generation) guard on pushes, and
//! when to sync next: at a fixed rate (each sync due one interval after
//! the previous one was due, plus a small jitter so that many subclouds do
//! not stay in step), a few quick re-syncs after applying a push (to
//! report it at once), and backoff while the system controller does not
//! answer. The real subcloud and the simulator both drive it.

use roost_types::Timestamp;

use crate::sync::{Applied, Stale};
use crate::words::{Endpoint, Epoch, Generation};

/// Default seconds between syncs until the system controller says.
pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 2;
/// Delay of a quick re-sync that reports an applied push.
pub const REPORT_SOON_MICROS: i64 = 50_000;
/// Quick re-syncs in a row at most, so that a push that never converges
/// cannot make a subcloud hammer its controller.
pub const MAX_QUICK_RESYNCS: u32 = 3;
/// Longest wait between two attempts while the controller does not answer.
pub const MAX_BACKOFF_MICROS: i64 = 8_000_000;

fn plus(t: Timestamp, micros: i64) -> Timestamp {
    Timestamp(t.micros().saturating_add(micros))
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncResult {
    /// Answered: the alarm part of the reply.
    Answered {
        acked_seq: u64,
        want_snapshot: bool,
        interval_secs: u64,
    },
    /// The system controller answered with an error: the stream starts over
    /// with a snapshot.
    Refused,
    /// No answer (unreachable, timed out).
    Unreachable,
}

/// What changed on the link that is worth telling the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    Connected,
    Lost,
}

/// The link state of one subcloud.
#[derive(Debug, Clone)]
pub struct SubcloudLink {
    applied: Applied,
    acked: u64,
    need_snapshot: bool,
    online: bool,
    interval_micros: i64,
    /// When the last regular sync was due (the fixed-rate schedule).
    due: Timestamp,
    quick_left: u32,
    report_soon: bool,
    failures: u32,
    rng: u64,
}

impl SubcloudLink {
    /// A link that syncs first at `now`; `seed` varies the jitter (any
    /// value; the subcloud's name hashed is a good one).
    pub fn new(now: Timestamp, seed: u64) -> SubcloudLink {
        SubcloudLink {
            applied: Applied::new(),
            acked: 0,
            need_snapshot: true,
            online: false,
            interval_micros: (DEFAULT_SYNC_INTERVAL_SECS * 1_000_000) as i64,
            due: now,
            quick_left: MAX_QUICK_RESYNCS,
            report_soon: false,
            failures: 0,
            rng: seed | 1,
        }
    }

    /// What was applied before a restart.
    pub fn restore_applied(&mut self, endpoint: Endpoint, epoch: Epoch, generation: Generation) {
        self.applied.restore(endpoint, epoch, generation);
    }

    /// The (epoch, generation) applied per endpoint.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    /// The last alarm number the system controller acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether the next sync must carry a snapshot.
    pub fn needs_snapshot(&self) -> bool {
        self.need_snapshot
    }

    /// Whether the last sync was answered.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Seconds between regular syncs now.
    pub fn interval_secs(&self) -> u64 {
        (self.interval_micros / 1_000_000) as u64
    }

    /// Records how a sync (that carried a snapshot or not) ended.
    pub fn finished(&mut self, sent_snapshot: bool, result: SyncResult) -> Option<LinkEvent> {
        let was_online = self.online;
        match result {
            SyncResult::Answered {
                acked_seq,
                want_snapshot,
                interval_secs,
            } => {
                self.online = true;
                self.failures = 0;
                if sent_snapshot {
                    self.need_snapshot = false;
                }
                self.acked = acked_seq;
                if want_snapshot {
                    self.need_snapshot = true;
                }
                self.interval_micros = (interval_secs.clamp(1, 60) * 1_000_000) as i64;
            }
            SyncResult::Refused => {
                self.need_snapshot = true;
                self.online = false;
                self.failures = self.failures.saturating_add(1);
            }
            SyncResult::Unreachable => {
                self.need_snapshot = self.need_snapshot || self.acked == 0;
                self.online = false;
                self.failures = self.failures.saturating_add(1);
            }
        }
        match (was_online, self.online) {
            (false, true) => Some(LinkEvent::Connected),
            (true, false) => Some(LinkEvent::Lost),
            _ => None,
        }
    }

    /// Checks a push against the (epoch, generation) guard; accepted, it is
    /// recorded as applied once [`SubcloudLink::push_applied`] is called.
    pub fn accept_push(
        &mut self,
        endpoint: Endpoint,
        epoch: Epoch,
        generation: Generation,
    ) -> Result<(), Stale> {
        let mut probe = self.applied.clone();
        probe.accept_push(endpoint, epoch, generation)
    }

    /// A push was applied locally: record it and report it soon.
    pub fn push_applied(&mut self, endpoint: Endpoint, epoch: Epoch, generation: Generation) {
        if self
            .applied
            .accept_push(endpoint, epoch, generation)
            .is_ok()
        {
            self.report_soon = true;
        }
    }

    /// Something this subcloud reports changed (the answer to a deploy
    /// order): report it soon, as an applied push is.
    pub fn report_soon(&mut self) {
        self.report_soon = true;
    }

    fn jitter(&mut self) -> i64 {
        // xorshift64: cheap and good enough to spread subclouds apart.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let span = (self.interval_micros / 10).max(1) as u64;
        (x % span) as i64
    }

    /// When to sync next, after a sync that ended at `now`.
    pub fn next_sync(&mut self, now: Timestamp) -> Timestamp {
        if std::mem::take(&mut self.report_soon) && self.quick_left > 0 && self.online {
            self.quick_left -= 1;
            return plus(now, REPORT_SOON_MICROS);
        }
        self.quick_left = MAX_QUICK_RESYNCS;
        if self.failures > 0 {
            let shift = (self.failures - 1).min(8);
            let wait = self
                .interval_micros
                .saturating_mul(1 << shift)
                .min(MAX_BACKOFF_MICROS.max(self.interval_micros));
            self.due = plus(now, wait);
            return plus(self.due, self.jitter());
        }
        // Fixed rate: one interval after the last one was due, never in
        // the past (a late sync does not cause a burst).
        self.due = plus(self.due, self.interval_micros).max(now);
        plus(self.due, self.jitter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_700_000_000_000_000);

    fn answered(acked_seq: u64, want_snapshot: bool) -> SyncResult {
        SyncResult::Answered {
            acked_seq,
            want_snapshot,
            interval_secs: 2,
        }
    }

    #[test]
    fn the_first_sync_sends_a_snapshot_then_changes_after_the_ack() {
        let mut l = SubcloudLink::new(T0, 7);
        assert!(l.needs_snapshot());
        assert_eq!(
            l.finished(true, answered(5, false)),
            Some(LinkEvent::Connected)
        );
        assert!(!l.needs_snapshot());
        assert_eq!(l.acked(), 5);
        // The controller lost the stream: a snapshot again.
        l.finished(false, answered(5, true));
        assert!(l.needs_snapshot());
        // A refusal starts over; no answer keeps the ack once there was one.
        l.finished(true, answered(6, false));
        assert_eq!(
            l.finished(false, SyncResult::Unreachable),
            Some(LinkEvent::Lost)
        );
        assert!(!l.needs_snapshot());
        l.finished(false, SyncResult::Refused);
        assert!(l.needs_snapshot());
    }

    #[test]
    fn syncs_keep_a_fixed_rate_with_a_small_jitter() {
        let mut l = SubcloudLink::new(T0, 42);
        l.finished(true, answered(0, false));
        let mut now = T0;
        for i in 1..=100i64 {
            // Each sync takes a while; the schedule does not drift with it.
            now = plus(now, 300_000);
            let next = l.next_sync(now);
            let due = plus(T0, i * 2_000_000);
            assert!(next >= due && next < plus(due, 200_000), "{i}: {next:?}");
            now = next;
            l.finished(false, answered(0, false));
        }
    }

    #[test]
    fn two_links_with_different_seeds_do_not_stay_in_step() {
        let mut a = SubcloudLink::new(T0, 1);
        let mut b = SubcloudLink::new(T0, 2);
        a.finished(true, answered(0, false));
        b.finished(true, answered(0, false));
        let same = (0..20)
            .filter(|_| a.next_sync(T0) == b.next_sync(T0))
            .count();
        assert!(same < 20);
    }

    #[test]
    fn an_applied_push_is_reported_soon_but_not_for_ever() {
        let mut l = SubcloudLink::new(T0, 3);
        l.finished(true, answered(0, false));
        for _ in 0..MAX_QUICK_RESYNCS {
            l.push_applied(Endpoint::Platform, Epoch(1), Generation(1));
            assert_eq!(l.next_sync(T0), plus(T0, REPORT_SOON_MICROS));
        }
        l.push_applied(Endpoint::Platform, Epoch(1), Generation(1));
        assert!(l.next_sync(T0) >= plus(T0, 2_000_000));
    }

    #[test]
    fn stale_pushes_are_refused_and_nothing_is_recorded_before_applying() {
        let mut l = SubcloudLink::new(T0, 3);
        l.accept_push(Endpoint::Platform, Epoch(2), Generation(5))
            .unwrap();
        assert_eq!(l.applied().generation(Endpoint::Platform), Generation(0));
        l.push_applied(Endpoint::Platform, Epoch(2), Generation(5));
        assert!(
            l.accept_push(Endpoint::Platform, Epoch(2), Generation(4))
                .is_err()
        );
        assert!(
            l.accept_push(Endpoint::Platform, Epoch(1), Generation(9))
                .is_err()
        );
        l.accept_push(Endpoint::Platform, Epoch(3), Generation(1))
            .unwrap();
    }

    #[test]
    fn an_unanswered_link_backs_off_to_a_bound() {
        let mut l = SubcloudLink::new(T0, 5);
        let mut waits = Vec::new();
        let mut now = T0;
        for _ in 0..8 {
            l.finished(false, SyncResult::Unreachable);
            let next = l.next_sync(now);
            waits.push((next.micros() - now.micros()) / 1_000_000);
            now = next;
        }
        assert_eq!(&waits[..3], &[2, 4, 8]);
        assert!(waits.iter().all(|w| *w <= 8), "{waits:?}");
        // Answered again: back to the interval.
        l.finished(false, answered(0, false));
        assert!(l.next_sync(now) < plus(now, 3_000_000));
    }
}

//! Process monitoring (StarlingX's `pmond`): one [`ProcessMonitor`] per
//! monitored process decides, from a stream of "is it alive?" observations,
//! when to restart it, when to declare it failed and when it has recovered.
//!
//! Pure: the caller checks the process, passes the result and the time, and
//! carries out the returned [`ProcessAction`].
//!
//! # Rules
//!
//! - A dead process is restarted, at most `restarts` times, and never sooner
//!   than `restart_interval_secs` after the previous restart: a restart is
//!   also given that long to bring the process up before it is judged again.
//! - When it is found dead with no restart left, it has failed:
//!   [`ProcessAction::Fail`] is returned once. While failed, it is still
//!   restarted every `restart_interval_secs` (recovery attempts), but never
//!   failed again.
//! - A process seen alive for `debounce_secs` without interruption is stable:
//!   its restart count starts over and, if it had failed,
//!   [`ProcessAction::Recover`] is returned once.
//!
//! So a process that flaps (comes up for less than the debounce time, then
//! dies) uses up its restarts and fails.

use roost_types::{Severity, Timestamp};

/// How one process is monitored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The process's name (the `process=` part of its alarm).
    pub name: String,
    /// What its failure means: critical fails the host, major degrades it.
    pub severity: Severity,
    /// Restarts allowed before the process is declared failed.
    pub restarts: u32,
    /// Least number of seconds between two restarts.
    pub restart_interval_secs: u64,
    /// Seconds the process must stay up before its restart count starts over
    /// (and a failure clears).
    pub debounce_secs: u64,
}

/// What the caller should do after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessAction {
    /// Nothing.
    None,
    /// Restart the process.
    Restart,
    /// The process has failed: raise its failure at this severity.
    Fail(Severity),
    /// The process had failed and is now stable: clear the failure.
    Recover,
}

/// The monitoring state of one process.
#[derive(Debug, Clone)]
pub struct ProcessMonitor {
    spec: ProcessSpec,
    /// Restarts done since the process was last stable.
    restarts_done: u32,
    /// When the last restart was asked for (or the failure declared).
    last_action: Option<Timestamp>,
    /// Since when the process has been seen alive without interruption.
    up_since: Option<Timestamp>,
    failed: bool,
}

impl ProcessMonitor {
    pub fn new(spec: ProcessSpec) -> ProcessMonitor {
        ProcessMonitor {
            spec,
            restarts_done: 0,
            last_action: None,
            up_since: None,
            failed: false,
        }
    }

    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// The severity of the current failure, `None` when not failed.
    pub fn failure(&self) -> Option<Severity> {
        self.failed.then_some(self.spec.severity)
    }

    /// Restarts done since the process was last stable.
    pub fn restarts_done(&self) -> u32 {
        self.restarts_done
    }

    /// Feeds one observation: whether the process is alive at `now`.
    pub fn observe(&mut self, alive: bool, now: Timestamp) -> ProcessAction {
        if alive {
            let since = *self.up_since.get_or_insert(now);
            if elapsed_secs(since, now) >= self.spec.debounce_secs {
                self.restarts_done = 0;
                self.last_action = None;
                if self.failed {
                    self.failed = false;
                    return ProcessAction::Recover;
                }
            }
            return ProcessAction::None;
        }
        self.up_since = None;
        if let Some(last) = self.last_action
            && elapsed_secs(last, now) < self.spec.restart_interval_secs
        {
            // Too soon: the last restart may still be bringing it up.
            return ProcessAction::None;
        }
        if self.failed {
            self.last_action = Some(now);
            return ProcessAction::Restart;
        }
        if self.restarts_done < self.spec.restarts {
            self.restarts_done += 1;
            self.last_action = Some(now);
            return ProcessAction::Restart;
        }
        self.failed = true;
        self.last_action = Some(now);
        ProcessAction::Fail(self.spec.severity)
    }
}

/// Whole seconds from `from` to `to` (0 if `to` is earlier).
fn elapsed_secs(from: Timestamp, to: Timestamp) -> u64 {
    u64::try_from(to.0.saturating_sub(from.0) / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProcessSpec {
        ProcessSpec {
            name: "sshd".into(),
            severity: Severity::Major,
            restarts: 3,
            restart_interval_secs: 10,
            debounce_secs: 20,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp(0).plus_secs(secs)
    }

    /// Observes `alive` every second over `from..to` and collects the
    /// actions other than `None`, with their times.
    fn run(m: &mut ProcessMonitor, alive: bool, from: i64, to: i64) -> Vec<(i64, ProcessAction)> {
        (from..to)
            .map(|t| (t, m.observe(alive, at(t))))
            .filter(|(_, a)| *a != ProcessAction::None)
            .collect()
    }

    #[test]
    fn a_live_process_needs_nothing() {
        let mut m = ProcessMonitor::new(spec());
        assert!(run(&mut m, true, 0, 100).is_empty());
        assert_eq!(m.failure(), None);
    }

    #[test]
    fn a_dying_process_is_restarted_up_to_n_times_at_the_interval_then_fails_once() {
        let mut m = ProcessMonitor::new(spec());
        let actions = run(&mut m, false, 0, 100);
        assert_eq!(
            actions,
            [
                (0, ProcessAction::Restart),
                (10, ProcessAction::Restart),
                (20, ProcessAction::Restart),
                (30, ProcessAction::Fail(Severity::Major)),
                // Recovery attempts go on, but the failure is not repeated.
                (40, ProcessAction::Restart),
                (50, ProcessAction::Restart),
                (60, ProcessAction::Restart),
                (70, ProcessAction::Restart),
                (80, ProcessAction::Restart),
                (90, ProcessAction::Restart),
            ]
        );
        assert_eq!(m.failure(), Some(Severity::Major));
    }

    #[test]
    fn a_process_with_no_restarts_allowed_fails_at_once() {
        let mut m = ProcessMonitor::new(ProcessSpec {
            restarts: 0,
            severity: Severity::Critical,
            ..spec()
        });
        assert_eq!(
            m.observe(false, at(0)),
            ProcessAction::Fail(Severity::Critical)
        );
        assert_eq!(m.observe(false, at(1)), ProcessAction::None);
    }

    #[test]
    fn a_restarted_process_that_stays_up_resets_its_restart_count() {
        let mut m = ProcessMonitor::new(spec());
        assert_eq!(m.observe(false, at(0)), ProcessAction::Restart);
        assert_eq!(m.observe(false, at(10)), ProcessAction::Restart);
        assert_eq!(m.restarts_done(), 2);
        // Up from 11 on; stable at 31.
        assert!(run(&mut m, true, 11, 31).is_empty());
        assert_eq!(m.restarts_done(), 2);
        assert_eq!(m.observe(true, at(31)), ProcessAction::None);
        assert_eq!(m.restarts_done(), 0);
        // A later death gets the full allowance again, right away.
        let actions = run(&mut m, false, 40, 80);
        assert_eq!(
            actions,
            [
                (40, ProcessAction::Restart),
                (50, ProcessAction::Restart),
                (60, ProcessAction::Restart),
                (70, ProcessAction::Fail(Severity::Major)),
            ]
        );
    }

    #[test]
    fn a_failed_process_that_stays_up_for_the_debounce_time_recovers_once() {
        let mut m = ProcessMonitor::new(spec());
        run(&mut m, false, 0, 35);
        assert_eq!(m.failure(), Some(Severity::Major));
        // Back at 35 (say, by hand): not yet stable at 54, stable at 55.
        assert!(run(&mut m, true, 35, 55).is_empty());
        assert_eq!(m.failure(), Some(Severity::Major));
        assert_eq!(m.observe(true, at(55)), ProcessAction::Recover);
        assert_eq!(m.failure(), None);
        assert!(run(&mut m, true, 56, 200).is_empty());
    }

    #[test]
    fn a_flapping_process_uses_up_its_restarts_and_fails() {
        let mut m = ProcessMonitor::new(spec());
        let mut actions = Vec::new();
        // Each restart brings it up for 5 s (less than the debounce), then it dies.
        let mut t = 0;
        while t < 120 {
            let a = m.observe(false, at(t));
            if a != ProcessAction::None {
                actions.push((t, a));
            }
            if a == ProcessAction::Restart {
                for up in 1..=5 {
                    assert_eq!(m.observe(true, at(t + up)), ProcessAction::None);
                }
                t += 6;
            } else {
                t += 1;
            }
        }
        assert_eq!(
            &actions[..4],
            [
                (0, ProcessAction::Restart),
                (10, ProcessAction::Restart),
                (20, ProcessAction::Restart),
                (30, ProcessAction::Fail(Severity::Major)),
            ]
        );
        let fails = actions
            .iter()
            .filter(|(_, a)| matches!(a, ProcessAction::Fail(_)))
            .count();
        assert_eq!(fails, 1, "{actions:?}");
        assert!(!actions.contains(&(0, ProcessAction::Recover)));
        assert_eq!(m.failure(), Some(Severity::Major));
    }

    #[test]
    fn a_restart_is_given_the_interval_to_bring_the_process_up() {
        let mut m = ProcessMonitor::new(ProcessSpec {
            restarts: 1,
            ..spec()
        });
        assert_eq!(m.observe(false, at(0)), ProcessAction::Restart);
        // Still down a second later: not yet failed, the restart may be slow.
        assert!(run(&mut m, false, 1, 10).is_empty());
        assert_eq!(
            m.observe(false, at(10)),
            ProcessAction::Fail(Severity::Major)
        );
    }

    #[test]
    fn a_clock_going_backwards_does_not_panic_or_restart() {
        let mut m = ProcessMonitor::new(spec());
        assert_eq!(m.observe(false, at(100)), ProcessAction::Restart);
        assert_eq!(m.observe(false, at(50)), ProcessAction::None);
        assert_eq!(m.observe(true, at(40)), ProcessAction::None);
    }
}

//! Maintenance domain: host states and actions, heartbeat failure
//! detection, multi-node failure avoidance and recovery ([`maintenance`]),
//! their settings ([`settings`]), and resource threshold monitoring with
//! hysteresis (alarms 100.101 CPU, 100.103 memory, 100.104 filesystem).
//!
//! Architecture invariant: no I/O here. Samples come in as numbers; the
//! decisions (raise, change severity, clear) go out as values the caller
//! turns into alarms.
#![forbid(unsafe_code)]

mod error;
pub mod maintenance;
pub mod process;
pub mod settings;

pub use error::Error;
pub use maintenance::{
    Admin, AlarmOut, Avail, Command, Effects, HostAction, HostStatus, Maintenance, Network, Oper,
    Personality,
};
pub use settings::{FailureAction, MtceSettings};

use std::collections::BTreeMap;

use roost_types::Severity;

/// Alarm id of platform CPU usage over threshold.
pub const ALARM_CPU: &str = "100.101";
/// Alarm id of platform memory usage over threshold.
pub const ALARM_MEMORY: &str = "100.103";
/// Alarm id of filesystem usage over threshold.
pub const ALARM_FILESYSTEM: &str = "100.104";

/// Thresholds of one resource, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub major: f64,
    pub critical: f64,
    /// How far below a threshold the value must fall before the alarm is
    /// lowered or cleared, so that a value hovering at a threshold does not
    /// flap.
    pub hysteresis: f64,
}

impl Thresholds {
    /// StarlingX's CPU thresholds: major 90 %, critical 95 %.
    pub const CPU: Thresholds = Thresholds {
        major: 90.0,
        critical: 95.0,
        hysteresis: 3.0,
    };
    /// StarlingX's memory thresholds: major 80 %, critical 90 %.
    pub const MEMORY: Thresholds = Thresholds {
        major: 80.0,
        critical: 90.0,
        hysteresis: 3.0,
    };
    /// StarlingX's filesystem thresholds: major 80 %, critical 90 %.
    pub const FILESYSTEM: Thresholds = Thresholds {
        major: 80.0,
        critical: 90.0,
        hysteresis: 3.0,
    };

    /// Checks that the thresholds make sense.
    pub fn validate(&self, what: &str) -> Result<(), Error> {
        let ok = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
        if !ok(self.major) || !ok(self.critical) || !ok(self.hysteresis) {
            return Err(Error::Invalid(format!(
                "{what}: thresholds must be between 0 and 100"
            )));
        }
        if self.major > self.critical {
            return Err(Error::Invalid(format!(
                "{what}: the major threshold ({}) must not exceed the critical one ({})",
                self.major, self.critical
            )));
        }
        Ok(())
    }

    fn level_for(&self, value: f64) -> Option<Severity> {
        if value >= self.critical {
            Some(Severity::Critical)
        } else if value >= self.major {
            Some(Severity::Major)
        } else {
            None
        }
    }

    fn threshold_of(&self, s: Severity) -> f64 {
        if s == Severity::Critical {
            self.critical
        } else {
            self.major
        }
    }

    /// The level after observing `value` when the current level is `current`.
    /// Rising is immediate; falling waits until the value is `hysteresis`
    /// below the threshold of the current level.
    pub fn next_level(&self, current: Option<Severity>, value: f64) -> Option<Severity> {
        let raw = self.level_for(value);
        match current {
            None => raw,
            Some(cur) => {
                let rank = |s: Option<Severity>| s.map(|s| 4 - s.rank()).unwrap_or(0);
                // Rising (or staying) is immediate; falling waits for the band.
                if rank(raw) >= rank(Some(cur)) || value < self.threshold_of(cur) - self.hysteresis
                {
                    raw
                } else {
                    Some(cur)
                }
            }
        }
    }
}

/// What a resource alarm should become.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDecision {
    pub alarm_id: &'static str,
    pub entity_instance_id: String,
    /// `Some` to raise or change the alarm at this severity, `None` to clear it.
    pub severity: Option<Severity>,
    pub reason_text: String,
}

/// Which resource a sample is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Cpu,
    Memory,
    Filesystem(String),
}

impl Resource {
    fn alarm_id(&self) -> &'static str {
        match self {
            Resource::Cpu => ALARM_CPU,
            Resource::Memory => ALARM_MEMORY,
            Resource::Filesystem(_) => ALARM_FILESYSTEM,
        }
    }

    fn entity(&self, host: &str) -> String {
        match self {
            Resource::Filesystem(mount) => format!("host={host}.filesystem={mount}"),
            _ => format!("host={host}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Resource::Cpu => "Platform CPU usage".to_string(),
            Resource::Memory => "Platform memory usage".to_string(),
            Resource::Filesystem(m) => format!("Filesystem {m} usage"),
        }
    }
}

/// Settings of the resource monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSettings {
    pub cpu: Thresholds,
    pub memory: Thresholds,
    pub filesystem: Thresholds,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            cpu: Thresholds::CPU,
            memory: Thresholds::MEMORY,
            filesystem: Thresholds::FILESYSTEM,
        }
    }
}

impl MonitorSettings {
    pub fn validate(&self) -> Result<(), Error> {
        self.cpu.validate("cpu")?;
        self.memory.validate("memory")?;
        self.filesystem.validate("filesystem")
    }
}

/// Tracks the alarm level of each resource of one host.
#[derive(Debug, Clone)]
pub struct ResourceMonitor {
    host: String,
    settings: MonitorSettings,
    levels: BTreeMap<Resource, Option<Severity>>,
}

impl ResourceMonitor {
    pub fn new(host: impl Into<String>, settings: MonitorSettings) -> Self {
        ResourceMonitor {
            host: host.into(),
            settings,
            levels: BTreeMap::new(),
        }
    }

    /// Seeds the level of a resource from an alarm that is already active
    /// (after a restart), so that the monitor clears it when due.
    pub fn assume(&mut self, resource: Resource, level: Option<Severity>) {
        self.levels.insert(resource, level);
    }

    /// Feeds one sample (percent used). Returns a decision only when the
    /// alarm must change.
    pub fn observe(&mut self, resource: Resource, percent: f64) -> Option<AlarmDecision> {
        if !percent.is_finite() {
            return None;
        }
        let t = match resource {
            Resource::Cpu => self.settings.cpu,
            Resource::Memory => self.settings.memory,
            Resource::Filesystem(_) => self.settings.filesystem,
        };
        let cur = self.levels.get(&resource).copied().flatten();
        let next = t.next_level(cur, percent);
        if next == cur && self.levels.contains_key(&resource) {
            return None;
        }
        self.levels.insert(resource.clone(), next);
        if next.is_none() && cur.is_none() {
            return None;
        }
        let reason_text = match next {
            Some(s) => format!(
                "{} is {percent:.1}%, over the {} threshold of {:.0}%",
                resource.describe(),
                s,
                t.threshold_of(s)
            ),
            None => format!("{} is back to {percent:.1}%", resource.describe()),
        };
        Some(AlarmDecision {
            alarm_id: resource.alarm_id(),
            entity_instance_id: resource.entity(&self.host),
            severity: next,
            reason_text,
        })
    }

    /// Filesystems that had a level but were not reported in the last
    /// round (unmounted): their alarms should clear.
    pub fn forget_missing(&mut self, present: &[String]) -> Vec<AlarmDecision> {
        let gone: Vec<Resource> = self
            .levels
            .keys()
            .filter(|r| matches!(r, Resource::Filesystem(m) if !present.contains(m)))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for r in gone {
            if let Some(Some(_)) = self.levels.remove(&r) {
                out.push(AlarmDecision {
                    alarm_id: r.alarm_id(),
                    entity_instance_id: r.entity(&self.host),
                    severity: None,
                    reason_text: format!("{} is no longer mounted", r.describe()),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mon() -> ResourceMonitor {
        ResourceMonitor::new("controller-0", MonitorSettings::default())
    }

    #[test]
    fn cpu_raises_major_at_90_and_critical_at_95() {
        let mut m = mon();
        assert_eq!(m.observe(Resource::Cpu, 50.0), None);
        let d = m.observe(Resource::Cpu, 90.0).unwrap();
        assert_eq!(d.alarm_id, "100.101");
        assert_eq!(d.entity_instance_id, "host=controller-0");
        assert_eq!(d.severity, Some(Severity::Major));
        let d = m.observe(Resource::Cpu, 96.0).unwrap();
        assert_eq!(d.severity, Some(Severity::Critical));
    }

    #[test]
    fn memory_and_filesystem_use_80_and_90() {
        let mut m = mon();
        assert_eq!(m.observe(Resource::Memory, 79.9), None);
        assert_eq!(
            m.observe(Resource::Memory, 80.0).unwrap().severity,
            Some(Severity::Major)
        );
        let d = m
            .observe(Resource::Filesystem("/var".into()), 91.0)
            .unwrap();
        assert_eq!(d.alarm_id, "100.104");
        assert_eq!(d.entity_instance_id, "host=controller-0.filesystem=/var");
        assert_eq!(d.severity, Some(Severity::Critical));
    }

    #[test]
    fn a_value_hovering_at_a_threshold_does_not_flap() {
        let mut m = mon();
        let mut decisions = 0;
        for i in 0..100 {
            let v = if i % 2 == 0 { 90.5 } else { 89.0 };
            if m.observe(Resource::Cpu, v).is_some() {
                decisions += 1;
            }
        }
        assert_eq!(decisions, 1, "raised once, never cleared while hovering");
    }

    #[test]
    fn the_alarm_clears_once_the_value_falls_below_the_band() {
        let mut m = mon();
        m.observe(Resource::Cpu, 92.0);
        assert_eq!(m.observe(Resource::Cpu, 88.0), None);
        let d = m.observe(Resource::Cpu, 86.9).unwrap();
        assert_eq!(d.severity, None);
        assert!(d.reason_text.contains("back to"));
    }

    #[test]
    fn critical_falls_to_major_before_clearing() {
        let mut m = mon();
        m.observe(Resource::Memory, 95.0);
        assert_eq!(m.observe(Resource::Memory, 88.0), None);
        assert_eq!(
            m.observe(Resource::Memory, 85.0).unwrap().severity,
            Some(Severity::Major)
        );
        assert_eq!(m.observe(Resource::Memory, 50.0).unwrap().severity, None);
    }

    #[test]
    fn an_unmounted_filesystem_clears_its_alarm() {
        let mut m = mon();
        m.observe(Resource::Filesystem("/a".into()), 99.0);
        m.observe(Resource::Filesystem("/b".into()), 10.0);
        let d = m.forget_missing(&["/b".to_string()]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].severity, None);
        assert_eq!(d[0].entity_instance_id, "host=controller-0.filesystem=/a");
    }

    #[test]
    fn an_assumed_alarm_is_cleared_when_the_value_is_low() {
        let mut m = mon();
        m.assume(Resource::Cpu, Some(Severity::Major));
        assert_eq!(m.observe(Resource::Cpu, 10.0).unwrap().severity, None);
    }

    #[test]
    fn thresholds_are_validated() {
        let bad = Thresholds {
            major: 95.0,
            critical: 90.0,
            hysteresis: 1.0,
        };
        assert!(bad.validate("cpu").is_err());
        assert!(Thresholds::CPU.validate("cpu").is_ok());
    }

    proptest! {
        /// Whatever the samples, the level never disagrees with the raw
        /// thresholds by more than the hysteresis band.
        #[test]
        fn level_stays_within_the_band(samples in proptest::collection::vec(0.0f64..100.0, 1..200)) {
            let t = Thresholds::CPU;
            let mut level = None;
            for v in samples {
                level = t.next_level(level, v);
                match level {
                    Some(Severity::Critical) => prop_assert!(v >= t.critical - t.hysteresis),
                    Some(_) => prop_assert!(v >= t.major - t.hysteresis && v < t.critical),
                    None => prop_assert!(v < t.major),
                }
            }
        }
    }
}

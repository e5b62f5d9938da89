//! Maintenance settings, exposed as StarlingX service parameters
//! (service `platform`, section `maintenance`).

use std::fmt;

use crate::Error;

/// What happens to a host whose heartbeat fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Fail the host and recover it (reboot, then BMC reset).
    Fail,
    /// Degrade the host; no recovery.
    Degrade,
    /// Raise the alarms only.
    Alarm,
    /// Do nothing.
    None,
}

impl FailureAction {
    pub fn parse(s: &str) -> Option<FailureAction> {
        match s {
            "fail" => Some(FailureAction::Fail),
            "degrade" => Some(FailureAction::Degrade),
            "alarm" => Some(FailureAction::Alarm),
            "none" => Some(FailureAction::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Fail => "fail",
            FailureAction::Degrade => "degrade",
            FailureAction::Alarm => "alarm",
            FailureAction::None => "none",
        }
    }
}

impl fmt::Display for FailureAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Heartbeat and recovery settings of one cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct MtceSettings {
    /// Milliseconds between pulses (10-1000; StarlingX stops at 100).
    pub heartbeat_period_ms: u32,
    /// Missed pulses before a host is degraded (4-100).
    pub heartbeat_degrade_threshold: u32,
    /// Missed pulses before a host is failed (10-100), above the degrade threshold.
    pub heartbeat_failure_threshold: u32,
    pub heartbeat_failure_action: FailureAction,
    /// Hosts losing heartbeat together that make a network event (2-100).
    pub mnfa_threshold: u32,
    /// Seconds a multi-node event may hold hosts before they are failed; 0 = forever.
    pub mnfa_timeout_secs: u32,
    pub worker_boot_timeout_secs: u32,
    pub controller_boot_timeout_secs: u32,
    /// Seconds after asking the agent to reboot before resetting through the BMC.
    pub bmc_reset_delay_secs: u32,
    /// BMC resets tried per failure before giving up.
    pub bmc_reset_retries: u32,
    /// Seconds between BMC reset attempts.
    pub bmc_retry_interval_secs: u32,
    /// Good pulses a recovering host must answer in `intest` before it is available.
    pub intest_pulses: u32,
}

impl Default for MtceSettings {
    fn default() -> Self {
        MtceSettings {
            heartbeat_period_ms: 100,
            heartbeat_degrade_threshold: 6,
            heartbeat_failure_threshold: 10,
            heartbeat_failure_action: FailureAction::Fail,
            mnfa_threshold: 2,
            mnfa_timeout_secs: 0,
            worker_boot_timeout_secs: 720,
            controller_boot_timeout_secs: 1200,
            bmc_reset_delay_secs: 300,
            bmc_reset_retries: 2,
            bmc_retry_interval_secs: 30,
            intest_pulses: 5,
        }
    }
}

/// One named setting, as a service parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: &'static str,
    pub value: String,
}

/// The names of the parameters of section `maintenance`, in display order.
pub const PARAMETER_NAMES: &[&str] = &[
    "bmc_reset_delay",
    "bmc_reset_retries",
    "bmc_retry_interval",
    "controller_boot_timeout",
    "heartbeat_degrade_threshold",
    "heartbeat_failure_action",
    "heartbeat_failure_threshold",
    "heartbeat_period",
    "mnfa_threshold",
    "mnfa_timeout",
    "worker_boot_timeout",
];

fn range(name: &str, v: &str, lo: u32, hi: u32) -> Result<u32, Error> {
    let n: u32 = v
        .trim()
        .parse()
        .map_err(|_| Error::Invalid(format!("{name} must be a whole number, not {v:?}")))?;
    if n < lo || n > hi {
        return Err(Error::Invalid(format!(
            "{name} must be between {lo} and {hi} (got {n})"
        )));
    }
    Ok(n)
}

impl MtceSettings {
    /// The parameters and their current values (every value a string).
    pub fn parameters(&self) -> Vec<Parameter> {
        let v = |name: &'static str, value: String| Parameter { name, value };
        vec![
            v("bmc_reset_delay", self.bmc_reset_delay_secs.to_string()),
            v("bmc_reset_retries", self.bmc_reset_retries.to_string()),
            v(
                "bmc_retry_interval",
                self.bmc_retry_interval_secs.to_string(),
            ),
            v(
                "controller_boot_timeout",
                self.controller_boot_timeout_secs.to_string(),
            ),
            v(
                "heartbeat_degrade_threshold",
                self.heartbeat_degrade_threshold.to_string(),
            ),
            v(
                "heartbeat_failure_action",
                self.heartbeat_failure_action.to_string(),
            ),
            v(
                "heartbeat_failure_threshold",
                self.heartbeat_failure_threshold.to_string(),
            ),
            v("heartbeat_period", self.heartbeat_period_ms.to_string()),
            v("mnfa_threshold", self.mnfa_threshold.to_string()),
            v("mnfa_timeout", self.mnfa_timeout_secs.to_string()),
            v(
                "worker_boot_timeout",
                self.worker_boot_timeout_secs.to_string(),
            ),
        ]
    }

    /// Sets one parameter, checking its syntax and range. Cross-parameter
    /// rules are checked by [`MtceSettings::validate`].
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        match name {
            "heartbeat_period" => self.heartbeat_period_ms = range(name, value, 10, 1000)?,
            "heartbeat_degrade_threshold" => {
                self.heartbeat_degrade_threshold = range(name, value, 4, 100)?
            }
            "heartbeat_failure_threshold" => {
                self.heartbeat_failure_threshold = range(name, value, 10, 100)?
            }
            "heartbeat_failure_action" => {
                self.heartbeat_failure_action =
                    FailureAction::parse(value.trim()).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{name} must be fail, degrade, alarm or none, not {value:?}"
                        ))
                    })?
            }
            "mnfa_threshold" => self.mnfa_threshold = range(name, value, 2, 100)?,
            "mnfa_timeout" => {
                let n = range(name, value, 0, 86_400)?;
                if n != 0 && n < 100 {
                    return Err(Error::Invalid(format!(
                        "{name} must be 0 (no timeout) or between 100 and 86400 (got {n})"
                    )));
                }
                self.mnfa_timeout_secs = n;
            }
            "worker_boot_timeout" => self.worker_boot_timeout_secs = range(name, value, 720, 1800)?,
            "controller_boot_timeout" => {
                self.controller_boot_timeout_secs = range(name, value, 1200, 1800)?
            }
            "bmc_reset_delay" => self.bmc_reset_delay_secs = range(name, value, 0, 3600)?,
            "bmc_reset_retries" => self.bmc_reset_retries = range(name, value, 0, 10)?,
            "bmc_retry_interval" => self.bmc_retry_interval_secs = range(name, value, 1, 3600)?,
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown maintenance parameter {name:?}"
                )));
            }
        }
        Ok(())
    }

    /// Checks rules that span parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if self.heartbeat_degrade_threshold >= self.heartbeat_failure_threshold {
            return Err(Error::Invalid(format!(
                "heartbeat_degrade_threshold ({}) must be below heartbeat_failure_threshold ({})",
                self.heartbeat_degrade_threshold, self.heartbeat_failure_threshold
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_starlingx_except_the_period() {
        let s = MtceSettings::default();
        assert_eq!(s.heartbeat_period_ms, 100);
        assert_eq!(s.heartbeat_degrade_threshold, 6);
        assert_eq!(s.heartbeat_failure_threshold, 10);
        assert_eq!(s.heartbeat_failure_action, FailureAction::Fail);
        assert_eq!(s.mnfa_threshold, 2);
        s.validate().unwrap();
    }

    #[test]
    fn parameters_round_trip_and_ranges_are_enforced() {
        let mut s = MtceSettings::default();
        for p in s.clone().parameters() {
            s.set(p.name, &p.value).unwrap();
        }
        assert_eq!(s, MtceSettings::default());
        assert_eq!(
            s.parameters().iter().map(|p| p.name).collect::<Vec<_>>(),
            PARAMETER_NAMES
        );
        s.set("heartbeat_period", "10").unwrap();
        assert!(s.set("heartbeat_period", "9").is_err());
        assert!(s.set("heartbeat_period", "fast").is_err());
        assert!(s.set("heartbeat_failure_action", "explode").is_err());
        assert!(s.set("mnfa_timeout", "50").is_err());
        s.set("mnfa_timeout", "0").unwrap();
        assert!(s.set("colour", "red").is_err());
    }

    #[test]
    fn degrade_must_stay_below_failure() {
        let mut s = MtceSettings::default();
        s.set("heartbeat_degrade_threshold", "12").unwrap();
        assert!(s.validate().is_err());
    }
}

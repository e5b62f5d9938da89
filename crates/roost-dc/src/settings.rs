//! Timers of the System Controller's view of its subclouds.

use crate::Error;

/// Timers of the Distributed Cloud domain.
///
/// StarlingX audits every 30 s and declares a subcloud offline after two
/// failed audits (about 60 s). In Roost the subcloud keeps a connection
/// open and sends a light heartbeat, so the System Controller can decide
/// much sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DcSettings {
    /// Seconds without hearing from a subcloud before it is offline (1-3600).
    pub offline_after_secs: u32,
    /// Seconds an endpoint of a managed, online subcloud may stay
    /// out-of-sync before alarm 280.002 is raised (0-86400).
    pub out_of_sync_alarm_after_secs: u32,
}

impl Default for DcSettings {
    fn default() -> Self {
        DcSettings {
            offline_after_secs: 10,
            out_of_sync_alarm_after_secs: 30,
        }
    }
}

impl DcSettings {
    /// Checks the ranges; the message names the bad setting.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=3600).contains(&self.offline_after_secs) {
            return Err(Error::InvalidSetting(format!(
                "offline_after_secs must be between 1 and 3600, not {}",
                self.offline_after_secs
            )));
        }
        if self.out_of_sync_alarm_after_secs > 86_400 {
            return Err(Error::InvalidSetting(format!(
                "out_of_sync_alarm_after_secs must be between 0 and 86400, not {}",
                self.out_of_sync_alarm_after_secs
            )));
        }
        Ok(())
    }

    pub(crate) fn offline_after_micros(&self) -> i64 {
        i64::from(self.offline_after_secs) * 1_000_000
    }

    pub(crate) fn out_of_sync_after_micros(&self) -> i64 {
        i64::from(self.out_of_sync_alarm_after_secs) * 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ten_and_thirty_seconds_and_valid() {
        let s = DcSettings::default();
        assert_eq!(s.offline_after_secs, 10);
        assert_eq!(s.out_of_sync_alarm_after_secs, 30);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn out_of_range_settings_are_named_in_the_error() {
        let s = DcSettings {
            offline_after_secs: 0,
            ..DcSettings::default()
        };
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("offline_after_secs")
        );
        let s = DcSettings {
            out_of_sync_alarm_after_secs: 100_000,
            ..DcSettings::default()
        };
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("out_of_sync_alarm_after_secs")
        );
    }
}

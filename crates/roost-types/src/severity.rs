use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Alarm and event severity, ITU X.733 style, in rank order
/// `critical > major > minor > warning`, plus `not-applicable` for logs
/// that carry no severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
    NotApplicable,
}

impl Severity {
    /// Every alarm severity, most severe first.
    pub const ALARM_SEVERITIES: [Severity; 4] = [
        Severity::Critical,
        Severity::Major,
        Severity::Minor,
        Severity::Warning,
    ];

    /// Rank used for ordering: 0 is the most severe.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Critical => 0,
            Severity::Major => 1,
            Severity::Minor => 2,
            Severity::Warning => 3,
            Severity::NotApplicable => 4,
        }
    }

    /// True when `self` is at least as severe as `threshold`.
    pub fn at_or_above(self, threshold: Severity) -> bool {
        self.rank() <= threshold.rank()
    }

    /// The wire spelling (`critical`, `major`, `minor`, `warning`, `not-applicable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Warning => "warning",
            Severity::NotApplicable => "not-applicable",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "major" => Ok(Severity::Major),
            "minor" => Ok(Severity::Minor),
            "warning" | "warnings" => Ok(Severity::Warning),
            "not-applicable" | "not_applicable" | "na" => Ok(Severity::NotApplicable),
            _ => Err(Error::InvalidSeverity(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_x733_order() {
        assert!(Severity::Critical.at_or_above(Severity::Major));
        assert!(Severity::Major.at_or_above(Severity::Major));
        assert!(!Severity::Minor.at_or_above(Severity::Major));
        assert!(Severity::Warning.at_or_above(Severity::Warning));
    }

    #[test]
    fn spellings_round_trip() {
        for s in Severity::ALARM_SEVERITIES {
            assert_eq!(s.as_str().parse::<Severity>().unwrap(), s);
        }
        assert!("huge".parse::<Severity>().is_err());
    }
}

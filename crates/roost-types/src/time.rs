//! Timestamps (UTC, microsecond resolution) and the injected clock.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// A UTC instant with microsecond resolution, counted from the Unix epoch.
///
/// It prints in StarlingX's naive UTC form, `2026-11-26T18:16:12.086207`,
/// which StarlingX's clients read as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// This instant plus `secs` seconds.
    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }

    /// RFC 3339 with a `Z` suffix (what Keystone clients expect for `expires_at`).
    pub fn to_rfc3339(self) -> String {
        format!("{self}Z")
    }
}

// Howard Hinnant's days-from-civil and civil-from-days algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.rem_euclid(1_000_000);
        let secs = self.0.div_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    /// Accepts `YYYY-MM-DD`, optionally followed by `T` or a space and
    /// `HH:MM[:SS[.fraction]]`, optionally followed by `Z` or `+00:00`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || Error::InvalidTimestamp(s.to_string());
        let t = s.trim();
        let t = t
            .strip_suffix('Z')
            .or_else(|| t.strip_suffix("+00:00"))
            .unwrap_or(t);
        let (date, time) = match t.find(['T', ' ']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let num = |p: &str, len: usize| -> Result<i64, Error> {
            if p.len() != len || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse::<i64>().map_err(|_| err())
        };
        let mut dp = date.split('-');
        let (y, m, d) = match (dp.next(), dp.next(), dp.next(), dp.next()) {
            (Some(y), Some(m), Some(d), None) => (num(y, 4)?, num(m, 2)?, num(d, 2)?),
            _ => return Err(err()),
        };
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(err());
        }
        let (mut hh, mut mm, mut ss, mut us) = (0, 0, 0, 0);
        if let Some(time) = time {
            let (hms, frac) = match time.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (time, None),
            };
            let mut tp = hms.split(':');
            hh = num(tp.next().ok_or_else(err)?, 2)?;
            mm = num(tp.next().ok_or_else(err)?, 2)?;
            if let Some(sec) = tp.next() {
                ss = num(sec, 2)?;
            }
            if tp.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
                return Err(err());
            }
            if let Some(frac) = frac {
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                let mut digits = frac.to_string();
                digits.truncate(6);
                while digits.len() < 6 {
                    digits.push('0');
                }
                us = digits.parse::<i64>().map_err(|_| err())?;
            }
        }
        let days = days_from_civil(y, m, d);
        Ok(Timestamp(
            ((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1_000_000 + us,
        ))
    }
}

/// The source of "now" for every domain decision. Injected so that tests
/// control time instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The wall clock. Successive readings never go backwards, so events
/// stamped by it keep their order even if the system clock steps back.
#[derive(Debug, Default)]
pub struct SystemClock {
    last: AtomicI64,
}

impl SystemClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let prev = self.last.fetch_max(wall, Ordering::AcqRel);
        Timestamp(prev.max(wall))
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(start.0)),
        }
    }

    /// Moves the clock forward by `micros`.
    pub fn advance_micros(&self, micros: i64) {
        self.now.fetch_add(micros, Ordering::AcqRel);
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_micros(secs * 1_000_000);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prints_naive_utc_with_micros() {
        let t: Timestamp = "2026-11-26T18:16:12.086207".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-26T18:16:12.086207");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000");
    }

    #[test]
    fn parses_the_forms_clients_send() {
        let a: Timestamp = "2026-11-01 10:00:00".parse().unwrap();
        let b: Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
        let c: Timestamp = "2026-11-01T10:00".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        let d: Timestamp = "2026-11-01".parse().unwrap();
        assert_eq!(d.plus_secs(36_000), a);
        assert!("2026-13-01".parse::<Timestamp>().is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("2026-11-01T25:00".parse::<Timestamp>().is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp(5));
        assert_eq!(c.now(), Timestamp(5));
        c.advance_micros(10);
        assert_eq!(c.now(), Timestamp(15));
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(us in 0i64..8_000_000_000_000_000) {
            let t = Timestamp(us);
            prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }
}

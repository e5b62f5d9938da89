//! Kubernetes resource quantities (`"250m"`, `"2"`, `"0.5"`, `"128Mi"`,
//! `"1G"`, `"1e3"`), read exactly with integers: CPU in millicores and
//! memory in bytes, rounded up as Kubernetes rounds.

use crate::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A quantity as written in a manifest, checked when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    /// mantissa * 10^exp10 * 2^exp2
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, Error> {
        let err = || Error::Quantity(text.to_string());
        let s = text.trim();
        let s = s.strip_prefix('+').unwrap_or(s);
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, suffix) = s.split_at(num_end);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') || int.len() + frac.len() > 30
        {
            return Err(err());
        }
        let mut mantissa: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa * 10 + u128::from(b - b'0');
        }
        let mut exp10 = -(frac.len() as i32);
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            e if e.starts_with(['e', 'E']) => {
                let n: i32 = e[1..].parse().map_err(|_| err())?;
                if !(-30..=30).contains(&n) {
                    return Err(err());
                }
                exp10 += n;
            }
            _ => return Err(err()),
        }
        Ok(Quantity {
            text: text.to_string(),
            mantissa,
            exp10,
            exp2,
        })
    }

    /// The value times `factor`, rounded up; `None` past `u64`.
    fn scaled_ceil(&self, factor: u128) -> Option<u64> {
        let mut num = self.mantissa.checked_mul(factor)?;
        num = num.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let mut den: u128 = 1;
        if self.exp10 >= 0 {
            num = num.checked_mul(10u128.checked_pow(self.exp10 as u32)?)?;
        } else {
            match 10u128.checked_pow(self.exp10.unsigned_abs()) {
                Some(d) => den = d,
                // Smaller than any unit: anything non-zero rounds up to 1.
                None => return Some(u64::from(num > 0)),
            }
        }
        u64::try_from(num.div_ceil(den)).ok()
    }

    /// CPU in millicores ("250m" = 250, "2" = 2000, "0.5" = 500), rounded up.
    pub fn cpu_millis(&self) -> Option<u64> {
        self.scaled_ceil(1000)
    }

    /// Bytes ("128Mi" = 134217728, "1G" = 10^9), rounded up.
    pub fn bytes(&self) -> Option<u64> {
        self.scaled_ceil(1)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            U(u64),
            F(f64),
            S(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::U(u) => u.to_string(),
            Raw::F(f) => f.to_string(),
            Raw::S(s) => s,
        };
        let q = Quantity::parse(&text).map_err(serde::de::Error::custom)?;
        if q.cpu_millis().is_none() {
            return Err(serde::de::Error::custom(format!(
                "quantity {text:?} is too large"
            )));
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory() {
        let cpu = |s: &str| Quantity::parse(s).unwrap().cpu_millis().unwrap();
        let mem = |s: &str| Quantity::parse(s).unwrap().bytes().unwrap();
        assert_eq!(cpu("250m"), 250);
        assert_eq!(cpu("2"), 2000);
        assert_eq!(cpu("0.5"), 500);
        assert_eq!(cpu(".1"), 100);
        assert_eq!(cpu("1.0005"), 1001); // rounded up to the next millicore
        assert_eq!(cpu("100u"), 1);
        assert_eq!(mem("128Mi"), 128 << 20);
        assert_eq!(mem("1G"), 1_000_000_000);
        assert_eq!(mem("1.5Gi"), 3 << 29);
        assert_eq!(mem("129e6"), 129_000_000);
        assert_eq!(mem("1k"), 1000);
        assert_eq!(mem("1Ki"), 1024);
        assert_eq!(mem("0.5"), 1);
        assert_eq!(mem("12E-1"), 2);
        for bad in ["", "m", "-1", "1.2.3", "1Xi", "1 Gi", "0x10", "1e99", "Mi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Quantity::parse("100Ei").unwrap().bytes(), None);
    }

    #[test]
    fn from_yaml_numbers_and_strings() {
        let q: Vec<Quantity> = serde_norway::from_str("[2, 0.5, '250m', 128Mi]").unwrap();
        let m: Vec<u64> = q.iter().map(|q| q.cpu_millis().unwrap()).collect();
        assert_eq!(m, [2000, 500, 250, 134217728000]);
        assert!(serde_norway::from_str::<Quantity>("lots").is_err());
    }
}

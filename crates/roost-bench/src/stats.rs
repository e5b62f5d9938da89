//! Latency distributions and number formatting.

use std::time::Duration;

/// Every sample of one measurement, sorted; percentiles are read by rank.
#[derive(Debug, Clone, Default)]
pub struct Dist {
    sorted: Vec<Duration>,
}

impl Dist {
    /// Keeps all `samples`, sorted.
    pub fn new(mut samples: Vec<Duration>) -> Dist {
        samples.sort_unstable();
        Dist { sorted: samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `p`-th percentile (nearest rank: the smallest sample with at
    /// least `p` % of the samples at or below it); zero when empty.
    pub fn pct(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let n = self.sorted.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    /// Smallest sample.
    pub fn min(&self) -> Duration {
        self.sorted.first().copied().unwrap_or_default()
    }

    /// Largest sample.
    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }
}

/// Milliseconds with a precision that suits the magnitude: `0.412`, `3.21`, `41.7`, `1234`.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        group(v.round() as u64)
    }
}

/// An integer with thousands separators: `12,345`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count in human units: `812 B`, `93.4 KiB`, `4.1 MiB`.
pub fn bytes(n: usize) -> String {
    let f = n as f64;
    if f < 1024.0 {
        format!("{n} B")
    } else if f < 1024.0 * 1024.0 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{:.1} MiB", f / (1024.0 * 1024.0))
    }
}

/// How many times better `ours` is than `theirs`, as `"12× higher"` when
/// higher is better, or `"12× lower"` when lower is better.
pub fn ratio(ours: f64, theirs: f64, higher_is_better: bool) -> String {
    if ours <= 0.0 || theirs <= 0.0 {
        return "—".into();
    }
    let (r, word) = if higher_is_better {
        (ours / theirs, "higher")
    } else {
        (theirs / ours, "lower")
    };
    if r >= 10.0 {
        format!("{} × {word}", group(r.round() as u64))
    } else {
        format!("{r:.1} × {word}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let dist = Dist::new((1..=100).rev().map(d).collect());
        assert_eq!(dist.pct(50.0), d(50));
        assert_eq!(dist.pct(90.0), d(90));
        assert_eq!(dist.pct(99.0), d(99));
        assert_eq!(dist.pct(100.0), d(100));
        assert_eq!(dist.pct(0.0), d(1));
        assert_eq!(dist.min(), d(1));
        assert_eq!(dist.max(), d(100));
        let one = Dist::new(vec![d(7)]);
        assert_eq!(one.pct(50.0), d(7));
        assert_eq!(one.pct(99.0), d(7));
        assert_eq!(Dist::default().pct(50.0), Duration::ZERO);
    }

    #[test]
    fn numbers_are_formatted() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(ms(Duration::from_micros(412)), "0.412");
        assert_eq!(ms(Duration::from_micros(3210)), "3.21");
        assert_eq!(ms(Duration::from_micros(41_700)), "41.7");
        assert_eq!(ms(Duration::from_millis(3400)), "3,400");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(ratio(420.0, 42.0, true), "10 × higher");
        assert_eq!(ratio(2.0, 10.0, false), "5.0 × lower");
        assert_eq!(ratio(0.0, 10.0, false), "—");
    }
}

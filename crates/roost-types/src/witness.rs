//! The witness: a third party (a small process on a third host, or on the
//! system controller) that fences duplex controllers without a BMC. It
//! holds one lease per controller pair; a controller may act alone (commit
//! without its peer's replica, or take over from a lost peer) only while it
//! holds that lease. The witness hands the lease to the other controller
//! only once it expired, so two controllers never both hold it.
//!
//! Pure: fed the claims and the witness's monotonic time (microseconds);
//! the process around it ([`Witness`] in `roost_server::witness`) serves it.
//!
//! A witness that restarts has forgotten who held each lease: for the
//! longest lease it grants (`max_ttl`) it grants nothing, so that any lease
//! granted before the restart has expired first.

use std::collections::HashMap;

/// One pair's lease at the witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub holder: String,
    /// Witness time it ends at (microseconds).
    pub expires: i64,
    /// Grows each time the lease changes hands.
    pub epoch: u64,
}

/// The witness's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The claimant holds the lease for the asked length from now.
    /// `previous_ended`: when it changed hands, the witness time the
    /// previous holder's lease ended (`None`: a renewal, or no holder is
    /// known, so it may have ended as late as now).
    Granted {
        epoch: u64,
        previous_ended: Option<i64>,
    },
    /// Someone else holds it (`None`: unknown, the witness restarted) for
    /// `left` more microseconds.
    Held { holder: Option<String>, left: i64 },
}

/// Why a claim was not considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    TooLong { asked: i64, max: i64 },
    TooShort,
    Full(usize),
    BadName,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooLong { asked, max } => write!(
                f,
                "a lease of {asked} ms is longer than this witness grants ({max} ms)"
            ),
            Refused::TooShort => f.write_str("a lease must last at least 1 ms"),
            Refused::Full(n) => write!(f, "this witness already serves {n} controller pairs"),
            Refused::BadName => f.write_str("a pair and a controller name are 1 to 128 characters"),
        }
    }
}

/// The witness's state.
#[derive(Debug, Clone)]
pub struct Witness {
    pairs: HashMap<String, Grant>,
    /// When it started; it grants nothing before `started + max_ttl`.
    started: i64,
    max_ttl: i64,
    max_pairs: usize,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

impl Witness {
    pub fn new(now: i64, max_ttl: i64, max_pairs: usize) -> Witness {
        Witness {
            pairs: HashMap::new(),
            started: now,
            max_ttl,
            max_pairs,
        }
    }

    /// `who` claims (or renews) `pair`'s lease for `ttl` microseconds.
    pub fn claim(&mut self, pair: &str, who: &str, ttl: i64, now: i64) -> Result<Answer, Refused> {
        if !name_ok(pair) || !name_ok(who) {
            return Err(Refused::BadName);
        }
        if ttl > self.max_ttl {
            return Err(Refused::TooLong {
                asked: ttl / 1000,
                max: self.max_ttl / 1000,
            });
        }
        if ttl < 1000 {
            return Err(Refused::TooShort);
        }
        let blind_until = self.started.saturating_add(self.max_ttl);
        if now < blind_until {
            return Ok(Answer::Held {
                holder: None,
                left: blind_until - now,
            });
        }
        if !self.pairs.contains_key(pair) && self.pairs.len() >= self.max_pairs {
            return Err(Refused::Full(self.max_pairs));
        }
        let expires = now.saturating_add(ttl);
        let g = self.pairs.entry(pair.to_string()).or_insert_with(|| Grant {
            holder: who.to_string(),
            expires: 0,
            epoch: 0,
        });
        if g.holder == who && g.expires > now {
            // A renewal: never shortens the lease.
            g.expires = g.expires.max(expires);
            return Ok(Answer::Granted {
                epoch: g.epoch,
                previous_ended: None,
            });
        }
        if g.expires > now {
            return Ok(Answer::Held {
                holder: Some(g.holder.clone()),
                left: g.expires - now,
            });
        }
        let previous_ended = (g.epoch > 0).then_some(g.expires);
        g.holder = who.to_string();
        g.expires = expires;
        g.epoch += 1;
        Ok(Answer::Granted {
            epoch: g.epoch,
            previous_ended,
        })
    }

    /// `who` gives `pair`'s lease up (it stopped acting): the other may
    /// claim it at once. Whether it held it.
    pub fn release(&mut self, pair: &str, who: &str, now: i64) -> bool {
        match self.pairs.get_mut(pair) {
            Some(g) if g.holder == who && g.expires > now => {
                g.expires = now;
                true
            }
            _ => false,
        }
    }

    /// The pair's lease, if one was ever granted.
    pub fn lease(&self, pair: &str) -> Option<&Grant> {
        self.pairs.get(pair)
    }
}

/// The default name of a controller pair at a witness: both names, in order.
pub fn pair_name(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}+{b}")
    } else {
        format!("{b}+{a}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const MAX: i64 = 10 * S;

    fn granted(epoch: u64, previous_ended: Option<i64>) -> Answer {
        Answer::Granted {
            epoch,
            previous_ended,
        }
    }

    fn started() -> Witness {
        // Past the blind period after a start at 0.
        Witness::new(0, MAX, 4)
    }

    #[test]
    fn the_first_claim_after_the_blind_period_is_granted_and_renewed() {
        let mut w = started();
        let t = MAX;
        assert_eq!(w.claim("p", "c0", S, t), Ok(granted(1, None)));
        assert_eq!(w.claim("p", "c0", S, t + S / 2), Ok(granted(1, None)));
        assert_eq!(w.lease("p").map(|g| g.expires), Some(t + S / 2 + S));
    }

    #[test]
    fn another_controller_waits_until_the_lease_expired_and_gets_a_new_epoch() {
        let mut w = started();
        let t = MAX;
        w.claim("p", "c0", S, t).unwrap();
        assert_eq!(
            w.claim("p", "c1", S, t + S / 4),
            Ok(Answer::Held {
                holder: Some("c0".into()),
                left: 3 * S / 4
            })
        );
        // It says when the old lease ended: the new holder knows since
        // when the old one stopped acting.
        assert_eq!(
            w.claim("p", "c1", S, t + S + 7),
            Ok(granted(2, Some(t + S)))
        );
        // The old holder's renewal is now refused: it must stop acting.
        assert_eq!(
            w.claim("p", "c0", S, t + S + 8),
            Ok(Answer::Held {
                holder: Some("c1".into()),
                left: S - 1
            })
        );
    }

    #[test]
    fn a_restarted_witness_grants_nothing_for_the_longest_lease() {
        let mut w = Witness::new(5 * S, MAX, 4);
        assert_eq!(
            w.claim("p", "c0", S, 6 * S),
            Ok(Answer::Held {
                holder: None,
                left: 9 * S
            })
        );
        // Nobody is known to have held it: no end is given.
        assert_eq!(w.claim("p", "c1", S, 15 * S), Ok(granted(1, None)));
    }

    #[test]
    fn a_release_frees_the_lease_at_once_but_only_by_its_holder() {
        let mut w = started();
        let t = MAX;
        w.claim("p", "c0", S, t).unwrap();
        assert!(!w.release("p", "c1", t + 1));
        assert!(matches!(
            w.claim("p", "c1", S, t + 2),
            Ok(Answer::Held { .. })
        ));
        assert!(w.release("p", "c0", t + 3));
        assert_eq!(w.claim("p", "c1", S, t + 4), Ok(granted(2, Some(t + 3))));
    }

    #[test]
    fn pairs_are_independent_and_bounded() {
        let mut w = started();
        let t = MAX;
        for p in ["a", "b", "c", "d"] {
            assert_eq!(w.claim(p, "c0", S, t), Ok(granted(1, None)));
        }
        assert_eq!(w.claim("e", "c0", S, t), Err(Refused::Full(4)));
        // A known pair still works when full.
        assert!(matches!(w.claim("a", "c1", S, t), Ok(Answer::Held { .. })));
    }

    #[test]
    fn leases_longer_than_the_maximum_or_bad_names_are_refused() {
        let mut w = started();
        assert_eq!(
            w.claim("p", "c0", MAX + 1, MAX),
            Err(Refused::TooLong {
                asked: 10_000,
                max: 10_000
            })
        );
        assert_eq!(w.claim("p", "c0", 10, MAX), Err(Refused::TooShort));
        assert_eq!(w.claim("", "c0", S, MAX), Err(Refused::BadName));
        assert_eq!(
            w.claim("p", &"x".repeat(129), S, MAX),
            Err(Refused::BadName)
        );
        assert!(w.lease("p").is_none());
    }

    #[test]
    fn the_pair_name_does_not_depend_on_who_asks() {
        assert_eq!(
            pair_name("controller-1", "controller-0"),
            "controller-0+controller-1"
        );
        assert_eq!(
            pair_name("controller-0", "controller-1"),
            "controller-0+controller-1"
        );
    }
}

//! The controller lease: which of the servers sharing one store is the
//! active controller. Pure decisions, fed the lease row as stored and the
//! time; the store reads and writes the row, the server acts.
//!
//! One server holds the lease at a time, under an epoch that grows by one
//! at every change of holder. The holder renews it well before it expires;
//! the others wait until it has expired (by the database's clock) and then
//! take it with the next epoch. A holder that could not renew in time stops
//! acting as active by its own clock before the lease can have expired by
//! the database's, so two servers never both act.

/// The lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The server holding it (its `[ha] name`).
    pub holder: String,
    pub epoch: i64,
    /// When it expires, microseconds by the database's clock.
    pub expires_at: i64,
    /// Where the holder serves the API, for the others to send clients to.
    pub url: String,
}

/// What a server that does not hold the lease does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Take the lease (there is none, or it expired). A live lease under
    /// the asking server's own name is `Wait` too: only the server can tell
    /// whether it is its own previous process (same address) or another
    /// server given the same name by mistake.
    Take,
    /// Another server is active: send clients to `url` and look again later.
    Wait { holder: String, url: String },
}

/// What a server that does not hold the lease does next, given the lease
/// row and the database's time `now`.
pub fn next(row: Option<&LeaseRow>, now: i64) -> Next {
    match row {
        None => Next::Take,
        Some(r) if r.expires_at <= now => Next::Take,
        Some(r) => Next::Wait {
            holder: r.holder.clone(),
            url: r.url.clone(),
        },
    }
}

/// The lease as its holder keeps it, by its own monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub epoch: i64,
    /// Lease length, microseconds.
    pub ttl: i64,
    /// When the last renewal that succeeded was started (local clock).
    pub renewed_at: i64,
}

impl Holding {
    /// Taken (or renewed) by a request started at `started` (local clock).
    pub fn new(epoch: i64, ttl: i64, started: i64) -> Holding {
        Holding {
            epoch,
            ttl,
            renewed_at: started,
        }
    }

    /// A renewal started at `started` succeeded.
    pub fn renewed(&mut self, started: i64) {
        self.renewed_at = self.renewed_at.max(started);
    }

    /// Whether the lease may have expired by `now` (local clock): the
    /// holder must stop acting. The database's expiry is at least `ttl`
    /// after the renewal's start, so this comes first.
    pub fn lapsed(&self, now: i64) -> bool {
        now >= self.renewed_at.saturating_add(self.ttl)
    }

    /// How often to renew: four times per lease, so that one or two slow
    /// renewals do not lose it.
    pub fn renew_every(&self) -> i64 {
        (self.ttl / 4).max(1)
    }
}

/// The entity of the controllers' redundancy alarm (400.002).
pub const CONTROLLER_SERVICES: &str = "service_domain=controller.service_group=controller-services";

/// The alarms the active controller keeps about its peers: 400.002 (loss
/// of redundancy, major) while a duplex system has no standby connected,
/// and 400.001 (service group failure, critical) for a controller whose
/// lease this one took over, until it is connected again. Each is
/// (alarm id, entity, raised) for the active named `me`, given the servers
/// connected to the store.
pub fn redundancy(
    me: &str,
    connected: &[String],
    duplex: bool,
    failed: Option<&str>,
) -> Vec<(&'static str, String, bool)> {
    let others = connected.iter().any(|c| c != me);
    let mut out = vec![(
        "400.002",
        CONTROLLER_SERVICES.to_string(),
        duplex && !others,
    )];
    if let Some(f) = failed.filter(|f| *f != me) {
        out.push((
            "400.001",
            format!("{CONTROLLER_SERVICES}.host={f}"),
            !connected.iter().any(|c| c == f),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(holder: &str, epoch: i64, expires_at: i64) -> LeaseRow {
        LeaseRow {
            holder: holder.into(),
            epoch,
            expires_at,
            url: format!("http://{holder}"),
        }
    }

    #[test]
    fn the_lease_is_taken_when_free_or_expired_even_our_own() {
        assert_eq!(next(None, 10), Next::Take);
        assert_eq!(next(Some(&row("c1", 3, 10)), 10), Next::Take);
        assert_eq!(
            next(Some(&row("c0", 3, 11)), 10),
            Next::Wait {
                holder: "c0".into(),
                url: "http://c0".into()
            }
        );
        assert_eq!(
            next(Some(&row("c1", 3, 11)), 10),
            Next::Wait {
                holder: "c1".into(),
                url: "http://c1".into()
            }
        );
    }

    #[test]
    fn redundancy_is_lost_without_a_standby_and_a_failed_peer_is_failed_until_it_returns() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = redundancy("c1", &names(&["c1"]), true, Some("c0"));
        assert_eq!(
            r,
            vec![
                ("400.002", CONTROLLER_SERVICES.to_string(), true),
                ("400.001", format!("{CONTROLLER_SERVICES}.host=c0"), true),
            ]
        );
        let r = redundancy("c1", &names(&["c0", "c1"]), true, Some("c0"));
        assert!(r.iter().all(|(_, _, raised)| !raised), "{r:?}");
        // A simplex system, or one that started alone, has no peer to miss.
        assert_eq!(
            redundancy("c0", &names(&["c0"]), false, None),
            vec![("400.002", CONTROLLER_SERVICES.to_string(), false)]
        );
    }

    #[test]
    fn a_holder_stops_acting_one_ttl_after_its_last_good_renewal_started() {
        let mut h = Holding::new(4, 1000, 0);
        assert_eq!(h.renew_every(), 250);
        assert!(!h.lapsed(999));
        assert!(h.lapsed(1000));
        h.renewed(250);
        assert!(!h.lapsed(1249));
        assert!(h.lapsed(1250));
        // A renewal answered late but started earlier does not move it back.
        h.renewed(100);
        assert!(h.lapsed(1250));
    }
}

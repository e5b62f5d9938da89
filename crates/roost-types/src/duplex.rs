//! Duplex controllers without an external database: each controller runs
//! its own PostgreSQL, the active's the primary, the standby's a streaming
//! replica of it. Pure decisions, fed what a controller sees of its own
//! database and of its peer's (times on its monotonic clock, microseconds); the
//! server carries them out.
//!
//! The rules that keep acknowledged writes and a single primary:
//! - A replica is promoted only once the peer is known not to be a
//!   primary: it answered as a replica, or it was fenced (powered off
//!   through its BMC). Without a way to fence, the standby does not
//!   promote and says why.
//! - The primary commits synchronously (each commit waits for the
//!   replica's flush) while the replica streams. When the replica has not
//!   streamed for `grace`, the primary goes on alone (asynchronous) so that
//!   a lost standby does not stop the cloud. A replica is therefore safe to
//!   promote only if the peer was fenced less than `grace` after the last
//!   moment the replica was seen in synchronous standing: later, the peer
//!   may have acknowledged writes the replica never received.

/// This controller's own database, as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// No database yet.
    Missing,
    /// A primary (it was active, or bootstrapped).
    Primary,
    /// A replica (it follows the peer).
    Replica,
}

/// The peer controller's database, as seen over the network now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// It does not answer.
    Unreachable,
    /// A primary. `active`: a controller holds an unexpired lease in it,
    /// or did within the last few lease lengths (a server about to take
    /// it is not a lost one).
    Primary { active: bool },
    /// A replica, having received WAL up to `lsn`.
    Replica { lsn: u64 },
}

/// How the peer can be fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fencing {
    /// Through its BMC (Redfish power-off).
    Bmc,
    /// Through a witness ([`crate::witness`]): the lease there, which the
    /// peer must hold to act alone, is taken once it expired.
    Witness,
    /// No way is configured.
    None,
}

/// What a controller that is not yet active knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub local: Local,
    pub peer: Peer,
    /// This replica received WAL up to here (0 when not a replica).
    pub local_lsn: u64,
    /// This controller's and the peer's names.
    pub me: String,
    pub peer_name: String,
    /// It may create the database when it finds none and no peer.
    pub bootstrap: bool,
    /// It just gave activity up (a swact): it does not take it back yet.
    pub yielding: bool,
    /// The lease, as this controller's database last saw it, was given up
    /// by the peer (a swact or a stop of the active), not lost.
    pub released: bool,
    /// It was given up by this controller itself: the peer goes first.
    pub gave_up: bool,
    pub fencing: Fencing,
    /// When the peer was powered off by this controller, if it was.
    pub fenced_at: Option<i64>,
    /// The last time the primary reported this replica as its synchronous
    /// standby.
    pub last_sync: Option<i64>,
    /// The replica is running but has not streamed from a reachable
    /// primary for a while: its history diverged and it needs a fresh copy.
    pub replica_stuck: bool,
    /// How long the primary waits for a lost replica before committing
    /// alone, microseconds.
    pub grace: i64,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the local database as the primary and become active.
    BePrimary,
    /// Create a new database here and become active (bootstrap).
    Create,
    /// Follow the peer's primary as a replica; `resync`: copy its whole
    /// database first (this one is missing, was a primary, or diverged).
    Follow { resync: bool },
    /// Fence the peer: power it off through its BMC, or take the
    /// witness's lease from it once it expired.
    Fence,
    /// Promote the local replica to primary and become active.
    Promote,
    /// Turn the local primary into a replica of the peer (after giving
    /// activity up), so that the peer can promote without fencing.
    Demote,
    /// Do nothing yet; the reason is shown to operators.
    Wait(String),
    /// The peer is lost and this controller must not take over; why.
    Refuse(String),
}

impl std::fmt::Display for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Local::Missing => "missing",
            Local::Primary => "primary",
            Local::Replica => "replica",
        })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unreachable => f.write_str("unreachable"),
            Peer::Primary { active: true } => f.write_str("active primary"),
            Peer::Primary { active: false } => f.write_str("primary with no active controller"),
            Peer::Replica { lsn } => write!(f, "replica at {lsn}"),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::BePrimary => f.write_str("run as the primary"),
            Action::Create => f.write_str("create the database"),
            Action::Follow { resync: true } => {
                f.write_str("copy the peer's database and follow it")
            }
            Action::Follow { resync: false } => f.write_str("follow the peer's database"),
            Action::Fence => f.write_str("fence the peer"),
            Action::Promote => f.write_str("promote the replica"),
            Action::Demote => f.write_str("turn into a replica of the peer"),
            Action::Wait(why) => write!(f, "wait: {why}"),
            Action::Refuse(why) => write!(f, "refuse: {why}"),
        }
    }
}

/// The next step for a controller that is not yet active.
pub fn decide(f: &Facts) -> Action {
    match (&f.peer, f.local) {
        (Peer::Primary { active: true }, local) => Action::Follow {
            resync: local != Local::Replica || f.replica_stuck,
        },
        (Peer::Primary { active: false }, Local::Missing) => Action::Follow { resync: true },
        // The peer's database lives but no controller is active on it: its
        // server died or hangs. It is not known to be stopped, so it is
        // fenced like a lost controller.
        (Peer::Primary { active: false }, _) | (Peer::Unreachable, Local::Replica) => take_over(f),
        (Peer::Unreachable, Local::Primary) => match f.fenced_at {
            Some(_) => Action::BePrimary,
            None => fence_or_refuse(
                f,
                "this controller's database was the primary but the peer cannot be reached: it may have taken over meanwhile",
            ),
        },
        (Peer::Unreachable, Local::Missing) if f.bootstrap => Action::Create,
        (Peer::Unreachable, Local::Missing) => Action::Wait(format!(
            "no database here yet and {} cannot be reached to copy one from",
            f.peer_name
        )),
        (Peer::Replica { .. }, Local::Primary) if !f.yielding => Action::BePrimary,
        (Peer::Replica { .. }, Local::Primary) => Action::Demote,
        // The peer gave activity up and follows: this one, as far ahead,
        // takes over without fencing.
        (Peer::Replica { lsn }, Local::Replica) if !f.yielding && f.released => {
            if f.local_lsn >= *lsn {
                Action::Promote
            } else {
                Action::Wait(format!(
                    "{} gave activity up; waiting to receive all it wrote",
                    f.peer_name
                ))
            }
        }
        (Peer::Replica { lsn }, Local::Replica) if !f.yielding && f.gave_up => {
            if f.local_lsn > *lsn {
                Action::Promote
            } else {
                Action::Wait(format!(
                    "this controller gave activity up; {} takes over",
                    f.peer_name
                ))
            }
        }
        (Peer::Replica { lsn }, Local::Replica) if !f.yielding => {
            if f.local_lsn > *lsn || (f.local_lsn == *lsn && f.me < f.peer_name) {
                Action::Promote
            } else {
                Action::Wait(format!(
                    "both databases are replicas; {} is ahead or first by name and takes over",
                    f.peer_name
                ))
            }
        }
        (Peer::Replica { .. }, _) if f.yielding => {
            Action::Wait("this controller gave activity up; the peer takes over".into())
        }
        (Peer::Replica { .. }, _) => Action::Wait(format!(
            "no database here yet and {} has no primary to copy from",
            f.peer_name
        )),
    }
}

/// The peer is lost (or its server is): fence it, then promote this
/// replica if it was in synchronous standing within `grace` of the fence.
fn take_over(f: &Facts) -> Action {
    let Some(fenced_at) = f.fenced_at else {
        return fence_or_refuse(f, "the active controller is lost");
    };
    if f.local == Local::Primary {
        return Action::BePrimary;
    }
    match f.last_sync {
        Some(s) if fenced_at.saturating_sub(s) < f.grace => Action::Promote,
        Some(s) => Action::Refuse(format!(
            "{} was fenced {} ms after this replica was last in synchronous standing, longer than the {} ms the primary waits before committing alone: it may hold acknowledged writes this replica lacks; not promoting",
            f.peer_name,
            fenced_at.saturating_sub(s) / 1000,
            f.grace / 1000,
        )),
        None => Action::Refuse(format!(
            "this replica was not in synchronous standing with {} since this controller started: it may lack acknowledged writes; not promoting",
            f.peer_name
        )),
    }
}

fn fence_or_refuse(f: &Facts, why: &str) -> Action {
    match f.fencing {
        Fencing::Bmc | Fencing::Witness => Action::Fence,
        Fencing::None => Action::Refuse(format!(
            "{why}, and there is no way to fence {} (set [ha] peer_bmc or witness): not taking over, so that two controllers never both act",
            f.peer_name
        )),
    }
}

/// What the primary's synchronous replication should be, given whether
/// the replica streams now and since when it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncState {
    /// Commits wait for the replica.
    pub synchronous: bool,
    /// Since when (local clock) no replica has streamed, if none does.
    pub lost_since: Option<i64>,
}

impl SyncState {
    /// A new primary starts synchronous only if its replica streams:
    /// one that took over from a lost peer has none to wait for.
    pub fn new(streaming: bool, now: i64) -> SyncState {
        SyncState {
            synchronous: streaming,
            lost_since: (!streaming).then_some(now),
        }
    }

    /// Whether commits should wait for the replica after this look at it.
    pub fn observe(&mut self, streaming: bool, now: i64, grace: i64) -> bool {
        if streaming {
            self.lost_since = None;
            self.synchronous = true;
        } else {
            let since = *self.lost_since.get_or_insert(now);
            if now.saturating_sub(since) >= grace {
                self.synchronous = false;
            }
        }
        self.synchronous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: i64 = 5_000_000;

    fn facts(local: Local, peer: Peer) -> Facts {
        Facts {
            local,
            peer,
            local_lsn: 100,
            me: "controller-1".into(),
            peer_name: "controller-0".into(),
            bootstrap: false,
            yielding: false,
            released: false,
            gave_up: false,
            fencing: Fencing::Bmc,
            fenced_at: None,
            last_sync: Some(1_000_000),
            replica_stuck: false,
            grace: GRACE,
        }
    }

    #[test]
    fn a_live_primary_is_followed_and_copied_unless_already_followed() {
        let live = Peer::Primary { active: true };
        assert_eq!(
            decide(&facts(Local::Replica, live.clone())),
            Action::Follow { resync: false }
        );
        for local in [Local::Missing, Local::Primary] {
            assert_eq!(
                decide(&facts(local, live.clone())),
                Action::Follow { resync: true }
            );
        }
        let mut f = facts(Local::Replica, live);
        f.replica_stuck = true;
        assert_eq!(decide(&f), Action::Follow { resync: true });
    }

    #[test]
    fn a_lost_peer_is_fenced_before_the_replica_is_promoted() {
        let mut f = facts(Local::Replica, Peer::Unreachable);
        assert_eq!(decide(&f), Action::Fence);
        f.fenced_at = Some(2_000_000);
        assert_eq!(decide(&f), Action::Promote);
        // A peer whose server is gone but whose database answers is fenced
        // too.
        let mut f = facts(Local::Replica, Peer::Primary { active: false });
        assert_eq!(decide(&f), Action::Fence);
        f.fenced_at = Some(1);
        assert_eq!(decide(&f), Action::Promote);
    }

    #[test]
    fn a_witness_fences_as_a_bmc_does() {
        for local in [Local::Replica, Local::Primary] {
            let mut f = facts(local, Peer::Unreachable);
            f.fencing = Fencing::Witness;
            assert_eq!(decide(&f), Action::Fence, "{local}");
            f.fenced_at = Some(2_000_000);
            assert!(
                matches!(decide(&f), Action::Promote | Action::BePrimary),
                "{local}"
            );
        }
    }

    #[test]
    fn without_a_way_to_fence_the_standby_refuses_and_says_why() {
        let mut f = facts(Local::Replica, Peer::Unreachable);
        f.fencing = Fencing::None;
        match decide(&f) {
            Action::Refuse(why) => assert!(why.contains("no way to fence controller-0"), "{why}"),
            a => panic!("{a:?}"),
        }
        let mut f = facts(Local::Primary, Peer::Unreachable);
        f.fencing = Fencing::None;
        assert!(matches!(decide(&f), Action::Refuse(_)));
    }

    #[test]
    fn a_replica_out_of_synchronous_standing_too_long_is_not_promoted() {
        let mut f = facts(Local::Replica, Peer::Unreachable);
        f.fenced_at = Some(1_000_000 + GRACE);
        match decide(&f) {
            Action::Refuse(why) => assert!(why.contains("acknowledged writes"), "{why}"),
            a => panic!("{a:?}"),
        }
        f.fenced_at = Some(1_000_000 + GRACE - 1);
        assert_eq!(decide(&f), Action::Promote);
        f.last_sync = None;
        assert!(matches!(decide(&f), Action::Refuse(_)));
    }

    #[test]
    fn a_former_primary_acts_again_only_over_a_replica_or_after_fencing() {
        let f = facts(Local::Primary, Peer::Replica { lsn: 5 });
        assert_eq!(decide(&f), Action::BePrimary);
        let mut f = facts(Local::Primary, Peer::Unreachable);
        assert_eq!(decide(&f), Action::Fence);
        f.fenced_at = Some(0);
        assert_eq!(decide(&f), Action::BePrimary);
        // After a swact it turns into a replica and leaves activity to
        // the peer.
        let mut f = facts(Local::Primary, Peer::Replica { lsn: 5 });
        f.yielding = true;
        assert_eq!(decide(&f), Action::Demote);
        let mut f = facts(Local::Replica, Peer::Replica { lsn: 5 });
        f.yielding = true;
        assert!(matches!(decide(&f), Action::Wait(_)));
    }

    #[test]
    fn after_a_swact_the_standby_promotes_without_fencing_once_it_has_everything() {
        let mut f = facts(Local::Replica, Peer::Replica { lsn: 100 });
        f.me = "controller-9".into();
        // Given up by this controller itself: the peer takes over.
        assert!(matches!(decide(&f), Action::Wait(_)));
        f.released = true;
        f.local_lsn = 99;
        assert!(matches!(decide(&f), Action::Wait(_)));
        f.local_lsn = 100;
        assert_eq!(decide(&f), Action::Promote);
        // Its peer, which gave it up, waits, even first by name, unless it
        // alone has the latest writes.
        let mut p = facts(Local::Replica, Peer::Replica { lsn: 100 });
        p.me = "controller-0".into();
        p.peer_name = "controller-9".into();
        p.gave_up = true;
        assert!(matches!(decide(&p), Action::Wait(_)));
        p.local_lsn = 101;
        assert_eq!(decide(&p), Action::Promote);
    }

    #[test]
    fn two_replicas_promote_the_one_ahead_then_the_first_by_name() {
        let mut f = facts(Local::Replica, Peer::Replica { lsn: 100 });
        // controller-1 vs controller-0, equal: controller-0 goes first.
        assert!(matches!(decide(&f), Action::Wait(_)));
        f.local_lsn = 101;
        assert_eq!(decide(&f), Action::Promote);
        f.me = "controller-0".into();
        f.peer_name = "controller-1".into();
        f.local_lsn = 100;
        assert_eq!(decide(&f), Action::Promote);
    }

    #[test]
    fn only_the_bootstrap_controller_creates_a_database_alone() {
        let mut f = facts(Local::Missing, Peer::Unreachable);
        assert!(matches!(decide(&f), Action::Wait(_)));
        f.bootstrap = true;
        assert_eq!(decide(&f), Action::Create);
        // With a peer around it copies the peer's instead.
        f.peer = Peer::Primary { active: true };
        assert_eq!(decide(&f), Action::Follow { resync: true });
    }

    #[test]
    fn the_primary_commits_alone_only_after_the_replica_was_gone_for_the_grace() {
        let s = SyncState::new(false, 0);
        assert!(!s.synchronous);
        let mut s = SyncState::new(true, 0);
        assert!(s.observe(false, 1, GRACE));
        assert!(s.observe(false, GRACE, GRACE));
        assert!(!s.observe(false, GRACE + 1, GRACE));
        assert!(s.observe(true, GRACE + 1, GRACE));
        assert!(s.observe(false, GRACE + 2, GRACE));
        assert!(s.observe(false, 2 * GRACE + 1, GRACE));
        assert!(!s.observe(false, 2 * GRACE + 2, GRACE));
    }
}

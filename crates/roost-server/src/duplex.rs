//! Duplex controllers without an external database (`store = "duplex"`):
//! this server runs its own PostgreSQL ([`roost_store::cluster`]), the
//! primary while it is active, a streaming replica of the peer's while it
//! is the standby. [`prepare`] returns once the local database is the
//! primary; the server then takes the lease in it as on any PostgreSQL
//! store ([`crate::ha`]). [`sync_loop`] keeps the primary's commits
//! synchronous while the replica streams.
//!
//! `roost_types::duplex` decides; this module looks (its own database,
//! the peer's over the network), and acts: copy, follow, fence through
//! the peer's BMC or the witness ([`crate::witness`]), promote.
//!
//! With a witness, a controller holds the pair's lease there before its
//! database becomes the primary, and the active renews it: it may commit
//! alone (its peer's replica lost) only while it holds it, and stops its
//! database at once when it cannot (the peer may take over).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use roost_store::cluster::{LocalPg, OnDisk, PeerStatus, probe_peer, replica_name};
use roost_types::duplex::{Action, Facts, Fencing, Local, Peer, SyncState, decide};
use roost_types::lease::Holding;

use crate::config::Duplex;
use crate::ha::{Standby, StandbyServer, StandbyState, now};
use crate::hosts::bmc::{Bmc, PowerAction, Redfish};
use crate::http::serve::Limits;
use crate::witness::WitnessClient;

/// How long the peer may be silent, or have no active server, before it
/// counts as lost: lease lengths.
const LOST_AFTER_LEASES: i64 = 1;
const IDLE_AFTER_LEASES: i64 = 3;
/// The witness's lease lasts this many controller lease lengths: a busy
/// active must miss several renewals in a row before it lapses.
const WITNESS_LEASES: i64 = 4;
/// A replica not streaming from a live primary for this long diverged.
const STUCK_AFTER: i64 = 15_000_000;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::Invalid(format!("a database task stopped: {e}")))
}

fn store_err(e: roost_store::Error) -> crate::Error {
    crate::Error::Invalid(format!(
        "the local database: {}",
        roost_types::error_chain(&e)
    ))
}

/// Why the witness's lease is not this controller's.
#[derive(Debug)]
enum NotHeld {
    /// The peer holds it.
    ByPeer(String),
    /// Nobody known (the witness restarted), or the witness cannot be
    /// reached.
    Other(String),
}

impl NotHeld {
    fn why(&self) -> &str {
        match self {
            NotHeld::ByPeer(w) | NotHeld::Other(w) => w,
        }
    }
}

/// Claims (or renews) the pair's lease at the witness for `ttl`
/// (microseconds); `hold` is this controller's view of it, lapsing at
/// half the length by its own clock, well before the witness's expiry.
/// When the lease changed hands: when the previous holder's lease ended,
/// on this controller's clock (at the latest: the answer's latency makes
/// it later, never earlier).
async fn claim_witness(
    w: &WitnessClient,
    ttl: i64,
    hold: &mut Option<Holding>,
) -> Result<Option<i64>, NotHeld> {
    let started = now();
    let lease_ms = u64::try_from(ttl / 1000).unwrap_or(1000).max(1);
    match w.claim(lease_ms).await {
        Ok(a) if a.granted => {
            let epoch = i64::try_from(a.epoch).unwrap_or(i64::MAX);
            match hold {
                Some(h) if h.epoch == epoch => {
                    h.renewed(started);
                    Ok(None)
                }
                _ => {
                    *hold = Some(Holding::new(epoch, ttl / 2, started));
                    let ago = i64::try_from(a.previous_ended_ms_ago.unwrap_or(0))
                        .unwrap_or(0)
                        .saturating_mul(1000);
                    Ok(Some(now().saturating_sub(ago)))
                }
            }
        }
        Ok(a) => Err(match a.holder {
            Some(h) => NotHeld::ByPeer(format!(
                "the witness gives {h} the controllers' lease for {} ms more",
                a.left_ms
            )),
            None => NotHeld::Other(format!(
                "the witness started recently and grants no lease for {} ms more",
                a.left_ms
            )),
        }),
        Err(e) => Err(NotHeld::Other(format!(
            "cannot reach the witness: {}",
            roost_types::error_chain(&e)
        ))),
    }
}

/// The witness client of a controller, if it has one; each request is
/// waited for `timeout` at most.
fn witness_client(d: &Duplex, me: &str, timeout: Duration) -> crate::Result<Option<WitnessClient>> {
    d.witness
        .clone()
        .map(|t| WitnessClient::new(t, me, timeout))
        .transpose()
}

/// A running primary, and the witness's lease if the controller has a
/// witness.
pub struct Prepared {
    pub pg: Arc<LocalPg>,
    pub witness_hold: Option<Holding>,
}

/// Runs this controller's database as a standby until it may be the
/// primary, serving the standby's answers on `listener` meanwhile; returns
/// with the local database the running primary.
pub async fn prepare(
    d: &Duplex,
    me: &crate::ha::Identity,
    listener: &tokio::net::TcpListener,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> crate::Result<Prepared> {
    let pg = Arc::new(LocalPg::new(d.cluster.clone()).map_err(store_err)?);
    let witness = witness_client(
        d,
        &me.name,
        Duration::from_micros(u64::try_from(me.ttl.max(200_000)).unwrap_or(1_000_000)),
    )?;
    let mut hold: Option<Holding> = None;
    let every = Duration::from_micros(u64::try_from((me.ttl / 4).max(1000)).unwrap_or(250_000));
    let probe_timeout =
        Duration::from_micros(u64::try_from(me.ttl.max(200_000)).unwrap_or(1_000_000));
    let state: StandbyState = Arc::new(RwLock::new(Standby::default()));
    let mut standby: Option<StandbyServer> = None;
    let bmc = Redfish::new(Duration::from_secs(10))
        .map_err(|e| crate::Error::Invalid(format!("cannot make a Redfish client: {e}")))?;
    let mut fenced_at: Option<i64> = None;
    let mut last_sync: Option<i64> = None;
    let mut unreachable_since: Option<i64> = None;
    let mut idle_since: Option<i64> = None;
    let mut stuck_since: Option<i64> = None;
    let mut said = String::new();
    let mut told = Told::default();
    let mut probe: Option<(std::sync::mpsc::Receiver<PeerStatus>, i64)> = None;
    let grace = i64::try_from(d.grace_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    // A replica on disk follows at once, so that it streams while this
    // controller waits.
    if pg.on_disk() == OnDisk::Replica {
        let p = pg.clone();
        if let Err(e) = blocking(move || p.start()).await? {
            tracing::warn!(error = %roost_types::error_chain(&e), "cannot start this controller's replica; trying again");
        }
    }
    loop {
        let t = now();
        let (on_disk, status) = {
            let p = pg.clone();
            blocking(move || (p.on_disk(), p.status())).await?
        };
        // The lease as this controller's replica last saw it.
        let local_lease = status.lease.as_ref();
        // One look at the peer at a time, waited for `probe_timeout` at
        // most: a paused peer accepts the connection and never answers.
        let (rx, started) = match probe.take() {
            Some(p) => p,
            None => {
                let (tx, rx) = std::sync::mpsc::channel();
                let (peer_db, password, name) =
                    (d.peer_db, d.cluster.password.clone(), me.name.clone());
                std::thread::Builder::new()
                    .name("peer-probe".into())
                    .spawn(move || {
                        let _ = tx.send(probe_peer(peer_db, &password, &name, probe_timeout));
                    })
                    .map_err(|e| crate::Error::Invalid(format!("cannot start a thread: {e}")))?;
                (rx, t)
            }
        };
        let left = Duration::from_micros(
            u64::try_from(started.saturating_add(me.ttl).saturating_sub(now())).unwrap_or(0),
        );
        let (rx, got) = blocking(move || {
            let got = rx.recv_timeout(left);
            (rx, got)
        })
        .await?;
        let peer = match got {
            Ok(seen) => seen,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                probe = Some((rx, started));
                PeerStatus::Unreachable(format!(
                    "its database does not answer within {} ms",
                    me.ttl / 1000
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                PeerStatus::Unreachable("the look at its database stopped".into())
            }
        };
        // What the peer is, with the patience the rules need.
        let mut active_url = None;
        let peer_seen = match &peer {
            PeerStatus::Unreachable(why) => {
                idle_since = None;
                let since = *unreachable_since.get_or_insert(t);
                if t - since < LOST_AFTER_LEASES * me.ttl {
                    show(
                        &state,
                        None,
                        Some(format!("{} does not answer: {why}", d.peer)),
                    );
                    tokio::time::sleep(every).await;
                    continue;
                }
                Peer::Unreachable
            }
            PeerStatus::Primary {
                lease,
                now: db_now,
                we_are_sync,
            } => {
                unreachable_since = None;
                if *we_are_sync {
                    if last_sync.is_none() {
                        tracing::info!(peer = %d.peer, "this replica is the primary's synchronous standby: it may take over if the active is lost");
                    }
                    last_sync = Some(t);
                }
                let live = lease
                    .as_ref()
                    .filter(|l| l.expires_at > *db_now && l.holder != me.name);
                if let Some(l) = live {
                    active_url = Some(l.url.clone());
                    idle_since = None;
                }
                let idle = live.is_none()
                    && t - *idle_since.get_or_insert(t) >= IDLE_AFTER_LEASES * me.ttl;
                Peer::Primary { active: !idle }
            }
            PeerStatus::Replica { lsn } => {
                unreachable_since = None;
                idle_since = None;
                Peer::Replica { lsn: *lsn }
            }
        };
        let stuck = if status.running
            && status.in_recovery
            && !status.streaming
            && matches!(peer_seen, Peer::Primary { active: true })
        {
            t - *stuck_since.get_or_insert(t) >= STUCK_AFTER
        } else {
            stuck_since = None;
            false
        };
        let facts = Facts {
            local: match on_disk {
                OnDisk::Missing => Local::Missing,
                OnDisk::Primary => Local::Primary,
                OnDisk::Replica => Local::Replica,
            },
            peer: peer_seen,
            local_lsn: status.lsn,
            me: me.name.clone(),
            peer_name: d.peer.clone(),
            bootstrap: d.bootstrap,
            yielding: crate::ha::yielding(),
            released: local_lease.is_some_and(|l| l.expires_at == 0 && l.holder == d.peer),
            gave_up: local_lease.is_some_and(|l| l.expires_at == 0 && l.holder == me.name),
            fencing: if d.bmc.is_some() {
                Fencing::Bmc
            } else if witness.is_some() {
                Fencing::Witness
            } else {
                Fencing::None
            },
            fenced_at,
            last_sync,
            replica_stuck: stuck,
            grace,
        };
        let action = decide(&facts);
        let line = action.to_string();
        if line != said {
            tracing::info!(action = %action, local = %facts.local, peer = %facts.peer, lsn = facts.local_lsn, "duplex controller");
            said = line;
        }
        // With a witness, only its lease's holder runs the primary.
        let witness_says = match (&action, &witness) {
            (Action::BePrimary | Action::Create | Action::Promote, Some(w))
                if hold.as_ref().is_none_or(|h| h.lapsed(now())) =>
            {
                claim_witness(w, me.ttl * WITNESS_LEASES, &mut hold)
                    .await
                    .err()
            }
            _ => None,
        };
        match action {
            Action::BePrimary | Action::Create | Action::Promote if witness_says.is_some() => {
                let why = format!(
                    "waiting for the witness before running the primary: {}",
                    witness_says.as_ref().map_or("", NotHeld::why)
                );
                if told.differs(&why) {
                    tracing::warn!("{why}");
                }
                show(&state, None, Some(why));
            }
            Action::BePrimary | Action::Create | Action::Promote => {
                let p = pg.clone();
                let what = action.clone();
                let done = blocking(move || -> Result<(), roost_store::Error> {
                    match what {
                        Action::Create => p.create()?,
                        Action::Promote => p.promote()?,
                        _ => p.start()?,
                    }
                    // A new primary waits for no replica until one streams.
                    let streaming = p.replicas()?.iter().any(|r| r.state == "streaming");
                    p.set_synchronous(streaming)
                })
                .await?;
                if let Err(e) = done {
                    let why = format!(
                        "cannot make this controller's database the primary: {}",
                        roost_types::error_chain(&e)
                    );
                    tracing::error!("{why}; trying again");
                    show(&state, None, Some(why));
                } else {
                    match action {
                        Action::Create => {
                            tracing::info!("created this controller's database: it is the primary")
                        }
                        Action::Promote => {
                            tracing::warn!(peer = %d.peer, "promoted this controller's replica: it is the primary")
                        }
                        _ => tracing::info!("this controller's database is the primary"),
                    }
                    if let Some(s) = standby {
                        s.stop().await;
                    }
                    return Ok(Prepared {
                        pg,
                        witness_hold: hold,
                    });
                }
            }
            Action::Follow { resync } => match make_replica(&pg, d, resync).await? {
                Ok(()) => {
                    if resync {
                        tracing::info!(peer = %d.peer, "copied the peer's database: this controller's is its replica");
                        stuck_since = None;
                    }
                    fenced_at = None;
                    show(&state, active_url, None);
                }
                Err(e) => {
                    tracing::warn!(error = %roost_types::error_chain(&e), "cannot follow the peer's database; trying again");
                    show(&state, active_url, None);
                }
            },
            Action::Demote => {
                match make_replica(&pg, d, false).await? {
                    Ok(()) => {
                        tracing::info!(peer = %d.peer, "gave activity up: this controller's database follows the peer's");
                        // It no longer commits: the peer may have the
                        // witness's lease at once.
                        if witness.is_some() {
                            release_witness(d, &me.name).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %roost_types::error_chain(&e), "cannot make this controller's database follow the peer's; trying again")
                    }
                }
                show(&state, None, Some(format!("activity moves to {}", d.peer)));
            }
            // Decided only when there is a BMC or a witness: the BMC
            // first, then the witness.
            Action::Fence => {
                let mut why = Vec::new();
                if let Some(target) = &d.bmc {
                    tracing::warn!(peer = %d.peer, "the active controller is lost: powering it off through its BMC before taking over");
                    match bmc.power(target, PowerAction::Off).await {
                        Ok(()) => {
                            tracing::warn!(peer = %d.peer, "fenced the peer controller: its BMC powered it off");
                            fenced_at = Some(now());
                        }
                        Err(e) => why.push(format!(
                            "its BMC did not power it off ({})",
                            roost_types::error_chain(&e)
                        )),
                    }
                }
                if fenced_at.is_none()
                    && let Some(w) = &witness
                {
                    match claim_witness(w, me.ttl * WITNESS_LEASES, &mut hold).await {
                        Ok(ended) => {
                            tracing::warn!(peer = %d.peer, "fenced the peer controller through the witness: its lease there expired and is now this controller's");
                            // The peer could act alone until its lease
                            // ended, not later.
                            fenced_at = Some(ended.unwrap_or_else(now));
                        }
                        Err(e) => why.push(e.why().to_string()),
                    }
                }
                if fenced_at.is_none() {
                    let why = format!(
                        "{} is lost and cannot be fenced yet ({}): not taking over, so that two controllers never both act",
                        d.peer,
                        why.join("; ")
                    );
                    if told.differs(&why) {
                        tracing::error!("{why}");
                    }
                    show(&state, None, Some(why));
                }
            }
            Action::Wait(why) => show(&state, active_url, Some(why)),
            Action::Refuse(why) => {
                if state
                    .read()
                    .map(|s| s.reason.as_deref() != Some(why.as_str()))
                    .unwrap_or(true)
                {
                    tracing::error!("{why}");
                }
                show(&state, None, Some(why));
            }
        }
        if standby.is_none() {
            standby = Some(StandbyServer::start(
                listener,
                state.clone(),
                limits,
                tls.clone(),
                &me.url,
            )?);
        }
        // Just fenced: the promotion is decided at once, not a period later.
        if !(fenced_at.is_some() && facts.fenced_at.is_none()) {
            tokio::time::sleep(every).await;
        }
    }
}

/// Makes the local database a running replica of the peer's: a fresh copy
/// when `resync`, else the database on disk (turned into a replica if it
/// was a primary). The outer error is the task's, the inner the database's.
async fn make_replica(
    pg: &Arc<LocalPg>,
    d: &Duplex,
    resync: bool,
) -> crate::Result<Result<(), roost_store::Error>> {
    let (p, peer_db) = (pg.clone(), d.peer_db);
    blocking(move || {
        if resync {
            p.copy_from(peer_db)?;
        } else if p.on_disk() != OnDisk::Replica {
            p.stop()?;
            p.follow(peer_db)?;
        }
        p.start()
    })
    .await
}

/// The last message logged, so that one repeated each round (with only
/// its figures changed) is logged once.
#[derive(Default)]
struct Told(String);

impl Told {
    fn differs(&mut self, line: &str) -> bool {
        let key: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
        if key == self.0 {
            false
        } else {
            self.0 = key;
            true
        }
    }
}

fn show(state: &StandbyState, url: Option<String>, reason: Option<String>) {
    if let Ok(mut s) = state.write() {
        s.url = url;
        s.reason = reason;
    }
}

/// While this controller is active: commits wait for the peer's replica
/// while it streams, and go on alone once it has not for the grace. With a
/// witness, it renews the lease there each round, goes on alone only while
/// it holds it, and halts its database (the server then steps down) when
/// the witness gives the lease to the peer, or when it would go on alone
/// without holding it.
pub async fn sync_loop(
    pg: Arc<LocalPg>,
    d: Duplex,
    me: crate::ha::Identity,
    mut hold: Option<Holding>,
    shutdown: crate::Shutdown,
) {
    let grace = i64::try_from(d.grace_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let ttl = me.ttl;
    let every = Duration::from_micros(u64::try_from((ttl / 4).max(1000)).unwrap_or(250_000));
    let witness = match witness_client(
        &d,
        &me.name,
        Duration::from_micros(u64::try_from((ttl / 2).max(100_000)).unwrap_or(500_000)),
    ) {
        Ok(w) => w,
        Err(e) => {
            halt(&pg, &format!("cannot make the witness client: {e}")).await;
            return;
        }
    };
    let replica = replica_name(&d.peer);
    let mut state: Option<SyncState> = None;
    let mut told = Told::default();
    loop {
        if let Some(w) = &witness {
            match claim_witness(w, ttl * WITNESS_LEASES, &mut hold).await {
                Ok(_) => {}
                Err(NotHeld::ByPeer(why)) => {
                    halt(&pg, &why).await;
                    return;
                }
                Err(NotHeld::Other(why)) => {
                    if told.differs(&why) {
                        tracing::warn!("cannot renew the controllers' lease at the witness: {why}");
                    }
                }
            }
        }
        let p = pg.clone();
        let seen = blocking(move || p.replicas()).await;
        if let Ok(Ok(replicas)) = seen {
            let streaming = replicas
                .iter()
                .any(|r| r.name == replica && r.state == "streaming");
            let t = now();
            let before = state.map(|s| s.synchronous);
            let s = state.get_or_insert_with(|| SyncState::new(streaming, t));
            let on = s.observe(streaming, t, grace);
            if !on && witness.is_some() && hold.as_ref().is_none_or(|h| h.lapsed(now())) {
                halt(
                    &pg,
                    "the peer's replica does not stream and this controller no longer holds the witness's lease: it must not commit alone",
                )
                .await;
                return;
            }
            if before != Some(on) {
                let p = pg.clone();
                match blocking(move || p.set_synchronous(on)).await {
                    Ok(Ok(())) if on => {
                        tracing::info!(peer = %d.peer, "the peer's replica streams: commits wait for it")
                    }
                    Ok(Ok(())) if before.is_none() => {
                        tracing::info!(peer = %d.peer, "no replica of the peer streams yet: commits wait for none")
                    }
                    Ok(Ok(())) => {
                        tracing::warn!(peer = %d.peer, grace_ms = d.grace_ms, "the peer's replica is gone: commits no longer wait for it")
                    }
                    _ => {
                        tracing::warn!("cannot change synchronous replication; trying again");
                        state = None;
                    }
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Stops the local database at once: this controller must not commit
/// another write. Its lease then lapses and the server steps down.
async fn halt(pg: &Arc<LocalPg>, why: &str) {
    tracing::error!(
        reason = why,
        "halting this controller's database so that two controllers never both act; the server steps down"
    );
    let p = pg.clone();
    match blocking(move || p.halt()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %roost_types::error_chain(&e), "cannot halt this controller's database")
        }
        Err(e) => tracing::error!(error = %e, "cannot halt this controller's database"),
    }
}

/// Gives the witness's lease up after this controller stopped acting, so
/// that the peer takes over at once.
pub async fn release_witness(d: &Duplex, me: &str) {
    let Ok(Some(w)) = witness_client(d, me, Duration::from_secs(2)) else {
        return;
    };
    match w.release().await {
        Ok(a) if a.granted => tracing::info!("gave the controllers' lease at the witness up"),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %roost_types::error_chain(&e), "cannot give the witness's lease up; the peer waits for it to expire")
        }
    }
}

/// A stopping active controller: its database becomes a replica of the
/// peer's (after a fast shutdown that sends the replica everything), so
/// that the peer takes over without fencing.
pub fn stop_as_active(pg: &LocalPg, d: &Duplex) {
    let done = pg
        .stop()
        .and_then(|()| pg.follow(d.peer_db))
        .and_then(|()| pg.start());
    if let Err(e) = done {
        tracing::warn!(error = %roost_types::error_chain(&e), "cannot turn this controller's database into a replica");
    }
}

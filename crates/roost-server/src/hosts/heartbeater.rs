//! The heartbeater: one task that owns the heartbeat socket, every host's
//! key, address and replay window, and the pending reboot requests. It
//! sends pulses, checks answers, and hands maintenance only facts (which
//! host answered on which network, once per period), in the style of a
//! failure detector that emits observations rather than decisions.
//!
//! It never touches the store: the only lock it takes is the host
//! service's state lock, held for a pure maintenance computation.
//!
//! Datagrams go through a [`Transport`]: a UDP socket in the server, an
//! in-process network ([`memory`]) in unit tests, so that the heartbeater
//! and maintenance can be tested with simulated agents and no sockets.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use roost_api::heartbeat::{
    self, DropReason, FLAG_HOLD, FLAG_REBOOT, Health, HostKey, Kind, Pulse, ReplayWindow,
};
use roost_mtce::Network;
use roost_types::{Clock, Timestamp};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::Shutdown;
use crate::metrics::Metrics;

/// How long a reboot request rides in the pulses if the agent never says it
/// is going down.
const REBOOT_REQUEST_MICROS: i64 = 60_000_000;

/// How long answers under a host's old key are taken after a rotation
/// switched pulses to the new one (answers to pulses already in flight).
pub const KEY_GRACE_MICROS: i64 = 2_000_000;

/// A datagram being received: its length and sender.
pub type RecvFuture<'a> =
    Pin<Box<dyn Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a>>;

/// What the heartbeater needs of a datagram socket. [`UdpSocket`] is the
/// real one; [`memory`] is an in-process network for tests.
pub trait Transport: Send + Sync + 'static {
    /// Sends one datagram without waiting; a datagram that cannot be sent
    /// now is an error (and is lost, as UDP may lose it).
    fn send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize>;
    /// Waits for the next datagram. Cancel-safe: dropping the future loses
    /// no datagram.
    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> RecvFuture<'a>;
    /// The address datagrams are sent from.
    fn local_addr(&self) -> Option<SocketAddr>;
}

impl Transport for UdpSocket {
    fn send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
        self.try_send_to(buf, dest)
    }
    fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> RecvFuture<'a> {
        Box::pin(UdpSocket::recv_from(self, buf))
    }
    fn local_addr(&self) -> Option<SocketAddr> {
        UdpSocket::local_addr(self).ok()
    }
}

/// Where and how to reach one host's agent.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: u32,
    pub name: String,
    pub key: HostKey,
    /// During a rotation, the next key: answers under it are taken too.
    pub next: Option<HostKey>,
    pub mgmt: Option<SocketAddr>,
    pub cluster: Option<SocketAddr>,
}

/// What the host service tells the heartbeater.
#[derive(Debug)]
pub enum Control {
    /// A host's key or addresses are new or changed (its replay window is
    /// forgotten when the key changes, except to the key that was next:
    /// answers under the old key are then taken for [`KEY_GRACE_MICROS`]).
    Peer(Peer),
    /// A host is gone.
    Remove { id: u32 },
    /// Ask a host's agent to reboot, in the pulses, until it says it is
    /// going down.
    Reboot { host: String },
    /// The server is about to hand over to a new process: every pulse
    /// from now on carries [`FLAG_HOLD`]; `sent` is told after the next
    /// round of pulses went out with it.
    Hold {
        sent: tokio::sync::oneshot::Sender<()>,
    },
}

/// What the heartbeater asks maintenance at the end of each period.
pub trait Periods: Send + Sync + 'static {
    /// One period has elapsed at `now`; `answered` are the valid answers
    /// received during it. Returns the hosts and networks to pulse next and
    /// the heartbeat period to use from now on.
    fn period_elapsed(&self, now: Timestamp, answered: &[(String, Network)]) -> NextPeriod;
}

/// Maintenance's answer to [`Periods::period_elapsed`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextPeriod {
    pub targets: Vec<(String, Vec<Network>)>,
    pub period: Duration,
}

/// The heartbeater's state; [`Heartbeater::run`] is the task.
pub struct Heartbeater {
    socket: Arc<dyn Transport>,
    epoch: u64,
    seq: u64,
    peers: HashMap<u32, Peer>,
    by_name: HashMap<String, u32>,
    replay: ReplayWindow,
    pending_reboot: HashMap<String, Timestamp>,
    /// The key a rotation replaced, by host, and when.
    previous: HashMap<u32, (HostKey, Timestamp)>,
    answered: Vec<(String, Network)>,
    /// The pulses of the current period: (host, network) of each sent.
    outstanding: Vec<(String, Network)>,
    /// Set by [`Control::Hold`]; waiting for the next round of pulses.
    hold: bool,
    hold_sent: Vec<tokio::sync::oneshot::Sender<()>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl Heartbeater {
    /// A heartbeater on a bound `socket`, with `epoch` in every pulse.
    pub fn new(
        socket: Arc<dyn Transport>,
        epoch: u64,
        peers: Vec<Peer>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Heartbeater {
        let mut hb = Heartbeater {
            socket,
            epoch,
            seq: 0,
            peers: HashMap::new(),
            by_name: HashMap::new(),
            replay: ReplayWindow::new(),
            pending_reboot: HashMap::new(),
            previous: HashMap::new(),
            answered: Vec::new(),
            outstanding: Vec::new(),
            hold: false,
            hold_sent: Vec::new(),
            clock,
            metrics,
        };
        for p in peers {
            hb.control(Control::Peer(p));
        }
        hb
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Peer(p) => {
                if let Some(old) = self.peers.get(&p.id) {
                    let rotated = old.next.as_ref().is_some_and(|n| n.same_as(&p.key));
                    if rotated {
                        self.previous
                            .insert(p.id, (old.key.clone(), self.clock.now()));
                    } else if !old.key.same_as(&p.key) {
                        self.replay.forget_host(p.id);
                        self.previous.remove(&p.id);
                    }
                    if old.name != p.name {
                        self.by_name.remove(&old.name);
                    }
                }
                self.by_name.insert(p.name.clone(), p.id);
                self.peers.insert(p.id, p);
            }
            Control::Remove { id } => {
                if let Some(p) = self.peers.remove(&id) {
                    self.by_name.remove(&p.name);
                    self.pending_reboot.remove(&p.name);
                }
                self.previous.remove(&id);
                self.replay.forget_host(id);
            }
            Control::Reboot { host } => {
                self.pending_reboot.insert(host, self.clock.now());
            }
            Control::Hold { sent } => {
                self.hold = true;
                self.hold_sent.push(sent);
            }
        }
    }

    /// Sends pulses every period, checks answers and applies control
    /// messages until shutdown.
    pub async fn run(
        mut self,
        periods: Arc<dyn Periods>,
        mut control: mpsc::UnboundedReceiver<Control>,
        shutdown: Shutdown,
    ) {
        let mut next = periods.period_elapsed(self.clock.now(), &[]);
        let mut period = next.period;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; heartbeat::MAX_DATAGRAM];
        let socket = self.socket.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                c = control.recv() => match c {
                    Some(c) => self.control(c),
                    None => return,
                },
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, _from)) => {
                        if let Err(reason) = self.accept(&buf[..n]) {
                            self.metrics.heartbeat_dropped(reason.as_str());
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "heartbeat receive failed"),
                },
                _ = tick.tick() => {
                    let now = self.clock.now();
                    let answered = std::mem::take(&mut self.answered);
                    let missed = std::mem::take(&mut self.outstanding)
                        .iter()
                        .filter(|sent| !answered.contains(sent))
                        .count();
                    self.metrics.pulses_missed(missed as u64);
                    next = periods.period_elapsed(now, &answered);
                    self.send_pulses(&next.targets, now);
                    if next.period != period {
                        period = next.period;
                        tick = tokio::time::interval(period);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        tick.reset();
                    }
                }
            }
        }
    }

    fn send_pulses(&mut self, targets: &[(String, Vec<Network>)], now: Timestamp) {
        self.pending_reboot
            .retain(|_, at| now.micros() - at.micros() < REBOOT_REQUEST_MICROS);
        let mut sent = 0u64;
        for (name, nets) in targets {
            let Some(peer) = self.by_name.get(name).and_then(|id| self.peers.get(id)) else {
                continue;
            };
            let mut flags = if self.pending_reboot.contains_key(name) {
                FLAG_REBOOT
            } else {
                0
            };
            if self.hold {
                flags |= FLAG_HOLD;
            }
            for net in nets {
                let dest = match net {
                    Network::Management => peer.mgmt,
                    Network::Cluster => peer.cluster,
                };
                let Some(dest) = dest else { continue };
                self.seq += 1;
                let p = Pulse {
                    kind: Kind::Request,
                    network: *net as u8,
                    flags,
                    host_id: peer.id,
                    epoch: self.epoch,
                    seq: self.seq,
                    sent_at_micros: now.micros() as u64,
                    health: Health::default(),
                };
                let pkt = heartbeat::encode(&p, &peer.key);
                match self.socket.send_to(&pkt, dest) {
                    Ok(_) => {
                        sent += 1;
                        self.outstanding.push((name.clone(), *net));
                    }
                    Err(e) => tracing::debug!(addr = %dest, error = %e, "cannot send a pulse"),
                }
            }
        }
        self.metrics.pulses_sent(sent);
        for tx in self.hold_sent.drain(..) {
            let _ = tx.send(());
        }
    }

    /// Checks one datagram (the MAC before any field is used) and records
    /// the answer.
    fn accept(&mut self, pkt: &[u8]) -> Result<(), DropReason> {
        if pkt.len() >= heartbeat::MAX_DATAGRAM || pkt.len() > heartbeat::PACKET_LEN {
            return Err(DropReason::Oversized);
        }
        if pkt.len() < heartbeat::PACKET_LEN {
            return Err(DropReason::Truncated);
        }
        let host_id = heartbeat::peek_host_id(pkt).ok_or(DropReason::BadMagic)?;
        let peer = self.peers.get(&host_id).ok_or(DropReason::UnknownHost)?;
        let now = self.clock.now();
        let previous = self
            .previous
            .get(&host_id)
            .filter(|(_, at)| now.micros() - at.micros() < KEY_GRACE_MICROS)
            .map(|(k, _)| k);
        // The key in use, then (during a rotation) the next one, then for a
        // moment after one the key it replaced.
        let mut decoded = heartbeat::decode(pkt, &peer.key);
        for k in [peer.next.as_ref(), previous].into_iter().flatten() {
            if decoded.is_err()
                && let Ok(p) = heartbeat::decode(pkt, k)
            {
                decoded = Ok(p);
            }
        }
        let p = decoded.map_err(DropReason::from)?;
        if p.kind != Kind::Response {
            return Err(DropReason::Malformed);
        }
        if p.epoch != self.epoch {
            return Err(DropReason::Stale);
        }
        let net = Network::from_index(p.network).ok_or(DropReason::Malformed)?;
        self.replay.check(&p)?;
        let name = peer.name.clone();
        if p.health.has(Health::REBOOTING) {
            self.pending_reboot.remove(&name);
        }
        self.answered.push((name, net));
        let rtt = (self.clock.now().micros() as u64).saturating_sub(p.sent_at_micros);
        self.metrics.pulse_answered(rtt as f64 / 1e6);
        Ok(())
    }
}

/// An in-process datagram network for tests: sockets bound to addresses,
/// datagrams delivered through channels, in order, to whichever socket is
/// bound to the destination (and lost when none is, as with UDP).
#[cfg(test)]
pub mod memory {
    use std::collections::HashMap;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::sync::mpsc;

    use super::{RecvFuture, Transport};

    type Datagram = (Vec<u8>, SocketAddr);

    /// The network: which address is bound to which socket.
    #[derive(Clone, Default)]
    pub struct Network {
        inner: Arc<Mutex<Bound>>,
    }

    #[derive(Default)]
    struct Bound {
        sockets: HashMap<SocketAddr, mpsc::UnboundedSender<Datagram>>,
        next_port: u16,
    }

    impl Network {
        /// Binds a socket to `addr`; port 0 picks a free port.
        pub fn bind(&self, mut addr: SocketAddr) -> Socket {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut b = self.inner.lock().unwrap();
            if addr.port() == 0 {
                loop {
                    b.next_port = b.next_port.wrapping_add(1).max(40_000);
                    addr.set_port(b.next_port);
                    if !b.sockets.contains_key(&addr) {
                        break;
                    }
                }
            }
            assert!(
                b.sockets.insert(addr, tx).is_none(),
                "{addr} is already bound"
            );
            Socket {
                net: self.clone(),
                addr,
                rx: tokio::sync::Mutex::new(rx),
            }
        }
    }

    /// One bound socket; unbound when dropped.
    pub struct Socket {
        net: Network,
        addr: SocketAddr,
        rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Datagram>>,
    }

    impl Socket {
        /// The address this socket is bound to.
        pub fn addr(&self) -> SocketAddr {
            self.addr
        }
    }

    impl Drop for Socket {
        fn drop(&mut self) {
            let mut b = self.net.inner.lock().unwrap_or_else(|e| e.into_inner());
            b.sockets.remove(&self.addr);
        }
    }

    impl Transport for Socket {
        fn send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
            let b = self.net.inner.lock().unwrap();
            if let Some(to) = b.sockets.get(&dest) {
                let _ = to.send((buf.to_vec(), self.addr));
            }
            Ok(buf.len())
        }

        fn recv_from<'a>(&'a self, buf: &'a mut [u8]) -> RecvFuture<'a> {
            Box::pin(async move {
                let mut rx = self.rx.lock().await;
                let (data, from) = rx
                    .recv()
                    .await
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
                // Like UDP, a datagram longer than the buffer is cut.
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok((n, from))
            })
        }

        fn local_addr(&self) -> Option<SocketAddr> {
            Some(self.addr)
        }
    }
}

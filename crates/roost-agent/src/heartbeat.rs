//! The heartbeat responder: answers each valid pulse request from the
//! server with a response carrying this host's health.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use roost_api::heartbeat::{Answerer, Health, HostKey, MAX_DATAGRAM};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

pub use roost_api::heartbeat::{FLAG_HOLD, FLAG_REBOOT, HOLD_MILLIS};

/// The health this host reports in its pulse responses, updated by the
/// monitors and read by the responder.
#[derive(Debug, Default)]
pub struct HealthState {
    cpu_pct: AtomicU8,
    mem_pct: AtomicU8,
    fs_pct: AtomicU8,
    /// [`Health::CRITICAL_PROCESS`] and/or [`Health::MAJOR_PROCESS`].
    process_flags: AtomicU8,
    /// A resource is at its critical level.
    resource_degraded: AtomicBool,
    /// A reboot was asked for and is under way.
    going_down: AtomicBool,
    /// Milliseconds after [`pulse_epoch`] of the last valid pulse (0: none yet).
    last_pulse_ms: std::sync::atomic::AtomicU64,
    /// Milliseconds after [`pulse_epoch`] until which silence is expected
    /// (the server said it hands over to a new process).
    hold_until_ms: std::sync::atomic::AtomicU64,
}

/// The instant pulse times are counted from.
fn pulse_epoch() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

impl HealthState {
    pub fn new() -> HealthState {
        HealthState::default()
    }

    /// A valid pulse from the server arrived now.
    pub fn pulse_received(&self) {
        let ms = pulse_epoch().elapsed().as_millis() as u64;
        self.last_pulse_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// The server said it hands over: silence is expected for
    /// [`HOLD_MILLIS`] from now.
    pub fn hold(&self) {
        let until = pulse_epoch().elapsed().as_millis() as u64 + HOLD_MILLIS;
        self.hold_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Whether the server has been silent for `after`, outside a hold.
    pub fn silent_for(&self, after: std::time::Duration) -> bool {
        let now = pulse_epoch().elapsed().as_millis() as u64;
        now >= self.hold_until_ms.load(Ordering::Relaxed)
            && self.since_last_pulse().is_some_and(|d| d >= after)
    }

    /// How long ago the last valid pulse arrived (`None`: none yet).
    pub fn since_last_pulse(&self) -> Option<std::time::Duration> {
        match self.last_pulse_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(std::time::Duration::from_millis(
                (pulse_epoch().elapsed().as_millis() as u64).saturating_sub(at),
            )),
        }
    }

    pub fn set_cpu(&self, pct: u8) {
        self.cpu_pct.store(pct.min(100), Ordering::Relaxed);
    }

    pub fn set_mem(&self, pct: u8) {
        self.mem_pct.store(pct.min(100), Ordering::Relaxed);
    }

    /// The use of the fullest monitored filesystem.
    pub fn set_fs(&self, pct: u8) {
        self.fs_pct.store(pct.min(100), Ordering::Relaxed);
    }

    /// Which severities of process failure are present.
    pub fn set_process_failures(&self, critical: bool, major: bool) {
        let mut f = 0;
        if critical {
            f |= Health::CRITICAL_PROCESS;
        }
        if major {
            f |= Health::MAJOR_PROCESS;
        }
        self.process_flags.store(f, Ordering::Relaxed);
    }

    pub fn set_resource_degraded(&self, degraded: bool) {
        self.resource_degraded.store(degraded, Ordering::Relaxed);
    }

    /// Marks the host as going down; true if it was not already.
    pub fn start_going_down(&self) -> bool {
        !self.going_down.swap(true, Ordering::SeqCst)
    }

    /// A reboot attempt failed: the host is not going down after all.
    pub fn cancel_going_down(&self) {
        self.going_down.store(false, Ordering::SeqCst);
    }

    pub fn is_going_down(&self) -> bool {
        self.going_down.load(Ordering::SeqCst)
    }

    /// The health to send now.
    pub fn snapshot(&self) -> Health {
        let process = self.process_flags.load(Ordering::Relaxed);
        let mut flags = process;
        if process != 0 || self.resource_degraded.load(Ordering::Relaxed) {
            flags |= Health::DEGRADED;
        }
        if self.is_going_down() {
            flags |= Health::REBOOTING;
        }
        Health {
            cpu_pct: self.cpu_pct.load(Ordering::Relaxed),
            mem_pct: self.mem_pct.load(Ordering::Relaxed),
            fs_pct: self.fs_pct.load(Ordering::Relaxed),
            flags,
        }
    }
}

/// A reboot the server asked for, by the request that carried the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebootRequest {
    pub epoch: u64,
    pub seq: u64,
    pub from: SocketAddr,
}

/// Answers pulse requests on one socket.
pub struct Responder {
    socket: UdpSocket,
    answerer: Answerer,
    health: Arc<HealthState>,
    reboot: mpsc::UnboundedSender<RebootRequest>,
    drops: BTreeMap<&'static str, u64>,
    keys: Keys,
}

/// How a responder learns of a heartbeat key rotation and tells of its end.
#[derive(Clone)]
pub struct Keys {
    /// The next key offered by the server (`None`: no rotation).
    pub next: watch::Receiver<Option<HostKey>>,
    /// Told the key a request under the next key made current.
    pub promoted: mpsc::UnboundedSender<HostKey>,
}

impl Responder {
    /// A responder for host `host_id` with its `key`. A valid request with
    /// [`FLAG_REBOOT`] marks `health` as going down and, the first time,
    /// sends a [`RebootRequest`] on `reboot` (after the answer is sent).
    pub fn new(
        socket: UdpSocket,
        key: HostKey,
        host_id: u32,
        health: Arc<HealthState>,
        reboot: mpsc::UnboundedSender<RebootRequest>,
        keys: Keys,
    ) -> Responder {
        Responder {
            socket,
            answerer: Answerer::new(host_id, key),
            health,
            reboot,
            drops: BTreeMap::new(),
            keys,
        }
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Answers requests until the task is dropped.
    pub async fn run(mut self) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut offers = self.keys.next.clone();
        if let Some(k) = offers.borrow_and_update().clone() {
            self.answerer.offer_next(k);
        }
        loop {
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                changed = offers.changed() => {
                    if changed.is_ok() && let Some(k) = offers.borrow_and_update().clone() {
                        self.answerer.offer_next(k);
                    }
                    continue;
                }
            };
            let (n, from) = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat receive error");
                    // Errors on an unconnected UDP socket are transient
                    // (an ICMP error for an earlier send); do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let request = match self.answerer.accept(&buf[..n]) {
                Ok(p) => p,
                Err(reason) => {
                    let count = self.drops.entry(reason).or_insert(0);
                    *count += 1;
                    tracing::debug!(%from, reason, dropped = *count, "heartbeat packet dropped");
                    continue;
                }
            };
            if let Some(k) = self.answerer.take_promoted() {
                let _ = self.keys.promoted.send(k);
            }
            self.health.pulse_received();
            if request.flags & FLAG_HOLD != 0 {
                self.health.hold();
            }
            let reboot = request.flags & FLAG_REBOOT != 0;
            let first_reboot = reboot && self.health.start_going_down();
            let packet = self.answerer.answer(&request, self.health.snapshot());
            if let Err(e) = self.socket.send_to(&packet, from).await {
                tracing::debug!(%from, error = %e, "cannot send a heartbeat response");
            }
            if first_reboot {
                tracing::warn!(%from, epoch = request.epoch, seq = request.seq, "the server asked this host to reboot");
                let _ = self.reboot.send(RebootRequest {
                    epoch: request.epoch,
                    seq: request.seq,
                    from,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_flags_follow_failures_and_going_down() {
        let h = HealthState::new();
        assert_eq!(h.snapshot(), Health::default());
        h.set_cpu(250);
        h.set_mem(40);
        h.set_fs(70);
        let s = h.snapshot();
        assert_eq!((s.cpu_pct, s.mem_pct, s.fs_pct, s.flags), (100, 40, 70, 0));
        h.set_process_failures(false, true);
        assert_eq!(h.snapshot().flags, Health::MAJOR_PROCESS | Health::DEGRADED);
        h.set_process_failures(true, false);
        assert_eq!(
            h.snapshot().flags,
            Health::CRITICAL_PROCESS | Health::DEGRADED
        );
        h.set_process_failures(false, false);
        h.set_resource_degraded(true);
        assert_eq!(h.snapshot().flags, Health::DEGRADED);
        h.set_resource_degraded(false);
        assert!(h.start_going_down());
        assert!(!h.start_going_down());
        assert_eq!(h.snapshot().flags, Health::REBOOTING);
        h.cancel_going_down();
        assert_eq!(h.snapshot().flags, 0);
    }

    #[test]
    fn a_hold_keeps_silence_from_counting() {
        let h = HealthState::new();
        assert!(!h.silent_for(std::time::Duration::ZERO), "no pulse yet");
        h.pulse_received();
        assert!(h.silent_for(std::time::Duration::ZERO));
        h.hold();
        assert!(!h.silent_for(std::time::Duration::ZERO));
        // A pulse without the flag does not end the hold early: the new
        // server counts from its own start.
        h.pulse_received();
        assert!(!h.silent_for(std::time::Duration::ZERO));
    }
}

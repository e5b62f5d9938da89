//! The heartbeat responder against a real UDP socket playing the server.

use std::sync::Arc;
use std::time::Duration;

use roost_agent::heartbeat::{FLAG_REBOOT, HealthState, Keys, RebootRequest, Responder};
use roost_api::heartbeat::{
    Health, HostKey, Kind, NETWORK_CLUSTER_HOST, NETWORK_MGMT, PACKET_LEN, Pulse, decode, encode,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

const HOST_ID: u32 = 42;
const EPOCH: u64 = 1_750_000_000_000_000;
/// Long enough for a loaded machine; only waited for in full on failure.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long silence is awaited when no answer is expected.
const SILENCE_WAIT: Duration = Duration::from_millis(300);

fn key() -> HostKey {
    HostKey::from_bytes([7; 32])
}

fn request(seq: u64, flags: u8) -> Pulse {
    Pulse {
        kind: Kind::Request,
        network: NETWORK_MGMT,
        flags,
        host_id: HOST_ID,
        epoch: EPOCH,
        seq,
        sent_at_micros: 1_000_000 + seq,
        health: Health::default(),
    }
}

struct Harness {
    server: UdpSocket,
    agent: std::net::SocketAddr,
    health: Arc<HealthState>,
    reboots: mpsc::UnboundedReceiver<RebootRequest>,
    offer: watch::Sender<Option<HostKey>>,
    promoted: mpsc::UnboundedReceiver<HostKey>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let health = Arc::new(HealthState::new());
        let (tx, reboots) = mpsc::unbounded_channel();
        let (offer, next) = watch::channel(None);
        let (promoted_tx, promoted) = mpsc::unbounded_channel();
        let keys = Keys {
            next,
            promoted: promoted_tx,
        };
        let responder = Responder::new(socket, key(), HOST_ID, health.clone(), tx, keys);
        let agent = responder.local_addr().unwrap();
        let task = tokio::spawn(responder.run());
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Harness {
            server,
            agent,
            health,
            reboots,
            offer,
            promoted,
            task,
        }
    }

    async fn send_raw(&self, bytes: &[u8]) {
        self.server.send_to(bytes, self.agent).await.unwrap();
    }

    async fn send(&self, p: &Pulse) {
        self.send_raw(&encode(p, &key())).await;
    }

    /// The next datagram from the agent, decoded under the host's key.
    async fn recv(&self) -> Pulse {
        self.recv_under(&key()).await
    }

    /// The next datagram from the agent, decoded under `k`.
    async fn recv_under(&self, k: &HostKey) -> Pulse {
        let mut buf = [0u8; 512];
        let (n, from) = tokio::time::timeout(ANSWER_WAIT, self.server.recv_from(&mut buf))
            .await
            .expect("no answer from the agent")
            .unwrap();
        assert_eq!(from, self.agent);
        assert_eq!(n, PACKET_LEN);
        decode(&buf[..n], k).expect("the response's MAC verifies under the expected key")
    }

    async fn assert_silent(&self) {
        let mut buf = [0u8; 512];
        let got = tokio::time::timeout(SILENCE_WAIT, self.server.recv_from(&mut buf)).await;
        assert!(got.is_err(), "unexpected datagram from the agent");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_key_rotation_answers_every_request_and_reports_the_switch_once() {
    let mut h = Harness::start().await;
    let next = HostKey::from_bytes([9; 32]);
    // Before the offer, the next key is not known.
    h.server
        .send_to(&encode(&request(1, 0), &next), h.agent)
        .await
        .unwrap();
    h.assert_silent().await;
    h.offer.send(Some(next.clone())).unwrap();
    // The offer reaches the responder between datagrams: requests under
    // the old key are still answered under it.
    let mut seq = 2;
    loop {
        h.send(&request(seq, 0)).await;
        assert_eq!(h.recv().await.seq, seq);
        seq += 1;
        h.server
            .send_to(&encode(&request(seq, 0), &next), h.agent)
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(SILENCE_WAIT, h.server.recv_from(&mut buf)).await
        {
            let p = decode(&buf[..n], &next).expect("answered under the next key");
            assert_eq!(p.seq, seq);
            break;
        }
        seq += 1;
        assert!(seq < 200, "the offer never reached the responder");
    }
    let promoted = h.promoted.recv().await.expect("the switch is reported");
    assert!(promoted.same_as(&next));
    // The old key is gone; the new one answers.
    h.send(&request(seq + 1, 0)).await;
    h.assert_silent().await;
    h.server
        .send_to(&encode(&request(seq + 2, 0), &next), h.agent)
        .await
        .unwrap();
    assert_eq!(h.recv_under(&next).await.seq, seq + 2);
    assert!(h.promoted.try_recv().is_err(), "reported once");
}

#[tokio::test]
async fn valid_requests_are_answered_with_the_echoed_fields_and_the_health() {
    let h = Harness::start().await;
    h.health.set_cpu(12);
    h.health.set_mem(34);
    h.health.set_fs(56);
    for seq in 1..=3 {
        let req = Pulse {
            network: if seq == 2 {
                NETWORK_CLUSTER_HOST
            } else {
                NETWORK_MGMT
            },
            ..request(seq, 0)
        };
        h.send(&req).await;
        let resp = h.recv().await;
        assert_eq!(resp.kind, Kind::Response);
        assert_eq!(resp.host_id, HOST_ID);
        assert_eq!(resp.network, req.network);
        assert_eq!(resp.epoch, EPOCH);
        assert_eq!(resp.seq, seq);
        assert_eq!(resp.sent_at_micros, req.sent_at_micros);
        assert_eq!(
            resp.health,
            Health {
                cpu_pct: 12,
                mem_pct: 34,
                fs_pct: 56,
                flags: 0
            }
        );
    }
    // A new server epoch restarts the sequence.
    h.send(&Pulse {
        epoch: EPOCH + 1,
        ..request(1, 0)
    })
    .await;
    assert_eq!(h.recv().await.epoch, EPOCH + 1);
}

#[tokio::test]
async fn forged_replayed_truncated_and_misdirected_requests_get_no_answer() {
    let h = Harness::start().await;
    h.send(&request(10, 0)).await;
    assert_eq!(h.recv().await.seq, 10);

    let valid = encode(&request(11, 0), &key());
    // Forged: signed with another key.
    h.send_raw(&encode(&request(11, 0), &HostKey::from_bytes([9; 32])))
        .await;
    // Replayed and older.
    h.send(&request(10, 0)).await;
    h.send(&request(9, 0)).await;
    // An older epoch.
    h.send(&Pulse {
        epoch: EPOCH - 1,
        ..request(100, 0)
    })
    .await;
    // Truncated, oversized, garbage, empty.
    h.send_raw(&valid[..PACKET_LEN - 1]).await;
    let mut long = valid.to_vec();
    long.push(0);
    h.send_raw(&long).await;
    h.send_raw(b"hello").await;
    h.send_raw(&[]).await;
    // A bit flipped in the body.
    let mut flipped = valid;
    flipped[25] ^= 1;
    h.send_raw(&flipped).await;
    // Authentic, but for another host, or a response rather than a request.
    h.send(&Pulse {
        host_id: HOST_ID + 1,
        ..request(12, 0)
    })
    .await;
    h.send(&Pulse {
        kind: Kind::Response,
        ..request(13, 0)
    })
    .await;

    // None of the above was answered: the next answer is to this one.
    h.send(&request(20, 0)).await;
    assert_eq!(h.recv().await.seq, 20);
    h.assert_silent().await;
    // The forged seq 11 did not enter the replay window: the real 11 is
    // now old (20 was accepted), so it is dropped too, but 21 works.
    h.send_raw(&valid).await;
    h.send(&request(21, 0)).await;
    assert_eq!(h.recv().await.seq, 21);
}

#[tokio::test]
async fn a_reboot_request_is_answered_going_down_and_reboots_once() {
    let mut h = Harness::start().await;
    h.send(&request(1, 0)).await;
    assert!(!h.recv().await.health.has(Health::REBOOTING));

    h.send(&request(2, FLAG_REBOOT)).await;
    let resp = h.recv().await;
    assert_eq!(resp.seq, 2);
    assert!(resp.health.has(Health::REBOOTING));
    let reboot = tokio::time::timeout(ANSWER_WAIT, h.reboots.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((reboot.epoch, reboot.seq), (EPOCH, 2));

    // The same request again (a retransmission) is a replay: no answer.
    h.send(&request(2, FLAG_REBOOT)).await;
    // The flag on later pulses is answered going down, but no second reboot.
    h.send(&request(3, FLAG_REBOOT)).await;
    let resp = h.recv().await;
    assert_eq!(resp.seq, 3);
    assert!(resp.health.has(Health::REBOOTING));
    // Pulses without the flag still say the host is going down.
    h.send(&request(4, 0)).await;
    let resp = h.recv().await;
    assert_eq!(resp.seq, 4);
    assert!(resp.health.has(Health::REBOOTING));
    // Requests are handled in order, so seq 3 was fully handled by now.
    assert!(h.reboots.try_recv().is_err(), "rebooted twice");

    // A failed reboot lets a later request try again.
    h.health.cancel_going_down();
    h.send(&request(5, FLAG_REBOOT)).await;
    assert!(h.recv().await.health.has(Health::REBOOTING));
    let again = tokio::time::timeout(ANSWER_WAIT, h.reboots.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.seq, 5);
}

#[tokio::test]
async fn process_failures_and_degradation_show_in_the_health_flags() {
    let h = Harness::start().await;
    h.health.set_process_failures(true, true);
    h.send(&request(1, 0)).await;
    let flags = h.recv().await.health;
    assert!(flags.has(Health::CRITICAL_PROCESS | Health::MAJOR_PROCESS | Health::DEGRADED));
    h.health.set_process_failures(false, false);
    h.send(&request(2, 0)).await;
    assert_eq!(h.recv().await.health.flags, 0);
}

//! The heartbeat on the wire: this test plays the agent with its own UDP
//! socket, answers the real server's pulses, then sends it forged,
//! replayed, truncated and oversized packets, which must be dropped and
//! counted.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use roost_api::heartbeat::{self, Health, HostKey, Kind};
use roost_test_support::{Server, wait_for};
use serde_json::json;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn dropped(api: &roost_test_support::Api, reason: &str) -> u64 {
    let m = api.get("/metrics");
    let text = m.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find(|l| {
            l.starts_with(&format!(
                "roost_heartbeat_dropped_total{{reason=\"{reason}\"}}"
            ))
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

#[test]
fn only_authentic_fresh_whole_responses_count() {
    let s = Server::start(bin());
    let api = s.api();
    let token = api.add_host("worker-7", "worker");
    let sock = UdpSocket::bind("127.0.0.10:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = api.post(
        "/v1/agent/enroll",
        &json!({"join_token": token, "inventory": {"hostname": "w7"},
                "heartbeat_port": sock.local_addr().unwrap().port(), "mgmt_ip": "127.0.0.10"}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let key = HostKey::from_hex(r.body["heartbeat_key"].as_str().unwrap()).unwrap();
    let host_id = r.body["host_id"].as_u64().unwrap() as u32;

    // Answer pulses for a while: the host comes online.
    let mut buf = [0u8; 1024];
    let mut server_addr = None;
    let mut last_response = None;
    let online = wait_for(30, || {
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        let req = heartbeat::decode(&buf[..n], &key).expect("the server's pulses are authentic");
        assert_eq!(req.kind, Kind::Request);
        assert_eq!(req.host_id, host_id);
        let resp = req.response(Health::default());
        let pkt = heartbeat::encode(&resp, &key);
        sock.send_to(&pkt, from).unwrap();
        server_addr = Some(from);
        last_response = Some(pkt);
        (api.host("worker-7")["availability"] == "online").then_some(())
    });
    assert!(online.is_some());
    let server = server_addr.unwrap();
    let valid = last_response.unwrap();

    let before: Vec<u64> = [
        "replayed",
        "bad_mac",
        "truncated",
        "oversized",
        "unknown_host",
        "bad_magic",
    ]
    .iter()
    .map(|r| dropped(&api, r))
    .collect();
    // Replayed: the last valid response again.
    sock.send_to(&valid, server).unwrap();
    // Forged: signed with another key.
    let mut forged_req = heartbeat::decode(&valid, &key).unwrap();
    forged_req.seq += 1000;
    let forged = heartbeat::encode(&forged_req, &HostKey::from_bytes([7u8; 32]));
    sock.send_to(&forged, server).unwrap();
    // Tampered: one bit flipped in a valid packet.
    let mut tampered = valid;
    tampered[20] ^= 1;
    sock.send_to(&tampered, server).unwrap();
    // Truncated and oversized.
    sock.send_to(&valid[..valid.len() - 1], server).unwrap();
    let mut big = valid.to_vec();
    big.extend_from_slice(&[0u8; 100]);
    sock.send_to(&big, server).unwrap();
    // Unknown host id, and garbage.
    let mut stranger = heartbeat::decode(&valid, &key).unwrap();
    stranger.host_id = 999_999;
    sock.send_to(&heartbeat::encode(&stranger, &key), server)
        .unwrap();
    sock.send_to(&[0x42u8; heartbeat::PACKET_LEN], server)
        .unwrap();

    let after = wait_for(10, || {
        let now: Vec<u64> = [
            "replayed",
            "bad_mac",
            "truncated",
            "oversized",
            "unknown_host",
            "bad_magic",
        ]
        .iter()
        .map(|r| dropped(&api, r))
        .collect();
        let grew = now.iter().zip(&before).all(|(a, b)| a > b);
        grew.then_some(now)
    });
    assert!(
        after.is_some(),
        "every kind of bad packet is counted: before {before:?}"
    );
    let after = after.unwrap();
    assert!(
        after[1] >= before[1] + 2,
        "forged and tampered both bad_mac"
    );
    // The server carries on.
    assert_eq!(api.get("/v1/ihosts/worker-7").status, 200);
}

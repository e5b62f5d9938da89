//! Fuzzes the heartbeat decoder: arbitrary datagrams must never panic, never
//! be accepted unless authentic, and decode/encode must agree.
#![no_main]

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use roost_api::heartbeat::{
    DecodeError, HostKey, MAC_LEN, PACKET_LEN, decode, encode, peek_host_id,
};
use sha2::Sha256;

const KEY: [u8; 32] = *b"roost-fuzz-fixed-heartbeat-key!!";

fuzz_target!(|data: &[u8]| {
    let key = HostKey::from_bytes(KEY);

    // 1. The datagram as received.
    let peeked = peek_host_id(data);
    match decode(data, &key) {
        Ok(p) => {
            // Only an exact-length packet with a valid MAC gets here.
            assert_eq!(data.len(), PACKET_LEN);
            assert_eq!(peeked, Some(p.host_id));
            assert_eq!(&encode(&p, &key)[..], data);
        }
        Err(e) => {
            // peek_host_id answers exactly when length and magic are right.
            let framing = matches!(
                e,
                DecodeError::Truncated | DecodeError::Oversized | DecodeError::BadMagic
            );
            assert_eq!(peeked.is_none(), framing, "{e:?}");
            match data.len().cmp(&PACKET_LEN) {
                std::cmp::Ordering::Less => assert_eq!(e, DecodeError::Truncated),
                std::cmp::Ordering::Greater => assert_eq!(e, DecodeError::Oversized),
                std::cmp::Ordering::Equal => assert_ne!(e, DecodeError::Truncated),
            }
        }
    }

    // 2. The same body signed with the key, as a key holder could send it:
    //    this reaches the parsing behind the MAC (kind, reserved, fields).
    if data.len() == PACKET_LEN {
        let body = &data[..PACKET_LEN - MAC_LEN];
        let tag = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY)
            .expect("HMAC takes any key length")
            .chain_update(body)
            .finalize()
            .into_bytes();
        let mut signed = [0u8; PACKET_LEN];
        signed[..body.len()].copy_from_slice(body);
        signed[body.len()..].copy_from_slice(&tag);
        match decode(&signed, &key) {
            Ok(p) => {
                assert_eq!(encode(&p, &key), signed);
                assert_eq!(peek_host_id(&signed), Some(p.host_id));
            }
            Err(e) => assert!(
                matches!(
                    e,
                    DecodeError::BadMagic | DecodeError::UnknownKind | DecodeError::BadReserved
                ),
                "{e:?}"
            ),
        }
    }
});

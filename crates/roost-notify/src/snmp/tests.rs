use super::*;

/// Splits one TLV off `buf`: (tag, contents, the rest).
fn tlv(buf: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = buf[0];
    let (len, head) = if buf[1] < 0x80 {
        (usize::from(buf[1]), 2)
    } else {
        let n = usize::from(buf[1] & 0x7f);
        let len = buf[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &buf[head..head + len], &buf[head + len..])
}

/// Every TLV of a constructed value's contents.
fn items(mut buf: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (t, c, rest) = tlv(buf);
        out.push((t, c));
        buf = rest;
    }
    out
}

fn event(state: EventState, severity: Severity) -> Event {
    Event {
        uuid: "0b7e4b8e-6f7c-4c53-9a57-1f0c2d7d8e11".into(),
        event_log_id: "100.101".into(),
        state,
        entity_instance_id: "host=controller-0".into(),
        entity_type_id: "system.host".into(),
        severity,
        reason_text: "Platform CPU threshold exceeded".into(),
        event_log_type: "operational-violation".into(),
        probable_cause: "threshold-crossed".into(),
        proposed_repair_action: "Monitor and if condition persists, contact next level of support."
            .into(),
        service_affecting: true,
        suppression: false,
        // 2026-11-26T18:16:12.086207
        timestamp: "2026-11-26T18:16:12.086207".parse().unwrap(),
    }
}

fn v3(auth: Option<AuthProtocol>, privacy: bool) -> Security {
    Security::V3 {
        user: "roost".into(),
        auth: auth.map(|p| (p, "authpassphrase".into())),
        privacy: privacy.then(|| (PrivProtocol::Aes128, "privpassphrase".into())),
    }
}

const ENGINE: &[u8] = &[0x80, 0x00, 0x02, 0xdb, 0x05, 1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn date_and_time_is_utc_with_deciseconds() {
    let ts: Timestamp = "2026-11-26T18:16:12.986207".parse().unwrap();
    assert_eq!(
        date_and_time(ts),
        [0x07, 0xea, 11, 26, 18, 16, 12, 9, b'+', 0, 0]
    );
    assert_eq!(
        date_and_time(Timestamp(0)),
        [0x07, 0xb2, 1, 1, 0, 0, 0, 0, b'+', 0, 0]
    );
    // A leap day and the last instant of a year.
    let ts: Timestamp = "2024-02-29T23:59:59.999999".parse().unwrap();
    assert_eq!(
        date_and_time(ts),
        [0x07, 0xe8, 2, 29, 23, 59, 59, 9, b'+', 0, 0]
    );
    let ts: Timestamp = "1999-12-31T23:59:59".parse().unwrap();
    assert_eq!(
        date_and_time(ts),
        [0x07, 0xcf, 12, 31, 23, 59, 59, 0, b'+', 0, 0]
    );
    // Every day of 1900..2100 agrees with Timestamp's own printing.
    let mut ts = "1900-01-01T12:00:00".parse::<Timestamp>().unwrap();
    while ts.micros() < "2100-01-01".parse::<Timestamp>().unwrap().micros() {
        let d = date_and_time(ts);
        let want = ts.to_string();
        let got = format!(
            "{:04}-{:02}-{:02}T12:00:00.000000",
            u16::from_be_bytes([d[0], d[1]]),
            d[2],
            d[3]
        );
        assert_eq!(got, want);
        ts = ts.plus_secs(86_400);
    }
}

#[test]
fn alarm_sets_map_to_their_severity_notification_with_active_table_columns() {
    let cases = [
        (Severity::Critical, 1, 4),
        (Severity::Major, 2, 3),
        (Severity::Minor, 3, 2),
        (Severity::Warning, 4, 1),
        (Severity::NotApplicable, 4, 5),
    ];
    for (severity, trap, value) in cases {
        let n = event_notification(&event(EventState::Set, severity));
        assert_eq!(n.trap_oid, alarm_mib_oid(&[0, trap]), "{severity}");
        assert_eq!(n.varbinds.len(), 11);
        assert_eq!(n.varbinds[4].value, Value::Integer(value));
    }
    let n = event_notification(&event(EventState::Set, Severity::Critical));
    assert_eq!(n.trap_oid, vec![1, 3, 6, 1, 4, 1, 731, 1, 1, 1, 1, 0, 1]);
    let oids: Vec<Oid> = n.varbinds.iter().map(|v| v.oid.clone()).collect();
    let want: Vec<Oid> = (2..=12).map(|c| alarm_mib_oid(&[1, 1, c, 1])).collect();
    assert_eq!(oids, want);
    let s = |t: &str| Value::OctetString(t.as_bytes().to_vec());
    let values: Vec<Value> = n.varbinds.iter().map(|v| v.value.clone()).collect();
    assert_eq!(
        values,
        vec![
            s("0b7e4b8e-6f7c-4c53-9a57-1f0c2d7d8e11"),
            s("100.101"),
            s("host=controller-0"),
            Value::OctetString(vec![0x07, 0xea, 11, 26, 18, 16, 12, 0, b'+', 0, 0]),
            Value::Integer(4),
            s("Platform CPU threshold exceeded"),
            s("operational-violation"),
            s("threshold-crossed"),
            s("Monitor and if condition persists, contact next level of support."),
            Value::Integer(1),
            Value::Integer(0),
        ]
    );
}

#[test]
fn a_clear_is_roost_alarm_clear_with_severity_clear() {
    let n = event_notification(&event(EventState::Clear, Severity::Major));
    assert_eq!(n.trap_oid, alarm_mib_oid(&[0, 9]));
    assert_eq!(n.varbinds.len(), 11);
    assert_eq!(n.varbinds[4].oid, alarm_mib_oid(&[1, 1, 6, 1]));
    assert_eq!(n.varbinds[4].value, Value::Integer(0));
}

#[test]
fn logs_and_messages_are_roost_alarm_message_with_event_table_columns() {
    for (state, value) in [(EventState::Log, 3), (EventState::Msg, 4)] {
        let n = event_notification(&event(state, Severity::NotApplicable));
        assert_eq!(n.trap_oid, alarm_mib_oid(&[0, 5]));
        let oids: Vec<Oid> = n.varbinds.iter().map(|v| v.oid.clone()).collect();
        let want: Vec<Oid> = (2..=13).map(|c| alarm_mib_oid(&[2, 1, c, 1])).collect();
        assert_eq!(oids, want);
        assert_eq!(n.varbinds[2].value, Value::Integer(value));
        assert_eq!(n.varbinds[5].value, Value::Integer(5));
    }
}

#[test]
fn long_text_is_cut_at_a_character_boundary() {
    let mut e = event(EventState::Set, Severity::Minor);
    e.reason_text = "é".repeat(600); // 1200 octets
    let n = event_notification(&e);
    let Value::OctetString(reason) = &n.varbinds[5].value else {
        panic!("reason text is not a string");
    };
    assert_eq!(reason.len(), MAX_TEXT_OCTETS);
    assert!(std::str::from_utf8(reason).is_ok());
    e.reason_text = format!("a{}", "é".repeat(600));
    let n = event_notification(&e);
    let Value::OctetString(reason) = &n.varbinds[5].value else {
        panic!("reason text is not a string");
    };
    assert_eq!(reason.len(), MAX_TEXT_OCTETS - 1);

    assert_eq!(truncate(b"short", 10), b"short");
    assert_eq!(truncate(&[0xff; 20], 10), &[0xff; 10]);

    // The encoder cuts what a caller built by hand, too.
    let mut enc = TrapEncoder::new(
        Security::V2c {
            community: "public".into(),
        },
        ENGINE.to_vec(),
        1,
    )
    .unwrap();
    let huge = Notification {
        trap_oid: alarm_mib_oid(&[0, 5]),
        varbinds: (0..40)
            .map(|i| Varbind {
                oid: alarm_mib_oid(&[2, 1, 8, i]),
                value: Value::OctetString(vec![b'x'; 100_000]),
            })
            .collect(),
    };
    let msg = enc.encode(&huge, 0, 0, 0).unwrap();
    assert!(msg.len() < MAX_MESSAGE_OCTETS);
    assert!(msg.len() > 40 * MAX_TEXT_OCTETS);
    // Too many varbinds for one datagram is an error, not a panic.
    let too_many = Notification {
        trap_oid: alarm_mib_oid(&[0, 5]),
        varbinds: (0..70)
            .map(|i| Varbind {
                oid: alarm_mib_oid(&[2, 1, 8, i]),
                value: Value::OctetString(vec![b'x'; 2_000]),
            })
            .collect(),
    };
    assert!(matches!(
        enc.encode(&too_many, 0, 0, 0),
        Err(Error::Encode(_))
    ));
}

#[test]
fn settings_are_validated() {
    let bad = |security: Security, engine: &[u8], boots: u32| match TrapEncoder::new(
        security,
        engine.to_vec(),
        boots,
    ) {
        Err(Error::Invalid(msg)) => msg,
        other => panic!("accepted: {other:?}"),
    };
    let community = |c: &str| Security::V2c {
        community: c.into(),
    };
    assert!(bad(community(""), ENGINE, 1).contains("community"));
    assert!(bad(community(&"c".repeat(256)), ENGINE, 1).contains("community"));
    assert!(TrapEncoder::new(community(&"c".repeat(255)), ENGINE.to_vec(), 1).is_ok());

    let user = |u: &str| Security::V3 {
        user: u.into(),
        auth: None,
        privacy: None,
    };
    assert!(bad(user(""), ENGINE, 1).contains("user"));
    assert!(bad(user(&"u".repeat(33)), ENGINE, 1).contains("user"));
    assert!(TrapEncoder::new(user(&"u".repeat(32)), ENGINE.to_vec(), 1).is_ok());

    let short_auth = Security::V3 {
        user: "roost".into(),
        auth: Some((AuthProtocol::Sha1, "1234567".into())),
        privacy: None,
    };
    assert!(bad(short_auth, ENGINE, 1).contains("authentication passphrase"));
    let short_priv = Security::V3 {
        user: "roost".into(),
        auth: Some((AuthProtocol::Sha1, "12345678".into())),
        privacy: Some((PrivProtocol::Aes128, "short".into())),
    };
    assert!(bad(short_priv, ENGINE, 1).contains("privacy passphrase"));
    let priv_no_auth = Security::V3 {
        user: "roost".into(),
        auth: None,
        privacy: Some((PrivProtocol::Aes128, "privpassphrase".into())),
    };
    assert!(bad(priv_no_auth, ENGINE, 1).contains("needs authentication"));

    assert!(bad(v3(None, false), &[0x80, 0, 0, 1], 1).contains("engine ID"));
    assert!(bad(v3(None, false), &[0x80; 33], 1).contains("engine ID"));
    assert!(bad(v3(None, false), ENGINE, 2_147_483_648).contains("boots"));
}

#[test]
fn engine_ids_and_hex() {
    let id = engine_id_from_octets(731, b"roost");
    assert_eq!(hex(&id), "800002db05726f6f7374");
    assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    assert_eq!(hex(&[]), "");
}

#[test]
fn a_v2c_trap_is_the_exact_message() {
    let mut enc = TrapEncoder::new(
        Security::V2c {
            community: "public".into(),
        },
        Vec::new(),
        0,
    )
    .unwrap();
    let n = Notification {
        trap_oid: alarm_mib_oid(&[0, 1]),
        varbinds: vec![Varbind {
            oid: alarm_mib_oid(&[1, 1, 6, 1]),
            value: Value::Integer(4),
        }],
    };
    let msg = enc.encode(&n, 300, 0, 0).unwrap();
    let want: Vec<u8> = [
        &[0x30, 0x5b][..],
        &[0x02, 0x01, 0x01], // version 2c
        &[0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c'],
        &[0xa7, 0x4e],
        &[0x02, 0x01, 0x01], // request-id 1
        &[0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        &[0x30, 0x43],
        &[
            0x30, 0x0e, 0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 3, 0, 0x43, 0x02, 0x01, 0x2c,
        ],
        &[0x30, 0x1b, 0x06, 0x0a, 0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0],
        &[0x06, 0x0d, 0x2b, 6, 1, 4, 1, 0x85, 0x5b, 1, 1, 1, 1, 0, 1],
        &[
            0x30, 0x14, 0x06, 0x0f, 0x2b, 6, 1, 4, 1, 0x85, 0x5b, 1, 1, 1, 1, 1, 1, 6, 1,
        ],
        &[0x02, 0x01, 0x04],
    ]
    .concat();
    assert_eq!(hex(&msg), hex(&want));
    // The request-id goes up with every trap.
    let msg = enc.encode(&n, 300, 0, 0).unwrap();
    assert_eq!(&msg[15..18], &[0x02, 0x01, 0x02]);
}

/// The parts of a v3 message: (msgID, flags, USM fields, msgData TLV).
struct Parsed {
    msg_id: Vec<u8>,
    flags: u8,
    usm: Vec<Vec<u8>>,
    data_tag: u8,
    data: Vec<u8>,
}

fn parse_v3(msg: &[u8]) -> Parsed {
    let (tag, body, rest) = tlv(msg);
    assert_eq!((tag, rest.len()), (0x30, 0));
    let top = items(body);
    assert_eq!(top.len(), 4);
    assert_eq!(top[0], (0x02, &[3u8][..]));
    let global = items(top[1].1);
    assert_eq!(global[1], (0x02, &[0x00u8, 0xff, 0xe3][..])); // 65507
    assert_eq!(global[3], (0x02, &[3u8][..]));
    assert_eq!(top[2].0, 0x04);
    let (t, usm, _) = tlv(top[2].1);
    assert_eq!(t, 0x30);
    Parsed {
        msg_id: global[0].1.to_vec(),
        flags: global[2].1[0],
        usm: items(usm).iter().map(|(_, c)| c.to_vec()).collect(),
        data_tag: top[3].0,
        data: top[3].1.to_vec(),
    }
}

#[test]
fn v3_messages_carry_the_usm_fields_and_a_verifiable_digest() {
    let n = event_notification(&event(EventState::Set, Severity::Critical));
    for (auth, privacy, flags, mac_len) in [
        (None, false, 0x00, 0),
        (Some(AuthProtocol::Sha1), false, 0x01, 12),
        (Some(AuthProtocol::Sha1), true, 0x03, 12),
        (Some(AuthProtocol::Sha256), false, 0x01, 24),
        (Some(AuthProtocol::Sha256), true, 0x03, 24),
    ] {
        let mut enc = TrapEncoder::new(v3(auth, privacy), ENGINE.to_vec(), 7).unwrap();
        let msg = enc.encode(&n, 12345, 42, 0x0102_0304_0506_0708).unwrap();
        let p = parse_v3(&msg);
        assert_eq!(p.flags, flags, "no reportable flag, {auth:?} {privacy}");
        assert_eq!(p.msg_id, [1]);
        assert_eq!(p.usm[0], ENGINE);
        assert_eq!(p.usm[1], [7]);
        assert_eq!(p.usm[2], [42]);
        assert_eq!(p.usm[3], b"roost");
        assert_eq!(p.usm[4].len(), mac_len);
        if privacy {
            assert_eq!(p.usm[5], [1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(p.data_tag, 0x04);
        } else {
            assert!(p.usm[5].is_empty());
            assert_eq!(p.data_tag, 0x30);
            let scoped = items(&p.data);
            assert_eq!(scoped[0], (0x04, ENGINE));
            assert_eq!(scoped[1], (0x04, &[][..]));
            assert_eq!(scoped[2].0, 0xa7);
        }
        if let Some(protocol) = auth {
            // The digest is the HMAC of the message with the field zeroed.
            let at = msg
                .windows(mac_len)
                .position(|w| w == p.usm[4].as_slice())
                .unwrap();
            let mut zeroed = msg.clone();
            zeroed[at..at + mac_len].fill(0);
            let ku = usm::password_to_key(protocol, b"authpassphrase").unwrap();
            let key = usm::AuthKey::new(protocol, &usm::localize(protocol, &ku, ENGINE));
            assert_eq!(key.mac(&zeroed), p.usm[4]);
        }
        // The next message has the next msgID.
        let next = enc.encode(&n, 12346, 43, 2).unwrap();
        assert_eq!(parse_v3(&next).msg_id, [2]);
    }
}

#[test]
fn encrypted_scoped_pdus_decrypt_with_the_same_keystream() {
    // CFB encryption of zeros yields the keystream; XOR recovers the PDU.
    let n = event_notification(&event(EventState::Log, Severity::NotApplicable));
    let mut enc = TrapEncoder::new(v3(Some(AuthProtocol::Sha1), true), ENGINE.to_vec(), 3).unwrap();
    let msg = enc.encode(&n, 1, 99, 5).unwrap();
    let p = parse_v3(&msg);
    let mut plain_enc =
        TrapEncoder::new(v3(Some(AuthProtocol::Sha1), false), ENGINE.to_vec(), 3).unwrap();
    let plain = parse_v3(&plain_enc.encode(&n, 1, 99, 5).unwrap()).data;
    let scoped = [&[0x30][..], &ber_len(plain.len()), &plain].concat();
    assert_eq!(p.data.len(), scoped.len());
    // Recompute with the key: CFB over the plaintext must give the ciphertext.
    let ku = usm::password_to_key(AuthProtocol::Sha1, b"privpassphrase").unwrap();
    let kul = usm::localize(AuthProtocol::Sha1, &ku, ENGINE);
    let key = usm::PrivKey::new(&kul).unwrap();
    let mut again = scoped.clone();
    key.encrypt(&mut again, 3, 99, 5).unwrap();
    assert_eq!(again, p.data);
    assert_ne!(again, scoped);
}

fn ber_len(len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    ber::push_len(&mut v, len);
    v
}

#[test]
fn engine_time_above_the_limit_is_refused() {
    let mut enc = TrapEncoder::new(v3(None, false), ENGINE.to_vec(), 1).unwrap();
    let n = event_notification(&event(EventState::Set, Severity::Minor));
    assert!(matches!(
        enc.encode(&n, 0, 2_147_483_648, 0),
        Err(Error::Encode(_))
    ));
    assert!(enc.encode(&n, 0, 2_147_483_647, 0).is_ok());
}

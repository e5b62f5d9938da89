use super::*;
use proptest::prelude::*;

fn ch(seq: u64, id: &str, entity: &str, severity: Option<Severity>) -> AlarmChange {
    AlarmChange {
        seq,
        alarm_id: id.to_string(),
        entity_instance_id: entity.to_string(),
        severity,
        reason_text: format!("{id} on {entity}"),
        timestamp: Timestamp(1_700_000_000_000_000 + seq as i64),
    }
}

fn counts_by_hand(t: &AlarmTable) -> AlarmCounts {
    let mut c = AlarmCounts::default();
    for a in t.iter() {
        match a.severity {
            Severity::Critical => c.critical += 1,
            Severity::Major => c.major += 1,
            Severity::Minor => c.minor += 1,
            Severity::Warning => c.warnings += 1,
            Severity::NotApplicable => {}
        }
    }
    c
}

#[test]
fn counts_follow_raises_updates_and_clears() {
    let mut t = AlarmTable::new();
    t.apply(&ch(
        1,
        "100.101",
        "host=controller-0",
        Some(Severity::Major),
    ));
    t.apply(&ch(
        2,
        "100.103",
        "host=controller-0",
        Some(Severity::Warning),
    ));
    assert_eq!(
        t.counts(),
        AlarmCounts {
            major: 1,
            warnings: 1,
            ..AlarmCounts::default()
        }
    );
    // Raising again at another severity moves it between counters.
    t.apply(&ch(
        3,
        "100.101",
        "host=controller-0",
        Some(Severity::Critical),
    ));
    assert_eq!(t.counts().critical, 1);
    assert_eq!(t.counts().major, 0);
    assert_eq!(t.len(), 2);
    t.apply(&ch(4, "100.101", "host=controller-0", None));
    t.apply(&ch(5, "100.101", "host=controller-0", None));
    assert_eq!(t.counts(), counts_by_hand(&t));
    assert_eq!(t.counts().total(), 1);
    assert!(t.get("100.103", "host=controller-0").is_some());
}

#[test]
fn not_applicable_alarms_are_kept_but_not_counted() {
    let mut t = AlarmTable::new();
    t.apply(&ch(1, "900.001", "host=a", Some(Severity::NotApplicable)));
    assert_eq!(t.len(), 1);
    assert_eq!(t.counts().total(), 0);
    t.apply(&ch(2, "900.001", "host=a", None));
    assert!(t.is_empty());
}

#[test]
fn cloud_status_is_critical_then_degraded_then_ok_and_warnings_never_degrade() {
    let c = |critical, major, minor, warnings| AlarmCounts {
        critical,
        major,
        minor,
        warnings,
    };
    assert_eq!(c(1, 1, 1, 1).cloud_status(), CloudStatus::Critical);
    assert_eq!(c(0, 1, 0, 0).cloud_status(), CloudStatus::Degraded);
    assert_eq!(c(0, 0, 1, 0).cloud_status(), CloudStatus::Degraded);
    assert_eq!(c(0, 0, 0, 7).cloud_status(), CloudStatus::Ok);
    let s = AlarmSummary::from_counts(c(2, 0, 0, 3));
    assert_eq!((s.critical_alarms, s.warnings), (2, 3));
    assert_eq!(AlarmSummary::DISABLED.critical_alarms, -1);
    assert_eq!(AlarmSummary::DISABLED.cloud_status.as_str(), "disabled");
}

#[test]
fn changes_in_order_are_applied_and_acknowledged() {
    let mut s = AlarmStream::new();
    let acked = s
        .receive(&[
            ch(1, "a", "x", Some(Severity::Major)),
            ch(2, "b", "x", Some(Severity::Minor)),
        ])
        .unwrap();
    assert_eq!(acked, 2);
    assert_eq!(s.receive(&[ch(3, "a", "x", None)]).unwrap(), 3);
    assert_eq!(s.table().counts().minor, 1);
    assert_eq!(s.table().len(), 1);
    assert_eq!(s.receive(&[]).unwrap(), 3);
}

#[test]
fn a_replay_after_a_partition_counts_nothing_twice() {
    let mut s = AlarmStream::new();
    let batch = [
        ch(1, "a", "x", Some(Severity::Critical)),
        ch(2, "b", "x", Some(Severity::Critical)),
    ];
    s.receive(&batch).unwrap();
    // The ack was lost: the subcloud resends the same changes plus a new one.
    let replay = [
        batch[0].clone(),
        batch[1].clone(),
        ch(3, "c", "x", Some(Severity::Critical)),
    ];
    assert_eq!(s.receive(&replay).unwrap(), 3);
    assert_eq!(s.receive(&replay).unwrap(), 3);
    assert_eq!(s.table().counts().critical, 3);
}

#[test]
fn a_gap_is_refused_and_nothing_past_it_is_applied() {
    let mut s = AlarmStream::new();
    s.receive(&[ch(1, "a", "x", Some(Severity::Major))])
        .unwrap();
    let err = s
        .receive(&[
            ch(2, "b", "x", Some(Severity::Major)),
            ch(4, "c", "x", Some(Severity::Major)),
            ch(5, "d", "x", Some(Severity::Major)),
        ])
        .unwrap_err();
    assert_eq!(
        err,
        Error::Gap {
            expected: 3,
            got: 4
        }
    );
    assert!(err.to_string().contains("resend from 3"));
    // Change 2 (before the gap) stays; 4 and 5 were not applied.
    assert_eq!(s.acked(), 2);
    assert_eq!(s.table().counts().major, 2);
    assert!(s.table().get("c", "x").is_none());
}

#[test]
fn a_batch_out_of_order_is_refused_whole() {
    let mut s = AlarmStream::new();
    let err = s
        .receive(&[
            ch(1, "a", "x", Some(Severity::Major)),
            ch(3, "c", "x", Some(Severity::Major)),
            ch(2, "b", "x", Some(Severity::Major)),
        ])
        .unwrap_err();
    assert_eq!(err, Error::OutOfOrder { after: 3, got: 2 });
    assert_eq!(s.acked(), 0);
    assert!(s.table().is_empty());
    // A repeated number inside a batch is out of order too.
    assert!(matches!(
        s.receive(&[ch(1, "a", "x", None), ch(1, "a", "x", None)]),
        Err(Error::OutOfOrder { .. })
    ));
}

#[test]
fn a_snapshot_replaces_the_table_and_sets_the_acknowledged_number() {
    let mut s = AlarmStream::new();
    s.receive(&[
        ch(1, "a", "x", Some(Severity::Major)),
        ch(2, "b", "x", Some(Severity::Minor)),
    ])
    .unwrap();
    let snap = vec![ActiveAlarm {
        alarm_id: "z".into(),
        entity_instance_id: "y".into(),
        severity: Severity::Critical,
        reason_text: "z".into(),
        timestamp: Timestamp(1),
    }];
    assert_eq!(s.snapshot(40, &snap), 40);
    assert_eq!(s.table().to_vec(), snap);
    assert_eq!(s.table().counts().critical, 1);
    assert_eq!(s.table().counts().major, 0);
    // Replays below the snapshot are duplicates; the stream resumes at 41.
    assert_eq!(
        s.receive(&[ch(40, "q", "q", Some(Severity::Major))])
            .unwrap(),
        40
    );
    assert_eq!(s.receive(&[ch(41, "z", "y", None)]).unwrap(), 41);
    assert!(s.table().is_empty());
    // A restarted subcloud numbers afresh: its snapshot is authoritative.
    assert_eq!(s.snapshot(0, &[]), 0);
    assert_eq!(
        s.receive(&[ch(1, "a", "x", Some(Severity::Minor))])
            .unwrap(),
        1
    );
}

fn change_of(seq: u64, (id, entity, sev): (u8, u8, u8)) -> AlarmChange {
    let severity = match sev {
        0 => None,
        1 => Some(Severity::Critical),
        2 => Some(Severity::Major),
        3 => Some(Severity::Minor),
        _ => Some(Severity::Warning),
    };
    ch(
        seq,
        &format!("100.{id:03}"),
        &format!("host=h{entity}"),
        severity,
    )
}

proptest! {
    /// Any interleaving of replays of prefixes (and batches that leave gaps)
    /// yields the same table as applying each change exactly once.
    #[test]
    fn replays_in_any_interleaving_give_the_table_of_applying_each_change_once(
        raw in prop::collection::vec((0u8..4, 0u8..3, 0u8..5), 1..40),
        batches in prop::collection::vec((0usize..40, 0usize..12), 0..30),
    ) {
        let changes: Vec<AlarmChange> = raw
            .iter()
            .enumerate()
            .map(|(i, r)| change_of(i as u64 + 1, *r))
            .collect();
        let mut once = AlarmTable::new();
        for c in &changes {
            once.apply(c);
        }
        let mut s = AlarmStream::new();
        for (start, len) in batches {
            let start = start % changes.len();
            let end = (start + len).min(changes.len());
            let before = s.clone();
            match s.receive(&changes[start..end]) {
                Ok(acked) => prop_assert!(acked >= before.acked()),
                Err(Error::Gap { expected, .. }) => prop_assert_eq!(expected, s.acked() + 1),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
        let acked = s.acked() as usize;
        s.receive(&changes[acked..]).unwrap();
        prop_assert_eq!(s.acked(), changes.len() as u64);
        prop_assert_eq!(s.table(), &once);
        prop_assert_eq!(s.table().counts(), counts_by_hand(&once));
    }
}

#[test]
fn the_log_numbers_changes_and_sends_what_was_not_acknowledged() {
    let mut log = AlarmLog::new();
    assert_eq!(log.append(ch(0, "a", "x", Some(Severity::Major))), 1);
    assert_eq!(log.append(ch(99, "b", "x", Some(Severity::Minor))), 2);
    assert_eq!(log.append(ch(0, "a", "x", None)), 3);
    let seqs = |s: &[AlarmChange]| s.iter().map(|c| c.seq).collect::<Vec<_>>();
    assert_eq!(seqs(log.pending_after(0)), vec![1, 2, 3]);
    assert_eq!(seqs(log.pending_after(2)), vec![3]);
    assert!(log.pending_after(3).is_empty());
    log.ack(2);
    assert_eq!(log.len(), 1);
    assert_eq!(seqs(log.pending_after(0)), vec![3]);
    assert!(!log.needs_snapshot(2));
    log.ack(10);
    assert!(log.is_empty());
    assert_eq!(log.last_seq(), 3);
    assert!(!log.needs_snapshot(3));
    let (seq, alarms) = log.snapshot();
    assert_eq!(seq, 3);
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].alarm_id, "b");
}

#[test]
fn a_full_log_drops_its_oldest_changes_and_then_needs_a_snapshot() {
    let mut log = AlarmLog::with_capacity(3);
    for i in 0..5 {
        log.append(ch(0, &format!("a{i}"), "x", Some(Severity::Warning)));
    }
    assert_eq!(log.len(), 3);
    assert_eq!(log.pending_after(2)[0].seq, 3);
    // The System Controller acknowledged 2: change 3 is still here.
    assert!(!log.needs_snapshot(2));
    // It acknowledged only 1: change 2 is gone.
    assert!(log.needs_snapshot(1));
    assert!(log.needs_snapshot(0));
    // The active table is complete even though the log is not.
    assert_eq!(log.snapshot().1.len(), 5);
}

#[test]
fn a_controller_ahead_of_a_restarted_log_gets_a_snapshot() {
    let log = AlarmLog::new();
    assert!(!log.needs_snapshot(0));
    assert!(log.needs_snapshot(500));
}

#[test]
fn a_long_run_against_a_small_bound_keeps_the_log_bounded() {
    let mut log = AlarmLog::with_capacity(100);
    for i in 0..10_000u64 {
        log.append(ch(0, "a", &format!("h{}", i % 7), Some(Severity::Minor)));
        if i % 3 == 0 {
            log.ack(i.saturating_sub(50));
        }
    }
    assert!(log.len() <= 100);
    assert_eq!(log.last_seq(), 10_000);
    assert_eq!(log.pending_after(9_999).len(), 1);
    assert_eq!(log.active().len(), 7);
}

#[derive(Debug, Clone)]
enum Step {
    Append(u8, u8, u8),
    /// The subcloud sends; `delivered`: the batch arrives, `acked`: the ack comes back.
    Send {
        delivered: bool,
        acked: bool,
    },
    /// The connection drops and comes back: the controller tells the subcloud where it is.
    Reconnect,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4, 0u8..3, 0u8..5).prop_map(|(a, b, c)| Step::Append(a, b, c)),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(delivered, acked)| Step::Send { delivered, acked }),
        1 => Just(Step::Reconnect),
    ]
}

/// What a subcloud's connection does: a snapshot when the log cannot
/// bring the controller up to date, the pending changes otherwise.
fn send(
    log: &mut AlarmLog,
    sc: &mut AlarmStream,
    believed: &mut u64,
    delivered: bool,
    acked: bool,
) {
    if !delivered {
        return;
    }
    let ack = if log.needs_snapshot(*believed) {
        let (seq, alarms) = log.snapshot();
        sc.snapshot(seq, &alarms)
    } else {
        let batch = log.pending_after(*believed).to_vec();
        sc.receive(&batch).expect("no gap from an honest subcloud")
    };
    if acked {
        log.ack(ack);
        *believed = ack;
    }
}

proptest! {
    /// Whatever is lost on the way, a reconnection brings the controller's
    /// table to the subcloud's.
    #[test]
    fn the_controller_converges_on_the_subclouds_alarms_over_a_lossy_link(
        steps in prop::collection::vec(step(), 0..120),
        capacity in 1usize..8,
    ) {
        let mut log = AlarmLog::with_capacity(capacity);
        let mut sc = AlarmStream::new();
        let mut believed = 0u64;
        for s in steps {
            match s {
                Step::Append(a, b, c) => {
                    log.append(change_of(0, (a, b, c)));
                }
                Step::Send { delivered, acked } => send(&mut log, &mut sc, &mut believed, delivered, acked),
                Step::Reconnect => believed = sc.acked(),
            }
            prop_assert!(log.len() <= capacity);
        }
        believed = sc.acked();
        send(&mut log, &mut sc, &mut believed, true, true);
        prop_assert_eq!(sc.table(), log.active());
        prop_assert_eq!(sc.acked(), log.last_seq());
        prop_assert!(log.is_empty());
    }
}

use super::*;
use crate::query::FilterOp;
use proptest::prelude::*;

fn cat() -> Catalogue {
    Catalogue::builtin()
}

fn t(s: i64) -> Timestamp {
    Timestamp(1_700_000_000_000_000 + s * 1_000_000)
}

fn input(id: &str, entity: &str, sev: Severity) -> AlarmInput {
    AlarmInput {
        alarm_id: id.into(),
        entity_instance_id: entity.into(),
        entity_type_id: None,
        severity: sev,
        reason_text: Some(format!("{id} on {entity}")),
        alarm_type: None,
        probable_cause: None,
        proposed_repair_action: None,
        service_affecting: None,
        suppression: None,
        timestamp: None,
    }
}

fn set(s: &mut FmState, id: &str, entity: &str, sev: Severity) -> Outcome {
    s.apply(FmCommand::Set(input(id, entity, sev)), t(0), &cat())
        .unwrap()
}

fn uuid_of(o: &Outcome) -> String {
    match &o.reply {
        Reply::Uuid(u) => u.clone(),
        r => panic!("unexpected reply {r:?}"),
    }
}

#[test]
fn setting_an_alarm_writes_a_set_event_with_the_alarms_uuid() {
    let mut s = FmState::new();
    let o = set(
        &mut s,
        "100.104",
        "host=c-0.filesystem=/var",
        Severity::Major,
    );
    let uuid = uuid_of(&o);
    assert_eq!(s.len(), 1);
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.events[0].uuid, uuid);
    assert_eq!(o.events[0].state, EventState::Set);
    let a = s.get(&uuid).unwrap();
    assert_eq!(a.entity_type_id, "host.filesystem");
    assert_eq!(a.timestamp, t(0));
    assert!(a.updated_at.is_none());
}

#[test]
fn setting_the_same_pair_again_updates_in_place() {
    let mut s = FmState::new();
    let first = uuid_of(&set(&mut s, "100.101", "host=c-0", Severity::Major));
    let o = s
        .apply(
            FmCommand::Set(input("100.101", "host=c-0", Severity::Critical)),
            t(5),
            &cat(),
        )
        .unwrap();
    assert_eq!(uuid_of(&o), first, "an update keeps the alarm's uuid");
    assert_eq!(s.len(), 1, "no duplicate");
    let a = s.get(&first).unwrap();
    assert_eq!(a.severity, Severity::Critical);
    assert_eq!(a.updated_at, Some(t(5)));
    assert_eq!(a.created_at, t(0));
    assert_ne!(
        o.events[0].uuid, first,
        "the update's event has its own uuid"
    );
    match &o.changes[0] {
        AlarmChange::Upsert {
            before: Some(b), ..
        } => assert_eq!(b.severity, Severity::Major),
        c => panic!("unexpected change {c:?}"),
    }
}

#[test]
fn clearing_by_uuid_removes_the_alarm_and_logs_a_clear_with_its_severity() {
    let mut s = FmState::new();
    let u = uuid_of(&set(&mut s, "200.004", "host=w-1", Severity::Critical));
    let o = s
        .apply(FmCommand::ClearUuid(u.clone()), t(9), &cat())
        .unwrap();
    assert!(s.is_empty());
    assert_eq!(o.reply, Reply::Cleared(vec![u.clone()]));
    assert_eq!(o.events[0].state, EventState::Clear);
    assert_eq!(o.events[0].severity, Severity::Critical);
    assert_eq!(o.events[0].timestamp, t(9));
    assert_ne!(o.events[0].uuid, u);
}

#[test]
fn clearing_an_unknown_uuid_is_not_found_and_changes_nothing() {
    let mut s = FmState::new();
    set(&mut s, "200.004", "host=w-1", Severity::Critical);
    let e = s
        .apply(FmCommand::ClearUuid("nope".into()), t(1), &cat())
        .unwrap_err();
    assert_eq!(e, Error::AlarmNotFound("nope".into()));
    assert_eq!(s.len(), 1);
}

#[test]
fn clearing_a_pair_that_is_not_active_succeeds_with_nothing_cleared() {
    let mut s = FmState::new();
    let o = s
        .apply(
            FmCommand::ClearPair {
                alarm_id: "200.004".into(),
                entity_instance_id: "host=w-1".into(),
            },
            t(1),
            &cat(),
        )
        .unwrap();
    assert_eq!(o.reply, Reply::Cleared(vec![]));
    assert!(o.events.is_empty());
}

#[test]
fn clearing_a_prefix_clears_children_but_keeps_sibling_hosts() {
    let mut s = FmState::new();
    set(&mut s, "200.004", "host=worker-1", Severity::Critical);
    set(
        &mut s,
        "100.104",
        "host=worker-1.filesystem=/var",
        Severity::Major,
    );
    set(&mut s, "200.004", "host=worker-10", Severity::Critical);
    set(
        &mut s,
        "100.104",
        "host=worker-10.filesystem=/",
        Severity::Major,
    );
    set(&mut s, "200.001", "host=worker-0", Severity::Warning);
    let o = s
        .apply(
            FmCommand::ClearPrefix {
                entity_prefix: "host=worker-1".into(),
                alarm_id: None,
            },
            t(1),
            &cat(),
        )
        .unwrap();
    assert_eq!(o.events.len(), 2);
    assert_eq!(s.len(), 3);
    assert!(s.get_pair("200.004", "host=worker-10").is_some());
    assert!(
        s.get_pair("100.104", "host=worker-10.filesystem=/")
            .is_some()
    );
    assert!(s.get_pair("200.004", "host=worker-1").is_none());
}

#[test]
fn clearing_a_prefix_can_be_limited_to_one_alarm_id() {
    let mut s = FmState::new();
    set(&mut s, "200.004", "host=worker-1", Severity::Critical);
    set(
        &mut s,
        "100.104",
        "host=worker-1.filesystem=/var",
        Severity::Major,
    );
    s.apply(
        FmCommand::ClearPrefix {
            entity_prefix: "host=worker-1".into(),
            alarm_id: Some("100.104".into()),
        },
        t(1),
        &cat(),
    )
    .unwrap();
    assert_eq!(s.len(), 1);
    assert!(s.get_pair("200.004", "host=worker-1").is_some());
}

#[test]
fn summary_status_follows_the_worst_severity_and_warnings_never_degrade() {
    let mut s = FmState::new();
    assert_eq!(s.summary(false).status(), "OK");
    set(&mut s, "200.001", "host=a", Severity::Warning);
    assert_eq!(s.summary(false).status(), "OK");
    set(&mut s, "100.101", "host=a", Severity::Minor);
    assert_eq!(s.summary(false).status(), "degraded");
    set(&mut s, "100.103", "host=a", Severity::Critical);
    let sum = s.summary(false);
    assert_eq!(sum.status(), "critical");
    assert_eq!(
        (sum.critical, sum.major, sum.minor, sum.warnings),
        (1, 0, 1, 1)
    );
}

#[test]
fn suppressed_ids_are_hidden_from_list_and_summary_unless_asked() {
    let mut s = FmState::new();
    set(&mut s, "100.101", "host=a", Severity::Critical);
    set(&mut s, "200.001", "host=a", Severity::Warning);
    s.apply(
        FmCommand::Suppress {
            alarm_id: "100.101".into(),
            suppressed: true,
        },
        t(1),
        &cat(),
    )
    .unwrap();
    assert_eq!(s.summary(false).critical, 0);
    assert_eq!(s.summary(true).critical, 1);
    let page = s.list(&ListOptions::default()).unwrap();
    assert_eq!(page.items.len(), 1);
    let all = s
        .list(&ListOptions {
            include_suppress: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.items.len(), 2);
}

#[test]
fn only_suppressible_catalogue_alarms_can_be_suppressed() {
    let mut s = FmState::new();
    let e = s
        .apply(
            FmCommand::Suppress {
                alarm_id: "200.001".into(),
                suppressed: true,
            },
            t(1),
            &cat(),
        )
        .unwrap_err();
    assert_eq!(e, Error::NotSuppressible("200.001".into()));
    let e = s
        .apply(
            FmCommand::Suppress {
                alarm_id: "999.999".into(),
                suppressed: true,
            },
            t(1),
            &cat(),
        )
        .unwrap_err();
    assert_eq!(e, Error::UnknownAlarmId("999.999".into()));
    assert!(s.suppressed_ids().is_empty());
}

#[test]
fn alarm_ids_outside_the_catalogue_are_accepted_with_defaults() {
    let mut s = FmState::new();
    let mut i = input("777.123", "app=x", Severity::Minor);
    i.reason_text = None;
    let u = uuid_of(&s.apply(FmCommand::Set(i), t(0), &cat()).unwrap());
    let a = s.get(&u).unwrap();
    assert_eq!(a.alarm_type, "other");
    assert_eq!(a.probable_cause, "unspecified-reason");
    assert!(!a.suppression);
}

#[test]
fn catalogue_fills_in_what_the_raiser_left_out() {
    let mut s = FmState::new();
    let mut i = input("100.104", "host=a.filesystem=/", Severity::Major);
    i.reason_text = None;
    let u = uuid_of(&s.apply(FmCommand::Set(i), t(0), &cat()).unwrap());
    let a = s.get(&u).unwrap();
    let e = cat().get("100.104").cloned().unwrap();
    assert_eq!(a.alarm_type, e.alarm_type);
    assert_eq!(a.probable_cause, e.probable_cause);
    assert_eq!(a.proposed_repair_action, e.proposed_repair_action);
    assert!(!a.reason_text.is_empty());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut s = FmState::new();
    let bad = [
        input("", "host=a", Severity::Major),
        input("100.101", "", Severity::Major),
        input("100 101", "host=a", Severity::Major),
        input("100.101", "host=a", Severity::NotApplicable),
        input(&"9".repeat(40), "host=a", Severity::Major),
        input("100.101", &"h".repeat(300), Severity::Major),
    ];
    for b in bad {
        assert!(matches!(
            s.apply(FmCommand::Set(b), t(0), &cat()),
            Err(Error::Invalid(_))
        ));
    }
    assert!(s.is_empty());
}

#[test]
fn logs_go_to_the_event_log_only() {
    let mut s = FmState::new();
    let o = s
        .apply(
            FmCommand::Log(EventInput {
                event_log_id: "200.020".into(),
                state: EventState::Log,
                entity_instance_id: "host=a".into(),
                entity_type_id: None,
                severity: Severity::NotApplicable,
                reason_text: Some("went by".into()),
                event_log_type: None,
                probable_cause: None,
                proposed_repair_action: None,
                service_affecting: None,
                suppression: None,
                timestamp: None,
            }),
            t(3),
            &cat(),
        )
        .unwrap();
    assert!(s.is_empty());
    assert!(o.changes.is_empty());
    assert_eq!(o.events.len(), 1);
    assert_eq!(o.events[0].state, EventState::Log);
}

#[test]
fn default_order_is_severity_then_entity() {
    let mut s = FmState::new();
    set(&mut s, "200.001", "host=a", Severity::Warning);
    set(&mut s, "100.101", "host=b", Severity::Critical);
    set(&mut s, "100.101", "host=a", Severity::Critical);
    set(&mut s, "100.103", "host=a", Severity::Major);
    let page = s.list(&ListOptions::default()).unwrap();
    let got: Vec<(&str, &str)> = page
        .items
        .iter()
        .map(|a| (a.alarm_id.as_str(), a.entity_instance_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("100.101", "host=a"),
            ("100.101", "host=b"),
            ("100.103", "host=a"),
            ("200.001", "host=a")
        ]
    );
}

#[test]
fn paging_with_marker_walks_every_alarm_once() {
    let mut s = FmState::new();
    for i in 0..25 {
        set(&mut s, "100.104", &format!("host=h{i:02}"), Severity::Major);
    }
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = s
            .list(&ListOptions {
                limit: Some(10),
                marker: marker.clone(),
                ..Default::default()
            })
            .unwrap();
        seen.extend(page.items.iter().map(|a| a.uuid.clone()));
        if !page.more {
            break;
        }
        marker = page.items.last().map(|a| a.uuid.clone());
    }
    assert_eq!(seen.len(), 25);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
}

#[test]
fn an_unknown_marker_or_sort_key_is_refused() {
    let s = FmState::new();
    assert!(
        s.list(&ListOptions {
            marker: Some("x".into()),
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        s.list(&ListOptions {
            sort_key: Some("colour".into()),
            ..Default::default()
        })
        .is_err()
    );
}

#[test]
fn filters_select_by_substring() {
    let mut s = FmState::new();
    set(&mut s, "100.101", "host=a", Severity::Major);
    set(&mut s, "100.104", "host=a.filesystem=/", Severity::Major);
    set(&mut s, "200.004", "host=b", Severity::Critical);
    let page = s
        .list(&ListOptions {
            filters: vec![Filter {
                field: "alarm_id".into(),
                op: FilterOp::Eq,
                value: "100.1".into(),
            }],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items.len(), 2);
}

#[test]
fn undo_restores_the_previous_table() {
    let mut s = FmState::new();
    set(&mut s, "100.101", "host=a", Severity::Major);
    let before: Vec<Alarm> = {
        let mut v: Vec<Alarm> = s.alarms().cloned().collect();
        v.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        v
    };
    let o1 = set(&mut s, "100.101", "host=a", Severity::Critical);
    let o2 = set(&mut s, "100.103", "host=a", Severity::Major);
    let o3 = s
        .apply(
            FmCommand::Suppress {
                alarm_id: "100.101".into(),
                suppressed: true,
            },
            t(1),
            &cat(),
        )
        .unwrap();
    s.undo(&o3.changes);
    s.undo(&o2.changes);
    s.undo(&o1.changes);
    let mut after: Vec<Alarm> = s.alarms().cloned().collect();
    after.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    assert_eq!(before, after);
    assert!(s.suppressed_ids().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8, u8),
    ClearPair(u8, u8),
    ClearPrefix(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..12, 0u8..4).prop_map(|(a, e, s)| Op::Set(a, e, s)),
        (0u8..4, 0u8..12).prop_map(|(a, e)| Op::ClearPair(a, e)),
        (0u8..4).prop_map(Op::ClearPrefix),
    ]
}

const IDS: [&str; 4] = ["100.101", "100.103", "100.104", "200.004"];

fn entity(e: u8) -> String {
    // hosts h0..h3, each with up to two filesystems
    let host = e % 4;
    match e / 4 {
        0 => format!("host=h{host}"),
        1 => format!("host=h{host}.filesystem=/var"),
        _ => format!("host=h{host}.filesystem=/"),
    }
}

proptest! {
    /// The table behaves like a plain map keyed by (alarm_id, entity), and
    /// every set and every clear writes exactly one event.
    #[test]
    fn the_table_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut s = FmState::new();
        let mut model: BTreeMap<(String, String), Severity> = BTreeMap::new();
        let c = cat();
        for (i, o) in ops.iter().enumerate() {
            let now = t(i as i64);
            match o {
                Op::Set(a, e, sev) => {
                    let sev = Severity::ALARM_SEVERITIES[*sev as usize];
                    let out = s.apply(FmCommand::Set(input(IDS[*a as usize], &entity(*e), sev)), now, &c).unwrap();
                    prop_assert_eq!(out.events.len(), 1);
                    model.insert((IDS[*a as usize].to_string(), entity(*e)), sev);
                }
                Op::ClearPair(a, e) => {
                    let existed = model.remove(&(IDS[*a as usize].to_string(), entity(*e))).is_some();
                    let out = s.apply(FmCommand::ClearPair { alarm_id: IDS[*a as usize].into(), entity_instance_id: entity(*e) }, now, &c).unwrap();
                    prop_assert_eq!(out.events.len(), usize::from(existed));
                }
                Op::ClearPrefix(h) => {
                    let prefix = format!("host=h{h}");
                    let before = model.len();
                    model.retain(|(_, e), _| !(e == &prefix || e.starts_with(&format!("{prefix}."))));
                    let out = s.apply(FmCommand::ClearPrefix { entity_prefix: prefix, alarm_id: None }, now, &c).unwrap();
                    prop_assert_eq!(out.events.len(), before - model.len());
                }
            }
            prop_assert_eq!(s.len(), model.len());
            for ((id, e), sev) in &model {
                prop_assert_eq!(s.get_pair(id, e).map(|a| a.severity), Some(*sev));
            }
            let sum = s.summary(true);
            prop_assert_eq!(sum.total(), model.len());
        }
    }

    /// Undoing any suffix of commands returns the table to where it was.
    #[test]
    fn undo_is_the_inverse_of_apply(ops in proptest::collection::vec(op(), 1..30), keep in 0usize..30) {
        let mut s = FmState::new();
        let c = cat();
        let mut outcomes = Vec::new();
        let mut snapshot = None;
        for (i, o) in ops.iter().enumerate() {
            if i == keep.min(ops.len()) {
                snapshot = Some(sorted(&s));
            }
            let cmd = match o {
                Op::Set(a, e, sev) => FmCommand::Set(input(IDS[*a as usize], &entity(*e), Severity::ALARM_SEVERITIES[*sev as usize])),
                Op::ClearPair(a, e) => FmCommand::ClearPair { alarm_id: IDS[*a as usize].into(), entity_instance_id: entity(*e) },
                Op::ClearPrefix(h) => FmCommand::ClearPrefix { entity_prefix: format!("host=h{h}"), alarm_id: None },
            };
            let out = s.apply(cmd, t(i as i64), &c).unwrap();
            if i >= keep.min(ops.len()) {
                outcomes.push(out);
            }
        }
        let snapshot = snapshot.unwrap_or_else(|| sorted(&s));
        for o in outcomes.iter().rev() {
            s.undo(&o.changes);
        }
        prop_assert_eq!(sorted(&s), snapshot);
    }
}

fn sorted(s: &FmState) -> Vec<Alarm> {
    let mut v: Vec<Alarm> = s.alarms().cloned().collect();
    v.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    v
}

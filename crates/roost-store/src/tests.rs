use super::*;
use roost_fm::{AlarmInput, Catalogue, FmCommand, FmState};
use roost_types::{Severity, Timestamp};

fn cfg(dir: &tempfile::TempDir, cap: u64) -> StoreConfig {
    StoreConfig {
        key: crate::KeySource::beside(&dir.path().join("roost.db")),
        path: dir.path().join("roost.db"),
        durability: Durability::Process,
        event_log_cap: cap,
    }
}

fn set(id: &str, entity: &str) -> FmCommand {
    FmCommand::Set(AlarmInput {
        alarm_id: id.into(),
        entity_instance_id: entity.into(),
        entity_type_id: None,
        severity: Severity::Major,
        reason_text: Some("r".into()),
        alarm_type: None,
        probable_cause: None,
        proposed_repair_action: None,
        service_affecting: None,
        suppression: None,
        timestamp: None,
    })
}

fn run(store: &Store, state: &mut FmState, cmds: Vec<FmCommand>, start: i64) {
    let cat = Catalogue::builtin();
    let mut w = store.writer().unwrap();
    let mut b = w.begin().unwrap();
    for (i, c) in cmds.into_iter().enumerate() {
        let o = state.apply(c, Timestamp(start + i as i64), &cat).unwrap();
        b.persist_fm(&o).unwrap();
    }
    b.commit().unwrap();
}

#[test]
fn alarms_and_suppression_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = FmState::new();
    {
        let store = Store::open(cfg(&dir, 100)).unwrap();
        run(
            &store,
            &mut state,
            vec![
                set("100.101", "host=a"),
                set("100.104", "host=a.filesystem=/"),
                set("100.101", "host=a"),
                FmCommand::Suppress {
                    alarm_id: "100.101".into(),
                    suppressed: true,
                },
            ],
            1,
        );
        assert_eq!(store.event_log_len(), 3);
    }
    let store = Store::open(cfg(&dir, 100)).unwrap();
    let (alarms, suppressed) = store.load_fm().unwrap();
    let reloaded = FmState::from_parts(alarms, suppressed);
    assert_eq!(reloaded.len(), 2);
    assert!(reloaded.is_suppressed("100.101"));
    let a = state.get_pair("100.101", "host=a").unwrap();
    assert_eq!(reloaded.get(&a.uuid), Some(a));
    assert_eq!(store.event_log_len(), 3);
}

#[test]
fn the_event_log_keeps_only_the_newest_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(cfg(&dir, 5)).unwrap();
    let mut state = FmState::new();
    let cmds = (0..12)
        .map(|i| set("100.104", &format!("host=h{i}")))
        .collect();
    run(&store, &mut state, cmds, 1);
    assert_eq!(store.event_log_len(), 5);
    let (events, more) = store
        .events(&EventQuery::default(), &Default::default())
        .unwrap();
    assert!(!more);
    let got: Vec<&str> = events
        .iter()
        .map(|e| e.entity_instance_id.as_str())
        .collect();
    assert_eq!(
        got,
        ["host=h11", "host=h10", "host=h9", "host=h8", "host=h7"]
    );
}

#[test]
fn event_paging_follows_the_marker_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(cfg(&dir, 100)).unwrap();
    let mut state = FmState::new();
    let cmds = (0..7)
        .map(|i| set("100.104", &format!("host=h{i}")))
        .collect();
    run(&store, &mut state, cmds, 1);
    let mut q = EventQuery {
        limit: Some(3),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let (page, more) = store.events(&q, &Default::default()).unwrap();
        seen.extend(page.iter().map(|e| e.entity_instance_id.clone()));
        if !more {
            break;
        }
        q.marker = page.last().map(|e| e.uuid.clone());
    }
    let want: Vec<String> = (0..7).rev().map(|i| format!("host=h{i}")).collect();
    assert_eq!(seen, want);
    q.marker = Some("no-such".into());
    assert!(matches!(
        store.events(&q, &Default::default()),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn a_failed_step_leaves_the_rest_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(cfg(&dir, 100)).unwrap();
    let mut state = FmState::new();
    let cat = Catalogue::builtin();
    let mut w = store.writer().unwrap();
    let mut b = w.begin().unwrap();
    let o1 = state
        .apply(set("100.101", "host=a"), Timestamp(1), &cat)
        .unwrap();
    b.persist_fm(&o1).unwrap();
    // The same outcome again collides on the event uuid: that step fails alone.
    assert!(b.persist_fm(&o1).is_err());
    let o2 = state
        .apply(set("100.103", "host=a"), Timestamp(2), &cat)
        .unwrap();
    b.persist_fm(&o2).unwrap();
    b.commit().unwrap();
    let (alarms, _) = store.load_fm().unwrap();
    assert_eq!(alarms.len(), 2);
    assert_eq!(store.event_log_len(), 2);
}

#[test]
fn users_tokens_and_roles_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(cfg(&dir, 100)).unwrap();
    let u = StoredUser {
        id: "u1".into(),
        name: "admin".into(),
        password_hash: "h".into(),
    };
    assert!(
        store
            .ensure_user(&u, ("p1", "admin"), &["admin", "reader"], Timestamp(1))
            .unwrap()
    );
    assert!(
        !store
            .ensure_user(&u, ("p1", "admin"), &["admin"], Timestamp(1))
            .unwrap()
    );
    assert_eq!(store.user_by_name("admin").unwrap(), Some(u.clone()));
    assert_eq!(store.roles("u1", "p1").unwrap(), ["admin", "reader"]);
    assert_eq!(
        store.project("admin").unwrap(),
        Some(("p1".into(), "admin".into()))
    );
    let t = StoredToken {
        hash: "th".into(),
        user_id: "u1".into(),
        project_id: Some("p1".into()),
        methods: "password".into(),
        issued_at: Timestamp(10),
        expires_at: Timestamp(20),
    };
    store.insert_token(&t).unwrap();
    assert_eq!(store.live_tokens(Timestamp(15)).unwrap(), vec![t.clone()]);
    assert!(store.live_tokens(Timestamp(25)).unwrap().is_empty());
    assert_eq!(store.purge_expired_tokens(Timestamp(25)).unwrap(), 1);
    assert!(!store.delete_token("th").unwrap());
}

#[test]
fn migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(cfg(&dir, 100)).unwrap());
    drop(Store::open(cfg(&dir, 100)).unwrap());
    let c = rusqlite::Connection::open(dir.path().join("roost.db")).unwrap();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, MIGRATIONS.len());
}

use super::*;
use roost_fm::{AlarmInput, Catalogue, FmCommand, FmState};
use roost_types::{Severity, Timestamp};

use crate::testdb::each_backend;

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
    for db in each_backend() {
        let mut state = FmState::new();
        {
            let store = Store::open(db.config(100)).unwrap();
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
        let store = Store::open(db.config(100)).unwrap();
        let (alarms, suppressed) = store.load_fm().unwrap();
        let reloaded = FmState::from_parts(alarms, suppressed);
        assert_eq!(reloaded.len(), 2);
        assert!(reloaded.is_suppressed("100.101"));
        let a = state.get_pair("100.101", "host=a").unwrap();
        assert_eq!(reloaded.get(&a.uuid), Some(a));
        assert_eq!(store.event_log_len(), 3);
    }
}

#[test]
fn the_event_log_keeps_only_the_newest_records() {
    for db in each_backend() {
        let store = Store::open(db.config(5)).unwrap();
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
}

#[test]
fn event_paging_follows_the_marker_newest_first() {
    for db in each_backend() {
        let store = Store::open(db.config(100)).unwrap();
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
}

#[test]
fn a_failed_step_leaves_the_rest_of_the_batch() {
    for db in each_backend() {
        let store = Store::open(db.config(100)).unwrap();
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
}

#[test]
fn application_credentials_round_trip_and_go_with_their_user() {
    for db in each_backend() {
        let store = Store::open(db.config(100)).unwrap();
        let u = StoredUser {
            id: "u1".into(),
            name: "alice".into(),
            password_hash: "h".into(),
        };
        store
            .ensure_user(&u, ("p1", "admin"), &["member", "reader"], Timestamp(1))
            .unwrap();
        let c = StoredAppCredential {
            id: "ac1".into(),
            user_id: "u1".into(),
            project_id: "p1".into(),
            name: "cli".into(),
            description: "the CLI".into(),
            secret_hash: "sh".into(),
            roles: vec!["member".into(), "reader".into()],
            expires_at: Some(Timestamp(99)),
            created_at: Timestamp(2),
        };
        assert!(store.insert_app_credential(&c).unwrap());
        let same_name = StoredAppCredential {
            id: "ac2".into(),
            ..c.clone()
        };
        assert!(
            !store.insert_app_credential(&same_name).unwrap(),
            "names are unique per user"
        );
        let never = StoredAppCredential {
            id: "ac3".into(),
            name: "prometheus".into(),
            roles: vec!["reader".into()],
            expires_at: None,
            ..c.clone()
        };
        assert!(store.insert_app_credential(&never).unwrap());
        assert_eq!(store.app_credential("ac1").unwrap(), Some(c.clone()));
        assert_eq!(
            store.app_credential_by_name("u1", "prometheus").unwrap(),
            Some(never.clone())
        );
        assert_eq!(
            store.app_credentials("u1").unwrap(),
            vec![c.clone(), never.clone()]
        );
        store
            .insert_token(&StoredToken {
                hash: "th".into(),
                user_id: "u1".into(),
                project_id: Some("p1".into()),
                methods: "application_credential".into(),
                issued_at: Timestamp(10),
                expires_at: Timestamp(20),
                app_cred_id: Some("ac1".into()),
            })
            .unwrap();
        assert_eq!(
            store.live_tokens(Timestamp(15)).unwrap()[0]
                .app_cred_id
                .as_deref(),
            Some("ac1")
        );
        assert_eq!(store.delete_app_credential("other", "ac1").unwrap(), None);
        assert_eq!(
            store.delete_app_credential("u1", "ac1").unwrap(),
            Some(vec!["th".to_string()]),
            "its tokens go with it"
        );
        assert!(store.live_tokens(Timestamp(15)).unwrap().is_empty());
        assert_eq!(store.app_credential("ac1").unwrap(), None);
        assert!(store.delete_user("u1").unwrap());
        assert_eq!(store.app_credential("ac3").unwrap(), None);
    }
}

#[test]
fn users_tokens_and_roles_round_trip() {
    for db in each_backend() {
        let store = Store::open(db.config(100)).unwrap();
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
            app_cred_id: None,
        };
        store.insert_token(&t).unwrap();
        assert_eq!(store.live_tokens(Timestamp(15)).unwrap(), vec![t.clone()]);
        assert!(store.live_tokens(Timestamp(25)).unwrap().is_empty());
        assert_eq!(store.purge_expired_tokens(Timestamp(25)).unwrap(), 1);
        assert!(!store.delete_token("th").unwrap());
        let accounts = store.accounts().unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(store.account("admin").unwrap(), Some(accounts[0].clone()));
        let synced = store.synced_users().unwrap();
        assert_eq!(synced.len(), 1);
        assert_eq!(store.role_assignments().unwrap().len(), 2);
    }
}

#[test]
fn migrations_run_once() {
    for db in each_backend() {
        drop(Store::open(db.config(100)).unwrap());
        drop(Store::open(db.config(100)).unwrap());
        let store = Store::open(db.config(100)).unwrap();
        let n: i64 = store
            .read(|c| c.query_row("SELECT COUNT(*) FROM schema_migrations", (), |r| r.get(0)))
            .unwrap();
        let want = if db.is_postgres() {
            POSTGRES_MIGRATIONS.len()
        } else {
            SQLITE_MIGRATIONS.len()
        };
        assert_eq!(n as usize, want);
    }
}

#[test]
fn both_backends_end_at_the_same_schema_version() {
    assert_eq!(
        SQLITE_MIGRATIONS.last().map(|m| m.0),
        POSTGRES_MIGRATIONS.last().map(|m| m.0)
    );
}

/// A locked worker named `name`, with secrets to seal.
pub(crate) fn host(name: &str) -> StoredHost {
    StoredHost {
        uuid: format!("uuid-{name}"),
        hostname: name.into(),
        personality: "worker".into(),
        subfunctions: "worker".into(),
        administrative: "locked".into(),
        operational: "disabled".into(),
        availability: "offline".into(),
        bm_type: "redfish".into(),
        bm_password: Some("bmc-secret".into()),
        hb_key: Some("hb-secret".into()),
        location: "{}".into(),
        created_at: Timestamp(1),
        ..Default::default()
    }
}

/// Some of everything: users and tokens, hosts with secrets, alarms and
/// events, a suppression, subclouds, applications, audit records.
pub(crate) fn fill(store: &Store) {
    let u = StoredUser {
        id: "u1".into(),
        name: "admin".into(),
        password_hash: "h".into(),
    };
    store
        .ensure_user(&u, ("p1", "admin"), &["admin", "reader"], Timestamp(1))
        .unwrap();
    store
        .insert_token(&StoredToken {
            hash: "th".into(),
            user_id: "u1".into(),
            project_id: Some("p1".into()),
            methods: "password".into(),
            issued_at: Timestamp(10),
            expires_at: Timestamp(i64::MAX),
            app_cred_id: None,
        })
        .unwrap();
    assert!(
        store
            .insert_app_credential(&StoredAppCredential {
                id: "ac1".into(),
                user_id: "u1".into(),
                project_id: "p1".into(),
                name: "prometheus".into(),
                description: String::new(),
                secret_hash: "sh".into(),
                roles: vec!["reader".into()],
                expires_at: None,
                created_at: Timestamp(2),
            })
            .unwrap()
    );
    for i in 0..3 {
        store.insert_host(&host(&format!("worker-{i}"))).unwrap();
    }
    store.delete_host(1).unwrap();
    store
        .set_settings(&[("system_name".into(), "edge \u{e9}t\u{e9}".into())])
        .unwrap();
    let mut state = FmState::new();
    let mut cmds: Vec<FmCommand> = (0..6)
        .map(|i| set("100.104", &format!("host=worker-{i}")))
        .collect();
    cmds.push(FmCommand::Suppress {
        alarm_id: "100.104".into(),
        suppressed: true,
    });
    run(store, &mut state, cmds, 1);
    let group = store
        .save_group(&crate::StoredGroup {
            name: "west".into(),
            description: "d".into(),
            update_apply_type: "serial".into(),
            max_parallel_subclouds: 5,
            ..Default::default()
        })
        .unwrap();
    for i in 0..2 {
        store
            .insert_subcloud(&crate::StoredSubcloud {
                name: format!("edge-{i}"),
                group_id: group.id,
                management_state: "managed".into(),
                deploy_status: "complete".into(),
                region_name: format!("r{i}"),
                ..Default::default()
            })
            .unwrap();
    }
    store
        .write_apps(&[crate::AppWrite::PutApp {
            name: "camera".into(),
            record: "{\"v\":1}".into(),
        }])
        .unwrap();
    let mut chain = roost_types::audit::Chain::default();
    let recs: Vec<_> = (1..=4)
        .map(|i| {
            chain.append(roost_types::audit::AuditEntry {
                time: Timestamp(i),
                user: "admin".into(),
                roles: vec!["admin".into()],
                source: "127.0.0.1:1".into(),
                method: "POST".into(),
                path: "/v1/alarms".into(),
                status: 200,
            })
        })
        .collect();
    let mut w = store.audit_writer().unwrap();
    let mut b = w.begin().unwrap();
    b.append_audit(&recs).unwrap();
    b.commit().unwrap();
}

#[test]
fn the_lease_passes_on_with_a_new_epoch_and_fences_the_old_holder() {
    use roost_types::lease::{Next, next};
    const MINUTE: i64 = 60_000_000;
    let setting = |v: &str| vec![("k".to_string(), v.to_string())];
    for db in each_backend() {
        let (a, b) = (db.open(100), db.open(100));
        a.set_name("c0");
        b.set_name("c1");
        assert_eq!(a.lease().unwrap().0, None);
        let e1 = a
            .take_lease("c0", "http://c0", None, MINUTE)
            .unwrap()
            .expect("a free lease is taken");
        assert_eq!(e1, 1);
        a.fence("c0", e1);
        a.set_settings(&setting("a")).unwrap();
        // The other server sees a live lease and waits; taking it on a
        // stale view of the row does nothing.
        let (row, now) = b.lease().unwrap();
        assert_eq!(
            next(row.as_ref(), now),
            Next::Wait {
                holder: "c0".into(),
                url: "http://c0".into()
            }
        );
        assert_eq!(b.take_lease("c1", "http://c1", None, MINUTE).unwrap(), None);
        assert!(a.renew_lease("c0", e1, MINUTE).unwrap());

        // Given up (as a switch-over does), it passes on with the next epoch.
        assert!(a.release_lease("c0", e1).unwrap());
        let (row, now) = b.lease().unwrap();
        assert_eq!(next(row.as_ref(), now), Next::Take);
        let e2 = b
            .take_lease("c1", "http://c1", row.as_ref(), MINUTE)
            .unwrap()
            .expect("an expired lease is taken");
        assert_eq!(e2, 2);
        b.fence("c1", e2);

        // The old holder can neither write (one-off writes, the batching
        // writer) nor renew; what it tried left nothing.
        for _ in 0..2 {
            let e = a.set_settings(&setting("stale")).unwrap_err();
            assert!(matches!(e, Error::Fenced(_) | Error::Postgres(_)), "{e:?}");
        }
        assert!(matches!(
            a.set_settings(&setting("stale")),
            Err(Error::Fenced(_))
        ));
        assert!(matches!(a.writer().unwrap().begin(), Err(Error::Fenced(_))));
        assert!(!a.renew_lease("c0", e1, MINUTE).unwrap());
        b.set_settings(&setting("b")).unwrap();
        assert_eq!(b.setting("k").unwrap().as_deref(), Some("b"));

        // A holder whose lease expired cannot write either, even before
        // anyone takes it.
        assert!(b.renew_lease("c1", e2, 0).unwrap());
        assert!(matches!(
            b.set_settings(&setting("late")),
            Err(Error::Fenced(_))
        ));
        assert_eq!(b.setting("k").unwrap().as_deref(), Some("b"));
    }
}

#[test]
fn a_pg_store_works_from_inside_async_runtimes() {
    let Some(server) = crate::testdb::postgres_server() else {
        return;
    };
    let db = crate::testdb::postgres_db(&server);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let store = multi.block_on(async { db.open(10) });
    multi.block_on(async {
        store.set_settings(&[("k".into(), "v".into())]).unwrap();
        assert_eq!(store.setting("k").unwrap().as_deref(), Some("v"));
    });
    let single = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    single.block_on(async {
        assert_eq!(store.setting("k").unwrap().as_deref(), Some("v"));
        drop(store);
    });
}
